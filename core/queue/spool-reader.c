/* spool-reader.c - reading the queue back: list, load, recover.
 *
 * Entry points: pst_spool_list(), pst_spool_load() and the
 * pst_queued_message_* accessors (the queue manager, pst-spool-dump),
 * pst_spool_recover() (the daemon at start), pst_spool_move_to_corrupt().
 *
 * Loading reads only the footer and the trailer (pread at the end of the
 * file) and keeps the file open, so a large queue is scanned quickly and
 * the content is read, and its checksum verified, only when asked for.
 * pst_spool_load_cached() is the main loop's: a small file read whole
 * from the page cache (RWF_NOWAIT) or nothing, so that it never waits for
 * the disk.
 * Names are checked to be queue ids before they reach the file system, and
 * files are opened with O_NOFOLLOW and must be regular, so a stray symlink
 * or directory in queue/ is "corrupt", not followed.
 *
 * Recovery moves anything in queue/ or hold/ that is not a valid message to
 * corrupt/ with a warning naming it; nothing is deleted.  A valid message
 * whose state journal names a recipient it does not have goes too, with
 * its journal (corrupt/ID.state): the two do not belong together, and
 * delivering by either could lose or repeat mail.  The content's checksum
 * is checked when the message is first delivered (reading every message
 * at start would make a large queue slow to start); a mismatch then moves
 * it the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue/queue-id.h"
#include "queue/spool-format.h"
#include "queue/spool-private.h"
#include "queue/state-journal.h"

/* Corrupt files that share a name get suffixes .1 to .N. */
#define CORRUPT_NAME_ATTEMPTS 1000

struct _PstQueuedMessage {
  PstSpoolTrailer *trailer; /* owned */
  char *path;               /* owned: for error messages */
  int fd;                   /* owned: the queue file, for the content */
  GBytes *file;             /* owned, nullable: the file's content [0, trailer
                             * offset), when the read of its trailer took the whole
                             * file (a small message) */
};

static int spool_queue_fd(PstSpool *spool, PstSpoolQueue queue) {
  return spool->dir_fds[pst_spool_dir_of_queue(queue)];
}

static char *spool_path(PstSpool *spool, PstSpoolDir dir, const char *name) {
  return g_build_filename(spool->directory, pst_spool_dir_name(dir), name,
                          NULL);
}

GPtrArray *pst_spool_read_names(PstSpool *spool, PstSpoolDir which,
                                GError **error) {
  int fd = dup(spool->dir_fds[which]);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (dir == NULL) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    g_autofree char *path = spool_path(spool, which, NULL);
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot read spool directory “%s”: %s", path,
                g_strerror(saved));
    return NULL;
  }
  /* The duplicate shares its offset with the first descriptor. */
  rewinddir(dir);
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (!g_str_equal(entry->d_name, ".") && !g_str_equal(entry->d_name, ".."))
      g_ptr_array_add(names, g_strdup(entry->d_name));
  }
  closedir(dir);
  return names;
}

static gint compare_names(gconstpointer a, gconstpointer b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *pst_spool_list(PstSpool *spool, PstSpoolQueue queue,
                          GError **error) {
  g_return_val_if_fail(spool != NULL, NULL);
  GPtrArray *names =
      pst_spool_read_names(spool, pst_spool_dir_of_queue(queue), error);
  if (names == NULL)
    return NULL;
  for (guint i = names->len; i > 0; i--) {
    if (!pst_queue_id_is_valid(names->pdata[i - 1]))
      g_ptr_array_remove_index_fast(names, i - 1);
  }
  g_ptr_array_sort(names, compare_names);
  return names;
}

/* pread(2) exactly `length` octets at `offset`; with `flags`
 * RWF_NOWAIT, only from the page cache (PST_SPOOL_ERROR_WOULD_BLOCK when
 * a part is not there, or the file system cannot tell). */
static gboolean read_exactly_flags(int fd, void *buffer, gsize length,
                                   guint64 offset, int flags, const char *path,
                                   GError **error) {
  guint8 *out = buffer;
  while (length > 0) {
    struct iovec iov = {out, length};
    ssize_t got = flags == 0 ? pread(fd, out, length, (off_t)offset)
                             : preadv2(fd, &iov, 1, (off_t)offset, flags);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 && flags != 0 &&
        (errno == EAGAIN || errno == EOPNOTSUPP || errno == EINVAL)) {
      g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK,
                  "Queue file “%s” is not all in the page cache", path);
      return FALSE;
    }
    if (got <= 0) {
      g_set_error(error, PST_SPOOL_ERROR,
                  got == 0 ? PST_SPOOL_ERROR_CORRUPT : PST_SPOOL_ERROR_IO,
                  "Cannot read queue file “%s”: %s", path,
                  got == 0 ? "file shrank while reading" : g_strerror(errno));
      return FALSE;
    }
    out += got;
    length -= (gsize)got;
    offset += (guint64)got;
  }
  return TRUE;
}

static gboolean read_exactly(int fd, void *buffer, gsize length, guint64 offset,
                             const char *path, GError **error) {
  return read_exactly_flags(fd, buffer, length, offset, 0, path, error);
}

/* Opens a queue file: a regular file, never through a symlink. */
static int spool_open_file(int dir_fd, const char *name, const char *path,
                           struct stat *st, GError **error) {
  /* Without an access time: the first read after the file was written
   * would update it (relatime), a journal handle per message loaded, and
   * one a delivery step on the main loop could wait for.  Only the
   * owner may (EPERM otherwise: the tools reading as another user). */
  int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
  int fd = openat(dir_fd, name, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM)
    fd = openat(dir_fd, name, flags);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, PST_SPOOL_ERROR,
                saved == ENOENT  ? PST_SPOOL_ERROR_NOT_FOUND
                : saved == ELOOP ? PST_SPOOL_ERROR_CORRUPT
                                 : PST_SPOOL_ERROR_IO,
                "Cannot open queue file “%s”: %s", path,
                saved == ELOOP ? "is a symbolic link" : g_strerror(saved));
    return -1;
  }
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is not a regular file", path);
    close(fd);
    return -1;
  }
  return fd;
}

/* The octets read from a file's end at once: the footer, and the whole
 * trailer of most messages with it (one read instead of two); a message
 * in a pre-zeroed spare file (PST_SPOOL_SPARE_SIZE) is read whole. */
#define TAIL_WINDOW MAX(4096, PST_SPOOL_SPARE_SIZE)

/* `length` octets at `offset` of the file: in `window` (the file's octets
 * from `window_offset`) when it holds them, else read into `*read_r`. */
static const guint8 *read_part(int fd, const guint8 *window,
                               guint64 window_offset, guint64 offset,
                               gsize length, guint8 **read_r, const char *path,
                               GError **error) {
  if (offset >= window_offset)
    return window + (offset - window_offset);
  *read_r = g_malloc(length > 0 ? length : 1);
  if (!read_exactly(fd, *read_r, length, offset, path, error))
    return NULL;
  return *read_r;
}

/* Reads and decodes the footer, the trailer and the gap between them (a
 * version 2 file); when the one read from the end took the whole file,
 * `*file_r` (if asked for) gets a copy of its content. */
static PstSpoolTrailer *read_trailer(int fd, guint64 file_size, int flags,
                                     const char *path, GBytes **file_r,
                                     GError **error) {
  guint8 window[TAIL_WINDOW];
  gsize window_length = (gsize)MIN(file_size, TAIL_WINDOW);
  guint64 window_offset = file_size - window_length;
  guint64 trailer_offset = 0;
  gsize trailer_length = 0;
  if (window_length >= PST_SPOOL_FOOTER_SIZE &&
      !read_exactly_flags(fd, window, window_length, window_offset, flags,
                          path, error))
    return NULL;
  g_autoptr(GError) local = NULL;
  const guint8 *footer =
      window + window_length - MIN(window_length, PST_SPOOL_FOOTER_SIZE);
  if (!pst_spool_format_decode_footer(footer, file_size, &trailer_offset,
                                      &trailer_length, &local)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: %s", path, local->message);
    return NULL;
  }
  /* Both bounded by the format's limits and by the file's real size. */
  guint64 gap_offset = trailer_offset + trailer_length;
  gsize gap_length = (gsize)(file_size - PST_SPOOL_FOOTER_SIZE - gap_offset);
  g_autofree guint8 *trailer_read = NULL;
  g_autofree guint8 *gap_read = NULL;
  const guint8 *trailer_data =
      read_part(fd, window, window_offset, trailer_offset, trailer_length,
                &trailer_read, path, error);
  if (trailer_data == NULL)
    return NULL;
  const guint8 *gap = read_part(fd, window, window_offset, gap_offset,
                                gap_length, &gap_read, path, error);
  if (gap == NULL)
    return NULL;
  PstSpoolTrailer *trailer = pst_spool_format_decode_trailer(
      trailer_data, trailer_length, trailer_offset, footer, file_size, &local);
  if (trailer != NULL && !pst_spool_format_check_gap(gap, gap_length, &local))
    g_clear_pointer(&trailer, pst_spool_trailer_free);
  if (trailer == NULL)
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: %s", path, local->message);
  else if (file_r != NULL && window_offset == 0)
    *file_r = g_bytes_new(window, (gsize)trailer_offset);
  return trailer;
}

PstSpoolTrailer *pst_spool_read_trailer(int fd, guint64 file_size,
                                        const char *path, GError **error) {
  return read_trailer(fd, file_size, 0, path, NULL, error);
}

/* pst_spool_load(); `cached_only`: pst_spool_load_cached(). */
static PstQueuedMessage *spool_load(PstSpool *spool, PstSpoolQueue queue,
                                    const char *id, gboolean cached_only,
                                    GError **error) {
  g_return_val_if_fail(spool != NULL && id != NULL, NULL);
  g_autofree char *path = spool_path(spool, pst_spool_dir_of_queue(queue), id);
  if (!pst_queue_id_is_valid(id)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND,
                "“%s” is not a queue id", id);
    return NULL;
  }
  struct stat st;
  int fd = spool_open_file(spool_queue_fd(spool, queue), id, path, &st, error);
  if (fd < 0)
    return NULL;
  /* The one read from the end would not take it whole. */
  if (cached_only && st.st_size > TAIL_WINDOW) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK,
                "Queue file “%s” is too large to read at once", path);
    close(fd);
    return NULL;
  }
  g_autoptr(GBytes) file = NULL;
  PstSpoolTrailer *trailer =
      read_trailer(fd, (guint64)st.st_size, cached_only ? RWF_NOWAIT : 0, path,
                   &file, error);
  if (trailer != NULL && !g_str_equal(trailer->queue_id, id)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: it was written as %s", path,
                trailer->queue_id);
    g_clear_pointer(&trailer, pst_spool_trailer_free);
  }
  if (trailer == NULL) {
    close(fd);
    return NULL;
  }
  PstQueuedMessage *message = g_new0(PstQueuedMessage, 1);
  message->trailer = trailer;
  message->path = g_steal_pointer(&path);
  message->fd = fd;
  message->file = g_steal_pointer(&file);
  return message;
}

PstQueuedMessage *pst_spool_load(PstSpool *spool, PstSpoolQueue queue,
                                 const char *id, GError **error) {
  return spool_load(spool, queue, id, FALSE, error);
}

PstQueuedMessage *pst_spool_load_cached(PstSpool *spool, PstSpoolQueue queue,
                                        const char *id, GError **error) {
  return spool_load(spool, queue, id, TRUE, error);
}

const char *pst_queued_message_get_id(PstQueuedMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  return message->trailer->queue_id;
}

const PstEnvelope *pst_queued_message_get_envelope(PstQueuedMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  return message->trailer->envelope;
}

const PstSpoolTrailer *pst_queued_message_get_trailer(PstQueuedMessage *message,
                                                     int *fd_r,
                                                     const char **path_r) {
  g_return_val_if_fail(message != NULL, NULL);
  *fd_r = message->fd;
  *path_r = message->path;
  return message->trailer;
}

gboolean pst_queued_message_is_whole(PstQueuedMessage *message) {
  g_return_val_if_fail(message != NULL, FALSE);
  return message->file != NULL;
}

const guint8 *pst_queued_message_get_file(PstQueuedMessage *message,
                                          gsize *length_r) {
  g_return_val_if_fail(message != NULL, NULL);
  *length_r = 0;
  if (message->file == NULL)
    return NULL;
  return g_bytes_get_data(message->file, length_r);
}

/* Content of at least this size gets an anonymous mapping of its own,
 * unmapped when the last reference goes.  From malloc, a freed block of a
 * large message stayed in the delivery thread's arena (glibc raises its
 * mmap threshold to the largest block freed, up to 32 MiB, and keeps one
 * arena per thread): a burst of 30 MiB messages ended with some 60 MiB
 * resident per delivery thread, long after the attempts. */
#define CONTENT_MAP_MIN (1024 * 1024)

typedef struct {
  void *data;
  gsize size;
} ContentMap;

static void content_unmap(gpointer data) {
  ContentMap *map = data;
  munmap(map->data, map->size);
  g_free(map);
}

/* A buffer of `size` octets, wrapped at once; the caller fills it. */
static GBytes *content_buffer_new(gsize size, guint8 **data_r) {
  if (size >= CONTENT_MAP_MIN) {
    void *data = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data != MAP_FAILED) {
      ContentMap *map = g_new0(ContentMap, 1);
      map->data = data;
      map->size = size;
      *data_r = data;
      return g_bytes_new_with_free_func(data, size, content_unmap, map);
    }
  }
  guint8 *data = g_malloc(size > 0 ? size : 1);
  *data_r = data;
  return g_bytes_new_take(data, size);
}

GBytes *pst_queued_message_get_content(PstQueuedMessage *message,
                                       GError **error) {
  g_return_val_if_fail(message != NULL, NULL);
  const PstSpoolTrailer *trailer = message->trailer;
  if (trailer->content_length > G_MAXSSIZE ||
      (trailer->header_override != NULL &&
       trailer->header_length > trailer->content_length)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: content too large", message->path);
    return NULL;
  }
  /* With an edited header block: it, then the body as received, read
   * straight into place (one buffer, whatever the size); the checksum is
   * over the content as stored. */
  gsize length = (gsize)trailer->content_length;
  GBytes *override = trailer->header_override;
  gsize skip = override != NULL ? (gsize)trailer->header_length : 0;
  gsize head = override != NULL ? g_bytes_get_size(override) : 0;
  guint8 *out = NULL;
  g_autoptr(GBytes) content = content_buffer_new(head + length - skip, &out);
  guint32 crc = 0;
  if (skip > 0) {
    g_autofree guint8 *original = g_malloc(skip);
    if (!read_exactly(message->fd, original, skip, 0, message->path, error))
      return NULL;
    crc = pst_spool_crc32c(crc, original, skip);
  }
  if (!read_exactly(message->fd, out + head, length - skip, skip,
                    message->path, error))
    return NULL;
  crc = pst_spool_crc32c(crc, out + head, length - skip);
  if (crc != trailer->content_crc) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: content checksum mismatch",
                message->path);
    return NULL;
  }
  if (head > 0)
    memcpy(out, g_bytes_get_data(override, NULL), head);
  return g_steal_pointer(&content);
}

void pst_queued_message_free(PstQueuedMessage *message) {
  if (message == NULL)
    return;
  pst_spool_trailer_free(message->trailer);
  g_clear_pointer(&message->file, g_bytes_unref);
  g_free(message->path);
  if (message->fd >= 0)
    close(message->fd);
  g_free(message);
}

char *pst_spool_rename_to_corrupt(PstSpool *spool, int from_fd,
                                  const char *name, GError **error) {
  int corrupt_fd = spool->dir_fds[PST_SPOOL_DIR_CORRUPT];
  for (guint attempt = 0; attempt <= CORRUPT_NAME_ATTEMPTS; attempt++) {
    g_autofree char *target =
        attempt == 0 ? g_strdup(name) : g_strdup_printf("%s.%u", name, attempt);
    if (pst_spool_rename_noreplace(from_fd, name, corrupt_fd, target) == 0)
      return g_steal_pointer(&target);
    if (errno != EEXIST) {
      int saved = errno;
      g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                  "Cannot move corrupt queue file “%s” to “%s/corrupt”: %s",
                  name, spool->directory, g_strerror(saved));
      return NULL;
    }
  }
  g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
              "Cannot move corrupt queue file “%s” to “%s/corrupt”: too "
              "many files of that name",
              name, spool->directory);
  return NULL;
}

/* Moves any name (not only ids: recovery moves stray files too). */
static gboolean spool_move_name_to_corrupt(PstSpool *spool, PstSpoolDir from,
                                           const char *name, const char *reason,
                                           GError **error) {
  g_return_val_if_fail(spool->lock_fd >= 0, FALSE);
  g_autofree char *target =
      pst_spool_rename_to_corrupt(spool, spool->dir_fds[from], name, error);
  if (target == NULL)
    return FALSE;
  if (fsync(spool->dir_fds[PST_SPOOL_DIR_CORRUPT]) != 0 ||
      fsync(spool->dir_fds[from]) != 0) {
    int saved = errno;
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot sync spool directory “%s”: %s", spool->directory,
                g_strerror(saved));
    return FALSE;
  }
  /* Names from disk may hold anything; the log line stays one line. */
  g_autofree char *shown = g_strescape(name, NULL);
  g_autofree char *shown_target = g_strescape(target, NULL);
  g_warning("%s: corrupt queue file %s/%s/%s moved to %s/corrupt/%s: %s", shown,
            spool->directory, pst_spool_dir_name(from), shown, spool->directory,
            shown_target, reason);
  return TRUE;
}

gboolean pst_spool_move_to_corrupt(PstSpool *spool, PstSpoolQueue queue,
                                   const char *id, const char *reason,
                                   GError **error) {
  g_return_val_if_fail(spool != NULL && reason != NULL, FALSE);
  if (!pst_queue_id_is_valid(id)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND,
                "“%s” is not a queue id", id);
    return FALSE;
  }
  /* A power cut must not bring it back from tmp/ afterwards. */
  if (!pst_spool_settle(spool, id, error))
    return FALSE;
  return spool_move_name_to_corrupt(spool, pst_spool_dir_of_queue(queue), id,
                                    reason, error);
}

/* NULL when the message's state journal (state/ID) names only recipients
 * the message has; otherwise why not.  A journal that cannot be read is
 * the delivery's business (it retries), not corruption. */
static char *spool_journal_mismatch(PstSpool *spool, const char *id,
                                    guint n_recipients) {
  g_autoptr(GPtrArray) records =
      pst_state_journal_read(spool->directory, id, FALSE, NULL);
  for (guint i = 0; records != NULL && i < records->len; i++) {
    const PstStateRecord *record = records->pdata[i];
    /* DSN_QUEUED is message-level, always index 0. */
    if (record->status != PST_RECIPIENT_DSN_QUEUED &&
        record->index >= n_recipients)
      return g_strdup_printf("its state journal names recipient #%u, the "
                             "message has %u",
                             record->index + 1, n_recipients);
  }
  return NULL;
}

/* Moves state/ID beside its message in corrupt/, as ID.state (a new name
 * if that is taken); nothing when there is none. */
static void spool_move_journal_to_corrupt(PstSpool *spool, const char *id) {
  g_autofree char *from = g_build_filename("state", id, NULL);
  int corrupt_fd = spool->dir_fds[PST_SPOOL_DIR_CORRUPT];
  for (guint n = 0; n < CORRUPT_NAME_ATTEMPTS; n++) {
    g_autofree char *to = n == 0 ? g_strdup_printf("%s.state", id)
                                 : g_strdup_printf("%s.state.%u", id, n);
    if (pst_spool_rename_noreplace(spool->root_fd, from, corrupt_fd, to) == 0 ||
        errno != EEXIST)
      return;
  }
}

/* Checks one entry of queue/ or hold/; TRUE when it is a valid message
 * (counted), or when it was moved away. */
static gboolean spool_recover_one(PstSpool *spool, PstSpoolDir which,
                                  const char *name, guint *queued,
                                  GError **error) {
  g_autoptr(GError) local = NULL;
  if (!pst_queue_id_is_valid(name))
    return spool_move_name_to_corrupt(spool, which, name,
                                      "not a queue file name", error);
  PstSpoolQueue queue = which == PST_SPOOL_DIR_HOLD ? PST_SPOOL_QUEUE_HOLD
                                                    : PST_SPOOL_QUEUE_ACTIVE;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(spool, queue, name, &local);
  if (message != NULL) {
    guint n = pst_queued_message_get_envelope(message)->recipients->len;
    g_autofree char *mismatch = spool_journal_mismatch(spool, name, n);
    if (mismatch == NULL) {
      (*queued)++;
      return TRUE;
    }
    spool_move_journal_to_corrupt(spool, name);
    g_autofree char *reason = g_strdup_printf(
        "%s (the journal is moved to corrupt/%s.state)", mismatch, name);
    return spool_move_name_to_corrupt(spool, which, name, reason, error);
  }
  if (g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND))
    return TRUE; /* removed meanwhile */
  if (!g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  return spool_move_name_to_corrupt(spool, which, name, local->message, error);
}

gboolean pst_spool_recover(PstSpool *spool, guint *queued_r, GError **error) {
  g_return_val_if_fail(spool != NULL, FALSE);
  g_return_val_if_fail(spool->lock_fd >= 0, FALSE);
  guint queued = 0;
  const PstSpoolDir dirs[] = {PST_SPOOL_DIR_QUEUE, PST_SPOOL_DIR_HOLD};
  for (guint d = 0; d < G_N_ELEMENTS(dirs); d++) {
    g_autoptr(GPtrArray) names = pst_spool_read_names(spool, dirs[d], error);
    if (names == NULL)
      return FALSE;
    for (guint i = 0; i < names->len; i++) {
      if (!spool_recover_one(spool, dirs[d], names->pdata[i], &queued, error))
        return FALSE;
    }
  }
  if (queued_r != NULL)
    *queued_r = queued;
  return TRUE;
}
