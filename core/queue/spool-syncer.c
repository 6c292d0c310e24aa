/* spool-syncer.c - group commit: one thread makes batches of messages
 * durable (see spool-syncer.h for the contract).
 *
 * Entry points: pst_spool_syncer_new(), _submit(), _free(), and the knobs
 * for tests and benchmarks (_set_batch_limit, _set_sync_threads,
 * _set_sync_func, _get_stats).
 *
 * Order per batch, which is what makes a 250 safe:
 *   1. write the rest of every file;
 *   2. start writeback of all of them (sync_file_range), so that the disk
 *      sees one burst instead of one write per fdatasync;
 *   3. fdatasync each file, from a fixed pool of helper threads at once
 *      (concurrent flushes are merged by the block layer);
 *   4. rename each into queue/ or hold/ (never replacing a file);
 *   5. fsync each target directory once;
 *   6. complete the tasks.
 * A message whose step fails gets an error and its file is unlinked; the
 * others go on.  When a directory fsync fails, every message renamed into
 * that directory in this batch is unlinked again and fails: it may not be
 * durable, and the client will retry after the 451.
 *
 * Locking: `lock` guards `pending`, `stopping`, the knobs, `stats` and
 * `syncs_pending`.  During a batch the helpers touch only their own
 * commit and the batch's copies of the knobs.  The threads never touch a
 * PstSpool or a PstSpoolWriter, only the commits they own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "queue/spool-private.h"
#include "queue/spool-syncer.h"

struct _PstSpoolSyncer {
  GMutex lock;
  GCond wake;
  GQueue pending; /* of PstSpoolCommit*, owned */
  gboolean stopping;
  guint batch_limit; /* 0 = unlimited */
  PstSpoolSyncFunc sync_func;
  gpointer sync_data;
  PstSpoolStats stats;
  GThread *thread; /* owned */

  /* Concurrent fdatasync() within a batch (syncer_sync_files). */
  guint sync_threads;   /* the knob, under `lock` */
  GThreadPool *helpers; /* owned, nullable: NULL = one at a time; only the
                         * syncer thread replaces it, between batches */
  guint syncs_pending;  /* under `lock` */
  GCond syncs_done;
  PstSpoolSyncFunc batch_sync_func; /* the knobs' values for this batch */
  gpointer batch_sync_data;

  /* Spare files: empty files in tmp/ created by this thread, so that a
   * new message costs the main thread no file creation (see below). */
  int tmp_dir_fd;        /* borrowed from the spool */
  GQueue spares;         /* of PstSpoolSpare*, owned, under `lock` */
  guint spares_serial;   /* for their names */
  gboolean spares_stuck; /* creating one failed; retried after a batch */
  gboolean spares_asked; /* a writer wanted one: we run as the right user */
};

/* An empty file in tmp/, open for writing, named "spare.PID.N". */
typedef struct {
  char *name; /* owned */
  int fd;     /* owned */
} PstSpoolSpare;

/* How many spares the thread keeps ready.  More than a batch's worth of
 * arrivals at the rates the spool serves. */
#define SPARES_WANTED 128

void pst_spool_commit_free(PstSpoolCommit *commit) {
  if (commit == NULL)
    return;
  if (commit->fd >= 0)
    close(commit->fd);
  g_free(commit->id);
  g_free(commit->tmp_name);
  g_free(commit->tmp_path);
  if (commit->tail != NULL)
    g_byte_array_unref(commit->tail);
  g_clear_object(&commit->task);
  g_clear_error(&commit->error);
  g_free(commit);
}

int pst_spool_rename_noreplace(int from_dir_fd, const char *from, int to_dir_fd,
                               const char *to) {
  if (renameat2(from_dir_fd, from, to_dir_fd, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    return -1;
  /* link() refuses an existing name too; the old name goes afterwards. */
  if (linkat(from_dir_fd, from, to_dir_fd, to, 0) != 0)
    return -1;
  unlinkat(from_dir_fd, from, 0);
  return 0;
}

static int sync_default(int fd, gboolean directory, gpointer data) {
  return directory ? fsync(fd) : fdatasync(fd);
}

/* --- Spare files ---------------------------------------------------------
 *
 * Creating a file is the most expensive thing a new message costs (an
 * inode and a directory entry, under the directory's lock, which the
 * batch's renames out of tmp/ also take).  So this thread creates empty
 * files ahead of need, while it would otherwise wait (idle, or while the
 * helpers fdatasync), and pst_spool_writer_new() only takes one.  The
 * queue id is still made when the message starts; the file gets that name
 * only when it is renamed into the queue.  Spares are replaced only as
 * they are used, so an idle spool does no work; they are unlinked on
 * close, and any left by a crash are removed on open with the rest of
 * tmp/.  None is made before the first message asks for one: the daemon
 * opens the spool as root and drops privileges afterwards, and a file
 * made in between would be root's, unreadable to the daemon later.
 */

static void spare_free(PstSpoolSpare *spare) {
  close(spare->fd);
  g_free(spare->name);
  g_free(spare);
}

/* Creates one spare if fewer than wanted are ready; FALSE when there is
 * nothing to do (enough, or creating failed: then not again until the
 * next batch).  Called without the lock. */
static gboolean syncer_add_spare(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  gboolean needed = syncer->spares_asked && !syncer->spares_stuck &&
                    !syncer->stopping && syncer->spares.length < SPARES_WANTED;
  guint serial = ++syncer->spares_serial;
  g_mutex_unlock(&syncer->lock);
  if (!needed)
    return FALSE;
  g_autofree char *name = g_strdup_printf("spare.%d.%u", (int)getpid(), serial);
  int fd = openat(syncer->tmp_dir_fd, name,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  g_mutex_lock(&syncer->lock);
  if (fd < 0) {
    /* The main thread creates files itself meanwhile, and reports why. */
    syncer->spares_stuck = TRUE;
  } else {
    PstSpoolSpare *spare = g_new0(PstSpoolSpare, 1);
    spare->name = g_steal_pointer(&name);
    spare->fd = fd;
    g_queue_push_tail(&syncer->spares, spare);
  }
  g_mutex_unlock(&syncer->lock);
  return fd >= 0;
}

gboolean pst_spool_syncer_take_spare(PstSpoolSyncer *syncer, char **name_r,
                                     int *fd_r) {
  g_mutex_lock(&syncer->lock);
  syncer->spares_asked = TRUE;
  PstSpoolSpare *spare = g_queue_pop_head(&syncer->spares);
  if (spare != NULL)
    syncer->stats.spare_files++;
  /* An idle thread refills at once; a busy one while its helpers sync. */
  if (syncer->spares.length < SPARES_WANTED / 2)
    g_cond_signal(&syncer->wake);
  g_mutex_unlock(&syncer->lock);
  if (spare == NULL)
    return FALSE;
  *name_r = g_steal_pointer(&spare->name);
  *fd_r = spare->fd;
  g_free(spare);
  return TRUE;
}

/* Unlinks the spares (on close). */
static void syncer_drop_spares(PstSpoolSyncer *syncer) {
  PstSpoolSpare *spare;
  while ((spare = g_queue_pop_head(&syncer->spares)) != NULL) {
    unlinkat(syncer->tmp_dir_fd, spare->name, 0);
    spare_free(spare);
  }
}

static void commit_fail(PstSpoolCommit *commit, const char *what, int saved) {
  if (commit->error == NULL)
    g_set_error(&commit->error, PST_SPOOL_ERROR, pst_spool_errno_code(saved),
                "Cannot %s queue file “%s” of %s: %s", what, commit->tmp_path,
                commit->id, g_strerror(saved));
}

/* Step 1: write(2) until done; short writes and EINTR are retried. */
static void commit_write_tail(PstSpoolCommit *commit) {
  const guint8 *data = commit->tail->data;
  gsize left = commit->tail->len;
  while (left > 0) {
    ssize_t written = write(commit->fd, data, left);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0) {
      commit_fail(commit, "write", written < 0 ? errno : ENOSPC);
      return;
    }
    data += written;
    left -= (gsize)written;
  }
}

/* Step 3 for one file, on a helper thread; the last one wakes the syncer. */
static void syncer_sync_one(gpointer data, gpointer user_data) {
  PstSpoolCommit *commit = data;
  PstSpoolSyncer *syncer = user_data;
  if (syncer->batch_sync_func(commit->fd, FALSE, syncer->batch_sync_data) != 0)
    commit_fail(commit, "sync", errno);
  g_mutex_lock(&syncer->lock);
  if (--syncer->syncs_pending == 0)
    g_cond_signal(&syncer->syncs_done);
  g_mutex_unlock(&syncer->lock);
}

/* Step 3: fdatasync every file that was written.  With helpers, the calls
 * are made concurrently: the block layer then merges their cache flushes
 * (and a journaling file system their commits) instead of doing one after
 * the other.  Returns the number of file syncs. */
static guint syncer_sync_files(PstSpoolSyncer *syncer, GPtrArray *batch) {
  guint syncs = 0;
  for (guint i = 0; i < batch->len; i++)
    syncs += ((PstSpoolCommit *)batch->pdata[i])->error == NULL;
  if (syncer->helpers == NULL || syncs < 2) {
    for (guint i = 0; i < batch->len; i++) {
      PstSpoolCommit *commit = batch->pdata[i];
      if (commit->error == NULL &&
          syncer->batch_sync_func(commit->fd, FALSE, syncer->batch_sync_data) !=
              0)
        commit_fail(commit, "sync", errno);
    }
    return syncs;
  }
  g_mutex_lock(&syncer->lock);
  syncer->syncs_pending = syncs;
  g_mutex_unlock(&syncer->lock);
  for (guint i = 0; i < batch->len; i++) {
    PstSpoolCommit *commit = batch->pdata[i];
    /* A push that fails (no thread could start) is done here instead. */
    if (commit->error == NULL &&
        !g_thread_pool_push(syncer->helpers, commit, NULL))
      syncer_sync_one(commit, syncer);
  }
  /* While the helpers wait on the disk, this thread makes spares. */
  g_mutex_lock(&syncer->lock);
  while (syncer->syncs_pending > 0) {
    g_mutex_unlock(&syncer->lock);
    gboolean added = syncer_add_spare(syncer);
    g_mutex_lock(&syncer->lock);
    if (!added && syncer->syncs_pending > 0)
      g_cond_wait(&syncer->syncs_done, &syncer->lock);
  }
  g_mutex_unlock(&syncer->lock);
  return syncs;
}

/* Steps 1 to 4 for one batch; returns the number of file syncs. */
static guint syncer_write_and_rename(PstSpoolSyncer *syncer, GPtrArray *batch) {
  for (guint i = 0; i < batch->len; i++)
    commit_write_tail(batch->pdata[i]);
  for (guint i = 0; batch->len > 1 && i < batch->len; i++) {
    PstSpoolCommit *commit = batch->pdata[i];
    if (commit->error == NULL)
      sync_file_range(commit->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  guint syncs = syncer_sync_files(syncer, batch);
  for (guint i = 0; i < batch->len; i++) {
    PstSpoolCommit *commit = batch->pdata[i];
    /* Closing reports delayed write errors on some file systems (NFS). */
    if (close(commit->fd) != 0 && errno != EINTR)
      commit_fail(commit, "close", errno);
    commit->fd = -1;
    if (commit->error != NULL)
      continue;
    if (pst_spool_rename_noreplace(commit->tmp_dir_fd, commit->tmp_name,
                                   commit->target_dir_fd, commit->id) != 0)
      commit_fail(commit, "rename", errno);
    else
      commit->renamed = TRUE;
  }
  return syncs;
}

/* Step 5: one fsync per directory that received files; a failure undoes
 * the renames into it.  Returns the number of directory syncs. */
static guint syncer_sync_directories(GPtrArray *batch,
                                     PstSpoolSyncFunc sync_func,
                                     gpointer sync_data) {
  guint syncs = 0;
  for (guint i = 0; i < batch->len; i++) {
    PstSpoolCommit *commit = batch->pdata[i];
    int dir_fd = commit->target_dir_fd;
    gboolean first = commit->renamed;
    for (guint j = 0; first && j < i; j++) {
      PstSpoolCommit *earlier = batch->pdata[j];
      first = !(earlier->renamed && earlier->target_dir_fd == dir_fd);
    }
    if (!first)
      continue;
    syncs++;
    if (sync_func(dir_fd, TRUE, sync_data) == 0)
      continue;
    int saved = errno;
    for (guint j = i; j < batch->len; j++) {
      PstSpoolCommit *other = batch->pdata[j];
      if (other->renamed && other->target_dir_fd == dir_fd) {
        unlinkat(dir_fd, other->id, 0);
        other->renamed = FALSE;
        g_set_error(&other->error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                    "Cannot sync the queue directory after adding %s: %s",
                    other->id, g_strerror(saved));
      }
    }
  }
  return syncs;
}

/* Runs on the task's main context: every callback of one batch. */
static gboolean syncer_complete_batch(gpointer data) {
  GPtrArray *done = data;
  for (guint i = 0; i < done->len; i++) {
    PstSpoolCommit *commit = done->pdata[i];
    if (commit->error != NULL)
      g_task_return_error(commit->task, g_steal_pointer(&commit->error));
    else
      g_task_return_boolean(commit->task, TRUE);
  }
  return G_SOURCE_REMOVE;
}

/* Step 6: one idle source per main context in the batch. */
static void syncer_dispatch(GPtrArray *batch) {
  while (batch->len > 0) {
    PstSpoolCommit *first = batch->pdata[0];
    GMainContext *context = g_task_get_context(first->task);
    GPtrArray *done =
        g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
    for (guint i = 0; i < batch->len;) {
      PstSpoolCommit *commit = batch->pdata[i];
      if (g_task_get_context(commit->task) == context)
        g_ptr_array_add(done, g_ptr_array_steal_index(batch, i));
      else
        i++;
    }
    GSource *source = g_idle_source_new();
    g_source_set_priority(source, G_PRIORITY_DEFAULT);
    g_source_set_callback(source, syncer_complete_batch, done,
                          (GDestroyNotify)g_ptr_array_unref);
    g_source_set_static_name(source, "pst-spool-commit");
    g_source_attach(source, context);
    g_source_unref(source);
  }
}

/* Makes the helper pool match the knob; pools change only between
 * batches, so a thread is never created per message. */
static void syncer_update_helpers(PstSpoolSyncer *syncer, guint wanted) {
  guint current = syncer->helpers != NULL
                      ? g_thread_pool_get_max_threads(syncer->helpers)
                      : 0;
  if (wanted < 2)
    wanted = 0;
  if (wanted == current)
    return;
  if (syncer->helpers != NULL)
    g_thread_pool_free(g_steal_pointer(&syncer->helpers), FALSE, TRUE);
  if (wanted == 0)
    return;
  g_autoptr(GError) error = NULL;
  syncer->helpers =
      g_thread_pool_new(syncer_sync_one, syncer, (gint)wanted, TRUE, &error);
  if (syncer->helpers == NULL)
    g_warning("spool: cannot start %u sync threads, syncing one file at a "
              "time: %s",
              wanted, error->message);
}

static void syncer_run_batch(PstSpoolSyncer *syncer, GPtrArray *batch) {
  /* The knobs hold for a whole batch (helpers read these copies). */
  g_mutex_lock(&syncer->lock);
  syncer->batch_sync_func = syncer->sync_func;
  syncer->batch_sync_data = syncer->sync_data;
  guint sync_threads = syncer->sync_threads;
  g_mutex_unlock(&syncer->lock);
  syncer_update_helpers(syncer, sync_threads);

  guint file_syncs = syncer_write_and_rename(syncer, batch);
  guint directory_syncs = syncer_sync_directories(
      batch, syncer->batch_sync_func, syncer->batch_sync_data);
  guint failures = 0;
  for (guint i = 0; i < batch->len; i++) {
    PstSpoolCommit *commit = batch->pdata[i];
    if (commit->error == NULL)
      continue;
    failures++;
    unlinkat(commit->tmp_dir_fd, commit->tmp_name, 0);
  }

  g_mutex_lock(&syncer->lock);
  syncer->stats.batches++;
  syncer->stats.commits += batch->len - failures;
  syncer->stats.failures += failures;
  syncer->stats.file_syncs += file_syncs;
  syncer->stats.directory_syncs += directory_syncs;
  syncer->spares_stuck = FALSE;
  g_mutex_unlock(&syncer->lock);
  syncer_dispatch(batch);
}

/* Takes the next batch, waiting for one; NULL when stopping and idle. */
static GPtrArray *syncer_take_batch(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  while (g_queue_is_empty(&syncer->pending) && !syncer->stopping) {
    /* Idle: make spares, one at a time, looking for commits in between. */
    g_mutex_unlock(&syncer->lock);
    gboolean added = syncer_add_spare(syncer);
    g_mutex_lock(&syncer->lock);
    if (!added && g_queue_is_empty(&syncer->pending) && !syncer->stopping)
      g_cond_wait(&syncer->wake, &syncer->lock);
  }
  GPtrArray *batch = NULL;
  if (!g_queue_is_empty(&syncer->pending)) {
    batch =
        g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
    while (!g_queue_is_empty(&syncer->pending) &&
           (syncer->batch_limit == 0 || batch->len < syncer->batch_limit))
      g_ptr_array_add(batch, g_queue_pop_head(&syncer->pending));
  }
  g_mutex_unlock(&syncer->lock);
  return batch;
}

static gpointer syncer_thread(gpointer data) {
  PstSpoolSyncer *syncer = data;
  GPtrArray *batch;
  while ((batch = syncer_take_batch(syncer)) != NULL) {
    syncer_run_batch(syncer, batch);
    g_ptr_array_unref(batch);
  }
  return NULL;
}

PstSpoolSyncer *pst_spool_syncer_new(int tmp_dir_fd, GError **error) {
  PstSpoolSyncer *syncer = g_new0(PstSpoolSyncer, 1);
  syncer->tmp_dir_fd = tmp_dir_fd;
  g_queue_init(&syncer->spares);
  g_mutex_init(&syncer->lock);
  g_cond_init(&syncer->wake);
  g_queue_init(&syncer->pending);
  g_cond_init(&syncer->syncs_done);
  syncer->sync_func = sync_default;
  syncer->sync_threads = PST_SPOOL_SYNC_THREADS;
  syncer->thread =
      g_thread_try_new("pst-spool-sync", syncer_thread, syncer, error);
  if (syncer->thread == NULL) {
    g_prefix_error(error, "Cannot start the spool's sync thread: ");
    g_mutex_clear(&syncer->lock);
    g_cond_clear(&syncer->wake);
    g_cond_clear(&syncer->syncs_done);
    g_free(syncer);
    return NULL;
  }
  return syncer;
}

void pst_spool_syncer_submit(PstSpoolSyncer *syncer, PstSpoolCommit *commit) {
  g_return_if_fail(syncer != NULL && commit != NULL);
  g_mutex_lock(&syncer->lock);
  g_warn_if_fail(!syncer->stopping);
  g_queue_push_tail(&syncer->pending, commit);
  g_cond_signal(&syncer->wake);
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_free(PstSpoolSyncer *syncer) {
  if (syncer == NULL)
    return;
  g_mutex_lock(&syncer->lock);
  syncer->stopping = TRUE;
  g_cond_signal(&syncer->wake);
  g_mutex_unlock(&syncer->lock);
  g_thread_join(syncer->thread);
  syncer_drop_spares(syncer);
  if (syncer->helpers != NULL)
    g_thread_pool_free(syncer->helpers, FALSE, TRUE);
  g_mutex_clear(&syncer->lock);
  g_cond_clear(&syncer->wake);
  g_cond_clear(&syncer->syncs_done);
  g_free(syncer);
}

void pst_spool_syncer_set_batch_limit(PstSpoolSyncer *syncer, guint limit) {
  g_mutex_lock(&syncer->lock);
  syncer->batch_limit = limit;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_set_sync_threads(PstSpoolSyncer *syncer, guint count) {
  g_mutex_lock(&syncer->lock);
  syncer->sync_threads = count;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_set_sync_func(PstSpoolSyncer *syncer,
                                    PstSpoolSyncFunc func, gpointer data) {
  g_mutex_lock(&syncer->lock);
  syncer->sync_func = func != NULL ? func : sync_default;
  syncer->sync_data = func != NULL ? data : NULL;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_get_stats(PstSpoolSyncer *syncer, PstSpoolStats *stats) {
  g_mutex_lock(&syncer->lock);
  *stats = syncer->stats;
  g_mutex_unlock(&syncer->lock);
}
