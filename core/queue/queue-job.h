/* queue-job.h - the contract between the queue manager and the layer
 * that delivers: the record of one delivery attempt of one queue entry
 * (what the manager sets before, and reads after) and the functions the
 * manager calls, a PstQueueDeliverer the deliver layer provides
 * (deliver/deliverer.c) and the daemon hands to pst_queue_manager_new().
 * So the queue includes nothing of deliver/: the dependency points one way
 * (deliver -> queue).
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "queue/queue-entry.h"
#include "queue/spool.h"

G_BEGIN_DECLS

typedef struct _PstGeneration PstGeneration;       /* generation/generation.h */
typedef struct _PstPluginSet PstPluginSet;         /* hooks/hooks.h */
typedef struct _PstDeliverTables PstDeliverTables; /* tables/tables.h */

typedef enum {
  PST_JOB_RETRY = 0,      /* some recipients deferred: try again later */
  PST_JOB_DONE,           /* every recipient final; files removed */
  PST_JOB_NEEDS_DSN,      /* every recipient final; queue `dsn`, then finish */
  PST_JOB_GONE,           /* the message is not in queue/ (held, deleted) */
  PST_JOB_CORRUPT,        /* moved to corrupt/ */
  PST_JOB_SORTED,         /* not tried: its only destination, `destination`,
                           * is in `dead` (the manager queues it there) */
  PST_JOB_ORIGINAL_FIRST, /* not tried: a DSN whose original is still
                           * queued (the manager checks that first) */
  PST_JOB_KEPT,           /* `dsn_check`: the original stays as it was */
} PstJobOutcome;

typedef struct {
  /* In: set by the queue manager. */
  PstQueueEntry *entry;      /* borrowed, claimed for the job: its files */
  char *id;                  /* owned: the entry's id */
  PstSpool *spool;           /* borrowed: the entry's */
  PstGeneration *generation; /* owned reference: what the job runs on */
  PstDeliverTables *tables;  /* the generation's */
  gboolean finish_only;      /* only remove the files (after a DSN) */
  char *dsn_check;           /* owned, nullable: only remove the files if
                              * the journal names this DSN (PST_JOB_KEPT
                              * when not) */
  gboolean original_checked; /* a DSN: its original was checked */
  PstPluginSet *plugins;     /* the generation's, nullable: NULL when no
                              * DELIVERY hook is registered */
  GHashTable *dead;          /* owned, nullable: in a message's first job,
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

typedef void (*PstDeliveryJobFunc)(PstDeliveryJob *job, gpointer user_data);

/* The deliver layer's threads for the jobs' disk steps (opaque here). */
typedef struct _PstJobWorkers PstJobWorkers;

/* What the queue manager needs of the deliver layer.  Every function runs
 * on the main thread. */
typedef struct {
  /* A job for `entry`, which the caller has claimed, on `generation` (a
   * reference is kept); freed with job_free, on the main thread. */
  PstDeliveryJob *(*job_new)(PstQueueEntry *entry, PstGeneration *generation);
  void (*job_free)(PstDeliveryJob *job);
  /* The worker threads job_run needs, and their way back to the main
   * loop (the thread-default context of the caller); freed with
   * workers_free once no job runs. */
  PstJobWorkers *(*workers_new)(void);
  void (*workers_free)(PstJobWorkers *workers);
  /* TRUE while ready jobs wait for running ones to end (the manager says
   * so after each dispatch): a job's last step then returns at once
   * rather than wait a moment for other steps to share a hand-over. */
  void (*workers_set_hurry)(PstJobWorkers *workers, gboolean hurry);
  /* Runs the attempt; `done` is called later, on the main loop, with the
   * Out fields set. */
  void (*job_run)(PstDeliveryJob *job, PstJobWorkers *workers,
                  PstDeliveryJobFunc done, gpointer user_data);
  /* FALSE, with `error` naming the key, when `generation`'s delivery
   * settings cannot work (say TLS or AUTH required without a provider). */
  gboolean (*check_config)(PstGeneration *generation, GError **error);
  /* Housekeeping, once a second and with `all` at stop: closes idle
   * outbound connections of `generation`'s cache. */
  void (*expire_connections)(PstGeneration *generation, gboolean all);
} PstQueueDeliverer;

G_END_DECLS
