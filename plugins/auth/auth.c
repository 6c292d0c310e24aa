/* auth.c - the auth plugin: SMTP AUTH with Cyrus SASL or Dovecot's auth
 * service (README.md).
 *
 * init() reads [plugin:auth], initialises Cyrus SASL once for the process
 * (server and client, with GLib mutexes and our GETOPT/LOG callbacks, so
 * no /etc/sasl2 file is read), probes which configured mechanisms Cyrus
 * can offer, starts the worker thread and provides the SASL service to
 * the core.  reload() reads the group again: new connections use the new
 * config, exchanges in progress keep theirs.  shutdown() stops the worker
 * (after its queued jobs) and finishes Cyrus.
 *
 * The plugin registers no hooks: the core owns the AUTH command and runs
 * the AUTH stage for other plugins (relay) after a success.
 */
#include <string.h>

#include "auth.h"

static PstPlugin *the_plugin;
static GMutex cyrus_lock;
static gboolean cyrus_initialised;
static AuthConfig *service_config; /* owned: the client side's */

static const PstSaslFuncs auth_funcs = {
    .struct_size = sizeof(PstSaslFuncs),
    .open = auth_server_open,
    .list_mechanisms = auth_server_list,
    .start = auth_server_start,
    .step = auth_server_step,
    .close = auth_server_close,
    .client_open = auth_client_open,
    .client_start = auth_client_start,
    .client_step = auth_client_step,
    .client_close = auth_client_close,
};

PstPlugin *auth_plugin(void) {
  return the_plugin;
}

void auth_cyrus_lock(void) {
  g_mutex_lock(&cyrus_lock);
}

void auth_cyrus_unlock(void) {
  g_mutex_unlock(&cyrus_lock);
}

/* --- Cyrus's mutexes are GLib's ------------------------------------------- */

static void *mutex_alloc(void) {
  GMutex *mutex = g_new0(GMutex, 1);
  g_mutex_init(mutex);
  return mutex;
}

static int mutex_lock(void *mutex) {
  g_mutex_lock(mutex);
  return SASL_OK;
}

static int mutex_unlock(void *mutex) {
  g_mutex_unlock(mutex);
  return SASL_OK;
}

static void mutex_free(void *mutex) {
  g_mutex_clear(mutex);
  g_free(mutex);
}

/* Once per process, before any thread uses Cyrus. */
static gboolean auth_cyrus_init(AuthConfig *config, GError **error) {
  if (cyrus_initialised)
    return TRUE;
  sasl_set_mutex(mutex_alloc, mutex_lock, mutex_unlock, mutex_free);
  /* The global callbacks see the first config; connections carry their
   * own, which Cyrus asks first. */
  static sasl_callback_t callbacks[3];
  memcpy(callbacks, config->callbacks, sizeof callbacks);
  int result = sasl_server_init(callbacks, config->service_name);
  if (result == SASL_OK)
    result = sasl_client_init(NULL);
  if (result != SASL_OK) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "Cyrus SASL failed to start: %s",
                sasl_errstring(result, NULL, NULL));
    return FALSE;
  }
  cyrus_initialised = TRUE;
  return TRUE;
}

/* Loads and probes a config; the caller installs it. */
static AuthConfig *auth_load(GKeyFile *keyfile, const char *group,
                             GError **error) {
  g_autoptr(AuthConfig) config = auth_config_load(keyfile, group, error);
  if (config == NULL || !auth_cyrus_init(config, error))
    return NULL;
  if (config->backend == AUTH_BACKEND_DOVECOT) {
    dovecot_client_connect(config->dovecot);
    return g_steal_pointer(&config);
  }
  auth_cyrus_lock();
  gboolean ok = auth_config_probe(config, error);
  auth_cyrus_unlock();
  return ok ? g_steal_pointer(&config) : NULL;
}

/* "backend sasldb, ..." at start, "reloaded: backend ..." after SIGHUP. */
static void auth_log_config(AuthConfig *config, const char *prefix) {
  if (config->backend == AUTH_BACKEND_DOVECOT) {
    pst_plugin_log(the_plugin, G_LOG_LEVEL_INFO,
                   "%sbackend dovecot, socket %s, mechanisms %s", prefix,
                   config->dovecot_socket,
                   config->mechanisms_set ? config->mech_list
                                          : "as Dovecot offers them");
    return;
  }
  pst_plugin_log(
      the_plugin, G_LOG_LEVEL_INFO,
      "%sbackend %s, mechanisms over TLS: %s; without TLS: %s", prefix,
      config->backend == AUTH_BACKEND_SASLDB ? "sasldb" : "saslauthd",
      config->usable_plaintext,
      config->usable_secure[0] != '\0' ? config->usable_secure : "none");
}

static void auth_install(AuthConfig *config) {
  auth_server_set_config(config);
  if (service_config != NULL)
    auth_config_unref(service_config);
  service_config = auth_config_ref(config);
  auth_log_config(config, "");
}

static gboolean auth_init(PstPlugin *plugin, GKeyFile *keyfile,
                          const char *group, GError **error) {
  the_plugin = plugin;
  g_autoptr(AuthConfig) config = auth_load(keyfile, group, error);
  if (config == NULL || !auth_server_start_worker(error))
    return FALSE;
  auth_install(config);
  /* The client side reads the config through `data`: the one installed
   * at init, which holds the service name. */
  return pst_plugin_provide_sasl(plugin, &auth_funcs, service_config);
}

static gboolean auth_reload(PstPlugin *plugin, GKeyFile *keyfile,
                            const char *group, GError **error) {
  g_autoptr(AuthConfig) config = auth_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  auth_server_set_config(config);
  auth_log_config(config, "reloaded: ");
  return TRUE;
}

static void auth_shutdown(PstPlugin *plugin) {
  auth_server_stop_worker();
  if (cyrus_initialised) {
    sasl_server_done();
    sasl_client_done();
    cyrus_initialised = FALSE;
  }
  g_clear_pointer(&service_config, auth_config_unref);
  the_plugin = NULL;
}

POSTILION_PLUGIN_DEFINE("auth", "1.0",
                        "SMTP AUTH with Cyrus SASL (sasldb or saslauthd) "
                        "or Dovecot's auth service",
                        auth_init, auth_shutdown, auth_reload);
