/* sd-notify.h - telling the service manager our state (systemd
 * Type=notify), without libsystemd.  See sd-notify.c.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...",
 * several separated by '\n') to the socket named by $NOTIFY_SOCKET, as
 * sd_notify(3) does.  TRUE without doing anything when the variable is
 * unset (no service manager listens); FALSE with an error when the socket
 * named cannot be reached. */
gboolean pst_sd_notify(const char *state, GError **error);

G_END_DECLS
