/* bench-dkim-sign.c - what one DKIM signature costs in CPU, our signer
 * against the raw signature alone, in one process on one core.
 *
 *   BUILD/plugins/dkim/bench-dkim-sign [COUNT]     (default 2000)
 *
 * Signs a 1 KiB message (five header fields, the default header lists,
 * relaxed/simple) COUNT times with a fresh RSA-2048 key and then with an
 * Ed25519 key, through dkim_signing_*() exactly as the plugin does, and
 * then makes COUNT raw signatures of a digest with the same key (what
 * `openssl speed rsa2048` measures).  Prints one line per algorithm:
 * milliseconds of process CPU per message for both, and their ratio.
 * Compare with `openssl speed -seconds 5 rsa2048` run in the same window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "dkim.h"

static const char *const fields[] = {
    "From: Alice <alice@example.org>", "To: bob@example.org",
    "Subject: a bench message",        "Date: Sun, 06 Dec 2026 06:00:00 +0000",
    "Message-ID: <bench@example.org>", NULL};

static double cpu_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void sign_message(const DkimSignSpec *spec, const EVP_MD *sha256,
                         const GString *body) {
  g_autoptr(DkimSigning) signing = dkim_signing_new(DKIM_CANON_SIMPLE_, sha256);
  for (guint i = 0; fields[i] != NULL; i++)
    dkim_signing_add_header(signing, fields[i], strlen(fields[i]));
  dkim_signing_add_body(signing, (const guint8 *)body->str, body->len);
  g_autofree char *value = dkim_signing_sign(signing, spec, NULL);
  g_assert_nonnull(value);
}

/* What `openssl speed` times: one prepared context, signing again and
 * again (an RSA key's context as the signer keeps it). */
static void sign_raw(const DkimKey *key) {
  guint8 digest[32] = {1}, signature[1024];
  size_t length = sizeof signature;
  if (key->type == DKIM_KEY_ED25519) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    g_assert(EVP_DigestSignInit(context, NULL, NULL, NULL, key->pkey) == 1 &&
             EVP_DigestSign(context, signature, &length, digest, 32) == 1);
    EVP_MD_CTX_free(context);
    return;
  }
  g_assert(EVP_PKEY_sign(key->rsa_sign, signature, &length, digest, 32) == 1);
}

static void bench_key(DkimKeyType type, guint count, const GString *body) {
  g_autoptr(GError) error = NULL;
  g_autofree char *pem = dkim_key_generate(type, 2048, &error);
  g_assert_no_error(error);
  g_autoptr(DkimKey) key = g_new0(DkimKey, 1);
  key->selector = g_strdup("bench");
  key->path = g_strdup("generated");
  g_assert_true(dkim_key_describe((const guint8 *)pem, strlen(pem), &key->type,
                                  &key->bits, &key->public_key, &key->pkey,
                                  &error));
  if (type == DKIM_KEY_RSA)
    key->rsa_sign = dkim_rsa_sign_context_new(key->pkey);
  g_auto(GStrv) headers = g_strsplit(DKIM_DEFAULT_HEADERS, ";", -1);
  g_auto(GStrv) oversign = g_strsplit(DKIM_DEFAULT_OVERSIGN, ";", -1);
  DkimSignSpec spec = {.key = key,
                       .domain = "example.org",
                       .header_canon = DKIM_CANON_RELAXED_,
                       .timestamp = (guint64)time(NULL),
                       .expire_seconds = 10 * 24 * 3600,
                       .headers = (const char *const *)headers,
                       .oversign = (const char *const *)oversign};
  EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* as the plugin */
  double start = cpu_seconds();
  for (guint i = 0; i < count; i++)
    sign_message(&spec, sha256, body);
  double signed_at = cpu_seconds();
  for (guint i = 0; i < count; i++)
    sign_raw(key);
  double raw_at = cpu_seconds();
  double ours = (signed_at - start) * 1000 / count;
  double raw = (raw_at - signed_at) * 1000 / count;
  EVP_MD_free(sha256);
  printf("%-8s %u messages: signer %.3f ms CPU/message, raw signature %.3f "
         "ms, ratio %.2f\n",
         dkim_key_type_to_string(type), count, ours, raw, ours / raw);
}

int main(int argc, char **argv) {
  guint count = argc > 1 ? (guint)strtoul(argv[1], NULL, 10) : 2000;
  if (count == 0) {
    fprintf(stderr, "usage: %s [COUNT]\n", argv[0]);
    return 2;
  }
  g_autoptr(GString) body = g_string_new(NULL);
  while (body->len < 1024)
    g_string_append(body, "A line of the bench message, 1 KiB in all.\r\n");
  bench_key(DKIM_KEY_RSA, count, body);
  bench_key(DKIM_KEY_ED25519, count, body);
  return 0;
}
