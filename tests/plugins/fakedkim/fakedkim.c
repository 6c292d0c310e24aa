/* fakedkim.c - a test plugin named "dkim" that stores the DKIM results a
 * test dictates, one auth.dkim entry per "X-Test-DKIM:" field of the
 * message: "RESULT d=DOMAIN s=SELECTOR[ reason=TEXT]" (TEXT is the rest of
 * the field, spaces and all) (EOM, priority -300, the
 * authentication band, like DKIM verification).  The DMARC end-to-end
 * tests use it to produce any combination of signatures without keys.
 * The convention of the entries is the one of ABI 1.2 (result, header.d,
 * header.s, header.b, reason).  Uses the SDK only.
 */
#include <string.h>

#include <postilion/plugin.h>

static GVariant *fake_entry(const char *value) {
  const char *reason = strstr(value, " reason=");
  g_autofree char *head =
      g_strndup(value, reason != NULL ? (gsize)(reason - value) : strlen(value));
  g_auto(GStrv) words = g_strsplit_set(head, " \t", -1);
  GVariantDict dict;
  g_variant_dict_init(&dict, NULL);
  g_variant_dict_insert(&dict, "result", "s", "none");
  if (reason != NULL)
    g_variant_dict_insert(&dict, "reason", "s", reason + strlen(" reason="));
  for (guint i = 0; words[i] != NULL; i++) {
    const char *word = words[i];
    if (i == 0)
      g_variant_dict_insert(&dict, "result", "s", word);
    else if (g_str_has_prefix(word, "d="))
      g_variant_dict_insert(&dict, "header.d", "s", word + 2);
    else if (g_str_has_prefix(word, "s="))
      g_variant_dict_insert(&dict, "header.s", "s", word + 2);
  }
  g_variant_dict_insert(&dict, "header.b", "s", "fakefake");
  return g_variant_dict_end(&dict);
}

static PstVerdict fake_eom(PstCall *call, gpointer user_data) {
  (void)user_data;
  PstMessage *message = pst_call_get_message(call);
  const char *value;
  for (guint i = 0;
       (value = pst_message_get_header(message, "X-Test-DKIM", i)) != NULL;
       i++) {
    g_autofree char *clean = g_strstrip(g_strdup(value));
    pst_result_append(call, PST_SCOPE_TRANSACTION, "auth.dkim",
                      fake_entry(clean));
  }
  return PST_VERDICT_CONTINUE;
}

static gboolean fake_init(PstPlugin *plugin, GKeyFile *config,
                          const char *group, GError **error) {
  (void)config, (void)group, (void)error;
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, -300, fake_eom, NULL, NULL);
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("dkim", "test", "Test: DKIM results from X-Test-DKIM",
                        fake_init, NULL, NULL);
