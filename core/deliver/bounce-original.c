/* bounce-original.c - what a DSN returns of its original message.
 *
 * A failure notice returns the whole message (RET=FULL, the default) when
 * it is at most [delivery] bounce_size_limit octets; any other notice, or
 * a larger message, returns the header block only.  Either way the queue
 * file is read here a piece at a time (queue/content-reader.h) and no more
 * of it is held than what is returned: a 30 MB message bouncing costs its
 * header, not 30 MB (and again for the DSN, and again for its signature).
 *
 * Called by delivery-job.c on a delivery worker when it builds a DSN.
 */
#include <string.h>

#include "deliver/bounce-original.h"

gsize pst_bounce_header_end(const guint8 *data, gsize from, gsize length) {
  if (from == 0 && length >= 2 && data[0] == '\r' && data[1] == '\n')
    return 2; /* an empty header block */
  for (gsize i = from; i + 4 <= length; i++) {
    const guint8 *p = memchr(data + i, '\r', length - i);
    if (p == NULL || (gsize)(p - data) + 4 > length)
      return 0;
    i = (gsize)(p - data);
    if (memcmp(p, "\r\n\r\n", 4) == 0)
      return i + 4;
  }
  return 0;
}

/* `header` cut after its last CRLF within `limit` octets (all of it when
 * none: a single line longer than the limit is kept up to the limit). */
static void cut_to_limit(GByteArray *header, guint64 limit) {
  if (header->len <= limit)
    return;
  gsize keep = (gsize)limit;
  while (keep >= 2 &&
         !(header->data[keep - 2] == '\r' && header->data[keep - 1] == '\n'))
    keep--;
  g_byte_array_set_size(header, (guint)(keep >= 2 ? keep : limit));
}

GBytes *pst_bounce_original_read(const PstDeliveryContent *content,
                                 gboolean want_whole, guint64 limit,
                                 gboolean *whole_r, GError **error) {
  gboolean whole = want_whole && content->size <= limit;
  *whole_r = whole;
  if (whole && content->whole != NULL)
    return g_bytes_ref(content->whole);
  g_autoptr(PstContentReader) reader = pst_delivery_content_open(content);
  GByteArray *out = g_byte_array_new();
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!pst_content_reader_next(reader, &data, &length, error)) {
      g_byte_array_unref(out);
      return NULL;
    }
    if (length == 0)
      break;
    gsize from = out->len >= 3 ? out->len - 3 : 0;
    g_byte_array_append(out, data, (guint)length);
    if (whole)
      continue;
    gsize end = pst_bounce_header_end(out->data, from, out->len);
    if (end > 0) {
      g_byte_array_set_size(out, (guint)end);
      break;
    }
    if (out->len > limit)
      break;
  }
  if (!whole)
    cut_to_limit(out, limit);
  return g_byte_array_free_to_bytes(out);
}
