/* test-log.c - the daemon's stderr lines: their form against printf's,
 * long lines, the process id after fork(), and pst_log_init() called
 * again (as the daemon does when it detaches).
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "util/log.h"

/* The line as the writer printed it before: the reference form. */
static char *reference_line(long pid, const char *prefix, const char *message) {
  return g_strdup_printf("postiliond[%ld]: %s%s\n", pid, prefix, message);
}

static void assert_formats_like_printf(long pid, const char *prefix,
                                       const char *message) {
  g_autofree char *expected = reference_line(pid, prefix, message);
  char buffer[512];
  gsize length = pst_log_format_line(buffer, sizeof buffer, pid, prefix,
                                     message, strlen(message));
  g_assert_cmpuint(length, ==, strlen(expected));
  g_assert_cmpmem(buffer, length, expected, strlen(expected));
}

static void test_format(void) {
  static const long pids[] = {0, 1, 9, 10, 4242, 2147483647L, -1, -380};
  static const char *const prefixes[] = {"", "warning: ", "fatal: ",
                                         "debug: "};
  static const char *const messages[] = {
      "", "4F2A1B: queued from=<a@example.org>, size=1024, nrcpt=1",
      "%s %d %% not a format", "caf\xc3\xa9 \t tab"};
  for (guint i = 0; i < G_N_ELEMENTS(pids); i++)
    for (guint j = 0; j < G_N_ELEMENTS(prefixes); j++)
      for (guint k = 0; k < G_N_ELEMENTS(messages); k++)
        assert_formats_like_printf(pids[i], prefixes[j], messages[k]);
}

/* A buffer too small is left alone; the length needed comes back. */
static void test_format_too_small(void) {
  char buffer[16];
  memset(buffer, 'z', sizeof buffer);
  const char *message = "a message longer than the buffer";
  gsize length = pst_log_format_line(buffer, sizeof buffer, 77, "warning: ",
                                     message, strlen(message));
  g_autofree char *expected = reference_line(77, "warning: ", message);
  g_assert_cmpuint(length, ==, strlen(expected));
  for (gsize i = 0; i < sizeof buffer; i++)
    g_assert_cmpint(buffer[i], ==, 'z');
  length = pst_log_format_line(buffer, strlen("postiliond[7]: \n"), 7, "", "",
                               0);
  g_assert_cmpmem(buffer, length, "postiliond[7]: \n", 16);
}

/* Runs `func` with stderr sent to a file; returns what it wrote. */
static char *capture_stderr(void (*func)(gpointer), gpointer data) {
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp("test-log-XXXXXX", &path, NULL);
  g_assert_cmpint(fd, >=, 0);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  g_assert_cmpint(dup2(fd, STDERR_FILENO), ==, STDERR_FILENO);
  func(data);
  fflush(stderr);
  g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
  close(saved);
  close(fd);
  char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  g_unlink(path);
  return text;
}

static void write_long_line(gpointer data) {
  pst_log_write_stderr(31337, "warning: ", data);
}

/* A line longer than the writer's stack buffer is written whole. */
static void test_write_long(void) {
  g_autofree char *message = g_strnfill(5000, 'x');
  g_autofree char *text = capture_stderr(write_long_line, message);
  g_autofree char *expected = reference_line(31337, "warning: ", message);
  g_assert_cmpstr(text, ==, expected);
}

/* g_message() in this process and in a forked child: each line carries
 * the id of the process that wrote it. */
static void log_before_and_after_fork(gpointer data) {
  pid_t *child_r = data;
  g_message("before fork");
  pid_t child = fork();
  g_assert_cmpint(child, >=, 0);
  if (child == 0) {
    g_message("in the child");
    _exit(0);
  }
  int status = 0;
  g_assert_cmpint(waitpid(child, &status, 0), ==, child);
  g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  g_message("after fork");
  *child_r = child;
}

static void test_pid_after_fork(void) {
  /* Twice, as a daemon that detaches does: no abort, one writer. */
  pst_log_init(PST_LOG_STDERR, FALSE);
  pst_log_init(PST_LOG_STDERR, FALSE);
  pid_t child = 0;
  g_autofree char *text = capture_stderr(log_before_and_after_fork, &child);
  g_autofree char *expected = g_strdup_printf(
      "postiliond[%d]: before fork\n"
      "postiliond[%d]: in the child\n"
      "postiliond[%d]: after fork\n",
      (int)getpid(), (int)child, (int)getpid());
  g_assert_cmpstr(text, ==, expected);
}

/* Debug lines: written when verbose; G_MESSAGES_DEBUG is unset here. */
static void test_debug_enabled(void) {
  pst_log_init(PST_LOG_STDERR, FALSE);
  g_assert_false(pst_log_debug_enabled());
  pst_log_init(PST_LOG_STDERR, TRUE);
  g_assert_true(pst_log_debug_enabled());
  pst_log_init(PST_LOG_STDERR, FALSE);
  g_assert_false(pst_log_debug_enabled());
}

int main(int argc, char **argv) {
  g_unsetenv("G_MESSAGES_DEBUG");
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/log/format", test_format);
  g_test_add_func("/log/format-too-small", test_format_too_small);
  g_test_add_func("/log/write-long", test_write_long);
  g_test_add_func("/log/pid-after-fork", test_pid_after_fork);
  g_test_add_func("/log/debug-enabled", test_debug_enabled);
  return g_test_run();
}
