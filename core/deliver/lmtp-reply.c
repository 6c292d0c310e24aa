/* lmtp-reply.c - the LMTP client's reply reader (see lmtp-reply.h).
 *
 * Called by lmtp.c each time octets arrive; it never waits and never
 * touches a socket.  Consumes only whole lines; a partial line stays in
 * `input` for the next call, bounded by PST_LMTP_LINE_MAX_OCTETS.
 */
#include <string.h>

#include "deliver/lmtp-reply.h"

/* "DDD", "DDD text" or "DDD-text" with the first digit 2 to 5, UTF-8. */
static gboolean line_is_valid(const char *line, gsize size) {
  return size >= 3 && g_ascii_isdigit(line[0]) && line[0] >= '2' &&
         line[0] <= '5' && g_ascii_isdigit(line[1]) &&
         g_ascii_isdigit(line[2]) &&
         (line[3] == '\0' || line[3] == ' ' || line[3] == '-') &&
         g_utf8_validate(line, -1, NULL);
}

PstLmtpReplyStatus pst_lmtp_reply_read(GByteArray *input, guint *lines,
                                       GString *all, char **reply_r,
                                       char **problem_r) {
  for (;;) {
    const guint8 *end =
        input->len > 0 ? memchr(input->data, '\n', input->len) : NULL;
    gsize length = end != NULL ? (gsize)(end - input->data) : input->len;
    if (length > PST_LMTP_LINE_MAX_OCTETS) {
      *problem_r = g_strdup_printf("the LMTP server sent a line longer than "
                                   "%d octets",
                                   PST_LMTP_LINE_MAX_OCTETS);
      return PST_LMTP_REPLY_INVALID;
    }
    if (end == NULL)
      return PST_LMTP_REPLY_NEED_MORE;
    g_autofree char *line = g_strndup((const char *)input->data, length);
    g_byte_array_remove_range(input, 0, (guint)length + 1);
    /* g_strndup() stops at a NUL octet: such a line is cut short. */
    gsize size = strlen(line);
    if (size > 0 && line[size - 1] == '\r')
      line[--size] = '\0';
    if (!line_is_valid(line, size)) {
      g_autofree char *shown = g_strescape(line, NULL);
      *problem_r =
          g_strdup_printf("the LMTP server replied garbage: \"%.80s\"", shown);
      return PST_LMTP_REPLY_INVALID;
    }
    if (all != NULL)
      g_string_append_printf(all, "%s\r\n", line);
    if (line[3] != '-') {
      *reply_r = g_steal_pointer(&line);
      return PST_LMTP_REPLY_DONE;
    }
    if (++*lines >= PST_LMTP_REPLY_MAX_LINES) {
      *problem_r = g_strdup_printf("the LMTP server sent a reply of more than "
                                   "%d lines",
                                   PST_LMTP_REPLY_MAX_LINES);
      return PST_LMTP_REPLY_INVALID;
    }
  }
}
