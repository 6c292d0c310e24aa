/* pst-spool-dump.c - prints queued messages as JSON, for tests.
 *
 *   pst-spool-dump SPOOLDIR [--queue active|hold] [--id ID]
 *
 * Reads the spool through the queue module's own API (read-only: safe
 * while the daemon runs) and prints a JSON array with one object per
 * message, in queue id order:
 *
 *   id, queue, sender, recipients [{address, orcpt, notify, results}],
 *   envid, ret, body, smtputf8, size_declared, client_address,
 *   client_hostname, helo, listener, protocol, auth_user, session_id,
 *   arrival_time, results, content_b64
 *
 * Absent optional values are null; ret is null, "FULL" or "HDRS"; body is
 * null, "7BIT" or "8BITMIME"; notify is a list of "NEVER", "SUCCESS",
 * "FAILURE", "DELAY" (empty when not given); results are g_variant_print()
 * text; arrival_time is Unix seconds with microseconds; content_b64 is the
 * message as it will be delivered (header override applied).  A message
 * that does not load is {"id": ..., "queue": ..., "error": "..."}.
 * Strings that are not UTF-8 have each invalid octet written as \udcXX,
 * Python's "surrogateescape", so s.encode("utf-8", "surrogateescape")
 * gives the exact octets back.
 *
 * Exit status: 0 after printing, 1 with a message on stderr when the spool
 * cannot be read, the arguments are wrong, or --id names no message.
 */
#include <stdio.h>
#include <string.h>

#include "queue/spool.h"

/* --- JSON ----------------------------------------------------------------- */

static void json_string_len(GString *out, const char *text, gsize length) {
  g_string_append_c(out, '"');
  const char *p = text;
  const char *end = text + length;
  while (p < end) {
    const char *valid_end = NULL;
    g_utf8_validate(p, end - p, &valid_end);
    for (; p < valid_end; p++) {
      guchar c = (guchar)*p;
      if (c == '"' || c == '\\')
        g_string_append_printf(out, "\\%c", c);
      else if (c == '\n')
        g_string_append(out, "\\n");
      else if (c == '\r')
        g_string_append(out, "\\r");
      else if (c == '\t')
        g_string_append(out, "\\t");
      else if (c < 0x20 || c == 0x7f)
        g_string_append_printf(out, "\\u%04x", c);
      else
        g_string_append_c(out, (char)c);
    }
    if (p < end) {
      /* An invalid octet (or a NUL, which g_utf8_validate stops at). */
      guchar c = (guchar)*p++;
      if (c == 0)
        g_string_append(out, "\\u0000");
      else
        g_string_append_printf(out, "\\udc%02x", c);
    }
  }
  g_string_append_c(out, '"');
}

static void json_string(GString *out, const char *text) {
  if (text == NULL)
    g_string_append(out, "null");
  else
    json_string_len(out, text, strlen(text));
}

static void json_key(GString *out, const char *key) {
  g_string_append(out, ", ");
  json_string(out, key);
  g_string_append(out, ": ");
}

static void json_variant(GString *out, GVariant *value) {
  if (value == NULL) {
    g_string_append(out, "null");
    return;
  }
  g_autofree char *text = g_variant_print(value, TRUE);
  json_string(out, text);
}

/* --- One message ---------------------------------------------------------- */

static const char *const ret_names[] = {NULL, "FULL", "HDRS"};
static const char *const body_names[] = {NULL, "7BIT", "8BITMIME"};

static void dump_notify(GString *out, guint notify) {
  static const struct {
    guint bit;
    const char *name;
  } names[] = {
      {PST_DSN_NOTIFY_NEVER, "NEVER"},
      {PST_DSN_NOTIFY_SUCCESS, "SUCCESS"},
      {PST_DSN_NOTIFY_FAILURE, "FAILURE"},
      {PST_DSN_NOTIFY_DELAY, "DELAY"},
  };
  gboolean first = TRUE;
  g_string_append_c(out, '[');
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    if (!(notify & names[i].bit))
      continue;
    g_string_append(out, first ? "" : ", ");
    json_string(out, names[i].name);
    first = FALSE;
  }
  g_string_append_c(out, ']');
}

static void dump_recipients(GString *out, const PstEnvelope *envelope) {
  json_key(out, "recipients");
  g_string_append_c(out, '[');
  for (guint i = 0; i < envelope->recipients->len; i++) {
    const PstEnvelopeRecipient *r = envelope->recipients->pdata[i];
    g_string_append(out, i > 0 ? ", {\"address\": " : "{\"address\": ");
    json_string(out, r->address);
    json_key(out, "orcpt");
    json_string(out, r->orcpt);
    json_key(out, "notify");
    dump_notify(out, r->notify);
    json_key(out, "results");
    json_variant(out, r->results);
    g_string_append_c(out, '}');
  }
  g_string_append_c(out, ']');
}

static void dump_envelope(GString *out, const PstEnvelope *envelope) {
  json_key(out, "sender");
  json_string(out, envelope->sender);
  dump_recipients(out, envelope);
  json_key(out, "envid");
  json_string(out, envelope->envid);
  json_key(out, "ret");
  json_string(out, ret_names[envelope->ret]);
  json_key(out, "body");
  json_string(out, body_names[envelope->body]);
  json_key(out, "smtputf8");
  g_string_append(out, envelope->smtputf8 ? "true" : "false");
  json_key(out, "size_declared");
  g_string_append_printf(out, "%" G_GUINT64_FORMAT, envelope->size_declared);
  const struct {
    const char *key;
    const char *value;
  } strings[] = {
      {"client_address", envelope->client_address},
      {"client_hostname", envelope->client_hostname},
      {"helo", envelope->helo},
      {"listener", envelope->listener},
      {"protocol", envelope->protocol},
      {"auth_user", envelope->auth_user},
      {"session_id", envelope->session_id},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(strings); i++) {
    json_key(out, strings[i].key);
    json_string(out, strings[i].value);
  }
  json_key(out, "arrival_time");
  char number[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append(out, g_ascii_formatd(number, sizeof number, "%.6f",
                                       envelope->arrival_time / 1e6));
  json_key(out, "results");
  json_variant(out, envelope->results);
}

/* Appends the message's object, or its error object. */
static void dump_message(GString *out, PstSpool *spool, PstSpoolQueue queue,
                         const char *id, GError **error) {
  g_string_append(out, "{\"id\": ");
  json_string(out, id);
  json_key(out, "queue");
  json_string(out, queue == PST_SPOOL_QUEUE_HOLD ? "hold" : "active");
  g_autoptr(GError) local = NULL;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(spool, queue, id, &local);
  g_autoptr(GBytes) content = NULL;
  if (message != NULL)
    content = pst_queued_message_get_content(message, &local);
  if (content == NULL) {
    json_key(out, "error");
    json_string(out, local->message);
    g_string_append_c(out, '}');
    if (g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND))
      g_propagate_error(error, g_steal_pointer(&local));
    return;
  }
  dump_envelope(out, pst_queued_message_get_envelope(message));
  json_key(out, "content_b64");
  gsize size = 0;
  const guchar *data = g_bytes_get_data(content, &size);
  g_autofree char *encoded = g_base64_encode(data, size);
  json_string(out, encoded);
  g_string_append_c(out, '}');
}

/* --- main ----------------------------------------------------------------- */

static gboolean parse_queue(const char *name, PstSpoolQueue *queue_r,
                            GError **error) {
  if (g_str_equal(name, "active"))
    *queue_r = PST_SPOOL_QUEUE_ACTIVE;
  else if (g_str_equal(name, "hold"))
    *queue_r = PST_SPOOL_QUEUE_HOLD;
  else {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--queue must be “active” or “hold”, not “%s”", name);
    return FALSE;
  }
  return TRUE;
}

static gboolean dump_spool(const char *directory, PstSpoolQueue queue,
                           const char *only_id, GError **error) {
  PstSpool *spool = pst_spool_open_readonly(directory, error);
  if (spool == NULL)
    return FALSE;
  g_autoptr(GPtrArray) ids = NULL;
  if (only_id != NULL) {
    ids = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(ids, g_strdup(only_id));
  } else {
    ids = pst_spool_list(spool, queue, error);
  }
  gboolean ok = ids != NULL;
  g_autoptr(GString) out = g_string_new("[");
  for (guint i = 0; ok && i < ids->len; i++) {
    g_string_append(out, i > 0 ? ",\n " : "");
    dump_message(out, spool, queue, ids->pdata[i],
                 only_id != NULL ? error : NULL);
    ok = error == NULL || *error == NULL;
  }
  g_string_append(out, "]\n");
  pst_spool_close(spool);
  if (ok && fwrite(out->str, 1, out->len, stdout) != out->len) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                        "Cannot write to standard output");
    return FALSE;
  }
  return ok;
}

int main(int argc, char **argv) {
  g_autofree char *queue_name = NULL;
  g_autofree char *only_id = NULL;
  const GOptionEntry entries[] = {
      {"queue", 0, 0, G_OPTION_ARG_STRING, &queue_name,
       "The queue to print: active (default) or hold", "QUEUE"},
      {"id", 0, 0, G_OPTION_ARG_STRING, &only_id, "Print only this message",
       "ID"},
      {NULL},
  };
  g_autoptr(GOptionContext) context =
      g_option_context_new("SPOOLDIR - print queued messages as JSON");
  g_option_context_add_main_entries(context, entries, NULL);
  g_autoptr(GError) error = NULL;
  PstSpoolQueue queue = PST_SPOOL_QUEUE_ACTIVE;
  if (!g_option_context_parse(context, &argc, &argv, &error) ||
      (queue_name != NULL && !parse_queue(queue_name, &queue, &error))) {
    fprintf(stderr, "pst-spool-dump: %s\n", error->message);
    return 1;
  }
  if (argc != 2) {
    fprintf(stderr, "pst-spool-dump: expected one SPOOLDIR argument\n");
    return 1;
  }
  if (!dump_spool(argv[1], queue, only_id, &error)) {
    fprintf(stderr, "pst-spool-dump: %s\n", error->message);
    return 1;
  }
  return 0;
}
