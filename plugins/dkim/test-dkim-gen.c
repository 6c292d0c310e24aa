/* test-dkim-gen.c - generated test messages and keys for the DKIM
 * plugin's differential tests (test-dkim-signer.c, test-dkim-verifier.c):
 * folded, repeated and differently spelled header fields, 8-bit octets,
 * white space runs and trailing white space, empty bodies, trailing empty
 * lines, long lines; all from the caller's GRand, so a seed repeats them;
 * and the libopendkim signature of such a message (the oracle's).
 */
#include <string.h>

#include "dkim.h"
#include "test-dkim-gen.h"


void test_message_clear(TestMessage *message) {
  g_ptr_array_unref(message->fields);
  g_byte_array_unref(message->body);
}

/* --- Generated messages ----------------------------------------------------
 */

static void append_word(GString *out, GRand *rand) {
  static const char *const words[] = {"hello",
                                      "Gr\xc3\xbc\xc3\x9f"
                                      "e",
                                      "\xff\xfe",
                                      "a",
                                      "x-y",
                                      "=?utf-8?q?z?=",
                                      "<id@example.org>",
                                      "\"quoted\"",
                                      ";",
                                      "\x80\x81"};
  g_string_append(out, words[g_rand_int_range(rand, 0, G_N_ELEMENTS(words))]);
}

/* White space between words: one space mostly, sometimes runs and tabs. */
static void append_space(GString *out, GRand *rand) {
  static const char *const spaces[] = {" ",  " ",    " ",   "  ",
                                       "\t", " \t ", "\t\t"};
  g_string_append(out, spaces[g_rand_int_range(rand, 0, G_N_ELEMENTS(spaces))]);
}

static char *generate_field(GRand *rand, const char *name) {
  GString *field = g_string_new(name);
  g_string_append(field, g_rand_boolean(rand) ? ": " : ":");
  if (g_rand_int_range(rand, 0, 6) == 0)
    append_space(field, rand);
  guint words = (guint)g_rand_int_range(rand, 1, 12);
  if (g_rand_int_range(rand, 0, 10) == 0)
    words = 150; /* a long field */
  for (guint i = 0; i < words; i++) {
    append_word(field, rand);
    if (i + 1 == words)
      break;
    if (g_rand_int_range(rand, 0, 5) == 0)
      g_string_append(field, g_rand_boolean(rand) ? "\r\n\t" : "\r\n ");
    else
      append_space(field, rand);
  }
  if (g_rand_int_range(rand, 0, 5) == 0)
    append_space(field, rand); /* trailing white space */
  return g_string_free(field, FALSE);
}

GPtrArray *generate_fields(GRand *rand) {
  static const char *const names[] = {
      "To",       "TO",         "Cc",           "Subject",      "subject",
      "Date",     "Message-ID", "MIME-Version", "Content-Type", "Received",
      "X-Mailer", "Reply-To",   "References",   "List-Id",      "X-Other"};
  GPtrArray *fields = g_ptr_array_new_with_free_func(g_free);
  guint count = (guint)g_rand_int_range(rand, 1, 14);
  guint from = (guint)g_rand_int_range(rand, 0, (gint32)count);
  for (guint i = 0; i < count; i++) {
    const char *name =
        i == from ? (g_rand_boolean(rand) ? "From" : "FROM")
                  : names[g_rand_int_range(rand, 0, G_N_ELEMENTS(names))];
    g_ptr_array_add(fields, generate_field(rand, name));
  }
  return fields;
}

static void generate_line(GString *line, GRand *rand) {
  switch (g_rand_int_range(rand, 0, 8)) {
  case 0:
    return; /* empty */
  case 1:
    append_space(line, rand); /* white space only */
    return;
  case 2:
    for (guint i = 0; i < 400; i++) {
      append_word(line, rand); /* long */
      append_space(line, rand);
    }
    return;
  default:
    if (g_rand_boolean(rand))
      append_space(line, rand); /* leading white space */
    for (guint i = 0, n = (guint)g_rand_int_range(rand, 1, 10); i < n; i++) {
      append_word(line, rand);
      if (i + 1 < n || g_rand_int_range(rand, 0, 4) == 0)
        append_space(line, rand);
    }
  }
}

/* CRLF lines, as the spool holds them: every body ends with CRLF or is
 * empty; some end with empty or white-space lines. */
GByteArray *generate_body(GRand *rand) {
  GString *body = g_string_new(NULL);
  guint lines = (guint)g_rand_int_range(rand, 0, 40);
  for (guint i = 0; i < lines; i++) {
    generate_line(body, rand);
    g_string_append(body, "\r\n");
  }
  for (guint i = 0, n = (guint)g_rand_int_range(rand, 0, 4); i < n; i++)
    g_string_append(body, g_rand_boolean(rand) ? "\r\n" : " \t\r\n");
  gsize length = body->len;
  return g_byte_array_new_take((guint8 *)g_string_free(body, FALSE), length);
}

/* --- Keys ---------------------------------------------------------------- */

DkimKey *test_key(DkimKeyType type) {
  g_autoptr(GError) error = NULL;
  char *pem = dkim_key_generate(type, 2048, &error);
  g_assert_no_error(error);
  DkimKey *key = g_new0(DkimKey, 1);
  key->selector = g_strdup(type == DKIM_KEY_RSA ? "sel-rsa" : "sel-ed");
  key->path = g_strdup("generated");
  key->pem = (guint8 *)pem;
  key->pem_length = strlen(pem);
  g_assert_true(dkim_key_describe(key->pem, key->pem_length, &key->type,
                                  &key->bits, &key->public_key, &key->pkey,
                                  &error));
  if (key->type == DKIM_KEY_RSA) /* as dkim_key_load() makes it */
    key->rsa_sign = dkim_rsa_sign_context_new(key->pkey);
  return key;
}

/* Feeds `body` to `feed` in random pieces (some a single octet). */
void feed_cut(const GByteArray *body, GRand *rand,
                     void (*feed)(gpointer, const guint8 *, gsize),
                     gpointer target) {
  gsize at = 0;
  gsize largest = g_rand_int_range(rand, 0, 3) == 0 ? 2 : 700;
  while (at < body->len) {
    gsize n = (gsize)g_rand_int_range(rand, 1, (gint32)largest);
    n = MIN(n, body->len - at); /* MIN() evaluates twice */
    feed(target, body->data + at, n);
    at += n;
  }
}


TestMessage test_message_parse(const guint8 *data, gsize length) {
  TestMessage message = {g_ptr_array_new_with_free_func(g_free), NULL};
  gsize i = 0;
  while (i < length) {
    if (length - i >= 2 && data[i] == '\r' && data[i + 1] == '\n') {
      i += 2; /* the empty line */
      break;
    }
    gsize end = i;
    for (;;) {
      const guint8 *lf = memchr(data + end, '\n', length - end);
      end = lf != NULL ? (gsize)(lf - data) + 1 : length;
      if (end >= length || (data[end] != ' ' && data[end] != '\t'))
        break;
    }
    gsize stop = end;
    if (stop > i && data[stop - 1] == '\n')
      stop--;
    if (stop > i && data[stop - 1] == '\r')
      stop--;
    g_ptr_array_add(message.fields, g_strndup((const char *)data + i, stop - i));
    i = end;
  }
  message.body = g_byte_array_new();
  g_byte_array_append(message.body, data + i, (guint)(length - i));
  return message;
}

/* --- Signing with libopendkim (the oracle) ------------------------------ */

static void test_feed_opendkim(gpointer dkim, const guint8 *data,
                               gsize length) {
  g_assert_cmpint(dkim_body(dkim, (u_char *)data, length), ==, DKIM_STAT_OK);
}

char *test_opendkim_sign(DKIM *dkim, const TestMessage *message, GRand *rand) {
  for (guint i = 0; i < message->fields->len; i++) {
    const char *field = message->fields->pdata[i];
    g_assert_cmpint(dkim_header(dkim, (u_char *)field, strlen(field)), ==,
                    DKIM_STAT_OK);
  }
  g_assert_cmpint(dkim_eoh(dkim), ==, DKIM_STAT_OK);
  feed_cut(message->body, rand, test_feed_opendkim, dkim);
  g_assert_cmpint(dkim_eom(dkim, NULL), ==, DKIM_STAT_OK);
  u_char *text = NULL;
  size_t length = 0;
  g_assert_cmpint(
      dkim_getsighdr_d(dkim, strlen("DKIM-Signature: "), &text, &length), ==,
      DKIM_STAT_OK);
  char *value = g_strndup((const char *)text, length);
  dkim_free(dkim);
  return value;
}
