/* route-stage.h - the DELIVERY stage: plugins choosing each recipient's
 * route (ARCHITECTURE.md section 3; pst_call_set_route() in the SDK).
 *
 * pst_route_stage_run() runs the DELIVERY chain for one recipient on the
 * main loop; delivery-job.c calls it for each target when a loaded plugin
 * has a DELIVERY hook.
 */
#pragma once

#include <glib.h>

#include "dns/dns.h"

G_BEGIN_DECLS

typedef struct _PstPluginSet PstPluginSet; /* hooks/hooks.h */

typedef enum {
  PST_ROUTE_DEFAULT = 0, /* no plugin decided: our domains local, others SMTP */
  PST_ROUTE_LOCAL,       /* "local" */
  PST_ROUTE_SMTP,        /* "smtp" or "smtp:NEXTHOP" */
  PST_ROUTE_REFUSED,     /* REJECT, TEMPFAIL or a route we cannot use */
} PstRouteKind;

typedef struct {
  PstRouteKind kind;
  char *nexthop; /* owned, nullable: SMTP via this relayhost-style name */
  char *reply;   /* owned, nullable: REFUSED: "550 5.7.1 ...", "451 ..." */
} PstRouteChoice;

void pst_route_choice_clear(PstRouteChoice *choice);

/* Runs DELIVERY for `address` (chains of every plugin: there is no
 * listener; the hooks' DNS lookups go to `dns`, the job's generation's
 * resolver, nullable), fills `choice` (borrowed until then) and calls
 * `callback`
 * exactly once, possibly before this returns (each hook is bounded by its
 * plugin's timeout).  Main thread. */
void pst_route_stage_run(PstPluginSet *plugins, PstDnsResolver *dns,
                         const char *queue_id, const char *address,
                         PstRouteChoice *choice,
                         void (*callback)(gpointer user_data),
                         gpointer user_data);

G_END_DECLS
