/* fuzz-queue-file.c - fuzzes the queue file decoder
 * (core/queue/spool-format.c).
 *
 * The first input octet picks a mode, the rest is the data:
 *   even: the data is a whole queue file, decoded as the reader would
 *         (footer of version 1 or 2, checksums, the gap of zeros between
 *         trailer and footer in version 2, records);
 *   odd:  the second octet N is a content length and the rest is trailer
 *         records; the harness appends a footer with a correct checksum,
 *         so that mutations reach the record parser instead of all failing
 *         the CRC check.
 * Whatever decodes must encode again and decode to the same envelope,
 * header override and checksums (an oracle for decoder/encoder
 * agreement), also when written with a gap before its footer (as into a
 * pre-zeroed spare file) and decoded from the separate trailer and
 * footer; whatever fails must fail with PST_SPOOL_ERROR_CORRUPT.
 */
#include <stdint.h>
#include <string.h>

#include "queue/spool-format.h"
#include "queue/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_le(guint8 *out, guint64 value, guint size) {
  for (guint i = 0; i < size; i++)
    out[i] = (guint8)(value >> (8 * i));
}

/* Records + a footer whose checksum is right, as if at `offset`. */
static GByteArray *tail_with_footer(const guint8 *records, gsize length,
                                    guint64 offset) {
  static const guint8 magic[8] = {0x89, 'P', 'S', 'T', 'Q', '\r', '\n', 0x1a};
  GByteArray *tail = g_byte_array_new();
  g_byte_array_append(tail, records, length);
  guint8 footer[PST_SPOOL_FOOTER_SIZE] = {0};
  memcpy(footer, magic, sizeof magic);
  put_le(footer + 8, PST_SPOOL_FORMAT_VERSION, 4);
  put_le(footer + 12, length, 4);
  put_le(footer + 16, offset, 8);
  guint32 crc = pst_spool_crc32c(0, records, length);
  crc = pst_spool_crc32c(crc, footer, 28);
  put_le(footer + 28, crc, 4);
  g_byte_array_append(tail, footer, sizeof footer);
  return tail;
}

/* Decodes `tail` (trailer and footer, as encoded) as if `gap` zeros
 * separated them in the file. */
static PstSpoolTrailer *decode_with_gap(GBytes *encoded, guint64 offset,
                                        gsize gap, GError **error) {
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(encoded, &length);
  g_autofree guint8 *tail = g_memdup2(data, length);
  pst_spool_format_set_gap(tail, length, gap);
  return pst_spool_format_decode_trailer(
      tail, length - PST_SPOOL_FOOTER_SIZE, offset,
      tail + length - PST_SPOOL_FOOTER_SIZE, offset + length + gap, error);
}

/* Encodes what was decoded and decodes that again: both must agree. */
static void check_roundtrip(const PstSpoolTrailer *trailer) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) tail = pst_spool_format_encode(
      trailer->queue_id, trailer->envelope, trailer->header_override,
      trailer->header_length, trailer->content_length, trailer->content_crc,
      &error);
  g_assert_no_error(error);
  g_autoptr(PstSpoolTrailer) gapped = decode_with_gap(
      tail, trailer->content_length, 1 + trailer->content_crc % 16384, &error);
  g_assert_no_error(error);
  g_assert_true(pst_envelope_equal(gapped->envelope, trailer->envelope));
  g_autoptr(PstSpoolTrailer) again = pst_spool_format_decode_tail(
      g_bytes_get_data(tail, NULL), g_bytes_get_size(tail),
      trailer->content_length, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(again->queue_id, ==, trailer->queue_id);
  g_assert_true(pst_envelope_equal(again->envelope, trailer->envelope));
  g_assert_cmpuint(again->header_length, ==, trailer->header_length);
  g_assert_true((again->header_override == NULL) ==
                (trailer->header_override == NULL));
  if (again->header_override != NULL)
    g_assert_true(
        g_bytes_equal(again->header_override, trailer->header_override));
  g_assert_cmpuint(again->content_crc, ==, trailer->content_crc);
  /* What pst-spool-dump does with results. */
  if (trailer->envelope->results != NULL)
    g_free(g_variant_print(trailer->envelope->results, TRUE));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(PstSpoolTrailer) trailer = NULL;
  if ((data[0] & 1) == 0) {
    trailer = pst_spool_format_decode_file(data + 1, size - 1, &error);
  } else if (size >= 2) {
    guint64 offset = data[1];
    g_autoptr(GByteArray) tail = tail_with_footer(data + 2, size - 2, offset);
    trailer =
        pst_spool_format_decode_tail(tail->data, tail->len, offset, &error);
  } else {
    return 0;
  }
  if (trailer == NULL) {
    g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
    return 0;
  }
  g_assert_no_error(error);
  check_roundtrip(trailer);
  return 0;
}
