/* control.c - the control socket (see control.h).
 *
 * Entry points: pst_control_new()/free() (the daemon), pst_control_handle()
 * (one request line to one reply line; "plugins" is answered here, from
 * the daemon's describe callback, with several lines).  Each connection is
 * read asynchronously on the main loop (one line of at most 1024 octets),
 * answered, and closed; the actions themselves are the queue manager's.
 *
 * The listening socket is watched by a plain descriptor source, not a
 * GSocketService: that one is two sources (its GSocket source and a
 * cancellable's child source) with prepare and check functions, and the
 * main loop walks every attached source twice in every iteration, a
 * cost each message paid although the socket is used a few times a day.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>

#include "deliver/control.h"

#define REQUEST_MAX 1024
/* Connections accepted per wake-up, at most. */
#define ACCEPT_MAX 16

struct _PstControl {
  char *path;               /* owned */
  GSocket *socket;          /* owned: listening, non-blocking */
  GSource *watch;           /* owned, attached */
  PstQueueManager *manager; /* borrowed: outlives the control socket */
  PstControlDescribeFunc describe; /* nullable: "plugins" */
  gpointer describe_data;
};

typedef struct {
  PstControl *control;
  GSocketConnection *connection; /* owned */
  GDataInputStream *input;       /* owned */
} ControlClient;

static void control_client_free(ControlClient *client) {
  g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  g_object_unref(client->input);
  g_object_unref(client->connection);
  g_free(client);
}

char *pst_control_handle(PstQueueManager *manager, const char *request) {
  g_auto(GStrv) words = g_strsplit(request, " ", 3);
  const char *verb = words[0] != NULL ? words[0] : "";
  const char *id = words[0] != NULL ? words[1] : NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;
  if (g_str_equal(verb, "ping"))
    return g_strdup("ok pong");
  if (g_str_equal(verb, "flush"))
    ok = pst_queue_manager_flush(manager, id, &error);
  else if (id == NULL)
    return g_strdup_printf("error \"%s\" needs a queue id (or is unknown)",
                           verb);
  else if (g_str_equal(verb, "hold"))
    ok = pst_queue_manager_hold(manager, id, &error);
  else if (g_str_equal(verb, "release"))
    ok = pst_queue_manager_release(manager, id, &error);
  else if (g_str_equal(verb, "delete"))
    ok = pst_queue_manager_delete(manager, id, &error);
  else
    return g_strdup_printf("error unknown request \"%s\"", verb);
  if (!ok)
    return g_strdup_printf("error %s", error->message);
  return g_strdup("ok");
}

static void control_read_done(GObject *source, GAsyncResult *result,
                              gpointer user_data) {
  ControlClient *client = user_data;
  gsize length = 0;
  g_autofree char *line = g_data_input_stream_read_line_finish(
      client->input, result, &length, NULL);
  g_autofree char *reply = NULL;
  PstControl *control = client->control;
  if (line == NULL || length > REQUEST_MAX) {
    reply = g_strdup("error no request line");
  } else if (g_str_equal(g_strchomp(line), "plugins") &&
             control->describe != NULL) {
    GString *text = g_string_new("ok\n");
    control->describe(text, control->describe_data);
    g_strchomp(text->str);
    text->len = strlen(text->str);
    reply = g_string_free(text, FALSE);
  } else {
    reply = pst_control_handle(control->manager, line);
  }
  g_autofree char *wire = g_strconcat(reply, "\n", NULL);
  GOutputStream *output =
      g_io_stream_get_output_stream(G_IO_STREAM(client->connection));
  /* A local, short reply: the socket buffer takes it at once. */
  g_output_stream_write_all(output, wire, strlen(wire), NULL, NULL, NULL);
  control_client_free(client);
}

static void control_incoming(PstControl *control,
                             GSocketConnection *connection) {
  ControlClient *client = g_new0(ControlClient, 1);
  client->control = control;
  client->connection = connection;
  client->input = g_data_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(connection)));
  g_data_input_stream_read_line_async(client->input, G_PRIORITY_DEFAULT, NULL,
                                      control_read_done, client);
}

/* The listening socket is readable: the connections waiting, each read
 * asynchronously like GSocketService's. */
static gboolean control_accept(gint fd, GIOCondition condition,
                               gpointer user_data) {
  PstControl *control = user_data;
  for (int i = 0; i < ACCEPT_MAX; i++) {
    g_autoptr(GError) error = NULL;
    GSocket *socket = g_socket_accept(control->socket, NULL, &error);
    if (socket == NULL) {
      if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_warning("control socket %s: cannot accept: %s", control->path,
                  error->message);
      break;
    }
    control_incoming(control,
                     g_socket_connection_factory_create_connection(socket));
    g_object_unref(socket);
  }
  return G_SOURCE_CONTINUE;
}

/* A listening Unix stream socket at `address`, mode 0600. */
static GSocket *control_listen(GSocketAddress *address, GError **error) {
  g_autoptr(GSocket) socket =
      g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                   G_SOCKET_PROTOCOL_DEFAULT, error);
  if (socket == NULL)
    return NULL;
  mode_t old = umask(0177);
  gboolean ok = g_socket_bind(socket, address, TRUE, error);
  umask(old);
  if (!ok || !g_socket_listen(socket, error))
    return NULL;
  g_socket_set_blocking(socket, FALSE);
  return g_steal_pointer(&socket);
}

PstControl *pst_control_new(const char *path, PstQueueManager *manager,
                            GError **error) {
  if (unlink(path) < 0 && errno != ENOENT) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot remove the old control socket %s: %s", path,
                g_strerror(errno));
    return NULL;
  }
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  GSocket *socket = control_listen(address, error);
  if (socket == NULL) {
    g_prefix_error(error, "control socket %s: ", path);
    return NULL;
  }
  PstControl *control = g_new0(PstControl, 1);
  control->path = g_strdup(path);
  control->manager = manager;
  control->socket = socket;
  control->watch = g_unix_fd_source_new(g_socket_get_fd(socket), G_IO_IN);
  g_source_set_callback(control->watch, G_SOURCE_FUNC(control_accept), control,
                        NULL);
  g_source_set_static_name(control->watch, "postilion control");
  g_source_attach(control->watch, NULL);
  return control;
}

void pst_control_set_describe(PstControl *control, PstControlDescribeFunc func,
                              gpointer user_data) {
  control->describe = func;
  control->describe_data = user_data;
}

void pst_control_free(PstControl *control) {
  if (control == NULL)
    return;
  g_source_destroy(control->watch);
  g_source_unref(control->watch);
  g_socket_close(control->socket, NULL);
  g_object_unref(control->socket);
  unlink(control->path);
  g_free(control->path);
  g_free(control);
}
