/* sendmail-text.h - standard input made into text that SMTP carries. */
#pragma once

#include <glib.h>

/* A message line's longest content, without its CRLF (RFC 5321
 * 4.5.3.1.6: 1,000 octets with it). */
#define PST_SENDMAIL_LINE_MAX 998

/* The message text of `input` (`length` octets, any line ends): CRLF
 * lines of at most PST_SENDMAIL_LINE_MAX octets, no NUL, no bare CR or
 * LF; not dot-stuffed.  Never fails. */
GString *pst_sendmail_text_from_input(const char *input, gsize length);

/* TRUE when `text` starts with a header field's name and its colon (else
 * all of it is body). */
gboolean pst_sendmail_text_has_header(const char *text, gsize length);
