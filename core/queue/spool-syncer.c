/* spool-syncer.c - group commit: batches of messages made durable by the
 * syncer thread, and by a second one while it is busy (see spool-syncer.h
 * for the contract).
 *
 * Entry points: pst_spool_syncer_new(), _submit(), _settle(), _free(), and
 * the knobs for tests and benchmarks (_set_batch_limit, _set_sync_threads,
 * _set_sync_func, _set_directory_sync_delay, _set_spare_size,
 * _count_spares, _get_stats).
 *
 * One journal commit per message.  A message's file is a spare whose name
 * in tmp/ was made durable before a writer got it (spares are made in
 * batches, then tmp/ is fsynced once, then they are handed out).  Order
 * per batch, which is what makes a 250 safe:
 *   1. write the rest of every file (content, trailer, footer: the footer's
 *      CRC and the content checksum mark the file complete);
 *   2. start writeback of all of them (sync_file_range), so that the disk
 *      sees one burst instead of one write per fdatasync;
 *   3. fdatasync each file, from a fixed pool of helper threads at once
 *      (concurrent flushes are merged by the block layer); a batch of one
 *      file is synced by this thread (no hand-off on the path to its 250);
 *   4. rename each into queue/ or hold/ (never replacing a file);
 *   5. complete the tasks: the sessions answer 250.
 * Batches overlap: while the syncer thread runs one, commits that arrive
 * are taken at once by a second thread (`pst-spool-sync2`) as a batch of
 * their own, instead of waiting for the running batch to finish (steps 1
 * to 5) before their own starts.  Their writes and fdatasyncs then go to
 * the file system while the first batch's are in flight, and its journal
 * merges them into its running or next commit.  Each batch keeps the
 * order above for its own files, so a 250 still follows its file's
 * fdatasync and rename; batches share nothing but the spool's state,
 * under the locks below.  The second thread only takes batches while the
 * syncer thread is in one of several files (a batch of one, under light
 * load, is short: what arrives meanwhile waits and forms the next batch,
 * one flush for several, as before), or syncs directories while idle (the
 * second's renames wait for `dir_lock` only while tmp/ and the targets
 * renamed into meanwhile are synced, and its fdatasyncs go with those
 * flushes).  An idle spool is served by the first alone, and only the
 * syncer thread publishes spares while idle, replaces the helper pool (never
 * while the second thread runs a batch) and settles
 * when idle.
 * After step 3 the message survives a power cut under one of two names: a
 * rename is durable only once its target directory is fsynced, and until
 * then the old, durable name in tmp/ holds the complete file, which
 * recovery at start-up (spool-recover.c) moves into the queue.  The fsyncs
 * of queue/, hold/ and tmp/ are deferred and batched: while commits keep
 * coming, PST_SPOOL_DIRECTORY_SYNC_DELAY_MS after the first rename they
 * cover, while the helpers of a batch wait on the disk (they share its
 * flush); when the spool is idle, twice that; and whenever spares are to
 * be published.  They only bound how many messages a power cut can bring
 * back to be delivered twice.
 *
 * THE INVARIANT: tmp/ is fsynced only after every directory that received
 * a rename out of tmp/ since its own last fsync has been fsynced (with
 * success).  Otherwise a cut would find a message in neither directory:
 * tmp/'s durable entries would no longer name it, the target's not yet.
 * syncer_settle_locked() is the only place that fsyncs tmp/, and holds
 * `dir_lock`, which the renames (step 4) take too, so no rename slips in
 * between the targets' fsyncs and tmp/'s: under the lock it syncs again
 * every target renamed into since its last fsync began, then tmp/.  The
 * bulk of the targets' syncs runs before, without `dir_lock`
 * (syncer_settle()), so that a batch finishing meanwhile renames at once
 * instead of waiting for two fsyncs; a rename during such a sync counts as
 * not covered by it.  spool.c keeps the invariant across restarts: it
 * fsyncs queue/ and hold/ before touching tmp/.
 *
 * Exceptions, which wait for a directory fsync before completing: a file
 * the main thread created itself (no spare was ready) or a body replaced
 * at end of data (tmp/ID.body): their tmp/ names were never made durable,
 * so their target directory is fsynced in step 4 (the old protocol).
 *
 * Failures.  A failed write or fdatasync fails the message (451), and its
 * file is unlinked: never retried and trusted.  A failed fsync of a
 * target directory after acknowledged renames cannot lose them: each is
 * complete and durable under its tmp/ name as long as tmp/ is not synced.
 * So from then on tmp/ is never synced again by this process (no spares
 * are made, new messages wait for their own directory sync, which fails
 * them if the disk still fails), the failure is logged, and the deferred
 * sync is retried every second, logged each time it fails: a retry that
 * succeeds is not trusted (some file systems forget a failed write-back),
 * which is safe because nothing depends on it; the next start fsyncs the
 * targets again before it touches tmp/.  A failed fsync of tmp/ only
 * leaves old names behind (duplicates after a cut, never a loss); the
 * spares it was to publish are removed unused.
 *
 * Locking: `lock` guards `pending`, `stopping`, the knobs, `stats`, the
 * threads' states (`running`, `overlap_running`, the sleeping flags), each
 * batch's `syncs_pending`, the spare queues and counts (and each chunk's
 * `spare_syncs_pending`) and the directory state (rename counts,
 * departed ids, `tmp_frozen`).  `dir_lock` is taken before
 * `lock`, by whoever renames out of tmp/ or syncs tmp/; `target_lock`
 * after `dir_lock` and before `lock`, by whoever syncs queue/ or hold/.
 * During a batch the helpers touch only their own commit and its batch's
 * copies of the knobs.  The threads never touch a PstSpool or a
 * PstSpoolWriter, only the commits they own.  The spare thread (see
 * "Spare files" below) and its pool touch only the spares of the chunk
 * they make until they push them to `fresh`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool-completion.h"
#include "queue/spool-private.h"
#include "queue/spool-syncer.h"

/* queue/ and hold/: where files go from tmp/. */
#define SYNCER_TARGETS 2

struct _PstSpoolSyncer {
  GMutex lock;
  GCond wake;
  GQueue pending; /* of PstSpoolCommit*, owned */
  gboolean stopping;
  gboolean sleeping; /* the thread waits on `wake` (only then signalled) */
  gboolean running;  /* the syncer thread is in a batch */
  GThread *overlap;  /* owned: runs batches while `running` */
  GCond overlap_wake;
  gboolean overlap_sleeping; /* it waits on `overlap_wake` */
  gboolean overlap_running;  /* it is in a batch */
  guint batch_limit; /* 0 = unlimited */
  PstSpoolSyncFunc sync_func;
  gpointer sync_data;
  PstSpoolStats stats;
  GThread *thread; /* owned */
  PstSpoolCompletions *completions; /* owned: step 5 */

  /* Concurrent fdatasync() within a batch (syncer_sync_files). */
  guint sync_threads;   /* the knob, under `lock` */
  GThreadPool *helpers; /* owned, nullable: NULL = one at a time; only the
                         * syncer thread replaces it, between its batches
                         * and while the second thread runs none */
  GCond syncs_done;     /* a batch's helpers are done, or a thread left
                         * its batch; broadcast */

  /* Directories (see THE INVARIANT above).  All borrowed. */
  const char *spool; /* the spool's path, for log lines */
  int tmp_dir_fd;
  int target_fds[SYNCER_TARGETS];
  GMutex dir_lock;    /* renames out of tmp/ and tmp/'s sync */
  GMutex target_lock; /* the targets' fsyncs, one at a time: an error
                       * reaches the one that decides on tmp/ */
  guint settles;      /* syncer_settle() calls running, under `lock` */
  /* Renames into each target so far, and how many of them its last
   * successful fsync covered (those done when it began): it is dirty
   * while the two differ. */
  guint64 renames[SYNCER_TARGETS];
  guint64 synced[SYNCER_TARGETS];
  GHashTable *departed; /* ids renamed out of tmp/ since tmp/'s fsync */
  gboolean tmp_dirty;   /* tmp/ changed (a departure) since its fsync */
  gint64 dirty_since;   /* monotonic µs of the oldest unsynced change */
  gint64 sync_delay;    /* µs: the knob */
  gboolean tmp_frozen;  /* a target's fsync failed: tmp/ stays as is */

  /* Spare files: files in tmp/ made ahead by a thread of their own, so
   * that a new message costs the main thread no file creation and its
   * fdatasync no journal commit (see below). */
  GQueue spares;         /* of PstSpoolSpare*, owned: durable, ready */
  GQueue fresh;          /* of PstSpoolSpare*, owned: name not yet durable */
  guint spares_serial;   /* for their names ... */
  int pid;               /* ... with the process id, taken once */
  GQueue used;           /* of PstSpoolUsed*, owned: delivered messages'
                          * files in tmp/ to recycle, oldest first */
  guint used_serial;     /* for their names */
  guint64 tmp_syncs;     /* successful fsyncs of tmp/ so far */
  gboolean recycling;    /* the knob: delivered files become spares */
  gboolean batch_recycling; /* the knob: also while messages come in
                             * batches of several */
  guint spares_solo;     /* recent commits in batches of one ... */
  guint spares_grouped;  /* ... and of several (halved at each chunk) */
  guint spares_making;   /* being made by the spare thread */
  gboolean spares_stuck; /* creating one failed; retried after a batch */
  gboolean spares_asked; /* a writer wanted one: we run as the right user */
  gboolean spares_short; /* a writer found none since the last chunk */
  guint spares_fitting;  /* recent messages that fit a spare's zeros ... */
  guint spares_outgrown; /* ... and that did not (halved at each chunk) */
  guint64 spare_size;    /* the knob: zeros in a new spare */
  GThread *spare_thread; /* owned: makes them */
  GCond spare_wake;
  gboolean spare_sleeping;    /* it waits on `spare_wake` */
  GThreadPool *spare_syncers; /* owned, nullable: fdatasync a chunk */
  guint spare_syncs_pending;  /* under `lock` */
  GCond spare_synced;         /* they are done */
};

/* One batch: its commits and what its helpers need. */
struct _PstSpoolBatch {
  PstSpoolSyncer *syncer;
  GPtrArray *commits;        /* of PstSpoolCommit*, owned */
  PstSpoolSyncFunc sync_func; /* the knobs' values for this batch */
  gpointer sync_data;
  guint syncs_pending; /* helpers' fdatasyncs not done; under `lock` */
};
typedef struct _PstSpoolBatch PstSpoolBatch;

/* A file in tmp/, open for writing, named "spare.PID.N": `size` zero
 * octets (0: empty). */
typedef struct {
  char *name;      /* owned */
  char *used_name; /* owned, nullable: its name until it is renamed to
                    * `name` (a recycled file, once its zeros are
                    * durable) */
  int fd;          /* owned */
  guint64 size;    /* its zeros, durable */
  gboolean failed; /* their fdatasync failed */
  gboolean recycled; /* a delivered message's file (zeroed or emptied) */
} PstSpoolSpare;

/* A delivered message's file, renamed from its queue into tmp/ as
 * "used.PID.N" to be recycled as a spare (see "Recycling" below). */
typedef struct {
  char *name;         /* owned */
  guint64 generation; /* tmp/ syncs done before its rename */
} PstSpoolUsed;

/* How many spares the thread keeps ready (more than a batch's worth of
 * arrivals at the rates the spool serves), how many it makes at once
 * (when that many are missing; their zeros synced together), and when
 * they are published (one fsync of tmp/ for each chunk, or at once when
 * few are left ready).  When a writer found none, the next chunk is of
 * empty spares: cheap, so that sessions do not go on without while zeros
 * are written; so it is when most recent messages were larger than a
 * spare (their zeros would be written for nothing) or came in batches of
 * several (group commit shares their journal commit already). */
#define SPARES_WANTED 128
#define SPARE_SYNC_THREADS 8
#define SPARES_CHUNK 32
#define SPARES_LOW 32
/* At most this many delivered files wait in tmp/ to be recycled (more
 * would never be needed before the next ones arrive), each at most
 * RECYCLE_MAX_SIZE octets (a larger spare would make the reader check
 * a large gap of zeros after a small message). */
#define USED_WANTED (SPARES_WANTED + SPARES_CHUNK)
#define RECYCLE_MAX_SIZE (128 * 1024)
/* Recycled spares are whole pages. */
#define RECYCLE_PAGE 4096

/* While tmp/ is frozen, the deferred sync is retried this often. */
#define FROZEN_RETRY_US G_USEC_PER_SEC

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

static int syncer_target_index(PstSpoolSyncer *syncer, int dir_fd) {
  for (int i = 0; i < SYNCER_TARGETS; i++) {
    if (syncer->target_fds[i] == dir_fd)
      return i;
  }
  g_return_val_if_reached(0);
}

static const char *syncer_target_name(int index) {
  return index == 0 ? "queue" : "hold";
}

/* --- Spare files ---------------------------------------------------------
 *
 * Creating a file is the most expensive thing a new message costs (an
 * inode and a directory entry, under the directory's lock, which the
 * batch's renames out of tmp/ also take), and writing into an empty file
 * makes its fdatasync commit the journal (the file's new size and blocks)
 * as well as flush its data: two cache flushes.  So the spare thread
 * (`pst-spool-spare`) creates files ahead of need, in chunks, each filled
 * with PST_SPOOL_SPARE_SIZE zero octets that are written out and
 * fdatasynced (sync_file_range() on the chunk first: one burst) before the
 * spare is "fresh"; a message that fits then overwrites blocks already
 * allocated, in a file whose size does not change, and its fdatasync is
 * one flush.  A fresh spare waits for the next fsync of tmp/
 * (syncer_settle_locked(), on the syncer threads) to make its name
 * durable; only then is it handed out, so that a message written into it
 * needs no directory sync before its 250.  The queue id is still made
 * when the message starts; the file gets that name only when it is
 * renamed into the queue.  Spares are replaced only as they are used, so
 * an idle spool does no work; they are unlinked on close, and any left by
 * a crash are removed on open (empty or all zeros: never acknowledged).
 * None is made before the first message asks for one: the daemon opens
 * the spool as root and drops privileges afterwards, and a file made in
 * between would be root's, unreadable to the daemon later.  No session
 * waits for this thread: a writer that finds no spare creates its file.
 *
 * Recycling: a delivered message's file becomes a spare instead of being
 * unlinked while a new file is created (no inode or block allocated or
 * released; a 64 KiB message's file fits the next one).  The unsynced
 * removal (pst_spool_syncer_recycle(), from spool-manage.c) renames
 * queue/ID to tmp/used.PID.N under `dir_lock`, counts its queue as
 * changed and stamps it with the number of tmp/ syncs so far.  Only once
 * a settle has synced that queue and then tmp/ (`tmp_syncs` moved on) is
 * the file overwritten: its only durable name is then used.*, which
 * recovery removes unread whatever it holds, so the old message is never
 * delivered again nor taken for a damaged one.  The spare thread takes
 * such files first for a chunk (spare_recycle()): zeros over all of it
 * (or, in a chunk of empty spares, a truncation to nothing of a file too
 * large to zero or with the spare size knob at 0), the
 * chunk's fdatasync (which makes a truncation durable too), then the
 * rename to a spare's name (spares_rename_recycled()), published like
 * the others.  Not while messages come in batches of several
 * (syncer_recycling_wanted()).
 */

static void spare_free(PstSpoolSpare *spare) {
  close(spare->fd);
  g_free(spare->name);
  g_free(spare->used_name);
  g_free(spare);
}

/* Unlinks a spare that is not to be handed out, under whichever name it
 * has now. */
static void spare_drop(PstSpoolSyncer *syncer, PstSpoolSpare *spare) {
  unlinkat(syncer->tmp_dir_fd,
           spare->used_name != NULL ? spare->used_name : spare->name, 0);
  spare_free(spare);
}

/* Unlinks the spares of `queue` (on close, or unpublished ones). */
static void syncer_drop_spares(PstSpoolSyncer *syncer, GQueue *queue,
                               guint count) {
  PstSpoolSpare *spare;
  while (count-- > 0 && (spare = g_queue_pop_head(queue)) != NULL)
    spare_drop(syncer, spare);
}

static void used_free(PstSpoolUsed *used) {
  g_free(used->name);
  g_free(used);
}

/* Unlinks the delivered files waiting to be recycled (on close, or when
 * tmp/ is frozen: they would never be safe to overwrite); under `lock`
 * or with the threads stopped. */
static void syncer_drop_used(PstSpoolSyncer *syncer) {
  PstSpoolUsed *used;
  while ((used = g_queue_pop_head(&syncer->used)) != NULL) {
    unlinkat(syncer->tmp_dir_fd, used->name, 0);
    used_free(used);
  }
}

/* How many spares to make now, 0 for none; under `lock`. */
static guint syncer_spares_needed(PstSpoolSyncer *syncer) {
  guint have =
      syncer->spares.length + syncer->fresh.length + syncer->spares_making;
  if (!syncer->spares_asked || syncer->spares_stuck || syncer->stopping ||
      syncer->tmp_frozen || have + SPARES_CHUNK > SPARES_WANTED)
    return 0;
  return SPARES_CHUNK;
}

/* Writes `size` zeros into a new file; FALSE with errno set. */
static gboolean spare_fill(int fd, guint64 size) {
  static const guint8 zeros[16 * 1024];
  for (guint64 offset = 0; offset < size;) {
    ssize_t written = pwrite(fd, zeros, (gsize)MIN(sizeof zeros, size - offset),
                             (off_t)offset);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0) {
      if (written == 0)
        errno = ENOSPC;
      return FALSE;
    }
    offset += (guint64)written;
  }
  return TRUE;
}

/* Creates spare.PID.`serial` with `size` zeros (not yet synced); NULL on
 * failure, nothing left behind. */
static PstSpoolSpare *spare_create(PstSpoolSyncer *syncer, guint serial,
                                   guint64 size) {
  g_autofree char *name = g_strdup_printf("spare.%d.%u", syncer->pid, serial);
  int fd = openat(syncer->tmp_dir_fd, name,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return NULL;
  if (size > 0 && !spare_fill(fd, size)) {
    close(fd);
    unlinkat(syncer->tmp_dir_fd, name, 0);
    return NULL;
  }
  PstSpoolSpare *spare = g_new0(PstSpoolSpare, 1);
  spare->name = g_steal_pointer(&name);
  spare->fd = fd;
  spare->size = size;
  return spare;
}

/* fdatasync()s one spare, on a thread of the spare pool. */
static void spare_sync_one(gpointer data, gpointer user_data) {
  PstSpoolSpare *spare = data;
  PstSpoolSyncer *syncer = user_data;
  spare->failed = fdatasync(spare->fd) != 0;
  g_mutex_lock(&syncer->lock);
  if (--syncer->spare_syncs_pending == 0)
    g_cond_broadcast(&syncer->spare_synced);
  g_mutex_unlock(&syncer->lock);
}

/* fdatasync()s the spares of `made` at once, from the spare pool: their
 * data was written out before, their journal commit is shared, and the
 * block layer merges their cache flushes; one at a time, each would wait
 * for a flush of its own. */
static void spares_sync(PstSpoolSyncer *syncer, GPtrArray *made) {
  g_mutex_lock(&syncer->lock);
  syncer->spare_syncs_pending = made->len;
  g_mutex_unlock(&syncer->lock);
  for (guint i = 0; i < made->len; i++) {
    if (syncer->spare_syncers == NULL ||
        !g_thread_pool_push(syncer->spare_syncers, made->pdata[i], NULL))
      spare_sync_one(made->pdata[i], syncer);
  }
  g_mutex_lock(&syncer->lock);
  while (syncer->spare_syncs_pending > 0)
    g_cond_wait(&syncer->spare_synced, &syncer->lock);
  g_mutex_unlock(&syncer->lock);
}

/* Overwrites the delivered file tmp/USED with zeros, all of it and up
 * to whole pages (at least `min_size` octets), as spare.PID.`serial` to
 * be; or, for a chunk of empty spares (`min_size` 0) when it is over
 * RECYCLE_MAX_SIZE or the spare size knob is 0, truncates it to
 * nothing: its old content is gone from the page cache at once, and from
 * the disk with the chunk's fdatasync (which makes a truncation durable
 * like any change of size).  Only a regular file with no other link, of
 * at most RECYCLE_MAX_SIZE octets to be zeroed, that the daemon can open
 * for writing (so the same owner and mode as a new one) is taken; NULL
 * otherwise, the file unlinked (what its delivery did before). */
static PstSpoolSpare *spare_recycle(PstSpoolSyncer *syncer, PstSpoolUsed *used,
                                    guint serial, guint64 min_size) {
  int fd = openat(syncer->tmp_dir_fd, used->name,
                  O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  gboolean ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                st.st_nlink == 1;
  /* Zeros keep the file's blocks allocated, so that the next message of
   * about its size overwrites them and its fdatasync is one cache flush:
   * also in a chunk of empty spares (messages larger than a spare, such
   * as 64 KiB ones at one session: emptying them instead cost a third of
   * the rate, bench/README.md round 12).  A file is emptied only when it
   * is too large to zero or spares carry no zeros at all (the knob at 0). */
  gboolean zero = ok && st.st_size <= RECYCLE_MAX_SIZE &&
                  (min_size > 0 || syncer->spare_size > 0);
  ok = ok && (zero || min_size == 0);
  guint64 size = zero ? ((guint64)st.st_size + RECYCLE_PAGE - 1) /
                            RECYCLE_PAGE * RECYCLE_PAGE
                      : 0;
  size = MAX(size, min_size);
  if (ok)
    ok = size > 0 ? spare_fill(fd, size) : ftruncate(fd, 0) == 0;
  if (!ok) {
    if (fd >= 0)
      close(fd);
    unlinkat(syncer->tmp_dir_fd, used->name, 0);
    g_clear_pointer(&used->name, g_free);
    return NULL;
  }
  PstSpoolSpare *spare = g_new0(PstSpoolSpare, 1);
  spare->name = g_strdup_printf("spare.%d.%u", syncer->pid, serial);
  spare->used_name = g_steal_pointer(&used->name);
  spare->fd = fd;
  spare->size = size;
  spare->recycled = TRUE;
  return spare;
}

/* Gives the recycled spares of `made` their spare names, now that their
 * zeros are durable: before, a crash finds them as used.* and removes
 * them whatever they hold; after, all zeros. */
static void spares_rename_recycled(PstSpoolSyncer *syncer, GPtrArray *made) {
  for (guint i = 0; i < made->len;) {
    PstSpoolSpare *spare = made->pdata[i];
    if (spare->used_name == NULL) {
      i++;
    } else if (pst_spool_rename_noreplace(syncer->tmp_dir_fd, spare->used_name,
                                          syncer->tmp_dir_fd,
                                          spare->name) == 0) {
      g_clear_pointer(&spare->used_name, g_free);
      i++;
    } else {
      spare_drop(syncer, g_ptr_array_steal_index(made, i));
    }
  }
}

/* Makes up to `count` spares, durable (their names are not yet): first
 * from the delivered files of `used` (taken; see "Recycling"), then new
 * ones of `size` zeros; fewer when one cannot be made (the main thread
 * creates files itself meanwhile, and reports why). */
static GPtrArray *spares_make(PstSpoolSyncer *syncer, guint first, guint count,
                              guint64 size, GPtrArray *used) {
  GPtrArray *made = g_ptr_array_new();
  gboolean sync = size > 0;
  for (guint i = 0; i < used->len; i++) {
    PstSpoolUsed *file = used->pdata[i];
    PstSpoolSpare *spare =
        made->len < count
            ? spare_recycle(syncer, file, first + made->len, size)
            : NULL;
    if (spare != NULL)
      g_ptr_array_add(made, spare);
    else if (file->name != NULL)
      unlinkat(syncer->tmp_dir_fd, file->name, 0);
    sync = sync || spare != NULL;
  }
  while (made->len < count) {
    PstSpoolSpare *spare = spare_create(syncer, first + made->len, size);
    if (spare == NULL)
      break;
    g_ptr_array_add(made, spare);
  }
  if (!sync)
    return made;
  /* The chunk's zeros go to the disk in one burst, then each file's
   * size and blocks (or a recycled file's truncation) are made durable. */
  g_autoptr(GPtrArray) filled = g_ptr_array_new();
  for (guint i = 0; i < made->len; i++) {
    PstSpoolSpare *spare = made->pdata[i];
    if (spare->size == 0 && !spare->recycled)
      continue;
    if (spare->size > 0)
      sync_file_range(spare->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    g_ptr_array_add(filled, spare);
  }
  spares_sync(syncer, filled);
  for (guint i = 0; i < made->len;) {
    PstSpoolSpare *spare = made->pdata[i];
    if (!spare->failed)
      i++;
    else
      spare_drop(syncer, g_ptr_array_steal_index(made, i));
  }
  spares_rename_recycled(syncer, made);
  return made;
}

/* The delivered files that may be overwritten now, up to `count`: those
 * renamed into tmp/ before its last fsync (see "Recycling"); under
 * `lock`.  The caller owns what it gets and frees it. */
static GPtrArray *syncer_take_used(PstSpoolSyncer *syncer, guint count) {
  GPtrArray *taken = g_ptr_array_new_with_free_func((GDestroyNotify)used_free);
  PstSpoolUsed *used;
  while (taken->len < count &&
         (used = g_queue_peek_head(&syncer->used)) != NULL &&
         used->generation < syncer->tmp_syncs)
    g_ptr_array_add(taken, g_queue_pop_head(&syncer->used));
  return taken;
}

/* The spare thread: makes chunks of spares while fewer than wanted are
 * ready or on their way, and wakes the syncer thread to publish them when
 * few are ready. */
static gpointer syncer_spare_thread(gpointer data) {
  PstSpoolSyncer *syncer = data;
  g_mutex_lock(&syncer->lock);
  while (!syncer->stopping) {
    guint count = syncer_spares_needed(syncer);
    if (count == 0) {
      syncer->spare_sleeping = TRUE;
      g_cond_wait(&syncer->spare_wake, &syncer->lock);
      syncer->spare_sleeping = FALSE;
      continue;
    }
    /* Short of spares: empty ones, at once.  Zeros only pay when most
     * messages fit them (a larger one grows the file all the same): the
     * recent ones decide. */
    gboolean zeros = !syncer->spares_short &&
                     syncer->spares_fitting >= syncer->spares_outgrown;
    guint64 size = zeros ? syncer->spare_size : 0;
    /* Delivered files are recycled first (emptied when sessions wait:
     * quicker than creating files). */
    g_autoptr(GPtrArray) used = syncer_take_used(syncer, count);
    syncer->spares_short = FALSE;
    syncer->spares_fitting /= 2;
    syncer->spares_outgrown /= 2;
    syncer->spares_solo /= 2;
    syncer->spares_grouped /= 2;
    guint first = syncer->spares_serial + 1;
    syncer->spares_serial += count;
    syncer->spares_making = count;
    g_mutex_unlock(&syncer->lock);
    g_autoptr(GPtrArray) made = spares_make(syncer, first, count, size, used);
    g_mutex_lock(&syncer->lock);
    syncer->spares_making = 0;
    if (made->len < count)
      syncer->spares_stuck = TRUE;
    for (guint i = 0; i < made->len; i++)
      g_queue_push_tail(&syncer->fresh, made->pdata[i]);
    /* Frozen or stopping meanwhile: never published. */
    if (syncer->tmp_frozen || syncer->stopping)
      syncer_drop_spares(syncer, &syncer->fresh, G_MAXUINT);
    if (syncer->sleeping && syncer->spares.length < SPARES_LOW)
      g_cond_signal(&syncer->wake);
  }
  g_mutex_unlock(&syncer->lock);
  return NULL;
}

gboolean pst_spool_syncer_take_spare(PstSpoolSyncer *syncer, char **name_r,
                                     int *fd_r, guint64 *size_r) {
  g_mutex_lock(&syncer->lock);
  syncer->spares_asked = TRUE;
  PstSpoolSpare *spare = g_queue_pop_head(&syncer->spares);
  if (spare != NULL)
    syncer->stats.spare_files++;
  else if (syncer->spares_serial > 0)
    syncer->spares_short = TRUE;
  /* The syncer thread publishes what is fresh while idle, and goes to
   * sleep only with enough ready: woken only when they run low. */
  gboolean wake = syncer->sleeping && syncer->spares.length < SPARES_LOW;
  gboolean make = syncer->spare_sleeping && syncer_spares_needed(syncer) > 0;
  g_mutex_unlock(&syncer->lock);
  if (wake)
    g_cond_signal(&syncer->wake);
  if (make)
    g_cond_signal(&syncer->spare_wake);
  if (spare == NULL)
    return FALSE;
  *name_r = g_steal_pointer(&spare->name);
  *fd_r = spare->fd;
  *size_r = spare->size;
  g_free(spare);
  return TRUE;
}

/* Whether a delivered file is worth recycling now; under `lock`.  Not
 * while tmp/ is frozen (it would never be safe to overwrite), nor when
 * enough wait, nor while messages come in batches of several unless the
 * knob says so: their spares are empty (group commit shares the journal
 * commit already), and recycling one costs three renames per message, a
 * truncation and its fdatasync instead of one rename, a create and an
 * unlink; measured, that is dearer on ext4 with a journal, and without
 * one saves CPU (no create scanning past recently freed inodes) for more
 * cache flushes (bench/README.md, round 12). */
static gboolean syncer_recycling_wanted(PstSpoolSyncer *syncer) {
  return syncer->recycling && syncer->spares_asked && !syncer->tmp_frozen &&
         !syncer->stopping && syncer->used.length < USED_WANTED &&
         (syncer->spares_solo >= syncer->spares_grouped ||
          syncer->batch_recycling);
}

gboolean pst_spool_syncer_recycle(PstSpoolSyncer *syncer, int dir_fd,
                                  const char *id) {
  int target = syncer_target_index(syncer, dir_fd);
  g_mutex_lock(&syncer->lock);
  gboolean wanted = syncer_recycling_wanted(syncer);
  guint serial = ++syncer->used_serial;
  g_mutex_unlock(&syncer->lock);
  if (!wanted)
    return FALSE;
  char name[64];
  g_snprintf(name, sizeof name, PST_SPOOL_USED_PREFIX "%d.%u", syncer->pid,
             serial);
  /* Under `dir_lock`, like a rename out of tmp/: a settle either covers
   * it whole (the queue's fsync, then tmp/'s) or begins after it. */
  g_mutex_lock(&syncer->dir_lock);
  if (renameat2(dir_fd, id, syncer->tmp_dir_fd, name, RENAME_NOREPLACE) != 0) {
    g_mutex_unlock(&syncer->dir_lock);
    return FALSE;
  }
  PstSpoolUsed *used = g_new0(PstSpoolUsed, 1);
  used->name = g_strdup(name);
  g_mutex_lock(&syncer->lock);
  used->generation = syncer->tmp_syncs;
  g_queue_push_tail(&syncer->used, used);
  /* The queue lost a name and tmp/ gained one: both are synced by the
   * next settle, the queue first. */
  syncer->renames[target]++;
  syncer->tmp_dirty = TRUE;
  if (syncer->dirty_since == 0) {
    syncer->dirty_since = g_get_monotonic_time();
    if (syncer->sleeping)
      g_cond_signal(&syncer->wake);
  }
  g_mutex_unlock(&syncer->lock);
  g_mutex_unlock(&syncer->dir_lock);
  return TRUE;
}

guint pst_spool_syncer_count_spares(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  guint count = syncer->spares.length;
  g_mutex_unlock(&syncer->lock);
  return count;
}

gboolean pst_spool_syncer_is_quiet(PstSpoolSyncer *syncer, guint margin) {
  g_mutex_lock(&syncer->lock);
  gboolean quiet = syncer->sleeping && !syncer->running &&
                   !syncer->overlap_running &&
                   g_queue_is_empty(&syncer->pending) &&
                   syncer->dirty_since == 0 && syncer->spare_sleeping &&
                   syncer->spares_making == 0 &&
                   syncer->spares.length > SPARES_LOW + margin;
  g_mutex_unlock(&syncer->lock);
  return quiet;
}

/* --- Directory syncs ------------------------------------------------------ */

/* Records a rename out of tmp/ into `target`; under `dir_lock` and `lock`. */
static void syncer_note_departure(PstSpoolSyncer *syncer, int target,
                                  const char *id) {
  syncer->renames[target]++;
  syncer->tmp_dirty = TRUE;
  /* Frozen, tmp/ is not synced again: nothing would clear the set. */
  if (!syncer->tmp_frozen)
    g_hash_table_add(syncer->departed, g_strdup(id));
  if (syncer->dirty_since != 0)
    return;
  syncer->dirty_since = g_get_monotonic_time();
  /* The second thread renamed while the syncer thread sleeps without a
   * deadline (nothing was dirty when it went to sleep): it must wake to
   * schedule the deferred syncs, or they wait for the next commit. */
  if (syncer->sleeping)
    g_cond_signal(&syncer->wake);
}

/* A target's fsync failed: tmp/ is never synced again (see above). */
static void syncer_freeze_tmp(PstSpoolSyncer *syncer, int target, int saved) {
  g_mutex_lock(&syncer->lock);
  gboolean first = !syncer->tmp_frozen;
  syncer->tmp_frozen = TRUE;
  syncer->stats.directory_sync_failures++;
  syncer->dirty_since = g_get_monotonic_time();
  syncer_drop_spares(syncer, &syncer->fresh, G_MAXUINT);
  syncer_drop_used(syncer);
  g_hash_table_remove_all(syncer->departed);
  g_mutex_unlock(&syncer->lock);
  g_warning("spool %s: cannot sync directory %s/: %s; messages already "
            "acknowledged are safe under their names in tmp/, which %s; "
            "new messages now wait for a directory sync of their own",
            syncer->spool, syncer_target_name(target), g_strerror(saved),
            first ? "this process will not sync again (the next start "
                    "recovers them from there after a power cut)"
                  : "stays unsynced");
}

/* The rename counts now: what an fsync that begins next covers; under
 * `lock`. */
static void syncer_count_renames(PstSpoolSyncer *syncer,
                                 guint64 covered[SYNCER_TARGETS]) {
  memcpy(covered, syncer->renames, sizeof syncer->renames);
}

/* Syncs each target directory whose last fsync did not cover the renames
 * counted in `covered` (taken before); the first failure freezes tmp/ and
 * fails.  With `target_lock` held, and with or without `dir_lock`: a
 * rename while it runs stays dirty. */
static gboolean syncer_sync_targets(PstSpoolSyncer *syncer,
                                    PstSpoolSyncFunc func, gpointer data,
                                    const guint64 *covered, GError **error) {
  for (int i = 0; i < SYNCER_TARGETS; i++) {
    g_mutex_lock(&syncer->lock);
    gboolean dirty = syncer->synced[i] < covered[i];
    g_mutex_unlock(&syncer->lock);
    if (!dirty)
      continue;
    if (func(syncer->target_fds[i], TRUE, data) != 0) {
      int saved = errno;
      syncer_freeze_tmp(syncer, i, saved);
      g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                  "Cannot sync spool directory “%s/%s”: %s", syncer->spool,
                  syncer_target_name(i), g_strerror(saved));
      return FALSE;
    }
    g_mutex_lock(&syncer->lock);
    syncer->synced[i] = MAX(syncer->synced[i], covered[i]);
    syncer->stats.deferred_syncs++;
    g_mutex_unlock(&syncer->lock);
  }
  return TRUE;
}

/* Syncs tmp/: what left it is gone for good, and the first `fresh` spares
 * are published (or, when the sync fails, removed unused: never trusted).
 * With `dir_lock` held, after syncer_sync_targets(). */
static gboolean syncer_sync_tmp(PstSpoolSyncer *syncer, PstSpoolSyncFunc func,
                                gpointer data, guint fresh, GError **error) {
  int failed = func(syncer->tmp_dir_fd, TRUE, data) != 0 ? errno : 0;
  g_mutex_lock(&syncer->lock);
  syncer->stats.deferred_syncs++;
  if (failed == 0) {
    g_hash_table_remove_all(syncer->departed);
    syncer->tmp_syncs++;
    syncer->tmp_dirty = FALSE;
    syncer->dirty_since = 0;
    for (guint i = 0; i < fresh; i++)
      g_queue_push_tail(&syncer->spares, g_queue_pop_head(&syncer->fresh));
  } else {
    syncer_drop_spares(syncer, &syncer->fresh, fresh);
    syncer->spares_stuck = TRUE;
    syncer->dirty_since = g_get_monotonic_time();
  }
  g_mutex_unlock(&syncer->lock);
  if (failed == 0)
    return TRUE;
  g_warning("spool %s: cannot sync directory tmp/: %s (names of queued "
            "messages may stay there: a power cut could bring them back to "
            "be delivered twice; tried again later)",
            syncer->spool, g_strerror(failed));
  g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
              "Cannot sync spool directory “%s/tmp”: %s", syncer->spool,
              g_strerror(failed));
  return FALSE;
}

/* Syncs every target directory with renames its last fsync did not
 * cover, then tmp/ (THE INVARIANT), and publishes the spares made before;
 * with `dir_lock` (no rename runs) and `target_lock` held (a failed
 * target sync elsewhere has frozen tmp/ before this looks).  TRUE when
 * nothing failed. */
static gboolean syncer_settle_locked(PstSpoolSyncer *syncer, GError **error) {
  g_mutex_lock(&syncer->lock);
  PstSpoolSyncFunc func = syncer->sync_func;
  gpointer data = syncer->sync_data;
  guint64 covered[SYNCER_TARGETS];
  syncer_count_renames(syncer, covered);
  guint fresh = syncer->tmp_frozen ? 0 : syncer->fresh.length;
  gboolean tmp_needed = syncer->tmp_dirty || fresh > 0;
  g_mutex_unlock(&syncer->lock);
  if (!syncer_sync_targets(syncer, func, data, covered, error))
    return FALSE;
  g_mutex_lock(&syncer->lock);
  gboolean frozen = syncer->tmp_frozen;
  if (frozen || !tmp_needed)
    syncer->dirty_since = 0; /* frozen: the next rename retries */
  g_mutex_unlock(&syncer->lock);
  if (frozen || !tmp_needed)
    return TRUE;
  return syncer_sync_tmp(syncer, func, data, fresh, error);
}

/* syncer_settle()'s two steps. */
static gboolean syncer_settle_run(PstSpoolSyncer *syncer, GError **error) {
  g_mutex_lock(&syncer->target_lock);
  g_mutex_lock(&syncer->lock);
  PstSpoolSyncFunc func = syncer->sync_func;
  gpointer data = syncer->sync_data;
  guint64 covered[SYNCER_TARGETS];
  syncer_count_renames(syncer, covered);
  g_mutex_unlock(&syncer->lock);
  gboolean ok = syncer_sync_targets(syncer, func, data, covered, error);
  g_mutex_unlock(&syncer->target_lock);
  if (!ok)
    return FALSE;
  g_mutex_lock(&syncer->dir_lock);
  g_mutex_lock(&syncer->target_lock);
  ok = syncer_settle_locked(syncer, error);
  g_mutex_unlock(&syncer->target_lock);
  g_mutex_unlock(&syncer->dir_lock);
  return ok;
}

/* The deferred syncs.  The targets are synced first without `dir_lock`:
 * a batch that finishes meanwhile renames its files and answers at once;
 * under the lock only the targets renamed into since then are synced
 * again, before tmp/.  Unless `wait` or spares run low, nothing is done
 * while another thread settles (waiting for it would only hold this
 * thread's batch back). */
static gboolean syncer_settle(PstSpoolSyncer *syncer, gboolean wait,
                              GError **error) {
  g_mutex_lock(&syncer->lock);
  gboolean low = syncer->fresh.length > 0 && syncer->spares.length < SPARES_LOW;
  gboolean skip = !wait && !low && syncer->settles > 0;
  syncer->settles += !skip;
  g_mutex_unlock(&syncer->lock);
  if (skip)
    return TRUE;
  gboolean ok = syncer_settle_run(syncer, error);
  g_mutex_lock(&syncer->lock);
  syncer->settles--;
  g_mutex_unlock(&syncer->lock);
  return ok;
}

/* The delay after which the deferred syncs are due; under `lock`. */
static gint64 syncer_delay(PstSpoolSyncer *syncer, gboolean idle) {
  /* Idle, twice as long: a commit arriving meanwhile would wait behind the
   * flush, while a batch's helpers share it (a busy spool settles in a
   * batch first). */
  return syncer->tmp_frozen ? FROZEN_RETRY_US
                            : syncer->sync_delay * (idle ? 2 : 1);
}

/* Whether the deferred syncs are due at `now`, or spares wait to be
 * published: a chunk of them (in a batch), or few are left ready; under
 * `lock`. */
static gboolean syncer_settle_wanted(PstSpoolSyncer *syncer, gint64 now,
                                     gboolean idle) {
  gboolean due = syncer->dirty_since != 0 &&
                 now - syncer->dirty_since >= syncer_delay(syncer, idle);
  gboolean low = syncer->fresh.length > 0 && syncer->spares.length < SPARES_LOW;
  gboolean chunk = syncer->fresh.length >= SPARES_CHUNK;
  return due || low || (!idle && chunk);
}

gboolean pst_spool_syncer_settle(PstSpoolSyncer *syncer, const char *id,
                                 GError **error) {
  g_mutex_lock(&syncer->lock);
  gboolean needed = id != NULL ? g_hash_table_contains(syncer->departed, id)
                               : syncer->tmp_dirty;
  gboolean frozen = syncer->tmp_frozen;
  g_mutex_unlock(&syncer->lock);
  /* Frozen: tmp/ keeps its names for good; a cut may bring `id` back (a
   * duplicate, never a loss). */
  if (!needed || frozen)
    return TRUE;
  return syncer_settle(syncer, TRUE, error);
}

/* --- Batches -------------------------------------------------------------- */

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
  /* A message that fit its spare: the footer ends the file. */
  for (gsize done = 0; commit->footer_apart && done < sizeof commit->footer;) {
    ssize_t written =
        pwrite(commit->fd, commit->footer + done, sizeof commit->footer - done,
               (off_t)(commit->footer_offset + done));
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0) {
      commit_fail(commit, "write", written < 0 ? errno : ENOSPC);
      return;
    }
    done += (gsize)written;
  }
}

/* Step 3 for one file, on a helper thread; the last one of its batch wakes
 * the thread running the batch. */
static void syncer_sync_one(gpointer data, gpointer user_data) {
  PstSpoolCommit *commit = data;
  PstSpoolSyncer *syncer = user_data;
  PstSpoolBatch *batch = commit->batch;
  if (batch->sync_func(commit->fd, FALSE, batch->sync_data) != 0)
    commit_fail(commit, "sync", errno);
  g_mutex_lock(&syncer->lock);
  if (--batch->syncs_pending == 0)
    g_cond_broadcast(&syncer->syncs_done);
  g_mutex_unlock(&syncer->lock);
}

/* While the helpers wait on the disk, this thread makes the deferred
 * directory syncs when due (their flushes then go with the helpers'
 * instead of after them).  A settle that has not run by the time the
 * helpers are done waits for the next batch, unless spares are running
 * out.  Returns with the batch's helpers done. */
static void syncer_work_while_syncing(PstSpoolSyncer *syncer,
                                      PstSpoolBatch *batch) {
  gboolean settled = FALSE;
  g_mutex_lock(&syncer->lock);
  while (batch->syncs_pending > 0) {
    gboolean worked = FALSE;
    if (!settled &&
        syncer_settle_wanted(syncer, g_get_monotonic_time(), FALSE)) {
      settled = worked = TRUE;
      g_mutex_unlock(&syncer->lock);
      syncer_settle(syncer, FALSE, NULL);
      g_mutex_lock(&syncer->lock);
    }
    if (!worked && batch->syncs_pending > 0)
      g_cond_wait(&syncer->syncs_done, &syncer->lock);
  }
  gboolean urgent = !settled && syncer->fresh.length > 0 &&
                    syncer->spares.length < SPARES_LOW;
  g_mutex_unlock(&syncer->lock);
  if (urgent)
    syncer_settle(syncer, FALSE, NULL);
}

/* Step 3: fdatasync every file that was written.  With helpers, the calls
 * are made concurrently: the block layer then merges their cache flushes
 * (and a journaling file system their commits) instead of doing one after
 * the other.  A batch of one file syncs here: handing it to a helper
 * would put two thread switches on the path to its 250.
 * Returns the number of file syncs. */
static guint syncer_sync_files(PstSpoolSyncer *syncer, PstSpoolBatch *batch) {
  GPtrArray *commits = batch->commits;
  guint syncs = 0;
  for (guint i = 0; i < commits->len; i++)
    syncs += ((PstSpoolCommit *)commits->pdata[i])->error == NULL;
  g_mutex_lock(&syncer->lock);
  gboolean inline_sync = syncer->helpers == NULL || syncs <= 1;
  if (!inline_sync)
    batch->syncs_pending = syncs;
  g_mutex_unlock(&syncer->lock);
  if (inline_sync) {
    for (guint i = 0; i < commits->len; i++) {
      PstSpoolCommit *commit = commits->pdata[i];
      if (commit->error == NULL &&
          batch->sync_func(commit->fd, FALSE, batch->sync_data) != 0)
        commit_fail(commit, "sync", errno);
    }
    /* Deferred syncs due are made here, before step 4, after a file
     * that grew: what they cover (earlier renames, spares made before
     * this batch) went to the disk with its journal commit, so they cost
     * no commit of their own, while after this batch's rename they would.
     * A file that fit its pre-zeroed spare committed nothing: its 250
     * does not wait for them (the idle thread makes them). */
    gboolean grew = FALSE;
    for (guint i = 0; i < commits->len; i++)
      grew = grew || !((PstSpoolCommit *)commits->pdata[i])->overwrites;
    g_mutex_lock(&syncer->lock);
    gboolean settle =
        grew && syncer_settle_wanted(syncer, g_get_monotonic_time(), FALSE);
    g_mutex_unlock(&syncer->lock);
    if (settle)
      syncer_settle(syncer, FALSE, NULL);
    return syncs;
  }
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    commit->batch = batch;
    /* A push that fails (no thread could start) is done here instead. */
    if (commit->error == NULL &&
        !g_thread_pool_push(syncer->helpers, commit, NULL))
      syncer_sync_one(commit, syncer);
  }
  syncer_work_while_syncing(syncer, batch);
  return syncs;
}

/* Undoes the renames into target `index` of the commits whose tmp/ name
 * was not durable: their directory sync failed (the others keep theirs:
 * their tmp/ names hold them). */
static void syncer_undo_undurable(PstSpoolSyncer *syncer, GPtrArray *commits,
                                  int index, int saved) {
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    if (!commit->renamed || commit->name_durable ||
        syncer_target_index(syncer, commit->target_dir_fd) != index)
      continue;
    unlinkat(commit->target_dir_fd, commit->id, 0);
    commit->renamed = FALSE;
    g_set_error(&commit->error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                "Cannot sync the queue directory after adding %s: %s",
                commit->id, g_strerror(saved));
  }
}

/* Syncs the targets in `sync_now` at once, for the files of the batch
 * whose tmp/ name was not durable; a failure fails those files.  Under
 * `dir_lock`: the sync covers every rename into the target. */
static void syncer_sync_new_names(PstSpoolSyncer *syncer, PstSpoolBatch *batch,
                                  const gboolean *sync_now) {
  g_mutex_lock(&syncer->target_lock);
  for (int index = 0; index < SYNCER_TARGETS; index++) {
    if (!sync_now[index])
      continue;
    if (batch->sync_func(syncer->target_fds[index], TRUE, batch->sync_data) !=
        0) {
      int saved = errno;
      syncer_undo_undurable(syncer, batch->commits, index, saved);
      syncer_freeze_tmp(syncer, index, saved);
      continue;
    }
    g_mutex_lock(&syncer->lock);
    syncer->synced[index] = syncer->renames[index];
    g_mutex_unlock(&syncer->lock);
  }
  g_mutex_unlock(&syncer->target_lock);
}

/* Step 4: renames each file into its target; a target that received a
 * file whose tmp/ name was not durable is fsynced now (then the sync
 * covers every rename into it).  Under `dir_lock`, so that no sync of
 * tmp/ runs in between (THE INVARIANT).  Returns those syncs. */
static guint syncer_rename(PstSpoolSyncer *syncer, PstSpoolBatch *batch) {
  GPtrArray *commits = batch->commits;
  gboolean sync_now[SYNCER_TARGETS] = {FALSE};
  g_mutex_lock(&syncer->dir_lock);
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    if (commit->error != NULL)
      continue;
    if (pst_spool_rename_noreplace(commit->tmp_dir_fd, commit->tmp_name,
                                   commit->target_dir_fd, commit->id) != 0) {
      commit_fail(commit, "rename", errno);
      continue;
    }
    commit->renamed = TRUE;
    int index = syncer_target_index(syncer, commit->target_dir_fd);
    sync_now[index] = sync_now[index] || !commit->name_durable;
    g_mutex_lock(&syncer->lock);
    syncer_note_departure(syncer, index, commit->id);
    g_mutex_unlock(&syncer->lock);
  }
  guint syncs = 0;
  for (int index = 0; index < SYNCER_TARGETS; index++)
    syncs += sync_now[index];
  if (syncs > 0)
    syncer_sync_new_names(syncer, batch, sync_now);
  g_mutex_unlock(&syncer->dir_lock);
  return syncs;
}

/* Steps 1 to 3 for one batch; returns the number of file syncs. */
static guint syncer_write_and_sync(PstSpoolSyncer *syncer,
                                   PstSpoolBatch *batch) {
  GPtrArray *commits = batch->commits;
  for (guint i = 0; i < commits->len; i++)
    commit_write_tail(commits->pdata[i]);
  for (guint i = 0; commits->len > 1 && i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    if (commit->error == NULL)
      sync_file_range(commit->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  guint syncs = syncer_sync_files(syncer, batch);
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    /* Closing reports delayed write errors on some file systems (NFS). */
    if (close(commit->fd) != 0 && errno != EINTR)
      commit_fail(commit, "close", errno);
    commit->fd = -1;
    commit->batch = NULL;
  }
  return syncs;
}

/* Makes the helper pool match the knob; pools change only between the
 * syncer thread's batches, and never while the second thread runs one
 * (it waits for that), so a thread is never created per message.  On the
 * syncer thread, before it marks itself running. */
static void syncer_update_helpers(PstSpoolSyncer *syncer, guint wanted) {
  guint current = syncer->helpers != NULL
                      ? g_thread_pool_get_max_threads(syncer->helpers)
                      : 0;
  if (wanted < 2)
    wanted = 0;
  if (wanted == current)
    return;
  g_mutex_lock(&syncer->lock);
  while (syncer->overlap_running)
    g_cond_wait(&syncer->syncs_done, &syncer->lock);
  g_mutex_unlock(&syncer->lock);
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

/* Steps 1 to 5 for `commits` (taken), on either thread. */
static void syncer_run_batch(PstSpoolSyncer *syncer, GPtrArray *commits) {
  /* The knobs hold for a whole batch (helpers read these copies). */
  PstSpoolBatch batch = {.syncer = syncer, .commits = commits};
  g_mutex_lock(&syncer->lock);
  batch.sync_func = syncer->sync_func;
  batch.sync_data = syncer->sync_data;
  g_mutex_unlock(&syncer->lock);

  guint file_syncs = syncer_write_and_sync(syncer, &batch);
  guint directory_syncs = syncer_rename(syncer, &batch);
  guint failures = 0;
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    if (commit->error == NULL)
      continue;
    failures++;
    unlinkat(commit->tmp_dir_fd, commit->tmp_name, 0);
  }

  g_mutex_lock(&syncer->lock);
  syncer->stats.batches++;
  syncer->stats.commits += commits->len - failures;
  syncer->stats.failures += failures;
  syncer->stats.file_syncs += file_syncs;
  syncer->stats.directory_syncs += directory_syncs;
  syncer->spares_stuck = FALSE;
  /* In a batch of several the journal commit is shared already (group
   * commit): zeros there cost more writes than they save flushes. */
  for (guint i = 0; i < commits->len; i++) {
    PstSpoolCommit *commit = commits->pdata[i];
    if (commit->file_size <= syncer->spare_size && commits->len == 1)
      syncer->spares_fitting++;
    else
      syncer->spares_outgrown++;
  }
  if (commits->len == 1)
    syncer->spares_solo++;
  else
    syncer->spares_grouped += commits->len;
  gboolean make = syncer->spare_sleeping && syncer_spares_needed(syncer) > 0;
  g_mutex_unlock(&syncer->lock);
  /* Step 5. */
  pst_spool_completions_push(syncer->completions, commits);
  if (make)
    g_cond_signal(&syncer->spare_wake);
}

/* Idle: publishes fresh spares at once when few are ready, and runs the
 * deferred directory syncs when due.  Called and returns with `lock`
 * held. */
static void syncer_idle(PstSpoolSyncer *syncer) {
  if (!g_queue_is_empty(&syncer->pending) || syncer->stopping)
    return;
  gint64 now = g_get_monotonic_time();
  if (syncer_settle_wanted(syncer, now, TRUE)) {
    /* Busy as in a batch: what arrives meanwhile goes to the second
     * thread, its fdatasync merged with these flushes, instead of
     * waiting for them (its rename waits only for tmp/'s sync). */
    syncer->running = TRUE;
    g_mutex_unlock(&syncer->lock);
    syncer_settle(syncer, TRUE, NULL);
    g_mutex_lock(&syncer->lock);
    syncer->running = FALSE;
    return;
  }
  syncer->sleeping = TRUE;
  if (syncer->dirty_since == 0)
    g_cond_wait(&syncer->wake, &syncer->lock);
  else
    g_cond_wait_until(&syncer->wake, &syncer->lock,
                      syncer->dirty_since + syncer_delay(syncer, TRUE));
  syncer->sleeping = FALSE;
}

/* Takes every commit waiting, up to the batch limit; under `lock`. */
static GPtrArray *syncer_take_locked(PstSpoolSyncer *syncer) {
  GPtrArray *commits =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
  while (!g_queue_is_empty(&syncer->pending) &&
         (syncer->batch_limit == 0 || commits->len < syncer->batch_limit))
    g_ptr_array_add(commits, g_queue_pop_head(&syncer->pending));
  return commits;
}

/* Takes the next batch, waiting for one; NULL when stopping and idle. */
static GPtrArray *syncer_take_batch(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  while (g_queue_is_empty(&syncer->pending) && !syncer->stopping)
    syncer_idle(syncer);
  GPtrArray *commits = NULL;
  if (!g_queue_is_empty(&syncer->pending))
    commits = syncer_take_locked(syncer);
  g_mutex_unlock(&syncer->lock);
  return commits;
}

/* The syncer thread marks itself in a batch: from now the second thread
 * takes what arrives (and what the batch limit left behind). */
static void syncer_set_running(PstSpoolSyncer *syncer, gboolean running) {
  g_mutex_lock(&syncer->lock);
  syncer->running = running;
  gboolean wake = running && syncer->overlap_sleeping &&
                  !g_queue_is_empty(&syncer->pending);
  g_mutex_unlock(&syncer->lock);
  if (wake)
    g_cond_signal(&syncer->overlap_wake);
}

static gpointer syncer_thread(gpointer data) {
  PstSpoolSyncer *syncer = data;
  GPtrArray *commits;
  while ((commits = syncer_take_batch(syncer)) != NULL) {
    g_mutex_lock(&syncer->lock);
    guint sync_threads = syncer->sync_threads;
    g_mutex_unlock(&syncer->lock);
    syncer_update_helpers(syncer, sync_threads);
    /* A batch of one (light load) does not overlap: what arrives during
     * its fdatasync forms the next batch, one flush for several. */
    syncer_set_running(syncer, commits->len > 1);
    syncer_run_batch(syncer, commits);
    syncer_set_running(syncer, FALSE);
    g_ptr_array_unref(commits);
  }
  return NULL;
}

/* The second thread: while the syncer thread runs a batch, takes what
 * arrives as a batch of its own.  Stops at `stopping`; the syncer thread
 * finishes what is left. */
static gpointer syncer_overlap_thread(gpointer data) {
  PstSpoolSyncer *syncer = data;
  g_mutex_lock(&syncer->lock);
  for (;;) {
    while (!syncer->stopping &&
           (!syncer->running || g_queue_is_empty(&syncer->pending))) {
      syncer->overlap_sleeping = TRUE;
      g_cond_wait(&syncer->overlap_wake, &syncer->lock);
      syncer->overlap_sleeping = FALSE;
    }
    if (syncer->stopping)
      break;
    GPtrArray *commits = syncer_take_locked(syncer);
    syncer->overlap_running = TRUE;
    g_mutex_unlock(&syncer->lock);
    syncer_run_batch(syncer, commits);
    g_ptr_array_unref(commits);
    g_mutex_lock(&syncer->lock);
    syncer->overlap_running = FALSE;
    g_cond_broadcast(&syncer->syncs_done);
  }
  g_mutex_unlock(&syncer->lock);
  return NULL;
}

static void syncer_clear(PstSpoolSyncer *syncer) {
  g_mutex_clear(&syncer->lock);
  g_mutex_clear(&syncer->dir_lock);
  g_mutex_clear(&syncer->target_lock);
  g_cond_clear(&syncer->wake);
  g_cond_clear(&syncer->overlap_wake);
  g_cond_clear(&syncer->syncs_done);
  g_cond_clear(&syncer->spare_wake);
  g_cond_clear(&syncer->spare_synced);
  g_hash_table_unref(syncer->departed);
  pst_spool_completions_free(syncer->completions);
  g_free(syncer);
}

/* Stops the second thread and waits for its batch. */
static void syncer_stop_overlap(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  syncer->stopping = TRUE;
  g_mutex_unlock(&syncer->lock);
  g_cond_signal(&syncer->overlap_wake);
  g_thread_join(g_steal_pointer(&syncer->overlap));
}

/* Stops the spare thread; what it made is removed with the rest. */
static void syncer_stop_spare_thread(PstSpoolSyncer *syncer) {
  g_mutex_lock(&syncer->lock);
  syncer->stopping = TRUE;
  g_cond_signal(&syncer->spare_wake);
  g_mutex_unlock(&syncer->lock);
  g_thread_join(g_steal_pointer(&syncer->spare_thread));
  if (syncer->spare_syncers != NULL)
    g_thread_pool_free(g_steal_pointer(&syncer->spare_syncers), FALSE, TRUE);
}

PstSpoolSyncer *pst_spool_syncer_new(const char *spool, int tmp_dir_fd,
                                     int queue_dir_fd, int hold_dir_fd,
                                     GError **error) {
  PstSpoolSyncer *syncer = g_new0(PstSpoolSyncer, 1);
  syncer->spool = spool;
  syncer->tmp_dir_fd = tmp_dir_fd;
  syncer->target_fds[0] = queue_dir_fd;
  syncer->target_fds[1] = hold_dir_fd;
  syncer->departed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  syncer->completions = pst_spool_completions_new();
  syncer->pid = (int)getpid();
  syncer->sync_delay = PST_SPOOL_DIRECTORY_SYNC_DELAY_MS * 1000;
  g_queue_init(&syncer->spares);
  g_queue_init(&syncer->fresh);
  g_queue_init(&syncer->used);
  g_mutex_init(&syncer->lock);
  g_mutex_init(&syncer->dir_lock);
  g_mutex_init(&syncer->target_lock);
  g_cond_init(&syncer->wake);
  g_cond_init(&syncer->overlap_wake);
  g_queue_init(&syncer->pending);
  g_cond_init(&syncer->syncs_done);
  g_cond_init(&syncer->spare_wake);
  g_cond_init(&syncer->spare_synced);
  syncer->spare_size = PST_SPOOL_SPARE_SIZE;
  syncer->recycling = TRUE;
  syncer->sync_func = sync_default;
  syncer->sync_threads = PST_SPOOL_SYNC_THREADS;
  syncer->overlap = g_thread_try_new("pst-spool-sync2", syncer_overlap_thread,
                                     syncer, error);
  if (syncer->overlap == NULL) {
    g_prefix_error(error, "Cannot start the spool's second sync thread: ");
    syncer_clear(syncer);
    return NULL;
  }
  /* Without it, the spare thread syncs them one at a time.  Its own
   * threads, kept: GLib's shared pool keeps only two idle ones, so most
   * of a chunk's would be made again for the next chunk. */
  syncer->spare_syncers = g_thread_pool_new(spare_sync_one, syncer,
                                            SPARE_SYNC_THREADS, TRUE, NULL);
  syncer->spare_thread =
      g_thread_try_new("pst-spool-spare", syncer_spare_thread, syncer, error);
  if (syncer->spare_thread == NULL) {
    g_prefix_error(error, "Cannot start the spool's spare file thread: ");
    syncer_stop_overlap(syncer);
    if (syncer->spare_syncers != NULL)
      g_thread_pool_free(syncer->spare_syncers, FALSE, TRUE);
    syncer_clear(syncer);
    return NULL;
  }
  syncer->thread =
      g_thread_try_new("pst-spool-sync", syncer_thread, syncer, error);
  if (syncer->thread == NULL) {
    g_prefix_error(error, "Cannot start the spool's sync thread: ");
    syncer_stop_overlap(syncer);
    syncer_stop_spare_thread(syncer);
    syncer_drop_spares(syncer, &syncer->fresh, G_MAXUINT);
    syncer_clear(syncer);
    return NULL;
  }
  return syncer;
}

void pst_spool_syncer_submit(PstSpoolSyncer *syncer, PstSpoolCommit *commit) {
  g_return_if_fail(syncer != NULL && commit != NULL);
  g_mutex_lock(&syncer->lock);
  g_warn_if_fail(!syncer->stopping);
  g_queue_push_tail(&syncer->pending, commit);
  /* Signalled after unlocking, and only when asleep: a busy thread takes
   * the commit with its next batch, and a woken one does not block at
   * once on the lock the signaller still holds.  While the syncer thread
   * runs a batch, the second thread takes the commit at once. */
  gboolean wake = syncer->sleeping;
  gboolean overlap =
      !wake && syncer->running && syncer->overlap_sleeping;
  g_mutex_unlock(&syncer->lock);
  if (wake)
    g_cond_signal(&syncer->wake);
  else if (overlap)
    g_cond_signal(&syncer->overlap_wake);
}

void pst_spool_syncer_free(PstSpoolSyncer *syncer) {
  if (syncer == NULL)
    return;
  g_mutex_lock(&syncer->lock);
  syncer->stopping = TRUE;
  g_cond_signal(&syncer->wake);
  g_mutex_unlock(&syncer->lock);
  syncer_stop_overlap(syncer);
  syncer_stop_spare_thread(syncer);
  g_thread_join(syncer->thread);
  /* What a clean stop leaves needs no recovery (failures are logged). */
  syncer_settle(syncer, TRUE, NULL);
  syncer_drop_spares(syncer, &syncer->spares, G_MAXUINT);
  syncer_drop_spares(syncer, &syncer->fresh, G_MAXUINT);
  syncer_drop_used(syncer);
  if (syncer->helpers != NULL)
    g_thread_pool_free(syncer->helpers, FALSE, TRUE);
  syncer_clear(syncer);
}

void pst_spool_syncer_set_batch_limit(PstSpoolSyncer *syncer, guint limit) {
  g_mutex_lock(&syncer->lock);
  syncer->batch_limit = limit;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_set_spare_size(PstSpoolSyncer *syncer, guint64 size) {
  g_return_if_fail(size <= PST_SPOOL_MAX_GAP);
  g_mutex_lock(&syncer->lock);
  syncer->spare_size = size;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_set_recycling(PstSpoolSyncer *syncer, gboolean on) {
  g_mutex_lock(&syncer->lock);
  syncer->recycling = on;
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_set_batch_recycling(PstSpoolSyncer *syncer,
                                          gboolean on) {
  g_mutex_lock(&syncer->lock);
  syncer->batch_recycling = on;
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

void pst_spool_syncer_set_directory_sync_delay(PstSpoolSyncer *syncer,
                                               guint milliseconds) {
  g_mutex_lock(&syncer->lock);
  syncer->sync_delay = (gint64)milliseconds * 1000;
  g_cond_signal(&syncer->wake);
  g_mutex_unlock(&syncer->lock);
}

void pst_spool_syncer_get_stats(PstSpoolSyncer *syncer, PstSpoolStats *stats) {
  g_mutex_lock(&syncer->lock);
  *stats = syncer->stats;
  g_mutex_unlock(&syncer->lock);
}
