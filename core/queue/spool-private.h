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

/* The prefix of a delivered message's file in tmp/ that waits to be
 * recycled as a spare (spool-syncer.c); recovery removes it unread. */
#define PST_SPOOL_USED_PREFIX "used."

/* The subdirectory's name ("tmp", "queue", ...). */
const char *pst_spool_dir_name(PstSpoolDir dir);
/* The subdirectory that holds `queue`. */
PstSpoolDir pst_spool_dir_of_queue(PstSpoolQueue queue);

/* For tests and the benchmark: see pst_spool_syncer_set_batch_limit(),
 * pst_spool_syncer_set_sync_func() and the others in spool-syncer.h.
 * A new spare size holds for spares made from then on. */
void pst_spool_set_batch_limit(PstSpool *spool, guint limit);
void pst_spool_set_sync_threads(PstSpool *spool, guint count);
void pst_spool_set_sync_func(PstSpool *spool, PstSpoolSyncFunc func,
                             gpointer data);
void pst_spool_set_directory_sync_delay(PstSpool *spool, guint milliseconds);
void pst_spool_set_spare_size(PstSpool *spool, guint64 size);
void pst_spool_set_recycling(PstSpool *spool, gboolean on);
void pst_spool_set_batch_recycling(PstSpool *spool, gboolean on);
guint pst_spool_count_spares(PstSpool *spool);
gboolean pst_spool_is_quiet(PstSpool *spool, guint margin);

/* Makes sure tmp/ no longer durably names the message `id` (NULL: any
 * message) before it leaves its queue: pst_spool_syncer_settle().  TRUE
 * on a read-only spool. */
gboolean pst_spool_settle(PstSpool *spool, const char *id, GError **error);

/* Every name in a spool subdirectory but . and .. (spool-reader.c); NULL
 * with an error naming it. */
GPtrArray *pst_spool_read_names(PstSpool *spool, PstSpoolDir which,
                                GError **error);

/* Reads and decodes the footer and trailer of an open file of
 * `file_size` octets (spool-reader.c); PST_SPOOL_ERROR_CORRUPT when they
 * are not valid. */
PstSpoolTrailer *pst_spool_read_trailer(int fd, guint64 file_size,
                                        const char *path, GError **error);

/* Renames `name` from `from_fd` into corrupt/, under NAME.N when NAME is
 * taken, without syncing; returns the new name (spool-reader.c). */
char *pst_spool_rename_to_corrupt(PstSpool *spool, int from_fd,
                                  const char *name, GError **error);

/* Recovers tmp/ on open, before the syncer starts (spool-recover.c):
 * complete messages into their queue, the rest removed or, when a
 * complete file's content fails its checksum, moved to corrupt/. */
gboolean pst_spool_recover_tmp(PstSpool *spool, GError **error);

/* What the content reader (content-reader.c) reads a queued message
 * with: its trailer, and the open file (`fd_r`) and its path (for error
 * messages), all borrowed from `message`. */
const PstSpoolTrailer *pst_queued_message_get_trailer(PstQueuedMessage *message,
                                                     int *fd_r,
                                                     const char **path_r);
/* The queue file's content (its octets before the trailer) when
 * pst_spool_load() read it with the trailer (a small message: the read
 * from the end took the whole file), `*length_r` octets borrowed from
 * `message`; else NULL (read the fd). */
const guint8 *pst_queued_message_get_file(PstQueuedMessage *message,
                                          gsize *length_r);

G_END_DECLS
