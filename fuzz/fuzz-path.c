/* fuzz-path.c - fuzzes the MAIL/RCPT path, parameter and xtext parsers
 * (RFC 3461 xtext and RFC 6533 utf-8-addr-xtext, both round-tripped).
 *
 * Input: one flags octet (bit 0: RCPT, bit 1: allow UTF-8, bits 2-7: the
 * SIZE limit), then the argument ("FROM:<a@b> SIZE=1").  Beyond "no crash,
 * no leak" it checks what a successful parse promises: the limits, that
 * address = local_part "@" domain, that the domain or literal passes the
 * public checks, that a literal agrees with inet_pton(), and that xtext
 * decoding round-trips through the encoder; the lenient parser (a path
 * without brackets too) keeps the same promises and takes all that the
 * strict one takes, as the same address.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp-address.h"
#include "smtp/smtp-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A literal we accept is one the resolver library accepts too. */
static void literal_check(const char *domain) {
  gsize length = strlen(domain);
  g_assert_true(pst_smtp_address_literal_is_valid(domain, length));
  g_autofree char *inner = g_strndup(domain + 1, length - 2);
  guint8 address[16];
  if (g_ascii_strncasecmp(inner, "IPv6:", 5) == 0)
    g_assert_cmpint(inet_pton(AF_INET6, inner + 5, address), ==, 1);
  else if (strchr(inner, ':') == NULL)
    g_assert_cmpint(inet_pton(AF_INET, inner, address), ==, 1);
}

static void path_promises(const PstSmtpPath *path, PstSmtpPathKind kind) {
  g_assert_nonnull(path->params);
  if (path->domain == NULL) {
    g_assert_true(strcmp(path->address, "") == 0 ||
                  strcmp(path->address, "postmaster") == 0);
    return;
  }
  gsize local = strlen(path->local_part), domain = strlen(path->domain);
  g_assert_cmpuint(local, >, 0);
  g_assert_cmpuint(local, <=, PST_SMTP_MAX_LOCAL_PART);
  g_assert_cmpuint(domain, <=, PST_SMTP_MAX_DOMAIN);
  g_assert_cmpuint(strlen(path->address), ==, local + 1 + domain);
  g_assert_cmpuint(strlen(path->address) + 2, <=, PST_SMTP_MAX_PATH);
  g_assert_true(g_str_has_prefix(path->address, path->local_part));
  g_assert_true(g_str_has_suffix(path->address, path->domain));
  g_assert_true(g_utf8_validate(path->address, -1, NULL));
  if (path->domain[0] == '[')
    literal_check(path->domain);
  else
    g_assert_true(pst_smtp_domain_is_valid(path->domain, domain, path->utf8));
  g_assert_true(strchr(path->domain, '@') == NULL);
}

static void xtext_round_trip(const char *text, gsize length) {
  g_autofree char *decoded = NULL;
  if (!pst_xtext_decode(text, length, &decoded))
    return;
  g_autofree char *encoded = pst_xtext_encode(decoded);
  g_autofree char *again = NULL;
  g_assert_true(pst_xtext_decode(encoded, strlen(encoded), &again));
  g_assert_cmpstr(again, ==, decoded);
}

/* utf-8-addr-xtext (RFC 6533): what decodes is UTF-8, and its encoding
 * (as we relay a utf-8 ORCPT) is ASCII and decodes back to it. */
static void utf8_addr_round_trip(const char *text, gsize length) {
  g_autofree char *utf8 = NULL;
  if (!pst_utf8_addr_xtext_decode(text, length, &utf8))
    return;
  g_assert_true(g_utf8_validate(utf8, -1, NULL));
  g_autofree char *encoded = pst_utf8_addr_xtext_encode(utf8);
  g_assert_true(g_str_is_ascii(encoded));
  g_autofree char *again = NULL;
  g_assert_true(pst_utf8_addr_xtext_decode(encoded, strlen(encoded), &again));
  g_assert_cmpstr(again, ==, utf8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  PstSmtpPathKind kind = data[0] & 1 ? PST_SMTP_PATH_RCPT : PST_SMTP_PATH_MAIL;
  gboolean allow_utf8 = (data[0] & 2) != 0;
  guint64 max_size = (guint64)(data[0] >> 2) * 1000;
  const char *argument = (const char *)data + 1;
  gsize length = size - 1;

  g_autoptr(PstSmtpPath) path = NULL;
  const PstSmtpReply *reply =
      pst_smtp_path_parse(argument, length, kind, allow_utf8, &path);
  g_assert_true((reply == NULL) == (path != NULL));
  if (path != NULL) {
    path_promises(path, kind);
    PstMailParams mail;
    if (pst_smtp_mail_params_parse(path->params, max_size, &mail) == NULL)
      pst_mail_params_clear(&mail);
    PstRcptParams rcpt;
    if (pst_smtp_rcpt_params_parse(path->params, &rcpt) == NULL)
      pst_rcpt_params_clear(&rcpt);
  }
  /* Lenient parsing (strict_envelopes = false) keeps the same promises,
   * and takes whatever strict parsing takes, as the same address. */
  g_autoptr(PstSmtpPath) lenient = NULL;
  const PstSmtpReply *lenient_reply = pst_smtp_path_parse_lenient(
      argument, length, kind, allow_utf8, &lenient);
  g_assert_true((lenient_reply == NULL) == (lenient != NULL));
  if (lenient != NULL)
    path_promises(lenient, kind);
  if (path != NULL)
    g_assert_cmpstr(lenient->address, ==, path->address);
  xtext_round_trip(argument, length);
  utf8_addr_round_trip(argument, length);
  if (length > 0 && argument[0] == '[')
    if (pst_smtp_address_literal_is_valid(argument, length) &&
        memchr(argument, '\0', length) == NULL) {
      g_autofree char *literal = g_strndup(argument, length);
      literal_check(literal);
    }
  if (pst_smtp_domain_is_valid(argument, length, TRUE))
    g_assert_true(memchr(argument, '@', length) == NULL);
  return 0;
}
