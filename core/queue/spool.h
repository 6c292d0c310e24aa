/* spool.h - the durable message spool.
 *
 * Layout under the spool directory (created on open, mode 0700):
 *   tmp/      files being received; removed on abort and on open
 *   queue/    committed messages waiting for delivery, one file per message
 *   hold/     committed messages held (QUARANTINE, operator hold)
 *   corrupt/  files that failed to parse on recovery
 *
 * Invariant: a file appears in queue/ or hold/ only complete and durable,
 * and an acknowledged message survives a power cut in queue/, hold/ or
 * tmp/.  pst_spool_writer_commit_async() writes the envelope trailer,
 * fdatasyncs the file (whose name in tmp/ was made durable before the
 * message started) and renames it out of tmp/ before it reports success:
 * one journal commit.  The directory fsyncs follow, deferred and batched;
 * until then recovery on open moves a complete file found in tmp/ into
 * its queue.  Commits from concurrent sessions are batched by one syncer
 * thread (group commit), so many messages share each flush.  See
 * spool-syncer.c and doc/queue-format.md.
 *
 * The queue file cannot be forged by client text: every record is length
 * prefixed, and the trailer is checksummed.  See spool-format.h.
 *
 * Threading: a PstSpool is used from the main thread; the syncer thread is
 * internal.  Completion callbacks run on the thread-default main context of
 * the thread that called the _async function.
 */
#pragma once

#include <gio/gio.h>

#include "queue/envelope.h"

G_BEGIN_DECLS

#define PST_SPOOL_ERROR (pst_spool_error_quark())
GQuark pst_spool_error_quark(void);
typedef enum {
  PST_SPOOL_ERROR_IO,      /* a read, write, fsync or rename failed */
  PST_SPOOL_ERROR_CORRUPT, /* a queue file failed to parse */
  PST_SPOOL_ERROR_NOT_FOUND,
  PST_SPOOL_ERROR_LIMIT, /* an envelope value exceeds the format's limits */
  PST_SPOOL_ERROR_BUSY,  /* another process has the spool open */
  PST_SPOOL_ERROR_NO_SPACE, /* a write failed with ENOSPC or EDQUOT */
  PST_SPOOL_ERROR_WOULD_BLOCK, /* pst_spool_load_cached(): not without the
                                * disk; nothing failed */
} PstSpoolError;

typedef enum {
  PST_SPOOL_QUEUE_ACTIVE = 0, /* queue/ */
  PST_SPOOL_QUEUE_HOLD,       /* hold/ */
} PstSpoolQueue;

typedef struct _PstSpool PstSpool;
typedef struct _PstSpoolWriter PstSpoolWriter;
typedef struct _PstQueuedMessage PstQueuedMessage;

/* Opens (creating as needed) the spool at `directory`, recovers tmp/
 * (complete messages into their queue, the rest removed; see
 * spool-recover.c), and starts the syncer thread.  Fails naming the directory.  Takes
 * an exclusive lock (the file `lock` in the spool; PST_SPOOL_ERROR_BUSY
 * when another process holds it), so two daemons never share a spool. */
PstSpool *pst_spool_open(const char *directory, GError **error);
/* Stops the syncer after the commits already submitted, then frees. */
void pst_spool_close(PstSpool *spool);
const char *pst_spool_get_directory(PstSpool *spool);

/* --- Receiving a message ------------------------------------------------ */

/* Starts a new message: a file in tmp/ and a fresh, unique queue id. */
PstSpoolWriter *pst_spool_writer_new(PstSpool *spool, GError **error);
/* The queue id: 12 or more characters of [0-9A-Z], unique for the spool's
 * lifetime and roughly sorted by time. */
const char *pst_spool_writer_get_id(PstSpoolWriter *writer);
/* Appends message bytes (CRLF lines, already dot-unstuffed).  Buffered;
 * fails only on a write error (disk full), naming the file. */
gboolean pst_spool_writer_write(PstSpoolWriter *writer, const void *data,
                                gsize length, GError **error);
/* Octets written so far. */
guint64 pst_spool_writer_get_size(PstSpoolWriter *writer);
/* The tmp/ path of the message content written so far (for reading the
 * body at EOM, after pst_spool_writer_flush()). */
const char *pst_spool_writer_get_path(PstSpoolWriter *writer);
/* Flushes the write buffer to the file (not to disk). */
gboolean pst_spool_writer_flush(PstSpoolWriter *writer, GError **error);
/* Replaces everything after the first `header_length` octets of the
 * content with `body` (a plugin replaced the body at EOM).  The content
 * moves to a new file in tmp/ (the header octets copied, then `body`);
 * the old file is unlinked, so readers that hold it open or mapped keep
 * seeing the old content.  Fails, leaving the writer failed (the commit
 * then fails too), on a write error. */
gboolean pst_spool_writer_replace_body(PstSpoolWriter *writer,
                                       guint64 header_length, GBytes *body,
                                       GError **error);

/* Commits: appends the envelope trailer and, when `header_override` is not
 * NULL, a replacement for the first `header_length` octets of the content
 * (the header block, including its final blank line, after plugin edits);
 * then makes the file durable and moves it to `queue`.  The callback runs
 * once, after the file is on disk under a durable name (in `queue`, or
 * still in tmp/ until the deferred directory sync) or after failure (then
 * the tmp file is removed).  The writer must not be used
 * afterwards except for pst_spool_writer_commit_finish() and _free(). */
void pst_spool_writer_commit_async(PstSpoolWriter *writer,
                                   const PstEnvelope *envelope,
                                   GBytes *header_override,
                                   guint64 header_length, PstSpoolQueue queue,
                                   GAsyncReadyCallback callback,
                                   gpointer user_data);
gboolean pst_spool_writer_commit_finish(PstSpoolWriter *writer,
                                        GAsyncResult *result, GError **error);
/* Frees the writer; an uncommitted tmp file is removed. */
void pst_spool_writer_free(PstSpoolWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSpoolWriter, pst_spool_writer_free)

/* --- Reading the queue -------------------------------------------------- */

/* The ids in `queue`, sorted.  Free with g_ptr_array_unref(). */
GPtrArray *pst_spool_list(PstSpool *spool, PstSpoolQueue queue, GError **error);
/* Loads one queued message: envelope and content.  A file that does not
 * parse fails with PST_SPOOL_ERROR_CORRUPT naming it. */
PstQueuedMessage *pst_spool_load(PstSpool *spool, PstSpoolQueue queue,
                                 const char *id, GError **error);
/* pst_spool_load() for the main loop, which must not wait for the disk:
 * only a file small enough to be read whole (pst_queued_message_is_whole())
 * whose pages are all in the page cache (preadv2 with RWF_NOWAIT).  Any
 * other fails with PST_SPOOL_ERROR_WOULD_BLOCK, having waited for no read:
 * load it with pst_spool_load() on a thread. */
PstQueuedMessage *pst_spool_load_cached(PstSpool *spool, PstSpoolQueue queue,
                                        const char *id, GError **error);
const char *pst_queued_message_get_id(PstQueuedMessage *message);
const PstEnvelope *pst_queued_message_get_envelope(PstQueuedMessage *message);
/* TRUE when loading read the whole file (a small one): its content is
 * read from that copy, without touching the disk again. */
gboolean pst_queued_message_is_whole(PstQueuedMessage *message);
/* The message as it will be delivered: the header block (replacement
 * applied) followed by the body.  A new reference. */
GBytes *pst_queued_message_get_content(PstQueuedMessage *message,
                                       GError **error);
void pst_queued_message_free(PstQueuedMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstQueuedMessage, pst_queued_message_free)

/* Moves unparsable files from queue/ and hold/ to corrupt/, logging each,
 * and returns how many messages are queued (in queue/ and hold/).  Only
 * the footer and trailer are checked; the content's checksum is checked
 * by pst_queued_message_get_content().  Called on start. */
gboolean pst_spool_recover(PstSpool *spool, guint *queued_r, GError **error);

/* --- Additions ----------------------------------------------------------- */

/* Opens an existing spool for reading only (pst-spool-dump, admin tools):
 * nothing is created, cleaned or locked, and no syncer runs, so it is safe
 * while the daemon runs.  pst_spool_writer_new() fails on it. */
PstSpool *pst_spool_open_readonly(const char *directory, GError **error);

/* Moves `id` from `queue` to corrupt/ (under a new name if one is taken),
 * syncs both directories and logs a line naming both paths and `reason`.
 * For recovery, and for delivery when the content checksum fails. */
gboolean pst_spool_move_to_corrupt(PstSpool *spool, PstSpoolQueue queue,
                                   const char *id, const char *reason,
                                   GError **error);

/* Counters since pst_spool_open(), for `postilion status` and benchmarks. */
typedef struct {
  guint64 commits;         /* messages made durable */
  guint64 failures;        /* commits that failed on disk */
  guint64 batches;         /* group commits run */
  guint64 file_syncs;      /* fdatasync() calls */
  guint64 directory_syncs; /* fsync() calls on queue/ and hold/ that
                            * commits waited for (files made without a
                            * spare) */
  guint64 deferred_syncs;  /* fsync() calls on queue/, hold/ and tmp/ that
                            * no commit waited for */
  guint64 directory_sync_failures; /* of queue/ or hold/ (logged) */
  guint64 spare_files;     /* messages started in a file made ahead */
} PstSpoolStats;
void pst_spool_get_stats(PstSpool *spool, PstSpoolStats *stats);

G_END_DECLS
