/* delivery-transport.c - choosing a delivery transport by route, and the
 * results and batches they share (see delivery-transport.h).
 *
 * The transports themselves live with their protocols: transport-local.c
 * (maildir, system-user), lmtp.c, smtp-deliver.c.
 */
#include <string.h>

#include "deliver/delivery-transport.h"

void pst_delivery_result_set(PstDeliveryResult *result,
                             PstRecipientStatus status, const char *relay,
                             char *reply) {
  result->status = status;
  if (result->relay != relay) {
    g_free(result->relay);
    result->relay = g_strdup(relay);
  }
  g_free(result->reply);
  result->reply = reply;
}

void pst_delivery_result_set_reply(PstDeliveryResult *result, const char *relay,
                                   char *reply) {
  PstRecipientStatus status = reply[0] == '2'   ? PST_RECIPIENT_DELIVERED
                              : reply[0] == '5' ? PST_RECIPIENT_BOUNCED
                                                : PST_RECIPIENT_DEFERRED;
  pst_delivery_result_set(result, status, relay, reply);
}

void pst_delivery_result_clear(PstDeliveryResult *result) {
  g_clear_pointer(&result->reply, g_free);
  g_clear_pointer(&result->relay, g_free);
  g_clear_pointer(&result->tls, g_free);
}

void pst_delivery_batch_free(PstDeliveryBatch *batch) {
  if (batch == NULL)
    return;
  g_free(batch->domain);
  g_free(batch->nexthop);
  g_clear_error(&batch->content_error);
  g_array_unref(batch->items);
  g_free(batch);
}

const PstDeliveryTransport *
pst_delivery_transport_choose(const PstConfig *config, const PstTarget *target,
                              const PstRouteChoice *route, char **key_r) {
  const PstDeliveryConfig *delivery = &config->delivery;
  /* SMTP: a route says so, or the recipient is not ours.  One batch per
   * destination: a route's next hop, the relayhost, or the domain. */
  if (route->kind == PST_ROUTE_SMTP ||
      (route->kind == PST_ROUTE_DEFAULT && target->kind == PST_TARGET_REMOTE)) {
    *key_r =
        route->nexthop != NULL ? g_strconcat("smtp [", route->nexthop, NULL)
        : delivery->relayhost_host != NULL
            ? g_strdup("smtp ")
            : g_strconcat("smtp ", strrchr(target->address, '@') + 1, NULL);
    return &pst_delivery_transport_smtp;
  }
  const PstDeliveryTransport *transport = NULL;
  if (target->kind == PST_TARGET_SYSTEM)
    transport = &pst_delivery_transport_system_user;
  else if (target->kind == PST_TARGET_VIRTUAL && delivery->lmtp != NULL)
    transport = &pst_delivery_transport_lmtp;
  else if (delivery->maildir_root != NULL)
    transport = &pst_delivery_transport_maildir;
  /* Local transports: one batch each (one LMTP session for all). */
  if (transport != NULL)
    *key_r = g_strdup(transport->name);
  return transport;
}
