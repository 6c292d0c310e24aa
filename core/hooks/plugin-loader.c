/* plugin-loader.c - finding, checking, starting and stopping plugins.
 *
 * Entry points: pst_plugin_set_load() (the daemon's start and a SIGHUP that
 * changes `[plugins] load`), pst_plugin_set_reload() / _reload_new() (a
 * SIGHUP that keeps the list), pst_plugin_set_unref(), and the SDK's
 * pst_plugin_* functions that init() calls.
 *
 * For each plugin the configuration loads ([plugins] load, then those with
 * [plugin:NAME] enable), in order: look for NAME.so, then
 * libpostilion-NAME.so, in each `[plugins] path` directory and then in
 * PST_PLUGINDIR (pst_config_find_plugin_file()); dlopen() it with
 * RTLD_NOW | RTLD_LOCAL (ELF constructors are the only plugin code that can run
 * before the checks); read the `postilion_plugin` descriptor's ABI version and
 * size before anything else; then call init().  Any failure unloads what was
 * loaded (shutdown() in reverse order) and returns one GError naming the file,
 * the reason and the fix.  Nothing here ever exits: the caller decides.
 *
 * One instance per module: dlopen() of a file already loaded returns the
 * same copy of its code and static data, so a set loaded while an older
 * one lives (SIGHUP with a new list) reuses the instances they share: they
 * get reload() with the new keyfile, not a second init(), and are shut
 * down only when the last set and call using them are gone.  `live` maps
 * each descriptor to its instance.  Main thread only.
 */
#define G_LOG_DOMAIN "postilion"

#include <dlfcn.h>
#include <stddef.h>

#include <glib.h>

#include "hooks/hooks-private.h"

/* The 1.0 descriptor ends with reload(); a smaller one cannot be a 1.x
 * descriptor.  The first 8 octets (size and version) never move. */
#define PST_DESCRIPTOR_SIZE_1_0                                                \
  (offsetof(PstPluginDescriptor, reload) + sizeof(void *))

struct _PstPluginSet {
  gint ref_count;
  PstPluginGroup *group; /* owned reference */
  PstChainTable *chains; /* owned reference: what new runs use */
  char **names;          /* owned: the plugins' names, load order */
};

/* Every plugin instance alive: descriptor -> PstPlugin* (not owned). */
static GHashTable *live;
/* init() calls so far: PstPlugin.init_sequence. */
static guint64 init_count;

/* ------------------------------------------------------------------ */
/* Hooks, plugins and groups                                           */
/* ------------------------------------------------------------------ */

PstHook *pst_hook_ref(PstHook *hook) {
  g_atomic_int_inc(&hook->ref_count);
  return hook;
}

void pst_hook_unref(PstHook *hook) {
  if (!g_atomic_int_dec_and_test(&hook->ref_count))
    return;
  if (hook->destroy != NULL)
    hook->destroy(hook->user_data);
  g_free(hook);
}

static void plugin_free(PstPlugin *plugin) {
  /* Hooks and data hold pointers into the module: free them first. */
  g_clear_pointer(&plugin->staged, g_ptr_array_unref);
  g_clear_pointer(&plugin->hooks, g_ptr_array_unref);
  if (plugin->data_destroy != NULL)
    plugin->data_destroy(plugin->data);
  plugin->data = NULL;
  plugin->data_destroy = NULL;
  if (plugin->module != NULL)
    dlclose(plugin->module);
  g_clear_pointer(&plugin->keyfile, g_key_file_unref);
  g_free(plugin->name);
  g_free(plugin->path);
  g_free(plugin->config_group);
  g_free(plugin);
}

PstPlugin *pst_plugin_ref(PstPlugin *plugin) {
  plugin->ref_count++;
  return plugin;
}

void pst_plugin_unref(PstPlugin *plugin) {
  g_assert(plugin->ref_count > 0);
  if (--plugin->ref_count > 0)
    return;
  /* Every user of its services holds a reference (a generation, a
   * transport, a SASL client): none is left. */
  if (plugin->initialized && plugin->descriptor->shutdown != NULL)
    plugin->descriptor->shutdown(plugin);
  g_hash_table_remove(live, plugin->descriptor);
  plugin_free(plugin);
}

static PstPluginGroup *plugin_group_new(void) {
  PstPluginGroup *group = g_new0(PstPluginGroup, 1);
  group->ref_count = 1;
  group->plugins = g_ptr_array_new();
  return group;
}

PstPluginGroup *pst_plugin_group_ref(PstPluginGroup *group) {
  g_atomic_int_inc(&group->ref_count);
  return group;
}

void pst_plugin_group_unref(PstPluginGroup *group) {
  if (!g_atomic_int_dec_and_test(&group->ref_count))
    return;
  /* Reverse load order: a plugin may use what an earlier one set up. */
  for (guint i = group->plugins->len; i > 0; i--)
    pst_plugin_unref(g_ptr_array_index(group->plugins, i - 1));
  g_ptr_array_unref(group->plugins);
  g_free(group);
}

/* ------------------------------------------------------------------ */
/* Finding and checking                                                */
/* ------------------------------------------------------------------ */

static gboolean plugin_name_is_valid(const char *name) {
  if (name == NULL || *name == '\0' || strlen(name) > 64)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++) {
    if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '_' && *p != '-')
      return FALSE;
  }
  return TRUE;
}

/* The file for `name`, or NULL with an error listing what was tried. */
static char *plugin_find(PstConfig *config, const char *name, GError **error) {
  g_autofree char *tried = NULL;
  char *path = pst_config_find_plugin_file(config, name, &tried);
  if (path != NULL)
    return path;
  g_autofree char *where = pst_config_describe_key(config, "plugins", "load");
  g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_NOT_FOUND,
              "%s[plugins] load: plugin \"%s\" not found (tried %s): install "
              "it, or add its directory to [plugins] path",
              where, name, tried);
  return NULL;
}

/* The checks made before any plugin function is called. */
static gboolean descriptor_check(const PstPluginDescriptor *descriptor,
                                 const char *path, const char *name,
                                 GError **error) {
  if (descriptor->abi_major != PST_ABI_MAJOR) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ABI,
                "%s: built for plugin ABI %u.%u, this postiliond provides "
                "%d.%d: rebuild the plugin against this SDK",
                path, descriptor->abi_major, descriptor->abi_minor,
                PST_ABI_MAJOR, PST_ABI_MINOR);
    return FALSE;
  }
  if (descriptor->abi_minor > PST_ABI_MINOR) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ABI,
                "%s: built for plugin ABI %u.%u, this postiliond provides "
                "only %d.%d: upgrade postiliond, or rebuild the plugin "
                "against this SDK",
                path, descriptor->abi_major, descriptor->abi_minor,
                PST_ABI_MAJOR, PST_ABI_MINOR);
    return FALSE;
  }
  if (descriptor->struct_size < PST_DESCRIPTOR_SIZE_1_0) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ABI,
                "%s: the plugin descriptor has %u octets, ABI %d.0 needs at "
                "least %zu: rebuild the plugin with POSTILION_PLUGIN_DEFINE()",
                path, descriptor->struct_size, PST_ABI_MAJOR,
                (size_t)PST_DESCRIPTOR_SIZE_1_0);
    return FALSE;
  }
  if (descriptor->name == NULL || g_strcmp0(descriptor->name, name) != 0) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ABI,
                "%s: the plugin calls itself \"%s\" but [plugins] load names "
                "it \"%s\": fix the name in [plugins] load or the file name",
                path, descriptor->name ? descriptor->name : "(null)", name);
    return FALSE;
  }
  if (descriptor->init == NULL) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ABI,
                "%s: the plugin has no init function: rebuild it with "
                "POSTILION_PLUGIN_DEFINE()",
                path);
    return FALSE;
  }
  return TRUE;
}

/* dlopen()s `path` and returns its checked descriptor. */
static const PstPluginDescriptor *plugin_open(const char *path,
                                              const char *name, void **module_r,
                                              GError **error) {
  void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (module == NULL) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_OPEN,
                "%s: cannot load plugin \"%s\": %s: check that the file is "
                "a plugin built for this system and its libraries are "
                "installed",
                path, name, dlerror());
    return NULL;
  }
  const PstPluginDescriptor *descriptor =
      dlsym(module, POSTILION_PLUGIN_SYMBOL);
  if (descriptor == NULL) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_ENTRY,
                "%s: not a Postilion plugin: it does not export the symbol "
                "\"%s\": define it with POSTILION_PLUGIN_DEFINE()",
                path, POSTILION_PLUGIN_SYMBOL);
    dlclose(module);
    return NULL;
  }
  if (!descriptor_check(descriptor, path, name, error)) {
    dlclose(module);
    return NULL;
  }
  *module_r = module;
  return descriptor;
}

/* ------------------------------------------------------------------ */
/* Starting                                                            */
/* ------------------------------------------------------------------ */

static void plugin_begin_registration(PstPlugin *plugin) {
  g_assert(plugin->staged == NULL);
  plugin->staged =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_hook_unref);
}

/* What registered during init/reload replaces the hooks, if anything did. */
static void plugin_commit_registration(PstPlugin *plugin) {
  if (plugin->staged != NULL && plugin->staged->len > 0) {
    g_ptr_array_unref(plugin->hooks);
    plugin->hooks = g_steal_pointer(&plugin->staged);
  }
  g_clear_pointer(&plugin->staged, g_ptr_array_unref);
}

/* A new instance: init(); on failure it is unloaded.  Takes `module`
 * (nullable). */
static PstPlugin *plugin_start(PstConfig *config,
                               const PstPluginConfig *plugin_config,
                               const char *path, void *module,
                               const PstPluginDescriptor *descriptor,
                               GError **error) {
  PstPlugin *plugin = g_new0(PstPlugin, 1);
  plugin->ref_count = 1;
  plugin->name = g_strdup(plugin_config->name);
  plugin->path = g_strdup(path);
  plugin->config_group = g_strdup(plugin_config->group);
  plugin->module = module;
  plugin->descriptor = descriptor;
  plugin->keyfile = g_key_file_ref(config->keyfile);
  plugin->hooks =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_hook_unref);

  g_autoptr(GError) local_error = NULL;
  plugin_begin_registration(plugin);
  gboolean ok = descriptor->init(plugin, config->keyfile, plugin->config_group,
                                 &local_error);
  if (!ok) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_INIT,
                "%s: plugin \"%s\" failed to start: %s", path, plugin->name,
                local_error ? local_error->message
                            : "init() failed without saying why");
    plugin_free(plugin);
    return NULL;
  }
  if (local_error != NULL)
    g_warning("%s: plugin \"%s\": init() succeeded but set an error: %s", path,
              plugin->name, local_error->message);
  plugin_commit_registration(plugin);
  plugin->initialized = TRUE;
  plugin->init_sequence = ++init_count;
  if (live == NULL)
    live = g_hash_table_new(NULL, NULL);
  g_hash_table_insert(live, (gpointer)descriptor, plugin);
  g_debug("plugin \"%s\" %s loaded from %s", plugin->name,
          descriptor->version ? descriptor->version : "", path);
  return plugin;
}

static gboolean plugin_call_reload(PstPlugin *plugin, GKeyFile *keyfile,
                                   GError **error) {
  plugin_begin_registration(plugin);
  g_autoptr(GError) local_error = NULL;
  gboolean ok = plugin->descriptor->reload(plugin, keyfile,
                                           plugin->config_group, &local_error);
  if (!ok)
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_INIT,
                "plugin \"%s\" refused the new configuration: %s; keeping "
                "the old one",
                plugin->name,
                local_error ? local_error->message
                            : "reload() failed without saying why");
  if (!ok)
    g_clear_pointer(&plugin->staged, g_ptr_array_unref);
  return ok;
}

/* Gives `plugins` that have a reload() the new keyfile, their hooks staged.
 * On a refusal, those that accepted get their own keyfile back, nothing
 * they registered is kept, and FALSE. */
static gboolean plugins_reload(GPtrArray *plugins, GKeyFile *keyfile,
                               GError **error) {
  for (guint i = 0; i < plugins->len; i++) {
    PstPlugin *plugin = g_ptr_array_index(plugins, i);
    if (plugin->descriptor->reload == NULL ||
        plugin_call_reload(plugin, keyfile, error))
      continue;
    for (guint j = 0; j < i; j++) {
      PstPlugin *done = g_ptr_array_index(plugins, j);
      if (done->descriptor->reload == NULL)
        continue;
      g_clear_pointer(&done->staged, g_ptr_array_unref);
      g_autoptr(GError) again = NULL;
      if (!plugin_call_reload(done, done->keyfile, &again))
        g_warning("%s", again->message);
      g_clear_pointer(&done->staged, g_ptr_array_unref);
    }
    return FALSE;
  }
  return TRUE;
}

/* After plugins_reload() succeeded and everything else did too. */
static void plugins_commit(GPtrArray *plugins, GKeyFile *keyfile) {
  for (guint i = 0; i < plugins->len; i++) {
    PstPlugin *plugin = g_ptr_array_index(plugins, i);
    plugin_commit_registration(plugin);
    g_key_file_unref(plugin->keyfile);
    plugin->keyfile = g_key_file_ref(keyfile);
  }
}

static const PstPluginConfig *plugin_config_find(PstConfig *config,
                                                 const char *name) {
  for (guint i = 0; i < config->plugins->len; i++) {
    const PstPluginConfig *plugin_config =
        g_ptr_array_index(config->plugins, i);
    if (g_strcmp0(plugin_config->name, name) == 0)
      return plugin_config;
  }
  return NULL;
}

/* Every listener's `plugins` must name loaded plugins. */
static gboolean listeners_check(PstConfig *config, GError **error) {
  for (guint i = 0; config->listeners && i < config->listeners->len; i++) {
    const PstListenerConfig *listener = g_ptr_array_index(config->listeners, i);
    for (guint j = 0; listener->plugins && listener->plugins[j]; j++) {
      if (plugin_config_find(config, listener->plugins[j]) != NULL)
        continue;
      g_autofree char *group = g_strconcat("listener:", listener->name, NULL);
      g_autofree char *where =
          pst_config_describe_key(config, group, "plugins");
      g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_NOT_FOUND,
                  "%s[%s] plugins: \"%s\" is not in [plugins] load: add it "
                  "there or remove it from this list",
                  where, group, listener->plugins[j]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean plugin_config_check(PstConfig *config,
                                    const PstPluginConfig *plugin_config,
                                    GError **error) {
  g_autofree char *where = pst_config_describe_key(config, "plugins", "load");
  if (!plugin_name_is_valid(plugin_config->name)) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_NOT_FOUND,
                "%s[plugins] load: \"%s\" is not a plugin name: use lower "
                "case letters, digits, '-' and '_'",
                where, plugin_config->name);
    return FALSE;
  }
  if (plugin_config_find(config, plugin_config->name) != plugin_config) {
    g_set_error(error, PST_PLUGIN_ERROR, PST_PLUGIN_ERROR_DUPLICATE,
                "%s[plugins] load: \"%s\" is listed twice: remove one", where,
                plugin_config->name);
    return FALSE;
  }
  return TRUE;
}

static PstPluginSet *plugin_set_new(PstPluginGroup *group, PstConfig *config) {
  PstPluginSet *set = g_new0(PstPluginSet, 1);
  set->ref_count = 1;
  set->group = group;
  set->chains = pst_chain_table_new(group, config);
  set->names = g_new0(char *, group->plugins->len + 1);
  for (guint i = 0; i < group->plugins->len; i++)
    set->names[i] = g_strdup(((PstPlugin *)group->plugins->pdata[i])->name);
  return set;
}

/* The checked descriptor of plugin `index`: from a file or `builtin`. */
static const PstPluginDescriptor *
plugin_locate(PstConfig *config, const PstPluginDescriptor *const *builtin,
              guint index, char **path_r, void **module_r, GError **error) {
  const PstPluginConfig *plugin_config =
      g_ptr_array_index(config->plugins, index);
  if (builtin == NULL) {
    *path_r = plugin_find(config, plugin_config->name, error);
    return *path_r ? plugin_open(*path_r, plugin_config->name, module_r, error)
                   : NULL;
  }
  g_assert(builtin[index] != NULL);
  *path_r = g_strdup("(built-in)");
  return descriptor_check(builtin[index], *path_r, plugin_config->name, error)
             ? builtin[index]
             : NULL;
}

/* Loads from files (`builtin` NULL) or from linked-in descriptors. */
static PstPluginSet *plugin_set_load(PstConfig *config,
                                     const PstPluginDescriptor *const *builtin,
                                     GError **error) {
  /* Refuse a bad list before any plugin code runs. */
  for (guint i = 0; i < config->plugins->len; i++) {
    if (!plugin_config_check(config, g_ptr_array_index(config->plugins, i),
                             error))
      return NULL;
  }
  if (!listeners_check(config, error))
    return NULL;
  PstPluginGroup *group = plugin_group_new();
  g_autoptr(GPtrArray) reused = g_ptr_array_new();
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < config->plugins->len; i++) {
    g_autofree char *path = NULL;
    void *module = NULL;
    const PstPluginDescriptor *descriptor =
        plugin_locate(config, builtin, i, &path, &module, error);
    PstPlugin *plugin =
        descriptor && live ? g_hash_table_lookup(live, descriptor) : NULL;
    if (plugin != NULL) {
      /* Already running for an older set: that one dlopen() is enough. */
      if (module != NULL)
        dlclose(module);
      g_ptr_array_add(reused, plugin);
      g_ptr_array_add(group->plugins, pst_plugin_ref(plugin));
    } else if (descriptor != NULL) {
      plugin = plugin_start(config, g_ptr_array_index(config->plugins, i), path,
                            module, descriptor, error);
      if (plugin != NULL)
        g_ptr_array_add(group->plugins, plugin);
    }
    ok = plugin != NULL;
  }
  /* The instances reused get the new keyfile last: nothing can fail after
   * that, so only a refusal among them needs undoing (plugins_reload()). */
  if (ok)
    ok = plugins_reload(reused, config->keyfile, error);
  if (!ok) {
    pst_plugin_group_unref(group);
    return NULL;
  }
  plugins_commit(reused, config->keyfile);
  return plugin_set_new(group, config);
}

PstPluginSet *pst_plugin_set_load(PstConfig *config, GError **error) {
  g_return_val_if_fail(config != NULL, NULL);
  return plugin_set_load(config, NULL, error);
}

PstPluginSet *
pst_plugin_set_load_builtin(PstConfig *config,
                            const PstPluginDescriptor *const *descriptors,
                            GError **error) {
  g_return_val_if_fail(config != NULL && descriptors != NULL, NULL);
  guint count = 0;
  while (descriptors[count] != NULL)
    count++;
  g_return_val_if_fail(count == config->plugins->len, NULL);
  return plugin_set_load(config, descriptors, error);
}

/* ------------------------------------------------------------------ */
/* Reloading                                                           */
/* ------------------------------------------------------------------ */

/* Reconfigures the set's plugins for `config`; the caller builds chains. */
static gboolean plugin_set_reconfigure(PstPluginSet *set, PstConfig *config,
                                       GError **error) {
  g_return_val_if_fail(pst_plugin_set_matches(set, config), FALSE);
  if (!listeners_check(config, error) ||
      !plugins_reload(set->group->plugins, config->keyfile, error))
    return FALSE;
  plugins_commit(set->group->plugins, config->keyfile);
  return TRUE;
}

gboolean pst_plugin_set_reload(PstPluginSet *set, PstConfig *config,
                               GError **error) {
  g_return_val_if_fail(set != NULL && config != NULL, FALSE);
  if (!plugin_set_reconfigure(set, config, error))
    return FALSE;
  PstChainTable *old = set->chains;
  set->chains = pst_chain_table_new(set->group, config);
  pst_chain_table_unref(old);
  return TRUE;
}

PstPluginSet *pst_plugin_set_reload_new(PstPluginSet *set, PstConfig *config,
                                        GError **error) {
  g_return_val_if_fail(set != NULL && config != NULL, NULL);
  if (!plugin_set_reconfigure(set, config, error))
    return NULL;
  return plugin_set_new(pst_plugin_group_ref(set->group), config);
}

gboolean pst_plugin_set_matches(PstPluginSet *set, PstConfig *config) {
  g_return_val_if_fail(set != NULL && config != NULL, FALSE);
  if (g_strv_length(set->names) != config->plugins->len)
    return FALSE;
  for (guint i = 0; i < config->plugins->len; i++) {
    const PstPluginConfig *plugin_config =
        g_ptr_array_index(config->plugins, i);
    if (g_strcmp0(set->names[i], plugin_config->name) != 0)
      return FALSE;
  }
  return TRUE;
}

PstPluginSet *pst_plugin_set_ref(PstPluginSet *set) {
  g_return_val_if_fail(set != NULL, NULL);
  g_atomic_int_inc(&set->ref_count);
  return set;
}

void pst_plugin_set_unref(PstPluginSet *set) {
  if (set == NULL || !g_atomic_int_dec_and_test(&set->ref_count))
    return;
  pst_chain_table_unref(set->chains);
  g_strfreev(set->names);
  pst_plugin_group_unref(set->group);
  g_free(set);
}

PstChainTable *pst_plugin_set_get_chains(PstPluginSet *set) {
  return set->chains;
}

gboolean pst_plugin_is_registering(PstPlugin *plugin) {
  return plugin->staged != NULL;
}

PstPlugin *pst_plugin_set_find_provider(PstPluginSet *set, PstServiceKind kind,
                                        const PstListenerConfig *listener) {
  GPtrArray *plugins = set->group->plugins;
  PstPlugin *found = NULL;
  for (guint i = 0; i < plugins->len; i++) {
    PstPlugin *plugin = plugins->pdata[i];
    if (plugin->provided[kind].funcs == NULL)
      continue;
    if (kind != PST_SERVICE_SASL_SERVER)
      found = plugin;
    else if (listener == NULL || listener->plugins == NULL ||
             g_strv_contains((const char *const *)listener->plugins,
                             plugin->name))
      return plugin;
  }
  return found;
}

guint pst_plugin_count_loaded(GString *names) {
  if (live == NULL)
    return 0;
  if (names != NULL) {
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init(&iter, live);
    while (g_hash_table_iter_next(&iter, NULL, &value))
      g_string_append_printf(names, "%s%s", names->len > 0 ? ", " : "",
                             ((PstPlugin *)value)->name);
  }
  return g_hash_table_size(live);
}

PstPlugin *pst_plugin_find_live_provider(PstServiceKind kind,
                                         PstPlugin *except) {
  if (live == NULL)
    return NULL;
  PstPlugin *found = NULL;
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init(&iter, live);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    PstPlugin *plugin = value;
    if (plugin == except || plugin->provided[kind].funcs == NULL)
      continue;
    if (found == NULL || plugin->init_sequence > found->init_sequence)
      found = plugin;
  }
  return found;
}

/* ------------------------------------------------------------------ */
/* The SDK side                                                        */
/* ------------------------------------------------------------------ */

PST_API void pst_plugin_register_hook(PstPlugin *plugin, PstStage stage,
                                      int priority, PstHookFunc func,
                                      gpointer user_data,
                                      GDestroyNotify destroy) {
  g_return_if_fail(plugin != NULL);
  g_return_if_fail((guint)stage < PST_STAGE_COUNT);
  g_return_if_fail(func != NULL);
  if (plugin->staged == NULL) {
    g_critical("plugin \"%s\" registered a hook outside init() and "
               "reload(): ignored",
               plugin->name);
    if (destroy != NULL)
      destroy(user_data);
    return;
  }
  PstHook *hook = g_new0(PstHook, 1);
  hook->ref_count = 1;
  hook->plugin = plugin;
  hook->stage = stage;
  hook->priority = priority;
  hook->sequence = plugin->next_sequence++;
  hook->func = func;
  hook->user_data = user_data;
  hook->destroy = destroy;
  g_ptr_array_add(plugin->staged, hook);
}

PST_API const char *pst_plugin_get_name(PstPlugin *plugin) {
  g_return_val_if_fail(plugin != NULL, NULL);
  return plugin->name;
}

PST_API void pst_plugin_set_data(PstPlugin *plugin, gpointer data,
                                 GDestroyNotify destroy) {
  g_return_if_fail(plugin != NULL);
  gpointer old = plugin->data;
  GDestroyNotify old_destroy = plugin->data_destroy;
  plugin->data = data;
  plugin->data_destroy = destroy;
  if (old_destroy != NULL && old != data)
    old_destroy(old);
}

PST_API gpointer pst_plugin_get_data(PstPlugin *plugin) {
  g_return_val_if_fail(plugin != NULL, NULL);
  return plugin->data;
}

PST_API void pst_plugin_log(PstPlugin *plugin, GLogLevelFlags level,
                            const char *format, ...) {
  g_return_if_fail(plugin != NULL && format != NULL);
  va_list args;
  va_start(args, format);
  pst_hooks_logv(level, NULL, plugin->name, format, args);
  va_end(args);
}
