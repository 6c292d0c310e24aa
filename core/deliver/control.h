/* control.h - the daemon's control socket, for the `postilion` command.
 *
 * A Unix stream socket at SPOOL/control (mode 0600 inside the 0700 spool,
 * so only the daemon's user and root reach it).  One request per
 * connection, one line: "flush [ID]", "hold ID", "release ID",
 * "delete ID" or "ping"; one reply line: "ok[ TEXT]" or "error TEXT".
 * Main loop.
 */
#pragma once

#include <gio/gio.h>

#include "deliver/queue-manager.h"

G_BEGIN_DECLS

typedef struct _PstControl PstControl;

/* Listens on `path` (a stale socket file is replaced). */
PstControl *pst_control_new(const char *path, PstQueueManager *manager,
                            GError **error);
/* Stops listening and removes the socket file. */
void pst_control_free(PstControl *control);

/* The request handler, for tests: the reply line for `request`. */
char *pst_control_handle(PstQueueManager *manager, const char *request);

G_END_DECLS
