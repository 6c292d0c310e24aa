/* testroute.c - a DELIVERY-stage plugin for the tests: chooses the route
 * of each recipient by its domain (<postilion/plugin.h>,
 * pst_call_set_route()).
 *
 *   [plugin:testroute]
 *   routes = other.test=smtp:[127.0.0.7]:2525; bad.test=reject;
 *            later.test=tempfail; example.org=smtp:[127.0.0.5]:2525;
 *            odd.test=carrier-pigeon
 *
 * DOMAIN=reject answers REJECT (550 5.7.1 "no mail to DOMAIN"),
 * DOMAIN=tempfail TEMPFAIL, anything else is given to
 * pst_call_set_route() with ACCEPT; other domains get CONTINUE.  Every
 * call is logged ("testroute: ADDRESS -> ROUTE"), with whether the call
 * has a session (it must not).
 */
#include <string.h>

#include <postilion/plugin.h>

static GHashTable *routes; /* domain -> route */

static PstVerdict testroute_delivery(PstCall *call, gpointer user_data) {
  const char *address = pst_call_get_argument(call);
  const char *at = address != NULL ? strrchr(address, '@') : NULL;
  const char *route = at != NULL ? g_hash_table_lookup(routes, at + 1) : NULL;
  pst_call_log(call, G_LOG_LEVEL_MESSAGE, "%s -> %s (session: %s)",
               address ? address : "-", route ? route : "default",
               pst_call_get_session(call) != NULL ? "yes" : "no");
  if (route == NULL)
    return PST_VERDICT_CONTINUE;
  if (strcmp(route, "reject") == 0) {
    g_autofree char *text = g_strdup_printf("no mail to %s", at + 1);
    pst_call_set_reply(call, 550, "5.7.1", text);
    return PST_VERDICT_REJECT;
  }
  if (strcmp(route, "tempfail") == 0)
    return PST_VERDICT_TEMPFAIL;
  pst_call_set_route(call, route);
  return PST_VERDICT_ACCEPT;
}

static gboolean testroute_init(PstPlugin *plugin, GKeyFile *config,
                               const char *group, GError **error) {
  static const char *const keys[] = {"routes", NULL};
  g_auto(GStrv) list = NULL;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_list(config, group, "routes", &list, error))
    return FALSE;
  g_clear_pointer(&routes, g_hash_table_unref);
  routes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; list != NULL && list[i] != NULL; i++) {
    const char *equals = strchr(list[i], '=');
    if (equals == NULL)
      continue;
    g_hash_table_replace(routes,
                         g_strstrip(g_strndup(list[i], equals - list[i])),
                         g_strstrip(g_strdup(equals + 1)));
  }
  pst_plugin_register_hook(plugin, PST_STAGE_DELIVERY, 0, testroute_delivery,
                           NULL, NULL);
  return TRUE;
}

static void testroute_shutdown(PstPlugin *plugin) {
  g_clear_pointer(&routes, g_hash_table_unref);
}

POSTILION_PLUGIN_DEFINE("testroute", "1.0",
                        "Chooses delivery routes by domain (DELIVERY stage)",
                        testroute_init, testroute_shutdown, NULL);
