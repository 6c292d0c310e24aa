/* test-deliver-content.c - the DATA stream of a large content for the
 * main loop (delivery-content.c): it never waits for the disk.  With the
 * queue file's pages evicted from the page cache, pst_data_stream_next()
 * answers G_IO_ERROR_WOULD_BLOCK, a thread reads the pages in, the ready
 * function is called on the main loop, and the stream goes on; what it
 * sends is exactly what a stream that may wait sends, final dot
 * included.  Clearing a stream while its pages are read in calls
 * nothing. */
#include <string.h>

#include <gio/gio.h>

#include "deliver/delivery-content.h"
#include "queue/spool-format.h"
#include "queue/test-page-cache.h"

#define TEST_ID "00000000000TEST"

typedef struct {
  char *base;
  char *path; /* queue/TEST_ID */
  PstSpool *spool;
  PstQueuedMessage *message;
  PstDeliveryContent content;
} Fixture;

/* Writes queue/TEST_ID with `text` as its content, loads it and makes
 * the first pass over it. */
static void fixture_message(Fixture *f, const GString *text) {
  g_autoptr(PstEnvelope) envelope = pst_envelope_new();
  envelope->sender = g_strdup("sender@example.org");
  envelope->client_address = g_strdup("192.0.2.1");
  envelope->client_hostname = g_strdup("client.example");
  envelope->helo = g_strdup("client.example");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("ESMTP");
  envelope->session_id = g_strdup("S1");
  envelope->arrival_time = g_get_real_time();
  envelope->results = g_variant_ref_sink(g_variant_new_parsed("@a{sv} {}"));
  pst_envelope_add_recipient(envelope, "rcpt@example.org");
  guint32 crc = pst_spool_crc32c(0, text->str, text->len);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) trailer = pst_spool_format_encode(
      TEST_ID, envelope, NULL, 0, text->len, crc, &error);
  g_assert_no_error(error);
  g_autoptr(GString) file = g_string_new_len(text->str, text->len);
  g_string_append_len(file, g_bytes_get_data(trailer, NULL),
                      (gssize)g_bytes_get_size(trailer));
  g_assert_true(
      g_file_set_contents(f->path, file->str, (gssize)file->len, NULL));
  f->message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, TEST_ID, &error);
  g_assert_no_error(error);
  g_assert_true(pst_delivery_content_scan(&f->content, f->message, &error));
  g_assert_no_error(error);
}

static void fixture_set_up(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  f->base = g_dir_make_tmp("pst-deliver-content-XXXXXX", &error);
  g_assert_no_error(error);
  f->spool = pst_spool_open(f->base, &error);
  g_assert_no_error(error);
  f->path = g_build_filename(f->base, "queue", TEST_ID, NULL);
}

static void fixture_tear_down(Fixture *f, gconstpointer data) {
  pst_delivery_content_clear(&f->content);
  g_clear_pointer(&f->message, pst_queued_message_free);
  pst_spool_close(f->spool);
  g_autofree char *command = g_strdup_printf("rm -rf '%s'", f->base);
  g_assert_cmpint(system(command), ==, 0);
  g_free(f->path);
  g_free(f->base);
}

/* Drops the file's pages; FALSE when some stay. */
static gboolean evict_pages(Fixture *f) {
  return pst_test_evict_pages(f->path);
}

static void on_ready(gpointer user_data) {
  guint *readies = user_data;
  (*readies)++;
}

/* Everything the stream hands out; with `evict`, the file's pages are
 * dropped before each piece and the would-blocks are counted. */
static GString *stream_all(Fixture *f, gboolean evict, guint *waits_r) {
  PstDataStream stream;
  guint readies = 0;
  pst_data_stream_init(&stream, &f->content, evict ? on_ready : NULL, &readies);
  GString *out = g_string_new(NULL);
  guint waits = 0;
  for (guint calls = 0; calls < 10000; calls++) {
    if (evict)
      g_assert_true(evict_pages(f));
    const guint8 *data = NULL;
    gsize length = 0;
    gboolean last = FALSE;
    g_autoptr(GError) error = NULL;
    if (!pst_data_stream_next(&stream, &data, &length, &last, &error)) {
      g_assert_error(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_assert_true(evict);
      waits++;
      /* Nothing is sent meanwhile; the ready function says when. */
      guint before = readies;
      gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
      while (readies == before && g_get_monotonic_time() < end)
        g_main_context_iteration(NULL, TRUE);
      g_assert_cmpuint(readies, ==, before + 1);
      /* Called again, it goes on without waiting (the pages are in). */
      g_clear_error(&error);
      g_assert_true(
          pst_data_stream_next(&stream, &data, &length, &last, &error));
      g_assert_no_error(error);
    }
    g_string_append_len(out, (const char *)data, (gssize)length);
    if (last)
      break;
  }
  pst_data_stream_clear(&stream);
  *waits_r = waits;
  return out;
}

/* A content of `size` octets: CRLF lines, or with a line that starts
 * with a dot (encoded, not verbatim). */
static GString *content_new(gsize size, gboolean dotted) {
  GString *text = g_string_new("Subject: large\r\n\r\n");
  for (guint i = 0; text->len < size; i++) {
    if (dotted && i == 1000)
      g_string_append(text, ".a line that DATA stuffs\r\n");
    g_string_append_printf(text, "line %u of a large message\r\n", i);
  }
  return text;
}

static void stream_case(Fixture *f, gboolean dotted) {
  g_autoptr(GString) text = content_new(5 * PST_CONTENT_PIECE_MAX + 99, dotted);
  fixture_message(f, text);
  g_assert_null(f->content.whole);
  g_assert_true(f->content.verbatim == !dotted);
  guint waits = 0;
  g_autoptr(GString) expected = stream_all(f, FALSE, &waits);
  g_assert_cmpuint(waits, ==, 0);
  g_assert_true(g_str_has_suffix(expected->str, "\r\n.\r\n"));
  if (!evict_pages(f)) {
    g_test_skip("this file system keeps a file's pages in memory");
    return;
  }
  g_autoptr(GString) out = stream_all(f, TRUE, &waits);
  g_assert_cmpuint(waits, >, 0);
  g_assert_cmpmem(out->str, out->len, expected->str, expected->len);
}

static void test_verbatim(Fixture *f, gconstpointer data) {
  stream_case(f, FALSE);
}

static void test_encoded(Fixture *f, gconstpointer data) {
  stream_case(f, TRUE);
}

/* Cleared while its pages are read in (the transaction ended): the ready
 * function is never called, and nothing leaks (ASan). */
static void test_clear_while_fetching(Fixture *f, gconstpointer data) {
  g_autoptr(GString) text = content_new(3 * PST_CONTENT_PIECE_MAX, FALSE);
  fixture_message(f, text);
  if (!evict_pages(f)) {
    g_test_skip("this file system keeps a file's pages in memory");
    return;
  }
  guint readies = 0;
  PstDataStream stream;
  pst_data_stream_init(&stream, &f->content, on_ready, &readies);
  const guint8 *piece = NULL;
  gsize length = 0;
  gboolean last = FALSE;
  g_autoptr(GError) error = NULL;
  g_assert_false(pst_data_stream_next(&stream, &piece, &length, &last, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  pst_data_stream_clear(&stream);
  /* The thread's read ends and its callback runs: it calls nothing. */
  gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC / 2;
  while (g_get_monotonic_time() < end)
    g_main_context_iteration(NULL, FALSE);
  g_assert_cmpuint(readies, ==, 0);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add("/deliver/content/nowait-verbatim", Fixture, NULL, fixture_set_up,
             test_verbatim, fixture_tear_down);
  g_test_add("/deliver/content/nowait-encoded", Fixture, NULL, fixture_set_up,
             test_encoded, fixture_tear_down);
  g_test_add("/deliver/content/clear-while-fetching", Fixture, NULL,
             fixture_set_up, test_clear_while_fetching, fixture_tear_down);
  return g_test_run();
}
