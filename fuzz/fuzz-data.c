/* fuzz-data.c - fuzzes the DATA/BDAT reader against its reference model.
 *
 * Input: a mode octet (bit 0: CHUNK; bits 1-7: max_size, 0 = none), a
 * split seed octet, then the octets from the client.  The reader is fed
 * in pieces chosen by the seed (1 to 17 octets, or up to 300) and must
 * agree with test-data-reference.c (fed whole, octet by octet) on status,
 * octets consumed, faults, size and, when there is no fault, the message
 * itself.  Any disagreement is a smuggling or framing bug, so it aborts.
 */
#include <stdint.h>
#include <string.h>

#include "smtp/test-data-reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The piece being fed, and the output so far: the sink checks that every
 * run it gets lies inside the piece (no copy, no octet from elsewhere). */
typedef struct {
  const guint8 *piece;
  gsize piece_length;
  GByteArray *out;
} FuzzSink;

static void fuzz_sink(const guint8 *data, gsize length, gpointer user_data) {
  FuzzSink *sink = user_data;
  g_assert_cmpuint(length, >, 0);
  g_assert_true(data >= sink->piece &&
                data + length <= sink->piece + sink->piece_length);
  g_byte_array_append(sink->out, data, (guint)length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  PstDataReaderMode mode =
      data[0] & 1 ? PST_DATA_READER_CHUNK : PST_DATA_READER_DOT;
  guint64 max_size = data[0] >> 1;
  guint32 seed = data[1];
  const guint8 *input = data + 2;
  gsize length = size - 2;

  PstDataReference model;
  pst_data_reference_run(mode, max_size, input, length, &model);

  g_autoptr(PstDataReader) reader = pst_data_reader_new(mode, max_size);
  g_autoptr(GByteArray) out = g_byte_array_new();
  PstDataStatus status = PST_DATA_MORE;
  gsize offset = 0, consumed_total = 0;
  while (offset < length && status == PST_DATA_MORE) {
    seed = seed * 1103515245 + 12345;
    /* Mostly small pieces (every split of a sequence), one in four up to
     * 300 octets (the reader's 16-octet scan steps and the lines it takes
     * in one loop). */
    gsize most = (seed >> 12) % 4 == 0 ? 300 : 17;
    gsize piece = MIN(length - offset, 1 + (seed >> 16) % most);
    gsize consumed = 0;
    /* Alternately through the buffer API and the sink API (both one
     * reader: the output must not depend on it). */
    if (seed & 0x100) {
      status =
          pst_data_reader_feed(reader, input + offset, piece, &consumed, out);
    } else {
      FuzzSink sink = {input + offset, piece, out};
      status = pst_data_reader_feed_to(reader, input + offset, piece, &consumed,
                                       fuzz_sink, &sink);
    }
    g_assert_cmpuint(consumed, <=, piece);
    consumed_total += consumed;
    offset += piece;
  }
  if (mode == PST_DATA_READER_CHUNK)
    pst_data_reader_finish(reader, out);

  g_assert_cmpint(status, ==, model.status);
  g_assert_cmpuint(consumed_total, ==, model.consumed);
  g_assert_cmphex(pst_data_reader_get_faults(reader), ==, model.faults);
  g_assert_cmpuint(pst_data_reader_get_size(reader), ==, model.size);
  if (model.faults == 0)
    g_assert_cmpmem(out->data, out->len, model.out->data, model.out->len);
  if (max_size != 0 && model.faults == 0)
    g_assert_cmpuint(out->len, <=, max_size);
  pst_data_reference_clear(&model);
  return 0;
}
