/* system-user.h - the rules for delivering into system users' Maildirs
 * ([delivery] system_users), shared by recipient resolution (a refused
 * user is no mailbox: 550 at RCPT) and the privileged delivery helper
 * (which checks again, whatever the daemon asks; doc/security.md).
 *
 * A user is a mailbox when its uid is PST_MAILBOX_UID_MIN or above and not
 * the overflow uid, and its home directory is an absolute path without a
 * `..` component; the helper then refuses a ~/Maildir (or its tmp/, new/,
 * cur/) that is a symbolic link.
 */
#pragma once

#include <pwd.h>

#include <gio/gio.h>

G_BEGIN_DECLS

/* Accounts below this uid are the system's own (Debian's FIRST_UID): never
 * mailboxes. */
#define PST_MAILBOX_UID_MIN 1000
/* The kernel's overflow uid, "nobody": never a mailbox either. */
#define PST_MAILBOX_UID_OVERFLOW 65534

/* Pure: TRUE when `entry` may receive mail as a system user (the uid and
 * home rules above); otherwise FALSE with a G_IO_ERROR_PERMISSION_DENIED
 * naming the user and the rule.  Used by the helper and by recipient
 * resolution, so a refused user is refused at RCPT already. */
gboolean pst_system_user_check(const struct passwd *entry, GError **error);
/* FALSE (G_IO_ERROR_TOO_MANY_LINKS) when `maildir` or one of its tmp/,
 * new/, cur/ is a symbolic link; missing ones are fine (they are made as
 * directories).  Called in the helper's child, as the user. */
gboolean pst_system_user_check_maildir(const char *maildir, GError **error);

G_END_DECLS
