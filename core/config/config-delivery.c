/* config-delivery.c - the [delivery] group: local delivery and retries.
 *
 * pst_config_build_delivery() reads the keys through the schema readers
 * (config-schema.c holds types, defaults and ranges) and applies the rules
 * a type cannot say: files and the Maildir root are absolute paths, lmtp
 * is unix:/ABSOLUTE or a literal ADDRESS:PORT, retry_first is at most
 * retry_max.  The files themselves (mailboxes, aliases) are read by
 * core/deliver when the daemon starts or reloads, so their syntax errors
 * name their own file and line.  Called by pst_config_load() only.
 */
#include <string.h>

#include "config/config-private.h"

gboolean pst_config_delivery_enabled(const PstDeliveryConfig *delivery) {
  return delivery->maildir_root != NULL || delivery->system_users ||
         delivery->lmtp != NULL;
}

static gboolean check_absolute(PstConfig *config,
                               const PstConfigOrigins *origins, const char *key,
                               const char *value, GError **error) {
  if (value == NULL || g_path_is_absolute(value))
    return TRUE;
  pst_config_set_key_error(error, config->keyfile, origins, "delivery", key,
                           "an absolute path");
  return FALSE;
}

static gboolean check_lmtp(PstConfig *config, const PstConfigOrigins *origins,
                           GError **error) {
  const char *lmtp = config->delivery.lmtp;
  if (lmtp == NULL)
    return TRUE;
  if (g_str_has_prefix(lmtp, "unix:") && g_path_is_absolute(lmtp + 5))
    return TRUE;
  g_autofree char *host = NULL;
  g_autofree char *problem = NULL;
  guint16 port = 0;
  if (pst_config_parse_address(lmtp, &host, &port, &problem))
    return TRUE;
  pst_config_set_key_error(error, config->keyfile, origins, "delivery", "lmtp",
                           "unix:/ABSOLUTE/PATH or a literal IP address and "
                           "port (127.0.0.1:24, [::1]:24)");
  return FALSE;
}

gboolean pst_config_build_delivery(PstConfig *config,
                                   const PstConfigOrigins *origins,
                                   GError **error) {
  PstDeliveryConfig *delivery = &config->delivery;
  GKeyFile *keyfile = config->keyfile;
  gint64 parallel = 0;
  if (!pst_config_schema_get_string(keyfile, origins, "delivery", "mailboxes",
                                    &delivery->mailboxes, error) ||
      !pst_config_schema_get_string(keyfile, origins, "delivery", "aliases",
                                    &delivery->aliases, error) ||
      !pst_config_schema_get_string(keyfile, origins, "delivery",
                                    "maildir_root", &delivery->maildir_root,
                                    error) ||
      !pst_config_schema_get_boolean(keyfile, origins, "delivery",
                                     "system_users", &delivery->system_users,
                                     error) ||
      !pst_config_schema_get_string(keyfile, origins, "delivery", "lmtp",
                                    &delivery->lmtp, error) ||
      !pst_config_schema_get_ms(keyfile, origins, "delivery", "retry_first",
                                &delivery->retry_first_ms, error) ||
      !pst_config_schema_get_ms(keyfile, origins, "delivery", "retry_max",
                                &delivery->retry_max_ms, error) ||
      !pst_config_schema_get_ms(keyfile, origins, "delivery", "max_lifetime",
                                &delivery->max_lifetime_ms, error) ||
      !pst_config_schema_get_int(keyfile, origins, "delivery", "max_parallel",
                                 &parallel, error))
    return FALSE;
  delivery->max_parallel = (guint)parallel;
  if (!check_absolute(config, origins, "mailboxes", delivery->mailboxes,
                      error) ||
      !check_absolute(config, origins, "aliases", delivery->aliases, error) ||
      !check_absolute(config, origins, "maildir_root", delivery->maildir_root,
                      error) ||
      !check_lmtp(config, origins, error))
    return FALSE;
  if (delivery->retry_first_ms > delivery->retry_max_ms) {
    pst_config_set_key_error(error, keyfile, origins, "delivery", "retry_first",
                             "a delay no longer than retry_max");
    return FALSE;
  }
  return TRUE;
}

void pst_config_delivery_clear(PstDeliveryConfig *delivery) {
  g_clear_pointer(&delivery->mailboxes, g_free);
  g_clear_pointer(&delivery->aliases, g_free);
  g_clear_pointer(&delivery->maildir_root, g_free);
  g_clear_pointer(&delivery->lmtp, g_free);
}
