/* services.c - what plugins provide to the core besides hooks: TLS (the
 * transport provider), SASL (server and client sides) and the signer of
 * the daemon's own mail.
 *
 * One shape for every service: the plugin calls pst_plugin_provide_*()
 * from init() (or reload()), which checks the function table and records
 * it with its data on the plugin (pst_plugin_provide()); a configuration
 * generation then asks its own plugin set for its providers
 * (pst_plugin_set_get_transport(), _get_sasl_client(), _get_signer(),
 * and pst_plugin_set_find_sasl() per listener).  No provider lives in a
 * process-wide slot, so a reload that loads or drops a provider changes
 * only the generations made after it; whoever uses a provider holds a
 * reference to its plugin (through the generation, a transport service or
 * a SASL client), so its code stays loaded.
 *
 * The SDK functions that have no generation to ask (a plugin or tool
 * calling pst_transport_new_tls_client()) use the provider among the
 * plugins alive (pst_plugin_find_live_provider()).
 *
 * Main thread only, except pst_signer_sign() (any thread holding a
 * reference to the generation whose signer it is).
 */
#include <string.h>

#include "hooks/hooks-private.h"
#include "transport/transport.h"

void pst_plugin_provide(PstPlugin *plugin, PstServiceKind kind,
                        gconstpointer funcs, gpointer data) {
  g_return_if_fail((guint)kind < PST_SERVICE_COUNT);
  plugin->provided[kind].funcs = funcs;
  plugin->provided[kind].data = funcs != NULL ? data : NULL;
}

/* --- Transport (TLS) ---------------------------------------------------- */

PST_API gboolean pst_plugin_provide_transport(
    PstPlugin *plugin, const PstTransportProvider *provider,
    gpointer provider_data, GError **error) {
  g_return_val_if_fail(plugin != NULL && provider != NULL, FALSE);
  if (!pst_transport_provider_check(provider, error))
    return FALSE;
  PstPlugin *other =
      pst_plugin_find_live_provider(PST_SERVICE_TRANSPORT, plugin);
  if (other != NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                "plugin \"%s\" already provides TLS; load only one TLS "
                "plugin in [plugins] load",
                other->name);
    return FALSE;
  }
  pst_plugin_provide(plugin, PST_SERVICE_TRANSPORT, provider, provider_data);
  return TRUE;
}

/* A service over `plugin`'s provider that keeps the plugin loaded. */
static PstTransportService *transport_service_new(PstPlugin *plugin) {
  if (plugin == NULL)
    return NULL;
  const PstProvided *provided = &plugin->provided[PST_SERVICE_TRANSPORT];
  return pst_transport_service_new(provided->funcs, provided->data,
                                   plugin->name, pst_plugin_ref(plugin),
                                   (GDestroyNotify)pst_plugin_unref);
}

PstTransportService *pst_plugin_set_get_transport(PstPluginSet *set) {
  return transport_service_new(
      pst_plugin_set_find_provider(set, PST_SERVICE_TRANSPORT, NULL));
}

PST_API gboolean pst_transport_tls_available(void) {
  return pst_plugin_find_live_provider(PST_SERVICE_TRANSPORT, NULL) != NULL;
}

PST_API PstTransport *pst_transport_new_tls_client(int fd,
                                                   const char *server_name,
                                                   PstTlsVerify verify,
                                                   GError **error) {
  g_autoptr(PstTransportService) service = transport_service_new(
      pst_plugin_find_live_provider(PST_SERVICE_TRANSPORT, NULL));
  return pst_transport_new_tls_client_with(service, fd, server_name, verify,
                                           error);
}

/* --- SASL client -------------------------------------------------------- */

PstPlugin *pst_plugin_set_get_sasl_client(PstPluginSet *set) {
  return pst_plugin_set_find_provider(set, PST_SERVICE_SASL_CLIENT, NULL);
}

/* --- The signer of the daemon's own mail (ABI 1.2) ----------------------- */

PST_API void pst_plugin_provide_signer(PstPlugin *plugin, PstSignerFunc func,
                                       gpointer user_data) {
  g_return_if_fail(plugin != NULL && func != NULL);
  if (!pst_plugin_is_registering(plugin)) {
    g_critical("plugin \"%s\" provided a signer outside init(): ignored",
               plugin->name);
    return;
  }
  pst_plugin_provide(plugin, PST_SERVICE_SIGNER, (gconstpointer)func,
                     user_data);
}

PstPlugin *pst_plugin_set_get_signer(PstPluginSet *set) {
  return pst_plugin_set_find_provider(set, PST_SERVICE_SIGNER, NULL);
}

GBytes *pst_signer_sign(PstPlugin *signer, GBytes *message) {
  g_return_val_if_fail(message != NULL, NULL);
  const PstProvided *provided =
      signer != NULL ? &signer->provided[PST_SERVICE_SIGNER] : NULL;
  PstSignerFunc func = provided != NULL ? (PstSignerFunc)provided->funcs : NULL;
  char *fields = func != NULL ? func(message, provided->data) : NULL;
  if (fields == NULL)
    return g_bytes_ref(message);
  gsize length = 0;
  const char *data = g_bytes_get_data(message, &length);
  GString *out = g_string_sized_new(strlen(fields) + length);
  g_string_append(out, fields);
  g_string_append_len(out, data, (gssize)length);
  g_free(fields);
  return g_string_free_to_bytes(out);
}
