/* content-reader.h - a queued message's content in pieces of bounded
 * size, for delivery (core/deliver): the transports send or write each
 * piece as it is read, so an attempt holds at most one piece, whatever
 * the message's size.
 *
 * The pieces are the content as delivered: the edited header block when
 * the message has one (the trailer's header override), then the stored
 * body, read from the queue file with pread(2) (or from the copy of a
 * small file that pst_spool_load() read whole with its trailer).  The checksum of the
 * content as stored is chained over the reads and compared after the last
 * piece: only then is the content known to be intact, so a transport
 * makes a delivery final (the final dot, the Maildir rename, the helper's
 * commit) only after pst_content_reader_next() reported the end.
 *
 * A reader is used by one thread at a time; several readers of one
 * message may run at once (pread has no shared offset).  The message must
 * outlive its readers.
 */
#pragma once

#include <glib.h>

#include "queue/spool.h"

G_BEGIN_DECLS

/* The largest piece pst_content_reader_next() returns. */
#define PST_CONTENT_PIECE_MAX (64 * 1024)

typedef struct _PstContentReader PstContentReader;

/* A reader of `message`'s content (borrowed).  Fails with
 * PST_SPOOL_ERROR_CORRUPT when the trailer's lengths cannot be right. */
PstContentReader *pst_content_reader_new(PstQueuedMessage *message,
                                         GError **error);
/* A reader of `content` held in memory (a reference is kept): one piece
 * per PST_CONTENT_PIECE_MAX octets, always intact. */
PstContentReader *pst_content_reader_new_for_bytes(GBytes *content);
/* Octets of content the reader yields in all. */
guint64 pst_content_reader_get_size(PstContentReader *reader);
/* The next piece in `*data_r` (valid until the next call or the free),
 * `*length_r` octets, at most PST_CONTENT_PIECE_MAX: TRUE with a length
 * above 0; at the end, TRUE with length 0 once the checksum matched (and
 * so on every later call).  FALSE with `error`: a read failed
 * (PST_SPOOL_ERROR_IO) or the content is not what was stored
 * (PST_SPOOL_ERROR_CORRUPT: a checksum mismatch, a file that shrank);
 * every later call fails the same way. */
gboolean pst_content_reader_next(PstContentReader *reader,
                                 const guint8 **data_r, gsize *length_r,
                                 GError **error);
/* The whole content at once into `buffer` (room for
 * pst_content_reader_get_size() octets), the checksum compared as at the
 * end of the pieces: a small content's first pass, one pread(2) and no
 * copy per piece.  Only at the first piece; the reader is at its end
 * after it.  Fails like pst_content_reader_next(). */
gboolean pst_content_reader_read_all(PstContentReader *reader, guint8 *buffer,
                                     GError **error);
/* For the main loop, which must not wait for the disk: from now on each
 * read takes only what the page cache holds (preadv2 with RWF_NOWAIT).
 * A piece not all there fails pst_content_reader_next() with
 * PST_SPOOL_ERROR_WOULD_BLOCK, the reader unchanged (not a sticky
 * failure): bring the range pst_content_reader_get_next_range() names
 * into the page cache on a thread, then call again.  A file system that
 * cannot tell (EOPNOTSUPP) gets blocking reads, as without it. */
void pst_content_reader_set_nowait(PstContentReader *reader, gboolean nowait);
/* The queue file's descriptor (borrowed) and the range of it the next
 * pst_content_reader_next() reads, at least one piece; FALSE when it
 * reads nothing from the file. */
gboolean pst_content_reader_get_next_range(PstContentReader *reader,
                                           int *fd_r, guint64 *offset_r,
                                           gsize *length_r);
/* Starts again at the first piece (another transaction or recipient). */
void pst_content_reader_rewind(PstContentReader *reader);
void pst_content_reader_free(PstContentReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstContentReader, pst_content_reader_free)

G_END_DECLS
