/* spool-writer.c - receiving one message into the spool.
 *
 * Entry points: pst_spool_writer_new(), _write(), _flush(), the getters,
 * _commit_async()/_commit_finish(), _free().  The SMTP session calls them
 * on the main thread as DATA or BDAT arrives.
 *
 * A writer owns a file in tmp/ (mode 0600: a spare the syncer made ahead
 * and made durable, usually holding PST_SPOOL_SPARE_SIZE zeros, or tmp/ID
 * created here when none was ready, whose commit then waits for a
 * directory sync) and a buffer: content is
 * checksummed (CRC32C) and buffered, and written out only when the buffer
 * fills (with the piece that overflows it, in one writev) or on _flush(),
 * so a small message costs no write on the main thread at all, and what is
 * still buffered at the commit goes out with the trailer.  The first
 * write error sticks: later writes and the commit fail with it.  At commit
 * the trailer is encoded here (cheap), appended to the buffer, and buffer
 * and file descriptor are handed to the syncer thread, which writes, syncs
 * and renames; when content, trailer and footer fit the spare's zeros,
 * the footer goes apart, to the spare's last octets (format version 2:
 * the file keeps its size, see doc/queue-format.md).  From then on the writer
 * keeps only its id, path and size, for the session's log lines; freeing it
 * before the commit completes is allowed.  An uncommitted writer's file is
 * unlinked by _free().
 *
 * A message committed into hold/ always carries a hold reason (an empty one
 * when the verdict gave none): recovery, finding it complete in tmp/ after
 * a power cut, puts it back into hold/, not into queue/.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue/queue-id.h"
#include "queue/spool-format.h"
#include "queue/spool-private.h"

G_STATIC_ASSERT(sizeof(((PstSpoolCommit *)NULL)->footer) ==
                PST_SPOOL_FOOTER_SIZE);

/* Content is written out in pieces of about this size. */
#define WRITER_BUFFER_SIZE (64 * 1024)

struct _PstSpoolWriter {
  PstSpool *spool; /* not owned: outlives its writers */
  char id[PST_QUEUE_ID_LENGTH + 1];
  char *tmp_name;     /* owned: its name in tmp/ (a spare's, or the id) */
  char *path;         /* owned: DIRECTORY/tmp/TMP_NAME */
  int fd;             /* owned; -1 once committed */
  GByteArray *buffer; /* owned, nullable: NULL once committed */
  guint64 size;       /* content octets accepted */
  guint32 crc;        /* CRC32C of those octets */
  GError *error;      /* owned, nullable: the first failure */
  gboolean committed;
  gboolean name_durable; /* the file is a spare (durable name in tmp/) */
  guint64 spare_size;    /* its zero octets (0: an empty file) */
};

/* Creates tmp/ID on the main thread, when no spare file was ready. */
static gboolean writer_create_file(PstSpoolWriter *writer, GError **error) {
  PstSpool *spool = writer->spool;
  writer->fd = openat(spool->dir_fds[PST_SPOOL_DIR_TMP], writer->id,
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (writer->fd < 0) {
    int saved = errno;
    g_autofree char *path =
        g_build_filename(spool->directory, "tmp", writer->id, NULL);
    g_set_error(error, PST_SPOOL_ERROR, pst_spool_errno_code(saved),
                "Cannot create queue file “%s”: %s", path, g_strerror(saved));
    return FALSE;
  }
  writer->tmp_name = g_strdup(writer->id);
  return TRUE;
}

PstSpoolWriter *pst_spool_writer_new(PstSpool *spool, GError **error) {
  g_return_val_if_fail(spool != NULL, NULL);
  if (spool->syncer == NULL) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Spool directory “%s” is open read-only", spool->directory);
    return NULL;
  }
  g_autoptr(PstSpoolWriter) writer = g_new0(PstSpoolWriter, 1);
  writer->spool = spool;
  writer->fd = -1;
  pst_queue_id_new(writer->id);
  writer->name_durable = pst_spool_syncer_take_spare(
      spool->syncer, &writer->tmp_name, &writer->fd, &writer->spare_size);
  if (!writer->name_durable && !writer_create_file(writer, error))
    return NULL;
  writer->path =
      g_build_filename(spool->directory, "tmp", writer->tmp_name, NULL);
  writer->buffer = g_byte_array_sized_new(4096);
  return g_steal_pointer(&writer);
}

const char *pst_spool_writer_get_id(PstSpoolWriter *writer) {
  g_return_val_if_fail(writer != NULL, NULL);
  return writer->id;
}

guint64 pst_spool_writer_get_size(PstSpoolWriter *writer) {
  g_return_val_if_fail(writer != NULL, 0);
  return writer->size;
}

const char *pst_spool_writer_get_path(PstSpoolWriter *writer) {
  g_return_val_if_fail(writer != NULL, NULL);
  return writer->path;
}

/* The sticky error, copied for the caller. */
static gboolean writer_failed(PstSpoolWriter *writer, GError **error) {
  if (error != NULL)
    *error = g_error_copy(writer->error);
  return FALSE;
}

/* Advances `*pieces` (`*count` of them) past `written` octets. */
static void writer_advance(struct iovec **pieces, int *count, gsize written) {
  while (*count > 0 && written >= (*pieces)->iov_len) {
    written -= (*pieces)->iov_len;
    (*pieces)++;
    (*count)--;
  }
  if (*count > 0) {
    (*pieces)->iov_base = (guint8 *)(*pieces)->iov_base + written;
    (*pieces)->iov_len -= written;
  }
}

/* writev(2) the buffer and then `length` octets of `data` (either may be
 * empty), all of them, or record the error; the buffer is emptied. */
static gboolean writer_write_out(PstSpoolWriter *writer, const guint8 *data,
                                 gsize length, GError **error) {
  struct iovec vector[2] = {
      {.iov_base = writer->buffer->data, .iov_len = writer->buffer->len},
      {.iov_base = (void *)data, .iov_len = length},
  };
  struct iovec *pieces = vector;
  int count = 2;
  writer_advance(&pieces, &count, 0); /* skips empty pieces */
  int saved = 0;
  while (count > 0 && saved == 0) {
    ssize_t written = writev(writer->fd, pieces, count);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      saved = written < 0 ? errno : ENOSPC;
    else
      writer_advance(&pieces, &count, (gsize)written);
  }
  g_byte_array_set_size(writer->buffer, 0);
  if (saved == 0)
    return TRUE;
  g_set_error(&writer->error, PST_SPOOL_ERROR, pst_spool_errno_code(saved),
              "Cannot write queue file “%s” of %s: %s", writer->path,
              writer->id, g_strerror(saved));
  return writer_failed(writer, error);
}

gboolean pst_spool_writer_flush(PstSpoolWriter *writer, GError **error) {
  g_return_val_if_fail(writer != NULL && !writer->committed, FALSE);
  if (writer->error != NULL)
    return writer_failed(writer, error);
  return writer_write_out(writer, NULL, 0, error);
}

gboolean pst_spool_writer_write(PstSpoolWriter *writer, const void *data,
                                gsize length, GError **error) {
  g_return_val_if_fail(writer != NULL && !writer->committed, FALSE);
  g_return_val_if_fail(data != NULL || length == 0, FALSE);
  if (writer->error != NULL)
    return writer_failed(writer, error);
  writer->crc = pst_spool_crc32c(writer->crc, data, length);
  writer->size += length;
  if (writer->buffer->len + length <= WRITER_BUFFER_SIZE) {
    g_byte_array_append(writer->buffer, data, length);
    return TRUE;
  }
  /* A large piece goes out with the buffer in one writev(). */
  if (length >= WRITER_BUFFER_SIZE)
    return writer_write_out(writer, data, length, error);
  if (!pst_spool_writer_flush(writer, error))
    return FALSE;
  g_byte_array_append(writer->buffer, data, length);
  return TRUE;
}

/* Copies the first `length` octets of the current file into the writer's
 * buffer (checksummed, counted), then the file can be replaced. */
static gboolean writer_copy_head(PstSpoolWriter *writer, int from,
                                 guint64 length, GError **error) {
  guint8 piece[16 * 1024];
  guint64 offset = 0;
  while (offset < length) {
    ssize_t got = pread(from, piece, MIN(sizeof piece, length - offset),
                        (off_t)offset);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      int saved = got < 0 ? errno : EIO;
      g_set_error(&writer->error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                  "Cannot read back queue file “%s” of %s: %s", writer->path,
                  writer->id, g_strerror(saved));
      return writer_failed(writer, error);
    }
    if (!pst_spool_writer_write(writer, piece, (gsize)got, error))
      return FALSE;
    offset += (guint64)got;
  }
  return TRUE;
}

/* Opens tmp/ID.body as the writer's new file; the old one stays open in
 * `*old_fd_r` under `*old_name_r`. */
static gboolean writer_open_replacement(PstSpoolWriter *writer,
                                        int *old_fd_r, char **old_name_r,
                                        GError **error) {
  PstSpool *spool = writer->spool;
  g_autofree char *name = g_strconcat(writer->id, ".body", NULL);
  int fd = openat(spool->dir_fds[PST_SPOOL_DIR_TMP], name,
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int saved = errno;
    g_set_error(&writer->error, PST_SPOOL_ERROR, pst_spool_errno_code(saved),
                "Cannot create queue file “%s/tmp/%s”: %s", spool->directory,
                name, g_strerror(saved));
    return writer_failed(writer, error);
  }
  *old_fd_r = writer->fd;
  *old_name_r = writer->tmp_name;
  writer->fd = fd;
  writer->name_durable = FALSE;
  writer->spare_size = 0;
  writer->tmp_name = g_steal_pointer(&name);
  g_free(writer->path);
  writer->path =
      g_build_filename(spool->directory, "tmp", writer->tmp_name, NULL);
  writer->size = 0;
  writer->crc = 0;
  g_byte_array_set_size(writer->buffer, 0);
  return TRUE;
}

gboolean pst_spool_writer_replace_body(PstSpoolWriter *writer,
                                       guint64 header_length, GBytes *body,
                                       GError **error) {
  g_return_val_if_fail(writer != NULL && !writer->committed, FALSE);
  g_return_val_if_fail(header_length <= writer->size, FALSE);
  if (!pst_spool_writer_flush(writer, error))
    return FALSE;
  int dir = writer->spool->dir_fds[PST_SPOOL_DIR_TMP];
  int reader = openat(dir, writer->tmp_name, O_RDONLY | O_CLOEXEC);
  if (reader < 0) {
    int saved = errno;
    g_set_error(&writer->error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot read back queue file “%s” of %s: %s", writer->path,
                writer->id, g_strerror(saved));
    return writer_failed(writer, error);
  }
  int old_fd = -1;
  g_autofree char *old_name = NULL;
  gboolean ok = writer_open_replacement(writer, &old_fd, &old_name, error);
  if (ok) {
    ok = writer_copy_head(writer, reader, header_length, error) &&
         pst_spool_writer_write(writer, g_bytes_get_data(body, NULL),
                                g_bytes_get_size(body), error) &&
         pst_spool_writer_flush(writer, error);
    close(old_fd);
    unlinkat(dir, old_name, 0);
  }
  close(reader);
  return ok;
}

/* Closes and unlinks the tmp file of a message that will not be queued. */
static void writer_discard_file(PstSpoolWriter *writer) {
  if (writer->fd < 0)
    return;
  close(writer->fd);
  writer->fd = -1;
  unlinkat(writer->spool->dir_fds[PST_SPOOL_DIR_TMP], writer->tmp_name, 0);
}

/* A message that fits its pre-zeroed spare with its trailer and footer
 * keeps the file's size: the footer goes to the spare's last octets
 * (version 2, the zeros between trailer and footer a gap), written apart
 * from the tail.  Otherwise it follows the trailer, and the file grows. */
static void writer_place_footer(PstSpoolWriter *writer, PstSpoolCommit *commit,
                                gsize trailer_size) {
  guint64 end = writer->size + trailer_size;
  commit->file_size = end;
  if (writer->spare_size < end)
    return;
  guint8 *tail = commit->tail->data + commit->tail->len - trailer_size;
  pst_spool_format_set_gap(tail, trailer_size, writer->spare_size - end);
  commit->overwrites = TRUE;
  if (writer->spare_size == end)
    return;
  memcpy(commit->footer, tail + trailer_size - PST_SPOOL_FOOTER_SIZE,
         PST_SPOOL_FOOTER_SIZE);
  g_byte_array_set_size(commit->tail,
                        commit->tail->len - PST_SPOOL_FOOTER_SIZE);
  commit->footer_offset = writer->spare_size - PST_SPOOL_FOOTER_SIZE;
  commit->footer_apart = TRUE;
}

void pst_spool_writer_commit_async(PstSpoolWriter *writer,
                                   const PstEnvelope *envelope,
                                   GBytes *header_override,
                                   guint64 header_length, PstSpoolQueue queue,
                                   GAsyncReadyCallback callback,
                                   gpointer user_data) {
  g_return_if_fail(writer != NULL && !writer->committed);
  g_return_if_fail(envelope != NULL);
  g_autoptr(GTask) task = g_task_new(NULL, NULL, callback, user_data);
  g_task_set_source_tag(task, pst_spool_writer_commit_async);
  g_task_set_name(task, "pst_spool_writer_commit_async");
  writer->committed = TRUE;
  if (writer->error != NULL) {
    writer_discard_file(writer);
    g_task_return_error(task, g_error_copy(writer->error));
    return;
  }
  GError *error = NULL;
  g_autoptr(PstEnvelope) marked = NULL;
  if (queue == PST_SPOOL_QUEUE_HOLD && envelope->hold_reason == NULL) {
    marked = pst_envelope_copy(envelope);
    marked->hold_reason = g_strdup("");
    envelope = marked;
  }
  g_autoptr(GBytes) trailer =
      pst_spool_format_encode(writer->id, envelope, header_override,
                              header_length, writer->size, writer->crc, &error);
  if (trailer == NULL) {
    g_prefix_error(&error, "Cannot queue “%s”: ", writer->path);
    writer_discard_file(writer);
    g_task_return_error(task, error);
    return;
  }
  PstSpool *spool = writer->spool;
  PstSpoolCommit *commit = g_new0(PstSpoolCommit, 1);
  commit->id = g_strdup(writer->id);
  commit->tmp_name = g_strdup(writer->tmp_name);
  commit->tmp_path = g_strdup(writer->path);
  commit->fd = writer->fd;
  writer->fd = -1;
  commit->tmp_dir_fd = spool->dir_fds[PST_SPOOL_DIR_TMP];
  commit->target_dir_fd = spool->dir_fds[pst_spool_dir_of_queue(queue)];
  commit->name_durable = writer->name_durable;
  commit->tail = g_steal_pointer(&writer->buffer);
  g_byte_array_append(commit->tail, g_bytes_get_data(trailer, NULL),
                      g_bytes_get_size(trailer));
  writer_place_footer(writer, commit, g_bytes_get_size(trailer));
  commit->task = g_steal_pointer(&task);
  pst_spool_syncer_submit(spool->syncer, commit);
}

gboolean pst_spool_writer_commit_finish(PstSpoolWriter *writer,
                                        GAsyncResult *result, GError **error) {
  g_return_val_if_fail(g_task_is_valid(result, NULL), FALSE);
  g_return_val_if_fail(g_task_get_source_tag(G_TASK(result)) ==
                           pst_spool_writer_commit_async,
                       FALSE);
  return g_task_propagate_boolean(G_TASK(result), error);
}

void pst_spool_writer_free(PstSpoolWriter *writer) {
  if (writer == NULL)
    return;
  writer_discard_file(writer);
  if (writer->buffer != NULL)
    g_byte_array_unref(writer->buffer);
  g_clear_error(&writer->error);
  g_free(writer->tmp_name);
  g_free(writer->path);
  g_free(writer);
}
