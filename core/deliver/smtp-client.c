/* smtp-client.c - one outbound SMTP connection on the main loop (see
 * smtp-client.h).
 *
 * Each step sends a command (or nothing) and names the function that gets
 * the reply: connection_command(connection, "EHLO x", on_ehlo).  Bytes go
 * through client-io.c, which never blocks and bounds every wait; received
 * octets are parsed with pst_smtp_response_parse(), and more than one
 * reply's worth may be buffered (PIPELINING).  Opening is a chain of such
 * steps (greeting, EHLO/HELO, STARTTLS and the handshake, EHLO again,
 * AUTH rounds with the SASL client service) whose state lives in an
 * Opening until its callback.  Invariants: once `broken` is set (I/O
 * failure, timeout, garbage) nothing more is sent; STARTTLS's handshake
 * empties the input first, so nothing the server sent in clear is read
 * as if it came over TLS; one operation at a time per connection.  DATA's
 * content goes a piece at a time, the next read only when the socket took
 * the last (PstSmtpContentFunc), so a slow server holds one piece.
 */
#include <string.h>

#include <postilion/sasl.h>

#include "deliver/client-io.h"
#include "deliver/smtp-client.h"

typedef void (*ReplyFunc)(PstSmtpConnection *connection,
                          PstSmtpResponse *reply);

/* What pst_smtp_connection_open() needs until its callback. */
typedef struct {
  PstGeneration *generation;         /* borrowed: the TLS and SASL providers */
  const PstDeliveryConfig *delivery; /* borrowed */
  const char *helo_name;             /* borrowed */
  const PstRouteHost *host;          /* borrowed */
  PstDeliveryTls tls;
  const PstSmtpLogin *login; /* borrowed, nullable */
  const char *log_id;        /* borrowed */
  gboolean try_starttls;
  gboolean handshake_failed;
  PstSaslClient *sasl; /* owned, nullable: during AUTH */
  GError *sasl_error;  /* owned, nullable: the last step's */
  guint round;
  /* What follows EHLO/HELO: TLS after the first, AUTH after the second. */
  void (*after_hello)(PstSmtpConnection *connection, PstSmtpResponse *reply);
  PstSmtpOpenFunc callback;
  gpointer user_data;
} Opening;

struct _PstSmtpConnection {
  PstClientIo *io;   /* owned, nullable until the socket exists */
  char *relay;       /* owned: "name[address]:port" */
  char *name;        /* owned: the host name (SNI, verification) */
  char *tls_version; /* owned, nullable: "TLSv1.3" after STARTTLS */
  guint timeout_ms;  /* per reply and per write */
  gboolean broken;   /* the connection can no longer be used */
  gboolean unprobed; /* reused without RSET, and no reply since */
  PstSmtpExtensions extensions;
  GString *out;       /* owned: the command being sent */
  ReplyFunc on_reply; /* the step waiting for the next reply */
  gint64 reply_deadline;
  Opening *opening;                /* owned, nullable: while opening */
  PstSmtpTransaction *transaction; /* borrowed: while run() */
  PstSmtpContentFunc content;      /* while run() */
  gpointer source;                 /* borrowed: while run() */
  gboolean content_waiting;        /* the content source reads the disk */
  gboolean writing_content;        /* inside a piece's write */
  gboolean content_written;        /* ... which completed at once */
  GError *write_error;             /* owned, nullable: ... and failed */
  PstSmtpConnectionFunc done;      /* run() and reset() */
  gpointer done_data;
};

gboolean pst_smtp_client_check_config(const PstDeliveryConfig *delivery,
                                      PstGeneration *generation,
                                      GError **error) {
  if (delivery->relayhost_credentials != NULL &&
      pst_generation_get_sasl_client(generation) == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "[delivery] relayhost_credentials is set, but no plugin "
                "provides the SASL client: load the auth plugin, or remove "
                "the key");
    return FALSE;
  }
  if (!pst_config_delivery_requires_tls(delivery) ||
      pst_generation_get_transport(generation) != NULL)
    return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
              "[delivery] tls (or a [delivery:DOMAIN] tls) is encrypt or "
              "verify, but no TLS provider plugin is loaded: load the tls "
              "plugin, or set tls = may");
  return FALSE;
}

/* --- Commands and replies -------------------------------------------------
 */

static PstSmtpResponse *failure(PstSmtpConnection *connection, guint code,
                                const char *enhanced, const char *problem) {
  connection->broken = TRUE;
  g_autofree char *text = g_strdup_printf("%s: %s", connection->relay, problem);
  return pst_smtp_response_new(code, enhanced, text);
}

static void reply_deliver(PstSmtpConnection *connection,
                          PstSmtpResponse *reply) {
  ReplyFunc next = connection->on_reply;
  connection->on_reply = NULL;
  next(connection, reply);
}

static void reply_parse(PstSmtpConnection *connection);

static void reply_received(PstClientIo *io, const GError *error,
                           gpointer user_data) {
  PstSmtpConnection *connection = user_data;
  if (error == NULL) {
    reply_parse(connection);
    return;
  }
  const char *problem =
      g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
          ? "timeout waiting for the server's reply"
      : g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)
          ? "the server closed the connection"
          : error->message;
  reply_deliver(connection, failure(connection, 451, "4.4.2", problem));
}

/* The next reply from what is buffered, or read more. */
static void reply_parse(PstSmtpConnection *connection) {
  GByteArray *input = pst_client_io_get_input(connection->io);
  gsize consumed = 0;
  PstSmtpResponse *reply = NULL;
  g_autofree char *problem = NULL;
  PstSmtpParseStatus status = pst_smtp_response_parse(
      (const char *)input->data, input->len, &consumed, &reply, &problem);
  if (status == PST_SMTP_PARSE_OK) {
    g_byte_array_remove_range(input, 0, (guint)consumed);
    connection->unprobed = FALSE;
    reply_deliver(connection, reply);
  } else if (status == PST_SMTP_PARSE_ERROR) {
    reply_deliver(connection, failure(connection, 451, "4.5.0", problem));
  } else {
    pst_client_io_read(connection->io, connection->reply_deadline,
                       reply_received, connection);
  }
}

static void connection_expect_reply(PstSmtpConnection *connection,
                                    ReplyFunc next) {
  connection->on_reply = next;
  connection->reply_deadline =
      g_get_monotonic_time() + (gint64)connection->timeout_ms * 1000;
  reply_parse(connection);
}

static void sent(PstClientIo *io, const GError *error, gpointer user_data) {
  PstSmtpConnection *connection = user_data;
  if (error == NULL) {
    connection_expect_reply(connection, connection->on_reply);
    return;
  }
  const char *problem = g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
                            ? "timeout sending to the server"
                            : error->message;
  reply_deliver(connection, failure(connection, 451, "4.4.2", problem));
}

/* Sends `data` (borrowed until the reply) and hands the reply to `next`. */
static void connection_send(PstSmtpConnection *connection, const void *data,
                            gsize length, ReplyFunc next) {
  connection->on_reply = next;
  pst_client_io_write(connection->io, data, length, connection->timeout_ms,
                      sent, connection);
}

static void connection_command(PstSmtpConnection *connection,
                               const char *command, ReplyFunc next) {
  g_string_printf(connection->out, "%s\r\n", command);
  connection_send(connection, connection->out->str, connection->out->len, next);
}

/* --- Opening -------------------------------------------------------------- */

static void opening_free(Opening *opening) {
  g_clear_pointer(&opening->sasl, pst_sasl_client_free);
  g_clear_error(&opening->sasl_error);
  g_free(opening);
}

static void opening_start(Opening *opening);

static void open_succeed(PstSmtpConnection *connection) {
  Opening *opening = g_steal_pointer(&connection->opening);
  opening->callback(connection, NULL, opening->user_data);
  opening_free(opening);
}

/* Ends the attempt with `reply`; a failed opportunistic handshake is
 * logged and the host tried again in clear (RFC 7435). */
static void open_fail(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  Opening *opening = g_steal_pointer(&connection->opening);
  pst_smtp_connection_close(connection);
  if (opening->handshake_failed && opening->tls == PST_DELIVERY_TLS_MAY &&
      opening->try_starttls) {
    g_autofree char *text = pst_smtp_response_to_string(reply);
    g_message("%s: %s; trying again without STARTTLS", opening->log_id, text);
    pst_smtp_response_free(reply);
    opening->try_starttls = FALSE;
    opening->handshake_failed = FALSE;
    opening_start(opening);
    return;
  }
  opening->callback(NULL, reply, opening->user_data);
  opening_free(opening);
}

/* EHLO, or HELO when EHLO is refused; then after_hello with NULL when the
 * server said 250, else with its reply. */
static void hello_done(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  connection->opening->after_hello(connection, reply);
}

static void on_helo(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken || reply->code / 100 != 2) {
    hello_done(connection, reply);
    return;
  }
  pst_smtp_response_free(reply);
  hello_done(connection, NULL);
}

static void on_ehlo(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken) {
    hello_done(connection, reply);
    return;
  }
  if (reply->code / 100 == 2) {
    pst_smtp_extensions_parse(reply, &connection->extensions);
    pst_smtp_response_free(reply);
    hello_done(connection, NULL);
    return;
  }
  pst_smtp_response_free(reply);
  memset(&connection->extensions, 0, sizeof connection->extensions);
  g_autofree char *helo =
      g_strdup_printf("HELO %s", connection->opening->helo_name);
  connection_command(connection, helo, on_helo);
}

static void connection_hello(PstSmtpConnection *connection) {
  g_autofree char *ehlo =
      g_strdup_printf("EHLO %s", connection->opening->helo_name);
  connection_command(connection, ehlo, on_ehlo);
}

/* AUTH with the login (user, password) when the server offers it; a
 * failure is temporary: wrong credentials are our configuration's
 * problem, never a bounce.  The lines sent hold the password: they are
 * never logged. */
static void on_auth(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  Opening *opening = connection->opening;
  const char *user = opening->login->user;
  if (!connection->broken && reply->code == 334 && opening->round < 10) {
    opening->round++;
    const char *challenge = reply->line_count > 0 ? reply->lines[0] : "";
    g_clear_error(&opening->sasl_error);
    g_autofree char *line =
        pst_sasl_client_step(opening->sasl, challenge, &opening->sasl_error);
    pst_smtp_response_free(reply);
    connection_command(connection, line != NULL ? line : "*", on_auth);
    return;
  }
  if (connection->broken) {
    open_fail(connection, reply);
    return;
  }
  if (reply->code == 235) {
    const char *mechanism = pst_sasl_client_get_mechanism(opening->sasl);
    g_message("%s: authenticated to %s as %s (%s)", opening->log_id,
              connection->relay, user, mechanism != NULL ? mechanism : "none");
    pst_smtp_response_free(reply);
    open_succeed(connection);
    return;
  }
  g_autofree char *said = pst_smtp_response_to_string(reply);
  pst_smtp_response_free(reply);
  g_autofree char *problem = g_strdup_printf(
      "SASL login as %s failed: %s", user,
      opening->sasl_error != NULL ? opening->sasl_error->message : said);
  open_fail(connection, failure(connection, 454, "4.7.0", problem));
}

static void connection_authenticate(PstSmtpConnection *connection) {
  Opening *opening = connection->opening;
  const PstSmtpLogin *login = opening->login;
  if (login == NULL) {
    open_succeed(connection);
    return;
  }
  if (!(connection->extensions.flags & PST_SMTP_EXT_AUTH)) {
    g_message("%s: %s does not offer AUTH; sending without logging in",
              opening->log_id, connection->relay);
    open_succeed(connection);
    return;
  }
  g_autoptr(GError) error = NULL;
  opening->sasl = pst_generation_open_sasl_client(
      opening->generation, connection->name, login->user, login->password,
      connection->tls_version != NULL, &error);
  g_autofree char *line =
      opening->sasl != NULL
          ? pst_sasl_client_start(opening->sasl, connection->extensions.auth,
                                  &error)
          : NULL;
  if (line == NULL) {
    g_autofree char *problem =
        g_strdup_printf("cannot log in as %s: %s", login->user, error->message);
    open_fail(connection, failure(connection, 454, "4.7.0", problem));
    return;
  }
  connection_command(connection, line, on_auth);
}

/* STARTTLS refused (or EHLO refused after it): `may` goes on in clear,
 * `encrypt` and `verify` refuse. */
static void tls_refused(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken) {
    open_fail(connection, reply);
    return;
  }
  if (connection->opening->tls == PST_DELIVERY_TLS_MAY) {
    pst_smtp_response_free(reply);
    connection_authenticate(connection);
    return;
  }
  g_autofree char *text = pst_smtp_response_to_string(reply);
  g_autofree char *problem =
      g_strdup_printf("TLS is required, but STARTTLS was refused: %s", text);
  pst_smtp_response_free(reply);
  open_fail(connection, failure(connection, 454, "4.7.4", problem));
}

static void after_tls_hello(PstSmtpConnection *connection,
                            PstSmtpResponse *reply) {
  if (reply != NULL)
    tls_refused(connection, reply);
  else
    connection_authenticate(connection);
}

/* "TLS1.3" -> "TLSv1.3", the name mail logs use. */
static char *tls_version_name(PstTransport *tls) {
  const char *version = pst_transport_get_tls_version(tls);
  return version != NULL && g_str_has_prefix(version, "TLS1")
             ? g_strdup_printf("TLSv%s", version + 3)
             : g_strdup(version != NULL ? version : "unknown");
}

static void tls_handshake_done(PstClientIo *io, const GError *error,
                               gpointer user_data) {
  PstSmtpConnection *connection = user_data;
  Opening *opening = connection->opening;
  if (error != NULL) {
    opening->handshake_failed = TRUE;
    /* The provider says why (transport.h); we say what failed. */
    g_autofree char *problem =
        g_strdup_printf("TLS handshake failed: %s", error->message);
    open_fail(connection, failure(connection, 454, "4.7.5", problem));
    return;
  }
  PstTransport *tls = pst_client_io_get_tls(io);
  connection->tls_version = tls_version_name(tls);
  const char *cipher = pst_transport_get_tls_cipher(tls);
  const char *why = pst_transport_get_tls_verify_message(tls);
  g_message("%s: %s TLS connection established to %s: %s with cipher %s "
            "(%u bits)%s%s",
            opening->log_id,
            pst_transport_get_tls_verified(tls) ? "Verified" : "Untrusted",
            connection->relay, connection->tls_version,
            cipher != NULL ? cipher : "unknown",
            pst_transport_get_tls_cipher_bits(tls), why != NULL ? ": " : "",
            why != NULL ? why : "");
  opening->after_hello = after_tls_hello;
  connection_hello(connection);
}

static void on_starttls(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken || reply->code != 220) {
    tls_refused(connection, reply);
    return;
  }
  pst_smtp_response_free(reply);
  Opening *opening = connection->opening;
  /* Whatever the server sent in clear after its 220 is not trusted:
   * pst_client_io_start_tls() drops it. */
  pst_client_io_start_tls(
      connection->io, pst_generation_get_transport(opening->generation),
      connection->name,
      opening->tls == PST_DELIVERY_TLS_VERIFY ? PST_TLS_VERIFY_PEER
                                              : PST_TLS_VERIFY_NONE,
      connection->timeout_ms, tls_handshake_done, connection);
}

/* The TLS level, once EHLO told whether STARTTLS is offered. */
static void after_first_hello(PstSmtpConnection *connection,
                              PstSmtpResponse *reply) {
  if (reply != NULL) {
    open_fail(connection, reply);
    return;
  }
  Opening *opening = connection->opening;
  gboolean offered =
      (connection->extensions.flags & PST_SMTP_EXT_STARTTLS) != 0;
  if (offered && opening->try_starttls &&
      pst_generation_get_transport(opening->generation) != NULL) {
    connection_command(connection, "STARTTLS", on_starttls);
  } else if (opening->tls == PST_DELIVERY_TLS_MAY) {
    connection_authenticate(connection);
  } else if (!offered) {
    open_fail(connection,
              failure(connection, 454, "4.7.4",
                      "TLS is required, but was not offered by the host"));
  } else {
    open_fail(connection,
              failure(connection, 454, "4.7.5",
                      "TLS is required, but no TLS provider plugin is loaded"));
  }
}

/* TRUE when the greeting names us: the MX (or relayhost) is this server,
 * and sending would only loop (RFC 5321 5.1: a host must not deliver to
 * itself through its MX records). */
static gboolean greeting_is_ours(const PstSmtpResponse *greeting,
                                 const char *helo_name) {
  const char *text = greeting->line_count > 0 ? greeting->lines[0] : "";
  gsize length = strcspn(text, " ");
  return length == strlen(helo_name) &&
         g_ascii_strncasecmp(text, helo_name, length) == 0;
}

static void on_greeting(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken) {
    open_fail(connection, reply);
    return;
  }
  if (reply->code / 100 != 2) {
    connection->broken = TRUE; /* a greeting that refuses: close */
    open_fail(connection, reply);
    return;
  }
  gboolean ours = greeting_is_ours(reply, connection->opening->helo_name);
  pst_smtp_response_free(reply);
  if (ours) {
    open_fail(connection,
              failure(connection, 554, "5.4.6",
                      "mail loops back to myself (the server greets with our "
                      "own name)"));
    return;
  }
  connection->opening->after_hello = after_first_hello;
  connection_hello(connection);
}

static void connected(PstClientIo *io, const GError *error,
                      gpointer user_data) {
  PstSmtpConnection *connection = user_data;
  if (error != NULL) {
    g_autofree char *problem = g_strdup_printf(
        "connect: %s", g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
                           ? "timeout"
                           : error->message);
    open_fail(connection, failure(connection, 451, "4.4.1", problem));
    return;
  }
  connection_expect_reply(connection, on_greeting);
}

static void opening_start(Opening *opening) {
  PstSmtpConnection *connection = g_new0(PstSmtpConnection, 1);
  connection->relay = pst_route_host_describe(opening->host);
  connection->name = g_strdup(opening->host->name);
  connection->timeout_ms = opening->delivery->smtp_timeout_ms;
  connection->out = g_string_new(NULL);
  connection->opening = opening;
  g_autoptr(GSocketAddress) address =
      g_inet_socket_address_new(opening->host->address, opening->host->port);
  g_autoptr(GError) error = NULL;
  connection->io = pst_client_io_new(address, &error);
  if (connection->io == NULL) {
    open_fail(connection, failure(connection, 451, "4.4.1", error->message));
    return;
  }
  pst_client_io_connect(connection->io, address,
                        opening->delivery->smtp_connect_timeout_ms, connected,
                        connection);
}

void pst_smtp_connection_open(PstGeneration *generation,
                              const PstDeliveryConfig *delivery,
                              const char *helo_name, const PstRouteHost *host,
                              PstDeliveryTls tls, const PstSmtpLogin *login,
                              const char *log_id, PstSmtpOpenFunc callback,
                              gpointer user_data) {
  Opening *opening = g_new0(Opening, 1);
  opening->generation = generation;
  opening->delivery = delivery;
  opening->helo_name = helo_name;
  opening->host = host;
  opening->tls = tls;
  opening->login = login;
  opening->log_id = log_id;
  opening->try_starttls = TRUE;
  opening->callback = callback;
  opening->user_data = user_data;
  opening_start(opening);
}

/* --- Using ---------------------------------------------------------------- */

const PstSmtpExtensions *
pst_smtp_connection_get_extensions(PstSmtpConnection *connection) {
  return &connection->extensions;
}

const char *pst_smtp_connection_get_relay(PstSmtpConnection *connection) {
  return connection->relay;
}

const char *pst_smtp_connection_get_tls(PstSmtpConnection *connection) {
  return connection->tls_version != NULL ? connection->tls_version : "none";
}

gboolean pst_smtp_connection_is_usable(PstSmtpConnection *connection) {
  return !connection->broken;
}

static void operation_done(PstSmtpConnection *connection) {
  PstSmtpConnectionFunc done = connection->done;
  connection->done = NULL;
  connection->transaction = NULL;
  connection->content = NULL;
  connection->source = NULL;
  done(connection, connection->done_data);
}

static void run_step(PstSmtpConnection *connection);
static void run_reply(PstSmtpConnection *connection, PstSmtpResponse *reply);
static void content_next(PstSmtpConnection *connection);

/* A piece written: at once (inside pst_client_io_write(): content_next()'s
 * loop goes on, so a socket that keeps taking does not nest a call per
 * piece), or later from the main loop. */
static void content_sent(PstClientIo *io, const GError *error,
                         gpointer user_data) {
  PstSmtpConnection *connection = user_data;
  if (connection->writing_content) {
    connection->content_written = TRUE;
    if (error != NULL)
      connection->write_error = g_error_copy(error);
    return;
  }
  if (error != NULL) {
    connection->on_reply = run_reply;
    sent(io, error, connection); /* the failure, as for any write */
    return;
  }
  content_next(connection);
}

/* The content's next pieces, each written once the socket took the one
 * before; the last (the final dot) waits for the reply.  Content that
 * turns out not to be whole ends the connection before the dot. */
static void content_next(PstSmtpConnection *connection) {
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    gboolean last = FALSE;
    g_autoptr(GError) error = NULL;
    if (!connection->content(connection->source, &data, &length, &last,
                             &error)) {
      if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        /* pst_smtp_connection_content_ready() goes on. */
        connection->content_waiting = TRUE;
        return;
      }
      run_reply(connection, failure(connection, 451, "4.3.0", error->message));
      return;
    }
    if (last) {
      connection_send(connection, data, length, run_reply);
      return;
    }
    connection->writing_content = TRUE;
    connection->content_written = FALSE;
    pst_client_io_write(connection->io, data, length, connection->timeout_ms,
                        content_sent, connection);
    connection->writing_content = FALSE;
    if (!connection->content_written)
      return; /* content_sent() goes on from the main loop */
    g_autoptr(GError) failed = g_steal_pointer(&connection->write_error);
    if (failed != NULL) {
      connection->on_reply = run_reply;
      sent(connection->io, failed, connection);
      return;
    }
  }
}

void pst_smtp_connection_content_ready(PstSmtpConnection *connection) {
  g_return_if_fail(connection != NULL);
  if (!connection->content_waiting)
    return;
  connection->content_waiting = FALSE;
  content_next(connection);
}

static void run_reply(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (connection->broken) {
    pst_smtp_transaction_fail(connection->transaction, reply);
    pst_smtp_response_free(reply);
    operation_done(connection);
    return;
  }
  pst_smtp_transaction_reply(connection->transaction, reply);
  pst_smtp_response_free(reply);
  run_step(connection);
}

/* Sends what the transaction asks for, then reads one reply. */
static void run_step(PstSmtpConnection *connection) {
  PstSmtpTransaction *transaction = connection->transaction;
  if (pst_smtp_transaction_is_done(transaction)) {
    operation_done(connection);
    return;
  }
  g_string_truncate(connection->out, 0);
  switch (pst_smtp_transaction_next(transaction, connection->out)) {
  case PST_SMTP_SEND_COMMANDS:
    connection_send(connection, connection->out->str, connection->out->len,
                    run_reply);
    break;
  case PST_SMTP_SEND_CONTENT:
    content_next(connection);
    break;
  case PST_SMTP_SEND_EMPTY:
    connection_send(connection, ".\r\n", 3, run_reply);
    break;
  case PST_SMTP_SEND_NOTHING:
  default:
    connection_expect_reply(connection, run_reply);
    break;
  }
}

void pst_smtp_connection_run(PstSmtpConnection *connection,
                             PstSmtpTransaction *transaction,
                             PstSmtpContentFunc content, gpointer source,
                             PstSmtpConnectionFunc callback,
                             gpointer user_data) {
  connection->transaction = transaction;
  connection->content = content;
  connection->source = source;
  connection->done = callback;
  connection->done_data = user_data;
  run_step(connection);
}

static void reset_reply(PstSmtpConnection *connection, PstSmtpResponse *reply) {
  if (reply->code != 250)
    connection->broken = TRUE;
  pst_smtp_response_free(reply);
  operation_done(connection);
}

void pst_smtp_connection_reset(PstSmtpConnection *connection,
                               PstSmtpConnectionFunc callback,
                               gpointer user_data) {
  connection->done = callback;
  connection->done_data = user_data;
  if (connection->broken) {
    operation_done(connection);
    return;
  }
  connection_command(connection, "RSET", reset_reply);
}

void pst_smtp_connection_reuse(PstSmtpConnection *connection, gint64 idle_us,
                               PstSmtpConnectionFunc callback,
                               gpointer user_data) {
  if (connection->broken || idle_us >= PST_SMTP_REUSE_FRESH_US ||
      !pst_client_io_is_quiet(connection->io)) {
    pst_smtp_connection_reset(connection, callback, user_data);
    return;
  }
  connection->unprobed = TRUE;
  connection->done = callback;
  connection->done_data = user_data;
  operation_done(connection);
}

gboolean pst_smtp_connection_lost_unprobed(PstSmtpConnection *connection) {
  return connection->broken && connection->unprobed;
}

void pst_smtp_connection_close(PstSmtpConnection *connection) {
  if (connection == NULL)
    return;
  /* QUIT without waiting for the 221: closing never blocks.  On a TLS
   * connection it goes inside TLS, and closing then sends the
   * close_notify alert. */
  if (connection->io != NULL && !connection->broken)
    pst_client_io_write_now(connection->io, "QUIT\r\n", 6);
  g_clear_pointer(&connection->io, pst_client_io_free);
  g_string_free(connection->out, TRUE);
  g_clear_error(&connection->write_error);
  g_free(connection->relay);
  g_free(connection->name);
  g_free(connection->tls_version);
  g_free(connection);
}
