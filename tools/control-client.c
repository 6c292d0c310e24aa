/* control-client.c - the `postilion` command's end of the control socket.
 *
 * The daemon listens on SPOOL/control (core/deliver/control.c), a unix
 * socket that only its user and root may use: one request line, an
 * answer, then the daemon closes.  queue-cmd.c and plugins-cmd.c ask
 * through pst_tool_control_send() and read the answer their own way (one
 * line, or everything up to the close).
 */
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "tools/postilion-tool.h"

char *pst_tool_control_path(const PstConfig *config) {
  return g_build_filename(config->server.spool, "control", NULL);
}

GSocketConnection *pst_tool_control_send(const PstConfig *config,
                                         const char *request,
                                         gboolean *unreachable_r,
                                         GError **error) {
  g_autofree char *path = pst_tool_control_path(config);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, 30);
  *unreachable_r = FALSE;
  g_autoptr(GSocketConnection) connection = g_socket_client_connect(
      client, G_SOCKET_CONNECTABLE(address), NULL, error);
  if (connection == NULL) {
    *unreachable_r = TRUE;
    return NULL;
  }
  g_autofree char *line = g_strconcat(request, "\n", NULL);
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(connection));
  if (!g_output_stream_write_all(out, line, strlen(line), NULL, NULL, error))
    return NULL;
  return g_steal_pointer(&connection);
}
