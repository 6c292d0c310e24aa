/* control.c - the control socket (see control.h).
 *
 * Entry points: pst_control_new()/free() (the daemon), pst_control_handle()
 * (one request line to one reply line; "plugins" is answered here, from
 * the daemon's describe callback, with several lines).  Each connection is
 * read asynchronously on the main loop (one line of at most 1024 octets),
 * answered, and closed; the actions themselves are the queue manager's.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>

#include "deliver/control.h"

#define REQUEST_MAX 1024

struct _PstControl {
  char *path;               /* owned */
  GSocketService *service;  /* owned */
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

static gboolean control_incoming(GSocketService *service,
                                 GSocketConnection *connection, GObject *source,
                                 gpointer user_data) {
  ControlClient *client = g_new0(ControlClient, 1);
  client->control = user_data;
  client->connection = g_object_ref(connection);
  client->input = g_data_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(connection)));
  g_data_input_stream_read_line_async(client->input, G_PRIORITY_DEFAULT, NULL,
                                      control_read_done, client);
  return TRUE;
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
  g_autoptr(GSocketService) service = g_socket_service_new();
  mode_t old = umask(0177);
  gboolean ok = g_socket_listener_add_address(
      G_SOCKET_LISTENER(service), address, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, error);
  umask(old);
  if (!ok) {
    g_prefix_error(error, "control socket %s: ", path);
    return NULL;
  }
  PstControl *control = g_new0(PstControl, 1);
  control->path = g_strdup(path);
  control->manager = manager;
  control->service = g_steal_pointer(&service);
  g_signal_connect(control->service, "incoming", G_CALLBACK(control_incoming),
                   control);
  g_socket_service_start(control->service);
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
  g_socket_service_stop(control->service);
  g_socket_listener_close(G_SOCKET_LISTENER(control->service));
  g_object_unref(control->service);
  unlink(control->path);
  g_free(control->path);
  g_free(control);
}
