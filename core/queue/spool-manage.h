/* spool-manage.h - moving and removing committed messages (the queue
 * manager and `postilion queue hold/release/delete`).  Needs a spool
 * opened read-write (pst_spool_open()).  Blocking: a rename or unlink and
 * (but for pst_spool_remove_unsynced()) a directory fsync. */
#pragma once

#include "queue/spool.h"

G_BEGIN_DECLS

/* Moves `id` from one queue to the other (queue/ <-> hold/), never
 * replacing a file, and syncs both directories.  PST_SPOOL_ERROR_NOT_FOUND
 * when it is not in `from`. */
gboolean pst_spool_move(PstSpool *spool, PstSpoolQueue from, PstSpoolQueue to,
                        const char *id, GError **error);
/* Unlinks `id` from `queue` and syncs the directory: the message is done
 * (every recipient final) or deleted by the operator. */
gboolean pst_spool_remove(PstSpool *spool, PstSpoolQueue queue, const char *id,
                          GError **error);
/* Unlinks `id` from `queue` without syncing the directory: for a message
 * delivered to every recipient, whose removal need not survive a power
 * cut (it would only be delivered again).  The next commit's or removal's
 * directory fsync makes it durable too.  When the spool wants spares,
 * the file is recycled as one instead of unlinked: renamed to
 * tmp/used.PID.N, overwritten with zeros later (doc/queue-format.md,
 * "Recycling"). */
gboolean pst_spool_remove_unsynced(PstSpool *spool, PstSpoolQueue queue,
                                   const char *id, GError **error);

G_END_DECLS
