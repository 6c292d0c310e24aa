/* smtp-tls.h - the outbound SMTP client's TLS, from a delivery worker
 * thread, over the transport service (<postilion/transport.h>).
 *
 * The transport API is main-thread only, so every call into it runs on
 * the daemon's main context (main-call.h) while the worker
 * waits; the worker itself only polls the socket.  Reads and writes keep
 * the transport's non-blocking contract: G_IO_ERROR_WOULD_BLOCK means wait
 * for pst_smtp_tls_get_condition() on the socket (after checking
 * pst_smtp_tls_has_pending()).
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _PstSmtpTls PstSmtpTls;

/* Whether a TLS provider is loaded, as seen from the main thread at start
 * and on reload (pst_smtp_tls_update_available(), main thread). */
void pst_smtp_tls_update_available(void);
gboolean pst_smtp_tls_available(void);

/* Wraps the connected, non-blocking `fd` (still the caller's) as a TLS
 * client for `server_name` and runs the handshake (bounded by
 * `timeout_ms`); NULL with `error` when it fails.  `verify`: the chain and
 * the name must be valid.  Worker threads only. */
PstSmtpTls *pst_smtp_tls_start(int fd, const char *server_name, gboolean verify,
                               guint timeout_ms, GError **error);
gssize pst_smtp_tls_read(PstSmtpTls *tls, void *buffer, gsize size,
                         GError **error);
gssize pst_smtp_tls_write(PstSmtpTls *tls, const void *buffer, gsize size,
                          GError **error);
GIOCondition pst_smtp_tls_get_condition(PstSmtpTls *tls);
gboolean pst_smtp_tls_has_pending(PstSmtpTls *tls);
/* "TLSv1.3" (the RFC name, as Postfix logs it). */
const char *pst_smtp_tls_get_version(PstSmtpTls *tls);
const char *pst_smtp_tls_get_cipher(PstSmtpTls *tls);
guint pst_smtp_tls_get_bits(PstSmtpTls *tls);
gboolean pst_smtp_tls_get_verified(PstSmtpTls *tls);
/* Why the peer is not verified, or NULL. */
const char *pst_smtp_tls_get_verify_message(PstSmtpTls *tls);
/* close_notify when possible, then frees (the fd stays open). */
void pst_smtp_tls_free(PstSmtpTls *tls);

G_END_DECLS
