/* spf-pool.c - a small pool of long-lived pst-spf-eval processes, on the
 * main loop.
 *
 * Spawning an evaluator per check cost more than the rest of a message's
 * handling together, so evaluators live on and serve check after check
 * over their socketpair.  spf_pool_evaluate() gives a check an idle
 * evaluator, or starts one while fewer than the limit run, or queues the
 * check until one comes back (first in, first out, except that a check
 * asked from another one's completion, a job's next identity, goes
 * first); spf-child.c drives the conversation from
 * the main loop (no thread anywhere: the evaluator's DNS questions go to
 * the core's async resolver and the answers back from the same loop).  An
 * evaluator is retired (its socket closed, so it exits, then reaped from
 * the main loop) once it has served `max_checks` checks or is older than
 * `max_age`: whatever a hostile record left in its memory does not live
 * long.  One that crashed, sent garbage, asked odd questions or missed a
 * deadline is ended (killed after 100 ms) and reaped, and its check is a
 * temperror that reports how it ended; the next check gets a fresh one.
 * One that dies while idle (its socket hangs up) is ended and reaped at
 * once and replaced (at most once a second), so no check pays for it.
 *
 * The first evaluators are started from the main loop's first iteration,
 * not from plugin init: the daemon loads its plugins as root and drops
 * privileges afterwards, and an evaluator must never run as root.  The
 * main thread spawns them all (posix_spawn(), vfork semantics): their
 * PR_SET_PDEATHSIG follows a thread that lives as long as the daemon.
 *
 * Main thread only; every callback runs from the main loop, never inside
 * spf_pool_evaluate().  spf_pool_free() (plugin unload: every call, so
 * every check, has completed by then) ends and reaps every evaluator,
 * including the ones still being retired: no process and no zombie is
 * left behind.  Callers: spf.c, test-spf-wire.c.
 */
#include <string.h>

#include "spf.h"

struct SpfPool {
  char *path;     /* owned: pst-spf-eval */
  GQueue idle;    /* of SpfChild (owned), most recently used first */
  GQueue waiting; /* of SpfRequest (owned): checks waiting for one */
  GList *ending;  /* of SpfChild (owned by spf-child.c until ended) */
  guint running;  /* evaluators alive: idle and in use */
  guint busy;     /* in use by a check */
  guint limit;    /* at most this many */
  guint max_checks;
  gint64 max_age;   /* microseconds */
  guint prestart;   /* evaluators to start from the first iteration */
  GSource *starter; /* owned, nullable: that first iteration */
  guint delivering; /* inside a check's `done`: its next check goes first */
  gint64 replaced;  /* when an idle evaluator that died was last replaced */
};

/* One that dies while idle is replaced at once, but not more often: an
 * evaluator that dies at start is not restarted in a loop. */
#define SPF_POOL_REPLACE_INTERVAL_US G_USEC_PER_SEC

typedef struct {
  SpfPool *pool;
  const SpfQuery *query; /* borrowed: the caller's, until `done` */
  gint64 deadline;
  GCancellable *cancellable; /* owned, nullable */
  SpfLookupFunc lookup;
  gpointer lookup_data;
  SpfPoolDone done;
  gpointer data;
  SpfOutcome *outcome; /* owned, nullable: a result known before a check */
  char *failure;       /* owned, nullable: its reason */
  GSource *idle;       /* owned, nullable: delivering `outcome` */
} SpfRequest;

static void spf_pool_dispatch(SpfPool *pool);

static void spf_request_free(SpfRequest *request) {
  g_clear_object(&request->cancellable);
  spf_outcome_free(request->outcome);
  g_free(request->failure);
  if (request->idle != NULL) {
    g_source_destroy(request->idle);
    g_source_unref(request->idle);
  }
  g_free(request);
}

/* Hands the caller its outcome (and failure) and frees the request. */
static void spf_request_done(SpfRequest *request, SpfOutcome *outcome,
                             const char *failure) {
  SpfPool *pool = request->pool;
  pool->delivering++;
  request->done(outcome, failure, request->data);
  pool->delivering--;
  spf_request_free(request);
}

static gboolean spf_request_deliver(gpointer data) {
  SpfRequest *request = data;
  g_clear_pointer(&request->idle, g_source_unref);
  spf_request_done(request, g_steal_pointer(&request->outcome),
                   request->failure);
  return G_SOURCE_REMOVE;
}

/* Ends the request with a temperror without an evaluator, from the main
 * loop (never inside spf_pool_evaluate()). */
static void spf_request_fail_later(SpfRequest *request, const char *problem,
                                   const char *failure) {
  request->outcome = spf_outcome_new_temperror(request->query, problem);
  request->failure = g_strdup(failure);
  request->idle = g_idle_source_new();
  g_source_set_callback(request->idle, spf_request_deliver, request, NULL);
  g_source_attach(request->idle, g_main_context_get_thread_default());
}

/* --- Retiring ----------------------------------------------------------- */

/* A retired evaluator ended: anything but a clean exit is worth a
 * warning. */
static void spf_pool_on_retired(GPid pid, const char *how, gpointer data) {
  (void)data;
  if (strcmp(how, "exited with status 0") != 0)
    g_warning("plugin spf: SPF evaluator %d %s", (int)pid, how);
}

typedef struct {
  SpfRequest *request;
  char *error; /* owned: what went wrong in the conversation */
} SpfBurial;

/* A failed evaluator ended: its check is a temperror naming both. */
static void spf_pool_on_failed(GPid pid, const char *how, gpointer data) {
  (void)pid;
  SpfBurial *burial = data;
  SpfRequest *request = burial->request;
  g_autofree char *failure =
      g_strdup_printf("%s, process %s", burial->error, how);
  spf_request_done(
      request,
      spf_outcome_new_temperror(request->query, "SPF evaluator failure"),
      failure);
  g_free(burial->error);
  g_free(burial);
}

/* An `ended` callback, wrapped so that the pool forgets the child
 * first. */
typedef struct {
  SpfPool *pool;
  SpfChild *child;
  SpfChildEnded ended;
  gpointer data;
} SpfEnding;

static void spf_pool_on_ended(GPid pid, const char *how, gpointer data) {
  SpfEnding *ending = data;
  ending->pool->ending = g_list_remove(ending->pool->ending, ending->child);
  ending->ended(pid, how, ending->data);
  g_free(ending);
}

/* Ends `child` from the main loop (spf_child_end()), then `ended`. */
static void spf_pool_retire(SpfPool *pool, SpfChild *child, SpfChildEnded ended,
                            gpointer data) {
  SpfEnding *ending = g_new0(SpfEnding, 1);
  ending->pool = pool;
  ending->child = child;
  ending->ended = ended;
  ending->data = data;
  pool->running--;
  pool->ending = g_list_prepend(pool->ending, child);
  spf_child_end(child, spf_pool_on_ended, ending);
}

/* Still fit to serve: alive, and neither worn nor old. */
static gboolean spf_pool_is_fresh(SpfPool *pool, SpfChild *child) {
  gint64 age = g_get_monotonic_time() - spf_child_get_started(child);
  return spf_child_get_checks(child) < pool->max_checks &&
         age < pool->max_age && spf_child_is_running(child);
}

/* --- Checks ------------------------------------------------------------- */

static void spf_pool_on_checked(SpfChild *child, SpfOutcome *outcome,
                                const GError *error, gpointer data) {
  SpfRequest *request = data;
  SpfPool *pool = request->pool;
  pool->busy--;
  if (outcome != NULL) {
    if (spf_pool_is_fresh(pool, child) && pool->running <= pool->limit)
      g_queue_push_head(&pool->idle, child);
    else
      spf_pool_retire(pool, child, spf_pool_on_retired, NULL);
    spf_request_done(request, outcome, NULL);
  } else if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    /* Mid-conversation: of no use any more, but nothing went wrong. */
    spf_pool_retire(pool, child, spf_pool_on_retired, NULL);
    spf_request_done(
        request, spf_outcome_new_temperror(request->query, "check cancelled"),
        NULL);
  } else {
    SpfBurial *burial = g_new0(SpfBurial, 1);
    burial->request = request;
    burial->error = g_strdup(error->message);
    spf_pool_retire(pool, child, spf_pool_on_failed, burial);
  }
  spf_pool_dispatch(pool);
}

static void spf_pool_on_hangup(SpfChild *child, gpointer data);

/* A new evaluator of the pool (counted as running), or NULL. */
static SpfChild *spf_pool_spawn(SpfPool *pool, GError **error) {
  SpfChild *child = spf_child_spawn(pool->path, error);
  if (child == NULL)
    return NULL;
  spf_child_watch_idle(child, spf_pool_on_hangup, pool);
  pool->running++;
  return child;
}

/* An idle evaluator died or wrote unasked: it is ended and reaped now
 * (a warning says how it ended), and another is started in its place, so
 * that the next check does not wait for a start. */
static void spf_pool_on_hangup(SpfChild *child, gpointer data) {
  SpfPool *pool = data;
  if (!g_queue_remove(&pool->idle, child))
    return;
  spf_pool_retire(pool, child, spf_pool_on_retired, NULL);
  gint64 now = g_get_monotonic_time();
  if (pool->running >= pool->limit ||
      (pool->replaced != 0 &&
       now - pool->replaced < SPF_POOL_REPLACE_INTERVAL_US))
    return; /* the next check starts one */
  pool->replaced = now;
  g_autoptr(GError) error = NULL;
  SpfChild *replacement = spf_pool_spawn(pool, &error);
  if (replacement == NULL) {
    g_warning("plugin spf: %s", error->message);
    return;
  }
  g_queue_push_tail(&pool->idle, replacement);
  spf_pool_dispatch(pool);
}

/* An idle fresh evaluator, or a new one while fewer than the limit run;
 * NULL with `error` unset when the check must wait. */
static SpfChild *spf_pool_take(SpfPool *pool, GError **error) {
  SpfChild *child;
  while ((child = g_queue_pop_head(&pool->idle)) != NULL) {
    if (spf_pool_is_fresh(pool, child))
      return child;
    spf_pool_retire(pool, child, spf_pool_on_retired, NULL);
  }
  if (pool->running >= pool->limit)
    return NULL;
  return spf_pool_spawn(pool, error);
}

/* Starts `request` now if it can; FALSE when it must wait. */
static gboolean spf_pool_start(SpfPool *pool, SpfRequest *request) {
  if (g_cancellable_is_cancelled(request->cancellable)) {
    spf_request_fail_later(request, "check cancelled", NULL);
    return TRUE;
  }
  if (request->deadline <= g_get_monotonic_time()) {
    spf_request_fail_later(request, "SPF evaluator failure",
                           "no SPF evaluator was free before the deadline");
    return TRUE;
  }
  g_autoptr(GError) error = NULL;
  SpfChild *child = spf_pool_take(pool, &error);
  if (child == NULL && error == NULL)
    return FALSE;
  if (child == NULL) {
    spf_request_fail_later(request, "SPF evaluator failure", error->message);
    return TRUE;
  }
  pool->busy++;
  spf_child_evaluate(child, request->query, request->deadline,
                     request->cancellable, request->lookup,
                     request->lookup_data, spf_pool_on_checked, request);
  return TRUE;
}

/* Starts waiting checks while there is an evaluator for them. */
static void spf_pool_dispatch(SpfPool *pool) {
  SpfRequest *request;
  while ((request = g_queue_peek_head(&pool->waiting)) != NULL &&
         spf_pool_start(pool, request))
    g_queue_pop_head(&pool->waiting);
}

void spf_pool_evaluate(SpfPool *pool, const SpfQuery *query, gint64 deadline,
                       GCancellable *cancellable, SpfLookupFunc lookup,
                       gpointer lookup_data, SpfPoolDone done, gpointer data) {
  SpfRequest *request = g_new0(SpfRequest, 1);
  request->pool = pool;
  request->query = query;
  request->deadline = deadline;
  request->cancellable = cancellable != NULL ? g_object_ref(cancellable) : NULL;
  request->lookup = lookup;
  request->lookup_data = lookup_data;
  request->done = done;
  request->data = data;
  /* A check asked from another one's `done` (MAIL FROM after HELO) goes
   * before the waiting ones: a transaction under way finishes first. */
  if (pool->delivering > 0) {
    if (!spf_pool_start(pool, request))
      g_queue_push_head(&pool->waiting, request);
  } else if (!g_queue_is_empty(&pool->waiting) ||
             !spf_pool_start(pool, request)) {
    g_queue_push_tail(&pool->waiting, request);
  }
}

/* --- The pool ----------------------------------------------------------- */

/* The main loop's first iteration: the first evaluators, ready before the
 * first check. */
static gboolean spf_pool_prestart(gpointer data) {
  SpfPool *pool = data;
  g_clear_pointer(&pool->starter, g_source_unref);
  while (pool->running < MIN(pool->prestart, pool->limit)) {
    g_autoptr(GError) error = NULL;
    SpfChild *child = spf_pool_spawn(pool, &error);
    if (child == NULL) {
      g_warning("plugin spf: %s", error->message);
      break;
    }
    g_queue_push_tail(&pool->idle, child);
  }
  spf_pool_dispatch(pool);
  return G_SOURCE_REMOVE;
}

SpfPool *spf_pool_new(const char *path, guint start, GError **error) {
  if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "the SPF evaluator %s is missing or not executable; install "
                "pst-spf-eval next to spf.so",
                path);
    return NULL;
  }
  SpfPool *pool = g_new0(SpfPool, 1);
  pool->path = g_strdup(path);
  g_queue_init(&pool->idle);
  g_queue_init(&pool->waiting);
  pool->limit = MAX(start, 1);
  pool->max_checks = G_MAXUINT;
  pool->max_age = G_MAXINT64;
  pool->prestart = start;
  pool->starter = g_idle_source_new();
  g_source_set_callback(pool->starter, spf_pool_prestart, pool, NULL);
  g_source_attach(pool->starter, g_main_context_get_thread_default());
  return pool;
}

void spf_pool_set_limits(SpfPool *pool, guint limit, guint max_checks,
                         gint64 max_age_us) {
  pool->limit = MAX(limit, 1);
  pool->max_checks = MAX(max_checks, 1);
  pool->max_age = max_age_us;
  spf_pool_dispatch(pool);
}

guint spf_pool_get_running(SpfPool *pool) {
  return pool->running;
}

void spf_pool_free(SpfPool *pool) {
  if (pool == NULL)
    return;
  g_warn_if_fail(pool->busy == 0 && g_queue_is_empty(&pool->waiting));
  if (pool->starter != NULL) {
    g_source_destroy(pool->starter);
    g_source_unref(pool->starter);
  }
  SpfChild *child;
  while ((child = g_queue_pop_head(&pool->idle)) != NULL)
    spf_pool_retire(pool, child, spf_pool_on_retired, NULL);
  /* Each ends and leaves the list (spf_pool_on_ended()). */
  while (pool->ending != NULL)
    spf_child_end_now(pool->ending->data);
  g_free(pool->path);
  g_free(pool);
}
