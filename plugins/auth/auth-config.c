/* auth-config.c - [plugin:auth] read into an immutable, reference-counted
 * AuthConfig, and the options Cyrus SASL reads through SASL_CB_GETOPT.
 * With backend = dovecot the config also owns the DovecotClient for its
 * `socket` (auth-dovecot.c), made here without I/O.
 *
 * Cyrus normally reads /etc/sasl2/APPNAME.conf; here every option it asks
 * for (pwcheck_method, auxprop_plugin, sasldb_path, saslauthd_path,
 * mech_list, log_level) comes from this plugin's group, and anything else
 * gets Cyrus's default, so nothing under /etc/sasl2 needs editing.  Each
 * server connection carries the config it was opened with (its callbacks
 * point at it), so a SIGHUP never changes an exchange in progress.
 *
 * Errors name the group, key, value and the fix; init() then fails and
 * the daemon refuses to start.  Called by auth.c and auth-server.c.
 */
#include <string.h>

#include "auth.h"

static const char *const auth_keys[] = {
    "mechanisms",   "backend", "sasldb_path", "saslauthd_path",
    "service_name", "realm",   "socket",      NULL,
};

#define DEFAULT_MECHANISMS "PLAIN;LOGIN"
#define DEFAULT_SASLDB "/etc/sasldb2"
#define DEFAULT_SASLAUTHD "/run/saslauthd/mux"
#define DEFAULT_DOVECOT_SOCKET "/run/dovecot/auth-client"

/* Mechanisms that need the plaintext password on the server: the only
 * ones saslauthd can check. */
static const char *const plaintext_mechanisms[] = {"PLAIN", "LOGIN", NULL};

static void auth_config_free_contents(AuthConfig *config) {
  g_strfreev(config->mechanisms);
  g_free(config->sasldb_path);
  g_free(config->saslauthd_path);
  g_free(config->service_name);
  g_free(config->realm);
  g_free(config->hostname);
  g_free(config->mech_list);
  g_free(config->usable_plaintext);
  g_free(config->usable_secure);
  g_free(config->dovecot_socket);
  g_clear_pointer(&config->dovecot, dovecot_client_unref);
}

AuthConfig *auth_config_ref(AuthConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void auth_config_unref(AuthConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)auth_config_free_contents);
}

/* --- Cyrus callbacks ------------------------------------------------------ */

static int auth_getopt(void *context, const char *plugin_name,
                       const char *option, const char **result,
                       unsigned *length) {
  const AuthConfig *config = context;
  gboolean sasldb = config->backend == AUTH_BACKEND_SASLDB;
  const char *value = NULL;
  if (strcmp(option, "pwcheck_method") == 0)
    value = sasldb ? "auxprop" : "saslauthd";
  else if (strcmp(option, "auxprop_plugin") == 0 && sasldb)
    value = "sasldb";
  else if (strcmp(option, "sasldb_path") == 0)
    value = config->sasldb_path;
  else if (strcmp(option, "saslauthd_path") == 0)
    value = config->saslauthd_path;
  else if (strcmp(option, "mech_list") == 0)
    value = config->mech_list;
  else if (strcmp(option, "log_level") == 0)
    value = "2"; /* errors and warnings: never SASL_LOG_PASS */
  if (value == NULL)
    return SASL_FAIL; /* Cyrus's default */
  *result = value;
  if (length != NULL)
    *length = strlen(value);
  return SASL_OK;
}

static int auth_log(void *context, int level, const char *message) {
  /* Levels from SASL_LOG_DEBUG on may carry secrets (SASL_LOG_PASS is a
   * password): they are never logged, whatever log_level says. */
  if (level >= SASL_LOG_DEBUG || message == NULL)
    return SASL_OK;
  GLogLevelFlags flags =
      level <= SASL_LOG_WARN ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO;
  pst_plugin_log(auth_plugin(), flags, "cyrus sasl: %s", message);
  return SASL_OK;
}

static void auth_config_set_callbacks(AuthConfig *config) {
  config->callbacks[0] = (sasl_callback_t){
      SASL_CB_GETOPT, (int (*)(void))(void (*)(void))auth_getopt, config};
  config->callbacks[1] = (sasl_callback_t){
      SASL_CB_LOG, (int (*)(void))(void (*)(void))auth_log, config};
  config->callbacks[2] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
}

/* --- Reading the group -----------------------------------------------------
 */

static gboolean auth_key_error(GError **error, const char *group,
                               const char *key, const char *value,
                               const char *expected) {
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] %s = \"%s\": expected %s", group, key, value, expected);
  return FALSE;
}

static gboolean mechanism_is_valid(const char *name) {
  gsize length = strlen(name);
  if (length == 0 || length > 20)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isupper(*p) && !g_ascii_isdigit(*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static gboolean read_mechanisms(AuthConfig *config, GKeyFile *keyfile,
                                const char *group, GError **error) {
  g_auto(GStrv) items = NULL;
  config->mechanisms_set =
      g_key_file_has_key(keyfile, group, "mechanisms", NULL);
  if (!config->mechanisms_set)
    items = g_strsplit(DEFAULT_MECHANISMS, ";", -1);
  else if (!pst_config_get_list(keyfile, group, "mechanisms", &items, error))
    return FALSE;
  GPtrArray *names = g_ptr_array_new();
  for (guint i = 0; items[i] != NULL; i++) {
    g_autofree char *name = g_ascii_strup(g_strstrip(items[i]), -1);
    const char *problem = NULL;
    if (!mechanism_is_valid(name))
      problem = "SASL mechanism names such as PLAIN; LOGIN; SCRAM-SHA-256, "
                "separated by ';'";
    else if (strcmp(name, "ANONYMOUS") == 0 || strcmp(name, "EXTERNAL") == 0)
      problem = "password mechanisms (ANONYMOUS and EXTERNAL are not "
                "supported)";
    else if (config->backend == AUTH_BACKEND_SASLAUTHD &&
             !g_strv_contains(plaintext_mechanisms, name))
      problem = "only PLAIN and LOGIN with backend = saslauthd (it checks "
                "plaintext passwords); use backend = sasldb for CRAM-MD5 "
                "and SCRAM";
    else if (g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
      problem = "each mechanism once";
    if (problem != NULL) {
      g_ptr_array_free(names, TRUE);
      return auth_key_error(error, group, "mechanisms", name, problem);
    }
    g_ptr_array_add(names, g_steal_pointer(&name));
  }
  if (names->len == 0) {
    g_ptr_array_free(names, TRUE);
    return auth_key_error(error, group, "mechanisms", "",
                          "at least one mechanism, such as PLAIN; LOGIN");
  }
  g_ptr_array_add(names, NULL);
  config->mechanisms = (char **)g_ptr_array_free(names, FALSE);
  config->mech_list = g_strjoinv(" ", config->mechanisms);
  return TRUE;
}

static gboolean read_backend(AuthConfig *config, GKeyFile *keyfile,
                             const char *group, GError **error) {
  g_autofree char *backend = NULL;
  if (!pst_config_get_string(keyfile, group, "backend", "sasldb", &backend,
                             error))
    return FALSE;
  if (strcmp(backend, "sasldb") == 0)
    config->backend = AUTH_BACKEND_SASLDB;
  else if (strcmp(backend, "saslauthd") == 0)
    config->backend = AUTH_BACKEND_SASLAUTHD;
  else if (strcmp(backend, "dovecot") == 0)
    config->backend = AUTH_BACKEND_DOVECOT;
  else
    return auth_key_error(error, group, "backend", backend,
                          "sasldb, saslauthd or dovecot");
  return pst_config_get_string(keyfile, group, "sasldb_path", DEFAULT_SASLDB,
                               &config->sasldb_path, error) &&
         pst_config_get_string(keyfile, group, "saslauthd_path",
                               DEFAULT_SASLAUTHD, &config->saslauthd_path,
                               error) &&
         pst_config_get_string(keyfile, group, "socket", DEFAULT_DOVECOT_SOCKET,
                               &config->dovecot_socket, error);
}

/* backend = dovecot: the socket's syntax now; a socket that is not there
 * yet (Dovecot starts later) is a warning. */
static gboolean check_dovecot(AuthConfig *config, GKeyFile *keyfile,
                              const char *group, GError **error) {
  guint64 timeout_ms = 0;
  if (!pst_config_get_duration(keyfile, group, "timeout", 30000, &timeout_ms,
                               error))
    return FALSE;
  g_autoptr(GError) local_error = NULL;
  config->dovecot = dovecot_client_new(
      config->dovecot_socket, (guint)MIN(MAX(timeout_ms, 100), 3600000),
      &local_error);
  if (config->dovecot == NULL)
    return auth_key_error(error, group, "socket", config->dovecot_socket,
                          local_error->message);
  if (g_path_is_absolute(config->dovecot_socket) &&
      !g_file_test(config->dovecot_socket, G_FILE_TEST_EXISTS))
    pst_plugin_log(auth_plugin(), G_LOG_LEVEL_WARNING,
                   "socket %s does not exist (yet): AUTH gets 454 4.7.0 "
                   "until Dovecot runs",
                   config->dovecot_socket);
  return TRUE;
}

/* The backend's file must be there now: a typo is found at start, not at
 * the first login. */
static gboolean check_backend(AuthConfig *config, GKeyFile *keyfile,
                              const char *group, GError **error) {
  if (config->backend == AUTH_BACKEND_DOVECOT)
    return check_dovecot(config, keyfile, group, error);
  if (config->backend == AUTH_BACKEND_SASLDB) {
    if (!g_path_is_absolute(config->sasldb_path))
      return auth_key_error(error, group, "sasldb_path", config->sasldb_path,
                            "an absolute path");
    if (!g_file_test(config->sasldb_path, G_FILE_TEST_IS_REGULAR))
      return auth_key_error(
          error, group, "sasldb_path", config->sasldb_path,
          "an existing sasldb file; create it with \"saslpasswd2 -c -f "
          "PATH -u REALM USER\"");
    return TRUE;
  }
  if (!g_path_is_absolute(config->saslauthd_path))
    return auth_key_error(
        error, group, "saslauthd_path", config->saslauthd_path,
        "the absolute path of saslauthd's socket, such as " DEFAULT_SASLAUTHD);
  if (!g_file_test(config->saslauthd_path, G_FILE_TEST_EXISTS))
    pst_plugin_log(auth_plugin(), G_LOG_LEVEL_WARNING,
                   "saslauthd_path %s does not exist (yet): logins fail "
                   "until saslauthd runs",
                   config->saslauthd_path);
  return TRUE;
}

static gboolean text_is_word(const char *text) {
  for (const char *p = text; *p != '\0'; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return FALSE;
  return text[0] != '\0';
}

static gboolean read_names(AuthConfig *config, GKeyFile *keyfile,
                           const char *group, GError **error) {
  if (!pst_config_get_string(keyfile, group, "service_name", "smtp",
                             &config->service_name, error) ||
      !pst_config_get_string(keyfile, group, "realm", NULL, &config->realm,
                             error) ||
      !pst_config_get_string(keyfile, "server", "hostname", g_get_host_name(),
                             &config->hostname, error))
    return FALSE;
  if (!text_is_word(config->service_name))
    return auth_key_error(error, group, "service_name", config->service_name,
                          "a name without spaces, such as smtp");
  if (config->realm != NULL && config->realm[0] == '\0')
    g_clear_pointer(&config->realm, g_free);
  if (config->realm != NULL && !text_is_word(config->realm))
    return auth_key_error(error, group, "realm", config->realm,
                          "a domain without spaces, such as example.org");
  return TRUE;
}

AuthConfig *auth_config_load(GKeyFile *keyfile, const char *group,
                             GError **error) {
  if (!pst_config_check_keys(keyfile, group, auth_keys, error))
    return NULL;
  g_autoptr(AuthConfig) config = g_atomic_rc_box_new0(AuthConfig);
  auth_config_set_callbacks(config);
  if (!read_backend(config, keyfile, group, error) ||
      !read_mechanisms(config, keyfile, group, error) ||
      !check_backend(config, keyfile, group, error) ||
      !read_names(config, keyfile, group, error))
    return NULL;
  return g_steal_pointer(&config);
}

/* --- What Cyrus offers --------------------------------------------------- */

/* Cyrus's list for the given security flags, or NULL. */
static char *probe_list(sasl_conn_t *conn, unsigned flags) {
  sasl_security_properties_t properties = {.max_ssf = 0,
                                           .security_flags = flags};
  const char *list = NULL;
  unsigned length = 0;
  int count = 0;
  if (sasl_setprop(conn, SASL_SEC_PROPS, &properties) != SASL_OK ||
      sasl_listmech(conn, NULL, "", " ", "", &list, &length, &count) != SASL_OK)
    return NULL;
  return g_strndup(list, length);
}

/* The configured mechanisms found in `offered`, in configured order. */
static char *intersect(char **configured, const char *offered) {
  g_auto(GStrv) words = g_strsplit(offered != NULL ? offered : "", " ", -1);
  g_autoptr(GString) out = g_string_new(NULL);
  for (guint i = 0; configured[i] != NULL; i++) {
    for (guint j = 0; words[j] != NULL; j++) {
      if (g_ascii_strcasecmp(words[j], configured[i]) != 0)
        continue;
      if (out->len > 0)
        g_string_append_c(out, ' ');
      g_string_append(out, configured[i]);
      break;
    }
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}

gboolean auth_config_probe(AuthConfig *config, GError **error) {
  sasl_conn_t *conn = NULL;
  int result =
      sasl_server_new(config->service_name, config->hostname, config->realm,
                      NULL, NULL, config->callbacks, 0, &conn);
  if (result != SASL_OK) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "Cyrus SASL refused a server connection: %s",
                sasl_errstring(result, NULL, NULL));
    return FALSE;
  }
  g_autofree char *all = probe_list(conn, SASL_SEC_NOANONYMOUS);
  g_autofree char *secure =
      probe_list(conn, SASL_SEC_NOANONYMOUS | SASL_SEC_NOPLAINTEXT);
  sasl_dispose(&conn);
  g_free(config->usable_plaintext);
  g_free(config->usable_secure);
  config->usable_plaintext = intersect(config->mechanisms, all);
  config->usable_secure = intersect(config->mechanisms, secure);
  for (guint i = 0; config->mechanisms[i] != NULL; i++) {
    g_auto(GStrv) usable = g_strsplit(config->usable_plaintext, " ", -1);
    if (g_strv_contains((const char *const *)usable, config->mechanisms[i]))
      continue;
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[plugin:auth] mechanisms: Cyrus SASL does not offer %s "
                "(it offers \"%s\"; CRAM-MD5, DIGEST-MD5 and SCRAM come with "
                "the Debian package libsasl2-modules, and need backend = "
                "sasldb); remove it from mechanisms",
                config->mechanisms[i], all != NULL ? all : "");
    return FALSE;
  }
  return TRUE;
}
