/* config.c - loading a PstConfig, its lifetime, and lookups in it.
 *
 * pst_config_load() is the one entry point: read the files
 * (config-load.c), check every group and key against the schema
 * (config-schema.c), then build each section (config-server.c,
 * config-listener.c).  It returns a complete, valid configuration or NULL
 * with one message; the daemon never runs on a half-built one.
 *
 * On success the merged keyfile is registered with its origins, so that
 * plugins' pst_config_get_* messages and pst_config_describe_key() can
 * name the file and line; the last pst_config_unref() unregisters it.
 *
 * A PstConfig is immutable once returned; ref and unref are atomic, so a
 * session on any thread may hold one across a SIGHUP reload.
 */
#include <string.h>

#include "config/config-private.h"

G_DEFINE_QUARK(pst - config - error - quark, pst_config_error)

static void config_free(PstConfig *config) {
  g_free(config->path);
  g_strfreev(config->files);
  pst_config_server_clear(&config->server);
  g_clear_pointer(&config->listeners, g_ptr_array_unref);
  g_strfreev(config->plugin_path);
  g_clear_pointer(&config->plugins, g_ptr_array_unref);
  g_strfreev(config->plugin_notes);
  pst_config_dns_clear(&config->dns);
  pst_config_delivery_clear(&config->delivery);
  if (config->keyfile != NULL) {
    pst_config_origins_unregister(config->keyfile);
    g_key_file_unref(config->keyfile);
  }
  g_free(config);
}

PstConfig *pst_config_load(const char *path, GError **error) {
  g_return_val_if_fail(path != NULL, NULL);
  g_return_val_if_fail(error == NULL || *error == NULL, NULL);
  g_autoptr(GKeyFile) keyfile = NULL;
  g_autoptr(PstConfigOrigins) origins = NULL;
  if (!pst_config_read_files(path, &keyfile, &origins, error) ||
      !pst_config_schema_check(keyfile, origins, error))
    return NULL;

  PstConfig *config = g_new0(PstConfig, 1);
  config->ref_count = 1;
  config->path = g_strdup(path);
  config->files = g_strdupv((char **)pst_config_origins_get_files(origins));
  config->keyfile = g_steal_pointer(&keyfile);
  if (!pst_config_build_server(config, origins, error) ||
      !pst_config_build_plugins(config, origins, error) ||
      !pst_config_build_listeners(config, origins, error) ||
      !pst_config_build_dns(config, origins, error) ||
      !pst_config_build_delivery(config, origins, error)) {
    config_free(config);
    return NULL;
  }
  pst_config_origins_register(config->keyfile, origins);
  return config;
}

PstConfig *pst_config_ref(PstConfig *config) {
  g_return_val_if_fail(config != NULL, NULL);
  g_atomic_int_inc(&config->ref_count);
  return config;
}

void pst_config_unref(PstConfig *config) {
  g_return_if_fail(config != NULL);
  if (g_atomic_int_dec_and_test(&config->ref_count))
    config_free(config);
}

const PstListenerConfig *pst_config_find_listener(const PstConfig *config,
                                                  const char *name) {
  g_return_val_if_fail(config != NULL && name != NULL, NULL);
  for (guint i = 0; i < config->listeners->len; i++) {
    const PstListenerConfig *listener = config->listeners->pdata[i];
    if (strcmp(listener->name, name) == 0)
      return listener;
  }
  return NULL;
}

const PstPluginConfig *pst_config_find_plugin(const PstConfig *config,
                                              const char *name) {
  g_return_val_if_fail(config != NULL && name != NULL, NULL);
  for (guint i = 0; config->plugins != NULL && i < config->plugins->len; i++) {
    const PstPluginConfig *plugin = config->plugins->pdata[i];
    if (strcmp(plugin->name, name) == 0)
      return plugin;
  }
  return NULL;
}

gboolean pst_config_is_local_domain(const PstConfig *config,
                                    const char *domain) {
  g_return_val_if_fail(config != NULL, FALSE);
  if (domain == NULL)
    return FALSE;
  gsize length = strlen(domain);
  /* "Example.ORG." is example.org; a lone "." is no domain. */
  if (length > 1 && domain[length - 1] == '.')
    length--;
  for (guint i = 0; config->server.domains[i] != NULL; i++) {
    const char *ours = config->server.domains[i];
    if (strlen(ours) == length &&
        g_ascii_strncasecmp(ours, domain, length) == 0)
      return TRUE;
  }
  return FALSE;
}

char *pst_config_describe_key(const PstConfig *config, const char *group,
                              const char *key) {
  g_return_val_if_fail(config != NULL, NULL);
  g_autoptr(PstConfigOrigins) origins =
      pst_config_origins_lookup(config->keyfile);
  if (origins == NULL)
    return g_strdup_printf("%s: ", config->path);
  return pst_config_origins_describe(origins, group, key);
}
