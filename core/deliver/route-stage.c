/* route-stage.c - the DELIVERY stage for one recipient (see
 * route-stage.h).
 *
 * The chain runs on the main loop like every other stage; its done
 * callback (exactly once, possibly before pst_chain_run() returns) fills
 * the choice and calls the caller's callback.  The outcome
 * becomes a PstRouteChoice: ACCEPT with a route, REJECT (a bounce),
 * TEMPFAIL (a deferral) or the default.  A route that does not parse
 * ("smtp:" with a bad NEXTHOP, an unknown word) defers the recipient with
 * the plugin named, so a plugin's mistake never bounces mail.
 */
#include <string.h>

#include "config/config.h"
#include "deliver/route-stage.h"
#include "hooks/hooks.h"

typedef struct {
  char *address;          /* owned */
  char *queue_id;         /* owned */
  PstRouteChoice *choice; /* borrowed until the callback */
  void (*callback)(gpointer user_data);
  gpointer user_data;
} StageRun;

void pst_route_choice_clear(PstRouteChoice *choice) {
  g_clear_pointer(&choice->nexthop, g_free);
  g_clear_pointer(&choice->reply, g_free);
  choice->kind = PST_ROUTE_DEFAULT;
}

static void choice_refuse(PstRouteChoice *choice, char *reply) {
  choice->kind = PST_ROUTE_REFUSED;
  g_free(choice->reply);
  choice->reply = reply;
}

/* "local", "smtp", "smtp:NEXTHOP". */
static void choice_route(PstRouteChoice *choice, const char *route,
                         const char *plugin) {
  g_autofree char *host = NULL;
  guint16 port = 0;
  gboolean mx = FALSE;
  if (g_strcmp0(route, "local") == 0) {
    choice->kind = PST_ROUTE_LOCAL;
  } else if (g_strcmp0(route, "smtp") == 0) {
    choice->kind = PST_ROUTE_SMTP;
  } else if (route != NULL && g_str_has_prefix(route, "smtp:") &&
             pst_config_parse_relayhost(route + 5, &host, &port, &mx)) {
    choice->kind = PST_ROUTE_SMTP;
    choice->nexthop = g_strdup(route + 5);
  } else if (route != NULL) {
    choice_refuse(choice, g_strdup_printf(
                              "451 4.3.5 plugin %s chose the route \"%.100s\", "
                              "which is not local, smtp or smtp:NEXTHOP",
                              plugin, route));
  }
}

static char *outcome_reply(const PstHookOutcome *outcome, guint code,
                           const char *enhanced, const char *text) {
  return g_strdup_printf("%u %s %s", outcome->code != 0 ? outcome->code : code,
                         outcome->enhanced != NULL ? outcome->enhanced
                                                   : enhanced,
                         outcome->text != NULL ? outcome->text : text);
}

static void stage_done(const PstHookOutcome *outcome, gpointer user_data) {
  StageRun *run = user_data;
  PstRouteChoice *choice = run->choice;
  switch (outcome->verdict) {
  case PST_VERDICT_ACCEPT:
    choice_route(choice, outcome->route, outcome->plugin);
    break;
  case PST_VERDICT_REJECT:
    choice_refuse(choice, outcome_reply(outcome, 550, "5.7.1",
                                        "delivery refused by policy"));
    break;
  case PST_VERDICT_TEMPFAIL:
    choice_refuse(choice, outcome_reply(outcome, 451, "4.3.0",
                                        "delivery deferred by policy"));
    break;
  default:
    break;
  }
  if (outcome->plugin != NULL && choice->kind != PST_ROUTE_DEFAULT)
    g_message("%s: to=<%s>: plugin %s at delivery: %s%s%s", run->queue_id,
              run->address, outcome->plugin,
              pst_verdict_to_string(outcome->verdict),
              outcome->route != NULL ? ", route " : "",
              outcome->route != NULL ? outcome->route : "");
  run->callback(run->user_data);
  g_free(run->address);
  g_free(run->queue_id);
  g_free(run);
}

void pst_route_stage_run(PstPluginSet *plugins, PstDnsResolver *dns,
                         const char *queue_id, const char *address,
                         PstRouteChoice *choice,
                         void (*callback)(gpointer user_data),
                         gpointer user_data) {
  StageRun *run = g_new0(StageRun, 1);
  run->address = g_strdup(address);
  run->queue_id = g_strdup(queue_id);
  run->choice = choice;
  run->callback = callback;
  run->user_data = user_data;
  PstHookArgs args = {.argument = run->address, .dns = dns};
  /* The handle is only for cancelling, which we never do: the chain's own
   * deadlines bound it. */
  pst_chain_run(plugins, NULL, PST_STAGE_DELIVERY, NULL, &args, stage_done,
                run);
}
