/* testresults.c - a test plugin that writes the shared results store at
 * every scope, so `testreader` (and the queue file) can show what other
 * plugins see:
 *   CONNECT  session      testresults.client = the client's address
 *            server       testresults.connections = count so far (u)
 *   MAIL     transaction  testresults.sender = the MAIL argument
 *   RCPT     recipient    testresults.rcpt = the RCPT argument
 *   EOM      transaction  auth.testresults = {result: pass, reason: ...}
 *            transaction  testresults.forgery_refused = TRUE when writing
 *                         another plugin's key ("testreader.forged") was
 *                         refused, as the namespace rule demands
 * With `mode = thread` the RCPT and EOM writes are made from a worker
 * thread while the call is pending (they reach the store on completion).
 * Keys are documented in README.md beside this file.  Uses the SDK only.
 */
#include <string.h>

#include <postilion/plugin.h>

typedef struct {
  gboolean thread;
  GMutex lock;
  GPtrArray *threads; /* of GThread*, joined at shutdown */
} Settings;

static Settings *settings;

static PstVerdict connect_hook(PstCall *call, gpointer user_data) {
  PstSession *session = pst_call_get_session(call);
  pst_result_set(call, PST_SCOPE_SESSION, "testresults.client",
                 g_variant_new_string(pst_session_get_client_address(session)));
  g_autoptr(GVariant) count =
      pst_result_get(call, PST_SCOPE_SERVER, "testresults.connections");
  guint32 connections = count ? g_variant_get_uint32(count) : 0;
  pst_result_set(call, PST_SCOPE_SERVER, "testresults.connections",
                 g_variant_new_uint32(connections + 1));
  return PST_VERDICT_CONTINUE;
}

static PstVerdict mail_hook(PstCall *call, gpointer user_data) {
  pst_result_set(call, PST_SCOPE_TRANSACTION, "testresults.sender",
                 g_variant_new_string(pst_call_get_argument(call)));
  return PST_VERDICT_CONTINUE;
}

static void write_rcpt(PstCall *call) {
  pst_result_set(call, PST_SCOPE_RECIPIENT, "testresults.rcpt",
                 g_variant_new_string(pst_call_get_argument(call)));
}

static void write_eom(PstCall *call) {
  GVariantDict dict;
  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "result", "s", "pass");
  g_variant_dict_insert(&dict, "reason", "s", "test plugin");
  pst_result_set(call, PST_SCOPE_TRANSACTION, "auth.testresults",
                 g_variant_dict_end(&dict));
  gboolean forged =
      pst_result_set(call, PST_SCOPE_TRANSACTION, "testreader.forged",
                     g_variant_new_boolean(TRUE));
  pst_result_set(call, PST_SCOPE_TRANSACTION, "testresults.forgery_refused",
                 g_variant_new_boolean(!forged));
}

static void write_stage(PstCall *call) {
  if (pst_call_get_stage(call) == PST_STAGE_RCPT)
    write_rcpt(call);
  else
    write_eom(call);
}

static gpointer worker_main(gpointer data) {
  PstCall *call = data;
  write_stage(call);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
  return NULL;
}

/* RCPT and EOM: now, or from a worker while pending. */
static PstVerdict write_hook(PstCall *call, gpointer user_data) {
  if (!settings->thread) {
    write_stage(call);
    return PST_VERDICT_CONTINUE;
  }
  g_mutex_lock(&settings->lock);
  g_ptr_array_add(settings->threads,
                  g_thread_new("testresults", worker_main, call));
  g_mutex_unlock(&settings->lock);
  return PST_VERDICT_PENDING;
}

static gboolean testresults_init(PstPlugin *plugin, GKeyFile *config,
                                 const char *group, GError **error) {
  static const char *const keys[] = {"mode", "hook_priority", NULL};
  g_autofree char *mode = NULL;
  gint64 priority = 0;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "mode", "sync", &mode, error) ||
      !pst_config_get_int(config, group, "hook_priority", 100, -10000, 10000,
                          &priority, error))
    return FALSE;
  if (strcmp(mode, "sync") != 0 && strcmp(mode, "thread") != 0) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] mode = %s: expected sync or thread", group, mode);
    return FALSE;
  }
  settings = g_new0(Settings, 1);
  settings->thread = strcmp(mode, "thread") == 0;
  g_mutex_init(&settings->lock);
  settings->threads = g_ptr_array_new();
  int p = (int)priority;
  pst_plugin_register_hook(plugin, PST_STAGE_CONNECT, p, connect_hook, NULL,
                           NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_MAIL, p, mail_hook, NULL, NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_RCPT, p, write_hook, NULL, NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, p, write_hook, NULL, NULL);
  return TRUE;
}

static void testresults_shutdown(PstPlugin *plugin) {
  for (guint i = 0; i < settings->threads->len; i++)
    g_thread_join(g_ptr_array_index(settings->threads, i));
  g_ptr_array_unref(settings->threads);
  g_mutex_clear(&settings->lock);
  g_clear_pointer(&settings, g_free);
}

POSTILION_PLUGIN_DEFINE("testresults", "1.0",
                        "Test plugin: writes results at every scope",
                        testresults_init, testresults_shutdown, NULL);
