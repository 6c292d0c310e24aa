/* test-queue-content.c - the content reader (content-reader.c): pieces of
 * bounded size, the header override in front, the checksum checked at the
 * end, corruption and a shrunk file reported, rewinding. */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "queue/content-reader.h"
#include "queue/spool-format.h"
#include "queue/spool.h"
#include "queue/test-page-cache.h"

#define TEST_ID "00000000000TEST"

typedef struct {
  char *base;
  PstSpool *spool;
} Fixture;

static void fixture_set_up(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  f->base = g_dir_make_tmp("pst-content-XXXXXX", &error);
  g_assert_no_error(error);
  f->spool = pst_spool_open(f->base, &error);
  g_assert_no_error(error);
}

static void fixture_tear_down(Fixture *f, gconstpointer data) {
  pst_spool_close(f->spool);
  g_autofree char *command = g_strdup_printf("rm -rf '%s'", f->base);
  g_assert_cmpint(system(command), ==, 0);
  g_free(f->base);
}

/* Writes queue/TEST_ID: `content`, its trailer (with `override` replacing
 * `header_length` octets), and loads it.  `crc_delta` spoils the
 * checksum. */
static PstQueuedMessage *fixture_message(Fixture *f, const GString *content,
                                         GBytes *override,
                                         guint64 header_length,
                                         guint32 crc_delta) {
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
  guint32 crc = pst_spool_crc32c(0, content->str, content->len) ^ crc_delta;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) trailer = pst_spool_format_encode(
      TEST_ID, envelope, override, header_length, content->len, crc, &error);
  g_assert_no_error(error);
  g_autoptr(GString) file = g_string_new_len(content->str, content->len);
  g_string_append_len(file, g_bytes_get_data(trailer, NULL),
                      (gssize)g_bytes_get_size(trailer));
  g_autofree char *path = g_build_filename(f->base, "queue", TEST_ID, NULL);
  g_assert_true(g_file_set_contents(path, file->str, (gssize)file->len, NULL));
  PstQueuedMessage *message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, TEST_ID, &error);
  g_assert_no_error(error);
  return message;
}

static GString *content_new(gsize length) {
  GString *content = g_string_new("Subject: test\r\nX: 1\r\n\r\n");
  for (guint i = 0; content->len < length; i++)
    g_string_append_printf(content, "line %u \xe9\r\n", i);
  return content;
}

/* Every piece, concatenated; FALSE (with `error`) as next() failed. */
static gboolean read_all(PstContentReader *reader, GString *out,
                         GError **error) {
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!pst_content_reader_next(reader, &data, &length, error))
      return FALSE;
    if (length == 0)
      return TRUE;
    g_assert_cmpuint(length, <=, PST_CONTENT_PIECE_MAX);
    g_string_append_len(out, (const char *)data, (gssize)length);
  }
}

static void test_pieces(Fixture *f, gconstpointer data) {
  const gsize sizes[] = {0, 1, PST_CONTENT_PIECE_MAX,
                         3 * PST_CONTENT_PIECE_MAX + 17};
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    g_autoptr(GString) content = content_new(sizes[i]);
    g_autoptr(PstQueuedMessage) message =
        fixture_message(f, content, NULL, 0, 0);
    g_autoptr(GError) error = NULL;
    g_autoptr(PstContentReader) reader =
        pst_content_reader_new(message, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(pst_content_reader_get_size(reader), ==, content->len);
    for (guint round = 0; round < 2; round++) {
      g_autoptr(GString) out = g_string_new(NULL);
      g_assert_true(read_all(reader, out, &error));
      g_assert_no_error(error);
      g_assert_cmpmem(out->str, out->len, content->str, content->len);
      /* The end stays the end. */
      const guint8 *piece = NULL;
      gsize length = 1;
      g_assert_true(pst_content_reader_next(reader, &piece, &length, &error));
      g_assert_cmpuint(length, ==, 0);
      pst_content_reader_rewind(reader);
    }
  }
}

/* The edited header block first (longer than a piece here), then the
 * body; the checksum is over the file's content as stored. */
static void test_override(Fixture *f, gconstpointer data) {
  g_autoptr(GString) content = content_new(2 * PST_CONTENT_PIECE_MAX);
  gsize header_length = strstr(content->str, "\r\n\r\n") + 4 - content->str;
  g_autoptr(GString) edited = g_string_new(NULL);
  while (edited->len < PST_CONTENT_PIECE_MAX + 100)
    g_string_append(edited, "Received: from a by b\r\n");
  g_string_append(edited, "Subject: test\r\n\r\n");
  g_autoptr(GBytes) override = g_bytes_new(edited->str, edited->len);
  g_autoptr(PstQueuedMessage) message =
      fixture_message(f, content, override, header_length, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, &error);
  g_autoptr(GString) expected = g_string_new_len(edited->str, edited->len);
  g_string_append_len(expected, content->str + header_length,
                      (gssize)(content->len - header_length));
  g_assert_cmpuint(pst_content_reader_get_size(reader), ==, expected->len);
  g_autoptr(GString) out = g_string_new(NULL);
  g_assert_true(read_all(reader, out, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(out->str, out->len, expected->str, expected->len);
}

/* A checksum mismatch is reported only at the end, after every piece,
 * and then on every call. */
static void test_corrupt(Fixture *f, gconstpointer data) {
  g_autoptr(GString) content = content_new(2 * PST_CONTENT_PIECE_MAX);
  g_autoptr(PstQueuedMessage) message = fixture_message(f, content, NULL, 0, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, &error);
  g_autoptr(GString) out = g_string_new(NULL);
  g_assert_false(read_all(reader, out, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "content checksum mismatch"));
  g_assert_cmpuint(out->len, ==, content->len);
  g_clear_error(&error);
  const guint8 *piece = NULL;
  gsize length = 0;
  pst_content_reader_rewind(reader);
  g_assert_false(pst_content_reader_next(reader, &piece, &length, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
}

/* A file cut short under the reader: corrupt, not a short message. */
static void test_shrunk(Fixture *f, gconstpointer data) {
  g_autoptr(GString) content = content_new(3 * PST_CONTENT_PIECE_MAX);
  g_autoptr(PstQueuedMessage) message = fixture_message(f, content, NULL, 0, 0);
  g_autofree char *path = g_build_filename(f->base, "queue", TEST_ID, NULL);
  g_assert_cmpint(truncate(path, PST_CONTENT_PIECE_MAX + 5), ==, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, &error);
  g_autoptr(GString) out = g_string_new(NULL);
  g_assert_false(read_all(reader, out, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "shrank"));
}

/* The whole content at once (pst_content_reader_read_all()), as the
 * pieces give it: with and without a header override, longer or shorter
 * than the header it replaces, from a small file the message holds or
 * from the queue file. */
static GString *read_at_once(PstContentReader *reader, GError **error) {
  GString *out = g_string_sized_new(pst_content_reader_get_size(reader) + 1);
  g_string_set_size(out, pst_content_reader_get_size(reader));
  if (!pst_content_reader_read_all(reader, (guint8 *)out->str, error)) {
    g_string_free(out, TRUE);
    return NULL;
  }
  return out;
}

static void test_read_all(Fixture *f, gconstpointer data) {
  static const gsize sizes[] = {0, 1, 3000, PST_CONTENT_PIECE_MAX + 17,
                                2 * PST_CONTENT_PIECE_MAX};
  static const char *const overrides[] = {
      NULL, "Received: from a by b\r\nSubject: test\r\nX: 1\r\n\r\n",
      "S: t\r\n\r\n"};
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++)
    for (guint k = 0; k < G_N_ELEMENTS(overrides); k++) {
      g_autoptr(GString) content = content_new(sizes[i]);
      gsize header_length = strstr(content->str, "\r\n\r\n") + 4 - content->str;
      g_autoptr(GBytes) override =
          overrides[k] != NULL
              ? g_bytes_new_static(overrides[k], strlen(overrides[k]))
              : NULL;
      g_autoptr(PstQueuedMessage) message = fixture_message(
          f, content, override, override != NULL ? header_length : 0, 0);
      g_autoptr(GError) error = NULL;
      g_autoptr(PstContentReader) pieces =
          pst_content_reader_new(message, &error);
      g_autoptr(GString) expected = g_string_new(NULL);
      g_assert_true(read_all(pieces, expected, &error));
      g_autoptr(PstContentReader) reader =
          pst_content_reader_new(message, &error);
      g_autoptr(GString) out = read_at_once(reader, &error);
      g_assert_no_error(error);
      g_assert_cmpmem(out->str, out->len, expected->str, expected->len);
      /* At its end: the next piece is the end. */
      const guint8 *piece = NULL;
      gsize length = 1;
      g_assert_true(pst_content_reader_next(reader, &piece, &length, &error));
      g_assert_cmpuint(length, ==, 0);
    }
  /* A spoiled checksum, a shrunk file: corrupt, as piece by piece. */
  g_autoptr(GString) content = content_new(PST_CONTENT_PIECE_MAX + 17);
  for (guint spoil = 0; spoil < 2; spoil++) {
    g_autoptr(PstQueuedMessage) message =
        fixture_message(f, content, NULL, 0, spoil == 0 ? 1 : 0);
    if (spoil == 1) {
      g_autofree char *path = g_build_filename(f->base, "queue", TEST_ID, NULL);
      g_assert_cmpint(truncate(path, 100), ==, 0);
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(PstContentReader) reader =
        pst_content_reader_new(message, &error);
    g_assert_null(read_at_once(reader, &error));
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    g_assert_nonnull(
        strstr(error->message, spoil == 0 ? "checksum mismatch" : "shrank"));
  }
  /* In memory. */
  g_autoptr(GBytes) bytes = g_bytes_new(content->str, content->len);
  g_autoptr(PstContentReader) reader = pst_content_reader_new_for_bytes(bytes);
  g_autoptr(GString) out = read_at_once(reader, NULL);
  g_assert_cmpmem(out->str, out->len, content->str, content->len);
}

static void test_bytes(void) {
  g_autoptr(GString) content = content_new(PST_CONTENT_PIECE_MAX + 1);
  g_autoptr(GBytes) bytes = g_bytes_new(content->str, content->len);
  g_autoptr(PstContentReader) reader = pst_content_reader_new_for_bytes(bytes);
  g_assert_cmpuint(pst_content_reader_get_size(reader), ==, content->len);
  for (guint round = 0; round < 2; round++) {
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(read_all(reader, out, &error));
    g_assert_cmpmem(out->str, out->len, content->str, content->len);
    pst_content_reader_rewind(reader);
  }
}

/* Drops queue/TEST_ID's pages from the page cache; FALSE when some
 * stay. */
static gboolean evict_pages(Fixture *f) {
  g_autofree char *path = g_build_filename(f->base, "queue", TEST_ID, NULL);
  return pst_test_evict_pages(path);
}

/* Reads every piece with a reader that must not wait, from a file with
 * no page in the page cache and no readahead (POSIX_FADV_RANDOM: only
 * what is read comes in): each read from the file fails with
 * WOULD_BLOCK first, changing nothing, and succeeds once the range the
 * reader names was read in, as a thread would.  After each piece the
 * pages go again.  Returns the would-blocks; `inside_r` (nullable) is set
 * when one came at an offset in (0, `inside`): in the middle of the
 * stored header's sum. */
static guint read_all_nowait(Fixture *f, PstContentReader *reader, GString *out,
                             guint64 inside, gboolean *inside_r) {
  guint waits = 0;
  int fd = -1;
  guint64 offset = 0;
  gsize range = 0;
  pst_content_reader_get_next_range(reader, &fd, &offset, &range);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), ==, 0);
  pst_content_reader_set_nowait(reader, TRUE);
  g_assert_true(evict_pages(f));
  for (guint calls = 0; calls < 1000; calls++) {
    const guint8 *data = NULL;
    gsize length = 0;
    g_autoptr(GError) error = NULL;
    if (pst_content_reader_next(reader, &data, &length, &error)) {
      if (length == 0)
        return waits;
      g_string_append_len(out, (const char *)data, (gssize)length);
      g_assert_true(evict_pages(f));
      continue;
    }
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK);
    waits++;
    g_assert_true(
        pst_content_reader_get_next_range(reader, &fd, &offset, &range));
    g_assert_cmpuint(range, >, 0);
    g_assert_cmpuint(range, <=, PST_CONTENT_PIECE_MAX);
    if (inside_r != NULL && offset > 0 && offset < inside)
      *inside_r = TRUE;
    g_autofree guint8 *scratch = g_malloc(range);
    g_assert_cmpint(pread(fd, scratch, range, (off_t)offset), ==,
                    (gssize)range);
  }
  g_assert_not_reached();
}

/* A reader for the main loop (pst_content_reader_set_nowait()): with the
 * pages gone it waits for nothing, and reads the same content, checksum
 * and all, once they are back: a plain content of several pieces, and
 * one whose stored header (replaced by an override) is itself longer
 * than a piece, summed across several would-blocks. */
static void test_nowait(Fixture *f, gconstpointer data) {
  g_autoptr(GString) plain = content_new(3 * PST_CONTENT_PIECE_MAX + 17);
  {
    g_autoptr(PstQueuedMessage) message = fixture_message(f, plain, NULL, 0, 0);
    g_autoptr(GError) error = NULL;
    g_autoptr(PstContentReader) reader =
        pst_content_reader_new(message, &error);
    g_assert_no_error(error);
    if (!evict_pages(f)) {
      g_test_skip("this file system keeps a file's pages in memory");
      return;
    }
    g_autoptr(GString) out = g_string_new(NULL);
    g_assert_cmpuint(read_all_nowait(f, reader, out, 0, NULL), >=, 2);
    g_assert_cmpmem(out->str, out->len, plain->str, plain->len);
  }
  g_autoptr(GString) stored = g_string_new(NULL);
  while (stored->len < 2 * PST_CONTENT_PIECE_MAX + 300)
    g_string_append(stored, "Received: from a long way by many hops\r\n");
  g_string_append(stored, "Subject: stored\r\n\r\n");
  gsize header_length = stored->len;
  for (guint i = 0; stored->len < header_length + 2 * PST_CONTENT_PIECE_MAX;
       i++)
    g_string_append_printf(stored, "body line %u\r\n", i);
  g_autoptr(GBytes) override =
      g_bytes_new_static("Subject: edited\r\n\r\n", 19);
  g_autoptr(PstQueuedMessage) message =
      fixture_message(f, stored, override, header_length, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, &error);
  g_assert_no_error(error);
  g_autoptr(GString) expected = g_string_new("Subject: edited\r\n\r\n");
  g_string_append_len(expected, stored->str + header_length,
                      (gssize)(stored->len - header_length));
  for (guint round = 0; round < 2; round++) {
    g_autoptr(GString) out = g_string_new(NULL);
    /* A would-block in the middle of the stored header's sum: had the
     * sum started again, the checksum would not match at the end. */
    gboolean inside = FALSE;
    g_assert_cmpuint(read_all_nowait(f, reader, out, header_length, &inside),
                     >=, 2);
    g_assert_true(inside);
    g_assert_cmpmem(out->str, out->len, expected->str, expected->len);
    pst_content_reader_rewind(reader);
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add("/queue/content/pieces", Fixture, NULL, fixture_set_up,
             test_pieces, fixture_tear_down);
  g_test_add("/queue/content/override", Fixture, NULL, fixture_set_up,
             test_override, fixture_tear_down);
  g_test_add("/queue/content/corrupt", Fixture, NULL, fixture_set_up,
             test_corrupt, fixture_tear_down);
  g_test_add("/queue/content/shrunk", Fixture, NULL, fixture_set_up,
             test_shrunk, fixture_tear_down);
  g_test_add("/queue/content/read-all", Fixture, NULL, fixture_set_up,
             test_read_all, fixture_tear_down);
  g_test_add("/queue/content/nowait", Fixture, NULL, fixture_set_up,
             test_nowait, fixture_tear_down);
  g_test_add_func("/queue/content/bytes", test_bytes);
  return g_test_run();
}
