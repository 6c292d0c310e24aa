/* test-sd-notify.c - pst_sd_notify() against a real datagram socket, at a
 * path and in the abstract namespace, as systemd sets $NOTIFY_SOCKET.
 */
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "util/sd-notify.h"

/* A bound datagram socket; `name` is what NOTIFY_SOCKET would say. */
static int listen_at(const char *name) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  gsize length = strlen(name);
  g_assert_cmpuint(length, <, sizeof address.sun_path);
  memcpy(address.sun_path, name, length);
  socklen_t size = offsetof(struct sockaddr_un, sun_path) + length + 1;
  if (name[0] == '@') {
    address.sun_path[0] = '\0';
    size--;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(bind(fd, (struct sockaddr *)&address, size), ==, 0);
  return fd;
}

static void assert_received(int fd, const char *expected) {
  char buffer[256];
  ssize_t got = recv(fd, buffer, sizeof buffer - 1, MSG_DONTWAIT);
  g_assert_cmpint(got, ==, (ssize_t)strlen(expected));
  buffer[got] = '\0';
  g_assert_cmpstr(buffer, ==, expected);
}

static void test_path(void) {
  g_autofree char *dir = g_dir_make_tmp("pst-notify-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "notify", NULL);
  int fd = listen_at(path);
  g_setenv("NOTIFY_SOCKET", path, TRUE);
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_sd_notify("READY=1\nSTATUS=serving", &error));
  g_assert_no_error(error);
  assert_received(fd, "READY=1\nSTATUS=serving");
  close(fd);
  g_unlink(path);
  g_rmdir(dir);
}

static void test_abstract(void) {
  g_autofree char *name = g_strdup_printf("@pst-test-notify-%d", (int)getpid());
  int fd = listen_at(name);
  g_setenv("NOTIFY_SOCKET", name, TRUE);
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_sd_notify("STOPPING=1", &error));
  assert_received(fd, "STOPPING=1");
  close(fd);
}

static void test_unset_and_bad(void) {
  g_autoptr(GError) error = NULL;
  g_unsetenv("NOTIFY_SOCKET");
  g_assert_true(pst_sd_notify("READY=1", &error));
  g_setenv("NOTIFY_SOCKET", "relative/path", TRUE);
  g_assert_false(pst_sd_notify("READY=1", &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error(&error);
  g_setenv("NOTIFY_SOCKET", "/nonexistent/pst-notify", TRUE);
  g_assert_false(pst_sd_notify("READY=1", &error));
  g_assert_nonnull(strstr(error->message, "/nonexistent/pst-notify"));
  g_unsetenv("NOTIFY_SOCKET");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/util/sd-notify/path", test_path);
  g_test_add_func("/util/sd-notify/abstract", test_abstract);
  g_test_add_func("/util/sd-notify/unset-and-bad", test_unset_and_bad);
  return g_test_run();
}
