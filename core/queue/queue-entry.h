/* queue-entry.h - one queued message's lifecycle: its file in queue/, its
 * state journal in state/, the claim that one job works on it, and its
 * links to DSNs.
 *
 * The queue manager (queue-manager.c) keeps one entry per message in
 * queue/, on the main thread.  Only an entry changes its files: a job
 * (delivery-job.c) gets the entry claimed and calls the file functions
 * below on a worker thread; the manager releases the claim when the job
 * is back.  Nothing else removes or renames a queued message's files
 * (the operator's hold and delete go through the manager, which waits for
 * the claim).
 *
 * DSN links, both ways and on disk:
 *   - a message's final DSN: its queue id, journaled in the message's
 *     state (PST_RECIPIENT_DSN_QUEUED) before the DSN is committed
 *     (pst_queue_entry_note_dsn()), so a crash never sends it twice;
 *   - a final DSN's original: the envelope's dsn_original (or, in a DSN
 *     an older version queued, listener "bounce" and its session id:
 *     pst_envelope_get_dsn_original()).  The original is removed before
 *     its DSN is delivered, so a DSN already delivered implies its
 *     original is gone.
 *
 * Threads: claim, release and the getters of the claim are main-thread
 * only; the file functions block and run where the claim's holder runs.
 */
#pragma once

#include <glib.h>

#include "queue/spool.h"

G_BEGIN_DECLS

typedef struct _PstQueueEntry PstQueueEntry;

/* The entry of message `id` in queue/ of `spool` (borrowed: outlives it). */
PstQueueEntry *pst_queue_entry_new(PstSpool *spool, const char *id);
/* The same for a message just committed: it has no journal yet (its id is
 * new, and only an entry appends to a journal), so reading the journal
 * finds none without opening state/ until something is appended. */
PstQueueEntry *pst_queue_entry_new_committed(PstSpool *spool, const char *id);
void pst_queue_entry_free(PstQueueEntry *entry);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstQueueEntry, pst_queue_entry_free)
const char *pst_queue_entry_get_id(const PstQueueEntry *entry);
PstSpool *pst_queue_entry_get_spool(const PstQueueEntry *entry);
/* TRUE while the entry's message was committed by this process (made by
 * pst_queue_entry_new_committed()) less than `max_age` µs ago and nothing
 * was appended since: its file is as the syncer wrote it a moment ago
 * (its pages in the page cache), and it has no journal. */
gboolean pst_queue_entry_is_fresh(const PstQueueEntry *entry, gint64 max_age);

/* --- The claim (main thread) ---------------------------------------------- */

/* TRUE when the claim was free and is now taken. */
gboolean pst_queue_entry_claim(PstQueueEntry *entry);
void pst_queue_entry_release(PstQueueEntry *entry);
gboolean pst_queue_entry_is_claimed(const PstQueueEntry *entry);

/* --- Files (blocking; by the claim's holder) ------------------------------ */

/* Loads the message from queue/ and learns its original, when it is a
 * DSN (pst_queue_entry_get_original()). */
PstQueuedMessage *pst_queue_entry_load(PstQueueEntry *entry, GError **error);
/* The same without waiting for the disk (pst_spool_load_cached()): for
 * the main loop, which leaves a PST_SPOOL_ERROR_WOULD_BLOCK to a thread. */
PstQueuedMessage *pst_queue_entry_load_cached(PstQueueEntry *entry,
                                              GError **error);
/* The journal's valid records (none when it is missing); `repair`
 * truncates a torn tail.  Learns the final DSN's id, if noted. */
GPtrArray *pst_queue_entry_read_journal(PstQueueEntry *entry, gboolean repair,
                                        GError **error);
/* Appends records (of PstStateRecord*) durably. */
gboolean pst_queue_entry_append(PstQueueEntry *entry, GPtrArray *records,
                                GError **error);
/* Journals, durably, that the message's final DSN is `dsn_id` (before
 * that DSN is committed). */
gboolean pst_queue_entry_note_dsn(PstQueueEntry *entry, const char *dsn_id,
                                  GError **error);
/* Whether `id` is in queue/ (or in hold/ too, when `or_held`) now. */
gboolean pst_queue_entry_spool_has(PstQueueEntry *entry, const char *id,
                                   gboolean or_held);
/* Whether `id` (a DSN's original) is in queue/, or its removal is under
 * way: the file gone, its journal not yet (the removal logs "removed"
 * between the two).  Not when it is held. */
gboolean pst_queue_entry_original_is_queued(PstQueueEntry *entry,
                                            const char *id);
/* Removes the message's file, then its journal: it is done.  Logs
 * "ID: removed" when the file was there; `was_there_r` says whether.
 * FALSE only when the file could not be removed. */
gboolean pst_queue_entry_remove(PstQueueEntry *entry, gboolean *was_there_r,
                                GError **error);
/* The same for a message delivered to every recipient at its first
 * attempt, with no journal and no DSN: the removal is not synced
 * (pst_spool_remove_unsynced()); a power cut may bring the message back,
 * and it is delivered again, never lost. */
gboolean pst_queue_entry_remove_delivered(PstQueueEntry *entry,
                                          GError **error);
/* The operator's actions: queue/ -> hold/ (the entry then ends), and
 * deleting the file (from queue/ or hold/) and its journal. */
gboolean pst_queue_entry_hold(PstQueueEntry *entry, GError **error);
gboolean pst_queue_entry_delete(PstQueueEntry *entry, GError **error);
/* Moves the message to corrupt/ (logged, naming `reason`). */
gboolean pst_queue_entry_move_to_corrupt(PstQueueEntry *entry,
                                         const char *reason, GError **error);

/* --- Links ----------------------------------------------------------------- */

/* For a DSN: the queue id of the message it reports on (after
 * pst_queue_entry_load()), else NULL. */
const char *pst_queue_entry_get_original(const PstQueueEntry *entry);
/* The final DSN it caused (after the journal was read or the note
 * written), else NULL. */
const char *pst_queue_entry_get_dsn(const PstQueueEntry *entry);

G_END_DECLS
