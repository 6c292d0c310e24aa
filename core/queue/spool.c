/* spool.c - opening and closing the spool directory.
 *
 * Entry points: pst_spool_open() (the daemon, once at start),
 * pst_spool_open_readonly() (pst-spool-dump, admin tools), pst_spool_close(),
 * and the accessors.  Writing messages is spool-writer.c, reading them
 * spool-reader.c, making them durable spool-syncer.c.
 *
 * pst_spool_open() creates the directory and its subdirectories (mode
 * 0700; existing ones keep their mode), takes an exclusive flock() on
 * `lock` so that a second daemon on the same spool fails instead of
 * deleting the first one's files, fsyncs queue/ and hold/ (renames out of
 * tmp/ that the previous process had not synced yet become durable before
 * anything syncs tmp/: the invariant of spool-syncer.c holds across
 * restarts), recovers tmp/ (spool-recover.c: complete messages go to
 * their queue, files never acknowledged are removed), proves that tmp/ is
 * writable by creating a file, and starts the syncer.  Every failure
 * names the path and the errno text.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/durable.h"

#include "queue/spool-private.h"

static const char *const spool_dir_names[PST_SPOOL_N_DIRS] = {
    [PST_SPOOL_DIR_TMP] = "tmp",
    [PST_SPOOL_DIR_QUEUE] = "queue",
    [PST_SPOOL_DIR_HOLD] = "hold",
    [PST_SPOOL_DIR_CORRUPT] = "corrupt",
};

const char *pst_spool_dir_name(PstSpoolDir dir) {
  g_return_val_if_fail(dir < PST_SPOOL_N_DIRS, NULL);
  return spool_dir_names[dir];
}

PstSpoolDir pst_spool_dir_of_queue(PstSpoolQueue queue) {
  return queue == PST_SPOOL_QUEUE_HOLD ? PST_SPOOL_DIR_HOLD
                                       : PST_SPOOL_DIR_QUEUE;
}

static gboolean spool_io_error(GError **error, int saved, const char *what,
                               const char *directory, const char *name) {
  g_autofree char *path = name != NULL ? g_build_filename(directory, name, NULL)
                                       : g_strdup(directory);
  g_set_error(error, PST_SPOOL_ERROR,
              saved == ENOENT ? PST_SPOOL_ERROR_NOT_FOUND : PST_SPOOL_ERROR_IO,
              "%s spool directory “%s”: %s", what, path, g_strerror(saved));
  return FALSE;
}

static PstSpool *spool_new(const char *directory) {
  PstSpool *spool = g_new0(PstSpool, 1);
  spool->directory = g_strdup(directory);
  spool->root_fd = -1;
  spool->lock_fd = -1;
  for (guint i = 0; i < PST_SPOOL_N_DIRS; i++)
    spool->dir_fds[i] = -1;
  return spool;
}

/* Frees a spool whose syncer has stopped (or never started). */
static void spool_free(PstSpool *spool) {
  for (guint i = 0; i < PST_SPOOL_N_DIRS; i++) {
    if (spool->dir_fds[i] >= 0)
      close(spool->dir_fds[i]);
  }
  if (spool->root_fd >= 0)
    close(spool->root_fd);
  if (spool->lock_fd >= 0)
    close(spool->lock_fd); /* releases the flock */
  g_free(spool->directory);
  g_free(spool);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSpool, spool_free)

/* Opens each subdirectory, creating it first unless `read_only`. */
static gboolean spool_open_dirs(PstSpool *spool, gboolean read_only,
                                GError **error) {
  gboolean created = FALSE;
  for (guint i = 0; i < PST_SPOOL_N_DIRS; i++) {
    const char *name = spool_dir_names[i];
    if (!read_only) {
      if (mkdirat(spool->root_fd, name, 0700) == 0)
        created = TRUE;
      else if (errno != EEXIST)
        return spool_io_error(error, errno, "Cannot create", spool->directory,
                              name);
    }
    spool->dir_fds[i] =
        openat(spool->root_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spool->dir_fds[i] < 0)
      return spool_io_error(error, errno, "Cannot open", spool->directory,
                            name);
  }
  /* New directory entries are durable before any message relies on them. */
  if (created && fsync(spool->root_fd) != 0)
    return spool_io_error(error, errno, "Cannot sync", spool->directory, NULL);
  return TRUE;
}

static gboolean spool_lock(PstSpool *spool, GError **error) {
  spool->lock_fd = openat(spool->root_fd, "lock",
                          O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (spool->lock_fd < 0)
    return spool_io_error(error, errno, "Cannot create the lock file in",
                          spool->directory, NULL);
  if (flock(spool->lock_fd, LOCK_EX | LOCK_NB) == 0)
    return TRUE;
  if (errno != EWOULDBLOCK)
    return spool_io_error(error, errno, "Cannot lock", spool->directory, NULL);
  g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_BUSY,
              "Spool directory “%s” is in use by another process (it holds "
              "the lock on “%s/lock”)",
              spool->directory, spool->directory);
  return FALSE;
}

/* Makes what the previous process renamed into queue/ and hold/ durable
 * before tmp/ is touched. */
static gboolean spool_sync_targets(PstSpool *spool, GError **error) {
  const PstSpoolDir targets[] = {PST_SPOOL_DIR_QUEUE, PST_SPOOL_DIR_HOLD};
  for (guint i = 0; i < G_N_ELEMENTS(targets); i++) {
    if (fsync(spool->dir_fds[targets[i]]) != 0)
      return spool_io_error(error, errno, "Cannot sync", spool->directory,
                            pst_spool_dir_name(targets[i]));
  }
  return TRUE;
}

/* Creating a file is the only honest test of writability (root ignores
 * modes; a read-only mount says so only on write). */
static gboolean spool_probe_writable(PstSpool *spool, GError **error) {
  int tmp_fd = spool->dir_fds[PST_SPOOL_DIR_TMP];
  int fd =
      openat(tmp_fd, ".probe", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return spool_io_error(error, errno, "Cannot write to", spool->directory,
                          "tmp");
  close(fd);
  unlinkat(tmp_fd, ".probe", 0);
  return TRUE;
}

static PstSpool *spool_open_root(const char *directory, GError **error) {
  g_autoptr(PstSpool) spool = spool_new(directory);
  spool->root_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool->root_fd < 0) {
    spool_io_error(error, errno, "Cannot open", directory, NULL);
    return NULL;
  }
  return g_steal_pointer(&spool);
}

PstSpool *pst_spool_open(const char *directory, GError **error) {
  g_return_val_if_fail(directory != NULL, NULL);
  /* Durable: a spool whose own name is not on disk loses every message. */
  if (pst_durable_mkdir_with_parents(directory, 0700) != 0) {
    spool_io_error(error, errno, "Cannot create", directory, NULL);
    return NULL;
  }
  g_autoptr(PstSpool) spool = spool_open_root(directory, error);
  if (spool == NULL || !spool_lock(spool, error) ||
      !spool_open_dirs(spool, FALSE, error) ||
      !spool_sync_targets(spool, error) || !pst_spool_recover_tmp(spool, error) ||
      !spool_probe_writable(spool, error))
    return NULL;
  spool->syncer = pst_spool_syncer_new(
      spool->directory, spool->dir_fds[PST_SPOOL_DIR_TMP],
      spool->dir_fds[PST_SPOOL_DIR_QUEUE], spool->dir_fds[PST_SPOOL_DIR_HOLD],
      error);
  if (spool->syncer == NULL)
    return NULL;
  return g_steal_pointer(&spool);
}

PstSpool *pst_spool_open_readonly(const char *directory, GError **error) {
  g_return_val_if_fail(directory != NULL, NULL);
  g_autoptr(PstSpool) spool = spool_open_root(directory, error);
  if (spool == NULL || !spool_open_dirs(spool, TRUE, error))
    return NULL;
  return g_steal_pointer(&spool);
}

void pst_spool_close(PstSpool *spool) {
  if (spool == NULL)
    return;
  pst_spool_syncer_free(spool->syncer);
  spool_free(spool);
}

const char *pst_spool_get_directory(PstSpool *spool) {
  g_return_val_if_fail(spool != NULL, NULL);
  return spool->directory;
}

void pst_spool_get_stats(PstSpool *spool, PstSpoolStats *stats) {
  g_return_if_fail(spool != NULL && stats != NULL);
  *stats = (PstSpoolStats){0};
  if (spool->syncer != NULL)
    pst_spool_syncer_get_stats(spool->syncer, stats);
}

void pst_spool_set_batch_limit(PstSpool *spool, guint limit) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_batch_limit(spool->syncer, limit);
}

void pst_spool_set_sync_threads(PstSpool *spool, guint count) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_sync_threads(spool->syncer, count);
}

void pst_spool_set_sync_func(PstSpool *spool, PstSpoolSyncFunc func,
                             gpointer data) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_sync_func(spool->syncer, func, data);
}

void pst_spool_set_directory_sync_delay(PstSpool *spool, guint milliseconds) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_directory_sync_delay(spool->syncer, milliseconds);
}

void pst_spool_set_spare_size(PstSpool *spool, guint64 size) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_spare_size(spool->syncer, size);
}

void pst_spool_set_recycling(PstSpool *spool, gboolean on) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_recycling(spool->syncer, on);
}

void pst_spool_set_batch_recycling(PstSpool *spool, gboolean on) {
  g_return_if_fail(spool != NULL && spool->syncer != NULL);
  pst_spool_syncer_set_batch_recycling(spool->syncer, on);
}

guint pst_spool_count_spares(PstSpool *spool) {
  g_return_val_if_fail(spool != NULL && spool->syncer != NULL, 0);
  return pst_spool_syncer_count_spares(spool->syncer);
}

gboolean pst_spool_is_quiet(PstSpool *spool, guint margin) {
  g_return_val_if_fail(spool != NULL && spool->syncer != NULL, FALSE);
  return pst_spool_syncer_is_quiet(spool->syncer, margin);
}

gboolean pst_spool_settle(PstSpool *spool, const char *id, GError **error) {
  g_return_val_if_fail(spool != NULL, FALSE);
  return spool->syncer == NULL ||
         pst_spool_syncer_settle(spool->syncer, id, error);
}
