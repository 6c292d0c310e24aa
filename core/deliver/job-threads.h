/* job-threads.h - the delivery jobs' worker threads: a queue of work
 * items and up to a maximum of threads that run them (delivery-job.c).
 *
 * Like a GThreadPool, with one difference that matters per message: a
 * push wakes an idle thread after it released the queue's lock.  GLib's
 * queue signals while it holds the lock, so on a second core the woken
 * thread blocks on that lock at once and is woken again by the unlock:
 * three more system calls and two more context switches per hand-over.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PstJobThreads PstJobThreads;

/* Runs `func(item, user_data)` for each pushed item on one of at most
 * `max_threads` threads, started as items wait for one; a thread idle
 * for a while ends. */
PstJobThreads *pst_job_threads_new(GFunc func, gpointer user_data,
                                   guint max_threads);
/* Queues `item` (non-NULL) for a thread.  Any thread. */
void pst_job_threads_push(PstJobThreads *threads, gpointer item);
/* Runs every item queued, waits for the threads to end, frees. */
void pst_job_threads_free(PstJobThreads *threads);

G_END_DECLS
