/* sendmail-stdio.c - `sendmail -bs`: SMTP on standard input and output.
 *
 * PHP's Symfony Mailer and Laravel (path "/usr/sbin/sendmail -bs -i")
 * and other programs start sendmail with -bs and speak SMTP to it over
 * the pipe, as to Postfix's stand-alone smtpd.  We pass the octets both
 * ways between the pipe and the daemon's listener (the one `sendmail`
 * submits to, pst_tool_smtp_connect()), so the daemon itself answers,
 * with every check and limit it applies to any client on that listener:
 * nothing is parsed here.
 *
 * The relay ends when the daemon closes the connection (after QUIT, or
 * its timeouts); the end of standard input is passed on as a half-close,
 * and what the daemon still says is written out before we exit.  A
 * program that stops reading does not stop us: a failed write to standard
 * output ends the relay.  Exit status 0, or 69 when the daemon cannot be
 * reached.  Called by sendmail.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tools/postilion-tool.h"

#define RELAY_BUFFER 16384

/* Writes all of `data` to `fd` (blocking or not); FALSE when it fails. */
static gboolean write_all(int fd, const char *data, gsize length) {
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd out = {.fd = fd, .events = POLLOUT};
      if (poll(&out, 1, -1) < 0 && errno != EINTR)
        return FALSE;
      continue;
    }
    if (n <= 0)
      return FALSE;
    data += n;
    length -= (gsize)n;
  }
  return TRUE;
}

/* Moves what `from` has to `to`; FALSE at its end or on an error. */
static gboolean relay_once(int from, int to) {
  char buffer[RELAY_BUFFER];
  ssize_t n;
  do
    n = read(from, buffer, sizeof buffer);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return TRUE;
  return n > 0 && write_all(to, buffer, (gsize)n);
}

int pst_tool_sendmail_stdio(const PstConfig *config) {
  g_autoptr(GSocketConnection) connection = pst_tool_smtp_connect(config);
  if (connection == NULL)
    return PST_EXIT_UNAVAILABLE;
  int server = g_socket_get_fd(g_socket_connection_get_socket(connection));
  signal(SIGPIPE, SIG_IGN); /* a write to a closed pipe fails instead */
  struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = server, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents != 0 && !relay_once(server, STDOUT_FILENO))
      break; /* the daemon closed, or standard output is gone */
    if (fds[0].revents != 0 && !relay_once(STDIN_FILENO, server)) {
      shutdown(server, SHUT_WR);
      fds[0].fd = -1; /* poll() skips it from now on */
    }
  }
  return PST_EXIT_OK;
}
