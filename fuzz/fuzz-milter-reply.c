/* fuzz-milter-reply.c - fuzzes the milter reply parser (plugins/milter).
 *
 * Input: bytes as a milter would send them.  The first octet picks what
 * is parsed: even, a stream of reply frames (each decoded as a reply);
 * odd, one option-negotiation answer.  Beyond "no crash, no leak" it
 * checks what a successful decode promises: a frame never claims more
 * than the input or the bound, a reply code is 4xx/5xx with an enhanced
 * code of the same class, header edits carry a name and a value.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/milter/milter-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PAYLOAD 4096

static void check_reply(const MilterReply *reply) {
  switch (reply->type) {
  case MILTER_REPLY_CODE:
    g_assert_true(reply->code >= 400 && reply->code < 600);
    if (reply->enhanced != NULL)
      g_assert_true(reply->enhanced[0] == '0' + (int)reply->code / 100);
    break;
  case MILTER_REPLY_ADD_HEADER:
  case MILTER_REPLY_INSERT_HEADER:
  case MILTER_REPLY_CHANGE_HEADER:
    g_assert_nonnull(reply->name);
    g_assert_nonnull(reply->value);
    break;
  case MILTER_REPLY_REPLACE_BODY:
    g_assert_nonnull(reply->body);
    break;
  default:
    break;
  }
}

static void fuzz_stream(const guint8 *data, gsize size) {
  gsize offset = 0;
  while (offset < size) {
    MilterFrame frame;
    MilterFrameStatus status = milter_frame_parse(
        data + offset, size - offset, FUZZ_MAX_PAYLOAD, &frame, NULL);
    if (status != MILTER_FRAME_OK)
      return;
    g_assert_true(frame.consumed <= size - offset);
    g_assert_true(frame.length <= FUZZ_MAX_PAYLOAD);
    MilterReply reply;
    if (milter_reply_decode(&frame, &reply, NULL)) {
      check_reply(&reply);
      milter_reply_clear(&reply);
    }
    offset += frame.consumed;
  }
}

static void fuzz_negotiation(const guint8 *data, gsize size) {
  MilterFrame frame = {MILTER_CMD_OPTNEG, data, size, size};
  MilterNegotiation negotiation;
  if (!milter_negotiation_decode(&frame, MILTER_ACTIONS_ALL,
                                 MILTER_STEPS_OFFERED, &negotiation, NULL))
    return;
  g_assert_true(negotiation.version >= 2 && negotiation.version <= 6);
  g_assert_true((negotiation.actions & ~MILTER_ACTIONS_ALL) == 0);
  milter_negotiation_clear(&negotiation);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] % 2 == 0)
    fuzz_stream(data + 1, size - 1);
  else
    fuzz_negotiation(data + 1, size - 1);
  return 0;
}
