/* smtp-address.h - RFC 5321/6531 mailbox grammar, shared inside core/smtp.
 *
 * Internal to the smtp parsers (the public checks are in smtp-parse.h):
 * the path parser, the ESMTP parameter parser and the fuzz targets use
 * these.  All are pure functions over a buffer that is not NUL-terminated.
 */
#pragma once

#include <glib.h>

#include "smtp/smtp-reply.h"

G_BEGIN_DECLS

/* TRUE when `text` is valid UTF-8 without C0 controls, DEL or C1 controls
 * (U+0080..U+009F).  Spaces are allowed. */
gboolean pst_smtp_text_is_clean(const char *text, gsize length);

/* Validates the mailbox "local-part@domain" that fills text[0..length)
 * (RFC 5321 4.1.2 with RFC 6531's UTF8-non-ascii in atext, qtext and
 * U-labels; the caller has checked UTF-8 validity).  On success sets
 * `*at_r` to the offset of the '@' and returns NULL; otherwise returns
 * pst_smtp_reply_bad_address or pst_smtp_reply_address_too_long. */
const PstSmtpReply *pst_smtp_mailbox_check(const char *text, gsize length,
                                           gsize *at_r);

/* Octets an A-label would need for the U-label `label` ("xn--" included):
 * RFC 3492 Punycode of the code points as sent (no IDNA mapping).  The
 * label must be valid UTF-8. */
gsize pst_smtp_a_label_length(const char *label, gsize length);

G_END_DECLS
