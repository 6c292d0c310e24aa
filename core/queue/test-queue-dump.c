/* test-queue-dump.c - tests pst-spool-dump, the JSON view of the spool
 * that the end-to-end tests parse.
 *
 * Paths: /queue/dump/...  A spool is filled through the spool API with
 * awkward values (quotes, control characters, invalid UTF-8, a header
 * override, a corrupt file), the built tool (PST_TEST_BUILDDIR/tests/
 * pst-spool-dump) prints it, and Debian's /usr/bin/python3 parses the
 * output with its json module and checks every field, as the end-to-end
 * tests will.
 */
#include <string.h>

#include <glib/gstdio.h>

#include "queue/spool.h"

#define DUMP_TOOL PST_TEST_BUILDDIR "/tests/pst-spool-dump"
#define PYTHON "/usr/bin/python3"

/* Checks the JSON of test_dump_json(); argv: ACTIVE_ID HOLD_ID BAD_ID. */
static const char check_script[] =
    "import base64, json, sys\n"
    "active, hold, bad = sys.argv[1:4]\n"
    "data = json.load(sys.stdin)\n"
    "assert [m['id'] for m in data] == sorted([active, bad]), data\n"
    "m = [m for m in data if m['id'] == active][0]\n"
    "e = [m for m in data if m['id'] == bad][0]\n"
    "assert 'corrupt' in e['error'] and e['queue'] == 'active', e\n"
    "raw = lambda s: s.encode('utf-8', 'surrogateescape')\n"
    "assert m['queue'] == 'active'\n"
    "assert raw(m['sender']) == b'q\"uote\\\\back@\\xff\\xfe.example', m\n"
    "r = m['recipients']\n"
    "assert [x['address'] for x in r] == ['a@b.example', 'c@d.example']\n"
    "assert r[0]['orcpt'] == 'rfc822;a@b.example' and r[1]['orcpt'] is None\n"
    "assert r[0]['notify'] == ['SUCCESS', 'FAILURE'] and r[1]['notify'] == []\n"
    "assert r[0]['results'] == \"{'relay.class': <'local'>}\", r\n"
    "assert r[1]['results'] is None\n"
    "assert m['envid'] == 'id\\r\\n\\x01\\t\\x7f', repr(m['envid'])\n"
    "assert m['ret'] == 'HDRS' and m['body'] == '8BITMIME'\n"
    "assert m['smtputf8'] is True and m['size_declared'] == "
    "18446744073709551615\n"
    "assert m['client_address'] == '::1' and m['client_hostname'] is None\n"
    "assert m['helo'] == 'h\\u00e9lo' and m['listener'] == 'submission'\n"
    "assert m['protocol'] == 'ESMTPSA' and m['auth_user'] == 'user'\n"
    "assert m['session_id'] == 'S42'\n"
    "assert abs(m['arrival_time'] - 1700000000.123456) < 1e-6\n"
    "assert m['results'] == \"{'auth.spf': <'pass'>}\", m['results']\n"
    "content = base64.b64decode(m['content_b64'])\n"
    "assert content == b'New: header\\r\\n\\r\\nbody \\x00\\xff\\r\\n', "
    "content\n";

static const char check_hold_script[] =
    "import json, sys\n"
    "data = json.load(sys.stdin)\n"
    "assert len(data) == 1 and data[0]['id'] == sys.argv[1], data\n"
    "m = data[0]\n"
    "assert m['queue'] == 'hold' and m['sender'] == ''\n"
    "assert m['envid'] is None and m['ret'] is None and m['body'] is None\n"
    "assert m['smtputf8'] is False and m['results'] is None\n";

static PstEnvelope *envelope_awkward(void) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup("q\"uote\\back@\xff\xfe.example");
  PstEnvelopeRecipient *r = pst_envelope_add_recipient(envelope, "a@b.example");
  r->orcpt = g_strdup("rfc822;a@b.example");
  r->notify = PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE;
  r->results = g_variant_ref_sink(
      g_variant_new_parsed("@a{sv} {'relay.class': <'local'>}"));
  pst_envelope_add_recipient(envelope, "c@d.example");
  envelope->envid = g_strdup("id\r\n\x01\t\x7f");
  envelope->ret = PST_DSN_RET_HDRS;
  envelope->body = PST_BODY_8BITMIME;
  envelope->smtputf8 = TRUE;
  envelope->size_declared = G_MAXUINT64;
  envelope->client_address = g_strdup("::1");
  envelope->helo = g_strdup("h\xc3\xa9lo");
  envelope->listener = g_strdup("submission");
  envelope->protocol = g_strdup("ESMTPSA");
  envelope->auth_user = g_strdup("user");
  envelope->session_id = g_strdup("S42");
  envelope->arrival_time = G_GINT64_CONSTANT(1700000000123456);
  envelope->results =
      g_variant_ref_sink(g_variant_new_parsed("@a{sv} {'auth.spf': <'pass'>}"));
  return envelope;
}

static PstEnvelope *envelope_plain(void) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup("");
  pst_envelope_add_recipient(envelope, "postmaster@example.org");
  envelope->client_address = g_strdup("127.0.0.1");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("SMTP");
  envelope->session_id = g_strdup("S1");
  return envelope;
}

static void commit_done(GObject *source, GAsyncResult *result,
                        gpointer user_data) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = user_data;
  g_assert_true(pst_spool_writer_commit_finish(writer, result, &error));
  g_assert_no_error(error);
  pst_spool_writer_free(writer);
}

/* Queues `content` and returns the id once the commit completed. */
static char *queue_message(PstSpool *spool, const PstEnvelope *envelope,
                           const char *content, gsize length, GBytes *override,
                           guint64 header_length, PstSpoolQueue queue) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = pst_spool_writer_new(spool, &error);
  g_assert_no_error(error);
  g_assert_true(pst_spool_writer_write(writer, content, length, &error));
  char *id = g_strdup(pst_spool_writer_get_id(writer));
  pst_spool_writer_commit_async(writer, envelope, override, header_length,
                                queue, commit_done, writer);
  g_autofree char *path = g_build_filename(
      pst_spool_get_directory(spool),
      queue == PST_SPOOL_QUEUE_HOLD ? "hold" : "queue", id, NULL);
  /* Bounded: the commit completes within a few iterations. */
  for (guint i = 0; i < 100000 && !g_file_test(path, G_FILE_TEST_EXISTS); i++)
    g_main_context_iteration(NULL, FALSE);
  while (g_main_context_pending(NULL))
    g_main_context_iteration(NULL, FALSE);
  g_assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
  return id;
}

/* Runs a command; returns its exit status, with its output. */
static gint run(const char *const *argv, const char *input, char **out_r,
                char **err_r) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) process = g_subprocess_newv(
      argv,
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
          G_SUBPROCESS_FLAGS_STDERR_PIPE,
      &error);
  g_assert_no_error(error);
  g_subprocess_communicate_utf8(process, input, NULL, out_r, err_r, &error);
  g_assert_no_error(error);
  return g_subprocess_get_exit_status(process);
}

/* Feeds `json` to the Python `script`; fails the test with its complaint. */
static void python_check(const char *script, const char *json,
                         const char *const *args) {
  GPtrArray *argv = g_ptr_array_new();
  g_ptr_array_add(argv, (gpointer)PYTHON);
  g_ptr_array_add(argv, (gpointer) "-c");
  g_ptr_array_add(argv, (gpointer)script);
  for (gsize i = 0; args[i] != NULL; i++)
    g_ptr_array_add(argv, (gpointer)args[i]);
  g_ptr_array_add(argv, NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  gint status = run((const char *const *)argv->pdata, json, &out, &err);
  g_ptr_array_free(argv, TRUE);
  if (status != 0)
    g_test_message("python: %s%s\njson: %s", out, err, json);
  g_assert_cmpint(status, ==, 0);
}

static void test_dump_json(void) {
  g_autoptr(GError) error = NULL;
  g_autofree char *base = g_dir_make_tmp("pst-dump-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *directory = g_build_filename(base, "spool", NULL);
  PstSpool *spool = pst_spool_open(directory, &error);
  g_assert_no_error(error);

  g_autoptr(PstEnvelope) awkward = envelope_awkward();
  static const char content[] = "Old: header\r\n\r\nbody \0\xff\r\n";
  g_autoptr(GBytes) override = g_bytes_new_static("New: header\r\n\r\n", 15);
  g_autofree char *active =
      queue_message(spool, awkward, content, sizeof content - 1, override, 15,
                    PST_SPOOL_QUEUE_ACTIVE);
  g_autoptr(PstEnvelope) plain = envelope_plain();
  g_autofree char *hold =
      queue_message(spool, plain, "x\r\n", 3, NULL, 0, PST_SPOOL_QUEUE_HOLD);
  const char *bad = "0000000000000BAD";
  g_autofree char *bad_path = g_build_filename(directory, "queue", bad, NULL);
  g_assert_true(g_file_set_contents(bad_path, "garbage", -1, &error));
  /* The daemon keeps running (and holding its lock) while tests dump. */

  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *dump_active[] = {DUMP_TOOL, directory, NULL};
  g_assert_cmpint(run(dump_active, NULL, &out, &err), ==, 0);
  const char *ids[] = {active, hold, bad, NULL};
  python_check(check_script, out, ids);
  g_clear_pointer(&out, g_free);
  g_clear_pointer(&err, g_free);

  const char *dump_hold[] = {DUMP_TOOL, directory, "--queue", "hold",
                             "--id",    hold,      NULL};
  g_assert_cmpint(run(dump_hold, NULL, &out, &err), ==, 0);
  const char *hold_ids[] = {hold, NULL};
  python_check(check_hold_script, out, hold_ids);

  pst_spool_close(spool);
  g_unlink(bad_path);
  g_autofree char *active_path =
      g_build_filename(directory, "queue", active, NULL);
  g_autofree char *hold_path = g_build_filename(directory, "hold", hold, NULL);
  g_unlink(active_path);
  g_unlink(hold_path);
  static const char *const dirs[] = {"tmp", "queue", "hold", "corrupt", "lock"};
  for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
    g_autofree char *path = g_build_filename(directory, dirs[i], NULL);
    g_remove(path);
  }
  g_rmdir(directory);
  g_rmdir(base);
}

static void test_dump_errors(void) {
  static const struct {
    const char *args[5];
    const char *stderr_has;
  } cases[] = {
      {{"/nonexistent/spool"}, "/nonexistent/spool"},
      {{"/", "--queue", "other"}, "--queue"},
      {{"/"}, "/queue"},
      {{}, "SPOOLDIR"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    const char *argv[6] = {DUMP_TOOL};
    for (gsize a = 0; a < 4 && cases[i].args[a] != NULL; a++)
      argv[a + 1] = cases[i].args[a];
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_assert_cmpint(run(argv, NULL, &out, &err), ==, 1);
    g_test_message("%s", err);
    g_assert_nonnull(strstr(err, cases[i].stderr_has));
    g_assert_cmpstr(out, ==, "");
  }
}

static void test_dump_missing_id(void) {
  g_autoptr(GError) error = NULL;
  g_autofree char *base = g_dir_make_tmp("pst-dump-XXXXXX", &error);
  PstSpool *spool = pst_spool_open(base, &error);
  g_assert_no_error(error);
  const char *argv[] = {DUMP_TOOL, base, "--id", "0000000000000000", NULL};
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_assert_cmpint(run(argv, NULL, &out, &err), ==, 1);
  g_assert_nonnull(strstr(err, "0000000000000000"));
  pst_spool_close(spool);
  static const char *const names[] = {"tmp", "queue", "hold", "corrupt",
                                      "lock"};
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *path = g_build_filename(base, names[i], NULL);
    g_remove(path);
  }
  g_rmdir(base);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/queue/dump/json", test_dump_json);
  g_test_add_func("/queue/dump/errors", test_dump_errors);
  g_test_add_func("/queue/dump/missing-id", test_dump_missing_id);
  return g_test_run();
}
