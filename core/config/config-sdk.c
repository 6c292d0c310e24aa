/* config-sdk.c - the SDK's configuration helpers, and key name checks.
 *
 * pst_config_get_string/boolean/int/duration/size/list and
 * pst_config_check_keys are exported from libpostilion (PST_API) for
 * plugins.  Each looks up the origins of the keyfile it is given (the
 * registry in config-origin.c knows the merged keyfile of every live
 * PstConfig) and calls the reader of config-values.c that the core uses
 * for its own keys, so a plugin's bad value or unknown key is reported in
 * the same words and with the same FILE:LINE as the core's.  On a keyfile
 * the loader did not make, messages simply start at "[GROUP]".
 *
 * pst_config_check_group_keys() is shared with the schema check: an unknown
 * key is named with the nearest allowed one ("did you mean ...?", by edit
 * distance) and the list of allowed keys.
 *
 * Main thread or any thread: the helpers only read the keyfile.
 */
#include <string.h>

#include "config/config-private.h"

/* ------------------------------------------------------------------ */
/* Key names                                                           */
/* ------------------------------------------------------------------ */

/* Levenshtein distance, ignoring ASCII case. */
static gsize edit_distance(const char *a, const char *b) {
  gsize la = strlen(a), lb = strlen(b);
  g_autofree gsize *row = g_new(gsize, lb + 1);
  for (gsize j = 0; j <= lb; j++)
    row[j] = j;
  for (gsize i = 1; i <= la; i++) {
    gsize diagonal = row[0];
    row[0] = i;
    for (gsize j = 1; j <= lb; j++) {
      gsize above = row[j];
      gsize cost = g_ascii_tolower(a[i - 1]) != g_ascii_tolower(b[j - 1]);
      row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), diagonal + cost);
      diagonal = above;
    }
  }
  return row[lb];
}

const char *pst_config_suggest(const char *word, const char *const *allowed) {
  const char *best = NULL;
  gsize best_distance = G_MAXSIZE;
  for (guint i = 0; allowed != NULL && allowed[i] != NULL; i++) {
    gsize distance = edit_distance(word, allowed[i]);
    if (distance < best_distance) {
      best = allowed[i];
      best_distance = distance;
    }
  }
  /* Two edits make a typo; more make a different word. */
  if (best != NULL && best_distance <= 2 && best_distance < strlen(word))
    return best;
  return NULL;
}

/* Appends `names` to the list shown in an unknown-key message. */
static void append_names(GString *out, const char *const *names) {
  for (guint i = 0; names != NULL && names[i] != NULL; i++) {
    if (out->len > 0)
      g_string_append(out, ", ");
    g_string_append(out, names[i]);
  }
}

static gboolean is_in(const char *const *names, const char *name) {
  return names != NULL && g_strv_contains(names, name);
}

gboolean
pst_config_check_group_keys(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, const char *const *allowed,
                            const char *const *also_allowed, GError **error) {
  g_auto(GStrv) keys = g_key_file_get_keys(keyfile, group, NULL, NULL);
  for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
    if (is_in(allowed, keys[i]) || is_in(also_allowed, keys[i]))
      continue;
    g_autoptr(GString) names = g_string_new(NULL);
    append_names(names, allowed);
    append_names(names, also_allowed);
    g_autoptr(GPtrArray) all = g_ptr_array_new_null_terminated(8, NULL, TRUE);
    for (guint j = 0; allowed != NULL && allowed[j] != NULL; j++)
      g_ptr_array_add(all, (gpointer)allowed[j]);
    for (guint j = 0; also_allowed != NULL && also_allowed[j] != NULL; j++)
      g_ptr_array_add(all, (gpointer)also_allowed[j]);
    const char *near = pst_config_suggest(keys[i], (const char **)all->pdata);
    g_autofree char *hint = near != NULL
                                ? g_strdup_printf(" (did you mean %s?)", near)
                                : g_strdup("");
    g_autofree char *where =
        pst_config_origins_describe(origins, group, keys[i]);
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_UNKNOWN,
                "%s[%s] %s: unknown key%s; expected one of: %s; fix the name "
                "or remove the line",
                where, group, keys[i], hint,
                names->len > 0 ? names->str : "(none)");
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The SDK                                                             */
/* ------------------------------------------------------------------ */

static const char *const core_plugin_keys[] = {
    "enable", "priority", "timeout", "on_timeout", "on_error", NULL};

PST_API gboolean pst_config_check_keys(GKeyFile *config, const char *group,
                                       const char *const *allowed,
                                       GError **error) {
  g_return_val_if_fail(config != NULL && group != NULL, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_check_group_keys(config, origins, group, allowed,
                                     core_plugin_keys, error);
}

PST_API gboolean pst_config_get_string(GKeyFile *config, const char *group,
                                       const char *key, const char *fallback,
                                       char **value_r, GError **error) {
  g_return_val_if_fail(config && group && key && value_r, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_string(config, origins, group, key, fallback, NULL,
                                value_r, error);
}

PST_API gboolean pst_config_get_boolean(GKeyFile *config, const char *group,
                                        const char *key, gboolean fallback,
                                        gboolean *value_r, GError **error) {
  g_return_val_if_fail(config && group && key && value_r, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_boolean(config, origins, group, key, fallback, value_r,
                                 error);
}

PST_API gboolean pst_config_get_int(GKeyFile *config, const char *group,
                                    const char *key, gint64 fallback,
                                    gint64 min, gint64 max, gint64 *value_r,
                                    GError **error) {
  g_return_val_if_fail(config && group && key && value_r, FALSE);
  g_return_val_if_fail(min <= max, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_int(config, origins, group, key, fallback, min, max,
                             NULL, value_r, error);
}

PST_API gboolean pst_config_get_duration(GKeyFile *config, const char *group,
                                         const char *key, guint64 fallback_ms,
                                         guint64 *value_ms_r, GError **error) {
  g_return_val_if_fail(config && group && key && value_ms_r, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_duration(config, origins, group, key, fallback_ms, 0,
                                  G_MAXUINT64, value_ms_r, error);
}

PST_API gboolean pst_config_get_size(GKeyFile *config, const char *group,
                                     const char *key, guint64 fallback,
                                     guint64 *value_r, GError **error) {
  g_return_val_if_fail(config && group && key && value_r, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_size(config, origins, group, key, fallback, 0,
                              G_MAXUINT64, value_r, error);
}

PST_API gboolean pst_config_get_list(GKeyFile *config, const char *group,
                                     const char *key, char ***value_r,
                                     GError **error) {
  g_return_val_if_fail(config && group && key && value_r, FALSE);
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_lookup(config);
  return pst_config_read_list(config, origins, group, key, NULL, value_r,
                              error);
}
