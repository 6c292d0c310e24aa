/* test-system-user.c - which system users may receive mail:
 * system accounts (uid below 1000), nobody, and homes that are relative or
 * climb with `..` are refused; a Maildir, or its tmp/, new/ or cur/, that
 * is a symbolic link is refused; real directories pass. */
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "tables/system-user.h"

typedef struct {
  const char *name;
  uid_t uid;
  const char *home;
  gboolean allowed;
} UserCase;

static const UserCase user_cases[] = {
    {"alice", 1000, "/home/alice", TRUE},
    {"bob", 60000, "/srv/home/bob", TRUE},
    {"root", 0, "/root", FALSE},
    {"daemon", 1, "/usr/sbin", FALSE},
    {"www-data", 33, "/var/www", FALSE},
    {"sys999", 999, "/home/sys999", FALSE},
    {"nobody", 65534, "/nonexistent", FALSE},
    {"climber", 1001, "/home/../etc", FALSE},
    {"climber2", 1002, "/home/climber2/..", FALSE},
    {"relative", 1003, "home/relative", FALSE},
    {"empty", 1004, "", FALSE},
    {"dots", 1005, "/home/a..b", TRUE},
};

static void test_user_rules(void) {
  for (guint i = 0; i < G_N_ELEMENTS(user_cases); i++) {
    const UserCase *c = &user_cases[i];
    struct passwd entry = {.pw_name = (char *)c->name,
                           .pw_uid = c->uid,
                           .pw_gid = c->uid,
                           .pw_dir = (char *)c->home};
    g_autoptr(GError) error = NULL;
    gboolean allowed = pst_system_user_check(&entry, &error);
    g_test_message("%s uid %u home %s: %s", c->name, (unsigned)c->uid, c->home,
                   allowed ? "allowed" : error->message);
    g_assert_cmpint(allowed, ==, c->allowed);
    if (!allowed) {
      g_assert_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
      g_assert_nonnull(strstr(error->message, c->name));
    }
  }
}

static void test_maildir_symlinks(void) {
  g_autofree char *base = g_dir_make_tmp("pst-system-user-XXXXXX", NULL);
  g_autofree char *elsewhere = g_build_filename(base, "elsewhere", NULL);
  g_autofree char *maildir = g_build_filename(base, "Maildir", NULL);
  g_autofree char *new_dir = g_build_filename(maildir, "new", NULL);
  g_assert_cmpint(g_mkdir(elsewhere, 0700), ==, 0);
  g_autoptr(GError) error = NULL;

  /* Missing: fine, it will be made. */
  g_assert_true(pst_system_user_check_maildir(maildir, &error));
  /* The Maildir itself a symlink. */
  g_assert_cmpint(symlink(elsewhere, maildir), ==, 0);
  g_assert_false(pst_system_user_check_maildir(maildir, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_LINKS);
  g_clear_error(&error);
  g_unlink(maildir);
  /* A real Maildir whose new/ is a symlink. */
  g_assert_cmpint(g_mkdir(maildir, 0700), ==, 0);
  g_assert_cmpint(symlink(elsewhere, new_dir), ==, 0);
  g_assert_false(pst_system_user_check_maildir(maildir, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_LINKS);
  g_clear_error(&error);
  /* Real directories throughout. */
  g_unlink(new_dir);
  g_assert_cmpint(g_mkdir(new_dir, 0700), ==, 0);
  g_assert_true(pst_system_user_check_maildir(maildir, &error));
  g_assert_no_error(error);

  g_rmdir(new_dir);
  g_rmdir(maildir);
  g_rmdir(elsewhere);
  g_rmdir(base);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/system-user/rules", test_user_rules);
  g_test_add_func("/deliver/system-user/maildir-symlinks",
                  test_maildir_symlinks);
  return g_test_run();
}
