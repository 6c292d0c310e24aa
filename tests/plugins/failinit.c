/* failinit.c - a plugin whose init() fails, with the message from its
 * `[plugin:failinit] message` key (default "configured to fail"), so the
 * daemon must refuse to start, naming the file and that message.
 */
#include <postilion/plugin.h>

static gboolean failinit_init(PstPlugin *plugin, GKeyFile *config,
                              const char *group, GError **error) {
  static const char *const keys[] = {"message", NULL};
  g_autofree char *message = NULL;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "message", "configured to fail",
                             &message, error))
    return FALSE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "failinit: %s", message);
  return FALSE;
}

POSTILION_PLUGIN_DEFINE("failinit", "1.0", "Test plugin whose init fails",
                        failinit_init, NULL, NULL);
