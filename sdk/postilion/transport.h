/* postilion/transport.h - the transport service: a connection's byte
 * stream, plain or TLS.
 *
 * The core moves every SMTP byte through a PstTransport: plain (recv/send
 * on the socket) by default, TLS once a transport provider wrapped the
 * socket.  One plugin (the first-party `tls`, GnuTLS) provides TLS by
 * registering a PstTransportProvider from its init(); the core owns the
 * SMTP side of STARTTLS (the 220 reply, dropping plaintext pipelined after
 * it, resetting the session) and the plugin owns the crypto.
 *
 * Three audiences:
 *
 *  1. Core code and plugins that open connections (the outbound SMTP
 *     client) wrap an already-connected, non-blocking socket as a TLS
 *     client:
 *
 *       PstTransport *t = pst_transport_new_tls_client(fd, "mx.example.net",
 *                                                      PST_TLS_VERIFY_NONE,
 *                                                      &error);
 *       pst_transport_handshake_async(t, 30000, cancellable, done, data);
 *       ... in done(): pst_transport_handshake_finish(t, result, &error)
 *       then pst_transport_read()/pst_transport_write() when the socket
 *       is ready for pst_transport_get_condition(t), and before going
 *       back to poll, pst_transport_has_pending(t);
 *       pst_transport_get_tls_version/_cipher/_verified for the logs;
 *       pst_transport_shutdown(t); pst_transport_unref(t); close(fd).
 *
 *     The transport never closes the socket: the caller owns `fd` and
 *     closes it after the last unref.  Everything runs on the thread whose
 *     thread-default main context was current at
 *     pst_transport_handshake_async() (the daemon's main thread): a
 *     transport is not thread-safe.
 *
 *  2. Plugins that judge a session's TLS state read it through the
 *     pst_session_*tls* accessors below (a "deny unencrypted" rule is
 *     pst_session_is_tls() at MAIL).
 *
 *  3. The one plugin that provides TLS fills a PstTransportProvider and
 *     calls pst_plugin_provide_transport() from init().
 *
 * Errors are GErrors in the G_IO_ERROR domain: G_IO_ERROR_WOULD_BLOCK (try
 * again when the socket is ready for pst_transport_get_condition()),
 * G_IO_ERROR_TIMED_OUT (handshake deadline), G_IO_ERROR_CANCELLED,
 * G_IO_ERROR_NOT_SUPPORTED (no provider loaded), G_IO_ERROR_FAILED (TLS
 * or socket failure; the message says why).
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* ------------------------------------------------------------------ */
/* Connections (core code, and plugins that connect out)               */
/* ------------------------------------------------------------------ */

/* One connection's byte stream.  Reference counted; main thread. */
typedef struct _PstTransport PstTransport;

/* How a TLS client judges the server's certificate. */
typedef enum {
  /* Opportunistic (RFC 7435): any certificate is accepted; whether it
   * chains to a trusted CA and matches the name is only recorded
   * (pst_transport_get_tls_verified() and _verify_message()). */
  PST_TLS_VERIFY_NONE = 0,
  /* The certificate must chain to the trust store (the system CAs, or
   * `[plugin:tls] ca_file`) and name the server name: otherwise the
   * handshake fails, with the reason in the error message. */
  PST_TLS_VERIFY_PEER,
} PstTlsVerify;

/* TRUE when a transport provider (the tls plugin) is loaded. */
PST_API gboolean pst_transport_tls_available(void);

/* A plain transport over `fd` (recv/send).  Never fails. */
PST_API PstTransport *pst_transport_new_plain(int fd);

/* Wraps `fd` (connected, non-blocking; still owned by the caller) as a TLS
 * client for `server_name` (sent as SNI and used for verification; NULL or
 * an IP literal sends no SNI).  Nothing is sent until the handshake.
 * NULL with G_IO_ERROR_NOT_SUPPORTED when no provider is loaded. */
PST_API PstTransport *pst_transport_new_tls_client(int fd,
                                                   const char *server_name,
                                                   PstTlsVerify verify,
                                                   GError **error);

/* Runs the TLS handshake from the thread-default main context: calls
 * `callback` exactly once, later, never from inside this function, with
 * the result for pst_transport_handshake_finish().  `timeout_ms` bounds
 * the whole handshake with a timer (a silent peer is caught too); 0 uses
 * the provider's `handshake_timeout`.  A plain transport completes at
 * once (successfully).  The transport holds its own reference until the
 * callback ran, so unreffing it meanwhile is safe; cancelling
 * `cancellable` completes with G_IO_ERROR_CANCELLED. */
PST_API void pst_transport_handshake_async(PstTransport *transport,
                                           guint timeout_ms,
                                           GCancellable *cancellable,
                                           GAsyncReadyCallback callback,
                                           gpointer user_data);
PST_API gboolean pst_transport_handshake_finish(PstTransport *transport,
                                                GAsyncResult *result,
                                                GError **error);

/* Reads up to `size` octets: returns how many (> 0), 0 at the end of the
 * stream (the peer closed, or sent close_notify), or -1 with `error`
 * (G_IO_ERROR_WOULD_BLOCK: wait for pst_transport_get_condition()). */
PST_API gssize pst_transport_read(PstTransport *transport, void *buffer,
                                  gsize size, GError **error);
/* Writes up to `size` octets: returns how many were taken (> 0) or -1 with
 * `error`.  After G_IO_ERROR_WOULD_BLOCK the next write must start with
 * the same octets (a TLS record may already be half sent); it may be
 * longer.  SIGPIPE is never raised. */
PST_API gssize pst_transport_write(PstTransport *transport, const void *buffer,
                                   gsize size, GError **error);
/* What the socket must become ready for before the operation that would
 * block can progress: G_IO_IN or G_IO_OUT. */
PST_API GIOCondition pst_transport_get_condition(PstTransport *transport);
/* TRUE when decrypted octets wait inside the transport: they do not make
 * the socket readable, so read them before going back to poll. */
PST_API gboolean pst_transport_has_pending(PstTransport *transport);
/* Sends a TLS close_notify if it can without blocking.  No-op for plain. */
PST_API void pst_transport_shutdown(PstTransport *transport);

PST_API PstTransport *pst_transport_ref(PstTransport *transport);
PST_API void pst_transport_unref(PstTransport *transport);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstTransport, pst_transport_unref)

/* TLS state after a successful handshake; NULL / 0 / FALSE for plain or
 * before it.  Strings stay valid until the last unref. */
PST_API gboolean pst_transport_is_tls(PstTransport *transport);
/* "TLS1.3", "TLS1.2". */
PST_API const char *pst_transport_get_tls_version(PstTransport *transport);
/* IANA name: "TLS_AES_256_GCM_SHA384". */
PST_API const char *pst_transport_get_tls_cipher(PstTransport *transport);
/* Symmetric key size in bits (256); also the SASL external SSF. */
PST_API guint pst_transport_get_tls_cipher_bits(PstTransport *transport);
/* Server side: the SNI name the client sent (lower case), NULL without.
 * Client side: the server name given at creation. */
PST_API const char *pst_transport_get_tls_server_name(PstTransport *transport);
/* The peer's certificate (DER, new reference), NULL when none was sent
 * (a server asks clients only with request_client_certificate = true). */
PST_API GBytes *pst_transport_get_tls_peer_certificate(PstTransport *transport);
/* Client side: TRUE when the server's certificate chains to the trust
 * store and names the server; with a human-readable reason when not
 * ("The certificate is NOT trusted. The name in the certificate does not
 * match the expected."), for the delivery log. */
PST_API gboolean pst_transport_get_tls_verified(PstTransport *transport);
PST_API const char *
pst_transport_get_tls_verify_message(PstTransport *transport);

/* ------------------------------------------------------------------ */
/* A session's TLS state (every plugin)                                */
/* ------------------------------------------------------------------ */

/* The session's TLS state, as for the transport above: NULL/0 before
 * STARTTLS or on a plain connection.  (pst_session_is_tls() is in
 * plugin.h.)  Strings are valid for the session's life. */
PST_API const char *pst_session_get_tls_version(PstSession *session);
PST_API const char *pst_session_get_tls_cipher(PstSession *session);
PST_API guint pst_session_get_tls_cipher_bits(PstSession *session);
PST_API const char *pst_session_get_tls_server_name(PstSession *session);
PST_API GBytes *pst_session_get_tls_peer_certificate(PstSession *session);

/* ------------------------------------------------------------------ */
/* Providing TLS (the tls plugin)                                      */
/* ------------------------------------------------------------------ */

/* What a provider's connection reports from a step. */
typedef enum {
  PST_TRANSPORT_STEP_DONE = 0, /* the handshake is complete */
  PST_TRANSPORT_STEP_AGAIN,    /* wait for the socket (see condition()) */
  PST_TRANSPORT_STEP_FAILED,   /* fatal: `error` says why */
} PstTransportStep;

/* A provider's functions.  `connection` is the provider's own object made
 * by server_new()/client_new(); the core calls the others only with it,
 * on the main thread, and free() exactly once.  read()/write() follow
 * pst_transport_read()/_write() (G_IO_ERROR_WOULD_BLOCK included).  The
 * struct starts with its size and only grows at the end. */
typedef struct {
  guint32 struct_size; /* sizeof (PstTransportProvider) as compiled */
  /* A server-side TLS connection on `fd` accepted by `listener`. */
  gpointer (*server_new)(gpointer provider_data, int fd, const char *listener,
                         GError **error);
  /* A client-side TLS connection; see pst_transport_new_tls_client(). */
  gpointer (*client_new)(gpointer provider_data, int fd,
                         const char *server_name, PstTlsVerify verify,
                         GError **error);
  /* The provider's handshake_timeout, for a timeout_ms of 0. */
  guint (*handshake_timeout_ms)(gpointer provider_data);
  /* One non-blocking handshake step.  On PST_TRANSPORT_STEP_FAILED the
   * error says why ("the peer sent the alert ..."), not that it was a
   * handshake: the core's callers add that, with the peer. */
  PstTransportStep (*handshake)(gpointer connection, GError **error);
  gssize (*read)(gpointer connection, void *buffer, gsize size, GError **error);
  gssize (*write)(gpointer connection, const void *buffer, gsize size,
                  GError **error);
  GIOCondition (*condition)(gpointer connection);
  gboolean (*pending)(gpointer connection);
  void (*shutdown)(gpointer connection);
  void (*free)(gpointer connection);
  /* After the handshake; strings owned by the connection. */
  const char *(*version)(gpointer connection);
  const char *(*cipher)(gpointer connection);
  guint (*cipher_bits)(gpointer connection);
  const char *(*server_name)(gpointer connection);
  GBytes *(*peer_certificate)(gpointer connection); /* new reference */
  gboolean (*verified)(gpointer connection);
  const char *(*verify_message)(gpointer connection);
} PstTransportProvider;

/* Makes `plugin` the daemon's TLS provider; call from init().
 * `provider` must stay valid while the plugin is loaded (a static const);
 * `provider_data` is passed to server_new/client_new/handshake_timeout_ms
 * (keep it in pst_plugin_set_data()).  Fails when another plugin already
 * provides TLS, or when the struct is too small. */
PST_API gboolean pst_plugin_provide_transport(
    PstPlugin *plugin, const PstTransportProvider *provider,
    gpointer provider_data, GError **error);

G_END_DECLS
