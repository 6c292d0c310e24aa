/* config-plugins.c - the [plugins] section and the keys the core reads in
 * each [plugin:NAME] group: which plugins load, in which order, and why.
 *
 * A plugin loads when `[plugins] load` names it, or when its own group says
 * `enable = true`.  `load` is one list that a later file replaces whole;
 * `enable` lives in the plugin's own group, so the drop-in a plugin package
 * installs (conf.d/40-spf.conf: "[plugin:spf]" "enable = true") adds its
 * plugin without replacing the list, and a later file's "enable = false"
 * switches it off again.  Order: the names of `load`, then each enabled
 * plugin not already named, in the order of the lines that enabled them
 * (file order, then line).
 *
 * A plugin named in `load` must be installed (the loader refuses to start
 * otherwise).  An enabled plugin that is not installed is left out with a
 * note: dpkg keeps a removed package's conffiles until it is purged, so the
 * snippet outlives the plugin, and the daemon must still start.  Each
 * PstPluginConfig records the "FILE:LINE [GROUP] KEY" that loaded it, and
 * config->plugin_notes the plugins left out, for `postiliond --check`,
 * `postilion check-config` and the start-up log.
 *
 * Whether a plugin is installed is pst_config_find_plugin_file()'s answer
 * (config-plugin-file.c), the search the loader uses too.
 */
#include <string.h>

#include "config/config-private.h"

/* ------------------------------------------------------------------ */
/* [plugins] path                                                      */
/* ------------------------------------------------------------------ */

static gboolean build_plugin_path(PstConfig *config,
                                  const PstConfigOrigins *origins,
                                  GError **error) {
  if (!pst_config_schema_get_list(config->keyfile, origins, "plugins", "path",
                                  &config->plugin_path, error))
    return FALSE;
  for (guint i = 0; config->plugin_path[i] != NULL; i++) {
    if (g_path_is_absolute(config->plugin_path[i]))
      continue;
    g_autofree char *expected = g_strdup_printf(
        "absolute directory paths separated by ';' (\"%s\" is relative)",
        config->plugin_path[i]);
    pst_config_set_key_error(error, config->keyfile, origins, "plugins", "path",
                             expected);
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* One plugin's keys                                                   */
/* ------------------------------------------------------------------ */

/* "FILE:LINE [GROUP] KEY", what made a plugin load. */
static char *describe_origin(const PstConfigOrigins *origins, const char *group,
                             const char *key) {
  guint file = 0, line = 0;
  if (!pst_config_origins_locate(origins, group, key, &file, &line))
    return g_strdup_printf("[%s] %s", group, key);
  const char *path = pst_config_origins_get_files(origins)[file];
  return g_strdup_printf("%s:%u [%s] %s", path, line, group, key);
}

/* The keys the core reads in every loaded plugin's group. */
static PstPluginConfig *read_plugin(GKeyFile *keyfile,
                                    const PstConfigOrigins *origins,
                                    const char *name, GError **error) {
  g_autofree char *group = g_strconcat("plugin:", name, NULL);
  gint64 priority = 0;
  guint on_timeout = 0, on_error = 0, timeout_ms = 0;
  if (!pst_config_schema_get_int(keyfile, origins, group, "priority", &priority,
                                 error) ||
      !pst_config_schema_get_ms(keyfile, origins, group, "timeout", &timeout_ms,
                                error) ||
      !pst_config_schema_get_choice(keyfile, origins, group, "on_timeout",
                                    &on_timeout, error) ||
      !pst_config_schema_get_choice(keyfile, origins, group, "on_error",
                                    &on_error, error))
    return NULL;
  PstPluginConfig *plugin = g_new0(PstPluginConfig, 1);
  plugin->name = g_strdup(name);
  plugin->group = g_steal_pointer(&group);
  plugin->has_priority =
      g_key_file_has_key(keyfile, plugin->group, "priority", NULL);
  plugin->priority = (gint)priority;
  plugin->timeout_ms = timeout_ms;
  /* The choices are listed in PstVerdict order. */
  plugin->on_timeout = (PstVerdict)on_timeout;
  plugin->on_error = (PstVerdict)on_error;
  return plugin;
}

void pst_config_plugin_free(PstPluginConfig *plugin) {
  g_free(plugin->name);
  g_free(plugin->group);
  g_free(plugin->origin);
  g_free(plugin);
}

/* ------------------------------------------------------------------ */
/* [plugins] load                                                      */
/* ------------------------------------------------------------------ */

/* Why `name` cannot be in `[plugins] load`, or NULL when it can. */
static char *load_problem(const PstConfig *config, const char *name) {
  if (!pst_config_is_name(name, FALSE))
    return g_strdup_printf("\"%s\" is not a plugin name%s", name,
                           strchr(name, ',') || strchr(name, ' ')
                               ? "; separate names with ';'"
                               : "");
  if (pst_config_find_plugin(config, name) != NULL)
    return g_strdup_printf("\"%s\" is listed twice", name);
  return NULL;
}

static gboolean build_load(PstConfig *config, const PstConfigOrigins *origins,
                           GError **error) {
  g_auto(GStrv) names = NULL;
  if (!pst_config_schema_get_list(config->keyfile, origins, "plugins", "load",
                                  &names, error))
    return FALSE;
  for (guint i = 0; names[i] != NULL; i++) {
    g_autofree char *problem = load_problem(config, names[i]);
    if (problem != NULL) {
      g_autofree char *expected = g_strdup_printf(
          "plugin names separated by ';', each once, of lower-case letters, "
          "digits, '_' and '-' (%s)",
          problem);
      pst_config_set_key_error(error, config->keyfile, origins, "plugins",
                               "load", expected);
      return FALSE;
    }
    PstPluginConfig *plugin =
        read_plugin(config->keyfile, origins, names[i], error);
    if (plugin == NULL)
      return FALSE;
    plugin->origin = describe_origin(origins, "plugins", "load");
    g_ptr_array_add(config->plugins, plugin);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* [plugin:NAME] enable                                                */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *group; /* not owned: "plugin:NAME" */
  guint file;        /* where `enable = true` was set */
  guint line;
} PstEnabledPlugin;

static int compare_enabled(gconstpointer a, gconstpointer b) {
  const PstEnabledPlugin *x = a, *y = b;
  if (x->file != y->file)
    return x->file < y->file ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* TRUE for a "plugin:NAME" group (not the plugin's "plugin:NAME:MORE"). */
static gboolean is_plugin_group(const char *group) {
  return g_str_has_prefix(group, "plugin:") &&
         strchr(group + strlen("plugin:"), ':') == NULL;
}

/* The groups that say `enable = true`, in the order of those lines. */
static GArray *list_enabled(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            char **groups, GError **error) {
  g_autoptr(GArray) enabled =
      g_array_new(FALSE, FALSE, sizeof(PstEnabledPlugin));
  for (guint i = 0; groups[i] != NULL; i++) {
    gboolean enable = FALSE;
    if (!is_plugin_group(groups[i]))
      continue;
    if (!pst_config_schema_get_boolean(keyfile, origins, groups[i], "enable",
                                       &enable, error))
      return NULL;
    if (!enable)
      continue;
    PstEnabledPlugin plugin = {groups[i], G_MAXUINT, G_MAXUINT};
    pst_config_origins_locate(origins, groups[i], "enable", &plugin.file,
                              &plugin.line);
    g_array_append_val(enabled, plugin);
  }
  g_array_sort(enabled, compare_enabled);
  return g_steal_pointer(&enabled);
}

/* Adds one enabled plugin, or a note when it is not installed. */
static gboolean add_enabled(PstConfig *config, const PstConfigOrigins *origins,
                            const char *group, GPtrArray *notes,
                            GError **error) {
  const char *name = group + strlen("plugin:");
  if (!pst_config_is_name(name, FALSE)) {
    g_autofree char *expected = g_strdup_printf(
        "false, or a plugin name in the group's name (\"%s\" is not: "
        "lower-case letters, digits, '_' and '-')",
        name);
    pst_config_set_key_error(error, config->keyfile, origins, group, "enable",
                             expected);
    return FALSE;
  }
  if (pst_config_find_plugin(config, name) != NULL)
    return TRUE; /* named in [plugins] load: it keeps that place */
  g_autofree char *tried = NULL;
  g_autofree char *file = pst_config_find_plugin_file(config, name, &tried);
  g_autofree char *origin = describe_origin(origins, group, "enable");
  if (file == NULL) {
    g_ptr_array_add(notes,
                    g_strdup_printf("%s = true: plugin \"%s\" is not installed "
                                    "(tried %s), so it is not loaded; install "
                                    "it, or set enable = false",
                                    origin, name, tried));
    return TRUE;
  }
  PstPluginConfig *plugin = read_plugin(config->keyfile, origins, name, error);
  if (plugin == NULL)
    return FALSE;
  plugin->origin = g_steal_pointer(&origin);
  g_ptr_array_add(config->plugins, plugin);
  return TRUE;
}

static gboolean build_enabled(PstConfig *config,
                              const PstConfigOrigins *origins, GError **error) {
  g_auto(GStrv) groups = g_key_file_get_groups(config->keyfile, NULL);
  g_autoptr(GArray) enabled =
      list_enabled(config->keyfile, origins, groups, error);
  if (enabled == NULL)
    return FALSE;
  g_autoptr(GPtrArray) notes = g_ptr_array_new_null_terminated(0, g_free, TRUE);
  for (guint i = 0; i < enabled->len; i++) {
    const PstEnabledPlugin *plugin =
        &g_array_index(enabled, PstEnabledPlugin, i);
    if (!add_enabled(config, origins, plugin->group, notes, error))
      return FALSE;
  }
  config->plugin_notes =
      (char **)g_ptr_array_free(g_steal_pointer(&notes), FALSE);
  return TRUE;
}

gboolean pst_config_build_plugins(PstConfig *config,
                                  const PstConfigOrigins *origins,
                                  GError **error) {
  config->plugins =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_config_plugin_free);
  return build_plugin_path(config, origins, error) &&
         build_load(config, origins, error) &&
         build_enabled(config, origins, error);
}

/* ------------------------------------------------------------------ */
/* Which file loaded what                                              */
/* ------------------------------------------------------------------ */

void pst_config_describe_plugins(const PstConfig *config, const char *program,
                                 GString *out) {
  for (guint i = 0; i < config->plugins->len; i++) {
    const PstPluginConfig *plugin = config->plugins->pdata[i];
    g_string_append_printf(out, "%s: plugin %s: loaded by %s\n", program,
                           plugin->name, plugin->origin);
  }
  for (guint i = 0; config->plugin_notes && config->plugin_notes[i]; i++)
    g_string_append_printf(out, "%s: %s\n", program, config->plugin_notes[i]);
}
