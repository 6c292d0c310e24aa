/* queue-cmd.c - `postilion queue ...` and `postilion check-config`.
 *
 * list and show read the spool with pst_spool_open_readonly() and the
 * state journals (queue/state-journal.h): no lock, nothing written, safe
 * while the daemon runs and working while it is down.  flush, delete,
 * hold and release are requests on the daemon's control socket
 * (core/deliver/control.h), so the daemon, which owns the spool, makes
 * every change.  check-config loads the configuration and the mailbox and
 * alias tables it names, as the daemon would.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "tables/tables.h"
#include "queue/spool.h"
#include "queue/state-journal.h"
#include "tools/postilion-tool.h"

static char *format_age(gint64 arrival) {
  gint64 seconds = (g_get_real_time() - arrival) / G_USEC_PER_SEC;
  if (seconds < 120)
    return g_strdup_printf("%" G_GINT64_FORMAT "s", MAX(seconds, 0));
  if (seconds < 7200)
    return g_strdup_printf("%" G_GINT64_FORMAT "m", seconds / 60);
  if (seconds < 172800)
    return g_strdup_printf("%" G_GINT64_FORMAT "h", seconds / 3600);
  return g_strdup_printf("%" G_GINT64_FORMAT "d", seconds / 86400);
}

static void print_message(PstSpool *spool, PstSpoolQueue queue,
                          const char *id) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(spool, queue, id, &error);
  const char *queue_name = queue == PST_SPOOL_QUEUE_HOLD ? "hold" : "active";
  if (message == NULL) {
    printf("%s  %s  (cannot read: %s)\n", id, queue_name, error->message);
    return;
  }
  const PstEnvelope *envelope = pst_queued_message_get_envelope(message);
  g_autofree char *path =
      g_build_filename(pst_spool_get_directory(spool),
                       queue_name[0] == 'h' ? "hold" : "queue", id, NULL);
  GStatBuf st = {0};
  g_stat(path, &st);
  g_autofree char *age = format_age(envelope->arrival_time);
  printf("%s  %-6s  %8" G_GINT64_FORMAT "  %4s  <%s>\n", id, queue_name,
         (gint64)st.st_size, age, envelope->sender);
  guint n = envelope->recipients->len;
  g_autoptr(GPtrArray) records =
      pst_state_journal_read(pst_spool_get_directory(spool), id, FALSE, NULL);
  g_autoptr(GPtrArray) none =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  PstRecipientState *states =
      pst_recipient_states_fold(records != NULL ? records : none, n);
  for (guint i = 0; i < n; i++) {
    const PstEnvelopeRecipient *recipient = envelope->recipients->pdata[i];
    printf("    <%s>  %s", recipient->address,
           pst_recipient_status_name(states[i].status));
    if (states[i].attempts > 0)
      printf("  attempts=%u", states[i].attempts);
    if (states[i].reply != NULL)
      printf("  (%s)", states[i].reply);
    putchar('\n');
  }
  pst_recipient_states_free(states, n);
}

static int queue_list(PstSpool *spool) {
  guint total = 0;
  for (PstSpoolQueue queue = PST_SPOOL_QUEUE_ACTIVE;
       queue <= PST_SPOOL_QUEUE_HOLD; queue++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) ids = pst_spool_list(spool, queue, &error);
    if (ids == NULL) {
      fprintf(stderr, "postilion: %s\n", error->message);
      return PST_EXIT_OSERR;
    }
    for (guint i = 0; i < ids->len; i++)
      print_message(spool, queue, ids->pdata[i]);
    total += ids->len;
  }
  printf(total == 0 ? "Mail queue is empty\n" : "-- %u message%s\n", total,
         total == 1 ? "" : "s");
  return PST_EXIT_OK;
}

static int queue_show(PstSpool *spool, const char *id) {
  PstSpoolQueue queue = PST_SPOOL_QUEUE_ACTIVE;
  g_autoptr(GError) error = NULL;
  g_autoptr(PstQueuedMessage) message = pst_spool_load(spool, queue, id, NULL);
  if (message == NULL) {
    queue = PST_SPOOL_QUEUE_HOLD;
    message = pst_spool_load(spool, queue, id, &error);
  }
  if (message == NULL) {
    fprintf(stderr, "postilion: %s: %s\n", id, error->message);
    return PST_EXIT_NOINPUT;
  }
  const PstEnvelope *e = pst_queued_message_get_envelope(message);
  g_autoptr(GDateTime) arrival =
      g_date_time_new_from_unix_local(e->arrival_time / G_USEC_PER_SEC);
  g_autofree char *when = g_date_time_format(arrival, "%F %T %z");
  printf("id: %s\nqueue: %s\narrival: %s\nsender: <%s>\n", id,
         queue == PST_SPOOL_QUEUE_HOLD ? "hold" : "active", when, e->sender);
  printf("client: %s%s%s\nhelo: %s\nlistener: %s\nprotocol: %s\n",
         e->client_address, e->client_hostname ? " " : "",
         e->client_hostname ? e->client_hostname : "", e->helo ? e->helo : "",
         e->listener, e->protocol);
  if (e->auth_user != NULL)
    printf("auth: %s\n", e->auth_user);
  if (e->envid != NULL)
    printf("envid: %s\n", e->envid);
  if (e->hold_reason != NULL && e->hold_reason[0] != '\0')
    printf("hold reason: %s\n", e->hold_reason);
  print_message(spool, queue, id);
  g_autoptr(GBytes) content = pst_queued_message_get_content(message, &error);
  if (content == NULL) {
    fprintf(stderr, "postilion: %s\n", error->message);
    return PST_EXIT_DATAERR;
  }
  gsize length = 0;
  const char *data = g_bytes_get_data(content, &length);
  const char *end = g_strstr_len(data, (gssize)length, "\r\n\r\n");
  gsize header = end != NULL ? (gsize)(end - data) + 2 : length;
  printf("\n");
  for (gsize i = 0; i < header; i++)
    if (data[i] != '\r')
      putchar(data[i]);
  return PST_EXIT_OK;
}

/* One request on the control socket; prints the daemon's answer. */
static int queue_control(PstConfig *config, const char *request) {
  g_autoptr(GError) error = NULL;
  gboolean unreachable = FALSE;
  g_autoptr(GSocketConnection) connection =
      pst_tool_control_send(config, request, &unreachable, &error);
  if (unreachable) {
    g_autofree char *path = pst_tool_control_path(config);
    fprintf(stderr,
            "postilion: cannot reach the daemon at %s: %s (is "
            "postiliond running, and are you its user or root?)\n",
            path, error->message);
    return PST_EXIT_UNAVAILABLE;
  }
  g_autofree char *reply = NULL;
  if (connection != NULL) {
    g_autoptr(GDataInputStream) in = g_data_input_stream_new(
        g_io_stream_get_input_stream(G_IO_STREAM(connection)));
    reply = g_data_input_stream_read_line(in, NULL, NULL, &error);
  }
  if (reply == NULL) {
    fprintf(stderr, "postilion: no answer from the daemon: %s\n",
            error != NULL ? error->message : "connection closed");
    return PST_EXIT_TEMPFAIL;
  }
  if (g_str_has_prefix(reply, "ok")) {
    printf("%s: %s\n", request, reply[2] ? reply + 3 : "ok");
    return PST_EXIT_OK;
  }
  fprintf(stderr, "postilion: %s: %s\n", request,
          g_str_has_prefix(reply, "error ") ? reply + 6 : reply);
  return PST_EXIT_DATAERR;
}

int pst_tool_queue(PstConfig *config, int argc, char **argv) {
  const char *verb = argc > 1 ? argv[1] : "list";
  const char *id = argc > 2 ? argv[2] : NULL;
  if (argc > 3)
    return PST_EXIT_USAGE;
  if (g_str_equal(verb, "flush")) {
    g_autofree char *request =
        id != NULL ? g_strdup_printf("flush %s", id) : g_strdup("flush");
    return queue_control(config, request);
  }
  if (g_str_equal(verb, "delete") || g_str_equal(verb, "hold") ||
      g_str_equal(verb, "release")) {
    if (id == NULL) {
      fprintf(stderr, "postilion: queue %s needs a queue id\n", verb);
      return PST_EXIT_USAGE;
    }
    g_autofree char *request = g_strdup_printf("%s %s", verb, id);
    return queue_control(config, request);
  }
  g_autoptr(GError) error = NULL;
  PstSpool *spool = pst_spool_open_readonly(config->server.spool, &error);
  if (spool == NULL) {
    fprintf(stderr, "postilion: %s\n", error->message);
    return PST_EXIT_OSERR;
  }
  int status = PST_EXIT_USAGE;
  if (g_str_equal(verb, "list") && id == NULL)
    status = queue_list(spool);
  else if (g_str_equal(verb, "show") && id != NULL)
    status = queue_show(spool, id);
  else
    fprintf(stderr,
            "postilion: unknown queue command \"%s\" (list, show, "
            "flush, delete, hold, release)\n",
            verb);
  pst_spool_close(spool);
  return status;
}

int pst_tool_check_config(const char *path) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(path, &error);
  g_autoptr(PstDeliverTables) tables =
      config != NULL ? pst_deliver_tables_load(config, &error) : NULL;
  if (tables == NULL) {
    fprintf(stderr, "postilion: %s\n", error->message);
    return PST_EXIT_CONFIG;
  }
  g_autofree char *files = g_strjoinv(", ", config->files);
  printf("postilion: configuration OK (%s)\n", files);
  g_autoptr(GString) origins = g_string_new(NULL);
  pst_config_describe_plugins(config, "postilion", origins);
  fputs(origins->str, stdout);
  if (!pst_config_delivery_enabled(&config->delivery))
    printf("postilion: no delivery method in [delivery]: mail stays "
           "queued\n");
  return PST_EXIT_OK;
}
