/* testreader.c - a test plugin that reads what other plugins wrote and
 * shows it where an end-to-end test can see it: at EOM it adds
 *
 *   X-Test-Results: client=127.0.0.1; connections=2; sender=a@b;
 *     rcpt0=c@d; auth=pass; forgery_refused=true; seen=VALUE
 *
 * (one line; "-" for what is absent) from testresults' keys at every
 * scope, and `seen` is the value of the header field named by
 * `watch_header` as this plugin finds it (edits by earlier plugins are
 * visible).  At RCPT it logs the recipient-scope value it sees.  Runs
 * after testresults by default (hook priority 200).  Uses the SDK only.
 */
#include <string.h>

#include <postilion/plugin.h>

static char *watch_header;

/* A value as text: strings bare, anything else in GVariant text form. */
static char *value_text(GVariant *value) {
  if (value == NULL)
    return g_strdup("-");
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
    return g_variant_dup_string(value, NULL);
  return g_variant_print(value, FALSE);
}

static char *result_text(PstCall *call, PstScope scope, const char *key) {
  g_autoptr(GVariant) value = pst_result_get(call, scope, key);
  return value_text(value);
}

static char *auth_text(PstCall *call) {
  g_autoptr(GVariant) auth =
      pst_result_get(call, PST_SCOPE_TRANSACTION, "auth.testresults");
  const char *result = NULL;
  if (auth == NULL || !g_variant_lookup(auth, "result", "&s", &result))
    return g_strdup("-");
  return g_strdup(result);
}

static PstVerdict rcpt_hook(PstCall *call, gpointer user_data) {
  g_autofree char *rcpt =
      result_text(call, PST_SCOPE_RECIPIENT, "testresults.rcpt");
  pst_call_log(call, G_LOG_LEVEL_MESSAGE, "rcpt sees testresults.rcpt=%s",
               rcpt);
  return PST_VERDICT_CONTINUE;
}

static PstVerdict eom_hook(PstCall *call, gpointer user_data) {
  g_autoptr(GVariant) rcpt0 =
      pst_result_get_recipient(call, 0, "testresults.rcpt");
  g_autofree char *client =
      result_text(call, PST_SCOPE_SESSION, "testresults.client");
  g_autofree char *connections =
      result_text(call, PST_SCOPE_SERVER, "testresults.connections");
  g_autofree char *sender =
      result_text(call, PST_SCOPE_TRANSACTION, "testresults.sender");
  g_autofree char *rcpt = value_text(rcpt0);
  g_autofree char *auth = auth_text(call);
  g_autofree char *refused =
      result_text(call, PST_SCOPE_TRANSACTION, "testresults.forgery_refused");
  PstMessage *message = pst_call_get_message(call);
  const char *seen =
      watch_header ? pst_message_get_header(message, watch_header, 0) : NULL;
  g_autofree char *value = g_strdup_printf(
      "client=%s; connections=%s; sender=%s; rcpt0=%s; auth=%s; "
      "forgery_refused=%s; seen=%s",
      client, connections, sender, rcpt, auth, refused, seen ? seen : "-");
  if (!pst_message_add_header(message, "X-Test-Results", value))
    pst_call_log(call, G_LOG_LEVEL_WARNING, "could not add X-Test-Results");
  return PST_VERDICT_CONTINUE;
}

static gboolean testreader_init(PstPlugin *plugin, GKeyFile *config,
                                const char *group, GError **error) {
  static const char *const keys[] = {"watch_header", "hook_priority", NULL};
  gint64 priority = 0;
  g_autofree char *watch = NULL;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "watch_header", NULL, &watch,
                             error) ||
      !pst_config_get_int(config, group, "hook_priority", 200, -10000, 10000,
                          &priority, error))
    return FALSE;
  watch_header = g_steal_pointer(&watch);
  pst_plugin_register_hook(plugin, PST_STAGE_RCPT, (int)priority, rcpt_hook,
                           NULL, NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, (int)priority, eom_hook, NULL,
                           NULL);
  return TRUE;
}

static void testreader_shutdown(PstPlugin *plugin) {
  g_clear_pointer(&watch_header, g_free);
}

POSTILION_PLUGIN_DEFINE("testreader", "1.0",
                        "Test plugin: shows other plugins' results",
                        testreader_init, testreader_shutdown, NULL);
