/* transport.c - a connection's byte stream: plain, or TLS through the
 * plugin that provides it (<postilion/transport.h>).
 *
 * A PstTransport is a two-entry vtable choice: provider == NULL reads and
 * writes the socket directly; otherwise every call goes to the provider's
 * connection object.  The transport never owns the socket.
 *
 * A PstTransportService is a provider as the core holds it: the plugin's
 * vtable and data, its name, and a keep-alive (`keep`, released by
 * `release` with the last reference) that keeps the provider's code
 * loaded.  The hooks module makes one per generation from the plugin that
 * provides TLS (hooks/services.c); every TLS transport holds a reference
 * to its service, so a connection keeps its provider across reloads.
 * This module knows nothing of plugins.
 *
 * The handshake is a GTask driven by three sources on the caller's
 * thread-default context: the socket (re-armed for what the provider asks
 * next), a deadline timer (GnuTLS only checks its own timeout when called,
 * so a silent peer needs ours), and the cancellable.  The first step runs
 * from an idle source, so the callback is never called from inside
 * pst_transport_handshake_async().  Whichever source finishes first
 * destroys the others, so the task returns once.
 *
 * Main thread only (the keep-alive of a provider is released there).
 */
#include <errno.h>
#include <sys/socket.h>

#include <glib-unix.h>

#include "transport/transport.h"

struct _PstTransportService {
  gint ref_count; /* atomic */
  const PstTransportProvider *provider;
  gpointer provider_data; /* the provider's, not owned */
  char *name;             /* owned: the providing plugin's */
  gpointer keep;          /* released by `release` with the last ref */
  GDestroyNotify release; /* nullable */
};

struct _PstTransport {
  gint ref_count;
  int fd;                               /* not owned */
  const PstTransportProvider *provider; /* NULL: plain */
  gpointer connection;                  /* owned by provider->free */
  gpointer provider_data;               /* the provider's, not owned */
  PstTransportService *service;         /* owned reference, nullable */
  gboolean handshaken;                  /* TLS is up */
  GIOCondition condition;               /* plain: what blocked last */
};

/* --- Services ---------------------------------------------------------- */

gboolean pst_transport_provider_check(const PstTransportProvider *provider,
                                      GError **error) {
  if (provider->struct_size >= sizeof(PstTransportProvider))
    return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
              "the transport provider's struct_size (%u) is smaller than "
              "this daemon's (%zu): rebuild the plugin",
              provider->struct_size, sizeof(PstTransportProvider));
  return FALSE;
}

PstTransportService *
pst_transport_service_new(const PstTransportProvider *provider,
                          gpointer provider_data, const char *name,
                          gpointer keep, GDestroyNotify release) {
  g_return_val_if_fail(provider != NULL && name != NULL, NULL);
  PstTransportService *service = g_new0(PstTransportService, 1);
  service->ref_count = 1;
  service->provider = provider;
  service->provider_data = provider_data;
  service->name = g_strdup(name);
  service->keep = keep;
  service->release = release;
  return service;
}

PstTransportService *pst_transport_service_ref(PstTransportService *service) {
  g_atomic_int_inc(&service->ref_count);
  return service;
}

void pst_transport_service_unref(PstTransportService *service) {
  if (service == NULL || !g_atomic_int_dec_and_test(&service->ref_count))
    return;
  if (service->release != NULL)
    service->release(service->keep);
  g_free(service->name);
  g_free(service);
}

const char *pst_transport_service_get_name(PstTransportService *service) {
  return service != NULL ? service->name : NULL;
}

/* --- Construction ------------------------------------------------------ */

PST_API PstTransport *pst_transport_new_plain(int fd) {
  PstTransport *transport = g_new0(PstTransport, 1);
  transport->ref_count = 1;
  transport->fd = fd;
  transport->condition = G_IO_IN;
  return transport;
}

static PstTransport *transport_new_tls(PstTransportService *service,
                                       gpointer connection, int fd) {
  PstTransport *transport = pst_transport_new_plain(fd);
  transport->provider = service->provider;
  transport->connection = connection;
  transport->provider_data = service->provider_data;
  transport->service = pst_transport_service_ref(service);
  return transport;
}

static gboolean transport_check_service(PstTransportService *service,
                                        GError **error) {
  if (service != NULL)
    return TRUE;
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                      "TLS is not available: add tls to [plugins] load");
  return FALSE;
}

PstTransport *pst_transport_new_tls_server(PstTransportService *service, int fd,
                                           const char *listener,
                                           GError **error) {
  if (!transport_check_service(service, error))
    return NULL;
  gpointer connection = service->provider->server_new(service->provider_data,
                                                      fd, listener, error);
  return connection != NULL ? transport_new_tls(service, connection, fd) : NULL;
}

PstTransport *pst_transport_new_tls_client_with(PstTransportService *service,
                                                int fd, const char *server_name,
                                                PstTlsVerify verify,
                                                GError **error) {
  g_return_val_if_fail(fd >= 0, NULL);
  if (!transport_check_service(service, error))
    return NULL;
  gpointer connection = service->provider->client_new(
      service->provider_data, fd, server_name, verify, error);
  return connection != NULL ? transport_new_tls(service, connection, fd) : NULL;
}

PST_API PstTransport *pst_transport_ref(PstTransport *transport) {
  g_return_val_if_fail(transport != NULL, NULL);
  transport->ref_count++;
  return transport;
}

PST_API void pst_transport_unref(PstTransport *transport) {
  if (transport == NULL || --transport->ref_count > 0)
    return;
  if (transport->provider != NULL)
    transport->provider->free(transport->connection);
  pst_transport_service_unref(transport->service);
  g_free(transport);
}

/* --- The handshake ----------------------------------------------------- */

typedef struct {
  PstTransport *transport; /* owned reference */
  guint timeout_ms;
  GSource *idle;   /* owned, nullable: the first step */
  GSource *watch;  /* owned, nullable: the socket */
  GSource *timer;  /* owned, nullable: the deadline */
  GSource *cancel; /* owned, nullable: the cancellable */
  gboolean done;
} PstHandshake;

static void handshake_drop_source(GSource **source) {
  if (*source == NULL)
    return;
  g_source_destroy(*source);
  g_source_unref(*source);
  *source = NULL;
}

static void handshake_drop_sources(PstHandshake *handshake) {
  handshake_drop_source(&handshake->idle);
  handshake_drop_source(&handshake->watch);
  handshake_drop_source(&handshake->timer);
  handshake_drop_source(&handshake->cancel);
}

static void handshake_free(PstHandshake *handshake) {
  handshake_drop_sources(handshake);
  pst_transport_unref(handshake->transport);
  g_free(handshake);
}

/* Ends the task once: the sources go first, so nothing fires after. */
static void handshake_return(GTask *task, GError *error) {
  PstHandshake *handshake = g_task_get_task_data(task);
  if (handshake->done) {
    g_clear_error(&error);
    return;
  }
  handshake->done = TRUE;
  g_object_ref(task);
  handshake_drop_sources(handshake);
  if (error != NULL)
    g_task_return_error(task, error);
  else
    g_task_return_boolean(task, TRUE);
  g_object_unref(task);
}

static gboolean handshake_socket_ready(gint fd, GIOCondition condition,
                                       gpointer user_data);

/* One provider step; re-arms the socket watch when it must wait. */
static void handshake_step(GTask *task) {
  PstHandshake *handshake = g_task_get_task_data(task);
  PstTransport *transport = handshake->transport;
  GError *error = NULL;
  switch (transport->provider->handshake(transport->connection, &error)) {
  case PST_TRANSPORT_STEP_DONE:
    transport->handshaken = TRUE;
    handshake_return(task, NULL);
    return;
  case PST_TRANSPORT_STEP_AGAIN:
    break;
  case PST_TRANSPORT_STEP_FAILED:
  default:
    if (error == NULL)
      error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED,
                                  "the TLS provider gave no reason");
    handshake_return(task, error);
    return;
  }
  g_clear_error(&error);
  handshake_drop_source(&handshake->watch);
  GIOCondition wanted = transport->provider->condition(transport->connection);
  handshake->watch = g_unix_fd_source_new(transport->fd, wanted);
  g_task_attach_source(task, handshake->watch,
                       (GSourceFunc)(GCallback)handshake_socket_ready);
}

static gboolean handshake_socket_ready(gint fd, GIOCondition condition,
                                       gpointer user_data) {
  GTask *task = user_data;
  PstHandshake *handshake = g_task_get_task_data(task);
  /* The step below replaces the watch: keep this source alive until we
   * return from its dispatch. */
  GSource *self = g_source_ref(handshake->watch);
  handshake_step(task);
  g_source_unref(self);
  return G_SOURCE_CONTINUE;
}

static gboolean handshake_first_step(gpointer user_data) {
  GTask *task = user_data;
  PstHandshake *handshake = g_task_get_task_data(task);
  GSource *self = g_steal_pointer(&handshake->idle);
  if (handshake->transport->provider == NULL)
    handshake_return(task, NULL);
  else
    handshake_step(task);
  g_source_unref(self);
  return G_SOURCE_REMOVE;
}

static gboolean handshake_timed_out(gpointer user_data) {
  GTask *task = user_data;
  PstHandshake *handshake = g_task_get_task_data(task);
  handshake_return(task, g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                     "TLS handshake timed out after %u ms",
                                     handshake->timeout_ms));
  return G_SOURCE_REMOVE;
}

static gboolean handshake_cancelled(GCancellable *cancellable,
                                    gpointer user_data) {
  GError *error = NULL;
  g_cancellable_set_error_if_cancelled(cancellable, &error);
  handshake_return(user_data, error);
  return G_SOURCE_REMOVE;
}

static GSource *handshake_attach(GTask *task, GSource *source,
                                 GSourceFunc func) {
  g_task_attach_source(task, source, func);
  return source;
}

PST_API void pst_transport_handshake_async(PstTransport *transport,
                                           guint timeout_ms,
                                           GCancellable *cancellable,
                                           GAsyncReadyCallback callback,
                                           gpointer user_data) {
  g_return_if_fail(transport != NULL);
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_source_tag(task, pst_transport_handshake_async);
  g_task_set_check_cancellable(task, FALSE);
  PstHandshake *handshake = g_new0(PstHandshake, 1);
  handshake->transport = pst_transport_ref(transport);
  if (timeout_ms == 0 && transport->provider != NULL)
    timeout_ms =
        transport->provider->handshake_timeout_ms(transport->provider_data);
  handshake->timeout_ms = timeout_ms;
  g_task_set_task_data(task, handshake, (GDestroyNotify)handshake_free);

  handshake->idle =
      handshake_attach(task, g_idle_source_new(), handshake_first_step);
  if (timeout_ms > 0 && transport->provider != NULL)
    handshake->timer = handshake_attach(task, g_timeout_source_new(timeout_ms),
                                        handshake_timed_out);
  if (cancellable != NULL)
    handshake->cancel =
        handshake_attach(task, g_cancellable_source_new(cancellable),
                         (GSourceFunc)(GCallback)handshake_cancelled);
  g_object_unref(task); /* the sources hold it */
}

PST_API gboolean pst_transport_handshake_finish(PstTransport *transport,
                                                GAsyncResult *result,
                                                GError **error) {
  g_return_val_if_fail(g_task_is_valid(result, NULL), FALSE);
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* --- Bytes ------------------------------------------------------------- */

static gssize plain_failed(PstTransport *transport, GIOCondition wanted,
                           const char *what, GError **error) {
  int saved = errno;
  if (saved == EAGAIN || saved == EWOULDBLOCK) {
    transport->condition = wanted;
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                        "would block");
  } else {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "%s: %s", what,
                g_strerror(saved));
  }
  return -1;
}

PST_API gssize pst_transport_read(PstTransport *transport, void *buffer,
                                  gsize size, GError **error) {
  if (transport->provider != NULL)
    return transport->provider->read(transport->connection, buffer, size,
                                     error);
  for (;;) {
    ssize_t n = recv(transport->fd, buffer, size, 0);
    if (n >= 0)
      return n;
    if (errno != EINTR)
      return plain_failed(transport, G_IO_IN, "read", error);
  }
}

PST_API gssize pst_transport_write(PstTransport *transport, const void *buffer,
                                   gsize size, GError **error) {
  if (transport->provider != NULL)
    return transport->provider->write(transport->connection, buffer, size,
                                      error);
  for (;;) {
    ssize_t n = send(transport->fd, buffer, size, MSG_NOSIGNAL);
    if (n >= 0)
      return n;
    if (errno != EINTR)
      return plain_failed(transport, G_IO_OUT, "write", error);
  }
}

PST_API GIOCondition pst_transport_get_condition(PstTransport *transport) {
  if (transport->provider != NULL)
    return transport->provider->condition(transport->connection);
  return transport->condition;
}

PST_API gboolean pst_transport_has_pending(PstTransport *transport) {
  return transport->provider != NULL && transport->handshaken &&
         transport->provider->pending(transport->connection);
}

PST_API void pst_transport_shutdown(PstTransport *transport) {
  if (transport->provider != NULL && transport->handshaken)
    transport->provider->shutdown(transport->connection);
}

/* --- TLS state --------------------------------------------------------- */

/* The provider, when the handshake is done. */
static const PstTransportProvider *transport_tls(PstTransport *transport) {
  return transport != NULL && transport->handshaken ? transport->provider
                                                    : NULL;
}

PST_API gboolean pst_transport_is_tls(PstTransport *transport) {
  return transport_tls(transport) != NULL;
}

PST_API const char *pst_transport_get_tls_version(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->version(transport->connection) : NULL;
}

PST_API const char *pst_transport_get_tls_cipher(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->cipher(transport->connection) : NULL;
}

PST_API guint pst_transport_get_tls_cipher_bits(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->cipher_bits(transport->connection) : 0;
}

PST_API const char *pst_transport_get_tls_server_name(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->server_name(transport->connection) : NULL;
}

PST_API GBytes *
pst_transport_get_tls_peer_certificate(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->peer_certificate(transport->connection) : NULL;
}

PST_API gboolean pst_transport_get_tls_verified(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL && tls->verified(transport->connection);
}

PST_API const char *
pst_transport_get_tls_verify_message(PstTransport *transport) {
  const PstTransportProvider *tls = transport_tls(transport);
  return tls != NULL ? tls->verify_message(transport->connection) : NULL;
}
