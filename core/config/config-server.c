/* config-server.c - the [server] and [dns] sections of a PstConfig.
 *
 * pst_config_build_server() and pst_config_build_dns() read their keys
 * through the schema readers (types, defaults and ranges come from the
 * table in config-schema.c) and then apply the rules a type cannot say: the
 * host name and domains are DNS names (domains are stored as lower-case
 * ASCII, IDNs converted to their xn-- form, duplicates dropped), the spool
 * is an absolute path, the user exists, the banner fits on a reply line,
 * each name server is an IP address with an optional @PORT, and a trust
 * anchor exists when DNSSEC is required.
 *
 * Every refusal goes through pst_config_set_key_error(), so it reads like
 * any other bad value: file, line, group, key, value, what was expected.
 * Called once per load, by pst_config_load() only.
 */
#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "config/config-private.h"

#define BANNER_MAX 400

void pst_config_set_key_error(GError **error, GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              const char *expected) {
  const PstConfigKey *row = pst_config_schema_find(group, key);
  g_autofree char *raw = g_key_file_get_value(keyfile, group, key, NULL);
  const char *shown = NULL;
  if (row != NULL)
    shown = row->shown_default ? row->shown_default : row->fallback;
  pst_config_set_value_error(error, origins, group, key, raw ? raw : "",
                             expected, raw ? shown : NULL);
}

/* The hint for a list item refused because of a separator mistake. */
static const char *separator_hint(const char *item) {
  if (strchr(item, ',') != NULL || strchr(item, ' ') != NULL)
    return "; separate items with ';', not ',' or spaces";
  return "";
}

/* ------------------------------------------------------------------ */
/* [server]                                                            */
/* ------------------------------------------------------------------ */

static char *without_trailing_dot(const char *name) {
  gsize length = strlen(name);
  if (length > 1 && name[length - 1] == '.')
    length--;
  return g_strndup(name, length);
}

static gboolean build_hostname(PstConfig *config,
                               const PstConfigOrigins *origins,
                               GError **error) {
  g_autofree char *name = NULL;
  if (!pst_config_schema_get_string(config->keyfile, origins, "server",
                                    "hostname", &name, error))
    return FALSE;
  if (name == NULL) {
    const char *system = g_get_host_name();
    if (!pst_config_is_dns_name(system)) {
      g_autofree char *where =
          pst_config_origins_describe(origins, "server", "hostname");
      g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_MISSING,
                  "%s[server] hostname: not set, and the system's host name "
                  "\"%s\" is not a valid DNS name; expected a name such as "
                  "mx.example.org: set hostname in [server]",
                  where, system);
      return FALSE;
    }
    name = g_strdup(system);
  } else if (!pst_config_is_dns_name(name)) {
    pst_config_set_key_error(
        error, config->keyfile, origins, "server", "hostname",
        "a host name such as mx.example.org: letters, digits and '-' in "
        "dot-separated labels");
    return FALSE;
  }
  config->server.hostname = without_trailing_dot(name);
  return TRUE;
}

/* One domain in canonical form (lower-case ASCII, no trailing dot), or
 * NULL when it is not a domain name. */
static char *canonical_domain(const char *item) {
  g_autofree char *ascii = g_hostname_to_ascii(item);
  if (ascii == NULL || !pst_config_is_dns_name(ascii))
    return NULL;
  g_autofree char *lower = g_ascii_strdown(ascii, -1);
  return without_trailing_dot(lower);
}

static gboolean build_domains(PstConfig *config,
                              const PstConfigOrigins *origins, GError **error) {
  g_auto(GStrv) items = NULL;
  if (!pst_config_schema_get_list(config->keyfile, origins, "server", "domains",
                                  &items, error))
    return FALSE;
  g_autoptr(GPtrArray) domains =
      g_ptr_array_new_null_terminated(4, g_free, TRUE);
  /* A hosting site may list many thousands: no quadratic duplicate scan. */
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 0; items[i] != NULL; i++) {
    g_autofree char *domain = canonical_domain(items[i]);
    if (domain == NULL) {
      g_autofree char *expected =
          g_strdup_printf("domain names separated by ';' such as example.org; "
                          "example.net (\"%s\" is not a domain name%s)",
                          items[i], separator_hint(items[i]));
      pst_config_set_key_error(error, config->keyfile, origins, "server",
                               "domains", expected);
      return FALSE;
    }
    if (g_hash_table_add(seen, domain))
      g_ptr_array_add(domains, g_steal_pointer(&domain));
  }
  config->server.domains =
      (char **)g_ptr_array_free(g_steal_pointer(&domains), FALSE);
  return TRUE;
}

/* TRUE when the system knows `name` as a user. */
static gboolean user_exists(const char *name, GError **error) {
  struct passwd entry, *found = NULL;
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  g_autofree char *buffer = g_malloc(size > 0 ? size : 16384);
  int status =
      getpwnam_r(name, &entry, buffer, size > 0 ? size : 16384, &found);
  if (status != 0 && status != ENOENT && status != ESRCH) {
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_VALUE, "%s",
                g_strerror(status));
    return FALSE;
  }
  return found != NULL;
}

static gboolean build_user(PstConfig *config, const PstConfigOrigins *origins,
                           GError **error) {
  g_autofree char *user = NULL;
  g_autoptr(GError) local = NULL;
  if (!pst_config_schema_get_string(config->keyfile, origins, "server", "user",
                                    &user, error))
    return FALSE;
  /* "user =" reads as "no user", like the key left out. */
  if (user == NULL || user[0] == '\0')
    return TRUE;
  if (!user_exists(user, &local)) {
    g_autofree char *expected =
        local != NULL
            ? g_strdup_printf("a user name the system knows (looking it up "
                              "failed: %s)",
                              local->message)
            : g_strdup("the name of an existing user (see getent passwd; "
                       "create it with adduser --system)");
    pst_config_set_key_error(error, config->keyfile, origins, "server", "user",
                             expected);
    return FALSE;
  }
  config->server.user = g_steal_pointer(&user);
  return TRUE;
}

static gboolean is_banner(const char *text) {
  gsize length = 0;
  for (const char *p = text; *p; p++, length++)
    if (*p < 0x20 || *p > 0x7e)
      return FALSE;
  return length <= BANNER_MAX;
}

static gboolean build_texts(PstConfig *config, const PstConfigOrigins *origins,
                            GError **error) {
  PstServerConfig *server = &config->server;
  if (!pst_config_schema_get_string(config->keyfile, origins, "server", "spool",
                                    &server->spool, error) ||
      !pst_config_schema_get_string(config->keyfile, origins, "server",
                                    "banner", &server->banner, error))
    return FALSE;
  if (!g_path_is_absolute(server->spool)) {
    pst_config_set_key_error(error, config->keyfile, origins, "server", "spool",
                             "an absolute path such as /var/spool/postilion");
    return FALSE;
  }
  if (!is_banner(server->banner)) {
    g_autofree char *expected = g_strdup_printf(
        "printable ASCII text of at most %d characters (it follows \"220 "
        "HOSTNAME \" on one reply line)",
        BANNER_MAX);
    pst_config_set_key_error(error, config->keyfile, origins, "server",
                             "banner", expected);
    return FALSE;
  }
  return TRUE;
}

/* The limits: ranges come from the schema, so the casts cannot truncate. */
static gboolean build_limits(PstConfig *config, const PstConfigOrigins *origins,
                             GError **error) {
  static const struct {
    const char *key;
    gsize offset;
  } counts[] = {
      {"max_recipients", G_STRUCT_OFFSET(PstServerConfig, max_recipients)},
      {"max_connections", G_STRUCT_OFFSET(PstServerConfig, max_connections)},
      {"max_connections_per_ip",
       G_STRUCT_OFFSET(PstServerConfig, max_connections_per_ip)},
      {"max_errors", G_STRUCT_OFFSET(PstServerConfig, max_errors)},
      {"max_hops", G_STRUCT_OFFSET(PstServerConfig, max_hops)},
      {"auth_max_failures",
       G_STRUCT_OFFSET(PstServerConfig, auth_max_failures)},
      {"auth_failures_per_minute",
       G_STRUCT_OFFSET(PstServerConfig, auth_failures_per_minute)},
  };
  static const struct {
    const char *key;
    gsize offset;
  } timeouts[] = {
      {"timeout_command", G_STRUCT_OFFSET(PstServerConfig, timeout_command_ms)},
      {"timeout_data", G_STRUCT_OFFSET(PstServerConfig, timeout_data_ms)},
      {"timeout_shutdown",
       G_STRUCT_OFFSET(PstServerConfig, timeout_shutdown_ms)},
      {"auth_failure_delay",
       G_STRUCT_OFFSET(PstServerConfig, auth_failure_delay_ms)},
  };
  PstServerConfig *server = &config->server;
  GKeyFile *keyfile = config->keyfile;
  guint64 header_size = 0;
  for (guint i = 0; i < G_N_ELEMENTS(counts); i++) {
    gint64 value = 0;
    if (!pst_config_schema_get_int(keyfile, origins, "server", counts[i].key,
                                   &value, error))
      return FALSE;
    G_STRUCT_MEMBER(guint, server, counts[i].offset) = (guint)value;
  }
  for (guint i = 0; i < G_N_ELEMENTS(timeouts); i++)
    if (!pst_config_schema_get_ms(
            keyfile, origins, "server", timeouts[i].key,
            &G_STRUCT_MEMBER(guint, server, timeouts[i].offset), error))
      return FALSE;
  if (!pst_config_schema_get_size(keyfile, origins, "server",
                                  "max_message_size", &server->max_message_size,
                                  error) ||
      !pst_config_schema_get_size(keyfile, origins, "server", "max_header_size",
                                  &header_size, error))
    return FALSE;
  server->max_header_size = (guint)header_size;
  return TRUE;
}

/* xclient_hosts: CIDR networks, "192.0.2.0/24", "2001:db8::/32", or a
 * single address; GLib refuses host bits set after the prefix. */
static gboolean build_xclient_hosts(PstConfig *config,
                                    const PstConfigOrigins *origins,
                                    GError **error) {
  g_auto(GStrv) items = NULL;
  if (!pst_config_schema_get_list(config->keyfile, origins, "server",
                                  "xclient_hosts", &items, error))
    return FALSE;
  PstServerConfig *server = &config->server;
  server->xclient_hosts = g_ptr_array_new_with_free_func(g_object_unref);
  for (guint i = 0; items[i] != NULL; i++) {
    GInetAddressMask *mask =
        g_inet_address_mask_new_from_string(items[i], NULL);
    if (mask == NULL) {
      g_autofree char *expected = g_strdup_printf(
          "networks separated by ';' such as 192.0.2.0/24; 2001:db8::/32 "
          "(\"%s\" is not an address or a network without host bits%s)",
          items[i], separator_hint(items[i]));
      pst_config_set_key_error(error, config->keyfile, origins, "server",
                               "xclient_hosts", expected);
      return FALSE;
    }
    g_ptr_array_add(server->xclient_hosts, mask);
  }
  return TRUE;
}

gboolean pst_config_is_xclient_host(const PstConfig *config,
                                    const char *address) {
  GPtrArray *hosts = config->server.xclient_hosts;
  if (hosts == NULL || hosts->len == 0)
    return FALSE;
  g_autoptr(GInetAddress) parsed = g_inet_address_new_from_string(address);
  for (guint i = 0; parsed != NULL && i < hosts->len; i++)
    if (g_inet_address_mask_matches(hosts->pdata[i], parsed))
      return TRUE;
  return FALSE;
}

gboolean pst_config_build_server(PstConfig *config,
                                 const PstConfigOrigins *origins,
                                 GError **error) {
  return build_hostname(config, origins, error) &&
         build_domains(config, origins, error) &&
         build_texts(config, origins, error) &&
         build_user(config, origins, error) &&
         build_limits(config, origins, error) &&
         pst_config_schema_get_boolean(config->keyfile, origins, "server",
                                       "reverse_dns",
                                       &config->server.reverse_dns, error) &&
         build_xclient_hosts(config, origins, error);
}

void pst_config_server_clear(PstServerConfig *server) {
  g_clear_pointer(&server->hostname, g_free);
  g_clear_pointer(&server->domains, g_strfreev);
  g_clear_pointer(&server->spool, g_free);
  g_clear_pointer(&server->user, g_free);
  g_clear_pointer(&server->banner, g_free);
  g_clear_pointer(&server->xclient_hosts, g_ptr_array_unref);
}

/* ------------------------------------------------------------------ */
/* [dns]                                                               */
/* ------------------------------------------------------------------ */

gboolean pst_config_parse_nameserver(const char *text, char **problem_r) {
  g_autofree char *address = g_strdup(text);
  char *at = strrchr(address, '@');
  guint64 port = 53;
  if (at != NULL) {
    *at = '\0';
    if (!g_ascii_string_to_unsigned(at + 1, 10, 1, 65535, &port, NULL)) {
      *problem_r = g_strdup_printf("\"%s\" has no port from 1 to 65535 "
                                   "after '@'",
                                   text);
      return FALSE;
    }
  }
  g_autoptr(GInetAddress) parsed = g_inet_address_new_from_string(address);
  if (parsed == NULL) {
    *problem_r = g_strdup_printf("\"%s\" is not an IP address%s", address,
                                 separator_hint(address));
    return FALSE;
  }
  return TRUE;
}

static gboolean build_nameservers(PstConfig *config,
                                  const PstConfigOrigins *origins,
                                  GError **error) {
  g_auto(GStrv) items = NULL;
  if (!pst_config_schema_get_list(config->keyfile, origins, "dns",
                                  "nameservers", &items, error))
    return FALSE;
  for (guint i = 0; items != NULL && items[i] != NULL; i++) {
    g_autofree char *problem = NULL;
    if (!pst_config_parse_nameserver(items[i], &problem)) {
      g_autofree char *expected = g_strdup_printf(
          "IP addresses, each optionally with @PORT, separated by ';' "
          "such as 127.0.0.1; ::1@5353 (%s)",
          problem);
      pst_config_set_key_error(error, config->keyfile, origins, "dns",
                               "nameservers", expected);
      return FALSE;
    }
  }
  /* An empty list means the system's resolvers, like an absent key. */
  if (items != NULL && items[0] != NULL)
    config->dns.nameservers = g_steal_pointer(&items);
  return TRUE;
}

static gboolean check_trust_anchor(PstConfig *config,
                                   const PstConfigOrigins *origins,
                                   GError **error) {
  PstDnsConfig *dns = &config->dns;
  if (!g_path_is_absolute(dns->trust_anchor)) {
    pst_config_set_key_error(error, config->keyfile, origins, "dns",
                             "trust_anchor",
                             "an absolute path such as "
                             "/usr/share/dns/root.key");
    return FALSE;
  }
  if (dns->dnssec == PST_DNSSEC_YES &&
      !g_file_test(dns->trust_anchor, G_FILE_TEST_IS_REGULAR)) {
    g_autofree char *where =
        pst_config_origins_describe(origins, "dns", "trust_anchor");
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_VALUE,
                "%s[dns] trust_anchor = \"%s\": expected an existing file, "
                "since dnssec = yes; install it (Debian: dns-root-data), "
                "name another file, or set dnssec = auto",
                where, dns->trust_anchor);
    return FALSE;
  }
  return TRUE;
}

gboolean pst_config_build_dns(PstConfig *config,
                              const PstConfigOrigins *origins, GError **error) {
  PstDnsConfig *dns = &config->dns;
  GKeyFile *keyfile = config->keyfile;
  gint64 cache_size = 0;
  guint dnssec = 0;
  if (!build_nameservers(config, origins, error) ||
      !pst_config_schema_get_ms(keyfile, origins, "dns", "timeout",
                                &dns->timeout_ms, error) ||
      !pst_config_schema_get_choice(keyfile, origins, "dns", "dnssec", &dnssec,
                                    error) ||
      !pst_config_schema_get_string(keyfile, origins, "dns", "trust_anchor",
                                    &dns->trust_anchor, error) ||
      !pst_config_schema_get_int(keyfile, origins, "dns", "cache_size",
                                 &cache_size, error))
    return FALSE;
  dns->dnssec = (PstDnssecMode)dnssec;
  dns->cache_size = (guint)cache_size;
  return check_trust_anchor(config, origins, error);
}

void pst_config_dns_clear(PstDnsConfig *dns) {
  g_clear_pointer(&dns->nameservers, g_strfreev);
  g_clear_pointer(&dns->trust_anchor, g_free);
}
