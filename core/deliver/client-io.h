/* client-io.h - the byte stream of one outbound connection (SMTP, LMTP)
 * on the main loop: non-blocking connect, write, read and STARTTLS over a
 * PstTransport (<postilion/transport.h>), each bounded by a deadline.
 *
 * One operation at a time.  Each takes a callback that runs exactly once,
 * with NULL or the GError that ended it (borrowed: valid during the call):
 * G_IO_ERROR_TIMED_OUT at the deadline, G_IO_ERROR_CONNECTION_CLOSED when
 * the peer closed the stream, or the socket's or the TLS provider's error.
 * A callback may run before the call returns (the socket was ready), and
 * may free the PstClientIo.  Received octets collect in the input buffer
 * (pst_client_io_get_input()): the protocol above parses and consumes
 * them.  Main thread only.
 */
#pragma once

#include <gio/gio.h>
#include <postilion/transport.h>

#include "transport/transport.h"

G_BEGIN_DECLS

/* The main-loop priority of outbound delivery work: the connections'
 * sources and the return of delivery jobs' disk steps.  Below the
 * default (accepting, DNS answers, commit completions, sessions between
 * commands), so a client waiting for its banner or a reply is served
 * first in an iteration where both are ready, and above sessions reading
 * bulk content (G_PRIORITY_LOW), which must not hold deliveries back. */
#define PST_DELIVERY_PRIORITY (G_PRIORITY_DEFAULT + 50)

typedef struct _PstClientIo PstClientIo;

typedef void (*PstClientIoFunc)(PstClientIo *io, const GError *error,
                                gpointer user_data);

/* Over a new TCP socket for `address`'s family (not connected yet);
 * NULL with `error` when no socket can be made. */
PstClientIo *pst_client_io_new(GSocketAddress *address, GError **error);
/* Over an already connected socket (a reference is kept). */
PstClientIo *pst_client_io_new_connected(GSocket *socket);
/* Connects to `address` within `timeout_ms`. */
void pst_client_io_connect(PstClientIo *io, GSocketAddress *address,
                           guint timeout_ms, PstClientIoFunc callback,
                           gpointer user_data);
/* Writes all of `data` (borrowed until the callback); `timeout_ms` bounds
 * each wait that makes no progress. */
void pst_client_io_write(PstClientIo *io, const void *data, gsize length,
                         guint timeout_ms, PstClientIoFunc callback,
                         gpointer user_data);
/* Appends what arrives next (at least one octet) to the input buffer;
 * fails at `deadline` (monotonic µs). */
void pst_client_io_read(PstClientIo *io, gint64 deadline,
                        PstClientIoFunc callback, gpointer user_data);
GByteArray *pst_client_io_get_input(PstClientIo *io);
/* TRUE when nothing is buffered, inside TLS or out, and the socket has
 * nothing to read and no hangup: the peer said nothing since the last
 * reply.  Between operations only. */
gboolean pst_client_io_is_quiet(PstClientIo *io);
/* Empties the input buffer and runs a TLS client handshake through `tls`
 * (the delivery's generation's provider) for `server_name` within
 * `timeout_ms`; afterwards every octet goes through TLS.  Fails with
 * G_IO_ERROR_NOT_SUPPORTED when `tls` is NULL. */
void pst_client_io_start_tls(PstClientIo *io, PstTransportService *tls,
                             const char *server_name, PstTlsVerify verify,
                             guint timeout_ms, PstClientIoFunc callback,
                             gpointer user_data);
/* The TLS transport after pst_client_io_start_tls(), else NULL. */
PstTransport *pst_client_io_get_tls(PstClientIo *io);
/* Sends what the socket takes at once, never waiting (QUIT at close). */
void pst_client_io_write_now(PstClientIo *io, const void *data, gsize length);
/* Sends close_notify under TLS and closes.  Not during an operation. */
void pst_client_io_free(PstClientIo *io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstClientIo, pst_client_io_free)

G_END_DECLS
