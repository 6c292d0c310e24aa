/* fuzz-lmtp-reply.c - fuzzes the LMTP client's reply reader
 * (core/deliver/lmtp-reply.c).
 *
 * Input: what a hostile LMTP server sends, delivered in pieces whose
 * sizes come from the first octet (as reads would split it).  Replies are
 * read one after the other, as after DATA; the reader must consume only
 * whole lines, never grow the buffer past one line's limit, return a
 * well-formed last line ("DDD", "DDD text"), and stop at the first
 * problem.
 */
#include <stdint.h>
#include <string.h>

#include "deliver/lmtp-reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const char *reply) {
  gsize length = strlen(reply);
  g_assert_cmpuint(length, >=, 3);
  g_assert_cmpuint(length, <=, PST_LMTP_LINE_MAX_OCTETS);
  g_assert_true(reply[0] >= '2' && reply[0] <= '5');
  g_assert_true(g_ascii_isdigit(reply[1]) && g_ascii_isdigit(reply[2]));
  g_assert_true(reply[3] == '\0' || reply[3] == ' ');
  g_assert_true(g_utf8_validate(reply, -1, NULL));
  g_assert_null(strchr(reply, '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  gsize piece = 1 + data[0] % 64;
  data++;
  size--;
  g_autoptr(GByteArray) input = g_byte_array_new();
  g_autoptr(GString) all = g_string_new(NULL);
  guint lines = 0;
  gsize offset = 0;
  while (offset < size) {
    gsize take = MIN(piece, size - offset);
    g_byte_array_append(input, data + offset, (guint)take);
    offset += take;
    for (;;) {
      char *reply = NULL;
      char *problem = NULL;
      guint before = input->len;
      PstLmtpReplyStatus status =
          pst_lmtp_reply_read(input, &lines, all, &reply, &problem);
      g_assert_cmpuint(input->len, <=, before);
      if (status == PST_LMTP_REPLY_INVALID) {
        g_assert_nonnull(problem);
        g_assert_null(reply);
        g_free(problem);
        return 0;
      }
      if (status == PST_LMTP_REPLY_NEED_MORE) {
        g_assert_null(memchr(input->data, '\n', input->len));
        g_assert_cmpuint(input->len, <=, PST_LMTP_LINE_MAX_OCTETS);
        g_assert_cmpuint(lines, <, PST_LMTP_REPLY_MAX_LINES);
        break;
      }
      check_reply(reply);
      g_free(reply);
      lines = 0;
    }
  }
  return 0;
}
