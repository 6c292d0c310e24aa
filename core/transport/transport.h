/* transport.h - the core's side of the transport service.
 *
 * The SDK half (PstTransport, the provider registration) is declared in
 * <postilion/transport.h>; this adds what only the core calls.  Main
 * thread only.
 */
#pragma once

#include <postilion/plugin.h>

#include "config/config.h"

G_BEGIN_DECLS

/* A server-side TLS transport on `fd` for `listener` (an accepted
 * connection on a mode=tls listener, or after STARTTLS).  NULL with
 * G_IO_ERROR_NOT_SUPPORTED when no provider is loaded. */
PstTransport *pst_transport_new_tls_server(int fd, const char *listener,
                                           GError **error);

/* Refuses listeners that need TLS when no provider is loaded (mode = tls,
 * or require_tls), naming the listener and the fix.  Called after the
 * plugins of `config` started (start, reload, --check). */
gboolean pst_transport_check_listeners(const PstConfig *config, GError **error);

/* The name of the plugin that provides TLS, or NULL. */
const char *pst_transport_provider_name(void);

/* Called when a plugin is unloaded: if it provided TLS, nothing does now.
 * (Transports made by it hold a reference to it, so none is alive.) */
void pst_transport_forget_plugin(PstPlugin *plugin);

G_END_DECLS
