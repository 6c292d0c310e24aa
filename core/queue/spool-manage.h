/* spool-manage.h - moving and removing committed messages (the queue
 * manager and `postilion queue hold/release/delete`).  Needs a spool
 * opened read-write (pst_spool_open()).  Blocking: a rename or unlink and
 * a directory fsync. */
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

G_END_DECLS
