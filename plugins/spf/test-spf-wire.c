/* test-spf-wire.c - unit tests of the plugin <-> pst-spf-eval messages
 * (spf-wire.c: round trips, and every malformed payload refused) and of
 * the evaluator process itself (spf-child.c with the built pst-spf-eval,
 * $SPF_EVALUATOR): evaluations answered from a table, several in one
 * process, a child killed mid-evaluation, a missed deadline.
 */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spf.h"

static const SpfQuery sample_query = {
    .ip = "192.0.2.1",
    .helo = "mx.example.test",
    .sender = "user@example.test",
    .identity = SPF_IDENTITY_MAIL_FROM,
    .receiver = "mx.local.test",
    .max_lookups = 10,
    .max_void = 2,
};

/* --- Codecs ------------------------------------------------------------- */

static void test_query_round_trip(void) {
  g_autoptr(GBytes) payload = spf_wire_encode_query(&sample_query);
  g_assert_cmpuint(spf_wire_type(payload), ==, SPF_WIRE_QUERY);
  g_autoptr(SpfWireQuery) wire = spf_wire_decode_query(payload);
  g_assert_nonnull(wire);
  g_assert_cmpstr(wire->query.ip, ==, sample_query.ip);
  g_assert_cmpstr(wire->query.helo, ==, sample_query.helo);
  g_assert_cmpstr(wire->query.sender, ==, sample_query.sender);
  g_assert_cmpstr(wire->query.receiver, ==, sample_query.receiver);
  g_assert_cmpint(wire->query.identity, ==, SPF_IDENTITY_MAIL_FROM);
  g_assert_cmpuint(wire->query.max_lookups, ==, 10);
  g_assert_cmpuint(wire->query.max_void, ==, 2);
  /* No HELO, the null sender. */
  SpfQuery query = sample_query;
  query.helo = NULL;
  query.sender = "";
  query.identity = SPF_IDENTITY_HELO;
  g_autoptr(GBytes) again = spf_wire_encode_query(&query);
  g_autoptr(SpfWireQuery) second = spf_wire_decode_query(again);
  g_assert_nonnull(second);
  g_assert_null(second->query.helo);
  g_assert_cmpstr(second->query.sender, ==, "");
  g_assert_cmpint(second->query.identity, ==, SPF_IDENTITY_HELO);
}

static void test_answer_round_trip(void) {
  g_autoptr(SpfAnswer) answer = spf_answer_new(PST_DNS_OK);
  g_ptr_array_add(answer->records, g_strdup("v=spf1 -all"));
  g_ptr_array_add(answer->records, g_strdup(""));
  g_ptr_array_add(answer->records, g_strdup("line\r\nbreak \xff"));
  g_autoptr(GBytes) payload = spf_wire_encode_answer(answer);
  g_autoptr(SpfAnswer) back = spf_wire_decode_answer(payload);
  g_assert_nonnull(back);
  g_assert_cmpint(back->status, ==, PST_DNS_OK);
  g_assert_cmpuint(back->records->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpstr(g_ptr_array_index(back->records, i), ==,
                    g_ptr_array_index(answer->records, i));
  /* Too many records: the encoder keeps the first SPF_WIRE_MAX_RECORDS. */
  g_autoptr(SpfAnswer) many = spf_answer_new(PST_DNS_OK);
  for (guint i = 0; i < SPF_WIRE_MAX_RECORDS + 5; i++)
    g_ptr_array_add(many->records, g_strdup("192.0.2.1"));
  g_autoptr(GBytes) big = spf_wire_encode_answer(many);
  g_autoptr(SpfAnswer) capped = spf_wire_decode_answer(big);
  g_assert_cmpuint(capped->records->len, ==, SPF_WIRE_MAX_RECORDS);
}

static void test_question_and_outcome_round_trip(void) {
  g_autoptr(GBytes) question =
      spf_wire_encode_question(PST_DNS_TYPE_TXT, "example.test");
  PstDnsType type = 0;
  g_autofree char *name = spf_wire_decode_question(question, &type);
  g_assert_cmpstr(name, ==, "example.test");
  g_assert_cmpint(type, ==, PST_DNS_TYPE_TXT);
  SpfOutcome outcome = {.result = SPF_RES_FAIL,
                        .domain = "ignored.test",
                        .identity = "ignored",
                        .comment = "mx: domain of x does not designate y",
                        .explanation = "see https://example.test/",
                        .lookups = 3,
                        .voids = 1};
  g_autoptr(GBytes) payload = spf_wire_encode_outcome(&outcome);
  g_autoptr(SpfOutcome) back = spf_wire_decode_outcome(payload);
  g_assert_nonnull(back);
  g_assert_cmpint(back->result, ==, SPF_RES_FAIL);
  g_assert_null(back->domain);
  g_assert_null(back->identity);
  g_assert_cmpstr(back->comment, ==, outcome.comment);
  g_assert_null(back->problem);
  g_assert_cmpstr(back->explanation, ==, outcome.explanation);
  g_assert_cmpuint(back->lookups, ==, 3);
  g_assert_cmpuint(back->voids, ==, 1);
}

/* Every proper prefix and one byte more of a valid payload is refused. */
static void assert_only_whole(GBytes *payload,
                              gboolean (*decodes)(GBytes *payload)) {
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(payload, &size);
  g_assert_true(decodes(payload));
  for (gsize length = 0; length < size; length++) {
    g_autoptr(GBytes) prefix = g_bytes_new(data, length);
    g_assert_false(decodes(prefix));
  }
  g_autofree guint8 *longer = g_malloc(size + 1);
  memcpy(longer, data, size);
  longer[size] = 0;
  g_autoptr(GBytes) extra = g_bytes_new(longer, size + 1);
  g_assert_false(decodes(extra));
}

static gboolean decodes_query(GBytes *payload) {
  g_autoptr(SpfWireQuery) wire = spf_wire_decode_query(payload);
  return wire != NULL;
}

static gboolean decodes_answer(GBytes *payload) {
  g_autoptr(SpfAnswer) answer = spf_wire_decode_answer(payload);
  return answer != NULL;
}

static gboolean decodes_outcome(GBytes *payload) {
  g_autoptr(SpfOutcome) outcome = spf_wire_decode_outcome(payload);
  return outcome != NULL;
}

static gboolean decodes_question(GBytes *payload) {
  PstDnsType type;
  g_autofree char *name = spf_wire_decode_question(payload, &type);
  return name != NULL;
}

static void test_truncated_and_trailing_refused(void) {
  g_autoptr(GBytes) query = spf_wire_encode_query(&sample_query);
  assert_only_whole(query, decodes_query);
  g_autoptr(SpfAnswer) answer = spf_answer_new(PST_DNS_NXDOMAIN);
  g_ptr_array_add(answer->records, g_strdup("a"));
  g_autoptr(GBytes) encoded = spf_wire_encode_answer(answer);
  assert_only_whole(encoded, decodes_answer);
  SpfOutcome outcome = {.result = SPF_RES_PASS, .comment = "ok"};
  g_autoptr(GBytes) result = spf_wire_encode_outcome(&outcome);
  assert_only_whole(result, decodes_outcome);
  g_autoptr(GBytes) question = spf_wire_encode_question(PST_DNS_TYPE_A, "a.b");
  assert_only_whole(question, decodes_question);
  /* A payload of another type. */
  g_assert_false(decodes_answer(query));
  g_assert_false(decodes_query(result));
}

/* Hand-made payloads: type byte, then fields. */
static GBytes *payload_of(const char *bytes, gsize size) {
  return g_bytes_new(bytes, size);
}

#define RAW(text) payload_of(text, sizeof text - 1)

static void test_malformed_refused(void) {
  struct {
    const char *what;
    GBytes *payload;
    gboolean (*decodes)(GBytes *payload);
  } cases[] = {
      {"NUL in a string", RAW("D\0\0\0\x10\0\0\0\3a\0b"), decodes_question},
      {"a DNS type libspf2 never asks", RAW("D\0\0\0\x34\0\0\0\1a"),
       decodes_question},
      {"a NULL name", RAW("D\0\0\0\x10\xff\xff\xff\xff"), decodes_question},
      {"a string longer than the payload",
       RAW("D\0\0\0\x10\0\0\0\x09"
           "abc"),
       decodes_question},
      {"a length near 4 GiB",
       RAW("D\0\0\0\x10\xff\xff\xff\xfe"
           "a"),
       decodes_question},
      {"an unknown DNS status", RAW("A\0\0\0\x09\0\0\0\0"), decodes_answer},
      {"too many records", RAW("A\0\0\0\0\0\0\x04\x01"), decodes_answer},
      {"a result out of range",
       RAW("O\0\0\0\x07\0\0\0\1c\xff\xff\xff\xff\xff\xff\xff\xff"
           "\0\0\0\0\0\0\0\0"),
       decodes_outcome},
      {"a comment with a line break",
       RAW("O\0\0\0\2\0\0\0\3a\r\n\xff\xff\xff\xff\xff\xff\xff\xff"
           "\0\0\0\0\0\0\0\0"),
       decodes_outcome},
      {"a comment with a parenthesis",
       RAW("O\0\0\0\2\0\0\0\2a)\xff\xff\xff\xff\xff\xff\xff\xff"
           "\0\0\0\0\0\0\0\0"),
       decodes_outcome},
      {"an explanation with 8-bit text",
       RAW("O\0\0\0\3\0\0\0\1a\xff\xff\xff\xff\0\0\0\1\xe9"
           "\0\0\0\0\0\0\0\0"),
       decodes_outcome},
      {"a NULL comment",
       RAW("O\0\0\0\2\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
           "\0\0\0\0\0\0\0\0"),
       decodes_outcome},
      {"an unknown identity",
       RAW("Q\0\0\0\1a\xff\xff\xff\xff\0\0\0\0\0\0\0\3\0\0\0\1r"
           "\0\0\0\0\0\0\0\0"),
       decodes_query},
      {"an empty payload", RAW(""), decodes_query},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("case: %s", cases[i].what);
    g_assert_false(cases[i].decodes(cases[i].payload));
    g_bytes_unref(cases[i].payload);
  }
  /* The good twin of the last outcome case decodes (the table is right). */
  g_autoptr(GBytes) good =
      RAW("O\0\0\0\2\0\0\0\1a\xff\xff\xff\xff\xff\xff\xff\xff"
          "\0\0\0\0\0\0\0\0");
  g_assert_true(decodes_outcome(good));
}

static void test_framing(void) {
  int fds[2];
  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
  g_autoptr(GBytes) payload = spf_wire_encode_query(&sample_query);
  g_assert_true(spf_wire_send(fds[0], payload, NULL));
  g_autoptr(GBytes) got = spf_wire_recv(fds[1], 0, NULL, NULL);
  g_assert_true(g_bytes_equal(got, payload));
  /* A length over the limit is refused before anything is allocated. */
  g_assert_cmpint(write(fds[0], "\x7f\0\0\0", 4), ==, 4);
  g_autoptr(GError) error = NULL;
  g_assert_null(spf_wire_recv(fds[1], 0, NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error(&error);
  /* Nothing comes: the deadline. */
  g_assert_null(
      spf_wire_recv(fds[1], g_get_monotonic_time() + 50000, NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error(&error);
  /* The end of the stream. */
  close(fds[0]);
  g_assert_null(spf_wire_recv(fds[1], 0, NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  close(fds[1]);
}

/* --- The evaluator process ---------------------------------------------- */

typedef struct {
  SpfChild *child; /* killed by the resolver when `kill_on` is asked */
  const char *kill_on;
  guint questions;
} Resolver;

static SpfAnswer *table_resolve(PstDnsType type, const char *name,
                                gpointer user_data) {
  Resolver *resolver = user_data;
  resolver->questions++;
  if (resolver->kill_on != NULL && strcmp(name, resolver->kill_on) == 0)
    kill(spf_child_get_pid(resolver->child), SIGKILL);
  SpfAnswer *answer = spf_answer_new(PST_DNS_NXDOMAIN);
  if (type == PST_DNS_TYPE_TXT && strcmp(name, "example.test") == 0) {
    answer->status = PST_DNS_OK;
    g_ptr_array_add(answer->records,
                    g_strdup("v=spf1 ip4:192.0.2.0/24 a:slow.example.test "
                             "-all exp=why.example.test"));
  } else if (type == PST_DNS_TYPE_TXT &&
             strcmp(name, "why.example.test") == 0) {
    answer->status = PST_DNS_OK;
    g_ptr_array_add(answer->records, g_strdup("%{i} is not allowed"));
  }
  return answer;
}

static SpfChild *spawn_evaluator(void) {
  const char *path = g_getenv("SPF_EVALUATOR");
  g_assert_nonnull(path);
  g_autoptr(GError) error = NULL;
  SpfChild *child = spf_child_spawn(path, &error);
  g_assert_no_error(error);
  return child;
}

static void test_evaluator_evaluates(void) {
  SpfChild *child = spawn_evaluator();
  Resolver resolver = {.child = child};
  SpfQuery query = sample_query;
  query.resolve = table_resolve;
  query.resolve_data = &resolver;
  g_autoptr(GError) error = NULL;
  g_autoptr(SpfOutcome) pass =
      spf_child_evaluate(child, &query, 0, NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpint(pass->result, ==, SPF_RES_PASS);
  g_assert_cmpstr(pass->identity, ==, "user@example.test");
  g_assert_cmpstr(pass->domain, ==, "example.test");
  /* The same process, another query: the same result as in-process. */
  query.ip = "198.51.100.1";
  g_autoptr(SpfOutcome) fail =
      spf_child_evaluate(child, &query, 0, NULL, &error);
  g_assert_no_error(error);
  query.resolve_data = &(Resolver){0};
  g_autoptr(SpfOutcome) direct = spf_evaluate(&query);
  g_assert_cmpint(fail->result, ==, SPF_RES_FAIL);
  g_assert_cmpstr(fail->explanation, ==, "198.51.100.1 is not allowed");
  g_assert_cmpstr(fail->explanation, ==, direct->explanation);
  g_assert_cmpstr(fail->comment, ==, direct->comment);
  g_assert_cmpuint(fail->lookups, ==, direct->lookups);
  g_assert_cmpuint(fail->voids, ==, direct->voids);
  g_assert_cmpuint(resolver.questions, >=, 3);
  /* At the end of its stream it exits on its own. */
  g_autofree char *how = spf_child_free(child);
  g_assert_cmpstr(how, ==, "exited with status 0");
}

static void test_evaluator_killed(void) {
  SpfChild *child = spawn_evaluator();
  Resolver resolver = {.child = child, .kill_on = "slow.example.test"};
  SpfQuery query = sample_query;
  query.ip = "198.51.100.1";
  query.resolve = table_resolve;
  query.resolve_data = &resolver;
  g_autoptr(GError) error = NULL;
  g_assert_null(spf_child_evaluate(child, &query, 0, NULL, &error));
  g_assert_nonnull(error);
  g_autofree char *how = spf_child_free(child);
  g_assert_cmpstr(how, ==, "killed by signal SIGKILL");
  /* Reaped: no child of ours is left. */
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

static void test_evaluator_deadline(void) {
  SpfChild *child = spawn_evaluator();
  SpfQuery query = sample_query;
  query.resolve = table_resolve;
  query.resolve_data = &(Resolver){.child = child};
  g_autoptr(GError) error = NULL;
  g_assert_null(spf_child_evaluate(child, &query, g_get_monotonic_time() - 1,
                                   NULL, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_free(spf_child_free(child));
}

static void test_evaluator_refuses_other_parents(void) {
  /* Started by hand (its parent is not the pid it is given): it exits. */
  const char *argv[] = {g_getenv("SPF_EVALUATOR"), "1", NULL};
  gint status = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL,
                             NULL, NULL, NULL, &status, &error));
  g_assert_false(g_spawn_check_wait_status(status, NULL));
}

/* --- The pool and the seccomp filter ----------------------------------- */

static SpfOutcome *pool_check(SpfPool *pool, SpfChild **child, const char *ip,
                              const char *sender, char **failure_r) {
  SpfQuery query = sample_query;
  query.ip = ip;
  query.sender = sender;
  query.resolve = table_resolve;
  query.resolve_data = &(Resolver){0};
  return spf_pool_evaluate(pool, child, &query, 0, NULL, failure_r);
}

static void test_pool_reuses_and_recycles(void) {
  g_autoptr(GError) error = NULL;
  SpfPool *pool = spf_pool_new(g_getenv("SPF_EVALUATOR"), 1, &error);
  g_assert_no_error(error);
  spf_pool_set_limits(pool, 2, 3, G_MAXINT64);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 1);
  /* Sequential checks share one process until it served 3. */
  GPid first = 0;
  for (guint i = 0; i < 4; i++) {
    SpfChild *child = NULL;
    g_autofree char *failure = NULL;
    g_autoptr(SpfOutcome) outcome =
        pool_check(pool, &child, "192.0.2.1", "user@example.test", &failure);
    g_assert_null(failure);
    g_assert_cmpint(outcome->result, ==, SPF_RES_PASS);
    if (i == 0)
      first = spf_child_get_pid(child);
    else if (i < 3)
      g_assert_cmpint(spf_child_get_pid(child), ==, first);
    else
      g_assert_cmpint(spf_child_get_pid(child), !=, first);
    spf_pool_release(pool, child);
  }
  /* Two at once: a second process, never more than the limit. */
  SpfChild *one = spf_pool_acquire(pool, &error);
  SpfChild *two = spf_pool_acquire(pool, &error);
  g_assert_no_error(error);
  g_assert_cmpint(spf_child_get_pid(one), !=, spf_child_get_pid(two));
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 2);
  spf_pool_release(pool, one);
  spf_pool_release(pool, two);
  spf_pool_free(pool);
  /* Every evaluator was reaped: no child of ours is left. */
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

static void test_pool_replaces_a_killed_evaluator(void) {
  g_autoptr(GError) error = NULL;
  SpfPool *pool = spf_pool_new(g_getenv("SPF_EVALUATOR"), 1, &error);
  g_assert_no_error(error);
  spf_pool_set_limits(pool, 1, 100, G_MAXINT64);
  SpfChild *child = spf_pool_acquire(pool, &error);
  Resolver resolver = {.child = child, .kill_on = "slow.example.test"};
  SpfQuery query = sample_query;
  query.ip = "198.51.100.1";
  query.resolve = table_resolve;
  query.resolve_data = &resolver;
  g_autofree char *failure = NULL;
  g_autoptr(SpfOutcome) killed =
      spf_pool_evaluate(pool, &child, &query, 0, NULL, &failure);
  g_assert_cmpint(killed->result, ==, SPF_RES_TEMPERROR);
  g_assert_cmpstr(killed->problem, ==, "SPF evaluator failure");
  g_assert_nonnull(strstr(failure, "killed by signal SIGKILL"));
  g_assert_null(child);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 0);
  /* The next check gets a fresh process. */
  g_autofree char *none = NULL;
  g_autoptr(SpfOutcome) pass =
      pool_check(pool, &child, "192.0.2.1", "user@example.test", &none);
  g_assert_cmpint(pass->result, ==, SPF_RES_PASS);
  spf_pool_release(pool, child);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

/* The seccomp filter: open, socket and execve after start-up kill the
 * evaluator (SIGSYS), and the check is a temperror. */
static void test_seccomp_kills_forbidden_calls(void) {
  static const char *const senders[] = {
      "open@example.test", "socket@example.test", "execve@example.test"};
  const char *path = g_getenv("SPF_EVALUATOR_FORBIDDEN");
  g_assert_nonnull(path);
  g_autoptr(GError) error = NULL;
  SpfPool *pool = spf_pool_new(path, 1, &error);
  g_assert_no_error(error);
  spf_pool_set_limits(pool, 1, 100, G_MAXINT64);
  for (gsize i = 0; i < G_N_ELEMENTS(senders); i++) {
    SpfChild *child = NULL;
    g_autofree char *failure = NULL;
    g_autoptr(SpfOutcome) outcome =
        pool_check(pool, &child, "192.0.2.1", senders[i], &failure);
    g_test_message("%s: %s", senders[i], failure);
    g_assert_cmpint(outcome->result, ==, SPF_RES_TEMPERROR);
    g_assert_cmpstr(outcome->problem, ==, "SPF evaluator failure");
    g_assert_nonnull(strstr(failure, "killed by signal SIGSYS"));
    g_assert_null(child);
  }
  /* Without a forbidden call, the same program serves checks. */
  SpfChild *child = NULL;
  g_autofree char *failure = NULL;
  g_autoptr(SpfOutcome) pass =
      pool_check(pool, &child, "192.0.2.1", "user@example.test", &failure);
  g_assert_cmpint(pass->result, ==, SPF_RES_PASS);
  spf_pool_release(pool, child);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  spf_library_init();
  g_test_add_func("/spf/wire/query", test_query_round_trip);
  g_test_add_func("/spf/wire/answer", test_answer_round_trip);
  g_test_add_func("/spf/wire/question-outcome",
                  test_question_and_outcome_round_trip);
  g_test_add_func("/spf/wire/truncated", test_truncated_and_trailing_refused);
  g_test_add_func("/spf/wire/malformed", test_malformed_refused);
  g_test_add_func("/spf/wire/framing", test_framing);
  g_test_add_func("/spf/child/evaluates", test_evaluator_evaluates);
  g_test_add_func("/spf/child/killed", test_evaluator_killed);
  g_test_add_func("/spf/child/deadline", test_evaluator_deadline);
  g_test_add_func("/spf/child/parent", test_evaluator_refuses_other_parents);
  g_test_add_func("/spf/pool/reuse-recycle", test_pool_reuses_and_recycles);
  g_test_add_func("/spf/pool/killed", test_pool_replaces_a_killed_evaluator);
  g_test_add_func("/spf/pool/seccomp", test_seccomp_kills_forbidden_calls);
  return g_test_run();
}
