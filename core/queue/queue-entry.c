/* queue-entry.c - a queued message's files, claim and DSN links (see
 * queue-entry.h).
 *
 * Invariant: the file goes before the journal (pst_queue_entry_remove()):
 * a crash in between leaves an orphan journal, which the next start
 * removes (pst_state_journal_remove_orphans()), never a message without
 * its state, which would be tried again from nothing.
 */
#include <string.h>

#include "queue/queue-entry.h"
#include "queue/spool-manage.h"
#include "queue/state-journal.h"

struct _PstQueueEntry {
  char *id;            /* owned */
  PstSpool *spool;     /* borrowed */
  gboolean claimed;    /* main thread */
  char *original;      /* owned, nullable: a DSN's original */
  char *dsn;           /* owned, nullable: the final DSN it caused */
  gboolean no_journal; /* known to have no journal (just committed, or the
                        * last read found none) and nothing was appended
                        * since: reading finds none without looking,
                        * removing it is not needed */
  gint64 committed_at; /* monotonic µs, 0 = not committed by this process */
};

PstQueueEntry *pst_queue_entry_new(PstSpool *spool, const char *id) {
  PstQueueEntry *entry = g_new0(PstQueueEntry, 1);
  entry->id = g_strdup(id);
  entry->spool = spool;
  return entry;
}

PstQueueEntry *pst_queue_entry_new_committed(PstSpool *spool, const char *id) {
  PstQueueEntry *entry = pst_queue_entry_new(spool, id);
  entry->no_journal = TRUE;
  entry->committed_at = g_get_monotonic_time();
  return entry;
}

gboolean pst_queue_entry_is_fresh(const PstQueueEntry *entry, gint64 max_age) {
  return entry->no_journal && entry->committed_at != 0 &&
         g_get_monotonic_time() - entry->committed_at < max_age;
}

void pst_queue_entry_free(PstQueueEntry *entry) {
  if (entry == NULL)
    return;
  g_free(entry->id);
  g_free(entry->original);
  g_free(entry->dsn);
  g_free(entry);
}

const char *pst_queue_entry_get_id(const PstQueueEntry *entry) {
  return entry->id;
}

PstSpool *pst_queue_entry_get_spool(const PstQueueEntry *entry) {
  return entry->spool;
}

/* --- The claim ---------------------------------------------------------------- */

gboolean pst_queue_entry_claim(PstQueueEntry *entry) {
  if (entry->claimed)
    return FALSE;
  entry->claimed = TRUE;
  return TRUE;
}

void pst_queue_entry_release(PstQueueEntry *entry) {
  g_warn_if_fail(entry->claimed);
  entry->claimed = FALSE;
}

gboolean pst_queue_entry_is_claimed(const PstQueueEntry *entry) {
  return entry->claimed;
}

/* --- Files --------------------------------------------------------------------- */

static const char *entry_directory(const PstQueueEntry *entry) {
  return pst_spool_get_directory(entry->spool);
}

/* Learns the original of a DSN from `message` (NULL: none loaded). */
static PstQueuedMessage *entry_loaded(PstQueueEntry *entry,
                                      PstQueuedMessage *message) {
  if (message != NULL) {
    const char *original =
        pst_envelope_get_dsn_original(pst_queued_message_get_envelope(message));
    g_free(entry->original);
    entry->original = g_strdup(original);
  }
  return message;
}

PstQueuedMessage *pst_queue_entry_load(PstQueueEntry *entry, GError **error) {
  return entry_loaded(entry, pst_spool_load(entry->spool,
                                            PST_SPOOL_QUEUE_ACTIVE, entry->id,
                                            error));
}

PstQueuedMessage *pst_queue_entry_load_cached(PstQueueEntry *entry,
                                              GError **error) {
  return entry_loaded(entry, pst_spool_load_cached(entry->spool,
                                                   PST_SPOOL_QUEUE_ACTIVE,
                                                   entry->id, error));
}

GPtrArray *pst_queue_entry_read_journal(PstQueueEntry *entry, gboolean repair,
                                        GError **error) {
  if (entry->no_journal)
    return g_ptr_array_new_with_free_func(
        (GDestroyNotify)pst_state_record_free);
  gboolean exists = TRUE;
  GPtrArray *records = pst_state_journal_read_at(
      entry_directory(entry), entry->id, repair, &exists, error);
  entry->no_journal = records != NULL && !exists;
  const char *dsn = records != NULL ? pst_state_records_dsn_id(records) : NULL;
  if (dsn != NULL) {
    g_free(entry->dsn);
    entry->dsn = g_strdup(dsn);
  }
  return records;
}

gboolean pst_queue_entry_append(PstQueueEntry *entry, GPtrArray *records,
                                GError **error) {
  entry->no_journal = FALSE;
  return pst_state_journal_append(entry_directory(entry), entry->id, records,
                                  error);
}

gboolean pst_queue_entry_note_dsn(PstQueueEntry *entry, const char *dsn_id,
                                  GError **error) {
  g_autoptr(GPtrArray) notes =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  PstStateRecord *note = g_new0(PstStateRecord, 1);
  note->status = PST_RECIPIENT_DSN_QUEUED;
  note->time = g_get_real_time();
  note->target = g_strdup(dsn_id);
  g_ptr_array_add(notes, note);
  if (!pst_queue_entry_append(entry, notes, error))
    return FALSE;
  g_free(entry->dsn);
  entry->dsn = g_strdup(dsn_id);
  return TRUE;
}

gboolean pst_queue_entry_spool_has(PstQueueEntry *entry, const char *id,
                                   gboolean or_held) {
  static const char *const queues[] = {"queue", "hold"};
  for (guint i = 0; i < (or_held ? 2u : 1u); i++) {
    g_autofree char *path =
        g_build_filename(entry_directory(entry), queues[i], id, NULL);
    if (g_file_test(path, G_FILE_TEST_EXISTS))
      return TRUE;
  }
  return FALSE;
}

gboolean pst_queue_entry_original_is_queued(PstQueueEntry *entry,
                                            const char *id) {
  if (pst_queue_entry_spool_has(entry, id, FALSE))
    return TRUE;
  if (pst_queue_entry_spool_has(entry, id, TRUE))
    return FALSE; /* held */
  g_autofree char *journal =
      g_build_filename(entry_directory(entry), "state", id, NULL);
  return g_file_test(journal, G_FILE_TEST_EXISTS);
}

static gboolean entry_remove(PstQueueEntry *entry, gboolean synced,
                             gboolean *was_there_r, GError **error) {
  g_autoptr(GError) local = NULL;
  gboolean was_there =
      synced ? pst_spool_remove(entry->spool, PST_SPOOL_QUEUE_ACTIVE,
                                entry->id, &local)
             : pst_spool_remove_unsynced(entry->spool, PST_SPOOL_QUEUE_ACTIVE,
                                         entry->id, &local);
  if (was_there_r != NULL)
    *was_there_r = was_there;
  if (!was_there &&
      !g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  g_clear_error(&local);
  /* Logged before the journal goes: a DSN waits while its original's
   * journal is there (pst_queue_entry_original_is_queued()), so nothing
   * it logs comes before this line. */
  if (was_there)
    g_message("%s: removed", entry->id);
  if (!entry->no_journal &&
      !pst_state_journal_remove(entry_directory(entry), entry->id, &local))
    g_warning("%s: %s", entry->id, local->message);
  return TRUE;
}

gboolean pst_queue_entry_remove(PstQueueEntry *entry, gboolean *was_there_r,
                                GError **error) {
  return entry_remove(entry, TRUE, was_there_r, error);
}

gboolean pst_queue_entry_remove_delivered(PstQueueEntry *entry,
                                          GError **error) {
  return entry_remove(entry, FALSE, NULL, error);
}

gboolean pst_queue_entry_hold(PstQueueEntry *entry, GError **error) {
  return pst_spool_move(entry->spool, PST_SPOOL_QUEUE_ACTIVE,
                        PST_SPOOL_QUEUE_HOLD, entry->id, error);
}

gboolean pst_queue_entry_delete(PstQueueEntry *entry, GError **error) {
  g_autoptr(GError) local = NULL;
  if (!pst_spool_remove(entry->spool, PST_SPOOL_QUEUE_ACTIVE, entry->id,
                        &local)) {
    if (!g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    if (!pst_spool_remove(entry->spool, PST_SPOOL_QUEUE_HOLD, entry->id,
                          error))
      return FALSE;
  }
  return pst_state_journal_remove(entry_directory(entry), entry->id, error);
}

gboolean pst_queue_entry_move_to_corrupt(PstQueueEntry *entry,
                                         const char *reason, GError **error) {
  return pst_spool_move_to_corrupt(entry->spool, PST_SPOOL_QUEUE_ACTIVE,
                                   entry->id, reason, error);
}

/* --- Links ------------------------------------------------------------------------ */

const char *pst_queue_entry_get_original(const PstQueueEntry *entry) {
  return entry->original;
}

const char *pst_queue_entry_get_dsn(const PstQueueEntry *entry) {
  return entry->dsn;
}
