/* content-reader.c - a queued message's content in bounded pieces (see
 * content-reader.h).
 *
 * Callers: the delivery job's first pass over the content and every
 * delivery transport (core/deliver).  The stream is the header override
 * (held by the trailer, so already in memory), then the file's octets
 * from the end of the header it replaces; the checksum covers the file's
 * content as stored, so the replaced header octets are read (and only
 * summed) before the first octet of the body.  Invariant: `crc` is the
 * checksum of the file's octets [0, next file offset), and the end is
 * reported only after it matched the trailer's.  A read either takes all
 * its octets and sums them, or changes nothing (a failure, or a page not
 * in the page cache for a reader set to not wait), so a call that would
 * have waited can be made again.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "queue/content-reader.h"
#include "queue/spool-private.h"

struct _PstContentReader {
  GBytes *bytes;                  /* owned, nullable: in-memory content */
  const PstSpoolTrailer *trailer; /* borrowed, nullable: from a message */
  int fd;                         /* borrowed: the queue file */
  const char *path;               /* borrowed: for error messages */
  const guint8 *head;             /* the header override, or the bytes */
  gsize head_length;              /* its octets */
  guint64 skip;                   /* file octets the override replaces */
  guint64 size;                   /* octets yielded in all */
  guint64 position;               /* octets yielded so far */
  guint32 crc;                    /* of the file's octets read so far */
  guint64 skip_done;              /* of them, summed into `crc` so far */
  gboolean skip_summed;           /* the replaced header octets are in `crc` */
  gboolean nowait;                /* reads only from the page cache */
  const guint8 *file;  /* borrowed, nullable: the file's content, when
                        * the message holds it (a small one) */
  gsize file_length;   /* its octets */
  const guint8 *piece; /* the last read: in `buffer` or `file` */
  guint8 *buffer;      /* owned, nullable: at most PST_CONTENT_PIECE_MAX */
  GError *failed;      /* owned, nullable: sticky */
};

PstContentReader *pst_content_reader_new(PstQueuedMessage *message,
                                         GError **error) {
  g_return_val_if_fail(message != NULL, NULL);
  int fd = -1;
  const char *path = NULL;
  const PstSpoolTrailer *trailer =
      pst_queued_message_get_trailer(message, &fd, &path);
  GBytes *override = trailer->header_override;
  if (trailer->content_length > G_MAXSSIZE ||
      (override != NULL && trailer->header_length > trailer->content_length)) {
    g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                "Queue file “%s” is corrupt: content too large", path);
    return NULL;
  }
  PstContentReader *reader = g_new0(PstContentReader, 1);
  reader->trailer = trailer;
  reader->fd = fd;
  reader->path = path;
  reader->file = pst_queued_message_get_file(message, &reader->file_length);
  if (override != NULL) {
    reader->head = g_bytes_get_data(override, &reader->head_length);
    reader->skip = trailer->header_length;
  }
  reader->size = reader->head_length + trailer->content_length - reader->skip;
  return reader;
}

PstContentReader *pst_content_reader_new_for_bytes(GBytes *content) {
  g_return_val_if_fail(content != NULL, NULL);
  PstContentReader *reader = g_new0(PstContentReader, 1);
  reader->bytes = g_bytes_ref(content);
  reader->head = g_bytes_get_data(content, &reader->head_length);
  reader->size = reader->head_length;
  reader->skip_summed = TRUE;
  return reader;
}

guint64 pst_content_reader_get_size(PstContentReader *reader) {
  return reader->size;
}

/* Fails this call and every later one: the content is not as stored. */
static gboolean reader_fail(PstContentReader *reader, const char *problem,
                            GError **error) {
  reader->failed =
      g_error_new(PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT,
                  "Queue file “%s” is corrupt: %s", reader->path, problem);
  g_propagate_error(error, g_error_copy(reader->failed));
  return FALSE;
}

/* The file's octets the reader reads in all: the replaced header and the
 * body. */
static guint64 reader_file_octets(const PstContentReader *reader) {
  return reader->skip + (reader->size - reader->head_length);
}

/* One read for reader_pread(): with `nowait`, of the page cache only. */
static ssize_t reader_pread_once(PstContentReader *reader, guint8 *dest,
                                 gsize length, guint64 offset) {
  if (!reader->nowait)
    return pread(reader->fd, dest, length, (off_t)offset);
  struct iovec iov = {dest, length};
  ssize_t got = preadv2(reader->fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
  if (got < 0 && errno == EOPNOTSUPP) {
    /* The file system cannot tell: blocking reads, as before. */
    reader->nowait = FALSE;
    return pread(reader->fd, dest, length, (off_t)offset);
  }
  return got;
}

/* `length` octets at `offset` of the queue file into `dest`, summed. */
static gboolean reader_pread(PstContentReader *reader, guint8 *dest,
                             guint64 offset, gsize length, GError **error) {
  gsize done = 0;
  while (done < length) {
    ssize_t got =
        reader_pread_once(reader, dest + done, length - done, offset + done);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 && errno == EAGAIN && reader->nowait) {
      /* Not sticky, nothing summed: the caller gets the pages read in
       * and calls again. */
      g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK,
                  "Queue file “%s” is not all in the page cache", reader->path);
      return FALSE;
    }
    if (got < 0) {
      int saved = errno;
      reader->failed = g_error_new(PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO,
                                   "Cannot read queue file “%s”: %s",
                                   reader->path, g_strerror(saved));
      g_propagate_error(error, g_error_copy(reader->failed));
      return FALSE;
    }
    if (got == 0)
      return reader_fail(reader, "file shrank while reading", error);
    done += (gsize)got;
  }
  reader->crc = pst_spool_crc32c(reader->crc, dest, length);
  return TRUE;
}

/* `length` octets at `offset` into `piece`, summed: from the file the
 * message holds, else by pread(2) into the buffer.  The buffer holds the
 * largest read: the whole file part of a small content, else a piece (a
 * 64 KiB block for a 1 KiB message made every free of it consolidate
 * malloc's heap). */
static gboolean reader_read(PstContentReader *reader, guint64 offset,
                            gsize length, GError **error) {
  if (reader->file != NULL) {
    if (offset > reader->file_length || length > reader->file_length - offset)
      return reader_fail(reader, "file shrank while reading", error);
    reader->piece = reader->file + offset;
    reader->crc = pst_spool_crc32c(reader->crc, reader->piece, length);
    return TRUE;
  }
  if (reader->buffer == NULL)
    reader->buffer =
        g_malloc((gsize)MIN(reader_file_octets(reader), PST_CONTENT_PIECE_MAX));
  if (!reader_pread(reader, reader->buffer, offset, length, error))
    return FALSE;
  reader->piece = reader->buffer;
  return TRUE;
}

/* Sums the file's octets the header override replaces (from where a
 * call that would have waited left off). */
static gboolean reader_sum_skipped(PstContentReader *reader, GError **error) {
  while (reader->skip_done < reader->skip) {
    gsize length =
        (gsize)MIN(reader->skip - reader->skip_done, PST_CONTENT_PIECE_MAX);
    if (!reader_read(reader, reader->skip_done, length, error))
      return FALSE;
    reader->skip_done += length;
  }
  reader->skip_summed = TRUE;
  return TRUE;
}

gboolean pst_content_reader_next(PstContentReader *reader,
                                 const guint8 **data_r, gsize *length_r,
                                 GError **error) {
  g_return_val_if_fail(reader != NULL, FALSE);
  *length_r = 0;
  *data_r = NULL;
  if (reader->failed != NULL) {
    g_propagate_error(error, g_error_copy(reader->failed));
    return FALSE;
  }
  guint64 position = reader->position;
  if (position < reader->head_length) {
    *data_r = reader->head + position;
    *length_r =
        (gsize)MIN(reader->head_length - position, PST_CONTENT_PIECE_MAX);
    reader->position += *length_r;
    return TRUE;
  }
  if (reader->bytes != NULL)
    return TRUE;
  if (!reader->skip_summed) {
    guint64 file_octets = reader_file_octets(reader);
    if (file_octets > PST_CONTENT_PIECE_MAX)
      return reader_sum_skipped(reader, error) &&
             pst_content_reader_next(reader, data_r, length_r, error);
    /* Small: the replaced header and the body in one read. */
    if (file_octets > 0 && !reader_read(reader, 0, (gsize)file_octets, error))
      return FALSE;
    reader->skip_summed = TRUE;
    if (position < reader->size) {
      *data_r = reader->piece + reader->skip;
      *length_r = (gsize)(reader->size - position);
      reader->position = reader->size;
      return TRUE;
    }
  }
  if (position < reader->size) {
    guint64 offset = reader->skip + (position - reader->head_length);
    gsize length = (gsize)MIN(reader->size - position, PST_CONTENT_PIECE_MAX);
    if (!reader_read(reader, offset, length, error))
      return FALSE;
    *data_r = reader->piece;
    *length_r = length;
    reader->position += length;
    return TRUE;
  }
  if (reader->crc != reader->trailer->content_crc)
    return reader_fail(reader, "content checksum mismatch", error);
  return TRUE;
}

gboolean pst_content_reader_read_all(PstContentReader *reader, guint8 *buffer,
                                     GError **error) {
  g_return_val_if_fail(reader != NULL && reader->position == 0, FALSE);
  if (reader->failed != NULL) {
    g_propagate_error(error, g_error_copy(reader->failed));
    return FALSE;
  }
  gsize head = reader->head_length;
  if (reader->bytes == NULL) {
    guint64 file_octets = reader_file_octets(reader);
    gsize body = (gsize)(reader->size - head);
    if (reader->file != NULL || reader->skip > head) {
      /* The replaced header summed apart, then the body in place. */
      const guint8 *data = NULL;
      gsize length = 0;
      if (!reader_sum_skipped(reader, error))
        return FALSE;
      reader->position = head;
      if (body > 0 && !pst_content_reader_next(reader, &data, &length, error))
        return FALSE;
      for (gsize done = 0; length > 0;) {
        memcpy(buffer + head + done, data, length);
        done += length;
        if (!pst_content_reader_next(reader, &data, &length, error))
          return FALSE;
      }
    } else if (file_octets > 0) {
      /* One read: the file's octets end where the body ends, so the
       * replaced header lands in the room of the header override, which
       * is copied over it below. */
      if (!reader_pread(reader, buffer + head - reader->skip, 0,
                        (gsize)file_octets, error))
        return FALSE;
    }
    reader->skip_summed = TRUE;
  }
  if (head > 0)
    memcpy(buffer, reader->head, head);
  reader->position = reader->size;
  if (reader->bytes == NULL && reader->crc != reader->trailer->content_crc)
    return reader_fail(reader, "content checksum mismatch", error);
  return TRUE;
}

void pst_content_reader_set_nowait(PstContentReader *reader, gboolean nowait) {
  g_return_if_fail(reader != NULL);
  reader->nowait = nowait;
}

gboolean pst_content_reader_get_next_range(PstContentReader *reader, int *fd_r,
                                           guint64 *offset_r, gsize *length_r) {
  g_return_val_if_fail(reader != NULL, FALSE);
  *fd_r = reader->fd;
  *offset_r = 0;
  *length_r = 0;
  if (reader->bytes != NULL || reader->file != NULL || reader->failed != NULL ||
      reader->position < reader->head_length)
    return FALSE;
  guint64 file_octets = reader_file_octets(reader);
  guint64 offset = 0;
  if (!reader->skip_summed)
    offset = file_octets > PST_CONTENT_PIECE_MAX ? reader->skip_done : 0;
  else
    offset = reader->skip + (reader->position - reader->head_length);
  if (offset >= file_octets)
    return FALSE;
  *offset_r = offset;
  *length_r = (gsize)MIN(file_octets - offset, PST_CONTENT_PIECE_MAX);
  return TRUE;
}

void pst_content_reader_rewind(PstContentReader *reader) {
  reader->position = 0;
  if (reader->bytes == NULL) {
    reader->crc = 0;
    reader->skip_done = 0;
    reader->skip_summed = FALSE;
  }
}

void pst_content_reader_free(PstContentReader *reader) {
  if (reader == NULL)
    return;
  g_clear_pointer(&reader->bytes, g_bytes_unref);
  g_free(reader->buffer);
  g_clear_error(&reader->failed);
  g_free(reader);
}
