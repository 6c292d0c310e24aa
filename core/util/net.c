/* net.c - listening sockets and address formatting (see net.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "util/net.h"

gboolean pst_net_set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return FALSE;
  return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

/* Fills `storage` from a literal address; FALSE when it is not one. */
static gboolean net_parse_address(const char *host, guint16 port,
                                  struct sockaddr_storage *storage,
                                  socklen_t *length_r) {
  memset(storage, 0, sizeof *storage);
  struct sockaddr_in *sin = (struct sockaddr_in *)storage;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)storage;
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *length_r = sizeof *sin;
    return TRUE;
  }
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    *length_r = sizeof *sin6;
    return TRUE;
  }
  return FALSE;
}

int pst_net_listen(const char *host, guint16 port, GError **error) {
  struct sockaddr_storage storage;
  socklen_t length = 0;
  if (!net_parse_address(host, port, &storage, &length)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "%s is not a literal IPv4 or IPv6 address", host);
    return -1;
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot create a socket for %s: %s", host, g_strerror(saved));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (storage.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  /* Replies are small and each one is awaited: no Nagle delay.  Set here
   * once, accepted sockets inherit it (Linux copies the listener's TCP
   * options into each connection), which saves a system call per client. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&storage, length) < 0 ||
      listen(fd, SOMAXCONN) < 0) {
    int saved = errno;
    close(fd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot listen on %s%s%s:%u: %s",
                storage.ss_family == AF_INET6 ? "[" : "", host,
                storage.ss_family == AF_INET6 ? "]" : "", port,
                g_strerror(saved));
    return -1;
  }
  return fd;
}

gboolean pst_net_sockaddr_to_string(const struct sockaddr *address,
                                    socklen_t length, char **text_r,
                                    guint16 *port_r) {
  char buffer[INET6_ADDRSTRLEN];
  if (address->sa_family == AF_INET &&
      length >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)address;
    inet_ntop(AF_INET, &sin->sin_addr, buffer, sizeof buffer);
    *port_r = ntohs(sin->sin_port);
  } else if (address->sa_family == AF_INET6 &&
             length >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)address;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
      inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buffer, sizeof buffer);
    else
      inet_ntop(AF_INET6, &sin6->sin6_addr, buffer, sizeof buffer);
    *port_r = ntohs(sin6->sin6_port);
  } else {
    return FALSE;
  }
  *text_r = g_strdup(buffer);
  return TRUE;
}

gboolean pst_net_listener_local_address(int fd, char **text_r,
                                        guint16 *port_r) {
  struct sockaddr_storage storage;
  socklen_t length = sizeof storage;
  if (getsockname(fd, (struct sockaddr *)&storage, &length) < 0)
    return FALSE;
  if (storage.ss_family == AF_INET &&
      ((struct sockaddr_in *)&storage)->sin_addr.s_addr == htonl(INADDR_ANY))
    return FALSE;
  if (storage.ss_family == AF_INET6 &&
      IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&storage)->sin6_addr))
    return FALSE;
  return pst_net_sockaddr_to_string((struct sockaddr *)&storage, length, text_r,
                                    port_r);
}
