/* lmtp.c - the LMTP client (RFC 2033): one message to many recipients of a
 * local store (Dovecot's dovecot-lmtp, or any LMTP server).
 *
 * Entry point: pst_lmtp_deliver(), called by delivery-job.c on a worker
 * thread; it blocks (GSocketClient with a 60 s timeout per operation).
 * The server is hostile like any peer: reply lines are read with a length
 * limit (512 octets per RFC 5321, we allow 4096) and a limit on lines per
 * reply, and anything that is not "DDD[ -]text" ends the session as a
 * temporary failure.  After DATA, LMTP gives one reply per accepted
 * recipient, so each target gets its own result: 250 for one and 452 for
 * another means only the second is retried.
 *
 * LHLO's keywords count as EHLO's do for SMTP (smtp-protocol.c): a
 * message the server cannot take (SMTPUTF8 needed and not offered,
 * 8BITMIME not offered, over its SIZE) is refused for every target with
 * the same reason an SMTP peer would give, before MAIL; MAIL carries SIZE=, BODY=8BITMIME and SMTPUTF8
 * when offered; with PIPELINING, MAIL and the RCPTs go in one write.
 */
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "deliver/delivery-job.h"
#include "deliver/smtp-protocol.h"

#define LINE_MAX_OCTETS 4096
#define REPLY_MAX_LINES 100
#define TIMEOUT_SECONDS 60

typedef struct {
  GSocketConnection *connection; /* owned */
  GBufferedInputStream *input;   /* owned */
  GOutputStream *output;         /* borrowed from the connection */
} LmtpClient;

static void lmtp_client_clear(LmtpClient *client) {
  g_clear_object(&client->input);
  if (client->connection != NULL)
    g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  g_clear_object(&client->connection);
}

static GSocketConnectable *lmtp_address(const char *where, GError **error) {
  if (g_str_has_prefix(where, "unix:"))
    return G_SOCKET_CONNECTABLE(g_unix_socket_address_new(where + 5));
  return g_network_address_parse(where, 24, error);
}

static gboolean lmtp_connect(LmtpClient *client, const char *where,
                             GError **error) {
  g_autoptr(GSocketConnectable) address = lmtp_address(where, error);
  if (address == NULL)
    return FALSE;
  g_autoptr(GSocketClient) socket_client = g_socket_client_new();
  g_socket_client_set_timeout(socket_client, TIMEOUT_SECONDS);
  client->connection =
      g_socket_client_connect(socket_client, address, NULL, error);
  if (client->connection == NULL) {
    /* The text reaches DSNs, which go outside: a socket's file name is
     * this host's business (the log's relay= and the config say which). */
    g_prefix_error(error, "LMTP server %s: ",
                   g_str_has_prefix(where, "unix:") ? "(unix socket)" : where);
    return FALSE;
  }
  client->input = G_BUFFERED_INPUT_STREAM(g_buffered_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(client->connection))));
  client->output =
      g_io_stream_get_output_stream(G_IO_STREAM(client->connection));
  return TRUE;
}

/* One line without its CRLF; fails on a line too long. */
static char *lmtp_read_line(LmtpClient *client, GError **error) {
  GString *line = g_string_new(NULL);
  while (line->len <= LINE_MAX_OCTETS) {
    int c = g_buffered_input_stream_read_byte(client->input, NULL, error);
    if (c < 0) {
      if (error != NULL && *error == NULL)
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                    "the LMTP server closed the connection");
      g_string_free(line, TRUE);
      return NULL;
    }
    if (c == '\n') {
      if (line->len > 0 && line->str[line->len - 1] == '\r')
        g_string_truncate(line, line->len - 1);
      return g_string_free(line, FALSE);
    }
    g_string_append_c(line, (char)c);
  }
  g_string_free(line, TRUE);
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "the LMTP server sent a line longer than %d octets",
              LINE_MAX_OCTETS);
  return NULL;
}

/* A whole (multi-line) reply: "CODE text of the last line".  `all`
 * (nullable) collects every line, CRLF-ended (LHLO's keywords). */
static char *lmtp_read_reply_lines(LmtpClient *client, GString *all,
                                   GError **error) {
  for (guint n = 0; n < REPLY_MAX_LINES; n++) {
    g_autofree char *line = lmtp_read_line(client, error);
    if (line == NULL)
      return NULL;
    if (strlen(line) < 3 || !g_ascii_isdigit(line[0]) || line[0] < '2' ||
        line[0] > '5' || !g_ascii_isdigit(line[1]) ||
        !g_ascii_isdigit(line[2]) ||
        (line[3] != '\0' && line[3] != ' ' && line[3] != '-') ||
        !g_utf8_validate(line, -1, NULL)) {
      g_autofree char *shown = g_strescape(line, NULL);
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "the LMTP server replied garbage: \"%.80s\"", shown);
      return NULL;
    }
    if (all != NULL)
      g_string_append_printf(all, "%s\r\n", line);
    if (line[3] != '-')
      return g_steal_pointer(&line);
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "the LMTP server sent a reply of more than %d lines",
              REPLY_MAX_LINES);
  return NULL;
}

static char *lmtp_read_reply(LmtpClient *client, GError **error) {
  return lmtp_read_reply_lines(client, NULL, error);
}

static gboolean lmtp_send(LmtpClient *client, const char *data, gsize length,
                          GError **error) {
  return g_output_stream_write_all(client->output, data, length, NULL, NULL,
                                   error);
}

/* Sends a command and reads its reply. */
static char *lmtp_command(LmtpClient *client, GError **error,
                          const char *format, ...) G_GNUC_PRINTF(3, 4);
static char *lmtp_command(LmtpClient *client, GError **error,
                          const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *line = g_strdup_vprintf(format, args);
  va_end(args);
  g_autofree char *wire = g_strconcat(line, "\r\n", NULL);
  if (!lmtp_send(client, wire, strlen(wire), error))
    return NULL;
  return lmtp_read_reply(client, error);
}

/* The content, dot-stuffed, then the final dot. */
static gboolean lmtp_send_content(LmtpClient *client, GBytes *content,
                                  GError **error) {
  gsize length = 0;
  const char *data = g_bytes_get_data(content, &length);
  GString *out = g_string_sized_new(length + length / 50 + 8);
  gboolean line_start = TRUE;
  for (gsize i = 0; i < length; i++) {
    if (line_start && data[i] == '.')
      g_string_append_c(out, '.');
    g_string_append_c(out, data[i]);
    line_start = data[i] == '\n';
  }
  if (!line_start)
    g_string_append(out, "\r\n");
  g_string_append(out, ".\r\n");
  gboolean ok = lmtp_send(client, out->str, out->len, error);
  g_string_free(out, TRUE);
  return ok;
}

static gboolean lmtp_expect(char *reply, char first, GPtrArray *targets,
                            GPtrArray *replies) {
  if (reply[0] == first)
    return TRUE;
  for (guint i = replies->len; i < targets->len; i++)
    g_ptr_array_add(replies, g_strdup(reply));
  return FALSE;
}

/* LHLO and its keywords; the reply, or NULL on an I/O error. */
static char *lmtp_hello(LmtpClient *client, PstSmtpExtensions *extensions,
                        GError **error) {
  memset(extensions, 0, sizeof(*extensions));
  g_autofree char *wire = g_strdup_printf("LHLO %s\r\n", g_get_host_name());
  if (!lmtp_send(client, wire, strlen(wire), error))
    return NULL;
  g_autoptr(GString) all = g_string_new(NULL);
  char *reply = lmtp_read_reply_lines(client, all, error);
  gsize consumed = 0;
  g_autoptr(PstSmtpResponse) parsed = NULL;
  g_autofree char *problem = NULL;
  if (reply != NULL && reply[0] == '2' &&
      pst_smtp_response_parse(all->str, all->len, &consumed, &parsed,
                              &problem) == PST_SMTP_PARSE_OK)
    pst_smtp_extensions_parse(parsed, extensions);
  return reply;
}

/* Sends MAIL and every RCPT (in one write with PIPELINING, else one at a
 * time) and reads their replies: FALSE on an I/O error; *mail_r is MAIL's
 * reply, and `replies` gets one RCPT reply per target. */
static gboolean lmtp_envelope(LmtpClient *client, const char *mail,
                              GPtrArray *targets, gboolean pipelining,
                              char **mail_r, GPtrArray *replies,
                              GError **error) {
  g_autoptr(GString) wire = g_string_new(NULL);
  g_string_append_printf(wire, "%s\r\n", mail);
  for (guint i = 0; i < targets->len; i++) {
    const PstTarget *target = targets->pdata[i];
    if (!pipelining && i == 0) {
      if (!lmtp_send(client, wire->str, wire->len, error) ||
          (*mail_r = lmtp_read_reply(client, error)) == NULL)
        return FALSE;
      if ((*mail_r)[0] != '2')
        return TRUE;
      g_string_truncate(wire, 0);
    }
    g_string_append_printf(wire, "RCPT TO:<%s>\r\n", target->address);
    if (!pipelining) {
      char *rcpt = NULL;
      if (!lmtp_send(client, wire->str, wire->len, error) ||
          (rcpt = lmtp_read_reply(client, error)) == NULL)
        return FALSE;
      g_ptr_array_add(replies, rcpt);
      g_string_truncate(wire, 0);
    }
  }
  if (!pipelining)
    return TRUE;
  /* Pipelined: MAIL's reply, then one per RCPT, all read even after a
   * refused MAIL (the RCPTs are answered 503 then). */
  if (!lmtp_send(client, wire->str, wire->len, error) ||
      (*mail_r = lmtp_read_reply(client, error)) == NULL)
    return FALSE;
  for (guint i = 0; i < targets->len; i++) {
    char *rcpt = lmtp_read_reply(client, error);
    if (rcpt == NULL)
      return FALSE;
    g_ptr_array_add(replies, rcpt);
  }
  if ((*mail_r)[0] != '2')
    g_ptr_array_set_size(replies, 0);
  return TRUE;
}

/* DATA, the content and one reply per accepted target. */
static gboolean lmtp_data(LmtpClient *client, GBytes *content,
                          GArray *accepted, GPtrArray *replies,
                          GError **error) {
  g_autofree char *reply = lmtp_command(client, error, "DATA");
  if (reply == NULL)
    return FALSE;
  if (reply[0] != '3') {
    for (guint i = 0; i < accepted->len; i++) {
      guint index = g_array_index(accepted, guint, i);
      g_free(replies->pdata[index]);
      replies->pdata[index] = g_strdup(reply);
    }
    return TRUE;
  }
  if (!lmtp_send_content(client, content, error))
    return FALSE;
  for (guint i = 0; i < accepted->len; i++) {
    char *final = lmtp_read_reply(client, error);
    if (final == NULL)
      return FALSE;
    guint index = g_array_index(accepted, guint, i);
    g_free(replies->pdata[index]);
    replies->pdata[index] = final;
  }
  return TRUE;
}

/* SMTPUTF8 was asked for and is needed (as smtp-deliver.c decides). */
static gboolean lmtp_needs_smtputf8(const PstEnvelope *envelope,
                                    GPtrArray *targets, GBytes *content) {
  if (!envelope->smtputf8)
    return FALSE;
  if (!g_str_is_ascii(envelope->sender))
    return TRUE;
  for (guint i = 0; i < targets->len; i++)
    if (!g_str_is_ascii(((const PstTarget *)targets->pdata[i])->address))
      return TRUE;
  return pst_smtp_header_is_8bit(g_bytes_get_data(content, NULL),
                                 g_bytes_get_size(content));
}

/* The session after the greeting; TRUE once every target has a reply. */
static gboolean lmtp_transaction(LmtpClient *client,
                                 const PstEnvelope *envelope,
                                 GPtrArray *targets, GBytes *content,
                                 GPtrArray *replies, GError **error) {
  PstSmtpExtensions extensions;
  g_autofree char *reply = lmtp_hello(client, &extensions, error);
  if (reply == NULL || !lmtp_expect(reply, '2', targets, replies))
    return reply != NULL;
  /* What the server said it cannot take is refused here, clearly. */
  gsize size = g_bytes_get_size(content);
  gboolean eight_bit =
      envelope->body == PST_BODY_8BITMIME ||
      pst_smtp_content_is_8bit(g_bytes_get_data(content, NULL), size);
  g_autofree char *refusal = pst_smtp_extensions_refusal(
      &extensions, lmtp_needs_smtputf8(envelope, targets, content), eight_bit,
      size, "the LMTP server");
  if (refusal != NULL)
    return !lmtp_expect(refusal, '2', targets, replies);
  g_autoptr(GString) mail = pst_smtp_mail_command_new(
      &extensions, envelope->sender, size, eight_bit, envelope->smtputf8);
  g_clear_pointer(&reply, g_free);
  if (!lmtp_envelope(client, mail->str, targets,
                     (extensions.flags & PST_SMTP_EXT_PIPELINING) != 0, &reply,
                     replies, error))
    return FALSE;
  if (!lmtp_expect(reply, '2', targets, replies))
    return TRUE;
  g_autoptr(GArray) accepted = g_array_new(FALSE, FALSE, sizeof(guint));
  for (guint i = 0; i < targets->len; i++)
    if (((const char *)replies->pdata[i])[0] == '2')
      g_array_append_val(accepted, i);
  if (accepted->len == 0)
    return TRUE;
  return lmtp_data(client, content, accepted, replies, error);
}

gboolean pst_lmtp_deliver(const char *where, const PstEnvelope *envelope,
                          GPtrArray *targets, GBytes *content,
                          GPtrArray *replies, GError **error) {
  LmtpClient client = {0};
  gboolean ok = lmtp_connect(&client, where, error);
  g_autofree char *greeting = ok ? lmtp_read_reply(&client, error) : NULL;
  ok = greeting != NULL;
  if (ok && greeting[0] != '2') {
    ok = FALSE;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the LMTP server greeted with \"%s\"", greeting);
  }
  if (ok)
    ok = lmtp_transaction(&client, envelope, targets, content, replies,
                          error);
  if (ok) {
    g_autofree char *bye = lmtp_command(&client, NULL, "QUIT");
  }
  lmtp_client_clear(&client);
  if (!ok)
    g_ptr_array_set_size(replies, 0);
  return ok;
}
