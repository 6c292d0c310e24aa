/* smtp-client.c - one outbound SMTP connection on a worker thread (see
 * smtp-client.h).
 *
 * The socket is non-blocking; every read, write and connect waits with
 * g_socket_condition_timed_wait() for at most the configured timeout, so
 * a stalling server costs one timeout, never a hung worker.  Received
 * octets collect in `input` and are parsed with pst_smtp_response_parse();
 * more than one reply's worth may be buffered (PIPELINING).  Invariants:
 * once `broken` is set (I/O failure, timeout, garbage) nothing more is
 * sent; after STARTTLS's 220 the buffer is emptied before the handshake,
 * so nothing the server sent in clear is read as if it came over TLS.
 */
#include <string.h>

#include "deliver/smtp-auth.h"
#include "deliver/smtp-client.h"
#include "deliver/smtp-tls.h"

#define READ_CHUNK 4096

struct _PstSmtpConnection {
  GSocket *socket;   /* owned */
  GByteArray *input; /* owned: received, not parsed yet */
  char *relay;       /* owned: "name[address]:port" */
  char *name;        /* owned: the host name (SNI, verification) */
  PstSmtpTls *tls;   /* owned, nullable: after STARTTLS */
  guint timeout_ms;  /* per reply and per write */
  gboolean broken;   /* the connection can no longer be used */
  PstSmtpExtensions extensions;
};

gboolean pst_smtp_client_tls_available(void) {
  return pst_smtp_tls_available();
}

gboolean pst_smtp_client_check_config(const PstDeliveryConfig *delivery,
                                      GError **error) {
  if (delivery->relayhost_credentials != NULL && !pst_smtp_auth_available()) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "[delivery] relayhost_credentials is set, but no plugin "
                "provides the SASL client: load the auth plugin, or remove "
                "the key");
    return FALSE;
  }
  if (!pst_config_delivery_requires_tls(delivery) ||
      pst_smtp_client_tls_available())
    return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
              "[delivery] tls (or a [delivery:DOMAIN] tls) is encrypt or "
              "verify, but no TLS provider plugin is loaded: load the tls "
              "plugin, or set tls = may");
  return FALSE;
}

/* --- I/O ------------------------------------------------------------------ */

static PstSmtpResponse *failure(PstSmtpConnection *connection, guint code,
                                const char *enhanced, const char *problem) {
  connection->broken = TRUE;
  g_autofree char *text = g_strdup_printf("%s: %s", connection->relay, problem);
  return pst_smtp_response_new(code, enhanced, text);
}

static gboolean wait_for(PstSmtpConnection *connection, GIOCondition condition,
                         guint timeout_ms, GError **error) {
  return g_socket_condition_timed_wait(connection->socket, condition,
                                       (gint64)timeout_ms * 1000, NULL, error);
}

/* One non-blocking send or receive, through TLS once it is up. */
static gssize connection_transfer(PstSmtpConnection *connection, void *buffer,
                                  gsize size, gboolean write, GError **error) {
  if (connection->tls != NULL)
    return write ? pst_smtp_tls_write(connection->tls, buffer, size, error)
                 : pst_smtp_tls_read(connection->tls, buffer, size, error);
  return write ? g_socket_send_with_blocking(connection->socket, buffer, size,
                                             FALSE, NULL, error)
               : g_socket_receive_with_blocking(connection->socket, buffer,
                                                size, FALSE, NULL, error);
}

/* After G_IO_ERROR_WOULD_BLOCK: waits until the socket is ready for what
 * the transfer needs, or `deadline` (monotonic µs).  FALSE on timeout. */
static gboolean connection_wait(PstSmtpConnection *connection, gboolean write,
                                gint64 deadline) {
  if (connection->tls != NULL && !write &&
      pst_smtp_tls_has_pending(connection->tls))
    return TRUE;
  GIOCondition condition = connection->tls != NULL
                               ? pst_smtp_tls_get_condition(connection->tls)
                           : write ? G_IO_OUT
                                   : G_IO_IN;
  gint64 left = deadline - g_get_monotonic_time();
  return left > 0 && g_socket_condition_timed_wait(connection->socket,
                                                   condition, left, NULL, NULL);
}

/* Writes all of `data`; a reply describing the failure, or NULL.  The
 * timeout applies to each step that makes no progress. */
static PstSmtpResponse *connection_write(PstSmtpConnection *connection,
                                         const char *data, gsize length) {
  gsize done = 0;
  while (done < length) {
    g_autoptr(GError) error = NULL;
    gint64 deadline =
        g_get_monotonic_time() + (gint64)connection->timeout_ms * 1000;
    gssize sent = connection_transfer(connection, (char *)data + done,
                                      length - done, TRUE, &error);
    if (sent > 0) {
      done += (gsize)sent;
      continue;
    }
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      if (connection_wait(connection, TRUE, deadline))
        continue;
      return failure(connection, 451, "4.4.2", "timeout sending to the server");
    }
    return failure(connection, 451, "4.4.2",
                   error != NULL ? error->message : "write failed");
  }
  return NULL;
}

/* Reads the next reply; a made-up failure reply when there is none. */
static PstSmtpResponse *connection_read_reply(PstSmtpConnection *connection,
                                              guint timeout_ms) {
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  for (;;) {
    gsize consumed = 0;
    PstSmtpResponse *reply = NULL;
    g_autofree char *problem = NULL;
    PstSmtpParseStatus status = pst_smtp_response_parse(
        (const char *)connection->input->data, connection->input->len,
        &consumed, &reply, &problem);
    if (status == PST_SMTP_PARSE_OK) {
      g_byte_array_remove_range(connection->input, 0, (guint)consumed);
      return reply;
    }
    if (status == PST_SMTP_PARSE_ERROR)
      return failure(connection, 451, "4.5.0", problem);
    g_autoptr(GError) error = NULL;
    guint8 buffer[READ_CHUNK];
    gssize got =
        connection_transfer(connection, buffer, sizeof buffer, FALSE, &error);
    if (got == 0)
      return failure(connection, 451, "4.4.2",
                     "the server closed the connection");
    if (got > 0) {
      g_byte_array_append(connection->input, buffer, (guint)got);
      continue;
    }
    if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return failure(connection, 451, "4.4.2", error->message);
    if (!connection_wait(connection, FALSE, deadline))
      return failure(connection, 451, "4.4.2",
                     "timeout waiting for the server's reply");
  }
}

/* Sends one command and reads its reply. */
static PstSmtpResponse *connection_command(PstSmtpConnection *connection,
                                           const char *command) {
  g_autofree char *line = g_strdup_printf("%s\r\n", command);
  PstSmtpResponse *failed = connection_write(connection, line, strlen(line));
  if (failed != NULL)
    return failed;
  return connection_read_reply(connection, connection->timeout_ms);
}

/* --- Opening -------------------------------------------------------------- */

static PstSmtpResponse *connection_connect(PstSmtpConnection *connection,
                                           const PstRouteHost *host,
                                           guint timeout_ms) {
  g_autoptr(GError) error = NULL;
  connection->socket =
      g_socket_new(g_inet_address_get_family(host->address),
                   G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  if (connection->socket == NULL)
    return failure(connection, 451, "4.4.1", error->message);
  g_socket_set_blocking(connection->socket, FALSE);
  g_autoptr(GSocketAddress) address =
      g_inet_socket_address_new(host->address, host->port);
  if (g_socket_connect(connection->socket, address, NULL, &error))
    return NULL;
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_PENDING)) {
    g_clear_error(&error);
    if (wait_for(connection, G_IO_OUT, timeout_ms, &error) &&
        g_socket_check_connect_result(connection->socket, &error))
      return NULL;
  }
  g_autofree char *problem = g_strdup_printf(
      "connect: %s", g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)
                         ? "timeout"
                         : error->message);
  return failure(connection, 451, "4.4.1", problem);
}

/* EHLO, or HELO when EHLO is refused; NULL when the server said 250. */
static PstSmtpResponse *connection_hello(PstSmtpConnection *connection,
                                         const char *helo_name) {
  g_autofree char *ehlo = g_strdup_printf("EHLO %s", helo_name);
  PstSmtpResponse *reply = connection_command(connection, ehlo);
  if (connection->broken)
    return reply;
  if (reply->code / 100 == 2) {
    pst_smtp_extensions_parse(reply, &connection->extensions);
    pst_smtp_response_free(reply);
    return NULL;
  }
  pst_smtp_response_free(reply);
  memset(&connection->extensions, 0, sizeof connection->extensions);
  g_autofree char *helo = g_strdup_printf("HELO %s", helo_name);
  reply = connection_command(connection, helo);
  if (connection->broken || reply->code / 100 != 2)
    return reply;
  pst_smtp_response_free(reply);
  return NULL;
}

/* STARTTLS, the handshake and the new EHLO; NULL when TLS is up.
 * `handshake_failed_r` tells a failed handshake from a refusal. */
static PstSmtpResponse *connection_starttls(PstSmtpConnection *connection,
                                            const char *helo_name,
                                            PstDeliveryTls tls,
                                            const char *log_id,
                                            gboolean *handshake_failed_r) {
  PstSmtpResponse *reply = connection_command(connection, "STARTTLS");
  if (connection->broken || reply->code != 220)
    return reply;
  pst_smtp_response_free(reply);
  /* Whatever the server sent in clear after its 220 is not trusted. */
  g_byte_array_set_size(connection->input, 0);
  g_autoptr(GError) error = NULL;
  connection->tls = pst_smtp_tls_start(
      g_socket_get_fd(connection->socket), connection->name,
      tls == PST_DELIVERY_TLS_VERIFY, connection->timeout_ms, &error);
  if (connection->tls == NULL) {
    *handshake_failed_r = TRUE;
    /* The provider says why (transport.h); we say what failed. */
    g_autofree char *problem =
        g_strdup_printf("TLS handshake failed: %s", error->message);
    return failure(connection, 454, "4.7.5", problem);
  }
  const char *why = pst_smtp_tls_get_verify_message(connection->tls);
  g_message("%s: %s TLS connection established to %s: %s with cipher %s "
            "(%u bits)%s%s",
            log_id,
            pst_smtp_tls_get_verified(connection->tls) ? "Verified"
                                                       : "Untrusted",
            connection->relay, pst_smtp_tls_get_version(connection->tls),
            pst_smtp_tls_get_cipher(connection->tls),
            pst_smtp_tls_get_bits(connection->tls), why != NULL ? ": " : "",
            why != NULL ? why : "");
  return connection_hello(connection, helo_name);
}

/* The TLS level, once EHLO told whether STARTTLS is offered.  `may` goes
 * on in clear when TLS cannot be had; `encrypt` and `verify` refuse. */
static PstSmtpResponse *
connection_apply_tls(PstSmtpConnection *connection, const char *helo_name,
                     PstDeliveryTls tls, gboolean try_starttls,
                     const char *log_id, gboolean *handshake_failed_r) {
  gboolean offered =
      (connection->extensions.flags & PST_SMTP_EXT_STARTTLS) != 0;
  if (offered && try_starttls && pst_smtp_tls_available()) {
    PstSmtpResponse *reply = connection_starttls(connection, helo_name, tls,
                                                 log_id, handshake_failed_r);
    if (reply == NULL || connection->broken)
      return reply;
    if (tls == PST_DELIVERY_TLS_MAY) {
      pst_smtp_response_free(reply); /* STARTTLS refused: go on in clear */
      return NULL;
    }
    g_autofree char *text = pst_smtp_response_to_string(reply);
    g_autofree char *problem =
        g_strdup_printf("TLS is required, but STARTTLS was refused: %s", text);
    pst_smtp_response_free(reply);
    return failure(connection, 454, "4.7.4", problem);
  }
  if (tls == PST_DELIVERY_TLS_MAY)
    return NULL;
  if (!offered)
    return failure(connection, 454, "4.7.4",
                   "TLS is required, but was not offered by the host");
  return failure(connection, 454, "4.7.5",
                 "TLS is required, but no TLS provider plugin is loaded");
}

/* AUTH with `login` (user, password) when the server offers it; NULL on
 * success (or when there is nothing to do), else a temporary failure:
 * wrong credentials are our configuration's problem, never a bounce.  The
 * lines sent hold the password: they are never logged. */
static PstSmtpResponse *connection_authenticate(PstSmtpConnection *connection,
                                                const PstSmtpLogin *login,
                                                const char *log_id) {
  if (login == NULL)
    return NULL;
  if (!(connection->extensions.flags & PST_SMTP_EXT_AUTH)) {
    g_message("%s: %s does not offer AUTH; sending without logging in", log_id,
              connection->relay);
    return NULL;
  }
  g_autoptr(GError) error = NULL;
  g_autoptr(PstSmtpAuth) auth =
      pst_smtp_auth_new(connection->name, login->user, login->password,
                        connection->tls != NULL, &error);
  g_autofree char *line =
      auth != NULL
          ? pst_smtp_auth_start(auth, connection->extensions.auth, &error)
          : NULL;
  if (line == NULL) {
    g_autofree char *problem =
        g_strdup_printf("cannot log in as %s: %s", login->user, error->message);
    return failure(connection, 454, "4.7.0", problem);
  }
  PstSmtpResponse *reply = connection_command(connection, line);
  for (guint round = 0; round < 10 && !connection->broken && reply->code == 334;
       round++) {
    g_clear_pointer(&line, g_free);
    const char *challenge = reply->lines->len > 0 ? reply->lines->pdata[0] : "";
    line = pst_smtp_auth_step(auth, challenge, &error);
    pst_smtp_response_free(reply);
    reply = connection_command(connection, line != NULL ? line : "*");
  }
  if (connection->broken)
    return reply;
  if (reply->code == 235) {
    g_message("%s: authenticated to %s as %s (%s)", log_id, connection->relay,
              login->user, pst_smtp_auth_get_mechanism(auth));
    pst_smtp_response_free(reply);
    return NULL;
  }
  g_autofree char *said = pst_smtp_response_to_string(reply);
  pst_smtp_response_free(reply);
  g_autofree char *problem =
      g_strdup_printf("SASL login as %s failed: %s", login->user,
                      error != NULL ? error->message : said);
  return failure(connection, 454, "4.7.0", problem);
}

/* TRUE when the greeting names us: the MX (or relayhost) is this server,
 * and sending would only loop (RFC 5321 5.1: a host must not deliver to
 * itself through its MX records). */
static gboolean greeting_is_ours(const PstSmtpResponse *greeting,
                                 const char *helo_name) {
  const char *text = greeting->lines->len > 0 ? greeting->lines->pdata[0] : "";
  gsize length = strcspn(text, " ");
  return length == strlen(helo_name) &&
         g_ascii_strncasecmp(text, helo_name, length) == 0;
}

static PstSmtpConnection *
connection_open_once(const PstDeliveryConfig *delivery, const char *helo_name,
                     const PstRouteHost *host, PstDeliveryTls tls,
                     gboolean try_starttls, const PstSmtpLogin *login,
                     const char *log_id, gboolean *handshake_failed_r,
                     PstSmtpResponse **failure_r) {
  g_autoptr(PstSmtpConnection) connection = g_new0(PstSmtpConnection, 1);
  connection->input = g_byte_array_new();
  connection->relay = pst_route_host_describe(host);
  connection->name = g_strdup(host->name);
  connection->timeout_ms = delivery->smtp_timeout_ms;
  PstSmtpResponse *reply =
      connection_connect(connection, host, delivery->smtp_connect_timeout_ms);
  if (reply == NULL)
    reply = connection_read_reply(connection, connection->timeout_ms);
  if (!connection->broken && reply->code / 100 == 2 &&
      greeting_is_ours(reply, helo_name)) {
    pst_smtp_response_free(reply);
    reply = failure(connection, 554, "5.4.6",
                    "mail loops back to myself (the server greets with our "
                    "own name)");
  } else if (!connection->broken && reply->code / 100 == 2) {
    pst_smtp_response_free(reply);
    reply = connection_hello(connection, helo_name);
  } else if (!connection->broken) {
    connection->broken = TRUE; /* a greeting that refuses: close */
  }
  if (reply == NULL)
    reply = connection_apply_tls(connection, helo_name, tls, try_starttls,
                                 log_id, handshake_failed_r);
  if (reply == NULL)
    reply = connection_authenticate(connection, login, log_id);
  if (reply != NULL) {
    *failure_r = reply;
    return NULL;
  }
  return g_steal_pointer(&connection);
}

PstSmtpConnection *
pst_smtp_connection_open(const PstDeliveryConfig *delivery,
                         const char *helo_name, const PstRouteHost *host,
                         PstDeliveryTls tls, const PstSmtpLogin *login,
                         const char *log_id, PstSmtpResponse **failure_r) {
  gboolean handshake_failed = FALSE;
  PstSmtpConnection *connection =
      connection_open_once(delivery, helo_name, host, tls, TRUE, login, log_id,
                           &handshake_failed, failure_r);
  if (connection != NULL || !handshake_failed || tls != PST_DELIVERY_TLS_MAY)
    return connection;
  /* Opportunistic TLS that fails: log it, and deliver in clear (RFC 7435). */
  g_autofree char *text = pst_smtp_response_to_string(*failure_r);
  g_message("%s: %s; trying again without STARTTLS", log_id, text);
  g_clear_pointer(failure_r, pst_smtp_response_free);
  return connection_open_once(delivery, helo_name, host, tls, FALSE, login,
                              log_id, &handshake_failed, failure_r);
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
  return connection->tls != NULL ? pst_smtp_tls_get_version(connection->tls)
                                 : "none";
}

gboolean pst_smtp_connection_is_usable(PstSmtpConnection *connection) {
  return !connection->broken;
}

void pst_smtp_connection_run(PstSmtpConnection *connection,
                             PstSmtpTransaction *transaction, GBytes *content) {
  g_autoptr(GString) out = g_string_new(NULL);
  while (!pst_smtp_transaction_is_done(transaction)) {
    g_string_truncate(out, 0);
    PstSmtpSend send = pst_smtp_transaction_next(transaction, out);
    g_autoptr(PstSmtpResponse) failed = NULL;
    if (send == PST_SMTP_SEND_COMMANDS)
      failed = connection_write(connection, out->str, out->len);
    else if (send == PST_SMTP_SEND_CONTENT)
      failed = connection_write(connection, g_bytes_get_data(content, NULL),
                                g_bytes_get_size(content));
    else if (send == PST_SMTP_SEND_EMPTY)
      failed = connection_write(connection, ".\r\n", 3);
    if (failed == NULL)
      failed = connection_read_reply(connection, connection->timeout_ms);
    if (connection->broken) {
      pst_smtp_transaction_fail(transaction, failed);
      return;
    }
    pst_smtp_transaction_reply(transaction, failed);
  }
}

gboolean pst_smtp_connection_reset(PstSmtpConnection *connection) {
  if (connection->broken)
    return FALSE;
  g_autoptr(PstSmtpResponse) reply = connection_command(connection, "RSET");
  if (reply->code != 250)
    connection->broken = TRUE;
  return !connection->broken;
}

void pst_smtp_connection_close(PstSmtpConnection *connection) {
  if (connection == NULL)
    return;
  /* QUIT without waiting for the 221: closing never blocks (it also runs
   * on the main thread, for idle cached connections).  On a TLS
   * connection it goes inside TLS, and freeing the TLS state then sends
   * the close_notify alert. */
  if (connection->socket != NULL && !connection->broken)
    connection_transfer(connection, "QUIT\r\n", 6, TRUE, NULL);
  g_clear_pointer(&connection->tls, pst_smtp_tls_free);
  if (connection->socket != NULL)
    g_socket_close(connection->socket, NULL);
  g_clear_object(&connection->socket);
  g_byte_array_unref(connection->input);
  g_free(connection->relay);
  g_free(connection->name);
  g_free(connection);
}
