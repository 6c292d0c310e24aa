/* test-deliver-bounce-original.c - what a DSN returns of its original:
 * the whole message within the limit, else the header block (found across
 * the reader's 64 KiB pieces, cut at a line end past the limit), and the
 * DSN's text when the message was too large to return. */
#include <string.h>

#include "deliver/bounce-original.h"
#include "deliver/bounce.h"

typedef struct {
  gboolean whole;
  GBytes *bytes;
} Read;

static Read read_of(GBytes *message, gboolean want_whole, guint64 limit) {
  PstDeliveryContent content = {.whole = message,
                                .size = g_bytes_get_size(message)};
  g_autoptr(GError) error = NULL;
  Read r = {FALSE, NULL};
  r.bytes = pst_bounce_original_read(&content, want_whole, limit, &r.whole,
                                     &error);
  g_assert_no_error(error);
  g_assert_nonnull(r.bytes);
  return r;
}

/* A message of `header_lines` header fields of 78 octets and a body of
 * `body` octets. */
static GBytes *message_new(guint header_lines, gsize body) {
  GString *text = g_string_new(NULL);
  for (guint i = 0; i < header_lines; i++)
    g_string_append_printf(text, "X-Field-%05u: %061u\r\n", i, i);
  g_string_append(text, "\r\n");
  for (gsize i = 0; i < body; i++)
    g_string_append_c(text, i % 80 == 79 ? '\n' : 'b');
  return g_string_free_to_bytes(text);
}

static gboolean has_prefix(GBytes *whole, GBytes *part) {
  return g_bytes_get_size(part) <= g_bytes_get_size(whole) &&
         memcmp(g_bytes_get_data(whole, NULL), g_bytes_get_data(part, NULL),
                g_bytes_get_size(part)) == 0;
}

static void test_whole_within_limit(void) {
  g_autoptr(GBytes) message = message_new(3, 1000);
  Read r = read_of(message, TRUE, 50 * 1024);
  g_assert_true(r.whole);
  g_assert_true(g_bytes_equal(r.bytes, message));
  g_bytes_unref(r.bytes);
}

static void test_header_when_larger(void) {
  g_autoptr(GBytes) message = message_new(3, 200 * 1024);
  Read r = read_of(message, TRUE, 50 * 1024);
  g_assert_false(r.whole);
  g_assert_cmpuint(g_bytes_get_size(r.bytes), ==, 3 * 78 + 2);
  g_assert_true(has_prefix(message, r.bytes));
  g_bytes_unref(r.bytes);
  /* Not wanted whole (RET=HDRS, delay and success notices): the header. */
  g_autoptr(GBytes) small = message_new(2, 10);
  r = read_of(small, FALSE, 50 * 1024);
  g_assert_false(r.whole);
  g_assert_cmpuint(g_bytes_get_size(r.bytes), ==, 2 * 78 + 2);
  g_bytes_unref(r.bytes);
}

/* The blank line is found where it straddles two of the reader's pieces,
 * wherever it falls. */
static void test_header_across_pieces(void) {
  for (gsize shift = 0; shift < 6; shift++) {
    /* Header fields then padding so that the CRLF CRLF begins `shift`
     * octets before a 64 KiB boundary. */
    GString *text = g_string_new(NULL);
    while (text->len + 80 < PST_CONTENT_PIECE_MAX - shift - 2)
      g_string_append_printf(text, "X-Pad: %071u\r\n", (guint)text->len);
    gsize fill = PST_CONTENT_PIECE_MAX - shift - 2 - text->len - 2;
    g_string_append(text, "X-Last: ");
    g_string_append_len(text, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                              "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                        (gssize)(fill - 8));
    g_string_append(text, "\r\n\r\nbody\r\n");
    gsize header = text->len - 6;
    g_autoptr(GBytes) message = g_string_free_to_bytes(text);
    Read r = read_of(message, FALSE, 1024 * 1024);
    g_assert_cmpuint(g_bytes_get_size(r.bytes), ==, header);
    g_assert_true(has_prefix(message, r.bytes));
    g_bytes_unref(r.bytes);
  }
}

static void test_long_header_cut_at_line_end(void) {
  g_autoptr(GBytes) message = message_new(2000, 100); /* 156,002 octets */
  Read r = read_of(message, TRUE, 50 * 1024);
  g_assert_false(r.whole);
  gsize size = g_bytes_get_size(r.bytes);
  g_assert_cmpuint(size, <=, 50 * 1024);
  g_assert_cmpuint(size, >, 50 * 1024 - 78);
  g_assert_cmpuint(size % 78, ==, 0); /* whole fields only */
  g_assert_true(has_prefix(message, r.bytes));
  g_bytes_unref(r.bytes);
}

static void test_no_blank_line(void) {
  /* All header, no body: it is the header block, up to the limit. */
  GString *text = g_string_new(NULL);
  for (guint i = 0; i < 10; i++)
    g_string_append(text, "Subject: no body here, and no blank line\r\n");
  g_autoptr(GBytes) message = g_string_free_to_bytes(text);
  Read r = read_of(message, FALSE, 1024);
  g_assert_true(g_bytes_equal(r.bytes, message));
  g_bytes_unref(r.bytes);
  /* An empty header block. */
  static const char empty[] = "\r\nbody only\r\n";
  g_autoptr(GBytes) bare = g_bytes_new_static(empty, strlen(empty));
  r = read_of(bare, FALSE, 1024);
  g_assert_cmpuint(g_bytes_get_size(r.bytes), ==, 2);
  g_bytes_unref(r.bytes);
}

static void test_header_end(void) {
  static const struct {
    const char *text;
    gsize end;
  } cases[] = {
      {"", 0},
      {"\r\n", 2},
      {"A: b\r\n", 0},
      {"A: b\r\n\r\n", 8},
      {"A: b\r\n\r\nC: d\r\n\r\n", 8},
      {"A: b\r\r\n\r\n", 9},
      {"A: b\n\n\r\n", 0},
      {"A: b\r\n\r", 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
    g_assert_cmpuint(pst_bounce_header_end((const guint8 *)cases[i].text, 0,
                                           strlen(cases[i].text)),
                     ==, cases[i].end);
}

/* A failure notice with a cut original returns the header and says why. */
static void test_dsn_says_too_large(void) {
  g_autoptr(PstEnvelope) envelope = pst_envelope_new();
  envelope->sender = g_strdup("a@client.example");
  envelope->arrival_time = 1700000000000000;
  PstDsnRecipient recipient = {"bob@example.org", NULL, "failed", "5.1.1",
                               "550 5.1.1 User unknown", 0, 0};
  g_autoptr(GPtrArray) list = g_ptr_array_new();
  g_ptr_array_add(list, &recipient);
  g_assert_true(pst_dsn_returns_whole(envelope, list));
  static const char header[] = "Subject: big\r\n\r\n";
  g_autoptr(GBytes) original = g_bytes_new_static(header, strlen(header));
  g_autoptr(GBytes) dsn = pst_dsn_build("mx.example.org", "ID", envelope,
                                        list, original, FALSE, 1700000002000000);
  g_autofree char *text =
      g_strndup(g_bytes_get_data(dsn, NULL), g_bytes_get_size(dsn));
  g_assert_nonnull(strstr(text, "too large to be returned in full"));
  g_assert_nonnull(strstr(text, "Content-Type: text/rfc822-headers\r\n"));
  g_assert_nonnull(strstr(text, "Subject: big\r\n"));
  g_autoptr(GBytes) full = pst_dsn_build("mx.example.org", "ID", envelope,
                                         list, original, TRUE, 1700000002000000);
  g_autofree char *full_text =
      g_strndup(g_bytes_get_data(full, NULL), g_bytes_get_size(full));
  g_assert_null(strstr(full_text, "too large"));
  g_assert_nonnull(strstr(full_text, "Content-Type: message/rfc822\r\n"));
  envelope->ret = PST_DSN_RET_HDRS;
  g_assert_false(pst_dsn_returns_whole(envelope, list));
  recipient.action = "delayed";
  envelope->ret = PST_DSN_RET_DEFAULT;
  g_assert_false(pst_dsn_returns_whole(envelope, list));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/bounce-original/whole", test_whole_within_limit);
  g_test_add_func("/deliver/bounce-original/header-when-larger",
                  test_header_when_larger);
  g_test_add_func("/deliver/bounce-original/across-pieces",
                  test_header_across_pieces);
  g_test_add_func("/deliver/bounce-original/long-header",
                  test_long_header_cut_at_line_end);
  g_test_add_func("/deliver/bounce-original/no-blank-line", test_no_blank_line);
  g_test_add_func("/deliver/bounce-original/header-end", test_header_end);
  g_test_add_func("/deliver/bounce-original/dsn-too-large",
                  test_dsn_says_too_large);
  return g_test_run();
}
