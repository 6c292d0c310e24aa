/* local-helper.h - the privileged delivery helper: writes into system
 * users' Maildirs as those users (ARCHITECTURE.md section 2).
 *
 * postiliond starts as root, forks this helper before anything else (so
 * the helper is single-threaded and holds nothing but a socketpair), then
 * drops to [server] user.  Delivery workers send it requests: a user name,
 * the prelude, and the content streamed a piece at a time on a socket of
 * its own (local-helper.c has the frames).  For each request the
 * helper forks a child that switches to the user (initgroups, setgid,
 * setuid) and delivers into ~user/Maildir/ with pst_maildir_deliver(),
 * and replies with the path or the error.  The helper exits when the
 * daemon closes the socket (or dies).
 *
 * What the helper refuses, whatever the daemon asks (doc/security.md): a
 * user that pst_system_user_check() refuses, and a Maildir that
 * pst_system_user_check_maildir() refuses (system-user.h).
 */
#pragma once

#include <gio/gio.h>

#include "deliver/maildir.h"

G_BEGIN_DECLS

/* Forks the helper; only as root.  Call before any thread starts. */
gboolean pst_local_helper_start(GError **error);
/* TRUE when a helper runs. */
gboolean pst_local_helper_available(void);
/* Delivers the content `read` gives through the helper (blocking; worker
 * threads, serialized): the helper commits only after `read` reported
 * the end.  Fails with `read`'s error, the helper's (a G_IO_ERROR), or
 * when it is gone. */
gboolean pst_local_helper_deliver(const char *user, const char *prelude,
                                  PstMaildirReadFunc read, gpointer source,
                                  char **path_r, GError **error);
/* Closes the socket: the helper exits. */
void pst_local_helper_stop(void);

G_END_DECLS
