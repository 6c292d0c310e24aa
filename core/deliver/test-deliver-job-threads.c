/* test-deliver-job-threads.c - the delivery jobs' worker threads
 * (job-threads.c): every item runs once, as many at once as the maximum
 * allows and no more, and closing runs what is still queued. */
#include "deliver/job-threads.h"

typedef struct {
  GMutex lock;
  GCond changed;
  guint running; /* items inside the function now */
  guint peak;    /* the most at once */
  guint done;    /* items finished */
  guint hold;    /* items wait until this many ran at once */
} Counter;

static void item_run(gpointer item, gpointer user_data) {
  Counter *counter = user_data;
  g_mutex_lock(&counter->lock);
  counter->running++;
  counter->peak = MAX(counter->peak, counter->running);
  g_cond_broadcast(&counter->changed);
  gint64 end = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  while (counter->peak < counter->hold &&
         g_cond_wait_until(&counter->changed, &counter->lock, end))
    ;
  counter->running--;
  counter->done += GPOINTER_TO_UINT(item);
  g_cond_broadcast(&counter->changed);
  g_mutex_unlock(&counter->lock);
}

static void counter_init(Counter *counter, guint hold) {
  *counter = (Counter){.hold = hold};
  g_mutex_init(&counter->lock);
  g_cond_init(&counter->changed);
}

static void counter_clear(Counter *counter) {
  g_mutex_clear(&counter->lock);
  g_cond_clear(&counter->changed);
}

/* Items that wait until four run at once: four threads start. */
static void test_parallel(void) {
  Counter counter;
  counter_init(&counter, 4);
  PstJobThreads *threads = pst_job_threads_new(item_run, &counter, 8);
  for (guint i = 0; i < 4; i++)
    pst_job_threads_push(threads, GUINT_TO_POINTER(1));
  pst_job_threads_free(threads);
  g_assert_cmpuint(counter.done, ==, 4);
  g_assert_cmpuint(counter.peak, ==, 4);
  counter_clear(&counter);
}

/* At most the maximum at once; every item runs, from several pushing
 * threads, and closing waits for all of them. */
static gpointer pusher(gpointer data) {
  for (guint i = 0; i < 500; i++)
    pst_job_threads_push(data, GUINT_TO_POINTER(1));
  return NULL;
}

static void test_bounded(void) {
  Counter counter;
  counter_init(&counter, 0);
  PstJobThreads *threads = pst_job_threads_new(item_run, &counter, 3);
  GThread *a = g_thread_new("pusher-a", pusher, threads);
  GThread *b = g_thread_new("pusher-b", pusher, threads);
  g_thread_join(a);
  g_thread_join(b);
  pst_job_threads_free(threads);
  g_assert_cmpuint(counter.done, ==, 1000);
  g_assert_cmpuint(counter.peak, <=, 3);
  counter_clear(&counter);
}

/* Items pushed one at a time, each after the last finished: an idle
 * thread takes each (none is lost between the wait and the push). */
static void test_one_by_one(void) {
  Counter counter;
  counter_init(&counter, 0);
  PstJobThreads *threads = pst_job_threads_new(item_run, &counter, 2);
  for (guint i = 1; i <= 200; i++) {
    pst_job_threads_push(threads, GUINT_TO_POINTER(1));
    g_mutex_lock(&counter.lock);
    gint64 end = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
    while (counter.done < i &&
           g_cond_wait_until(&counter.changed, &counter.lock, end))
      ;
    g_assert_cmpuint(counter.done, ==, i);
    g_mutex_unlock(&counter.lock);
  }
  pst_job_threads_free(threads);
  counter_clear(&counter);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/job-threads/parallel", test_parallel);
  g_test_add_func("/deliver/job-threads/bounded", test_bounded);
  g_test_add_func("/deliver/job-threads/one-by-one", test_one_by_one);
  return g_test_run();
}
