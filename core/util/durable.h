/* durable.h - making directory entries survive a power cut.
 *
 * A new file or directory is durable only once the directory holding its
 * name is fsynced; creating directories that nobody syncs (mkdir -p) can
 * lose a whole tree, with everything later synced inside it, at a power
 * cut.  These helpers create and sync so that what they report done is on
 * disk.  Blocking: call from worker threads, or at start-up.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* fsync()s the directory `path`.  FALSE with errno set on failure. */
gboolean pst_durable_sync_directory(const char *path);

/* Like g_mkdir_with_parents(): creates `path` and its missing parents
 * with `mode`; then fsyncs the parent of every directory it created (the
 * deepest first), so the whole path is durable.  Returns 0, or -1 with
 * errno set (creating or syncing failed). */
int pst_durable_mkdir_with_parents(const char *path, int mode);

G_END_DECLS
