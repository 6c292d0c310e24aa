/* session.h - one SMTP server connection (the server's view).
 *
 * The server accepts a socket and hands it to pst_session_start() with the
 * configuration generation it belongs to; the session then runs on the main
 * loop by itself until the client leaves, and tells the server through the
 * `closed` callback.  What plugins see of a session is the SDK's
 * pst_session_* accessors (<postilion/plugin.h>).
 */
#pragma once

#include <postilion/plugin.h>

#include "config/config.h"
#include "generation/generation.h"
#include "hooks/hooks.h"
#include "queue/spool.h"

G_BEGIN_DECLS

typedef void (*PstSessionClosedFunc)(PstSession *session, gpointer user_data);

typedef struct {
  /* A reference is taken: the session keeps its generation (rules,
   * plugins, recipient tables, services) until it ends, so a reload
   * never changes them under a client's feet. */
  PstGeneration *generation;
  const PstListenerConfig *listener; /* inside generation->config */
  PstSpool *spool;                   /* outlives every session */
  int fd;                            /* connected, non-blocking; taken */
  const char *client_address;        /* text, IPv4-mapped already unmapped */
  guint16 client_port;
  const char *local_address;
  guint16 local_port;
  PstSessionClosedFunc closed;       /* called once, after the fd is closed */
  gpointer closed_data;
} PstSessionSetup;

/* Starts serving a connection: CONNECT hooks, then the banner.  Returns
 * NULL when the session already ended (`closed` was called). */
PstSession *pst_session_start(const PstSessionSetup *setup);
/* The daemon is stopping: close now when idle between transactions,
 * otherwise when the current transaction ends. */
void pst_session_shutdown(PstSession *session);
/* The grace period is over: send 421 and close at once.  A message whose
 * commit is already under way is still committed. */
void pst_session_abort(PstSession *session);

G_END_DECLS
