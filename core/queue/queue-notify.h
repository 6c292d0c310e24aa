/* queue-notify.h - telling the queue manager that a message was committed.
 *
 * The SMTP session calls pst_queue_notify_committed() after a commit
 * succeeded; the daemon registers the queue manager's handler.  Kept in
 * core/queue so the session does not depend on core/deliver.  Main thread.
 */
#pragma once

#include "queue/spool.h"

G_BEGIN_DECLS

typedef void (*PstQueueCommittedFunc)(const char *id, PstSpoolQueue queue,
                                      gpointer user_data);

/* Registers the handler (NULL to remove it). */
void pst_queue_set_committed_handler(PstQueueCommittedFunc func,
                                     gpointer user_data);
/* Calls the handler, if any. */
void pst_queue_notify_committed(const char *id, PstSpoolQueue queue);

G_END_DECLS
