/* spool-recover.c - what a crash or power cut left in tmp/, recovered when
 * the spool is opened (pst_spool_open(), before the syncer starts).
 *
 * Entry point: pst_spool_recover_tmp().  spool.c has fsynced queue/ and
 * hold/ before, so every rename out of tmp/ the previous process made is
 * durable in its target before anything here changes tmp/.
 *
 * A message is acknowledged (250) after its file is complete and
 * fdatasynced and renamed out of tmp/, but before the rename is durable
 * (spool-syncer.c): after a power cut it may be found in tmp/, under its
 * spare's name.  So each entry of tmp/ is examined, but for used.*
 * (a delivered message's file to be recycled as a spare, see
 * spool-syncer.c: never acknowledged under that name), removed unread:
 *   - empty or all zeros (a spare, empty or pre-zeroed, or a message
 *     none of whose octets reached the disk) or without a valid footer
 *     and trailer (torn: it was still being
 *     received or written, so never acknowledged; the client still has it):
 *     removed, with one log line counting the incomplete ones;
 *   - footer, trailer and content checksum valid: it may have been
 *     acknowledged, so it goes into hold/ when its trailer has a hold
 *     reason (the writer always records one for hold/), else into queue/,
 *     under the queue id of its trailer, with a log line: delivered, perhaps
 *     twice (a duplicate is allowed, a loss is not);
 *     unless that id is already in queue/ or hold/: then the tmp/ name is a
 *     leftover of the rename (the cut came before tmp/ was synced) and goes;
 *   - footer and trailer valid but the content checksum wrong: the writer
 *     writes the footer last, but a file system may write a file's blocks
 *     in any order until fdatasync returns, so this is either a file torn
 *     inside (never acknowledged) or an acknowledged file damaged later.
 *     They cannot be told apart, so it is never deleted: it goes to
 *     corrupt/ with a warning, as a damaged file in queue/ does.
 * Then queue/, hold/ and corrupt/ are fsynced (where something arrived),
 * and only then are the removals made and tmp/ fsynced.  A read error
 * fails the open: nothing is removed that was not examined.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool-private.h"

typedef enum {
  TMP_EMPTY,
  TMP_TORN,
  TMP_COMPLETE,
  TMP_BAD_CONTENT,
  TMP_GONE, /* removed meanwhile: nothing to do */
} TmpState;

typedef struct {
  PstSpool *spool;
  GPtrArray *remove;      /* of char*, owned: unlinked at the end */
  guint incomplete;       /* torn files */
  guint duplicates;       /* already in queue/ or hold/ */
  gboolean synced[PST_SPOOL_N_DIRS]; /* needs an fsync: something arrived */
} TmpRecovery;

/* CRC32C of the first `length` octets of `fd`; FALSE with errno set on a
 * read error, with EIO when the file is shorter. */
static gboolean tmp_content_crc(int fd, guint64 length, guint32 *crc_r) {
  guint8 piece[64 * 1024];
  guint32 crc = 0;
  guint64 offset = 0;
  while (offset < length) {
    ssize_t got = pread(fd, piece, MIN(sizeof piece, length - offset),
                        (off_t)offset);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      if (got == 0)
        errno = EIO;
      return FALSE;
    }
    crc = pst_spool_crc32c(crc, piece, (gsize)got);
    offset += (guint64)got;
  }
  *crc_r = crc;
  return TRUE;
}

/* Whether the `size` octets of `fd` are all zero (a pre-zeroed spare,
 * or a message none of whose octets reached the disk); FALSE with errno
 * set on a read error, with `*zero_r` FALSE at the first other octet. */
static gboolean tmp_all_zero(int fd, guint64 size, gboolean *zero_r) {
  guint8 piece[64 * 1024];
  *zero_r = FALSE;
  for (guint64 offset = 0; offset < size;) {
    ssize_t got =
        pread(fd, piece, MIN(sizeof piece, size - offset), (off_t)offset);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      if (got == 0)
        errno = EIO;
      return FALSE;
    }
    for (ssize_t i = 0; i < got; i++) {
      if (piece[i] != 0)
        return TRUE;
    }
    offset += (guint64)got;
  }
  *zero_r = TRUE;
  return TRUE;
}

/* Reads tmp/NAME and says what it is; a complete file's trailer goes to
 * `trailer_r`.  FALSE on a read error. */
static gboolean tmp_examine(PstSpool *spool, const char *name, TmpState *state_r,
                            PstSpoolTrailer **trailer_r, GError **error) {
  g_autofree char *path = g_build_filename(spool->directory, "tmp", name, NULL);
  int fd = openat(spool->dir_fds[PST_SPOOL_DIR_TMP], name,
                  O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    /* Not a file of ours (a symlink, a directory): removed if it can be. */
    *state_r = fd < 0 && saved == ENOENT ? TMP_GONE : TMP_TORN;
    return TRUE;
  }
  *state_r = TMP_EMPTY;
  g_autoptr(GError) local = NULL;
  g_autoptr(PstSpoolTrailer) trailer = NULL;
  if (st.st_size > 0) {
    *state_r = TMP_TORN;
    trailer = pst_spool_read_trailer(fd, (guint64)st.st_size, path, &local);
  }
  if (trailer == NULL && local != NULL &&
      !g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT)) {
    close(fd);
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  gboolean zero = FALSE;
  if (st.st_size > 0 && trailer == NULL &&
      !tmp_all_zero(fd, (guint64)st.st_size, &zero)) {
    int saved = errno;
    close(fd);
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot read queue file “%s”: %s", path, g_strerror(saved));
    return FALSE;
  }
  if (zero)
    *state_r = TMP_EMPTY;
  guint32 crc = 0;
  if (trailer != NULL && !tmp_content_crc(fd, trailer->content_length, &crc)) {
    int saved = errno;
    close(fd);
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot read queue file “%s”: %s", path, g_strerror(saved));
    return FALSE;
  }
  close(fd);
  if (trailer != NULL) {
    *state_r = crc == trailer->content_crc ? TMP_COMPLETE : TMP_BAD_CONTENT;
    *trailer_r = g_steal_pointer(&trailer);
  }
  return TRUE;
}

static gboolean tmp_name_exists(int dir_fd, const char *name) {
  struct stat st;
  return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A complete file: into its queue, unless it is there already. */
static gboolean tmp_promote(TmpRecovery *recovery, const char *name,
                            const PstSpoolTrailer *trailer, GError **error) {
  PstSpool *spool = recovery->spool;
  const char *id = trailer->queue_id;
  PstSpoolDir target = trailer->envelope->hold_reason != NULL
                           ? PST_SPOOL_DIR_HOLD
                           : PST_SPOOL_DIR_QUEUE;
  if (tmp_name_exists(spool->dir_fds[PST_SPOOL_DIR_QUEUE], id) ||
      tmp_name_exists(spool->dir_fds[PST_SPOOL_DIR_HOLD], id)) {
    recovery->duplicates++;
    g_ptr_array_add(recovery->remove, g_strdup(name));
    return TRUE;
  }
  if (pst_spool_rename_noreplace(spool->dir_fds[PST_SPOOL_DIR_TMP], name,
                                 spool->dir_fds[target], id) != 0) {
    int saved = errno;
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot move queue file “%s/tmp/%s” to “%s/%s/%s”: %s",
                spool->directory, name, spool->directory,
                pst_spool_dir_name(target), id, g_strerror(saved));
    return FALSE;
  }
  recovery->synced[target] = TRUE;
  g_message("%s: complete queue file %s/tmp/%s recovered into %s/ (written "
            "and synced before a crash, perhaps acknowledged: it may be "
            "delivered twice)",
            id, spool->directory, name, pst_spool_dir_name(target));
  return TRUE;
}

/* A complete-looking file whose content fails its checksum. */
static gboolean tmp_keep_corrupt(TmpRecovery *recovery, const char *name,
                                 GError **error) {
  PstSpool *spool = recovery->spool;
  g_autofree char *target = pst_spool_rename_to_corrupt(
      spool, spool->dir_fds[PST_SPOOL_DIR_TMP], name, error);
  if (target == NULL)
    return FALSE;
  recovery->synced[PST_SPOOL_DIR_CORRUPT] = TRUE;
  g_autofree char *shown = g_strescape(name, NULL);
  g_autofree char *shown_target = g_strescape(target, NULL);
  g_warning("spool %s: queue file tmp/%s has a valid trailer but its content "
            "fails the checksum (torn before it was synced, or damaged "
            "since): moved to corrupt/%s",
            spool->directory, shown, shown_target);
  return TRUE;
}

static gboolean tmp_recover_one(TmpRecovery *recovery, const char *name,
                                GError **error) {
  /* A delivered message's file waiting to become a spare: whatever it
   * holds (the old message, part of its zeros) is removed unread. */
  if (g_str_has_prefix(name, PST_SPOOL_USED_PREFIX)) {
    g_ptr_array_add(recovery->remove, g_strdup(name));
    return TRUE;
  }
  TmpState state;
  g_autoptr(PstSpoolTrailer) trailer = NULL;
  if (!tmp_examine(recovery->spool, name, &state, &trailer, error))
    return FALSE;
  switch (state) {
  case TMP_COMPLETE:
    return tmp_promote(recovery, name, trailer, error);
  case TMP_BAD_CONTENT:
    return tmp_keep_corrupt(recovery, name, error);
  case TMP_TORN:
    recovery->incomplete++;
    G_GNUC_FALLTHROUGH;
  case TMP_EMPTY: /* spares (empty or zeros): not worth a mention */
    g_ptr_array_add(recovery->remove, g_strdup(name));
    return TRUE;
  case TMP_GONE:
  default:
    return TRUE;
  }
}

/* Syncs the directories that received files, then removes the rest and
 * syncs tmp/ (the order of spool-syncer.c's invariant). */
static gboolean tmp_finish(TmpRecovery *recovery, gboolean changed,
                           GError **error) {
  PstSpool *spool = recovery->spool;
  for (guint dir = 0; dir < PST_SPOOL_N_DIRS; dir++) {
    if (recovery->synced[dir] && fsync(spool->dir_fds[dir]) != 0) {
      int saved = errno;
      g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                  "Cannot sync spool directory “%s/%s”: %s", spool->directory,
                  pst_spool_dir_name(dir), g_strerror(saved));
      return FALSE;
    }
  }
  for (guint i = 0; i < recovery->remove->len; i++) {
    const char *name = recovery->remove->pdata[i];
    if (unlinkat(spool->dir_fds[PST_SPOOL_DIR_TMP], name, 0) != 0) {
      g_autofree char *shown = g_strescape(name, NULL);
      g_warning("spool %s: cannot remove stale tmp/%s: %s", spool->directory,
                shown, g_strerror(errno));
    }
  }
  if (changed && fsync(spool->dir_fds[PST_SPOOL_DIR_TMP]) != 0) {
    int saved = errno;
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot sync spool directory “%s/tmp”: %s", spool->directory,
                g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

gboolean pst_spool_recover_tmp(PstSpool *spool, GError **error) {
  g_autoptr(GPtrArray) names =
      pst_spool_read_names(spool, PST_SPOOL_DIR_TMP, error);
  if (names == NULL)
    return FALSE;
  g_autoptr(GPtrArray) remove = g_ptr_array_new_with_free_func(g_free);
  TmpRecovery recovery = {.spool = spool, .remove = remove};
  for (guint i = 0; i < names->len; i++) {
    if (!tmp_recover_one(&recovery, names->pdata[i], error))
      return FALSE;
  }
  if (!tmp_finish(&recovery, names->len > 0, error))
    return FALSE;
  if (recovery.incomplete > 0)
    g_message("spool %s: removed %u incomplete message files from tmp/ "
              "(never acknowledged)",
              spool->directory, recovery.incomplete);
  if (recovery.duplicates > 0)
    g_message("spool %s: removed %u files from tmp/ whose messages are "
              "queued already",
              spool->directory, recovery.duplicates);
  return TRUE;
}
