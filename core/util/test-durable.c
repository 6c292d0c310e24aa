/* test-durable.c - durable directory creation: missing parents are made,
 * an existing directory is fine, a file in the way is ENOTDIR, and an
 * unwritable parent reports its errno. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "util/durable.h"

static void test_nested(void) {
  g_autofree char *base = g_dir_make_tmp("pst-durable-XXXXXX", NULL);
  g_autofree char *deep = g_build_filename(base, "a", "b", "c", NULL);
  g_assert_cmpint(pst_durable_mkdir_with_parents(deep, 0700), ==, 0);
  g_assert_true(g_file_test(deep, G_FILE_TEST_IS_DIR));
  struct stat st;
  g_assert_cmpint(stat(deep, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 0777, ==, 0700);
  /* Again: nothing to do. */
  g_assert_cmpint(pst_durable_mkdir_with_parents(deep, 0700), ==, 0);
  g_assert_true(pst_durable_sync_directory(deep));

  /* A file in the way. */
  g_autofree char *file = g_build_filename(base, "file", NULL);
  g_assert_true(g_file_set_contents(file, "x", 1, NULL));
  g_autofree char *below = g_build_filename(file, "sub", NULL);
  errno = 0;
  g_assert_cmpint(pst_durable_mkdir_with_parents(file, 0700), ==, -1);
  g_assert_cmpint(errno, ==, ENOTDIR);
  g_assert_cmpint(pst_durable_mkdir_with_parents(below, 0700), ==, -1);
  g_assert_false(pst_durable_sync_directory(file));

  g_unlink(file);
  g_rmdir(deep);
  g_autofree char *b = g_path_get_dirname(deep);
  g_rmdir(b);
  g_autofree char *a = g_path_get_dirname(b);
  g_rmdir(a);
  g_rmdir(base);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/util/durable/nested", test_nested);
  return g_test_run();
}
