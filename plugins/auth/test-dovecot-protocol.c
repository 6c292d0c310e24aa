/* test-dovecot-protocol.c - unit tests of dovecot-protocol.c: the lines a
 * real Dovecot 2.3 sends (handshake, CONT, OK, FAIL), every malformed line
 * refused, tab-escaping both ways, strict base64, and the lines we send.
 */
#include <string.h>

#include "dovecot-protocol.h"

static DovecotReply *parse(const char *line) {
  return dovecot_reply_parse(line, strlen(line), NULL);
}

/* --- Handshake -------------------------------------------------------------
 */

static void test_handshake_lines(void) {
  g_autoptr(DovecotReply) version = parse("VERSION\t1\t2");
  g_assert_cmpint(version->kind, ==, DOVECOT_REPLY_VERSION);
  g_assert_cmpuint(version->major, ==, 1);
  g_assert_cmpuint(version->minor, ==, 2);

  g_autoptr(DovecotReply) plain = parse("MECH\tPLAIN\tplaintext");
  g_assert_cmpint(plain->kind, ==, DOVECOT_REPLY_MECH);
  g_assert_cmpstr(plain->mechanism, ==, "PLAIN");
  g_assert_cmpuint(plain->mech_flags, ==, DOVECOT_MECH_PLAINTEXT);

  g_autoptr(DovecotReply) scram =
      parse("MECH\tSCRAM-SHA-256\tmutual-auth\tfuture-flag");
  g_assert_cmpstr(scram->mechanism, ==, "SCRAM-SHA-256");
  g_assert_cmpuint(scram->mech_flags, ==, DOVECOT_MECH_MUTUAL_AUTH);

  g_autoptr(DovecotReply) anonymous = parse("MECH\tanonymous\tanonymous");
  g_assert_cmpstr(anonymous->mechanism, ==, "ANONYMOUS");
  g_assert_cmpuint(anonymous->mech_flags, ==, DOVECOT_MECH_ANONYMOUS);

  g_autoptr(DovecotReply) spid = parse("SPID\t4242");
  g_assert_cmpint(spid->kind, ==, DOVECOT_REPLY_SPID);
  g_assert_cmpuint(spid->number, ==, 4242);
  g_autoptr(DovecotReply) cuid = parse("CUID\t7");
  g_assert_cmpint(cuid->kind, ==, DOVECOT_REPLY_CUID);
  g_autoptr(DovecotReply) cookie =
      parse("COOKIE\t0123456789abcdef0123456789abcdef");
  g_assert_cmpint(cookie->kind, ==, DOVECOT_REPLY_COOKIE);
  g_autoptr(DovecotReply) done = parse("DONE");
  g_assert_cmpint(done->kind, ==, DOVECOT_REPLY_DONE);
  g_autoptr(DovecotReply) unknown = parse("NEWTHING\tx");
  g_assert_cmpint(unknown->kind, ==, DOVECOT_REPLY_UNKNOWN);
  g_assert_cmpstr(unknown->command, ==, "NEWTHING");
}

/* --- Answers ---------------------------------------------------------------
 */

static void test_cont(void) {
  g_autoptr(DovecotReply) reply = parse("CONT\t17\tVXNlcm5hbWU6");
  g_assert_cmpint(reply->kind, ==, DOVECOT_REPLY_CONT);
  g_assert_cmpuint(reply->id, ==, 17);
  g_assert_cmpmem(reply->data, reply->data_length, "Username:", 9);
  g_autoptr(DovecotReply) empty = parse("CONT\t4294967295\t");
  g_assert_cmpuint(empty->id, ==, 4294967295u);
  g_assert_nonnull(empty->data);
  g_assert_cmpuint(empty->data_length, ==, 0);
}

static void test_ok(void) {
  g_autoptr(DovecotReply) reply =
      parse("OK\t3\tuser=alice@example.org\toriginal_user=alice\tnew=1");
  g_assert_cmpint(reply->kind, ==, DOVECOT_REPLY_OK);
  g_assert_cmpuint(reply->id, ==, 3);
  g_assert_cmpstr(reply->user, ==, "alice@example.org");
  /* Escaped values come back unescaped (\001 before an ordinary character
   * stands for that character). */
  g_autoptr(DovecotReply) escaped = parse("OK\t3\tuser=j\001\xc3\xbcrgen");
  g_assert_cmpstr(escaped->user, ==, "j\xc3\xbcrgen");
}

static void test_fail(void) {
  g_autoptr(DovecotReply) wrong =
      parse("FAIL\t5\tuser=alice\treason=Password mismatch");
  g_assert_cmpint(wrong->kind, ==, DOVECOT_REPLY_FAIL);
  g_assert_cmpuint(wrong->id, ==, 5);
  g_assert_cmpstr(wrong->user, ==, "alice");
  g_assert_cmpstr(wrong->reason, ==, "Password mismatch");
  g_assert_false(wrong->temporary);

  g_autoptr(DovecotReply) bare = parse("FAIL\t6");
  g_assert_null(bare->user);
  g_assert_null(bare->reason);
  g_assert_false(bare->temporary);

  g_autoptr(DovecotReply) temp = parse("FAIL\t7\ttemp");
  g_assert_true(temp->temporary);
  g_autoptr(DovecotReply) code = parse("FAIL\t8\tcode=temp_fail");
  g_assert_true(code->temporary);
  g_assert_cmpstr(code->code, ==, "temp_fail");

  /* A reason with control characters is made printable. */
  g_autoptr(DovecotReply) noisy = parse("FAIL\t9\treason=a\001nb\033c");
  g_assert_cmpstr(noisy->reason, ==, "a?b?c");
}

/* --- Malformed --------------------------------------------------------------
 */

static void test_malformed(void) {
  static const char *const lines[] = {
      "",
      "\tVERSION",
      "VERSION\t1",
      "VERSION\tone\ttwo",
      "VERSION\t-1\t2",
      "MECH",
      "MECH\t",
      "MECH\tPLAIN WITH SPACE",
      "MECH\tAVERYLONGMECHANISMNAMEXX",
      "SPID\tx",
      "CUID",
      "OK",
      "OK\t0\tuser=a",
      "OK\t4294967296\tuser=a",
      "OK\t+3\tuser=a",
      "OK\t3",
      "OK\t3\tuser=",
      "OK\t3\tuser=a\001tb",
      "OK\t3\tuser=\xff\xfe",
      "OK\t3\tuser=a\001\060b",
      "OK\t3\tuser=a\0011b",
      "CONT\t3",
      "CONT\t3\tnot base64!",
      "CONT\t3\tQUJD=",
      "CONT\t3\tQU=J",
      "CONT\t3\t=QUJ",
      "CONT\tx\tQUJD",
      "FAIL",
      "FAIL\tx",
  };
  for (guint i = 0; i < G_N_ELEMENTS(lines); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(DovecotReply) reply =
        dovecot_reply_parse(lines[i], strlen(lines[i]), &error);
    if (reply != NULL)
      g_error("accepted: \"%s\"", lines[i]);
    g_assert_nonnull(error);
  }
  /* A NUL inside the line, and an overlong line. */
  g_autoptr(GError) error = NULL;
  g_assert_null(dovecot_reply_parse("OK\t1\0\tuser=a", 12, &error));
  g_clear_error(&error);
  g_autofree char *long_line = g_strnfill(DOVECOT_MAX_LINE + 1, 'A');
  g_assert_null(dovecot_reply_parse(long_line, DOVECOT_MAX_LINE + 1, &error));
}

/* --- Encodings ---------------------------------------------------------------
 */

static void test_tab_escape_round_trip(void) {
  const char *text = "a\tb\nc\rd\001e";
  g_autoptr(GString) escaped = g_string_new(NULL);
  dovecot_tab_escape(escaped, text);
  g_assert_cmpstr(escaped->str, ==, "a\001tb\001nc\001rd\0011e");
  g_assert_null(strchr(escaped->str, '\t'));
  gsize length = 0;
  g_autofree char *back =
      dovecot_tab_unescape(escaped->str, escaped->len, &length);
  g_assert_cmpmem(back, length, text, strlen(text));
  /* \0010 is a NUL; an unknown escape stands for itself; a trailing
   * \001 is kept. */
  g_autofree char *nul = dovecot_tab_unescape("x\0010y\001zq\001", 8, &length);
  g_assert_cmpmem(nul, length, "x\0yzq\001", 6);
}

static void test_base64(void) {
  gsize length = 0;
  g_autofree guint8 *abc = dovecot_base64_decode("QUJD", &length);
  g_assert_cmpmem(abc, length, "ABC", 3);
  g_autofree guint8 *ab = dovecot_base64_decode("QUI=", &length);
  g_assert_cmpmem(ab, length, "AB", 2);
  g_autofree guint8 *a = dovecot_base64_decode("QQ==", &length);
  g_assert_cmpmem(a, length, "A", 1);
  g_autofree guint8 *empty = dovecot_base64_decode("", &length);
  g_assert_nonnull(empty);
  g_assert_cmpuint(length, ==, 0);
  static const char *const bad[] = {"Q",      "QUJ",  "Q===", "QU I",
                                    "QUJD\n", "QU=D", "====", "QUJD===="};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
    g_assert_null(dovecot_base64_decode(bad[i], &length));
}

/* --- What we send ------------------------------------------------------------
 */

static void test_requests(void) {
  g_autofree char *hello = dovecot_request_handshake(123);
  g_assert_cmpstr(hello, ==, "VERSION\t1\t2\nCPID\t123\n");

  static const guint8 plain[] = "\0alice\0secret";
  DovecotAuthRequest request = {
      .id = 9,
      .mechanism = "PLAIN",
      .service = "smtp",
      .secured = TRUE,
      .session = "sabc\tdef",
      .local_ip = "127.0.0.1",
      .local_port = 587,
      .remote_ip = "::1",
      .remote_port = 40000,
      .has_response = TRUE,
      .response = plain,
      .length = sizeof plain - 1,
  };
  g_autofree char *auth = dovecot_request_auth(&request);
  g_assert_cmpstr(auth, ==,
                  "AUTH\t9\tPLAIN\tservice=smtp\tsecured\tsession=sabc\001tdef"
                  "\tlip=127.0.0.1\trip=::1\tlport=587\trport=40000"
                  "\tresp=AGFsaWNlAHNlY3JldA==\n");

  /* No TLS, no addresses, an empty initial response ("AUTH PLAIN ="). */
  DovecotAuthRequest bare = {
      .id = 1, .mechanism = "LOGIN", .service = "smtp", .has_response = TRUE};
  g_autofree char *bare_line = dovecot_request_auth(&bare);
  g_assert_cmpstr(bare_line, ==, "AUTH\t1\tLOGIN\tservice=smtp\tresp=\n");
  bare.has_response = FALSE;
  g_autofree char *no_response = dovecot_request_auth(&bare);
  g_assert_cmpstr(no_response, ==, "AUTH\t1\tLOGIN\tservice=smtp\n");

  g_autofree char *cont = dovecot_request_cont(9, (const guint8 *)"bob", 3);
  g_assert_cmpstr(cont, ==, "CONT\t9\tYm9i\n");
  g_autofree char *empty = dovecot_request_cont(9, NULL, 0);
  g_assert_cmpstr(empty, ==, "CONT\t9\t\n");
  g_autofree char *cancel = dovecot_request_cancel(9);
  g_assert_cmpstr(cancel, ==, "CANCEL\t9\n");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/auth/dovecot/handshake", test_handshake_lines);
  g_test_add_func("/auth/dovecot/cont", test_cont);
  g_test_add_func("/auth/dovecot/ok", test_ok);
  g_test_add_func("/auth/dovecot/fail", test_fail);
  g_test_add_func("/auth/dovecot/malformed", test_malformed);
  g_test_add_func("/auth/dovecot/tab-escape", test_tab_escape_round_trip);
  g_test_add_func("/auth/dovecot/base64", test_base64);
  g_test_add_func("/auth/dovecot/requests", test_requests);
  return g_test_run();
}
