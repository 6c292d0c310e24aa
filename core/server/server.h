/* server.h - the running daemon: listeners, sessions, generations.
 *
 * The server owns the listening sockets, the set of live sessions, the
 * connection counts that enforce max_connections(_per_ip), and the current
 * configuration generation.  pst_server_reload() swaps in a new generation
 * (sessions in progress keep theirs); pst_server_stop() begins the bounded
 * shutdown.  Main thread only.
 */
#pragma once

#include "config/config.h"
#include "generation/generation.h"
#include "queue/spool.h"
#include "session/session.h"

G_BEGIN_DECLS

typedef struct _PstServer PstServer;

/* Binds every listener of the generation's configuration; new sessions
 * run on `generation` (a reference is kept).  Fails naming the listener,
 * the file and line of its address, and the system's reason. */
PstServer *pst_server_new(PstGeneration *generation, PstSpool *spool,
                          GError **error);
/* Starts accepting connections. */
void pst_server_start(PstServer *server);
/* Applies a new generation for new sessions: binds new listeners, closes
 * removed ones.  On failure nothing changes. */
gboolean pst_server_reload(PstServer *server, PstGeneration *generation,
                           GError **error);
PstGeneration *pst_server_get_generation(PstServer *server);
/* Stops accepting, lets sessions finish within timeout_shutdown, then
 * calls `done` once no session is left. */
void pst_server_stop(PstServer *server, GSourceFunc done, gpointer data);
void pst_server_free(PstServer *server);

G_END_DECLS
