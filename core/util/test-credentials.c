/* test-credentials.c - the relayhost credentials file (credentials.c):
 * a table of files, the lookups they allow, and the mode check.
 */
#include <string.h>
#include <sys/stat.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "util/credentials.h"

typedef struct {
  const char *name;
  const char *text;
  const char *error; /* substring of the error, NULL when it parses */
  guint count;
} FileRow;

static const FileRow file_rows[] = {
    {"empty", "", NULL, 0},
    {"comments", "# nothing\n\n   # more\n", NULL, 0},
    {"one", "[smtp.example.net]:587 alice@example.org:s3cret\n", NULL, 1},
    {"crlf", "[smtp.example.net]:587 alice:s3cret\r\n", NULL, 1},
    {"two", "[a.example]:25 u:p\n[b.example]:465\tv:q\n", NULL, 2},
    {"ipv6", "[2001:db8::25]:587 u:p\n", NULL, 1},
    {"no-brackets", "smtp.example.net:587 u:p\n", ":1: expected [HOST]:PORT"},
    {"no-port", "[smtp.example.net] u:p\n", ":1: expected [HOST]:PORT"},
    {"port-zero", "[h]:0 u:p\n", "port from 1 to 65535"},
    {"port-big", "[h]:65536 u:p\n", "port from 1 to 65535"},
    {"no-login", "[h]:25\n", "expected white space"},
    {"no-colon", "[h]:25 user\n", "USER:PASSWORD"},
    {"empty-user", "[h]:25 :pw\n", "USER:PASSWORD"},
    {"empty-password", "[h]:25 user:\n", "USER:PASSWORD"},
    {"twice", "[H]:25 u:p\n[h]:25 v:q\n",
     ":2: this [HOST]:PORT is listed twice"},
    {"empty-host", "[]:25 u:p\n", "expected [HOST]:PORT"},
    {"control", "[h]:25 u:p\x01w\n", "control characters"},
    {"nul", "[h]:25 u:p\0w\n", "NUL"},
};

static void test_file(gconstpointer data) {
  const FileRow *row = data;
  g_autoptr(GError) error = NULL;
  gsize length = strlen(row->text);
  if (strcmp(row->name, "nul") == 0)
    length = 14;
  g_autoptr(PstCredentials) credentials =
      pst_credentials_parse(row->text, length, "FILE", &error);
  if (row->error == NULL) {
    g_assert_no_error(error);
    g_assert_cmpuint(pst_credentials_count(credentials), ==, row->count);
    return;
  }
  g_assert_null(credentials);
  g_assert_nonnull(error);
  g_assert_nonnull(strstr(error->message, row->error));
  g_assert_true(g_str_has_prefix(error->message, "FILE:"));
  /* The password never appears in an error. */
  g_assert_null(strstr(error->message, "pw"));
}

static void test_lookup(void) {
  const char *text = "[Smtp.Example.NET]:587  alice@example.org:pass: word  \n"
                     "[2001:db8::25]:25 relay:x\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(PstCredentials) credentials =
      pst_credentials_parse(text, strlen(text), "FILE", &error);
  g_assert_no_error(error);
  const char *user = NULL, *password = NULL;
  g_assert_true(pst_credentials_lookup(credentials, "smtp.example.net", 587,
                                       &user, &password));
  g_assert_cmpstr(user, ==, "alice@example.org");
  g_assert_cmpstr(password, ==, "pass: word");
  g_assert_false(pst_credentials_lookup(credentials, "smtp.example.net", 25,
                                        &user, &password));
  g_assert_true(pst_credentials_lookup(credentials, "2001:db8::25", 25, &user,
                                       &password));
  g_assert_cmpstr(user, ==, "relay");
}

static void test_load_mode(void) {
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("pst-cred-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *path = g_build_filename(dir, "relay_credentials", NULL);
  g_assert_true(g_file_set_contents(path, "[h]:587 u:secret\n", -1, NULL));
  g_assert_cmpint(g_chmod(path, 0644), ==, 0);
  g_autoptr(PstCredentials) refused = pst_credentials_load(path, &error);
  g_assert_null(refused);
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
  g_assert_nonnull(strstr(error->message, "chmod 600"));
  g_clear_error(&error);
  g_assert_cmpint(g_chmod(path, 0640), ==, 0);
  g_autoptr(PstCredentials) loaded = pst_credentials_load(path, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(pst_credentials_count(loaded), ==, 1);
  g_autoptr(PstCredentials) missing =
      pst_credentials_load("/nonexistent/credentials", &error);
  g_assert_null(missing);
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_unlink(path);
  g_rmdir(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(file_rows); i++) {
    g_autofree char *path =
        g_strdup_printf("/credentials/file/%s", file_rows[i].name);
    g_test_add_data_func(path, &file_rows[i], test_file);
  }
  g_test_add_func("/credentials/lookup", test_lookup);
  g_test_add_func("/credentials/load-mode", test_load_mode);
  return g_test_run();
}
