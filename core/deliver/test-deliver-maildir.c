/* test-deliver-maildir.c - Maildir delivery: the file lands in new/ with
 * LF line ends and the prelude, names are unique, and a write that fails
 * part way (a file size limit standing in for a full disk) leaves nothing
 * in tmp/ or new/. */
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "deliver/maildir.h"

/* Content given in pieces of `piece` octets; with `fail`, the end is a
 * failure (a checksum mismatch found after the last piece). */
typedef struct {
  const char *data;
  gsize length, piece, at;
  gboolean fail;
} Pieces;

static gboolean pieces_read(gpointer source, const guint8 **data_r,
                            gsize *length_r, GError **error) {
  Pieces *pieces = source;
  *length_r = MIN(pieces->piece, pieces->length - pieces->at);
  *data_r = (const guint8 *)pieces->data + pieces->at;
  pieces->at += *length_r;
  if (*length_r == 0 && pieces->fail) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "corrupt");
    return FALSE;
  }
  return TRUE;
}

static gboolean deliver_text(const char *maildir, const char *prelude,
                             const char *text, gsize length, gsize piece,
                             char **path_r, GError **error) {
  Pieces pieces = {text, length, piece, 0, FALSE};
  return pst_maildir_deliver(maildir, prelude, pieces_read, &pieces, path_r,
                             error);
}

static guint count_entries(const char *maildir, const char *sub) {
  g_autofree char *path = g_build_filename(maildir, sub, NULL);
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  guint n = 0;
  while (dir != NULL && g_dir_read_name(dir) != NULL)
    n++;
  return n;
}

static void remove_tree(const char *path) {
  g_autoptr(GFile) file = g_file_new_for_path(path);
  g_autoptr(GFileEnumerator) children = g_file_enumerate_children(
      file, "standard::name", G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
  GFileInfo *info;
  while (children != NULL &&
         (info = g_file_enumerator_next_file(children, NULL, NULL)) != NULL) {
    g_autofree char *child =
        g_build_filename(path, g_file_info_get_name(info), NULL);
    if (g_file_info_get_file_type(info) == G_FILE_TYPE_DIRECTORY)
      remove_tree(child);
    else
      g_unlink(child);
    g_object_unref(info);
  }
  g_rmdir(path);
}

static void test_deliver(void) {
  g_autofree char *root = g_dir_make_tmp("test-maildir-XXXXXX", NULL);
  g_autofree char *maildir = g_build_filename(root, "example.org", "bob", NULL);
  static const char content[] = "Subject: x\r\n\r\nline\r\n";
  g_autoptr(GError) error = NULL;
  g_autofree char *first = NULL, *second = NULL;
  g_assert_true(deliver_text(maildir, "Delivered-To: bob\r\n", content,
                             strlen(content), 4096, &first, &error));
  g_assert_true(deliver_text(maildir, "", content, strlen(content), 4096,
                             &second, &error));
  g_assert_cmpstr(first, !=, second);
  g_autofree char *text = NULL;
  g_assert_true(g_file_get_contents(first, &text, NULL, NULL));
  g_assert_cmpstr(text, ==, "Delivered-To: bob\nSubject: x\n\nline\n");
  g_assert_cmpuint(count_entries(maildir, "new"), ==, 2);
  g_assert_cmpuint(count_entries(maildir, "tmp"), ==, 0);
  g_assert_cmpuint(count_entries(maildir, "cur"), ==, 0);
  remove_tree(root);
}

static void test_write_failure_leaves_nothing(void) {
  g_autofree char *root = g_dir_make_tmp("test-maildir-XXXXXX", NULL);
  g_autofree char *maildir = g_build_filename(root, "m", NULL);
  gsize size = 4 * 1024 * 1024;
  g_autofree char *big = g_malloc(size);
  memset(big, 'a', size);
  struct rlimit old, limit = {1024 * 1024, 1024 * 1024};
  signal(SIGXFSZ, SIG_IGN);
  g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
  limit.rlim_max = old.rlim_max;
  g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &limit), ==, 0);
  g_autoptr(GError) error = NULL;
  gboolean ok = deliver_text(maildir, "", big, size, 65536, NULL, &error);
  setrlimit(RLIMIT_FSIZE, &old);
  g_assert_false(ok);
  g_assert_nonnull(strstr(error->message, "cannot write"));
  g_assert_cmpuint(count_entries(maildir, "tmp"), ==, 0);
  g_assert_cmpuint(count_entries(maildir, "new"), ==, 0);
  remove_tree(root);
}

static void test_unwritable(void) {
  g_autofree char *root = g_dir_make_tmp("test-maildir-XXXXXX", NULL);
  g_autofree char *file = g_build_filename(root, "file", NULL);
  g_assert_true(g_file_set_contents(file, "x", 1, NULL));
  g_autofree char *maildir = g_build_filename(file, "bob", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_false(deliver_text(maildir, "", "x\r\n", 3, 3, NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY);
  remove_tree(root);
}

/* Every piece size: CRLF split between pieces still becomes LF, a bare CR
 * stays, also at a piece's end and at the very end. */
static void test_pieces(void) {
  g_autofree char *root = g_dir_make_tmp("test-maildir-XXXXXX", NULL);
  g_autofree char *maildir = g_build_filename(root, "m", NULL);
  static const char content[] = "A: 1\r\n\r\nx\ry\r\n\r\r\nend\r";
  for (gsize piece = 1; piece <= sizeof content; piece++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = NULL;
    g_assert_true(deliver_text(maildir, "P: 1\r\n", content, strlen(content),
                               piece, &path, &error));
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "P: 1\nA: 1\n\nx\ry\n\r\nend\r");
  }
  remove_tree(root);
}

/* Content found corrupt after its last piece: nothing in new/, the
 * partial file gone, the reader's error passed on. */
static void test_read_failure_leaves_nothing(void) {
  g_autofree char *root = g_dir_make_tmp("test-maildir-XXXXXX", NULL);
  g_autofree char *maildir = g_build_filename(root, "m", NULL);
  static const char content[] = "Subject: x\r\n\r\nline\r\n";
  Pieces pieces = {content, strlen(content), 5, 0, TRUE};
  g_autoptr(GError) error = NULL;
  g_assert_false(
      pst_maildir_deliver(maildir, "", pieces_read, &pieces, NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_cmpuint(count_entries(maildir, "tmp"), ==, 0);
  g_assert_cmpuint(count_entries(maildir, "new"), ==, 0);
  remove_tree(root);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/maildir/deliver", test_deliver);
  g_test_add_func("/deliver/maildir/write-failure",
                  test_write_failure_leaves_nothing);
  g_test_add_func("/deliver/maildir/unwritable", test_unwritable);
  g_test_add_func("/deliver/maildir/pieces", test_pieces);
  g_test_add_func("/deliver/maildir/read-failure",
                  test_read_failure_leaves_nothing);
  return g_test_run();
}
