/* fuzz-dkim-signature.c - fuzzes the DKIM-Signature parser and the
 * tag-list parser under it (plugins/dkim/dkim-tags.c): every signature
 * of every message we verify is network text.
 *
 * Input: a DKIM-Signature value (NUL octets included).  Beyond "no crash,
 * no leak" it checks the contract: a parsed signature has d=, s=, an h=
 * naming From, a known a=, decoded b= and bh=, and b='s value lies inside
 * the text; with that value removed (as the verifier hashes it) the text
 * is still a tag-list whose b= is empty.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/dkim/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gboolean find_b(const DkimTag *tag, gpointer data, GError **error) {
  (void)error;
  if (dkim_tag_is(tag, "b"))
    *(gsize *)data = tag->value_length + 1;
  return TRUE;
}

static void check_signature(const char *text, gsize size,
                            const DkimSignature *sig) {
  g_assert_nonnull(sig->domain);
  g_assert_nonnull(sig->selector);
  g_assert_true(sig->algorithm_known);
  g_assert_true(sig->signature_length > 0 && sig->body_hash_length > 0);
  gboolean from = FALSE;
  for (guint i = 0; sig->headers[i] != NULL; i++)
    from |= g_ascii_strcasecmp(sig->headers[i], "from") == 0;
  g_assert_true(from);
  g_assert_cmpuint(sig->b_start, <=, sig->b_end);
  g_assert_cmpuint(sig->b_end, <=, size);
  g_autoptr(GString) blank = g_string_new_len(text, (gssize)sig->b_start);
  g_string_append_len(blank, text + sig->b_end,
                      (gssize)(size - sig->b_end));
  gsize b = 0;
  g_assert_true(dkim_tags_parse(blank->str, blank->len, find_b, &b, NULL));
  g_assert_cmpuint(b, ==, 1); /* found, and empty */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  DkimSignature sig;
  g_autoptr(GError) error = NULL;
  if (dkim_signature_parse(text, size, &sig, &error))
    check_signature(text, size, &sig);
  else
    g_assert_nonnull(error);
  dkim_signature_clear(&sig);
  return 0;
}
