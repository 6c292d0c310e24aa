/* test-smtp-header.c - the header field parser, table by table.
 *
 * Each row (/smtp/header/...) gives a message, the fields expected
 * ("name" and "value" pairs) and the body that must follow the header, so
 * header_length is checked without counting octets by hand.  The rows
 * cover folding (including obs-fold lines of white space only), headers
 * that end without a blank line, mbox "From " lines, obs-optional white
 * space before the colon, LF-only lines, NULs and max_fields.
 */
#include <string.h>

#include "smtp/message-date.h"
#include "smtp/smtp-parse.h"

typedef struct {
  const char *name;
  const char *input;
  gssize input_length; /* -1: strlen */
  guint max_fields;
  const char *fields[8]; /* name, value, name, value, ..., NULL */
  const char *body;      /* what follows the header */
} HeaderCase;

/* clang-format off */
static const HeaderCase header_cases[] = {
    {"simple", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n", -1, 50,
     {"From", "a@b", "To", "c@d"}, "body\r\n"},
    {"no-space-after-colon", "Subject:x\r\n\r\n", -1, 50, {"Subject", "x"},
     ""},
    {"two-spaces", "Subject:  x\r\n\r\n", -1, 50, {"Subject", " x"}, ""},
    {"tab-after-colon", "Subject:\tx\r\n\r\n", -1, 50, {"Subject", "\tx"}, ""},
    {"empty-value", "Subject:\r\n\r\nb", -1, 50, {"Subject", ""}, "b"},
    {"colon-in-value", "Subject: a: b\r\n\r\n", -1, 50, {"Subject", "a: b"},
     ""},
    {"folded", "Subject: a\r\n b\r\n\tc\r\nTo: d\r\n\r\nbody", -1, 50,
     {"Subject", "a\r\n b\r\n\tc", "To", "d"}, "body"},
    {"obs-fold-blank-line", "Subject: a\r\n \r\n b\r\n\r\nbody", -1, 50,
     {"Subject", "a\r\n \r\n b"}, "body"},
    {"obs-fold-tab-line", "Subject: a\r\n\t\r\n\r\nbody", -1, 50,
     {"Subject", "a\r\n\t"}, "body"},
    {"fold-at-end", "Subject: a\r\n b", -1, 50, {"Subject", "a\r\n b"}, ""},
    {"no-blank-line", "Subject: a\r\nthis is the body\r\n", -1, 50,
     {"Subject", "a"}, "this is the body\r\n"},
    {"no-body", "Subject: a\r\nTo: b", -1, 50, {"Subject", "a", "To", "b"}, ""},
    {"no-body-crlf", "Subject: a\r\n", -1, 50, {"Subject", "a"}, ""},
    {"empty", "", -1, 50, {NULL}, ""},
    {"blank-first", "\r\nbody", -1, 50, {NULL}, "body"},
    {"blank-lf-first", "\nbody", -1, 50, {NULL}, "body"},
    {"mbox-from", "From a@b Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nb",
     -1, 50, {NULL},
     "From a@b Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n\r\nb"},
    {"mbox-from-later", "Subject: x\r\nFrom a@b Mon Jan  1 00:00:00 2024\r\n",
     -1, 50, {"Subject", "x"}, "From a@b Mon Jan  1 00:00:00 2024\r\n"},
    {"from-space-colon", "From : a@b\r\n\r\n", -1, 50, {"From", "a@b"}, ""},
    {"from-tab-colon", "From\t: a@b\r\n\r\n", -1, 50, {"From", "a@b"}, ""},
    {"continuation-first", " x\r\nSubject: y\r\n", -1, 50, {NULL},
     " x\r\nSubject: y\r\n"},
    {"no-colon", "Subject\r\n\r\n", -1, 50, {NULL}, "Subject\r\n\r\n"},
    {"empty-name", ": x\r\n\r\n", -1, 50, {NULL}, ": x\r\n\r\n"},
    {"name-with-space", "Sub ject: x\r\n", -1, 50, {NULL}, "Sub ject: x\r\n"},
    {"name-8bit", "S\xc3\xbc" "bject: x\r\n", -1, 50, {NULL},
     "S\xc3\xbc" "bject: x\r\n"},
    {"name-control", "Sub\x01ject: x\r\n", -1, 50, {NULL},
     "Sub\x01ject: x\r\n"},
    {"value-8bit", "Subject: gr\xc3\xbc\xc3\x9f" "e\r\n\r\n", -1, 50,
     {"Subject", "gr\xc3\xbc\xc3\x9f" "e"}, ""},
    {"lf-lines", "Subject: a\nTo: b\n c\n\nbody", -1, 50,
     {"Subject", "a", "To", "b\n c"}, "body"},
    {"bare-cr-kept", "Subject: a\rTo: b\r\n\r\n", -1, 50,
     {"Subject", "a\rTo: b"}, ""},
    {"lone-cr-at-end", "Subject: a\r\n\r", -1, 50, {"Subject", "a"}, "\r"},
    {"nul-in-first", "Subject: a\0b\r\nTo: c\r\n", 21, 50, {NULL}, NULL},
    {"nul-in-second", "Subject: a\r\nTo: b\0\r\n\r\n", 22, 50,
     {"Subject", "a"}, NULL},
    {"nul-in-continuation", "Subject: a\r\n \0\r\n\r\n", 18, 50,
     {"Subject", "a"}, NULL},
    {"max-fields", "A: 1\r\nB: 2\r\nC: 3\r\n\r\nbody", -1, 2,
     {"A", "1", "B", "2"}, "body"},
    {"max-fields-continuation", "A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\nbody", -1, 1,
     {"A", "1"}, "body"},
    {"max-fields-zero", "A: 1\r\n\r\nbody", -1, 0, {NULL}, "body"},
    {"dkim-like", "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n def\r\n"
     "\r\n", -1, 50,
     {"DKIM-Signature", "v=1; a=rsa-sha256;\r\n\tb=abc\r\n def"}, ""},
};
/* clang-format on */

static void test_header_case(gconstpointer data) {
  const HeaderCase *c = data;
  gsize length =
      c->input_length < 0 ? strlen(c->input) : (gsize)c->input_length;
  g_autoptr(GPtrArray) fields =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_header_field_free);
  gsize header_length = G_MAXSIZE;
  pst_header_parse((const guint8 *)c->input, length, c->max_fields, fields,
                   &header_length);
  guint expected = 0;
  while (expected < G_N_ELEMENTS(c->fields) && c->fields[expected] != NULL)
    expected++;
  g_assert_cmpuint(fields->len, ==, expected / 2);
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = g_ptr_array_index(fields, i);
    g_assert_cmpstr(field->name, ==, c->fields[2 * i]);
    g_assert_cmpstr(field->value, ==, c->fields[2 * i + 1]);
    g_assert_true(pst_header_name_is_valid(field->name));
  }
  /* NUL rows: the header ends before the line with the NUL. */
  gsize body_length = 0;
  if (c->body != NULL) {
    body_length = strlen(c->body);
  } else {
    const char *line = memchr(c->input, '\0', length);
    while (line > c->input && line[-1] != '\n')
      line--;
    body_length = length - (gsize)(line - c->input);
  }
  g_assert_cmpuint(header_length, ==, length - body_length);
  if (c->body != NULL)
    g_assert_cmpmem(c->input + header_length, length - header_length, c->body,
                    strlen(c->body));
}

static void test_header_name(void) {
  g_autofree char *name76 = g_strnfill(76, 'X');
  g_autofree char *name77 = g_strnfill(77, 'X');
  g_assert_true(pst_header_name_is_valid("Subject"));
  g_assert_true(pst_header_name_is_valid("X-!#~"));
  g_assert_true(pst_header_name_is_valid(name76));
  g_assert_false(pst_header_name_is_valid(name77));
  g_assert_false(pst_header_name_is_valid(""));
  g_assert_false(pst_header_name_is_valid("A B"));
  g_assert_false(pst_header_name_is_valid("A:B"));
  g_assert_false(pst_header_name_is_valid("A\x7f"));
  g_assert_false(pst_header_name_is_valid("\xc3\xa9"));

  /* The parser applies the same limit: a 77-octet name ends the header. */
  g_autofree char *ok = g_strdup_printf("%s: v\r\n\r\n", name76);
  g_autofree char *long_name = g_strdup_printf("%s: v\r\n\r\n", name77);
  g_autoptr(GPtrArray) fields =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_header_field_free);
  gsize header_length = 0;
  pst_header_parse((const guint8 *)ok, strlen(ok), 10, fields, &header_length);
  g_assert_cmpuint(fields->len, ==, 1);
  g_assert_cmpuint(header_length, ==, strlen(ok));
  g_ptr_array_set_size(fields, 0);
  pst_header_parse((const guint8 *)long_name, strlen(long_name), 10, fields,
                   &header_length);
  g_assert_cmpuint(fields->len, ==, 0);
  g_assert_cmpuint(header_length, ==, 0);
}

/* The RFC 5322 date the daemon writes: English names in any locale, the
 * zone's offset (TZ is set by main() before GLib reads it). */
static void test_message_date(void) {
  /* 2026-12-06 09:03:55 UTC, a Sunday; 1970-01-01 a Thursday. */
  g_autofree char *date =
      pst_message_date_format(G_GINT64_CONSTANT(1796547835) * G_USEC_PER_SEC);
  g_assert_cmpstr(date, ==, "Sun, 6 Dec 2026 11:03:55 +0200");
  g_autofree char *epoch = pst_message_date_format(0);
  g_assert_cmpstr(epoch, ==, "Thu, 1 Jan 1970 02:00:00 +0200");
}

int main(int argc, char **argv) {
  g_setenv("TZ", "EET-2", TRUE);
  g_setenv("LC_ALL", "fr_FR.UTF-8", TRUE);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/smtp/message-date", test_message_date);
  for (gsize i = 0; i < G_N_ELEMENTS(header_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/smtp/header/%s", header_cases[i].name);
    g_test_add_data_func(path, &header_cases[i], test_header_case);
  }
  g_test_add_func("/smtp/header/name", test_header_name);
  return g_test_run();
}
