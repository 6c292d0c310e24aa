/* dkim-signer.c - our DKIM signer: RSA-SHA256 (RFC 6376) and
 * Ed25519-SHA256 (RFC 8463) with keys parsed once, at load.
 *
 * A DkimSigning collects a message's header fields and hashes its body as
 * it streams by (one canonicalization, shared by every key: dual signing
 * hashes the body once).  dkim_signing_sign() then makes one signature:
 *
 *   h=   every field whose name is in `headers`, in message order, with
 *        the field's own spelling, then every `oversign` name once more
 *        (that instance is absent, so adding one breaks the signature);
 *   hash the fields h= names, each name taking the last instance not yet
 *        used (RFC 6376 5.4.2), then the DKIM-Signature field itself with
 *        an empty b=, laid out exactly as it will be sent;
 *   b=   RSA: PKCS#1 v1.5 over SHA-256 of that; Ed25519: the signature of
 *        the SHA-256 digest itself (RFC 8463 section 3).
 *
 * The tags, their order and the folding are libopendkim 2.11's, so that
 * test-dkim-signer.c can ask for byte-identical signatures.  The EVP_PKEY
 * and an RSA key's signing context (made at load, dkim-key.c) are only
 * read here, so threads share them; every operation works on a context of
 * its own (RSA: a duplicate of the prepared one, which saves OpenSSL 3's
 * algorithm lookup per signature).  Runs on the plugin's workers and the
 * core's delivery worker.
 */
#include <string.h>

#include <openssl/evp.h>

#include "dkim.h"

#define DKIM_SIGNATURE_FIELD "DKIM-Signature"

struct _DkimSigning {
  GPtrArray *fields; /* owned, of char*: "Name: value" */
  DkimCanon body_canon;
  DkimBodyCanon body;
  const EVP_MD *sha256;  /* borrowed: the configuration's */
  EVP_MD_CTX *body_hash; /* owned: SHA-256 of the canonical body */
  gboolean body_done;
  guint8 body_digest[32];
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY_CTX, EVP_PKEY_CTX_free)

static void dkim_signing_hash_body(const void *bytes, gsize length,
                                   gpointer data) {
  EVP_DigestUpdate(data, bytes, length);
}

DkimSigning *dkim_signing_new(DkimCanon body_canon, const EVP_MD *sha256) {
  DkimSigning *signing = g_new0(DkimSigning, 1);
  signing->sha256 = sha256 != NULL ? sha256 : EVP_sha256();
  signing->fields = g_ptr_array_new_with_free_func(g_free);
  signing->body_canon = body_canon;
  signing->body_hash = EVP_MD_CTX_new();
  g_assert(signing->body_hash != NULL &&
           EVP_DigestInit_ex(signing->body_hash, signing->sha256, NULL) == 1);
  dkim_body_canon_init(&signing->body, body_canon, dkim_signing_hash_body,
                       signing->body_hash);
  return signing;
}

void dkim_signing_free(DkimSigning *signing) {
  if (signing == NULL)
    return;
  g_ptr_array_unref(signing->fields);
  EVP_MD_CTX_free(signing->body_hash);
  g_free(signing);
}

void dkim_signing_add_header(DkimSigning *signing, const char *field,
                             gsize length) {
  g_ptr_array_add(signing->fields, g_strndup(field, length));
}

void dkim_signing_add_body(DkimSigning *signing, const guint8 *data,
                           gsize length) {
  g_assert(!signing->body_done);
  dkim_body_canon_feed(&signing->body, data, length);
}

/* The octets of the line break that ends just before `end`. */
static gsize dkim_line_break_before(const guint8 *data, gsize end) {
  if (end == 0 || data[end - 1] != '\n')
    return 0;
  return end >= 2 && data[end - 2] == '\r' ? 2 : 1;
}

void dkim_signing_add_message(DkimSigning *signing, const guint8 *data,
                              gsize length) {
  /* A field runs from a line start to the next line that does not begin
   * with white space; the header ends at the first empty line. */
  gsize start = 0, i = 0;
  gboolean in_field = FALSE;
  while (i < length) {
    const guint8 *lf = memchr(data + i, '\n', length - i);
    gsize next = lf != NULL ? (gsize)(lf - data) + 1 : length;
    gboolean continued = in_field && (data[i] == ' ' || data[i] == '\t');
    if (in_field && !continued) {
      gsize end = i - dkim_line_break_before(data, i);
      dkim_signing_add_header(signing, (const char *)data + start, end - start);
      in_field = FALSE;
    }
    gboolean empty = (next - i == 1 && data[i] == '\n') ||
                     (next - i == 2 && data[i] == '\r' && data[i + 1] == '\n');
    if (!continued && empty) {
      i = next;
      break;
    }
    if (!continued) {
      start = i;
      in_field = TRUE;
    }
    i = next;
  }
  if (in_field) {
    gsize end = length - dkim_line_break_before(data, length);
    dkim_signing_add_header(signing, (const char *)data + start, end - start);
  }
  dkim_signing_add_body(signing, data + i, length - i);
}

/* --- One signature ----------------------------------------------------------
 */

static const guint8 *dkim_signing_body_digest(DkimSigning *signing) {
  if (!signing->body_done) {
    dkim_body_canon_finish(&signing->body);
    unsigned int length = sizeof signing->body_digest;
    EVP_DigestFinal_ex(signing->body_hash, signing->body_digest, &length);
    signing->body_done = TRUE;
  }
  return signing->body_digest;
}

static gboolean dkim_name_in(const char *field, gsize length,
                             const char *const *names) {
  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    if (g_ascii_strncasecmp(field, names[i], length) == 0 &&
        names[i][length] == '\0')
      return TRUE;
  return FALSE;
}

/* h=: the signed fields' names in message order, then the over-signed. */
static char *dkim_signing_header_list(DkimSigning *signing,
                                      const DkimSignSpec *spec,
                                      GPtrArray *signed_fields) {
  GString *list = g_string_new("h=");
  for (guint i = 0; i < signing->fields->len; i++) {
    const char *field = signing->fields->pdata[i];
    gsize length = dkim_field_name_length(field);
    /* An over-signed name is signed where present, or the extra instance
     * h= names would pick up the present one (libopendkim signs only
     * `headers` there: its signature then fails). */
    if (!dkim_name_in(field, length, spec->headers) &&
        !dkim_name_in(field, length, spec->oversign))
      continue;
    if (signed_fields->len > 0)
      g_string_append_c(list, ':');
    g_string_append_len(list, field, (gssize)length);
    g_ptr_array_add(signed_fields, (gpointer)field);
  }
  for (guint i = 0; spec->oversign != NULL && spec->oversign[i] != NULL; i++)
    if (spec->oversign[i][0] != '\0')
      g_string_append_printf(list, ":%s", spec->oversign[i]);
  g_string_append_c(list, ';');
  return g_string_free(list, FALSE);
}

/* The canonical fields in hashing order: for each name of h= in turn, the
 * last instance not used yet (RFC 6376 section 5.4.2).  `chosen` is in
 * message order and h= names exactly its fields, so each name's instances
 * are taken from the end of its own list: linear in the field count (an
 * authenticated client may send many thousands of To: fields). */
static void dkim_signing_hash_fields(EVP_MD_CTX *hash, GPtrArray *chosen,
                                     DkimCanon canon) {
  g_autoptr(GHashTable) by_name = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  for (guint i = 0; i < chosen->len; i++) {
    const char *field = chosen->pdata[i];
    char *name = g_ascii_strdown(field, (gssize)dkim_field_name_length(field));
    GPtrArray *same = g_hash_table_lookup(by_name, name);
    if (same == NULL) {
      same = g_ptr_array_new();
      g_hash_table_insert(by_name, g_strdup(name), same);
    }
    g_ptr_array_add(same, (gpointer)field);
    g_free(name);
  }
  g_autoptr(GString) text = g_string_new(NULL);
  for (guint i = 0; i < chosen->len; i++) {
    const char *field = chosen->pdata[i];
    g_autofree char *name =
        g_ascii_strdown(field, (gssize)dkim_field_name_length(field));
    GPtrArray *same = g_hash_table_lookup(by_name, name);
    const char *last = g_ptr_array_steal_index(same, same->len - 1);
    g_string_truncate(text, 0);
    dkim_canon_header(canon, last, strlen(last), text);
    g_string_append(text, "\r\n");
    EVP_DigestUpdate(hash, text->str, text->len);
  }
}

/* The tags of the signature, b= holding `b` (empty: the hashed form). */
static GPtrArray *dkim_signing_tags(const DkimSignSpec *spec, DkimCanon body,
                                    const guint8 *body_digest,
                                    const char *header_list) {
  GPtrArray *tags = g_ptr_array_new_with_free_func(g_free);
  const char *canons[] = {"simple", "relaxed"};
  g_ptr_array_add(tags, g_strdup("v=1;"));
  g_ptr_array_add(tags, g_strdup(spec->key->type == DKIM_KEY_ED25519
                                     ? "a=ed25519-sha256;"
                                     : "a=rsa-sha256;"));
  g_ptr_array_add(tags, g_strdup_printf("c=%s/%s;", canons[spec->header_canon],
                                        canons[body]));
  g_ptr_array_add(tags, g_strdup_printf("d=%s;", spec->domain));
  g_ptr_array_add(tags, g_strdup_printf("s=%s;", spec->key->selector));
  g_ptr_array_add(tags,
                  g_strdup_printf("t=%" G_GUINT64_FORMAT ";", spec->timestamp));
  if (spec->expire_seconds > 0)
    g_ptr_array_add(tags,
                    g_strdup_printf("x=%" G_GUINT64_FORMAT ";",
                                    spec->timestamp + spec->expire_seconds));
  g_autofree char *bh = g_base64_encode(body_digest, 32);
  g_ptr_array_add(tags, g_strdup_printf("bh=%s;", bh));
  g_ptr_array_add(tags, g_strdup(header_list));
  return tags;
}

static char *dkim_signing_fold(GPtrArray *tags, const char *b) {
  g_ptr_array_add(tags, g_strconcat("b=", b, NULL));
  g_ptr_array_add(tags, NULL);
  char *value = dkim_signature_fold((const char *const *)tags->pdata,
                                    strlen(DKIM_SIGNATURE_FIELD ": "));
  g_ptr_array_set_size(tags, tags->len - 2);
  return value;
}

/* b= over the header hash. */
static char *dkim_signing_sign_digest(const DkimKey *key,
                                      const guint8 digest[32], GError **error) {
  guint8 signature[1024];
  size_t length = sizeof signature;
  gboolean ok;
  if (key->type == DKIM_KEY_ED25519) {
    g_autoptr(EVP_MD_CTX) context = EVP_MD_CTX_new();
    ok = context != NULL &&
         EVP_DigestSignInit(context, NULL, NULL, NULL, key->pkey) == 1 &&
         EVP_DigestSign(context, signature, &length, digest, 32) == 1;
  } else {
    /* an operation changes its context: each signature has a copy */
    g_autoptr(EVP_PKEY_CTX) context =
        key->rsa_sign != NULL ? EVP_PKEY_CTX_dup(key->rsa_sign)
                              : dkim_rsa_sign_context_new(key->pkey);
    ok = context != NULL &&
         EVP_PKEY_sign(context, signature, &length, digest, 32) == 1;
  }
  if (!ok) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "OpenSSL could not sign with %s (%s)", key->path,
                dkim_key_type_to_string(key->type));
    return NULL;
  }
  return g_base64_encode(signature, length);
}

char *dkim_signing_sign(DkimSigning *signing, const DkimSignSpec *spec,
                        GError **error) {
  const guint8 *body_digest = dkim_signing_body_digest(signing);
  g_autoptr(GPtrArray) chosen = g_ptr_array_new();
  g_autofree char *header_list =
      dkim_signing_header_list(signing, spec, chosen);
  g_autoptr(GPtrArray) tags =
      dkim_signing_tags(spec, signing->body_canon, body_digest, header_list);

  /* The header hash: the signed fields, then this field with b= empty. */
  g_autoptr(EVP_MD_CTX) hash = EVP_MD_CTX_new();
  g_assert(hash != NULL && EVP_DigestInit_ex(hash, signing->sha256, NULL) == 1);
  dkim_signing_hash_fields(hash, chosen, spec->header_canon);
  g_autofree char *unsigned_value = dkim_signing_fold(tags, "");
  g_autofree char *field =
      g_strconcat(DKIM_SIGNATURE_FIELD ": ", unsigned_value, NULL);
  g_autoptr(GString) text = g_string_new(NULL);
  dkim_canon_header(spec->header_canon, field, strlen(field), text);
  EVP_DigestUpdate(hash, text->str, text->len);
  guint8 digest[32];
  unsigned int digest_length = sizeof digest;
  EVP_DigestFinal_ex(hash, digest, &digest_length);

  g_autofree char *b = dkim_signing_sign_digest(spec->key, digest, error);
  if (b == NULL)
    return NULL;
  return dkim_signing_fold(tags, b);
}
