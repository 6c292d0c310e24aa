/* bounce-original.h - what a DSN returns of its original message, read
 * from the queue file without loading a large message whole. */
#pragma once

#include <glib.h>

#include "deliver/delivery-content.h"

G_BEGIN_DECLS

/* The whole content when `want_whole` and it is at most `limit` octets
 * (then `*whole_r` is TRUE); else its header block, up to and including
 * its blank line, cut after the last whole line within `limit` octets if
 * it is longer.  Blocking reads: a delivery worker.  NULL with `error`
 * when the queue file cannot be read, or (whole content) is corrupt. */
GBytes *pst_bounce_original_read(const PstDeliveryContent *content,
                                 gboolean want_whole, guint64 limit,
                                 gboolean *whole_r, GError **error);

/* The length of the header block at the start of data[0..length): up to
 * and including its empty line (the first CRLF CRLF, looking from `from`;
 * 2 for content that starts with an empty line); 0 when there is none
 * yet. */
gsize pst_bounce_header_end(const guint8 *data, gsize from, gsize length);

G_END_DECLS
