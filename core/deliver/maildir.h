/* maildir.h - writing one message into a Maildir, the safe way.
 * Blocking (open, write, fsync, rename, fsync): call from a worker thread. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Delivers `prelude` (header lines added at delivery, CRLF or LF) and
 * `content` (CRLF lines) into `maildir` (created with tmp/, new/, cur/ as
 * needed, mode 0700): written to tmp/ under a unique name with LF line
 * ends, fsynced, renamed into new/, and new/ fsynced.  Only then TRUE,
 * with the final path in `path_r`.  On any failure the partial file is
 * removed; `error` is a G_IO_ERROR (G_IO_ERROR_NO_SPACE for a full disk). */
gboolean pst_maildir_deliver(const char *maildir, const char *prelude,
                             GBytes *content, char **path_r, GError **error);

G_END_DECLS
