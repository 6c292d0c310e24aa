/* dkim-verifier.c - our DKIM verifier: RSA-SHA256, RSA-SHA1 (RFC 6376)
 * and Ed25519-SHA256 (RFC 8463) over the canonicalization of
 * dkim-canon.c, with public keys decoded once per DNS answer.
 *
 * A DkimVerifying collects a message's header fields (main thread), parses
 * its first `max_signatures` DKIM-Signature fields (dkim-tags.c), then
 * (worker) hashes the body as it streams by: one hash per distinct
 * (body canonicalization, l=, hash algorithm), so dual-signed mail is
 * canonicalized and hashed once.  dkim_verifying_check() then verifies one
 * signature:
 *
 *   bh=  compared with its body hash (a mismatch skips the public-key
 *        operation: "body hash mismatch");
 *   hash the fields h= names, each name taking the last instance not yet
 *        used (RFC 6376 5.4.2; a name without one adds nothing), then the
 *        DKIM-Signature field itself with b='s value removed (everything
 *        between '=' and the next ';'), canonicalized, without CRLF;
 *   b=   RSA: PKCS#1 v1.5 over the digest; Ed25519: the signature of the
 *        SHA-256 digest itself.
 *
 * What the signature or its key does not allow (a parse failure, l=
 * beyond the body, the key's h= or s= or t=s) is a `problem`: permerror.
 * Policy (rsa-sha1, key size, l= short, times) is dkim_check_decide()'s.
 * DkimPublicKey is read-only after creation, shared by threads; each
 * operation has its own OpenSSL context.  Callers: dkim-verify.c, the
 * differential test (test-dkim-verifier.c), fuzz/fuzz-dkim-signature.c.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim.h"

#define DKIM_SIGNATURE_NAME "dkim-signature"
#define DKIM_ED25519_KEY_LENGTH 32

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_MD_CTX, EVP_MD_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY_CTX, EVP_PKEY_CTX_free)

/* --- Public keys ---------------------------------------------------------- */

static void dkim_public_key_clear(DkimPublicKey *key) {
  EVP_PKEY_free(key->pkey);
}

DkimPublicKey *dkim_public_key_ref(DkimPublicKey *key) {
  return g_atomic_rc_box_acquire(key);
}

void dkim_public_key_unref(DkimPublicKey *key) {
  g_atomic_rc_box_release_full(key, (GDestroyNotify)dkim_public_key_clear);
}

static EVP_PKEY *dkim_public_key_decode(DkimKeyType type, const guint8 *der,
                                        gsize length, GError **error) {
  EVP_PKEY *pkey = NULL;
  if (type == DKIM_KEY_ED25519) {
    if (length == DKIM_ED25519_KEY_LENGTH)
      pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, length);
  } else {
    const unsigned char *p = der;
    pkey = d2i_PUBKEY(NULL, &p, (long)length);
    if (pkey != NULL &&
        (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || p != der + length))
      g_clear_pointer(&pkey, EVP_PKEY_free);
  }
  if (pkey == NULL)
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "p= is no %s public key", dkim_key_type_to_string(type));
  return pkey;
}

DkimPublicKey *dkim_public_key_new(const DkimRecord *record, GError **error) {
  gsize length = 0;
  g_autofree guint8 *der = g_base64_decode(record->public_key, &length);
  EVP_PKEY *pkey = dkim_public_key_decode(record->type, der, length, error);
  if (pkey == NULL)
    return NULL;
  DkimPublicKey *key = g_atomic_rc_box_new0(DkimPublicKey);
  key->type = record->type;
  key->pkey = pkey;
  key->bits = record->type == DKIM_KEY_RSA ? (guint)EVP_PKEY_get_bits(pkey)
                                           : 0;
  key->sha1 = record->sha1;
  key->sha256 = record->sha256;
  key->not_email = record->not_email;
  key->strict = record->strict;
  return key;
}

/* --- The message ---------------------------------------------------------- */

/* The body hash one or more signatures need. */
typedef struct {
  DkimCanon canon;
  gint64 limit;        /* l=, -1: all */
  gboolean sha1;
  DkimBodyCanon body;
  EVP_MD_CTX *md;      /* owned */
  guint64 hashed;      /* canonical octets hashed (up to limit) */
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length;
} DkimBodyHash;

typedef struct {
  guint field;        /* index in fields */
  DkimSignature sig;  /* owned */
  char *problem;      /* owned, nullable: the parse failure */
  DkimBodyHash *hash; /* borrowed from hashes, NULL when it did not parse */
} DkimVerifySig;

struct _DkimVerifying {
  GPtrArray *fields;   /* owned, of char*: "Name: value" */
  GPtrArray *sigs;     /* owned, of DkimVerifySig* */
  GPtrArray *hashes;   /* owned, of DkimBodyHash* */
  GHashTable *by_name; /* owned, lazily: lower-case name -> GArray of guint */
  guint64 body_length; /* octets received */
  gboolean body_done;
};

static void dkim_body_hash_free(DkimBodyHash *hash) {
  EVP_MD_CTX_free(hash->md);
  g_free(hash);
}

static void dkim_verify_sig_free(DkimVerifySig *vsig) {
  dkim_signature_clear(&vsig->sig);
  g_free(vsig->problem);
  g_free(vsig);
}

DkimVerifying *dkim_verifying_new(void) {
  DkimVerifying *verifying = g_new0(DkimVerifying, 1);
  verifying->fields = g_ptr_array_new_with_free_func(g_free);
  verifying->sigs =
      g_ptr_array_new_with_free_func((GDestroyNotify)dkim_verify_sig_free);
  verifying->hashes =
      g_ptr_array_new_with_free_func((GDestroyNotify)dkim_body_hash_free);
  return verifying;
}

void dkim_verifying_free(DkimVerifying *verifying) {
  if (verifying == NULL)
    return;
  g_ptr_array_unref(verifying->fields);
  g_ptr_array_unref(verifying->sigs);
  g_ptr_array_unref(verifying->hashes);
  g_clear_pointer(&verifying->by_name, g_hash_table_unref);
  g_free(verifying);
}

void dkim_verifying_add_header(DkimVerifying *verifying, const char *field,
                               gsize length) {
  g_ptr_array_add(verifying->fields, g_strndup(field, length));
}

static void dkim_body_hash_emit(const void *bytes, gsize length,
                                gpointer data) {
  DkimBodyHash *hash = data;
  if (hash->limit >= 0)
    length = (gsize)MIN((guint64)length, (guint64)hash->limit - hash->hashed);
  if (length > 0)
    EVP_DigestUpdate(hash->md, bytes, length);
  hash->hashed += length;
}

/* The body hash for `sig`: an existing one that fits, or a new one. */
static DkimBodyHash *dkim_verifying_body_hash(DkimVerifying *verifying,
                                              const DkimSignature *sig) {
  gboolean sha1 = sig->algorithm == DKIM_ALG_RSA_SHA1;
  for (guint i = 0; i < verifying->hashes->len; i++) {
    DkimBodyHash *hash = verifying->hashes->pdata[i];
    if (hash->canon == sig->body_canon && hash->limit == sig->length &&
        hash->sha1 == sha1)
      return hash;
  }
  DkimBodyHash *hash = g_new0(DkimBodyHash, 1);
  hash->canon = sig->body_canon;
  hash->limit = sig->length;
  hash->sha1 = sha1;
  hash->md = EVP_MD_CTX_new();
  g_assert(hash->md != NULL &&
           EVP_DigestInit_ex(hash->md, sha1 ? EVP_sha1() : EVP_sha256(),
                             NULL) == 1);
  dkim_body_canon_init(&hash->body, sig->body_canon, dkim_body_hash_emit,
                       hash);
  g_ptr_array_add(verifying->hashes, hash);
  return hash;
}

static gboolean dkim_field_is_signature(const char *field) {
  gsize length = dkim_field_name_length(field);
  return length == strlen(DKIM_SIGNATURE_NAME) &&
         g_ascii_strncasecmp(field, DKIM_SIGNATURE_NAME, length) == 0;
}

guint dkim_verifying_parse_signatures(DkimVerifying *verifying, guint max) {
  guint count = 0;
  for (guint i = 0; i < verifying->fields->len; i++) {
    const char *field = verifying->fields->pdata[i];
    if (!dkim_field_is_signature(field))
      continue;
    if (count++ >= max)
      continue;
    DkimVerifySig *vsig = g_new0(DkimVerifySig, 1);
    vsig->field = i;
    const char *value = strchr(field, ':') + 1;
    g_autoptr(GError) error = NULL;
    if (dkim_signature_parse(value, strlen(value), &vsig->sig, &error))
      vsig->hash = dkim_verifying_body_hash(verifying, &vsig->sig);
    else
      vsig->problem = g_strdup(error->message);
    g_ptr_array_add(verifying->sigs, vsig);
  }
  return count;
}

guint dkim_verifying_get_count(const DkimVerifying *verifying) {
  return verifying->sigs->len;
}

gboolean dkim_verifying_get_names(const DkimVerifying *verifying, guint index,
                                  const char **domain_r,
                                  const char **selector_r) {
  const DkimVerifySig *vsig = verifying->sigs->pdata[index];
  *domain_r = vsig->sig.domain;
  *selector_r = vsig->sig.selector;
  return vsig->problem == NULL;
}

/* --- The body ------------------------------------------------------------- */

void dkim_verifying_add_body(DkimVerifying *verifying, const guint8 *data,
                             gsize length) {
  g_assert(!verifying->body_done);
  verifying->body_length += length;
  for (guint i = 0; i < verifying->hashes->len; i++) {
    DkimBodyHash *hash = verifying->hashes->pdata[i];
    /* Past l=, only the canonical length still counts. */
    dkim_body_canon_feed(&hash->body, data, length);
  }
}

void dkim_verifying_finish_body(DkimVerifying *verifying) {
  g_assert(!verifying->body_done);
  verifying->body_done = TRUE;
  for (guint i = 0; i < verifying->hashes->len; i++) {
    DkimBodyHash *hash = verifying->hashes->pdata[i];
    dkim_body_canon_finish(&hash->body);
    EVP_DigestFinal_ex(hash->md, hash->digest, &hash->digest_length);
  }
}

/* --- One signature -------------------------------------------------------- */

/* Field indices by lower-case name, in message order. */
static GHashTable *dkim_verifying_index(DkimVerifying *verifying) {
  if (verifying->by_name != NULL)
    return verifying->by_name;
  verifying->by_name = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_array_unref);
  for (guint i = 0; i < verifying->fields->len; i++) {
    const char *field = verifying->fields->pdata[i];
    char *name = g_ascii_strdown(field, (gssize)dkim_field_name_length(field));
    GArray *same = g_hash_table_lookup(verifying->by_name, name);
    if (same == NULL) {
      same = g_array_new(FALSE, FALSE, sizeof(guint));
      g_hash_table_insert(verifying->by_name, name, same);
    } else {
      g_free(name);
    }
    g_array_append_val(same, i);
  }
  return verifying->by_name;
}

static void dkim_hash_field(EVP_MD_CTX *md, DkimCanon canon, const char *field,
                            gsize length, GString *text, gboolean crlf) {
  g_string_truncate(text, 0);
  dkim_canon_header(canon, field, length, text);
  if (crlf)
    g_string_append(text, "\r\n");
  EVP_DigestUpdate(md, text->str, text->len);
}

/* The header hash of `vsig` into `digest` (RFC 6376 3.7). */
static void dkim_verifying_header_hash(DkimVerifying *verifying,
                                       const DkimVerifySig *vsig,
                                       guint8 *digest, unsigned int *length) {
  const DkimSignature *sig = &vsig->sig;
  GHashTable *index = dkim_verifying_index(verifying);
  g_autoptr(GHashTable) used =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(EVP_MD_CTX) md = EVP_MD_CTX_new();
  g_assert(md != NULL &&
           EVP_DigestInit_ex(md, sig->algorithm == DKIM_ALG_RSA_SHA1
                                     ? EVP_sha1()
                                     : EVP_sha256(),
                             NULL) == 1);
  g_autoptr(GString) text = g_string_new(NULL);
  for (guint i = 0; sig->headers[i] != NULL; i++) {
    g_autofree char *name = g_ascii_strdown(sig->headers[i], -1);
    GArray *same = g_hash_table_lookup(index, name);
    guint taken = GPOINTER_TO_UINT(g_hash_table_lookup(used, name));
    if (same == NULL || taken >= same->len)
      continue;
    const char *field =
        verifying->fields->pdata[g_array_index(same, guint,
                                               same->len - 1 - taken)];
    g_hash_table_insert(used, g_steal_pointer(&name),
                        GUINT_TO_POINTER(taken + 1));
    dkim_hash_field(md, sig->header_canon, field, strlen(field), text, TRUE);
  }
  /* The signature's own field, b= emptied, without CRLF. */
  const char *field = verifying->fields->pdata[vsig->field];
  gsize value = (gsize)(strchr(field, ':') + 1 - field);
  g_autoptr(GString) blank = g_string_new_len(field, (gssize)value);
  g_string_append_len(blank, field + value, (gssize)sig->b_start);
  g_string_append(blank, field + value + sig->b_end);
  dkim_hash_field(md, sig->header_canon, blank->str, blank->len, text, FALSE);
  EVP_DigestFinal_ex(md, digest, length);
}

static gboolean dkim_verify_digest(const DkimPublicKey *key,
                                   const DkimSignature *sig,
                                   const guint8 *digest, unsigned int length) {
  if (key->type == DKIM_KEY_ED25519) {
    g_autoptr(EVP_MD_CTX) context = EVP_MD_CTX_new();
    return context != NULL &&
           EVP_DigestVerifyInit(context, NULL, NULL, NULL, key->pkey) == 1 &&
           EVP_DigestVerify(context, sig->signature, sig->signature_length,
                            digest, length) == 1;
  }
  g_autoptr(EVP_PKEY_CTX) context = EVP_PKEY_CTX_new(key->pkey, NULL);
  return context != NULL && EVP_PKEY_verify_init(context) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1 &&
         EVP_PKEY_CTX_set_signature_md(context,
                                       sig->algorithm == DKIM_ALG_RSA_SHA1
                                           ? EVP_sha1()
                                           : EVP_sha256()) == 1 &&
         EVP_PKEY_verify(context, sig->signature, sig->signature_length,
                         digest, length) == 1;
}

/* What the key's record does not allow for this signature, or NULL. */
static const char *dkim_key_refuses(const DkimPublicKey *key,
                                    const DkimSignature *sig) {
  gboolean sha1 = sig->algorithm == DKIM_ALG_RSA_SHA1;
  if (sha1 ? !key->sha1 : !key->sha256)
    return "the key's h= does not allow the signature's hash";
  if (key->not_email)
    return "the key's s= is not for email";
  if (key->strict && sig->identity != NULL &&
      g_ascii_strcasecmp(strrchr(sig->identity, '@') + 1, sig->domain) != 0)
    return "the key's t=s does not allow i= in a subdomain of d=";
  return NULL;
}

static void dkim_check_from_sig(const DkimVerifying *verifying,
                                const DkimVerifySig *vsig, DkimCheck *check) {
  const DkimSignature *sig = &vsig->sig;
  check->domain = sig->domain;
  check->algorithm =
      sig->algorithm_known ? dkim_algorithm_to_string(sig->algorithm) : NULL;
  check->ed25519 =
      sig->algorithm_known && sig->algorithm == DKIM_ALG_ED25519_SHA256;
  check->signed_length = sig->length;
  check->body_length = vsig->problem == NULL && verifying->body_done
                           ? (gssize)verifying->body_length
                           : -1;
  check->signed_at = sig->timestamp;
  check->expires_at = sig->expires;
  check->problem = vsig->problem;
}

void dkim_verifying_check(DkimVerifying *verifying, guint index,
                          const DkimPublicKey *key, DkimCheck *check) {
  const DkimVerifySig *vsig = verifying->sigs->pdata[index];
  const DkimSignature *sig = &vsig->sig;
  dkim_check_from_sig(verifying, vsig, check);
  if (vsig->problem != NULL || key == NULL)
    return;
  check->key_bits = key->bits;
  if ((key->type == DKIM_KEY_ED25519) != check->ed25519)
    return; /* dkim_check_decide(): k= does not fit a= */
  check->problem = dkim_key_refuses(key, sig);
  if (check->problem != NULL)
    return;
  const DkimBodyHash *hash = vsig->hash;
  if (sig->length >= 0 && (guint64)sig->length > hash->body.wrote) {
    check->problem = "l= is longer than the body";
    return;
  }
  if (sig->body_hash_length != hash->digest_length ||
      memcmp(sig->body_hash, hash->digest, hash->digest_length) != 0) {
    check->body_mismatch = TRUE;
    return;
  }
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  dkim_verifying_header_hash(verifying, vsig, digest, &length);
  check->passed = dkim_verify_digest(key, sig, digest, length);
}

/* --- For the report ------------------------------------------------------- */

char *dkim_verifying_get_b(const DkimVerifying *verifying, guint index) {
  const DkimVerifySig *vsig = verifying->sigs->pdata[index];
  const char *b = vsig->sig.b_text;
  if (b == NULL || b[0] == '\0' || b[0] == '=')
    return NULL;
  gsize length = 0;
  while (length < 8 && b[length] != '\0' && b[length] != '=')
    length++;
  return g_strndup(b, length);
}

char *dkim_verifying_get_i(const DkimVerifying *verifying, guint index) {
  const DkimVerifySig *vsig = verifying->sigs->pdata[index];
  const char *text = vsig->sig.identity;
  if (vsig->problem != NULL || text == NULL || strlen(text) > 255)
    return NULL;
  const char *at = strrchr(text, '@');
  if (at == NULL || !dkim_domain_is_valid(at + 1))
    return NULL;
  for (const char *p = text; p < at; p++)
    if (!g_ascii_isalnum(*p) && strchr(".!#$%&'*+/=?^_`{|}~-", *p) == NULL)
      return NULL;
  return g_strdup(text);
}
