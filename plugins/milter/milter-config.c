/* milter-config.c - [plugin:milter] and one [plugin:milter:NAME] group per
 * milter, read into an immutable, reference-counted MilterConfig.
 *
 * Every key is checked at start and on SIGHUP; an error names the group,
 * the key, the value and the form expected, and the daemon refuses to
 * start.  The macro lists start as Postfix's milter_*_macros defaults;
 * `macros` replaces the list of each stage it names.  Called by milter.c
 * (init, reload) and the unit tests.
 */
#include <string.h>

#include <gio/gunixsocketaddress.h>

#include "milter.h"

static const char *const milter_keys[] = {"milters", NULL};
static const char *const milter_spec_keys[] = {
    "socket",         "connect_timeout", "command_timeout",
    "eom_timeout",    "default_action",  "macros",
    NULL,
};

/* Postfix 3's defaults, stage by stage (postconf -d milter_*_macros). */
static const char *const default_macros[MILTER_MACROS_COUNT] = {
    [MILTER_MACROS_CONNECT] = "j {daemon_name} {daemon_addr} v _",
    [MILTER_MACROS_HELO] =
        "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    [MILTER_MACROS_MAIL] = "i {auth_type} {auth_authen} {auth_author} "
                           "{mail_addr} {mail_host} {mail_mailer}",
    [MILTER_MACROS_RCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [MILTER_MACROS_DATA] = "i",
    [MILTER_MACROS_EOM] = "i",
    [MILTER_MACROS_EOH] = "i",
};

static const char *const macro_stage_names[MILTER_MACROS_COUNT] = {
    [MILTER_MACROS_CONNECT] = "connect", [MILTER_MACROS_HELO] = "helo",
    [MILTER_MACROS_MAIL] = "mail",       [MILTER_MACROS_RCPT] = "rcpt",
    [MILTER_MACROS_DATA] = "data",       [MILTER_MACROS_EOM] = "eom",
    [MILTER_MACROS_EOH] = "eoh",
};

static void milter_spec_free(MilterSpec *spec) {
  g_free(spec->name);
  g_free(spec->socket);
  g_clear_object(&spec->address);
  for (int i = 0; i < MILTER_MACROS_COUNT; i++)
    g_strfreev(spec->macros[i]);
  g_free(spec);
}

static void milter_config_free_contents(MilterConfig *config) {
  g_clear_pointer(&config->milters, g_ptr_array_unref);
  g_clear_pointer(&config->hostname, g_free);
}

MilterConfig *milter_config_ref(MilterConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void milter_config_unref(MilterConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)milter_config_free_contents);
}

GSocketConnectable *milter_config_parse_socket(const char *socket) {
  if (g_str_has_prefix(socket, "unix:")) {
    const char *path = socket + 5;
    if (path[0] != '/' || strlen(path) >= 108)
      return NULL;
    return G_SOCKET_CONNECTABLE(g_unix_socket_address_new(path));
  }
  if (!g_str_has_prefix(socket, "inet:"))
    return NULL;
  const char *rest = socket + 5;
  const char *colon = strrchr(rest, ':');
  if (colon == NULL || colon == rest || colon[1] == '\0')
    return NULL;
  for (const char *p = colon + 1; *p != '\0'; p++)
    if (!g_ascii_isdigit(*p))
      return NULL;
  guint64 port = g_ascii_strtoull(colon + 1, NULL, 10);
  if (port == 0 || port > 65535)
    return NULL;
  g_autofree char *host = g_strndup(rest, colon - rest);
  /* Postfix writes IPv6 as inet:[::1]:port; so do we. */
  gsize length = strlen(host);
  if (host[0] == '[') {
    if (length < 3 || host[length - 1] != ']')
      return NULL;
    host[length - 1] = '\0';
    memmove(host, host + 1, length - 1);
  } else if (strchr(host, ':') != NULL) {
    return NULL;
  }
  return g_network_address_new(host, (guint16)port);
}

gboolean milter_config_parse_macros(const char *item, MilterSpec *spec,
                                    GError **error) {
  const char *equals = strchr(item, '=');
  g_autofree char *stage =
      g_strstrip(g_strndup(item, equals ? (gsize)(equals - item) : 0));
  for (int i = 0; equals != NULL && i < MILTER_MACROS_COUNT; i++) {
    if (g_ascii_strcasecmp(stage, macro_stage_names[i]) != 0)
      continue;
    g_autofree char *names = g_strstrip(g_strdup(equals + 1));
    g_strfreev(spec->macros[i]);
    spec->macros[i] = g_strsplit_set(names, " \t", -1);
    /* Drop the empty words of repeated blanks. */
    guint kept = 0;
    for (guint j = 0; spec->macros[i][j] != NULL; j++) {
      if (spec->macros[i][j][0] == '\0')
        g_free(spec->macros[i][j]);
      else
        spec->macros[i][kept++] = spec->macros[i][j];
    }
    spec->macros[i][kept] = NULL;
    return TRUE;
  }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "\"%s\" is not STAGE=NAMES with STAGE one of connect, helo, "
              "mail, rcpt, data, eoh, eom",
              item);
  return FALSE;
}

/* `macros`: a list of "stage=names" items. */
static gboolean spec_load_macros(GKeyFile *keyfile, const char *group,
                                 MilterSpec *spec, GError **error) {
  for (int i = 0; i < MILTER_MACROS_COUNT; i++)
    spec->macros[i] = g_strsplit(default_macros[i], " ", -1);
  g_auto(GStrv) items = NULL;
  if (!pst_config_get_list(keyfile, group, "macros", &items, error))
    return FALSE;
  for (guint i = 0; items != NULL && items[i] != NULL; i++) {
    if (!milter_config_parse_macros(items[i], spec, error)) {
      g_prefix_error(error, "[%s] macros: ", group);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean spec_load_default_action(GKeyFile *keyfile, const char *group,
                                         MilterSpec *spec, GError **error) {
  g_autofree char *action = NULL;
  if (!pst_config_get_string(keyfile, group, "default_action", "tempfail",
                             &action, error))
    return FALSE;
  static const char *const names[] = {"accept", "tempfail", "reject"};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    if (g_ascii_strcasecmp(action, names[i]) == 0) {
      spec->default_action = (MilterDefault)i;
      return TRUE;
    }
  }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] default_action = %s: expected accept, tempfail or reject",
              group, action);
  return FALSE;
}

/* Durations as milliseconds, 1 ms to 1 h. */
static gboolean spec_load_timeout(GKeyFile *keyfile, const char *group,
                                  const char *key, guint64 fallback_ms,
                                  guint *value_r, GError **error) {
  guint64 value = 0;
  if (!pst_config_get_duration(keyfile, group, key, fallback_ms, &value,
                               error))
    return FALSE;
  if (value == 0 || value > 3600 * 1000) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] %s: expected a duration from 1ms to 1h", group, key);
    return FALSE;
  }
  *value_r = (guint)value;
  return TRUE;
}

static MilterSpec *spec_load(GKeyFile *keyfile, const char *name,
                             GError **error) {
  g_autofree char *group = g_strconcat("plugin:milter:", name, NULL);
  MilterSpec *spec = g_new0(MilterSpec, 1);
  spec->name = g_strdup(name);
  g_autoptr(GPtrArray) owner =
      g_ptr_array_new_with_free_func((GDestroyNotify)milter_spec_free);
  g_ptr_array_add(owner, spec);
  if (!g_key_file_has_group(keyfile, group)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                "[plugin:milter] milters names \"%s\" but there is no "
                "[%s] group with its socket",
                name, group);
    return NULL;
  }
  if (!pst_config_check_keys(keyfile, group, milter_spec_keys, error) ||
      !pst_config_get_string(keyfile, group, "socket", NULL, &spec->socket,
                             error) ||
      !spec_load_timeout(keyfile, group, "connect_timeout", 30000,
                         &spec->connect_timeout_ms, error) ||
      !spec_load_timeout(keyfile, group, "command_timeout", 30000,
                         &spec->command_timeout_ms, error) ||
      !spec_load_timeout(keyfile, group, "eom_timeout", 300000,
                         &spec->eom_timeout_ms, error) ||
      !spec_load_default_action(keyfile, group, spec, error) ||
      !spec_load_macros(keyfile, group, spec, error))
    return NULL;
  spec->address =
      spec->socket != NULL ? milter_config_parse_socket(spec->socket) : NULL;
  if (spec->address == NULL) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] socket = %s: expected inet:HOST:PORT or unix:/PATH",
                group, spec->socket ? spec->socket : "(missing)");
    return NULL;
  }
  return g_ptr_array_steal_index(owner, 0);
}

static gboolean name_is_valid(const char *name) {
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return name[0] != '\0';
}

/* The milters of `milters`, each once. */
static gboolean config_load_milters(GKeyFile *keyfile, const char *group,
                                    MilterConfig *config, GError **error) {
  g_auto(GStrv) names = NULL;
  if (!pst_config_get_list(keyfile, group, "milters", &names, error))
    return FALSE;
  for (guint i = 0; names != NULL && names[i] != NULL; i++) {
    g_strstrip(names[i]);
    if (!name_is_valid(names[i]) ||
        g_strv_contains((const char *const *)names + i + 1, names[i])) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] milters: \"%s\" is repeated or not a name "
                  "([A-Za-z0-9._-]+)",
                  group, names[i]);
      return FALSE;
    }
    MilterSpec *spec = spec_load(keyfile, names[i], error);
    if (spec == NULL)
      return FALSE;
    g_ptr_array_add(config->milters, spec);
  }
  return TRUE;
}

MilterConfig *milter_config_load(GKeyFile *keyfile, const char *group,
                                 GError **error) {
  g_autoptr(MilterConfig) config = g_atomic_rc_box_new0(MilterConfig);
  config->milters =
      g_ptr_array_new_with_free_func((GDestroyNotify)milter_spec_free);
  if (!pst_config_check_keys(keyfile, group, milter_keys, error) ||
      !config_load_milters(keyfile, group, config, error) ||
      !pst_config_get_string(keyfile, "server", "hostname", g_get_host_name(),
                             &config->hostname, error))
    return NULL;
  return g_steal_pointer(&config);
}
