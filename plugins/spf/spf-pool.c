/* spf-pool.c - a small pool of long-lived pst-spf-eval processes.
 *
 * Spawning an evaluator per check cost more than the rest of a message's
 * handling together, so evaluators live on and serve check after check
 * over their socketpair.  spf_pool_new() starts the first ones (plugin
 * init); spf_pool_acquire() hands a worker an idle evaluator, or starts
 * one while fewer than the limit run, or waits for one to come back;
 * spf_pool_release() takes it back after a job, and spf_pool_evaluate()
 * runs one check in the job's evaluator and turns any failure into a
 * temperror outcome.  An evaluator is retired (its socket closed, so it
 * exits, then reaped) once it has served `max_checks` checks or is older
 * than `max_age`: whatever a hostile record left in its memory does not
 * live long.  One that crashed, sent garbage, asked odd questions or
 * missed a deadline is killed and reaped at once (spf_child_free()), and
 * the next job gets a fresh one.
 *
 * Every evaluator is spawned by the pool's own thread, which lives until
 * spf_pool_free(): the evaluator's PR_SET_PDEATHSIG follows the thread
 * that spawned it, and worker threads come and go.  spf_pool_free() (at
 * plugin unload, after the workers finished) ends and reaps every idle
 * evaluator: no process and no zombie is left behind.
 *
 * Thread-safe: one mutex guards the idle list and the counts.  Callers:
 * spf.c (worker threads), test-spf-wire.c.
 */
#include <string.h>

#include "spf.h"

struct SpfPool {
  char *path; /* owned: pst-spf-eval */
  GMutex lock;
  GCond changed; /* an evaluator came back or ended: room to go on */
  GQueue idle;   /* of SpfChild (owned), most recently used first */
  guint running; /* evaluators alive: idle and in use */
  guint limit;   /* at most this many */
  guint max_checks;
  gint64 max_age; /* microseconds */
  GThread *spawner;
  GAsyncQueue *requests; /* of SpfSpawnRequest, to the spawner */
};

/* One request to the spawner thread, on the asking thread's stack. */
typedef struct {
  GMutex lock;
  GCond done_cond;
  gboolean done;
  SpfChild *child; /* the result, or NULL with `error` */
  GError *error;
} SpfSpawnRequest;

/* Pushed to stop the spawner thread. */
static SpfSpawnRequest spf_pool_stop_request;

static gpointer spf_pool_spawner(gpointer data) {
  SpfPool *pool = data;
  for (;;) {
    SpfSpawnRequest *request = g_async_queue_pop(pool->requests);
    if (request == &spf_pool_stop_request)
      return NULL;
    GError *error = NULL;
    SpfChild *child = spf_child_spawn(pool->path, &error);
    g_mutex_lock(&request->lock);
    request->child = child;
    request->error = error;
    request->done = TRUE;
    g_cond_signal(&request->done_cond);
    g_mutex_unlock(&request->lock);
  }
}

/* A new evaluator, spawned by the spawner thread. */
static SpfChild *spf_pool_spawn(SpfPool *pool, GError **error) {
  SpfSpawnRequest request = {0};
  g_mutex_init(&request.lock);
  g_cond_init(&request.done_cond);
  g_async_queue_push(pool->requests, &request);
  g_mutex_lock(&request.lock);
  while (!request.done)
    g_cond_wait(&request.done_cond, &request.lock);
  g_mutex_unlock(&request.lock);
  g_mutex_clear(&request.lock);
  g_cond_clear(&request.done_cond);
  if (request.child == NULL)
    g_propagate_error(error, request.error);
  return request.child;
}

/* Ends `child` (closing its socket makes a healthy one exit) and reaps
 * it; anything but a clean exit is worth a warning. */
static void spf_pool_retire(SpfChild *child) {
  GPid pid = spf_child_get_pid(child);
  g_autofree char *how = spf_child_free(child);
  if (strcmp(how, "exited with status 0") != 0)
    g_warning("plugin spf: SPF evaluator %d %s", (int)pid, how);
}

/* Still fit to serve: alive, and neither worn nor old.  Under the lock. */
static gboolean spf_pool_is_fresh(SpfPool *pool, SpfChild *child) {
  gint64 age = g_get_monotonic_time() - spf_child_get_started(child);
  return spf_child_get_checks(child) < pool->max_checks &&
         age < pool->max_age && spf_child_is_running(child);
}

SpfPool *spf_pool_new(const char *path, guint start, GError **error) {
  SpfPool *pool = g_new0(SpfPool, 1);
  pool->path = g_strdup(path);
  g_mutex_init(&pool->lock);
  g_cond_init(&pool->changed);
  g_queue_init(&pool->idle);
  pool->limit = MAX(start, 1);
  pool->max_checks = G_MAXUINT;
  pool->max_age = G_MAXINT64;
  pool->requests = g_async_queue_new();
  pool->spawner = g_thread_new("spf-spawner", spf_pool_spawner, pool);
  for (guint i = 0; i < start; i++) {
    SpfChild *child = spf_pool_spawn(pool, error);
    if (child == NULL) {
      spf_pool_free(pool);
      return NULL;
    }
    g_queue_push_tail(&pool->idle, child);
    pool->running++;
  }
  return pool;
}

void spf_pool_set_limits(SpfPool *pool, guint limit, guint max_checks,
                         gint64 max_age_us) {
  g_mutex_lock(&pool->lock);
  pool->limit = MAX(limit, 1);
  pool->max_checks = MAX(max_checks, 1);
  pool->max_age = max_age_us;
  g_cond_broadcast(&pool->changed);
  g_mutex_unlock(&pool->lock);
}

SpfChild *spf_pool_acquire(SpfPool *pool, GError **error) {
  g_mutex_lock(&pool->lock);
  for (;;) {
    SpfChild *child = g_queue_pop_head(&pool->idle);
    if (child != NULL && spf_pool_is_fresh(pool, child)) {
      g_mutex_unlock(&pool->lock);
      return child;
    }
    if (child != NULL) {
      pool->running--;
      g_mutex_unlock(&pool->lock);
      spf_pool_retire(child);
      g_mutex_lock(&pool->lock);
      continue;
    }
    if (pool->running < pool->limit)
      break;
    g_cond_wait(&pool->changed, &pool->lock);
  }
  pool->running++;
  g_mutex_unlock(&pool->lock);
  SpfChild *child = spf_pool_spawn(pool, error);
  if (child == NULL) {
    g_mutex_lock(&pool->lock);
    pool->running--;
    g_cond_signal(&pool->changed);
    g_mutex_unlock(&pool->lock);
  }
  return child;
}

void spf_pool_release(SpfPool *pool, SpfChild *child) {
  g_mutex_lock(&pool->lock);
  if (spf_pool_is_fresh(pool, child) && pool->running <= pool->limit) {
    g_queue_push_head(&pool->idle, child);
    g_cond_signal(&pool->changed);
    g_mutex_unlock(&pool->lock);
    return;
  }
  pool->running--;
  g_cond_signal(&pool->changed);
  g_mutex_unlock(&pool->lock);
  spf_pool_retire(child);
}

char *spf_pool_discard(SpfPool *pool, SpfChild *child) {
  g_mutex_lock(&pool->lock);
  pool->running--;
  g_cond_signal(&pool->changed);
  g_mutex_unlock(&pool->lock);
  return spf_child_free(child);
}

SpfOutcome *spf_pool_evaluate(SpfPool *pool, SpfChild **child,
                              const SpfQuery *query, gint64 deadline,
                              GCancellable *cancellable, char **failure_r) {
  g_autoptr(GError) error = NULL;
  *failure_r = NULL;
  if (*child == NULL)
    *child = spf_pool_acquire(pool, &error);
  if (*child != NULL) {
    SpfOutcome *outcome =
        spf_child_evaluate(*child, query, deadline, cancellable, &error);
    if (outcome != NULL)
      return outcome;
  }
  /* Mid-conversation, or dead: of no further use to anybody. */
  g_autofree char *how = *child != NULL ? spf_pool_discard(pool, *child) : NULL;
  *child = NULL;
  if (g_cancellable_is_cancelled(cancellable))
    return spf_outcome_new_temperror(query, "check cancelled");
  *failure_r =
      g_strdup_printf("%s%s%s", error->message, how != NULL ? ", process " : "",
                      how != NULL ? how : "");
  return spf_outcome_new_temperror(query, "SPF evaluator failure");
}

guint spf_pool_get_running(SpfPool *pool) {
  g_mutex_lock(&pool->lock);
  guint running = pool->running;
  g_mutex_unlock(&pool->lock);
  return running;
}

void spf_pool_free(SpfPool *pool) {
  if (pool == NULL)
    return;
  /* The workers are done: every evaluator alive is idle. */
  SpfChild *child;
  while ((child = g_queue_pop_head(&pool->idle)) != NULL)
    spf_pool_retire(child);
  g_async_queue_push(pool->requests, &spf_pool_stop_request);
  g_thread_join(pool->spawner);
  g_async_queue_unref(pool->requests);
  g_mutex_clear(&pool->lock);
  g_cond_clear(&pool->changed);
  g_free(pool->path);
  g_free(pool);
}
