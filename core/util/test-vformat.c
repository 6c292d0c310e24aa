/* test-vformat.c - pst_vformat_text() against g_strdup_vprintf(): fixed
 * texts, "%s" of a string and of NULL, "%%", and real formats.
 */
#include <string.h>

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

static void G_GNUC_PRINTF(1, 2) assert_appends_like_printf(const char *format,
                                                        ...) {
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  g_autofree char *expected = g_strdup_vprintf(format, copy);
  va_end(copy);
  g_autoptr(GString) out = g_string_new("prefix: ");
  pst_vformat_append(out, format, args);
  va_end(args);
  g_autofree char *with_prefix = g_strconcat("prefix: ", expected, NULL);
  g_assert_cmpuint(out->len, ==, strlen(with_prefix));
  g_assert_cmpstr(out->str, ==, with_prefix);
  /* pst_vformat_into(), in buffers too small, just right and larger:
   * what g_vsnprintf() writes and returns. */
  gsize length = strlen(expected);
  const gsize sizes[] = {1, 2, 7, length, length + 1, length + 2, 2048};
  for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++) {
    if (sizes[i] == 0)
      continue;
    g_autofree char *got = g_malloc(sizes[i]);
    g_autofree char *want = g_malloc(sizes[i]);
    va_list for_got, for_want;
    va_start(for_got, format);
    gsize got_length = pst_vformat_into(got, sizes[i], format, for_got);
    va_end(for_got);
    va_start(for_want, format);
    int want_length = g_vsnprintf(want, sizes[i], format, for_want);
    va_end(for_want);
    g_assert_cmpuint(got_length, ==, (gsize)want_length);
    g_assert_cmpstr(got, ==, want);
  }
}

static void test_append(void) {
  const char *volatile nothing = NULL;
  assert_appends_like_printf("%s %s: %s (%s) client=%s lookups=%u voids=%u",
                             "mailfrom", "a@example.org", "pass", "ok",
                             "192.0.2.1", 0u, 10u);
  assert_appends_like_printf("plain");
  assert_appends_like_printf("%s", nothing);
  assert_appends_like_printf("%d %i %d %d %d", 0, -1, 2147483647,
                             -2147483647 - 1, 42);
  assert_appends_like_printf("%u %u %u", 0u, 4294967295u, 7u);
  assert_appends_like_printf("%lu %lu %ld %ld %ld", 0UL, G_MAXULONG, 0L,
                             G_MAXLONG, G_MINLONG);
  assert_appends_like_printf("size=%" G_GUINT64_FORMAT ", at %" G_GINT64_FORMAT,
                             (guint64)1382, (gint64)-1);
  assert_appends_like_printf("%lx %s", 255UL, "left to printf");
  assert_appends_like_printf("[%c%c]", 'a', '%');
  assert_appends_like_printf("100%% %s%%", "sure");
  assert_appends_like_printf("%s%s%s", "", "a", "");
  /* Longer than the buffer pieces are gathered in, alone and together. */
  g_autofree char *long_text = g_strnfill(600, 'L');
  assert_appends_like_printf("%s|%s|%u", long_text + 350, long_text, 5u);
  assert_appends_like_printf("%s%s%s%s", long_text + 400, long_text + 400,
                             long_text + 344, "end");
  /* Left to printf: flags, widths, precisions, lengths, others. */
  assert_appends_like_printf("%5d|%-3s|%.2s|%lu|%x|%zu|%ld", 7, "a", "abc",
                             8UL, 255u, (gsize)9, -3L);
  assert_appends_like_printf("%s %f", "f", 1.5);
  assert_appends_like_printf("%" G_GINT64_FORMAT, (gint64)-5);
}

/* pst_vformat_append() of a format made at run time. */
static char *append_six(const char *format, ...) {
  va_list args;
  va_start(args, format);
  GString *out = g_string_new(NULL);
  pst_vformat_append(out, format, args);
  va_end(args);
  return g_string_free(out, FALSE);
}

/* Random formats of the conversions formatted by hand, against printf. */
static void test_append_random(void) {
  GRand *rand = g_rand_new_with_seed(2026);
  static const char *const texts[] = {"", "x", "lookups=", "a b", "%%", ":"};
  for (guint round = 0; round < 2000; round++) {
    g_autoptr(GString) format = g_string_new(NULL);
    const char *strings[3] = {"s1", "", "three"};
    gint ints[3];
    for (guint i = 0; i < 3; i++) {
      /* The first may be a %c: a letter. */
      ints[i] = i == 0 ? 'a' + g_rand_int_range(rand, 0, 26)
                       : (gint)g_rand_int(rand);
      g_string_append(format, texts[g_rand_int_range(rand, 0, 6)]);
    }
    /* Three strings then three numbers, in one of four conversions. */
    static const char *const conversions[] = {"%s%s%s", "%s %s%s"};
    static const char *const numbers[] = {"%d%u%i", "%u %d %i", "%i%i%u",
                                          "%c%d%u"};
    g_string_append(format, conversions[round % 2]);
    g_string_append(format, texts[round % 6]);
    g_string_append(format, numbers[g_rand_int_range(rand, 0, 4)]);
    /* The formats are made here, of the conversions above. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    g_autofree char *expected =
        g_strdup_printf(format->str, strings[0], strings[1], strings[2],
                        ints[0], ints[1], ints[2]);
#pragma GCC diagnostic pop
    g_autofree char *got = append_six(format->str, strings[0], strings[1],
                                      strings[2], ints[0], ints[1], ints[2]);
    g_assert_cmpstr(got, ==, expected);
  }
  g_rand_free(rand);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vformat/like-printf", test_like_printf);
  g_test_add_func("/vformat/no-copy", test_no_copy);
  g_test_add_func("/vformat/null-argument", test_null_argument);
  g_test_add_func("/vformat/append", test_append);
  g_test_add_func("/vformat/append-random", test_append_random);
  return g_test_run();
}
