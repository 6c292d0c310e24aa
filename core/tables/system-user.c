/* system-user.c - which system users may receive mail, and where (see
 * system-user.h).
 *
 * Entry points: pst_system_user_check() (pure over a passwd entry: the
 * delivery helper and recipient resolution), pst_system_user_check_maildir()
 * (lstat() of the Maildir and its subdirectories, in the helper's child).
 */
#include <sys/stat.h>

#include "tables/system-user.h"

gboolean pst_system_user_check(const struct passwd *entry, GError **error) {
  if (entry->pw_uid < PST_MAILBOX_UID_MIN ||
      entry->pw_uid == PST_MAILBOX_UID_OVERFLOW) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                "user %s (uid %u) is a system account, not a mailbox (uids "
                "from %u, not %u)",
                entry->pw_name, (unsigned)entry->pw_uid, PST_MAILBOX_UID_MIN,
                PST_MAILBOX_UID_OVERFLOW);
    return FALSE;
  }
  const char *home = entry->pw_dir != NULL ? entry->pw_dir : "";
  g_auto(GStrv) parts = g_strsplit(home, "/", -1);
  gboolean dotdot = FALSE;
  for (guint i = 0; parts[i] != NULL; i++)
    dotdot |= g_str_equal(parts[i], "..");
  if (!g_path_is_absolute(home) || dotdot) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                "user %s has home directory “%s”: not a plain absolute path "
                "(no “..”); no delivery",
                entry->pw_name, home);
    return FALSE;
  }
  return TRUE;
}

gboolean pst_system_user_check_maildir(const char *maildir, GError **error) {
  static const char *const subdirs[] = {NULL, "tmp", "new", "cur"};
  for (guint i = 0; i < G_N_ELEMENTS(subdirs); i++) {
    g_autofree char *path = g_build_filename(maildir, subdirs[i], NULL);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_LINKS,
                  "%s is a symbolic link: refused (a Maildir must be a real "
                  "directory)",
                  path);
      return FALSE;
    }
  }
  return TRUE;
}
