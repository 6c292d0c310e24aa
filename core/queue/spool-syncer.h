/* spool-syncer.h - the group-commit threads behind
 * pst_spool_writer_commit_async().
 *
 * It also keeps spare files ready in tmp/, made by a thread of their own,
 * each filled with zeros (fdatasynced) and made durable (tmp/ synced)
 * before it is handed out, so that starting a message costs the main
 * thread no file creation, the message's name in tmp/ survives a power
 * cut from the start, and a message that fits its spare overwrites
 * allocated blocks: its fdatasync commits no journal
 * (pst_spool_syncer_take_spare()).
 *
 * The writer hands each finished message over as a PstSpoolCommit: the
 * open tmp/ file, what remains to be written (the end of the content, the
 * trailer, the footer) and the GTask to complete.  One thread takes every
 * commit waiting, writes them, starts writeback for all, fdatasyncs each,
 * renames each into its queue, and completes the tasks on their own main
 * contexts, through one source per context kept for the spool's life
 * (spool-completion.h): one journal commit per message.  While it runs a batch, a second thread takes the commits that
 * arrive as a batch of their own, so that they do not wait for the first
 * batch to end before their fdatasyncs start.  The fsync of queue/ or hold/
 * after the renames is deferred and batched (see spool-syncer.c: until then a
 * power cut leaves the message under its durable name in tmp/, and recovery
 * moves it into the queue). A file whose tmp/ name was not made durable ahead
 * (created by the main thread when no spare was ready) still waits for its
 * directory's fsync. A failed message is removed from tmp/ (or from its queue,
 * when its own directory sync failed) and fails alone.
 *
 * Internal to core/queue; spool.c and spool-manage.c are the callers.
 */
#pragma once

#include <gio/gio.h>

#include "queue/spool.h"

G_BEGIN_DECLS

typedef struct _PstSpoolSyncer PstSpoolSyncer;

/* One message on its way to disk.  Owned by the syncer from submission. */
typedef struct {
  char *id;          /* owned: the file's name in the queue */
  char *tmp_name;    /* owned: its name in tmp/ */
  char *tmp_path;    /* owned: for error messages */
  int fd;            /* owned: the tmp/ file, open for writing */
  int tmp_dir_fd;    /* borrowed from the spool */
  int target_dir_fd; /* borrowed from the spool: queue/ or hold/ */
  GByteArray *tail;  /* owned: octets still to write, at the file's
                      * position */
  guint8 footer[32]; /* when `footer_apart`: the footer, at ... */
  guint64 footer_offset; /* ... this offset: the end of a pre-zeroed spare */
  gboolean footer_apart;
  gboolean overwrites; /* the message fit its pre-zeroed spare: its file
                        * keeps its size (fdatasync commits no journal) */
  guint64 file_size;   /* content, trailer and footer: what a spare must
                        * hold for the message to fit */
  GTask *task;       /* owned: returns a boolean */
  GError *error;     /* owned, nullable: why it failed */
  gboolean renamed;  /* moved into the target directory */
  gboolean name_durable; /* tmp_name was durable before the writer got it
                          * (a spare): no directory sync on its path */
  struct _PstSpoolBatch *batch; /* borrowed: while a helper syncs it */
} PstSpoolCommit;

void pst_spool_commit_free(PstSpoolCommit *commit);

/* Renames without ever replacing an existing `to` (EEXIST then):
 * renameat2(RENAME_NOREPLACE), or link + unlink on file systems without
 * it.  Returns 0 or -1 with errno set. */
int pst_spool_rename_noreplace(int from_dir_fd, const char *from, int to_dir_fd,
                               const char *to);

/* Syncs a file (`directory` FALSE: fdatasync) or a directory (fsync);
 * returns 0 or -1 with errno set.  Replaceable for tests. */
typedef int (*PstSpoolSyncFunc)(int fd, gboolean directory, gpointer data);

/* Starts the thread.  `tmp_dir_fd` is where it makes spares; the files
 * leave tmp/ into `queue_dir_fd` or `hold_dir_fd` (all borrowed; `spool`,
 * the spool's path, too: for log lines). */
PstSpoolSyncer *pst_spool_syncer_new(const char *spool, int tmp_dir_fd,
                                     int queue_dir_fd, int hold_dir_fd,
                                     GError **error);
/* Takes a spare: a file in tmp/ that a thread created ahead of need and
 * made durable, `*size_r` zero octets (0: empty), open for writing at
 * offset 0 (the caller owns `name_r` and `fd_r`).  FALSE when none is
 * ready: the caller creates its file itself (and its commit then waits
 * for a directory sync). */
gboolean pst_spool_syncer_take_spare(PstSpoolSyncer *syncer, char **name_r,
                                     int *fd_r, guint64 *size_r);
/* Takes the delivered message `id` out of the queue directory `dir_fd`
 * (queue/ or hold/) to recycle its file as a spare: renames it to
 * tmp/used.PID.N, where it waits until a settle has made that durable,
 * then the spare thread overwrites it with zeros, syncs it and renames it
 * to a spare's name.  Recovery removes used.* files unread.  FALSE when
 * recycling is not wanted now or the rename failed: the caller unlinks
 * the file as before.  Any thread; may wait for a directory sync under
 * way. */
gboolean pst_spool_syncer_recycle(PstSpoolSyncer *syncer, int dir_fd,
                                  const char *id);
/* Queues `commit` (takes ownership) and wakes the thread. */
void pst_spool_syncer_submit(PstSpoolSyncer *syncer, PstSpoolCommit *commit);
/* Makes sure no durable name in tmp/ still holds the message `id`, so that
 * a power cut cannot bring it back after it leaves its queue: when `id`
 * left tmp/ since tmp/ was last synced, syncs every directory that
 * received files, then tmp/, now.  NULL for "whatever left tmp/".  FALSE
 * with `error` when a sync failed.  Any thread. */
gboolean pst_spool_syncer_settle(PstSpoolSyncer *syncer, const char *id,
                                 GError **error);
/* Finishes every submitted commit, syncs the directories, stops the
 * thread, removes the spares, frees. */
void pst_spool_syncer_free(PstSpoolSyncer *syncer);

/* At most `limit` messages per batch; 0 = no limit (the default).  1 turns
 * group commit off: one fdatasync per batch of one message. */
void pst_spool_syncer_set_batch_limit(PstSpoolSyncer *syncer, guint limit);
/* Files of a batch are fdatasync()ed by this many threads at once (a
 * fixed pool, replaced only when this changes); 0 or 1 = one at a time
 * on the syncer thread.  Default PST_SPOOL_SYNC_THREADS. */
#define PST_SPOOL_SYNC_THREADS 8
void pst_spool_syncer_set_sync_threads(PstSpoolSyncer *syncer, guint count);
/* NULL restores fdatasync()/fsync(). */
void pst_spool_syncer_set_sync_func(PstSpoolSyncer *syncer,
                                    PstSpoolSyncFunc func, gpointer data);
/* The deferred directory syncs run this long after the first rename they
 * cover while commits keep coming, twice that when the spool is idle.
 * Default PST_SPOOL_DIRECTORY_SYNC_DELAY_MS. */
#define PST_SPOOL_DIRECTORY_SYNC_DELAY_MS 100
void pst_spool_syncer_set_directory_sync_delay(PstSpoolSyncer *syncer,
                                               guint milliseconds);
/* New spares hold this many zero octets, so that a message that fits
 * (with its trailer and footer) overwrites allocated blocks and its
 * fdatasync needs no journal commit; 0 makes empty spares.  At most
 * PST_SPOOL_MAX_GAP.  Default PST_SPOOL_SPARE_SIZE. */
#define PST_SPOOL_SPARE_SIZE (16 * 1024)
void pst_spool_syncer_set_spare_size(PstSpoolSyncer *syncer, guint64 size);
/* Whether delivered messages' files are recycled as spares
 * (pst_spool_syncer_recycle(); default TRUE): off, they are unlinked, for
 * benchmarks. */
void pst_spool_syncer_set_recycling(PstSpoolSyncer *syncer, gboolean on);
/* Whether delivered files are recycled (emptied) as spares also while
 * messages come in batches of several (default FALSE: it costs more than
 * it saves on ext4 with a journal); for benchmarks and tests. */
void pst_spool_syncer_set_batch_recycling(PstSpoolSyncer *syncer,
                                          gboolean on);
/* Spares ready to be handed out (durable). */
guint pst_spool_syncer_count_spares(PstSpoolSyncer *syncer);
/* For tests that hold syncs at a gate and expect a given thread to take
 * a commit: both sync threads sleep with nothing pending or due, the
 * spare thread sleeps, and more than `margin` spares above the low mark
 * are ready (so that taking up to `margin` wakes no thread to publish
 * more: fresh ones wait, unpublished, until spares run low). */
gboolean pst_spool_syncer_is_quiet(PstSpoolSyncer *syncer, guint margin);
void pst_spool_syncer_get_stats(PstSpoolSyncer *syncer, PstSpoolStats *stats);

G_END_DECLS
