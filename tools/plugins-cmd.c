/* plugins-cmd.c - `postilion plugins [--config-only]`.
 *
 * The plugins and chains that matter are those of the running daemon (a
 * SIGHUP may have changed them since the file was last edited, or a bad
 * edit may have been refused), so the command asks postiliond over its
 * control socket ("plugins", core/deliver/control.h).  The tool cannot load
 * plugins itself: it links the core statically, and a plugin would bring
 * libpostilion's second copy.  --config-only answers for the configuration
 * file instead, without a daemon: it runs `postiliond --check -v`, which
 * loads every plugin (their init() runs, as at start) and prints the same
 * lines.  Both print one table: per listener and stage, the hooks in the
 * order they run, with each plugin's priority, version and description,
 * then each plugin with the stages it hooks.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "tools/postilion-tool.h"

typedef struct {
  char *version;     /* owned */
  char *description; /* owned */
  GPtrArray *stages; /* owned, of char*: in chain order, no repeats */
} PluginInfo;

static void plugin_info_free(PluginInfo *info) {
  g_free(info->version);
  g_free(info->description);
  g_ptr_array_unref(info->stages);
  g_free(info);
}

static PluginInfo *plugin_info(GHashTable *plugins, const char *name) {
  PluginInfo *info = g_hash_table_lookup(plugins, name);
  if (info == NULL) {
    info = g_new0(PluginInfo, 1);
    info->stages = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(plugins, g_strdup(name), info);
  }
  return info;
}

static gboolean has_string(GPtrArray *array, const char *text) {
  for (guint i = 0; i < array->len; i++)
    if (g_str_equal(array->pdata[i], text))
      return TRUE;
  return FALSE;
}

/* Prints the describe lines ("LISTENER STAGE PRIORITY PLUGIN" and
 * "plugin\tNAME\tVERSION\tDESCRIPTION") as a table; FALSE when there is
 * not one such line. */
static gboolean print_table(const char *text) {
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GHashTable) plugins = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)plugin_info_free);
  g_autoptr(GPtrArray) order = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) hooks =
      g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
  for (guint i = 0; lines[i] != NULL; i++) {
    if (g_str_has_prefix(lines[i], "plugin\t")) {
      g_auto(GStrv) f = g_strsplit(lines[i], "\t", 4);
      if (g_strv_length(f) < 4)
        continue;
      PluginInfo *info = plugin_info(plugins, f[1]);
      g_free(info->version);
      info->version = g_strdup(f[2]);
      g_free(info->description);
      info->description = g_strdup(f[3]);
      if (!has_string(order, f[1]))
        g_ptr_array_add(order, g_strdup(f[1]));
      continue;
    }
    g_auto(GStrv) f = g_strsplit(lines[i], " ", 4);
    if (g_strv_length(f) != 4 ||
        !g_ascii_string_to_signed(f[2], 10, G_MININT, G_MAXINT, NULL, NULL))
      continue; /* not a hook line ("postiliond: configuration OK") */
    PluginInfo *info = plugin_info(plugins, f[3]);
    if (!has_string(info->stages, f[1]))
      g_ptr_array_add(info->stages, g_strdup(f[1]));
    g_ptr_array_add(hooks, g_steal_pointer(&f));
  }
  if (order->len == 0 && hooks->len == 0)
    return FALSE;
  printf("%-12s %-10s %8s  %-16s %-10s %s\n", "LISTENER", "STAGE", "PRIORITY",
         "PLUGIN", "VERSION", "DESCRIPTION");
  for (guint i = 0; i < hooks->len; i++) {
    char **f = hooks->pdata[i];
    PluginInfo *info = plugin_info(plugins, f[3]);
    printf("%-12s %-10s %8s  %-16s %-10s %s\n", f[0], f[1], f[2], f[3],
           info->version ? info->version : "",
           info->description ? info->description : "");
  }
  if (hooks->len == 0)
    printf("(no hooks: the plugins below register none)\n");
  printf("\n%-16s %-10s %s\n", "PLUGIN", "VERSION", "STAGES");
  for (guint i = 0; i < order->len; i++) {
    PluginInfo *info = plugin_info(plugins, order->pdata[i]);
    g_ptr_array_add(info->stages, NULL);
    g_autofree char *stages = g_strjoinv(",", (char **)info->stages->pdata);
    g_ptr_array_remove_index(info->stages, info->stages->len - 1);
    printf("%-16s %-10s %s\n", (char *)order->pdata[i],
           info->version ? info->version : "", stages[0] ? stages : "-");
  }
  return TRUE;
}

/* Asks the running daemon; the reply text after "ok", or NULL with a
 * message printed. */
static char *ask_daemon(PstConfig *config, int *status_r) {
  g_autoptr(GError) error = NULL;
  gboolean unreachable = FALSE;
  g_autoptr(GSocketConnection) connection =
      pst_tool_control_send(config, "plugins", &unreachable, &error);
  if (unreachable) {
    g_autofree char *path = pst_tool_control_path(config);
    fprintf(stderr,
            "postilion: postiliond is not running, or not reachable at %s: "
            "%s.\nStart it, or run `postilion plugins --config-only` for the "
            "chains the configuration file gives (it loads the plugins as "
            "postiliond --check does).\n",
            path, error->message);
    *status_r = PST_EXIT_UNAVAILABLE;
    return NULL;
  }
  g_autoptr(GByteArray) reply = g_byte_array_new();
  guint8 buffer[4096];
  gssize got = -1;
  GInputStream *in =
      connection != NULL
          ? g_io_stream_get_input_stream(G_IO_STREAM(connection))
          : NULL;
  while (in != NULL &&
         (got = g_input_stream_read(in, buffer, sizeof buffer, NULL,
                                    &error)) > 0 &&
         reply->len < 16 * 1024 * 1024)
    g_byte_array_append(reply, buffer, (guint)got);
  g_byte_array_append(reply, (const guint8 *)"", 1);
  const char *text = (const char *)reply->data;
  if (got < 0 || reply->len <= 1) {
    fprintf(stderr, "postilion: no answer from the daemon: %s\n",
            error != NULL ? error->message : "connection closed");
    *status_r = PST_EXIT_TEMPFAIL;
    return NULL;
  }
  if (!g_str_has_prefix(text, "ok\n") && !g_str_equal(text, "ok")) {
    fprintf(stderr, "postilion: plugins: %s\n", text);
    *status_r = PST_EXIT_SOFTWARE;
    return NULL;
  }
  return g_strdup(text[2] ? text + 3 : "");
}

/* postiliond: next to this program (installed: the same sbin; build tree:
 * one level up), else on PATH. */
static char *find_daemon(void) {
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
  if (self != NULL) {
    g_autofree char *dir = g_path_get_dirname(self);
    const char *const candidates[] = {"postiliond", "../postiliond"};
    for (gsize i = 0; i < G_N_ELEMENTS(candidates); i++) {
      g_autofree char *path = g_build_filename(dir, candidates[i], NULL);
      if (g_file_test(path, G_FILE_TEST_IS_EXECUTABLE))
        return g_canonicalize_filename(path, NULL);
    }
  }
  return g_find_program_in_path("postiliond");
}

/* Runs postiliond --check -v; its output, or NULL with a message. */
static char *ask_config(const char *config_path, int *status_r) {
  g_autofree char *daemon = find_daemon();
  if (daemon == NULL) {
    fprintf(stderr, "postilion: cannot find postiliond (next to postilion "
                    "or on PATH)\n");
    *status_r = PST_EXIT_UNAVAILABLE;
    return NULL;
  }
  const char *argv[] = {daemon, "--check", "-v", "-c", config_path, NULL};
  g_autofree char *out = NULL, *err = NULL;
  gint wait_status = 0;
  g_autoptr(GError) error = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                    &out, &err, &wait_status, &error)) {
    fprintf(stderr, "postilion: cannot run %s: %s\n", daemon, error->message);
    *status_r = PST_EXIT_OSERR;
    return NULL;
  }
  if (!g_spawn_check_wait_status(wait_status, NULL)) {
    fputs(err != NULL && *err ? err : out, stderr);
    *status_r = PST_EXIT_CONFIG;
    return NULL;
  }
  return g_steal_pointer(&out);
}

int pst_tool_plugins(const char *config_path, int argc, char **argv) {
  gboolean config_only = FALSE;
  for (int i = 1; i < argc; i++) {
    if (g_str_equal(argv[i], "--config-only"))
      config_only = TRUE;
    else
      return PST_EXIT_USAGE;
  }
  int status = PST_EXIT_OK;
  g_autofree char *text = NULL;
  if (config_only) {
    text = ask_config(config_path, &status);
  } else {
    g_autoptr(GError) error = NULL;
    g_autoptr(PstConfig) config = pst_config_load(config_path, &error);
    if (config == NULL) {
      fprintf(stderr, "postilion: %s\n", error->message);
      return PST_EXIT_CONFIG;
    }
    text = ask_daemon(config, &status);
  }
  if (text == NULL)
    return status;
  if (!print_table(text))
    printf("no plugins loaded ([plugins] load is empty)\n");
  return PST_EXIT_OK;
}
