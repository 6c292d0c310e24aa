/* test-dmarc.c - unit tests of the DMARC plugin's pure parts, table by
 * table, written section by section from RFC 9989: the record format
 * ("General Record Format", "Formal Definition"), the author domain
 * ("Extract Author Domain"), the tree walk ("DNS Tree Walk"), policy and
 * Organizational Domain discovery, alignment and the result ("Identifier
 * Alignment Explained", "Determine Handling Policy"), and the
 * configuration's errors.  DNS answers come from a zone in a table; no
 * daemon, no server.
 */
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "dmarc-report.h"

/* --- Records ----------------------------------------------------------------
 */

typedef struct {
  const char *text;
  gboolean is_dmarc;
  DmarcPolicy p, sp, np;
  const char *modes; /* adkim, aspf: "rr", "sr", ... */
  DmarcPsd psd;
  gboolean testing;
  guint fo;
  guint rua;
  gboolean usable;
} RecordCase;

#define N DMARC_POLICY_NONE
#define Q DMARC_POLICY_QUARANTINE
#define R DMARC_POLICY_REJECT
#define U DMARC_POLICY_UNSET

static const RecordCase record_cases[] = {
    /* v=DMARC1 first and exact (case-sensitive value). */
    {"v=DMARC1; p=reject", TRUE, R, U, U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0,
     0, TRUE},
    {"v=DMARC1;p=reject;", TRUE, R, U, U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0,
     0, TRUE},
    {"v = DMARC1 ; p = quarantine ; sp = none", TRUE, Q, N, U, "rr",
     DMARC_PSD_U, FALSE, DMARC_FO_0, 0, TRUE},
    {"v=dmarc1; p=reject", FALSE},
    {"v=DMARC2; p=reject", FALSE},
    {"p=reject; v=DMARC1", FALSE},
    {"v=DMARC1x; p=reject", FALSE},
    {"v=spf1 -all", FALSE},
    {"", FALSE},
    /* No p: treated as p=none. */
    {"v=DMARC1", TRUE, N, U, U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0, 0, TRUE},
    {"v=DMARC1; rua=mailto:a@example.com", TRUE, N, U, U, "rr", DMARC_PSD_U,
     FALSE, DMARC_FO_0, 1, TRUE},
    /* New tags np, psd, t; case-insensitive values. */
    {"v=DMARC1; p=Reject; sp=quarantine; np=reject; psd=y; t=y", TRUE, R, Q, R,
     "rr", DMARC_PSD_Y, TRUE, DMARC_FO_0, 0, TRUE},
    {"v=DMARC1; p=none; psd=n; t=n", TRUE, N, U, U, "rr", DMARC_PSD_N, FALSE,
     DMARC_FO_0, 0, TRUE},
    {"v=DMARC1; p=none; adkim=s; aspf=s", TRUE, N, U, U, "ss", DMARC_PSD_U,
     FALSE, DMARC_FO_0, 0, TRUE},
    /* Removed tags (pct, rf, ri) and unknown tags are ignored. */
    {"v=DMARC1; p=reject; pct=10; rf=afrf; ri=3600; foo=bar", TRUE, R, U, U,
     "rr", DMARC_PSD_U, FALSE, DMARC_FO_0, 0, TRUE},
    /* Invalid values of other tags fall back to the defaults. */
    {"v=DMARC1; p=reject; adkim=x; aspf=; psd=maybe; t=yes; fo=z", TRUE, R, U,
     U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0, 0, TRUE},
    {"v=DMARC1; p=reject; fo=1:d:s", TRUE, R, U, U, "rr", DMARC_PSD_U, FALSE,
     DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S, 0, TRUE},
    /* Invalid p/sp/np: p=none with a valid rua, unusable without. */
    {"v=DMARC1; p=bogus", TRUE, U, U, U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0,
     0, FALSE},
    {"v=DMARC1; p=reject; sp=bogus", TRUE, R, U, U, "rr", DMARC_PSD_U, FALSE,
     DMARC_FO_0, 0, FALSE},
    {"v=DMARC1; p=bogus; rua=mailto:r@example.com", TRUE, N, U, U, "rr",
     DMARC_PSD_U, FALSE, DMARC_FO_0, 1, TRUE},
    {"v=DMARC1; p=reject; np=x; rua=mailto:r@example.com", TRUE, N, U, U, "rr",
     DMARC_PSD_U, FALSE, DMARC_FO_0, 1, TRUE},
    /* URI lists: white space around commas, invalid URIs dropped. */
    {"v=DMARC1; p=none; rua=mailto:a@x.example , mailto:b@y.example, bad uri",
     TRUE, N, U, U, "rr", DMARC_PSD_U, FALSE, DMARC_FO_0, 2, TRUE},
    /* A repeated tag: the first counts. */
    {"v=DMARC1; p=none; p=reject", TRUE, N, U, U, "rr", DMARC_PSD_U, FALSE,
     DMARC_FO_0, 0, TRUE},
};

static void test_record_parse(void) {
  for (guint i = 0; i < G_N_ELEMENTS(record_cases); i++) {
    const RecordCase *c = &record_cases[i];
    g_autoptr(DmarcRecord) record =
        dmarc_record_parse(c->text, strlen(c->text));
    g_test_message("record %s", c->text);
    g_assert_cmpint(record != NULL, ==, c->is_dmarc);
    if (record == NULL)
      continue;
    g_assert_cmpint(record->usable, ==, c->usable);
    if (!c->usable)
      continue;
    g_assert_cmpint(record->p, ==, c->p);
    g_assert_cmpint(record->sp, ==, c->sp);
    g_assert_cmpint(record->np, ==, c->np);
    g_assert_cmpint(record->adkim_strict, ==, c->modes[0] == 's');
    g_assert_cmpint(record->aspf_strict, ==, c->modes[1] == 's');
    g_assert_cmpint(record->psd, ==, c->psd);
    g_assert_cmpint(record->testing, ==, c->testing);
    g_assert_cmpuint(record->fo, ==, c->fo);
    g_assert_cmpuint(record->rua->len, ==, c->rua);
  }
}

static void test_record_nul(void) {
  static const char text[] = "v=DMARC1; p=reject\0; p=none";
  g_assert_null(dmarc_record_parse(text, sizeof text - 1));
}

static void test_uri_mailto(void) {
  static const struct {
    const char *uri, *address;
  } cases[] = {
      {"mailto:dmarc@example.com", "dmarc@example.com"},
      {"MAILTO:dmarc@Example.COM!10m", "dmarc@example.com"},
      {"mailto:d%2Bx@example.com?subject=x", "d+x@example.com"},
      {"https://example.com/report", NULL},
      {"mailto:nobody", NULL},
      {"mailto:a%0d@example.com", NULL},
      {"mailto:a%zz@example.com", NULL},
      {"mailto:a@exa mple.com", NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *address = dmarc_uri_mailto_address(cases[i].uri);
    g_assert_cmpstr(address, ==, cases[i].address);
  }
}

/* --- The author domain
 * -------------------------------------------------------- */

static void test_from_domain(void) {
  static const struct {
    const char *value;
    const char *domain; /* NULL: malformed */
  } cases[] = {
      {"alice@example.com", "example.com"},
      {"Alice <alice@Example.COM>", "example.com"},
      {"\"Doe, John\" <john@example.org>", "example.org"},
      {"\"a@evil.example\" <b@good.example>", "good.example"},
      {"(comment) alice@example.com (more (nested))", "example.com"},
      {"Alice\r\n <alice@example.com>", "example.com"},
      {"<@route.example:alice@example.com>", "example.com"},
      {"\"quoted@local\"@example.net", "example.net"},
      {"a@example.com, b@example.com", "example.com"},
      {"team: a@example.com, b@example.com;", "example.com"},
      {"alice@b\xc3\xbc"
       "cher.example",
       "xn--bcher-kva.example"},
      {"alice@example.com.", "example.com"},
      {"a@example.com, b@other.example", NULL},
      {"undisclosed-recipients:;", NULL},
      {"", NULL},
      {"alice", NULL},
      {"alice@[192.0.2.1]", NULL},
      {"alice@", NULL},
      {"alice@exa..mple.com", NULL},
      {"Alice <alice@example.com", NULL},
      {"Alice (unclosed <alice@example.com>", NULL},
      {"\"unclosed <alice@example.com>", NULL},
      {"<a@example.com> <b@example.com>", NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    const char *values[] = {cases[i].value};
    const char *problem = NULL;
    g_autofree char *domain = dmarc_from_domain(values, 1, &problem);
    g_test_message("From: %s", cases[i].value);
    g_assert_cmpstr(domain, ==, cases[i].domain);
    g_assert_true((domain == NULL) == (problem != NULL));
  }
  const char *two[] = {"a@example.com", "a@example.com"};
  const char *problem = NULL;
  g_assert_null(dmarc_from_domain(two, 2, &problem));
  g_assert_cmpstr(problem, ==, "several From: fields");
  g_assert_null(dmarc_from_domain(two, 0, &problem));
  g_assert_cmpstr(problem, ==, "no From: field");
}

/* --- The tree walk
 * ---------------------------------------------------------------- */

static void test_walk_targets(void) {
  static const struct {
    const char *domain;
    const char *targets; /* ' '-separated */
  } cases[] = {
      {"com", "com"},
      {"example.com", "example.com com"},
      {"a.mail.example.com", "a.mail.example.com mail.example.com example.com "
                             "com"},
      /* 8 labels or more: the jump to 7, then one by one: 8 queries. */
      {"a.b.c.d.e.f.g.h.example.com",
       "a.b.c.d.e.f.g.h.example.com d.e.f.g.h.example.com e.f.g.h.example.com "
       "f.g.h.example.com g.h.example.com h.example.com example.com com"},
      {"b.c.d.e.f.g.example.com",
       "b.c.d.e.f.g.example.com c.d.e.f.g.example.com d.e.f.g.example.com "
       "e.f.g.example.com f.g.example.com g.example.com example.com com"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GPtrArray) targets = dmarc_walk_targets(cases[i].domain);
    g_ptr_array_add(targets, NULL);
    g_autofree char *joined = g_strjoinv(" ", (char **)targets->pdata);
    g_assert_cmpstr(joined, ==, cases[i].targets);
    g_assert_cmpuint(targets->len - 1, <=, DMARC_WALK_MAX_QUERIES);
  }
  g_autoptr(GPtrArray) long_one =
      dmarc_walk_targets("1.2.3.4.5.6.7.8.9.10.11.12.example.com");
  g_assert_cmpuint(long_one->len, ==, DMARC_WALK_MAX_QUERIES);
}

/* A zone: name -> TXT records ('|'-separated), "!NX" NXDOMAIN, "!TEMP"
 * SERVFAIL, "!OK" an A/AAAA/MX that exists.  Names not listed: NXDOMAIN. */
typedef struct {
  const char *name;
  const char *records;
} ZoneEntry;

static const ZoneEntry zone[] = {
    {"_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:r@example.com"},
    {"_dmarc.sub.example.com", "v=DMARC1; p=none"},
    {"_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s"},
    {"_dmarc.parent.test", "v=DMARC1; p=none; sp=quarantine; np=reject"},
    {"exists.parent.test", "!OK"},
    {"_dmarc.nosp.test", "v=DMARC1; p=quarantine"},
    {"_dmarc.psd", "v=DMARC1; p=reject; psd=y"},
    {"_dmarc.org.psd", "v=DMARC1; p=none; psd=y"},
    {"_dmarc.n.org.psd", "v=DMARC1; p=quarantine; psd=n"},
    {"_dmarc.two.test", "v=DMARC1; p=reject|v=DMARC1; p=none"},
    {"_dmarc.sub.two.test", "v=DMARC1; p=quarantine"},
    {"_dmarc.noise.test", "google-site-verification=x|v=DMARC1; p=reject"},
    {"_dmarc.temp.test", "!TEMP"},
    {"_dmarc.broken.test", "v=DMARC1; p=nonsense"},
    {"_dmarc.testing.test", "v=DMARC1; p=reject; t=y"},
    {"_dmarc.deep.test", "v=DMARC1; p=reject"},
};

static const char *zone_lookup(const char *name) {
  for (guint i = 0; i < G_N_ELEMENTS(zone); i++)
    if (g_ascii_strcasecmp(zone[i].name, name) == 0)
      return zone[i].records;
  return NULL;
}

/* Answers every question from the zone until the check is done; returns
 * the number of questions asked. */
static guint check_run(DmarcCheck *check, GString *log) {
  guint asked = 0;
  for (guint round = 0; round < 64 && !dmarc_check_is_done(check); round++) {
    g_autoptr(GPtrArray) questions = dmarc_check_questions(check);
    g_assert_true(questions->len > 0 || dmarc_check_is_done(check));
    for (guint i = 0; i < questions->len; i++) {
      const DmarcQuestion *q = questions->pdata[i];
      asked++;
      if (log != NULL)
        g_string_append_printf(log, "%s%s", log->len ? " " : "", q->name);
      const char *records = zone_lookup(q->name);
      PstDnsStatus status = PST_DNS_NXDOMAIN;
      g_auto(GStrv) texts = NULL;
      guint count = 0;
      if (records != NULL && g_str_equal(records, "!TEMP"))
        status = PST_DNS_TEMPFAIL;
      else if (records != NULL && g_str_equal(records, "!OK"))
        status = PST_DNS_OK;
      else if (records != NULL && q->type == PST_DNS_TYPE_TXT) {
        status = PST_DNS_OK;
        texts = g_strsplit(records, "|", -1);
        count = g_strv_length(texts);
      } else if (records != NULL)
        status = PST_DNS_NODATA;
      gsize lengths[8] = {0};
      for (guint k = 0; k < count; k++)
        lengths[k] = strlen(texts[k]);
      dmarc_check_answer(check, q->type, q->name, status,
                         (const char *const *)texts, lengths, count,
                         status == PST_DNS_TEMPFAIL ? "SERVFAIL" : NULL);
    }
  }
  g_assert_true(dmarc_check_is_done(check));
  return asked;
}

typedef struct {
  const char *title;
  const char *from;
  const char *spf;  /* "RESULT DOMAIN" or NULL */
  const char *dkim; /* "RESULT DOMAIN" pairs, ','-separated, or NULL */
  DmarcResult result;
  DmarcPolicy policy;
  const char *policy_domain;
  const char *org_domain;
  guint max_questions; /* 0: not checked */
} CheckCase;

static const CheckCase check_cases[] = {
    /* Policy discovery: the domain's own record, p applies. */
    {"own record, SPF aligned", "example.com", "pass example.com", NULL,
     DMARC_RESULT_PASS, R, "example.com", "example.com", 2},
    {"own record, nothing passes", "example.com", "fail example.com",
     "fail example.com", DMARC_RESULT_FAIL, R, "example.com", "example.com"},
    /* A subdomain with its own record: p of that record, org from the walk. */
    {"subdomain record", "sub.example.com", "softfail x.test", NULL,
     DMARC_RESULT_FAIL, N, "sub.example.com", "example.com"},
    /* No record at the domain: the Organizational Domain's sp, else p. */
    {"org record, sp absent", "a.b.example.com", NULL, NULL, DMARC_RESULT_FAIL,
     R, "example.com", "example.com"},
    {"org record, sp", "exists.parent.test", NULL, NULL, DMARC_RESULT_FAIL, Q,
     "parent.test", "parent.test"},
    /* np for a non-existent subdomain (NXDOMAIN for A, AAAA, MX). */
    {"np for a non-existent subdomain", "ghost.parent.test", NULL, NULL,
     DMARC_RESULT_FAIL, R, "parent.test", "parent.test"},
    {"no np: sp, then p", "ghost.nosp.test", NULL, NULL, DMARC_RESULT_FAIL, Q,
     "nosp.test", "nosp.test"},
    /* No record anywhere: none, no policy. */
    {"no record", "nowhere.test", "pass nowhere.test", NULL, DMARC_RESULT_NONE,
     U, NULL, NULL},
    /* Relaxed alignment: a subdomain's identifiers share the org. */
    {"relaxed DKIM from a subdomain", "example.com", NULL,
     "pass mail.example.com", DMARC_RESULT_PASS, R, "example.com",
     "example.com"},
    {"relaxed SPF from a sibling", "news.example.com",
     "pass bounce.example.com", NULL, DMARC_RESULT_PASS, R, "example.com",
     "example.com"},
    /* Strict: only the exact domain. */
    {"strict DKIM refuses a subdomain", "strict.test", NULL,
     "pass a.strict.test", DMARC_RESULT_FAIL, R, "strict.test", "strict.test"},
    {"strict SPF exact", "strict.test", "pass strict.test", NULL,
     DMARC_RESULT_PASS, R, "strict.test", "strict.test"},
    /* Several signatures where only one aligns. */
    {"one of three signatures aligns", "example.com", "fail example.com",
     "pass mailer.test,fail example.com,pass s.example.com", DMARC_RESULT_PASS,
     R, "example.com", "example.com"},
    /* An unrelated passing identifier costs no query. */
    {"third-party signature, no walk", "example.com", NULL, "pass mailer.test",
     DMARC_RESULT_FAIL, R, "example.com", "example.com", 2},
    /* d=com never aligns ("com" has no record, it is its own org). */
    {"d=com", "example.com", NULL, "pass com", DMARC_RESULT_FAIL, R,
     "example.com", "example.com"},
    /* PSD: psd=y above the start makes the org one label below it. */
    {"PSD policy for an org without a record", "a.shop.psd", NULL, NULL,
     DMARC_RESULT_FAIL, R, "psd", "shop.psd"},
    {"psd=y at org.psd: org is one label below", "x.y.org.psd", NULL,
     "pass z.y.org.psd", DMARC_RESULT_PASS, N, "org.psd", "y.org.psd"},
    {"psd=n stops the walk", "m.n.org.psd", NULL, "pass k.n.org.psd",
     DMARC_RESULT_PASS, Q, "n.org.psd", "n.org.psd"},
    /* Several DMARC records at one name are all discarded. */
    {"two records discarded", "two.test", NULL, NULL, DMARC_RESULT_NONE, U,
     NULL, NULL},
    {"two records at the parent: subdomain alone", "sub.two.test", NULL, NULL,
     DMARC_RESULT_FAIL, Q, "sub.two.test", "sub.two.test"},
    {"non-DMARC TXT beside the record", "noise.test", NULL, NULL,
     DMARC_RESULT_FAIL, R, "noise.test", "noise.test"},
    /* DNS trouble: temperror; SPF/DKIM temperror prevents a fail. */
    {"walk tempfail", "a.temp.test", NULL, NULL, DMARC_RESULT_TEMPERROR, U,
     NULL, NULL},
    {"DKIM temperror, nothing passes", "example.com", "fail example.com",
     "temperror example.com", DMARC_RESULT_TEMPERROR, R, "example.com",
     "example.com"},
    /* An invalid p without rua: no DMARC processing (permerror). */
    {"unusable record", "broken.test", NULL, NULL, DMARC_RESULT_PERMERROR, U,
     "broken.test", "broken.test"},
    /* t=y: the result is fail; the plugin does not enforce. */
    {"test mode still fails", "testing.test", NULL, NULL, DMARC_RESULT_FAIL, R,
     "testing.test", "testing.test"},
    /* A deep name: 8 queries at most. */
    {"deep name", "a.b.c.d.e.f.g.h.i.deep.test", NULL, NULL, DMARC_RESULT_FAIL,
     R, "deep.test", "deep.test", 8},
};

static DmarcAuth *auth_parse(const char *text) {
  g_auto(GStrv) words = g_strsplit(text, " ", 2);
  return dmarc_auth_new(words[1], "sel", words[0], "mfrom");
}

/* The check of a case: its From domain, SPF and DKIM results. */
static DmarcCheck *case_check_new(const CheckCase *c) {
  GPtrArray *dkim =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_auth_free);
  g_auto(GStrv) signatures = g_strsplit(c->dkim ? c->dkim : "", ",", -1);
  for (guint k = 0; signatures[k] != NULL; k++)
    g_ptr_array_add(dkim, auth_parse(signatures[k]));
  return dmarc_check_new(c->from, c->spf ? auth_parse(c->spf) : NULL, dkim);
}

/* The finished check concluded what the case says. */
static void case_check_assert(const CheckCase *c, const DmarcCheck *check) {
  DmarcOutcome outcome;
  dmarc_check_get_outcome(check, &outcome);
  g_assert_cmpstr(dmarc_result_to_string(outcome.result), ==,
                  dmarc_result_to_string(c->result));
  g_assert_cmpint(outcome.policy, ==, c->policy);
  g_assert_cmpstr(outcome.policy_domain, ==, c->policy_domain);
  g_assert_cmpstr(outcome.org_domain, ==, c->org_domain);
}

static void test_check(void) {
  for (guint i = 0; i < G_N_ELEMENTS(check_cases); i++) {
    const CheckCase *c = &check_cases[i];
    g_test_message("check: %s", c->title);
    g_autoptr(DmarcCheck) check = case_check_new(c);
    g_autoptr(GString) log = g_string_new(NULL);
    guint asked = check_run(check, log);
    g_test_message("  asked: %s", log->str);
    case_check_assert(c, check);
    if (c->max_questions > 0)
      g_assert_cmpuint(asked, <=, c->max_questions);
  }
}

/* The zone's answer as the plugin's cache keeps it. */
typedef struct {
  DmarcCachedAnswer answer;
  GStrv texts;
  guint every; /* keeps the answer of every `every`-th name asked */
  guint calls;
  guint kept;
} ZoneKept;

static const DmarcCachedAnswer *zone_kept(PstDnsType type, const char *name,
                                          gpointer data) {
  ZoneKept *z = data;
  if (z->calls++ % z->every != 0)
    return NULL;
  g_clear_pointer(&z->texts, g_strfreev);
  g_clear_pointer(&z->answer.lengths, g_free);
  const char *records = zone_lookup(name);
  DmarcCachedAnswer *a = &z->answer;
  a->status = PST_DNS_NXDOMAIN;
  a->count = 0;
  if (records != NULL && g_str_equal(records, "!TEMP"))
    return NULL; /* temporary failures are never kept */
  if (records != NULL && g_str_equal(records, "!OK"))
    a->status = PST_DNS_OK;
  else if (records != NULL && type == PST_DNS_TYPE_TXT) {
    a->status = PST_DNS_OK;
    z->texts = g_strsplit(records, "|", -1);
    a->count = g_strv_length(z->texts);
  } else if (records != NULL)
    a->status = PST_DNS_NODATA;
  a->records = z->texts;
  a->lengths = g_new0(gsize, a->count + 1);
  for (guint k = 0; k < a->count; k++)
    a->lengths[k] = strlen(z->texts[k]);
  z->kept++;
  return a;
}

/* Every case again with answers kept (dmarc_check_set_kept()): all of
 * them (nothing is asked unless the zone fails temporarily), or every
 * second or third name (the rest asked): the same outcome. */
static void test_check_kept(void) {
  for (guint every = 1; every <= 3; every++)
    for (guint i = 0; i < G_N_ELEMENTS(check_cases); i++) {
      const CheckCase *c = &check_cases[i];
      g_autoptr(DmarcCheck) check = case_check_new(c);
      ZoneKept z = {.every = every};
      dmarc_check_set_kept(check, zone_kept, &z);
      guint asked = check_run(check, NULL);
      case_check_assert(c, check);
      g_assert_cmpuint(z.kept, >, 0);
      if (every == 1 && c->result != DMARC_RESULT_TEMPERROR)
        g_assert_cmpuint(asked, ==, 0);
      g_strfreev(z.texts);
      g_free(z.answer.lengths);
    }
}

/* The questions of the walk for a deep name: the jump after the first. */
static void test_check_questions(void) {
  g_autoptr(DmarcCheck) check =
      dmarc_check_new("a.b.c.d.e.f.g.h.example.com", NULL, NULL);
  g_autoptr(GString) log = g_string_new(NULL);
  check_run(check, log);
  g_assert_cmpstr(log->str, ==,
                  "_dmarc.a.b.c.d.e.f.g.h.example.com "
                  "_dmarc.d.e.f.g.h.example.com _dmarc.e.f.g.h.example.com "
                  "_dmarc.f.g.h.example.com "
                  "_dmarc.g.h.example.com _dmarc.h.example.com "
                  "_dmarc.example.com _dmarc.com");
}

/* --- Configuration
 * ------------------------------------------------------------------ */

static void test_config_errors(void) {
  static const struct {
    const char *text;
    const char *error; /* a part of the message; NULL: loads */
  } cases[] = {
      {"", NULL},
      {"enforce=false\nquarantine=header\ntemperror_action=tempfail\n"
       "malformed_from=accept\ntrusted_forwarders=192.0.2.0/24; 2001:db8::/32\n"
       "history=postgresql://localhost/dmarc\nreport_email=r@example.com\n",
       NULL},
      {"history=\n", NULL},
      {"report_email=\nreport_org_name=\ntrusted_forwarders=\n", NULL},
      {"quarantine=junk\n", "quarantine: \"junk\" is not hold or header"},
      {"temperror_action=reject\n", "temperror_action"},
      {"malformed_from=drop\n", "malformed_from"},
      {"reject_reply=450 4.7.1 no\n", "reject_reply"},
      {"reject_reply=550 5.7.1\n", "reject_reply"},
      {"trusted_forwarders=not-a-net\n", "trusted_forwarders"},
      {"history=mysql://x\n", "history"},
      {"history=sqlite:relative.db\n", "history"},
      {"report_email=nobody\n", "report_email"},
      {"pct=100\n", "pct"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text =
        g_strconcat("[plugin:dmarc]\n", cases[i].text, NULL);
    g_autoptr(GKeyFile) keyfile = g_key_file_new();
    g_assert_true(
        g_key_file_load_from_data(keyfile, text, -1, G_KEY_FILE_NONE, NULL));
    g_autoptr(GError) error = NULL;
    g_autoptr(DmarcConfig) config =
        dmarc_config_load(keyfile, "plugin:dmarc", &error);
    g_test_message("config %s", cases[i].text);
    if (cases[i].error == NULL) {
      g_assert_no_error(error);
      g_assert_nonnull(config);
    } else {
      g_assert_null(config);
      g_assert_nonnull(strstr(error->message, cases[i].error));
    }
  }
}

static void test_config_defaults(void) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_key_file_set_string(keyfile, "server", "hostname", "mx.example.net");
  g_autoptr(DmarcConfig) config =
      dmarc_config_load(keyfile, "plugin:dmarc", NULL);
  g_assert_true(config->enforce);
  g_assert_cmpuint(config->reject.code, ==, 550);
  g_assert_cmpstr(config->reject.enhanced, ==, "5.7.1");
  g_assert_cmpint(config->quarantine, ==, DMARC_QUARANTINE_HOLD);
  g_assert_false(config->temperror_tempfail);
  g_assert_true(config->malformed_reject);
  g_assert_cmpstr(config->history, ==, "sqlite:/var/lib/postilion/dmarc.db");
  g_assert_cmpstr(config->report_org_name, ==, "mx.example.net");
  g_assert_cmpstr(config->report_email, ==, "dmarc-noreply@mx.example.net");
  g_assert_true(config->reports);
  g_assert_false(config->failure_reports);
  g_autofree char *text =
      dmarc_reply_format(config->reject.text, "example.com", "reject");
  g_assert_cmpstr(text, ==, "Email rejected per DMARC policy for example.com");
}

/* --- The answer cache (dmarc-cache.c)
 * ------------------------------------------ */

static void test_cache(void) {
  DmarcCache *cache = dmarc_cache_new(3);
  static const char record[] = "v=DMARC1;\0 p=none";
  const char *records[] = {record};
  gsize lengths[] = {sizeof record - 1};
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.example.com", PST_DNS_OK,
                  records, lengths, 1, NULL, 300, 1000);
  const DmarcCachedAnswer *kept =
      dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.example.com", 1299);
  g_assert_nonnull(kept);
  g_assert_cmpuint(kept->count, ==, 1);
  g_assert_cmpuint(kept->lengths[0], ==, sizeof record - 1);
  g_assert_cmpmem(kept->records[0], kept->lengths[0], record,
                  sizeof record - 1); /* the NUL octet is kept */
  /* Another type is another question; the TTL ends it. */
  g_assert_null(dmarc_cache_get(cache, PST_DNS_TYPE_A, "_dmarc.example.com",
                                1001));
  g_assert_null(
      dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.example.com", 1300));
  g_assert_cmpuint(dmarc_cache_size(cache), ==, 0);
  /* Negative answers are kept; a day-long TTL is cut to the maximum. */
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.com", PST_DNS_NXDOMAIN,
                  NULL, NULL, 0, "NXDOMAIN", 86400, 1000);
  g_assert_nonnull(dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.com",
                                   1000 + DMARC_CACHE_MAX_TTL - 1));
  g_assert_null(dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.com",
                                1000 + DMARC_CACHE_MAX_TTL));
  /* Temporary failures and TTL 0 ([dns] cache_size = 0) are not kept. */
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.a.example",
                  PST_DNS_TEMPFAIL, NULL, NULL, 0, "timeout", 300, 1000);
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.b.example", PST_DNS_NODATA,
                  NULL, NULL, 0, NULL, 0, 1000);
  g_assert_cmpuint(dmarc_cache_size(cache), ==, 0);
  /* Full: the expired go first, then everything. */
  for (guint i = 0; i < 3; i++) {
    g_autofree char *name = g_strdup_printf("_dmarc.%u.example", i);
    dmarc_cache_put(cache, PST_DNS_TYPE_TXT, name, PST_DNS_NODATA, NULL, NULL,
                    0, NULL, i == 0 ? 10 : 300, 1000);
  }
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.new.example",
                  PST_DNS_NODATA, NULL, NULL, 0, NULL, 300, 1020);
  g_assert_cmpuint(dmarc_cache_size(cache), ==, 3);
  g_assert_null(
      dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.0.example", 1020));
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.newer.example",
                  PST_DNS_NODATA, NULL, NULL, 0, NULL, 300, 1020);
  g_assert_cmpuint(dmarc_cache_size(cache), ==, 1);
  g_assert_nonnull(
      dmarc_cache_get(cache, PST_DNS_TYPE_TXT, "_dmarc.newer.example", 1020));
  dmarc_cache_unref(cache);
  /* A cache of no entries keeps nothing. */
  cache = dmarc_cache_new(0);
  dmarc_cache_put(cache, PST_DNS_TYPE_TXT, "_dmarc.com", PST_DNS_NXDOMAIN,
                  NULL, NULL, 0, NULL, 300, 1000);
  g_assert_cmpuint(dmarc_cache_size(cache), ==, 0);
  dmarc_cache_unref(cache);
}

/* --- Aggregate reports (RFC 9990)
 * ------------------------------------------------ */

static DmarcReportRecord *report_record(const char *ip, const char *result,
                                        const char *disposition,
                                        const char *override, const char *dkim,
                                        guint64 count) {
  DmarcReportRecord *r = g_new0(DmarcReportRecord, 1);
  r->source_ip = g_strdup(ip);
  r->result = g_strdup(result);
  r->disposition = g_strdup(disposition);
  r->override = g_strdup(override);
  r->header_from = g_strdup("example.com");
  r->envelope_from = g_strdup("");
  r->envelope_to = g_strdup("example.net");
  r->dkim_aligned = g_str_equal(result, "pass");
  r->spf_domain = g_strdup("bounce.example.com");
  r->spf_result = g_strdup("fail");
  r->dkim = g_strdup(dkim);
  r->count = count;
  return r;
}

static void assert_valid_report(const char *xml);

static void test_report_xml(void) {
  g_autoptr(GPtrArray) records =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_report_record_free);
  g_ptr_array_add(records, report_record("192.0.2.1", "pass", "none", "",
                                         "example.com s1 pass\n"
                                         "evil<&>.example - fail",
                                         3));
  g_ptr_array_add(records, report_record("2001:db8::7", "fail", "none",
                                         "trusted_forwarder", "", 1));
  g_autofree char *id =
      dmarc_report_id("example.com", 1796515200, "mx.example.net");
  DmarcReportHeader header = {.org_name = "Example & Co",
                              .email = "dmarc@mx.example.net",
                              .report_id = id,
                              .generator = "Postilion test",
                              .begin = 1796515200,
                              .end = 1796515200 + 86400,
                              .domain = "example.com",
                              .p = "reject",
                              .sp = "quarantine",
                              .np = "",
                              .fo = "0",
                              .adkim = "r",
                              .aspf = "s",
                              .testing = "n"};
  g_autofree char *xml = dmarc_report_xml(&header, records);
  g_assert_nonnull(strstr(xml, "xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\""));
  g_assert_nonnull(strstr(xml, "<org_name>Example &amp; Co</org_name>"));
  g_assert_nonnull(strstr(xml, "<domain>evil&lt;&amp;&gt;.example</domain>"));
  g_assert_nonnull(strstr(xml, "<disposition>pass</disposition>"));
  g_assert_nonnull(strstr(xml, "<type>trusted_forwarder</type>"));
  g_assert_nonnull(strstr(xml, "<end>1796601599</end>"));
  g_assert_nonnull(strstr(xml, "<envelope_from></envelope_from>"));
  g_assert_null(strstr(xml, "<np>"));
  /* Nothing to say: the optional elements are left out. */
  g_assert_null(strstr(xml, "<error>"));
  g_assert_null(strstr(xml, "<human_result>"));
  assert_valid_report(xml);
}

/* "error" (RFC 9990 report_metadata: errors met while making the report)
 * and "human_result" (why a DKIM or SPF result is what it is). */
static void test_report_errors_and_human_results(void) {
  g_autoptr(GPtrArray) records =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_report_record_free);
  DmarcReportRecord *lost = report_record(
      "192.0.2.1", "fail", "none", "",
      "example.com s1 fail body hash mismatch (body changed)\n"
      "example.com s2 pass",
      2);
  g_free(lost->spf_result);
  lost->spf_result = g_strdup("permerror");
  lost->spf_human = g_strdup("unknown mechanism <frob>");
  g_ptr_array_add(records, lost);
  /* 101 signatures: the report lists 100 and says so. */
  GString *many = g_string_new(NULL);
  for (guint i = 0; i < 101; i++)
    g_string_append_printf(many, "%sd%u.example s fail", i ? "\n" : "", i);
  g_ptr_array_add(records, report_record("192.0.2.2", "fail", "none", "",
                                         many->str, 1));
  g_string_free(many, TRUE);
  DmarcReportGap gap = {.lost = 3, .first = 1796515200, .last = 1796518800};
  g_autofree char *gap_error = dmarc_report_gap_error(&gap);
  g_assert_cmpstr(gap_error, ==,
                  "3 evaluated messages between 2026-12-06T00:00:00Z and "
                  "2026-12-06T01:00:00Z could not be recorded (our history "
                  "database was unavailable): the counts in this report "
                  "are short by that many");
  const char *errors[] = {gap_error, NULL};
  DmarcReportHeader header = {.org_name = "Example",
                              .email = "dmarc@mx.example.net",
                              .report_id = "1.example.com@mx.example.net",
                              .begin = 1796515200,
                              .end = 1796515200 + 86400,
                              .domain = "example.com",
                              .p = "none",
                              .errors = errors};
  g_autofree char *xml = dmarc_report_xml(&header, records);
  g_autofree char *expected_gap =
      g_strdup_printf("<error>%s</error>", gap_error);
  g_assert_nonnull(strstr(xml, expected_gap));
  g_assert_nonnull(strstr(xml, "<error>1 record had more than 100 DKIM "
                               "signatures: only the first 100 of each are "
                               "listed</error>"));
  g_assert_nonnull(strstr(xml, "<result>fail</result>\n        <human_result>"
                               "body hash mismatch (body changed)"
                               "</human_result>"));
  g_assert_nonnull(strstr(xml, "<human_result>unknown mechanism &lt;frob&gt;"
                               "</human_result>"));
  g_assert_null(strstr(xml, "<domain>d100.example</domain>"));
  g_assert_nonnull(strstr(xml, "<domain>d99.example</domain>"));
  /* s2 passed without a reason: no human_result after its result. */
  g_assert_nonnull(strstr(xml, "<result>pass</result>\n      </dkim>"));
  assert_valid_report(xml);
}

static void test_auth_human(void) {
  DmarcAuth *auth = dmarc_auth_new("example.com", "s", "fail", NULL);
  dmarc_auth_set_human(auth, "  body\r\nhash\tmismatch\x7f ");
  g_assert_cmpstr(auth->human, ==, "body  hash mismatch");
  dmarc_auth_set_human(auth, " \n ");
  g_assert_null(auth->human);
  dmarc_auth_set_human(auth, "bad \xff octet");
  g_assert_true(g_utf8_validate(auth->human, -1, NULL));
  /* Cut at DMARC_HUMAN_MAX octets, between characters. */
  GString *long_text = g_string_new(NULL);
  while (long_text->len < 2 * DMARC_HUMAN_MAX)
    g_string_append(long_text, "\xc3\xa9"); /* é */
  dmarc_auth_set_human(auth, long_text->str);
  g_string_free(long_text, TRUE);
  g_assert_cmpuint(strlen(auth->human), ==, DMARC_HUMAN_MAX);
  g_assert_true(g_utf8_validate(auth->human, -1, NULL));
  dmarc_auth_free(auth);
}

/* Printable ASCII of at most DMARC_HUMAN_MAX octets is kept as it is,
 * without the spaces around it (the copy without GLib's UTF-8 pass). */
static void test_auth_human_ascii(void) {
  DmarcAuth *auth = dmarc_auth_new("example.com", "s", "fail", NULL);
  dmarc_auth_set_human(auth, "  no key published ");
  g_assert_cmpstr(auth->human, ==, "no key published");
  dmarc_auth_set_human(auth, "   ");
  g_assert_null(auth->human);
  dmarc_auth_set_human(auth, "");
  g_assert_null(auth->human);
  for (gsize length = DMARC_HUMAN_MAX - 1; length <= DMARC_HUMAN_MAX + 1;
       length++) {
    g_autofree char *text = g_strnfill(length, 'k');
    dmarc_auth_set_human(auth, text);
    g_assert_cmpuint(strlen(auth->human), ==, MIN(length, DMARC_HUMAN_MAX));
  }
  dmarc_auth_free(auth);
}

/* What dmarc_domain_normalize() returned before its ASCII path: every
 * name through g_hostname_to_ascii(), then the LDH check. */
static char *normalize_through_glib(const char *name) {
  if (name == NULL || name[0] == '\0' || strlen(name) > 1024 ||
      !g_utf8_validate(name, -1, NULL))
    return NULL;
  g_autofree char *ascii = g_hostname_to_ascii(name);
  if (ascii == NULL)
    return NULL;
  gsize length = strlen(ascii);
  if (length > 0 && ascii[length - 1] == '.')
    ascii[--length] = '\0';
  if (length == 0 || length > 253)
    return NULL;
  gsize label = 0;
  for (gsize i = 0; i < length; i++) {
    char c = ascii[i];
    if (c == '.') {
      if (label == 0)
        return NULL;
      label = 0;
    } else if (g_ascii_isalnum(c) || c == '-' || c == '_') {
      if (++label > 63)
        return NULL;
    } else {
      return NULL;
    }
  }
  if (label == 0)
    return NULL;
  return g_ascii_strdown(ascii, -1);
}

static void test_domain_normalize(void) {
  g_autofree char *label63 = g_strnfill(63, 'a');
  g_autofree char *label64 = g_strnfill(64, 'a');
  g_autofree char *long63 = g_strjoin(".", label63, label63, label63, "abcd",
                                      NULL);                     /* 196 */
  g_autofree char *long253 = g_strjoin(".", label63, label63, label63,
                                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                       NULL);
  g_autofree char *long254 = g_strconcat(long253, "a", NULL);
  const char *names[] = {
      "example.com", "Example.COM", "example.com.", "example.com..",
      ".example.com", "a..b", ".", "", "a", "_dmarc.example.com", "a_b-c.d",
      "-a.b", "a b.c", "a@b.c", "a/b", "xn--bcher-kva.example",
      "XN--BCHER-KVA.Example.", "b\xc3\xbc" "cher.example",
      "B\xc3\x9c" "CHER.example", "bad\xff.example", "\xe2\x80\x8b.example",
      "a\x7f.b", "a\tb.c", label63, label64, long63, long253, long254,
      "1.2.3.4", "[192.0.2.1]", "exa\xc2\xadmple.com",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *ours = dmarc_domain_normalize(names[i]);
    g_autofree char *glib = normalize_through_glib(names[i]);
    g_assert_cmpstr(ours, ==, glib);
  }
  g_assert_null(dmarc_domain_normalize(NULL));
  g_autofree char *mixed = dmarc_domain_normalize("Mail.Example.COM.");
  g_assert_cmpstr(mixed, ==, "mail.example.com");
}

/* Validates a report against the XSD written from RFC 9990 (xmllint is on
 * every test machine: scripts/setup-debian.sh). */
static void assert_valid_report(const char *xml) {
  g_autofree char *xmllint = g_find_program_in_path("xmllint");
  if (xmllint == NULL) {
    g_test_skip("xmllint not installed");
    return;
  }
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp("dmarc-report-XXXXXX.xml", &path, NULL);
  g_assert_cmpint(fd, >=, 0);
  close(fd);
  g_assert_true(g_file_set_contents(path, xml, -1, NULL));
  g_autofree char *xsd =
      g_test_build_filename(G_TEST_DIST, "dmarc-aggregate.xsd", NULL);
  const char *argv[] = {xmllint, "--noout", "--schema", xsd, path, NULL};
  int status = -1;
  g_autofree char *errors = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL,
                             NULL, NULL, &errors, &status, NULL));
  g_unlink(path);
  g_autofree char *validates = g_strconcat(path, " validates\n", NULL);
  g_assert_cmpstr(errors, ==, validates);
  g_assert_cmpint(status, ==, 0);
}

static void test_report_names(void) {
  g_autofree char *id = dmarc_report_id("example.com", 100, "mx.example.net");
  g_assert_cmpstr(id, ==, "100.example.com@mx.example.net");
  g_autofree char *name =
      dmarc_report_filename("mx.example.net", "example.com", 100, 200, id);
  g_assert_true(g_regex_match_simple(
      "^mx\\.example\\.net!example\\.com!100!199![0-9a-f]{16}\\.xml\\.gz$",
      name, 0, 0));
  g_autofree char *again =
      dmarc_report_filename("mx.example.net", "example.com", 100, 200, id);
  g_assert_cmpstr(name, ==, again); /* a resent report keeps its name */
  g_autofree char *subject =
      dmarc_report_subject("example.com", "mx.example.net", id);
  g_assert_cmpstr(subject, ==,
                  "Report Domain: example.com Submitter: mx.example.net "
                  "Report-ID: <100.example.com@mx.example.net>");
}

static void test_report_gzip_message(void) {
  static const char text[] = "<feedback/>";
  g_autoptr(GBytes) gz = dmarc_gzip(text, strlen(text), NULL);
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(gz, &size);
  g_assert_cmpuint(size, >, 10);
  g_assert_cmpuint(data[0], ==, 0x1f); /* the gzip magic (RFC 1952) */
  g_assert_cmpuint(data[1], ==, 0x8b);
  g_autoptr(GDateTime) date = g_date_time_new_utc(2026, 12, 6, 1, 2, 3);
  g_autofree char *message = dmarc_report_message(
      "r@mx.example.net", "dmarc@example.com", "Report Domain: x", "1.x@y",
      "mx!x!1!2!ab.xml.gz", gz, date);
  g_assert_nonnull(strstr(message, "Content-Type: application/gzip; "
                                   "name=\"mx!x!1!2!ab.xml.gz\"\r\n"));
  g_assert_nonnull(strstr(message, "Message-ID: <1.x@y>\r\n"));
  g_assert_nonnull(
      strstr(message, "Date: Sun, 06 Dec 2026 01:02:03 +0000\r\n"));
  g_assert_null(strstr(message, "\n\n"));
}

/* --- Failure reports (RFC 9991)
 * -------------------------------------------------- */

static void test_failure_type(void) {
  static const struct {
    const char *record;
    DmarcResult result;
    gboolean spf_aligned, dkim_aligned;
    const char *dkim_result, *spf_result;
    const char *type;
  } cases[] = {
      /* fo=0 (default): only when DMARC fails. */
      {"v=DMARC1; p=reject; ruf=mailto:f@x.example", DMARC_RESULT_FAIL, FALSE,
       FALSE, "fail", "fail", "dmarc"},
      {"v=DMARC1; p=reject; ruf=mailto:f@x.example", DMARC_RESULT_PASS, TRUE,
       FALSE, "fail", "pass", NULL},
      /* fo=1: when any mechanism did not produce an aligned pass. */
      {"v=DMARC1; p=reject; fo=1; ruf=mailto:f@x.example", DMARC_RESULT_PASS,
       TRUE, FALSE, "fail", "pass", "dmarc"},
      {"v=DMARC1; p=reject; fo=1; ruf=mailto:f@x.example", DMARC_RESULT_PASS,
       TRUE, TRUE, "pass", "pass", NULL},
      /* fo=d / fo=s: a failed signature / SPF, aligned or not. */
      {"v=DMARC1; p=reject; fo=d; ruf=mailto:f@x.example", DMARC_RESULT_PASS,
       TRUE, FALSE, "fail", "pass", "dkim"},
      {"v=DMARC1; p=reject; fo=s; ruf=mailto:f@x.example", DMARC_RESULT_PASS,
       FALSE, TRUE, "pass", "softfail", "spf"},
      {"v=DMARC1; p=reject; fo=s; ruf=mailto:f@x.example", DMARC_RESULT_PASS,
       TRUE, TRUE, "pass", "pass", NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(DmarcRecord) record =
        dmarc_record_parse(cases[i].record, strlen(cases[i].record));
    g_autoptr(GPtrArray) dkim =
        g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_auth_free);
    g_ptr_array_add(
        dkim, dmarc_auth_new("x.example", "s", cases[i].dkim_result, NULL));
    DmarcAuth *spf =
        dmarc_auth_new("x.example", NULL, cases[i].spf_result, "mfrom");
    DmarcOutcome outcome = {.result = cases[i].result,
                            .from_domain = "x.example",
                            .policy_domain = "x.example",
                            .org_domain = "x.example",
                            .record = record,
                            .spf_aligned = cases[i].spf_aligned,
                            .dkim_aligned = cases[i].dkim_aligned,
                            .spf = spf,
                            .dkim = dkim};
    g_assert_cmpstr(dmarc_failure_type(&outcome), ==, cases[i].type);
    DmarcFailureContext context = {"mx.example.net", "192.0.2.1", "", "reject",
                                   "Subject: hi\r\n"};
    DmarcFailure *failure = dmarc_failure_new(&outcome, &context);
    g_assert_true((failure != NULL) == (cases[i].type != NULL));
    if (failure != NULL) {
      g_assert_nonnull(strstr(failure->feedback, "Identity-Alignment: "));
      g_assert_nonnull(strstr(failure->feedback, "Original-Mail-From: <>"));
      g_assert_cmpstr(failure->ruf, ==, "mailto:f@x.example");
    }
    dmarc_failure_free(failure);
    dmarc_auth_free(spf);
  }
}

static void test_failure_psd(void) {
  static const char text[] =
      "v=DMARC1; p=reject; psd=y; ruf=mailto:f@x.example";
  g_autoptr(DmarcRecord) record = dmarc_record_parse(text, strlen(text));
  g_autoptr(GPtrArray) dkim = g_ptr_array_new();
  DmarcOutcome outcome = {.result = DMARC_RESULT_FAIL,
                          .from_domain = "a.x",
                          .policy_domain = "x",
                          .record = record,
                          .dkim = dkim};
  DmarcFailureContext context = {"mx.example.net", "192.0.2.1", "a@a.x",
                                 "reject", ""};
  /* RFC 9991: ruf= of a psd=y record is not considered. */
  g_assert_null(dmarc_failure_new(&outcome, &context));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dmarc/record/parse", test_record_parse);
  g_test_add_func("/dmarc/record/nul", test_record_nul);
  g_test_add_func("/dmarc/record/mailto", test_uri_mailto);
  g_test_add_func("/dmarc/from/domain", test_from_domain);
  g_test_add_func("/dmarc/from/normalize", test_domain_normalize);
  g_test_add_func("/dmarc/walk/targets", test_walk_targets);
  g_test_add_func("/dmarc/check/cases", test_check);
  g_test_add_func("/dmarc/check/questions", test_check_questions);
  g_test_add_func("/dmarc/check/kept", test_check_kept);
  g_test_add_func("/dmarc/config/errors", test_config_errors);
  g_test_add_func("/dmarc/config/defaults", test_config_defaults);
  g_test_add_func("/dmarc/cache", test_cache);
  g_test_add_func("/dmarc/report/xml", test_report_xml);
  g_test_add_func("/dmarc/report/errors-human-results",
                  test_report_errors_and_human_results);
  g_test_add_func("/dmarc/report/auth-human", test_auth_human);
  g_test_add_func("/dmarc/report/auth-human-ascii", test_auth_human_ascii);
  g_test_add_func("/dmarc/report/names", test_report_names);
  g_test_add_func("/dmarc/report/gzip-message", test_report_gzip_message);
  g_test_add_func("/dmarc/failure/type", test_failure_type);
  g_test_add_func("/dmarc/failure/psd", test_failure_psd);
  return g_test_run();
}
