/* milter.c - the milter plugin: Sendmail milters (rspamd, clamav-milter,
 * OpenDKIM, spamass-milter ...) filter Postilion's mail, as they filter
 * Postfix's through smtpd_milters.
 *
 * Each session gets its own connection to each milter of `milters`, made
 * at CONNECT (milter-session.c holds that state).  Every filter stage is
 * one pending call that asks the milters in order (milter-run.c): the
 * first that refuses decides; one that accepts is done for the message
 * (or, at CONNECT and HELO, for the session).  At EOM each milter in turn
 * gets the header, the body and the end of message, and its edits are
 * applied before the next one sees the message, as in Postfix.
 *
 * This file is the plugin's entry: the descriptor, init/reload/shutdown,
 * and the hooks.  All hooks run at priority 200 (aggregation: after SPF
 * and DKIM verification, before DKIM signing).
 */
#include "milter-run.h"

#define MILTER_PRIORITY 200

/* Sessions first: they detach their body reads; then the pool, which
 * finishes the reads in flight (each drops its piece). */
static void milter_plugin_free(MilterPlugin *plugin) {
  g_hash_table_unref(plugin->sessions);
  g_thread_pool_free(plugin->body_pool, FALSE, TRUE);
  milter_config_unref(plugin->config);
  g_free(plugin);
}

/* --- Hooks ----------------------------------------------------------------- */

static PstVerdict milter_hook_connect(PstCall *call, gpointer user_data) {
  MilterPlugin *plugin = user_data;
  if (plugin->config->milters->len == 0)
    return PST_VERDICT_CONTINUE;
  PstSession *session = pst_call_get_session(call);
  MilterSession *ms =
      milter_session_new(plugin->config, plugin->body_pool, session);
  g_hash_table_replace(plugin->sessions, session, ms);
  return milter_run_start(ms, call);
}

static PstVerdict milter_hook_stage(PstCall *call, gpointer user_data) {
  MilterPlugin *plugin = user_data;
  MilterSession *ms =
      g_hash_table_lookup(plugin->sessions, pst_call_get_session(call));
  if (ms == NULL)
    return PST_VERDICT_CONTINUE;
  return milter_run_start(ms, call);
}

static PstVerdict milter_hook_disconnect(PstCall *call, gpointer user_data) {
  MilterPlugin *plugin = user_data;
  g_hash_table_remove(plugin->sessions, pst_call_get_session(call));
  return PST_VERDICT_CONTINUE;
}

static void milter_register(PstPlugin *pst, MilterPlugin *plugin) {
  pst_plugin_register_hook(pst, PST_STAGE_CONNECT, MILTER_PRIORITY,
                           milter_hook_connect, plugin, NULL);
  static const PstStage stages[] = {PST_STAGE_HELO, PST_STAGE_MAIL,
                                    PST_STAGE_RCPT, PST_STAGE_DATA,
                                    PST_STAGE_EOM};
  for (gsize i = 0; i < G_N_ELEMENTS(stages); i++)
    pst_plugin_register_hook(pst, stages[i], MILTER_PRIORITY,
                             milter_hook_stage, plugin, NULL);
  pst_plugin_register_hook(pst, PST_STAGE_DISCONNECT, MILTER_PRIORITY,
                           milter_hook_disconnect, plugin, NULL);
}

/* --- Plugin ---------------------------------------------------------------- */

static gboolean milter_init(PstPlugin *pst, GKeyFile *keyfile,
                            const char *group, GError **error) {
  MilterConfig *config = milter_config_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  MilterPlugin *plugin = g_new0(MilterPlugin, 1);
  plugin->plugin = pst;
  plugin->config = config;
  plugin->sessions = g_hash_table_new_full(
      g_direct_hash, g_direct_equal, NULL, (GDestroyNotify)milter_session_end);
  plugin->body_pool = milter_body_pool_new();
  pst_plugin_set_data(pst, plugin, (GDestroyNotify)milter_plugin_free);
  milter_register(pst, plugin);
  for (guint i = 0; i < config->milters->len; i++) {
    const MilterSpec *spec = g_ptr_array_index(config->milters, i);
    pst_plugin_log(pst, G_LOG_LEVEL_INFO, "milter %s at %s, default_action=%s",
                   spec->name, spec->socket,
                   milter_default_to_string(spec->default_action));
  }
  return TRUE;
}

/* New sessions use the new milters; sessions in progress keep theirs. */
static gboolean milter_reload(PstPlugin *pst, GKeyFile *keyfile,
                              const char *group, GError **error) {
  MilterConfig *config = milter_config_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  MilterPlugin *plugin = pst_plugin_get_data(pst);
  milter_config_unref(plugin->config);
  plugin->config = config;
  return TRUE;
}

/* Sessions still open when the daemon stops: their connections close
 * with the plugin's data (pst_plugin_set_data's destroy). */
static void milter_shutdown(PstPlugin *pst) {}

POSTILION_PLUGIN_DEFINE("milter", "1.0",
                        "Sendmail milter protocol client (rspamd, "
                        "clamav-milter, OpenDKIM ...)",
                        milter_init, milter_shutdown, milter_reload);
