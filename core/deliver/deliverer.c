/* deliverer.c - the deliver layer's side of the queue manager's contract
 * (queue/queue-job.h): delivery jobs (delivery-job.c), the check of the
 * outbound settings (smtp-client.c) and the expiry of the generations'
 * outbound connection cache.  The daemon hands pst_delivery_deliverer to
 * pst_queue_manager_new(); the queue includes nothing of deliver/.
 */
#include "deliver/delivery-job.h"
#include "deliver/delivery-transport.h"
#include "deliver/smtp-client.h"
#include "generation/generation.h"

static gboolean deliverer_check_config(PstGeneration *generation,
                                       GError **error) {
  PstConfig *config = pst_generation_get_config(generation);
  return pst_smtp_client_check_config(&config->delivery, generation, error);
}

static void deliverer_expire_connections(PstGeneration *generation,
                                         gboolean all) {
  PstSmtpCache *cache = pst_generation_get_connection_cache(generation);
  if (cache != NULL)
    pst_smtp_cache_expire(cache, all);
}

const PstQueueDeliverer pst_delivery_deliverer = {
    .job_new = pst_delivery_job_new,
    .job_free = pst_delivery_job_free,
    .workers_new = pst_delivery_job_workers_new,
    .workers_free = pst_delivery_job_workers_free,
    .workers_set_hurry = pst_delivery_job_workers_set_hurry,
    .job_run = pst_delivery_job_run,
    .check_config = deliverer_check_config,
    .expire_connections = deliverer_expire_connections,
};
