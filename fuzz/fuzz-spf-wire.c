/* fuzz-spf-wire.c - fuzzes the decoders of the messages between the SPF
 * plugin and its evaluator process (plugins/spf/spf-wire.c): the plugin
 * decodes what a possibly corrupted pst-spf-eval sends, and the evaluator
 * what the plugin relays from DNS.
 *
 * Input: one payload (type byte and fields).  Beyond "no crash, no leak"
 * it checks that whatever decodes encodes back to the same bytes (the
 * encoding is canonical, so nothing is lost or invented).  The same bytes
 * are also a stream as the plugin reads it from the evaluator's socket:
 * spf_wire_frame_take() must take whole frames only, each framed back to
 * the bytes it came from, and refuse a bad length.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/spf/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(GBytes *input, GBytes *encoded) {
  g_assert_true(g_bytes_equal(input, encoded));
}

static void fuzz_frames(const uint8_t *data, size_t size) {
  g_autoptr(GByteArray) in = g_byte_array_new();
  g_byte_array_append(in, data, (guint)size);
  gsize consumed = 0;
  for (;;) {
    GBytes *payload = NULL;
    gsize before = in->len;
    if (!spf_wire_frame_take(in, &payload, NULL) || payload == NULL) {
      g_assert_null(payload);
      g_assert_cmpuint(in->len, ==, before);
      return;
    }
    g_autoptr(GByteArray) again = g_byte_array_new();
    g_assert_true(spf_wire_frame_append(again, payload, NULL));
    g_assert_cmpuint(again->len, ==, before - in->len);
    g_assert_cmpmem(again->data, again->len, data + consumed, again->len);
    consumed += again->len;
    g_bytes_unref(payload);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_frames(data, size);
  g_autoptr(GBytes) input = g_bytes_new(data, size);
  g_autoptr(SpfWireQuery) query = spf_wire_decode_query(input);
  if (query != NULL) {
    g_autoptr(GBytes) again = spf_wire_encode_query(&query->query);
    check_same(input, again);
  }
  PstDnsType type = 0;
  g_autofree char *name = spf_wire_decode_question(input, &type);
  if (name != NULL) {
    g_autoptr(GBytes) again = spf_wire_encode_question(type, name);
    check_same(input, again);
  }
  g_autoptr(SpfAnswer) answer = spf_wire_decode_answer(input);
  if (answer != NULL) {
    g_autoptr(GBytes) again = spf_wire_encode_answer(answer);
    check_same(input, again);
  }
  g_autoptr(SpfOutcome) outcome = spf_wire_decode_outcome(input);
  if (outcome != NULL) {
    g_assert_null(outcome->identity);
    g_autoptr(GBytes) again = spf_wire_encode_outcome(outcome);
    check_same(input, again);
  }
  return 0;
}
