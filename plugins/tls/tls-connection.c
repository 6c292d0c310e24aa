/* tls-connection.c - one GnuTLS session on a non-blocking socket: the
 * PstTransportProvider functions the core calls (<postilion/transport.h>).
 *
 * GnuTLS reads and writes the socket itself (gnutls_transport_set_int);
 * the core's handshake driver calls handshake() again when the socket is
 * ready for condition() and enforces the deadline with its own timer.
 *
 * Server: the context's default certificate is set first; the post
 * client hello callback then swaps in the certificate whose name the
 * client sent as SNI (exact, then "*.parent").  Session tickets use the
 * plugin's current (rotating) key.
 *
 * Client: SNI is the server name unless that is an IP literal.  VERIFY_PEER
 * makes GnuTLS verify chain and name during the handshake; VERIFY_NONE
 * verifies after it and only records the verdict.
 *
 * Writes: after GNUTLS_E_AGAIN GnuTLS holds the record it was sending;
 * the next write flushes it with (NULL, 0), which returns the length of
 * the earlier attempt (the caller retries with the same leading octets).
 *
 * Renegotiation (TLS 1.2; 1.3 has none) is refused on both sides with a
 * no_renegotiation warning alert (RFC 5246 7.2.2): a ClientHello (or a
 * HelloRequest) in the middle of a session makes gnutls_record_recv()
 * return GNUTLS_E_REHANDSHAKE, and a peer that is never answered waits
 * forever.  The alert goes out before any later write; a peer that asks
 * more than MAX_RENEGOTIATIONS times is dropped.  GnuTLS keeps the refused
 * hello for a gnutls_handshake() we never call, and the next read drops it
 * with GNUTLS_E_UNEXPECTED_PACKET: that one is expected, not an error.
 */
#include <string.h>

#include <gio/gio.h>
#include <gnutls/x509.h>

#include "tls.h"

typedef struct {
  TlsPlugin *plugin;        /* not owned: the plugin outlives connections */
  TlsContext *context;      /* owned reference */
  gnutls_session_t session; /* owned */
  gboolean server;
  char *server_name; /* owned, nullable: SNI received or sent */
  gboolean verified;
  char *verify_message;   /* owned, nullable */
  gboolean write_blocked; /* a record waits to be flushed */
  gboolean alert_pending; /* no_renegotiation not sent (or not flushed) */
  guint renegotiations;   /* refused so far */
  gboolean hello_kept;    /* GnuTLS still holds the refused hello */
  gboolean shut;
} TlsConnection;

#define MAX_RENEGOTIATIONS 3

static void connection_free(gpointer data) {
  TlsConnection *connection = data;
  gnutls_deinit(connection->session);
  tls_context_unref(connection->context);
  g_free(connection->server_name);
  g_free(connection->verify_message);
  g_free(connection);
}

static void set_gnutls_error(GError **error, const char *what, int ret) {
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", what,
              gnutls_strerror(ret));
}

/* --- Server ------------------------------------------------------------ */

/* Picks the certificate by SNI. */
static int server_client_hello(gnutls_session_t session) {
  TlsConnection *connection = gnutls_session_get_ptr(session);
  char name[256];
  size_t length = sizeof name - 1;
  unsigned int type = 0;
  if (gnutls_server_name_get(session, name, &length, &type, 0) < 0 ||
      type != GNUTLS_NAME_DNS)
    return 0;
  name[MIN(length, sizeof name - 1)] = '\0';
  g_free(connection->server_name);
  connection->server_name = g_ascii_strdown(name, -1);
  gsize end = strlen(connection->server_name);
  if (end > 0 && connection->server_name[end - 1] == '.')
    connection->server_name[end - 1] = '\0';
  TlsCertificate *certificate =
      tls_context_find(connection->context, connection->server_name);
  if (certificate != NULL)
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
                           certificate->credentials);
  return 0;
}

static TlsConnection *connection_new(TlsPlugin *plugin, unsigned int flags,
                                     GError **error) {
  gnutls_session_t session = NULL;
  int ret = gnutls_init(&session, flags | GNUTLS_NONBLOCK);
  if (ret < 0) {
    set_gnutls_error(error, "gnutls_init", ret);
    return NULL;
  }
  TlsConnection *connection = g_new0(TlsConnection, 1);
  connection->plugin = plugin;
  connection->context = tls_context_ref(plugin->context);
  connection->session = session;
  gnutls_session_set_ptr(session, connection);
  /* The core's timer bounds the handshake. */
  gnutls_handshake_set_timeout(session, GNUTLS_INDEFINITE_TIMEOUT);
  return connection;
}

static gpointer tls_server_new(gpointer data, int fd, const char *listener,
                               GError **error) {
  TlsPlugin *plugin = data;
  TlsConnection *connection = connection_new(plugin, GNUTLS_SERVER, error);
  if (connection == NULL)
    return NULL;
  TlsContext *context = connection->context;
  gnutls_session_t session = connection->session;
  connection->server = TRUE;
  TlsCertificate *fallback = context->certificates->pdata[0];
  gnutls_priority_set(session, context->server_priority);
  gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
                         fallback->credentials);
  gnutls_certificate_server_set_request(
      session, context->request_client_certificate ? GNUTLS_CERT_REQUEST
                                                   : GNUTLS_CERT_IGNORE);
  gnutls_handshake_set_post_client_hello_function(session, server_client_hello);
  if (context->session_tickets && plugin->ticket_key.data != NULL)
    gnutls_session_ticket_enable_server(session, &plugin->ticket_key);
  gnutls_transport_set_int(session, fd);
  return connection;
}

/* --- Client ------------------------------------------------------------ */

static gpointer tls_client_new(gpointer data, int fd, const char *server_name,
                               PstTlsVerify verify, GError **error) {
  TlsPlugin *plugin = data;
  if (verify == PST_TLS_VERIFY_PEER && (server_name == NULL || !*server_name)) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "TLS verification needs a server name");
    return NULL;
  }
  TlsConnection *connection = connection_new(plugin, GNUTLS_CLIENT, error);
  if (connection == NULL)
    return NULL;
  gnutls_session_t session = connection->session;
  gnutls_priority_set(session, connection->context->client_priority);
  gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
                         connection->context->client_credentials);
  if (server_name != NULL && *server_name != '\0') {
    connection->server_name = g_strdup(server_name);
    if (!g_hostname_is_ip_address(server_name))
      gnutls_server_name_set(session, GNUTLS_NAME_DNS, server_name,
                             strlen(server_name));
    if (verify == PST_TLS_VERIFY_PEER)
      gnutls_session_set_verify_cert(session, server_name, 0);
  }
  gnutls_transport_set_int(session, fd);
  return connection;
}

/* The verdict on the server's certificate, for the logs. */
static void client_record_verification(TlsConnection *connection) {
  unsigned int status = 0;
  int ret = gnutls_certificate_verify_peers3(connection->session,
                                             connection->server_name, &status);
  if (ret < 0) {
    connection->verify_message =
        g_strdup_printf("not verified: %s", gnutls_strerror(ret));
    return;
  }
  connection->verified = status == 0;
  gnutls_datum_t text = {0};
  if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                   &text, 0) >= 0) {
    connection->verify_message = g_strndup((char *)text.data, text.size);
    gnutls_free(text.data);
  }
}

/* --- The provider ------------------------------------------------------ */

static guint tls_handshake_timeout_ms(gpointer data) {
  TlsPlugin *plugin = data;
  return plugin->context->handshake_timeout_ms;
}

/* Why a handshake failed, as precisely as GnuTLS says: the cause only;
 * the caller (session-tls.c, the outbound client) says that it was the
 * handshake, with whom. */
static void handshake_error(TlsConnection *connection, int ret,
                            GError **error) {
  if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the peer sent the alert \"%s\"",
                gnutls_alert_get_name(gnutls_alert_get(connection->session)));
    return;
  }
  if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    unsigned int status =
        gnutls_session_get_verify_cert_status(connection->session);
    gnutls_datum_t text = {0};
    gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text,
                                                 0);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the certificate of %s is not "
                "trusted: %.*s",
                connection->server_name, (int)text.size,
                text.data != NULL ? (char *)text.data : "");
    gnutls_free(text.data);
    return;
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
              gnutls_strerror(ret));
}

static PstTransportStep tls_handshake(gpointer data, GError **error) {
  TlsConnection *connection = data;
  for (int attempt = 0; attempt < 16; attempt++) {
    int ret = gnutls_handshake(connection->session);
    if (ret == GNUTLS_E_SUCCESS) {
      if (!connection->server)
        client_record_verification(connection);
      return PST_TRANSPORT_STEP_DONE;
    }
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
      return PST_TRANSPORT_STEP_AGAIN;
    if (gnutls_error_is_fatal(ret)) {
      handshake_error(connection, ret, error);
      return PST_TRANSPORT_STEP_FAILED;
    }
    /* A warning alert: go on. */
  }
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                      "too many warning alerts");
  return PST_TRANSPORT_STEP_FAILED;
}

static gssize would_block(GError **error) {
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "would block");
  return -1;
}

/* Sends (or flushes) the no_renegotiation alert: 1 sent or nothing to
 * send, 0 blocked (GnuTLS holds the alert: call again), -1 failed. */
static int alert_flush(TlsConnection *connection, GError **error) {
  if (!connection->alert_pending || connection->write_blocked)
    return 1;
  int ret = gnutls_alert_send(connection->session, GNUTLS_AL_WARNING,
                              GNUTLS_A_NO_RENEGOTIATION);
  if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
    return 0;
  connection->alert_pending = FALSE;
  if (ret >= 0)
    return 1;
  set_gnutls_error(error, "TLS alert", ret);
  return -1;
}

/* A renegotiation request arrived: refuse it (after a write in progress). */
static gboolean refuse_renegotiation(TlsConnection *connection,
                                     GError **error) {
  if (++connection->renegotiations > MAX_RENEGOTIATIONS) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "TLS read: the peer asked %u times for a renegotiation, "
                "which is refused",
                connection->renegotiations);
    return FALSE;
  }
  connection->alert_pending = TRUE;
  connection->hello_kept = TRUE;
  return TRUE;
}

static gssize tls_read(gpointer data, void *buffer, gsize size,
                       GError **error) {
  TlsConnection *connection = data;
  for (;;) {
    int flushed = alert_flush(connection, error);
    if (flushed < 0)
      return -1;
    if (flushed == 0)
      return would_block(error);
    ssize_t ret = gnutls_record_recv(connection->session, buffer, size);
    if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED &&
        ret != GNUTLS_E_REHANDSHAKE && ret != GNUTLS_E_UNEXPECTED_PACKET)
      connection->hello_kept = FALSE;
    if (ret >= 0)
      return ret;
    if (ret == GNUTLS_E_REHANDSHAKE) {
      if (!refuse_renegotiation(connection, error))
        return -1;
      continue; /* the alert, then whatever else the peer sent */
    }
    if (ret == GNUTLS_E_UNEXPECTED_PACKET && connection->hello_kept) {
      connection->hello_kept = FALSE; /* the refused hello, dropped */
      continue;
    }
    /* Most SMTP peers close after QUIT without close_notify: that is the
     * end of the stream, not an error (the SMTP dialogue says whether the
     * peer left early). */
    if (ret == GNUTLS_E_PREMATURE_TERMINATION)
      return 0;
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED ||
        !gnutls_error_is_fatal(ret))
      return would_block(error);
    set_gnutls_error(error, "TLS read", (int)ret);
    return -1;
  }
}

static gssize tls_write(gpointer data, const void *buffer, gsize size,
                        GError **error) {
  TlsConnection *connection = data;
  int flushed = alert_flush(connection, error);
  if (flushed < 0)
    return -1;
  if (flushed == 0)
    return would_block(error);
  ssize_t ret = connection->write_blocked
                    ? gnutls_record_send(connection->session, NULL, 0)
                    : gnutls_record_send(connection->session, buffer, size);
  if (ret >= 0) {
    connection->write_blocked = FALSE;
    return ret;
  }
  if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
    connection->write_blocked = TRUE;
    return would_block(error);
  }
  set_gnutls_error(error, "TLS write", (int)ret);
  return -1;
}

static GIOCondition tls_condition(gpointer data) {
  TlsConnection *connection = data;
  return gnutls_record_get_direction(connection->session) ? G_IO_OUT : G_IO_IN;
}

static gboolean tls_pending(gpointer data) {
  TlsConnection *connection = data;
  return gnutls_record_check_pending(connection->session) > 0;
}

static void tls_shutdown(gpointer data) {
  TlsConnection *connection = data;
  if (connection->shut)
    return;
  connection->shut = TRUE;
  gnutls_bye(connection->session, GNUTLS_SHUT_WR); /* best effort */
}

static const char *tls_version(gpointer data) {
  TlsConnection *connection = data;
  return gnutls_protocol_get_name(
      gnutls_protocol_get_version(connection->session));
}

static const char *tls_cipher(gpointer data) {
  TlsConnection *connection = data;
  return gnutls_ciphersuite_get(connection->session);
}

static guint tls_cipher_bits(gpointer data) {
  TlsConnection *connection = data;
  return (guint)gnutls_cipher_get_key_size(
             gnutls_cipher_get(connection->session)) *
         8;
}

static const char *tls_server_name(gpointer data) {
  TlsConnection *connection = data;
  return connection->server_name;
}

static GBytes *tls_peer_certificate(gpointer data) {
  TlsConnection *connection = data;
  unsigned int count = 0;
  const gnutls_datum_t *chain =
      gnutls_certificate_get_peers(connection->session, &count);
  if (chain == NULL || count == 0)
    return NULL;
  return g_bytes_new(chain[0].data, chain[0].size);
}

static gboolean tls_verified(gpointer data) {
  TlsConnection *connection = data;
  return connection->verified;
}

static const char *tls_verify_message(gpointer data) {
  TlsConnection *connection = data;
  return connection->verify_message;
}

const PstTransportProvider tls_provider = {
    .struct_size = sizeof(PstTransportProvider),
    .server_new = tls_server_new,
    .client_new = tls_client_new,
    .handshake_timeout_ms = tls_handshake_timeout_ms,
    .handshake = tls_handshake,
    .read = tls_read,
    .write = tls_write,
    .condition = tls_condition,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .free = connection_free,
    .version = tls_version,
    .cipher = tls_cipher,
    .cipher_bits = tls_cipher_bits,
    .server_name = tls_server_name,
    .peer_certificate = tls_peer_certificate,
    .verified = tls_verified,
    .verify_message = tls_verify_message,
};
