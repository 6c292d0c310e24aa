/* test-log-message.c - pst_log_message() hands the log writer what
 * g_message() hands it: the same fields in the same order, the same
 * values (but the line number), for formats done by hand and by printf,
 * short and longer than its stack buffer.  A writer of its own captures
 * them (a binary of its own: GLib takes one writer per process).
 */
#include <string.h>

#include <glib.h>

#include "util/log.h"

typedef struct {
  GLogLevelFlags level;
  GPtrArray *keys;   /* of char* */
  GPtrArray *values; /* of char* */
} Captured;

static Captured captured;

static GLogWriterOutput capture_writer(GLogLevelFlags level,
                                       const GLogField *fields, gsize n_fields,
                                       gpointer user_data) {
  captured.level = level;
  g_ptr_array_set_size(captured.keys, 0);
  g_ptr_array_set_size(captured.values, 0);
  for (gsize i = 0; i < n_fields; i++) {
    g_assert_cmpint(fields[i].length, ==, -1);
    g_ptr_array_add(captured.keys, g_strdup(fields[i].key));
    g_ptr_array_add(captured.values, g_strdup(fields[i].value));
  }
  return G_LOG_WRITER_HANDLED;
}

/* What the writer got last, as "KEY=VALUE\n" lines, CODE_LINE left out. */
static char *captured_text(void) {
  GString *text = g_string_new(NULL);
  g_string_append_printf(text, "level=%d\n", (int)captured.level);
  for (guint i = 0; i < captured.keys->len; i++) {
    if (g_str_equal(captured.keys->pdata[i], "CODE_LINE"))
      continue;
    g_string_append_printf(text, "%s=%s\n", (char *)captured.keys->pdata[i],
                           (char *)captured.values->pdata[i]);
  }
  return g_string_free(text, FALSE);
}

/* Both macros from one function, so CODE_FUNC and CODE_FILE agree. */
#define ASSERT_SAME_FIELDS(...)                                                \
  do {                                                                         \
    g_message(__VA_ARGS__);                                                    \
    g_autofree char *expected = captured_text();                               \
    pst_log_message(__VA_ARGS__);                                              \
    g_autofree char *got = captured_text();                                    \
    g_assert_cmpstr(got, ==, expected);                                        \
  } while (0)

static void test_same_fields(void) {
  const char *volatile nothing = NULL;
  ASSERT_SAME_FIELDS("plain");
  ASSERT_SAME_FIELDS("%s: connect from [%s]:%u to listener %s", "s7k2",
                     "192.0.2.1", 25u, "smtp");
  ASSERT_SAME_FIELDS("%s: queued from=<%s>, size=%u, nrcpt=%u", "4F2A1B",
                     "a@example.org", 1382u, 1u);
  ASSERT_SAME_FIELDS("%d %i %c %% %s", -7, 2147483647, 'x', nothing);
  /* Left to printf: the delay of a delivery line. */
  ASSERT_SAME_FIELDS("%s: to=<%s>, delay=%.2f, status=%s", "4F2A1B",
                     "b@example.net", 0.125, "sent");
  /* Longer than the stack buffer, by hand and by printf. */
  g_autofree char *long_text = g_strnfill(3000, 'L');
  ASSERT_SAME_FIELDS("%s: %s", "4F2A1B", long_text);
  ASSERT_SAME_FIELDS("%s: %.2f %s", "4F2A1B", 1.5, long_text);
  g_autofree char *just = g_strnfill(1023, 'J');
  ASSERT_SAME_FIELDS("%s", just);
  g_autofree char *over = g_strnfill(1024, 'O');
  ASSERT_SAME_FIELDS("%s", over);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  captured.keys = g_ptr_array_new_with_free_func(g_free);
  captured.values = g_ptr_array_new_with_free_func(g_free);
  g_log_set_writer_func(capture_writer, NULL, NULL);
  g_test_add_func("/log/message/same-fields", test_same_fields);
  int status = g_test_run();
  g_ptr_array_unref(captured.keys);
  g_ptr_array_unref(captured.values);
  return status;
}
