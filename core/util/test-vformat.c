/* test-vformat.c - pst_vformat_text() against g_strdup_vprintf(): fixed
 * texts, "%s" of a string and of NULL, "%%", and real formats.
 */
#include <glib.h>

#include "util/vformat.h"

static void G_GNUC_PRINTF(2, 3)
    assert_like_printf(gboolean formats, const char *format, ...) {
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  g_autofree char *expected = g_strdup_vprintf(format, copy);
  va_end(copy);
  g_autofree char *owned = NULL;
  const char *text = pst_vformat_text(format, args, &owned);
  va_end(args);
  g_assert_cmpstr(text, ==, expected);
  /* Only a real format allocates. */
  g_assert_cmpint(owned != NULL, ==, formats);
}

static void test_like_printf(void) {
  assert_like_printf(FALSE, "Ok");
  assert_like_printf(FALSE, " ");
  assert_like_printf(FALSE, "%s", "Ok: queued as 4F2A1B");
  assert_like_printf(FALSE, "%s", "");
  assert_like_printf(TRUE, "%%");
  assert_like_printf(TRUE, "100%% sure");
  assert_like_printf(TRUE, "%s Service closing", "mx.example.org");
  assert_like_printf(TRUE, "%s%s", "a", "b");
  assert_like_printf(TRUE, "%u recipients", 7u);
  assert_like_printf(TRUE, "%5s|", "ab");
  assert_like_printf(TRUE, "%.1s", "abc");
  assert_like_printf(TRUE, " %s", "x");
  assert_like_printf(TRUE, "%s ", "x");
}

/* The argument as it is: the very string, not a copy. */
static void G_GNUC_PRINTF(1, 2) assert_same_pointer(const char *format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  const char *argument = va_arg(copy, const char *);
  va_end(copy);
  g_autofree char *owned = NULL;
  const char *text = pst_vformat_text(format, args, &owned);
  va_end(args);
  g_assert_true(text == argument);
  g_assert_null(owned);
}

static void test_no_copy(void) {
  static const char reply[] = "Ok";
  assert_same_pointer("%s", reply);
}

/* "%s" of NULL is printf's "(null)". */
static void test_null_argument(void) {
  const char *volatile nothing = NULL;
  assert_like_printf(TRUE, "%s", nothing);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vformat/like-printf", test_like_printf);
  g_test_add_func("/vformat/no-copy", test_no_copy);
  g_test_add_func("/vformat/null-argument", test_null_argument);
  return g_test_run();
}
