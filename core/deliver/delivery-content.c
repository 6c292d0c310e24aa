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
 * the checksum again as they read a large one.  A stream for the main
 * loop reads only what the page cache holds and has a thread read in
 * the rest (stream_fetch()): at most one such read per stream at a time,
 * cancelled by the clear, whose callback touches the stream only when it
 * was not cancelled.
 */
#define G_LOG_DOMAIN "postilion"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <gio/gio.h>

#include "deliver/delivery-content.h"

/* What a thread reads into the page cache when a piece is not there: the
 * piece and the ones after it. */
#define FETCH_AHEAD (16 * PST_CONTENT_PIECE_MAX)
/* Would-blocks in a row (the pages evicted again before they were
 * taken) after which a piece is read even if it waits. */
#define FETCH_TRIES 3

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
                          const PstDeliveryContent *content,
                          PstDataStreamReadyFunc ready, gpointer ready_data) {
  *stream = (PstDataStream){
      .content = content, .ready = ready, .ready_data = ready_data};
  if (content->whole_dotted != NULL)
    return; /* one piece, from memory */
  stream->reader = pst_delivery_content_open(content);
  if (ready != NULL)
    pst_content_reader_set_nowait(stream->reader, TRUE);
  if (content->verbatim)
    return; /* `out` only for the last piece and the dot */
  /* Room for a piece and its dot-stuffing (it grows if need be); no more
   * for a small content: a block of 64 KiB or more consolidates malloc's
   * heap when it is freed. */
  gsize piece = (gsize)MIN(content->size, PST_CONTENT_PIECE_MAX);
  stream->out = g_byte_array_sized_new((guint)(piece + piece / 8 + 8));
}

/* A range of the queue file to read into the page cache. */
typedef struct {
  int fd; /* owned: a duplicate, so the attempt may close its own */
  guint64 offset;
  gsize length;
} Fetch;

static void fetch_free(gpointer data) {
  Fetch *fetch = data;
  close(fetch->fd);
  g_free(fetch);
}

/* On a thread: reads the range (into nothing: the page cache keeps it).
 * A failure or an early end is left for the reader to find and report. */
static void fetch_run(GTask *task, gpointer source, gpointer task_data,
                      GCancellable *cancellable) {
  Fetch *fetch = task_data;
  g_autofree guint8 *buffer = g_malloc(PST_CONTENT_PIECE_MAX);
  guint64 done = 0;
  while (done < fetch->length && !g_cancellable_is_cancelled(cancellable)) {
    gsize n = (gsize)MIN(fetch->length - done, PST_CONTENT_PIECE_MAX);
    ssize_t got = pread(fetch->fd, buffer, n, (off_t)(fetch->offset + done));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    done += (guint64)got;
  }
  g_task_return_boolean(task, TRUE);
}

/* On the main loop: the stream goes on, unless it was cleared. */
static void fetch_done(GObject *source, GAsyncResult *result,
                       gpointer user_data) {
  if (g_cancellable_is_cancelled(g_task_get_cancellable(G_TASK(result))))
    return;
  PstDataStream *stream = user_data;
  g_clear_object(&stream->fetching);
  stream->ready(stream->ready_data);
}

/* Has a thread read in the range the reader's next call needs; FALSE
 * when it cannot (then the caller reads and waits). */
static gboolean stream_fetch(PstDataStream *stream) {
  int fd = -1;
  guint64 offset = 0;
  gsize length = 0;
  if (stream->fetching != NULL ||
      !pst_content_reader_get_next_range(stream->reader, &fd, &offset, &length))
    return FALSE;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    return FALSE;
  Fetch *fetch = g_new0(Fetch, 1);
  fetch->fd = copy;
  fetch->offset = offset;
  fetch->length = MAX(length, FETCH_AHEAD);
  g_debug("delivery: DATA waits for the disk: %" G_GSIZE_FORMAT
          " octets at %" G_GUINT64_FORMAT " are read in on a thread",
          (gsize)fetch->length, offset);
  stream->fetching = g_cancellable_new();
  g_autoptr(GTask) task =
      g_task_new(NULL, stream->fetching, fetch_done, stream);
  g_task_set_task_data(task, fetch, fetch_free);
  g_task_run_in_thread(task, fetch_run);
  return TRUE;
}

/* The reader's next piece; for a stream that must not wait, FALSE with
 * G_IO_ERROR_WOULD_BLOCK while a thread reads it in. */
static gboolean stream_read(PstDataStream *stream, const guint8 **data_r,
                            gsize *length_r, GError **error) {
  GError *local = NULL;
  if (stream->waits >= FETCH_TRIES)
    pst_content_reader_set_nowait(stream->reader, FALSE);
  gboolean ok =
      pst_content_reader_next(stream->reader, data_r, length_r, &local);
  if (stream->waits >= FETCH_TRIES)
    pst_content_reader_set_nowait(stream->reader, TRUE);
  if (ok) {
    stream->waits = 0;
    return TRUE;
  }
  if (!g_error_matches(local, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK)) {
    g_propagate_error(error, local);
    return FALSE;
  }
  g_error_free(local);
  stream->waits++;
  if (!stream_fetch(stream)) {
    stream->waits = FETCH_TRIES;
    return stream_read(stream, data_r, length_r, error);
  }
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                      "the content is being read from the disk");
  return FALSE;
}

/* Content that needs no encoding: each piece as the reader has it; the
 * last is copied so that the final dot follows it, once the reader's end
 * found the content intact. */
static gboolean stream_next_verbatim(PstDataStream *stream,
                                     const guint8 **data_r, gsize *length_r,
                                     gboolean *last_r, GError **error) {
  const guint8 *data = NULL;
  gsize length = 0;
  if (!stream_read(stream, &data, &length, error))
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
  if (length > 0 && !stream_read(stream, &data, &length, error))
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
    if (!stream_read(stream, &data, &length, error))
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
  if (stream->fetching != NULL) {
    g_cancellable_cancel(stream->fetching);
    g_clear_object(&stream->fetching);
  }
  g_clear_pointer(&stream->reader, pst_content_reader_free);
  g_clear_pointer(&stream->out, g_byte_array_unref);
}
