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
 *
 * A listener with proxy_protocol first reads the HAProxy PROXY header
 * (proxy-protocol.c parses it) before any session exists: the bytes are
 * peeked, and only the header's own octets consumed, so nothing the client
 * sends after it is lost.  The session then starts with the real client's
 * address; the connection counts stay with the proxy's.
 */
#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/proxy-protocol.h"
#include "server/server.h"
#include "util/net.h"

typedef struct {
  PstServer *server;   /* not owned */
  char *name;          /* owned: the [listener:NAME] it serves now */
  char *host;          /* owned */
  guint16 port;
  char *local;         /* owned, nullable: every connection's local
                        * address (NULL: bound to a wildcard) */
  guint16 local_port;
  int fd;
  guint watch;         /* the accept source, 0 while not accepting */
} PstListener;

struct _PstServer {
  PstGeneration *generation; /* owned: for new sessions */
  PstSpool *spool;           /* not owned */
  GPtrArray *listeners;      /* owned, of PstListener* */
  GHashTable *sessions;      /* owned set of live PstSession* */
  GHashTable *per_address;   /* owned: client address -> count */
  GHashTable *proxy_waits;   /* owned set of PstProxyWait* (they own
                              * themselves; freed when they end) */
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
  g_free(listener->local);
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

/* How long a proxy_protocol connection may take to send its header. */
#define PROXY_HEADER_TIMEOUT_S 10

/* A proxy_protocol connection waiting for its header. */
typedef struct {
  PstServer *server;         /* not owned */
  char *listener;            /* owned: the listener's name */
  int fd;
  PstConnection *connection; /* owned until a session takes it */
  char *client;              /* owned: the proxy's address */
  guint16 client_port;
  char *local;               /* owned */
  guint16 local_port;
  GByteArray *head;          /* owned: header octets already read */
  guint watch;
  guint timer;
} PstProxyWait;

static void server_connection_release(PstConnection *connection) {
  PstServer *server = connection->server;
  guint count = GPOINTER_TO_UINT(
      g_hash_table_lookup(server->per_address, connection->address));
  if (count <= 1)
    g_hash_table_remove(server->per_address, connection->address);
  else
    g_hash_table_insert(server->per_address, g_strdup(connection->address),
                        GUINT_TO_POINTER(count - 1));
  server->connections--;
  g_free(connection->address);
  g_free(connection);
  server_check_stopped(server);
}

static void server_session_closed(PstSession *session, gpointer user_data) {
  PstConnection *connection = user_data;
  g_hash_table_remove(connection->server->sessions, session);
  server_connection_release(connection);
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
  const PstServerConfig *config =
      &pst_generation_get_config(server->generation)->server;
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

static void server_start_session(PstServer *server, const char *listener,
                                 int fd, PstConnection *connection,
                                 const char *client, guint16 client_port,
                                 const char *local, guint16 local_port) {
  PstSessionSetup setup = {
      .generation = server->generation,
      .listener = pst_config_find_listener(
          pst_generation_get_config(server->generation), listener),
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

/* --- PROXY protocol ---------------------------------------------------- */

/* Ends a wait; with `release` the connection is closed and uncounted. */
static void proxy_wait_free(PstProxyWait *wait, gboolean release) {
  g_hash_table_remove(wait->server->proxy_waits, wait);
  if (wait->watch != 0)
    g_source_remove(wait->watch);
  if (wait->timer != 0)
    g_source_remove(wait->timer);
  if (release) {
    close(wait->fd);
    server_connection_release(wait->connection);
  }
  g_free(wait->listener);
  g_free(wait->client);
  g_free(wait->local);
  g_byte_array_unref(wait->head);
  g_free(wait);
}

static gboolean proxy_wait_timeout(gpointer user_data) {
  PstProxyWait *wait = user_data;
  wait->timer = 0;
  g_message("proxy: no PROXY header from [%s]:%u within %u s; closing",
            wait->client, wait->client_port, PROXY_HEADER_TIMEOUT_S);
  proxy_wait_free(wait, TRUE);
  return G_SOURCE_REMOVE;
}

/* The header is consumed: start the session with the real client. */
static void proxy_wait_done(PstProxyWait *wait, const PstProxyHeader *header) {
  const char *client = header->local ? wait->client : header->source;
  guint16 client_port = header->local ? wait->client_port : header->source_port;
  const char *local = header->local ? wait->local : header->destination;
  guint16 local_port = header->local ? wait->local_port
                                     : header->destination_port;
  g_message("proxy: [%s]:%u is [%s]:%u (PROXY v%u%s)", wait->client,
            wait->client_port, client, client_port, header->version,
            header->local ? ", local" : "");
  PstServer *server = wait->server;
  g_autofree char *listener = g_strdup(wait->listener);
  g_autofree char *client_copy = g_strdup(client);
  g_autofree char *local_copy = g_strdup(local);
  int fd = wait->fd;
  PstConnection *connection = wait->connection;
  proxy_wait_free(wait, FALSE);
  server_start_session(server, listener, fd, connection, client_copy,
                       client_port, local_copy, local_port);
}

/* Reads `count` octets the peek already saw (so they are there). */
static gboolean proxy_wait_consume(PstProxyWait *wait, gsize count) {
  gsize start = wait->head->len;
  g_byte_array_set_size(wait->head, start + count);
  ssize_t n = recv(wait->fd, wait->head->data + start, count, 0);
  return n >= 0 && (gsize)n == count;
}

/* Peeks at what arrived and consumes only octets that belong to the
 * header: a partial header is moved into `head` (so a level-triggered
 * watch does not spin on it), a whole one ends the wait. */
static gboolean proxy_wait_readable(gint fd, GIOCondition condition,
                                    gpointer user_data) {
  PstProxyWait *wait = user_data;
  gsize have = wait->head->len;
  g_autofree guint8 *buffer = g_malloc(PST_PROXY_MAX_HEADER);
  if (have > 0)
    memcpy(buffer, wait->head->data, have);
  ssize_t n = recv(fd, buffer + have, PST_PROXY_MAX_HEADER - have, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  PstProxyHeader header;
  PstProxyStatus status =
      n > 0 ? pst_proxy_parse(buffer, have + n, &header) : PST_PROXY_INVALID;
  if (status == PST_PROXY_NEED_MORE && proxy_wait_consume(wait, n))
    return G_SOURCE_CONTINUE;
  wait->watch = 0;
  if (status == PST_PROXY_OK &&
      proxy_wait_consume(wait, header.length - have)) {
    proxy_wait_done(wait, &header);
    return G_SOURCE_REMOVE;
  }
  if (n <= 0)
    g_message("proxy: [%s]:%u left before its PROXY header", wait->client,
              wait->client_port);
  else
    g_message("proxy: bad PROXY header from [%s]:%u; closing", wait->client,
              wait->client_port);
  proxy_wait_free(wait, TRUE);
  return G_SOURCE_REMOVE;
}

static void proxy_wait_start(PstServer *server, const char *listener, int fd,
                             PstConnection *connection, const char *client,
                             guint16 client_port, const char *local,
                             guint16 local_port) {
  PstProxyWait *wait = g_new0(PstProxyWait, 1);
  wait->server = server;
  wait->listener = g_strdup(listener);
  wait->fd = fd;
  wait->connection = connection;
  wait->client = g_strdup(client);
  wait->client_port = client_port;
  wait->local = g_strdup(local);
  wait->local_port = local_port;
  wait->head = g_byte_array_new();
  wait->watch = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                              proxy_wait_readable, wait);
  wait->timer = g_timeout_add_seconds(PROXY_HEADER_TIMEOUT_S,
                                      proxy_wait_timeout, wait);
  g_hash_table_add(server->proxy_waits, wait);
}

static void server_accept_one(PstListener *listener, int fd,
                              const struct sockaddr *peer,
                              socklen_t peer_length) {
  PstServer *server = listener->server;
  g_autofree char *client = NULL;
  g_autofree char *local_owned = NULL;
  guint16 client_port = 0;
  if (!pst_net_sockaddr_to_string(peer, peer_length, &client, &client_port)) {
    close(fd);
    return;
  }
  /* A listener bound to one address knows every connection's local end;
   * only a wildcard one asks the kernel.  (TCP_NODELAY comes from the
   * listening socket: pst_net_listen.) */
  const char *local = listener->local;
  guint16 local_port = listener->local_port;
  if (local == NULL) {
    struct sockaddr_storage local_storage;
    socklen_t local_length = sizeof local_storage;
    if (getsockname(fd, (struct sockaddr *)&local_storage, &local_length) < 0 ||
        !pst_net_sockaddr_to_string((struct sockaddr *)&local_storage,
                                    local_length, &local_owned, &local_port)) {
      close(fd);
      return;
    }
    local = local_owned;
  }
  if (!server_admit(server, fd, client))
    return;

  PstConnection *connection = g_new0(PstConnection, 1);
  connection->server = server;
  connection->address = g_strdup(client);
  const PstListenerConfig *config = pst_config_find_listener(
      pst_generation_get_config(server->generation), listener->name);
  if (config->proxy_protocol)
    proxy_wait_start(server, listener->name, fd, connection, client,
                     client_port, local, local_port);
  else
    server_start_session(server, listener->name, fd, connection, client,
                         client_port, local, local_port);
}

/* Connections one readiness of a listener accepts: a batch, bounded so
 * that one busy listener cannot starve the sessions; but one while no
 * connection is open.  A client that connects, sends and leaves comes
 * alone, and the accept after its connection would only say EAGAIN (a
 * system call per connection); any other already waiting is reported by
 * the next poll, and is accepted in a batch then (one is open). */
#define ACCEPT_BATCH_MAX 64

static gboolean server_accept(gint fd, GIOCondition condition,
                              gpointer user_data) {
  PstListener *listener = user_data;
  int batch = listener->server->connections == 0 ? 1 : ACCEPT_BATCH_MAX;
  for (int i = 0; i < batch; i++) {
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
  if (!pst_net_listener_local_address(fd, &listener->local,
                                      &listener->local_port))
    listener->local = NULL;
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

/* The accept watch may recurse: GLib takes a source that may not out of
 * the poll list and puts it back around each dispatch, each time writing
 * the context's wake-up eventfd (nothing in server_accept() runs a nested
 * main loop). */
static guint server_watch_listener(PstListener *listener) {
  GSource *source = g_unix_fd_source_new(listener->fd, G_IO_IN);
  g_source_set_callback(source, G_SOURCE_FUNC(server_accept), listener, NULL);
  g_source_set_can_recurse(source, TRUE);
  g_source_set_name(source, "postilion listener");
  guint id = g_source_attach(source, NULL);
  g_source_unref(source);
  return id;
}

static void server_watch_listeners(PstServer *server) {
  for (guint i = 0; i < server->listeners->len; i++) {
    PstListener *listener = server->listeners->pdata[i];
    if (listener->watch == 0)
      listener->watch = server_watch_listener(listener);
  }
}

/* --- Lifecycle --------------------------------------------------------- */

PstServer *pst_server_new(PstGeneration *generation, PstSpool *spool,
                          GError **error) {
  PstConfig *config = pst_generation_get_config(generation);
  PstServer *server = g_new0(PstServer, 1);
  server->spool = spool;
  server->sessions = g_hash_table_new(NULL, NULL);
  server->proxy_waits = g_hash_table_new(NULL, NULL);
  server->per_address = g_hash_table_new_full(g_str_hash, g_str_equal,
                                              g_free, NULL);
  server->listeners = server_bind_listeners(server, config, NULL, error);
  if (server->listeners == NULL) {
    pst_server_free(server);
    return NULL;
  }
  server->generation = pst_generation_ref(generation);
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

gboolean pst_server_reload(PstServer *server, PstGeneration *generation,
                           GError **error) {
  PstConfig *config = pst_generation_get_config(generation);
  GPtrArray *old = server->listeners;
  GPtrArray *listeners = server_bind_listeners(server, config, old, error);
  if (listeners == NULL)
    return FALSE;
  server->listeners = listeners;
  g_ptr_array_unref(old); /* closes the listeners that were removed */
  pst_generation_unref(server->generation);
  server->generation = pst_generation_ref(generation);
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

/* Connections still without their PROXY header have no session to end
 * gracefully: they are closed at once. */
static void server_close_proxy_waits(PstServer *server) {
  GHashTableIter iter;
  gpointer wait;
  g_autoptr(GPtrArray) waits = g_ptr_array_new();
  g_hash_table_iter_init(&iter, server->proxy_waits);
  while (g_hash_table_iter_next(&iter, &wait, NULL))
    g_ptr_array_add(waits, wait);
  for (guint i = 0; i < waits->len; i++)
    proxy_wait_free(waits->pdata[i], TRUE);
}

void pst_server_stop(PstServer *server, GSourceFunc done, gpointer data) {
  if (server->stopping)
    return;
  server->stopping = TRUE;
  server->stopped = done;
  server->stopped_data = data;
  /* Closing the sockets refuses new connections at once. */
  g_ptr_array_set_size(server->listeners, 0);
  server_close_proxy_waits(server);
  g_autoptr(GPtrArray) sessions =
      server_list_sessions(server);
  for (guint i = 0; i < sessions->len; i++)
    pst_session_shutdown(sessions->pdata[i]);
  server->shutdown_timer = g_timeout_add(
      pst_generation_get_config(server->generation)->server.timeout_shutdown_ms,
      server_shutdown_timeout, server);
  server_check_stopped(server);
}

void pst_server_free(PstServer *server) {
  if (server->shutdown_timer != 0)
    g_source_remove(server->shutdown_timer);
  g_clear_pointer(&server->listeners, g_ptr_array_unref);
  g_clear_pointer(&server->sessions, g_hash_table_unref);
  if (server->proxy_waits != NULL)
    server_close_proxy_waits(server);
  g_clear_pointer(&server->proxy_waits, g_hash_table_unref);
  g_clear_pointer(&server->per_address, g_hash_table_unref);
  g_clear_pointer(&server->generation, pst_generation_unref);
  g_free(server);
}
