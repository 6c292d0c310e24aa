/* fuzz-dkim-canon.c - fuzzes the DKIM canonicalizer our signer hashes
 * (plugins/dkim/dkim-canon.c): every octet of a message we sign goes
 * through it.
 *
 * Input: octet 0 picks the canonicalization (bit 0) and octet 1 a cut
 * point; the rest is a body, and also a header field.  Beyond "no crash,
 * no leak" it checks the contract: the output does not depend on where
 * the body is cut (whole, cut in two, one octet at a time); it is CRLF
 * lines only, with no empty line at the end (simple: an empty body is one
 * CRLF); relaxed lines hold no TAB, no two spaces and no space at their
 * end; canonicalizing the output again changes nothing; a
 * relaxed header field has no line break and a lower-case name.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/dkim/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void append(const void *bytes, gsize length, gpointer out) {
  g_byte_array_append(out, bytes, (guint)length);
}

/* The canonical body of `data`, fed in pieces of `step` octets after a
 * first piece of `first` (0: all at once). */
static GByteArray *canon_body(DkimCanon canon, const guint8 *data, gsize size,
                              gsize first, gsize step) {
  GByteArray *out = g_byte_array_new();
  DkimBodyCanon body;
  dkim_body_canon_init(&body, canon, append, out);
  gsize at = MIN(first, size);
  dkim_body_canon_feed(&body, data, at);
  while (at < size) {
    gsize n = step == 0 ? size - at : MIN(step, size - at);
    dkim_body_canon_feed(&body, data + at, n);
    at += n;
  }
  dkim_body_canon_finish(&body);
  return out;
}

static void check_lines(DkimCanon canon, const GByteArray *out) {
  const guint8 *p = out->data;
  gsize n = out->len;
  if (canon == DKIM_CANON_SIMPLE_)
    g_assert_cmpuint(n, >=, 2);
  if (n == 0)
    return;
  g_assert_true(n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n');
  if (!(canon == DKIM_CANON_SIMPLE_ && n == 2))
    g_assert_false(n >= 4 && memcmp(p + n - 4, "\r\n\r\n", 4) == 0);
  for (gsize i = 0; i < n; i++) {
    if (p[i] == '\r')
      g_assert_true(i + 1 < n && p[i + 1] == '\n');
    if (p[i] == '\n')
      g_assert_true(i > 0 && p[i - 1] == '\r');
    if (canon == DKIM_CANON_RELAXED_) {
      g_assert_cmpint(p[i], !=, '\t');
      if (p[i] == ' ')
        g_assert_true(i + 1 < n && p[i + 1] != ' ' && p[i + 1] != '\r');
    }
  }
}

static void check_header(const uint8_t *data, size_t size) {
  g_autoptr(GString) out = g_string_new(NULL);
  dkim_canon_header(DKIM_CANON_RELAXED_, (const char *)data, size, out);
  const char *colon = memchr(out->str, ':', out->len);
  g_assert_nonnull(colon);
  for (const char *p = out->str; p < colon; p++)
    g_assert_false(g_ascii_isupper(*p) || *p == ' ' || *p == '\t');
  g_assert_null(memchr(out->str, '\r', out->len));
  g_assert_null(memchr(out->str, '\n', out->len));
  g_autoptr(GString) simple = g_string_new(NULL);
  dkim_canon_header(DKIM_CANON_SIMPLE_, (const char *)data, size, simple);
  g_assert_cmpuint(simple->len, ==, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  DkimCanon canon = data[0] & 1 ? DKIM_CANON_RELAXED_ : DKIM_CANON_SIMPLE_;
  gsize cut = data[1];
  data += 2;
  size -= 2;
  g_autoptr(GByteArray) whole = canon_body(canon, data, size, 0, 0);
  g_autoptr(GByteArray) split = canon_body(canon, data, size, cut, 0);
  g_autoptr(GByteArray) octets = canon_body(canon, data, size, 0, 1);
  g_assert_cmpmem(whole->data, whole->len, split->data, split->len);
  g_assert_cmpmem(whole->data, whole->len, octets->data, octets->len);
  check_lines(canon, whole);
  g_autoptr(GByteArray) again =
      canon_body(canon, whole->data, whole->len, 0, 0);
  g_assert_cmpmem(whole->data, whole->len, again->data, again->len);
  check_header(data, size);
  return 0;
}
