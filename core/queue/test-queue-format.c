/* test-queue-format.c - unit tests for the queue file format, CRC32C and
 * queue ids (pure functions; no files).
 *
 * Paths: /queue/crc32c/..., /queue/id/..., /queue/format/...  The
 * corruption tests flip every octet of a trailer and footer and truncate
 * a file at every length, and hand-made trailers (built here, with a
 * correct checksum) check that the decoder refuses every malformed record
 * it should, rather than relying on the checksum.
 */
#include <string.h>

#include "queue/envelope.h"
#include "queue/queue-id.h"
#include "queue/spool-format.h"
#include "queue/spool.h"

/* --- CRC32C ----------------------------------------------------------------
 */

/* Bit at a time, straight from the definition: the reference. */
static guint32 crc32c_reference(const guint8 *data, gsize length) {
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < length; i++) {
    crc ^= data[i];
    for (guint bit = 0; bit < 8; bit++)
      crc = (crc >> 1) ^ ((crc & 1) ? 0x82f63b78u : 0);
  }
  return ~crc;
}

static void test_crc32c_vectors(void) {
  static const struct {
    const char *name;
    guint8 fill;
    gsize length;
    guint32 crc;
  } vectors[] = {
      /* RFC 3720, B.4 */
      {"32 zeros", 0x00, 32, 0x8a9136aa},
      {"32 ones", 0xff, 32, 0x62a8ab43},
      {"empty", 0x00, 0, 0x00000000},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(vectors); i++) {
    guint8 buffer[64];
    memset(buffer, vectors[i].fill, sizeof buffer);
    g_test_message("%s", vectors[i].name);
    g_assert_cmphex(pst_spool_crc32c(0, buffer, vectors[i].length), ==,
                    vectors[i].crc);
  }
  g_assert_cmphex(pst_spool_crc32c(0, "123456789", 9), ==, 0xe3069283);
}

/* Every length and alignment, in one piece and split at every point. */
static void test_crc32c_chaining(void) {
  guint8 data[300];
  for (gsize i = 0; i < sizeof data; i++)
    data[i] = (guint8)(i * 131 + 7);
  for (gsize start = 0; start < 9; start++) {
    for (gsize length = 0; start + length <= sizeof data; length += 7) {
      guint32 expected = crc32c_reference(data + start, length);
      g_assert_cmphex(pst_spool_crc32c(0, data + start, length), ==, expected);
      for (gsize split = 0; split <= length; split += 5) {
        guint32 crc = pst_spool_crc32c(0, data + start, split);
        crc = pst_spool_crc32c(crc, data + start + split, length - split);
        g_assert_cmphex(crc, ==, expected);
      }
    }
  }
}

/* --- Queue ids -------------------------------------------------------------
 */

static void test_id_format(void) {
  char id[PST_QUEUE_ID_LENGTH + 1];
  pst_queue_id_format(0, 0, id);
  g_assert_cmpstr(id, ==, "0000000000000000");
  pst_queue_id_format(G_USEC_PER_SEC + 1, 31, id);
  g_assert_cmpstr(id, ==, "000000100010000Z");
  /* 2^35 - 1 seconds is the largest the 7 digits hold. */
  pst_queue_id_format(G_GINT64_CONSTANT(34359738367) * G_USEC_PER_SEC + 999999,
                      0xffffffff, id);
  g_assert_cmpstr(id, ==, "ZZZZZZZYGHZZZZZZ");
  g_assert_true(pst_queue_id_is_valid(id));

  /* Later times sort later, whatever the random part. */
  char earlier[PST_QUEUE_ID_LENGTH + 1];
  pst_queue_id_format(G_GINT64_CONSTANT(1700000000123456), 0x1ffffff, earlier);
  pst_queue_id_format(G_GINT64_CONSTANT(1700000000123457), 0, id);
  g_assert_cmpstr(earlier, <, id);
}

static void test_id_unique(void) {
  g_autoptr(GHashTable) seen =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  char previous[PST_QUEUE_ID_LENGTH + 1] = "";
  for (guint i = 0; i < 20000; i++) {
    char id[PST_QUEUE_ID_LENGTH + 1];
    pst_queue_id_new(id);
    g_assert_true(pst_queue_id_is_valid(id));
    g_assert_cmpuint(strlen(id), ==, PST_QUEUE_ID_LENGTH);
    /* The time part (11 characters) strictly increases. */
    g_assert_cmpint(strncmp(previous, id, 11), <, 0);
    g_assert_true(g_hash_table_add(seen, g_strdup(id)));
    memcpy(previous, id, sizeof id);
  }
}

static void test_id_valid(void) {
  static const struct {
    const char *text;
    gboolean valid;
  } cases[] = {
      {"0123456789AB", TRUE},
      {"0123456789ABCDEFGHJKMNPQRSTVWXYZ", TRUE},
      {"0123456789ABCDEFGHJKMNPQRSTVWXYZ0", FALSE},
      {"0123456789A", FALSE},
      {"", FALSE},
      {"0123456789ab", FALSE},
      {"../0123456789AB", FALSE},
      {"0123456789AB/", FALSE},
      {"0123456789AB.1", FALSE},
      {".0123456789AB", FALSE},
      {"0123456789AB\n", FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("%s", cases[i].text);
    g_assert_cmpint(pst_queue_id_is_valid(cases[i].text), ==, cases[i].valid);
  }
  g_assert_false(pst_queue_id_is_valid(NULL));
}

/* --- Encoding and decoding -------------------------------------------------
 */

#define TEST_ID "0ABCDEFGH12345XY"

static GVariant *results_new(const char *key, const char *value) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&builder, "{sv}", key, g_variant_new_string(value));
  /* Octets with NULs survive, as they may in a plugin's binary result. */
  static const guint8 binary[] = {0, 1, 0, 255, '\n', 0};
  g_variant_builder_add(
      &builder, "{sv}", "test.binary",
      g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, binary, sizeof binary, 1));
  g_variant_builder_add(
      &builder, "{sv}", "test.nested",
      g_variant_new_parsed("{'result': <'pass'>, 'n': <@u 7>}"));
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

/* Every field set, with the awkward values a client could send. */
static PstEnvelope *envelope_full(void) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup("s\u00e9nder@ex\u00e4mple.org");
  envelope->envid = g_strdup("line1\r\nline2\nMAIL FROM:<forged@x>");
  envelope->ret = PST_DSN_RET_HDRS;
  envelope->body = PST_BODY_8BITMIME;
  envelope->smtputf8 = TRUE;
  envelope->size_declared = G_MAXUINT64;
  PstEnvelopeRecipient *r = pst_envelope_add_recipient(envelope, "a@b.example");
  r->orcpt = g_strdup("rfc822;a@b.example");
  r->notify =
      PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE | PST_DSN_NOTIFY_DELAY;
  r->results = results_new("relay.class", "local");
  r = pst_envelope_add_recipient(envelope, "");
  r->notify = PST_DSN_NOTIFY_NEVER;
  r = pst_envelope_add_recipient(envelope, "\x01\x02\xff\xfe");
  r->orcpt = g_strdup("");
  /* The largest string the format takes. */
  envelope->client_address = g_strnfill(PST_SPOOL_MAX_STRING, 'x');
  envelope->client_hostname = g_strdup("");
  envelope->helo = g_strdup("\r\n.\r\n");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("ESMTPSA");
  envelope->auth_user = g_strdup("user\tname");
  envelope->hold_reason = g_strdup("Eicar-Test-Signature (milter clamav)");
  envelope->dsn_original = g_strdup("1NHAC7D688CPCKT7");
  envelope->session_id = g_strdup("S1234");
  envelope->arrival_time = G_GINT64_CONSTANT(-1);
  envelope->results = results_new("auth.spf", "pass");
  return envelope;
}

static PstEnvelope *envelope_minimal(void) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup("");
  envelope->client_address = g_strdup("192.0.2.1");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("SMTP");
  envelope->session_id = g_strdup("S1");
  envelope->arrival_time = 1700000000000000;
  pst_envelope_add_recipient(envelope, "postmaster");
  return envelope;
}

/* A whole file: content, then the encoded trailer and footer. */
static GBytes *file_build(const PstEnvelope *envelope, const char *content,
                          GBytes *override, guint64 header_length) {
  gsize length = strlen(content);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) tail = pst_spool_format_encode(
      TEST_ID, envelope, override, header_length, length,
      pst_spool_crc32c(0, content, length), &error);
  g_assert_no_error(error);
  GByteArray *file = g_byte_array_new();
  g_byte_array_append(file, (const guint8 *)content, length);
  g_byte_array_append(file, g_bytes_get_data(tail, NULL),
                      g_bytes_get_size(tail));
  return g_byte_array_free_to_bytes(file);
}

/* A file as written into a pre-zeroed spare: content, trailer, `gap`
 * zeros, footer (version 2 when `gap` > 0). */
static GBytes *file_build_gap(const PstEnvelope *envelope, const char *content,
                              GBytes *override, guint64 header_length,
                              gsize gap) {
  gsize length = strlen(content);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) encoded = pst_spool_format_encode(
      TEST_ID, envelope, override, header_length, length,
      pst_spool_crc32c(0, content, length), &error);
  g_assert_no_error(error);
  gsize tail_length = 0;
  const guint8 *encoded_data = g_bytes_get_data(encoded, &tail_length);
  g_autofree guint8 *tail = g_memdup2(encoded_data, tail_length);
  pst_spool_format_set_gap(tail, tail_length, gap);
  GByteArray *file = g_byte_array_new();
  g_byte_array_append(file, (const guint8 *)content, length);
  g_byte_array_append(file, tail, tail_length - 32);
  g_byte_array_set_size(file, file->len + gap);
  memset(file->data + file->len - gap, 0, gap);
  g_byte_array_append(file, tail + tail_length - 32, 32);
  return g_byte_array_free_to_bytes(file);
}

static PstSpoolTrailer *file_decode(GBytes *file, GError **error) {
  return pst_spool_format_decode_file(g_bytes_get_data(file, NULL),
                                      g_bytes_get_size(file), error);
}

static void test_format_roundtrip(void) {
  static const char content[] =
      "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n.\r\n";
  PstEnvelope *(*builders[])(void) = {envelope_full, envelope_minimal};
  for (gsize i = 0; i < G_N_ELEMENTS(builders); i++) {
    g_autoptr(PstEnvelope) envelope = builders[i]();
    g_autoptr(GBytes) file = file_build(envelope, content, NULL, 0);
    g_autoptr(GError) error = NULL;
    g_autoptr(PstSpoolTrailer) trailer = file_decode(file, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(trailer->queue_id, ==, TEST_ID);
    g_assert_true(pst_envelope_equal(envelope, trailer->envelope));
    g_assert_null(trailer->header_override);
    g_assert_cmpuint(trailer->content_length, ==, strlen(content));
    /* Spot checks, in case pst_envelope_equal() were wrong. */
    g_assert_cmpstr(trailer->envelope->sender, ==, envelope->sender);
    g_assert_cmpuint(trailer->envelope->recipients->len, ==,
                     envelope->recipients->len);
  }
  /* NULL and "" stay apart. */
  g_autoptr(PstEnvelope) envelope = envelope_minimal();
  g_autoptr(GBytes) file = file_build(envelope, "", NULL, 0);
  g_autoptr(PstSpoolTrailer) trailer = file_decode(file, NULL);
  g_assert_nonnull(trailer);
  g_assert_null(trailer->envelope->envid);
  g_assert_null(trailer->envelope->helo);
  g_assert_cmpstr(trailer->envelope->sender, ==, "");
}

static void test_format_header_override(void) {
  static const char content[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
  g_autoptr(PstEnvelope) envelope = envelope_minimal();
  g_autoptr(GBytes) override = g_bytes_new_static("C: 3\r\n\r\n", 8);
  g_autoptr(GBytes) file = file_build(envelope, content, override, 14);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstSpoolTrailer) trailer = file_decode(file, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(trailer->header_length, ==, 14);
  g_assert_true(g_bytes_equal(trailer->header_override, override));

  /* An empty override (every header removed) is still an override. */
  g_autoptr(GBytes) empty = g_bytes_new_static("", 0);
  g_autoptr(GBytes) file2 = file_build(envelope, content, empty, 0);
  g_autoptr(PstSpoolTrailer) trailer2 = file_decode(file2, &error);
  g_assert_no_error(error);
  g_assert_nonnull(trailer2->header_override);
  g_assert_cmpuint(g_bytes_get_size(trailer2->header_override), ==, 0);
}

static void test_format_limits(void) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) tail = NULL;
  {
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    g_free(envelope->helo);
    envelope->helo = g_strnfill(PST_SPOOL_MAX_STRING + 1, 'h');
    tail = pst_spool_format_encode(TEST_ID, envelope, NULL, 0, 0, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_assert_nonnull(strstr(error->message, "helo"));
    g_clear_error(&error);
  }
  {
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    g_clear_pointer(&envelope->client_address, g_free);
    tail = pst_spool_format_encode(TEST_ID, envelope, NULL, 0, 0, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_assert_nonnull(strstr(error->message, "client_address"));
    g_clear_error(&error);
  }
  {
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    envelope->results = g_variant_ref_sink(g_variant_new_string("x"));
    tail = pst_spool_format_encode(TEST_ID, envelope, NULL, 0, 0, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_clear_error(&error);
  }
  {
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    envelope->ret = 7;
    tail = pst_spool_format_encode(TEST_ID, envelope, NULL, 0, 0, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_clear_error(&error);
  }
  {
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    PstEnvelopeRecipient *r = envelope->recipients->pdata[0];
    r->notify = 0x10;
    tail = pst_spool_format_encode(TEST_ID, envelope, NULL, 0, 0, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_clear_error(&error);
  }
  {
    /* An override for more header than there is content. */
    g_autoptr(PstEnvelope) envelope = envelope_minimal();
    g_autoptr(GBytes) override = g_bytes_new_static("X: y\r\n\r\n", 8);
    tail =
        pst_spool_format_encode(TEST_ID, envelope, override, 11, 10, 0, &error);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
    g_clear_error(&error);
  }
  g_assert_null(tail);
}

/* Every single-octet change to the trailer or footer is caught, and so is
 * one in the content. */
static void test_format_corrupt_every_octet(void) {
  static const char content[] = "Subject: x\r\n\r\nhello\r\n";
  g_autoptr(PstEnvelope) envelope = envelope_full();
  g_free(envelope->client_address); /* keep the loop short */
  envelope->client_address = g_strdup("192.0.2.7");
  g_autoptr(GBytes) override = g_bytes_new_static("S: y\r\n\r\n", 8);
  g_autoptr(GBytes) file = file_build(envelope, content, override, 14);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(file, &length);
  g_autofree guint8 *copy = g_memdup2(data, length);
  static const guint8 flips[] = {0x01, 0x80, 0xff};
  for (gsize i = 0; i < length; i++) {
    for (gsize f = 0; f < G_N_ELEMENTS(flips); f++) {
      copy[i] ^= flips[f];
      g_autoptr(GError) error = NULL;
      g_autoptr(PstSpoolTrailer) trailer =
          pst_spool_format_decode_file(copy, length, &error);
      if (trailer != NULL)
        g_test_message("octet %" G_GSIZE_FORMAT " ^ 0x%02x went unnoticed", i,
                       flips[f]);
      g_assert_null(trailer);
      g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
      copy[i] ^= flips[f];
    }
  }
}

static void test_format_truncated(void) {
  g_autoptr(PstEnvelope) envelope = envelope_full();
  g_autoptr(GBytes) file =
      file_build(envelope, "Subject: x\r\n\r\nb\r\n", NULL, 0);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(file, &length);
  for (gsize cut = 0; cut < length; cut++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(PstSpoolTrailer) trailer =
        pst_spool_format_decode_file(data, cut, &error);
    g_assert_null(trailer);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  }
  /* Appending is caught too: the footer must end the file. */
  g_autofree guint8 *longer = g_malloc0(length + 1);
  memcpy(longer, data, length);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_spool_format_decode_file(longer, length + 1, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
}

/* A client that sends a whole queue file as its message gets nowhere: the
 * footer is found from the end. */
static void test_format_forged_content(void) {
  g_autoptr(PstEnvelope) forged = envelope_minimal();
  g_free(forged->sender);
  forged->sender = g_strdup("forged@evil.example");
  g_autoptr(GBytes) inner = file_build(forged, "x\r\n", NULL, 0);
  /* The inner file holds NULs: build the outer one by hand. */
  gsize content_length = g_bytes_get_size(inner);
  g_autoptr(PstEnvelope) envelope = envelope_minimal();
  g_autoptr(GBytes) tail = pst_spool_format_encode(
      TEST_ID, envelope, NULL, 0, content_length,
      pst_spool_crc32c(0, g_bytes_get_data(inner, NULL), content_length), NULL);
  g_autoptr(GByteArray) file = g_byte_array_new();
  g_byte_array_append(file, g_bytes_get_data(inner, NULL), content_length);
  g_byte_array_append(file, g_bytes_get_data(tail, NULL),
                      g_bytes_get_size(tail));
  g_autoptr(PstSpoolTrailer) trailer =
      pst_spool_format_decode_file(file->data, file->len, NULL);
  g_assert_nonnull(trailer);
  g_assert_cmpstr(trailer->envelope->sender, ==, "");
  g_assert_cmpuint(trailer->content_length, ==, content_length);
}

/* A message in a pre-zeroed spare: zeros between trailer and footer
 * (version 2), read back the same; without a gap the file stays version
 * 1, byte for byte what the older writer wrote. */
static void test_format_gap(void) {
  static const char content[] = "Subject: x\r\n\r\nhello\r\n";
  g_autoptr(PstEnvelope) envelope = envelope_full();
  g_autoptr(GBytes) packed = file_build(envelope, content, NULL, 0);
  g_autoptr(GBytes) none = file_build_gap(envelope, content, NULL, 0, 0);
  g_assert_true(g_bytes_equal(packed, none));
  const gsize gaps[] = {1, 100, 16 * 1024, PST_SPOOL_MAX_GAP};
  for (gsize i = 0; i < G_N_ELEMENTS(gaps); i++) {
    g_autoptr(GBytes) file =
        file_build_gap(envelope, content, NULL, 0, gaps[i]);
    gsize length = 0;
    const guint8 *data = g_bytes_get_data(file, &length);
    g_assert_cmpuint(length, ==, g_bytes_get_size(packed) + gaps[i]);
    g_assert_cmpuint(data[length - 32 + 8], ==, 2);
    g_autoptr(GError) error = NULL;
    g_autoptr(PstSpoolTrailer) trailer = file_decode(file, &error);
    g_assert_no_error(error);
    g_assert_true(pst_envelope_equal(envelope, trailer->envelope));
    g_assert_cmpuint(trailer->content_length, ==, strlen(content));
  }
  /* More zeros than a spare can hold: not a queue file. */
  g_autoptr(GBytes) file =
      file_build_gap(envelope, content, NULL, 0, PST_SPOOL_MAX_GAP);
  g_autoptr(GByteArray) longer = g_byte_array_new();
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(file, &length);
  g_byte_array_append(longer, data, length - 32);
  g_byte_array_append(longer, (const guint8 *)"", 1);
  g_byte_array_append(longer, data + length - 32, 32);
  g_autoptr(GError) error = NULL;
  g_assert_null(
      pst_spool_format_decode_file(longer->data, longer->len, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  /* A gap in a version 1 file: "appended to". */
  g_autoptr(GBytes) one = file_build_gap(envelope, content, NULL, 0, 8);
  g_autofree guint8 *copy = g_bytes_unref_to_data(g_bytes_ref(one), &length);
  guint8 *footer = copy + length - 32;
  footer[8] = 1;
  guint32 crc = pst_spool_crc32c(0, copy + strlen(content),
                                 length - 32 - 8 - strlen(content));
  crc = pst_spool_crc32c(crc, footer, 28);
  for (guint b = 0; b < 4; b++)
    footer[28 + b] = (guint8)(crc >> (8 * b));
  g_clear_error(&error);
  g_assert_null(pst_spool_format_decode_file(copy, length, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
}

/* In a file with a gap, every single-octet change is caught too: in the
 * content, trailer and footer by their checksums, in the gap by its
 * octets having to be zero; so is every truncation (the footer must end
 * the file). */
static void test_format_gap_corrupt(void) {
  static const char content[] = "Subject: x\r\n\r\nhello\r\n";
  g_autoptr(PstEnvelope) envelope = envelope_minimal();
  g_autoptr(GBytes) override = g_bytes_new_static("S: y\r\n\r\n", 8);
  g_autoptr(GBytes) file = file_build_gap(envelope, content, override, 14, 64);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(file, &length);
  g_autofree guint8 *copy = g_memdup2(data, length);
  for (gsize i = 0; i < length; i++) {
    copy[i] ^= 0x01;
    g_autoptr(GError) error = NULL;
    g_autoptr(PstSpoolTrailer) trailer =
        pst_spool_format_decode_file(copy, length, &error);
    if (trailer != NULL)
      g_test_message("octet %" G_GSIZE_FORMAT " went unnoticed", i);
    g_assert_null(trailer);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    copy[i] ^= 0x01;
  }
  for (gsize cut = 0; cut < length; cut++) {
    g_autoptr(GError) error = NULL;
    g_assert_null(pst_spool_format_decode_file(data, cut, &error));
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  }
  /* Torn before its sync: the footer and trailer reached the disk, the
   * content's block did not (zeros): the content checksum fails. */
  memset(copy, 0, strlen(content));
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_spool_format_decode_file(copy, length, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, "content checksum"));
}

/* The gap's check names the first octet that is not zero, wherever it
 * falls among the blocks it compares at once. */
static void test_format_gap_octet(void) {
  const gsize length = 5000;
  g_autofree guint8 *gap = g_malloc0(length);
  g_assert_true(pst_spool_format_check_gap(gap, length, NULL));
  g_assert_true(pst_spool_format_check_gap(gap, 0, NULL));
  const gsize where[] = {0, 1, 1023, 1024, 2047, 4096, 4999};
  for (gsize i = 0; i < G_N_ELEMENTS(where); i++) {
    gap[where[i]] = 0x80;
    if (where[i] + 1 < length)
      gap[length - 1] = 0x01; /* a later one is not the first */
    g_autoptr(GError) error = NULL;
    g_assert_false(pst_spool_format_check_gap(gap, length, &error));
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    g_autofree char *expected = g_strdup_printf(
        "octet %" G_GSIZE_FORMAT " of the 5000-octet gap", where[i]);
    g_assert_nonnull(strstr(error->message, expected));
    memset(gap, 0, length);
  }
}

/* --- Hand-made trailers ----------------------------------------------------
 */

static void raw_record(GByteArray *out, guint8 tag, const void *value,
                       gsize length) {
  guint8 header[5] = {tag, (guint8)length, (guint8)(length >> 8),
                      (guint8)(length >> 16), (guint8)(length >> 24)};
  g_byte_array_append(out, header, sizeof header);
  g_byte_array_append(out, value, length);
}

static void raw_string(GByteArray *out, guint8 tag, const char *value) {
  raw_record(out, tag, value, strlen(value));
}

static void raw_u64(GByteArray *out, guint8 tag, guint64 value) {
  guint8 bytes[8];
  for (guint i = 0; i < 8; i++)
    bytes[i] = (guint8)(value >> (8 * i));
  raw_record(out, tag, bytes, 8);
}

/* Tags as doc/queue-format.md lists them. */
enum {
  T_ID = 1,
  T_SENDER,
  T_ENVID,
  T_RET,
  T_BODY,
  T_SMTPUTF8,
  T_SIZE,
  T_CLIENT,
  T_HOSTNAME,
  T_HELO,
  T_LISTENER,
  T_PROTOCOL,
  T_AUTH,
  T_SESSION,
  T_ARRIVAL,
  T_RESULTS,
  T_RCPT,
  T_HEADER,
  T_CONTENT,
};

/* The required records of a valid trailer for empty content, except the
 * ones named in `skip` (a string of tags). */
static void raw_required(GByteArray *out, const char *skip) {
  if (!strchr(skip, T_ID))
    raw_string(out, T_ID, TEST_ID);
  if (!strchr(skip, T_SENDER))
    raw_string(out, T_SENDER, "a@b");
  if (!strchr(skip, T_CLIENT))
    raw_string(out, T_CLIENT, "::1");
  if (!strchr(skip, T_LISTENER))
    raw_string(out, T_LISTENER, "smtp");
  if (!strchr(skip, T_PROTOCOL))
    raw_string(out, T_PROTOCOL, "SMTP");
  if (!strchr(skip, T_SESSION))
    raw_string(out, T_SESSION, "S");
  if (!strchr(skip, T_ARRIVAL))
    raw_u64(out, T_ARRIVAL, 1);
  if (!strchr(skip, T_CONTENT)) {
    guint8 zero[4] = {0};
    raw_record(out, T_CONTENT, zero, 4);
  }
}

/* Appends a correct footer to `trailer` (content length 0), making a file. */
static void raw_finish(GByteArray *file) {
  guint8 footer[32] = {0x89, 'P', 'S', 'T', 'Q', '\r', '\n', 0x1a, 1};
  guint32 length = file->len;
  for (guint i = 0; i < 4; i++)
    footer[12 + i] = (guint8)(length >> (8 * i));
  guint32 crc = pst_spool_crc32c(0, file->data, file->len);
  crc = pst_spool_crc32c(crc, footer, 28);
  for (guint i = 0; i < 4; i++)
    footer[28 + i] = (guint8)(crc >> (8 * i));
  g_byte_array_append(file, footer, sizeof footer);
}

typedef struct {
  const char *name;
  const char *skip; /* required records left out */
  void (*extra)(GByteArray *out);
  gboolean valid;
} RawCase;

static void extra_none(GByteArray *out) {
}
static void extra_nul(GByteArray *out) {
  raw_record(out, T_HELO, "a\0b", 3);
}
static void extra_duplicate(GByteArray *out) {
  raw_string(out, T_SENDER, "again@b");
}
static void extra_unknown(GByteArray *out) {
  raw_string(out, 0x40, "what");
}
static void extra_optional(GByteArray *out) {
  raw_string(out, 0xc0, "a later version's optional record");
}
static void extra_bad_enum(GByteArray *out) {
  raw_record(out, T_RET, "\x03", 1);
}
static void extra_bad_bool(GByteArray *out) {
  raw_record(out, T_SMTPUTF8, "\x02", 1);
}
static void extra_short_integer(GByteArray *out) {
  raw_record(out, T_SIZE, "\x01\x02", 2);
}
static void extra_long_string(GByteArray *out) {
  g_autofree char *big = g_strnfill(PST_SPOOL_MAX_STRING + 1, 'a');
  raw_string(out, T_HELO, big);
}
static void extra_bad_variant(GByteArray *out) {
  /* "a{sv}" data that is not in normal form: a truncated entry. */
  raw_record(out, T_RESULTS, "k\0\0\0\0\x09", 6);
}
static void extra_good_variant(GByteArray *out) {
  g_autoptr(GVariant) v =
      g_variant_ref_sink(g_variant_new_parsed("@a{sv} {'spf': <'pass'>}"));
  raw_record(out, T_RESULTS, g_variant_get_data(v), g_variant_get_size(v));
}
static void extra_recipient(GByteArray *out) {
  g_autoptr(GByteArray) nested = g_byte_array_new();
  raw_string(nested, 1, "r@x");
  raw_record(nested, 3, "\x0f", 1);
  raw_record(out, T_RCPT, nested->data, nested->len);
}
static void extra_recipient_no_address(GByteArray *out) {
  g_autoptr(GByteArray) nested = g_byte_array_new();
  raw_string(nested, 2, "rfc822;r@x");
  raw_record(out, T_RCPT, nested->data, nested->len);
}
static void extra_recipient_bad_notify(GByteArray *out) {
  g_autoptr(GByteArray) nested = g_byte_array_new();
  raw_string(nested, 1, "r@x");
  raw_record(nested, 3, "\x10", 1);
  raw_record(out, T_RCPT, nested->data, nested->len);
}
static void extra_recipient_overrun(GByteArray *out) {
  /* The nested record claims more than its parent holds. */
  raw_record(out, T_RCPT, "\x01\xff\x00\x00\x00r@x", 8);
}
static void extra_header_beyond(GByteArray *out) {
  /* Replaces 1 octet of content, but the content is empty. */
  raw_record(out, T_HEADER, "\x01\0\0\0\0\0\0\0X", 9);
}
static void extra_header_short(GByteArray *out) {
  raw_record(out, T_HEADER, "\0\0\0", 3);
}
static void extra_bad_id(GByteArray *out) {
}
static void extra_truncated_header(GByteArray *out) {
  g_byte_array_append(out, (const guint8 *)"\x02\x01", 2);
}

static const RawCase raw_cases[] = {
    {"valid", "", extra_none, TRUE},
    {"optional unknown record skipped", "", extra_optional, TRUE},
    {"good results", "", extra_good_variant, TRUE},
    {"recipient", "", extra_recipient, TRUE},
    {"no queue id", "\x01", extra_none, FALSE},
    {"no sender", "\x02", extra_none, FALSE},
    {"no client address", "\x08", extra_none, FALSE},
    {"no listener", "\x0b", extra_none, FALSE},
    {"no protocol", "\x0c", extra_none, FALSE},
    {"no session id", "\x0e", extra_none, FALSE},
    {"no arrival time", "\x0f", extra_none, FALSE},
    {"no content checksum", "\x13", extra_none, FALSE},
    {"NUL in a string", "", extra_nul, FALSE},
    {"duplicate sender", "", extra_duplicate, FALSE},
    {"unknown record", "", extra_unknown, FALSE},
    {"RET out of range", "", extra_bad_enum, FALSE},
    {"SMTPUTF8 not 0/1", "", extra_bad_bool, FALSE},
    {"short integer", "", extra_short_integer, FALSE},
    {"string over the limit", "", extra_long_string, FALSE},
    {"results not in normal form", "", extra_bad_variant, FALSE},
    {"recipient without address", "", extra_recipient_no_address, FALSE},
    {"recipient NOTIFY bits", "", extra_recipient_bad_notify, FALSE},
    {"nested record overrun", "", extra_recipient_overrun, FALSE},
    {"header override beyond content", "", extra_header_beyond, FALSE},
    {"header override too short", "", extra_header_short, FALSE},
    {"truncated record header", "", extra_truncated_header, FALSE},
    {"malformed queue id", "\x01", extra_bad_id, FALSE},
};

static void test_format_raw(gconstpointer data) {
  const RawCase *c = data;
  g_autoptr(GByteArray) file = g_byte_array_new();
  if (c->extra == extra_bad_id)
    raw_string(file, T_ID, "../../etc/passwd");
  raw_required(file, c->skip);
  c->extra(file);
  raw_finish(file);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstSpoolTrailer) trailer =
      pst_spool_format_decode_file(file->data, file->len, &error);
  if (c->valid) {
    g_assert_no_error(error);
    g_assert_nonnull(trailer);
  } else {
    g_assert_null(trailer);
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    g_test_message("%s: %s", c->name, error->message);
  }
}

/* Footers that lie about the trailer, with a correct checksum. */
static void test_format_footer_lies(void) {
  g_autoptr(GByteArray) file = g_byte_array_new();
  raw_required(file, "");
  raw_finish(file);
  static const struct {
    guint offset;
    guint8 value;
  } lies[] = {
      {8, 0},     /* version 0 */
      {8, 3},     /* version 3 */
      {12, 0},    /* trailer length */
      {15, 0x7f}, /* trailer length huge */
      {16, 1},    /* trailer offset */
      {23, 0x80}, /* trailer offset huge */
      {24, 1},    /* reserved */
  };
  for (gsize i = 0; i < G_N_ELEMENTS(lies); i++) {
    g_autofree guint8 *copy = g_memdup2(file->data, file->len);
    guint8 *f = copy + file->len - 32;
    f[lies[i].offset] = lies[i].value;
    /* Recompute the checksum, so only the lie itself can be caught. */
    guint32 crc = pst_spool_crc32c(0, copy, file->len - 4);
    for (guint b = 0; b < 4; b++)
      f[28 + b] = (guint8)(crc >> (8 * b));
    g_autoptr(GError) error = NULL;
    g_assert_null(pst_spool_format_decode_file(copy, file->len, &error));
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    g_test_message("footer octet %u: %s", lies[i].offset, error->message);
  }
}

/* A DSN's link to its original: the explicit record, or the older form
 * (listener "bounce", the original's id as session id); nothing else. */
static void test_dsn_original(void) {
  g_autoptr(PstEnvelope) envelope = envelope_minimal();
  g_assert_null(pst_envelope_get_dsn_original(envelope));
  g_free(envelope->listener);
  envelope->listener = g_strdup("bounce");
  g_assert_cmpstr(pst_envelope_get_dsn_original(envelope), ==, "S1");
  envelope->dsn_original = g_strdup("1NHAC7D688CPCKT7");
  g_assert_cmpstr(pst_envelope_get_dsn_original(envelope), ==,
                  "1NHAC7D688CPCKT7");
  g_free(envelope->listener);
  envelope->listener = g_strdup("dsn");
  g_assert_cmpstr(pst_envelope_get_dsn_original(envelope), ==,
                  "1NHAC7D688CPCKT7");
  g_clear_pointer(&envelope->dsn_original, g_free);
  g_assert_null(pst_envelope_get_dsn_original(envelope));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/queue/crc32c/vectors", test_crc32c_vectors);
  g_test_add_func("/queue/crc32c/chaining", test_crc32c_chaining);
  g_test_add_func("/queue/id/format", test_id_format);
  g_test_add_func("/queue/id/unique", test_id_unique);
  g_test_add_func("/queue/id/valid", test_id_valid);
  g_test_add_func("/queue/format/roundtrip", test_format_roundtrip);
  g_test_add_func("/queue/format/dsn-original", test_dsn_original);
  g_test_add_func("/queue/format/header-override", test_format_header_override);
  g_test_add_func("/queue/format/limits", test_format_limits);
  g_test_add_func("/queue/format/corrupt-every-octet",
                  test_format_corrupt_every_octet);
  g_test_add_func("/queue/format/truncated", test_format_truncated);
  g_test_add_func("/queue/format/forged-content", test_format_forged_content);
  g_test_add_func("/queue/format/footer-lies", test_format_footer_lies);
  g_test_add_func("/queue/format/gap", test_format_gap);
  g_test_add_func("/queue/format/gap-corrupt", test_format_gap_corrupt);
  g_test_add_func("/queue/format/gap-octet", test_format_gap_octet);
  for (gsize i = 0; i < G_N_ELEMENTS(raw_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/queue/format/raw/%02" G_GSIZE_FORMAT, i);
    g_test_add_data_func(path, &raw_cases[i], test_format_raw);
  }
  return g_test_run();
}
