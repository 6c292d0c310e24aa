/* server.c - listeners, accepting, connection limits, generations, and the
 * bounded shutdown.
 *
 * Accepting is where the daemon defends itself first: every accepted
 * socket is counted against max_connections and max_connections_per_ip
 * before any session exists; one over the limit gets a 421 written
 * straight to the socket and is closed.  Sessions report their end through
 * a callback that undoes the counts.
 *
 * Listeners are matched by address across reloads: one whose address did
 * not change keeps its socket (no connection is refused during a reload);
 * a new one is bound before anything else changes, so a reload that cannot
 * bind changes nothing.
 */
#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/server.h"
#include "util/net.h"

typedef struct {
  PstServer *server;   /* not owned */
  char *name;          /* owned: the [listener:NAME] it serves now */
  char *host;          /* owned */
  guint16 port;
  int fd;
  guint watch;         /* the accept source, 0 while not accepting */
} PstListener;

struct _PstServer {
  PstGeneration *generation; /* owned: for new sessions */
  PstSpool *spool;           /* not owned */
  GPtrArray *listeners;      /* owned, of PstListener* */
  GHashTable *sessions;      /* owned set of live PstSession* */
  GHashTable *per_address;   /* owned: client address -> count */
  guint connections;
  gboolean stopping;
  guint shutdown_timer;
  GSourceFunc stopped;       /* nullable */
  gpointer stopped_data;
};

static void listener_free(PstListener *listener) {
  if (listener->watch != 0)
    g_source_remove(listener->watch);
  if (listener->fd >= 0)
    close(listener->fd);
  g_free(listener->name);
  g_free(listener->host);
  g_free(listener);
}

/* A snapshot of the live sessions, safe to walk while they close. */
static GPtrArray *server_list_sessions(PstServer *server) {
  GPtrArray *sessions = g_ptr_array_new();
  GHashTableIter iter;
  gpointer session;
  g_hash_table_iter_init(&iter, server->sessions);
  while (g_hash_table_iter_next(&iter, &session, NULL))
    g_ptr_array_add(sessions, session);
  return sessions;
}

/* --- Session ends ----------------------------------------------------- */

static void server_check_stopped(PstServer *server) {
  if (server->stopping && server->connections == 0 &&
      server->stopped != NULL) {
    GSourceFunc stopped = server->stopped;
    server->stopped = NULL;
    stopped(server->stopped_data);
  }
}

typedef struct {
  PstServer *server;
  char *address; /* owned: the per_address key */
} PstConnection;

static void server_session_closed(PstSession *session, gpointer user_data) {
  PstConnection *connection = user_data;
  PstServer *server = connection->server;
  guint count = GPOINTER_TO_UINT(
      g_hash_table_lookup(server->per_address, connection->address));
  if (count <= 1)
    g_hash_table_remove(server->per_address, connection->address);
  else
    g_hash_table_insert(server->per_address, g_strdup(connection->address),
                        GUINT_TO_POINTER(count - 1));
  server->connections--;
  g_hash_table_remove(server->sessions, session);
  g_free(connection->address);
  g_free(connection);
  server_check_stopped(server);
}

/* --- Accepting --------------------------------------------------------- */

/* Best effort: the socket is fresh, so a short reply fits its buffer. */
static void server_refuse(int fd, const char *format, ...) G_GNUC_PRINTF(2, 3);
static void server_refuse(int fd, const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *line = g_strdup_vprintf(format, args);
  va_end(args);
  ssize_t ignored = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)ignored;
  close(fd);
}

/* Counts the connection in; FALSE (after refusing it) when over a limit. */
static gboolean server_admit(PstServer *server, int fd, const char *address) {
  const PstServerConfig *config = &server->generation->config->server;
  guint from_address = GPOINTER_TO_UINT(
      g_hash_table_lookup(server->per_address, address));
  if (server->connections >= config->max_connections) {
    g_message("warning: connection from [%s] refused: %u connections, the "
              "limit (max_connections)", address, server->connections);
    server_refuse(fd, "421 4.7.0 %s Error: too many connections\r\n",
                  config->hostname);
    return FALSE;
  }
  if (from_address >= config->max_connections_per_ip) {
    g_message("warning: connection from [%s] refused: %u connections from "
              "it, the limit (max_connections_per_ip)", address, from_address);
    server_refuse(fd,
                  "421 4.7.0 %s Error: too many connections from %s\r\n",
                  config->hostname, address);
    return FALSE;
  }
  g_hash_table_insert(server->per_address, g_strdup(address),
                      GUINT_TO_POINTER(from_address + 1));
  server->connections++;
  return TRUE;
}

static void server_accept_one(PstListener *listener, int fd,
                              const struct sockaddr *peer,
                              socklen_t peer_length) {
  PstServer *server = listener->server;
  g_autofree char *client = NULL;
  g_autofree char *local = NULL;
  guint16 client_port = 0, local_port = 0;
  struct sockaddr_storage local_storage;
  socklen_t local_length = sizeof local_storage;
  if (!pst_net_sockaddr_to_string(peer, peer_length, &client, &client_port) ||
      getsockname(fd, (struct sockaddr *)&local_storage, &local_length) < 0 ||
      !pst_net_sockaddr_to_string((struct sockaddr *)&local_storage,
                                  local_length, &local, &local_port)) {
    close(fd);
    return;
  }
  if (!server_admit(server, fd, client))
    return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  PstConnection *connection = g_new0(PstConnection, 1);
  connection->server = server;
  connection->address = g_strdup(client);
  PstSessionSetup setup = {
      .generation = server->generation,
      .listener =
          pst_config_find_listener(server->generation->config, listener->name),
      .spool = server->spool,
      .fd = fd,
      .client_address = client,
      .client_port = client_port,
      .local_address = local,
      .local_port = local_port,
      .closed = server_session_closed,
      .closed_data = connection,
  };
  PstSession *session = pst_session_start(&setup);
  if (session != NULL)
    g_hash_table_add(server->sessions, session);
}

static gboolean server_accept(gint fd, GIOCondition condition,
                              gpointer user_data) {
  PstListener *listener = user_data;
  /* Bounded, so one busy listener cannot starve the sessions. */
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage peer;
    socklen_t peer_length = sizeof peer;
    int client = accept4(fd, (struct sockaddr *)&peer, &peer_length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EMFILE || errno == ENFILE)
        g_warning("listener %s: cannot accept: %s (raise the open files "
                  "limit or lower max_connections)",
                  listener->name, g_strerror(errno));
      break;
    }
    server_accept_one(listener, client, (struct sockaddr *)&peer,
                      peer_length);
  }
  return G_SOURCE_CONTINUE;
}

/* --- Listeners --------------------------------------------------------- */

static PstListener *server_find_listener(GPtrArray *listeners,
                                         const PstListenerConfig *config) {
  for (guint i = 0; listeners != NULL && i < listeners->len; i++) {
    PstListener *listener = listeners->pdata[i];
    if (listener->port == config->port &&
        g_strcmp0(listener->host, config->host) == 0)
      return listener;
  }
  return NULL;
}

static PstListener *server_listener_new(PstServer *server,
                                        const PstConfig *config,
                                        const PstListenerConfig *wanted,
                                        GError **error) {
  g_autoptr(GError) local_error = NULL;
  int fd = pst_net_listen(wanted->host, wanted->port, &local_error);
  if (fd < 0) {
    g_autofree char *group = g_strdup_printf("listener:%s", wanted->name);
    g_autofree char *where = pst_config_describe_key(config, group, "address");
    g_set_error(error, G_IO_ERROR, local_error->code,
                "%s[%s] address = %s: %s; stop the program using that "
                "address or choose another one",
                where, group, wanted->address, local_error->message);
    return NULL;
  }
  PstListener *listener = g_new0(PstListener, 1);
  listener->server = server;
  listener->name = g_strdup(wanted->name);
  listener->host = g_strdup(wanted->host);
  listener->port = wanted->port;
  listener->fd = fd;
  return listener;
}

/* Builds the listener set for `config`.  Sockets of `old` with the same
 * address are reused (moved out of `old`) only once every new address is
 * bound: on failure `old` is untouched and NULL is returned. */
static GPtrArray *server_bind_listeners(PstServer *server,
                                        const PstConfig *config,
                                        GPtrArray *old, GError **error) {
  guint n = config->listeners->len;
  g_autoptr(GPtrArray) fresh =
      g_ptr_array_new_with_free_func((GDestroyNotify)listener_free);
  g_autofree PstListener **chosen = g_new0(PstListener *, n);
  for (guint i = 0; i < n; i++) {
    const PstListenerConfig *wanted = config->listeners->pdata[i];
    chosen[i] = server_find_listener(old, wanted);
    if (chosen[i] != NULL)
      continue;
    chosen[i] = server_listener_new(server, config, wanted, error);
    if (chosen[i] == NULL)
      return NULL; /* `fresh` closes what this attempt bound */
    g_ptr_array_add(fresh, chosen[i]);
  }
  g_ptr_array_set_free_func(fresh, NULL);
  GPtrArray *listeners =
      g_ptr_array_new_with_free_func((GDestroyNotify)listener_free);
  for (guint i = 0; i < n; i++) {
    const PstListenerConfig *wanted = config->listeners->pdata[i];
    guint index;
    if (old != NULL && g_ptr_array_find(old, chosen[i], &index)) {
      g_ptr_array_steal_index_fast(old, index);
      g_free(chosen[i]->name);
      chosen[i]->name = g_strdup(wanted->name);
    }
    g_ptr_array_add(listeners, chosen[i]);
  }
  return listeners;
}

static void server_watch_listeners(PstServer *server) {
  for (guint i = 0; i < server->listeners->len; i++) {
    PstListener *listener = server->listeners->pdata[i];
    if (listener->watch == 0)
      listener->watch =
          g_unix_fd_add(listener->fd, G_IO_IN, server_accept, listener);
  }
}

/* --- Lifecycle --------------------------------------------------------- */

PstServer *pst_server_new(PstConfig *config, PstPluginSet *plugins,
                          PstSpool *spool, GError **error) {
  PstServer *server = g_new0(PstServer, 1);
  server->spool = spool;
  server->sessions = g_hash_table_new(NULL, NULL);
  server->per_address = g_hash_table_new_full(g_str_hash, g_str_equal,
                                              g_free, NULL);
  server->listeners = server_bind_listeners(server, config, NULL, error);
  if (server->listeners == NULL) {
    pst_server_free(server);
    return NULL;
  }
  server->generation = pst_generation_new(config, plugins);
  return server;
}

void pst_server_start(PstServer *server) {
  server_watch_listeners(server);
  for (guint i = 0; i < server->listeners->len; i++) {
    PstListener *listener = server->listeners->pdata[i];
    g_message("listening on %s%s%s:%u (listener %s)",
              strchr(listener->host, ':') ? "[" : "", listener->host,
              strchr(listener->host, ':') ? "]" : "", listener->port,
              listener->name);
  }
}

PstGeneration *pst_server_get_generation(PstServer *server) {
  return server->generation;
}

gboolean pst_server_reload(PstServer *server, PstConfig *config,
                           PstPluginSet *plugins, GError **error) {
  GPtrArray *old = server->listeners;
  GPtrArray *listeners = server_bind_listeners(server, config, old, error);
  if (listeners == NULL)
    return FALSE;
  server->listeners = listeners;
  g_ptr_array_unref(old); /* closes the listeners that were removed */
  pst_generation_unref(server->generation);
  server->generation = pst_generation_new(config, plugins);
  server_watch_listeners(server);
  return TRUE;
}

/* Sessions whose 421 cannot be written (a client that does not read) do
 * not hold the daemon: two seconds after the grace period it stops. */
static gboolean server_shutdown_force(gpointer user_data) {
  PstServer *server = user_data;
  server->shutdown_timer = 0;
  if (server->connections > 0)
    g_message("shutdown: %u clients did not read their 421; stopping",
              server->connections);
  server->connections = 0;
  server_check_stopped(server);
  return G_SOURCE_REMOVE;
}

static gboolean server_shutdown_timeout(gpointer user_data) {
  PstServer *server = user_data;
  server->shutdown_timer = 0;
  g_autoptr(GPtrArray) sessions =
      server_list_sessions(server);
  if (sessions->len > 0)
    g_message("shutdown: closing %u sessions after the grace period",
              sessions->len);
  for (guint i = 0; i < sessions->len; i++)
    pst_session_abort(sessions->pdata[i]);
  if (server->connections > 0)
    server->shutdown_timer = g_timeout_add_seconds(2, server_shutdown_force,
                                                   server);
  return G_SOURCE_REMOVE;
}

void pst_server_stop(PstServer *server, GSourceFunc done, gpointer data) {
  if (server->stopping)
    return;
  server->stopping = TRUE;
  server->stopped = done;
  server->stopped_data = data;
  /* Closing the sockets refuses new connections at once. */
  g_ptr_array_set_size(server->listeners, 0);
  g_autoptr(GPtrArray) sessions =
      server_list_sessions(server);
  for (guint i = 0; i < sessions->len; i++)
    pst_session_shutdown(sessions->pdata[i]);
  server->shutdown_timer = g_timeout_add(
      server->generation->config->server.timeout_shutdown_ms,
      server_shutdown_timeout, server);
  server_check_stopped(server);
}

void pst_server_free(PstServer *server) {
  if (server->shutdown_timer != 0)
    g_source_remove(server->shutdown_timer);
  g_clear_pointer(&server->listeners, g_ptr_array_unref);
  g_clear_pointer(&server->sessions, g_hash_table_unref);
  g_clear_pointer(&server->per_address, g_hash_table_unref);
  g_clear_pointer(&server->generation, pst_generation_unref);
  g_free(server);
}
