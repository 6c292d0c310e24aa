/* lmtp.c - the `lmtp` delivery transport: an LMTP client (RFC 2033) on
 * the main loop, one message to many recipients of a local store
 * (Dovecot's dovecot-lmtp, or any LMTP server).
 *
 * Entry point: pst_delivery_transport_lmtp (delivery-transport.h), where
 * [delivery] lmtp names the server ("unix:/path" or "host:port").  Each
 * step sends a command and names the function that gets the reply; every
 * wait is bounded (TIMEOUT_SECONDS).  The server is hostile like any
 * peer: reply lines are read (lmtp-reply.c, pure) with a length limit
 * (512 octets per RFC 5321, we allow 4096) and a limit on lines per reply,
 * and anything that is not "DDD[ -]text" ends the session as a temporary
 * failure.  After
 * DATA, LMTP gives one reply per accepted recipient, so each target gets
 * its own result: 250 for one and 452 for another means only the second
 * is retried.  A session that fails defers every target with "451 4.4.1
 * why".
 *
 * LHLO's keywords count as EHLO's do for SMTP (smtp-protocol.c): a
 * message the server cannot take (SMTPUTF8 needed and not offered,
 * 8BITMIME not offered, over its SIZE) is refused for every target with
 * the same reason an SMTP peer would give, before MAIL; MAIL carries
 * SIZE=, BODY=8BITMIME and SMTPUTF8 when offered; with PIPELINING, MAIL
 * and the RCPTs go in one write.  The content goes as SMTP's DATA does
 * (CRLF only, dot-stuffed: smtp-protocol.c's encoder), a piece at a time
 * as the socket drains (delivery-content.h), the final dot only after the
 * reader found it intact.
 */
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "deliver/client-io.h"
#include "deliver/delivery-transport.h"
#include "deliver/lmtp-reply.h"
#include "deliver/smtp-protocol.h"

#define TIMEOUT_SECONDS 60

typedef struct _Lmtp Lmtp;
/* Gets a whole reply ("CODE text" of its last line, owned), or NULL when
 * the session failed (`error` set). */
typedef void (*LmtpReplyFunc)(Lmtp *lmtp, char *reply);

struct _Lmtp {
  PstDeliveryBatch *batch;       /* borrowed until done */
  GSocketConnection *connection; /* owned, nullable */
  PstClientIo *io;               /* owned, nullable */
  GString *out;                  /* owned: what is being sent */
  GString *all;                  /* owned, nullable: LHLO's lines */
  guint lines;                   /* of the reply being read */
  gint64 deadline;               /* of the reply being read */
  LmtpReplyFunc on_reply;
  PstSmtpExtensions extensions;
  gboolean pipelining;
  GPtrArray *replies;    /* owned, of char*: one per item, in order */
  GArray *accepted;      /* owned, nullable: items RCPT accepted */
  guint next;            /* the RCPT or final reply being read */
  GError *error;         /* owned, nullable: the session failed */
  PstDataStream data;    /* DATA's content, a piece at a time */
  gboolean data_waiting; /* the DATA stream reads the disk */
  gboolean writing;      /* inside a piece's write */
  gboolean written;      /* ... which completed at once */
  GError *write_error;   /* owned, nullable: ... and failed */
  PstDeliveryBatchFunc done;
  gpointer user_data;
};

static guint lmtp_count(const Lmtp *lmtp) {
  return lmtp->batch->items->len;
}

static const PstTarget *lmtp_target(const Lmtp *lmtp, guint index) {
  return g_array_index(lmtp->batch->items, PstDeliveryItem, index).target;
}

/* --- The end ---------------------------------------------------------------
 */

static void lmtp_finish(Lmtp *lmtp) {
  for (guint i = 0; i < lmtp_count(lmtp); i++) {
    PstDeliveryResult *result =
        g_array_index(lmtp->batch->items, PstDeliveryItem, i).result;
    if (lmtp->error != NULL)
      pst_delivery_result_set(
          result, PST_RECIPIENT_DEFERRED, "lmtp",
          g_strdup_printf("451 4.4.1 %s", lmtp->error->message));
    else
      pst_delivery_result_set_reply(result, "lmtp",
                                    g_strdup(lmtp->replies->pdata[i]));
  }
  g_clear_pointer(&lmtp->io, pst_client_io_free);
  if (lmtp->connection != NULL)
    g_io_stream_close(G_IO_STREAM(lmtp->connection), NULL, NULL);
  g_clear_object(&lmtp->connection);
  lmtp->done(lmtp->batch, lmtp->user_data);
  g_string_free(lmtp->out, TRUE);
  if (lmtp->all != NULL)
    g_string_free(lmtp->all, TRUE);
  g_ptr_array_unref(lmtp->replies);
  g_clear_pointer(&lmtp->accepted, g_array_unref);
  g_clear_error(&lmtp->error);
  pst_data_stream_clear(&lmtp->data);
  g_clear_error(&lmtp->write_error);
  g_free(lmtp);
}

static void lmtp_fail(Lmtp *lmtp, GError *error) {
  g_clear_error(&lmtp->error);
  lmtp->error = error;
  lmtp_finish(lmtp);
}

static void quit_reply(Lmtp *lmtp, char *reply) {
  g_free(reply);
  g_clear_error(&lmtp->error); /* every target has its reply already */
  lmtp_finish(lmtp);
}

static void lmtp_send(Lmtp *lmtp, LmtpReplyFunc next);

/* Every target has its reply: QUIT, and wait for the server's. */
static void lmtp_quit(Lmtp *lmtp) {
  g_string_assign(lmtp->out, "QUIT\r\n");
  lmtp_send(lmtp, quit_reply);
}

/* Targets without a reply get `reply`; TRUE when it starts with `first`. */
static gboolean lmtp_expect(Lmtp *lmtp, const char *reply, char first) {
  if (reply[0] == first)
    return TRUE;
  for (guint i = lmtp->replies->len; i < lmtp_count(lmtp); i++)
    g_ptr_array_add(lmtp->replies, g_strdup(reply));
  return FALSE;
}

/* --- Replies ---------------------------------------------------------------
 */

static void reply_read(Lmtp *lmtp);

static void reply_received(PstClientIo *io, const GError *error,
                           gpointer user_data) {
  Lmtp *lmtp = user_data;
  if (error == NULL) {
    reply_read(lmtp);
    return;
  }
  g_clear_error(&lmtp->error);
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    lmtp->error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                      "the LMTP server closed the connection");
  else if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    lmtp->error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                      "timeout waiting for the LMTP server");
  else
    lmtp->error = g_error_copy(error);
  lmtp->on_reply(lmtp, NULL);
}

static void reply_fail(Lmtp *lmtp, GIOErrorEnum code, char *text) {
  g_clear_error(&lmtp->error);
  lmtp->error = g_error_new_literal(G_IO_ERROR, code, text);
  g_free(text);
  lmtp->on_reply(lmtp, NULL);
}

/* The buffered lines of the reply (lmtp-reply.c), or read more. */
static void reply_read(Lmtp *lmtp) {
  char *reply = NULL;
  char *problem = NULL;
  switch (pst_lmtp_reply_read(pst_client_io_get_input(lmtp->io), &lmtp->lines,
                              lmtp->all, &reply, &problem)) {
  case PST_LMTP_REPLY_DONE:
    lmtp->on_reply(lmtp, reply);
    return;
  case PST_LMTP_REPLY_INVALID:
    reply_fail(lmtp, G_IO_ERROR_INVALID_DATA, problem);
    return;
  case PST_LMTP_REPLY_NEED_MORE:
  default:
    pst_client_io_read(lmtp->io, lmtp->deadline, reply_received, lmtp);
    return;
  }
}

static void lmtp_expect_reply(Lmtp *lmtp, LmtpReplyFunc next) {
  lmtp->on_reply = next;
  lmtp->lines = 0;
  lmtp->deadline = g_get_monotonic_time() + TIMEOUT_SECONDS * G_USEC_PER_SEC;
  reply_read(lmtp);
}

static void sent(PstClientIo *io, const GError *error, gpointer user_data) {
  Lmtp *lmtp = user_data;
  if (error != NULL) {
    g_clear_error(&lmtp->error);
    lmtp->error = g_error_copy(error);
    lmtp->on_reply(lmtp, NULL);
    return;
  }
  lmtp_expect_reply(lmtp, lmtp->on_reply);
}

/* Sends lmtp->out and hands the next reply to `next`. */
static void lmtp_send(Lmtp *lmtp, LmtpReplyFunc next) {
  lmtp->on_reply = next;
  pst_client_io_write(lmtp->io, lmtp->out->str, lmtp->out->len,
                      TIMEOUT_SECONDS * 1000, sent, lmtp);
}

/* --- The session -----------------------------------------------------------
 */

/* SMTPUTF8 was asked for and is needed (as smtp-deliver.c decides). */
static gboolean lmtp_needs_smtputf8(const PstEnvelope *envelope, GArray *items,
                                    const PstDeliveryContent *content) {
  if (!envelope->smtputf8)
    return FALSE;
  if (!g_str_is_ascii(envelope->sender))
    return TRUE;
  for (guint i = 0; i < items->len; i++)
    if (!g_str_is_ascii(
            g_array_index(items, PstDeliveryItem, i).target->address))
      return TRUE;
  return content->header_8bit;
}

/* One reply per accepted target after the content. */
static void final_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  guint index = g_array_index(lmtp->accepted, guint, lmtp->next);
  g_free(lmtp->replies->pdata[index]);
  lmtp->replies->pdata[index] = reply;
  if (++lmtp->next < lmtp->accepted->len)
    lmtp_expect_reply(lmtp, final_reply);
  else
    lmtp_quit(lmtp);
}

static void data_next(Lmtp *lmtp);

/* A piece written: at once (data_next()'s loop goes on, so a socket that
 * keeps taking does not nest a call per piece), or from the main loop. */
static void data_sent(PstClientIo *io, const GError *error,
                      gpointer user_data) {
  Lmtp *lmtp = user_data;
  if (lmtp->writing) {
    lmtp->written = TRUE;
    if (error != NULL)
      lmtp->write_error = g_error_copy(error);
    return;
  }
  if (error != NULL)
    sent(io, error, lmtp); /* the failure, as for any write */
  else
    data_next(lmtp);
}

/* The content's next pieces, encoded as SMTP's DATA (smtp-protocol.c);
 * after the last (the final dot, sent only when the content was intact)
 * the replies.  Content found not as stored ends the session before the
 * dot: the server drops what it got. */
static void data_next(Lmtp *lmtp) {
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    gboolean last = FALSE;
    GError *error = NULL;
    if (!pst_data_stream_next(&lmtp->data, &data, &length, &last, &error)) {
      if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(error);
        lmtp->data_waiting = TRUE; /* data_ready() goes on */
        return;
      }
      if (lmtp->batch->content_error == NULL)
        lmtp->batch->content_error = g_error_copy(error);
      lmtp_fail(lmtp, error);
      return;
    }
    if (last) {
      pst_client_io_write(lmtp->io, data, length, TIMEOUT_SECONDS * 1000, sent,
                          lmtp);
      return;
    }
    lmtp->writing = TRUE;
    lmtp->written = FALSE;
    pst_client_io_write(lmtp->io, data, length, TIMEOUT_SECONDS * 1000,
                        data_sent, lmtp);
    lmtp->writing = FALSE;
    if (!lmtp->written)
      return; /* data_sent() goes on from the main loop */
    GError *failed = g_steal_pointer(&lmtp->write_error);
    if (failed != NULL) {
      sent(lmtp->io, failed, lmtp);
      g_error_free(failed);
      return;
    }
  }
}

/* The DATA stream's next piece is in the page cache (a
 * PstDataStreamReadyFunc). */
static void data_ready(gpointer user_data) {
  Lmtp *lmtp = user_data;
  if (!lmtp->data_waiting)
    return;
  lmtp->data_waiting = FALSE;
  data_next(lmtp);
}

static void data_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  g_autofree char *owned = reply;
  if (reply[0] != '3') {
    for (guint i = 0; i < lmtp->accepted->len; i++) {
      guint index = g_array_index(lmtp->accepted, guint, i);
      g_free(lmtp->replies->pdata[index]);
      lmtp->replies->pdata[index] = g_strdup(reply);
    }
    lmtp_quit(lmtp);
    return;
  }
  lmtp->next = 0;
  lmtp->on_reply = final_reply;
  pst_data_stream_init(&lmtp->data, lmtp->batch->content, data_ready, lmtp);
  data_next(lmtp);
}

/* Every RCPT answered: DATA for the accepted ones, if any. */
static void lmtp_data(Lmtp *lmtp) {
  lmtp->accepted = g_array_new(FALSE, FALSE, sizeof(guint));
  for (guint i = 0; i < lmtp_count(lmtp); i++)
    if (((const char *)lmtp->replies->pdata[i])[0] == '2')
      g_array_append_val(lmtp->accepted, i);
  if (lmtp->accepted->len == 0) {
    lmtp_quit(lmtp);
    return;
  }
  g_string_assign(lmtp->out, "DATA\r\n");
  lmtp_send(lmtp, data_reply);
}

static void rcpt_send(Lmtp *lmtp);

/* A RCPT's reply; pipelined after a refused MAIL they are read (the RCPTs
 * are answered 503 then) but MAIL's reply goes to every target. */
static void rcpt_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  g_ptr_array_add(lmtp->replies, reply);
  lmtp->next++;
  if (lmtp->next < lmtp_count(lmtp)) {
    if (lmtp->pipelining)
      lmtp_expect_reply(lmtp, rcpt_reply);
    else
      rcpt_send(lmtp);
    return;
  }
  char *mail =
      lmtp->pipelining ? g_ptr_array_steal_index(lmtp->replies, 0) : NULL;
  if (mail != NULL && mail[0] != '2') {
    g_ptr_array_set_size(lmtp->replies, 0);
    lmtp_expect(lmtp, mail, '2');
    g_free(mail);
    lmtp_quit(lmtp);
    return;
  }
  g_free(mail);
  lmtp_data(lmtp);
}

static void rcpt_send(Lmtp *lmtp) {
  g_string_printf(lmtp->out, "RCPT TO:<%s>\r\n",
                  lmtp_target(lmtp, lmtp->next)->address);
  lmtp_send(lmtp, rcpt_reply);
}

/* Pipelined: MAIL's reply is kept first in `replies` until every RCPT's
 * reply is read. */
static void mail_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  lmtp->next = 0;
  if (lmtp->pipelining) {
    g_ptr_array_add(lmtp->replies, reply);
    lmtp_expect_reply(lmtp, rcpt_reply);
    return;
  }
  g_autofree char *owned = reply;
  if (!lmtp_expect(lmtp, reply, '2')) {
    lmtp_quit(lmtp);
    return;
  }
  rcpt_send(lmtp);
}

/* MAIL and every RCPT: in one write with PIPELINING, else one at a time. */
static void lmtp_envelope(Lmtp *lmtp) {
  const PstEnvelope *envelope = lmtp->batch->envelope;
  const PstDeliveryContent *content = lmtp->batch->content;
  gsize size = (gsize)content->size;
  gboolean eight_bit =
      envelope->body == PST_BODY_8BITMIME || content->eight_bit;
  g_autoptr(GString) mail = pst_smtp_mail_command_new(
      &lmtp->extensions, envelope->sender, size, eight_bit, envelope->smtputf8);
  g_string_printf(lmtp->out, "%s\r\n", mail->str);
  lmtp->pipelining = (lmtp->extensions.flags & PST_SMTP_EXT_PIPELINING) != 0;
  for (guint i = 0; lmtp->pipelining && i < lmtp_count(lmtp); i++)
    g_string_append_printf(lmtp->out, "RCPT TO:<%s>\r\n",
                           lmtp_target(lmtp, i)->address);
  lmtp_send(lmtp, mail_reply);
}

/* LHLO's reply and keywords; what the server said it cannot take is
 * refused here, clearly. */
static void lhlo_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  g_autofree char *owned = reply;
  g_autoptr(GString) all = g_steal_pointer(&lmtp->all);
  if (!lmtp_expect(lmtp, reply, '2')) {
    lmtp_quit(lmtp);
    return;
  }
  gsize consumed = 0;
  g_autoptr(PstSmtpResponse) parsed = NULL;
  g_autofree char *problem = NULL;
  if (pst_smtp_response_parse(all->str, all->len, &consumed, &parsed,
                              &problem) == PST_SMTP_PARSE_OK)
    pst_smtp_extensions_parse(parsed, &lmtp->extensions);
  const PstEnvelope *envelope = lmtp->batch->envelope;
  const PstDeliveryContent *content = lmtp->batch->content;
  gsize size = (gsize)content->size;
  gboolean eight_bit =
      envelope->body == PST_BODY_8BITMIME || content->eight_bit;
  g_autofree char *refusal = pst_smtp_extensions_refusal(
      &lmtp->extensions,
      lmtp_needs_smtputf8(envelope, lmtp->batch->items, content), eight_bit,
      size, "the LMTP server");
  if (refusal != NULL) {
    lmtp_expect(lmtp, refusal, '2');
    lmtp_quit(lmtp);
    return;
  }
  lmtp_envelope(lmtp);
}

static void greeting_reply(Lmtp *lmtp, char *reply) {
  if (reply == NULL) {
    lmtp_finish(lmtp);
    return;
  }
  g_autofree char *owned = reply;
  if (reply[0] != '2') {
    lmtp_fail(lmtp, g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
                                "the LMTP server greeted with \"%s\"", reply));
    return;
  }
  g_string_printf(lmtp->out, "LHLO %s\r\n", g_get_host_name());
  lmtp->all = g_string_new(NULL);
  lmtp_send(lmtp, lhlo_reply);
}

static void connected(GObject *source, GAsyncResult *result,
                      gpointer user_data) {
  Lmtp *lmtp = user_data;
  GError *error = NULL;
  lmtp->connection =
      g_socket_client_connect_finish(G_SOCKET_CLIENT(source), result, &error);
  if (lmtp->connection == NULL) {
    /* The text reaches DSNs, which go outside: a socket's file name is
     * this host's business (the log's relay= and the config say which). */
    const char *where =
        pst_deliver_tables_get_config(lmtp->batch->tables)->delivery.lmtp;
    g_prefix_error(&error, "LMTP server %s: ",
                   g_str_has_prefix(where, "unix:") ? "(unix socket)" : where);
    lmtp_fail(lmtp, error);
    return;
  }
  lmtp->io = pst_client_io_new_connected(
      g_socket_connection_get_socket(lmtp->connection));
  lmtp_expect_reply(lmtp, greeting_reply);
}

static GSocketConnectable *lmtp_address(const char *where, GError **error) {
  if (g_str_has_prefix(where, "unix:"))
    return G_SOCKET_CONNECTABLE(g_unix_socket_address_new(where + 5));
  return g_network_address_parse(where, 24, error);
}

static void lmtp_deliver(PstDeliveryBatch *batch, PstDeliveryBatchFunc done,
                         gpointer user_data) {
  Lmtp *lmtp = g_new0(Lmtp, 1);
  lmtp->batch = batch;
  lmtp->out = g_string_new(NULL);
  lmtp->replies = g_ptr_array_new_with_free_func(g_free);
  lmtp->done = done;
  lmtp->user_data = user_data;
  const char *where =
      pst_deliver_tables_get_config(batch->tables)->delivery.lmtp;
  GError *error = NULL;
  g_autoptr(GSocketConnectable) address = lmtp_address(where, &error);
  if (address == NULL) {
    lmtp_fail(lmtp, error);
    return;
  }
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, TIMEOUT_SECONDS);
  g_socket_client_connect_async(client, address, NULL, connected, lmtp);
}

const PstDeliveryTransport pst_delivery_transport_lmtp = {
    .name = "lmtp", .blocking = FALSE, .deliver = lmtp_deliver};
