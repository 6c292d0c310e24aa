/* local-helper.c - the privileged delivery helper (see local-helper.h).
 *
 * Entry points: pst_local_helper_start() (the daemon, as root, before any
 * thread), pst_local_helper_deliver() (delivery workers), _stop().
 *
 * Wire format on a SOCK_SEQPACKET socketpair (one request, one reply):
 *   request: u32 user length | u32 prelude length | user | prelude, with
 *            the content's memfd attached (SCM_RIGHTS);
 *   reply:   i32 errno (0: delivered) | text (the path, or the error).
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver/local-helper.h"
#include "deliver/maildir.h"
#include "tables/system-user.h"

#define REQUEST_MAX (64 * 1024)
#define REPLY_MAX 4096

static int helper_fd = -1;
static GMutex helper_lock;

/* --- The helper process ------------------------------------------------- */

/* In a child: become the user and deliver; the result goes to `out`. */
static void helper_child(const struct passwd *entry, const char *prelude,
                         int content_fd, int out) {
  char reply[REPLY_MAX];
  gint32 code = 0;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  struct stat st;
  if (initgroups(entry->pw_name, entry->pw_gid) < 0 ||
      setgid(entry->pw_gid) < 0 || setuid(entry->pw_uid) < 0 ||
      fstat(content_fd, &st) < 0) {
    code = errno;
    g_snprintf(reply, sizeof reply, "cannot switch to user %s: %s",
               entry->pw_name, g_strerror(code));
  } else {
    void *map = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ,
                                      MAP_PRIVATE, content_fd, 0)
                               : NULL;
    g_autoptr(GBytes) content =
        g_bytes_new_static(map != MAP_FAILED ? map : "",
                           map != MAP_FAILED ? (gsize)st.st_size : 0);
    g_autofree char *maildir = g_build_filename(entry->pw_dir, "Maildir", NULL);
    if (pst_system_user_check_maildir(maildir, &error) &&
        pst_maildir_deliver(maildir, prelude, content, &path, &error)) {
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

static int content_memfd(GBytes *content, GError **error) {
  int fd = memfd_create("postilion-delivery", MFD_CLOEXEC);
  gsize length = 0;
  const char *data = g_bytes_get_data(content, &length);
  gsize done = 0;
  while (fd >= 0 && done < length) {
    ssize_t n = write(fd, data + done, length - done);
    if (n <= 0) {
      close(fd);
      fd = -1;
      break;
    }
    done += (gsize)n;
  }
  if (fd < 0)
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot pass the message to the delivery helper: %s",
                g_strerror(errno));
  return fd;
}

/* One request and its reply on the socket; the lock is held. */
static gboolean helper_exchange(const char *user, const char *prelude,
                                int content_fd, char *reply, gssize *got) {
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
  if (sendmsg(helper_fd, &msg, MSG_NOSIGNAL) < 0)
    return FALSE;
  *got = recv(helper_fd, reply, REPLY_MAX - 1, 0);
  return *got >= 4;
}

gboolean pst_local_helper_deliver(const char *user, const char *prelude,
                                  GBytes *content, char **path_r,
                                  GError **error) {
  if (strlen(user) + strlen(prelude) + 8 > REQUEST_MAX) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "delivery request too large");
    return FALSE;
  }
  int content_fd = content_memfd(content, error);
  if (content_fd < 0)
    return FALSE;
  char reply[REPLY_MAX];
  gssize got = 0;
  g_mutex_lock(&helper_lock);
  gboolean ok =
      helper_fd >= 0 && helper_exchange(user, prelude, content_fd, reply, &got);
  g_mutex_unlock(&helper_lock);
  close(content_fd);
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
