/* spool-manage.c - the queue manager's and operator's changes to queued
 * messages: moving between queue/ and hold/, and removing a message.
 *
 * Entry points: pst_spool_move(), pst_spool_remove() (spool-manage.h).
 * Both work relative to the spool's directory descriptors, sync the
 * directories they change, and refuse names that are not queue ids.  The
 * state journal (state-journal.h) is not touched by a move; a removal is
 * followed by the caller's pst_state_journal_remove().  Main thread or
 * worker threads (no shared state besides the descriptors).
 *
 * A message committed moments ago may still be durable under its old name
 * in tmp/ (spool-syncer.c defers the directory syncs); a power cut after
 * its synced removal would bring it back from there.  So
 * pst_spool_remove() first settles the directories when the message left
 * tmp/ since tmp/ was last synced (rare: removal usually comes much later
 * than the deferred sync).  A move needs nothing: recovery drops a tmp/
 * copy of a message that is in queue/ or hold/.  An unsynced removal
 * accepts a second delivery after a cut anyway; it recycles the file as
 * a spare when the syncer wants one (pst_spool_syncer_recycle()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "queue/queue-id.h"
#include "queue/spool-manage.h"
#include "queue/spool-private.h"

static gboolean manage_error(GError **error, int saved, const char *what,
                             PstSpool *spool, PstSpoolDir dir, const char *id) {
  g_set_error(error, PST_SPOOL_ERROR,
              saved == ENOENT ? PST_SPOOL_ERROR_NOT_FOUND : PST_SPOOL_ERROR_IO,
              "cannot %s %s/%s/%s: %s", what, spool->directory,
              pst_spool_dir_name(dir), id, g_strerror(saved));
  return FALSE;
}

static gboolean check_id(const char *id, GError **error) {
  if (pst_queue_id_is_valid(id))
    return TRUE;
  g_set_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND,
              "“%s” is not a queue id", id);
  return FALSE;
}

gboolean pst_spool_move(PstSpool *spool, PstSpoolQueue from, PstSpoolQueue to,
                        const char *id, GError **error) {
  g_return_val_if_fail(spool != NULL && spool->lock_fd >= 0, FALSE);
  if (!check_id(id, error))
    return FALSE;
  PstSpoolDir source = pst_spool_dir_of_queue(from);
  PstSpoolDir target = pst_spool_dir_of_queue(to);
  if (source == target)
    return TRUE;
  if (renameat2(spool->dir_fds[source], id, spool->dir_fds[target], id,
                RENAME_NOREPLACE) < 0)
    return manage_error(error, errno, "move", spool, source, id);
  if (fsync(spool->dir_fds[target]) < 0 || fsync(spool->dir_fds[source]) < 0)
    return manage_error(error, errno, "sync the directory of", spool, target,
                        id);
  return TRUE;
}

gboolean pst_spool_remove_unsynced(PstSpool *spool, PstSpoolQueue queue,
                                   const char *id, GError **error) {
  g_return_val_if_fail(spool != NULL && spool->lock_fd >= 0, FALSE);
  if (!check_id(id, error))
    return FALSE;
  PstSpoolDir dir = pst_spool_dir_of_queue(queue);
  /* Its file becomes a spare, or goes. */
  if (spool->syncer != NULL &&
      pst_spool_syncer_recycle(spool->syncer, spool->dir_fds[dir], id))
    return TRUE;
  if (unlinkat(spool->dir_fds[dir], id, 0) < 0)
    return manage_error(error, errno, "remove", spool, dir, id);
  return TRUE;
}

gboolean pst_spool_remove(PstSpool *spool, PstSpoolQueue queue, const char *id,
                          GError **error) {
  if (pst_queue_id_is_valid(id) && !pst_spool_settle(spool, id, error))
    return FALSE;
  if (!pst_spool_remove_unsynced(spool, queue, id, error))
    return FALSE;
  PstSpoolDir dir = pst_spool_dir_of_queue(queue);
  if (fsync(spool->dir_fds[dir]) < 0)
    return manage_error(error, errno, "sync the directory of", spool, dir, id);
  return TRUE;
}
