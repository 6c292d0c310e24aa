/* sendmail-text.c - what `sendmail` reads on standard input, made into
 * message text that SMTP carries.
 *
 * Programs that pipe into sendmail (cron, scripts, appliances) write what
 * their commands printed: LF or CRLF line ends, a CR alone for each update
 * of a progress bar, lines of any length, now and then a NUL.  The daemon
 * refuses a bare CR or LF, a NUL and a line over 998 octets in any SMTP
 * message (RFC 5321 2.3.8 and 4.5.3.1.6), and a refused cron mail is lost,
 * so the text is mended here, before it is submitted, as Postfix's
 * sendmail and SMTP client take such mail:
 *   - a line ends at LF, after any CRs right before it ("\r\n", "\r\r\n");
 *   - any other run of CRs breaks the line in the body (a progress bar's
 *     updates become lines) and is one space in the header (a field stays
 *     one field);
 *   - NUL octets are dropped;
 *   - a line over 998 octets is broken before its last space or tab
 *     within the 998 (the blank starts the next line: in the header that
 *     is a fold, and nothing is added), else after 998 octets with CRLF
 *     SPACE put in, as Postfix's smtp_line_length_limit does, until every
 *     line fits.
 * The header is what comes before the first empty line, when the input
 * starts with a field name and a colon (pst_sendmail_text_has_header(),
 * which sendmail.c also asks before adding fields).  Output lines end in
 * CRLF; the caller dot-stuffs.  Pure functions over buffers: sendmail.c
 * calls them, tools/test-sendmail-text.c checks them.
 */
#include <string.h>

#include "tools/sendmail-text.h"

typedef struct {
  GString *out;
  gboolean in_header; /* no empty line written yet, and there is a header */
} Text;

static gboolean is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Writes one line (without CR, LF or NUL), broken into lines that fit. */
static void text_put_line(Text *text, const char *line, gsize length) {
  gboolean pad = FALSE; /* a space goes first: the line was cut in a word */
  for (;;) {
    gsize room = PST_SENDMAIL_LINE_MAX - (pad ? 1 : 0);
    if (length <= room)
      break;
    gsize cut = room;
    while (cut > 0 && !is_blank(line[cut]))
      cut--;
    gboolean at_blank = cut > 0;
    if (!at_blank)
      cut = room;
    if (pad)
      g_string_append_c(text->out, ' ');
    g_string_append_len(text->out, line, (gssize)cut);
    g_string_append(text->out, "\r\n");
    line += cut;
    length -= cut;
    pad = !at_blank;
  }
  if (pad)
    g_string_append_c(text->out, ' ');
  g_string_append_len(text->out, line, (gssize)length);
  g_string_append(text->out, "\r\n");
}

/* Writes one input line (its line end taken off): NULs dropped, runs of
 * CR a break in the body and a space in the header. */
static void text_put_input_line(Text *text, GString *piece, const char *line,
                                gsize length) {
  g_string_truncate(piece, 0);
  for (gsize i = 0; i < length; i++) {
    if (line[i] == '\0')
      continue;
    if (line[i] != '\r') {
      g_string_append_c(piece, line[i]);
      continue;
    }
    while (i + 1 < length && line[i + 1] == '\r')
      i++;
    if (text->in_header) {
      g_string_append_c(piece, ' ');
    } else {
      text_put_line(text, piece->str, piece->len);
      g_string_truncate(piece, 0);
    }
  }
  text_put_line(text, piece->str, piece->len);
  if (piece->len == 0)
    text->in_header = FALSE;
}

gboolean pst_sendmail_text_has_header(const char *text, gsize length) {
  gsize name = 0;
  while (name < length && text[name] > ' ' && text[name] < 0x7f &&
         text[name] != ':')
    name++;
  return name > 0 && name < length && text[name] == ':';
}

GString *pst_sendmail_text_from_input(const char *input, gsize length) {
  Text text = {g_string_sized_new(length + length / 64 + 16),
               pst_sendmail_text_has_header(input, length)};
  g_autoptr(GString) piece = g_string_new(NULL);
  const char *p = input;
  const char *end = input + length;
  while (p < end) {
    const char *lf = memchr(p, '\n', (gsize)(end - p));
    const char *stop = lf != NULL ? lf : end;
    while (stop > p && stop[-1] == '\r')
      stop--;
    text_put_input_line(&text, piece, p, (gsize)(stop - p));
    p = lf != NULL ? lf + 1 : end;
  }
  return text.out;
}
