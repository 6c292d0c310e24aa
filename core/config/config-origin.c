/* config-origin.c - where each group and key of the configuration came from.
 *
 * GLib's keyfile forgets lines once parsed, so config-load.c scans each
 * file's text itself and records here, for every key, the file and line
 * that set its final value (a later drop-in replaces an earlier entry), and
 * for every group the first header that opened it.  Error messages about a
 * value start with pst_config_origins_describe(): "FILE:LINE: ".
 *
 * The registry maps a merged GKeyFile to its origins so that the SDK
 * helpers (pst_config_get_*), which only get the keyfile from a plugin, can
 * name the file and line as well.  pst_config_load() registers the keyfile
 * of each PstConfig and its last unref unregisters it.  The registry is
 * guarded by a mutex and hands out references, so a lookup on one thread
 * stays valid while another thread drops the configuration.
 *
 * Origins are built by one thread during loading and never change after
 * they are registered.
 */
#include "config/config-private.h"

typedef struct {
  guint file; /* index into files */
  guint line; /* 1-based */
} PstConfigLocation;

struct _PstConfigOrigins {
  GPtrArray *files;   /* owned, of char*, NULL-terminated */
  GHashTable *keys;   /* owned: "GROUP\nKEY" -> PstConfigLocation* */
  GHashTable *groups; /* owned: GROUP -> PstConfigLocation* */
};

static GMutex registry_lock;
static GHashTable *registry; /* GKeyFile* -> PstConfigOrigins* (a ref) */

static void origins_clear(gpointer data) {
  PstConfigOrigins *origins = data;
  g_ptr_array_unref(origins->files);
  g_hash_table_unref(origins->keys);
  g_hash_table_unref(origins->groups);
}

PstConfigOrigins *pst_config_origins_new(void) {
  PstConfigOrigins *origins = g_atomic_rc_box_new0(PstConfigOrigins);
  origins->files = g_ptr_array_new_null_terminated(4, g_free, TRUE);
  origins->keys =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  origins->groups =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  return origins;
}

PstConfigOrigins *pst_config_origins_ref(PstConfigOrigins *origins) {
  return g_atomic_rc_box_acquire(origins);
}

void pst_config_origins_unref(PstConfigOrigins *origins) {
  g_atomic_rc_box_release_full(origins, origins_clear);
}

guint pst_config_origins_add_file(PstConfigOrigins *origins, const char *path) {
  g_ptr_array_add(origins->files, g_strdup(path));
  return origins->files->len - 1;
}

const char *const *pst_config_origins_get_files(const PstConfigOrigins *origins) {
  return (const char *const *)origins->files->pdata;
}

static PstConfigLocation *location_new(guint file, guint line) {
  PstConfigLocation *location = g_new(PstConfigLocation, 1);
  location->file = file;
  location->line = line;
  return location;
}

void pst_config_origins_set_key(PstConfigOrigins *origins, guint file,
                                const char *group, const char *key,
                                guint line) {
  g_return_if_fail(file < origins->files->len);
  g_hash_table_replace(origins->keys, g_strconcat(group, "\n", key, NULL),
                       location_new(file, line));
}

void pst_config_origins_set_group(PstConfigOrigins *origins, guint file,
                                  const char *group, guint line) {
  g_return_if_fail(file < origins->files->len);
  if (g_hash_table_contains(origins->groups, group))
    return;
  g_hash_table_insert(origins->groups, g_strdup(group),
                      location_new(file, line));
}

gboolean pst_config_origins_locate(const PstConfigOrigins *origins,
                                   const char *group, const char *key,
                                   guint *file_r, guint *line_r) {
  g_autofree char *id = g_strconcat(group, "\n", key, NULL);
  const PstConfigLocation *location =
      origins != NULL ? g_hash_table_lookup(origins->keys, id) : NULL;
  if (location == NULL)
    return FALSE;
  *file_r = location->file;
  *line_r = location->line;
  return TRUE;
}

char *pst_config_origins_describe(const PstConfigOrigins *origins,
                                  const char *group, const char *key) {
  const PstConfigLocation *location = NULL;
  if (origins == NULL)
    return g_strdup("");
  if (group != NULL && key != NULL) {
    g_autofree char *id = g_strconcat(group, "\n", key, NULL);
    location = g_hash_table_lookup(origins->keys, id);
  }
  if (location == NULL && group != NULL)
    location = g_hash_table_lookup(origins->groups, group);
  if (location != NULL)
    return g_strdup_printf(
        "%s:%u: ", (const char *)origins->files->pdata[location->file],
        location->line);
  if (origins->files->len > 0)
    return g_strdup_printf("%s: ", (const char *)origins->files->pdata[0]);
  return g_strdup("");
}

void pst_config_origins_register(GKeyFile *keyfile, PstConfigOrigins *origins) {
  g_mutex_lock(&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                     (GDestroyNotify)pst_config_origins_unref);
  g_hash_table_replace(registry, keyfile, pst_config_origins_ref(origins));
  g_mutex_unlock(&registry_lock);
}

void pst_config_origins_unregister(GKeyFile *keyfile) {
  g_mutex_lock(&registry_lock);
  if (registry != NULL)
    g_hash_table_remove(registry, keyfile);
  g_mutex_unlock(&registry_lock);
}

PstConfigOrigins *pst_config_origins_lookup(GKeyFile *keyfile) {
  PstConfigOrigins *origins = NULL;
  g_mutex_lock(&registry_lock);
  if (registry != NULL) {
    origins = g_hash_table_lookup(registry, keyfile);
    if (origins != NULL)
      pst_config_origins_ref(origins);
  }
  g_mutex_unlock(&registry_lock);
  return origins;
}
