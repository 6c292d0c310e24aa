/* maildir.h - writing one message into a Maildir, the safe way.
 * Blocking (open, write, fsync, rename, fsync): call from a worker thread. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The content, a piece at a time: TRUE with `*length_r` above 0 for a
 * piece (valid until the next call); TRUE with 0 at the end, once the
 * content is known to be intact; FALSE with `error` when it is not or
 * cannot be read (pst_content_reader_next() has this shape). */
typedef gboolean (*PstMaildirReadFunc)(gpointer source, const guint8 **data_r,
                                       gsize *length_r, GError **error);

/* Delivers `prelude` (header lines added at delivery, CRLF or LF) and
 * the content `read` gives (CRLF lines) into `maildir` (created with
 * tmp/, new/, cur/ as needed, mode 0700): written to tmp/ piece by piece
 * under a unique name with LF line ends, fsynced, renamed into new/ (only
 * after `read` reported the end), and new/ fsynced.  Only then TRUE, with
 * the final path in `path_r`.  On any failure the partial file is
 * removed; `error` is `read`'s error, or a G_IO_ERROR
 * (G_IO_ERROR_NO_SPACE for a full disk). */
gboolean pst_maildir_deliver(const char *maildir, const char *prelude,
                             PstMaildirReadFunc read, gpointer source,
                             char **path_r, GError **error);

G_END_DECLS
