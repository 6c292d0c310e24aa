/* local-helper.c - the privileged delivery helper (see local-helper.h).
 *
 * Entry points: pst_local_helper_start() (the daemon, as root, before any
 * thread), pst_local_helper_deliver() (delivery workers), _stop().
 *
 * Wire format on a SOCK_SEQPACKET socketpair (one request, one reply):
 *   request: u32 user length | u32 prelude length | user | prelude, with
 *            one end of a new stream socketpair attached (SCM_RIGHTS),
 *            on which the content follows in frames: u32 length (1 to
 *            PIECE_MAX) | octets, ended by a frame of length 0 that the
 *            daemon sends only once its reader found the content intact;
 *   reply:   i32 errno (0: delivered) | text (the path, or the error).
 * The child writes each frame into the Maildir's tmp/ as it arrives and
 * renames only after the end frame, so neither side holds the message
 * and a content found corrupt (or a daemon that stops) delivers nothing.
 * The helper trusts only what it checks: the user must exist and pass
 * pst_system_user_check() (uid 1000 or above, not nobody, a plain
 * absolute home); it writes nowhere but that user's ~/Maildir/, never
 * through a symbolic link, as that user, in a child process, so a mistake
 * cannot write as root.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver/local-helper.h"
#include "deliver/maildir.h"
#include "tables/system-user.h"

#define REQUEST_MAX (64 * 1024)
#define REPLY_MAX 4096
/* The largest content frame (a content reader's piece). */
#define PIECE_MAX (64 * 1024)

static int helper_fd = -1;
static GMutex helper_lock;

/* --- The helper process ------------------------------------------------- */

/* read(2) of exactly `length` octets; FALSE at EOF or on an error. */
static gboolean read_exactly(int fd, void *buffer, gsize length) {
  guint8 *out = buffer;
  while (length > 0) {
    ssize_t n = read(fd, out, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    out += n;
    length -= (gsize)n;
  }
  return TRUE;
}

/* The content frames on the stream from the daemon (a PstMaildirReadFunc). */
typedef struct {
  int fd;
  gboolean ended;
  guint8 buffer[PIECE_MAX];
} FrameSource;

static gboolean frame_read(gpointer data, const guint8 **data_r,
                           gsize *length_r, GError **error) {
  FrameSource *source = data;
  guint32 length = 0;
  *data_r = source->buffer;
  *length_r = 0;
  if (source->ended)
    return TRUE;
  if (!read_exactly(source->fd, &length, sizeof length) || length > PIECE_MAX ||
      (length > 0 && !read_exactly(source->fd, source->buffer, length))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
                "the message did not arrive whole from the daemon");
    return FALSE;
  }
  source->ended = length == 0;
  *length_r = length;
  return TRUE;
}

/* In a child: become the user and deliver; the result goes to `out`. */
static void helper_child(const struct passwd *entry, const char *prelude,
                         int content_fd, int out) {
  char reply[REPLY_MAX];
  gint32 code = 0;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  if (initgroups(entry->pw_name, entry->pw_gid) < 0 ||
      setgid(entry->pw_gid) < 0 || setuid(entry->pw_uid) < 0) {
    code = errno;
    g_snprintf(reply, sizeof reply, "cannot switch to user %s: %s",
               entry->pw_name, g_strerror(code));
  } else {
    g_autofree FrameSource *source = g_new0(FrameSource, 1);
    source->fd = content_fd;
    g_autofree char *maildir = g_build_filename(entry->pw_dir, "Maildir", NULL);
    if (pst_system_user_check_maildir(maildir, &error) &&
        pst_maildir_deliver(maildir, prelude, frame_read, source, &path,
                            &error)) {
      g_strlcpy(reply, path, sizeof reply);
    } else {
      code = error->code == G_IO_ERROR_NO_SPACE         ? ENOSPC
             : error->code == G_IO_ERROR_TOO_MANY_LINKS ? ELOOP
                                                        : EIO;
      g_strlcpy(reply, error->message, sizeof reply);
    }
  }
  ssize_t ignored = write(out, &code, sizeof code);
  ignored = write(out, reply, strlen(reply));
  (void)ignored;
  _exit(0);
}

/* Runs one request in a child; fills the reply. */
static gsize helper_run(const char *user, const char *prelude, int content_fd,
                        char *reply, gsize reply_size) {
  gint32 code = 0;
  struct passwd *entry = strchr(user, '/') == NULL ? getpwnam(user) : NULL;
  g_autoptr(GError) error = NULL;
  if (entry == NULL || !pst_system_user_check(entry, &error)) {
    code = entry == NULL ? ENOENT : EACCES;
    g_autofree char *text = error != NULL
                                ? g_strdup(error->message)
                                : g_strdup_printf("no such user %s", user);
    gsize n = (gsize)g_snprintf(reply + 4, reply_size - 4, "%s", text);
    memcpy(reply, &code, 4);
    return 4 + MIN(n, reply_size - 5);
  }
  int fds[2];
  if (pipe(fds) < 0)
    return 0;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    helper_child(entry, prelude, content_fd, fds[1]);
  }
  close(fds[1]);
  gsize got = 0;
  ssize_t n;
  while (pid > 0 && got < reply_size - 1 &&
         (n = read(fds[0], reply + got, reply_size - 1 - got)) > 0)
    got += (gsize)n;
  close(fds[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return got >= 4 ? got : 0;
}

static void helper_serve(int fd) {
  char request[REQUEST_MAX + 1];
  char reply[REPLY_MAX];
  for (;;) {
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {request, REQUEST_MAX};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control,
                         .msg_controllen = sizeof control};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0)
      _exit(0);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    int content_fd = -1;
    if (cmsg != NULL && cmsg->cmsg_type == SCM_RIGHTS)
      memcpy(&content_fd, CMSG_DATA(cmsg), sizeof content_fd);
    guint32 lengths[2];
    gsize got = 0;
    if (n >= 8 && content_fd >= 0) {
      memcpy(lengths, request, 8);
      if ((gsize)lengths[0] + lengths[1] + 8 == (gsize)n) {
        g_autofree char *user = g_strndup(request + 8, lengths[0]);
        g_autofree char *prelude =
            g_strndup(request + 8 + lengths[0], lengths[1]);
        got = helper_run(user, prelude, content_fd, reply, sizeof reply);
      }
    }
    if (content_fd >= 0)
      close(content_fd);
    if (got == 0) {
      gint32 code = EINVAL;
      memcpy(reply, &code, 4);
      got = 4 + (gsize)g_snprintf(reply + 4, sizeof reply - 4,
                                  "bad request to the delivery helper");
    }
    if (send(fd, reply, got, 0) < 0)
      _exit(1);
  }
}

gboolean pst_local_helper_start(GError **error) {
  int fds[2];
  if (geteuid() != 0)
    return TRUE;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot start the delivery helper: %s", g_strerror(errno));
    return FALSE;
  }
  pid_t pid = fork();
  if (pid < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot start the delivery helper: %s", g_strerror(errno));
    return FALSE;
  }
  if (pid == 0) {
    /* Keep nothing of the daemon's: its start-up pipe must see EOF. */
    int keep = fds[1];
    if (keep > 3)
      close_range(3, (unsigned)keep - 1, 0);
    close_range((unsigned)keep + 1, ~0U, 0);
    signal(SIGCHLD, SIG_DFL);
    helper_serve(keep);
  }
  close(fds[1]);
  helper_fd = fds[0];
  g_message("delivery helper for system users started (pid %d)", (int)pid);
  return TRUE;
}

/* --- The daemon's side -------------------------------------------------- */

gboolean pst_local_helper_available(void) {
  return helper_fd >= 0;
}

/* send(2) of all of `data`; FALSE when the helper's child went away. */
static gboolean send_all(int fd, const void *data, gsize length) {
  const guint8 *in = data;
  while (length > 0) {
    ssize_t n = send(fd, in, length, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return FALSE;
    in += n;
    length -= (gsize)n;
  }
  return TRUE;
}

/* Streams the content in frames, the end frame only when `read` found it
 * intact (else `read_error`).  A child that stopped reading (it failed
 * and replies why) ends the stream early: not an error here. */
static void content_stream(int fd, PstMaildirReadFunc read, gpointer source,
                           GError **read_error) {
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!read(source, &data, &length, read_error))
      return;
    guint32 frame = (guint32)length;
    if (!send_all(fd, &frame, sizeof frame) ||
        (length > 0 && !send_all(fd, data, length)) || length == 0)
      return;
  }
}

/* Sends one request, the content stream attached; the lock is held. */
static gboolean helper_request(const char *user, const char *prelude,
                               int content_fd) {
  guint32 lengths[2] = {(guint32)strlen(user), (guint32)strlen(prelude)};
  g_autoptr(GByteArray) request = g_byte_array_new();
  g_byte_array_append(request, (const guint8 *)lengths, 8);
  g_byte_array_append(request, (const guint8 *)user, lengths[0]);
  g_byte_array_append(request, (const guint8 *)prelude, lengths[1]);
  char control[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {request->data, request->len};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof control};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &content_fd, sizeof content_fd);
  return sendmsg(helper_fd, &msg, MSG_NOSIGNAL) >= 0;
}

gboolean pst_local_helper_deliver(const char *user, const char *prelude,
                                  PstMaildirReadFunc read, gpointer source,
                                  char **path_r, GError **error) {
  if (strlen(user) + strlen(prelude) + 8 > REQUEST_MAX) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "delivery request too large");
    return FALSE;
  }
  int stream[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream) < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot pass the message to the delivery helper: %s",
                g_strerror(saved));
    return FALSE;
  }
  char reply[REPLY_MAX];
  gssize got = 0;
  GError *read_error = NULL;
  g_mutex_lock(&helper_lock);
  gboolean ok = helper_fd >= 0 && helper_request(user, prelude, stream[1]);
  close(stream[1]);
  if (ok)
    content_stream(stream[0], read, source, &read_error);
  close(stream[0]);
  if (ok) {
    got = recv(helper_fd, reply, REPLY_MAX - 1, 0);
    ok = got >= 4;
  }
  g_mutex_unlock(&helper_lock);
  if (read_error != NULL) {
    g_propagate_error(error, read_error);
    return FALSE;
  }
  if (!ok) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE,
                "the delivery helper for system users is not running");
    return FALSE;
  }
  gint32 code;
  memcpy(&code, reply, 4);
  reply[got] = '\0';
  if (code != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(code), "%s",
                reply + 4);
    return FALSE;
  }
  if (path_r != NULL)
    *path_r = g_strdup(reply + 4);
  return TRUE;
}

void pst_local_helper_stop(void) {
  if (helper_fd >= 0)
    close(helper_fd);
  helper_fd = -1;
}
