/* state-journal.c - per-recipient delivery state, SPOOL/state/ID.
 *
 * Entry points: the pure codec (pst_state_record_encode(),
 * pst_state_records_decode(), pst_recipient_states_fold()) and the file
 * functions (append, read, remove, remove_orphans), which block and are
 * called from the queue manager's worker threads and from `postilion`.
 *
 * Invariant: a record is acted upon only after pst_state_journal_append()
 * returned TRUE, i.e. after fdatasync (and, for a new file, an fsync of
 * state/).  Decoding stops at the first damaged record, so a torn append
 * reads as "not yet recorded".  See state-journal.h for the layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "util/durable.h"

#include "queue/queue-id.h"
#include "queue/spool-format.h"
#include "queue/state-journal.h"

#define RECORD_VERSION 1
#define RECORD_MAX (1024 * 1024)
#define STRING_MAX (64 * 1024)

void pst_state_record_free(PstStateRecord *record) {
  if (record == NULL)
    return;
  g_free(record->reply);
  g_free(record->relay);
  g_free(record->target);
  g_free(record);
}

/* --- Codec ------------------------------------------------------------- */

static void put_u32(GByteArray *buffer, guint32 value) {
  guint32 le = GUINT32_TO_LE(value);
  g_byte_array_append(buffer, (const guint8 *)&le, 4);
}

static void put_string(GByteArray *buffer, const char *text) {
  gsize length = text != NULL ? MIN(strlen(text), STRING_MAX) : 0;
  put_u32(buffer, (guint32)length);
  if (length > 0)
    g_byte_array_append(buffer, (const guint8 *)text, (guint)length);
}

void pst_state_record_encode(const PstStateRecord *record, GByteArray *buffer) {
  g_autoptr(GByteArray) payload = g_byte_array_new();
  guint8 head[2] = {RECORD_VERSION, (guint8)record->status};
  g_byte_array_append(payload, head, 2);
  put_u32(payload, record->index);
  gint64 time = GINT64_TO_LE(record->time);
  g_byte_array_append(payload, (const guint8 *)&time, 8);
  put_u32(payload, record->attempts);
  put_string(payload, record->reply);
  put_string(payload, record->relay);
  put_string(payload, record->target);
  put_u32(buffer, payload->len);
  put_u32(buffer, pst_spool_crc32c(0, payload->data, payload->len));
  g_byte_array_append(buffer, payload->data, payload->len);
}

typedef struct {
  const guint8 *data;
  gsize left;
} Cursor;

static gboolean take(Cursor *cursor, void *out, gsize length) {
  if (cursor->left < length)
    return FALSE;
  memcpy(out, cursor->data, length);
  cursor->data += length;
  cursor->left -= length;
  return TRUE;
}

static gboolean take_u32(Cursor *cursor, guint32 *value) {
  guint32 le;
  if (!take(cursor, &le, 4))
    return FALSE;
  *value = GUINT32_FROM_LE(le);
  return TRUE;
}

/* A string field: NULL when empty; refused when it holds a NUL. */
static gboolean take_string(Cursor *cursor, char **value) {
  guint32 length;
  if (!take_u32(cursor, &length) || length > cursor->left ||
      length > STRING_MAX || memchr(cursor->data, 0, length) != NULL)
    return FALSE;
  *value = length > 0 ? g_strndup((const char *)cursor->data, length) : NULL;
  cursor->data += length;
  cursor->left -= length;
  return TRUE;
}

static PstStateRecord *decode_payload(const guint8 *data, gsize length) {
  Cursor cursor = {data, length};
  guint8 head[2];
  gint64 time;
  g_autoptr(PstStateRecord) record = g_new0(PstStateRecord, 1);
  if (!take(&cursor, head, 2) || head[0] != RECORD_VERSION ||
      head[1] < PST_RECIPIENT_DELIVERED || head[1] > PST_RECIPIENT_DSN_PASSED ||
      !take_u32(&cursor, &record->index) || !take(&cursor, &time, 8) ||
      !take_u32(&cursor, &record->attempts) ||
      !take_string(&cursor, &record->reply) ||
      !take_string(&cursor, &record->relay) ||
      !take_string(&cursor, &record->target) || cursor.left != 0)
    return NULL;
  record->status = (PstRecipientStatus)head[1];
  record->time = GINT64_FROM_LE(time);
  return g_steal_pointer(&record);
}

gsize pst_state_records_decode(const guint8 *data, gsize length,
                               GPtrArray *records_r) {
  Cursor cursor = {data, length};
  gsize valid = 0;
  guint32 size, crc;
  while (take_u32(&cursor, &size) && take_u32(&cursor, &crc) &&
         size <= RECORD_MAX && size <= cursor.left &&
         pst_spool_crc32c(0, cursor.data, size) == crc) {
    PstStateRecord *record = decode_payload(cursor.data, size);
    if (record == NULL)
      break;
    g_ptr_array_add(records_r, record);
    cursor.data += size;
    cursor.left -= size;
    valid = length - cursor.left;
  }
  return valid;
}

PstRecipientState *pst_recipient_states_fold(GPtrArray *records,
                                             guint n_recipients) {
  PstRecipientState *states = g_new0(PstRecipientState, MAX(n_recipients, 1));
  for (guint i = 0; i < n_recipients; i++)
    states[i].done =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < records->len; i++) {
    const PstStateRecord *record = records->pdata[i];
    if (record->index >= n_recipients)
      continue;
    PstRecipientState *state = &states[record->index];
    /* Notes: not attempts. */
    if (record->status == PST_RECIPIENT_DELAY_NOTIFIED)
      state->delay_notified = TRUE;
    if (record->status == PST_RECIPIENT_DSN_PASSED)
      state->dsn_passed = TRUE;
    if (record->status == PST_RECIPIENT_DELAY_NOTIFIED ||
        record->status == PST_RECIPIENT_DSN_QUEUED ||
        record->status == PST_RECIPIENT_DSN_PASSED)
      continue;
    state->attempts = MAX(state->attempts, record->attempts);
    state->time = record->time;
    if (record->status == PST_RECIPIENT_TARGET_DONE) {
      if (record->target != NULL)
        g_hash_table_add(state->done, g_strdup(record->target));
      continue;
    }
    state->status = record->status;
    g_free(state->reply);
    state->reply = g_strdup(record->reply);
    g_free(state->relay);
    state->relay = g_strdup(record->relay);
  }
  return states;
}

void pst_recipient_states_free(PstRecipientState *states, guint n_recipients) {
  if (states == NULL)
    return;
  for (guint i = 0; i < n_recipients; i++) {
    g_free(states[i].reply);
    g_free(states[i].relay);
    g_clear_pointer(&states[i].done, g_hash_table_unref);
  }
  g_free(states);
}

const char *pst_state_records_dsn_id(GPtrArray *records) {
  const char *id = NULL;
  for (guint i = 0; records != NULL && i < records->len; i++) {
    const PstStateRecord *record = records->pdata[i];
    if (record->status == PST_RECIPIENT_DSN_QUEUED && record->target != NULL)
      id = record->target;
  }
  return id;
}

gboolean pst_recipient_status_is_final(PstRecipientStatus status) {
  return status == PST_RECIPIENT_DELIVERED || status == PST_RECIPIENT_BOUNCED;
}

const char *pst_recipient_status_name(PstRecipientStatus status) {
  switch (status) {
  case PST_RECIPIENT_DELIVERED:
    return "delivered";
  case PST_RECIPIENT_DEFERRED:
    return "deferred";
  case PST_RECIPIENT_BOUNCED:
    return "bounced";
  case PST_RECIPIENT_TARGET_DONE:
    return "partly delivered";
  case PST_RECIPIENT_DELAY_NOTIFIED:
    return "delay notified";
  case PST_RECIPIENT_DSN_QUEUED:
    return "DSN queued";
  case PST_RECIPIENT_PENDING:
  default:
    return "pending";
  }
}

/* --- Files ------------------------------------------------------------- */

static gboolean io_error(GError **error, int saved, const char *what,
                         const char *path) {
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
              "cannot %s %s: %s", what, path, g_strerror(saved));
  return FALSE;
}

static char *journal_path(const char *spool_directory, const char *id) {
  return g_build_filename(spool_directory, "state", id, NULL);
}

static gboolean sync_directory(const char *path, GError **error) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return io_error(error, errno, "open", path);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  return rc == 0 || io_error(error, saved, "fsync", path);
}

gboolean pst_state_journal_prepare(const char *spool_directory,
                                   GError **error) {
  g_autofree char *path = g_build_filename(spool_directory, "state", NULL);
  if (pst_durable_mkdir_with_parents(path, 0700) < 0)
    return io_error(error, errno, "create", path);
  return TRUE;
}

gboolean pst_state_journal_append(const char *spool_directory, const char *id,
                                  GPtrArray *records, GError **error) {
  g_return_val_if_fail(pst_queue_id_is_valid(id), FALSE);
  g_autofree char *path = journal_path(spool_directory, id);
  g_autoptr(GByteArray) buffer = g_byte_array_new();
  for (guint i = 0; i < records->len; i++)
    pst_state_record_encode(records->pdata[i], buffer);
  gboolean created = access(path, F_OK) != 0;
  int fd =
      open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return io_error(error, errno, "open", path);
  gsize done = 0;
  while (done < buffer->len) {
    ssize_t n = write(fd, buffer->data + done, buffer->len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int saved = n < 0 ? errno : ENOSPC;
      close(fd);
      return io_error(error, saved, "append to", path);
    }
    done += (gsize)n;
  }
  int rc = fdatasync(fd);
  int saved = errno;
  close(fd);
  if (rc < 0)
    return io_error(error, saved, "fdatasync", path);
  if (!created)
    return TRUE;
  g_autofree char *directory = g_path_get_dirname(path);
  return sync_directory(directory, error);
}

/* The whole file at `path` in `*data_r` (`*length_r` octets); TRUE with
 * NULL when there is none (no error made for the common case: a message
 * without a journal). */
static gboolean journal_read_file(const char *path, char **data_r,
                                  gsize *length_r, GError **error) {
  *data_r = NULL;
  *length_r = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT || io_error(error, errno, "open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    return io_error(error, saved, "read", path);
  }
  GByteArray *data =
      g_byte_array_sized_new((guint)MIN(st.st_size, RECORD_MAX) + 1);
  guint8 chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      g_byte_array_unref(data);
      return io_error(error, saved, "read", path);
    }
    if (n == 0)
      break;
    g_byte_array_append(data, chunk, (guint)n);
  }
  close(fd);
  *length_r = data->len;
  *data_r = (char *)g_byte_array_free(data, FALSE);
  return TRUE;
}

GPtrArray *pst_state_journal_read_at(const char *spool_directory,
                                     const char *id, gboolean repair,
                                     gboolean *exists_r, GError **error) {
  g_autoptr(GPtrArray) records =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  if (exists_r != NULL)
    *exists_r = FALSE;
  if (!pst_queue_id_is_valid(id))
    return g_steal_pointer(&records);
  g_autofree char *path = journal_path(spool_directory, id);
  g_autofree char *data = NULL;
  gsize length = 0;
  if (!journal_read_file(path, &data, &length, error))
    return NULL;
  if (data == NULL)
    return g_steal_pointer(&records);
  if (exists_r != NULL)
    *exists_r = TRUE;
  gsize valid = pst_state_records_decode((const guint8 *)data, length, records);
  if (repair && valid < length) {
    g_warning(
        "%s: state journal %s has a torn record at offset %" G_GSIZE_FORMAT
        "; it is cut off (the recipient is tried again)",
        id, path, valid);
    if (truncate(path, (off_t)valid) < 0)
      g_warning("%s: cannot truncate %s: %s", id, path, g_strerror(errno));
  }
  return g_steal_pointer(&records);
}

GPtrArray *pst_state_journal_read(const char *spool_directory, const char *id,
                                  gboolean repair, GError **error) {
  return pst_state_journal_read_at(spool_directory, id, repair, NULL, error);
}

gboolean pst_state_journal_remove(const char *spool_directory, const char *id,
                                  GError **error) {
  g_autofree char *path = journal_path(spool_directory, id);
  if (unlink(path) < 0 && errno != ENOENT)
    return io_error(error, errno, "remove", path);
  return TRUE;
}

guint pst_state_journal_remove_orphans(const char *spool_directory) {
  g_autofree char *state = g_build_filename(spool_directory, "state", NULL);
  g_autoptr(GDir) dir = g_dir_open(state, 0, NULL);
  const char *name;
  guint removed = 0;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *queued =
        g_build_filename(spool_directory, "queue", name, NULL);
    g_autofree char *held =
        g_build_filename(spool_directory, "hold", name, NULL);
    if (access(queued, F_OK) == 0 || access(held, F_OK) == 0)
      continue;
    g_autofree char *path = g_build_filename(state, name, NULL);
    if (unlink(path) == 0)
      removed++;
  }
  return removed;
}
