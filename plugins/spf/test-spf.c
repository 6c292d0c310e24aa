/* test-spf.c - unit tests of the SPF plugin's pure parts and of libspf2
 * through the plugin's DNS layer, against an in-memory zone table (no
 * daemon, no DNS server): configuration, result mapping, the RFC 7208
 * lookup limits, the Received-SPF value and the policy decisions.
 */
#include <arpa/inet.h>
#include <string.h>

#include "spf.h"

/* --- A zone in a table -------------------------------------------------- */

typedef struct {
  const char *name;
  PstDnsType type;
  const char *records; /* '|'-separated; "!NX", "!TEMP" for errors */
} ZoneEntry;

static const ZoneEntry zone[] = {
    {"pass.test", PST_DNS_TYPE_TXT, "v=spf1 ip4:192.0.2.0/24 -all"},
    {"soft.test", PST_DNS_TYPE_TXT, "v=spf1 ~all"},
    {"neutral.test", PST_DNS_TYPE_TXT, "v=spf1 ?all"},
    {"nospf.test", PST_DNS_TYPE_TXT, "some other text"},
    {"syntax.test", PST_DNS_TYPE_TXT, "v=spf1 ip4:300.1.1.1 -all"},
    {"two.test", PST_DNS_TYPE_TXT, "v=spf1 -all|v=spf1 +all"},
    {"temp.test", PST_DNS_TYPE_TXT, "!TEMP"},
    {"a.test", PST_DNS_TYPE_TXT, "v=spf1 a:host.a.test -all"},
    {"host.a.test", PST_DNS_TYPE_A, "198.51.100.7"},
    {"atemp.test", PST_DNS_TYPE_TXT, "v=spf1 a:x.temp.test -all"},
    {"x.temp.test", PST_DNS_TYPE_A, "!TEMP"},
    {"exp.test", PST_DNS_TYPE_TXT, "v=spf1 -all exp=why.exp.test"},
    {"why.exp.test", PST_DNS_TYPE_TXT, "%{i} is not one of %{d}'s servers"},
    {"exp2.test", PST_DNS_TYPE_TXT, "v=spf1 -all exp=two.exp.test"},
    {"two.exp.test", PST_DNS_TYPE_TXT, "one|two"},
    {"expnx.test", PST_DNS_TYPE_TXT, "v=spf1 -all exp=nx.exp.test"},
    {"exptemp.test", PST_DNS_TYPE_TXT, "v=spf1 -all exp=x.temp.test"},
    {"expbad.test", PST_DNS_TYPE_TXT, "v=spf1 -all exp=bad.exp.test"},
    {"bad.exp.test", PST_DNS_TYPE_TXT, "broken %{z macro"},
    /* eleven includes in a chain: the 11th term is one too many */
    {"chain0.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain1.test -all"},
    {"chain1.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain2.test -all"},
    {"chain2.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain3.test -all"},
    {"chain3.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain4.test -all"},
    {"chain4.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain5.test -all"},
    {"chain5.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain6.test -all"},
    {"chain6.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain7.test -all"},
    {"chain7.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain8.test -all"},
    {"chain8.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain9.test -all"},
    {"chain9.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain10.test -all"},
    {"chain10.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain11.test -all"},
    {"chain11.test", PST_DNS_TYPE_TXT, "v=spf1 +all"},
    /* ten includes exactly: allowed */
    {"ten.test", PST_DNS_TYPE_TXT, "v=spf1 include:chain2.test -all"},
    /* three void lookups */
    {"void.test", PST_DNS_TYPE_TXT,
     "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test +all"},
    {"void2.test", PST_DNS_TYPE_TXT,
     "v=spf1 a:nx1.void.test a:nx2.void.test +all"},
    {"mx.test", PST_DNS_TYPE_TXT, "v=spf1 mx -all"},
    {"mx.test", PST_DNS_TYPE_MX, "m1.mx.test|m2.mx.test"},
    {"m1.mx.test", PST_DNS_TYPE_A, "203.0.113.1"},
    {"m2.mx.test", PST_DNS_TYPE_A, "203.0.113.2"},
    {"v6.test", PST_DNS_TYPE_TXT, "v=spf1 ip6:2001:db8::/32 -all"},
    /* MX host names asked again by later terms: those count */
    {"reuse.test", PST_DNS_TYPE_TXT,
     "v=spf1 mx:mx.test include:reuse2.test -all"},
    {"reuse2.test", PST_DNS_TYPE_TXT,
     "v=spf1 a:m1.mx.test a:m1.mx.test a:m1.mx.test a:m1.mx.test "
     "a:m1.mx.test a:m1.mx.test a:m1.mx.test a:m1.mx.test a:m1.mx.test -all"},
    {"helo.test", PST_DNS_TYPE_TXT, "v=spf1 ip4:192.0.2.1 -all"},
    {"order.test", PST_DNS_TYPE_TXT, "v=spf1 redirect=soft.test ip4:192.0.2.9"},
    {"zero.test", PST_DNS_TYPE_TXT, "v=spf1 ip4:0.0.0.0/0 -all"},
    {"emptya.test", PST_DNS_TYPE_TXT, "v=spf1 a: -all"},
};

static SpfAnswer *zone_resolve(PstDnsType type, const char *name,
                               gpointer user_data) {
  guint *queries = user_data;
  (*queries)++;
  gboolean name_exists = FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS(zone); i++) {
    if (g_ascii_strcasecmp(zone[i].name, name) != 0)
      continue;
    name_exists = TRUE;
    if (zone[i].type != type)
      continue;
    if (strcmp(zone[i].records, "!TEMP") == 0)
      return spf_answer_new(PST_DNS_TEMPFAIL);
    SpfAnswer *answer = spf_answer_new(PST_DNS_OK);
    g_auto(GStrv) records = g_strsplit(zone[i].records, "|", -1);
    for (guint j = 0; records[j] != NULL; j++)
      g_ptr_array_add(answer->records, g_strdup(records[j]));
    return answer;
  }
  return spf_answer_new(name_exists ? PST_DNS_NODATA : PST_DNS_NXDOMAIN);
}

static guint query_count;

static void query_setup(SpfQuery *query, const char *ip, const char *helo,
                        const char *sender) {
  memset(query, 0, sizeof *query);
  query->ip = ip;
  query->helo = helo;
  query->sender = sender;
  query->identity = SPF_IDENTITY_MAIL_FROM;
  query->receiver = "mx.receiver.test";
  query->max_lookups = 10;
  query->max_void = 2;
  query->resolve = zone_resolve;
  query->resolve_data = &query_count;
}

/* --- Evaluation --------------------------------------------------------- */

static const struct {
  const char *ip;
  const char *sender;
  SpfResult result;
  const char *problem; /* substring, nullable */
} eval_cases[] = {
    {"192.0.2.9", "a@pass.test", SPF_RES_PASS, NULL},
    {"198.51.100.1", "a@pass.test", SPF_RES_FAIL, NULL},
    {"198.51.100.1", "a@soft.test", SPF_RES_SOFTFAIL, NULL},
    {"198.51.100.1", "a@neutral.test", SPF_RES_NEUTRAL, NULL},
    {"198.51.100.1", "a@nospf.test", SPF_RES_NONE, NULL},
    {"198.51.100.1", "a@nowhere.test", SPF_RES_NONE, NULL},
    {"198.51.100.1", "a@syntax.test", SPF_RES_PERMERROR, NULL},
    {"198.51.100.1", "a@two.test", SPF_RES_PERMERROR, NULL},
    {"198.51.100.1", "a@temp.test", SPF_RES_TEMPERROR, NULL},
    {"198.51.100.1", "a@atemp.test", SPF_RES_TEMPERROR, NULL},
    {"198.51.100.7", "a@a.test", SPF_RES_PASS, NULL},
    {"::ffff:192.0.2.9", "a@pass.test", SPF_RES_PASS, NULL},
    {"2001:db8::1", "a@v6.test", SPF_RES_PASS, NULL},
    {"2001:db9::1", "a@v6.test", SPF_RES_FAIL, NULL},
    {"203.0.113.2", "a@mx.test", SPF_RES_PASS, NULL},
    {"203.0.113.3", "a@mx.test", SPF_RES_FAIL, NULL},
    {"192.0.2.1", "a@chain0.test", SPF_RES_PERMERROR, "more than 10"},
    {"192.0.2.1", "a@ten.test", SPF_RES_PASS, NULL},
    {"192.0.2.1", "a@void.test", SPF_RES_PERMERROR, "void"},
    {"192.0.2.1", "a@void2.test", SPF_RES_PASS, NULL},
    {"198.51.100.1", "a@reuse.test", SPF_RES_PERMERROR, "more than 10"},
    {"203.0.113.2", "a@reuse.test", SPF_RES_PASS, NULL},
    {"192.0.2.1", "a@[192.0.2.1]", SPF_RES_NONE, NULL},
    {"192.0.2.1", "a@localhost", SPF_RES_NONE, NULL},
    {"192.0.2.9", "a@order.test", SPF_RES_PASS, NULL},
    {"192.0.2.8", "a@order.test", SPF_RES_SOFTFAIL, NULL},
    {"203.0.113.1", "a@zero.test", SPF_RES_PASS, NULL},
    {"192.0.2.1", "a@emptya.test", SPF_RES_PERMERROR, "empty domain"},
    /* No free ride for loopback clients (libspf2 would say pass). */
    {"127.0.0.1", "a@pass.test", SPF_RES_FAIL, NULL},
    {"::1", "a@pass.test", SPF_RES_FAIL, NULL},
};

static void test_evaluate(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(eval_cases); i++) {
    SpfQuery query;
    query_setup(&query, eval_cases[i].ip, "client.test", eval_cases[i].sender);
    g_autoptr(SpfOutcome) outcome = spf_evaluate(&query);
    g_test_message("%s from %s: %s (%s)", eval_cases[i].sender,
                   eval_cases[i].ip, spf_result_to_string(outcome->result),
                   outcome->problem ? outcome->problem : "-");
    g_assert_cmpstr(spf_result_to_string(outcome->result), ==,
                    spf_result_to_string(eval_cases[i].result));
    if (eval_cases[i].problem != NULL)
      g_assert_nonnull(strstr(outcome->problem, eval_cases[i].problem));
  }
}

/* Every question answered with the same status and no record. */
static SpfAnswer *status_resolve(PstDnsType type, const char *name,
                                 gpointer user_data) {
  (void)type, (void)name;
  return spf_answer_new(GPOINTER_TO_INT(user_data));
}

static void assert_same_outcome(const SpfOutcome *a, const SpfOutcome *b) {
  g_assert_cmpint(a->result, ==, b->result);
  g_assert_cmpstr(a->domain, ==, b->domain);
  g_assert_cmpstr(a->identity, ==, b->identity);
  g_assert_cmpstr(a->comment, ==, b->comment);
  g_assert_cmpstr(a->problem, ==, b->problem);
  g_assert_cmpstr(a->explanation, ==, b->explanation);
  g_assert_cmpuint(a->lookups, ==, b->lookups);
  g_assert_cmpuint(a->voids, ==, b->voids);
}

/* The plugin answers `none` itself when the domain's TXT question found
 * no record, or there is no domain to ask about (spf.c): the outcome
 * libspf2 would give, to the octet. */
static void test_none_without_evaluator(void) {
  static const PstDnsStatus statuses[] = {PST_DNS_NXDOMAIN, PST_DNS_NODATA,
                                          PST_DNS_INVALID};
  for (gsize i = 0; i < G_N_ELEMENTS(statuses); i++) {
    for (SpfIdentity identity = SPF_IDENTITY_MAIL_FROM;
         identity <= SPF_IDENTITY_HELO; identity++) {
      SpfQuery query;
      query_setup(&query, "198.51.100.1", "client.test", "a@nowhere.test");
      query.identity = identity;
      query.resolve = status_resolve;
      query.resolve_data = GINT_TO_POINTER(statuses[i]);
      g_autoptr(SpfAnswer) answer = spf_answer_new(statuses[i]);
      g_assert_true(spf_answer_is_no_record(answer));
      g_autoptr(SpfOutcome) evaluated = spf_evaluate(&query);
      g_autoptr(SpfOutcome) none = spf_outcome_new_none(&query);
      g_assert_cmpint(evaluated->result, ==, SPF_RES_NONE);
      assert_same_outcome(evaluated, none);
    }
  }
  /* An identity without a domain to check (an address literal, a dotless
   * name, no HELO): `none` without a question, here too. */
  static const struct {
    SpfIdentity identity;
    const char *helo, *sender;
  } no_domain[] = {
      {SPF_IDENTITY_MAIL_FROM, "client.test", "a@[192.0.2.1]"},
      {SPF_IDENTITY_MAIL_FROM, "client.test", "a@localhost"},
      {SPF_IDENTITY_MAIL_FROM, "[192.0.2.1]", ""},
      {SPF_IDENTITY_MAIL_FROM, NULL, ""},
      {SPF_IDENTITY_HELO, "[192.0.2.1]", "a@dom.test"},
      {SPF_IDENTITY_HELO, "localhost", "a@dom.test"},
      {SPF_IDENTITY_HELO, NULL, "a@dom.test"},
      {SPF_IDENTITY_HELO, "192.0.2.1", "a@dom.test"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(no_domain); i++) {
    SpfQuery query;
    query_setup(&query, "198.51.100.1", no_domain[i].helo,
                no_domain[i].sender);
    query.identity = no_domain[i].identity;
    g_assert_null(spf_identity_domain(query.sender, query.helo,
                                      query.identity));
    guint before = query_count;
    g_autoptr(SpfOutcome) evaluated = spf_evaluate(&query);
    g_assert_cmpuint(query_count, ==, before);
    g_autoptr(SpfOutcome) none = spf_outcome_new_none(&query);
    assert_same_outcome(evaluated, none);
  }
  g_autoptr(SpfAnswer) temp = spf_answer_new(PST_DNS_TEMPFAIL);
  g_assert_false(spf_answer_is_no_record(temp));
  g_autoptr(SpfAnswer) records = spf_answer_new(PST_DNS_OK);
  g_ptr_array_add(records->records, g_strdup("v=spf1 -all"));
  g_assert_false(spf_answer_is_no_record(records));
}

/* --- Records the plugin decides without an evaluator -------------------- */

typedef struct {
  const SpfAnswer *top; /* the checked domain's TXT answer */
  const char *domain;
  guint other; /* questions about anything but includes */
} LocalZone;

/* The records of the names the cases include ('|'-separated; "!NX"). */
static const struct {
  const char *name, *records;
} included[] = {
    {"inc-pass.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"},
    {"inc-other.test", "v=spf1 ip4:203.0.113.0/24 ~all"},
    {"inc-nested.test", "v=spf1 include:inc-other.test include:inc-pass.test "
                        "?all"},
    {"inc-neutral.test", "v=spf1 ?all"},
    {"inc-open.test", "v=spf1 +all"},
    {"inc-text.test", "hello|v=spf1 ip4:198.51.100.0/24 -all"},
    {"inc-a.test", "v=spf1 a -all"},
    {"inc-two.test", "v=spf1 -all|v=spf1 +all"},
    {"inc-bad.test", "v=spf1 ip4:1.2.3 -all"},
    {"inc-none.test", "some text"},
    {"inc-loop.test", "v=spf1 include:inc-loop.test -all"},
    {"inc-nx.test", "!NX"},
};

static SpfAnswer *included_answer(const char *name) {
  for (gsize i = 0; i < G_N_ELEMENTS(included); i++) {
    if (g_ascii_strcasecmp(included[i].name, name) != 0)
      continue;
    if (strcmp(included[i].records, "!NX") == 0)
      return spf_answer_new(PST_DNS_NXDOMAIN);
    SpfAnswer *answer = spf_answer_new(PST_DNS_OK);
    g_auto(GStrv) records = g_strsplit(included[i].records, "|", -1);
    for (guint j = 0; records[j] != NULL; j++)
      g_ptr_array_add(answer->records, g_strdup(records[j]));
    return answer;
  }
  return NULL;
}

static SpfAnswer *local_resolve(PstDnsType type, const char *name,
                                gpointer user_data) {
  LocalZone *zone = user_data;
  if (type == PST_DNS_TYPE_TXT && g_ascii_strcasecmp(name, zone->domain) != 0) {
    SpfAnswer *answer = included_answer(name);
    if (answer != NULL)
      return answer;
  }
  if (type != PST_DNS_TYPE_TXT || g_ascii_strcasecmp(name, zone->domain) != 0) {
    zone->other++;
    return spf_answer_new(PST_DNS_NXDOMAIN);
  }
  SpfAnswer *copy = spf_answer_new(zone->top->status);
  for (guint i = 0; i < zone->top->records->len; i++)
    g_ptr_array_add(copy->records, g_strdup(zone->top->records->pdata[i]));
  return copy;
}

/* SpfPeekFunc: the included names' answers, at hand. */
static SpfAnswer *local_peek(PstDnsType type, const char *name,
                             gpointer data) {
  (void)data;
  return type == PST_DNS_TYPE_TXT ? included_answer(name) : NULL;
}

/* '|'-separated records; TRUE when the plugin must decide them alone. */
static const struct {
  const char *records;
  gboolean local;
} local_cases[] = {
    {"v=spf1 ip4:192.0.2.0/24 -all", TRUE},
    {"v=spf1 ip4:192.0.2.1 ~all", TRUE},
    {"v=spf1 ip6:2001:db8::/32 ?all", TRUE},
    {"v=spf1 -ip4:192.0.2.0/25 +ip4:192.0.2.0/24 -all", TRUE},
    {"v=spf1", TRUE},
    {"v=spf1 +all", TRUE},
    {"v=spf1 -all", TRUE},
    {"V=SPF1 IP4:192.0.2.0/24 -ALL", TRUE},
    {"v=spf1 ip4:0.0.0.0/0 -all", TRUE},
    {"v=spf1 ip6:::/0 -all", TRUE},
    {"v=spf1 ip6:::ffff:0:0/96 -all", TRUE},
    {"v=spf1 ip4:192.0.2.128/25 ip6:2001:db8:1::/48 ~all", TRUE},
    {"v=spf1 ip4:192.0.2.1/32 ip6:2001:DB8::1/128 -all", TRUE},
    {"v=spf1 ip4:192.0.2.77/24 ip6:2001:db8:1::77/47 -all", TRUE},
    {"v=spf1 ip4:192.0.2.1/31 ip4:198.51.100.0/23 ip4:128.0.0.0/1 ?all", TRUE},
    {"v=spf1 ip4:192.0.2.0/24", TRUE},
    {"v=spf1   ip4:192.0.2.0/24   -all", TRUE},
    {"v=spf1 ip4:192.0.2.1 moo.cow-far_out=x -all", TRUE},
    {"v=spf1 ip4:127.0.0.0/8 -all", TRUE},
    {"some text|v=spf1 ip4:192.0.2.0/24 -all|more", TRUE},
    {"v=spf1 -all|v=spf1 +all", FALSE},
    {"v=spf10 +all", FALSE},
    {"v=spf1 include:other.test ip4:192.0.2.0/24 -all", FALSE},
    {"v=spf1 a -all", FALSE},
    {"v=spf1 mx ip4:192.0.2.0/24 -all", FALSE},
    {"v=spf1 ip4:192.0.2.0/24 redirect=other.test", FALSE},
    {"v=spf1 ip4:192.0.2.0/24 -all exp=why.test", FALSE},
    {"v=spf1 ip4:300.1.1.1 -all", FALSE},
    {"v=spf1 ip4:192.0.2.0/024 -all", FALSE},
    {"v=spf1 exists:%{i}.test -all", FALSE},
    {"nothing of the kind", FALSE},
    {"v=spf1 include:inc-pass.test -all", TRUE},
    {"v=spf1 ip4:198.51.100.0/24 include:inc-pass.test ~all", TRUE},
    {"v=spf1 include:inc-nested.test include:inc-text.test -all", TRUE},
    {"v=spf1 include:inc-neutral.test include:INC-open.test -all", TRUE},
    {"v=spf1 -include:inc-pass.test +all", TRUE},
    {"v=spf1 include:inc-other.test ?include:inc-open.test", TRUE},
    {"v=spf1 include:inc-a.test ip4:192.0.2.0/24 -all", FALSE},
    {"v=spf1 include:inc-two.test -all", FALSE},
    {"v=spf1 include:inc-bad.test -all", FALSE},
    {"v=spf1 include:inc-none.test -all", FALSE},
    {"v=spf1 include:inc-loop.test -all", FALSE},
    {"v=spf1 include:inc-nx.test -all", FALSE},
    {"v=spf1 include:inc-unknown.test -all", FALSE},
    {"v=spf1 include:inc-pass.test. -all", FALSE},
    {"v=spf1 include:%{d}.inc-pass.test -all", FALSE},
};

/* spf_outcome_new_local() gives exactly spf_evaluate()'s outcome (libspf2
 * through the DNS layer): result, comment, explanation, counts, for every
 * client family and identity; and NULL for every record that needs more
 * than the answer it has. */
static void test_local_decision(void) {
  static const char *const ips[] = {
      "192.0.2.1",   "192.0.2.200",   "198.51.100.9", "::ffff:192.0.2.1",
      "2001:db8::1", "2001:db8:1::5", "2001:db9::1",  "::1",
      "127.0.0.1",   "203.0.113.4",   "255.255.255.255"};
  static const struct {
    SpfIdentity identity;
    const char *sender;
  } whos[] = {{SPF_IDENTITY_MAIL_FROM, "a@Dom.Test"},
              {SPF_IDENTITY_MAIL_FROM, ""},
              {SPF_IDENTITY_HELO, "a@other.test"}};
  guint decided = 0;
  for (gsize r = 0; r < G_N_ELEMENTS(local_cases); r++) {
    g_autoptr(SpfAnswer) top = spf_answer_new(PST_DNS_OK);
    g_auto(GStrv) records = g_strsplit(local_cases[r].records, "|", -1);
    for (guint j = 0; records[j] != NULL; j++)
      g_ptr_array_add(top->records, g_strdup(records[j]));
    for (gsize i = 0; i < G_N_ELEMENTS(ips); i++)
      for (gsize w = 0; w < G_N_ELEMENTS(whos); w++) {
        SpfQuery query;
        query_setup(&query, ips[i], "helo.Dom.test", whos[w].sender);
        query.identity = whos[w].identity;
        g_autofree char *domain =
            spf_identity_domain(query.sender, query.helo, query.identity);
        LocalZone zone = {top, domain, 0};
        query.resolve = local_resolve;
        query.resolve_data = &zone;
        query.top_name = domain;
        query.top = top;
        g_autoptr(SpfOutcome) local =
            spf_outcome_new_local(&query, local_peek, NULL);
        g_test_message("%s from %s (%s): %s", local_cases[r].records, ips[i],
                       whos[w].sender,
                       local ? spf_result_to_string(local->result) : "-");
        g_autoptr(SpfOutcome) evaluated = spf_evaluate(&query);
        if (local == NULL && local_cases[r].local) {
          /* The one exception: a fail for the HELO identity or the null
           * sender (libspf2's explanation names the HELO as sent). */
          g_assert_cmpint(evaluated->result, ==, SPF_RES_FAIL);
          g_assert_true(whos[w].identity == SPF_IDENTITY_HELO ||
                        whos[w].sender[0] == '\0');
          continue;
        }
        g_assert_true((local != NULL) == local_cases[r].local);
        if (local == NULL)
          continue;
        assert_same_outcome(local, evaluated);
        g_assert_cmpuint(zone.other, ==, 0);
        decided++;
      }
  }
  g_test_message("%u outcomes decided without libspf2, all the same", decided);
  /* Not for a failed lookup, nor without an answer. */
  SpfQuery query;
  query_setup(&query, "192.0.2.1", "client.test", "a@dom.test");
  g_assert_null(spf_outcome_new_local(&query, local_peek, NULL));
  g_autoptr(SpfAnswer) temp = spf_answer_new(PST_DNS_TEMPFAIL);
  query.top_name = "dom.test";
  query.top = temp;
  g_assert_null(spf_outcome_new_local(&query, local_peek, NULL));
}

/* The evaluator's resolver (spf-eval-main.c) over the zone. */
static SpfAnswer *spf_test_top_resolve(PstDnsType type, const char *name,
                                       gpointer user_data) {
  SpfAnswer *top = spf_wire_query_take_top(user_data, type, name);
  if (top != NULL)
    return top;
  SpfAnswer *known = spf_wire_query_find_known(user_data, type, name);
  return known != NULL ? known : zone_resolve(type, name, &query_count);
}

/* SpfPeekFunc: every answer of the zone is at hand. */
static SpfAnswer *zone_peek(PstDnsType type, const char *name, gpointer data) {
  (void)data;
  guint dummy = 0;
  return zone_resolve(type, name, &dummy);
}

/* A query that carries its domain's TXT answer asks one question less,
 * and comes to the same outcome. */
/* With the records parsed once for the check (the plugin's way, the
 * query's SpfParsedRecords): the same local outcome and the same answers
 * collected as when each reading parses again. */
static void assert_same_with_records_kept(const SpfQuery *query,
                                          const GPtrArray *known) {
  SpfParsedRecords parsed = {0};
  SpfQuery kept = *query;
  kept.parsed = &parsed;
  g_autoptr(SpfOutcome) plain = spf_outcome_new_local(query, zone_peek, NULL);
  g_autoptr(SpfOutcome) once = spf_outcome_new_local(&kept, zone_peek, NULL);
  g_assert_cmpint(plain == NULL, ==, once == NULL);
  if (plain != NULL)
    assert_same_outcome(plain, once);
  g_autoptr(GPtrArray) known_once = spf_known_collect(&kept, zone_peek, NULL);
  g_assert_cmpuint(known != NULL ? known->len : 0, ==,
                   known_once != NULL ? known_once->len : 0);
  for (guint i = 0; known != NULL && i < known->len; i++) {
    const SpfKnown *a = known->pdata[i], *b = known_once->pdata[i];
    g_assert_cmpint(a->type, ==, b->type);
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpuint(a->answer->records->len, ==, b->answer->records->len);
  }
  g_assert_cmpuint(parsed.count, <=, SPF_PARSED_MAX);
  spf_parsed_records_clear(&parsed);
  g_assert_cmpuint(parsed.count, ==, 0);
}

static void test_top_answer_with_the_query(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(eval_cases); i++) {
    SpfQuery query;
    query_setup(&query, eval_cases[i].ip, "client.test", eval_cases[i].sender);
    guint before = query_count;
    g_autoptr(SpfOutcome) asked = spf_evaluate(&query);
    guint questions = query_count - before;
    g_autofree char *domain =
        spf_identity_domain(query.sender, query.helo, query.identity);
    if (domain == NULL)
      continue; /* nothing to look up (spf.c asks the evaluator) */
    guint dummy = 0;
    g_autoptr(SpfAnswer) top = zone_resolve(PST_DNS_TYPE_TXT, domain, &dummy);
    SpfWireQuery wire = {.query = query};
    wire.query.top_name = domain;
    wire.query.top = top;
    g_autoptr(GBytes) encoded = spf_wire_encode_query(&wire.query);
    g_autoptr(SpfWireQuery) decoded = spf_wire_decode_query(encoded);
    g_assert_nonnull(decoded);
    g_assert_cmpstr(decoded->top_name, ==, domain);
    g_assert_cmpuint(decoded->top->records->len, ==, top->records->len);
    decoded->query.resolve = spf_test_top_resolve;
    decoded->query.resolve_data = decoded;
    before = query_count;
    g_autoptr(SpfOutcome) given = spf_evaluate(&decoded->query);
    g_assert_cmpuint(query_count - before, ==, questions - 1);
    g_assert_null(decoded->top);
    assert_same_outcome(asked, given);
    /* With the answers at hand too: still the same outcome, and no
     * question but those a macro names (none in this zone) and those
     * past what the plugin collects. */
    g_autoptr(GPtrArray) known = spf_known_collect(&wire.query, zone_peek, NULL);
    assert_same_with_records_kept(&wire.query, known);
    wire.query.known = known;
    g_autoptr(GBytes) with_known = spf_wire_encode_query(&wire.query);
    g_autoptr(SpfWireQuery) decoded2 = spf_wire_decode_query(with_known);
    g_assert_nonnull(decoded2);
    decoded2->query.resolve = spf_test_top_resolve;
    decoded2->query.resolve_data = decoded2;
    before = query_count;
    g_autoptr(SpfOutcome) known_given = spf_evaluate(&decoded2->query);
    guint left = query_count - before;
    g_test_message("%s: %u questions, %u with the top answer, %u with %u "
                   "answers at hand",
                   eval_cases[i].sender, questions, questions - 1, left,
                   known != NULL ? known->len : 0);
    g_assert_cmpuint(left, <=, questions - 1);
    assert_same_outcome(asked, known_given);
  }
}

static void test_explanation(void) {
  SpfQuery query;
  query_setup(&query, "198.51.100.1", "client.test", "a@exp.test");
  g_autoptr(SpfOutcome) outcome = spf_evaluate(&query);
  g_assert_cmpint(outcome->result, ==, SPF_RES_FAIL);
  g_assert_cmpstr(outcome->explanation, ==,
                  "198.51.100.1 is not one of exp.test's servers");
  /* Several records, none, a DNS failure, a bad macro: the default
   * (section 6.2), and the result stays fail. */
  static const char *const no_explanation[] = {"exp2.test", "expnx.test",
                                               "exptemp.test", "expbad.test"};
  for (gsize i = 0; i < G_N_ELEMENTS(no_explanation); i++) {
    g_autofree char *sender = g_strdup_printf("a@%s", no_explanation[i]);
    g_autofree char *expected = g_strdup_printf(
        "%s does not designate 198.51.100.1 as permitted sender",
        no_explanation[i]);
    query_setup(&query, "198.51.100.1", "client.test", sender);
    g_autoptr(SpfOutcome) other = spf_evaluate(&query);
    g_assert_cmpint(other->result, ==, SPF_RES_FAIL);
    g_assert_cmpstr(other->explanation, ==, expected);
  }
  query_setup(&query, "198.51.100.1", "client.test", "a@pass.test");
  g_autoptr(SpfOutcome) fallback = spf_evaluate(&query);
  g_assert_cmpstr(fallback->explanation, ==,
                  "pass.test does not designate 198.51.100.1 as permitted "
                  "sender");
}

static void test_helo_identity(void) {
  SpfQuery query;
  query_setup(&query, "192.0.2.1", "helo.test", "");
  query.identity = SPF_IDENTITY_HELO;
  g_autoptr(SpfOutcome) pass = spf_evaluate(&query);
  g_assert_cmpint(pass->result, ==, SPF_RES_PASS);
  g_assert_cmpstr(pass->identity, ==, "postmaster@helo.test");
  query.ip = "192.0.2.2";
  g_autoptr(SpfOutcome) fail = spf_evaluate(&query);
  g_assert_cmpint(fail->result, ==, SPF_RES_FAIL);
  /* The null sender's MAIL FROM identity is postmaster@HELO. */
  query.identity = SPF_IDENTITY_MAIL_FROM;
  g_autoptr(SpfOutcome) null = spf_evaluate(&query);
  g_assert_cmpint(null->result, ==, SPF_RES_FAIL);
  /* An address literal or a dotless HELO is not checked, no query. */
  query.identity = SPF_IDENTITY_HELO;
  query.helo = "[192.0.2.1]";
  query_count = 0;
  g_autoptr(SpfOutcome) literal = spf_evaluate(&query);
  g_assert_cmpint(literal->result, ==, SPF_RES_NONE);
  g_assert_cmpuint(query_count, ==, 0);
}

/* --- Headers and replies ------------------------------------------------ */

static void test_received_spf(void) {
  SpfQuery query;
  query_setup(&query, "192.0.2.9", "client.test", "a@pass.test");
  g_autoptr(SpfOutcome) outcome = spf_evaluate(&query);
  g_autofree char *value = spf_received_spf(outcome, &query);
  g_assert_cmpstr(value, ==,
                  "pass (mx.receiver.test: domain of a@pass.test designates "
                  "192.0.2.9 as permitted sender)\r\n\tclient-ip=192.0.2.9; "
                  "envelope-from=\"a@pass.test\"; helo=client.test;\r\n\t"
                  "receiver=mx.receiver.test; identity=mailfrom;");
  /* Hostile text is quoted, never structure. */
  query_setup(&query, "192.0.2.9", "evil\"(x);\\", "a(b)\"c;@nospf.test");
  g_autoptr(SpfOutcome) evil = spf_evaluate(&query);
  g_autofree char *quoted = spf_received_spf(evil, &query);
  g_assert_nonnull(strstr(quoted, "helo=\"evil\\\"(x);\\\\\";"));
  g_assert_nonnull(strstr(quoted, "domain of a?b?\"c;@nospf.test"));
  g_assert_null(strchr(quoted, '\n') == NULL ? NULL : strstr(quoted, "\n\n"));
}

static void test_record_prepare(void) {
  static const struct {
    const char *record;
    gboolean ipv6;        /* the client's family */
    const char *prepared; /* NULL: a permerror containing `problem` */
    const char *problem;
  } cases[] = {
      {"v=spf1 -all", FALSE, "v=spf1 -all", NULL},
      {"v=spf1", FALSE, "v=spf1", NULL},
      {"V=SPF1  a   -all  ", FALSE, "v=spf1 a -all", NULL},
      {"v=spf1 redirect=x.test ip4:192.0.2.1", FALSE,
       "v=spf1 ip4:192.0.2.1 redirect=x.test", NULL},
      {"v=spf1 REDIRECT=x.test A", FALSE, "v=spf1 a redirect=x.test", NULL},
      {"v=spf1 redirect=x.test redirect=y.test", FALSE, NULL, "redirect="},
      {"v=spf1 -all exp=e.test exp=e.test", FALSE, NULL, "exp="},
      /* Section 6: modifiers. */
      {"v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all", FALSE,
       "v=spf1 ip4:1.2.3.4 -all", NULL},
      {"v=spf1 default=+ a= x=%{d}", FALSE, "v=spf1", NULL},
      {"v=spf1 redirect:x.test", FALSE, NULL, "syntax error"},
      {"v=spf1 redirect= ?all", FALSE, NULL, "invalid domain"},
      {"v=spf1 exp= -all", FALSE, NULL, "invalid domain"},
      {"v=spf1 exp=-all", FALSE, NULL, "invalid domain"},
      {"v=spf1 redirect=-all ?all", FALSE, NULL, "invalid domain"},
      {"v=spf1 1up=foo", FALSE, NULL, "syntax error"},
      {"v=spf1 =all", FALSE, NULL, "syntax error"},
      {"v=spf1 moo.cow/far_out=man:dog/cat", FALSE, NULL, "syntax error"},
      {"v=spf1 foo=%abc", FALSE, NULL, "invalid macro"},
      /* Section 5: each mechanism with exactly its arguments. */
      {"v=spf1 a: -all", FALSE, NULL, "empty domain in \"a:\""},
      {"v=spf1 -mx:/24 -all", FALSE, NULL, "empty domain"},
      {"v=spf1 include: -all", FALSE, NULL, "empty domain"},
      {"v=spf1 exists: -all", FALSE, NULL, "empty domain"},
      {"v=spf1 ptr: -all", FALSE, NULL, "empty domain"},
      {"v=spf1 include -all", FALSE, NULL, "syntax error"},
      {"v=spf1 exists", FALSE, NULL, "syntax error"},
      {"v=spf1 -all.", FALSE, NULL, "syntax error"},
      {"v=spf1 -all:x.test", FALSE, NULL, "syntax error"},
      {"v=spf1 -all/8", FALSE, NULL, "syntax error"},
      {"v=spf1 ptr/0 -all", FALSE, NULL, "syntax error"},
      {"v=spf1 moo", FALSE, NULL, "syntax error"},
      {"v=spf1 a:x.test/24 mx ptr include:y.test ptr:z.test", FALSE,
       "v=spf1 a:x.test/24 mx ptr include:y.test ptr:z.test", NULL},
      /* Dual CIDR lengths: each for its own family. */
      {"v=spf1 a/24//64 mx//33", FALSE, "v=spf1 a/24 mx", NULL},
      {"v=spf1 a/24//64 mx//33", TRUE, "v=spf1 a//64 mx//33", NULL},
      {"v=spf1 a/33", FALSE, NULL, "syntax error"},
      {"v=spf1 a//129", FALSE, NULL, "syntax error"},
      {"v=spf1 a/24/64", FALSE, NULL, "syntax error"},
      {"v=spf1 a/032", FALSE, NULL, "syntax error"},
      {"v=spf1 ip4:1.2.3.4/032", FALSE, NULL, "syntax error"},
      /* Zero prefixes (sections 5.3, 5.4, 5.6). */
      {"v=spf1 ip4:0.0.0.0/0 -all", FALSE,
       "v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1 -all", NULL},
      {"v=spf1 -ip4:10.0.0.0/0", FALSE,
       "v=spf1 -ip4:0.0.0.0/1 -ip4:128.0.0.0/1", NULL},
      {"v=spf1 ~ip6:::/0", FALSE, "v=spf1 ~ip6:::/1 ~ip6:8000::/1", NULL},
      {"v=spf1 a/0 -all", FALSE, "v=spf1 a:%{d}" SPF_ZERO_PREFIX_SUFFIX " -all",
       NULL},
      {"v=spf1 a/0 -all", TRUE, "v=spf1 a -all", NULL},
      {"v=spf1 -mx:m.test./0//0", TRUE,
       "v=spf1 -mx:m.test" SPF_ZERO_PREFIX_SUFFIX, NULL},
      {"v=spf1 a:h.test//0", FALSE, "v=spf1 a:h.test", NULL},
      {"v=spf1 ip4:192.0.2.0/20 ip6:2001:db8::/0/0", FALSE, NULL,
       "syntax error"},
      /* Networks (section 5.6). */
      {"v=spf1 ip4:1.2.3", FALSE, NULL, "syntax error"},
      {"v=spf1 ip4:1.2.3.4:8080", FALSE, NULL, "syntax error"},
      {"v=spf1 ip4:1.2.3.04", FALSE, NULL, "syntax error"},
      {"v=spf1 ip4:256.2.3.4", FALSE, NULL, "syntax error"},
      {"v=spf1 ip4:1.2.3.4//32", FALSE, NULL, "syntax error"},
      {"v=spf1 ip6::CAFE::BABE", FALSE, NULL, "syntax error"},
      {"v=spf1 ip6:::1.1.1.1//33", FALSE, NULL, "syntax error"},
      {"v=spf1 ip6:Cafe:Babe:8000::/33 ip6:::FFFF:1.2.3.4", FALSE,
       "v=spf1 ip6:Cafe:Babe:8000::/33 ip6:::FFFF:1.2.3.4", NULL},
      /* Domain-specs (section 7.1): the last label is a toplabel. */
      {"v=spf1 a:museum", FALSE, NULL, "syntax error"},
      {"v=spf1 a:museum.", FALSE, NULL, "syntax error"},
      {"v=spf1 a:abc.123", FALSE, NULL, "syntax error"},
      {"v=spf1 a:111.222.33.44", FALSE, NULL, "syntax error"},
      {"v=spf1 mx:example.com:8080", FALSE, NULL, "syntax error"},
      {"v=spf1 a:example.-com", FALSE, NULL, "syntax error"},
      {"v=spf1 a:example.com-", FALSE, NULL, "syntax error"},
      {"v=spf1 exists:x.test/24", FALSE, NULL, "syntax error"},
      {"v=spf1 include:x.test/24", FALSE, NULL, "syntax error"},
      {"v=spf1 a:foo.example.xn--zckzah a:x.123-4 a:%{d} a:x.%{d}.test.", FALSE,
       "v=spf1 a:foo.example.xn--zckzah a:x.123-4 a:%{d} a:x.%{d}.test.", NULL},
      {"v=spf1 a:x.%{d}.", FALSE, NULL, "syntax error"},
      {"v=spf1 a:foo:bar/baz.example.com", FALSE,
       "v=spf1 a:foo:bar/baz.example.com", NULL},
      /* Characters (section 4.6.1, 3.1). */
      {"v=spf1 a:x.test\r-all", FALSE, NULL, "character 0x0d"},
      {"v=spf1 a:x.test\t-all", FALSE, NULL, "character 0x09"},
      {"v=spf1 \x80"
       "a -all",
       FALSE, NULL, "character 0x80"},
      {"v=spf1 a:x.test \x7f", FALSE, NULL, "character 0x7f"},
      {"v=spf10 -all", FALSE, NULL, "not an SPF version 1 record"},
      /* Section 7.1 macros: valid ones pass, anything else is refused. */
      {"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} a:%%%_%-.x -all", FALSE,
       "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} a:%%%_%-.x -all", NULL},
      {"v=spf1 exists:%{S}.%{D128R.-+,/_=}.x", FALSE,
       "v=spf1 exists:%{S}.%{D128R.-+,/_=}.x", NULL},
      {"v=spf1 exists:%{x}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{s", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:x%", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%x.y", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{d0}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{d129}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{d99999}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{c}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 exists:%{l;}.x", FALSE, NULL, "invalid macro"},
      {"v=spf1 -all exp=%{r}.x.test", FALSE, NULL, "invalid domain"},
      {"v=spf1 redirect=%{d", FALSE, NULL, "invalid domain"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *problem = NULL;
    g_autofree char *prepared =
        spf_record_prepare(cases[i].record, cases[i].ipv6, &problem);
    /* Escaped: a record may hold non-ASCII octets, and TAP output must
     * stay valid UTF-8. */
    g_autofree char *shown = g_strescape(cases[i].record, NULL);
    g_test_message("%s -> %s (%s)", shown, prepared ? prepared : "NULL",
                   problem ? problem : "-");
    g_assert_cmpstr(prepared, ==, cases[i].prepared);
    if (cases[i].problem != NULL)
      g_assert_nonnull(strstr(problem, cases[i].problem));
    else
      g_assert_null(problem);
  }
}

static void test_macro_string(void) {
  static const struct {
    const char *text;
    gboolean record, explanation;
  } cases[] = {
      {"", TRUE, TRUE},
      {"no macros at all", TRUE, TRUE},
      {"%{i} is not one of %{d}'s servers", TRUE, TRUE},
      {"%{c} at %{r} on %{t}", FALSE, TRUE},
      {"%{C}", FALSE, TRUE},
      {"%{d1}%{d128}%{d127r}", TRUE, TRUE},
      {"%{d0}", FALSE, FALSE},
      {"%{d007}", TRUE, TRUE},
      {"%{d0128}", FALSE, FALSE},
      {"100%", FALSE, FALSE},
      {"%{i", FALSE, FALSE},
      {"%{}", FALSE, FALSE},
      {"%{ir.}x%{", FALSE, FALSE},
      {"%%%%%_%-", TRUE, TRUE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("%s", cases[i].text);
    g_assert_cmpint(spf_macro_string_is_valid(cases[i].text, FALSE), ==,
                    cases[i].record);
    g_assert_cmpint(spf_macro_string_is_valid(cases[i].text, TRUE), ==,
                    cases[i].explanation);
  }
}

static SpfConfig *config_from(const char *text, GError **error) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_assert_true(g_key_file_load_from_data(keyfile, text, -1, 0, NULL));
  return spf_config_load(keyfile, "plugin:spf", error);
}

static void test_decide(void) {
  static const struct {
    const char *config;
    SpfResult result;
    PstVerdict verdict;
    guint code;
    const char *enhanced;
  } cases[] = {
      {"", SPF_RES_FAIL, PST_VERDICT_REJECT, 550, "5.7.23"},
      {"", SPF_RES_SOFTFAIL, PST_VERDICT_CONTINUE, 0, ""},
      {"policy=strict", SPF_RES_SOFTFAIL, PST_VERDICT_REJECT, 550, "5.7.23"},
      {"policy=none", SPF_RES_FAIL, PST_VERDICT_CONTINUE, 0, ""},
      {"policy=none", SPF_RES_TEMPERROR, PST_VERDICT_CONTINUE, 0, ""},
      {"", SPF_RES_TEMPERROR, PST_VERDICT_TEMPFAIL, 451, "4.4.3"},
      {"temperror_action=continue", SPF_RES_TEMPERROR, PST_VERDICT_CONTINUE, 0,
       ""},
      {"", SPF_RES_PERMERROR, PST_VERDICT_CONTINUE, 0, ""},
      {"permerror_action=550", SPF_RES_PERMERROR, PST_VERDICT_REJECT, 550,
       "5.7.24"},
      {"permerror_action=550 5.7.1 broken {domain}", SPF_RES_PERMERROR,
       PST_VERDICT_REJECT, 550, "5.7.1"},
      {"", SPF_RES_PASS, PST_VERDICT_CONTINUE, 0, ""},
      {"", SPF_RES_NEUTRAL, PST_VERDICT_CONTINUE, 0, ""},
      {"", SPF_RES_NONE, PST_VERDICT_CONTINUE, 0, ""},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text =
        g_strdup_printf("[plugin:spf]\n%s\n", cases[i].config);
    g_autoptr(GError) error = NULL;
    SpfConfig *config = config_from(text, &error);
    g_assert_no_error(error);
    SpfQuery query;
    query_setup(&query, "192.0.2.9", "client.test", "a@x.test");
    SpfOutcome outcome = {.result = cases[i].result,
                          .domain = (char *)"x.test",
                          .identity = (char *)"a@x.test",
                          .problem = (char *)"DNS lookup failure"};
    SpfDecision decision;
    spf_decide(config, &outcome, &query, &decision);
    g_assert_cmpint(decision.verdict, ==, cases[i].verdict);
    g_assert_cmpuint(decision.code, ==, cases[i].code);
    g_assert_cmpstr(decision.enhanced, ==, cases[i].enhanced);
    if (strstr(cases[i].config, "{domain}") != NULL)
      g_assert_cmpstr(decision.text, ==, "broken x.test");
    spf_decision_clear(&decision);
    spf_config_unref(config);
  }
}

static void test_config_errors(void) {
  static const struct {
    const char *text;
    const char *message;
  } cases[] = {
      {"identities=all", "[plugin:spf] identities: \"all\""},
      {"policy=hard", "[plugin:spf] policy: \"hard\""},
      {"temperror_action=550 5.7.1", "never a permanent refusal"},
      {"temperror_action=maybe", "[plugin:spf] temperror_action"},
      {"permerror_action=250", "[plugin:spf] permerror_action"},
      {"skip_internal=perhaps", "skip_internal"},
      {"reject=yes", "reject"},
      {"evaluators=0", "evaluators"},
      {"evaluators=100", "evaluators"},
      {"evaluator_max_checks=none", "evaluator_max_checks"},
      {"evaluator_max_age=500ms", "evaluator_max_age: 500 ms is too short"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text =
        g_strdup_printf("[plugin:spf]\n%s\n", cases[i].text);
    g_autoptr(GError) error = NULL;
    g_assert_null(config_from(text, &error));
    g_assert_nonnull(error);
    g_test_message("%s -> %s", cases[i].text, error->message);
    g_assert_nonnull(strstr(error->message, cases[i].message));
  }
  g_autoptr(GError) error = NULL;
  SpfConfig *config = config_from("[server]\nhostname=mx.example\n", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(config->identities, ==,
                   SPF_IDENTITY_MAIL_FROM | SPF_IDENTITY_HELO);
  g_assert_cmpint(config->policy, ==, SPF_POLICY_SOFT);
  g_assert_cmpuint(config->temperror.code, ==, 451);
  g_assert_cmpuint(config->permerror.code, ==, 0);
  g_assert_cmpstr(config->receiver, ==, "mx.example");
  g_assert_cmpuint(config->evaluators, ==, 4);
  g_assert_cmpuint(config->evaluator_max_checks, ==, 1000);
  g_assert_cmpuint(config->evaluator_max_age_ms, ==, 300000);
  spf_config_unref(config);
}

/* spf_identity_domain() of a HELO name as it was before its ASCII names
 * skipped g_hostname_to_ascii(): the reference for random names. */
static gboolean reference_name_is_domain(const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '[')
    return FALSE;
  const char *dot = strchr(name, '.');
  if (dot == NULL || dot == name || dot[1] == '\0')
    return FALSE;
  struct in6_addr address;
  return inet_pton(AF_INET, name, &address) != 1 &&
         inet_pton(AF_INET6, name, &address) != 1;
}

static char *reference_identity_domain(const char *domain) {
  if (!reference_name_is_domain(domain) || !g_utf8_validate(domain, -1, NULL))
    return NULL;
  char *ascii = g_hostname_to_ascii(domain);
  if (ascii == NULL || !reference_name_is_domain(ascii)) {
    g_free(ascii);
    return NULL;
  }
  return ascii;
}

/* Names of letters in both cases, digits, dots, hyphens, a space, '%',
 * a control octet, '[' and now and then UTF-8: the domain is the one
 * g_hostname_to_ascii() gives. */
static void test_identity_domain_random(void) {
  static const char *const pieces[] = {
      "a", "Z", "mail", "EXAMPLE", "0", "9", ".", ".", "-", "_", " ", "%",
      "\x01", "[", "xn--", "\xc3\xa9", "\xe2\x80\x8b", "\xff", "192", "::"};
  GRand *rand = g_rand_new_with_seed(1206);
  g_autoptr(GString) name = g_string_new(NULL);
  for (guint round = 0; round < 20000; round++) {
    g_string_truncate(name, 0);
    guint n = (guint)g_rand_int_range(rand, 1, 10);
    for (guint i = 0; i < n; i++) {
      gint32 which = g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces));
      /* Mostly ASCII, as the mail is. */
      if (which >= 15 && g_rand_int_range(rand, 0, 4) != 0)
        which = 0;
      g_string_append(name, pieces[which]);
    }
    g_autofree char *expected = reference_identity_domain(name->str);
    g_autofree char *got =
        spf_identity_domain(NULL, name->str, SPF_IDENTITY_HELO);
    g_assert_cmpstr(got, ==, expected);
    g_autofree char *sender = g_strconcat("u@", name->str, NULL);
    g_autofree char *from_sender =
        spf_identity_domain(sender, "helo.test", SPF_IDENTITY_MAIL_FROM);
    g_assert_cmpstr(from_sender, ==, expected);
  }
  g_rand_free(rand);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  spf_library_init();
  g_test_add_func("/spf/evaluate", test_evaluate);
  g_test_add_func("/spf/explanation", test_explanation);
  g_test_add_func("/spf/none-without-evaluator", test_none_without_evaluator);
  g_test_add_func("/spf/local-decision", test_local_decision);
  g_test_add_func("/spf/top-answer-with-the-query",
                  test_top_answer_with_the_query);
  g_test_add_func("/spf/helo-identity", test_helo_identity);
  g_test_add_func("/spf/identity-domain-random", test_identity_domain_random);
  g_test_add_func("/spf/received-spf", test_received_spf);
  g_test_add_func("/spf/decide", test_decide);
  g_test_add_func("/spf/record-prepare", test_record_prepare);
  g_test_add_func("/spf/macro-string", test_macro_string);
  g_test_add_func("/spf/config-errors", test_config_errors);
  return g_test_run();
}
