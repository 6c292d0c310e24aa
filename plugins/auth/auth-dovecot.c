/* auth-dovecot.c - backend = dovecot: SMTP AUTH checked by Dovecot's auth
 * service over its client socket ("auth-client", unix or TCP), as
 * Postfix's smtpd_sasl_type = dovecot does, so SMTP users log in with the
 * accounts and mechanisms of the IMAP server.
 *
 * One DovecotClient per configuration (AuthConfig owns it): one
 * connection to Dovecot, multiplexing the exchanges of every SMTP session
 * by request id, a non-blocking state machine on the main loop (no
 * thread, nothing blocks).  It connects at start (to learn the
 * mechanisms), again when needed after Dovecot went away (at most once a
 * second), and fails what it cannot answer with PST_SASL_TEMPFAIL (454):
 * requests waiting when the connection breaks, and any request Dovecot
 * does not answer within the plugin's `timeout`.
 *
 * Limits: a line from Dovecot longer than DOVECOT_MAX_LINE, a protocol
 * error, more than MAX_MECHANISMS mechanisms, or more than MAX_OUTPUT
 * octets Dovecot does not read close the connection (logged); at most
 * MAX_REQUESTS exchanges at once.  Everything here runs on the main
 * thread; callers are auth-server.c (the SASL service) and auth.c.
 */
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "auth.h"
#include "dovecot-protocol.h"

#define MAX_MECHANISMS 64
#define MAX_REQUESTS 4096
#define MAX_OUTPUT (1024 * 1024)
#define RECONNECT_INTERVAL_US G_USEC_PER_SEC

typedef enum {
  STATE_IDLE,       /* not connected */
  STATE_CONNECTING, /* connect() in progress */
  STATE_HANDSHAKE,  /* connected, waiting for DONE */
  STATE_READY,
} DovecotState;

typedef struct {
  char *name;  /* owned, upper case */
  guint flags; /* DovecotMechFlags */
} DovecotMech;

typedef struct {
  guint id;
  DovecotClient *client; /* not owned: the client owns the request */
  PstSaslStep *step;     /* nullable: a start()/step() Dovecot must answer */
  char *queued;          /* owned, nullable: the AUTH line, until READY */
  char *session_id;      /* owned: for the logs */
  guint timer;           /* while `step` is pending */
} DovecotRequest;

struct _DovecotClient {
  gint ref_count;
  char *socket_spec;           /* owned: as configured, for the logs */
  GSocketConnectable *address; /* owned */
  guint timeout_ms;
  DovecotState state;
  GCancellable *cancellable;     /* owned, nullable: the connect */
  GSocketConnection *connection; /* owned, nullable */
  GSource *read_source;          /* owned, nullable */
  GSource *write_source;         /* owned, nullable */
  guint handshake_timer;
  guint fail_source; /* a failure found while sending */
  char *fail_reason; /* owned, nullable: its reason */
  GByteArray *input; /* owned: read, not yet a line */
  GString *output;   /* owned: not yet sent */
  gboolean version_seen;
  GPtrArray *offered;    /* owned, of DovecotMech: during the handshake */
  GPtrArray *mechanisms; /* owned, of DovecotMech: the last DONE's, or
                          * NULL before the first */
  GHashTable *requests;  /* owned: id -> DovecotRequest (owned) */
  guint last_id;
  gint64 last_failure;    /* monotonic time of the last failed connection */
  gboolean outage_logged; /* the current failure was logged */
};

static void client_fail(DovecotClient *client, const char *format, ...)
    G_GNUC_PRINTF(2, 3);
static void client_flush(DovecotClient *client);
static void client_fail_soon(DovecotClient *client, const char *reason);

static void mech_free(gpointer data) {
  DovecotMech *mech = data;
  g_free(mech->name);
  g_free(mech);
}

/* --- Requests ---------------------------------------------------------------
 */

static void wipe_free(char *text) {
  if (text != NULL)
    memset(text, 0, strlen(text));
  g_free(text);
}

static void request_free(gpointer data) {
  DovecotRequest *request = data;
  g_assert(request->step == NULL);
  if (request->timer != 0)
    g_source_remove(request->timer);
  wipe_free(request->queued);
  g_free(request->session_id);
  g_free(request);
}

/* Completes the pending step, if any. */
static void request_complete(DovecotRequest *request, PstSaslStatus status,
                             const guint8 *data, gsize length,
                             const char *user) {
  if (request->timer != 0) {
    g_source_remove(request->timer);
    request->timer = 0;
  }
  PstSaslStep *step = g_steal_pointer(&request->step);
  if (step != NULL)
    pst_sasl_step_complete(step, status, data, length, user);
}

static void request_finish(DovecotRequest *request, PstSaslStatus status,
                           const char *user) {
  DovecotClient *client = request->client;
  request_complete(request, status, NULL, 0, user);
  g_hash_table_remove(client->requests, GUINT_TO_POINTER(request->id));
}

/* Queues `line` and sends what the socket takes.  Never fails here (see
 * client_fail_soon()), so callers may hold requests. */
static void client_send(DovecotClient *client, const char *line) {
  if (client->state < STATE_HANDSHAKE || client->fail_source != 0)
    return;
  g_string_append(client->output, line);
  client_flush(client);
}

static gboolean request_timed_out(gpointer data) {
  DovecotRequest *request = data;
  DovecotClient *client = request->client;
  request->timer = 0;
  pst_plugin_log(auth_plugin(), G_LOG_LEVEL_WARNING,
                 "%s: dovecot: no answer from %s within %u ms",
                 request->session_id, client->socket_spec, client->timeout_ms);
  if (request->queued == NULL) {
    g_autofree char *cancel = dovecot_request_cancel(request->id);
    client_send(client, cancel);
  }
  request_finish(request, PST_SASL_TEMPFAIL, NULL);
  return G_SOURCE_REMOVE;
}

/* `step` waits for Dovecot now. */
static void request_wait(DovecotRequest *request, PstSaslStep *step) {
  request->step = step;
  request->timer =
      g_timeout_add(request->client->timeout_ms, request_timed_out, request);
}

static void client_fail_requests(DovecotClient *client) {
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init(&iter, client->requests);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    request_complete(value, PST_SASL_TEMPFAIL, NULL, 0, NULL);
    g_hash_table_iter_remove(&iter);
  }
}

/* --- The connection --------------------------------------------------------
 */

static void client_close(DovecotClient *client) {
  if (client->cancellable != NULL) {
    g_cancellable_cancel(client->cancellable);
    g_clear_object(&client->cancellable);
  }
  if (client->read_source != NULL) {
    g_source_destroy(client->read_source);
    g_clear_pointer(&client->read_source, g_source_unref);
  }
  if (client->write_source != NULL) {
    g_source_destroy(client->write_source);
    g_clear_pointer(&client->write_source, g_source_unref);
  }
  if (client->handshake_timer != 0) {
    g_source_remove(client->handshake_timer);
    client->handshake_timer = 0;
  }
  if (client->fail_source != 0) {
    g_source_remove(client->fail_source);
    client->fail_source = 0;
  }
  g_clear_pointer(&client->fail_reason, g_free);
  if (client->connection != NULL) {
    g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
    g_clear_object(&client->connection);
  }
  g_byte_array_set_size(client->input, 0);
  if (client->output->len > 0)
    memset(client->output->str, 0, client->output->len);
  g_string_truncate(client->output, 0);
  g_ptr_array_set_size(client->offered, 0);
  client->version_seen = FALSE;
  client->state = STATE_IDLE;
}

/* Closes the connection and fails every request waiting on it. */
static void client_fail(DovecotClient *client, const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *reason = g_strdup_vprintf(format, args);
  va_end(args);
  if (!client->outage_logged)
    pst_plugin_log(auth_plugin(), G_LOG_LEVEL_WARNING,
                   "dovecot: %s: %s; AUTH gets 454 4.7.0 until Dovecot "
                   "answers",
                   client->socket_spec, reason);
  client->outage_logged = TRUE;
  client->last_failure = g_get_monotonic_time();
  client_close(client);
  client_fail_requests(client);
}

static gboolean on_writable(GSocket *socket, GIOCondition condition,
                            gpointer data) {
  DovecotClient *client = data;
  g_clear_pointer(&client->write_source, g_source_unref);
  client_flush(client);
  return G_SOURCE_REMOVE;
}

static gboolean on_fail_soon(gpointer data) {
  DovecotClient *client = data;
  client->fail_source = 0;
  g_autofree char *reason = g_steal_pointer(&client->fail_reason);
  client_fail(client, "%s", reason);
  return G_SOURCE_REMOVE;
}

/* A failure found while sending, handled from the main loop: senders are
 * in the middle of walking or finishing requests that client_fail()
 * would free under them. */
static void client_fail_soon(DovecotClient *client, const char *reason) {
  if (client->fail_source != 0)
    return;
  client->fail_reason = g_strdup(reason);
  client->fail_source = g_idle_add(on_fail_soon, client);
}

/* Sends what it can of `output`; waits for the socket for the rest. */
static void client_flush(DovecotClient *client) {
  if (client->write_source != NULL || client->connection == NULL ||
      client->fail_source != 0)
    return;
  GSocket *socket = g_socket_connection_get_socket(client->connection);
  while (client->output->len > 0) {
    g_autoptr(GError) error = NULL;
    gssize sent = g_socket_send(socket, client->output->str,
                                client->output->len, NULL, &error);
    if (sent < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      break;
    if (sent <= 0) {
      g_autofree char *reason = g_strdup_printf(
          "cannot send: %s", error != NULL ? error->message : "closed");
      client_fail_soon(client, reason);
      return;
    }
    memset(client->output->str, 0, (gsize)sent);
    g_string_erase(client->output, 0, sent);
  }
  if (client->output->len == 0)
    return;
  if (client->output->len > MAX_OUTPUT) {
    client_fail_soon(client, "Dovecot does not read its socket");
    return;
  }
  client->write_source = g_socket_create_source(socket, G_IO_OUT, NULL);
  g_source_set_callback(client->write_source, G_SOURCE_FUNC(on_writable),
                        client, NULL);
  g_source_attach(client->write_source, NULL);
}

/* --- What Dovecot says -----------------------------------------------------
 */

static void client_ready(DovecotClient *client) {
  if (client->offered->len == 0) {
    client_fail(client, "Dovecot offers no mechanism");
    return;
  }
  g_clear_pointer(&client->mechanisms, g_ptr_array_unref);
  client->mechanisms = g_steal_pointer(&client->offered);
  client->offered = g_ptr_array_new_with_free_func(mech_free);
  client->state = STATE_READY;
  client->outage_logged = FALSE;
  g_source_remove(client->handshake_timer);
  client->handshake_timer = 0;
  g_autofree char *over_tls = dovecot_client_list(client, TRUE, NULL, NULL);
  g_autofree char *clear = dovecot_client_list(client, FALSE, NULL, NULL);
  pst_plugin_log(auth_plugin(), G_LOG_LEVEL_INFO,
                 "dovecot: connected to %s; it offers over TLS: %s; "
                 "without TLS: %s",
                 client->socket_spec, over_tls, *clear ? clear : "none");
  /* Exchanges that waited for the connection. */
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init(&iter, client->requests);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    DovecotRequest *request = value;
    if (request->queued == NULL)
      continue;
    client_send(client, request->queued);
    g_clear_pointer(&request->queued, wipe_free);
  }
}

static gboolean handle_handshake(DovecotClient *client, DovecotReply *reply) {
  if (!client->version_seen) {
    if (reply->kind != DOVECOT_REPLY_VERSION ||
        reply->major != DOVECOT_MAJOR_VERSION) {
      client_fail(client,
                  "not Dovecot's authentication protocol version %u "
                  "(is this the auth-client socket?)",
                  DOVECOT_MAJOR_VERSION);
      return FALSE;
    }
    client->version_seen = TRUE;
    return TRUE;
  }
  switch (reply->kind) {
  case DOVECOT_REPLY_MECH:
    if (client->offered->len >= MAX_MECHANISMS) {
      client_fail(client, "more than %u mechanisms", MAX_MECHANISMS);
      return FALSE;
    }
    DovecotMech *mech = g_new0(DovecotMech, 1);
    mech->name = g_steal_pointer(&reply->mechanism);
    mech->flags = reply->mech_flags;
    g_ptr_array_add(client->offered, mech);
    return TRUE;
  case DOVECOT_REPLY_DONE:
    client_ready(client);
    return client->state == STATE_READY;
  case DOVECOT_REPLY_OK:
  case DOVECOT_REPLY_CONT:
  case DOVECOT_REPLY_FAIL:
  case DOVECOT_REPLY_VERSION:
    client_fail(client, "%s before the end of the handshake", reply->command);
    return FALSE;
  default:
    return TRUE; /* SPID, CUID, COOKIE, unknown: nothing we use */
  }
}

static void handle_fail(DovecotRequest *request, DovecotReply *reply) {
  if (reply->temporary || reply->reason != NULL)
    pst_plugin_log(auth_plugin(),
                   reply->temporary ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
                   "%s: dovecot: %s%s%s", request->session_id,
                   reply->temporary ? "temporary failure" : "failed",
                   reply->reason != NULL ? ": " : "",
                   reply->reason != NULL ? reply->reason : "");
  request_finish(request,
                 reply->temporary ? PST_SASL_TEMPFAIL : PST_SASL_BADAUTH, NULL);
}

static gboolean handle_reply(DovecotClient *client, DovecotReply *reply) {
  if (client->state == STATE_HANDSHAKE)
    return handle_handshake(client, reply);
  if (reply->kind == DOVECOT_REPLY_UNKNOWN)
    return TRUE;
  if (reply->kind != DOVECOT_REPLY_OK && reply->kind != DOVECOT_REPLY_CONT &&
      reply->kind != DOVECOT_REPLY_FAIL) {
    client_fail(client, "%s after the handshake", reply->command);
    return FALSE;
  }
  DovecotRequest *request =
      g_hash_table_lookup(client->requests, GUINT_TO_POINTER(reply->id));
  /* A request that timed out or whose client left: its answer is late. */
  if (request == NULL || request->step == NULL)
    return TRUE;
  if (reply->kind == DOVECOT_REPLY_CONT)
    request_complete(request, PST_SASL_CONTINUE, reply->data,
                     reply->data_length, NULL);
  else if (reply->kind == DOVECOT_REPLY_OK)
    request_finish(request, PST_SASL_OK, reply->user);
  else
    handle_fail(request, reply);
  return TRUE;
}

/* Handles each complete line in `input`; FALSE once the connection
 * failed. */
static gboolean client_read_lines(DovecotClient *client) {
  while (client->state >= STATE_HANDSHAKE) {
    guint8 *newline = memchr(client->input->data, '\n', client->input->len);
    if (newline == NULL) {
      if (client->input->len <= DOVECOT_MAX_LINE)
        return TRUE;
      client_fail(client, "a line longer than %u octets", DOVECOT_MAX_LINE);
      return FALSE;
    }
    gsize length = (gsize)(newline - client->input->data);
    g_autoptr(GError) error = NULL;
    g_autoptr(DovecotReply) reply =
        dovecot_reply_parse((const char *)client->input->data, length, &error);
    g_byte_array_remove_range(client->input, 0, (guint)length + 1);
    if (reply == NULL) {
      client_fail(client, "protocol error: %s", error->message);
      return FALSE;
    }
    if (!handle_reply(client, reply))
      return FALSE;
  }
  return FALSE;
}

static gboolean on_readable(GSocket *socket, GIOCondition condition,
                            gpointer data) {
  DovecotClient *client = data;
  for (int round = 0; round < 16; round++) {
    guint8 buffer[4096];
    g_autoptr(GError) error = NULL;
    gssize got =
        g_socket_receive(socket, (char *)buffer, sizeof buffer, NULL, &error);
    if (got < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return G_SOURCE_CONTINUE;
    if (got <= 0) {
      /* client_fail() destroys this source: it must not be removed twice. */
      client_fail(client, "%s",
                  got == 0 ? "Dovecot closed the connection" : error->message);
      return G_SOURCE_CONTINUE;
    }
    g_byte_array_append(client->input, buffer, (guint)got);
    if (!client_read_lines(client))
      return G_SOURCE_CONTINUE;
  }
  return G_SOURCE_CONTINUE;
}

/* --- Connecting -------------------------------------------------------------
 */

static gboolean on_handshake_timeout(gpointer data) {
  DovecotClient *client = data;
  client->handshake_timer = 0;
  client_fail(client, "no handshake within %u ms", client->timeout_ms);
  return G_SOURCE_REMOVE;
}

static void client_start_session(DovecotClient *client,
                                 GSocketConnection *connection) {
  client->connection = connection;
  client->state = STATE_HANDSHAKE;
  GSocket *socket = g_socket_connection_get_socket(connection);
  g_socket_set_blocking(socket, FALSE);
  client->read_source = g_socket_create_source(socket, G_IO_IN, NULL);
  g_source_set_callback(client->read_source, G_SOURCE_FUNC(on_readable), client,
                        NULL);
  g_source_attach(client->read_source, NULL);
  g_autofree char *hello = dovecot_request_handshake((guint)getpid());
  client_send(client, hello);
}

static void on_connected(GObject *source, GAsyncResult *result, gpointer data) {
  DovecotClient *client = data;
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection =
      g_socket_client_connect_finish(G_SOCKET_CLIENT(source), result, &error);
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    dovecot_client_unref(client);
    return;
  }
  g_clear_object(&client->cancellable);
  if (connection == NULL)
    client_fail(client, "cannot connect: %s", error->message);
  else
    client_start_session(client, connection);
  dovecot_client_unref(client);
}

void dovecot_client_connect(DovecotClient *client) {
  if (client->state != STATE_IDLE ||
      g_get_monotonic_time() - client->last_failure < RECONNECT_INTERVAL_US)
    return;
  client->state = STATE_CONNECTING;
  client->cancellable = g_cancellable_new();
  g_autoptr(GSocketClient) socket_client = g_socket_client_new();
  g_socket_client_connect_async(socket_client, client->address,
                                client->cancellable, on_connected,
                                dovecot_client_ref(client));
  client->handshake_timer =
      g_timeout_add(client->timeout_ms, on_handshake_timeout, client);
}

/* --- The client's life -------------------------------------------------------
 */

/* "/path" or "inet:HOST:PORT" ("inet:[::1]:PORT" for IPv6). */
static GSocketConnectable *parse_socket(const char *spec, GError **error) {
  if (g_path_is_absolute(spec))
    return G_SOCKET_CONNECTABLE(g_unix_socket_address_new(spec));
  if (g_str_has_prefix(spec, "inet:")) {
    const char *rest = spec + strlen("inet:");
    const char *colon = strrchr(rest, ':');
    guint64 port = 0;
    if (colon != NULL && colon > rest &&
        g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &port, NULL)) {
      g_autofree char *host = g_strndup(rest, (gsize)(colon - rest));
      if (host[0] == '[' && g_str_has_suffix(host, "]")) {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
      }
      if (*host != '\0')
        return g_network_address_new(host, (guint16)port);
    }
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
              "the absolute path of Dovecot's auth-client socket "
              "(/run/dovecot/auth-client) or inet:HOST:PORT");
  return NULL;
}

DovecotClient *dovecot_client_new(const char *socket_spec, guint timeout_ms,
                                  GError **error) {
  GSocketConnectable *address = parse_socket(socket_spec, error);
  if (address == NULL)
    return NULL;
  DovecotClient *client = g_new0(DovecotClient, 1);
  client->ref_count = 1;
  client->socket_spec = g_strdup(socket_spec);
  client->address = address;
  client->timeout_ms = timeout_ms;
  client->input = g_byte_array_new();
  client->output = g_string_new(NULL);
  client->offered = g_ptr_array_new_with_free_func(mech_free);
  client->requests =
      g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, request_free);
  client->last_failure = G_MININT64 / 2;
  return client;
}

DovecotClient *dovecot_client_ref(DovecotClient *client) {
  client->ref_count++;
  return client;
}

void dovecot_client_unref(DovecotClient *client) {
  if (client == NULL || --client->ref_count > 0)
    return;
  client_close(client);
  client_fail_requests(client);
  g_hash_table_unref(client->requests);
  g_ptr_array_unref(client->offered);
  g_clear_pointer(&client->mechanisms, g_ptr_array_unref);
  g_byte_array_unref(client->input);
  g_string_free(client->output, TRUE);
  g_object_unref(client->address);
  g_free(client->socket_spec);
  g_free(client);
}

/* --- The SASL service's side
 * --------------------------------------------------
 */

static gboolean mech_is_plaintext(const DovecotMech *mech) {
  return (mech->flags & DOVECOT_MECH_PLAINTEXT) != 0 ||
         strcmp(mech->name, "PLAIN") == 0 || strcmp(mech->name, "LOGIN") == 0;
}

/* A mechanism an SMTP client may use: not Dovecot-internal, not
 * anonymous, not EXTERNAL (a TLS client certificate: not passed on). */
static gboolean mech_is_offered(const DovecotMech *mech) {
  return (mech->flags & (DOVECOT_MECH_PRIVATE | DOVECOT_MECH_ANONYMOUS)) == 0 &&
         strcmp(mech->name, "ANONYMOUS") != 0 &&
         strcmp(mech->name, "EXTERNAL") != 0;
}

static const DovecotMech *find_mech(DovecotClient *client, const char *name) {
  if (client->mechanisms == NULL)
    return NULL;
  for (guint i = 0; i < client->mechanisms->len; i++) {
    const DovecotMech *mech = client->mechanisms->pdata[i];
    if (strcmp(mech->name, name) == 0 && mech_is_offered(mech))
      return mech;
  }
  return NULL;
}

char *dovecot_client_list(DovecotClient *client, gboolean plaintext_allowed,
                          char **wanted, char **fallback) {
  g_autoptr(GString) out = g_string_new(NULL);
  if (client->mechanisms == NULL) {
    /* Never connected yet: what the admin expects, so that clients try
     * and get 454 rather than send without AUTH. */
    for (guint i = 0; fallback != NULL && fallback[i] != NULL; i++) {
      DovecotMech guess = {.name = fallback[i]};
      if (plaintext_allowed || !mech_is_plaintext(&guess))
        g_string_append_printf(out, "%s%s", out->len ? " " : "", fallback[i]);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
  }
  guint count =
      wanted != NULL ? g_strv_length(wanted) : client->mechanisms->len;
  for (guint i = 0; i < count; i++) {
    const DovecotMech *mech = wanted != NULL ? find_mech(client, wanted[i])
                                             : client->mechanisms->pdata[i];
    if (mech == NULL || !mech_is_offered(mech) ||
        (!plaintext_allowed && mech_is_plaintext(mech)))
      continue;
    g_string_append_printf(out, "%s%s", out->len ? " " : "", mech->name);
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static guint client_new_id(DovecotClient *client) {
  do
    client->last_id++;
  while (client->last_id == 0 ||
         g_hash_table_contains(client->requests,
                               GUINT_TO_POINTER(client->last_id)));
  return client->last_id;
}

guint dovecot_client_start(DovecotClient *client, DovecotAuthRequest *params,
                           PstSaslStep *step) {
  if (client->mechanisms != NULL &&
      find_mech(client, params->mechanism) == NULL) {
    pst_sasl_step_complete(step, PST_SASL_NOMECH, NULL, 0, NULL);
    return 0;
  }
  dovecot_client_connect(client);
  if (client->state == STATE_IDLE ||
      g_hash_table_size(client->requests) >= MAX_REQUESTS) {
    pst_sasl_step_complete(step, PST_SASL_TEMPFAIL, NULL, 0, NULL);
    return 0;
  }
  DovecotRequest *request = g_new0(DovecotRequest, 1);
  request->client = client;
  request->id = params->id = client_new_id(client);
  request->session_id = g_strdup(params->session);
  g_hash_table_insert(client->requests, GUINT_TO_POINTER(request->id), request);
  request_wait(request, step);
  g_autofree char *line = dovecot_request_auth(params);
  if (client->state == STATE_READY)
    client_send(client, line);
  else
    request->queued = g_strdup(line);
  memset(line, 0, strlen(line));
  return request->id;
}

void dovecot_client_step(DovecotClient *client, guint id,
                         const guint8 *response, gsize length,
                         PstSaslStep *step) {
  DovecotRequest *request =
      id != 0 ? g_hash_table_lookup(client->requests, GUINT_TO_POINTER(id))
              : NULL;
  if (request == NULL || request->step != NULL || request->queued != NULL) {
    /* No exchange waiting for a response (Dovecot went away: 454). */
    pst_sasl_step_complete(step,
                           request == NULL && client->state != STATE_READY
                               ? PST_SASL_TEMPFAIL
                               : PST_SASL_BADPROT,
                           NULL, 0, NULL);
    return;
  }
  request_wait(request, step);
  g_autofree char *line = dovecot_request_cont(id, response, length);
  client_send(client, line);
  memset(line, 0, strlen(line));
}

void dovecot_client_abort(DovecotClient *client, guint id) {
  DovecotRequest *request =
      id != 0 ? g_hash_table_lookup(client->requests, GUINT_TO_POINTER(id))
              : NULL;
  if (request == NULL)
    return;
  if (request->queued == NULL) {
    g_autofree char *cancel = dovecot_request_cancel(id);
    client_send(client, cancel);
  }
  request_finish(request, PST_SASL_TEMPFAIL, NULL);
}
