/* transport-listeners.c - the start-up rule that a listener needing TLS
 * has a TLS provider: mode = tls, or require_tls = true, with no plugin of
 * `[plugins] load` providing TLS stops the daemon (start, reload,
 * --check) with the listener and the fix named.  Called after the plugins
 * of `config` started.  Apart from transport.c so that the unit tests of
 * the transport and the hooks need no configuration module.
 */
#include "transport/transport.h"

gboolean pst_transport_check_listeners(const PstConfig *config,
                                       PstTransportService *service,
                                       GError **error) {
  /* The new configuration decides, whatever plugins older sets keep
   * loaded. */
  const char *provider = pst_transport_service_get_name(service);
  if (provider != NULL && pst_config_find_plugin(config, provider) != NULL)
    return TRUE;
  for (guint i = 0; i < config->listeners->len; i++) {
    const PstListenerConfig *listener = config->listeners->pdata[i];
    if (listener->mode != PST_LISTENER_MODE_TLS && !listener->require_tls)
      continue;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "%s: [listener:%s] %s needs TLS, but no plugin provides it; "
                "add tls to [plugins] load (with [plugin:tls] certificate "
                "and private_key)",
                config->path, listener->name,
                listener->mode == PST_LISTENER_MODE_TLS ? "mode = tls"
                                                        : "require_tls = true");
    return FALSE;
  }
  return TRUE;
}
