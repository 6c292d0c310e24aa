/* job-threads.c - the delivery jobs' worker threads (see job-threads.h).
 *
 * One lock guards the queue and the counts.  A push adds the item and
 * decides under the lock whether an idle thread is to be woken or a new
 * one started (while more items wait than threads are idle, up to the
 * maximum); the wake-up itself comes after the unlock, so the woken
 * thread finds the lock free.  A thread runs items until the queue is
 * empty, then waits; after IDLE_MAX without work it ends.  Closing runs
 * what is queued, wakes every thread and waits until the last has left.
 * Invariant: `idle` counts the threads inside the wait; `running` every
 * thread started and not yet leaving.
 */
#include "deliver/job-threads.h"

/* An idle thread ends after this. */
#define IDLE_MAX (15 * G_TIME_SPAN_SECOND)

struct _PstJobThreads {
  GFunc func;
  gpointer user_data;
  guint max;
  GMutex lock;
  GCond work;    /* an item was queued, or closing */
  GCond left;    /* a thread left, while closing */
  GQueue queue;  /* of items, under `lock` */
  guint running; /* under `lock` */
  guint idle;    /* under `lock` */
  gboolean closing;
};

static gpointer thread_main(gpointer data) {
  PstJobThreads *threads = data;
  g_mutex_lock(&threads->lock);
  for (;;) {
    gpointer item = g_queue_pop_head(&threads->queue);
    if (item != NULL) {
      g_mutex_unlock(&threads->lock);
      threads->func(item, threads->user_data);
      g_mutex_lock(&threads->lock);
      continue;
    }
    if (threads->closing)
      break;
    threads->idle++;
    gboolean woken = g_cond_wait_until(&threads->work, &threads->lock,
                                       g_get_monotonic_time() + IDLE_MAX);
    threads->idle--;
    if (!woken && g_queue_is_empty(&threads->queue) && !threads->closing)
      break;
  }
  threads->running--;
  if (threads->closing)
    g_cond_broadcast(&threads->left);
  g_mutex_unlock(&threads->lock);
  return NULL;
}

PstJobThreads *pst_job_threads_new(GFunc func, gpointer user_data,
                                   guint max_threads) {
  g_return_val_if_fail(max_threads > 0, NULL);
  PstJobThreads *threads = g_new0(PstJobThreads, 1);
  threads->func = func;
  threads->user_data = user_data;
  threads->max = max_threads;
  g_mutex_init(&threads->lock);
  g_cond_init(&threads->work);
  g_cond_init(&threads->left);
  g_queue_init(&threads->queue);
  return threads;
}

/* A new thread for the queue (lock held); FALSE when none can be made
 * (the items wait for a running one, or the next push tries again). */
static gboolean thread_start(PstJobThreads *threads) {
  g_autoptr(GError) error = NULL;
  GThread *thread =
      g_thread_try_new("pst-deliver", thread_main, threads, &error);
  if (thread == NULL) {
    g_warning("cannot start a delivery thread: %s", error->message);
    return FALSE;
  }
  threads->running++;
  g_thread_unref(thread); /* it holds its own reference while it runs */
  return TRUE;
}

void pst_job_threads_push(PstJobThreads *threads, gpointer item) {
  g_return_if_fail(item != NULL);
  g_mutex_lock(&threads->lock);
  g_assert(!threads->closing);
  g_queue_push_tail(&threads->queue, item);
  gboolean wake = threads->idle > 0;
  if (threads->queue.length > threads->idle && threads->running < threads->max)
    thread_start(threads);
  g_mutex_unlock(&threads->lock);
  /* After the unlock: the woken thread takes the lock without waiting. */
  if (wake)
    g_cond_signal(&threads->work);
}

void pst_job_threads_free(PstJobThreads *threads) {
  if (threads == NULL)
    return;
  g_mutex_lock(&threads->lock);
  threads->closing = TRUE;
  /* Items still queued with no thread to run them (none could start). */
  if (!g_queue_is_empty(&threads->queue) && threads->running == 0)
    thread_start(threads);
  g_cond_broadcast(&threads->work);
  while (threads->running > 0)
    g_cond_wait(&threads->left, &threads->lock);
  g_mutex_unlock(&threads->lock);
  g_mutex_clear(&threads->lock);
  g_cond_clear(&threads->work);
  g_cond_clear(&threads->left);
  g_free(threads);
}
