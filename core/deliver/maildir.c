/* maildir.c - Maildir delivery (https://cr.yp.to/proto/maildir.html).
 *
 * Entry point: pst_maildir_deliver(), called by the queue manager's worker
 * threads.  The sequence is what makes "delivered" true: the file is
 * complete and fsynced in tmp/ before the rename makes it visible in new/,
 * and new/ is fsynced before we return, so a crash leaves either nothing
 * (the recipient is tried again) or the whole message.  Directories the
 * delivery creates (the Maildir, its parents, tmp/ new/ cur/) are synced
 * into their parents first, so a power cut cannot take a delivered
 * message away with its Maildir.  Unique names are
 * TIME.MUSECPPIDQCOUNTER.HOST, so concurrent workers never collide; O_EXCL
 * makes a collision an error rather than an overwrite.  Lines are stored
 * with LF ends, as Maildir readers (Dovecot, mutt) expect.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/durable.h"

#include "deliver/maildir.h"

static gboolean maildir_error(GError **error, int saved, const char *what,
                              const char *path) {
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
              "cannot %s %s: %s", what, path, g_strerror(saved));
  return FALSE;
}

/* Creates what is missing of the Maildir, each new directory synced into
 * its parent: a message synced into new/ must not vanish at a power cut
 * with a Maildir whose own name was never on disk. */
static gboolean maildir_prepare(const char *maildir, GError **error) {
  static const char *const subdirs[] = {"tmp", "new", "cur"};
  if (pst_durable_mkdir_with_parents(maildir, 0700) < 0)
    return maildir_error(error, errno, "create", maildir);
  for (guint i = 0; i < G_N_ELEMENTS(subdirs); i++) {
    g_autofree char *path = g_build_filename(maildir, subdirs[i], NULL);
    if (pst_durable_mkdir_with_parents(path, 0700) < 0)
      return maildir_error(error, errno, "create", path);
  }
  return TRUE;
}

static char *maildir_unique_name(void) {
  static gint counter;
  gint64 now = g_get_real_time();
  g_autofree char *host = g_strdup(g_get_host_name());
  g_strdelimit(host, "/:", '_');
  return g_strdup_printf("%" G_GINT64_FORMAT ".M%" G_GINT64_FORMAT "P%dQ%d.%s",
                         now / G_USEC_PER_SEC, now % G_USEC_PER_SEC,
                         (int)getpid(), g_atomic_int_add(&counter, 1) + 1,
                         host);
}

static gboolean write_all(int fd, const char *data, gsize length) {
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = ENOSPC;
      return FALSE;
    }
    data += n;
    length -= (gsize)n;
  }
  return TRUE;
}

/* Writes `data` with every CRLF turned into LF, in large pieces. */
static gboolean write_lf(int fd, const char *data, gsize length) {
  GString *out = g_string_sized_new(MIN(length, 1024 * 1024) + 1);
  gboolean ok = TRUE;
  for (gsize i = 0; ok && i < length; i++) {
    if (data[i] == '\r' && i + 1 < length && data[i + 1] == '\n')
      continue;
    g_string_append_c(out, data[i]);
    if (out->len >= 1024 * 1024) {
      ok = write_all(fd, out->str, out->len);
      g_string_truncate(out, 0);
    }
  }
  if (ok)
    ok = write_all(fd, out->str, out->len);
  g_string_free(out, TRUE);
  return ok;
}

static gboolean sync_directory(const char *path, GError **error) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return maildir_error(error, errno, "open", path);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  return rc == 0 || maildir_error(error, saved, "fsync", path);
}

/* Writes and syncs the file in tmp/; removes it on failure. */
static gboolean maildir_write_tmp(const char *tmp_path, const char *prelude,
                                  GBytes *content, GError **error) {
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0600);
  if (fd < 0)
    return maildir_error(error, errno, "create", tmp_path);
  gsize length = 0;
  const char *data = g_bytes_get_data(content, &length);
  gboolean ok = write_lf(fd, prelude, strlen(prelude)) &&
                write_lf(fd, data, length) && fsync(fd) == 0;
  int saved = errno;
  if (close(fd) < 0 && ok) {
    ok = FALSE;
    saved = errno;
  }
  if (ok)
    return TRUE;
  unlink(tmp_path);
  return maildir_error(error, saved, "write", tmp_path);
}

gboolean pst_maildir_deliver(const char *maildir, const char *prelude,
                             GBytes *content, char **path_r, GError **error) {
  if (!maildir_prepare(maildir, error))
    return FALSE;
  g_autofree char *name = maildir_unique_name();
  g_autofree char *tmp_path = g_build_filename(maildir, "tmp", name, NULL);
  g_autofree char *new_dir = g_build_filename(maildir, "new", NULL);
  g_autofree char *new_path = g_build_filename(new_dir, name, NULL);
  if (!maildir_write_tmp(tmp_path, prelude, content, error))
    return FALSE;
  if (rename(tmp_path, new_path) < 0) {
    int saved = errno;
    unlink(tmp_path);
    return maildir_error(error, saved, "rename into", new_path);
  }
  if (!sync_directory(new_dir, error))
    return FALSE;
  if (path_r != NULL)
    *path_r = g_steal_pointer(&new_path);
  return TRUE;
}
