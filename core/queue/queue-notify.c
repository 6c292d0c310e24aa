/* queue-notify.c - the committed-message handler (see queue-notify.h).
 * Main thread only: the session's commit callback and the daemon. */
#include "queue/queue-notify.h"

static PstQueueCommittedFunc committed_func;
static gpointer committed_data;

void pst_queue_set_committed_handler(PstQueueCommittedFunc func,
                                     gpointer user_data) {
  committed_func = func;
  committed_data = user_data;
}

void pst_queue_notify_committed(const char *id, PstSpoolQueue queue) {
  if (committed_func != NULL)
    committed_func(id, queue, committed_data);
}
