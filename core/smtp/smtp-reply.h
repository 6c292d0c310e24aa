/* smtp-reply.h - a static SMTP reply: code, enhanced status and text.
 *
 * The parsers return a pointer to one of these constant replies when they
 * refuse input, so a caller can send it as is.  Never freed.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint code;           /* 3 digits */
  const char *enhanced; /* "5.5.2", nullable */
  const char *text;     /* one line, no CRLF */
} PstSmtpReply;

G_END_DECLS
