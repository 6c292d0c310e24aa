/* spf-config.c - [plugin:spf] read into an immutable, reference-counted
 * SpfConfig.
 *
 * spf_config_load() checks every key and names group, key, value and the
 * fix in its error, so the daemon refuses to start on a typo.  A
 * temperror action must be a 4xx or "continue": a DNS problem is never a
 * reason for a permanent refusal (RFC 7208 section 8.6).  Called by spf.c
 * (init and reload) and the unit tests.
 */
#include <string.h>

#include "spf.h"

static const char *const spf_keys[] = {
    "identities",
    "policy",
    "reject_text",
    "temperror_action",
    "permerror_action",
    "skip_authenticated",
    "skip_internal",
    "evaluators",
    "evaluator_max_checks",
    "evaluator_max_age",
    NULL,
};

#define SPF_DEFAULT_REJECT_TEXT "SPF {result}: {explanation}"
#define SPF_DEFAULT_TEMPERROR "451 4.4.3"
#define SPF_DEFAULT_PERMERROR "continue"
#define SPF_DEFAULT_EVALUATORS 4
#define SPF_DEFAULT_EVALUATOR_MAX_CHECKS 1000
#define SPF_DEFAULT_EVALUATOR_MAX_AGE_MS (5 * 60 * 1000)

static void spf_action_clear(SpfAction *action) {
  g_clear_pointer(&action->enhanced, g_free);
  g_clear_pointer(&action->text, g_free);
}

static void spf_config_free_contents(SpfConfig *config) {
  g_free(config->reject_text);
  g_free(config->receiver);
  spf_action_clear(&config->temperror);
  spf_action_clear(&config->permerror);
}

SpfConfig *spf_config_ref(SpfConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void spf_config_unref(SpfConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)spf_config_free_contents);
}

/* "D.D.D" with D 1 to 3 digits and the first equal to `class`. */
static gboolean spf_enhanced_is_valid(const char *text, char class) {
  if (text[0] != class || text[1] != '.')
    return FALSE;
  guint dots = 0, digits = 0;
  for (const char *p = text + 2; *p != '\0'; p++) {
    if (*p == '.') {
      if (digits == 0)
        return FALSE;
      dots++, digits = 0;
    } else if (g_ascii_isdigit(*p) && digits < 3) {
      digits++;
    } else {
      return FALSE;
    }
  }
  return dots == 1 && digits > 0;
}

/* "continue", or "CODE [X.Y.Z] [text]" with CODE 4xx (or 5xx when
 * `permanent_ok`). */
static gboolean spf_action_parse(const char *value, gboolean permanent_ok,
                                 SpfAction *action) {
  g_autofree char *text = g_strstrip(g_strdup(value));
  if (g_ascii_strcasecmp(text, "continue") == 0)
    return TRUE;
  g_auto(GStrv) words = g_strsplit(text, " ", 3);
  const char *code = words[0];
  if (strlen(code) != 3 || !g_ascii_isdigit(code[0]) ||
      !g_ascii_isdigit(code[1]) || !g_ascii_isdigit(code[2]))
    return FALSE;
  if (code[0] != '4' && !(permanent_ok && code[0] == '5'))
    return FALSE;
  action->code = (guint)g_ascii_strtoull(code, NULL, 10);
  guint next = 1;
  if (words[1] != NULL && spf_enhanced_is_valid(words[1], code[0])) {
    action->enhanced = g_strdup(words[1]);
    next = 2;
  }
  if (words[next] != NULL) {
    g_autofree char *rest = next == 1 && words[2] != NULL
                                ? g_strconcat(words[1], " ", words[2], NULL)
                                : g_strdup(words[next]);
    action->text = g_strdup(g_strstrip(rest));
  }
  return TRUE;
}

static gboolean spf_read_action(GKeyFile *keyfile, const char *group,
                                const char *key, const char *fallback,
                                gboolean permanent_ok, SpfAction *action,
                                GError **error) {
  g_autofree char *value = NULL;
  if (!pst_config_get_string(keyfile, group, key, fallback, &value, error))
    return FALSE;
  if (spf_action_parse(value, permanent_ok, action))
    return TRUE;
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] %s: \"%s\" is not an action; expected \"continue\" or a "
              "reply \"CODE X.Y.Z [text]\" with CODE %s (default: %s)",
              group, key, value,
              permanent_ok ? "4xx or 5xx"
                           : "4xx (a DNS problem is never a permanent refusal)",
              fallback);
  return FALSE;
}

static gboolean spf_read_choices(GKeyFile *keyfile, const char *group,
                                 SpfConfig *config, GError **error) {
  g_autofree char *identities = NULL;
  g_autofree char *policy = NULL;
  if (!pst_config_get_string(keyfile, group, "identities", "both", &identities,
                             error) ||
      !pst_config_get_string(keyfile, group, "policy", "soft", &policy, error))
    return FALSE;
  if (g_strcmp0(identities, "mail_from") == 0)
    config->identities = SPF_IDENTITY_MAIL_FROM;
  else if (g_strcmp0(identities, "helo") == 0)
    config->identities = SPF_IDENTITY_HELO;
  else if (g_strcmp0(identities, "both") == 0)
    config->identities = SPF_IDENTITY_MAIL_FROM | SPF_IDENTITY_HELO;
  else {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] identities: \"%s\" is not one of mail_from, helo, both "
                "(default: both)",
                group, identities);
    return FALSE;
  }
  static const char *const policies[] = {"none", "soft", "strict"};
  for (guint i = 0; i < G_N_ELEMENTS(policies); i++)
    if (g_strcmp0(policy, policies[i]) == 0) {
      config->policy = (SpfPolicy)i;
      return TRUE;
    }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] policy: \"%s\" is not one of soft (reject fail), strict "
              "(reject fail and softfail), none (only annotate) (default: "
              "soft)",
              group, policy);
  return FALSE;
}

/* The evaluator pool: its size, and when an evaluator is retired. */
static gboolean spf_read_pool(GKeyFile *keyfile, const char *group,
                              SpfConfig *config, GError **error) {
  gint64 evaluators = 0, max_checks = 0;
  if (!pst_config_get_int(keyfile, group, "evaluators", SPF_DEFAULT_EVALUATORS,
                          1, 64, &evaluators, error) ||
      !pst_config_get_int(keyfile, group, "evaluator_max_checks",
                          SPF_DEFAULT_EVALUATOR_MAX_CHECKS, 1, 1000000,
                          &max_checks, error) ||
      !pst_config_get_duration(keyfile, group, "evaluator_max_age",
                               SPF_DEFAULT_EVALUATOR_MAX_AGE_MS,
                               &config->evaluator_max_age_ms, error))
    return FALSE;
  if (config->evaluator_max_age_ms < 1000) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] evaluator_max_age: %" G_GUINT64_FORMAT " ms is too "
                "short; give at least 1s (default: 5m)",
                group, config->evaluator_max_age_ms);
    return FALSE;
  }
  config->evaluators = (guint)evaluators;
  config->evaluator_max_checks = (guint)max_checks;
  return TRUE;
}

static gboolean spf_read_keys(GKeyFile *keyfile, const char *group,
                              SpfConfig *config, GError **error) {
  if (!pst_config_check_keys(keyfile, group, spf_keys, error) ||
      !spf_read_choices(keyfile, group, config, error) ||
      !pst_config_get_string(keyfile, group, "reject_text",
                             SPF_DEFAULT_REJECT_TEXT, &config->reject_text,
                             error) ||
      !spf_read_action(keyfile, group, "temperror_action",
                       SPF_DEFAULT_TEMPERROR, FALSE, &config->temperror,
                       error) ||
      !spf_read_action(keyfile, group, "permerror_action",
                       SPF_DEFAULT_PERMERROR, TRUE, &config->permerror,
                       error) ||
      !pst_config_get_boolean(keyfile, group, "skip_authenticated", TRUE,
                              &config->skip_authenticated, error) ||
      !pst_config_get_boolean(keyfile, group, "skip_internal", TRUE,
                              &config->skip_internal, error) ||
      !spf_read_pool(keyfile, group, config, error))
    return FALSE;
  /* The receiver named in Received-SPF: our own host name. */
  g_autofree char *hostname =
      g_key_file_get_string(keyfile, "server", "hostname", NULL);
  config->receiver = hostname != NULL && hostname[0] != '\0'
                         ? g_steal_pointer(&hostname)
                         : g_strdup(g_get_host_name());
  return TRUE;
}

SpfConfig *spf_config_load(GKeyFile *keyfile, const char *group,
                           GError **error) {
  SpfConfig *config = g_atomic_rc_box_new0(SpfConfig);
  config->max_lookups = 10;
  config->max_void = 2;
  if (!spf_read_keys(keyfile, group, config, error)) {
    spf_config_unref(config);
    return NULL;
  }
  return config;
}
