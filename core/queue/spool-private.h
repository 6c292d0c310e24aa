/* spool-private.h - what spool.c, spool-reader.c and the tests share.
 *
 * The PstSpool structure: the directory, an open descriptor for each of its
 * subdirectories (every file operation is relative to one, so a path is
 * resolved once), the lock, and the syncer (NULL when read-only).
 */
#pragma once

#include <errno.h>

#include "queue/spool-format.h"
#include "queue/spool-syncer.h"
#include "queue/spool.h"

G_BEGIN_DECLS

/* The error code for a failed write(2)/fsync(2)/open(2): a full file
 * system or quota is told apart (452 4.3.1 to the client, not 451). */
static inline PstSpoolError pst_spool_errno_code(int saved) {
  return saved == ENOSPC || saved == EDQUOT ? PST_SPOOL_ERROR_NO_SPACE
                                            : PST_SPOOL_ERROR_IO;
}

typedef enum {
  PST_SPOOL_DIR_TMP = 0,
  PST_SPOOL_DIR_QUEUE,
  PST_SPOOL_DIR_HOLD,
  PST_SPOOL_DIR_CORRUPT,
  PST_SPOOL_N_DIRS,
} PstSpoolDir;

struct _PstSpool {
  char *directory;               /* owned */
  int root_fd;                   /* owned */
  int dir_fds[PST_SPOOL_N_DIRS]; /* owned */
  int lock_fd;                   /* owned, -1 when read-only */
  PstSpoolSyncer *syncer;        /* owned, nullable: NULL when read-only */
};

/* The subdirectory's name ("tmp", "queue", ...). */
const char *pst_spool_dir_name(PstSpoolDir dir);
/* The subdirectory that holds `queue`. */
PstSpoolDir pst_spool_dir_of_queue(PstSpoolQueue queue);

/* For tests and the benchmark: see pst_spool_syncer_set_batch_limit() and
 * pst_spool_syncer_set_sync_func(). */
void pst_spool_set_batch_limit(PstSpool *spool, guint limit);
void pst_spool_set_sync_threads(PstSpool *spool, guint count);
void pst_spool_set_sync_func(PstSpool *spool, PstSpoolSyncFunc func,
                             gpointer data);

/* What the content reader (content-reader.c) reads a queued message
 * with: its trailer, and the open file (`fd_r`) and its path (for error
 * messages), all borrowed from `message`. */
const PstSpoolTrailer *pst_queued_message_get_trailer(PstQueuedMessage *message,
                                                     int *fd_r,
                                                     const char **path_r);

G_END_DECLS
