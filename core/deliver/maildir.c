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
 * with LF ends, as Maildir readers (Dovecot, mutt) expect.  The content
 * comes a piece at a time (a PstMaildirReadFunc: the queue file's
 * content reader, or the helper's stream), so memory stays one piece
 * whatever the message's size; the rename waits for the reader's end,
 * which says the content was intact.
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

/* Writes pieces with every CRLF turned into LF; a CR that ends a piece
 * waits for the next one's first octet. */
typedef struct {
  int fd;
  gboolean held_cr;
  GByteArray *out; /* owned: a piece's worth */
} LfWriter;

static gboolean lf_write(LfWriter *writer, const guint8 *data, gsize length) {
  if (length == 0)
    return TRUE;
  g_byte_array_set_size(writer->out, 0);
  if (writer->held_cr && data[0] != '\n')
    g_byte_array_append(writer->out, (const guint8 *)"\r", 1);
  writer->held_cr = FALSE;
  gsize i = 0;
  while (i < length) {
    const guint8 *cr = memchr(data + i, '\r', length - i);
    gsize end = cr != NULL ? (gsize)(cr - data) : length;
    g_byte_array_append(writer->out, data + i, (guint)(end - i));
    if (end == length)
      break;
    if (end + 1 == length)
      writer->held_cr = TRUE;
    else if (data[end + 1] != '\n')
      g_byte_array_append(writer->out, (const guint8 *)"\r", 1);
    i = end + 1;
  }
  return write_all(writer->fd, (const char *)writer->out->data,
                   writer->out->len);
}

static gboolean lf_finish(LfWriter *writer) {
  gboolean ok = !writer->held_cr || write_all(writer->fd, "\r", 1);
  writer->held_cr = FALSE;
  return ok;
}

/* The prelude, then every piece `read` gives, to the end. */
static gboolean maildir_write_content(int fd, const char *prelude,
                                      PstMaildirReadFunc read, gpointer source,
                                      GError **read_error) {
  LfWriter writer = {.fd = fd, .out = g_byte_array_new()};
  gboolean ok = lf_write(&writer, (const guint8 *)prelude, strlen(prelude));
  while (ok) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!read(source, &data, &length, read_error)) {
      ok = FALSE;
      break;
    }
    if (length == 0)
      break;
    ok = lf_write(&writer, data, length);
  }
  if (ok)
    ok = lf_finish(&writer);
  g_byte_array_unref(writer.out);
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
                                  PstMaildirReadFunc read, gpointer source,
                                  GError **error) {
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0600);
  if (fd < 0)
    return maildir_error(error, errno, "create", tmp_path);
  GError *read_error = NULL;
  gboolean ok = maildir_write_content(fd, prelude, read, source, &read_error) &&
                fsync(fd) == 0;
  int saved = errno;
  if (close(fd) < 0 && ok) {
    ok = FALSE;
    saved = errno;
  }
  if (ok)
    return TRUE;
  unlink(tmp_path);
  if (read_error != NULL) {
    g_propagate_error(error, read_error);
    return FALSE;
  }
  return maildir_error(error, saved, "write", tmp_path);
}

gboolean pst_maildir_deliver(const char *maildir, const char *prelude,
                             PstMaildirReadFunc read, gpointer source,
                             char **path_r, GError **error) {
  if (!maildir_prepare(maildir, error))
    return FALSE;
  g_autofree char *name = maildir_unique_name();
  g_autofree char *tmp_path = g_build_filename(maildir, "tmp", name, NULL);
  g_autofree char *new_dir = g_build_filename(maildir, "new", NULL);
  g_autofree char *new_path = g_build_filename(new_dir, name, NULL);
  if (!maildir_write_tmp(tmp_path, prelude, read, source, error))
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
