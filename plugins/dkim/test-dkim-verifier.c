/* test-dkim-verifier.c - our verifier (dkim-tags.c, dkim-verifier.c,
 * dkim_check_decide()) against libopendkim's, the oracle: every message
 * must get the same verdict per signature from both, classed as pass
 * (our "policy" included: l= is policy, not cryptography), fail or
 * permerror.
 *
 * The messages: generated ones (test-dkim-gen.c) signed by our signer,
 * RSA, Ed25519 and both, every canonicalization; and dkimpy's
 * (testdata/dkimpy-signed.txt, made by testdata/make-dkimpy-signed.py:
 * RSA-SHA256, RSA-SHA1, Ed25519, some with l=).  Each is verified as
 * signed and once more after one mutation of many: a body octet, added
 * lines, a changed or re-spaced signed field, a field added on top, b= or
 * bh= altered, a tag removed, doubled or made invalid, an unknown
 * selector, k= that does not fit a=.  Keys come from a table (no DNS).
 * Policy is off on both sides (rsa-sha1 allowed, any key size).  Then
 * the key record's h=, s= and t= flags against one of our signatures, and
 * t=s against i= equal to d= and in a subdomain of it (signed by
 * libopendkim, which writes i=).  Two
 * known differences are allowed, both RFC 6376 on our side: a tag twice
 * is permerror in ours (3.2) and fail in libopendkim, and a signature
 * that does not parse is reported by ours (permerror) where libopendkim
 * leaves it out of its list when another signature parses.
 */
#include <string.h>

#include <opendkim/dkim.h>

#include "dkim.h"
#include "test-dkim-gen.h"

#define MESSAGES 100
#define SEED 20261207
#define DOMAIN "example.org"

static const char *const signed_headers[] = {
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", NULL};
static const char *const oversigned[] = {"from", "subject", NULL};

/* selector -> key record text; the oracle's and ours. */
static GHashTable *records;
/* Signatures with a tag twice: permerror in ours, not pass in both. */
static guint stricter;

/* --- The oracle ------------------------------------------------------------ */

static DKIM_CBSTAT oracle_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig,
                                     u_char *buffer, size_t size) {
  (void)dkim;
  const char *record =
      g_hash_table_lookup(records, (const char *)dkim_sig_getselector(sig));
  if (record == NULL)
    return DKIM_CBSTAT_NOTFOUND;
  if (strlen(record) >= size)
    return DKIM_CBSTAT_ERROR;
  memcpy(buffer, record, strlen(record) + 1);
  return DKIM_CBSTAT_CONTINUE;
}

static const char *oracle_class(DKIM_SIGINFO *sig) {
  if (DKIM_SIG_CHECK(sig))
    return "pass";
  int error = dkim_sig_geterror(sig);
  g_test_message("  libopendkim: %s", dkim_sig_geterrorstr(error));
  switch (error) {
  case DKIM_SIGERROR_OK:
  case DKIM_SIGERROR_BADSIG:
  case DKIM_SIGERROR_KEYREVOKED:
  case DKIM_SIGERROR_EXPIRED:
  case DKIM_SIGERROR_FUTURE:
    return "fail";
  default:
    return "permerror";
  }
}

static GPtrArray *oracle_verdicts(DKIM_LIB *library, const TestMessage *message) {
  GPtrArray *verdicts = g_ptr_array_new();
  DKIM_STAT status = DKIM_STAT_OK;
  DKIM *dkim = dkim_verify(library, (const u_char *)"test", NULL, &status);
  g_assert_nonnull(dkim);
  for (guint i = 0; i < message->fields->len; i++) {
    const char *field = message->fields->pdata[i];
    (void)dkim_header(dkim, (u_char *)field, strlen(field));
  }
  DKIM_STAT eoh = dkim_eoh(dkim);
  if (eoh != DKIM_STAT_OK) {
    g_test_message("  libopendkim: dkim_eoh: %s (%s)", dkim_getresultstr(eoh),
                   dkim_geterror(dkim));
    /* Escaped: raw 8-bit octets would make the TAP output invalid UTF-8. */
    for (guint i = 0; i < message->fields->len; i++) {
      g_autofree char *shown =
          g_strescape(message->fields->pdata[i], "\t\r\n");
      g_test_message("  | %s", shown);
    }
  }
  if (eoh == DKIM_STAT_OK) {
    if (message->body->len > 0)
      (void)dkim_body(dkim, message->body->data, message->body->len);
    (void)dkim_eom(dkim, NULL);
  }
  DKIM_SIGINFO **sigs = NULL;
  int count = 0;
  DKIM_STAT listed = dkim_getsiglist(dkim, &sigs, &count);
  if (listed != DKIM_STAT_OK)
    g_test_message("  libopendkim: no signatures: %s",
                   dkim_getresultstr(listed));
  else
    for (int i = 0; i < count; i++)
      g_ptr_array_add(verdicts, (gpointer)oracle_class(sigs[i]));
  dkim_free(dkim);
  return verdicts;
}

static DKIM_LIB *oracle_library(void) {
  DKIM_LIB *library = dkim_init(NULL, NULL);
  guint flags = DKIM_LIBFLAGS_FIXCRLF;
  guint min_bits = 0;
  g_assert_nonnull(library);
  g_assert_cmpint(dkim_options(library, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
                               sizeof flags),
                  ==, DKIM_STAT_OK);
  g_assert_cmpint(dkim_options(library, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS,
                               &min_bits, sizeof min_bits),
                  ==, DKIM_STAT_OK);
  dkim_set_key_lookup(library, oracle_key_lookup);
  return library;
}

/* --- Ours ------------------------------------------------------------------ */

static const char *our_class(DkimVerifying *verifying, guint index) {
  const char *domain = NULL, *selector = NULL;
  gboolean parsed =
      dkim_verifying_get_names(verifying, index, &domain, &selector);
  const char *text =
      parsed && selector != NULL ? g_hash_table_lookup(records, selector) : NULL;
  g_auto(DkimRecord) record = {0};
  g_autoptr(DkimPublicKey) key = NULL;
  DkimCheck check = {0};
  check.lookup = !parsed ? DKIM_LOOKUP_NONE
                 : text == NULL ? DKIM_LOOKUP_NOT_FOUND
                                : DKIM_LOOKUP_MALFORMED;
  if (text != NULL && dkim_record_parse(text, &record, NULL)) {
    key = dkim_public_key_new(&record, NULL);
    if (key != NULL) {
      check.lookup = DKIM_LOOKUP_FOUND;
      check.key_type_known = TRUE;
      check.key_type = record.type;
    }
  }
  dkim_verifying_check(verifying, index, key, &check);
  check.now = g_get_real_time() / G_USEC_PER_SEC;
  check.allow_rsa_sha1 = TRUE;
  g_autofree char *reason = NULL;
  const char *result = dkim_check_decide(&check, &reason);
  g_test_message("  ours: %s (%s)", result, reason);
  if (g_str_equal(result, "permerror") && g_str_has_prefix(reason, "tag twice"))
    return "permerror, tag twice";
  return g_str_equal(result, "policy") ? "pass" : result;
}

static GPtrArray *our_verdicts(const TestMessage *message, GRand *rand) {
  g_autoptr(DkimVerifying) verifying = dkim_verifying_new();
  for (guint i = 0; i < message->fields->len; i++) {
    const char *field = message->fields->pdata[i];
    dkim_verifying_add_header(verifying, field, strlen(field));
  }
  dkim_verifying_parse_signatures(verifying, 10);
  feed_cut(message->body, rand, (void (*)(gpointer, const guint8 *, gsize))
                                    dkim_verifying_add_body,
           verifying);
  dkim_verifying_finish_body(verifying);
  GPtrArray *verdicts = g_ptr_array_new();
  for (guint i = 0; i < dkim_verifying_get_count(verifying); i++)
    g_ptr_array_add(verdicts, (gpointer)our_class(verifying, i));
  return verdicts;
}

/* --- Mutations ------------------------------------------------------------- */

/* Replaces the first `from` in field `index` by `to`; FALSE if absent. */
static gboolean replace_in(TestMessage *message, guint index, const char *from,
                           const char *to) {
  char *field = message->fields->pdata[index];
  char *at = strstr(field, from);
  if (at == NULL)
    return FALSE;
  char *changed = g_strdup_printf("%.*s%s%s", (int)(at - field), field, to,
                                  at + strlen(from));
  g_free(field);
  message->fields->pdata[index] = changed;
  return TRUE;
}

static guint find_field(const TestMessage *message, const char *name) {
  for (guint i = 0; i < message->fields->len; i++)
    if (g_ascii_strncasecmp(message->fields->pdata[i], name, strlen(name)) == 0)
      return i;
  g_assert_not_reached();
}

/* Where the value of tag `tag` ("b" or "bh") starts in the signature. */
static char *tag_value(TestMessage *message, const char *tag) {
  char *field = message->fields->pdata[0];
  gsize length = strlen(tag);
  for (char *at = strchr(field, ':'); at != NULL; at = strchr(at + 1, tag[0]))
    if (strncmp(at, tag, length) == 0 && at[length] == '=' &&
        (at[-1] == ';' || g_ascii_isspace(at[-1])))
      return at + length + 1;
  g_assert_not_reached();
}

/* One character of b= (or bh=) changed: still base64. */
static void change_base64(TestMessage *message, const char *tag) {
  char *at = tag_value(message, tag);
  while (!g_ascii_isalnum(*at))
    at++;
  *at = *at == 'A' ? 'B' : 'A';
}

/* b= no longer base64. */
static void spoil_base64(TestMessage *message) {
  char *at = tag_value(message, "b");
  while (!g_ascii_isalnum(*at))
    at++;
  *at = '!';
}

static const char *mutate(TestMessage *message, guint which) {
  static const char *const names[] = {
      "body octet",   "line added",    "empty lines",  "From changed",
      "From spaced",  "From on top",   "b= changed",   "bh= changed",
      "no v=",        "d= twice",      "a= unknown",   "h= without From",
      "c= unknown",   "i= elsewhere",  "unknown s=",   "l= beyond",
      "name case",    "k= mismatch",   "bad base64",   "x= before t="};
  guint from = find_field(message, "From");
  switch (which % G_N_ELEMENTS(names)) {
  case 0:
    if (message->body->len > 0)
      message->body->data[message->body->len / 2] ^= 0x01;
    else
      g_byte_array_append(message->body, (const guint8 *)"x\r\n", 3);
    break;
  case 1:
    g_byte_array_append(message->body, (const guint8 *)"added\r\n", 7);
    break;
  case 2:
    g_byte_array_append(message->body, (const guint8 *)"\r\n\r\n", 4);
    break;
  case 3:
    replace_in(message, from, ":", ": x");
    break;
  case 4:
    replace_in(message, from, ":", ":  \t");
    break;
  case 5:
    g_ptr_array_insert(message->fields, 1, g_strdup("From: evil@evil.test"));
    break;
  case 6:
    change_base64(message, "b");
    break;
  case 7:
    change_base64(message, "bh");
    break;
  case 8:
    replace_in(message, 0, "v=1;", "");
    break;
  case 9:
    replace_in(message, 0, "d=" DOMAIN ";", "d=" DOMAIN "; d=" DOMAIN ";");
    break;
  case 10:
    (void)(replace_in(message, 0, "a=rsa-sha256", "a=rsa-md5") ||
        replace_in(message, 0, "a=ed25519-sha256", "a=ed448-sha256") ||
        replace_in(message, 0, "a=rsa-sha1", "a=dsa-sha1"));
    break;
  case 11:
    (void)(replace_in(message, 0, "from", "sender") ||
        replace_in(message, 0, "From", "Sender"));
    break;
  case 12:
    replace_in(message, 0, "c=", "c=loose/");
    break;
  case 13:
    replace_in(message, 0, "d=" DOMAIN ";", "d=" DOMAIN "; i=@other.test;");
    break;
  case 14:
    replace_in(message, 0, "s=", "s=absent");
    break;
  case 15:
    replace_in(message, 0, "d=" DOMAIN ";", "d=" DOMAIN "; l=999999;");
    break;
  case 16:
    (void)(replace_in(message, from, "From", "FROM") ||
        replace_in(message, from, "FROM", "from"));
    break;
  case 17:
    (void)(replace_in(message, 0, "s=py-rsa", "s=py-ed") ||
        replace_in(message, 0, "s=py-ed", "s=py-rsa") ||
        replace_in(message, 0, "s=sel-rsa", "s=sel-ed") ||
        replace_in(message, 0, "s=sel-ed", "s=sel-rsa"));
    break;
  case 18:
    spoil_base64(message);
    break;
  default:
    replace_in(message, 0, "d=" DOMAIN ";", "d=" DOMAIN "; t=20; x=10;");
    break;
  }
  return names[which % G_N_ELEMENTS(names)];
}

/* --- The comparison -------------------------------------------------------- */

static guint compare(DKIM_LIB *library, const TestMessage *message,
                     GRand *rand, const char *label) {
  g_test_message("%s", label);
  g_autoptr(GPtrArray) theirs = oracle_verdicts(library, message);
  g_autoptr(GPtrArray) ours = our_verdicts(message, rand);
  g_autoptr(GString) text = g_string_new(NULL);
  for (guint i = 0; i < ours->len; i++)
    g_string_append_printf(text, " %s/%s", (char *)ours->pdata[i],
                           i < theirs->len ? (char *)theirs->pdata[i] : "-");
  g_test_message("  ours/libopendkim:%s", text->str);
  /* libopendkim leaves a signature it cannot parse out of its list when
   * another one parses; ours reports it (permerror).  Those are set aside
   * before the lists are compared. */
  if (ours->len > theirs->len)
    for (guint i = ours->len; i > 0 && ours->len > theirs->len; i--)
      if (g_str_has_prefix(ours->pdata[i - 1], "permerror"))
        g_ptr_array_remove_index(ours, i - 1);
  g_assert_cmpuint(ours->len, ==, theirs->len);
  for (guint i = 0; i < ours->len; i++) {
    /* A tag twice is an error (RFC 6376 3.2): permerror in ours;
     * libopendkim takes one of them and fails the signature. */
    if (g_str_equal(ours->pdata[i], "permerror, tag twice")) {
      g_assert_cmpstr(theirs->pdata[i], !=, "pass");
      stricter++;
      continue;
    }
    g_assert_cmpstr(ours->pdata[i], ==, theirs->pdata[i]);
  }
  return ours->len;
}

static TestMessage message_copy(const TestMessage *message) {
  TestMessage copy = {g_ptr_array_new_with_free_func(g_free),
                      g_byte_array_new()};
  for (guint i = 0; i < message->fields->len; i++)
    g_ptr_array_add(copy.fields, g_strdup(message->fields->pdata[i]));
  g_byte_array_append(copy.body, message->body->data, message->body->len);
  return copy;
}

/* As signed, then with one mutation; the verdicts compared. */
static guint compare_both(DKIM_LIB *library, const TestMessage *message,
                          GRand *rand, guint mutation, const char *origin) {
  g_autofree char *label = g_strdup_printf("%s, as signed", origin);
  guint count = compare(library, message, rand, label);
  TestMessage mutated = message_copy(message);
  const char *what = mutate(&mutated, mutation);
  g_autofree char *label2 = g_strdup_printf("%s, %s", origin, what);
  count += compare(library, &mutated, rand, label2);
  test_message_clear(&mutated);
  return count;
}

static char *sign_ours(const DkimKey *key, DkimCanon header, DkimCanon body,
                       const TestMessage *message) {
  g_autoptr(DkimSigning) signing = dkim_signing_new(body, NULL);
  for (guint i = 0; i < message->fields->len; i++) {
    const char *field = message->fields->pdata[i];
    dkim_signing_add_header(signing, field, strlen(field));
  }
  dkim_signing_add_body(signing, message->body->data, message->body->len);
  DkimSignSpec spec = {
      .key = key,
      .domain = DOMAIN,
      .header_canon = header,
      .timestamp = (guint64)(g_get_real_time() / G_USEC_PER_SEC),
      .expire_seconds = 3600,
      .headers = signed_headers,
      .oversign = oversigned};
  g_autoptr(GError) error = NULL;
  char *value = dkim_signing_sign(signing, &spec, &error);
  g_assert_no_error(error);
  return value;
}

static void add_record(const DkimKey *key) {
  g_hash_table_insert(records, g_strdup(key->selector),
                      dkim_record_format(key->type, key->public_key));
}

/* libopendkim refuses a message whose From: holds no address it can
 * parse ("can't determine sender address") before any signature; ours
 * does not read From:.  The generated From: gets an address. */
static void give_address(TestMessage *message, GRand *rand) {
  guint from = find_field(message, "From");
  char *field = message->fields->pdata[from];
  static const char *const values[] = {
      ": a@example.org", ":Someone <a@example.org>",
      ":  \"Some One\"\r\n\t<a@example.org>  ", ": (c) a@example.org"};
  message->fields->pdata[from] = g_strdup_printf(
      "%.4s%s", field, values[g_rand_int_range(rand, 0, G_N_ELEMENTS(values))]);
  g_free(field);
}

static void test_generated(void) {
  g_autoptr(GRand) rand = g_rand_new_with_seed(SEED);
  g_autoptr(DkimKey) rsa = test_key(DKIM_KEY_RSA);
  g_autoptr(DkimKey) ed = test_key(DKIM_KEY_ED25519);
  add_record(rsa);
  add_record(ed);
  DKIM_LIB *library = oracle_library();
  guint compared = 0;
  for (guint m = 0; m < MESSAGES; m++) {
    TestMessage message = {generate_fields(rand), generate_body(rand)};
    give_address(&message, rand);
    DkimCanon header = (DkimCanon)g_rand_int_range(rand, 0, 2);
    DkimCanon body = (DkimCanon)g_rand_int_range(rand, 0, 2);
    /* RSA alone, Ed25519 alone (relaxed headers: libopendkim misreads
     * simple-header Ed25519, see test-dkim-signer.c), or both. */
    guint kind = m % 3;
    if (kind != 0)
      header = DKIM_CANON_RELAXED_;
    if (kind != 1) {
      g_autofree char *value = sign_ours(rsa, header, body, &message);
      g_ptr_array_insert(message.fields, 0,
                         g_strconcat("DKIM-Signature: ", value, NULL));
    }
    if (kind != 0) {
      g_autofree char *value = sign_ours(ed, header, body, &message);
      g_ptr_array_insert(message.fields, 0,
                         g_strconcat("DKIM-Signature: ", value, NULL));
    }
    g_autofree char *origin = g_strdup_printf("generated %u (kind %u)", m, kind);
    compared += compare_both(library, &message, rand, m, origin);
    test_message_clear(&message);
  }
  g_test_message("%u signatures with the same verdict", compared);
  dkim_close(library);
}

static void test_dkimpy(void) {
  g_autofree char *path =
      g_test_build_filename(G_TEST_DIST, "testdata", "dkimpy-signed.txt", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, &error));
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GRand) rand = g_rand_new_with_seed(SEED);
  DKIM_LIB *library = oracle_library();
  guint compared = 0, messages = 0;
  for (guint i = 0; lines[i] != NULL; i++) {
    if (g_str_has_prefix(lines[i], "record ")) {
      char *selector = lines[i] + strlen("record ");
      char *space = strchr(selector, ' ');
      g_hash_table_insert(records, g_strndup(selector, (gsize)(space - selector)),
                          g_strdup(space + 1));
    } else if (g_str_has_prefix(lines[i], "message ")) {
      gsize length = 0;
      g_autofree guint8 *raw =
          g_base64_decode(lines[i] + strlen("message "), &length);
      TestMessage message = test_message_parse(raw, length);
      g_autofree char *origin = g_strdup_printf("dkimpy %u", messages);
      compared += compare_both(library, &message, rand, messages++, origin);
      test_message_clear(&message);
    }
  }
  g_assert_cmpuint(messages, >=, 80);
  g_test_message("%u dkimpy signatures with the same verdict", compared);
  dkim_close(library);
}

/* What the key record allows (RFC 6376 3.6.1): h=, s=, t=s; each refusal
 * is a permerror whatever the signature. */
static void test_key_flags(void) {
  g_autoptr(DkimKey) rsa = test_key(DKIM_KEY_RSA);
  g_autoptr(GRand) rand = g_rand_new_with_seed(SEED);
  TestMessage message = {generate_fields(rand), generate_body(rand)};
  give_address(&message, rand);
  g_autofree char *value =
      sign_ours(rsa, DKIM_CANON_RELAXED_, DKIM_CANON_SIMPLE_, &message);
  g_ptr_array_insert(message.fields, 0,
                     g_strconcat("DKIM-Signature: ", value, NULL));
  static const struct {
    const char *flags;
    const char *result;
  } cases[] = {
      {"", "pass"},
      {"h=sha256; ", "pass"},
      {"h=sha1; ", "permerror"},
      {"s=email; ", "pass"},
      {"s=*; ", "pass"},
      {"s=web; ", "permerror"},
      {"t=y; ", "pass"},
      {"t=s; ", "pass"}, /* no i=: nothing to be strict about */
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text = g_strdup_printf("v=DKIM1; k=rsa; %sp=%s",
                                            cases[i].flags, rsa->public_key);
    g_auto(DkimRecord) record = {0};
    g_assert_true(dkim_record_parse(text, &record, NULL));
    g_autoptr(DkimPublicKey) key = dkim_public_key_new(&record, NULL);
    g_assert_nonnull(key);
    g_autoptr(DkimVerifying) verifying = dkim_verifying_new();
    for (guint f = 0; f < message.fields->len; f++) {
      const char *field = message.fields->pdata[f];
      dkim_verifying_add_header(verifying, field, strlen(field));
    }
    g_assert_cmpuint(dkim_verifying_parse_signatures(verifying, 10), ==, 1);
    dkim_verifying_add_body(verifying, message.body->data, message.body->len);
    dkim_verifying_finish_body(verifying);
    DkimCheck check = {.lookup = DKIM_LOOKUP_FOUND,
                       .key_type_known = TRUE,
                       .key_type = DKIM_KEY_RSA};
    dkim_verifying_check(verifying, 0, key, &check);
    check.now = g_get_real_time() / G_USEC_PER_SEC;
    g_autofree char *reason = NULL;
    const char *result = dkim_check_decide(&check, &reason);
    g_test_message("%s: %s (%s)", text, result, reason);
    g_assert_cmpstr(result, ==, cases[i].result);
  }
  /* A record that is no key of its k=: refused when decoded. */
  g_auto(DkimRecord) ed = {0};
  g_autofree char *wrong =
      g_strdup_printf("v=DKIM1; k=ed25519; p=%s", rsa->public_key);
  g_assert_true(dkim_record_parse(wrong, &ed, NULL));
  g_autoptr(GError) error = NULL;
  g_assert_null(dkim_public_key_new(&ed, &error));
  g_assert_nonnull(error);
  test_message_clear(&message);
}

/* libopendkim's signature of `message` by `key` under `selector`, with
 * i= set to `identity` (our signer writes no i=). */
static char *sign_oracle_with_identity(DKIM_LIB *library, const DkimKey *key,
                                       const char *selector,
                                       const char *identity,
                                       const TestMessage *message,
                                       GRand *rand) {
  DKIM_STAT status = DKIM_STAT_OK;
  DKIM *dkim = dkim_sign(library, (const u_char *)"test", NULL,
                         (dkim_sigkey_t)key->pem, (const u_char *)selector,
                         (const u_char *)DOMAIN, DKIM_CANON_RELAXED,
                         DKIM_CANON_SIMPLE, DKIM_SIGN_RSASHA256, -1, &status);
  g_assert_nonnull(dkim);
  g_assert_cmpint(dkim_set_signer(dkim, (const u_char *)identity), ==,
                  DKIM_STAT_OK);
  return test_opendkim_sign(dkim, message, rand);
}

/* The key's t=s (RFC 6376 3.6.1): i= must then be in d= itself.  i= equal
 * to d= passes, i= in a subdomain of d= is refused (permerror in both
 * verifiers); without t=s a subdomain passes.  Signed by libopendkim,
 * which can write i=, and compared with its verdict too. */
static void test_key_strict_identity(void) {
  g_autoptr(DkimKey) rsa = test_key(DKIM_KEY_RSA);
  g_hash_table_insert(records, g_strdup("strict"),
                      g_strdup_printf("v=DKIM1; k=rsa; t=s; p=%s",
                                      rsa->public_key));
  g_hash_table_insert(records, g_strdup("strict-testing"),
                      g_strdup_printf("v=DKIM1; k=rsa; t=y:s; p=%s",
                                      rsa->public_key));
  g_hash_table_insert(records, g_strdup("loose"),
                      g_strdup_printf("v=DKIM1; k=rsa; p=%s", rsa->public_key));
  g_autoptr(GRand) rand = g_rand_new_with_seed(SEED + 1);
  DKIM_LIB *library = oracle_library();
  static const struct {
    const char *selector, *identity, *result;
  } cases[] = {
      {"strict", "@" DOMAIN, "pass"},
      {"strict", "user@" DOMAIN, "pass"},
      {"strict", "user@EXAMPLE.org", "pass"},
      {"strict", "@sub." DOMAIN, "permerror"},
      {"strict", "user@a.b." DOMAIN, "permerror"},
      {"strict-testing", "user@sub." DOMAIN, "permerror"},
      {"loose", "@" DOMAIN, "pass"},
      {"loose", "user@sub." DOMAIN, "pass"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    TestMessage message = {generate_fields(rand), generate_body(rand)};
    give_address(&message, rand);
    g_autofree char *value = sign_oracle_with_identity(
        library, rsa, cases[i].selector, cases[i].identity, &message, rand);
    g_autofree char *tag = g_strdup_printf("i=%s;", cases[i].identity);
    g_assert_nonnull(strstr(value, tag));
    g_ptr_array_insert(message.fields, 0,
                       g_strconcat("DKIM-Signature: ", value, NULL));
    g_autofree char *label = g_strdup_printf(
        "s=%s i=%s", cases[i].selector, cases[i].identity);
    g_autoptr(GPtrArray) ours = our_verdicts(&message, rand);
    g_assert_cmpuint(ours->len, ==, 1);
    g_assert_cmpstr(ours->pdata[0], ==, cases[i].result);
    g_assert_cmpuint(compare(library, &message, rand, label), ==, 1);
    test_message_clear(&message);
  }
  dkim_close(library);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  records = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_test_add_func("/dkim/verifier/same-as-libopendkim/generated",
                  test_generated);
  g_test_add_func("/dkim/verifier/same-as-libopendkim/dkimpy", test_dkimpy);
  g_test_add_func("/dkim/verifier/key-flags", test_key_flags);
  g_test_add_func("/dkim/verifier/key-strict-identity",
                  test_key_strict_identity);
  int status = g_test_run();
  g_test_message("%u signatures with a tag twice (permerror in ours)",
                 stricter);
  g_hash_table_unref(records);
  return status;
}
