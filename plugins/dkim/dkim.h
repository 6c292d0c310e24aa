/* dkim.h - what the DKIM plugin's files (and `postilion dkim`) share.
 *
 *   dkim-tags.c    pure: tag-lists (RFC 6376 3.2) and DKIM-Signature
 *                  values (3.5) parsed
 *   dkim-record.c  pure: domain and selector syntax, key records (v=DKIM1;
 *                  k=; p=; h=; s=; t=) parsed and split into zone-file
 *                  strings, the verdict of one verified signature
 *                  (DkimCheck -> result)
 *   dkim-key.c     private key files: the permission checks, the
 *                  algorithm, the public half as a p= value, generation
 *   dkim-config.c  [plugin:dkim] and [plugin:dkim:DOMAIN] read into an
 *                  immutable, reference-counted DkimConfig with its keys
 *   dkim-canon.c   pure: header and body canonicalization (RFC 6376 3.4),
 *                  the folding of a DKIM-Signature value
 *   dkim-signer.c  our signer: header selection, hashes, RSA-SHA256 and
 *                  Ed25519-SHA256 (RFC 8463) with keys parsed once
 *   dkim-verifier.c our verifier: header selection per h=, body hashes
 *                  shared by signatures, RSA and Ed25519 verification with
 *                  public keys decoded once per DNS answer
 *   dkim-sign.c    one signing job (worker thread) and the signer of mail
 *                  the daemon writes itself
 *   dkim-verify.c  one verification: key lookups through the core resolver
 *                  and the key cache (main thread), body and signatures on
 *                  a worker
 *   dkim.c         the hooks and the plugin's life cycle
 */
#pragma once

#include <openssl/types.h>

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* --- Tag-lists (dkim-tags.c) --------------------------------------------- */

/* One tag of a tag-list: name and value point into the parsed text; the
 * value without the white space around it.  [value_offset, value_end) is
 * everything between '=' and the ';' (or the end): what b= blanking
 * removes. */
typedef struct {
  const char *name;
  gsize name_length;
  const char *value;
  gsize value_length;
  gsize value_offset;
  gsize value_end;
} DkimTag;

/* Receives each tag in turn; FALSE (with `error` set) stops the parse. */
typedef gboolean (*DkimTagFunc)(const DkimTag *tag, gpointer data,
                                GError **error);
/* Parses a tag-list of `length` octets.  FALSE with `error` for a tag
 * twice, an item without '=', a bad tag name, a control octet in a value,
 * more than 64 tags, or what `func` refuses. */
gboolean dkim_tags_parse(const char *text, gsize length, DkimTagFunc func,
                         gpointer data, GError **error);
/* TRUE when the tag's name is `name` (case matters, RFC 6376 3.2). */
gboolean dkim_tag_is(const DkimTag *tag, const char *name);
/* The value with every white space octet removed (base64, lists). */
char *dkim_tag_value_strip(const DkimTag *tag);
/* TRUE for base64 with correct padding (empty included). */
gboolean dkim_base64_is_valid(const char *text);

typedef enum {
  DKIM_ALG_RSA_SHA1 = 0,
  DKIM_ALG_RSA_SHA256,
  DKIM_ALG_ED25519_SHA256,
} DkimAlgorithm;

/* "rsa-sha1", "rsa-sha256", "ed25519-sha256". */
const char *dkim_algorithm_to_string(DkimAlgorithm algorithm);

/* DkimCanon (below) is needed here. */
typedef enum {
  DKIM_CANON_SIMPLE_ = 0,
  DKIM_CANON_RELAXED_,
} DkimCanon;

/* A DKIM-Signature value, parsed (RFC 6376 3.5). */
typedef struct {
  DkimAlgorithm algorithm; /* a= */
  gboolean algorithm_known;
  DkimCanon header_canon; /* c=, simple/simple when absent */
  DkimCanon body_canon;
  char *domain;    /* owned, nullable: d= as written (not yet validated) */
  char *selector;  /* owned, nullable: s= */
  char *identity;  /* owned, nullable: i= */
  char **headers;  /* owned, nullable: h=, names as written */
  guint8 *body_hash;       /* owned: bh= decoded */
  gsize body_hash_length;
  guint8 *signature;       /* owned: b= decoded */
  gsize signature_length;
  char *b_text;            /* owned: b= without white space */
  gsize b_start, b_end;    /* b='s value in the text: blanked when hashed */
  gint64 length;           /* l=, -1 when absent */
  gint64 timestamp;        /* t=, -1 when absent */
  gint64 expires;          /* x=, -1 when absent */
} DkimSignature;

/* Parses a DKIM-Signature value of `length` octets.  FALSE with `error`
 * (the permerror's reason) for a bad tag-list, v= other than 1, an unknown
 * a= or c=, b= or bh= empty or not base64, an empty d= or s=, an h= that
 * does not sign From, an i= outside d=, l=/t=/x= that are no numbers, an
 * x= before t=, a q= without dns/txt, or a missing v=, a=, b=, bh=, d=,
 * h= or s=.  What was read before the failure stays in `sig` (d= and s=
 * for the report); clear it either way. */
gboolean dkim_signature_parse(const char *value, gsize length,
                              DkimSignature *sig, GError **error);
void dkim_signature_clear(DkimSignature *sig);

/* --- Pure parts (dkim-record.c) ------------------------------------------ */

/* TRUE for a DNS domain name a DKIM d= may name and an
 * Authentication-Results header.d may carry: two or more labels of
 * letters, digits and hyphens (not first or last), 1..63 octets each, at
 * most 253 in all; no final dot.  Anything else never reaches a header
 * (the CVE-2020-12272 class of injection). */
gboolean dkim_domain_is_valid(const char *domain);
/* TRUE for a selector: one or more labels as above, underscores allowed. */
gboolean dkim_selector_is_valid(const char *selector);

typedef enum {
  DKIM_KEY_RSA = 0,
  DKIM_KEY_ED25519,
} DkimKeyType;

/* "rsa" or "ed25519" (the k= value). */
const char *dkim_key_type_to_string(DkimKeyType type);

/* A published key record (RFC 6376 section 3.6.1), parsed. */
typedef struct {
  DkimKeyType type; /* k=, rsa when absent */
  char *public_key; /* owned: p= without white space; "" when revoked */
  gboolean sha1;      /* h= allows sha1 (TRUE when h= is absent) */
  gboolean sha256;    /* h= allows sha256 (TRUE when h= is absent) */
  gboolean not_email; /* s= names neither "email" nor "*" */
  gboolean testing;   /* t=y */
  gboolean strict;    /* t=s: i= must be in d= itself, not a subdomain */
} DkimRecord;

void dkim_record_clear(DkimRecord *record);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(DkimRecord, dkim_record_clear)
/* Parses `text` (the TXT strings concatenated) as a tag-list.  FALSE,
 * with `error` saying what is wrong, for: a v= that is not first or not
 * DKIM1, a tag twice, a tag without '=', an unknown k=, no p=, a p= that
 * is not base64.  Unknown h= and s= entries and t= flags are ignored. */
gboolean dkim_record_parse(const char *text, DkimRecord *record,
                           GError **error);
/* The record for a key: "v=DKIM1; k=TYPE; p=KEY" (RSA keys get h=sha256,
 * as amavis writes them). */
char *dkim_record_format(DkimKeyType type, const char *public_key);
/* The zone-file line for SELECTOR._domainkey.DOMAIN: the record split
 * into quoted strings of at most 255 octets, in parentheses when there
 * are several; newline-terminated. */
char *dkim_record_zone_line(const char *domain, const char *selector,
                            const char *record);

/* Everything known about one verified signature, as the verifier and the
 * lookups left it; dkim_check_decide() turns it into a result. */
typedef enum {
  DKIM_LOOKUP_NONE = 0, /* no lookup made (bad d= or s=, skipped) */
  DKIM_LOOKUP_FOUND,
  DKIM_LOOKUP_NOT_FOUND, /* NXDOMAIN or NODATA */
  DKIM_LOOKUP_TEMPFAIL,  /* timeout, SERVFAIL, cancelled */
  DKIM_LOOKUP_MALFORMED, /* a TXT that is no key record (or several) */
  DKIM_LOOKUP_REVOKED,   /* an empty p= */
} DkimLookup;

typedef struct {
  const char *domain;    /* d=, nullable */
  const char *algorithm; /* a= ("rsa-sha256", ...), nullable */
  DkimLookup lookup;
  const char *lookup_problem; /* nullable: why MALFORMED */
  const char *problem;        /* nullable: why the signature or its key
                                 cannot be used (a permerror) */
  gboolean passed;            /* the signature verified */
  gboolean body_mismatch;     /* bh= did not match */
  gboolean ed25519;           /* the key is Ed25519 */
  gboolean key_type_known;    /* the record's k= is known: */
  DkimKeyType key_type;       /* it */
  guint key_bits;             /* RSA key size; 0 for Ed25519 */
  gssize signed_length;       /* l=, -1 when absent */
  gssize body_length;         /* the body received, -1 when unknown */
  gint64 signed_at;           /* t=, -1 when absent */
  gint64 expires_at;          /* x=, -1 when absent */
  gint64 now;                 /* seconds since the epoch */
  guint min_key_bits;
  gboolean allow_rsa_sha1;
} DkimCheck;

/* Seconds a t= may be ahead of our clock. */
#define DKIM_CLOCK_DRIFT 300

/* The RFC 8601 result ("pass", "fail", "neutral", "policy", "temperror",
 * "permerror") and a short reason for it (static or *reason_r owned). */
const char *dkim_check_decide(const DkimCheck *check, char **reason_r);

/* The domain of the one address in a From: value (lower case), or NULL
 * when there is none, several, or the domain is not valid. */
char *dkim_from_domain(const char *from_value);

/* --- Keys (dkim-key.c) ---------------------------------------------------- */

typedef struct {
  char *selector;   /* owned */
  char *path;       /* owned: KEY_DIRECTORY/DOMAIN/SELECTOR.key */
  guint8 *pem;      /* owned: the file, zeroed when freed */
  gsize pem_length; /* without the NUL after it */
  DkimKeyType type;
  guint bits;       /* RSA modulus size; 256 for Ed25519 */
  char *public_key; /* owned: the p= value of its DNS record */
  EVP_PKEY *pkey;   /* owned: the key, parsed once; read-only, so shared
                       by every signing thread */
  EVP_PKEY_CTX *rsa_sign; /* owned, nullable: RSA's PKCS#1 v1.5 SHA-256
                             signing context, made at load and only ever
                             duplicated, so shared like pkey */
} DkimKey;

void dkim_key_free(DkimKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DkimKey, dkim_key_free)

/* Reads and checks KEY_DIRECTORY/DOMAIN/SELECTOR.key: it must be a
 * regular file nobody but its owner and group can read or write, that
 * `reader` (nullable: the [server] user the daemon will run as, so that a
 * SIGHUP can read it again) can read, holding an RSA (at least
 * `min_bits`) or Ed25519 private key; and a record file SELECTOR.txt next
 * to it (as `postilion dkim genkey` writes) must name the same algorithm
 * and public key.  Every failure names the file and the fix. */
DkimKey *dkim_key_load(const char *directory, const char *domain,
                       const char *selector, const char *reader,
                       guint min_bits, GError **error);
/* The public half of a PEM private key: type, bits and p= value;
 * `pkey_r` (nullable) receives the parsed key. */
gboolean dkim_key_describe(const guint8 *pem, gsize length,
                           DkimKeyType *type_r, guint *bits_r,
                           char **public_key_r, EVP_PKEY **pkey_r,
                           GError **error);
/* An RSA key's signing context (PKCS#1 v1.5, SHA-256), or NULL when
 * OpenSSL refuses the key: made once per key (DkimKey.rsa_sign), since
 * OpenSSL 3's init looks up algorithms and parameters every time. */
EVP_PKEY_CTX *dkim_rsa_sign_context_new(EVP_PKEY *pkey);
/* A new private key as PKCS#8 PEM (bits: RSA only). */
char *dkim_key_generate(DkimKeyType type, guint bits, GError **error);

/* --- Configuration (dkim-config.c) --------------------------------------- */

typedef struct {
  char *domain;         /* owned: the From: domain, lower case */
  char *signing_domain; /* owned: d= */
  GPtrArray *keys;      /* owned, of DkimKey*: one signature each */
} DkimDomain;

/* Key answers already looked up (dkim-verify.c). */
typedef struct _DkimKeyCache DkimKeyCache;

/* Immutable after dkim_config_load(); every hook and job holds a
 * reference, so a SIGHUP never changes a running signature. */
typedef struct {
  char *key_directory; /* owned */
  gboolean sign;
  gboolean verify;
  DkimCanon header_canon;
  DkimCanon body_canon;
  guint64 expire_seconds; /* x= = t= + this; 0: no x= */
  char **headers;         /* owned: signed when present */
  char **oversign;        /* owned: one more than present */
  guint max_signatures;
  guint min_key_bits;
  gboolean allow_rsa_sha1;
  GHashTable *domains; /* owned: lower-case domain -> DkimDomain* */
  char *hostname;      /* owned: [server] hostname, lower case */
  DkimKeyCache *keys;  /* owned: key answers, used on the main thread */
  EVP_MD *sha256;      /* owned: fetched once, for the signer's hashes */
} DkimConfig;

/* Reads [plugin:dkim] (`group`) and every [plugin:dkim:DOMAIN] of
 * `keyfile`, and loads every key (see dkim_key_load()).  `reader` as
 * there. */
DkimConfig *dkim_config_load(GKeyFile *keyfile, const char *group,
                             const char *reader, GError **error);
DkimConfig *dkim_config_ref(DkimConfig *config);
void dkim_config_unref(DkimConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DkimConfig, dkim_config_unref)
/* The domain entry for `domain` (any case), or NULL. */
const DkimDomain *dkim_config_find_domain(const DkimConfig *config,
                                          const char *domain);
/* The entry signing the daemon's own mail: [server] hostname's, else that
 * of its parent domains (mx.example.org -> example.org); nullable. */
const DkimDomain *dkim_config_find_local(const DkimConfig *config);

/* The default `headers` and `oversign` lists (';'-separated). */
#define DKIM_DEFAULT_HEADERS                                                   \
  "from;reply-to;subject;date;to;cc;resent-date;resent-from;resent-to;"       \
  "resent-cc;in-reply-to;references;list-id;list-help;list-unsubscribe;"      \
  "list-subscribe;list-post;list-owner;list-archive;message-id;"             \
  "mime-version;content-type;content-transfer-encoding;content-id;"          \
  "content-description;sender"
#define DKIM_DEFAULT_OVERSIGN "from;to;cc;subject;date"

/* --- Canonicalization (dkim-canon.c) -------------------------------------- */

/* The length of a field's name: before the colon, SP and TAB trimmed
 * (the signer's and the verifier's header selection). */
gsize dkim_field_name_length(const char *field);

/* Appends the canonical form of one header field ("Name: value", folded
 * lines inside, no CRLF at the end) to `out`, without a CRLF. */
void dkim_canon_header(DkimCanon canon, const char *field, gsize length,
                       GString *out);

/* Receives canonical body octets. */
typedef void (*DkimCanonEmit)(const void *bytes, gsize length, gpointer data);

/* The state of one body canonicalization; the caller owns it. */
typedef struct {
  DkimCanon canon;
  DkimCanonEmit emit;
  gpointer data;
  gboolean cr;      /* the last octet was a CR */
  gboolean in_line; /* the current line has content */
  gboolean space;   /* relaxed: white space pending inside the line */
  guint64 blanks;   /* empty lines held back (dropped at the end) */
  guint64 wrote;    /* octets emitted so far */
} DkimBodyCanon;

void dkim_body_canon_init(DkimBodyCanon *body, DkimCanon canon,
                          DkimCanonEmit emit, gpointer data);
/* Any number of pieces, cut anywhere. */
void dkim_body_canon_feed(DkimBodyCanon *body, const guint8 *data,
                          gsize length);
void dkim_body_canon_finish(DkimBodyCanon *body);

/* The tags of a signature ("v=1;", ..., "h=From:To;", "b=SIG"), laid out
 * as libopendkim's dkim_getsighdr() does: lines of at most 75 columns
 * where the tags allow, CRLF TAB between them, h= broken at colons and
 * bh=/b= at the margin (CRLF TAB SP), b= always on a line of its own.
 * `initial` is the width taken before the value ("DKIM-Signature: "). */
char *dkim_signature_fold(const char *const *tags, gsize initial);

/* --- Our signer (dkim-signer.c) -------------------------------------------- */

/* One signature to make over a message. */
typedef struct {
  const DkimKey *key;
  const char *domain; /* d= */
  DkimCanon header_canon;
  guint64 timestamp;                /* t= */
  guint64 expire_seconds;           /* x= = t= + this; 0: no x= */
  const char *const *headers;       /* signed when present (lower case) */
  const char *const *oversign;      /* one more than present (lower case) */
} DkimSignSpec;

/* A message being signed: its header fields and its body hash (one body
 * canonicalization, shared by every signature made over it). */
typedef struct _DkimSigning DkimSigning;

/* `sha256` (nullable: EVP_sha256()) is best fetched once (EVP_MD_fetch):
 * OpenSSL 3 looks EVP_sha256() up again in every digest init. */
DkimSigning *dkim_signing_new(DkimCanon body_canon, const EVP_MD *sha256);
void dkim_signing_free(DkimSigning *signing);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DkimSigning, dkim_signing_free)
/* One header field, "Name: value" as it will be sent, no CRLF. */
void dkim_signing_add_header(DkimSigning *signing, const char *field,
                             gsize length);
/* The body (CRLF lines), in pieces of any size. */
void dkim_signing_add_body(DkimSigning *signing, const guint8 *data,
                           gsize length);
/* A whole message (header, empty line, body) at once. */
void dkim_signing_add_message(DkimSigning *signing, const guint8 *data,
                              gsize length);
/* After the whole body: the DKIM-Signature value for `spec`, folded as
 * dkim_signature_fold() does (without "DKIM-Signature: "), or NULL with
 * `error` set when OpenSSL fails.  May be called once per key. */
char *dkim_signing_sign(DkimSigning *signing, const DkimSignSpec *spec,
                        GError **error);

/* --- Our verifier (dkim-verifier.c) --------------------------------------- */

/* A public key from a key record, decoded once (reference-counted,
 * read-only after creation: worker threads share it). */
typedef struct {
  DkimKeyType type;
  guint bits;        /* RSA modulus size; 0 for Ed25519 */
  EVP_PKEY *pkey;    /* owned */
  gboolean sha1;     /* the record's h= */
  gboolean sha256;
  gboolean not_email;
  gboolean strict;
} DkimPublicKey;

/* Decodes the record's p= (RSA: SubjectPublicKeyInfo; Ed25519: the 32
 * octets, RFC 8463).  NULL with `error` when it is no such key; the record
 * must not be revoked (empty p=). */
DkimPublicKey *dkim_public_key_new(const DkimRecord *record, GError **error);
DkimPublicKey *dkim_public_key_ref(DkimPublicKey *key);
void dkim_public_key_unref(DkimPublicKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DkimPublicKey, dkim_public_key_unref)

/* A message being verified: its header fields, its signatures parsed, the
 * body hashes (one per distinct canonicalization, l= and hash). */
typedef struct _DkimVerifying DkimVerifying;

DkimVerifying *dkim_verifying_new(void);
void dkim_verifying_free(DkimVerifying *verifying);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DkimVerifying, dkim_verifying_free)
/* One header field, "Name: value" (no CRLF), in message order. */
void dkim_verifying_add_header(DkimVerifying *verifying, const char *field,
                               gsize length);
/* After the header: parses the first `max` DKIM-Signature fields (top
 * first); returns how many there are in all. */
guint dkim_verifying_parse_signatures(DkimVerifying *verifying, guint max);
/* The number parsed, and signature `index`'s d= and s= (nullable: absent
 * or unparsable), and whether it parsed (a key is worth looking up). */
guint dkim_verifying_get_count(const DkimVerifying *verifying);
gboolean dkim_verifying_get_names(const DkimVerifying *verifying, guint index,
                                  const char **domain_r,
                                  const char **selector_r);
/* The body (CRLF lines), in pieces of any size; then finish. */
void dkim_verifying_add_body(DkimVerifying *verifying, const guint8 *data,
                             gsize length);
void dkim_verifying_finish_body(DkimVerifying *verifying);
/* Verifies signature `index` with `key` (nullable: none was found) and
 * fills what the signature says into `check`: domain, algorithm, problem,
 * passed, body_mismatch, ed25519, key_bits, lengths, times.  The strings
 * point into `verifying`. */
void dkim_verifying_check(DkimVerifying *verifying, guint index,
                          const DkimPublicKey *key, DkimCheck *check);
/* header.b (the first 8 characters of b=) and header.i (i= when it is
 * safe to show) of signature `index`; nullable, owned. */
char *dkim_verifying_get_b(const DkimVerifying *verifying, guint index);
char *dkim_verifying_get_i(const DkimVerifying *verifying, guint index);

/* --- Signing (dkim-sign.c) ------------------------------------------------ */

/* Feeds every header field of `message` as "Name: value" (as the core
 * stores it) to `feed`. */
typedef void (*DkimFeedHeader)(const char *field, gsize length,
                               gpointer data);
void dkim_feed_headers(PstMessage *message, DkimFeedHeader feed,
                       gpointer data);
/* Streams the body from the spool to `feed` in pieces (ABI 1.2's reader);
 * `feed` returns FALSE to stop early.  FALSE on a read error. */
typedef gboolean (*DkimFeedBody)(const guint8 *chunk, gsize length,
                                 gpointer data);
gboolean dkim_feed_body(PstMessage *message, DkimFeedBody feed, gpointer data,
                        GError **error);


/* Signs the message the call is about with every key of `domain` and
 * inserts the DKIM-Signature fields on top; runs on a worker, completes
 * the call.  Takes a reference to `config`. */
void dkim_sign_call(GThreadPool *pool, PstCall *call, DkimConfig *config,
                    const DkimDomain *domain);
/* Signs a whole message (CRLF lines) the daemon wrote itself; the
 * DKIM-Signature fields to put on top ("DKIM-Signature: ...\r\n" each),
 * or NULL (logged) when `domain` has no usable key.  Any thread. */
char *dkim_sign_local(PstPlugin *plugin, DkimConfig *config,
                      const DkimDomain *domain, GBytes *message);
/* The worker function of the plugin's pool: a job from dkim_sign_call()
 * or dkim_verify_call(). */
void dkim_job_run(gpointer job, gpointer user_data);

/* --- Verifying (dkim-verify.c) -------------------------------------------- */

/* Verifies every DKIM-Signature of the call's message (main thread: the
 * header and the key lookups; then the body on `pool`), appends one
 * auth.dkim entry per signature and completes the call.  Returns the
 * hook's verdict (PENDING, or CONTINUE when there is nothing to wait
 * for). */
PstVerdict dkim_verify_call(GThreadPool *pool, PstCall *call,
                            DkimConfig *config);

/* The key answers of one configuration (main thread only): created with
 * it, freed with it. */
DkimKeyCache *dkim_key_cache_new(void);
void dkim_key_cache_free(DkimKeyCache *cache);

/* A job on the pool: the first field says which. */
typedef enum { DKIM_JOB_SIGN, DKIM_JOB_VERIFY } DkimJobKind;
void dkim_sign_job_run(gpointer job);
void dkim_verify_job_run(gpointer job);

G_END_DECLS
