/* test-dns.c - the DNS service against a real DNS server on loopback.
 *
 * main() starts tests/dns/testdns.py once (basic.zone and a signed
 * secure.zone, on a free port, with a query log), and every test starts
 * its own service (a fresh libunbound context, so a fresh cache) pointed
 * at it with [dns] nameservers=127.0.0.1@PORT, and stops it at the end.
 *
 * Covered: every result class and record type, CNAME chains, TXT longer
 * than 255 octets and longer than a UDP answer, SERVFAIL/REFUSED,
 * timeouts, cancellation (exactly one callback, CANCELLED, from any
 * thread, never inside the call), 500 lookups in flight, blocking lookups
 * from 8 threads, TTL caching, DNSSEC (secure, bogus, trust anchor read
 * once), configuration errors, reconfiguration with lookups in flight and
 * stop with lookups in flight.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "dns/dns.h"

#define TIMEOUT_MS 1000

static struct {
  GPid pid;
  int stdin_fd;
  guint16 port;
  char *dir;          /* owned: scratch directory */
  char *trust_anchor; /* owned: secure.test's DNSKEY, written by testdns */
  char *query_log;    /* owned */
  char *nameserver;   /* owned: "127.0.0.1@PORT" */
} testdns;

/* --- The test server ------------------------------------------------- */

static void testdns_start(void) {
  g_autoptr(GError) error = NULL;
  testdns.dir = g_dir_make_tmp("pst-test-dns-XXXXXX", &error);
  g_assert_no_error(error);
  testdns.trust_anchor = g_build_filename(testdns.dir, "secure.key", NULL);
  testdns.query_log = g_build_filename(testdns.dir, "queries.log", NULL);
  g_autofree char *script =
      g_build_filename(PST_TEST_SRCDIR, "tests", "dns", "testdns.py", NULL);
  g_autofree char *basic =
      g_build_filename(PST_TEST_SRCDIR, "tests", "dns", "basic.zone", NULL);
  g_autofree char *secure =
      g_build_filename(PST_TEST_SRCDIR, "tests", "dns", "secure.zone", NULL);
  const char *argv[] = {"/usr/bin/python3",
                        script,
                        basic,
                        secure,
                        "--sign",
                        "secure.test",
                        "--trust-anchor",
                        testdns.trust_anchor,
                        "--query-log",
                        testdns.query_log,
                        "--exit-with-stdin",
                        NULL};
  int stdout_fd = -1;
  g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                           NULL, NULL, &testdns.pid, &testdns.stdin_fd,
                           &stdout_fd, NULL, &error);
  g_assert_no_error(error);
  g_autoptr(GIOChannel) channel = g_io_channel_unix_new(stdout_fd);
  g_io_channel_set_close_on_unref(channel, TRUE);
  g_autofree char *line = NULL;
  g_io_channel_read_line(channel, &line, NULL, NULL, &error);
  g_assert_no_error(error);
  g_assert_nonnull(line);
  const char *port = strstr(line, "port=");
  g_assert_nonnull(port);
  testdns.port = (guint16)g_ascii_strtoull(port + 5, NULL, 10);
  g_assert_cmpuint(testdns.port, >, 0);
  testdns.nameserver = g_strdup_printf("127.0.0.1@%u", testdns.port);
}

static void testdns_stop(void) {
  kill(testdns.pid, SIGTERM);
  waitpid(testdns.pid, NULL, 0);
  g_spawn_close_pid(testdns.pid);
  close(testdns.stdin_fd);
  g_unlink(testdns.query_log);
  g_unlink(testdns.trust_anchor);
  g_rmdir(testdns.dir);
  g_free(testdns.dir);
  g_free(testdns.trust_anchor);
  g_free(testdns.query_log);
  g_free(testdns.nameserver);
}

/* How many times the server was asked `name` `type` ("A", "TXT"). */
static guint queries_seen(const char *name, const char *type) {
  g_autofree char *contents = NULL;
  g_file_get_contents(testdns.query_log, &contents, NULL, NULL);
  g_autofree char *wanted = g_strdup_printf("%s %s", name, type);
  g_auto(GStrv) lines = g_strsplit(contents != NULL ? contents : "", "\n", -1);
  guint count = 0;
  for (guint i = 0; lines[i] != NULL; i++)
    count += g_ascii_strcasecmp(lines[i], wanted) == 0;
  return count;
}

/* --- The service ----------------------------------------------------- */

typedef struct {
  char *nameservers[2];
  PstDnsConfig config;
} TestConfig;

static TestConfig *test_config_new(guint timeout_ms) {
  TestConfig *test = g_new0(TestConfig, 1);
  test->nameservers[0] = testdns.nameserver;
  test->config.nameservers = test->nameservers;
  test->config.timeout_ms = timeout_ms;
  test->config.dnssec = PST_DNSSEC_NO;
  test->config.trust_anchor = (char *)"/nonexistent/root.key";
  test->config.cache_size = 1000;
  return test;
}

static void drain_main_context(void) {
  while (g_main_context_iteration(NULL, FALSE))
    ;
}

static void service_start(const TestConfig *test) {
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_dns_start(&test->config, &error));
  g_assert_no_error(error);
}

static void service_start_default(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  service_start(test);
}

static void service_stop(void) {
  pst_dns_stop();
  drain_main_context();
}

static gboolean set_flag(gpointer data) {
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main loop for `ms` milliseconds. */
static void run_for(guint ms) {
  gboolean done = FALSE;
  GSource *timer = g_timeout_source_new(ms);
  g_source_set_callback(timer, set_flag, &done, NULL);
  g_source_attach(timer, NULL);
  while (!done)
    g_main_context_iteration(NULL, TRUE);
  g_source_unref(timer);
}

typedef struct {
  PstDnsResult *result; /* owned: the last answer */
  guint calls;
  GThread *thread; /* where the callback ran */
} Answer;

static void on_answer(PstDnsResult *result, gpointer data) {
  Answer *answer = data;
  answer->calls++;
  answer->thread = g_thread_self();
  pst_dns_result_free(answer->result);
  answer->result = result;
}

static void wait_for(Answer *answer, guint calls) {
  while (answer->calls < calls)
    g_main_context_iteration(NULL, TRUE);
}

/* An async lookup, waited for. */
static PstDnsResult *lookup(PstDnsType type, const char *name) {
  Answer answer = {0};
  pst_dns_lookup(type, name, NULL, on_answer, &answer);
  g_assert_cmpuint(answer.calls, ==, 0); /* never inside the call */
  wait_for(&answer, 1);
  g_assert_true(answer.thread == g_thread_self());
  return answer.result;
}

static gint compare_strings(gconstpointer a, gconstpointer b) {
  return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Records as comparable text: sorted, '|'-joined. */
static char *records_text(const PstDnsResult *result) {
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    PstDnsType type = pst_dns_result_get_type(result);
    if (type == PST_DNS_TYPE_MX) {
      g_ptr_array_add(
          items,
          g_strdup_printf("%u %s", pst_dns_result_get_mx_preference(result, i),
                          pst_dns_result_get_string(result, i)));
    } else if (type == PST_DNS_TYPE_TLSA) {
      guint8 usage, selector, matching;
      const guint8 *data;
      gsize length;
      g_assert_true(pst_dns_result_get_tlsa(result, i, &usage, &selector,
                                            &matching, &data, &length));
      GString *text = g_string_new(NULL);
      g_string_printf(text, "%u %u %u ", usage, selector, matching);
      for (gsize j = 0; j < length; j++)
        g_string_append_printf(text, "%02X", data[j]);
      g_ptr_array_add(items, g_string_free(text, FALSE));
    } else {
      g_ptr_array_add(items, g_strdup(pst_dns_result_get_string(result, i)));
    }
  }
  g_ptr_array_sort(items, compare_strings);
  g_ptr_array_add(items, NULL);
  return g_strjoinv("|", (char **)items->pdata);
}

/* --- Every result class -------------------------------------------- */

typedef struct {
  const char *path;
  PstDnsType type;
  const char *name;
  PstDnsStatus status;
  guint count;
  const char *records;   /* sorted, '|'-joined; NULL: don't check */
  const char *canonical; /* NULL: the name itself */
  guint32 ttl;           /* checked when not 0 */
} ResultCase;

static const ResultCase result_cases[] = {
    {"a", PST_DNS_TYPE_A, "mx2.example.test", PST_DNS_OK, 2,
     "192.0.2.26|192.0.2.27", NULL, 300},
    {"aaaa", PST_DNS_TYPE_AAAA, "mx1.example.test", PST_DNS_OK, 1,
     "2001:db8::25", NULL, 300},
    {"mx", PST_DNS_TYPE_MX, "example.test", PST_DNS_OK, 2,
     "10 mx1.example.test|20 mx2.example.test", NULL, 300},
    {"mx-null", PST_DNS_TYPE_MX, "nullmx.example.test", PST_DNS_OK, 1, "0 .",
     NULL, 0},
    {"txt", PST_DNS_TYPE_TXT, "example.test", PST_DNS_OK, 1,
     "v=spf1 ip4:192.0.2.0/24 a:mx1.example.test -all", NULL, 0},
    {"txt-two-records", PST_DNS_TYPE_TXT, "multi.example.test", PST_DNS_OK, 2,
     "first record|second record", NULL, 0},
    {"txt-empty", PST_DNS_TYPE_TXT, "empty.example.test", PST_DNS_OK, 1, "",
     NULL, 0},
    {"ptr", PST_DNS_TYPE_PTR, "25.2.0.192.in-addr.arpa", PST_DNS_OK, 1,
     "mx1.example.test", NULL, 0},
    {"ptr-two", PST_DNS_TYPE_PTR, "26.2.0.192.in-addr.arpa", PST_DNS_OK, 2,
     "mx2-alias.example.test|mx2.example.test", NULL, 0},
    {"ptr-ipv6", PST_DNS_TYPE_PTR,
     "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
     PST_DNS_OK, 1, "mx1.example.test", NULL, 0},
    {"ptr-loopback", PST_DNS_TYPE_PTR, "1.0.0.127.in-addr.arpa", PST_DNS_OK, 1,
     "client.example.test", NULL, 0},
    {"tlsa", PST_DNS_TYPE_TLSA, "_25._tcp.mx1.example.test", PST_DNS_OK, 1,
     "3 1 1 BA4F98DF05D2D74D2B8C3EFD2BB5D7F4571404E65E5ACF53CF4CB1DB4C3FE94A",
     NULL, 0},
    {"dnsbl-listed", PST_DNS_TYPE_A, "2.0.0.127.zen.dnsbl.test", PST_DNS_OK, 1,
     "127.0.0.2", NULL, 0},
    {"dnsbl-not-listed", PST_DNS_TYPE_A, "3.0.0.127.zen.dnsbl.test",
     PST_DNS_NXDOMAIN, 0, "", NULL, 60},
    {"wildcard", PST_DNS_TYPE_A, "anything.wild.example.test", PST_DNS_OK, 1,
     "192.0.2.99", NULL, 0},
    {"cname-type", PST_DNS_TYPE_CNAME, "c1.example.test", PST_DNS_OK, 1,
     "c2.example.test", NULL, 0},
    {"cname-chain-a", PST_DNS_TYPE_A, "c1.example.test", PST_DNS_OK, 1,
     "192.0.2.3", "c3.example.test", 0},
    {"cname-chain-txt", PST_DNS_TYPE_TXT, "c1.example.test", PST_DNS_OK, 1,
     "at the end of the chain", "c3.example.test", 0},
    {"cname-other-zone", PST_DNS_TYPE_A, "to-slow.example.test", PST_DNS_OK, 1,
     "192.0.2.1", "x.slow.test", 0},
    {"cname-dangling", PST_DNS_TYPE_A, "dangling.example.test",
     PST_DNS_NXDOMAIN, 0, "", "nowhere.example.test", 0},
    {"cname-loop", PST_DNS_TYPE_A, "loop1.example.test", PST_DNS_TEMPFAIL, 0,
     "", NULL, 0},
    {"nxdomain", PST_DNS_TYPE_A, "nx.example.test", PST_DNS_NXDOMAIN, 0, "",
     NULL, 60},
    {"nodata", PST_DNS_TYPE_MX, "mx1.example.test", PST_DNS_NODATA, 0, "", NULL,
     60},
    {"nodata-empty-non-terminal", PST_DNS_TYPE_A, "b.ent.example.test",
     PST_DNS_NODATA, 0, "", NULL, 0},
    {"servfail", PST_DNS_TYPE_A, "x.servfail.test", PST_DNS_TEMPFAIL, 0, "",
     NULL, 0},
    {"refused", PST_DNS_TYPE_TXT, "x.refused.test", PST_DNS_TEMPFAIL, 0, "",
     NULL, 0},
    {"not-served", PST_DNS_TYPE_A, "www.example.org", PST_DNS_TEMPFAIL, 0, "",
     NULL, 0},
    {"trailing-dot", PST_DNS_TYPE_A, "mx1.example.test.", PST_DNS_OK, 1,
     "192.0.2.25", "mx1.example.test", 0},
};

static void test_result_case(gconstpointer data) {
  const ResultCase *c = data;
  service_start_default();
  g_autoptr(PstDnsResult) result = lookup(c->type, c->name);
  g_test_message("%s %s: %s (%s)", c->name, pst_dns_type_to_string(c->type),
                 pst_dns_status_to_string(pst_dns_result_get_status(result)),
                 pst_dns_result_get_reason(result));
  g_assert_cmpint(pst_dns_result_get_status(result), ==, c->status);
  g_assert_cmpuint(pst_dns_result_get_count(result), ==, c->count);
  g_assert_cmpint(pst_dns_result_get_type(result), ==, c->type);
  g_assert_cmpstr(pst_dns_result_get_name(result), ==, c->name);
  g_autofree char *records = records_text(result);
  if (c->records != NULL)
    g_assert_cmpstr(records, ==, c->records);
  g_autofree char *bare = g_strdup(c->name);
  if (g_str_has_suffix(bare, "."))
    bare[strlen(bare) - 1] = '\0';
  g_assert_cmpstr(pst_dns_result_get_canonical_name(result), ==,
                  c->canonical != NULL ? c->canonical : bare);
  if (c->ttl != 0)
    g_assert_cmpuint(pst_dns_result_get_ttl(result), ==, c->ttl);
  g_assert_false(pst_dns_result_is_secure(result));
  g_assert_false(pst_dns_result_is_bogus(result));
  if (c->status == PST_DNS_TEMPFAIL) {
    g_assert_cmpuint(pst_dns_result_get_ttl(result), ==, 0);
  } else {
    gsize length = 0;
    g_assert_nonnull(pst_dns_result_get_answer_packet(result, &length));
    g_assert_cmpuint(length, >, 12);
  }
  if (c->status == PST_DNS_NXDOMAIN)
    g_assert_cmpint(pst_dns_result_get_rcode(result), ==, 3);
  service_stop();
}

static void test_servfail_reason(void) {
  service_start_default();
  g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, "y.servfail.test");
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpint(pst_dns_result_get_rcode(result), ==, 2);
  g_assert_cmpstr(pst_dns_result_get_reason(result), ==, "SERVFAIL");
  service_stop();
}

static char *expected_long_txt(void) {
  GString *text = g_string_new("v=long1; ");
  for (guint i = 0; i < 240; i++)
    g_string_append_c(text, 'a');
  for (guint i = 0; i < 200; i++)
    g_string_append_c(text, 'b');
  for (guint i = 0; i < 100; i++)
    g_string_append_c(text, 'c');
  return g_string_free(text, FALSE);
}

static void test_txt_long(void) {
  service_start_default();
  g_autoptr(PstDnsResult) result =
      lookup(PST_DNS_TYPE_TXT, "long.example.test");
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
  gsize length = 0;
  const char *text = pst_dns_result_get_txt(result, 0, &length);
  g_autofree char *expected = expected_long_txt();
  g_assert_cmpuint(length, ==, 549);
  g_assert_cmpstr(text, ==, expected);
  service_stop();
}

/* 3000 octets: the UDP answer is truncated, libunbound retries over TCP. */
static void test_txt_over_tcp(void) {
  service_start_default();
  g_autoptr(PstDnsResult) result =
      lookup(PST_DNS_TYPE_TXT, "huge.example.test");
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
  gsize length = 0;
  const char *text = pst_dns_result_get_txt(result, 0, &length);
  g_assert_cmpuint(length, ==, 3000);
  for (guint i = 0; i < 12; i++)
    for (guint j = 0; j < 250; j++)
      g_assert_cmpint(text[i * 250 + j], ==, 'd' + i % 20);
  service_stop();
}

static void test_invalid_names(void) {
  service_start_default();
  g_autofree char *label64 = g_strnfill(64, 'a');
  const char *names[] = {
      "",      "a..b",         "with space.test", "back\\slash.test",
      label64, ".leading.test"};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, names[i]);
    g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_INVALID);
    g_autoptr(PstDnsResult) sync =
        pst_dns_lookup_sync(PST_DNS_TYPE_A, names[i], NULL);
    g_assert_cmpint(pst_dns_result_get_status(sync), ==, PST_DNS_INVALID);
  }
  g_assert_cmpuint(queries_seen("a..b", "A"), ==, 0);
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.lookups, ==, 0);
  service_stop();
}

/* PST_DNS_LOOKUP_VERBATIM: a name with a space, '%' or a backslash is
 * looked up as it is; the default check is unchanged. */
static void test_verbatim_names(void) {
  service_start_default();
  const struct {
    const char *name;
    const char *address; /* NULL: INVALID */
  } cases[] = {
      {"sp ace.example.test", "192.0.2.77"},
      {"pct%sign.example.test.", "192.0.2.78"},
      {"back\\sl.example.test", "192.0.2.79"},
      {"a..b.example.test", NULL},
      {"", NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    Answer answer = {0};
    pst_dns_lookup_full(PST_DNS_TYPE_A, cases[i].name, PST_DNS_LOOKUP_VERBATIM,
                        NULL, on_answer, &answer);
    g_assert_cmpuint(answer.calls, ==, 0);
    wait_for(&answer, 1);
    g_autoptr(PstDnsResult) result = answer.result;
    g_assert_cmpstr(pst_dns_result_get_name(result), ==, cases[i].name);
    if (cases[i].address == NULL) {
      g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_INVALID);
      continue;
    }
    g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
    g_assert_cmpstr(pst_dns_result_get_string(result, 0), ==, cases[i].address);
  }
  g_autoptr(PstDnsResult) plain = lookup(PST_DNS_TYPE_A, "sp ace.example.test");
  g_assert_cmpint(pst_dns_result_get_status(plain), ==, PST_DNS_INVALID);
  service_stop();
}

static void test_not_started(void) {
  Answer answer = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", NULL, on_answer, &answer);
  g_assert_cmpuint(answer.calls, ==, 0);
  wait_for(&answer, 1);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==,
                  PST_DNS_TEMPFAIL);
  g_assert_cmpstr(pst_dns_result_get_reason(answer.result), ==,
                  "the DNS resolver is not running");
  pst_dns_result_free(answer.result);
  pst_dns_stop(); /* harmless when not started */
}

/* --- Timeouts -------------------------------------------------------- */

static void test_timeout(void) {
  service_start_default();
  gint64 start = g_get_monotonic_time();
  g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, "t1.timeout.test");
  gint64 elapsed_ms = (g_get_monotonic_time() - start) / 1000;
  g_test_message("silent server: TEMPFAIL after %" G_GINT64_FORMAT " ms",
                 elapsed_ms);
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpstr(pst_dns_result_get_reason(result), ==,
                  "timeout after 1000 ms");
  g_assert_cmpint(pst_dns_result_get_rcode(result), ==, -1);
  g_assert_cmpint(elapsed_ms, >=, 950);
  /* Our timer, not libunbound's 17 s; generous for loaded machines. */
  g_assert_cmpint(elapsed_ms, <, 6000);
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.timeouts, ==, 1);
  g_assert_cmpuint(stats.in_flight, ==, 0);
  service_stop();
}

/* Silent queries must not make libunbound give up on the forwarder. */
static void test_timeouts_do_not_poison(void) {
  service_start_default();
  for (guint round = 0; round < 4; round++) {
    Answer answers[10] = {{0}};
    for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
      g_autofree char *name = g_strdup_printf("r%u-%u.timeout.test", round, i);
      pst_dns_lookup(PST_DNS_TYPE_A, name, NULL, on_answer, &answers[i]);
    }
    for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
      wait_for(&answers[i], 1);
      g_assert_cmpint(pst_dns_result_get_status(answers[i].result), ==,
                      PST_DNS_TEMPFAIL);
      pst_dns_result_free(answers[i].result);
    }
    g_autofree char *good = g_strdup_printf("after%u.wild.example.test", round);
    g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, good);
    g_test_message("round %u: %s after 10 silent queries: %s", round, good,
                   pst_dns_result_get_reason(result));
    g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
    g_autoptr(PstDnsResult) mx = lookup(PST_DNS_TYPE_MX, "example.test");
    g_assert_cmpint(pst_dns_result_get_status(mx), ==, PST_DNS_OK);
  }
  service_stop();
}

/* --- Cancellation ---------------------------------------------------- */

static void test_cancel_in_flight(void) {
  service_start_default();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Answer answer = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "cancel1.slow.test", cancellable, on_answer,
                 &answer);
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.in_flight, ==, 1);
  g_cancellable_cancel(cancellable);
  g_assert_cmpuint(answer.calls, ==, 0); /* not inside cancel() */
  gint64 start = g_get_monotonic_time();
  wait_for(&answer, 1);
  g_assert_cmpint(g_get_monotonic_time() - start, <, 200 * 1000);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==,
                  PST_DNS_CANCELLED);
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.in_flight, ==, 0);
  g_assert_cmpuint(stats.cancelled, ==, 1);
  /* The answer arrives after 300 ms: no second callback. */
  run_for(600);
  g_assert_cmpuint(answer.calls, ==, 1);
  pst_dns_result_free(answer.result);
  service_stop();
}

static void test_cancel_before(void) {
  service_start_default();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  g_cancellable_cancel(cancellable);
  Answer answer = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", cancellable, on_answer,
                 &answer);
  g_assert_cmpuint(answer.calls, ==, 0);
  wait_for(&answer, 1);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==,
                  PST_DNS_CANCELLED);
  pst_dns_result_free(answer.result);
  run_for(50);
  g_assert_cmpuint(answer.calls, ==, 1);
  service_stop();
}

static void test_cancel_after_answer(void) {
  service_start_default();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Answer answer = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", cancellable, on_answer,
                 &answer);
  wait_for(&answer, 1);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==, PST_DNS_OK);
  g_cancellable_cancel(cancellable);
  run_for(50);
  g_assert_cmpuint(answer.calls, ==, 1);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==, PST_DNS_OK);
  pst_dns_result_free(answer.result);
  service_stop();
}

static gpointer cancel_later(gpointer data) {
  g_usleep(50 * 1000);
  g_cancellable_cancel(data);
  return NULL;
}

static void test_cancel_from_thread(void) {
  service_start_default();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Answer answer = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "t2.timeout.test", cancellable, on_answer,
                 &answer);
  GThread *thread = g_thread_new("cancel", cancel_later, cancellable);
  wait_for(&answer, 1);
  g_thread_join(thread);
  g_assert_cmpint(pst_dns_result_get_status(answer.result), ==,
                  PST_DNS_CANCELLED);
  g_assert_true(answer.thread == g_thread_self());
  pst_dns_result_free(answer.result);
  run_for(50);
  g_assert_cmpuint(answer.calls, ==, 1);
  service_stop();
}

/* The callback frees its own state: what a session's plugin does on
 * disconnect.  Under ASan this catches any later use. */
typedef struct {
  guint *done;
  char *scratch;
} OwnedState;

static void on_answer_free_state(PstDnsResult *result, gpointer data) {
  OwnedState *state = data;
  (*state->done)++;
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_CANCELLED);
  pst_dns_result_free(result);
  g_free(state->scratch);
  g_free(state);
}

static void test_cancel_frees_state(void) {
  service_start_default();
  guint done = 0;
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  for (guint i = 0; i < 50; i++) {
    OwnedState *state = g_new0(OwnedState, 1);
    state->done = &done;
    state->scratch = g_strdup("state");
    g_autofree char *name = g_strdup_printf("free%u.slow.test", i);
    pst_dns_lookup(i % 2 ? PST_DNS_TYPE_A : PST_DNS_TYPE_TXT, name, cancellable,
                   on_answer_free_state, state);
  }
  run_for(20);
  g_cancellable_cancel(cancellable);
  while (done < 50)
    g_main_context_iteration(NULL, TRUE);
  run_for(500); /* the answers arrive and are dropped */
  g_assert_cmpuint(done, ==, 50);
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.in_flight, ==, 0);
  service_stop();
}

/* --- Load ------------------------------------------------------------ */

static void test_500_in_flight(void) {
  /* A timeout far above the server's delay: on a loaded machine (CI with
   * sanitizers, other builds) a 5 s timeout let some of the 500 expire. */
  g_autofree TestConfig *config = test_config_new(30000);
  service_start(config);
  enum { COUNT = 500 };
  Answer *answers = g_new0(Answer, COUNT);
  gint64 start = g_get_monotonic_time();
  for (guint i = 0; i < COUNT; i++) {
    g_autofree char *name =
        g_strdup_printf("n%u-%d.slow.test", i, (int)getpid());
    pst_dns_lookup(PST_DNS_TYPE_A, name, NULL, on_answer, &answers[i]);
  }
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.in_flight, ==, COUNT);
  /* While they wait, other lookups are answered at once. */
  gint64 fast_start = g_get_monotonic_time();
  g_autoptr(PstDnsResult) fast = lookup(PST_DNS_TYPE_MX, "example.test");
  gint64 fast_ms = (g_get_monotonic_time() - fast_start) / 1000;
  g_assert_cmpint(pst_dns_result_get_status(fast), ==, PST_DNS_OK);
  pst_dns_get_stats(&stats);
  g_test_message("fast lookup took %" G_GINT64_FORMAT " ms with %u in flight",
                 fast_ms, stats.in_flight);
  /* Within the server's 300 ms delay none of the slow ones can have been
   * answered; a loaded machine may take longer, and then only the fast
   * answer's overtaking them is certain. */
  g_assert_cmpuint(stats.in_flight, >, fast_ms < 250 ? COUNT / 2 : 0);
  /* Not a speed test (machines are shared and sanitizers slow): a loop
   * blocked behind the slow server would take COUNT * 300 ms = 150 s;
   * 5 s was seen exceeded (5.09 s) at load 20 on 2 cores. */
  g_assert_cmpint(fast_ms, <, 30000);
  guint ok = 0;
  for (guint i = 0; i < COUNT; i++) {
    wait_for(&answers[i], 1);
    ok += pst_dns_result_get_status(answers[i].result) == PST_DNS_OK;
    pst_dns_result_free(answers[i].result);
  }
  gint64 elapsed_ms = (g_get_monotonic_time() - start) / 1000;
  g_test_message(
      "%u lookups (server delay 300 ms) answered in %" G_GINT64_FORMAT
      " ms, %u OK",
      (guint)COUNT, elapsed_ms, ok);
  g_assert_cmpuint(ok, ==, COUNT);
  /* In parallel: one after another would take COUNT * 300 ms. */
  g_assert_cmpint(elapsed_ms, <, 60000);
  g_free(answers);
  service_stop();
}

/* --- Blocking lookups from worker threads --------------------------- */

typedef struct {
  guint index;
  gint *finished;
  guint failures;
} SyncWorker;

static gpointer sync_worker(gpointer data) {
  SyncWorker *worker = data;
  for (guint i = 0; i < 25; i++) {
    g_autofree char *name =
        g_strdup_printf("t%u-%u.wild.example.test", worker->index, i);
    g_autoptr(PstDnsResult) a = pst_dns_lookup_sync(PST_DNS_TYPE_A, name, NULL);
    if (pst_dns_result_get_status(a) != PST_DNS_OK ||
        g_strcmp0(pst_dns_result_get_string(a, 0), "192.0.2.99") != 0)
      worker->failures++;
    g_autoptr(PstDnsResult) txt =
        pst_dns_lookup_sync(PST_DNS_TYPE_TXT, "long.example.test", NULL);
    gsize length = 0;
    if (pst_dns_result_get_status(txt) != PST_DNS_OK ||
        pst_dns_result_get_txt(txt, 0, &length) == NULL || length != 549)
      worker->failures++;
    g_autoptr(PstDnsResult) nx =
        pst_dns_lookup_sync(PST_DNS_TYPE_MX, "nx.example.test", NULL);
    if (pst_dns_result_get_status(nx) != PST_DNS_NXDOMAIN)
      worker->failures++;
  }
  g_atomic_int_inc(worker->finished);
  g_main_context_wakeup(NULL);
  return NULL;
}

static void test_sync_threads(void) {
  service_start_default();
  enum { THREADS = 8 };
  gint finished = 0;
  SyncWorker workers[THREADS];
  GThread *threads[THREADS];
  gint64 start = g_get_monotonic_time();
  for (guint i = 0; i < THREADS; i++) {
    workers[i] = (SyncWorker){.index = i, .finished = &finished};
    threads[i] = g_thread_new("dns-sync", sync_worker, &workers[i]);
  }
  while (g_atomic_int_get(&finished) < THREADS)
    g_main_context_iteration(NULL, TRUE);
  guint failures = 0;
  for (guint i = 0; i < THREADS; i++) {
    g_thread_join(threads[i]);
    failures += workers[i].failures;
  }
  g_test_message("%d threads x 75 blocking lookups in %" G_GINT64_FORMAT " ms",
                 THREADS, (g_get_monotonic_time() - start) / 1000);
  g_assert_cmpuint(failures, ==, 0);
  service_stop();
}

typedef struct {
  PstDnsType type;
  const char *name;
  GCancellable *cancellable;
  PstDnsResult *result;
  gint64 elapsed_ms;
  gint done;
} SyncJob;

static gpointer sync_job_run(gpointer data) {
  SyncJob *job = data;
  gint64 start = g_get_monotonic_time();
  job->result = pst_dns_lookup_sync(job->type, job->name, job->cancellable);
  job->elapsed_ms = (g_get_monotonic_time() - start) / 1000;
  g_atomic_int_set(&job->done, 1);
  g_main_context_wakeup(NULL);
  return NULL;
}

static GThread *sync_job_start(SyncJob *job) {
  return g_thread_new("dns-job", sync_job_run, job);
}

static void sync_job_finish(SyncJob *job, GThread *thread) {
  while (!g_atomic_int_get(&job->done))
    g_main_context_iteration(NULL, TRUE);
  g_thread_join(thread);
}

static void test_sync_timeout_and_cancel(void) {
  service_start_default();
  SyncJob silent = {PST_DNS_TYPE_TXT, "s1.timeout.test", NULL, NULL, 0, 0};
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  SyncJob cancelled = {
      PST_DNS_TYPE_A, "s2.timeout.test", cancellable, NULL, 0, 0};
  GThread *silent_thread = sync_job_start(&silent);
  GThread *cancelled_thread = sync_job_start(&cancelled);
  run_for(200);
  g_cancellable_cancel(cancellable);
  sync_job_finish(&cancelled, cancelled_thread);
  sync_job_finish(&silent, silent_thread);
  g_assert_cmpint(pst_dns_result_get_status(cancelled.result), ==,
                  PST_DNS_CANCELLED);
  /* Well before the 1 s lookup timeout would have ended it. */
  g_assert_cmpint(cancelled.elapsed_ms, <, 900);
  g_assert_cmpint(pst_dns_result_get_status(silent.result), ==,
                  PST_DNS_TEMPFAIL);
  g_assert_cmpstr(pst_dns_result_get_reason(silent.result), ==,
                  "timeout after 1000 ms");
  g_assert_cmpint(silent.elapsed_ms, >=, 950);
  g_assert_cmpint(silent.elapsed_ms, <, 6000);
  pst_dns_result_free(silent.result);
  pst_dns_result_free(cancelled.result);
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.in_flight, ==, 0);
  service_stop();
}

static void test_sync_on_main_thread(void) {
  if (g_test_subprocess()) {
    TestConfig *test = test_config_new(TIMEOUT_MS);
    test->nameservers[0] = (char *)"127.0.0.1@9";
    service_start(test);
    g_autoptr(PstDnsResult) result =
        pst_dns_lookup_sync(PST_DNS_TYPE_A, "example.test", NULL);
    g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_TEMPFAIL);
    service_stop();
    g_free(test);
    return;
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_stderr("*pst_dns_lookup_sync*main thread*");
}

/* --- Caching --------------------------------------------------------- */

static void test_cache_ttl(void) {
  service_start_default();
  g_autofree char *name =
      g_strdup_printf("cache%d.wild.example.test", (int)getpid());
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_A, name);
  g_autoptr(PstDnsResult) second = lookup(PST_DNS_TYPE_A, name);
  g_assert_cmpint(pst_dns_result_get_status(second), ==, PST_DNS_OK);
  g_assert_cmpuint(queries_seen(name, "A"), ==, 1);
  g_assert_cmpuint(pst_dns_result_get_ttl(second), <=, 300);
  g_assert_cmpuint(pst_dns_result_get_ttl(second), >=, 298);

  /* Negative answers are cached too (the SOA's 60 s). */
  g_autofree char *missing =
      g_strdup_printf("nx%d.example.test", (int)getpid());
  g_autoptr(PstDnsResult) nx1 = lookup(PST_DNS_TYPE_A, missing);
  g_autoptr(PstDnsResult) nx2 = lookup(PST_DNS_TYPE_A, missing);
  g_assert_cmpint(pst_dns_result_get_status(nx2), ==, PST_DNS_NXDOMAIN);
  g_assert_cmpuint(queries_seen(missing, "A"), ==, 1);

  /* A 1-second TTL expires. */
  guint before = queries_seen("short.example.test", "A");
  g_autoptr(PstDnsResult) short1 = lookup(PST_DNS_TYPE_A, "short.example.test");
  g_assert_cmpuint(pst_dns_result_get_ttl(short1), <=, 1);
  run_for(2200);
  g_autoptr(PstDnsResult) short2 = lookup(PST_DNS_TYPE_A, "short.example.test");
  g_assert_cmpint(pst_dns_result_get_status(short2), ==, PST_DNS_OK);
  g_assert_cmpuint(queries_seen("short.example.test", "A"), ==, before + 2);
  service_stop();
}

static void test_cache_disabled(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  test->config.cache_size = 0;
  service_start(test);
  g_autofree char *name =
      g_strdup_printf("nocache%d.wild.example.test", (int)getpid());
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_A, name);
  g_autoptr(PstDnsResult) second = lookup(PST_DNS_TYPE_A, name);
  g_assert_cmpint(pst_dns_result_get_status(second), ==, PST_DNS_OK);
  g_assert_cmpuint(queries_seen(name, "A"), ==, 2);
  g_assert_cmpuint(pst_dns_result_get_ttl(second), ==, 0);
  service_stop();
}

/* --- DNSSEC ---------------------------------------------------------- */

typedef struct {
  PstDnsType type;
  const char *name;
  PstDnsStatus status;
  gboolean secure;
  gboolean bogus;
} SecureCase;

static void test_dnssec(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  test->config.dnssec = PST_DNSSEC_YES;
  test->config.trust_anchor = testdns.trust_anchor;
  service_start(test);
  const SecureCase cases[] = {
      {PST_DNS_TYPE_A, "www.secure.test", PST_DNS_OK, TRUE, FALSE},
      {PST_DNS_TYPE_TXT, "www.secure.test", PST_DNS_OK, TRUE, FALSE},
      {PST_DNS_TYPE_MX, "secure.test", PST_DNS_OK, TRUE, FALSE},
      {PST_DNS_TYPE_A, "nx.secure.test", PST_DNS_NXDOMAIN, TRUE, FALSE},
      {PST_DNS_TYPE_MX, "www.secure.test", PST_DNS_NODATA, TRUE, FALSE},
      {PST_DNS_TYPE_A, "bogus.secure.test", PST_DNS_TEMPFAIL, FALSE, TRUE},
      {PST_DNS_TYPE_A, "mx1.example.test", PST_DNS_OK, FALSE, FALSE},
      {PST_DNS_TYPE_PTR, "25.2.0.192.in-addr.arpa", PST_DNS_OK, FALSE, FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(PstDnsResult) result = lookup(cases[i].type, cases[i].name);
    g_test_message("%s %s: %s secure=%d bogus=%d (%s)", cases[i].name,
                   pst_dns_type_to_string(cases[i].type),
                   pst_dns_status_to_string(pst_dns_result_get_status(result)),
                   pst_dns_result_is_secure(result),
                   pst_dns_result_is_bogus(result),
                   pst_dns_result_get_reason(result));
    g_assert_cmpint(pst_dns_result_get_status(result), ==, cases[i].status);
    g_assert_cmpint(pst_dns_result_is_secure(result), ==, cases[i].secure);
    g_assert_cmpint(pst_dns_result_is_bogus(result), ==, cases[i].bogus);
    if (cases[i].bogus)
      g_assert_true(g_str_has_prefix(pst_dns_result_get_reason(result),
                                     "DNSSEC validation failed"));
  }
  service_stop();
}

/* The anchor is read at start: deleting it later changes nothing (the
 * daemon drops privileges after start). */
static void test_dnssec_anchor_read_once(void) {
  g_autofree char *copy = g_build_filename(testdns.dir, "copy.key", NULL);
  g_autofree char *contents = NULL;
  g_assert_true(
      g_file_get_contents(testdns.trust_anchor, &contents, NULL, NULL));
  g_assert_true(g_file_set_contents(copy, contents, -1, NULL));
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  test->config.dnssec = PST_DNSSEC_AUTO;
  test->config.trust_anchor = copy;
  service_start(test);
  g_unlink(copy);
  g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, "www.secure.test");
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
  g_assert_true(pst_dns_result_is_secure(result));
  service_stop();
}

static void test_dnssec_modes(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  /* auto without the file: no validation, lookups work. */
  test->config.dnssec = PST_DNSSEC_AUTO;
  test->config.trust_anchor = (char *)"/nonexistent/root.key";
  service_start(test);
  g_autoptr(PstDnsResult) result = lookup(PST_DNS_TYPE_A, "bogus.secure.test");
  g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_OK);
  g_assert_false(pst_dns_result_is_secure(result));
  service_stop();

  /* yes without the file: refused, naming the file. */
  test->config.dnssec = PST_DNSSEC_YES;
  g_autoptr(GError) error = NULL;
  g_assert_false(pst_dns_start(&test->config, &error));
  g_assert_error(error, PST_DNS_ERROR, PST_DNS_ERROR_TRUST_ANCHOR);
  g_assert_nonnull(strstr(error->message, "/nonexistent/root.key"));
  g_clear_error(&error);

  /* yes with a file that is not a trust anchor. */
  g_autofree char *garbage = g_build_filename(testdns.dir, "garbage.key", NULL);
  g_assert_true(g_file_set_contents(garbage, "this is not a key\n", -1, NULL));
  test->config.trust_anchor = garbage;
  g_assert_false(pst_dns_start(&test->config, &error));
  g_assert_error(error, PST_DNS_ERROR, PST_DNS_ERROR_TRUST_ANCHOR);
  g_test_message("garbage anchor: %s", error->message);
  g_unlink(garbage);

  /* no: a bogus zone is just data. */
  test->config.dnssec = PST_DNSSEC_NO;
  test->config.trust_anchor = testdns.trust_anchor;
  service_start(test);
  g_autoptr(PstDnsResult) plain = lookup(PST_DNS_TYPE_A, "bogus.secure.test");
  g_assert_cmpint(pst_dns_result_get_status(plain), ==, PST_DNS_OK);
  service_stop();
}

/* --- Configuration, reconfiguration, stop ---------------------------- */

static void test_config_errors(void) {
  const char *bad[] = {"not-an-address",  "127.0.0.1@",    "127.0.0.1@0",
                       "127.0.0.1@70000", "127.0.0.1@53x", "[::1]:53"};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
    test->nameservers[0] = (char *)bad[i];
    g_autoptr(GError) error = NULL;
    g_assert_false(pst_dns_start(&test->config, &error));
    g_assert_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "[dns] nameservers"));
    g_assert_nonnull(strstr(error->message, bad[i]));
  }
  g_autofree TestConfig *zero = test_config_new(0);
  g_autoptr(GError) error = NULL;
  g_assert_false(pst_dns_start(&zero->config, &error));
  g_assert_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG);

  /* IPv6 forwarders and several of them are accepted. */
  g_autofree TestConfig *many = test_config_new(TIMEOUT_MS);
  char *servers[] = {testdns.nameserver, (char *)"::1@9", NULL};
  many->config.nameservers = servers;
  service_start(many);
  service_stop();
}

static void test_reconfigure(void) {
  service_start_default();
  Answer answers[20] = {{0}};
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
    g_autofree char *name = g_strdup_printf("re%u.slow.test", i);
    pst_dns_lookup(PST_DNS_TYPE_A, name, NULL, on_answer, &answers[i]);
  }
  /* A new context with another timeout; the old one keeps its lookups. */
  g_autofree TestConfig *next = test_config_new(500);
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_dns_reconfigure(&next->config, &error));
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.contexts, ==, 2);
  g_assert_cmpuint(stats.in_flight, ==, G_N_ELEMENTS(answers));
  g_autoptr(PstDnsResult) timeout = lookup(PST_DNS_TYPE_A, "re.timeout.test");
  g_assert_cmpstr(pst_dns_result_get_reason(timeout), ==,
                  "timeout after 500 ms");
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
    wait_for(&answers[i], 1);
    g_assert_cmpint(pst_dns_result_get_status(answers[i].result), ==,
                    PST_DNS_OK);
    pst_dns_result_free(answers[i].result);
  }
  drain_main_context();
  pst_dns_get_stats(&stats);
  g_assert_cmpuint(stats.contexts, ==, 1);
  g_assert_cmpuint(stats.in_flight, ==, 0);

  /* A bad configuration keeps the running one. */
  g_autofree TestConfig *bad = test_config_new(TIMEOUT_MS);
  bad->nameservers[0] = (char *)"nonsense";
  g_assert_false(pst_dns_reconfigure(&bad->config, &error));
  g_assert_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG);
  g_assert_true(g_str_has_prefix(error->message, "keeping the previous"));
  g_autoptr(PstDnsResult) still = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  g_assert_cmpint(pst_dns_result_get_status(still), ==, PST_DNS_OK);
  service_stop();
}

/* A lookup started from inside a DNS callback: recorded in `chained`. */
typedef struct {
  Answer first;
  Answer chained;
} Chain;

static void on_answer_then_lookup(PstDnsResult *result, gpointer data) {
  Chain *chain = data;
  on_answer(result, &chain->first);
  pst_dns_lookup(PST_DNS_TYPE_A, "chained.timeout.test", NULL, on_answer,
                 &chain->chained);
}

static guint contexts_alive(void) {
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  return stats.contexts;
}

/* A generation's resolver: its own configuration, chosen explicitly, by
 * scope, or by the lookup whose callback runs; released, it closes once
 * its last lookup is answered. */
static void test_resolver_held(void) {
  service_start_default();
  g_autofree TestConfig *short_timeout = test_config_new(700);
  g_autoptr(GError) error = NULL;
  PstDnsResolver *resolver =
      pst_dns_resolver_open(&short_timeout->config, &error);
  g_assert_no_error(error);
  g_assert_nonnull(resolver);
  g_assert_true(pst_dns_get_default() != resolver);
  g_assert_cmpuint(contexts_alive(), ==, 2);

  Answer explicit = {0};
  pst_dns_lookup_on(resolver, PST_DNS_TYPE_A, "held.timeout.test",
                    PST_DNS_LOOKUP_DEFAULT, NULL, on_answer, &explicit);
  wait_for(&explicit, 1);
  g_assert_cmpstr(pst_dns_result_get_reason(explicit.result), ==,
                  "timeout after 700 ms");
  pst_dns_result_free(explicit.result);

  /* In scope, the SDK's lookup goes to it, and so does a lookup started
   * from the callback of a lookup on it, after the scope has ended. */
  Chain chain = {{0}};
  PstDnsResolver *previous = pst_dns_scope_enter(resolver);
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", NULL,
                 on_answer_then_lookup, &chain);
  pst_dns_scope_leave(previous);
  wait_for(&chain.chained, 1);
  g_assert_cmpint(pst_dns_result_get_status(chain.first.result), ==,
                  PST_DNS_OK);
  g_assert_cmpstr(pst_dns_result_get_reason(chain.chained.result), ==,
                  "timeout after 700 ms");
  pst_dns_result_free(chain.first.result);
  pst_dns_result_free(chain.chained.result);

  /* Released with a lookup in flight: the lookup completes, then the
   * context goes; later lookups on it go to the default resolver. */
  Answer in_flight = {0};
  pst_dns_lookup_on(resolver, PST_DNS_TYPE_A, "held.slow.test",
                    PST_DNS_LOOKUP_DEFAULT, NULL, on_answer, &in_flight);
  pst_dns_resolver_hold(resolver);
  pst_dns_resolver_release(resolver);
  run_for(20);
  g_assert_cmpuint(contexts_alive(), ==, 2);
  pst_dns_resolver_release(resolver);
  wait_for(&in_flight, 1);
  g_assert_cmpint(pst_dns_result_get_status(in_flight.result), ==, PST_DNS_OK);
  pst_dns_result_free(in_flight.result);
  drain_main_context();
  g_assert_cmpuint(contexts_alive(), ==, 1);
  service_stop();
}

/* The default resolver replaced: the old one closes when nobody holds it;
 * a generation that still holds it keeps it until stop. */
static void test_resolver_default(void) {
  service_start_default();
  PstDnsResolver *first = pst_dns_resolver_hold(pst_dns_get_default());
  g_autofree TestConfig *next = test_config_new(300);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstDnsResolver) second =
      pst_dns_resolver_open(&next->config, &error);
  g_assert_no_error(error);
  pst_dns_set_default(second);
  g_assert_true(pst_dns_get_default() == second);
  drain_main_context();
  g_assert_cmpuint(contexts_alive(), ==, 2); /* `first` is still held */
  g_autoptr(PstDnsResult) timeout = lookup(PST_DNS_TYPE_A, "d.timeout.test");
  g_assert_cmpstr(pst_dns_result_get_reason(timeout), ==,
                  "timeout after 300 ms");
  service_stop();
  /* Holders released after stop: nothing left to close. */
  pst_dns_resolver_release(first);
  g_assert_cmpuint(contexts_alive(), ==, 0);
}

static void test_stop_in_flight(void) {
  service_start_default();
  Answer answers[10] = {{0}};
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
    g_autofree char *name = g_strdup_printf("stop%u.timeout.test", i);
    pst_dns_lookup(PST_DNS_TYPE_A, name, NULL, on_answer, &answers[i]);
  }
  Answer invalid = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "a..b", NULL, on_answer, &invalid);
  SyncJob job = {PST_DNS_TYPE_A, "stop-sync.timeout.test", NULL, NULL, 0, 0};
  GThread *thread = sync_job_start(&job);
  run_for(100);
  pst_dns_stop();
  /* Every async callback ran inside stop. */
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
    g_assert_cmpuint(answers[i].calls, ==, 1);
    g_assert_cmpstr(pst_dns_result_get_reason(answers[i].result), ==,
                    "resolver stopped");
    pst_dns_result_free(answers[i].result);
  }
  g_assert_cmpuint(invalid.calls, ==, 1);
  g_assert_cmpint(pst_dns_result_get_status(invalid.result), ==,
                  PST_DNS_INVALID);
  pst_dns_result_free(invalid.result);
  sync_job_finish(&job, thread);
  g_assert_cmpint(pst_dns_result_get_status(job.result), ==, PST_DNS_TEMPFAIL);
  g_assert_cmpstr(pst_dns_result_get_reason(job.result), ==,
                  "resolver stopped");
  g_assert_cmpint(job.elapsed_ms, <, 600);
  pst_dns_result_free(job.result);
  drain_main_context();

  /* Afterwards lookups fail at once, and the service can start again. */
  g_autoptr(PstDnsResult) after = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  g_assert_cmpint(pst_dns_result_get_status(after), ==, PST_DNS_TEMPFAIL);
  g_autoptr(PstDnsResult) sync =
      pst_dns_lookup_sync(PST_DNS_TYPE_A, "mx1.example.test", NULL);
  g_assert_cmpint(pst_dns_result_get_status(sync), ==, PST_DNS_TEMPFAIL);
  service_start_default();
  g_autoptr(PstDnsResult) again = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  g_assert_cmpint(pst_dns_result_get_status(again), ==, PST_DNS_OK);
  service_stop();
}

/* --- The answer cache in front of libunbound ------------------------ */

static PstDnsStats stats_now(void) {
  PstDnsStats stats;
  pst_dns_get_stats(&stats);
  return stats;
}

/* A second lookup is answered from the cache: no query to libunbound,
 * never inside the call, the same records, the TTL counting down, the
 * name and canonical name as the second caller asked. */
static void test_answer_cache_hit(void) {
  service_start_default();
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_MX, "example.test");
  PstDnsStats before = stats_now();
  g_autoptr(PstDnsResult) hit = lookup(PST_DNS_TYPE_MX, "example.test.");
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.lookups, ==, before.lookups);
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits + 1);
  g_assert_cmpint(pst_dns_result_get_status(hit), ==, PST_DNS_OK);
  g_autofree char *want = records_text(first);
  g_autofree char *got = records_text(hit);
  g_assert_cmpstr(got, ==, want);
  g_assert_cmpstr(pst_dns_result_get_name(hit), ==, "example.test.");
  g_assert_cmpstr(pst_dns_result_get_canonical_name(hit), ==, "example.test");
  g_assert_cmpuint(pst_dns_result_get_ttl(hit), <=, 300);
  g_assert_cmpuint(pst_dns_result_get_ttl(hit), >=, 298);
  g_assert_cmpint(pst_dns_result_get_rcode(hit), ==, 0);
  gsize length = 0;
  g_assert_nonnull(pst_dns_result_get_answer_packet(hit, &length));
  g_assert_cmpuint(length, >, 12);

  /* A CNAME chain's end stays the canonical name. */
  g_autoptr(PstDnsResult) chain1 = lookup(PST_DNS_TYPE_A, "c1.example.test");
  g_autoptr(PstDnsResult) chain2 = lookup(PST_DNS_TYPE_A, "c1.example.test");
  g_assert_cmpstr(pst_dns_result_get_canonical_name(chain2), ==,
                  "c3.example.test");
  g_assert_cmpuint(stats_now().cache_hits, ==, after.cache_hits + 1);

  /* Blocking lookups on workers use it too. */
  SyncJob job = {PST_DNS_TYPE_MX, "example.test", NULL, NULL, 0, 0};
  sync_job_finish(&job, sync_job_start(&job));
  g_assert_cmpint(pst_dns_result_get_status(job.result), ==, PST_DNS_OK);
  g_assert_cmpuint(pst_dns_result_get_count(job.result), ==, 2);
  pst_dns_result_free(job.result);
  g_assert_cmpuint(stats_now().cache_hits, ==, after.cache_hits + 2);
  g_assert_cmpuint(stats_now().lookups, ==, after.lookups + 1);
  service_stop();
}

/* Several hits and a lookup started from a hit's callback: each callback
 * once, none inside the call that started it. */
static void test_answer_cache_hits_batched(void) {
  service_start_default();
  g_autoptr(PstDnsResult) warm = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  Answer answers[5] = {{0}};
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++)
    pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", NULL, on_answer,
                   &answers[i]);
  Chain chain = {{0}};
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", NULL,
                 on_answer_then_lookup, &chain);
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++)
    g_assert_cmpuint(answers[i].calls, ==, 0);
  g_assert_true(g_main_context_iteration(NULL, FALSE));
  for (guint i = 0; i < G_N_ELEMENTS(answers); i++) {
    g_assert_cmpuint(answers[i].calls, ==, 1);
    g_assert_cmpint(pst_dns_result_get_status(answers[i].result), ==,
                    PST_DNS_OK);
    pst_dns_result_free(answers[i].result);
  }
  g_assert_cmpuint(chain.first.calls, ==, 1);
  g_assert_cmpuint(chain.chained.calls, ==, 0);
  wait_for(&chain.chained, 1);
  pst_dns_result_free(chain.first.result);
  pst_dns_result_free(chain.chained.result);

  /* A hit whose cancellable is cancelled before it is delivered. */
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Answer cancelled = {0};
  pst_dns_lookup(PST_DNS_TYPE_A, "mx1.example.test", cancellable, on_answer,
                 &cancelled);
  g_cancellable_cancel(cancellable);
  wait_for(&cancelled, 1);
  g_assert_cmpint(pst_dns_result_get_status(cancelled.result), ==,
                  PST_DNS_CANCELLED);
  pst_dns_result_free(cancelled.result);
  run_for(50);
  g_assert_cmpuint(cancelled.calls, ==, 1);
  service_stop();
}

/* An answer is kept for its TTL only. */
static void test_answer_cache_expiry(void) {
  service_start_default();
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_A, "short.example.test");
  PstDnsStats before = stats_now();
  g_autoptr(PstDnsResult) hit = lookup(PST_DNS_TYPE_A, "short.example.test");
  g_assert_cmpuint(stats_now().cache_hits, ==, before.cache_hits + 1);
  g_assert_cmpuint(pst_dns_result_get_ttl(hit), ==, 1);
  run_for(1100);
  g_autoptr(PstDnsResult) later = lookup(PST_DNS_TYPE_A, "short.example.test");
  g_assert_cmpint(pst_dns_result_get_status(later), ==, PST_DNS_OK);
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits + 1);
  g_assert_cmpuint(after.lookups, ==, before.lookups + 1);
  service_stop();
}

/* pst_dns_lookup_cached_on() answers inside the call from the cache, and
 * only from it: NULL before the first lookup, for an invalid name, and
 * after expiry; a negative answer too; nothing is sent. */
static void test_answer_cache_cached_only(void) {
  service_start_default();
  g_assert_null(
      pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_A, "short.example.test"));
  g_assert_null(pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_A, "bad..name"));
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_A, "short.example.test");
  g_autoptr(PstDnsResult) nx = lookup(PST_DNS_TYPE_A, "nx.example.test");
  PstDnsStats before = stats_now();
  g_autoptr(PstDnsResult) hit =
      pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_A, "short.example.test.");
  g_assert_nonnull(hit);
  g_autofree char *want = records_text(first);
  g_autofree char *got = records_text(hit);
  g_assert_cmpstr(got, ==, want);
  g_assert_cmpstr(pst_dns_result_get_name(hit), ==, "short.example.test.");
  g_autoptr(PstDnsResult) nx_hit =
      pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_A, "nx.example.test");
  g_assert_nonnull(nx_hit);
  g_assert_cmpint(pst_dns_result_get_status(nx_hit), ==, PST_DNS_NXDOMAIN);
  g_assert_null(
      pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_MX, "short.example.test"));
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits + 2);
  g_assert_cmpuint(after.lookups, ==, before.lookups);
  run_for(1100); /* its TTL is 1 s */
  g_assert_null(
      pst_dns_lookup_cached_on(NULL, PST_DNS_TYPE_A, "short.example.test"));
  service_stop();
}

/* NXDOMAIN and NODATA are kept for the SOA's negative TTL (60 s). */
static void test_answer_cache_negative(void) {
  service_start_default();
  g_autoptr(PstDnsResult) nx1 = lookup(PST_DNS_TYPE_A, "nx.example.test");
  g_autoptr(PstDnsResult) nodata1 = lookup(PST_DNS_TYPE_MX, "mx1.example.test");
  PstDnsStats before = stats_now();
  g_autoptr(PstDnsResult) nx2 = lookup(PST_DNS_TYPE_A, "nx.example.test");
  g_autoptr(PstDnsResult) nodata2 = lookup(PST_DNS_TYPE_MX, "mx1.example.test");
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.lookups, ==, before.lookups);
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits + 2);
  g_assert_cmpint(pst_dns_result_get_status(nx2), ==, PST_DNS_NXDOMAIN);
  g_assert_cmpint(pst_dns_result_get_rcode(nx2), ==, 3);
  g_assert_cmpuint(pst_dns_result_get_ttl(nx2), <=, 60);
  g_assert_cmpuint(pst_dns_result_get_ttl(nx2), >=, 58);
  g_assert_cmpint(pst_dns_result_get_status(nodata2), ==, PST_DNS_NODATA);
  g_assert_cmpuint(pst_dns_result_get_count(nodata2), ==, 0);
  service_stop();
}

/* Temporary failures are asked again every time. */
static void test_answer_cache_failures(void) {
  g_autofree TestConfig *test = test_config_new(300);
  service_start(test);
  const struct {
    PstDnsType type;
    const char *name;
  } failures[] = {
      {PST_DNS_TYPE_A, "x.servfail.test"},
      {PST_DNS_TYPE_TXT, "x.refused.test"},
      {PST_DNS_TYPE_A, "loop1.example.test"},
      {PST_DNS_TYPE_A, "f.timeout.test"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(failures); i++) {
    PstDnsStats before = stats_now();
    for (guint round = 0; round < 2; round++) {
      g_autoptr(PstDnsResult) result =
          lookup(failures[i].type, failures[i].name);
      g_assert_cmpint(pst_dns_result_get_status(result), ==, PST_DNS_TEMPFAIL);
    }
    PstDnsStats after = stats_now();
    g_assert_cmpuint(after.lookups, ==, before.lookups + 2);
    g_assert_cmpuint(after.cache_hits, ==, before.cache_hits);
  }
  service_stop();
}

/* DNSSEC: a secure answer stays secure from the cache; a bogus one is a
 * failure and not kept. */
static void test_answer_cache_dnssec(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  test->config.dnssec = PST_DNSSEC_YES;
  test->config.trust_anchor = testdns.trust_anchor;
  service_start(test);
  g_autoptr(PstDnsResult) first = lookup(PST_DNS_TYPE_A, "www.secure.test");
  g_autoptr(PstDnsResult) hit = lookup(PST_DNS_TYPE_A, "www.secure.test");
  g_assert_cmpuint(stats_now().cache_hits, ==, 1);
  g_assert_true(pst_dns_result_is_secure(hit));
  g_autoptr(PstDnsResult) plain1 = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  g_autoptr(PstDnsResult) plain2 = lookup(PST_DNS_TYPE_A, "mx1.example.test");
  g_assert_cmpuint(stats_now().cache_hits, ==, 2);
  g_assert_false(pst_dns_result_is_secure(plain2));
  PstDnsStats before = stats_now();
  g_autoptr(PstDnsResult) bogus1 = lookup(PST_DNS_TYPE_A, "bogus.secure.test");
  g_autoptr(PstDnsResult) bogus2 = lookup(PST_DNS_TYPE_A, "bogus.secure.test");
  g_assert_true(pst_dns_result_is_bogus(bogus2));
  g_assert_cmpuint(stats_now().cache_hits, ==, before.cache_hits);
  service_stop();
}

/* At most [dns] cache_size answers and 1 KiB per entry in all; the least
 * recently used goes first. */
static void test_answer_cache_bound(void) {
  g_autofree TestConfig *test = test_config_new(TIMEOUT_MS);
  test->config.cache_size = 3;
  service_start(test);
  const char *names[] = {"b0.wild.example.test", "b1.wild.example.test",
                         "b2.wild.example.test", "b3.wild.example.test"};
  for (guint i = 0; i < 3; i++)
    pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[i]));
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[0])); /* used again */
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[3])); /* evicts b1 */
  PstDnsStats before = stats_now();
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[0]));
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[3]));
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits + 2);
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, names[1]));
  g_assert_cmpuint(stats_now().lookups, ==, after.lookups + 1);

  /* 3 KiB in all: a 3,000-octet TXT answer is not kept. */
  before = stats_now();
  for (guint round = 0; round < 2; round++) {
    g_autoptr(PstDnsResult) huge = lookup(PST_DNS_TYPE_TXT, "huge.example.test");
    g_assert_cmpint(pst_dns_result_get_status(huge), ==, PST_DNS_OK);
  }
  g_assert_cmpuint(stats_now().lookups, ==, before.lookups + 2);
  service_stop();
}

/* Each resolver (generation) has a cache of its own: a new one starts
 * empty, and the old one's answers stay with it. */
static void test_answer_cache_per_resolver(void) {
  service_start_default();
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, "mx2.example.test"));
  g_autofree TestConfig *next = test_config_new(TIMEOUT_MS);
  g_autoptr(GError) error = NULL;
  PstDnsResolver *old = pst_dns_resolver_hold(pst_dns_get_default());
  g_autoptr(PstDnsResolver) resolver =
      pst_dns_resolver_open(&next->config, &error);
  g_assert_no_error(error);
  pst_dns_set_default(resolver);
  PstDnsStats before = stats_now();
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, "mx2.example.test"));
  PstDnsStats after = stats_now();
  g_assert_cmpuint(after.lookups, ==, before.lookups + 1);
  g_assert_cmpuint(after.cache_hits, ==, before.cache_hits);
  pst_dns_result_free(lookup(PST_DNS_TYPE_A, "mx2.example.test"));
  g_assert_cmpuint(stats_now().cache_hits, ==, after.cache_hits + 1);

  Answer on_old = {0};
  pst_dns_lookup_on(old, PST_DNS_TYPE_A, "mx2.example.test",
                    PST_DNS_LOOKUP_DEFAULT, NULL, on_answer, &on_old);
  wait_for(&on_old, 1);
  pst_dns_result_free(on_old.result);
  g_assert_cmpuint(stats_now().cache_hits, ==, after.cache_hits + 2);
  g_assert_cmpuint(stats_now().lookups, ==, after.lookups);
  pst_dns_resolver_release(old);
  service_stop();
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  if (!g_test_subprocess()) {
    alarm(120); /* a hung test fails instead of blocking the suite */
    testdns_start();
  }
  for (guint i = 0; i < G_N_ELEMENTS(result_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/dns/lookup/%s", result_cases[i].path);
    g_test_add_data_func(path, &result_cases[i], test_result_case);
  }
  g_test_add_func("/dns/lookup/servfail-reason", test_servfail_reason);
  g_test_add_func("/dns/lookup/txt-long", test_txt_long);
  g_test_add_func("/dns/lookup/txt-over-tcp", test_txt_over_tcp);
  g_test_add_func("/dns/lookup/invalid-names", test_invalid_names);
  g_test_add_func("/dns/lookup/not-started", test_not_started);
  g_test_add_func("/dns/lookup/verbatim-names", test_verbatim_names);
  g_test_add_func("/dns/timeout/silent-server", test_timeout);
  g_test_add_func("/dns/timeout/no-poisoning", test_timeouts_do_not_poison);
  g_test_add_func("/dns/cancel/in-flight", test_cancel_in_flight);
  g_test_add_func("/dns/cancel/before", test_cancel_before);
  g_test_add_func("/dns/cancel/after-answer", test_cancel_after_answer);
  g_test_add_func("/dns/cancel/from-thread", test_cancel_from_thread);
  g_test_add_func("/dns/cancel/frees-state", test_cancel_frees_state);
  g_test_add_func("/dns/load/500-in-flight", test_500_in_flight);
  g_test_add_func("/dns/sync/8-threads", test_sync_threads);
  g_test_add_func("/dns/sync/timeout-and-cancel", test_sync_timeout_and_cancel);
  g_test_add_func("/dns/sync/main-thread", test_sync_on_main_thread);
  g_test_add_func("/dns/cache/ttl", test_cache_ttl);
  g_test_add_func("/dns/cache/disabled", test_cache_disabled);
  g_test_add_func("/dns/dnssec/validation", test_dnssec);
  g_test_add_func("/dns/dnssec/anchor-read-once", test_dnssec_anchor_read_once);
  g_test_add_func("/dns/dnssec/modes", test_dnssec_modes);
  g_test_add_func("/dns/config/errors", test_config_errors);
  g_test_add_func("/dns/config/reconfigure", test_reconfigure);
  g_test_add_func("/dns/resolver/held", test_resolver_held);
  g_test_add_func("/dns/resolver/default", test_resolver_default);
  g_test_add_func("/dns/stop/in-flight", test_stop_in_flight);
  g_test_add_func("/dns/answer-cache/hit", test_answer_cache_hit);
  g_test_add_func("/dns/answer-cache/batched", test_answer_cache_hits_batched);
  g_test_add_func("/dns/answer-cache/expiry", test_answer_cache_expiry);
  g_test_add_func("/dns/answer-cache/negative", test_answer_cache_negative);
  g_test_add_func("/dns/answer-cache/cached-only",
                  test_answer_cache_cached_only);
  g_test_add_func("/dns/answer-cache/failures", test_answer_cache_failures);
  g_test_add_func("/dns/answer-cache/dnssec", test_answer_cache_dnssec);
  g_test_add_func("/dns/answer-cache/bound", test_answer_cache_bound);
  g_test_add_func("/dns/answer-cache/per-resolver",
                  test_answer_cache_per_resolver);
  int status = g_test_run();
  if (!g_test_subprocess())
    testdns_stop();
  return status;
}
