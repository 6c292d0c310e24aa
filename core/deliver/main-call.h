/* main-call.h - running a function on the daemon's main context from a
 * delivery worker thread, and waiting for it.
 *
 * Services of the SDK that are main-thread only (the transport and SASL
 * clients) are used by the blocking SMTP client through this: the worker
 * hands the call over with g_main_context_invoke() and sleeps on a
 * condition variable until the main thread has run it.  The main loop
 * never waits for a worker, so this cannot deadlock as long as the main
 * context keeps running (it does until every job is finished, see
 * pst_queue_manager_free()).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The main context (a reference is kept).  Main thread, at start. */
void pst_main_call_set_context(GMainContext *context);

/* Runs `function(data)` on the main context and returns when it has run;
 * directly when the caller already is the main thread. */
void pst_main_call_run(void (*function)(gpointer data), gpointer data);

/* For calls that complete later (an async operation started on the main
 * context): the worker waits in pst_main_call_wait() until the main thread
 * calls pst_main_call_finish(). */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
} PstMainCallWaiter;

void pst_main_call_waiter_init(PstMainCallWaiter *waiter);
void pst_main_call_waiter_clear(PstMainCallWaiter *waiter);
/* Runs `start(data)` on the main context; returns once something called
 * pst_main_call_finish(waiter) (possibly `start` itself). */
void pst_main_call_run_async(PstMainCallWaiter *waiter,
                             void (*start)(gpointer data), gpointer data);
void pst_main_call_finish(PstMainCallWaiter *waiter);

G_END_DECLS
