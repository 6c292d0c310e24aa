/* delivery-content.c - a delivery attempt's view of its content (see
 * delivery-content.h).
 *
 * Callers: delivery-job.c (the first pass, on a worker thread), the
 * transports (smtp-deliver.c and lmtp.c stream DATA with a PstDataStream
 * on the main loop; transport-local.c writes Maildirs from a reader).
 * The first pass reads the whole content once, a piece at a time, so the
 * corrupt-file handling stays where it was (before any delivery) and the
 * 8-bit facts that MAIL FROM needs are known before the content is sent;
 * the transports still check the checksum again as they read.
 */
#include "deliver/delivery-content.h"

gboolean pst_delivery_content_scan(PstDeliveryContent *content,
                                   PstQueuedMessage *message, GError **error) {
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, error);
  if (reader == NULL)
    return FALSE;
  *content = (PstDeliveryContent){.message = message};
  content->size = pst_content_reader_get_size(reader);
  g_autoptr(GByteArray) whole =
      content->size <= PST_DELIVERY_CONTENT_WHOLE_MAX
          ? g_byte_array_sized_new((guint)content->size)
          : NULL;
  PstSmtpHeaderScan header = {0};
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!pst_content_reader_next(reader, &data, &length, error))
      return FALSE;
    if (length == 0)
      break;
    pst_smtp_header_scan_add(&header, data, length);
    if (!content->eight_bit)
      content->eight_bit = pst_smtp_content_is_8bit(data, length);
    if (whole != NULL)
      g_byte_array_append(whole, data, (guint)length);
  }
  content->header_8bit = header.eight_bit;
  if (whole != NULL)
    content->whole = g_byte_array_free_to_bytes(g_steal_pointer(&whole));
  return TRUE;
}

PstContentReader *pst_delivery_content_open(const PstDeliveryContent *content) {
  if (content->whole != NULL)
    return pst_content_reader_new_for_bytes(content->whole);
  /* The lengths were checked by the first pass. */
  return pst_content_reader_new(content->message, NULL);
}

void pst_delivery_content_clear(PstDeliveryContent *content) {
  g_clear_pointer(&content->whole, g_bytes_unref);
}

void pst_data_stream_init(PstDataStream *stream,
                          const PstDeliveryContent *content) {
  *stream = (PstDataStream){0};
  stream->reader = pst_delivery_content_open(content);
  /* Room for a piece and its dot-stuffing (it grows if need be); no more
   * for a small content: a block of 64 KiB or more consolidates malloc's
   * heap when it is freed. */
  gsize piece = (gsize)MIN(content->size, PST_CONTENT_PIECE_MAX);
  stream->out = g_byte_array_sized_new((guint)(piece + piece / 8 + 8));
}

gboolean pst_data_stream_next(PstDataStream *stream, gboolean *last_r,
                              GError **error) {
  g_byte_array_set_size(stream->out, 0);
  *last_r = FALSE;
  guint64 size = pst_content_reader_get_size(stream->reader);
  /* A piece may encode to nothing (the LF of a CRLF split before it).
   * The last piece of content takes the final dot with it (the reader is
   * asked for its end, which checks the checksum, as soon as every octet
   * was read): one write for a small message, not two. */
  while (stream->out->len == 0 || stream->read == size) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!pst_content_reader_next(stream->reader, &data, &length, error))
      return FALSE;
    if (length == 0) {
      pst_smtp_encoder_finish(&stream->encoder, stream->out);
      stream->ended = TRUE;
      *last_r = TRUE;
      break;
    }
    stream->read += length;
    pst_smtp_encoder_add(&stream->encoder, data, length, stream->out);
  }
  return TRUE;
}

void pst_data_stream_clear(PstDataStream *stream) {
  g_clear_pointer(&stream->reader, pst_content_reader_free);
  g_clear_pointer(&stream->out, g_byte_array_unref);
}
