/* hello.c - the smallest useful Postilion plugin, as a starting point.
 *
 * It shows the whole contract of <postilion/plugin.h>:
 *   - one exported descriptor, made with POSTILION_PLUGIN_DEFINE();
 *   - init() reads the plugin's own keyfile group ([plugin:hello]) with
 *     the SDK's config helpers, refuses unknown keys, and registers hooks;
 *   - a filter hook (HELO) that returns a verdict with a reply of its own;
 *   - an EOM hook that writes a result other plugins can read and edits
 *     the message (a header field);
 *   - shutdown() frees what init() made.
 *
 * Settings, in the daemon's keyfile:
 *   [plugins]
 *   load = hello
 *   [plugin:hello]
 *   greeting = Hello from Postilion   # the X-Hello header's value
 *   refuse_helo = spammer.example     # HELO names to refuse (list; glob)
 *
 * Build it out of tree against the installed SDK: see README.md.
 */
#include <postilion/plugin.h>

typedef struct {
  char *greeting;     /* owned */
  char **refuse_helo; /* owned, nullable: patterns */
} Hello;

static void hello_free(gpointer data) {
  Hello *hello = data;
  g_free(hello->greeting);
  g_strfreev(hello->refuse_helo);
  g_free(hello);
}

/* HELO: refuse the names configured, with our own reply. */
static PstVerdict hello_helo(PstCall *call, gpointer user_data) {
  Hello *hello = user_data;
  const char *name = pst_call_get_argument(call);
  for (guint i = 0; hello->refuse_helo && hello->refuse_helo[i]; i++) {
    if (g_pattern_match_simple(hello->refuse_helo[i], name)) {
      pst_call_log(call, G_LOG_LEVEL_MESSAGE, "refusing HELO %s", name);
      /* A REJECT reply must be 5xx; the core checks and logs a mismatch. */
      pst_call_set_reply(call, 550, "5.7.1", "Hello plugin says no");
      return PST_VERDICT_REJECT;
    }
  }
  return PST_VERDICT_CONTINUE;
}

/* EOM: leave a result in our namespace and a header in the message. */
static PstVerdict hello_eom(PstCall *call, gpointer user_data) {
  Hello *hello = user_data;
  PstMessage *message = pst_call_get_message(call);
  pst_result_set(call, PST_SCOPE_TRANSACTION, "hello.greeted",
                 g_variant_new_boolean(TRUE));
  if (!pst_message_add_header(message, "X-Hello", hello->greeting))
    pst_call_log(call, G_LOG_LEVEL_WARNING, "could not add X-Hello");
  return PST_VERDICT_CONTINUE;
}

static gboolean hello_init(PstPlugin *plugin, GKeyFile *config,
                           const char *group, GError **error) {
  static const char *const keys[] = {"greeting", "refuse_helo", NULL};
  Hello *hello = g_new0(Hello, 1);
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "greeting", "Hello from Postilion",
                             &hello->greeting, error) ||
      !pst_config_get_list(config, group, "refuse_helo", &hello->refuse_helo,
                           error)) {
    hello_free(hello);
    return FALSE;
  }
  /* The plugin owns `hello`; the hooks borrow it. */
  pst_plugin_set_data(plugin, hello, hello_free);
  pst_plugin_register_hook(plugin, PST_STAGE_HELO, 0, hello_helo, hello, NULL);
  /* Actions band (>= 500): after the checks that may edit the message. */
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, 500, hello_eom, hello, NULL);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "ready: greeting \"%s\"",
                 hello->greeting);
  return TRUE;
}

static void hello_shutdown(PstPlugin *plugin) {
  /* The data is freed by the daemon after this returns. */
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "bye");
}

POSTILION_PLUGIN_DEFINE("hello", "1.0", "Example plugin: says hello",
                        hello_init, hello_shutdown, NULL);
