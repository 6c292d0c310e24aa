/* test-spf-wire.c - unit tests of the plugin <-> pst-spf-eval messages
 * (spf-wire.c: round trips, and every malformed payload refused) and of
 * the evaluator process itself (spf-child.c with the built pst-spf-eval,
 * $SPF_EVALUATOR), driven from the main loop as in the daemon:
 * evaluations answered from a table, several in one process, a child
 * killed mid-evaluation, a missed deadline, its end on the loop; and of
 * the pool (spf-pool.c): reuse, recycling, a waiting check, one that died
 * or wrote unasked while idle, a killed or cancelled check, the seccomp
 * filter.
 */
#include <signal.h>
#include <stdlib.h>
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

static SpfKnown *known_new(PstDnsType type, const char *name,
                           const char *record) {
  SpfKnown *known = g_new0(SpfKnown, 1);
  known->type = type;
  known->name = g_strdup(name);
  known->answer = spf_answer_new(record != NULL ? PST_DNS_OK : PST_DNS_NODATA);
  if (record != NULL)
    g_ptr_array_add(known->answer->records, g_strdup(record));
  return known;
}

/* The answers at hand travel after the top answer; each prefix of the
 * message decodes only where an optional part ends; a wrong type or too
 * many are refused. */
static void test_query_with_known_answers(void) {
  g_autoptr(SpfAnswer) top = spf_answer_new(PST_DNS_OK);
  g_ptr_array_add(top->records, g_strdup("v=spf1 mx include:i.test -all"));
  g_autoptr(GPtrArray) known =
      g_ptr_array_new_with_free_func((GDestroyNotify)spf_known_free);
  g_ptr_array_add(known, known_new(PST_DNS_TYPE_MX, "example.test", "mx.test"));
  g_ptr_array_add(known, known_new(PST_DNS_TYPE_A, "mx.test", "192.0.2.1"));
  g_ptr_array_add(known, known_new(PST_DNS_TYPE_TXT, "i.test", NULL));
  SpfQuery query = sample_query;
  query.top_name = "example.test";
  query.top = top;
  query.known = known;
  g_autoptr(GBytes) payload = spf_wire_encode_query(&query);
  g_autoptr(SpfWireQuery) wire = spf_wire_decode_query(payload);
  g_assert_nonnull(wire);
  g_assert_cmpuint(wire->known->len, ==, 3);
  g_assert_true(wire->query.known == wire->known);
  g_autoptr(SpfAnswer) a =
      spf_wire_query_find_known(wire, PST_DNS_TYPE_A, "MX.test");
  g_assert_cmpstr(a->records->pdata[0], ==, "192.0.2.1");
  g_autoptr(SpfAnswer) nodata =
      spf_wire_query_find_known(wire, PST_DNS_TYPE_TXT, "i.test");
  g_assert_cmpint(nodata->status, ==, PST_DNS_NODATA);
  g_assert_null(spf_wire_query_find_known(wire, PST_DNS_TYPE_AAAA, "mx.test"));
  /* Prefixes: only the query alone, with its top answer, and whole. */
  g_autoptr(GBytes) bare = spf_wire_encode_query(&sample_query);
  SpfQuery top_only = query;
  top_only.known = NULL;
  g_autoptr(GBytes) with_top = spf_wire_encode_query(&top_only);
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(payload, &size);
  for (gsize length = 0; length < size; length++) {
    g_autoptr(GBytes) prefix = g_bytes_new(data, length);
    gboolean boundary = length == g_bytes_get_size(bare) ||
                        length == g_bytes_get_size(with_top);
    g_assert_true(decodes_query(prefix) == boundary);
  }
  /* A type libspf2 never asks; more than SPF_KNOWN_MAX. */
  ((SpfKnown *)known->pdata[1])->type = 99;
  g_autoptr(GBytes) odd = spf_wire_encode_query(&query);
  g_assert_false(decodes_query(odd));
  ((SpfKnown *)known->pdata[1])->type = PST_DNS_TYPE_A;
  g_autoptr(GByteArray) many = g_byte_array_new();
  g_byte_array_append(many, g_bytes_get_data(with_top, NULL),
                      (guint)g_bytes_get_size(with_top));
  guint8 count[4] = {0, 0, 0, SPF_KNOWN_MAX + 1};
  g_byte_array_append(many, count, 4);
  g_autoptr(GBytes) too_many = g_bytes_new(many->data, many->len);
  g_assert_false(decodes_query(too_many));
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

/* --- Framing in memory (the plugin's side) ----------------------------- */

static void test_frames_in_memory(void) {
  g_autoptr(GBytes) one = spf_wire_encode_query(&sample_query);
  g_autoptr(GBytes) two = spf_wire_encode_question(PST_DNS_TYPE_TXT, "x.test");
  g_autoptr(GByteArray) stream = g_byte_array_new();
  g_assert_true(spf_wire_frame_append(stream, one, NULL));
  g_assert_true(spf_wire_frame_append(stream, two, NULL));
  /* Fed one byte at a time: each message comes out whole, once. */
  g_autoptr(GByteArray) in = g_byte_array_new();
  GPtrArray *got =
      g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; i < stream->len; i++) {
    g_byte_array_append(in, stream->data + i, 1);
    GBytes *payload = NULL;
    g_assert_true(spf_wire_frame_take(in, &payload, NULL));
    if (payload != NULL)
      g_ptr_array_add(got, payload);
  }
  g_assert_cmpuint(got->len, ==, 2);
  g_assert_true(g_bytes_equal(got->pdata[0], one));
  g_assert_true(g_bytes_equal(got->pdata[1], two));
  g_assert_cmpuint(in->len, ==, 0);
  g_ptr_array_unref(got);
  /* A length of 0 or over the limit is refused at once. */
  static const guint8 *const bad[] = {(const guint8 *)"\0\0\0\0",
                                      (const guint8 *)"\x7f\0\0\0",
                                      (const guint8 *)"\0\x04\0\x01"};
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GByteArray) broken = g_byte_array_new();
    g_byte_array_append(broken, bad[i], 4);
    GBytes *payload = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_false(spf_wire_frame_take(broken, &payload, &error));
    g_assert_null(payload);
    g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  }
  g_autoptr(GBytes) empty = g_bytes_new(NULL, 0);
  g_autoptr(GError) error = NULL;
  g_assert_false(spf_wire_frame_append(stream, empty, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
}

/* --- The evaluator process, on the main loop ---------------------------- */

typedef struct {
  GPid kill_pid; /* killed when `kill_on` is asked */
  const char *kill_on;
  GCancellable *cancel; /* cancelled when `kill_on` is asked */
  guint questions;
} Resolver;

/* A resolver that kills nothing, for checks whose answers come later
 * (it outlives them). */
static Resolver plain_resolver;

static SpfAnswer *table_resolve(PstDnsType type, const char *name,
                                gpointer user_data) {
  Resolver *resolver = user_data;
  resolver->questions++;
  if (resolver->kill_on != NULL && strcmp(name, resolver->kill_on) == 0) {
    if (resolver->kill_pid > 0)
      kill(resolver->kill_pid, SIGKILL);
    if (resolver->cancel != NULL)
      g_cancellable_cancel(resolver->cancel);
  }
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

typedef struct {
  Resolver *resolver;
  PstDnsType type;
  char *name;
  SpfAnswerFunc done;
  gpointer done_data;
} TableLookup;

static gboolean table_lookup_answer(gpointer data) {
  TableLookup *lookup = data;
  lookup->done(table_resolve(lookup->type, lookup->name, lookup->resolver),
               lookup->done_data);
  g_free(lookup->name);
  g_free(lookup);
  return G_SOURCE_REMOVE;
}

/* An SpfLookupFunc over the table: answers from the main loop, as the
 * core's resolver does. */
static void table_lookup(PstDnsType type, const char *name,
                         GCancellable *cancellable, SpfAnswerFunc done,
                         gpointer done_data, gpointer user_data) {
  (void)cancellable;
  TableLookup *lookup = g_new0(TableLookup, 1);
  lookup->resolver = user_data;
  lookup->type = type;
  lookup->name = g_strdup(name);
  lookup->done = done;
  lookup->done_data = done_data;
  g_idle_add(table_lookup_answer, lookup);
}

typedef struct {
  gboolean done;
  SpfOutcome *outcome; /* owned */
  GError *error;       /* owned */
  char *failure;       /* owned */
} Result;

static void result_clear(Result *result) {
  spf_outcome_free(result->outcome);
  g_clear_error(&result->error);
  g_free(result->failure);
  memset(result, 0, sizeof *result);
}

static void on_child_done(SpfChild *child, SpfOutcome *outcome,
                          const GError *error, gpointer data) {
  (void)child;
  Result *result = data;
  result->done = TRUE;
  result->outcome = outcome;
  result->error = error != NULL ? g_error_copy(error) : NULL;
}

static void wait_for(const gboolean *flag) {
  while (!*flag)
    g_main_context_iteration(NULL, TRUE);
}

/* One check in `child`, run to its end. */
static void child_check(SpfChild *child, const SpfQuery *query, gint64 deadline,
                        Resolver *resolver, Result *result) {
  spf_child_evaluate(child, query, deadline, NULL, table_lookup, resolver,
                     on_child_done, result);
  g_assert_false(result->done);
  wait_for(&result->done);
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
  Resolver resolver = {0};
  SpfQuery query = sample_query;
  Result pass = {0};
  child_check(child, &query, G_MAXINT64, &resolver, &pass);
  g_assert_no_error(pass.error);
  g_assert_cmpint(pass.outcome->result, ==, SPF_RES_PASS);
  g_assert_cmpstr(pass.outcome->identity, ==, "user@example.test");
  g_assert_cmpstr(pass.outcome->domain, ==, "example.test");
  /* The same process, another query: the same result as in-process. */
  query.ip = "198.51.100.1";
  Result fail = {0};
  child_check(child, &query, G_MAXINT64, &resolver, &fail);
  g_assert_no_error(fail.error);
  query.resolve = table_resolve;
  query.resolve_data = &plain_resolver;
  g_autoptr(SpfOutcome) direct = spf_evaluate(&query);
  g_assert_cmpint(fail.outcome->result, ==, SPF_RES_FAIL);
  g_assert_cmpstr(fail.outcome->explanation, ==, "198.51.100.1 is not allowed");
  g_assert_cmpstr(fail.outcome->explanation, ==, direct->explanation);
  g_assert_cmpstr(fail.outcome->comment, ==, direct->comment);
  g_assert_cmpuint(fail.outcome->lookups, ==, direct->lookups);
  g_assert_cmpuint(fail.outcome->voids, ==, direct->voids);
  g_assert_cmpuint(resolver.questions, >=, 3);
  g_assert_cmpuint(spf_child_get_checks(child), ==, 2);
  /* At the end of its stream it exits on its own. */
  g_autofree char *how = spf_child_free(child);
  g_assert_cmpstr(how, ==, "exited with status 0");
  result_clear(&pass);
  result_clear(&fail);
}

static void test_evaluator_killed(void) {
  SpfChild *child = spawn_evaluator();
  Resolver resolver = {.kill_pid = spf_child_get_pid(child),
                       .kill_on = "slow.example.test"};
  SpfQuery query = sample_query;
  query.ip = "198.51.100.1";
  Result result = {0};
  child_check(child, &query, G_MAXINT64, &resolver, &result);
  g_assert_null(result.outcome);
  g_assert_nonnull(result.error);
  g_assert_false(spf_child_is_running(child));
  g_autofree char *how = spf_child_free(child);
  g_assert_cmpstr(how, ==, "killed by signal SIGKILL");
  /* Reaped: no child of ours is left. */
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
  result_clear(&result);
}

static void test_evaluator_deadline(void) {
  SpfChild *child = spawn_evaluator();
  Result result = {0};
  child_check(child, &sample_query, g_get_monotonic_time() - 1, &plain_resolver,
              &result);
  g_assert_error(result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_free(spf_child_free(child));
  result_clear(&result);
}

/* The ending of a child on the main loop reports how it ended. */
static void on_ended(GPid pid, const char *how, gpointer data) {
  (void)pid;
  char **how_r = data;
  *how_r = g_strdup(how);
}

static void test_evaluator_ends_on_the_loop(void) {
  SpfChild *child = spawn_evaluator();
  /* Past its start-up (slow under sanitizers): it serves a check. */
  Result result = {0};
  child_check(child, &sample_query, G_MAXINT64, &plain_resolver, &result);
  g_assert_no_error(result.error);
  result_clear(&result);
  char *how = NULL;
  spf_child_end(child, on_ended, &how);
  g_assert_null(how); /* never inside the call */
  while (how == NULL)
    g_main_context_iteration(NULL, TRUE);
  g_assert_cmpstr(how, ==, "exited with status 0");
  g_free(how);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
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

/* Our children (every evaluator is spawned by the main thread). */
static GArray *children(void) {
  g_autofree char *path =
      g_strdup_printf("/proc/self/task/%d/children", (int)getpid());
  g_autofree char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  GArray *pids = g_array_new(FALSE, FALSE, sizeof(GPid));
  g_auto(GStrv) words = g_strsplit(g_strstrip(text), " ", -1);
  for (guint i = 0; words[i] != NULL; i++)
    if (words[i][0] != '\0') {
      GPid pid = atoi(words[i]);
      g_array_append_val(pids, pid);
    }
  return pids;
}

/* Our only child, once it is the only one. */
static GPid only_child(void) {
  for (;;) {
    g_autoptr(GArray) pids = children();
    if (pids->len == 1)
      return g_array_index(pids, GPid, 0);
    g_main_context_iteration(NULL, TRUE);
  }
}

static void on_pool_done(SpfOutcome *outcome, const char *failure,
                         gpointer data) {
  Result *result = data;
  result->done = TRUE;
  result->outcome = outcome;
  result->failure = g_strdup(failure);
}

static void pool_start(SpfPool *pool, SpfQuery *query, const char *ip,
                       const char *sender, Resolver *resolver,
                       GCancellable *cancellable, Result *result) {
  *query = sample_query;
  query->ip = ip;
  query->sender = sender;
  spf_pool_evaluate(pool, query, G_MAXINT64, cancellable, table_lookup,
                    resolver, on_pool_done, result);
  g_assert_false(result->done); /* never inside the call */
}

static void pool_check(SpfPool *pool, const char *ip, const char *sender,
                       Resolver *resolver, Result *result) {
  SpfQuery query;
  pool_start(pool, &query, ip, sender, resolver, NULL, result);
  wait_for(&result->done);
}

static SpfPool *pool_new(const char *path, guint limit, guint max_checks) {
  g_autoptr(GError) error = NULL;
  SpfPool *pool = spf_pool_new(path, 1, &error);
  g_assert_no_error(error);
  spf_pool_set_limits(pool, limit, max_checks, G_MAXINT64);
  /* The first evaluator starts from the main loop. */
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 0);
  while (spf_pool_get_running(pool) == 0)
    g_main_context_iteration(NULL, TRUE);
  return pool;
}

static void test_pool_reuses_and_recycles(void) {
  SpfPool *pool = pool_new(g_getenv("SPF_EVALUATOR"), 2, 3);
  GPid first = only_child();
  /* Sequential checks share one process until it served 3. */
  for (guint i = 0; i < 4; i++) {
    Result result = {0};
    pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &result);
    g_assert_null(result.failure);
    g_assert_cmpint(result.outcome->result, ==, SPF_RES_PASS);
    if (i < 2)
      g_assert_cmpint(only_child(), ==, first);
    result_clear(&result);
  }
  /* The first was retired after its third check, and reaped. */
  GPid second = only_child();
  g_assert_cmpint(second, !=, first);
  g_assert_cmpint(kill(first, 0), ==, -1);
  /* Two at once: a second process, never more than the limit; a third
   * check waits for one of them. */
  spf_pool_set_limits(pool, 2, 100, G_MAXINT64);
  Result results[3] = {{0}};
  SpfQuery queries[3];
  for (guint i = 0; i < 3; i++)
    pool_start(pool, &queries[i], "192.0.2.1", "user@example.test",
               &plain_resolver, NULL, &results[i]);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 2);
  for (guint i = 0; i < 3; i++) {
    wait_for(&results[i].done);
    g_assert_cmpint(results[i].outcome->result, ==, SPF_RES_PASS);
    result_clear(&results[i]);
  }
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 2);
  spf_pool_free(pool);
  /* Every evaluator was reaped: no child of ours is left. */
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

static void test_pool_replaces_a_killed_evaluator(void) {
  SpfPool *pool = pool_new(g_getenv("SPF_EVALUATOR"), 1, 100);
  Resolver resolver = {.kill_pid = only_child(),
                       .kill_on = "slow.example.test"};
  Result killed = {0};
  pool_check(pool, "198.51.100.1", "user@example.test", &resolver, &killed);
  g_assert_cmpint(killed.outcome->result, ==, SPF_RES_TEMPERROR);
  g_assert_cmpstr(killed.outcome->problem, ==, "SPF evaluator failure");
  g_assert_nonnull(strstr(killed.failure, "killed by signal SIGKILL"));
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 0);
  /* Reaped before the check ended. */
  g_assert_cmpint(kill(resolver.kill_pid, 0), ==, -1);
  /* The next check gets a fresh process. */
  Result pass = {0};
  pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &pass);
  g_assert_cmpint(pass.outcome->result, ==, SPF_RES_PASS);
  g_assert_cmpint(only_child(), !=, resolver.kill_pid);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
  result_clear(&killed);
  result_clear(&pass);
}

/* A check asked from another's completion (a job's MAIL FROM after its
 * HELO) goes before the checks already waiting. */
typedef struct {
  SpfPool *pool;
  SpfQuery query;
  Result next;
  guint *order; /* completions so far */
  guint position;
} Chained;

static void on_next_done(SpfOutcome *outcome, const char *failure,
                         gpointer data) {
  Chained *chained = data;
  on_pool_done(outcome, failure, &chained->next);
  chained->position = ++*chained->order;
}

static void on_first_done(SpfOutcome *outcome, const char *failure,
                          gpointer data) {
  Chained *chained = data;
  spf_outcome_free(outcome);
  g_assert_null(failure);
  chained->query = sample_query;
  spf_pool_evaluate(chained->pool, &chained->query, G_MAXINT64, NULL,
                    table_lookup, &plain_resolver, on_next_done, chained);
}

static void on_waiting_done(SpfOutcome *outcome, const char *failure,
                            gpointer data) {
  Chained *waiting = data;
  on_pool_done(outcome, failure, &waiting->next);
  waiting->position = ++*waiting->order;
}

static void test_pool_next_check_first(void) {
  SpfPool *pool = pool_new(g_getenv("SPF_EVALUATOR"), 1, 100);
  guint order = 0;
  Chained first = {.pool = pool, .order = &order};
  Chained waiting = {.pool = pool, .order = &order};
  first.query = sample_query;
  waiting.query = sample_query;
  spf_pool_evaluate(pool, &first.query, G_MAXINT64, NULL, table_lookup,
                    &plain_resolver, on_first_done, &first);
  spf_pool_evaluate(pool, &waiting.query, G_MAXINT64, NULL, table_lookup,
                    &plain_resolver, on_waiting_done, &waiting);
  wait_for(&waiting.next.done);
  wait_for(&first.next.done);
  g_assert_cmpuint(first.position, ==, 1);
  g_assert_cmpuint(waiting.position, ==, 2);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 1);
  spf_pool_free(pool);
  result_clear(&first.next);
  result_clear(&waiting.next);
}

/* A check cancelled while its lookup is out (the client left): a
 * temperror at the answer, the evaluator retired cleanly. */
static void test_pool_cancelled_check(void) {
  SpfPool *pool = pool_new(g_getenv("SPF_EVALUATOR"), 1, 100);
  GPid evaluator = only_child();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Resolver resolver = {.kill_on = "slow.example.test", .cancel = cancellable};
  Result result = {0};
  SpfQuery query;
  pool_start(pool, &query, "198.51.100.1", "user@example.test", &resolver,
             cancellable, &result);
  wait_for(&result.done);
  g_assert_cmpint(result.outcome->result, ==, SPF_RES_TEMPERROR);
  g_assert_cmpstr(result.outcome->problem, ==, "check cancelled");
  g_assert_null(result.failure);
  while (kill(evaluator, 0) == 0)
    g_main_context_iteration(NULL, TRUE);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
  result_clear(&result);
}

/* The pool's warnings about evaluators that ended badly ("SPF evaluator
 * PID killed by signal SIGKILL") and that wrote unasked while idle are
 * counted here, not fatal. */
static guint evaluator_warnings;
static guint unasked_warnings;

static GLogWriterOutput count_evaluator_warnings(GLogLevelFlags level,
                                                 const GLogField *fields,
                                                 gsize count, gpointer data) {
  for (gsize i = 0; i < count; i++)
    if (strcmp(fields[i].key, "MESSAGE") == 0 &&
        strstr(fields[i].value, "SPF evaluator") != NULL &&
        strstr(fields[i].value, "killed by signal SIGKILL") != NULL) {
      evaluator_warnings++;
      return G_LOG_WRITER_HANDLED;
    } else if (strcmp(fields[i].key, "MESSAGE") == 0 &&
               strstr(fields[i].value, "SPF evaluator") != NULL &&
               strstr(fields[i].value, "wrote unasked while idle") != NULL) {
      unasked_warnings++;
      return G_LOG_WRITER_HANDLED;
    }
  return g_log_writer_default(level, fields, count, data);
}

/* Runs the main loop until our only child is not `gone`, and returns it;
 * with `none`, until we have no child at all. */
static GPid wait_only_child_but(GPid gone, gboolean none) {
  for (;;) {
    g_autoptr(GArray) pids = children();
    if (none && pids->len == 0)
      return 0;
    if (!none && pids->len == 1 && g_array_index(pids, GPid, 0) != gone)
      return g_array_index(pids, GPid, 0);
    g_main_context_iteration(NULL, TRUE);
  }
}

/* An evaluator that dies while idle is reaped and replaced from the main
 * loop at once, before any check; the replacement serves the next check.
 * One that dies again within a second is reaped, not replaced (the next
 * check starts one): a program that dies at start is not restarted in a
 * loop. */
static void test_pool_replaces_an_idle_evaluator_that_died(void) {
  SpfPool *pool = pool_new(g_getenv("SPF_EVALUATOR"), 2, 100);
  GPid victim = only_child();
  guint warnings = evaluator_warnings;
  gint64 start = g_get_monotonic_time(); /* the replacement comes later */
  g_assert_cmpint(kill(victim, SIGKILL), ==, 0);
  GPid replacement = wait_only_child_but(victim, FALSE);
  g_assert_cmpint(kill(victim, 0), ==, -1); /* reaped */
  while (evaluator_warnings < warnings + 1) /* reported from the loop */
    g_main_context_iteration(NULL, TRUE);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 1);
  Result pass = {0};
  pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &pass);
  g_assert_null(pass.failure);
  g_assert_cmpint(pass.outcome->result, ==, SPF_RES_PASS);
  g_assert_cmpint(only_child(), ==, replacement);
  result_clear(&pass);
  /* Again within a second: reaped, not replaced.  The pool decides when it
   * sees the hang-up, before the warning; the first replacement was made
   * after `start`.  So the decision is certainly within the second only
   * while less than a second has passed since `start` (a loaded machine,
   * an ASan build, may take longer: then a replacement is allowed). */
  g_assert_cmpint(kill(replacement, SIGKILL), ==, 0);
  while (evaluator_warnings < warnings + 2)
    g_main_context_iteration(NULL, TRUE);
  if (g_get_monotonic_time() - start < G_USEC_PER_SEC) {
    wait_only_child_but(0, TRUE);
    g_assert_cmpuint(spf_pool_get_running(pool), ==, 0);
  } else {
    g_test_message("over a second since the first replacement: another "
                   "replacement is allowed");
    g_assert_cmpuint(spf_pool_get_running(pool), <=, 1);
  }
  pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &pass);
  g_assert_cmpint(pass.outcome->result, ==, SPF_RES_PASS);
  result_clear(&pass);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

/* A real evaluator (the test build) that writes unasked 200 ms after it
 * answered a check from "unasked@": the pool ends it at once, with a
 * warning, reaps it and starts another before any check asks; the
 * replacement serves the next check. */
static void test_pool_ends_an_idle_evaluator_that_writes_unasked(void) {
  const char *path = g_getenv("SPF_EVALUATOR_FORBIDDEN");
  g_assert_nonnull(path);
  SpfPool *pool = pool_new(path, 2, 100);
  GPid speaker = only_child();
  guint warnings = unasked_warnings;
  Result result = {0};
  pool_check(pool, "192.0.2.1", "unasked@example.test", &plain_resolver,
             &result);
  g_assert_null(result.failure);
  g_assert_cmpint(result.outcome->result, ==, SPF_RES_PASS);
  result_clear(&result);
  g_assert_cmpint(only_child(), ==, speaker);
  g_assert_cmpuint(unasked_warnings, ==, warnings);
  /* Idle now; it speaks, and is replaced without a check asking. */
  GPid replacement = wait_only_child_but(speaker, FALSE);
  g_assert_cmpuint(unasked_warnings, ==, warnings + 1);
  while (kill(speaker, 0) == 0) /* reaped from the loop (100 ms grace) */
    g_main_context_iteration(NULL, TRUE);
  g_assert_cmpuint(spf_pool_get_running(pool), ==, 1);
  pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &result);
  g_assert_null(result.failure);
  g_assert_cmpint(result.outcome->result, ==, SPF_RES_PASS);
  g_assert_cmpint(only_child(), ==, replacement);
  result_clear(&result);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
}

/* The answer cache: answers kept for their TTL (handed out shared),
 * names compared without case, failures and TTL 0 never kept, a full
 * cache made room in. */
static void test_answer_cache(void) {
  SpfAnswerCache *cache = spf_answer_cache_new(3);
  gint64 now = 1000 * G_USEC_PER_SEC;
  g_autoptr(SpfAnswer) txt = spf_answer_new(PST_DNS_OK);
  g_ptr_array_add(txt->records, g_strdup("v=spf1 -all"));
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "Example.TEST", txt, 60, now);
  g_autoptr(SpfAnswer) hit =
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "example.test", now);
  g_assert_nonnull(hit);
  g_assert_cmpint(hit->status, ==, PST_DNS_OK);
  g_assert_cmpuint(hit->records->len, ==, 1);
  g_assert_cmpstr(g_ptr_array_index(hit->records, 0), ==, "v=spf1 -all");
  /* The kept answer is shared, not copied, and outlives its readers'
   * references; the stored one was copied in. */
  g_assert_true(hit != txt);
  SpfAnswer *again =
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "EXAMPLE.test", now);
  g_assert_true(again == hit);
  spf_answer_unref(again);
  g_assert_cmpstr(g_ptr_array_index(hit->records, 0), ==, "v=spf1 -all");
  g_assert_null(
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_A, "example.test", now));
  /* Expired after its TTL, and gone then. */
  g_assert_null(spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT,
                                        "example.test",
                                        now + 60 * G_USEC_PER_SEC));
  g_assert_cmpuint(spf_answer_cache_get_size(cache), ==, 0);
  /* Failures and answers without a TTL are never kept; NXDOMAIN is. */
  g_autoptr(SpfAnswer) temp = spf_answer_new(PST_DNS_TEMPFAIL);
  g_autoptr(SpfAnswer) nx = spf_answer_new(PST_DNS_NXDOMAIN);
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "t.test", temp, 60, now);
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "z.test", txt, 0, now);
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "nx.test", nx, 60, now);
  g_assert_cmpuint(spf_answer_cache_get_size(cache), ==, 1);
  g_autoptr(SpfAnswer) negative =
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "NX.test", now);
  g_assert_cmpint(negative->status, ==, PST_DNS_NXDOMAIN);
  /* Full: the expired entries go first, and if none had, all. */
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "a.test", txt, 1, now);
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "b.test", txt, 60, now);
  gint64 later = now + 2 * G_USEC_PER_SEC;
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "c.test", txt, 60, later);
  g_assert_cmpuint(spf_answer_cache_get_size(cache), ==, 3);
  g_assert_null(
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "a.test", later));
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "d.test", txt, 60, later);
  g_assert_cmpuint(spf_answer_cache_get_size(cache), ==, 1);
  g_autoptr(SpfAnswer) last =
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "d.test", later);
  g_assert_nonnull(last);
  /* Large answers are not kept. */
  g_autoptr(SpfAnswer) large = spf_answer_new(PST_DNS_OK);
  g_ptr_array_add(large->records, g_strnfill(9000, 'x'));
  spf_answer_cache_store(cache, PST_DNS_TYPE_TXT, "l.test", large, 60, later);
  g_assert_null(
      spf_answer_cache_lookup(cache, PST_DNS_TYPE_TXT, "l.test", later));
  spf_answer_cache_clear(cache);
  g_assert_cmpuint(spf_answer_cache_get_size(cache), ==, 0);
  spf_answer_cache_unref(cache);
}

/* The seccomp filter: open, socket and execve after start-up kill the
 * evaluator (SIGSYS), and the check is a temperror. */
static void test_seccomp_kills_forbidden_calls(void) {
  static const char *const senders[] = {
      "open@example.test", "socket@example.test", "execve@example.test"};
  const char *path = g_getenv("SPF_EVALUATOR_FORBIDDEN");
  g_assert_nonnull(path);
  SpfPool *pool = pool_new(path, 1, 100);
  for (gsize i = 0; i < G_N_ELEMENTS(senders); i++) {
    Result result = {0};
    pool_check(pool, "192.0.2.1", senders[i], &plain_resolver, &result);
    g_test_message("%s: %s", senders[i], result.failure);
    g_assert_cmpint(result.outcome->result, ==, SPF_RES_TEMPERROR);
    g_assert_cmpstr(result.outcome->problem, ==, "SPF evaluator failure");
    g_assert_nonnull(strstr(result.failure, "killed by signal SIGSYS"));
    result_clear(&result);
  }
  /* Without a forbidden call, the same program serves checks. */
  Result pass = {0};
  pool_check(pool, "192.0.2.1", "user@example.test", &plain_resolver, &pass);
  g_assert_cmpint(pass.outcome->result, ==, SPF_RES_PASS);
  spf_pool_free(pool);
  g_assert_cmpint(waitpid(-1, NULL, WNOHANG), ==, -1);
  result_clear(&pass);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_log_set_writer_func(count_evaluator_warnings, NULL, NULL);
  spf_library_init();
  g_test_add_func("/spf/wire/query", test_query_round_trip);
  g_test_add_func("/spf/wire/answer", test_answer_round_trip);
  g_test_add_func("/spf/wire/query-known", test_query_with_known_answers);
  g_test_add_func("/spf/wire/question-outcome",
                  test_question_and_outcome_round_trip);
  g_test_add_func("/spf/wire/truncated", test_truncated_and_trailing_refused);
  g_test_add_func("/spf/wire/malformed", test_malformed_refused);
  g_test_add_func("/spf/wire/framing", test_framing);
  g_test_add_func("/spf/wire/frames-in-memory", test_frames_in_memory);
  g_test_add_func("/spf/cache", test_answer_cache);
  g_test_add_func("/spf/child/evaluates", test_evaluator_evaluates);
  g_test_add_func("/spf/child/killed", test_evaluator_killed);
  g_test_add_func("/spf/child/deadline", test_evaluator_deadline);
  g_test_add_func("/spf/child/parent", test_evaluator_refuses_other_parents);
  g_test_add_func("/spf/child/end", test_evaluator_ends_on_the_loop);
  g_test_add_func("/spf/pool/reuse-recycle", test_pool_reuses_and_recycles);
  g_test_add_func("/spf/pool/killed", test_pool_replaces_a_killed_evaluator);
  g_test_add_func("/spf/pool/cancelled", test_pool_cancelled_check);
  g_test_add_func("/spf/pool/idle-died",
                  test_pool_replaces_an_idle_evaluator_that_died);
  g_test_add_func("/spf/pool/idle-unasked",
                  test_pool_ends_an_idle_evaluator_that_writes_unasked);
  g_test_add_func("/spf/pool/next-check-first", test_pool_next_check_first);
  g_test_add_func("/spf/pool/seccomp", test_seccomp_kills_forbidden_calls);
  return g_test_run();
}
