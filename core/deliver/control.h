/* control.h - the daemon's control socket, for the `postilion` command.
 *
 * A Unix stream socket at SPOOL/control (mode 0600 inside the 0700 spool,
 * so only the daemon's user and root reach it).  One request per
 * connection, one line: "flush [ID]", "hold ID", "release ID",
 * "delete ID" or "ping"; one reply line: "ok[ TEXT]" or "error TEXT".
 * "plugins" answers "ok" and then the daemon's effective plugin chains
 * (pst_plugin_set_describe() lines), up to the end of the connection.
 * Main loop.
 */
#pragma once

#include <gio/gio.h>

#include "queue/queue-manager.h"

G_BEGIN_DECLS

typedef struct _PstControl PstControl;

/* Listens on `path` (a stale socket file is replaced). */
PstControl *pst_control_new(const char *path, PstQueueManager *manager,
                            GError **error);
/* Writes the plugin chains in effect (for "plugins"). */
typedef void (*PstControlDescribeFunc)(GString *out, gpointer user_data);
void pst_control_set_describe(PstControl *control, PstControlDescribeFunc func,
                              gpointer user_data);
/* Stops listening and removes the socket file. */
void pst_control_free(PstControl *control);

/* The request handler, for tests: the reply line for `request`. */
char *pst_control_handle(PstQueueManager *manager, const char *request);

G_END_DECLS
