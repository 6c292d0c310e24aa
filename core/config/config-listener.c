/* config-listener.c - the [listener:NAME] sections of a PstConfig.
 *
 * pst_config_build_listeners() reads each [listener:NAME] group in keyfile
 * order: the name ([A-Za-z0-9_-]+, unique ignoring case), the address (a literal IP and port, parsed by the pure
 * pst_config_parse_address(); no two listeners on the same one), the mode,
 * the TLS and AUTH requirements, and the listener's plugin chain, whose
 * names must be loaded.  At least one listener must exist.
 *
 * Called once per load, by pst_config_load() only, after
 * pst_config_build_plugins() (config-plugins.c).
 */
#include <string.h>

#include <gio/gio.h>

#include "config/config-private.h"

#define NAME_MAX_LENGTH 64

gboolean pst_config_is_name(const char *name, gboolean upper_allowed) {
  gsize length = strlen(name);
  if (length == 0 || length > NAME_MAX_LENGTH)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!(g_ascii_isdigit(*p) || g_ascii_islower(*p) || *p == '_' ||
          *p == '-' || (upper_allowed && g_ascii_isupper(*p))))
      return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* The host part must be a literal address of `family`. */
static GInetAddress *parse_host(const char *host, GSocketFamily family,
                                char **problem_r) {
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string(host);
  if (address == NULL) {
    gboolean name_like = pst_config_is_dns_name(host);
    *problem_r = g_strdup_printf(
        "\"%s\" is not %s", host,
        name_like ? "a literal IP address; host names are not resolved"
                  : "an IP address");
    return NULL;
  }
  if (g_inet_address_get_family(address) != family) {
    *problem_r = g_strdup_printf(
        family == G_SOCKET_FAMILY_IPV6
            ? "\"%s\" in brackets is not an IPv6 address"
            : "\"%s\" is an IPv6 address: write it in brackets, [::1]:25",
        host);
    return NULL;
  }
  return g_steal_pointer(&address);
}

gboolean pst_config_parse_address(const char *text, char **host_r,
                                  guint16 *port_r, char **problem_r) {
  g_autofree char *copy = g_strstrip(g_strdup(text));
  g_autofree char *host = NULL;
  const char *port_text = NULL;
  GSocketFamily family = G_SOCKET_FAMILY_IPV4;
  if (copy[0] == '[') {
    char *close = strchr(copy, ']');
    if (close == NULL || close[1] != ':') {
      *problem_r = g_strdup("write an IPv6 address as [ADDRESS]:PORT");
      return FALSE;
    }
    host = g_strndup(copy + 1, close - copy - 1);
    port_text = close + 2;
    family = G_SOCKET_FAMILY_IPV6;
  } else {
    char *colon = strrchr(copy, ':');
    if (colon == NULL) {
      *problem_r = g_strdup("the port is missing");
      return FALSE;
    }
    host = g_strndup(copy, colon - copy);
    port_text = colon + 1;
    /* "::1:25" is ambiguous; "[::1]:25" is not. */
    if (strchr(host, ':') != NULL)
      family = G_SOCKET_FAMILY_IPV6;
  }
  guint64 port = 0;
  if (!g_ascii_string_to_unsigned(port_text, 10, 1, 65535, &port, NULL)) {
    *problem_r =
        g_strdup_printf("\"%s\" is not a port from 1 to 65535", port_text);
    return FALSE;
  }
  if (family == G_SOCKET_FAMILY_IPV6 && copy[0] != '[') {
    *problem_r = g_strdup_printf("write an IPv6 address in brackets, "
                                 "[%s]:%s",
                                 host, port_text);
    return FALSE;
  }
  g_autoptr(GInetAddress) address = parse_host(host, family, problem_r);
  if (address == NULL)
    return FALSE;
  *host_r = g_inet_address_to_string(address);
  *port_r = (guint16)port;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* [listener:NAME]                                                     */
/* ------------------------------------------------------------------ */

/* A listener's own error about its group (not one key). */
static void set_group_error(GError **error, const PstConfigOrigins *origins,
                            gint code, const char *group, const char *message) {
  g_autofree char *where = pst_config_origins_describe(origins, group, NULL);
  g_set_error(error, PST_CONFIG_ERROR, code, "%s[%s]: %s", where, group,
              message);
}

static gboolean check_name(const PstConfig *config,
                           const PstConfigOrigins *origins, const char *group,
                           const char *name, GError **error) {
  if (!pst_config_is_name(name, TRUE)) {
    g_autofree char *message = g_strdup_printf(
        "\"%s\" is not a listener name; expected letters, digits, '_' and "
        "'-' ([listener:smtp]); fix the group name",
        name);
    set_group_error(error, origins, PST_CONFIG_ERROR_VALUE, group, message);
    return FALSE;
  }
  for (guint i = 0; i < config->listeners->len; i++) {
    const PstListenerConfig *other = config->listeners->pdata[i];
    if (g_ascii_strcasecmp(other->name, name) != 0)
      continue;
    g_autofree char *message = g_strdup_printf(
        "expected a listener name of its own, but [listener:%s] has the "
        "same name (names are compared ignoring case); rename one",
        other->name);
    set_group_error(error, origins, PST_CONFIG_ERROR_VALUE, group, message);
    return FALSE;
  }
  return TRUE;
}

static gboolean read_address(const PstConfig *config, const char *group,
                             const PstConfigOrigins *origins,
                             PstListenerConfig *listener, GError **error) {
  if (!pst_config_schema_get_string(config->keyfile, origins, group, "address",
                                    &listener->address, error))
    return FALSE;
  if (listener->address == NULL) {
    set_group_error(error, origins, PST_CONFIG_ERROR_MISSING, group,
                    "the key address is missing; expected a literal IP "
                    "address and port; add for example address = 0.0.0.0:25");
    return FALSE;
  }
  g_autofree char *problem = NULL;
  if (!pst_config_parse_address(listener->address, &listener->host,
                                &listener->port, &problem)) {
    g_autofree char *expected =
        g_strdup_printf("a literal IP address and port such as 0.0.0.0:25, "
                        "127.0.0.1:2525 or [::1]:2525 (%s)",
                        problem);
    pst_config_set_key_error(error, config->keyfile, origins, group, "address",
                             expected);
    return FALSE;
  }
  for (guint i = 0; i < config->listeners->len; i++) {
    const PstListenerConfig *other = config->listeners->pdata[i];
    if (other->port != listener->port ||
        strcmp(other->host, listener->host) != 0)
      continue;
    g_autofree char *expected = g_strdup_printf(
        "an address no other listener uses ([listener:%s] has it)",
        other->name);
    pst_config_set_key_error(error, config->keyfile, origins, group, "address",
                             expected);
    return FALSE;
  }
  return TRUE;
}

/* `plugins`: each a loaded plugin, each once.  Absent: all of them. */
static gboolean read_chain(const PstConfig *config, const char *group,
                           const PstConfigOrigins *origins,
                           PstListenerConfig *listener, GError **error) {
  if (!pst_config_schema_get_list(config->keyfile, origins, group, "plugins",
                                  &listener->plugins, error))
    return FALSE;
  for (guint i = 0; listener->plugins && listener->plugins[i]; i++) {
    const char *name = listener->plugins[i];
    g_autofree char *problem = NULL;
    if (pst_config_find_plugin(config, name) == NULL)
      problem = g_strdup_printf("\"%s\" is not in [plugins] load%s", name,
                                strchr(name, ',') || strchr(name, ' ')
                                    ? "; separate names with ';'"
                                    : "");
    else if (g_strv_contains((const char *const *)listener->plugins + i + 1,
                             name))
      problem = g_strdup_printf("\"%s\" is listed twice", name);
    if (problem == NULL)
      continue;
    g_autofree char *expected = g_strdup_printf(
        "names of loaded plugins separated by ';', each once (%s)", problem);
    pst_config_set_key_error(error, config->keyfile, origins, group, "plugins",
                             expected);
    return FALSE;
  }
  return TRUE;
}

static gboolean read_mode(const PstConfig *config, const char *group,
                          const PstConfigOrigins *origins,
                          PstListenerConfig *listener, GError **error) {
  guint mode = 0;
  if (!pst_config_schema_get_choice(config->keyfile, origins, group, "mode",
                                    &mode, error) ||
      !pst_config_schema_get_boolean(config->keyfile, origins, group,
                                     "require_auth", &listener->require_auth,
                                     error) ||
      !pst_config_schema_get_boolean(config->keyfile, origins, group,
                                     "require_tls", &listener->require_tls,
                                     error) ||
      !pst_config_schema_get_boolean(config->keyfile, origins, group,
                                     "proxy_protocol",
                                     &listener->proxy_protocol, error) ||
      !pst_config_schema_get_boolean(config->keyfile, origins, group,
                                     "allow_plaintext_auth",
                                     &listener->allow_plaintext_auth, error) ||
      !pst_config_schema_get_boolean(config->keyfile, origins, group,
                                     "strict_envelopes",
                                     &listener->strict_envelopes, error))
    return FALSE;
  listener->mode = (PstListenerMode)mode;
  /* A plain listener can never become encrypted: no mail would pass. */
  if (listener->require_tls && listener->mode == PST_LISTENER_MODE_PLAIN) {
    pst_config_set_key_error(error, config->keyfile, origins, group,
                             "require_tls",
                             "false on a listener with mode = plain (set "
                             "mode = starttls or tls to require TLS)");
    return FALSE;
  }
  return TRUE;
}

static gboolean read_listener(PstConfig *config,
                              const PstConfigOrigins *origins,
                              const char *group, GError **error) {
  const char *name = group + strlen("listener:");
  if (!check_name(config, origins, group, name, error))
    return FALSE;
  PstListenerConfig *listener = g_new0(PstListenerConfig, 1);
  listener->name = g_strdup(name);
  if (!read_address(config, group, origins, listener, error) ||
      !read_mode(config, group, origins, listener, error) ||
      !read_chain(config, group, origins, listener, error)) {
    pst_config_listener_free(listener);
    return FALSE;
  }
  g_ptr_array_add(config->listeners, listener);
  return TRUE;
}

gboolean pst_config_build_listeners(PstConfig *config,
                                    const PstConfigOrigins *origins,
                                    GError **error) {
  g_auto(GStrv) groups = g_key_file_get_groups(config->keyfile, NULL);
  config->listeners =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_config_listener_free);
  for (guint i = 0; groups[i] != NULL; i++)
    if (g_str_has_prefix(groups[i], "listener:") &&
        !read_listener(config, origins, groups[i], error))
      return FALSE;
  if (config->listeners->len > 0)
    return TRUE;
  g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_MISSING,
              "%s: no listener is configured; expected at least one "
              "[listener:NAME] group; add for example \"[listener:smtp]\" "
              "with \"address = 0.0.0.0:25\" (see postilion.conf(5))",
              config->path);
  return FALSE;
}

void pst_config_listener_free(PstListenerConfig *listener) {
  g_free(listener->name);
  g_free(listener->address);
  g_free(listener->host);
  g_strfreev(listener->plugins);
  g_free(listener);
}
