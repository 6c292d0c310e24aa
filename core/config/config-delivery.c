/* config-delivery.c - the [delivery] group: local delivery, outbound SMTP
 * (relayhost, TLS level, timeouts, concurrency) and retries, and the
 * [delivery:DOMAIN] groups (per-destination tls).
 *
 * pst_config_build_delivery() reads the keys through the schema readers
 * (config-schema.c holds types, defaults and ranges) and applies the rules
 * a type cannot say: files and the Maildir root are absolute paths, lmtp
 * is unix:/ABSOLUTE or a literal ADDRESS:PORT, retry_first is at most
 * retry_max, relayhost parses (pst_config_parse_relayhost()).  The files
 * themselves (mailboxes, aliases) are read by core/deliver when the daemon
 * starts or reloads, so their syntax errors name their own file and line.
 * Called by pst_config_load() only.
 */
#include <string.h>

#include "config/config-private.h"

gboolean pst_config_delivery_enabled(const PstDeliveryConfig *delivery) {
  return delivery->maildir_root != NULL || delivery->system_users ||
         delivery->lmtp != NULL || delivery->relayhost != NULL;
}

gboolean pst_config_parse_relayhost(const char *text, char **host_r,
                                    guint16 *port_r, gboolean *mx_r) {
  g_autofree char *host = NULL;
  const char *rest;
  *mx_r = text[0] != '[';
  if (!*mx_r) {
    const char *close = strchr(text, ']');
    if (close == NULL)
      return FALSE;
    host = g_strndup(text + 1, close - text - 1);
    rest = close + 1;
  } else {
    const char *colon = strchr(text, ':');
    host = colon != NULL ? g_strndup(text, colon - text) : g_strdup(text);
    rest = colon != NULL ? colon : "";
  }
  guint64 port = 0;
  if (*rest != '\0') {
    if (*rest != ':' ||
        !g_ascii_string_to_unsigned(rest + 1, 10, 1, 65535, &port, NULL))
      return FALSE;
  }
  /* A DNS name (letters, digits, '-', '.') or, in brackets, an address. */
  g_autoptr(GInetAddress) literal = g_inet_address_new_from_string(host);
  if (literal == NULL) {
    if (host[0] == '\0' || strlen(host) > 253 || host[0] == '.' ||
        host[0] == '-')
      return FALSE;
    for (const char *p = host; *p; p++)
      if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.')
        return FALSE;
  } else if (*mx_r) {
    return FALSE; /* an address has no MX: write [192.0.2.1] */
  }
  *host_r = g_ascii_strdown(host, -1);
  *port_r = (guint16)port;
  return TRUE;
}

PstDeliveryTls pst_config_delivery_tls(const PstDeliveryConfig *delivery,
                                       const char *domain) {
  if (domain != NULL && delivery->tls_domains != NULL) {
    g_autofree char *lower = g_ascii_strdown(domain, -1);
    gpointer level = g_hash_table_lookup(delivery->tls_domains, lower);
    if (level != NULL)
      return (PstDeliveryTls)(GPOINTER_TO_UINT(level) - 1);
  }
  return delivery->tls;
}

gboolean pst_config_delivery_requires_tls(const PstDeliveryConfig *delivery) {
  if (delivery->tls != PST_DELIVERY_TLS_MAY)
    return TRUE;
  GHashTableIter iter;
  gpointer level;
  g_hash_table_iter_init(&iter, delivery->tls_domains);
  while (g_hash_table_iter_next(&iter, NULL, &level))
    if (GPOINTER_TO_UINT(level) - 1 != PST_DELIVERY_TLS_MAY)
      return TRUE;
  return FALSE;
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

static gboolean check_relayhost(PstConfig *config,
                                const PstConfigOrigins *origins,
                                GError **error) {
  PstDeliveryConfig *delivery = &config->delivery;
  if (delivery->relayhost == NULL)
    return TRUE;
  if (pst_config_parse_relayhost(delivery->relayhost, &delivery->relayhost_host,
                                 &delivery->relayhost_port,
                                 &delivery->relayhost_mx)) {
    if (delivery->relayhost_port == 0)
      delivery->relayhost_port = (guint16)delivery->smtp_port;
    return TRUE;
  }
  pst_config_set_key_error(error, config->keyfile, origins, "delivery",
                           "relayhost",
                           "a host name (its MX hosts), host:port, or "
                           "[host]:port / [192.0.2.1]:587 (that host, no MX "
                           "lookup)");
  return FALSE;
}

/* The outbound SMTP keys of [delivery] and the [delivery:DOMAIN] groups. */
static gboolean build_outbound(PstConfig *config,
                               const PstConfigOrigins *origins,
                               GError **error) {
  PstDeliveryConfig *delivery = &config->delivery;
  GKeyFile *keyfile = config->keyfile;
  gint64 port = 0, concurrency = 0;
  guint tls = 0;
  if (!pst_config_schema_get_int(keyfile, origins, "delivery", "smtp_port",
                                 &port, error) ||
      !pst_config_schema_get_string(keyfile, origins, "delivery", "relayhost",
                                    &delivery->relayhost, error) ||
      !pst_config_schema_get_string(keyfile, origins, "delivery",
                                    "relayhost_credentials",
                                    &delivery->relayhost_credentials, error) ||
      !pst_config_schema_get_choice(keyfile, origins, "delivery", "tls", &tls,
                                    error) ||
      !pst_config_schema_get_ms(keyfile, origins, "delivery",
                                "smtp_connect_timeout",
                                &delivery->smtp_connect_timeout_ms, error) ||
      !pst_config_schema_get_ms(keyfile, origins, "delivery", "smtp_timeout",
                                &delivery->smtp_timeout_ms, error) ||
      !pst_config_schema_get_int(keyfile, origins, "delivery",
                                 "destination_concurrency", &concurrency,
                                 error))
    return FALSE;
  delivery->smtp_port = (guint)port;
  delivery->tls = (PstDeliveryTls)tls;
  delivery->destination_concurrency = (guint)concurrency;
  delivery->tls_domains =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) groups = g_key_file_get_groups(keyfile, NULL);
  for (gsize i = 0; groups[i] != NULL; i++) {
    if (!g_str_has_prefix(groups[i], "delivery:") ||
        !g_key_file_has_key(keyfile, groups[i], "tls", NULL))
      continue;
    guint level = 0;
    if (!pst_config_schema_get_choice(keyfile, origins, groups[i], "tls",
                                      &level, error))
      return FALSE;
    g_hash_table_replace(delivery->tls_domains,
                         g_ascii_strdown(groups[i] + strlen("delivery:"), -1),
                         GUINT_TO_POINTER(level + 1));
  }
  return check_relayhost(config, origins, error) &&
         check_absolute(config, origins, "relayhost_credentials",
                        delivery->relayhost_credentials, error);
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
      !pst_config_schema_get_ms(keyfile, origins, "delivery", "delay_warning",
                                &delivery->delay_warning_ms, error) ||
      !pst_config_schema_get_size(keyfile, origins, "delivery",
                                  "bounce_size_limit",
                                  &delivery->bounce_size_limit, error) ||
      !pst_config_schema_get_int(keyfile, origins, "delivery", "max_parallel",
                                 &parallel, error))
    return FALSE;
  delivery->max_parallel = (guint)parallel;
  if (!check_absolute(config, origins, "mailboxes", delivery->mailboxes,
                      error) ||
      !check_absolute(config, origins, "aliases", delivery->aliases, error) ||
      !check_absolute(config, origins, "maildir_root", delivery->maildir_root,
                      error) ||
      !check_lmtp(config, origins, error) ||
      !build_outbound(config, origins, error))
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
  g_clear_pointer(&delivery->relayhost, g_free);
  g_clear_pointer(&delivery->relayhost_host, g_free);
  g_clear_pointer(&delivery->relayhost_credentials, g_free);
  g_clear_pointer(&delivery->tls_domains, g_hash_table_unref);
}
