/* lmtp.c - the LMTP client (RFC 2033): one message to many recipients of a
 * local store (Dovecot's dovecot-lmtp, or any LMTP server).
 *
 * Entry point: pst_lmtp_deliver(), called by delivery-job.c on a worker
 * thread; it blocks (GSocketClient with a 60 s timeout per operation).
 * The server is hostile like any peer: reply lines are read with a length
 * limit (512 octets per RFC 5321, we allow 4096) and a limit on lines per
 * reply, and anything that is not "DDD[ -]text" ends the session as a
 * temporary failure.  After DATA, LMTP gives one reply per accepted
 * recipient, so each target gets its own result: 250 for one and 452 for
 * another means only the second is retried.
 */
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "deliver/delivery-job.h"

#define LINE_MAX_OCTETS 4096
#define REPLY_MAX_LINES 100
#define TIMEOUT_SECONDS 60

typedef struct {
  GSocketConnection *connection; /* owned */
  GBufferedInputStream *input;   /* owned */
  GOutputStream *output;         /* borrowed from the connection */
} LmtpClient;

static void lmtp_client_clear(LmtpClient *client) {
  g_clear_object(&client->input);
  if (client->connection != NULL)
    g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  g_clear_object(&client->connection);
}

static GSocketConnectable *lmtp_address(const char *where, GError **error) {
  if (g_str_has_prefix(where, "unix:"))
    return G_SOCKET_CONNECTABLE(g_unix_socket_address_new(where + 5));
  return g_network_address_parse(where, 24, error);
}

static gboolean lmtp_connect(LmtpClient *client, const char *where,
                             GError **error) {
  g_autoptr(GSocketConnectable) address = lmtp_address(where, error);
  if (address == NULL)
    return FALSE;
  g_autoptr(GSocketClient) socket_client = g_socket_client_new();
  g_socket_client_set_timeout(socket_client, TIMEOUT_SECONDS);
  client->connection =
      g_socket_client_connect(socket_client, address, NULL, error);
  if (client->connection == NULL) {
    g_prefix_error(error, "LMTP server %s: ", where);
    return FALSE;
  }
  client->input = G_BUFFERED_INPUT_STREAM(g_buffered_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(client->connection))));
  client->output =
      g_io_stream_get_output_stream(G_IO_STREAM(client->connection));
  return TRUE;
}

/* One line without its CRLF; fails on a line too long. */
static char *lmtp_read_line(LmtpClient *client, GError **error) {
  GString *line = g_string_new(NULL);
  while (line->len <= LINE_MAX_OCTETS) {
    int c = g_buffered_input_stream_read_byte(client->input, NULL, error);
    if (c < 0) {
      if (error != NULL && *error == NULL)
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                    "the LMTP server closed the connection");
      g_string_free(line, TRUE);
      return NULL;
    }
    if (c == '\n') {
      if (line->len > 0 && line->str[line->len - 1] == '\r')
        g_string_truncate(line, line->len - 1);
      return g_string_free(line, FALSE);
    }
    g_string_append_c(line, (char)c);
  }
  g_string_free(line, TRUE);
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "the LMTP server sent a line longer than %d octets",
              LINE_MAX_OCTETS);
  return NULL;
}

/* A whole (multi-line) reply: "CODE text of the last line". */
static char *lmtp_read_reply(LmtpClient *client, GError **error) {
  for (guint n = 0; n < REPLY_MAX_LINES; n++) {
    g_autofree char *line = lmtp_read_line(client, error);
    if (line == NULL)
      return NULL;
    if (strlen(line) < 3 || !g_ascii_isdigit(line[0]) || line[0] < '2' ||
        line[0] > '5' || !g_ascii_isdigit(line[1]) ||
        !g_ascii_isdigit(line[2]) ||
        (line[3] != '\0' && line[3] != ' ' && line[3] != '-') ||
        !g_utf8_validate(line, -1, NULL)) {
      g_autofree char *shown = g_strescape(line, NULL);
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "the LMTP server replied garbage: \"%.80s\"", shown);
      return NULL;
    }
    if (line[3] != '-')
      return g_steal_pointer(&line);
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "the LMTP server sent a reply of more than %d lines",
              REPLY_MAX_LINES);
  return NULL;
}

static gboolean lmtp_send(LmtpClient *client, const char *data, gsize length,
                          GError **error) {
  return g_output_stream_write_all(client->output, data, length, NULL, NULL,
                                   error);
}

/* Sends a command and reads its reply. */
static char *lmtp_command(LmtpClient *client, GError **error,
                          const char *format, ...) G_GNUC_PRINTF(3, 4);
static char *lmtp_command(LmtpClient *client, GError **error,
                          const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *line = g_strdup_vprintf(format, args);
  va_end(args);
  g_autofree char *wire = g_strconcat(line, "\r\n", NULL);
  if (!lmtp_send(client, wire, strlen(wire), error))
    return NULL;
  return lmtp_read_reply(client, error);
}

/* The content, dot-stuffed, then the final dot. */
static gboolean lmtp_send_content(LmtpClient *client, GBytes *content,
                                  GError **error) {
  gsize length = 0;
  const char *data = g_bytes_get_data(content, &length);
  GString *out = g_string_sized_new(length + length / 50 + 8);
  gboolean line_start = TRUE;
  for (gsize i = 0; i < length; i++) {
    if (line_start && data[i] == '.')
      g_string_append_c(out, '.');
    g_string_append_c(out, data[i]);
    line_start = data[i] == '\n';
  }
  if (!line_start)
    g_string_append(out, "\r\n");
  g_string_append(out, ".\r\n");
  gboolean ok = lmtp_send(client, out->str, out->len, error);
  g_string_free(out, TRUE);
  return ok;
}

static gboolean lmtp_expect(char *reply, char first, GPtrArray *targets,
                            GPtrArray *replies) {
  if (reply[0] == first)
    return TRUE;
  for (guint i = replies->len; i < targets->len; i++)
    g_ptr_array_add(replies, g_strdup(reply));
  return FALSE;
}

/* The session after the greeting; TRUE once every target has a reply. */
static gboolean lmtp_transaction(LmtpClient *client, const char *sender,
                                 GPtrArray *targets, GBytes *content,
                                 GPtrArray *replies, GError **error) {
  g_autofree char *reply =
      lmtp_command(client, error, "LHLO %s", g_get_host_name());
  if (reply == NULL || !lmtp_expect(reply, '2', targets, replies))
    return reply != NULL;
  g_free(reply);
  reply = lmtp_command(client, error, "MAIL FROM:<%s>", sender);
  if (reply == NULL || !lmtp_expect(reply, '2', targets, replies))
    return reply != NULL;
  g_autoptr(GArray) accepted = g_array_new(FALSE, FALSE, sizeof(guint));
  for (guint i = 0; i < targets->len; i++) {
    const PstTarget *target = targets->pdata[i];
    char *rcpt = lmtp_command(client, error, "RCPT TO:<%s>", target->address);
    if (rcpt == NULL)
      return FALSE;
    g_ptr_array_add(replies, rcpt);
    if (rcpt[0] == '2')
      g_array_append_val(accepted, i);
  }
  if (accepted->len == 0)
    return TRUE;
  g_free(reply);
  reply = lmtp_command(client, error, "DATA");
  if (reply == NULL)
    return FALSE;
  if (reply[0] != '3') {
    for (guint i = 0; i < accepted->len; i++) {
      guint index = g_array_index(accepted, guint, i);
      g_free(replies->pdata[index]);
      replies->pdata[index] = g_strdup(reply);
    }
    return TRUE;
  }
  if (!lmtp_send_content(client, content, error))
    return FALSE;
  for (guint i = 0; i < accepted->len; i++) {
    char *final = lmtp_read_reply(client, error);
    if (final == NULL)
      return FALSE;
    guint index = g_array_index(accepted, guint, i);
    g_free(replies->pdata[index]);
    replies->pdata[index] = final;
  }
  return TRUE;
}

gboolean pst_lmtp_deliver(const char *where, const char *sender,
                          GPtrArray *targets, GBytes *content,
                          GPtrArray *replies, GError **error) {
  LmtpClient client = {0};
  gboolean ok = lmtp_connect(&client, where, error);
  g_autofree char *greeting = ok ? lmtp_read_reply(&client, error) : NULL;
  ok = greeting != NULL;
  if (ok && greeting[0] != '2') {
    ok = FALSE;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the LMTP server %s greeted with \"%s\"", where, greeting);
  }
  if (ok)
    ok = lmtp_transaction(&client, sender, targets, content, replies, error);
  if (ok) {
    g_autofree char *bye = lmtp_command(&client, NULL, "QUIT");
  }
  lmtp_client_clear(&client);
  if (!ok)
    g_ptr_array_set_size(replies, 0);
  return ok;
}
