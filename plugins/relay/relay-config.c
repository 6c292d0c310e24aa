/* relay-config.c - the relay plugin's settings: [plugin:relay] read into
 * an immutable, reference-counted RelayConfig.
 *
 * relay_config_load() validates every key (unknown keys, CIDR syntax, the
 * DNSBL list, the sender login map file) and names the group, key, value
 * and fix in its error.  Each registered hook holds a reference, so a
 * SIGHUP that loads a new config never changes the rules of a session in
 * progress: the old config lives until its last session ends.
 *
 * Also here, because they are pure and the policy file uses them: the
 * host name checks of reject_invalid_helo_hostname and the sender login
 * map lookup.  Called by relay.c only.
 */
#include <string.h>

#include "relay.h"

static const char *const relay_keys[] = {
    "internal_networks",
    "helo_required",
    "sender_login_required",
    "sender_login_map",
    "reject_invalid_helo_hostname",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_sender",
    "reject_unknown_sender_domain",
    "reject_non_fqdn_recipient",
    "reject_unknown_recipient_domain",
    "reject_relay_tricks",
    "dnsbl",
    NULL,
};

#define DEFAULT_NETWORKS "127.0.0.0/8;::1/128"

static void relay_config_free_contents(RelayConfig *config) {
  g_clear_pointer(&config->networks, g_ptr_array_unref);
  g_clear_pointer(&config->login_map, g_hash_table_unref);
  g_clear_pointer(&config->login_map_path, g_free);
  g_clear_pointer(&config->dnsbl, g_ptr_array_unref);
}

RelayConfig *relay_config_ref(RelayConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void relay_config_unref(RelayConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)relay_config_free_contents);
}

static void dnsbl_zone_free(RelayDnsbl *zone) {
  g_free(zone->zone);
  g_clear_object(&zone->code);
  g_free(zone);
}

/* "10.0.0.0/8", "2001:db8::/32", "192.0.2.1" (a host), "[::1]/128".
 * IPv4 networks also match IPv4-mapped IPv6 clients, because the core
 * gives plugins the unmapped form. */
static GInetAddressMask *parse_network(const char *item) {
  g_autofree char *text = g_strdup(item);
  /* Postfix writes IPv6 networks in brackets: accept both spellings. */
  if (text[0] == '[') {
    char *close = strchr(text, ']');
    if (close == NULL)
      return NULL;
    memmove(close, close + 1, strlen(close + 1) + 1);
    memmove(text, text + 1, strlen(text));
  }
  /* GLib refuses host bits set after the prefix (10.1.2.3/8): more often
   * a typo than meant, so the admin hears of it. */
  g_autoptr(GInetAddressMask) mask =
      g_inet_address_mask_new_from_string(text, NULL);
  if (mask == NULL)
    return NULL;
  /* ::ffff:192.0.2.0/120 means 192.0.2.0/24: clients are compared in
   * their unmapped form, so mapped networks are stored unmapped too. */
  GInetAddress *address = g_inet_address_mask_get_address(mask);
  guint length = g_inet_address_mask_get_length(mask);
  const guint8 *bytes = g_inet_address_to_bytes(address);
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6 &&
      length >= 96 && memcmp(bytes, mapped, 12) == 0) {
    g_autoptr(GInetAddress) v4 =
        g_inet_address_new_from_bytes(bytes + 12, G_SOCKET_FAMILY_IPV4);
    return g_inet_address_mask_new(v4, length - 96, NULL);
  }
  return g_steal_pointer(&mask);
}

static gboolean read_networks(GKeyFile *keyfile, const char *group,
                              RelayConfig *config, GError **error) {
  g_auto(GStrv) items = NULL;
  if (!pst_config_get_list(keyfile, group, "internal_networks", &items, error))
    return FALSE;
  if (items == NULL) {
    /* Absent: the loopback networks, as Postfix's mynetworks_style=host. */
    items = g_strsplit(DEFAULT_NETWORKS, ";", -1);
  }
  config->networks = g_ptr_array_new_with_free_func(g_object_unref);
  for (guint i = 0; items[i] != NULL; i++) {
    GInetAddressMask *mask = parse_network(items[i]);
    if (mask == NULL) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] internal_networks: \"%s\" is not a network; expected "
                  "CIDR networks separated by ';' such as 192.0.2.0/24; "
                  "2001:db8::/32 (no host bits set after the prefix)",
                  group, items[i]);
      return FALSE;
    }
    g_ptr_array_add(config->networks, mask);
  }
  return TRUE;
}

/* "zone" or "zone=127.0.0.2": only that answer counts as listed. */
static gboolean read_dnsbl(GKeyFile *keyfile, const char *group,
                           RelayConfig *config, GError **error) {
  g_auto(GStrv) items = NULL;
  if (!pst_config_get_list(keyfile, group, "dnsbl", &items, error))
    return FALSE;
  config->dnsbl =
      g_ptr_array_new_with_free_func((GDestroyNotify)dnsbl_zone_free);
  for (guint i = 0; items != NULL && items[i] != NULL; i++) {
    RelayDnsbl *zone = g_new0(RelayDnsbl, 1);
    g_ptr_array_add(config->dnsbl, zone);
    char *equals = strchr(items[i], '=');
    zone->zone = g_strndup(items[i], equals ? (gsize)(equals - items[i])
                                            : strlen(items[i]));
    g_strstrip(zone->zone);
    if (equals != NULL)
      zone->code = g_inet_address_new_from_string(g_strstrip(equals + 1));
    if (!relay_hostname_is_valid(zone->zone) ||
        strchr(zone->zone, '.') == NULL ||
        (equals != NULL && (zone->code == NULL ||
                            g_inet_address_get_family(zone->code) !=
                                G_SOCKET_FAMILY_IPV4))) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] dnsbl: \"%s\" is not a DNSBL; expected zones "
                  "separated by ';' such as zen.spamhaus.org, each "
                  "optionally with =ANSWER to count only that answer "
                  "(zen.spamhaus.org=127.0.0.2)",
                  group, items[i]);
      return FALSE;
    }
  }
  return TRUE;
}

/* One line: "ADDRESS-OR-@DOMAIN  OWNER[, OWNER...]"; '#' comments. */
static gboolean parse_login_map_line(GHashTable *map, const char *line) {
  g_autofree char *copy = g_strstrip(g_strdup(line));
  if (copy[0] == '\0' || copy[0] == '#')
    return TRUE;
  char *space = copy + strcspn(copy, " \t");
  if (*space == '\0')
    return FALSE;
  *space = '\0';
  g_auto(GStrv) owners = g_strsplit_set(space + 1, ", \t", -1);
  GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; owners[i] != NULL; i++)
    if (owners[i][0] != '\0')
      g_ptr_array_add(list, g_strdup(owners[i]));
  if (list->len == 0) {
    g_ptr_array_unref(list);
    return FALSE;
  }
  g_hash_table_replace(map, g_ascii_strdown(copy, -1), list);
  return TRUE;
}

static gboolean read_login_map(GKeyFile *keyfile, const char *group,
                               RelayConfig *config, GError **error) {
  if (!pst_config_get_string(keyfile, group, "sender_login_map", NULL,
                             &config->login_map_path, error))
    return FALSE;
  if (config->login_map_path == NULL)
    return TRUE;
  g_autofree char *text = NULL;
  g_autoptr(GError) read_error = NULL;
  if (!g_file_get_contents(config->login_map_path, &text, NULL,
                           &read_error)) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                "[%s] sender_login_map = \"%s\": cannot read it (%s); "
                "expected a readable file of \"ADDRESS OWNER[, OWNER]\" lines",
                group, config->login_map_path, read_error->message);
    return FALSE;
  }
  config->login_map = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    if (!parse_login_map_line(config->login_map, lines[i])) {
      g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                  "%s:%u: (from [%s] sender_login_map) expected \"ADDRESS "
                  "OWNER[, OWNER]\" or \"@DOMAIN OWNER\", found \"%s\"",
                  config->login_map_path, i + 1, group, lines[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean read_switches(GKeyFile *keyfile, const char *group,
                              RelayConfig *config, GError **error) {
  const struct {
    const char *key;
    gboolean *value;
  } switches[] = {
      {"helo_required", &config->helo_required},
      {"sender_login_required", &config->sender_login_required},
      {"reject_invalid_helo_hostname", &config->reject_invalid_helo},
      {"reject_non_fqdn_helo_hostname", &config->reject_non_fqdn_helo},
      {"reject_non_fqdn_sender", &config->reject_non_fqdn_sender},
      {"reject_unknown_sender_domain", &config->reject_unknown_sender},
      {"reject_non_fqdn_recipient", &config->reject_non_fqdn_recipient},
      {"reject_unknown_recipient_domain", &config->reject_unknown_recipient},
      {"reject_relay_tricks", &config->reject_relay_tricks},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(switches); i++)
    if (!pst_config_get_boolean(keyfile, group, switches[i].key, TRUE,
                                switches[i].value, error))
      return FALSE;
  return TRUE;
}

RelayConfig *relay_config_load(GKeyFile *keyfile, const char *group,
                               GError **error) {
  if (!pst_config_check_keys(keyfile, group, relay_keys, error))
    return NULL;
  RelayConfig *config = g_atomic_rc_box_new0(RelayConfig);
  if (!read_switches(keyfile, group, config, error) ||
      !read_networks(keyfile, group, config, error) ||
      !read_dnsbl(keyfile, group, config, error) ||
      !read_login_map(keyfile, group, config, error)) {
    relay_config_unref(config);
    return NULL;
  }
  return config;
}

gboolean relay_config_is_internal(const RelayConfig *config,
                                  GInetAddress *address) {
  for (guint i = 0; i < config->networks->len; i++)
    if (g_inet_address_mask_matches(config->networks->pdata[i], address))
      return TRUE;
  return FALSE;
}

/* --- Pure checks ------------------------------------------------------- */

gboolean relay_hostname_is_valid(const char *name) {
  gsize length = strlen(name);
  if (length == 0 || length > 255)
    return FALSE;
  if (name[length - 1] == '.')
    length--;
  gsize label = 0;
  gboolean all_numeric = TRUE;
  for (gsize i = 0; i <= length; i++) {
    char c = i < length ? name[i] : '.';
    if (c == '.') {
      /* Empty labels, labels over 63 octets, and '-' at either end of a
       * label are what RFC 1035 forbids. */
      if (label == 0 || label > 63 || name[i - 1] == '-' ||
          name[i - label] == '-')
        return FALSE;
      label = 0;
      continue;
    }
    if (!g_ascii_isalnum(c) && c != '-' && c != '_')
      return FALSE;
    if (!g_ascii_isdigit(c))
      all_numeric = FALSE;
    label++;
  }
  /* "1.2.3.4" is an address, not a name; Postfix calls an all-numeric
   * name invalid, and so do we (bare addresses are checked apart). */
  return !all_numeric;
}

gboolean relay_helo_is_valid(const char *helo) {
  gsize length = strlen(helo);
  if (length >= 2 && helo[0] == '[' && helo[length - 1] == ']') {
    g_autofree char *inner = g_strndup(helo + 1, length - 2);
    const char *address = inner;
    if (g_ascii_strncasecmp(inner, "IPv6:", 5) == 0)
      address = inner + 5;
    else if (strchr(inner, ':') != NULL)
      return FALSE; /* RFC 5321: IPv6 literals carry the tag */
    g_autoptr(GInetAddress) parsed = g_inet_address_new_from_string(address);
    return parsed != NULL;
  }
  g_autoptr(GInetAddress) bare = g_inet_address_new_from_string(helo);
  return bare != NULL || relay_hostname_is_valid(helo);
}

gboolean relay_helo_is_fqdn(const char *helo) {
  if (helo[0] == '[')
    return TRUE; /* an address literal is as qualified as it gets */
  g_autoptr(GInetAddress) bare = g_inet_address_new_from_string(helo);
  if (bare != NULL)
    return TRUE;
  const char *dot = strchr(helo, '.');
  return dot != NULL && dot[1] != '\0';
}

gboolean relay_login_owns(const RelayConfig *config, const char *sender,
                          const char *user) {
  g_autofree char *lower = g_ascii_strdown(sender, -1);
  GPtrArray *owners = g_hash_table_lookup(config->login_map, lower);
  const char *at = strrchr(lower, '@');
  if (owners == NULL && at != NULL)
    owners = g_hash_table_lookup(config->login_map, at);
  if (owners == NULL)
    return FALSE;
  for (guint i = 0; i < owners->len; i++)
    if (strcmp(owners->pdata[i], user) == 0)
      return TRUE;
  return FALSE;
}
