/* test-dkim.c - unit tests of the DKIM plugin's pure parts and key files:
 * names (d=, s=), key records, zone-file lines, the decision table of one
 * signature (RFC 8301 policy included), and the key file checks
 * (permissions, algorithm, record file beside the key).
 */
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "dkim.h"

static void test_domain_names(void) {
  static const struct {
    const char *name;
    gboolean domain;
    gboolean selector;
  } cases[] = {
      {"example.org", TRUE, TRUE},
      {"mail-1.example.org", TRUE, TRUE},
      {"org", FALSE, TRUE},
      {"", FALSE, FALSE},
      {"example.org.", FALSE, FALSE},
      {"-bad.example.org", FALSE, FALSE},
      {"bad-.example.org", FALSE, FALSE},
      {"a..b", FALSE, FALSE},
      {"2026-12_rsa", FALSE, TRUE},
      {"ex(ample).org", FALSE, FALSE},
      {"example.org; dkim=pass", FALSE, FALSE},
      {"ex ample.org", FALSE, FALSE},
      {"exämple.org", FALSE, FALSE},
      {"xn--exmple-cua.org", TRUE, TRUE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_assert_cmpint(dkim_domain_is_valid(cases[i].name), ==, cases[i].domain);
    g_assert_cmpint(dkim_selector_is_valid(cases[i].name), ==,
                    cases[i].selector);
  }
  char label[70];
  memset(label, 'a', 64);
  strcpy(label + 64, ".org");
  g_assert_false(dkim_domain_is_valid(label));
}

static void test_record_parse(void) {
  static const struct {
    const char *text;
    gboolean ok;
    DkimKeyType type;
    const char *key;
  } cases[] = {
      {"v=DKIM1; k=rsa; p=QUJD", TRUE, DKIM_KEY_RSA, "QUJD"},
      {"v=DKIM1; k=ed25519; p=QUJD", TRUE, DKIM_KEY_ED25519, "QUJD"},
      {"p=QU JD", TRUE, DKIM_KEY_RSA, "QUJD"},
      {"v=DKIM1; h=sha256; p=QUJD;", TRUE, DKIM_KEY_RSA, "QUJD"},
      {"v=DKIM1; p=", TRUE, DKIM_KEY_RSA, ""},
      {"k=rsa; v=DKIM1; p=QUJD", FALSE, 0, NULL},
      {"v=DKIM2; p=QUJD", FALSE, 0, NULL},
      {"v=DKIM1; k=dsa; p=QUJD", FALSE, 0, NULL},
      {"v=DKIM1; p=QUJD; p=QUJD", FALSE, 0, NULL},
      {"v=DKIM1; k=rsa", FALSE, 0, NULL},
      {"v=DKIM1; p=QU!D", FALSE, 0, NULL},
      {"v=DKIM1; p=QUJ", FALSE, 0, NULL},
      {"v=DKIM1; garbage; p=QUJD", FALSE, 0, NULL},
      {"v=spf1 -all", FALSE, 0, NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_auto(DkimRecord) record = {0};
    g_autoptr(GError) error = NULL;
    gboolean ok = dkim_record_parse(cases[i].text, &record, &error);
    g_assert_cmpint(ok, ==, cases[i].ok);
    if (!ok) {
      g_assert_nonnull(error);
      continue;
    }
    g_assert_cmpint(record.type, ==, cases[i].type);
    g_assert_cmpstr(record.public_key, ==, cases[i].key);
  }
}

static void test_record_flags(void) {
  g_auto(DkimRecord) plain = {0};
  g_assert_true(dkim_record_parse("v=DKIM1; p=QUJD", &plain, NULL));
  g_assert_true(plain.sha1 && plain.sha256 && !plain.not_email &&
                !plain.testing && !plain.strict);
  g_auto(DkimRecord) flags = {0};
  g_assert_true(dkim_record_parse(
      "v=DKIM1; h=sha256 : future; s=web; t=y:s:z; p=QUJD", &flags, NULL));
  g_assert_true(!flags.sha1 && flags.sha256 && flags.not_email &&
                flags.testing && flags.strict);
  g_auto(DkimRecord) star = {0};
  g_assert_true(dkim_record_parse("v=DKIM1;; s=*; p=;", &star, NULL));
  g_assert_false(star.not_email);
  g_assert_cmpstr(star.public_key, ==, "");
}

#define SIG_TAIL "; bh=QUJD; b=QU\r\n\tJD"

static void test_signature_parse(void) {
  static const struct {
    const char *text;
    const char *problem; /* NULL: parses */
  } cases[] = {
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=From:To" SIG_TAIL, NULL},
      {"v=1; a=ed25519-sha256; c=relaxed; d=example.org; s=s; "
       "h=fr\r\n\tom; i=a@sub.example.org; l=10; t=5; x=6" SIG_TAIL,
       NULL},
      {"v=1; a=rsa-sha1; d=example.org; s=s; h=subject" SIG_TAIL,
       "h= does not sign From"},
      {"v=1; v=1; a=rsa-sha256; d=example.org; s=s; h=from" SIG_TAIL,
       "tag twice"},
      {"a=rsa-sha256; d=example.org; s=s; h=from" SIG_TAIL, "no v="},
      {"v=2; a=rsa-sha256; d=example.org; s=s; h=from" SIG_TAIL, "v="},
      {"v=1; a=rsa-md5; d=example.org; s=s; h=from" SIG_TAIL, "unknown"},
      {"v=1; a=rsa-sha256; c=loose; d=example.org; s=s; h=from" SIG_TAIL,
       "canonicalization"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; bh=QUJD; b=QU!D",
       "b= is not base64"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; bh=; b=QUJD",
       "empty bh="},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; bh=QUJD",
       "no b="},
      {"v=1; a=rsa-sha256; s=s; h=from" SIG_TAIL, "no d="},
      {"v=1; a=rsa-sha256; d=example.org; h=from" SIG_TAIL, "no s="},
      {"v=1; a=rsa-sha256; d=example.org; s=s" SIG_TAIL, "no h="},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=a@example.com"
       SIG_TAIL, "i= domain"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; i=a@badexample.org"
       SIG_TAIL, "i= domain"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; l=x" SIG_TAIL,
       "l= is not"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; t=9; x=8" SIG_TAIL,
       "x= is before t="},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; q=http" SIG_TAIL,
       "q="},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; =x" SIG_TAIL,
       "bad tag name"},
      {"v=1; a=rsa-sha256; d=example.org; s=s; h=from; junk" SIG_TAIL,
       "without '='"},
      {"v=1; a=rsa-sha256; d=exa\001mple.org; s=s; h=from" SIG_TAIL,
       "control octet"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    DkimSignature sig;
    g_autoptr(GError) error = NULL;
    gboolean ok = dkim_signature_parse(cases[i].text, strlen(cases[i].text),
                                       &sig, &error);
    g_test_message("%s: %s", cases[i].text, ok ? "ok" : error->message);
    if (cases[i].problem == NULL) {
      g_assert_no_error(error);
      g_assert_true(ok);
      g_assert_cmpstr(sig.domain, ==, "example.org");
      g_assert_cmpuint(sig.body_hash_length, ==, 3);
      g_assert_cmpstr(sig.b_text, ==, "QUJD");
      /* b= blanked where it stands: "b=" and nothing after it. */
      g_assert_cmpuint(sig.b_end, ==, strlen(cases[i].text));
      g_assert_true(strncmp(cases[i].text + sig.b_start - 2, "b=", 2) == 0);
    } else {
      g_assert_false(ok);
      g_assert_nonnull(strstr(error->message, cases[i].problem));
    }
    dkim_signature_clear(&sig);
  }
  DkimSignature sig;
  const char *relaxed = "v=1; a=ed25519-sha256; c=relaxed; d=example.org; "
                        "s=s; h=fr\r\n\tom; i=a@sub.example.org; l=10; "
                        "t=5; x=6" SIG_TAIL;
  g_assert_true(dkim_signature_parse(relaxed, strlen(relaxed), &sig, NULL));
  g_assert_cmpint(sig.header_canon, ==, DKIM_CANON_RELAXED_);
  g_assert_cmpint(sig.body_canon, ==, DKIM_CANON_SIMPLE_);
  g_assert_cmpstr(sig.headers[0], ==, "from");
  g_assert_cmpint(sig.length, ==, 10);
  g_assert_cmpint(sig.timestamp, ==, 5);
  g_assert_cmpint(sig.expires, ==, 6);
  dkim_signature_clear(&sig);
}

static void test_zone_line(void) {
  g_autofree char *short_line =
      dkim_record_zone_line("example.org", "s1", "v=DKIM1; k=ed25519; p=AA");
  g_assert_cmpstr(short_line, ==,
                  "s1._domainkey.example.org.\tIN\tTXT\t"
                  "\"v=DKIM1; k=ed25519; p=AA\"\n");
  g_autofree char *long_record = g_strnfill(600, 'A');
  g_autofree char *line =
      dkim_record_zone_line("example.org", "s1", long_record);
  /* Three strings of 255, 255 and 90 octets, in parentheses. */
  g_assert_true(g_str_has_suffix(line, " )\n"));
  g_assert_nonnull(strstr(line, "( \""));
  guint quotes = 0;
  for (const char *p = line; *p; p++)
    quotes += *p == '"';
  g_assert_cmpuint(quotes, ==, 6);
  g_autofree char *a255 = g_strnfill(255, 'A');
  g_autofree char *quoted = g_strdup_printf("\"%s\"", a255);
  g_assert_nonnull(strstr(line, quoted));
}

static DkimCheck good_check(void) {
  return (DkimCheck){.domain = "example.org",
                     .algorithm = "rsa-sha256",
                     .lookup = DKIM_LOOKUP_FOUND,
                     .passed = TRUE,
                     .key_bits = 2048,
                     .signed_length = -1,
                     .body_length = 100,
                     .signed_at = 1000000,
                     .expires_at = -1,
                     .now = 1000100,
                     .min_key_bits = 1024};
}

#define DECIDE(label, statement, expected)                                     \
  do {                                                                         \
    DkimCheck check = good_check();                                            \
    statement;                                                                 \
    g_autofree char *reason = NULL;                                            \
    const char *result = dkim_check_decide(&check, &reason);                   \
    g_assert_cmpstr(result, ==, expected);                                     \
    g_assert_nonnull(reason);                                                  \
    g_test_message("%s: %s (%s)", label, result, reason);                      \
  } while (0)

static void test_decide_table(void) {
  DECIDE("good", (void)0, "pass");
  DECIDE("ed25519", (check.algorithm = "ed25519-sha256", check.ed25519 = TRUE,
                     check.key_bits = 0),
         "pass");
  DECIDE("bad d=", check.domain = "evil.org\"; dkim=pass", "permerror");
  DECIDE("no d=", check.domain = NULL, "permerror");
  DECIDE("timeout", check.lookup = DKIM_LOOKUP_TEMPFAIL, "temperror");
  DECIDE("no key", check.lookup = DKIM_LOOKUP_NOT_FOUND, "permerror");
  DECIDE("malformed key", check.lookup = DKIM_LOOKUP_MALFORMED, "permerror");
  DECIDE("revoked", check.lookup = DKIM_LOOKUP_REVOKED, "fail");
  DECIDE("expired", check.expires_at = 999999, "fail");
  DECIDE("future", check.signed_at = 2000000, "fail");
  DECIDE("bad b=", (check.problem = "b= is not base64", check.passed = FALSE),
         "permerror");
  DECIDE("body changed", (check.passed = FALSE, check.body_mismatch = TRUE),
         "fail");
  DECIDE("header changed", check.passed = FALSE,
         "fail");
  DECIDE("rsa-sha1", check.algorithm = "rsa-sha1", "fail");
  DECIDE("rsa-sha1 allowed",
         (check.algorithm = "rsa-sha1", check.allow_rsa_sha1 = TRUE), "pass");
  DECIDE("1024 under 2048", (check.key_bits = 1024, check.min_key_bits = 2048),
         "fail");
  DECIDE("l= short", check.signed_length = 10, "policy");
  DECIDE("x= past", check.expires_at = 1000099, "fail");
  DECIDE("x= ahead", check.expires_at = 1000101, "pass");
  DECIDE("t= within drift", check.signed_at = 1000100 + DKIM_CLOCK_DRIFT,
         "pass");
  DECIDE("t= beyond drift", check.signed_at = 1000101 + DKIM_CLOCK_DRIFT,
         "fail");
  DECIDE("k=ed25519 for rsa-sha256",
         (check.key_type_known = TRUE, check.key_type = DKIM_KEY_ED25519),
         "permerror");
  DECIDE("l= whole", check.signed_length = 100, "pass");
}

/* --- Key files ------------------------------------------------------------ */

static char *write_key(const char *directory, const char *selector,
                       DkimKeyType type, guint bits, mode_t mode) {
  g_autofree char *pem = dkim_key_generate(type, bits, NULL);
  g_assert_nonnull(pem);
  g_autofree char *dir = g_build_filename(directory, "example.org", NULL);
  g_mkdir_with_parents(dir, 0750);
  g_autofree char *name = g_strconcat(selector, ".key", NULL);
  char *path = g_build_filename(dir, name, NULL);
  g_assert_true(g_file_set_contents(path, pem, -1, NULL));
  g_assert_cmpint(g_chmod(path, mode), ==, 0);
  return path;
}

static void test_key_files(void) {
  g_autofree char *directory = g_dir_make_tmp("test-dkim-XXXXXX", NULL);
  g_autofree char *rsa =
      write_key(directory, "rsa", DKIM_KEY_RSA, 2048, 0640);
  g_autofree char *ed = write_key(directory, "ed", DKIM_KEY_ED25519, 0, 0600);
  g_autofree char *open = write_key(directory, "open", DKIM_KEY_ED25519, 0, 0644);
  g_autofree char *small = write_key(directory, "small", DKIM_KEY_RSA, 1024, 0600);
  g_autoptr(GError) error = NULL;

  g_autoptr(DkimKey) key =
      dkim_key_load(directory, "example.org", "rsa", NULL, 1024, &error);
  g_assert_no_error(error);
  g_assert_cmpint(key->type, ==, DKIM_KEY_RSA);
  g_assert_cmpuint(key->bits, ==, 2048);
  g_autoptr(DkimKey) edkey =
      dkim_key_load(directory, "example.org", "ed", NULL, 1024, &error);
  g_assert_no_error(error);
  g_assert_cmpint(edkey->type, ==, DKIM_KEY_ED25519);
  g_assert_cmpuint(strlen(edkey->public_key), ==, 44);

  g_assert_null(dkim_key_load(directory, "example.org", "open", NULL, 1024,
                              &error));
  g_assert_nonnull(strstr(error->message, "chmod 0640"));
  g_assert_nonnull(strstr(error->message, open));
  g_clear_error(&error);
  g_assert_null(dkim_key_load(directory, "example.org", "small", NULL, 2048,
                              &error));
  g_assert_nonnull(strstr(error->message, "min_key_bits"));
  g_clear_error(&error);
  g_assert_null(dkim_key_load(directory, "example.org", "absent", NULL, 1024,
                              &error));
  g_assert_nonnull(strstr(error->message, "genkey"));
  g_clear_error(&error);

  /* The record file beside the key must name the same algorithm. */
  g_autofree char *record = dkim_record_format(DKIM_KEY_ED25519, "AAAA");
  g_autofree char *txt = g_build_filename(directory, "example.org", "rsa.txt",
                                          NULL);
  g_autofree char *line = dkim_record_zone_line("example.org", "rsa", record);
  g_assert_true(g_file_set_contents(txt, line, -1, NULL));
  g_assert_null(dkim_key_load(directory, "example.org", "rsa", NULL, 1024,
                              &error));
  g_assert_nonnull(strstr(error->message, "k=ed25519"));
  g_clear_error(&error);
  g_autofree char *right = dkim_record_format(DKIM_KEY_RSA, key->public_key);
  g_autofree char *right_line =
      dkim_record_zone_line("example.org", "rsa", right);
  g_assert_true(g_file_set_contents(txt, right_line, -1, NULL));
  g_autoptr(DkimKey) again =
      dkim_key_load(directory, "example.org", "rsa", NULL, 1024, &error);
  g_assert_no_error(error);

  /* Not a private key at all. */
  g_assert_true(g_file_set_contents(ed, "hello\n", -1, NULL));
  g_assert_cmpint(g_chmod(ed, 0600), ==, 0);
  g_assert_null(dkim_key_load(directory, "example.org", "ed", NULL, 1024,
                              &error));
  g_assert_nonnull(strstr(error->message, "no PEM private key"));
  g_clear_error(&error);
  g_autofree char *command = g_strdup_printf("rm -rf '%s'", directory);
  g_assert_cmpint(system(command), ==, 0);
}

static void test_from_domain(void) {
  g_autofree char *a = dkim_from_domain("Alice <alice@Example.ORG>");
  g_assert_cmpstr(a, ==, "example.org");
  g_autofree char *b = dkim_from_domain("bob@example.net");
  g_assert_cmpstr(b, ==, "example.net");
  g_autofree char *c = dkim_from_domain("\"Doe, J\" <j@example.com>");
  g_assert_cmpstr(c, ==, "example.com");
  g_assert_null(dkim_from_domain("a@example.org, b@example.net"));
  g_assert_null(dkim_from_domain("A <a@example.org>, B <b@example.net>"));
  g_assert_null(dkim_from_domain("nobody"));
  g_assert_null(dkim_from_domain(NULL));
}

/* --- Configuration --------------------------------------------------------- */

/* Loads `text` (keys of [plugin:dkim]) and returns the error text, or NULL
 * when it loads. */
static char *config_error(const char *text) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_assert_true(g_key_file_load_from_data(keyfile, text, -1, 0, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(DkimConfig) config =
      dkim_config_load(keyfile, "plugin:dkim", NULL, &error);
  g_assert_true((config == NULL) == (error != NULL));
  return error != NULL ? g_strdup(error->message) : NULL;
}

static void test_config(void) {
  static const struct {
    const char *text;
    const char *error; /* a part of it, or NULL */
  } cases[] = {
      {"[plugin:dkim]\n", NULL},
      {"[plugin:dkim]\ncanonicalization = relaxed\n", NULL},
      {"[plugin:dkim]\ncanonicalization = relaxd/simple\n",
       "canonicalization: \"relaxd/simple\""},
      {"[plugin:dkim]\nrsa_sha1 = maybe\n", "rsa_sha1"},
      {"[plugin:dkim]\nheaders = to;subject\n", "From must be signed"},
      {"[plugin:dkim]\nheaders = From;bad name\n", "not a header field name"},
      {"[plugin:dkim]\nkey_directory = keys\n", "absolute path"},
      {"[plugin:dkim]\nmax_signatures = 0\n", "max_signatures"},
      {"[plugin:dkim]\nsigner = yes\n", "signer"},
      {"[plugin:dkim]\nexpire = soon\n", "expire"},
      {"[plugin:dkim:bad_domain]\nselectors = s\n", "not a domain name"},
      {"[plugin:dkim:example.org]\nselectors = s\nsigning_domain = x\n",
       "signing_domain"},
      {"[plugin:dkim:example.org]\nselectors = a b\n", "not a selector"},
      {"[plugin:dkim]\nkey_directory = /nonexistent\n"
       "[plugin:dkim:example.org]\nselectors = s\n",
       "/nonexistent/example.org/s.key"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *error = config_error(cases[i].text);
    g_test_message("%s -> %s", cases[i].text, error ? error : "ok");
    if (cases[i].error == NULL)
      g_assert_null(error);
    else
      g_assert_nonnull(strstr(error, cases[i].error));
  }
}

static void test_config_local_domain(void) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_autofree char *directory = g_dir_make_tmp("test-dkim-XXXXXX", NULL);
  g_autofree char *key = write_key(directory, "s", DKIM_KEY_ED25519, 0, 0600);
  g_autofree char *text = g_strdup_printf(
      "[server]\nhostname = MX.mail.Example.ORG\n"
      "[plugin:dkim]\nkey_directory = %s\n"
      "[plugin:dkim:example.org]\nselectors = s\n",
      directory);
  g_assert_true(g_key_file_load_from_data(keyfile, text, -1, 0, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(DkimConfig) config =
      dkim_config_load(keyfile, "plugin:dkim", NULL, &error);
  g_assert_no_error(error);
  const DkimDomain *local = dkim_config_find_local(config);
  g_assert_nonnull(local);
  g_assert_cmpstr(local->signing_domain, ==, "example.org");
  g_assert_true(dkim_config_find_domain(config, "EXAMPLE.org") == local);
  g_assert_null(dkim_config_find_domain(config, "org"));
  g_autofree char *command = g_strdup_printf("rm -rf '%s'", directory);
  g_assert_cmpint(system(command), ==, 0);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dkim/names", test_domain_names);
  g_test_add_func("/dkim/record/parse", test_record_parse);
  g_test_add_func("/dkim/record/flags", test_record_flags);
  g_test_add_func("/dkim/signature/parse", test_signature_parse);
  g_test_add_func("/dkim/record/zone-line", test_zone_line);
  g_test_add_func("/dkim/decide", test_decide_table);
  g_test_add_func("/dkim/key-files", test_key_files);
  g_test_add_func("/dkim/from-domain", test_from_domain);
  g_test_add_func("/dkim/config", test_config);
  g_test_add_func("/dkim/config/local-domain", test_config_local_domain);
  return g_test_run();
}
