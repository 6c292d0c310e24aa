/* transport.h - the core's side of the transport service.
 *
 * The SDK half (PstTransport, the provider registration) is declared in
 * <postilion/transport.h>; this adds what only the core calls.  Main
 * thread only.
 */
#pragma once

#include <postilion/plugin.h>
#include <postilion/transport.h>

#include "config/config.h"

G_BEGIN_DECLS

/* A TLS provider as the core holds it (one per generation, made by the
 * hooks module from the plugin that provides TLS): the plugin's vtable and
 * data, its name, and `keep`, released by `release(keep)` with the last
 * reference, which keeps the provider's code loaded while a connection
 * uses it.  Reference counted (atomic); the last unref on the main thread. */
typedef struct _PstTransportService PstTransportService;

/* FALSE with `error` when `provider` was built against an older, smaller
 * PstTransportProvider. */
gboolean pst_transport_provider_check(const PstTransportProvider *provider,
                                      GError **error);
PstTransportService *
pst_transport_service_new(const PstTransportProvider *provider,
                          gpointer provider_data, const char *name,
                          gpointer keep, GDestroyNotify release);
PstTransportService *pst_transport_service_ref(PstTransportService *service);
void pst_transport_service_unref(PstTransportService *service);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstTransportService, pst_transport_service_unref)
/* The providing plugin's name; NULL for a NULL service. */
const char *pst_transport_service_get_name(PstTransportService *service);

/* A server-side TLS transport on `fd` for `listener` (an accepted
 * connection on a mode=tls listener, or after STARTTLS) from `service`.
 * NULL with G_IO_ERROR_NOT_SUPPORTED when `service` is NULL (no plugin of
 * the generation provides TLS). */
PstTransport *pst_transport_new_tls_server(PstTransportService *service, int fd,
                                           const char *listener,
                                           GError **error);
/* pst_transport_new_tls_client() with the generation's `service`. */
PstTransport *pst_transport_new_tls_client_with(PstTransportService *service,
                                                int fd, const char *server_name,
                                                PstTlsVerify verify,
                                                GError **error);

/* Refuses listeners that need TLS when `service` (the generation's TLS
 * provider, nullable) is missing or its plugin is not in `config`'s
 * [plugins] load (mode = tls, or require_tls), naming the listener and the
 * fix.  Called after the plugins of `config` started (start, reload,
 * --check). */
gboolean pst_transport_check_listeners(const PstConfig *config,
                                       PstTransportService *service,
                                       GError **error);

G_END_DECLS
