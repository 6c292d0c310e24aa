/* delivery-content.h - what a delivery attempt knows of its message's
 * content, without holding it: its size, whether it has 8-bit octets (in
 * the header block, anywhere), learned in one first pass that also checks
 * the checksum; and readers of it in pieces for the transports
 * (queue/content-reader.h).  A small content (at most
 * PST_DELIVERY_CONTENT_WHOLE_MAX octets) is kept from the first pass and
 * read from memory; a large one is read from the queue file again by
 * each transport, a piece at a time.
 *
 * PstDataStream is the content as SMTP's and LMTP's DATA send it
 * (pst_smtp_encoder_add()), one encoded piece at a time.  Content the
 * first pass found already as DATA sends it (CRLF lines, no leading dot:
 * most mail) is not encoded: its pieces go out as they are read, and a
 * small one, with the final dot after it in the same memory, in one
 * piece without any copy.
 *
 * A stream given a ready function (the transports on the main loop)
 * never waits for the disk: a large content's pieces are read only from
 * the page cache, and a piece that is not there (evicted since the first
 * pass read it, under memory pressure) is read in on a thread, with the
 * next ones after it, while pst_data_stream_next() answers
 * G_IO_ERROR_WOULD_BLOCK; the ready function then says to call again.
 */
#pragma once

#include <glib.h>

#include "deliver/smtp-protocol.h"
#include "queue/content-reader.h"
#include "queue/spool.h"

G_BEGIN_DECLS

#define PST_DELIVERY_CONTENT_WHOLE_MAX (2 * PST_CONTENT_PIECE_MAX)

typedef struct {
  PstQueuedMessage *message; /* borrowed: the attempt's */
  GBytes *whole;             /* owned, nullable: a small content */
  GBytes *whole_dotted;      /* owned, nullable: `whole` and ".\r\n" after
                              * it, when `verbatim` */
  guint64 size;              /* octets delivered */
  gboolean eight_bit;        /* an octet with the high bit, anywhere */
  gboolean header_8bit;      /* ... in the header block */
  gboolean verbatim; /* already as DATA sends it (pst_smtp_verbatim_scan) */
} PstDeliveryContent;

/* The first pass over `message`'s content (blocking: a worker thread):
 * fills `content`.  Fails like pst_content_reader_next() (a corrupt file:
 * PST_SPOOL_ERROR_CORRUPT). */
gboolean pst_delivery_content_scan(PstDeliveryContent *content,
                                   PstQueuedMessage *message, GError **error);
/* A reader of the content from its first piece. */
PstContentReader *pst_delivery_content_open(const PstDeliveryContent *content);
void pst_delivery_content_clear(PstDeliveryContent *content);

/* Called on the main loop when a stream that answered
 * G_IO_ERROR_WOULD_BLOCK can go on. */
typedef void (*PstDataStreamReadyFunc)(gpointer user_data);

/* The DATA stream of one transaction. */
typedef struct {
  const PstDeliveryContent *content; /* borrowed */
  PstContentReader *reader;          /* owned, nullable: not yet needed */
  PstSmtpEncoder encoder;
  GByteArray *out; /* owned, nullable: the piece being sent, when it had
                    * to be encoded or copied */
  guint64 read;    /* octets of content read so far */
  gboolean ended;  /* the final dot was handed out */
  PstDataStreamReadyFunc ready; /* nullable: then reads may wait */
  gpointer ready_data;
  GCancellable *fetching; /* owned, nullable: pages being read in */
  guint waits;            /* would-blocks since the last piece */
} PstDataStream;

/* `ready` (nullable, with `ready_data`): see the top of the file. */
void pst_data_stream_init(PstDataStream *stream,
                          const PstDeliveryContent *content,
                          PstDataStreamReadyFunc ready, gpointer ready_data);
/* The next piece, in `*data_r` and `*length_r` (valid until the next
 * call or the clear): the last one ends with the final dot and sets
 * `*last_r`; the final dot comes only after the reader found the content
 * intact.  FALSE with `error` when it is not (or cannot be read): the
 * transaction must not be ended.  FALSE with G_IO_ERROR_WOULD_BLOCK (a
 * stream with a ready function): nothing is wrong, call again once the
 * ready function was called. */
gboolean pst_data_stream_next(PstDataStream *stream, const guint8 **data_r,
                              gsize *length_r, gboolean *last_r,
                              GError **error);
void pst_data_stream_clear(PstDataStream *stream);

G_END_DECLS
