/* delivery-job.c - one delivery attempt of one message.
 *
 * Entry point: pst_delivery_job_run(), on the main thread; the attempt
 * runs in three steps and ends with the caller's callback:
 *
 *  1. prepare (a worker thread: the disk; on the main loop for a small
 *     message committed a moment ago, see "Loading at once" below): load
 *     the message from queue/
 *     and read its content once, a piece at a time, for its size and
 *     8-bit facts (a file that does not parse, or whose content fails its
 *     checksum, goes to corrupt/; delivery-content.c), read its state
 *     journal (repairing a torn tail), and resolve every recipient not
 *     yet final through the aliases;
 *  2. route and send (the main loop): the DELIVERY stage per target when
 *     a plugin has a hook there, then each target's transport by its
 *     route (delivery-transport.h), one batch per transport and
 *     destination, a target that another one already delivers taking its
 *     result (one copy per mailbox); the network transports (lmtp, smtp)
 *     run at once, side by side, as non-blocking state machines;
 *  3. write and record (a worker thread): the transports that write
 *     mailboxes here (maildir, system-user), then each recipient's result
 *     appended to the journal, fdatasynced, one log line per target and
 *     attempt.  Then: every recipient final -> build the DSN if one is due
 *     (never to <>) or remove the message; else report when to retry, with
 *     a "delayed" DSN for the recipients that have waited [delivery]
 *     delay_warning (each noted in the journal first, so it is sent once).
 *
 * The message's files belong to its queue entry (queue/queue-entry.h),
 * which the manager has claimed for the job: every load, journal append,
 * removal and move goes through it.  A final DSN is sent once even across
 * a crash: the queue manager journals its queue id
 * (PST_RECIPIENT_DSN_QUEUED) before committing it.  A job that finds that
 * note and the DSN in the queue only removes the message; a DSN whose
 * original is still queued is not delivered (PST_JOB_ORIGINAL_FIRST) until
 * the manager had the original checked and, when it names this DSN,
 * removed, so a DSN already delivered implies its original is gone.
 *
 * The content is never held whole (but for small messages, and for
 * building a DSN): each transport reads it again in pieces, and makes a
 * delivery final only after its reader found the checksum intact.
 *
 * Invariants: a recipient is marked delivered only after its message is
 * durable in the mailbox (or accepted by the next hop); nothing is acted
 * on before its journal record is durable; a failure to journal leaves
 * the recipient to be tried again.  The Attempt is touched by one thread
 * at a time: each step hands it to the next.
 */
#include <string.h>

#include "deliver/bounce-original.h"
#include "deliver/bounce.h"
#include "deliver/client-io.h"
#include "deliver/delivery-job.h"
#include "deliver/delivery-transport.h"
#include "deliver/dsn-recipients.h"
#include "deliver/job-threads.h"
#include "deliver/route-stage.h"
#include "generation/generation.h"
#include "hooks/hooks.h"
#include "queue/queue-entry.h"
#include "queue/queue-schedule.h"
#include "queue/spool-manage.h"
#include "queue/state-journal.h"
#include "util/log.h"

/* One target's result and how it goes. */
typedef struct _TargetResult TargetResult;
struct _TargetResult {
  PstDeliveryResult result;
  PstRouteChoice route; /* the DELIVERY stage's choice (owned strings) */
  gboolean decided;     /* the route already gave the result */
  /* borrowed, nullable: an earlier target of this attempt that goes the
   * same way to the same address; it is delivered once, and this one
   * takes its result (attempt_group(), attempt_share_results()) */
  const TargetResult *same_as;
};

typedef struct _Attempt {
  PstDeliveryJob *job;         /* borrowed: the caller's until done */
  PstQueuedMessage *message;   /* owned, nullable: once loaded */
  const PstEnvelope *envelope; /* of `message` */
  PstDeliveryContent content;  /* owned: once loaded (its first pass) */
  const PstConfig *config;     /* of the job's tables */
  GPtrArray *records;          /* of PstStateRecord*, pending the next append */
  PstRecipientState *states;   /* owned, nullable: the journal folded */
  GPtrArray *plans;            /* owned, of RecipientPlan* */
  GPtrArray *batches;          /* owned, of PstDeliveryBatch* */
  gboolean journal_empty;      /* no record before this attempt */
  gboolean go_on;              /* prepared: there is something to deliver */
  guint next_plan, next_target; /* the DELIVERY stage's progress */
  gboolean routing;             /* in attempt_route_next()'s loop */
  gboolean route_returned;      /* the stage finished inside the loop */
  guint batches_running;
  PstJobWorkers *workers; /* borrowed: the disk steps run there */
  gboolean quiet;         /* its last step returns without waking the loop */
  void (*work)(struct _Attempt *attempt); /* the step for a worker */
  void (*back)(struct _Attempt *attempt); /* then, on the main loop */
  PstDeliveryJobFunc done;
  gpointer user_data;
} Attempt;

PstDeliveryJob *pst_delivery_job_new(PstQueueEntry *entry,
                                     PstGeneration *generation) {
  PstDeliveryJob *job = g_new0(PstDeliveryJob, 1);
  job->entry = entry;
  job->id = g_strdup(pst_queue_entry_get_id(entry));
  job->spool = pst_queue_entry_get_spool(entry);
  job->generation = pst_generation_ref(generation);
  job->tables = pst_generation_get_tables(generation);
  PstPluginSet *plugins = pst_generation_get_plugins(generation);
  if (plugins != NULL && pst_chain_has_hooks(plugins, NULL, PST_STAGE_DELIVERY))
    job->plugins = plugins;
  return job;
}

void pst_delivery_job_free(PstDeliveryJob *job) {
  if (job == NULL)
    return;
  g_free(job->id);
  g_clear_pointer(&job->dsn, g_bytes_unref);
  g_free(job->dsn_to);
  g_free(job->destination);
  g_free(job->dsn_check);
  g_clear_pointer(&job->dead, g_hash_table_unref);
  pst_generation_unref(job->generation);
  g_free(job);
}

/* --- Logging and journaling --------------------------------------------- */

static void log_attempt(Attempt *attempt, const char *to, const char *orig_to,
                        const PstDeliveryResult *result) {
  double delay = (double)(g_get_real_time() - attempt->envelope->arrival_time) /
                 G_USEC_PER_SEC;
  const char *status = result->status == PST_RECIPIENT_DELIVERED ? "sent"
                       : result->status == PST_RECIPIENT_BOUNCED ? "bounced"
                                                                 : "deferred";
  /* The optional parts as pieces of the one format: no string of their
   * own to make and free for every recipient.  Only the delay goes
   * through printf (%.2f's rounding), alone: the line is then formatted
   * without it. */
  gboolean orig = orig_to != NULL && !g_str_equal(orig_to, to);
  gboolean tls = result->tls != NULL;
  char delay_text[400]; /* %.2f of any double fits */
  g_snprintf(delay_text, sizeof delay_text, "%.2f", delay);
  pst_log_message("%s: to=<%s>%s%s%s, relay=%s, delay=%s%s%s, status=%s (%s)",
                  attempt->job->id, to, orig ? ", orig_to=<" : "",
                  orig ? orig_to : "", orig ? ">" : "", result->relay,
                  delay_text, tls ? ", tls=" : "", tls ? result->tls : "",
                  status, result->reply);
}

static void add_record(Attempt *attempt, PstRecipientStatus status, guint index,
                       guint attempts, const char *reply, const char *relay,
                       const char *target) {
  PstStateRecord *record = g_new0(PstStateRecord, 1);
  record->status = status;
  record->index = index;
  record->time = g_get_real_time();
  record->attempts = attempts;
  record->reply = g_strdup(reply);
  record->relay = g_strdup(relay);
  record->target = g_strdup(target);
  g_ptr_array_add(attempt->records, record);
}

/* Makes the pending records durable; FALSE (logged) when it fails. */
static gboolean flush_records(Attempt *attempt) {
  if (attempt->records->len == 0)
    return TRUE;
  g_autoptr(GError) error = NULL;
  gboolean ok =
      pst_queue_entry_append(attempt->job->entry, attempt->records, &error);
  if (!ok)
    g_warning("%s: cannot record delivery state: %s", attempt->job->id,
              error->message);
  g_ptr_array_set_size(attempt->records, 0);
  return ok;
}

/* --- One recipient ------------------------------------------------------ */

typedef struct {
  guint index;
  GPtrArray *targets;    /* owned, of PstTarget*: those not yet done */
  TargetResult *results; /* owned: one per target */
  guint attempts;        /* this attempt's number */
  gboolean multiple;     /* more than one target: journal each one */
} RecipientPlan;

static void plan_free(RecipientPlan *plan) {
  for (guint i = 0; plan->targets != NULL && i < plan->targets->len; i++) {
    pst_delivery_result_clear(&plan->results[i].result);
    pst_route_choice_clear(&plan->results[i].route);
  }
  g_free(plan->results);
  g_clear_pointer(&plan->targets, g_ptr_array_unref);
  g_free(plan);
}

/* The plan of recipient `index` to `targets` (taken), but those done. */
static RecipientPlan *plan_new(guint index, const PstRecipientState *state,
                               GPtrArray *targets) {
  RecipientPlan *plan = g_new0(RecipientPlan, 1);
  plan->index = index;
  plan->attempts = state->attempts + 1;
  plan->multiple = targets->len > 1;
  for (guint i = targets->len; i-- > 0;) {
    const PstTarget *target = targets->pdata[i];
    if (g_hash_table_contains(state->done, target->address))
      g_ptr_array_remove_index(targets, i);
  }
  plan->results = g_new0(TargetResult, MAX(targets->len, 1));
  plan->targets = targets;
  return plan;
}

/* Resolves recipient `index`; NULL after journaling a permanent failure. */
static RecipientPlan *plan_recipient(Attempt *attempt, guint index,
                                     const PstRecipientState *state) {
  const PstEnvelopeRecipient *recipient =
      attempt->envelope->recipients->pdata[index];
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) targets = pst_deliver_tables_resolve(
      attempt->job->tables, recipient->address, &error);
  guint attempts = state->attempts + 1;
  if (targets == NULL) {
    gboolean loop =
        g_error_matches(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_LOOP);
    PstDeliveryResult result = {0};
    pst_delivery_result_set(
        &result, PST_RECIPIENT_BOUNCED, "none",
        g_strdup_printf(loop ? "554 5.4.6 %s" : "550 5.1.1 %s",
                        error->message));
    log_attempt(attempt, recipient->address, NULL, &result);
    add_record(attempt, PST_RECIPIENT_BOUNCED, index, attempts, result.reply,
               result.relay, NULL);
    pst_delivery_result_clear(&result);
    flush_records(attempt);
    return NULL;
  }
  return plan_new(index, state, g_steal_pointer(&targets));
}

/* The envelope recipient whose DSN parameters go with `target`: only the
 * recipient itself, never an alias expansion (RFC 3461 6.2.7). */
static const PstEnvelopeRecipient *dsn_origin_of(const Attempt *attempt,
                                                 const RecipientPlan *plan,
                                                 const PstTarget *target) {
  const PstEnvelopeRecipient *recipient =
      attempt->envelope->recipients->pdata[plan->index];
  if (plan->multiple ||
      g_ascii_strcasecmp(target->address, recipient->address) != 0)
    return NULL;
  return recipient;
}

/* --- Routes and transports ---------------------------------------------- */

/* A route the stage chose that cannot be followed: refused (deferred). */
static void route_check(Attempt *attempt, const PstTarget *target,
                        TargetResult *result) {
  const char *problem = NULL;
  if (result->route.kind == PST_ROUTE_LOCAL &&
      target->kind == PST_TARGET_REMOTE)
    problem = "451 4.3.5 route local for a recipient outside our domains";
  else if (result->route.kind == PST_ROUTE_SMTP &&
           target->kind != PST_TARGET_REMOTE && result->route.nexthop == NULL &&
           attempt->config->delivery.relayhost_host == NULL)
    problem = "451 4.3.5 route smtp for a recipient in our domains needs "
              "smtp:NEXTHOP (its MX hosts are this server)";
  if (problem != NULL) {
    pst_route_choice_clear(&result->route);
    result->route.kind = PST_ROUTE_REFUSED;
    result->route.reply = g_strdup(problem);
  }
  if (result->route.kind != PST_ROUTE_REFUSED)
    return;
  PstRecipientStatus status = result->route.reply[0] == '5'
                                  ? PST_RECIPIENT_BOUNCED
                                  : PST_RECIPIENT_DEFERRED;
  pst_delivery_result_set(&result->result, status, "none",
                          g_strdup(result->route.reply));
  result->decided = TRUE;
}

static void attempt_dispatch(Attempt *attempt);
static void attempt_route_next(Attempt *attempt);

static void route_chosen(gpointer user_data) {
  Attempt *attempt = user_data;
  RecipientPlan *plan = attempt->plans->pdata[attempt->next_plan];
  guint i = attempt->next_target++;
  route_check(attempt, plan->targets->pdata[i], &plan->results[i]);
  attempt->route_returned = TRUE;
  if (!attempt->routing)
    attempt_route_next(attempt);
}

/* The DELIVERY stage for every target of every plan, one after the other
 * (a loop, not a recursion, when hooks answer at once). */
static void attempt_route_next(Attempt *attempt) {
  PstPluginSet *plugins = attempt->job->plugins;
  attempt->routing = TRUE;
  while (plugins != NULL && attempt->next_plan < attempt->plans->len) {
    RecipientPlan *plan = attempt->plans->pdata[attempt->next_plan];
    if (attempt->next_target >= plan->targets->len) {
      attempt->next_plan++;
      attempt->next_target = 0;
      continue;
    }
    const PstTarget *target = plan->targets->pdata[attempt->next_target];
    attempt->route_returned = FALSE;
    pst_route_stage_run(
        plugins, pst_generation_get_dns(attempt->job->generation),
        attempt->job->id, target->address,
        &plan->results[attempt->next_target].route, route_chosen, attempt);
    if (!attempt->route_returned) {
      attempt->routing = FALSE; /* route_chosen() goes on later */
      return;
    }
  }
  attempt->routing = FALSE;
  attempt_dispatch(attempt);
}

/* The batch for `key`, made on first use. */
static PstDeliveryBatch *attempt_batch(Attempt *attempt, GHashTable *by_key,
                                       char *key,
                                       const PstDeliveryTransport *transport,
                                       const PstTarget *target,
                                       const PstRouteChoice *route) {
  PstDeliveryBatch *batch = g_hash_table_lookup(by_key, key);
  if (batch != NULL) {
    g_free(key);
    return batch;
  }
  batch = g_new0(PstDeliveryBatch, 1);
  batch->transport = transport;
  batch->queue_id = attempt->job->id;
  batch->tables = attempt->job->tables;
  batch->generation = attempt->job->generation;
  batch->envelope = attempt->envelope;
  batch->content = &attempt->content;
  batch->nexthop = g_strdup(route->nexthop);
  if (transport == &pst_delivery_transport_smtp && route->nexthop == NULL)
    batch->domain = g_strdup(strrchr(target->address, '@') + 1);
  batch->items = g_array_new(FALSE, TRUE, sizeof(PstDeliveryItem));
  g_hash_table_insert(by_key, key, batch);
  g_ptr_array_add(attempt->batches, batch);
  return batch;
}

/* What makes two targets one delivery: the batch (transport and
 * destination), the address, and for SMTP the DSN parameters the next hop
 * gets with it. */
static char *delivery_key(const char *batch_key, const PstTarget *target,
                          const PstEnvelopeRecipient *dsn_origin) {
  if (target->kind != PST_TARGET_REMOTE || dsn_origin == NULL)
    return g_strconcat(batch_key, "\n", target->address, NULL);
  return g_strdup_printf("%s\n%s\n%u\n%s", batch_key, target->address,
                         (guint)dsn_origin->notify,
                         dsn_origin->orcpt != NULL ? dsn_origin->orcpt : "");
}

/* Groups the targets the route did not decide into batches.  A target
 * that another one of this attempt already delivers (a recipient named
 * twice, an alias expanding to a recipient also named, two aliases with a
 * member in common) is delivered once, as Postfix's cleanup and Exim drop
 * duplicate recipients: the mailbox gets one copy. */
static void attempt_group(Attempt *attempt) {
  g_autoptr(GHashTable) by_key =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) deliveries =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint p = 0; p < attempt->plans->len; p++) {
    RecipientPlan *plan = attempt->plans->pdata[p];
    for (guint i = 0; i < plan->targets->len; i++) {
      const PstTarget *target = plan->targets->pdata[i];
      TargetResult *result = &plan->results[i];
      if (result->decided)
        continue;
      char *key = NULL;
      const PstDeliveryTransport *transport = pst_delivery_transport_choose(
          attempt->config, target, &result->route, &key);
      if (transport == NULL) {
        pst_delivery_result_set(
            &result->result, PST_RECIPIENT_DEFERRED, "none",
            g_strdup("451 4.3.5 no delivery method for virtual mailboxes: "
                     "set [delivery] maildir_root or lmtp"));
        result->decided = TRUE;
        continue;
      }
      const PstEnvelopeRecipient *dsn_origin =
          dsn_origin_of(attempt, plan, target);
      char *delivery = delivery_key(key, target, dsn_origin);
      result->same_as = g_hash_table_lookup(deliveries, delivery);
      if (result->same_as != NULL) {
        g_free(delivery);
        g_free(key);
        continue;
      }
      g_hash_table_insert(deliveries, delivery, result);
      PstDeliveryBatch *batch = attempt_batch(attempt, by_key, key, transport,
                                              target, &result->route);
      PstDeliveryItem item = {target, dsn_origin, &result->result};
      g_array_append_val(batch->items, item);
    }
  }
}

typedef void (*AttemptStep)(Attempt *attempt);
/* How a step goes to the workers (see "The worker threads" below). */
typedef enum {
  STEP_ALONE,      /* may wait for the disk: a hand-over of its own */
  STEP_BRIEF,      /* with the other brief steps of this iteration */
  STEP_BRIEF_LAST, /* brief, and the attempt's last: may wait for company */
} StepPace;
static void attempt_in_worker(Attempt *attempt, AttemptStep work,
                              AttemptStep back, StepPace pace);
static void attempt_write(Attempt *attempt);
static void attempt_end(Attempt *attempt);
static gboolean attempt_all_delivered(const Attempt *attempt);

/* Step 3 only removes the files (no mailbox to write, no journal, so no
 * fsync): it may share a worker with other brief steps. */
static gboolean attempt_write_is_brief(const Attempt *attempt) {
  for (guint b = 0; b < attempt->batches->len; b++) {
    const PstDeliveryBatch *batch = attempt->batches->pdata[b];
    if (batch->transport->blocking)
      return FALSE;
  }
  return attempt_all_delivered(attempt);
}

static void batch_done(PstDeliveryBatch *batch, gpointer user_data) {
  Attempt *attempt = user_data;
  if (--attempt->batches_running == 0)
    attempt_in_worker(attempt, attempt_write, attempt_end,
                      attempt_write_is_brief(attempt) ? STEP_BRIEF_LAST
                                                      : STEP_ALONE);
}

/* Starts the network transports; the disk ones wait for the worker. */
static void attempt_dispatch(Attempt *attempt) {
  attempt_group(attempt);
  attempt->batches_running = 1; /* until every batch has started */
  for (guint b = 0; b < attempt->batches->len; b++) {
    PstDeliveryBatch *batch = attempt->batches->pdata[b];
    if (batch->transport->blocking)
      continue;
    attempt->batches_running++;
    batch->transport->deliver(batch, batch_done, attempt);
  }
  batch_done(NULL, attempt);
}

/* A blocking transport is done when deliver() returns. */
static void local_batch_done(PstDeliveryBatch *batch, gpointer user_data) {
}

/* The queue lifetime for a DSN's text: "5 days", "1 day", "12 hours",
 * "30 minutes", "2 seconds" (the largest unit that divides it evenly). */
static char *format_lifetime(guint64 ms) {
  static const struct {
    guint64 ms;
    const char *unit;
  } units[] = {{86400000, "day"},
               {3600000, "hour"},
               {60000, "minute"},
               {1000, "second"}};
  for (guint i = 0; i < G_N_ELEMENTS(units); i++)
    if (ms >= units[i].ms && ms % units[i].ms == 0)
      return g_strdup_printf("%" G_GUINT64_FORMAT " %s%s", ms / units[i].ms,
                             units[i].unit, ms / units[i].ms == 1 ? "" : "s");
  return g_strdup_printf("%" G_GUINT64_FORMAT " ms", ms);
}

/* The queue manager's lane for a target (queue/queue-schedule.h): its SMTP
 * destination, named by the transport's batch key, else "local". */
static char *target_lane(const PstConfig *config, const PstTarget *target,
                         const PstRouteChoice *route) {
  g_autofree char *key = NULL;
  if (pst_delivery_transport_choose(config, target, route, &key) !=
      &pst_delivery_transport_smtp)
    return g_strdup(PST_QUEUE_LANE_LOCAL);
  return g_steal_pointer(&key);
}

/* Tells the queue manager where target `i` waits (the lane of the first
 * deferred one) and whether SMTP delivered anything. */
static void note_lane(Attempt *attempt, const RecipientPlan *plan, guint i) {
  PstDeliveryJob *job = attempt->job;
  const TargetResult *result = &plan->results[i];
  g_autofree char *lane =
      target_lane(attempt->config, plan->targets->pdata[i], &result->route);
  gboolean by_smtp = strcmp(lane, PST_QUEUE_LANE_LOCAL) != 0;
  if (result->result.status == PST_RECIPIENT_DELIVERED && by_smtp)
    job->delivered = TRUE;
  if (result->result.status == PST_RECIPIENT_DEFERRED &&
      job->destination == NULL)
    job->destination = g_steal_pointer(&lane);
}

/* Folds the targets' results into the recipient's and journals it. */
static void finish_recipient(Attempt *attempt, RecipientPlan *plan,
                             const PstRecipientState *state) {
  const PstEnvelopeRecipient *recipient =
      attempt->envelope->recipients->pdata[plan->index];
  PstRecipientStatus status = PST_RECIPIENT_DELIVERED;
  const char *reply = state->reply, *relay = "none";
  for (guint i = 0; i < plan->targets->len; i++) {
    const PstTarget *target = plan->targets->pdata[i];
    const PstDeliveryResult *result = &plan->results[i].result;
    log_attempt(attempt, target->address, recipient->address, result);
    note_lane(attempt, plan, i);
    if (result->status == PST_RECIPIENT_DELIVERED && plan->multiple)
      add_record(attempt, PST_RECIPIENT_TARGET_DONE, plan->index,
                 plan->attempts, result->reply, result->relay, target->address);
    if (status != PST_RECIPIENT_DEFERRED &&
        result->status != PST_RECIPIENT_DELIVERED) {
      status = result->status;
      reply = result->reply;
      relay = result->relay;
    }
    if (status == PST_RECIPIENT_DELIVERED) {
      reply = result->reply;
      relay = result->relay;
    }
  }
  PstDeliveryJob *job = attempt->job;
  g_autofree char *expired = NULL;
  gint64 lifetime = (gint64)attempt->config->delivery.max_lifetime_ms *
                    G_TIME_SPAN_MILLISECOND;
  if (status == PST_RECIPIENT_DEFERRED &&
      g_get_real_time() - attempt->envelope->arrival_time > lifetime) {
    status = PST_RECIPIENT_BOUNCED;
    g_autofree char *age =
        format_lifetime(attempt->config->delivery.max_lifetime_ms);
    expired = g_strdup_printf("421 4.4.7 message expired after %s in "
                              "the queue; last error: %s",
                              age, reply != NULL ? reply : "none");
    reply = expired;
    PstDeliveryResult shown = {PST_RECIPIENT_BOUNCED, expired, (char *)relay,
                               NULL, FALSE};
    log_attempt(attempt, recipient->address, NULL, &shown);
  }
  /* Journaled with the result, in the same append: no success notice of
   * ours for a recipient the next server will report on. */
  if (status == PST_RECIPIENT_DELIVERED && !plan->multiple &&
      plan->targets->len == 1 && plan->results[0].result.dsn_passed)
    add_record(attempt, PST_RECIPIENT_DSN_PASSED, plan->index, plan->attempts,
               NULL, relay, NULL);
  add_record(attempt, status, plan->index, plan->attempts, reply, relay, NULL);
  gboolean recorded = flush_records(attempt);
  if (!recorded || status == PST_RECIPIENT_DEFERRED) {
    job->attempts = MAX(job->attempts, plan->attempts);
    job->waits_for_transport = FALSE;
  }
}

/* --- The message -------------------------------------------------------- */

/* A DSN as pst_dsn_build() writes it, signed by the own-mail signer a
 * plugin of the job's generation provides (DKIM), if any: here, on the
 * job's worker, since RSA signing a returned message is work the main
 * loop must not do. */
static GBytes *dsn_build_signed(PstDeliveryJob *job, const char *host,
                                const PstEnvelope *envelope,
                                GPtrArray *recipients,
                                const PstDeliveryContent *content, gint64 now) {
  /* A DSN returns the message (RET=FULL, up to bounce_size_limit) or its
   * header: no more of it is read. */
  const PstConfig *config = pst_deliver_tables_get_config(job->tables);
  g_autoptr(GError) error = NULL;
  gboolean whole = FALSE;
  g_autoptr(GBytes) original = pst_bounce_original_read(
      content, pst_dsn_returns_whole(envelope, recipients),
      config->delivery.bounce_size_limit, &whole, &error);
  if (original == NULL) {
    g_warning("%s: the DSN goes without the message: %s", job->id,
              error->message);
    original = g_bytes_new_static("", 0);
    whole = TRUE; /* nothing to return, and not for its size */
  }
  g_autoptr(GBytes) dsn = pst_dsn_build(host, job->id, envelope, recipients,
                                        original, whole, now);
  return pst_generation_sign(job->generation, dsn);
}

/* Builds the "delayed" DSN for the recipients due one, after journaling
 * that they have had it (a crash in between loses a warning, never sends
 * two). */
static void job_delay_notice(PstDeliveryJob *job, const PstEnvelope *envelope,
                             const PstRecipientState *states,
                             const PstDeliveryContent *content) {
  const PstConfig *config = pst_deliver_tables_get_config(job->tables);
  gint64 now = g_get_real_time();
  g_autoptr(GPtrArray) storage = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) list = pst_dsn_recipients_delayed(
      envelope, states, now,
      (gint64)config->delivery.delay_warning_ms * G_TIME_SPAN_MILLISECOND,
      (gint64)config->delivery.max_lifetime_ms * G_TIME_SPAN_MILLISECOND,
      storage);
  if (list->len == 0)
    return;
  g_autoptr(GPtrArray) notes =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  for (guint i = 0; i < envelope->recipients->len; i++)
    for (guint j = 0; j < list->len; j++)
      if (((PstDsnRecipient *)list->pdata[j])->address ==
          ((PstEnvelopeRecipient *)envelope->recipients->pdata[i])->address) {
        PstStateRecord *note = g_new0(PstStateRecord, 1);
        note->status = PST_RECIPIENT_DELAY_NOTIFIED;
        note->index = i;
        note->time = now;
        g_ptr_array_add(notes, note);
      }
  g_autoptr(GError) error = NULL;
  if (!pst_queue_entry_append(job->entry, notes, &error)) {
    g_warning("%s: no delay notice: cannot record it: %s", job->id,
              error->message);
    return;
  }
  job->dsn = dsn_build_signed(job, config->server.hostname, envelope, list,
                              content, now);
  job->dsn_to = g_strdup(envelope->sender);
  job->dsn_smtputf8 = envelope->smtputf8;
  g_message("%s: delay notice for %u recipient%s", job->id, list->len,
            list->len == 1 ? "" : "s");
}

/* A DSN's job: its original, when still queued, goes first (the manager
 * has it checked and removed when its journal names this DSN: a crash may
 * have come before the removal), and so does one whose removal is under
 * way (its own job, which wakes this DSN when it ends).  Then a DSN
 * delivered implies its original is gone. */
static gboolean job_original_first(PstDeliveryJob *job) {
  const char *original = pst_queue_entry_get_original(job->entry);
  if (original == NULL || job->original_checked ||
      !pst_queue_entry_original_is_queued(job->entry, original))
    return FALSE;
  job->outcome = PST_JOB_ORIGINAL_FIRST;
  job->waits_for_transport = FALSE;
  return TRUE;
}

/* Removes the message and its journal; `synced`: durably (a DSN's
 * original, an operator's or a final decision), else it may come back
 * after a power cut and be delivered again. */
static void job_remove_files_as(PstDeliveryJob *job, gboolean synced) {
  g_autoptr(GError) error = NULL;
  if (!(synced ? pst_queue_entry_remove(job->entry, NULL, &error)
               : pst_queue_entry_remove_delivered(job->entry, &error))) {
    g_warning("%s: %s", job->id, error->message);
    job->outcome = PST_JOB_RETRY;
    return;
  }
  job->outcome = PST_JOB_DONE;
}

static void job_remove_files(PstDeliveryJob *job) {
  job_remove_files_as(job, TRUE);
}

/* The check the manager asks of an original before its DSN goes out:
 * removed when its journal names that DSN, else left as it is. */
static void job_check_dsn(PstDeliveryJob *job) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) records =
      pst_queue_entry_read_journal(job->entry, FALSE, &error);
  job->outcome = PST_JOB_KEPT;
  if (records == NULL)
    g_warning("%s: %s", job->id, error->message);
  else if (g_strcmp0(pst_queue_entry_get_dsn(job->entry), job->dsn_check) == 0)
    job_remove_files(job);
}

/* Every recipient is final: a DSN if one is due, else the end.  `records`
 * is the journal: a DSN already queued (before a crash) is not sent
 * again. */
static void job_conclude(PstDeliveryJob *job, const PstEnvelope *envelope,
                         const PstRecipientState *states,
                         const PstDeliveryContent *content,
                         GPtrArray *records) {
  const char *queued = pst_queue_entry_get_dsn(job->entry);
  if (queued != NULL) {
    if (pst_queue_entry_spool_has(job->entry, queued, TRUE)) {
      g_message("%s: DSN already queued as %s", job->id, queued);
      job_remove_files(job);
      return;
    }
    /* Absent: delivered (its job removed us first: then we are gone) or
     * never committed. */
    if (!pst_queue_entry_spool_has(job->entry, job->id, FALSE)) {
      job->outcome = PST_JOB_GONE;
      return;
    }
  }
  g_autoptr(GPtrArray) storage = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) list =
      pst_dsn_recipients_final(envelope, states, storage);
  if (list->len == 0 || envelope->sender[0] == '\0') {
    if (list->len > 0)
      g_message("%s: no DSN: the sender is <>", job->id);
    job_remove_files(job);
    return;
  }
  const PstConfig *config = pst_deliver_tables_get_config(job->tables);
  job->dsn = dsn_build_signed(job, config->server.hostname, envelope, list,
                              content, g_get_real_time());
  job->dsn_to = g_strdup(envelope->sender);
  job->dsn_smtputf8 = envelope->smtputf8;
  job->outcome = PST_JOB_NEEDS_DSN;
}

static void job_corrupt(PstDeliveryJob *job, const char *reason) {
  g_autoptr(GError) error = NULL;
  if (!pst_queue_entry_move_to_corrupt(job->entry, reason, &error)) {
    g_warning("%s: %s", job->id, error->message);
    job->outcome = PST_JOB_RETRY;
    return;
  }
  job->outcome = PST_JOB_CORRUPT;
}

/* After the attempt: what is durable decides, not what we meant to
 * write.  Every recipient final -> conclude; else a delay notice if due. */
static void job_decide(PstDeliveryJob *job, const PstEnvelope *envelope,
                       const PstDeliveryContent *content) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) after =
      pst_queue_entry_read_journal(job->entry, FALSE, &error);
  if (after == NULL) {
    g_warning("%s: %s", job->id, error->message);
    return;
  }
  guint n = envelope->recipients->len;
  PstRecipientState *states = pst_recipient_states_fold(after, n);
  gboolean all_final = TRUE;
  for (guint i = 0; i < n; i++)
    all_final &= pst_recipient_status_is_final(states[i].status);
  if (all_final)
    job_conclude(job, envelope, states, content, after);
  else
    job_delay_notice(job, envelope, states, content);
  pst_recipient_states_free(states, n);
}

/* --- The steps -------------------------------------------------------------
 */

/* A message's first job, while some destinations are dead: when every
 * target of its pending recipients goes to one of them, the message is
 * not tried here but sorted into that destination's lane
 * (PST_JOB_SORTED), where the manager tries one message at a time. */
static gboolean attempt_sort(Attempt *attempt) {
  PstDeliveryJob *job = attempt->job;
  if (job->dead == NULL || g_hash_table_size(job->dead) == 0)
    return FALSE;
  g_autofree char *destination = NULL;
  const PstRouteChoice route = {PST_ROUTE_DEFAULT};
  for (guint p = 0; p < attempt->plans->len; p++) {
    RecipientPlan *plan = attempt->plans->pdata[p];
    for (guint i = 0; i < plan->targets->len; i++) {
      g_autofree char *lane =
          target_lane(attempt->config, plan->targets->pdata[i], &route);
      if (destination == NULL)
        destination = g_steal_pointer(&lane);
      else if (strcmp(destination, lane) != 0)
        return FALSE;
    }
  }
  if (destination == NULL || !g_hash_table_contains(job->dead, destination))
    return FALSE;
  job->destination = g_steal_pointer(&destination);
  job->outcome = PST_JOB_SORTED;
  job->waits_for_transport = FALSE;
  return TRUE;
}

/* Frees what refers to the queued message, and closes its file.  The
 * last step on a worker does it there (attempt_write()): the last close of
 * a file removed there frees its inode, and on ext4 that close was the
 * largest single cost of a small delivery on the main thread.  Nothing
 * after attempt_write() reads these. */
static void attempt_release_message(Attempt *attempt) {
  if (attempt->states != NULL)
    pst_recipient_states_free(attempt->states,
                              attempt->envelope->recipients->len);
  attempt->states = NULL;
  g_clear_pointer(&attempt->batches, g_ptr_array_unref);
  g_clear_pointer(&attempt->plans, g_ptr_array_unref);
  g_clear_pointer(&attempt->records, g_ptr_array_unref);
  pst_delivery_content_clear(&attempt->content);
  attempt->envelope = NULL; /* the message's */
  g_clear_pointer(&attempt->message, pst_queued_message_free);
}

static void attempt_free(Attempt *attempt) {
  attempt_release_message(attempt);
  g_free(attempt);
}

/* --- The worker threads ----------------------------------------------------
 *
 * Loading at once: a message's first load, within AT_ONCE_AGE_US of its
 * commit by this process, is done on the main loop when it reads nothing
 * but the file the syncer has just written and synced (its pages are in
 * the page cache, and the reader asks for no access time update, so the
 * read writes no inode): the load reads a small file whole in one pread
 * that takes only what the page cache holds (RWF_NOWAIT: a page evicted
 * meanwhile sends the load to a worker, so the main loop never waits for
 * the disk; pst_queue_entry_load_cached()),
 * the first pass scans that copy, the entry knows there is no journal,
 * and every recipient resolves (like RCPT, on the main loop).  A larger
 * file, a DSN (its original is checked), or a recipient that does not
 * resolve (a failure journaled at once) leaves the rest to a worker as
 * before.  It goes back through the way back below without a wake-up:
 * one thread wake-up and one main-loop wake-up fewer per message.
 *
 * A step for a worker goes to the pool.  Brief steps (loading a message,
 * which fsyncs only in the rare case of a recipient that fails to resolve
 * and is journaled at once; removing one delivered without a journal: no
 * fsync) are gathered while the main loop dispatches, and handed over
 * together, up to BRIEF_MAX per worker, before it polls again: each
 * hand-off woke a thread.  A step that may wait for the disk (a mailbox,
 * a journal append, removing files durably) goes alone, so those still
 * run side by side.  The way back is one source on the main
 * context for every attempt: a worker queues its finished attempts and
 * wakes the context only when the queue was empty, and one dispatch runs
 * every attempt queued meanwhile (a source per step cost a context lock,
 * an eventfd write and a main-loop iteration each).  Always a source,
 * never g_main_context_invoke(): while no loop runs the context (the
 * queue manager's shutdown iterates it by hand) GLib would run the
 * main-loop step right there, on the worker, and it calls DNS and
 * transports.
 *
 * A brief last step returns quietly: its worker queues the attempt but
 * does not wake the main loop, which only has to tell the queue manager
 * that the job ended (the message is removed and logged by then).  The
 * loop takes it back in its next iteration, whatever woke it (at one
 * session, the next client's command or commit a moment later), or after
 * QUIET_WAIT_MS when nothing else does; at once while the queue manager
 * has ready jobs waiting for running ones to end (its hurry, which the
 * worker reads after queueing, so that a hurry set meanwhile finds the
 * attempt queued and `woken` set before the loop polls).  Per message
 * delivered at its first attempt, one main-loop wake-up fewer.
 *
 * At one session the steps of two messages rarely meet in one iteration:
 * a message's last step (removing it, when it was delivered at its first
 * attempt) is handed over about when the next message's first (loading
 * it, when not done at once) or last would be, one commit later.  So a
 * brief last step waits for company up to LAST_WAIT_US when other brief
 * steps came that often of late (the last two loads were that close, or
 * the last last step; else it would only wait, and cost a timer's
 * wake-up): it goes with the next brief steps, or alone after that time,
 * or at once when another waits with it, or while the queue manager has
 * ready jobs waiting for running ones to end (the hurry it sets after
 * each dispatch), so a window is never held by a finished delivery.  Two
 * hand-overs become one: one thread wake-up fewer.
 *
 * The two sides have their own sources: the hand-over runs in a prepare
 * at the default priority, so every iteration reaches it (GLib skips the
 * prepare of a source only after one of a higher priority is ready, and
 * no source of the daemon has a priority above the default); the way back
 * dispatches at PST_DELIVERY_PRIORITY, below the sessions between
 * commands: what it starts (routing, the outbound transactions) waits for
 * an iteration where no client waits for its banner or a reply. */

#define BRIEF_MAX 8
#define LAST_WAIT_US (2 * G_TIME_SPAN_MILLISECOND)
#define QUIET_WAIT_MS 20
#define AT_ONCE_AGE_US (2 * G_TIME_SPAN_SECOND)

struct _PstJobWorkers {
  PstJobThreads *pool; /* owned: runs attempts_work() on GPtrArray* */
  GSource *hand;       /* owned, attached: hands over */
  GSource *back;       /* owned, attached: takes back */
  GPtrArray *gathered; /* owned, main thread: brief steps to hand over */
  GPtrArray *waiting;  /* owned, main thread: last steps waiting for company */
  gint64 waiting_since; /* monotonic µs: the first of `waiting` */
  gint64 brief_last;    /* monotonic µs: the last brief step not a last one */
  gint64 brief_gap;     /* µs between the last two of those */
  gint64 last_step_last; /* monotonic µs: the last brief last step */
  gint hurry;           /* atomic, set by the main thread: the queue
                         * manager's ready jobs wait */
  guint quiet_out;      /* main thread: quiet last steps not yet back */
  GMutex lock;
  GQueue finished;    /* of Attempt*, under `lock`: for the main loop */
  gboolean signalled; /* under `lock`: the loop was woken for `finished` */
  gint woken;         /* atomic: the source has something to run */
};

typedef struct {
  GSource source;
  PstJobWorkers *workers;
} WorkersSource;

/* Main loop: the waiting last steps and the gathered brief steps go to
 * the workers, the last steps first (a worker wakes the main loop once,
 * after the step that follows them: attempts_work()). */
static void workers_hand_over(PstJobWorkers *workers) {
  GPtrArray *all = workers->waiting;
  for (guint i = 0; i < workers->gathered->len; i++)
    g_ptr_array_add(all, workers->gathered->pdata[i]);
  g_ptr_array_set_size(workers->gathered, 0);
  for (guint i = 0; i < all->len; i += BRIEF_MAX) {
    guint n = MIN(all->len - i, BRIEF_MAX);
    GPtrArray *steps = g_ptr_array_sized_new(n);
    for (guint k = 0; k < n; k++)
      g_ptr_array_add(steps, all->pdata[i + k]);
    pst_job_threads_push(workers->pool, steps);
  }
  g_ptr_array_set_size(all, 0);
}

/* Before the main loop polls, each iteration; never dispatches.  While
 * last steps wait, the poll wakes up when their time is over. */
static gboolean hand_prepare(GSource *source, gint *timeout) {
  PstJobWorkers *workers = ((WorkersSource *)source)->workers;
  *timeout = -1;
  if (workers->gathered->len == 0 && workers->waiting->len == 0)
    return FALSE;
  gint64 left = workers->waiting_since + LAST_WAIT_US - g_source_get_time(source);
  if (workers->gathered->len > 0 || g_atomic_int_get(&workers->hurry) ||
      left <= 0 ||
      workers->waiting->len >= 2)
    workers_hand_over(workers);
  else
    *timeout = (gint)((left + 999) / 1000);
  return FALSE;
}

static gboolean hand_dispatch(GSource *source, GSourceFunc callback,
                              gpointer user_data) {
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs hand_funcs = {hand_prepare, NULL, hand_dispatch,
                                  NULL,         NULL, NULL};

/* While quiet last steps are out, the poll ends after QUIET_WAIT_MS at
 * the latest: nothing else may come to take them back. */
static gboolean back_prepare(GSource *source, gint *timeout) {
  PstJobWorkers *workers = ((WorkersSource *)source)->workers;
  *timeout = workers->quiet_out > 0 ? QUIET_WAIT_MS : -1;
  return g_atomic_int_get(&workers->woken) != 0;
}

static gboolean back_check(GSource *source) {
  return g_atomic_int_get(&((WorkersSource *)source)->workers->woken) != 0;
}

/* Main loop: the next step of every attempt the workers finished. */
static gboolean back_dispatch(GSource *source, GSourceFunc callback,
                              gpointer user_data) {
  PstJobWorkers *workers = ((WorkersSource *)source)->workers;
  g_atomic_int_set(&workers->woken, 0);
  g_mutex_lock(&workers->lock);
  GQueue finished = workers->finished;
  g_queue_init(&workers->finished);
  workers->signalled = FALSE;
  g_mutex_unlock(&workers->lock);
  Attempt *attempt;
  while ((attempt = g_queue_pop_head(&finished)) != NULL) {
    workers->quiet_out -= attempt->quiet;
    attempt->back(attempt);
  }
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs back_funcs = {back_prepare, back_check, back_dispatch,
                                  NULL,         NULL,       NULL};

/* A worker thread: each step, and its attempt goes back at once (not
 * after the others handed over with it), but for an attempt's last step
 * followed by another step here: its end on the main loop waits for that
 * one (a wake-up owed is paid after it), so the two cost one wake-up; and
 * a quiet one wakes nobody unless the manager is in a hurry (see above).
 * The loop is woken once until it takes what is queued (`signalled`). */
static void attempts_work(gpointer data, gpointer user_data) {
  g_autoptr(GPtrArray) steps = data;
  PstJobWorkers *workers = user_data;
  gboolean owed = FALSE;
  for (guint i = 0; i < steps->len; i++) {
    Attempt *attempt = steps->pdata[i];
    /* Read before it goes back: the main loop may free it then. */
    gboolean may_wait = attempt->back == attempt_end && i + 1 < steps->len;
    gboolean quiet = attempt->quiet;
    attempt->work(attempt);
    g_mutex_lock(&workers->lock);
    g_queue_push_tail(&workers->finished, attempt);
    g_mutex_unlock(&workers->lock);
    /* Queued and flagged before the hurry is read (see above). */
    g_atomic_int_set(&workers->woken, 1);
    if (!quiet || g_atomic_int_get(&workers->hurry)) {
      g_mutex_lock(&workers->lock);
      owed |= !workers->signalled;
      workers->signalled = TRUE;
      g_mutex_unlock(&workers->lock);
    }
    if (owed && !may_wait) {
      owed = FALSE;
      g_main_context_wakeup(g_source_get_context(workers->back));
    }
  }
}

PstJobWorkers *pst_delivery_job_workers_new(void) {
  PstJobWorkers *workers = g_new0(PstJobWorkers, 1);
  g_mutex_init(&workers->lock);
  g_queue_init(&workers->finished);
  workers->gathered = g_ptr_array_new();
  workers->waiting = g_ptr_array_new();
  GMainContext *context = g_main_context_get_thread_default();
  workers->hand = g_source_new(&hand_funcs, sizeof(WorkersSource));
  ((WorkersSource *)workers->hand)->workers = workers;
  g_source_set_static_name(workers->hand, "delivery-job-hand");
  g_source_attach(workers->hand, context);
  workers->back = g_source_new(&back_funcs, sizeof(WorkersSource));
  ((WorkersSource *)workers->back)->workers = workers;
  g_source_set_static_name(workers->back, "delivery-job-back");
  g_source_set_priority(workers->back, PST_DELIVERY_PRIORITY);
  g_source_attach(workers->back, context);
  workers->pool =
      pst_job_threads_new(attempts_work, workers, PST_DELIVERY_JOB_THREADS_MAX);
  return workers;
}

void pst_delivery_job_workers_free(PstJobWorkers *workers) {
  if (workers == NULL)
    return;
  pst_job_threads_free(workers->pool);
  g_source_destroy(workers->hand);
  g_source_unref(workers->hand);
  g_source_destroy(workers->back);
  g_source_unref(workers->back);
  g_ptr_array_unref(workers->gathered);
  g_ptr_array_unref(workers->waiting);
  g_mutex_clear(&workers->lock);
  g_free(workers);
}

void pst_delivery_job_workers_set_hurry(PstJobWorkers *workers,
                                        gboolean hurry) {
  if (workers != NULL)
    g_atomic_int_set(&workers->hurry, hurry);
}

/* Main loop: an attempt whose step was done here goes back through the
 * same source, in its next dispatch, without a wake-up: the loop runs
 * the sources' prepare before it polls again. */
static void workers_take_back_at_once(PstJobWorkers *workers,
                                      Attempt *attempt, AttemptStep back) {
  attempt->back = back;
  attempt->quiet = FALSE;
  g_mutex_lock(&workers->lock);
  g_queue_push_tail(&workers->finished, attempt);
  g_mutex_unlock(&workers->lock);
  g_atomic_int_set(&workers->woken, 1);
}

static void attempt_in_worker(Attempt *attempt, AttemptStep work,
                              AttemptStep back, StepPace pace) {
  PstJobWorkers *workers = attempt->workers;
  attempt->work = work;
  attempt->back = back;
  attempt->quiet = pace == STEP_BRIEF_LAST;
  workers->quiet_out += attempt->quiet;
  gint64 now = pace != STEP_ALONE ? g_get_monotonic_time() : 0;
  if (pace == STEP_BRIEF) {
    workers->brief_gap = now - workers->brief_last;
    workers->brief_last = now;
  }
  /* Company is due when brief steps came that often, and still come
   * (loads done at once are none), or the last last step came that
   * recently (at one session, the next message's, one commit later). */
  gboolean company = FALSE;
  if (pace == STEP_BRIEF_LAST) {
    company = (workers->brief_gap < LAST_WAIT_US &&
               now - workers->brief_last < LAST_WAIT_US) ||
              now - workers->last_step_last < LAST_WAIT_US;
    workers->last_step_last = now;
  }
  if (company) {
    if (workers->waiting->len == 0)
      workers->waiting_since = now;
    g_ptr_array_add(workers->waiting, attempt);
    return;
  }
  if (pace != STEP_ALONE) {
    g_ptr_array_add(workers->gathered, attempt);
    return;
  }
  GPtrArray *steps = g_ptr_array_sized_new(1);
  g_ptr_array_add(steps, attempt);
  pst_job_threads_push(workers->pool, steps);
}

/* Loads the message and resolves its recipients; FALSE when there is
 * nothing to deliver (the outcome says why). */
static gboolean attempt_load(Attempt *attempt) {
  PstDeliveryJob *job = attempt->job;
  if (job->finish_only) {
    job_remove_files(job);
    return FALSE;
  }
  if (job->dsn_check != NULL) {
    job_check_dsn(job);
    return FALSE;
  }
  g_autoptr(GError) error = NULL;
  /* Loaded (and scanned) on the main loop already: attempt_load_at_once(). */
  if (attempt->message == NULL)
    attempt->message = pst_queue_entry_load(job->entry, &error);
  if (attempt->message == NULL) {
    if (g_error_matches(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND))
      job->outcome = PST_JOB_GONE;
    else if (g_error_matches(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT))
      job_corrupt(job, error->message);
    else
      g_warning("%s: %s", job->id, error->message);
    return FALSE;
  }
  if (attempt->content.message == NULL &&
      !pst_delivery_content_scan(&attempt->content, attempt->message, &error)) {
    if (g_error_matches(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT))
      job_corrupt(job, error->message);
    else
      g_warning("%s: %s", job->id, error->message);
    return FALSE;
  }
  const PstEnvelope *envelope =
      pst_queued_message_get_envelope(attempt->message);
  attempt->envelope = envelope;
  job->arrival_time = envelope->arrival_time;
  if (job_original_first(job))
    return FALSE;
  g_autoptr(GPtrArray) records =
      pst_queue_entry_read_journal(job->entry, TRUE, &error);
  if (records == NULL) {
    g_warning("%s: %s", job->id, error->message);
    return FALSE;
  }
  guint n = envelope->recipients->len;
  attempt->journal_empty = records->len == 0;
  attempt->states = pst_recipient_states_fold(records, n);
  for (guint i = 0; i < n; i++) {
    if (pst_recipient_status_is_final(attempt->states[i].status))
      continue;
    RecipientPlan *plan = plan_recipient(attempt, i, &attempt->states[i]);
    if (plan != NULL)
      g_ptr_array_add(attempt->plans, plan);
  }
  return !attempt_sort(attempt);
}

/* Step 1 (worker thread). */
static void attempt_prepare(Attempt *attempt) {
  PstDeliveryJob *job = attempt->job;
  job->outcome = PST_JOB_RETRY;
  job->waits_for_transport = TRUE;
  attempt->go_on = attempt_load(attempt);
}

/* Step 1 on the main loop, for a message committed a moment ago (see
 * "Loading at once" above): TRUE when it is done.  FALSE when a part of
 * it could wait for or write to the disk: the worker does the rest (what
 * was done stays: the load, and the first pass over the content). */
static gboolean attempt_load_at_once(Attempt *attempt) {
  PstDeliveryJob *job = attempt->job;
  if (!pst_queue_entry_is_fresh(job->entry, AT_ONCE_AGE_US))
    return FALSE;
  /* A failure, or a page the disk would have to read, is left to the
   * worker, which loads again (and reports). */
  attempt->message = pst_queue_entry_load_cached(job->entry, NULL);
  if (attempt->message == NULL ||
      !pst_queued_message_is_whole(attempt->message) ||
      pst_queue_entry_get_original(job->entry) != NULL)
    return FALSE;
  if (!pst_delivery_content_scan(&attempt->content, attempt->message, NULL)) {
    pst_delivery_content_clear(&attempt->content);
    attempt->content = (PstDeliveryContent){0};
    return FALSE;
  }
  /* No journal (the entry is fresh): every recipient is pending. */
  const PstEnvelope *envelope =
      pst_queued_message_get_envelope(attempt->message);
  guint n = envelope->recipients->len;
  g_autoptr(GPtrArray) none = g_ptr_array_new();
  PstRecipientState *states = pst_recipient_states_fold(none, n);
  for (guint i = 0; i < n; i++) {
    const PstEnvelopeRecipient *recipient = envelope->recipients->pdata[i];
    /* One that does not resolve is journaled at once: the worker's. */
    GPtrArray *targets = pst_deliver_tables_resolve(
        job->tables, recipient->address, NULL);
    if (targets == NULL) {
      g_ptr_array_set_size(attempt->plans, 0);
      pst_recipient_states_free(states, n);
      return FALSE;
    }
    g_ptr_array_add(attempt->plans, plan_new(i, &states[i], targets));
  }
  attempt->envelope = envelope;
  attempt->states = states;
  attempt->journal_empty = TRUE;
  job->arrival_time = envelope->arrival_time;
  job->outcome = PST_JOB_RETRY;
  job->waits_for_transport = TRUE;
  attempt->go_on = !attempt_sort(attempt);
  return TRUE;
}

static void attempt_end(Attempt *attempt) {
  attempt->done(attempt->job, attempt->user_data);
  attempt_free(attempt);
}

/* Step 2 (main loop). */
static void attempt_prepared(Attempt *attempt) {
  if (!attempt->go_on) {
    attempt_end(attempt);
    return;
  }
  attempt_route_next(attempt);
}

/* Every recipient delivered at its first attempt, to itself (no alias
 * fan-out), with no success notice due: the message is done.  Removing
 * it records that as durably as a journal record would (a crash before
 * either is on disk delivers again, either way), so it goes at once,
 * without a journal written only to be removed, and without a directory
 * fsync of its own (the next commit's makes the removal durable; a power
 * cut before it delivers the message again): three fsyncs fewer. */
static gboolean attempt_all_delivered(const Attempt *attempt) {
  const GPtrArray *recipients = attempt->envelope->recipients;
  if (!attempt->journal_empty || attempt->plans->len != recipients->len)
    return FALSE;
  for (guint p = 0; p < attempt->plans->len; p++) {
    const RecipientPlan *plan = attempt->plans->pdata[p];
    if (plan->multiple || plan->targets->len != 1)
      return FALSE;
    const PstDeliveryResult *result = &plan->results[0].result;
    const PstEnvelopeRecipient *recipient = recipients->pdata[plan->index];
    if (result->status != PST_RECIPIENT_DELIVERED ||
        ((recipient->notify & PST_DSN_NOTIFY_SUCCESS) != 0 &&
         !result->dsn_passed))
      return FALSE;
  }
  return TRUE;
}

/* The log line of each target, as finish_recipient() writes it. */
static void attempt_log_all(Attempt *attempt) {
  for (guint p = 0; p < attempt->plans->len; p++) {
    const RecipientPlan *plan = attempt->plans->pdata[p];
    const PstEnvelopeRecipient *recipient =
        attempt->envelope->recipients->pdata[plan->index];
    log_attempt(attempt, ((const PstTarget *)plan->targets->pdata[0])->address,
                recipient->address, &plan->results[0].result);
    note_lane(attempt, plan, 0);
  }
}

/* A transport found the content not as stored while it read it (after
 * the first pass found it intact: the file changed on disk): its targets
 * were deferred and journaled; the message goes to corrupt/ as the first
 * pass would have sent it. */
static gboolean attempt_content_corrupt(Attempt *attempt) {
  for (guint b = 0; b < attempt->batches->len; b++) {
    PstDeliveryBatch *batch = attempt->batches->pdata[b];
    if (batch->content_error != NULL &&
        g_error_matches(batch->content_error, PST_SPOOL_ERROR,
                        PST_SPOOL_ERROR_CORRUPT)) {
      job_corrupt(attempt->job, batch->content_error->message);
      return TRUE;
    }
  }
  return FALSE;
}

/* Each target delivered with another one (attempt_group()) takes its
 * result, once every transport is done. */
static void attempt_share_results(Attempt *attempt) {
  for (guint p = 0; p < attempt->plans->len; p++) {
    RecipientPlan *plan = attempt->plans->pdata[p];
    for (guint i = 0; i < plan->targets->len; i++) {
      TargetResult *result = &plan->results[i];
      if (result->same_as == NULL)
        continue;
      const PstDeliveryResult *from = &result->same_as->result;
      pst_delivery_result_set(&result->result, from->status, from->relay,
                              g_strdup(from->reply));
      g_free(result->result.tls);
      result->result.tls = g_strdup(from->tls);
      result->result.dsn_passed = from->dsn_passed;
    }
  }
}

/* Step 3 (worker thread): the local mailboxes, the journal, and what
 * happens next. */
static void attempt_write(Attempt *attempt) {
  PstDeliveryJob *job = attempt->job;
  for (guint b = 0; b < attempt->batches->len; b++) {
    PstDeliveryBatch *batch = attempt->batches->pdata[b];
    if (batch->transport->blocking)
      batch->transport->deliver(batch, local_batch_done, attempt);
  }
  attempt_share_results(attempt);
  if (attempt_all_delivered(attempt)) {
    attempt_log_all(attempt);
    job_remove_files_as(job, FALSE);
  } else {
    for (guint p = 0; p < attempt->plans->len; p++) {
      RecipientPlan *plan = attempt->plans->pdata[p];
      finish_recipient(attempt, plan, &attempt->states[plan->index]);
    }
    if (!attempt_content_corrupt(attempt))
      job_decide(job, attempt->envelope, &attempt->content);
  }
  attempt_release_message(attempt);
}

void pst_delivery_job_run(PstDeliveryJob *job, PstJobWorkers *workers,
                          PstDeliveryJobFunc done, gpointer user_data) {
  Attempt *attempt = g_new0(Attempt, 1);
  attempt->job = job;
  attempt->workers = workers;
  attempt->config = pst_deliver_tables_get_config(job->tables);
  attempt->records =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  attempt->plans = g_ptr_array_new_with_free_func((GDestroyNotify)plan_free);
  attempt->batches =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_delivery_batch_free);
  attempt->done = done;
  attempt->user_data = user_data;
  /* Removing files at once (a DSN's original) syncs; loading is brief,
   * and done here when it reads nothing but a file just written. */
  if (job->finish_only || job->dsn_check != NULL)
    attempt_in_worker(attempt, attempt_prepare, attempt_prepared, STEP_ALONE);
  else if (attempt_load_at_once(attempt))
    workers_take_back_at_once(workers, attempt, attempt_prepared);
  else
    attempt_in_worker(attempt, attempt_prepare, attempt_prepared, STEP_BRIEF);
}
