/* net.h - sockets and addresses, with no SMTP knowledge.
 *
 * Listening sockets are plain non-blocking file descriptors (the session
 * reads and writes them directly, without GSocket, to keep the per-message
 * cost low).  Addresses are rendered as text the way logs and plugins want
 * them: IPv4-mapped IPv6 clients appear as IPv4.
 */
#pragma once

#include <gio/gio.h>
#include <sys/socket.h>

G_BEGIN_DECLS

/* Creates, binds and listens on host:port (a literal address).  The fd is
 * non-blocking and close-on-exec; "::" listens on IPv6 only (bind 0.0.0.0
 * separately), so two listeners never conflict.  TCP_NODELAY is set on it,
 * and the connections it accepts inherit it.  Fails naming the address and
 * the system's reason. */
int pst_net_listen(const char *host, guint16 port, GError **error);

/* The local address of every connection a listening socket accepts, as
 * pst_net_sockaddr_to_string() renders it, when the socket is bound to one
 * address; FALSE when it is bound to a wildcard (0.0.0.0, ::: each
 * connection then has its own, ask getsockname()) or on failure. */
gboolean pst_net_listener_local_address(int fd, char **text_r, guint16 *port_r);

/* Renders a socket address as text and port.  IPv4-mapped IPv6 addresses
 * ("::ffff:192.0.2.1") become IPv4.  FALSE for other families. */
gboolean pst_net_sockaddr_to_string(const struct sockaddr *address,
                                    socklen_t length, char **text_r,
                                    guint16 *port_r);

/* Sets O_NONBLOCK and FD_CLOEXEC; FALSE with errno on failure. */
gboolean pst_net_set_nonblocking(int fd);

G_END_DECLS
