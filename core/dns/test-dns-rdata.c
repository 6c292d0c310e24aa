/* test-dns-rdata.c - unit tests of the pure DNS parsers and of result
 * classification (rdata-parse.c, result.c), without any network.
 *
 * Table-driven: each case is a hex-free byte string written with C
 * escapes, the expected text (or NULL for "must be refused").  The
 * classification tests build struct ub_result values by hand, the way
 * libunbound fills them.
 */
#include <string.h>
#include <unbound.h>

#include <gio/gio.h>

#include "dns/rdata-parse.h"
#include "dns/result.h"

typedef struct {
  const char *test_name;
  const char *data;
  gsize length;
  const char *expected; /* NULL: malformed */
} NameCase;

#define BYTES(s) s, sizeof(s) - 1

static const NameCase name_cases[] = {
    {"simple", BYTES("\3mx1\7example\4test\0"), "mx1.example.test"},
    {"root", BYTES("\0"), "."},
    {"escapes", BYTES("\3a.b\2c\\\0"), "a\\.b.c\\\\"},
    {"binary", BYTES("\2\x01\xff\0"), "\\001\\255"},
    {"space", BYTES("\3a b\0"), "a\\032b"},
    {"case-kept", BYTES("\3MiX\0"), "MiX"},
    {"empty", BYTES(""), NULL},
    {"no-root", BYTES("\3abc"), NULL},
    {"label-past-end", BYTES("\5abc\0"), NULL},
    {"pointer", BYTES("\300\014"), NULL},
    {"extended-label", BYTES("\100abc\0"), NULL},
    {"trailing", BYTES("\1a\0x"), NULL},
};

static void test_name(gconstpointer data) {
  const NameCase *c = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *name =
      pst_dns_name_rdata_parse((const guint8 *)c->data, c->length, &error);
  g_assert_cmpstr(name, ==, c->expected);
  if (c->expected == NULL)
    g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
  else
    g_assert_no_error(error);
}

static void test_name_too_long(void) {
  /* 128 labels of one octet: 256 octets with the root, one too many. */
  guint8 wire[257];
  for (guint i = 0; i < 128; i++) {
    wire[2 * i] = 1;
    wire[2 * i + 1] = 'a';
  }
  wire[256] = 0;
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_dns_name_rdata_parse(wire, sizeof wire, &error));
  g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
  /* 127 labels: 255 octets, the longest legal name. */
  g_autofree char *name = pst_dns_name_rdata_parse(wire + 2, 255, NULL);
  g_assert_nonnull(name);
  g_assert_cmpuint(strlen(name), ==, 253);
}

typedef struct {
  const char *test_name;
  const char *data;
  gsize length;
  const char *expected; /* NULL: malformed */
  gsize expected_length;
} TxtCase;

static const TxtCase txt_cases[] = {
    {"one", BYTES("\5hello"), "hello", 5},
    {"two", BYTES("\5hello\6 world"), "hello world", 11},
    {"empty-string", BYTES("\0"), "", 0},
    {"empty-strings", BYTES("\0\0\1x\0"), "x", 1},
    {"nul-inside", BYTES("\3a\0b"), "a\0b", 3},
    {"no-strings", BYTES(""), "", 0},
    {"short", BYTES("\6hello"), NULL, 0},
    {"short-second", BYTES("\1a\3bc"), NULL, 0},
};

static void test_txt(gconstpointer data) {
  const TxtCase *c = data;
  gsize length = 99;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = pst_dns_txt_rdata_parse((const guint8 *)c->data,
                                                  c->length, &length, &error);
  if (c->expected == NULL) {
    g_assert_null(text);
    g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
    return;
  }
  g_assert_no_error(error);
  g_assert_cmpuint(length, ==, c->expected_length);
  g_assert_cmpmem(text, length, c->expected, c->expected_length);
  g_assert_cmpint(text[length], ==, '\0');
}

static void test_txt_long(void) {
  /* Three strings, 255 + 255 + 40 octets: 550 octets of text. */
  GByteArray *wire = g_byte_array_new();
  GString *expected = g_string_new(NULL);
  const guint sizes[] = {255, 255, 40};
  for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
    guint8 size = (guint8)sizes[s];
    g_byte_array_append(wire, &size, 1);
    for (guint i = 0; i < sizes[s]; i++) {
      guint8 c = (guint8)('a' + s);
      g_byte_array_append(wire, &c, 1);
      g_string_append_c(expected, (char)c);
    }
  }
  gsize length = 0;
  g_autofree char *text =
      pst_dns_txt_rdata_parse(wire->data, wire->len, &length, NULL);
  g_assert_cmpuint(length, ==, 550);
  g_assert_cmpstr(text, ==, expected->str);
  g_byte_array_unref(wire);
  g_string_free(expected, TRUE);
}

typedef struct {
  const char *test_name;
  const char *data;
  gsize length;
  const char *exchange; /* NULL: malformed */
  guint16 preference;
} MxCase;

static const MxCase mx_cases[] = {
    {"normal", BYTES("\0\12\3mx1\7example\4test\0"), "mx1.example.test", 10},
    {"null-mx", BYTES("\0\0\0"), ".", 0},
    {"high", BYTES("\377\377\1a\0"), "a", 65535},
    {"short", BYTES("\0\12"), NULL, 0},
    {"bad-name", BYTES("\0\12\5ab\0"), NULL, 0},
    {"trailing", BYTES("\0\12\1a\0\0"), NULL, 0},
};

static void test_mx(gconstpointer data) {
  const MxCase *c = data;
  guint16 preference = 7;
  g_autofree char *exchange = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok = pst_dns_mx_rdata_parse((const guint8 *)c->data, c->length,
                                       &preference, &exchange, &error);
  g_assert_cmpint(ok, ==, c->exchange != NULL);
  g_assert_cmpstr(exchange, ==, c->exchange);
  if (ok)
    g_assert_cmpuint(preference, ==, c->preference);
  else
    g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
}

static void test_tlsa(void) {
  const guint8 wire[] = {3, 1, 1, 0xde, 0xad, 0xbe, 0xef};
  guint8 usage = 0, selector = 0, matching = 0;
  const guint8 *association = NULL;
  gsize length = 0;
  g_assert_true(pst_dns_tlsa_rdata_parse(wire, sizeof wire, &usage, &selector,
                                         &matching, &association, &length,
                                         NULL));
  g_assert_cmpuint(usage, ==, 3);
  g_assert_cmpuint(selector, ==, 1);
  g_assert_cmpuint(matching, ==, 1);
  g_assert_cmpmem(association, length, wire + 3, 4);
  g_autoptr(GError) error = NULL;
  g_assert_false(
      pst_dns_tlsa_rdata_parse(wire, 2, NULL, NULL, NULL, NULL, NULL, &error));
  g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
}

static void test_address(void) {
  const guint8 v4[] = {192, 0, 2, 25};
  const guint8 v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x25};
  g_autofree char *a = pst_dns_address_rdata_parse(1, v4, 4, NULL);
  g_autofree char *aaaa = pst_dns_address_rdata_parse(28, v6, 16, NULL);
  g_assert_cmpstr(a, ==, "192.0.2.25");
  g_assert_cmpstr(aaaa, ==, "2001:db8::25");
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_dns_address_rdata_parse(1, v6, 16, &error));
  g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
  g_clear_error(&error);
  g_assert_null(pst_dns_address_rdata_parse(28, v4, 4, &error));
  g_assert_error(error, PST_DNS_PARSE_ERROR, 0);
}

typedef struct {
  const char *name;
  gboolean valid;
} QueryNameCase;

static void test_query_names(void) {
  g_autofree char *label63 = g_strnfill(63, 'a');
  g_autofree char *label64 = g_strnfill(64, 'a');
  /* 4 x 62 + 3 dots = 251; +".ab" = 254 (too long), +".a" = 253. */
  g_autofree char *base =
      g_strjoin(".", label63 + 1, label63 + 1, label63 + 1, label63 + 1, NULL);
  g_autofree char *name253 = g_strconcat(base, ".a", NULL);
  g_autofree char *name253dot = g_strconcat(base, ".a.", NULL);
  g_autofree char *name254 = g_strconcat(base, ".ab", NULL);
  const QueryNameCase cases[] = {
      {"example.test", TRUE},
      {"example.test.", TRUE},
      {"sel._domainkey.example.test", TRUE},
      {"2.0.0.127.zen.dnsbl.test", TRUE},
      {"*.example.test", TRUE},
      {".", TRUE},
      {label63, TRUE},
      {name253, TRUE},
      {name253dot, TRUE},
      {"", FALSE},
      {"..", FALSE},
      {".example.test", FALSE},
      {"a..b", FALSE},
      {"a b", FALSE},
      {"a\\.b", FALSE},
      {"a\tb", FALSE},
      {"caf\xc3\xa9.test", FALSE},
      {label64, FALSE},
      {name254, FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    if (pst_dns_query_name_is_valid(cases[i].name) != cases[i].valid)
      g_error("query name \"%s\": expected %s", cases[i].name,
              cases[i].valid ? "valid" : "invalid");
  }
  g_assert_false(pst_dns_query_name_is_valid(NULL));
}

static void test_query_name_escape(void) {
  g_autofree char *label64 = g_strnfill(64, 'a');
  const struct {
    const char *name;
    const char *expected; /* NULL: refused */
  } cases[] = {
      {"example.test", "example.test"},
      {"example.test.", "example.test"},
      {".", "."},
      {"sp ace.test", "sp\\032ace.test"},
      {"50%.test", "50\\037.test"},
      {"a\\b.test", "a\\092b.test"},
      {"caf\xc3\xa9.test", "caf\\195\\169.test"},
      {"_spf.x-y.test", "_spf.x-y.test"},
      {"", NULL},
      {"a..b", NULL},
      {".a", NULL},
      {label64, NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *escaped = pst_dns_query_name_escape(cases[i].name);
    g_assert_cmpstr(escaped, ==, cases[i].expected);
  }
  g_assert_null(pst_dns_query_name_escape(NULL));
}

static void test_reverse_names(void) {
  const struct {
    const char *address;
    const char *zone;
    const char *expected;
  } cases[] = {
      {"192.0.2.25", NULL, "25.2.0.192.in-addr.arpa"},
      {"10.0.255.100", NULL, "100.255.0.10.in-addr.arpa"},
      {"127.0.0.2", "zen.dnsbl.test", "2.0.0.127.zen.dnsbl.test"},
      {"127.0.0.2", "zen.dnsbl.test.", "2.0.0.127.zen.dnsbl.test"},
      {"::ffff:192.0.2.1", NULL, "1.2.0.192.in-addr.arpa"},
      {"2001:db8::25", NULL,
       "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
       "ip6.arpa"},
      {"2001:db8::1", "dnsbl.test",
       "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
       "dnsbl.test"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GInetAddress) address =
        g_inet_address_new_from_string(cases[i].address);
    g_autofree char *name = pst_dns_reverse_name(address, cases[i].zone);
    g_assert_cmpstr(name, ==, cases[i].expected);
  }
  const guint8 three[3] = {1, 2, 3};
  g_assert_null(pst_dns_reverse_name_build(three, 3, NULL));
}

/* --- Classification of hand-made libunbound results ------------------ */

typedef struct {
  struct ub_result ub;
  char *data[4];
  int len[4];
} FakeAnswer;

static void fake_answer_init(FakeAnswer *fake, int rcode, int havedata) {
  memset(fake, 0, sizeof *fake);
  fake->ub.rcode = rcode;
  fake->ub.havedata = havedata;
  fake->ub.nxdomain = rcode == 3;
  fake->ub.ttl = 300;
  fake->ub.data = fake->data;
  fake->ub.len = fake->len;
}

static void fake_answer_add(FakeAnswer *fake, const char *data, int length) {
  guint i = 0;
  while (fake->data[i] != NULL)
    i++;
  g_assert_cmpuint(i, <, G_N_ELEMENTS(fake->data) - 1);
  fake->data[i] = (char *)data;
  fake->len[i] = length;
}

static void test_classify(void) {
  FakeAnswer fake;
  /* NOERROR with data. */
  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\0\12\1a\0"));
  fake_answer_add(&fake, BYTES("\0\24\1b\0"));
  g_autoptr(PstDnsResult) ok = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_MX, "example.test.", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(ok), ==, PST_DNS_OK);
  g_assert_cmpuint(pst_dns_result_get_count(ok), ==, 2);
  g_assert_cmpstr(pst_dns_result_get_string(ok, 1), ==, "b");
  g_assert_cmpuint(pst_dns_result_get_mx_preference(ok, 1), ==, 20);
  g_assert_cmpuint(pst_dns_result_get_ttl(ok), ==, 300);
  g_assert_cmpstr(pst_dns_result_get_name(ok), ==, "example.test.");
  g_assert_cmpstr(pst_dns_result_get_canonical_name(ok), ==, "example.test");

  /* One malformed record among good ones is dropped. */
  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\0\12\1a\0"));
  fake_answer_add(&fake, BYTES("\0\12\7a\0"));
  g_autoptr(PstDnsResult) partial = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_MX, "example.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(partial), ==, PST_DNS_OK);
  g_assert_cmpuint(pst_dns_result_get_count(partial), ==, 1);

  /* Only malformed records: TEMPFAIL. */
  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\1\2\3"));
  g_autoptr(PstDnsResult) broken =
      pst_dns_result_new_from_unbound(PST_DNS_TYPE_A, "a.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(broken), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpuint(pst_dns_result_get_count(broken), ==, 0);
  g_assert_cmpuint(pst_dns_result_get_ttl(broken), ==, 0);
}

static void test_classify_negative(void) {
  const struct {
    int rcode;
    int havedata;
    int bogus;
    PstDnsStatus expected;
    const char *reason;
  } cases[] = {
      {3, 0, 0, PST_DNS_NXDOMAIN, "NXDOMAIN"},
      {0, 0, 0, PST_DNS_NODATA, "NODATA"},
      {2, 0, 0, PST_DNS_TEMPFAIL, "SERVFAIL"},
      {5, 0, 0, PST_DNS_TEMPFAIL, "REFUSED"},
      {9, 0, 0, PST_DNS_TEMPFAIL, "rcode 9"},
      {0, 1, 1, PST_DNS_TEMPFAIL, "DNSSEC validation failed: forged"},
      {3, 0, 1, PST_DNS_TEMPFAIL, "DNSSEC validation failed: forged"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    FakeAnswer fake;
    fake_answer_init(&fake, cases[i].rcode, cases[i].havedata);
    if (cases[i].havedata)
      fake_answer_add(&fake, BYTES("\1\2\3\4"));
    fake.ub.bogus = cases[i].bogus;
    fake.ub.why_bogus = cases[i].bogus ? (char *)"forged" : NULL;
    fake.ub.secure = cases[i].bogus; /* never reported with bogus */
    g_autoptr(PstDnsResult) result =
        pst_dns_result_new_from_unbound(PST_DNS_TYPE_A, "n.test", 0, &fake.ub);
    g_assert_cmpint(pst_dns_result_get_status(result), ==, cases[i].expected);
    g_assert_cmpstr(pst_dns_result_get_reason(result), ==, cases[i].reason);
    g_assert_cmpuint(pst_dns_result_get_count(result), ==, 0);
    g_assert_cmpint(pst_dns_result_is_bogus(result), ==, cases[i].bogus);
    g_assert_false(pst_dns_result_is_secure(result));
    g_assert_cmpint(pst_dns_result_get_rcode(result), ==, cases[i].rcode);
    g_assert_cmpuint(pst_dns_result_get_ttl(result), ==,
                     cases[i].expected == PST_DNS_TEMPFAIL ? 0 : 300);
  }
  g_autoptr(PstDnsResult) failed = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_A, "n.test", UB_SERVFAIL, NULL);
  g_assert_cmpint(pst_dns_result_get_status(failed), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpint(pst_dns_result_get_rcode(failed), ==, -1);
  g_assert_null(pst_dns_result_get_answer_packet(failed, NULL));
}

/* What libunbound 1.17 answered for "both.e.test TXT" (a record of no
 * strings and "v=spf1 -all") from the test DNS server: rcode SERVFAIL,
 * no data, and this NOERROR packet in answer_packet (names compressed,
 * an OPT record at the end). */
static const char empty_txt_packet[] =
    "\000\000\201\200\000\001\000\002\000\000\000\001"
    "\004both\001e\004test\000\000\020\000\001"
    "\300\014\000\020\000\001\000\000\001\054\000\000"
    "\300\014\000\020\000\001\000\000\001\054\000\014"
    "\013v=spf1 -all"
    "\000\000\051\004\320\000\000\200\000\000\000";

static void test_message_answer_rdata(void) {
  guint32 ttl = 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rdatas = pst_dns_message_answer_rdata(
      (const guint8 *)empty_txt_packet, sizeof empty_txt_packet - 1,
      PST_DNS_TYPE_TXT, &ttl, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(rdatas->len, ==, 2);
  g_assert_cmpuint(g_bytes_get_size(rdatas->pdata[0]), ==, 0);
  g_assert_cmpuint(g_bytes_get_size(rdatas->pdata[1]), ==, 12);
  g_assert_cmpuint(ttl, ==, 300);
  g_autoptr(GPtrArray) none = pst_dns_message_answer_rdata(
      (const guint8 *)empty_txt_packet, sizeof empty_txt_packet - 1,
      PST_DNS_TYPE_A, &ttl, NULL);
  g_assert_cmpuint(none->len, ==, 0);
  g_assert_cmpuint(ttl, ==, 0);
  /* Every truncation is refused, never read past. */
  for (gsize length = 0; length < sizeof empty_txt_packet - 13; length++) {
    g_autoptr(GError) short_error = NULL;
    g_autoptr(GPtrArray) cut =
        pst_dns_message_answer_rdata((const guint8 *)empty_txt_packet, length,
                                     PST_DNS_TYPE_TXT, NULL, &short_error);
    g_assert_null(cut);
    g_assert_error(short_error, PST_DNS_PARSE_ERROR, 0);
  }
  /* Not NOERROR. */
  g_autofree char *servfail =
      g_memdup2(empty_txt_packet, sizeof empty_txt_packet);
  servfail[3] = 2;
  g_assert_null(pst_dns_message_answer_rdata((const guint8 *)servfail,
                                             sizeof empty_txt_packet - 1,
                                             PST_DNS_TYPE_TXT, NULL, NULL));
}

/* libunbound's SERVFAIL over a record of no strings is the records of the
 * NOERROR answer it got; a real SERVFAIL stays one. */
static void test_classify_empty_rdata(void) {
  FakeAnswer fake;
  fake_answer_init(&fake, 2, 0);
  fake.ub.ttl = 0;
  fake.ub.answer_packet = (void *)empty_txt_packet;
  fake.ub.answer_len = sizeof empty_txt_packet - 1;
  g_autoptr(PstDnsResult) txt = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_TXT, "both.e.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(txt), ==, PST_DNS_OK);
  g_assert_cmpint(pst_dns_result_get_rcode(txt), ==, 0);
  g_assert_cmpuint(pst_dns_result_get_count(txt), ==, 2);
  gsize length = 99;
  g_assert_cmpstr(pst_dns_result_get_txt(txt, 0, &length), ==, "");
  g_assert_cmpuint(length, ==, 0);
  g_assert_cmpstr(pst_dns_result_get_txt(txt, 1, NULL), ==, "v=spf1 -all");
  g_assert_cmpuint(pst_dns_result_get_ttl(txt), ==, 300);
  /* MX RDATA may hold compressed names: an empty one is malformed. */
  g_autoptr(PstDnsResult) mx = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_MX, "both.e.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(mx), ==, PST_DNS_TEMPFAIL);
  /* A real SERVFAIL packet. */
  g_autofree char *servfail =
      g_memdup2(empty_txt_packet, sizeof empty_txt_packet);
  servfail[3] = (char)0x82;
  fake.ub.answer_packet = servfail;
  g_autoptr(PstDnsResult) failed = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_TXT, "both.e.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(failed), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpstr(pst_dns_result_get_reason(failed), ==, "SERVFAIL");
}

static void test_accessors_by_type(void) {
  FakeAnswer fake;
  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\3\1\1\xab\xcd"));
  g_autoptr(PstDnsResult) tlsa = pst_dns_result_new_from_unbound(
      PST_DNS_TYPE_TLSA, "_25._tcp.mx.test", 0, &fake.ub);
  guint8 usage = 0;
  const guint8 *data = NULL;
  gsize length = 0;
  g_assert_true(
      pst_dns_result_get_tlsa(tlsa, 0, &usage, NULL, NULL, &data, &length));
  g_assert_cmpuint(usage, ==, 3);
  g_assert_cmpmem(data, length, "\xab\xcd", 2);
  g_assert_null(pst_dns_result_get_string(tlsa, 0));
  g_assert_null(pst_dns_result_get_txt(tlsa, 0, NULL));
  g_assert_null(pst_dns_result_get_address(tlsa, 0));

  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\300\0\2\1"));
  g_autoptr(PstDnsResult) a =
      pst_dns_result_new_from_unbound(PST_DNS_TYPE_A, "a.test", 0, &fake.ub);
  g_autoptr(GInetAddress) address = pst_dns_result_get_address(a, 0);
  g_autofree char *text = g_inet_address_to_string(address);
  g_assert_cmpstr(text, ==, "192.0.2.1");
  g_assert_false(pst_dns_result_get_tlsa(a, 0, NULL, NULL, NULL, NULL, NULL));
  g_assert_cmpuint(pst_dns_result_get_mx_preference(a, 0), ==, 0);
  gsize rdata_length = 0;
  g_assert_cmpmem(pst_dns_result_get_rdata(a, 0, &rdata_length), rdata_length,
                  "\300\0\2\1", 4);

  fake_answer_init(&fake, 0, 1);
  fake_answer_add(&fake, BYTES("\1\2\3\4\5"));
  g_autoptr(PstDnsResult) other =
      pst_dns_result_new_from_unbound((PstDnsType)99, "a.test", 0, &fake.ub);
  g_assert_cmpint(pst_dns_result_get_status(other), ==, PST_DNS_OK);
  g_assert_null(pst_dns_result_get_string(other, 0));
  g_assert_cmpstr(pst_dns_type_to_string((PstDnsType)99), ==, "TYPE99");
  g_assert_cmpstr(pst_dns_type_to_string(PST_DNS_TYPE_TLSA), ==, "TLSA");
  g_assert_cmpstr(pst_dns_status_to_string(PST_DNS_NODATA), ==, "nodata");
}

static void test_status_results(void) {
  g_autoptr(PstDnsResult) invalid = pst_dns_result_new_status(
      PST_DNS_TYPE_A, "a..b", PST_DNS_INVALID, "bad name");
  g_assert_cmpint(pst_dns_result_get_status(invalid), ==, PST_DNS_INVALID);
  g_assert_cmpstr(pst_dns_result_get_reason(invalid), ==, "bad name");
  g_assert_cmpint(pst_dns_result_get_rcode(invalid), ==, -1);
  g_autoptr(PstDnsResult) cancelled = pst_dns_result_new_cancelled(invalid);
  g_assert_cmpint(pst_dns_result_get_status(cancelled), ==, PST_DNS_CANCELLED);
  g_assert_cmpstr(pst_dns_result_get_name(cancelled), ==, "a..b");
  pst_dns_result_free(NULL);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS(name_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/dns/rdata/name/%s", name_cases[i].test_name);
    g_test_add_data_func(path, &name_cases[i], test_name);
  }
  g_test_add_func("/dns/rdata/name/too-long", test_name_too_long);
  for (guint i = 0; i < G_N_ELEMENTS(txt_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/dns/rdata/txt/%s", txt_cases[i].test_name);
    g_test_add_data_func(path, &txt_cases[i], test_txt);
  }
  g_test_add_func("/dns/rdata/txt/long", test_txt_long);
  for (guint i = 0; i < G_N_ELEMENTS(mx_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/dns/rdata/mx/%s", mx_cases[i].test_name);
    g_test_add_data_func(path, &mx_cases[i], test_mx);
  }
  g_test_add_func("/dns/rdata/tlsa", test_tlsa);
  g_test_add_func("/dns/rdata/address", test_address);
  g_test_add_func("/dns/name/query", test_query_names);
  g_test_add_func("/dns/name/reverse", test_reverse_names);
  g_test_add_func("/dns/name/escape", test_query_name_escape);
  g_test_add_func("/dns/result/classify/records", test_classify);
  g_test_add_func("/dns/result/classify/negative", test_classify_negative);
  g_test_add_func("/dns/result/accessors", test_accessors_by_type);
  g_test_add_func("/dns/message/answer-rdata", test_message_answer_rdata);
  g_test_add_func("/dns/result/classify/empty-rdata",
                  test_classify_empty_rdata);
  g_test_add_func("/dns/result/status", test_status_results);
  return g_test_run();
}
