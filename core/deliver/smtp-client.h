/* smtp-client.h - one outbound SMTP connection, a non-blocking state
 * machine on the main loop (every wait bounded by a timeout).
 *
 * pst_smtp_connection_open() connects, reads the greeting, says EHLO (HELO
 * when EHLO is refused) and applies the TLS level: STARTTLS when offered
 * (the only place where TLS plugs in), refusing to go on in clear for
 * `encrypt` and `verify`, then AUTH when a login is given (the SASL
 * client service; never in clear).  pst_smtp_connection_run() runs one
 * PstSmtpTransaction over it (smtp-protocol.h).  A connection can be kept
 * for the next message to the same host: pst_smtp_connection_reset() says
 * RSET and tells whether it is still usable; pst_smtp_connection_reuse()
 * spares the RSET when the connection is fresh and quiet (RFC 5321
 * 4.1.1.4: the end of data already reset the server's state; RSET is only
 * a probe).  Each operation ends with its
 * callback, called exactly once, possibly before the call returns.
 *
 * Failures are replies, as if the server had sent them, so the caller
 * treats every outcome alike: "451 4.4.1 connect to ...: Connection
 * refused", "451 4.4.2 ...: timeout", "451 4.5.0 ...: a reply without a
 * valid code", "454 4.7.4 TLS is required, but was not offered", or the
 * server's own greeting/EHLO refusal.
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "generation/generation.h"
#include "deliver/route.h"
#include "deliver/smtp-protocol.h"

G_BEGIN_DECLS

typedef struct _PstSmtpConnection PstSmtpConnection;

/* A SASL login for AUTH ([delivery] relayhost_credentials). */
typedef struct {
  const char *user;
  const char *password;
} PstSmtpLogin;

/* Fails, naming the keys, when `delivery` requires what `generation`'s
 * plugins do not provide: TLS ([delivery] tls = encrypt or verify) or the
 * SASL client (relayhost_credentials). */
gboolean pst_smtp_client_check_config(const PstDeliveryConfig *delivery,
                                      PstGeneration *generation,
                                      GError **error);

/* The end of pst_smtp_connection_open(): a usable connection (owned by
 * the callee), or NULL and the failure (a reply, owned by the callee). */
typedef void (*PstSmtpOpenFunc)(PstSmtpConnection *connection,
                                PstSmtpResponse *failure, gpointer user_data);

/* Opens a session to `host`, with the TLS and SASL providers of
 * `generation` (borrowed until the callback).  With tls `may`, a failed TLS
 * handshake is logged and the host tried again in clear (RFC 7435).  With
 * `login` (nullable, borrowed until the callback), AUTH after STARTTLS when the
 * server offers it.  `log_id` (the queue id) starts the log lines about
 * TLS and AUTH.  `delivery` and the strings are borrowed until the
 * callback. */
void pst_smtp_connection_open(PstGeneration *generation,
                              const PstDeliveryConfig *delivery,
                              const char *helo_name, const PstRouteHost *host,
                              PstDeliveryTls tls, const PstSmtpLogin *login,
                              const char *log_id, PstSmtpOpenFunc callback,
                              gpointer user_data);
/* The server's EHLO keywords. */
const PstSmtpExtensions *
pst_smtp_connection_get_extensions(PstSmtpConnection *connection);
/* "mx.example.net[192.0.2.1]:25". */
const char *pst_smtp_connection_get_relay(PstSmtpConnection *connection);
/* "none", or the TLS version once STARTTLS succeeded. */
const char *pst_smtp_connection_get_tls(PstSmtpConnection *connection);
typedef void (*PstSmtpConnectionFunc)(PstSmtpConnection *connection,
                                      gpointer user_data);
/* The encoded DATA, a piece at a time (a PstDataStream): TRUE with the
 * next piece in `*data_r`/`*length_r` (valid until the next call), the
 * final dot in the one that sets `*last_r`; FALSE with `error` when the
 * content cannot be sent whole (then the final dot never goes). */
typedef gboolean (*PstSmtpContentFunc)(gpointer source, const guint8 **data_r,
                                       gsize *length_r, gboolean *last_r,
                                       GError **error);
/* Runs `transaction` to its end; its content comes from `content`, each
 * piece written once the socket took the one before.  A `content` that
 * fails with G_IO_ERROR_WOULD_BLOCK (reading the disk on a thread) is
 * asked again after pst_smtp_connection_content_ready().  Both are borrowed
 * until the callback.  A failure of the connection ends the transaction
 * with pst_smtp_transaction_fail(); a failure of `content` too (451
 * 4.3.0), and the connection is closed without the final dot, so the
 * server drops what it got.  Afterwards the connection is no longer
 * usable (pst_smtp_connection_is_usable()). */
void pst_smtp_connection_run(PstSmtpConnection *connection,
                             PstSmtpTransaction *transaction,
                             PstSmtpContentFunc content, gpointer source,
                             PstSmtpConnectionFunc callback,
                             gpointer user_data);
/* The content source of a running transaction can give its next piece
 * (it failed with G_IO_ERROR_WOULD_BLOCK); nothing otherwise. */
void pst_smtp_connection_content_ready(PstSmtpConnection *connection);
gboolean pst_smtp_connection_is_usable(PstSmtpConnection *connection);
/* RSET; afterwards unusable when the server did not answer 250. */
void pst_smtp_connection_reset(PstSmtpConnection *connection,
                               PstSmtpConnectionFunc callback,
                               gpointer user_data);
/* A connection taken from the cache, idle for `idle_us`: when it is
 * younger than PST_SMTP_REUSE_FRESH_US and the server has sent nothing
 * since (no hangup, no 421), it is used as it is, else it is probed with
 * pst_smtp_connection_reset().  The callback may run before the call
 * returns. */
#define PST_SMTP_REUSE_FRESH_US (2 * G_USEC_PER_SEC)
void pst_smtp_connection_reuse(PstSmtpConnection *connection, gint64 idle_us,
                               PstSmtpConnectionFunc callback,
                               gpointer user_data);
/* TRUE when the connection broke after pst_smtp_connection_reuse() spared
 * the probe and before any reply came: the server had closed it before
 * our commands arrived, nothing was accepted, and a new connection may
 * carry the same transaction at once. */
gboolean pst_smtp_connection_lost_unprobed(PstSmtpConnection *connection);
/* QUIT (when usable, without waiting for the reply) and close; never
 * blocks.  Not while an operation runs. */
void pst_smtp_connection_close(PstSmtpConnection *connection);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSmtpConnection, pst_smtp_connection_close)

G_END_DECLS
