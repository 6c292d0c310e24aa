/* dkim-key.c - DKIM private key files: checks, the public half, generation.
 *
 * dkim_key_load() is what the plugin runs for every selector at start and
 * on SIGHUP, and `postilion dkim` for its commands.  A key file must be a
 * regular file that nobody but its owner and group can read (mode 0640 or
 * stricter), readable by the [server] user the daemon runs as after its
 * privilege drop (so that a SIGHUP reloads it: root:postilion 0640 is the
 * recommended form), and hold an RSA or Ed25519 private key (PEM, PKCS#1
 * or PKCS#8).  A record file SELECTOR.txt beside it, as genkey writes,
 * must name the same algorithm and public key: a mismatch means the DNS
 * record an admin published does not belong to this key.  Every error
 * names the file and the fix.  OpenSSL (libcrypto) does the key work; the
 * key is parsed here once (the signer uses the EVP_PKEY, never the PEM
 * again); the key text is zeroed when freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim.h"

#define DKIM_KEY_MAX_SIZE (64 * 1024)
#define DKIM_FIX_MODE "chown root:postilion %s && chmod 0640 %s"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIO, BIO_free)

void dkim_key_free(DkimKey *key) {
  if (key == NULL)
    return;
  if (key->pem != NULL)
    memset(key->pem, 0, key->pem_length);
  g_free(key->pem);
  g_free(key->selector);
  g_free(key->path);
  g_free(key->public_key);
  EVP_PKEY_CTX_free(key->rsa_sign);
  EVP_PKEY_free(key->pkey);
  g_free(key);
}

/* --- Permissions ---------------------------------------------------------- */

/* Whether the user `name` can read a file of this owner, group and mode. */
static gboolean dkim_user_can_read(const char *name, const struct stat *st) {
  struct passwd *pw = getpwnam(name);
  if (pw == NULL)
    return TRUE; /* the core refuses an unknown [server] user itself */
  if (pw->pw_uid == 0 || (pw->pw_uid == st->st_uid && (st->st_mode & S_IRUSR)))
    return TRUE;
  if (!(st->st_mode & S_IRGRP))
    return FALSE;
  int count = 64;
  gid_t groups[64];
  if (getgrouplist(name, pw->pw_gid, groups, &count) < 0)
    count = 0;
  for (int i = 0; i < count; i++)
    if (groups[i] == st->st_gid)
      return TRUE;
  return pw->pw_gid == st->st_gid;
}

static gboolean dkim_key_check_stat(const char *path, const struct stat *st,
                                    const char *reader, GError **error) {
  if (!S_ISREG(st->st_mode)) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                "%s: not a regular file; put the private key there "
                "(postilion dkim genkey writes one)",
                path);
    return FALSE;
  }
  if (st->st_mode & (S_IROTH | S_IWOTH)) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                "%s: the private key is readable or writable by anyone "
                "(mode %04o); fix: " DKIM_FIX_MODE,
                path, (guint)(st->st_mode & 07777), path, path);
    return FALSE;
  }
  if (reader != NULL && geteuid() == 0 && !dkim_user_can_read(reader, st)) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                "%s: the [server] user %s cannot read it, so a SIGHUP after "
                "the privilege drop could not reload it; fix: "
                "chown root:%s %s && chmod 0640 %s",
                path, reader, reader, path, path);
    return FALSE;
  }
  return TRUE;
}

/* Opens, checks and reads a key file. */
static gboolean dkim_key_read(const char *path, const char *reader,
                              guint8 **data_r, gsize *length_r,
                              GError **error) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "%s: %s; create it with: postilion dkim genkey DOMAIN "
                "SELECTOR",
                path, g_strerror(saved));
    return FALSE;
  }
  struct stat st;
  gboolean ok = fstat(fd, &st) == 0 &&
                dkim_key_check_stat(path, &st, reader, error);
  if (ok && st.st_size > DKIM_KEY_MAX_SIZE) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                "%s: %lld octets is too large for a private key", path,
                (long long)st.st_size);
    ok = FALSE;
  }
  guint8 *data = ok ? g_malloc0((gsize)st.st_size + 1) : NULL;
  gssize got = ok ? read(fd, data, (gsize)st.st_size) : 0;
  close(fd);
  if (ok && got != st.st_size) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO,
                "%s: could not read the whole file", path);
    memset(data, 0, (gsize)st.st_size);
    g_free(data);
    ok = FALSE;
  }
  if (ok) {
    *data_r = data;
    *length_r = (gsize)st.st_size;
  }
  return ok;
}

/* --- The public half ------------------------------------------------------ */

static char *dkim_public_key(EVP_PKEY *key, DkimKeyType type) {
  if (type == DKIM_KEY_ED25519) {
    guint8 raw[32];
    size_t length = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &length) != 1)
      return NULL;
    return g_base64_encode(raw, length);
  }
  unsigned char *der = NULL;
  int length = i2d_PUBKEY(key, &der);
  if (length <= 0)
    return NULL;
  char *text = g_base64_encode(der, (gsize)length);
  OPENSSL_free(der);
  return text;
}

gboolean dkim_key_describe(const guint8 *pem, gsize length,
                           DkimKeyType *type_r, guint *bits_r,
                           char **public_key_r, EVP_PKEY **pkey_r,
                           GError **error) {
  g_autoptr(BIO) bio = BIO_new_mem_buf(pem, (int)length);
  g_autoptr(EVP_PKEY) key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  if (key == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "no PEM private key in it");
    return FALSE;
  }
  switch (EVP_PKEY_get_base_id(key)) {
  case EVP_PKEY_RSA:
    *type_r = DKIM_KEY_RSA;
    break;
  case EVP_PKEY_ED25519:
    *type_r = DKIM_KEY_ED25519;
    break;
  default:
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "a %s key; DKIM signs with RSA or Ed25519 keys only",
                OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
    return FALSE;
  }
  *bits_r = (guint)EVP_PKEY_get_bits(key);
  *public_key_r = dkim_public_key(key, *type_r);
  if (*public_key_r == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "cannot derive its public key");
    return FALSE;
  }
  if (pkey_r != NULL)
    *pkey_r = g_steal_pointer(&key);
  return TRUE;
}

EVP_PKEY_CTX *dkim_rsa_sign_context_new(EVP_PKEY *pkey) {
  EVP_PKEY_CTX *context = EVP_PKEY_CTX_new(pkey, NULL);
  if (context != NULL &&
      (EVP_PKEY_sign_init(context) != 1 ||
       EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) != 1 ||
       EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) != 1))
    g_clear_pointer(&context, EVP_PKEY_CTX_free);
  return context;
}

/* --- The record file beside the key --------------------------------------- */

/* The record text of a zone-file line (its quoted strings joined), or the
 * whole text when it has no quotes. */
static char *dkim_record_from_zone_text(const char *text) {
  GString *out = g_string_new(NULL);
  gboolean quoted = FALSE, any = FALSE;
  for (const char *p = text; *p != '\0'; p++) {
    if (*p == '"') {
      quoted = !quoted;
      any = TRUE;
    } else if (quoted) {
      g_string_append_c(out, *p);
    }
  }
  if (!any)
    g_string_assign(out, text);
  return g_string_free(out, FALSE);
}

static gboolean dkim_key_match_record(const DkimKey *key, GError **error) {
  g_autofree char *base = g_strndup(key->path, strlen(key->path) - 4);
  g_autofree char *txt_path = g_strconcat(base, ".txt", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents(txt_path, &text, NULL, NULL))
    return TRUE; /* no record file: nothing to compare */
  g_autofree char *record_text = dkim_record_from_zone_text(text);
  g_auto(DkimRecord) record = {0};
  g_autoptr(GError) local = NULL;
  if (!dkim_record_parse(record_text, &record, &local)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: not a DKIM key record (%s); fix: postilion dkim dns "
                "DOMAIN %s > %s",
                txt_path, local->message, key->selector, txt_path);
    return FALSE;
  }
  if (record.type != key->type ||
      g_strcmp0(record.public_key, key->public_key) != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s holds a %s key but its record %s says k=%s%s; the "
                "published record must belong to the key: regenerate it with "
                "`postilion dkim dns DOMAIN %s > %s` and publish that, or put "
                "the matching key back",
                key->path, dkim_key_type_to_string(key->type), txt_path,
                dkim_key_type_to_string(record.type),
                record.type == key->type ? " with another public key" : "",
                key->selector, txt_path);
    return FALSE;
  }
  return TRUE;
}

DkimKey *dkim_key_load(const char *directory, const char *domain,
                       const char *selector, const char *reader,
                       guint min_bits, GError **error) {
  g_autoptr(DkimKey) key = g_new0(DkimKey, 1);
  key->selector = g_strdup(selector);
  g_autofree char *name = g_strconcat(selector, ".key", NULL);
  key->path = g_build_filename(directory, domain, name, NULL);
  if (!dkim_key_read(key->path, reader, &key->pem, &key->pem_length, error))
    return NULL;
  g_autoptr(GError) local = NULL;
  if (!dkim_key_describe(key->pem, key->pem_length, &key->type, &key->bits,
                         &key->public_key, &key->pkey, &local)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: %s; fix: postilion dkim genkey %s %s [--type "
                "rsa|ed25519]",
                key->path, local->message, domain, selector);
    return NULL;
  }
  if (key->type == DKIM_KEY_RSA && key->bits < min_bits) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: a %u-bit RSA key, under min_key_bits (%u): receivers "
                "would fail its signatures; fix: postilion dkim genkey %s "
                "NEW-SELECTOR --bits 2048",
                key->path, key->bits, min_bits, domain);
    return NULL;
  }
  if (!dkim_key_match_record(key, error))
    return NULL;
  if (key->type == DKIM_KEY_RSA) /* NULL: each signature reports why */
    key->rsa_sign = dkim_rsa_sign_context_new(key->pkey);
  return g_steal_pointer(&key);
}

/* --- Generation ----------------------------------------------------------- */

char *dkim_key_generate(DkimKeyType type, guint bits, GError **error) {
  g_autoptr(EVP_PKEY) key =
      type == DKIM_KEY_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)
                           : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  g_autoptr(BIO) bio = BIO_new(BIO_s_mem());
  if (key == NULL ||
      !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "OpenSSL could not generate a %s key",
                dkim_key_type_to_string(type));
    return NULL;
  }
  char *data = NULL;
  long length = BIO_get_mem_data(bio, &data);
  return g_strndup(data, (gsize)length);
}
