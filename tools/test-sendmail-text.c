/* test-sendmail-text.c - what sendmail makes of a program's output.
 *
 * Rows (/sendmail/text/...) give an input and the exact text expected:
 * line ends, bare CRs in the header and the body, NULs, lines cut at a
 * blank or in a word, in the header and the body.  Then generated inputs
 * (a fixed seed, a bounded count) check what must hold for any input:
 * only CRLF ends lines, no line is over 998 octets, no NUL is left, every
 * other octet but CR, space and tab is kept in order; and text that SMTP
 * already carries comes out unchanged.
 */
#include <string.h>

#include "tools/sendmail-text.h"

typedef struct {
  const char *name;
  const char *input;
  gssize input_length; /* -1: strlen */
  const char *expected;
} TextCase;

/* clang-format off */
static const TextCase text_cases[] = {
    {"lf", "Subject: a\n\nbody\n", -1, "Subject: a\r\n\r\nbody\r\n"},
    {"crlf", "Subject: a\r\n\r\nbody\r\n", -1, "Subject: a\r\n\r\nbody\r\n"},
    {"crs-before-lf", "Subject: a\r\r\n\r\nbody\r\r\r\n", -1,
     "Subject: a\r\n\r\nbody\r\n"},
    {"no-final-line-end", "Subject: a\n\nbody", -1,
     "Subject: a\r\n\r\nbody\r\n"},
    {"empty", "", -1, ""},
    {"progress-bar", "Subject: a\n\n10%\r20%\r\r30%\rdone\n", -1,
     "Subject: a\r\n\r\n10%\r\n20%\r\n30%\r\ndone\r\n"},
    {"cr-in-header", "Subject: a\rb\nTo: c\n\nx\ry\n", -1,
     "Subject: a b\r\nTo: c\r\n\r\nx\r\ny\r\n"},
    {"cr-without-header", "10%\r20%\n", -1, "10%\r\n20%\r\n"},
    {"cr-line-ends-header", "Subject: a\n\r\nbody\n", -1,
     "Subject: a\r\n\r\nbody\r\n"},
    {"nul", "Subject: a\0b\n\nc\0\0d\n", 19, "Subject: ab\r\n\r\ncd\r\n"},
    {"dot-lines-kept", "Subject: a\n\n.\n..\n", -1,
     "Subject: a\r\n\r\n.\r\n..\r\n"},
};
/* clang-format on */

static void test_text_case(gconstpointer data) {
  const TextCase *c = data;
  gsize length =
      c->input_length < 0 ? strlen(c->input) : (gsize)c->input_length;
  g_autoptr(GString) out = pst_sendmail_text_from_input(c->input, length);
  g_assert_cmpstr(out->str, ==, c->expected);
}

/* A line of `n` copies of `c`. */
static char *repeat(char c, gsize n) {
  char *s = g_malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* 998 octets fit; 999 in one word are cut after 998, and the rest goes on
 * after a space put in. */
static void test_long_word(void) {
  g_autofree char *fits = repeat('x', 998);
  g_autofree char *input = g_strconcat(fits, "\n", NULL);
  g_autoptr(GString) out = pst_sendmail_text_from_input(input, strlen(input));
  g_autofree char *expected = g_strconcat(fits, "\r\n", NULL);
  g_assert_cmpstr(out->str, ==, expected);

  g_autofree char *word = repeat('y', 2500);
  g_autofree char *input2 = g_strconcat("Subject: a\n\n", word, "\n", NULL);
  g_autoptr(GString) out2 =
      pst_sendmail_text_from_input(input2, strlen(input2));
  g_autofree char *first = repeat('y', 998);
  g_autofree char *second = repeat('y', 997);
  g_autofree char *third = repeat('y', 2500 - 998 - 997);
  g_autofree char *expected2 =
      g_strconcat("Subject: a\r\n\r\n", first, "\r\n ", second, "\r\n ", third,
                  "\r\n", NULL);
  g_assert_cmpstr(out2->str, ==, expected2);
}

/* A long field is folded before its last blank that fits: nothing added,
 * the blank starts the next line. */
static void test_long_field_folded(void) {
  g_autofree char *a = repeat('a', 600);
  g_autofree char *b = repeat('b', 600);
  g_autofree char *input =
      g_strconcat("To: ", a, "@x,\t", b, "@y\n\nbody\n", NULL);
  g_autoptr(GString) out = pst_sendmail_text_from_input(input, strlen(input));
  g_autofree char *expected =
      g_strconcat("To: ", a, "@x,\r\n\t", b, "@y\r\n\r\nbody\r\n", NULL);
  g_assert_cmpstr(out->str, ==, expected);
}

static void test_has_header(void) {
  g_assert_true(pst_sendmail_text_has_header("Subject: x", 10));
  g_assert_true(pst_sendmail_text_has_header("X-A:", 4));
  g_assert_false(pst_sendmail_text_has_header("hello world", 11));
  g_assert_false(pst_sendmail_text_has_header(": x", 3));
  g_assert_false(pst_sendmail_text_has_header("Subject x: y", 12));
  g_assert_false(pst_sendmail_text_has_header("Subject", 7));
  g_assert_false(pst_sendmail_text_has_header("", 0));
  g_assert_false(pst_sendmail_text_has_header("Sub\xc3\xa9: x", 9));
}

/* --- Generated inputs --------------------------------------------------- */

static const char alphabet[] = "abcXYZ019.:-@<> \t\t  \r\r\n\0\x80\xff";

static GString *random_input(GRand *rand, gboolean valid) {
  GString *input = g_string_new(NULL);
  guint lines = (guint)g_rand_int_range(rand, 0, 12);
  for (guint i = 0; i < lines; i++) {
    guint length = (guint)g_rand_int_range(rand, 0, valid ? 999 : 3000);
    for (guint j = 0; j < length; j++) {
      /* The valid text draws from all but CR, LF and NUL. */
      gint32 top = valid ? 20 : (gint32)sizeof alphabet - 1;
      char c = alphabet[g_rand_int_range(rand, 0, top)];
      g_string_append_c(input, c);
    }
    g_string_append(input, g_rand_boolean(rand) ? "\r\n" : "\n");
  }
  return input;
}

/* The octets that are kept, in order: all but CR, LF, NUL, space, tab. */
static GString *kept(const char *text, gsize length) {
  GString *out = g_string_new(NULL);
  for (gsize i = 0; i < length; i++)
    if (text[i] != '\0' && strchr("\r\n \t", text[i]) == NULL)
      g_string_append_c(out, text[i]);
  return out;
}

static void check_output(const GString *input, const GString *out) {
  gsize line = 0;
  for (gsize i = 0; i < out->len; i++) {
    g_assert_cmpint(out->str[i], !=, '\0');
    if (out->str[i] == '\r') {
      g_assert_cmpuint(i + 1, <, out->len);
      g_assert_cmpint(out->str[i + 1], ==, '\n');
      g_assert_cmpuint(line, <=, PST_SENDMAIL_LINE_MAX);
      line = 0;
      i++;
      continue;
    }
    g_assert_cmpint(out->str[i], !=, '\n');
    line++;
  }
  g_assert_cmpuint(line, ==, 0); /* the last line ends in CRLF too */
  g_autoptr(GString) before = kept(input->str, input->len);
  g_autoptr(GString) after = kept(out->str, out->len);
  g_assert_true(g_string_equal(before, after));
}

static void test_generated(void) {
  g_autoptr(GRand) rand = g_rand_new_with_seed(20261207);
  for (guint round = 0; round < 2000; round++) {
    g_autoptr(GString) input = random_input(rand, FALSE);
    g_autoptr(GString) out =
        pst_sendmail_text_from_input(input->str, input->len);
    check_output(input, out);
  }
}

/* Text SMTP carries already (CRLF or LF lines of at most 998 octets, no
 * CR or NUL in them) comes out the same, with CRLF line ends. */
static void test_generated_valid_unchanged(void) {
  g_autoptr(GRand) rand = g_rand_new_with_seed(7);
  for (guint round = 0; round < 500; round++) {
    g_autoptr(GString) input = random_input(rand, TRUE);
    g_autoptr(GString) out =
        pst_sendmail_text_from_input(input->str, input->len);
    g_autoptr(GString) crlf = g_string_new(NULL);
    for (gsize i = 0; i < input->len; i++) {
      if (input->str[i] == '\n' && (i == 0 || input->str[i - 1] != '\r'))
        g_string_append_c(crlf, '\r');
      g_string_append_c(crlf, input->str[i]);
    }
    g_assert_true(g_string_equal(out, crlf));
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(text_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/sendmail/text/%s", text_cases[i].name);
    g_test_add_data_func(path, &text_cases[i], test_text_case);
  }
  g_test_add_func("/sendmail/text/long-word", test_long_word);
  g_test_add_func("/sendmail/text/long-field-folded", test_long_field_folded);
  g_test_add_func("/sendmail/text/has-header", test_has_header);
  g_test_add_func("/sendmail/text/generated", test_generated);
  g_test_add_func("/sendmail/text/generated-valid-unchanged",
                  test_generated_valid_unchanged);
  return g_test_run();
}
