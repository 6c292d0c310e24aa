/* delivery-job.h - one delivery attempt of one queued message, started
 * by the queue manager (queue-manager.c) on the main loop: the disk work
 * runs on worker threads, the network on the main loop
 * (delivery-job.c). */
#pragma once

#include <gio/gio.h>

#include "deliver/tables.h"
#include "queue/queue-entry.h"
#include "queue/spool.h"

G_BEGIN_DECLS

/* hooks/hooks.h's; not included here (its smtp/ types are the server's). */
typedef struct _PstPluginSet PstPluginSet;
typedef struct _PstGeneration PstGeneration; /* generation/generation.h */

typedef enum {
  PST_JOB_RETRY = 0, /* some recipients deferred: try again later */
  PST_JOB_DONE,      /* every recipient final; files removed */
  PST_JOB_NEEDS_DSN, /* every recipient final; queue `dsn`, then finish */
  PST_JOB_GONE,      /* the message is not in queue/ (held, deleted) */
  PST_JOB_CORRUPT,   /* moved to corrupt/ */
  PST_JOB_SORTED,    /* not tried: its only destination, `destination`,
                      * is in `dead` (the manager queues it there) */
  PST_JOB_ORIGINAL_FIRST, /* not tried: a DSN whose original is still
                           * queued (the manager checks that first) */
  PST_JOB_KEPT,      /* `dsn_check`: the original stays as it was */
} PstJobOutcome;

typedef struct {
  /* In: set by the queue manager. */
  PstQueueEntry *entry;     /* borrowed, claimed for the job: its files */
  char *id;                 /* owned: the entry's id */
  PstSpool *spool;          /* borrowed: the entry's */
  PstGeneration *generation; /* owned reference: what the job runs on */
  PstDeliverTables *tables;  /* the generation's */
  gboolean finish_only;     /* only remove the files (after a DSN) */
  char *dsn_check;          /* owned, nullable: only remove the files if
                             * the journal names this DSN (PST_JOB_KEPT
                             * when not) */
  gboolean original_checked; /* a DSN: its original was checked */
  PstPluginSet *plugins;    /* the generation's, nullable: NULL when no
                             * DELIVERY hook is registered */
  GHashTable *dead;         /* owned, nullable: in a message's first job,
                             * the dead destinations (PST_JOB_SORTED) */
  /* Out: set by pst_delivery_job_run(). */
  PstJobOutcome outcome;
  guint attempts;               /* most attempts of a deferred recipient */
  gint64 arrival_time;          /* µs */
  gboolean waits_for_transport; /* deferred only for want of a transport */
  GBytes *dsn;                  /* owned, nullable: for PST_JOB_NEEDS_DSN,
                                 * or a "delayed" DSN with PST_JOB_RETRY */
  char *dsn_to;                 /* owned, nullable: the envelope sender */
  gboolean dsn_smtputf8;        /* queue the DSN with SMTPUTF8 */
  char *destination;            /* owned, nullable: the lane of the first
                                 * deferred target (queue-schedule.h) */
  gboolean delivered;           /* this attempt delivered something by SMTP */
} PstDeliveryJob;

/* A job for `entry`, which the caller has claimed, on `generation` (a
 * reference is kept; the job is freed on the
 * main thread, which may drop the generation's last reference). */
PstDeliveryJob *pst_delivery_job_new(PstQueueEntry *entry,
                                     PstGeneration *generation);
void pst_delivery_job_free(PstDeliveryJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDeliveryJob, pst_delivery_job_free)
typedef void (*PstDeliveryJobFunc)(PstDeliveryJob *job, gpointer user_data);

/* Threads for the jobs' disk steps (load, Maildir, journal): a thread
 * blocks in fsync, never on the network, so there may be as many as jobs
 * at once ([delivery] max_parallel, at most this). */
#define PST_DELIVERY_JOB_THREADS_MAX 256

/* The pool pst_delivery_job_run() needs (the queue manager's); freed with
 * g_thread_pool_free() once no job runs. */
GThreadPool *pst_delivery_job_pool_new(void);

/* Loads the message and its journal, delivers every recipient that is not
 * final, journals each result, and decides what happens next (the Out
 * fields); then calls `done` on the main loop, always later.  The disk
 * steps run on `pool`, the network on the main loop.  The job stays the
 * caller's.  Main thread. */
void pst_delivery_job_run(PstDeliveryJob *job, GThreadPool *pool,
                          PstDeliveryJobFunc done, gpointer user_data);

G_END_DECLS
