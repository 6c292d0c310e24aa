/* delivery-content.c - a delivery attempt's view of its content (see
 * delivery-content.h).
 *
 * Callers: delivery-job.c (the first pass, on a worker thread), the
 * transports (smtp-deliver.c and lmtp.c stream DATA with a PstDataStream
 * on the main loop; transport-local.c writes Maildirs from a reader).
 * The first pass reads the whole content once, so the corrupt-file
 * handling stays where it was (before any delivery) and the 8-bit facts
 * that MAIL FROM needs are known before the content is sent: a small
 * content in one read into the copy it keeps (room for DATA's final dot
 * after it), a larger one a piece at a time; the transports still check
 * the checksum again as they read a large one.
 */
#include "deliver/delivery-content.h"

/* One pass's facts over `data`, the next piece of the content. */
static void scan_add(PstDeliveryContent *content, PstSmtpHeaderScan *header,
                     PstSmtpVerbatimScan *verbatim, const guint8 *data,
                     gsize length) {
  pst_smtp_header_scan_add(header, data, length);
  if (!content->eight_bit)
    content->eight_bit = pst_smtp_content_is_8bit(data, length);
  pst_smtp_verbatim_scan_add(verbatim, data, length);
}

/* A small content, read whole into memory with room for the final dot
 * after it (one pread, no copy per piece), and kept. */
static gboolean scan_whole(PstDeliveryContent *content,
                           PstContentReader *reader, GError **error) {
  g_autoptr(GByteArray) whole =
      g_byte_array_sized_new((guint)content->size + 3);
  g_byte_array_set_size(whole, (guint)content->size);
  if (!pst_content_reader_read_all(reader, whole->data, error))
    return FALSE;
  PstSmtpHeaderScan header = {0};
  PstSmtpVerbatimScan verbatim = {0};
  scan_add(content, &header, &verbatim, whole->data, whole->len);
  content->header_8bit = header.eight_bit;
  content->verbatim = pst_smtp_verbatim_scan_result(&verbatim);
  if (!content->verbatim) {
    content->whole = g_byte_array_free_to_bytes(g_steal_pointer(&whole));
    return TRUE;
  }
  /* The content is the first octets of DATA's encoding, in place. */
  g_byte_array_append(whole, (const guint8 *)".\r\n", 3);
  content->whole_dotted = g_byte_array_free_to_bytes(g_steal_pointer(&whole));
  content->whole =
      g_bytes_new_from_bytes(content->whole_dotted, 0, (gsize)content->size);
  return TRUE;
}

gboolean pst_delivery_content_scan(PstDeliveryContent *content,
                                   PstQueuedMessage *message, GError **error) {
  g_autoptr(PstContentReader) reader = pst_content_reader_new(message, error);
  if (reader == NULL)
    return FALSE;
  *content = (PstDeliveryContent){.message = message};
  content->size = pst_content_reader_get_size(reader);
  if (content->size <= PST_DELIVERY_CONTENT_WHOLE_MAX)
    return scan_whole(content, reader, error);
  PstSmtpHeaderScan header = {0};
  PstSmtpVerbatimScan verbatim = {0};
  for (;;) {
    const guint8 *data = NULL;
    gsize length = 0;
    if (!pst_content_reader_next(reader, &data, &length, error))
      return FALSE;
    if (length == 0)
      break;
    scan_add(content, &header, &verbatim, data, length);
  }
  content->header_8bit = header.eight_bit;
  content->verbatim = pst_smtp_verbatim_scan_result(&verbatim);
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
  g_clear_pointer(&content->whole_dotted, g_bytes_unref);
}

void pst_data_stream_init(PstDataStream *stream,
                          const PstDeliveryContent *content) {
  *stream = (PstDataStream){.content = content};
  if (content->whole_dotted != NULL)
    return; /* one piece, from memory */
  stream->reader = pst_delivery_content_open(content);
  if (content->verbatim)
    return; /* `out` only for the last piece and the dot */
  /* Room for a piece and its dot-stuffing (it grows if need be); no more
   * for a small content: a block of 64 KiB or more consolidates malloc's
   * heap when it is freed. */
  gsize piece = (gsize)MIN(content->size, PST_CONTENT_PIECE_MAX);
  stream->out = g_byte_array_sized_new((guint)(piece + piece / 8 + 8));
}

/* Content that needs no encoding: each piece as the reader has it; the
 * last is copied so that the final dot follows it, once the reader's end
 * found the content intact. */
static gboolean stream_next_verbatim(PstDataStream *stream,
                                     const guint8 **data_r, gsize *length_r,
                                     gboolean *last_r, GError **error) {
  const guint8 *data = NULL;
  gsize length = 0;
  if (!pst_content_reader_next(stream->reader, &data, &length, error))
    return FALSE;
  stream->read += length;
  if (length > 0 && stream->read < stream->content->size) {
    *data_r = data;
    *length_r = length;
    return TRUE;
  }
  if (stream->out == NULL)
    stream->out = g_byte_array_sized_new((guint)length + 3);
  g_byte_array_set_size(stream->out, 0);
  g_byte_array_append(stream->out, data, (guint)length);
  if (length > 0 &&
      !pst_content_reader_next(stream->reader, &data, &length, error))
    return FALSE;
  g_byte_array_append(stream->out, (const guint8 *)".\r\n", 3);
  stream->ended = TRUE;
  *last_r = TRUE;
  *data_r = stream->out->data;
  *length_r = stream->out->len;
  return TRUE;
}

gboolean pst_data_stream_next(PstDataStream *stream, const guint8 **data_r,
                              gsize *length_r, gboolean *last_r,
                              GError **error) {
  *last_r = FALSE;
  *data_r = NULL;
  *length_r = 0;
  if (stream->content->whole_dotted != NULL) {
    /* Checked by the first pass, and held since. */
    *data_r = g_bytes_get_data(stream->content->whole_dotted, length_r);
    stream->read = stream->content->size;
    stream->ended = TRUE;
    *last_r = TRUE;
    return TRUE;
  }
  if (stream->content->verbatim)
    return stream_next_verbatim(stream, data_r, length_r, last_r, error);
  g_byte_array_set_size(stream->out, 0);
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
  *data_r = stream->out->data;
  *length_r = stream->out->len;
  return TRUE;
}

void pst_data_stream_clear(PstDataStream *stream) {
  g_clear_pointer(&stream->reader, pst_content_reader_free);
  g_clear_pointer(&stream->out, g_byte_array_unref);
}
