/* queue-manager.h - scheduling delivery of the queued messages.
 *
 * Runs on the main loop.  Messages are tried as soon as they are queued
 * (pst_queue_manager_add() from the daemon's commit callback, which the
 * SMTP sessions' generation carries) and at start (every
 * message in queue/); each attempt runs on a worker thread
 * (delivery-job.c).  Temporary failures are retried with exponential
 * backoff ([delivery] retry_first, doubled up to retry_max) until
 * max_lifetime, then bounced.  Messages in hold/ are never tried.
 *
 * Without a delivery method in [delivery] (pst_config_delivery_enabled()),
 * the manager schedules nothing and messages stay queued, as before it
 * existed; hold, release and delete still work.
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "queue/queue-job.h"
#include "queue/spool.h"

G_BEGIN_DECLS

typedef struct _PstQueueManager PstQueueManager;

/* What pst_queue_manager_new() refuses besides the tables: outbound TLS
 * or AUTH required without a plugin of `generation` that provides it
 * (`deliverer` decides).  Main thread (postiliond --check). */
gboolean pst_queue_manager_check_config(PstGeneration *generation,
                                        const PstQueueDeliverer *deliverer,
                                        GError **error);
/* Works on `generation` (a reference is kept): its configuration, its
 * recipient tables (required) and its plugins (the DELIVERY stage); each
 * attempt is a job of `deliverer` (queue-job.h; static, the deliver
 * layer's pst_delivery_deliverer). */
PstQueueManager *pst_queue_manager_new(PstGeneration *generation,
                                       PstSpool *spool,
                                       const PstQueueDeliverer *deliverer,
                                       GError **error);
/* Schedules every message in queue/. */
void pst_queue_manager_start(PstQueueManager *manager);
/* A new generation (SIGHUP) for the jobs started from now on; jobs in
 * progress finish on theirs.  The daemon passes only generations whose
 * tables loaded from their own configuration; when the new delivery
 * settings are refused, the last good generation stays (logged). */
void pst_queue_manager_set_generation(PstQueueManager *manager,
                                      PstGeneration *generation);
/* Tries `id` (in queue/), a message just committed, now: it has no state
 * journal yet, so its first attempt does not look for one. */
void pst_queue_manager_add(PstQueueManager *manager, const char *id);
/* Tries `id` now, or every message when `id` is NULL.  FALSE when `id`
 * is not queued (or held). */
gboolean pst_queue_manager_flush(PstQueueManager *manager, const char *id,
                                 GError **error);
/* Operator actions on one message; a delivery in progress finishes first
 * (the action is then applied, and TRUE is returned at once). */
gboolean pst_queue_manager_hold(PstQueueManager *manager, const char *id,
                                GError **error);
gboolean pst_queue_manager_release(PstQueueManager *manager, const char *id,
                                   GError **error);
gboolean pst_queue_manager_delete(PstQueueManager *manager, const char *id,
                                  GError **error);
/* Stops scheduling and waits for the attempts under way. */
void pst_queue_manager_free(PstQueueManager *manager);

G_END_DECLS
