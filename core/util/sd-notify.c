/* sd-notify.c - the service manager's notification protocol.
 *
 * systemd runs a Type=notify service with $NOTIFY_SOCKET set to an
 * AF_UNIX datagram socket: a path ("/run/systemd/notify") or, starting
 * with '@', a name in the abstract namespace.  The service sends it
 * newline-separated "KEY=VALUE" assignments in one datagram: READY=1 once
 * it serves, RELOADING=1 and READY=1 around a reload, STOPPING=1 when it
 * stops, STATUS= for `systemctl status`.  That is the whole of sd_notify(3)
 * that postiliond needs, so it does not link libsystemd.
 *
 * The socket is writable by every user (systemd makes it so), so the
 * daemon can notify after dropping privileges.  No state: each call opens,
 * sends and closes one socket.  Any thread.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>

#include "util/sd-notify.h"

/* Fills `address` from $NOTIFY_SOCKET; its length, or 0 when the value
 * is not a socket name. */
static socklen_t notify_address(const char *name, struct sockaddr_un *address) {
  gsize length = strlen(name);
  memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if ((name[0] != '/' && name[0] != '@') || length < 2 ||
      length >= sizeof address->sun_path)
    return 0;
  memcpy(address->sun_path, name, length);
  /* "@name": the abstract namespace, a leading NUL and no terminator. */
  if (name[0] == '@') {
    address->sun_path[0] = '\0';
    return offsetof(struct sockaddr_un, sun_path) + length;
  }
  return offsetof(struct sockaddr_un, sun_path) + length + 1;
}

gboolean pst_sd_notify(const char *state, GError **error) {
  g_return_val_if_fail(state != NULL, FALSE);
  const char *name = g_getenv("NOTIFY_SOCKET");
  if (name == NULL || name[0] == '\0')
    return TRUE;
  struct sockaddr_un address;
  socklen_t length = notify_address(name, &address);
  if (length == 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "NOTIFY_SOCKET=%s is not a socket path or @name", name);
    return FALSE;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                       (const struct sockaddr *)&address, length) < 0) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot notify the service manager at %s: %s", name,
                g_strerror(saved));
    return FALSE;
  }
  close(fd);
  return TRUE;
}
