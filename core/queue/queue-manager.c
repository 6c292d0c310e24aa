/* queue-manager.c - scheduling delivery attempts (see queue-manager.h).
 *
 * Entry points: pst_queue_manager_new/start/set_generation/free (the
 * daemon), pst_queue_manager_add (new messages: the daemon's commit
 * callback, which the sessions' generation carries), and the operator's
 * flush/hold/release/delete (control.c).
 *
 * The manager works on one generation (generation.h) at a time: its
 * configuration, tables and plugins; each job holds the generation it
 * started on, so a reload never changes a delivery in progress.
 *
 * Each message in queue/ has an Entry: its PstQueueEntry (queue-entry.h:
 * the files, the journal, the claim a job holds, the DSN links) and its
 * slot in the schedule (queue-schedule.h): idle, waiting for its retry
 * time (one heap, one timer), ready in the lane of its destination, or
 * running (the lanes take turns, each up to its window, all up to
 * [delivery] max_parallel).  A job (delivery-job.c: disk work on worker
 * threads, network I/O on the main loop) tells where the message waits
 * (its lane) and whether that destination took anything; a message's
 * first job, given the dead destinations, sorts a message only for one of
 * them into its lane untried (PST_JOB_SORTED).  The result comes back on
 * the main loop (job_done) and decides: retry after a backoff (queuing a
 * "delayed" DSN the job built, if any), queue the final DSN, or forget
 * the message (done, held, deleted, corrupt).
 *
 * DSNs: the final DSN's queue id is journaled in the original's state
 * before it is committed, the original's id goes in the DSN's trailer,
 * and the DSN is made ready only once the original's files are gone (a
 * finishing job, `waiter`).  A DSN found with its original still queued
 * (after a crash, or queued by an older version) is not delivered:
 * manager_original_first() has the original checked and, when its
 * journal names the DSN, removed first; so a DSN delivered implies its
 * original is gone, and no DSN is sent twice.
 * Operator actions on a busy message wait for its job (pending_op).
 * Invariant: at most one job per message at any time.
 */
#include <string.h>

#include "generation/generation.h"
#include "queue/queue-entry.h"
#include "queue/queue-job.h"
#include "queue/queue-manager.h"
#include "queue/queue-id.h"
#include "queue/queue-schedule.h"
#include "queue/spool-manage.h"
#include "queue/state-journal.h"

typedef enum { OP_NONE = 0, OP_HOLD, OP_DELETE } PendingOp;

typedef struct {
  PstQueueSlot slot;    /* its place in the schedule (queue-schedule.h) */
  PstQueueEntry *files; /* owned: its file, journal, claim and DSN links
                         * (queue-entry.h); claimed while a job runs or
                         * its DSN is being committed */
  const char *id;       /* the entry's */
  gboolean rerun;       /* flushed while busy: run again at once */
  PendingOp pending;    /* operator action after the job */
  guint attempts;
  gboolean original_checked; /* a DSN: its original went first */
  char *waiter; /* owned, nullable: a DSN made ready when this job ends */
} Entry;

static gboolean entry_busy(const Entry *entry) {
  return pst_queue_entry_is_claimed(entry->files);
}

struct _PstQueueManager {
  PstGeneration *generation;  /* owned reference: config, tables, plugins */
  PstConfig *config;          /* the generation's */
  PstSpool *spool;            /* borrowed: the daemon's */
  const PstQueueDeliverer *deliverer; /* static: the deliver layer's */
  GHashTable *entries;        /* owned: id -> Entry* */
  PstQueueSchedule *schedule; /* owned: lanes, windows, retry times */
  guint wake_timer;           /* the one retry timer, 0 when none */
  gint64 wake_at;             /* monotonic µs it fires at */
  GMainContext *context;      /* owned (a reference) */
  PstJobWorkers *workers;     /* owned: the jobs' disk steps */
  guint running;              /* jobs and DSN commits under way */
  gboolean enabled;           /* a delivery method is configured */
  gboolean stopping;
  guint cache_timer; /* closes idle outbound SMTP connections */
};

static void manager_dispatch(PstQueueManager *manager);
static void manager_add(PstQueueManager *manager, const char *id,
                        gboolean committed);

/* --- Scheduling --------------------------------------------------------- */

/* The entry of `id`, made when there is none; `committed`: `id` was just
 * committed here, so a new entry knows it has no journal yet. */
static Entry *manager_entry(PstQueueManager *manager, const char *id,
                            gboolean committed) {
  Entry *entry = g_hash_table_lookup(manager->entries, id);
  if (entry == NULL) {
    entry = g_new0(Entry, 1);
    entry->files = committed ? pst_queue_entry_new_committed(manager->spool, id)
                             : pst_queue_entry_new(manager->spool, id);
    entry->id = pst_queue_entry_get_id(entry->files);
    pst_queue_schedule_add(manager->schedule, &entry->slot, entry);
    g_hash_table_insert(manager->entries, (gpointer)entry->id, entry);
  }
  return entry;
}

static void manager_forget(PstQueueManager *manager, Entry *entry) {
  pst_queue_schedule_remove(manager->schedule, &entry->slot);
  g_hash_table_remove(manager->entries, entry->id);
}

static void entry_free(Entry *entry) {
  pst_queue_entry_free(entry->files);
  g_free(entry->waiter);
  g_free(entry);
}

static void entry_make_ready(PstQueueManager *manager, Entry *entry) {
  if (entry_busy(entry)) {
    entry->rerun = TRUE;
    return;
  }
  pst_queue_schedule_ready(manager->schedule, &entry->slot);
  manager_dispatch(manager);
}

static gboolean wake_timer_fired(gpointer data);

/* Sets the one timer to the earliest retry time. */
static void manager_set_wake_timer(PstQueueManager *manager) {
  gint64 due = pst_queue_schedule_next_due(manager->schedule);
  if (manager->wake_timer != 0 && manager->wake_at == due)
    return;
  if (manager->wake_timer != 0)
    g_source_remove(manager->wake_timer);
  manager->wake_timer = 0;
  if (due == G_MAXINT64 || manager->stopping)
    return;
  gint64 delay_ms = (due - g_get_monotonic_time() + 999) / 1000;
  manager->wake_at = due;
  manager->wake_timer = g_timeout_add_full(
      G_PRIORITY_DEFAULT, (guint)CLAMP(delay_ms, 0, G_MAXUINT),
      wake_timer_fired, manager, NULL);
}

static gboolean wake_timer_fired(gpointer data) {
  PstQueueManager *manager = data;
  manager->wake_timer = 0;
  pst_queue_schedule_wake(manager->schedule, g_get_monotonic_time());
  manager_set_wake_timer(manager);
  manager_dispatch(manager);
  return G_SOURCE_REMOVE;
}

/* The delay before attempt `attempts` + 1: retry_first doubled per
 * attempt, at most retry_max. */
static guint retry_delay_ms(const PstDeliveryConfig *delivery, guint attempts,
                            gboolean waits_for_transport) {
  if (waits_for_transport)
    return delivery->retry_max_ms;
  guint64 delay = delivery->retry_first_ms;
  for (guint i = 1; i < attempts && delay < delivery->retry_max_ms; i++)
    delay *= 2;
  return (guint)MIN(delay, (guint64)delivery->retry_max_ms);
}

static void entry_schedule_retry(PstQueueManager *manager, Entry *entry,
                                 guint delay_ms) {
  pst_queue_schedule_wait(manager->schedule, &entry->slot,
                          g_get_monotonic_time() +
                              (gint64)delay_ms * G_TIME_SPAN_MILLISECOND);
  manager_set_wake_timer(manager);
}

/* --- Jobs ---------------------------------------------------------------- */

static void job_done(PstDeliveryJob *job, gpointer user_data);

static void manager_run_job(PstQueueManager *manager, PstDeliveryJob *job) {
  manager->running++;
  manager->deliverer->job_run(job, manager->workers, job_done, manager);
}

/* Starts the jobs the schedule allows: the lanes in turn, each up to its
 * window, all up to [delivery] max_parallel. */
static void manager_dispatch(PstQueueManager *manager) {
  Entry *entry;
  while (!manager->stopping &&
         (entry = pst_queue_schedule_next(manager->schedule)) != NULL) {
    pst_queue_entry_claim(entry->files);
    PstDeliveryJob *job =
        manager->deliverer->job_new(entry->files, manager->generation);
    job->original_checked = entry->original_checked;
    /* Not sorted yet: a message only for a dead destination goes to its
     * lane instead of taking a worker here. */
    if (pst_queue_slot_get_destination(&entry->slot) == NULL)
      job->dead = pst_queue_schedule_dead(manager->schedule);
    manager_run_job(manager, job);
  }
  manager->deliverer->workers_set_hurry(
      manager->workers, pst_queue_schedule_has_ready(manager->schedule));
}

/* The operator's action once no job runs. */
static void entry_apply_pending(PstQueueManager *manager, Entry *entry);

typedef struct {
  PstQueueManager *manager;
  PstSpoolWriter *writer; /* owned */
  char *id;               /* owned: the message the DSN reports on */
  gboolean delay;         /* a "delayed" DSN: the original stays */
} DsnCommit;

static void dsn_committed(GObject *source, GAsyncResult *result,
                          gpointer user_data);

/* Writes the DSN a job built into a new spool file; NULL (logged) when it
 * cannot. */
static PstSpoolWriter *manager_write_dsn(PstQueueManager *manager,
                                         PstDeliveryJob *job, gboolean delay) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstSpoolWriter) writer =
      pst_spool_writer_new(manager->spool, &error);
  gsize length = 0;
  const void *data = g_bytes_get_data(job->dsn, &length);
  if (writer == NULL || !pst_spool_writer_write(writer, data, length, &error) ||
      (!delay && !pst_queue_entry_note_dsn(job->entry,
                                           pst_spool_writer_get_id(writer),
                                           &error))) {
    g_warning("%s: cannot queue the %sdelivery status notification: %s",
              job->id, delay ? "\"delayed\" " : "", error->message);
    return NULL;
  }
  return g_steal_pointer(&writer);
}

/* Queues the DSN a job built; after a final one, the original goes once
 * it is durable. */
static void manager_queue_dsn(PstQueueManager *manager, PstDeliveryJob *job,
                              gboolean delay) {
  g_autoptr(PstSpoolWriter) writer = manager_write_dsn(manager, job, delay);
  if (writer == NULL) {
    if (!delay)
      entry_schedule_retry(manager, manager_entry(manager, job->id, FALSE),
                           manager->config->delivery.retry_first_ms);
    return;
  }
  g_autoptr(PstEnvelope) envelope = pst_envelope_new();
  envelope->sender = g_strdup("");
  pst_envelope_add_recipient(envelope, job->dsn_to);
  envelope->client_address = g_strdup("127.0.0.1");
  envelope->listener = g_strdup("dsn");
  envelope->protocol = g_strdup("local");
  envelope->session_id = g_strdup(pst_spool_writer_get_id(writer));
  /* The explicit link: the original goes before its final DSN. */
  if (!delay)
    envelope->dsn_original = g_strdup(job->id);
  envelope->arrival_time = g_get_real_time();
  envelope->smtputf8 = job->dsn_smtputf8;
  DsnCommit *commit = g_new0(DsnCommit, 1);
  commit->manager = manager;
  commit->id = g_strdup(job->id);
  commit->delay = delay;
  commit->writer = g_steal_pointer(&writer);
  if (!delay)
    pst_queue_entry_claim(job->entry);
  manager->running++; /* the commit is work under way */
  pst_spool_writer_commit_async(commit->writer, envelope, NULL, 0,
                                PST_SPOOL_QUEUE_ACTIVE, dsn_committed, commit);
}

static void dsn_committed(GObject *source, GAsyncResult *result,
                          gpointer user_data) {
  DsnCommit *commit = user_data;
  PstQueueManager *manager = commit->manager;
  g_autoptr(GError) error = NULL;
  const char *dsn_id = pst_spool_writer_get_id(commit->writer);
  manager->running--;
  if (commit->delay) {
    if (pst_spool_writer_commit_finish(commit->writer, result, &error)) {
      g_message("%s: sender \"delayed\" delivery status notification: %s",
                commit->id, dsn_id);
      manager_add(manager, dsn_id, TRUE);
    } else {
      g_warning("%s: cannot queue the \"delayed\" delivery status "
                "notification: %s",
                commit->id, error->message);
    }
    pst_spool_writer_free(commit->writer);
    g_free(commit->id);
    g_free(commit);
    manager_dispatch(manager);
    return;
  }
  Entry *entry = manager_entry(manager, commit->id, FALSE);
  if (pst_spool_writer_commit_finish(commit->writer, result, &error)) {
    g_message("%s: sender delivery status notification: %s", commit->id,
              dsn_id);
    /* The DSN waits for its original's removal (disk work: a finishing
     * job, the claim still held); then a delivered DSN implies its
     * original is gone. */
    Entry *dsn = manager_entry(manager, dsn_id, TRUE);
    dsn->original_checked = TRUE;
    if (!manager->stopping && manager->enabled) {
      PstDeliveryJob *job =
          manager->deliverer->job_new(entry->files, manager->generation);
      job->finish_only = TRUE;
      entry->waiter = g_strdup(dsn_id);
      manager_run_job(manager, job);
    } else {
      pst_queue_entry_release(entry->files);
    }
  } else {
    pst_queue_entry_release(entry->files);
    g_warning("%s: cannot queue the delivery status notification: %s",
              commit->id, error->message);
    entry_schedule_retry(manager, entry,
                         manager->config->delivery.retry_first_ms);
  }
  pst_spool_writer_free(commit->writer);
  g_free(commit->id);
  g_free(commit);
  manager_dispatch(manager);
}

/* A DSN whose original is still queued: the original's own job removes it
 * when it sees the DSN queued, so the DSN waits for that job; an idle
 * original gets a check (removed when its journal names this DSN).
 * Either way the DSN is ready again when that job ends. */
static void manager_original_first(PstQueueManager *manager, Entry *dsn) {
  const char *id = pst_queue_entry_get_original(dsn->files);
  Entry *original = manager_entry(manager, id, FALSE);
  g_message("%s: waits for %s, the message it reports on, to go first",
            dsn->id, id);
  if (entry_busy(original) && original->waiter != NULL) {
    entry_schedule_retry(manager, dsn, 1000); /* rare: check again soon */
    return;
  }
  original->waiter = g_strdup(dsn->id);
  if (entry_busy(original) || manager->stopping)
    return;
  pst_queue_entry_claim(original->files);
  pst_queue_schedule_idle(manager->schedule, &original->slot);
  PstDeliveryJob *job =
      manager->deliverer->job_new(original->files, manager->generation);
  job->dsn_check = g_strdup(dsn->id);
  manager_run_job(manager, job);
}

/* The DSN that waited for this job (its original's) goes on. */
static void manager_wake_waiter(PstQueueManager *manager, const char *id) {
  Entry *dsn = id != NULL ? g_hash_table_lookup(manager->entries, id) : NULL;
  if (dsn == NULL)
    return;
  dsn->original_checked = TRUE;
  if (manager->enabled && !manager->stopping)
    entry_make_ready(manager, dsn);
}

/* What the job says about the destination it waits for. */
static PstQueueLaneNews job_news(const PstDeliveryJob *job) {
  switch (job->outcome) {
  case PST_JOB_RETRY:
    if (job->destination == NULL)
      return PST_QUEUE_LANE_NO_NEWS;
    return job->delivered ? PST_QUEUE_LANE_DELIVERED : PST_QUEUE_LANE_FAILED;
  case PST_JOB_DONE:
  case PST_JOB_NEEDS_DSN:
    return job->delivered ? PST_QUEUE_LANE_DELIVERED : PST_QUEUE_LANE_NO_NEWS;
  default:
    return PST_QUEUE_LANE_NO_NEWS;
  }
}

/* A deferred message: the operator's action, a flush that came meanwhile,
 * or its retry time; a message sorted into its lane is ready there. */
static void entry_deferred(PstQueueManager *manager, Entry *entry,
                           const PstDeliveryJob *job) {
  entry->attempts = MAX(job->attempts, 1);
  if (entry->pending != OP_NONE) {
    entry_apply_pending(manager, entry);
  } else if (entry->rerun || job->outcome == PST_JOB_SORTED ||
             job->outcome == PST_JOB_KEPT) {
    entry->rerun = FALSE;
    entry_make_ready(manager, entry);
  } else if (!manager->stopping) {
    entry_schedule_retry(manager, entry,
                         retry_delay_ms(&manager->config->delivery,
                                        entry->attempts,
                                        job->waits_for_transport));
  }
}

/* Back on the main loop with a job's outcome (the job is ours). */
/* What a finished job's outcome means for its entry. */
static void job_settle(PstQueueManager *manager, PstDeliveryJob *job) {
  manager->running--;
  Entry *entry = manager_entry(manager, job->id, FALSE);
  g_autofree char *waiter = g_steal_pointer(&entry->waiter);
  pst_queue_entry_release(entry->files);
  if (entry->slot.state == PST_QUEUE_SLOT_RUNNING)
    pst_queue_schedule_done(manager->schedule, &entry->slot, job->destination,
                            job_news(job));
  switch (job->outcome) {
  case PST_JOB_NEEDS_DSN:
    manager_queue_dsn(manager, job, FALSE);
    break;
  case PST_JOB_RETRY:
    if (job->dsn != NULL)
      manager_queue_dsn(manager, job, TRUE);
    entry_deferred(manager, entry, job);
    break;
  case PST_JOB_SORTED:
  case PST_JOB_KEPT:
    entry_deferred(manager, entry, job);
    break;
  case PST_JOB_ORIGINAL_FIRST:
    manager_original_first(manager, entry);
    break;
  case PST_JOB_DONE:
  case PST_JOB_GONE:
  case PST_JOB_CORRUPT:
  default:
    manager_forget(manager, entry);
    break;
  }
  manager_wake_waiter(manager, waiter);
  manager_dispatch(manager);
}

static void job_done(PstDeliveryJob *job, gpointer user_data) {
  PstQueueManager *manager = user_data;
  job_settle(manager, job);
  manager->deliverer->job_free(job);
}

/* --- Operator actions ----------------------------------------------------- */

static gboolean manager_check_id(const char *id, GError **error) {
  if (id != NULL && pst_queue_id_is_valid(id))
    return TRUE;
  g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND,
              "“%s” is not a queue id", id != NULL ? id : "");
  return FALSE;
}

static void entry_apply_pending(PstQueueManager *manager, Entry *entry) {
  g_autoptr(GError) error = NULL;
  PendingOp op = entry->pending;
  entry->pending = OP_NONE;
  g_autofree char *id = g_strdup(entry->id);
  manager_forget(manager, entry);
  g_autoptr(PstQueueEntry) files = pst_queue_entry_new(manager->spool, id);
  if (op == OP_HOLD) {
    if (pst_queue_entry_hold(files, &error))
      g_message("%s: held by the operator", id);
  } else if (op == OP_DELETE) {
    if (pst_queue_entry_delete(files, &error))
      g_message("%s: deleted by the operator", id);
  }
  if (error != NULL &&
      !g_error_matches(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND))
    g_warning("%s: %s", id, error->message);
}

gboolean pst_queue_manager_flush(PstQueueManager *manager, const char *id,
                                 GError **error) {
  if (!manager->enabled) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "no delivery method in [delivery] (maildir_root, "
                "system_users or lmtp): mail stays queued");
    return FALSE;
  }
  if (id == NULL) {
    g_autoptr(GPtrArray) ids =
        pst_spool_list(manager->spool, PST_SPOOL_QUEUE_ACTIVE, error);
    if (ids == NULL)
      return FALSE;
    for (guint i = 0; i < ids->len; i++)
      manager_add(manager, ids->pdata[i], FALSE);
    g_message("flush: %u messages", ids->len);
    return TRUE;
  }
  if (!manager_check_id(id, error))
    return FALSE;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(manager->spool, PST_SPOOL_QUEUE_ACTIVE, id, error);
  if (message == NULL)
    return FALSE;
  g_message("%s: flush requested", id);
  manager_add(manager, id, FALSE);
  return TRUE;
}

gboolean pst_queue_manager_hold(PstQueueManager *manager, const char *id,
                                GError **error) {
  if (!manager_check_id(id, error))
    return FALSE;
  Entry *entry = g_hash_table_lookup(manager->entries, id);
  if (entry != NULL && entry_busy(entry)) {
    entry->pending = OP_HOLD;
    return TRUE;
  }
  g_autoptr(PstQueueEntry) files = pst_queue_entry_new(manager->spool, id);
  if (!pst_queue_entry_hold(files, error))
    return FALSE;
  if (entry != NULL)
    manager_forget(manager, entry);
  g_message("%s: held by the operator", id);
  return TRUE;
}

gboolean pst_queue_manager_release(PstQueueManager *manager, const char *id,
                                   GError **error) {
  if (!manager_check_id(id, error) ||
      !pst_spool_move(manager->spool, PST_SPOOL_QUEUE_HOLD,
                      PST_SPOOL_QUEUE_ACTIVE, id, error))
    return FALSE;
  g_message("%s: released by the operator", id);
  manager_add(manager, id, FALSE);
  return TRUE;
}

gboolean pst_queue_manager_delete(PstQueueManager *manager, const char *id,
                                  GError **error) {
  if (!manager_check_id(id, error))
    return FALSE;
  Entry *entry = g_hash_table_lookup(manager->entries, id);
  if (entry != NULL && entry_busy(entry)) {
    entry->pending = OP_DELETE;
    return TRUE;
  }
  g_autoptr(PstQueueEntry) files = pst_queue_entry_new(manager->spool, id);
  if (!pst_queue_entry_delete(files, error))
    return FALSE;
  if (entry != NULL)
    manager_forget(manager, entry);
  g_message("%s: deleted by the operator", id);
  return TRUE;
}

/* --- Life cycle ----------------------------------------------------------- */

static void entry_unschedule(gpointer key, gpointer value, gpointer data) {
  PstQueueManager *manager = data;
  Entry *entry = value;
  pst_queue_schedule_remove(manager->schedule, &entry->slot);
}

/* Idle outbound connections are the generations' shared cache. */
static void manager_expire_connections(PstQueueManager *manager, gboolean all) {
  manager->deliverer->expire_connections(manager->generation, all);
}

static gboolean cache_timer_fired(gpointer user_data) {
  manager_expire_connections(user_data, FALSE);
  return G_SOURCE_CONTINUE;
}

gboolean pst_queue_manager_check_config(PstGeneration *generation,
                                        const PstQueueDeliverer *deliverer,
                                        GError **error) {
  return deliverer->check_config(generation, error);
}

/* Takes the generation's configuration, tables and plugins. */
static void manager_take_generation(PstQueueManager *manager,
                                    PstGeneration *generation) {
  PstGeneration *old = manager->generation;
  manager->generation = pst_generation_ref(generation);
  manager->config = pst_generation_get_config(generation);
  manager->enabled = pst_config_delivery_enabled(&manager->config->delivery);
  if (manager->schedule != NULL)
    pst_queue_schedule_set_limits(
        manager->schedule, manager->config->delivery.max_parallel,
        manager->config->delivery.destination_concurrency);
  pst_generation_unref(old);
}

PstQueueManager *pst_queue_manager_new(PstGeneration *generation,
                                       PstSpool *spool,
                                       const PstQueueDeliverer *deliverer,
                                       GError **error) {
  if (!deliverer->check_config(generation, error))
    return NULL;
  if (pst_generation_get_tables(generation) == NULL) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "delivery needs the generation's recipient tables");
    return NULL;
  }
  if (!pst_state_journal_prepare(pst_spool_get_directory(spool), error))
    return NULL;
  PstQueueManager *manager = g_new0(PstQueueManager, 1);
  manager->spool = spool;
  manager->deliverer = deliverer;
  manager_take_generation(manager, generation);
  manager->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                           (GDestroyNotify)entry_free);
  manager->schedule = pst_queue_schedule_new(
      manager->config->delivery.max_parallel,
      manager->config->delivery.destination_concurrency);
  manager->context = g_main_context_ref_thread_default();
  manager->workers = deliverer->workers_new();
  manager->cache_timer = g_timeout_add_seconds(1, cache_timer_fired, manager);
  return manager;
}

void pst_queue_manager_start(PstQueueManager *manager) {
  guint orphans =
      pst_state_journal_remove_orphans(pst_spool_get_directory(manager->spool));
  if (orphans > 0)
    g_message("removed %u state journals of messages no longer queued",
              orphans);
  if (!manager->enabled) {
    g_message("delivery: no delivery method in [delivery]; accepted mail "
              "stays queued");
    return;
  }
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ids =
      pst_spool_list(manager->spool, PST_SPOOL_QUEUE_ACTIVE, &error);
  if (ids == NULL) {
    g_warning("delivery: cannot list the queue: %s", error->message);
    return;
  }
  for (guint i = 0; i < ids->len; i++)
    manager_add(manager, ids->pdata[i], FALSE);
}

/* Tries `id` now; `committed` as for manager_entry(). */
static void manager_add(PstQueueManager *manager, const char *id,
                        gboolean committed) {
  if (!manager->enabled || manager->stopping)
    return;
  entry_make_ready(manager, manager_entry(manager, id, committed));
}

void pst_queue_manager_add(PstQueueManager *manager, const char *id) {
  manager_add(manager, id, TRUE);
}

void pst_queue_manager_set_generation(PstQueueManager *manager,
                                      PstGeneration *generation) {
  g_autoptr(GError) error = NULL;
  if (!manager->deliverer->check_config(generation, &error)) {
    g_warning("reload: %s; the last good delivery settings stay",
              error->message);
    return;
  }
  gboolean was_enabled = manager->enabled;
  manager_take_generation(manager, generation);
  if (manager->enabled && !was_enabled)
    pst_queue_manager_start(manager);
  manager_dispatch(manager);
}

void pst_queue_manager_free(PstQueueManager *manager) {
  if (manager == NULL)
    return;
  manager->stopping = TRUE;
  /* Let the attempts under way finish and report. */
  while (manager->running > 0)
    g_main_context_iteration(manager->context, TRUE);
  manager->deliverer->workers_free(manager->workers);
  g_source_remove(manager->cache_timer);
  manager_expire_connections(manager, TRUE);
  if (manager->wake_timer != 0)
    g_source_remove(manager->wake_timer);
  g_hash_table_foreach(manager->entries, entry_unschedule, manager);
  g_hash_table_unref(manager->entries);
  pst_queue_schedule_free(manager->schedule);
  pst_generation_unref(manager->generation);
  g_main_context_unref(manager->context);
  g_free(manager);
}
