/* delivery-job.h - one delivery attempt of one queued message, started
 * by the queue manager (queue-manager.c, through the PstQueueDeliverer of
 * deliverer.c) on the main loop: the disk work runs on worker threads,
 * the network on the main loop (delivery-job.c).  The job's record, what
 * the manager sets and reads, is queue/queue-job.h's. */
#pragma once

#include <gio/gio.h>

#include "queue/queue-job.h"
#include "tables/tables.h"

G_BEGIN_DECLS

/* A job for `entry`, which the caller has claimed, on `generation` (a
 * reference is kept; the job is freed on the
 * main thread, which may drop the generation's last reference). */
PstDeliveryJob *pst_delivery_job_new(PstQueueEntry *entry,
                                     PstGeneration *generation);
void pst_delivery_job_free(PstDeliveryJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDeliveryJob, pst_delivery_job_free)

/* Threads for the jobs' disk steps (load, Maildir, journal): a thread
 * blocks in fsync, never on the network, so there may be as many as jobs
 * at once ([delivery] max_parallel, at most this). */
#define PST_DELIVERY_JOB_THREADS_MAX 256

/* The threads pst_delivery_job_run() needs (the queue manager's), whose
 * steps come back to the caller's thread-default main context; freed
 * once no job runs.  Main thread. */
PstJobWorkers *pst_delivery_job_workers_new(void);
void pst_delivery_job_workers_free(PstJobWorkers *workers);
void pst_delivery_job_workers_set_hurry(PstJobWorkers *workers, gboolean hurry);

/* Loads the message and its journal, delivers every recipient that is not
 * final, journals each result, and decides what happens next (the Out
 * fields); then calls `done` on the main loop, always later.  The disk
 * steps run on `workers`, the network on the main loop.  The job stays the
 * caller's.  Main thread. */
void pst_delivery_job_run(PstDeliveryJob *job, PstJobWorkers *workers,
                          PstDeliveryJobFunc done, gpointer user_data);

/* The deliver layer's side of the queue manager's contract (deliverer.c):
 * the daemon hands it to pst_queue_manager_new(). */
extern const PstQueueDeliverer pst_delivery_deliverer;

G_END_DECLS
