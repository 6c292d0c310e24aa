/* main-call.c - functions run on the main context for worker threads (see
 * main-call.h).
 *
 * A call lives on the worker's stack: the worker does not return before
 * the main thread has signalled it, so the main thread never touches a
 * call that is gone.
 */
#include "deliver/main-call.h"

static GMainContext *main_context; /* owned (a reference) */

void pst_main_call_set_context(GMainContext *context) {
  if (main_context == context)
    return;
  g_clear_pointer(&main_context, g_main_context_unref);
  main_context = context != NULL ? g_main_context_ref(context) : NULL;
}

void pst_main_call_waiter_init(PstMainCallWaiter *waiter) {
  g_mutex_init(&waiter->lock);
  g_cond_init(&waiter->cond);
  waiter->done = FALSE;
}

void pst_main_call_waiter_clear(PstMainCallWaiter *waiter) {
  g_cond_clear(&waiter->cond);
  g_mutex_clear(&waiter->lock);
}

void pst_main_call_finish(PstMainCallWaiter *waiter) {
  g_mutex_lock(&waiter->lock);
  waiter->done = TRUE;
  g_cond_signal(&waiter->cond);
  g_mutex_unlock(&waiter->lock);
}

typedef struct {
  PstMainCallWaiter *waiter;
  void (*function)(gpointer data);
  gpointer data;
  gboolean finish; /* finish the waiter after the function */
} Call;

static gboolean call_dispatch(gpointer user_data) {
  Call *call = user_data;
  PstMainCallWaiter *waiter = call->waiter;
  gboolean finish = call->finish;
  call->function(call->data);
  if (finish)
    pst_main_call_finish(waiter);
  return G_SOURCE_REMOVE;
}

void pst_main_call_run_async(PstMainCallWaiter *waiter,
                             void (*start)(gpointer data), gpointer data) {
  Call call = {waiter, start, data, FALSE};
  g_main_context_invoke(main_context, call_dispatch, &call);
  g_mutex_lock(&waiter->lock);
  while (!waiter->done)
    g_cond_wait(&waiter->cond, &waiter->lock);
  g_mutex_unlock(&waiter->lock);
}

void pst_main_call_run(void (*function)(gpointer data), gpointer data) {
  if (main_context == NULL || g_main_context_is_owner(main_context)) {
    function(data);
    return;
  }
  PstMainCallWaiter waiter;
  pst_main_call_waiter_init(&waiter);
  Call call = {&waiter, function, data, TRUE};
  g_main_context_invoke(main_context, call_dispatch, &call);
  g_mutex_lock(&waiter.lock);
  while (!waiter.done)
    g_cond_wait(&waiter.cond, &waiter.lock);
  g_mutex_unlock(&waiter.lock);
  pst_main_call_waiter_clear(&waiter);
}
