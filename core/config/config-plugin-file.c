/* config-plugin-file.c - where a plugin's shared object is.
 *
 * pst_config_find_plugin_file() is the one search of the plugin
 * directories: NAME.so, then libpostilion-NAME.so, in each `[plugins] path`
 * directory in order, then in PST_PLUGINDIR (fixed at build time).  The
 * configuration uses it to tell an installed plugin from one whose package
 * was removed (config-plugins.c), the loader to find the file it dlopen()s
 * (core/hooks/plugin-loader.c).  Its own file so that the hooks' unit test
 * links it without the rest of the configuration.
 */
#include "pst-build-config.h"

#include "config/config.h"

char *pst_config_find_plugin_file(const PstConfig *config, const char *name,
                                  char **tried_r) {
  g_autoptr(GPtrArray) dirs = g_ptr_array_new();
  for (guint i = 0; config->plugin_path && config->plugin_path[i]; i++)
    g_ptr_array_add(dirs, config->plugin_path[i]);
  g_ptr_array_add(dirs, (gpointer)PST_PLUGINDIR);

  g_autoptr(GString) tried = g_string_new(NULL);
  g_autofree char *so = g_strconcat(name, ".so", NULL);
  g_autofree char *libso = g_strconcat("libpostilion-", name, ".so", NULL);
  for (guint i = 0; i < dirs->len; i++) {
    const char *files[] = {so, libso};
    for (guint j = 0; j < G_N_ELEMENTS(files); j++) {
      g_autofree char *path =
          g_build_filename(g_ptr_array_index(dirs, i), files[j], NULL);
      if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer(&path);
      g_string_append_printf(tried, "%s%s", tried->len ? ", " : "", path);
    }
  }
  if (tried_r != NULL)
    *tried_r = g_string_free(g_steal_pointer(&tried), FALSE);
  return NULL;
}
