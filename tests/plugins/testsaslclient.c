/* testsaslclient.c - a test plugin that drives the client side of the SASL
 * service (<postilion/sasl.h>) as the outbound SMTP client will, and
 * shows the core's auth.* results, so the e2e tests can check both
 * against the real auth plugin (tests/e2e/test_auth.py):
 *
 *   HELO saslclient-MODE   runs a client exchange and refuses the HELO
 *                          with "550 5.7.1 saslclient: LINE | LINE ..."
 *                          (each line the client would send), or
 *                          "saslclient: error: MESSAGE".  MODE: plain
 *                          (server offers "PLAIN"), login ("LOGIN", then
 *                          the two 334 challenges), choose ("CRAM-MD5
 *                          LOGIN PLAIN"), cram ("CRAM-MD5"), notls
 *                          (PLAIN without TLS), badchallenge.
 *   MAIL FROM:<whoami@...> refuses with "auth.user=U auth.mechanism=M".
 *
 * Keys: user, password (default alice@example.org / s3cret).  Test only:
 * it puts what would be a password into a reply.
 */
#include <string.h>

#include <postilion/plugin.h>

typedef struct {
  char *user;
  char *password;
} Settings;

static Settings settings;

static void append_line(GString *out, const char *line) {
  if (out->len > strlen("saslclient:"))
    g_string_append(out, " |");
  g_string_append_printf(out, " %s", line);
}

/* The client exchange for `mode`; the lines it would send, or the error. */
static char *run_client(const char *mode) {
  g_autoptr(GString) out = g_string_new("saslclient:");
  g_autoptr(GError) error = NULL;
  gboolean tls = strcmp(mode, "notls") != 0;
  const char *offered = strcmp(mode, "login") == 0    ? "LOGIN"
                        : strcmp(mode, "choose") == 0 ? "CRAM-MD5 LOGIN PLAIN"
                        : strcmp(mode, "cram") == 0   ? "CRAM-MD5"
                                                      : "PLAIN";
  g_autoptr(PstSaslClient) client = pst_sasl_client_new(
      "relay.test.example", settings.user, settings.password, tls, &error);
  g_autofree char *line =
      client != NULL ? pst_sasl_client_start(client, offered, &error) : NULL;
  if (line == NULL)
    return g_strdup_printf("saslclient: error: %s", error->message);
  append_line(out, line);
  const char *challenges[] = {"VXNlcm5hbWU6", "UGFzc3dvcmQ6", NULL};
  if (strcmp(mode, "badchallenge") == 0)
    challenges[0] = "not base64!";
  if (strcmp(mode, "login") != 0 && strcmp(mode, "badchallenge") != 0)
    return g_string_free(g_steal_pointer(&out), FALSE);
  for (guint i = 0; challenges[i] != NULL; i++) {
    g_autofree char *next = pst_sasl_client_step(client, challenges[i], &error);
    if (next == NULL) {
      append_line(out, "error:");
      g_string_append(out, error->message);
      break;
    }
    append_line(out, next);
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static PstVerdict helo_hook(PstCall *call, gpointer user_data) {
  const char *name = pst_call_get_argument(call);
  if (!g_str_has_prefix(name, "saslclient-"))
    return PST_VERDICT_CONTINUE;
  g_autofree char *text = run_client(name + strlen("saslclient-"));
  pst_call_set_reply(call, 550, "5.7.1", text);
  return PST_VERDICT_REJECT;
}

static char *result_text(PstCall *call, const char *key) {
  g_autoptr(GVariant) value = pst_result_get(call, PST_SCOPE_SESSION, key);
  return value != NULL ? g_variant_dup_string(value, NULL) : g_strdup("-");
}

static PstVerdict mail_hook(PstCall *call, gpointer user_data) {
  if (!g_str_has_prefix(pst_call_get_argument(call), "whoami@"))
    return PST_VERDICT_CONTINUE;
  g_autofree char *user = result_text(call, "auth.user");
  g_autofree char *mechanism = result_text(call, "auth.mechanism");
  g_autofree char *text =
      g_strdup_printf("auth.user=%s auth.mechanism=%s", user, mechanism);
  pst_call_set_reply(call, 550, "5.7.1", text);
  return PST_VERDICT_REJECT;
}

static gboolean sasl_init(PstPlugin *plugin, GKeyFile *config,
                          const char *group, GError **error) {
  static const char *const keys[] = {"user", "password", NULL};
  g_clear_pointer(&settings.user, g_free);
  g_clear_pointer(&settings.password, g_free);
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "user", "alice@example.org",
                             &settings.user, error) ||
      !pst_config_get_string(config, group, "password", "s3cret",
                             &settings.password, error))
    return FALSE;
  pst_plugin_register_hook(plugin, PST_STAGE_HELO, 0, helo_hook, NULL, NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_MAIL, 0, mail_hook, NULL, NULL);
  return TRUE;
}

static void sasl_shutdown(PstPlugin *plugin) {
  g_clear_pointer(&settings.user, g_free);
  g_clear_pointer(&settings.password, g_free);
}

POSTILION_PLUGIN_DEFINE("testsaslclient", "1.0",
                        "Test: drives the SASL client, shows auth.* results",
                        sasl_init, sasl_shutdown, NULL);
