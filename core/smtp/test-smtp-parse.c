/* test-smtp-parse.c - tables for the command, path and parameter parsers.
 *
 * Each table row is one GTest case (/smtp/command/..., /smtp/path/...,
 * /smtp/mail-params/..., /smtp/rcpt-params/..., /smtp/xtext/...,
 * /smtp/domain/...), so a failure names the row.  Most rows are hostile:
 * every limit at N and N+1, every way to smuggle a second '@', a bare CR or
 * a control octet into an address, and the RFC 6531 UTF-8 corner cases.
 * Limits that need long strings are built by the *_limits tests.
 */
#include <string.h>

#include "smtp/smtp-address.h"
#include "smtp/smtp-parse.h"

#define OK NULL
#define SYNTAX_M (&pst_smtp_reply_mail_syntax)
#define SYNTAX_R (&pst_smtp_reply_rcpt_syntax)
#define BAD (&pst_smtp_reply_bad_address)
#define LONG (&pst_smtp_reply_address_too_long)
#define UTF8 (&pst_smtp_reply_utf8_required)
#define UNSUPPORTED (&pst_smtp_reply_unsupported_param)
#define BAD_VALUE (&pst_smtp_reply_bad_param_value)
#define SIZE_EXCEEDED (&pst_smtp_reply_size_exceeded)

static const char *reply_name(const PstSmtpReply *reply) {
  return reply == NULL ? "OK" : reply->text;
}

/* --- Commands ------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *line;
  gssize length; /* -1: strlen */
  const PstSmtpReply *reply;
  PstSmtpVerb verb;
  const char *argument;
} CommandCase;

/* clang-format off */
static const CommandCase command_cases[] = {
    {"helo", "HELO example.org", -1, OK, PST_SMTP_VERB_HELO, "example.org"},
    {"helo-lower-spaces", "helo   example.org   ", -1, OK, PST_SMTP_VERB_HELO,
     "example.org"},
    {"ehlo-bare", "EHLO", -1, OK, PST_SMTP_VERB_EHLO, ""},
    {"ehlo-trailing-space", "EHLO ", -1, OK, PST_SMTP_VERB_EHLO, ""},
    {"mail", "MAIL FROM:<a@b.example>", -1, OK, PST_SMTP_VERB_MAIL,
     "FROM:<a@b.example>"},
    {"mail-mixed-case", "mAiL from:<a@b.example> SIZE=1", -1, OK,
     PST_SMTP_VERB_MAIL, "from:<a@b.example> SIZE=1"},
    {"rcpt", "RcPt TO:<x@y.example>", -1, OK, PST_SMTP_VERB_RCPT,
     "TO:<x@y.example>"},
    {"data", "DATA", -1, OK, PST_SMTP_VERB_DATA, ""},
    {"bdat", "BDAT 100 LAST", -1, OK, PST_SMTP_VERB_BDAT, "100 LAST"},
    {"rset", "RSET", -1, OK, PST_SMTP_VERB_RSET, ""},
    {"noop-arg", "NOOP hello there", -1, OK, PST_SMTP_VERB_NOOP,
     "hello there"},
    {"quit", "quit", -1, OK, PST_SMTP_VERB_QUIT, ""},
    {"vrfy", "VRFY root", -1, OK, PST_SMTP_VERB_VRFY, "root"},
    {"expn", "EXPN list", -1, OK, PST_SMTP_VERB_EXPN, "list"},
    {"help", "HELP", -1, OK, PST_SMTP_VERB_HELP, ""},
    {"starttls", "STARTTLS", -1, OK, PST_SMTP_VERB_STARTTLS, ""},
    {"auth", "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", -1, OK, PST_SMTP_VERB_AUTH,
     "PLAIN dGVzdAB0ZXN0AHRlc3Q="},
    {"xclient", "XCLIENT ADDR=192.0.2.1", -1, OK, PST_SMTP_VERB_XCLIENT,
     "ADDR=192.0.2.1"},
    {"empty", "", -1, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"spaces-only", "   ", -1, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"leading-space", " HELO x", -1, OK, PST_SMTP_VERB_UNKNOWN, "HELO x"},
    {"unknown", "FOO bar", -1, OK, PST_SMTP_VERB_UNKNOWN, "bar"},
    {"verb-prefix", "MAILX", -1, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"verb-too-short", "MAI", -1, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"tab-is-not-a-separator", "MAIL\tFROM:<a@b>", -1, OK,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"argument-keeps-inner-tab", "NOOP a\tb\t", -1, OK, PST_SMTP_VERB_NOOP,
     "a\tb\t"},
    {"argument-utf8", "MAIL FROM:<pel\xc3\xa9@x.example>", -1, OK,
     PST_SMTP_VERB_MAIL, "FROM:<pel\xc3\xa9@x.example>"},
    {"http-get", "GET / HTTP/1.1", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/ HTTP/1.1"},
    {"http-get-lower", "get / http/1.0", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/ http/1.0"},
    {"http-post", "POST /cgi HTTP/1.0", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/cgi HTTP/1.0"},
    {"http-connect", "CONNECT mx.example:25 HTTP/1.1", -1, OK,
     PST_SMTP_VERB_NOT_SMTP, "mx.example:25 HTTP/1.1"},
    {"http-head", "HEAD / HTTP/1.1", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/ HTTP/1.1"},
    {"http-put", "PUT /x HTTP/1.1", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/x HTTP/1.1"},
    {"http-options", "OPTIONS * HTTP/1.1", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "* HTTP/1.1"},
    {"http-delete", "DELETE /x HTTP/1.1", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "/x HTTP/1.1"},
    {"http2-preface", "PRI * HTTP/2.0", -1, OK, PST_SMTP_VERB_NOT_SMTP,
     "* HTTP/2.0"},
    {"tls-client-hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11,
     OK, PST_SMTP_VERB_NOT_SMTP, ""},
    {"tls-two-octets", "\x16\x03", 2, OK, PST_SMTP_VERB_NOT_SMTP, ""},
    {"tls-one-octet", "\x16", 1, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"tls-wrong-version", "\x16\x02", 2, OK, PST_SMTP_VERB_UNKNOWN, ""},
    {"nul-in-argument", "HELO a\0b", 8, &pst_smtp_reply_nul_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"nul-first", "\0HELO", 5, &pst_smtp_reply_nul_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"nul-last", "HELO a\0", 7, &pst_smtp_reply_nul_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"bare-cr", "HELO a\rb", -1, &pst_smtp_reply_bare_cr_lf_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"bare-lf", "HELO a\nb", -1, &pst_smtp_reply_bare_cr_lf_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"trailing-cr", "QUIT\r", -1, &pst_smtp_reply_bare_cr_lf_in_command,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"smuggled-command", "NOOP\r\nRSET", -1,
     &pst_smtp_reply_bare_cr_lf_in_command, PST_SMTP_VERB_UNKNOWN, ""},
    {"non-ascii-verb", "H\xc3\x89LO x", -1, &pst_smtp_reply_unrecognized,
     PST_SMTP_VERB_UNKNOWN, ""},
    {"high-octet-verb", "\xff", -1, &pst_smtp_reply_unrecognized,
     PST_SMTP_VERB_UNKNOWN, ""},
};
/* clang-format on */

static void test_command(gconstpointer data) {
  const CommandCase *c = data;
  gsize length = c->length < 0 ? strlen(c->line) : (gsize)c->length;
  PstSmtpCommand command;
  const PstSmtpReply *reply = pst_smtp_command_parse(c->line, length, &command);
  g_assert_cmpstr(reply_name(reply), ==, reply_name(c->reply));
  g_assert_true(reply == c->reply);
  if (reply != NULL)
    return;
  g_assert_cmpint(command.verb, ==, c->verb);
  g_autofree char *argument =
      g_strndup(command.argument, command.argument_length);
  g_assert_cmpstr(argument, ==, c->argument);
  g_assert_true(command.argument >= c->line &&
                command.argument + command.argument_length <= c->line + length);
}

/* 510 octets is the longest line without CRLF; 511 is refused. */
static void test_command_limits(void) {
  PstSmtpCommand command;
  for (gsize length = 500; length <= 520; length++) {
    g_autofree char *line = g_strnfill(length, 'x');
    memcpy(line, "NOOP ", 5);
    const PstSmtpReply *reply = pst_smtp_command_parse(line, length, &command);
    if (length <= PST_SMTP_MAX_COMMAND_LINE - 2) {
      g_assert_null(reply);
      g_assert_cmpint(command.verb, ==, PST_SMTP_VERB_NOOP);
      g_assert_cmpuint(command.argument_length, ==, length - 5);
    } else {
      g_assert_true(reply == &pst_smtp_reply_line_too_long);
    }
  }
  /* Even a long ClientHello is recognized (it is binary and large). */
  g_autofree char *hello = g_malloc0(600);
  hello[0] = 0x16;
  hello[1] = 0x03;
  g_assert_null(pst_smtp_command_parse(hello, 600, &command));
  g_assert_cmpint(command.verb, ==, PST_SMTP_VERB_NOT_SMTP);
  g_assert_null(pst_smtp_command_parse(NULL, 0, &command));
  g_assert_cmpint(command.verb, ==, PST_SMTP_VERB_UNKNOWN);
}

static void test_verb_to_string(void) {
  g_assert_cmpstr(pst_smtp_verb_to_string(PST_SMTP_VERB_MAIL), ==, "MAIL");
  g_assert_cmpstr(pst_smtp_verb_to_string(PST_SMTP_VERB_STARTTLS), ==,
                  "STARTTLS");
  g_assert_cmpstr(pst_smtp_verb_to_string(PST_SMTP_VERB_UNKNOWN), ==,
                  "UNKNOWN");
  g_assert_cmpstr(pst_smtp_verb_to_string(PST_SMTP_VERB_NOT_SMTP), ==,
                  "NOT-SMTP");
  /* Every verb round-trips through its name. */
  for (int v = PST_SMTP_VERB_HELO; v < PST_SMTP_VERB_NOT_SMTP; v++) {
    const char *name = pst_smtp_verb_to_string(v);
    PstSmtpCommand command;
    g_assert_null(pst_smtp_command_parse(name, strlen(name), &command));
    g_assert_cmpint(command.verb, ==, v);
  }
}

/* --- Paths --------------------------------------------------------------- */

typedef struct {
  const char *name;
  PstSmtpPathKind kind;
  gboolean allow_utf8;
  const char *argument;
  const PstSmtpReply *reply;
  const char *address; /* expected on success */
  const char *local_part;
  const char *domain; /* NULL for "" and postmaster */
  gboolean source_route;
  gboolean utf8;
  const char *params; /* "K=V K2" as rebuilt from the array */
} PathCase;

#define M PST_SMTP_PATH_MAIL
#define R PST_SMTP_PATH_RCPT

/* clang-format off */
static const PathCase path_cases[] = {
    /* Framing. */
    {"plain", M, FALSE, "FROM:<user@example.org>", OK, "user@example.org",
     "user", "example.org", FALSE, FALSE, ""},
    {"lower-prefix", M, FALSE, "from:<user@example.org>", OK,
     "user@example.org", "user", "example.org", FALSE, FALSE, ""},
    {"space-after-colon", M, FALSE, "FROM: <user@example.org>", OK,
     "user@example.org", "user", "example.org", FALSE, FALSE, ""},
    {"spaces-after-colon", M, FALSE, "FROM:   <a@b.example>", OK,
     "a@b.example", "a", "b.example", FALSE, FALSE, ""},
    {"null-sender", M, FALSE, "FROM:<>", OK, "", "", NULL, FALSE, FALSE, ""},
    {"null-sender-params", M, FALSE, "FROM:<> SIZE=100 BODY=8BITMIME", OK, "",
     "", NULL, FALSE, FALSE, "SIZE=100 BODY=8BITMIME"},
    {"no-brackets", M, FALSE, "FROM:user@example.org", SYNTAX_M},
    {"no-close", M, FALSE, "FROM:<user@example.org", SYNTAX_M},
    {"no-colon", M, FALSE, "FROM <user@example.org>", SYNTAX_M},
    {"space-before-colon", M, FALSE, "FROM :<user@example.org>", SYNTAX_M},
    {"wrong-prefix", M, FALSE, "FRM:<a@b.example>", SYNTAX_M},
    {"rcpt-prefix-on-mail", M, FALSE, "TO:<a@b.example>", SYNTAX_M},
    {"mail-prefix-on-rcpt", R, FALSE, "FROM:<a@b.example>", SYNTAX_R},
    {"empty", M, FALSE, "", SYNTAX_M},
    {"prefix-only", M, FALSE, "FROM:", SYNTAX_M},
    {"prefix-spaces-only", M, FALSE, "FROM:   ", SYNTAX_M},
    {"tab-after-colon", M, FALSE, "FROM:\t<a@b.example>", SYNTAX_M},
    {"glued-after-bracket", M, FALSE, "FROM:<a@b.example>x", SYNTAX_M},
    {"glued-param", M, FALSE, "FROM:<a@b.example>SIZE=1", SYNTAX_M},
    {"two-paths", M, FALSE, "FROM:<a@b.example><c@d.example>", SYNTAX_M},
    /* Parameters. */
    {"params", M, FALSE, "FROM:<a@b.example>  X-Y=1   Z  ", OK, "a@b.example",
     "a", "b.example", FALSE, FALSE, "X-Y=1 Z"},
    {"params-upper-cased", M, FALSE, "FROM:<a@b.example> size=1 body=7bit", OK,
     "a@b.example", "a", "b.example", FALSE, FALSE, "SIZE=1 BODY=7bit"},
    {"param-duplicate", M, FALSE, "FROM:<a@b.example> SIZE=1 SIZE=2",
     SYNTAX_M},
    {"param-duplicate-case", M, FALSE, "FROM:<a@b.example> size=1 SIZE=1",
     SYNTAX_M},
    {"param-no-keyword", M, FALSE, "FROM:<a@b.example> =1", SYNTAX_M},
    {"param-leading-hyphen", M, FALSE, "FROM:<a@b.example> -X=1", SYNTAX_M},
    {"param-underscore", M, FALSE, "FROM:<a@b.example> X_Y=1", SYNTAX_M},
    {"param-empty-value", M, FALSE, "FROM:<a@b.example> X=", SYNTAX_M},
    {"param-two-equals", M, FALSE, "FROM:<a@b.example> X=a=b", SYNTAX_M},
    {"param-control", M, FALSE, "FROM:<a@b.example> X=\x01", SYNTAX_M},
    {"param-del", M, FALSE, "FROM:<a@b.example> X=a\x7f", SYNTAX_M},
    {"param-tab", M, FALSE, "FROM:<a@b.example> X=1\tY=2", SYNTAX_M},
    {"param-utf8-keyword", M, TRUE, "FROM:<a@b.example> \xc3\xa9=1", SYNTAX_M},
    {"param-utf8-value-refused", M, FALSE, "FROM:<a@b.example> X=\xc3\xa9",
     SYNTAX_M},
    {"param-utf8-value-with-smtputf8", M, FALSE,
     "FROM:<a@b.example> X=\xc3\xa9 SMTPUTF8", OK, "a@b.example", "a",
     "b.example", FALSE, FALSE, "X=\xc3\xa9 SMTPUTF8"},
    {"param-utf8-value-invalid", M, TRUE, "FROM:<a@b.example> X=\xc3",
     SYNTAX_M},
    {"param-c1-value", M, TRUE, "FROM:<a@b.example> X=\xc2\x85", SYNTAX_M},
    {"param-value-bracket", M, FALSE, "FROM:<a@b.example> X=>", OK,
     "a@b.example", "a", "b.example", FALSE, FALSE, "X=>"},
    /* Missing or extra '@'. */
    {"no-at", M, FALSE, "FROM:<user>", BAD},
    {"postmaster-on-mail", M, FALSE, "FROM:<postmaster>", BAD},
    {"at-only", M, FALSE, "FROM:<@>", BAD},
    {"double-at", M, FALSE, "FROM:<a@@b.example>", BAD},
    {"two-ats", M, FALSE, "FROM:<a@b@c.example>", BAD},
    {"empty-local", M, FALSE, "FROM:<@b.example>", BAD},
    {"empty-domain", M, FALSE, "FROM:<a@>", BAD},
    {"space-inside", M, FALSE, "FROM:< a@b.example>", BAD},
    {"space-before-close", M, FALSE, "FROM:<a@b.example >", BAD},
    {"nested-bracket", M, FALSE, "FROM:<<a@b.example>>", SYNTAX_M},
    {"bracket-in-local", M, FALSE, "FROM:<<a@b.example>", BAD},
    {"comment", M, FALSE, "FROM:<a(x)@b.example>", BAD},
    {"cr-in-address", M, FALSE, "FROM:<a\r@b.example>", BAD},
    {"lf-in-address", M, FALSE, "FROM:<a@b.example\n>", BAD},
    {"control-in-address", M, FALSE, "FROM:<a\x01@b.example>", BAD},
    {"del-in-address", M, FALSE, "FROM:<a\x7f@b.example>", BAD},
    /* Local parts. */
    {"dots", M, FALSE, "FROM:<first.last@example.org>", OK,
     "first.last@example.org", "first.last", "example.org", FALSE, FALSE, ""},
    {"double-dot", M, FALSE, "FROM:<a..b@example.org>", BAD},
    {"leading-dot", M, FALSE, "FROM:<.a@example.org>", BAD},
    {"trailing-dot-local", M, FALSE, "FROM:<a.@example.org>", BAD},
    {"atext-specials", M, FALSE, "FROM:<!#$%&'*+-/=?^_`{|}~@example.org>", OK,
     "!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~", "example.org",
     FALSE, FALSE, ""},
    {"percent-hack", R, FALSE, "TO:<user%remote.example@relay.example>", OK,
     "user%remote.example@relay.example", "user%remote.example",
     "relay.example", FALSE, FALSE, ""},
    {"bang-path", R, FALSE, "TO:<remote.example!user@relay.example>", OK,
     "remote.example!user@relay.example", "remote.example!user",
     "relay.example", FALSE, FALSE, ""},
    {"quoted", M, FALSE, "FROM:<\"john doe\"@example.org>", OK,
     "\"john doe\"@example.org", "\"john doe\"", "example.org", FALSE, FALSE,
     ""},
    {"quoted-escaped-quote", M, FALSE, "FROM:<\"a\\\"b\"@example.org>", OK,
     "\"a\\\"b\"@example.org", "\"a\\\"b\"", "example.org", FALSE, FALSE, ""},
    {"quoted-bracket", M, FALSE, "FROM:<\"a>b\"@example.org> SIZE=1", OK,
     "\"a>b\"@example.org", "\"a>b\"", "example.org", FALSE, FALSE, "SIZE=1"},
    {"quoted-at", M, FALSE, "FROM:<\"a@b\"@example.org>", OK,
     "\"a@b\"@example.org", "\"a@b\"", "example.org", FALSE, FALSE, ""},
    {"quoted-empty", M, FALSE, "FROM:<\"\"@example.org>", OK,
     "\"\"@example.org",
     "\"\"", "example.org", FALSE, FALSE, ""},
    {"quoted-control", M, FALSE, "FROM:<\"a\x01\"@example.org>", BAD},
    {"quoted-escaped-control", M, FALSE, "FROM:<\"a\\\x01\"@example.org>", BAD},
    {"quoted-escaped-cr", M, FALSE, "FROM:<\"a\\\r\"@example.org>", BAD},
    {"quoted-unterminated", M, FALSE, "FROM:<\"abc@example.org>", SYNTAX_M},
    {"quoted-then-text", M, FALSE, "FROM:<\"a\"b@example.org>", BAD},
    {"quoted-no-at", M, FALSE, "FROM:<\"a@b\">", BAD},
    {"stray-quote", M, FALSE, "FROM:<a\"b\"@example.org>", BAD},
    /* Domains. */
    {"trailing-dot", M, FALSE, "FROM:<a@example.org.>", BAD},
    {"leading-dot-domain", M, FALSE, "FROM:<a@.example.org>", BAD},
    {"empty-label", M, FALSE, "FROM:<a@example..org>", BAD},
    {"leading-hyphen", M, FALSE, "FROM:<a@-example.org>", BAD},
    {"trailing-hyphen", M, FALSE, "FROM:<a@example-.org>", BAD},
    {"inner-hyphens", M, FALSE, "FROM:<a@ex--ample.org>", OK,
     "a@ex--ample.org", "a", "ex--ample.org", FALSE, FALSE, ""},
    {"underscore", M, FALSE, "FROM:<a@ex_ample.org>", BAD},
    {"single-label", R, FALSE, "TO:<a@localhost>", OK, "a@localhost", "a",
     "localhost", FALSE, FALSE, ""},
    {"numeric-labels", R, FALSE, "TO:<a@1.2.3.4>", OK, "a@1.2.3.4", "a",
     "1.2.3.4", FALSE, FALSE, ""},
    {"a-label", R, FALSE, "TO:<a@xn--mnchen-3ya.example>", OK,
     "a@xn--mnchen-3ya.example", "a", "xn--mnchen-3ya.example", FALSE, FALSE,
     ""},
    /* Address literals. */
    {"ipv4", M, FALSE, "FROM:<a@[192.0.2.1]>", OK, "a@[192.0.2.1]", "a",
     "[192.0.2.1]", FALSE, FALSE, ""},
    {"ipv4-zeros", M, FALSE, "FROM:<a@[0.0.0.0]>", OK, "a@[0.0.0.0]", "a",
     "[0.0.0.0]", FALSE, FALSE, ""},
    {"ipv4-255", M, FALSE, "FROM:<a@[255.255.255.255]>", OK,
     "a@[255.255.255.255]", "a", "[255.255.255.255]", FALSE, FALSE, ""},
    {"ipv4-256", M, FALSE, "FROM:<a@[256.0.0.1]>", BAD},
    {"ipv4-three-octets", M, FALSE, "FROM:<a@[1.2.3]>", BAD},
    {"ipv4-five-octets", M, FALSE, "FROM:<a@[1.2.3.4.5]>", BAD},
    {"ipv4-leading-zero", M, FALSE, "FROM:<a@[01.2.3.4]>", BAD},
    {"ipv4-four-digits", M, FALSE, "FROM:<a@[1000.2.3.4]>", BAD},
    {"ipv4-empty-octet", M, FALSE, "FROM:<a@[1..3.4]>", BAD},
    {"ipv4-trailing-dot", M, FALSE, "FROM:<a@[1.2.3.4.]>", BAD},
    {"ipv4-sign", M, FALSE, "FROM:<a@[+1.2.3.4]>", BAD},
    {"literal-empty", M, FALSE, "FROM:<a@[]>", BAD},
    {"literal-unclosed", M, FALSE, "FROM:<a@[1.2.3.4>", BAD},
    {"literal-unopened", M, FALSE, "FROM:<a@1.2.3.4]>", BAD},
    {"literal-trailing", M, FALSE, "FROM:<a@[1.2.3.4]x>", BAD},
    {"literal-label", M, FALSE, "FROM:<a@x.[1.2.3.4]>", BAD},
    {"ipv6", M, FALSE, "FROM:<a@[IPv6:2001:db8::1]>", OK,
     "a@[IPv6:2001:db8::1]", "a", "[IPv6:2001:db8::1]", FALSE, FALSE, ""},
    {"ipv6-lower-tag", M, FALSE, "FROM:<a@[ipv6:::1]>", OK, "a@[ipv6:::1]",
     "a", "[ipv6:::1]", FALSE, FALSE, ""},
    {"ipv6-full", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", OK,
     "a@[IPv6:1:2:3:4:5:6:7:8]", "a", "[IPv6:1:2:3:4:5:6:7:8]", FALSE, FALSE,
     ""},
    {"ipv6-unspecified", M, FALSE, "FROM:<a@[IPv6:::]>", OK, "a@[IPv6:::]",
     "a", "[IPv6:::]", FALSE, FALSE, ""},
    {"ipv6-seven", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7]>", BAD},
    {"ipv6-nine", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", BAD},
    {"ipv6-two-compressions", M, FALSE, "FROM:<a@[IPv6:1::2::3]>", BAD},
    {"ipv6-triple-colon", M, FALSE, "FROM:<a@[IPv6:1:::2]>", BAD},
    {"ipv6-five-hex", M, FALSE, "FROM:<a@[IPv6:12345::]>", BAD},
    {"ipv6-non-hex", M, FALSE, "FROM:<a@[IPv6:g::1]>", BAD},
    {"ipv6-leading-colon", M, FALSE, "FROM:<a@[IPv6::1:2:3:4:5:6:7]>", BAD},
    {"ipv6-trailing-colon", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7:]>", BAD},
    {"ipv6-comp-six", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6::]>", OK,
     "a@[IPv6:1:2:3:4:5:6::]", "a", "[IPv6:1:2:3:4:5:6::]", FALSE, FALSE, ""},
    {"ipv6-comp-seven", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7::]>", BAD},
    {"ipv6-comp-seven-middle", M, FALSE, "FROM:<a@[IPv6:1:2:3::4:5:6:7]>", BAD},
    {"ipv6-v4-full", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>", OK,
     "a@[IPv6:1:2:3:4:5:6:192.0.2.1]", "a", "[IPv6:1:2:3:4:5:6:192.0.2.1]",
     FALSE, FALSE, ""},
    {"ipv6-v4-comp", M, FALSE, "FROM:<a@[IPv6:::ffff:192.0.2.1]>", OK,
     "a@[IPv6:::ffff:192.0.2.1]", "a", "[IPv6:::ffff:192.0.2.1]", FALSE, FALSE,
     ""},
    {"ipv6-v4-too-many", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5:6:7:1.2.3.4]>",
     BAD},
    {"ipv6-v4-comp-five", M, FALSE, "FROM:<a@[IPv6:1:2:3:4:5::1.2.3.4]>", BAD},
    {"ipv6-v4-middle", M, FALSE, "FROM:<a@[IPv6:1.2.3.4::1]>", BAD},
    {"ipv6-v4-bad", M, FALSE, "FROM:<a@[IPv6:::1.2.3.256]>", BAD},
    {"ipv6-v4-only", M, FALSE, "FROM:<a@[IPv6:1.2.3.4]>", BAD},
    {"ipv6-zone", M, FALSE, "FROM:<a@[IPv6:fe80::1%eth0]>", BAD},
    {"ipv6-no-tag", M, FALSE, "FROM:<a@[2001:db8::1]>", BAD},
    {"ipv6-empty", M, FALSE, "FROM:<a@[IPv6:]>", BAD},
    {"general-literal", M, FALSE, "FROM:<a@[x-tag:some.content]>", OK,
     "a@[x-tag:some.content]", "a", "[x-tag:some.content]", FALSE, FALSE, ""},
    {"general-empty-content", M, FALSE, "FROM:<a@[tag:]>", BAD},
    {"general-empty-tag", M, FALSE, "FROM:<a@[:abc]>", BAD},
    {"general-tag-hyphen-end", M, FALSE, "FROM:<a@[tag-:abc]>", BAD},
    {"general-space", M, FALSE, "FROM:<a@[tag:a b]>", BAD},
    {"general-at", M, FALSE, "FROM:<a@[tag:a@b]>", BAD},
    {"general-bracket", M, FALSE, "FROM:<a@[tag:a[b]>", BAD},
    {"general-backslash", M, FALSE, "FROM:<a@[tag:a\\b]>", BAD},
    {"general-bad-tag", M, FALSE, "FROM:<a@[t.g:abc]>", BAD},
    /* Source routes. */
    {"source-route", M, FALSE, "FROM:<@relay.example:user@example.org>", OK,
     "user@example.org", "user", "example.org", TRUE, FALSE, ""},
    {"source-route-two", R, FALSE,
     "TO:<@a.example,@b.example:u@c.example> NOTIFY=NEVER", OK, "u@c.example",
     "u", "c.example", TRUE, FALSE, "NOTIFY=NEVER"},
    {"source-route-bad-domain", M, FALSE, "FROM:<@a..b:u@c.example>", BAD},
    {"source-route-empty-mailbox", M, FALSE, "FROM:<@a.example:>", BAD},
    {"source-route-no-at", M, FALSE, "FROM:<@a.example,b.example:u@c.example>",
     BAD},
    {"source-route-empty-hop", M, FALSE, "FROM:<@a.example,:u@c.example>", BAD},
    {"source-route-empty-domain", M, FALSE, "FROM:<@:u@c.example>", BAD},
    {"source-route-literal", M, FALSE, "FROM:<@[192.0.2.1]:u@c.example>", BAD},
    {"source-route-no-colon", M, FALSE, "FROM:<@a.example>", BAD},
    /* RCPT specials. */
    {"postmaster", R, FALSE, "TO:<postmaster>", OK, "postmaster", "postmaster",
     NULL, FALSE, FALSE, ""},
    {"postmaster-case", R, FALSE, "TO:<PostMaster>", OK, "postmaster",
     "PostMaster", NULL, FALSE, FALSE, ""},
    {"postmaster-params", R, FALSE, "to: <POSTMASTER> NOTIFY=NEVER", OK,
     "postmaster", "POSTMASTER", NULL, FALSE, FALSE, "NOTIFY=NEVER"},
    {"postmaster-domain", R, FALSE, "TO:<Postmaster@example.org>", OK,
     "Postmaster@example.org", "Postmaster", "example.org", FALSE, FALSE, ""},
    {"postmaster-quoted", R, FALSE, "TO:<\"postmaster\">", BAD},
    {"postmaster-routed", R, FALSE, "TO:<@a.example:postmaster>", BAD},
    {"postmasterx", R, FALSE, "TO:<postmasterx>", BAD},
    {"null-recipient", R, FALSE, "TO:<>", BAD},
    {"rcpt-no-at", R, FALSE, "TO:<user>", BAD},
    /* RFC 6531. */
    {"utf8-local", M, TRUE, "FROM:<pel\xc3\xa9@example.org>", OK,
     "pel\xc3\xa9@example.org", "pel\xc3\xa9", "example.org", FALSE, TRUE, ""},
    {"utf8-not-allowed", M, FALSE, "FROM:<pel\xc3\xa9@example.org>", UTF8},
    {"utf8-rcpt-not-allowed", R, FALSE, "TO:<pel\xc3\xa9@example.org>", UTF8},
    {"utf8-allowed-by-param", M, FALSE,
     "FROM:<pel\xc3\xa9@example.org> SMTPUTF8", OK, "pel\xc3\xa9@example.org",
     "pel\xc3\xa9", "example.org", FALSE, TRUE, "SMTPUTF8"},
    {"utf8-rcpt-param-does-not-allow", R, FALSE,
     "TO:<pel\xc3\xa9@example.org> SMTPUTF8", UTF8},
    {"utf8-greek", R, TRUE,
     "TO:<\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@\xcf\x80\xce\xb1"
     "\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.\xce\xb4"
     "\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae>",
     OK,
     "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@\xcf\x80\xce\xb1\xcf\x81"
     "\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc\xce\xb1.\xce\xb4\xce\xbf"
     "\xce\xba\xce\xb9\xce\xbc\xce\xae",
     "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae",
     "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce\xbc"
     "\xce\xb1.\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae",
     FALSE, TRUE, ""},
    {"utf8-cjk", R, TRUE,
     "TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90"
     ".\xe5\xb9\xbf\xe5\x91\x8a>", OK,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf"
     "\xe5\x91\x8a",
     "\xe7\x94\xa8\xe6\x88\xb7",
     "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
     FALSE, TRUE, ""},
    {"utf8-quoted", R, TRUE, "TO:<\"j\xc3\xb6 d\"@example.org>", OK,
     "\"j\xc3\xb6 d\"@example.org", "\"j\xc3\xb6 d\"", "example.org", FALSE,
     TRUE, ""},
    {"utf8-invalid", R, TRUE, "TO:<\xff@example.org>", BAD},
    {"utf8-invalid-not-allowed", R, FALSE, "TO:<\xff@example.org>", BAD},
    {"utf8-truncated", R, TRUE, "TO:<a\xc3@example.org>", BAD},
    {"utf8-overlong-slash", R, TRUE, "TO:<a\xc0\xaf@example.org>", BAD},
    {"utf8-overlong-at", R, TRUE, "TO:<a\xc1\x80" "b@example.org>", BAD},
    {"utf8-surrogate", R, TRUE, "TO:<a\xed\xa0\x80@example.org>", BAD},
    {"utf8-beyond-10ffff", R, TRUE, "TO:<a\xf4\x90\x80\x80@example.org>", BAD},
    {"utf8-c1-next-line", R, TRUE, "TO:<a\xc2\x85@example.org>", BAD},
    {"utf8-c1-in-domain", R, TRUE, "TO:<a@ex\xc2\x9f.org>", BAD},
    {"utf8-nbsp-ok", R, TRUE, "TO:<a\xc2\xa0@example.org>", OK,
     "a\xc2\xa0@example.org", "a\xc2\xa0", "example.org", FALSE, TRUE, ""},
    {"utf8-domain-hyphen-end", R, TRUE, "TO:<a@\xc3\xa9-.example>", BAD},
    {"utf8-literal", R, TRUE, "TO:<a@[tag:\xc3\xa9]>", BAD},
    {"utf8-ipv6-literal", R, TRUE, "TO:<a@[IPv6:\xc3\xa9::1]>", BAD},
};
/* clang-format on */

static char *params_join(GPtrArray *params) {
  GString *joined = g_string_new("");
  for (guint i = 0; i < params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(params, i);
    if (i > 0)
      g_string_append_c(joined, ' ');
    g_string_append(joined, param->keyword);
    if (param->value != NULL)
      g_string_append_printf(joined, "=%s", param->value);
  }
  return g_string_free(joined, FALSE);
}

/* A parser's answer to row `c`: the reply, or the path's parts. */
static void path_case_check(const PathCase *c, const PstSmtpReply *reply,
                            const PstSmtpPath *path) {
  g_assert_cmpstr(reply_name(reply), ==, reply_name(c->reply));
  g_assert_true(reply == c->reply);
  if (reply != NULL) {
    g_assert_null(path);
    return;
  }
  g_assert_nonnull(path);
  g_assert_cmpstr(path->address, ==, c->address);
  g_assert_cmpstr(path->local_part, ==, c->local_part);
  g_assert_cmpstr(path->domain, ==, c->domain);
  g_assert_cmpint(path->source_route, ==, c->source_route);
  g_assert_cmpint(path->utf8, ==, c->utf8);
  g_autofree char *params = params_join(path->params);
  g_assert_cmpstr(params, ==, c->params);
}

static void test_path(gconstpointer data) {
  const PathCase *c = data;
  g_autoptr(PstSmtpPath) path = NULL;
  const PstSmtpReply *reply = pst_smtp_path_parse(
      c->argument, strlen(c->argument), c->kind, c->allow_utf8, &path);
  path_case_check(c, reply, path);
}

/* Lenient parsing (strict_envelopes = false): a bare path too. */
/* clang-format off */
static const PathCase lenient_cases[] = {
    {"bare", M, FALSE, "FROM:user@example.org", OK, "user@example.org",
     "user", "example.org", FALSE, FALSE, ""},
    {"bare-params", M, FALSE, "FROM:user@example.org SIZE=100 BODY=8BITMIME",
     OK, "user@example.org", "user", "example.org", FALSE, FALSE,
     "SIZE=100 BODY=8BITMIME"},
    {"bare-space-after-colon", M, FALSE, "FROM: user@example.org", OK,
     "user@example.org", "user", "example.org", FALSE, FALSE, ""},
    {"bare-rcpt", R, FALSE, "TO:bob@example.org", OK, "bob@example.org", "bob",
     "example.org", FALSE, FALSE, ""},
    {"bare-postmaster", R, FALSE, "TO:Postmaster", OK, "postmaster",
     "Postmaster", NULL, FALSE, FALSE, ""},
    {"bare-route", M, FALSE, "FROM:@a.example:user@example.org", OK,
     "user@example.org", "user", "example.org", TRUE, FALSE, ""},
    {"bare-empty", M, FALSE, "FROM:", SYNTAX_M},
    {"bare-spaces-only", M, FALSE, "FROM:   ", SYNTAX_M},
    {"bare-closing-bracket", M, FALSE, "FROM:user@example.org>", SYNTAX_M},
    {"bare-opening-bracket", R, FALSE, "TO:bob<x@example.org", SYNTAX_R},
    {"bare-no-domain", M, FALSE, "FROM:user", BAD},
    {"bare-two-at", M, FALSE, "FROM:a@b@example.org", BAD},
    {"bare-utf8-needs-smtputf8", M, FALSE, "FROM:j\xc3\xb6rg@example.org",
     &pst_smtp_reply_utf8_required},
    {"bare-bad-param", M, FALSE, "FROM:user@example.org =x", SYNTAX_M},
    {"brackets-still", M, FALSE, "FROM:<user@example.org> SIZE=1", OK,
     "user@example.org", "user", "example.org", FALSE, FALSE, "SIZE=1"},
};
/* clang-format on */

static void test_path_lenient(gconstpointer data) {
  const PathCase *c = data;
  g_autoptr(PstSmtpPath) path = NULL;
  const PstSmtpReply *reply = pst_smtp_path_parse_lenient(
      c->argument, strlen(c->argument), c->kind, c->allow_utf8, &path);
  path_case_check(c, reply, path);
}

/* Lenient parsing changes nothing for a path in angle brackets: every
 * row of path_cases whose path starts with '<' gets the same answer. */
static void test_path_lenient_superset(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(path_cases); i++) {
    const PathCase *c = &path_cases[i];
    const char *colon = strchr(c->argument, ':');
    if (colon == NULL || colon[1 + strspn(colon + 1, " ")] != '<')
      continue;
    g_autoptr(PstSmtpPath) strict = NULL;
    g_autoptr(PstSmtpPath) lenient = NULL;
    gsize length = strlen(c->argument);
    const PstSmtpReply *a = pst_smtp_path_parse(c->argument, length, c->kind,
                                                c->allow_utf8, &strict);
    const PstSmtpReply *b = pst_smtp_path_parse_lenient(
        c->argument, length, c->kind, c->allow_utf8, &lenient);
    g_assert_true(a == b);
    if (a == NULL)
      g_assert_cmpstr(strict->address, ==, lenient->address);
  }
}

/* "FROM:<" [route] LOCAL "@" DOMAIN ">": a local part of `local` octets,
 * a domain of `domain` octets in labels of at most 10. */
static char *path_argument(const char *route, gsize local, gsize domain) {
  GString *argument = g_string_new("FROM:<");
  g_string_append(argument, route);
  for (gsize i = 0; i < local; i++)
    g_string_append_c(argument, 'l');
  g_string_append_c(argument, '@');
  for (gsize left = domain; left > 0;) {
    gsize label = left > 11 ? 10 : left;
    for (gsize i = 0; i < label; i++)
      g_string_append_c(argument, 'd');
    left -= label;
    if (left > 0) {
      g_string_append_c(argument, '.');
      left--;
    }
  }
  g_string_append_c(argument, '>');
  return g_string_free(argument, FALSE);
}

static const PstSmtpReply *path_try(const char *argument) {
  g_autoptr(PstSmtpPath) path = NULL;
  return pst_smtp_path_parse(argument, strlen(argument), PST_SMTP_PATH_MAIL,
                             FALSE, &path);
}

static void test_path_limits(void) {
  /* Local part: 64 octets, quotes included; then 65. */
  g_autofree char *local64 = path_argument("", 64, 3);
  g_autofree char *local65 = path_argument("", 65, 3);
  g_assert_null(path_try(local64));
  g_assert_true(path_try(local65) == LONG);
  g_autofree char *q62 = g_strnfill(62, 'q');
  g_autofree char *quoted64 = g_strdup_printf("FROM:<\"%s\"@x>", q62);
  g_autofree char *quoted65 = g_strdup_printf("FROM:<\"%sq\"@x>", q62);
  g_assert_null(path_try(quoted64));
  g_assert_true(path_try(quoted65) == LONG);
  /* A label of 63 octets, not 64. */
  g_autofree char *l63 = g_strnfill(63, 'd');
  g_autofree char *label63 = g_strdup_printf("FROM:<a@%s.example>", l63);
  g_autofree char *label64 = g_strdup_printf("FROM:<a@%sd.example>", l63);
  g_assert_null(path_try(label63));
  g_assert_true(path_try(label64) == BAD);
  /* The path: 256 octets with its brackets, not 257. */
  g_autofree char *path256 = path_argument("", 64, 256 - 2 - 64 - 1);
  g_autofree char *path257 = path_argument("", 64, 257 - 2 - 64 - 1);
  g_assert_cmpuint(strlen(path256), ==, strlen("FROM:") + 256);
  g_assert_null(path_try(path256));
  g_assert_true(path_try(path257) == LONG);
  /* A too-long path is refused as such even when it is garbage too. */
  g_autofree char *garbage = g_strnfill(400, '!');
  g_autofree char *long_garbage = g_strdup_printf("FROM:<%s>", garbage);
  g_assert_true(path_try(long_garbage) == LONG);
  /* The source route counts towards the path. */
  g_autofree char *unrouted = path_argument("", 64, 180);
  g_autofree char *routed = path_argument("@relay.example:", 64, 180);
  g_assert_null(path_try(unrouted));
  g_assert_true(path_try(routed) == LONG);
}

/* --- Domains and literals ------------------------------------------------ */

static void test_domain(void) {
  static const struct {
    const char *domain;
    gboolean allow_utf8;
    gboolean valid;
  } cases[] = {
      {"example.org", FALSE, TRUE},
      {"EXAMPLE.org", FALSE, TRUE},
      {"a", FALSE, TRUE},
      {"1", FALSE, TRUE},
      {"a-b.c", FALSE, TRUE},
      {"", FALSE, FALSE},
      {".", FALSE, FALSE},
      {"a.", FALSE, FALSE},
      {".a", FALSE, FALSE},
      {"a..b", FALSE, FALSE},
      {"-a", FALSE, FALSE},
      {"a-", FALSE, FALSE},
      {"a_b", FALSE, FALSE},
      {"a b", FALSE, FALSE},
      {"a@b", FALSE, FALSE},
      {"[192.0.2.1]", FALSE, FALSE},
      {"m\xc3\xbcnchen.de", FALSE, FALSE},
      {"m\xc3\xbcnchen.de", TRUE, TRUE},
      {"m\xc3\xbc\xff.de", TRUE, FALSE},
      {"\xc3\xbc-.de", TRUE, FALSE},
      {"a\xc2\x80.de", TRUE, FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    gboolean valid = pst_smtp_domain_is_valid(
        cases[i].domain, strlen(cases[i].domain), cases[i].allow_utf8);
    /* Escaped: TAP output must stay valid UTF-8. */
    g_autofree char *shown = g_strescape(cases[i].domain, NULL);
    g_test_message("domain \"%s\", utf8 %d", shown, cases[i].allow_utf8);
    g_assert_cmpint(valid, ==, cases[i].valid);
  }
  /* 255 octets in all (four labels of 63), not 256. */
  g_autofree char *label = g_strnfill(63, 'a');
  g_autofree char *label61 = g_strnfill(61, 'b');
  g_autofree char *d255 =
      g_strdup_printf("%s.%s.%s.%s", label, label, label, label);
  g_autofree char *d256 =
      g_strdup_printf("%s.%s.%s.%s.ab", label, label, label, label61);
  g_assert_cmpuint(strlen(d255), ==, 255);
  g_assert_true(pst_smtp_domain_is_valid(d255, 255, FALSE));
  g_assert_cmpuint(strlen(d256), ==, 256);
  g_assert_false(pst_smtp_domain_is_valid(d256, 256, FALSE));
  /* A U-label counts in its A-label form: 59 octets after "xn--". */
  GString *ulabel = g_string_new("");
  while (pst_smtp_a_label_length(ulabel->str, ulabel->len) <= 63)
    g_string_append(ulabel, "\xc3\xa9");
  g_string_truncate(ulabel, ulabel->len - 2);
  g_assert_true(pst_smtp_domain_is_valid(ulabel->str, ulabel->len, TRUE));
  g_assert_cmpuint(ulabel->len, >, 63); /* more octets than the A-label */
  g_string_append(ulabel, "\xc3\xa9");
  g_assert_false(pst_smtp_domain_is_valid(ulabel->str, ulabel->len, TRUE));
  g_string_free(ulabel, TRUE);
}

static void test_a_label_length(void) {
  static const struct {
    const char *u_label;
    const char *a_label;
  } cases[] = {
      {"m\xc3\xbcnchen", "xn--mnchen-3ya"},
      {"b\xc3\xbc"
       "cher",
       "xn--bcher-kva"},
      {"\xe4\xbe\x8b\xe5\xad\x90", "xn--fsqu00a"},
      {"\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae", "xn--jxalpdlp"},
      {"\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3\xce"
       "\xbc"
       "\xce\xb1",
       "xn--hxajbheg2az3al"},
      {"\xd0\xb8\xd1\x81\xd0\xbf\xd1\x8b\xd1\x82\xd0\xb0\xd0\xbd\xd0\xb8\xd0"
       "\xb5",
       "xn--80akhbyknj4f"},
      {"\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", "xn--zckzah"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
    g_assert_cmpuint(
        pst_smtp_a_label_length(cases[i].u_label, strlen(cases[i].u_label)), ==,
        strlen(cases[i].a_label));
}

static void test_address_literal(void) {
  g_assert_true(pst_smtp_address_literal_is_valid("[192.0.2.1]", 11));
  g_assert_false(pst_smtp_address_literal_is_valid("192.0.2.1", 9));
  g_assert_false(pst_smtp_address_literal_is_valid("[]", 2));
  g_assert_false(pst_smtp_address_literal_is_valid("[", 1));
  g_assert_false(pst_smtp_address_literal_is_valid("", 0));
  g_assert_true(pst_smtp_address_literal_is_valid("[IPv6:::1]", 10));
  g_assert_true(
      pst_smtp_address_literal_is_valid("[IPv6:0:0:0:0:0:0:0:1]", 22));
}

/* --- MAIL and RCPT parameters -------------------------------------------- */

typedef struct {
  const char *name;
  const char *params;
  guint64 max_size;
  const PstSmtpReply *reply;
  const char *bad_keyword;
  guint64 size;
  PstBodyType body;
  gboolean smtputf8;
  PstDsnRet ret;
  const char *envid;
  const char *auth;
} MailParamsCase;

/* clang-format off */
static const MailParamsCase mail_params_cases[] = {
    {"none", "", 0, OK},
    {"size", "SIZE=1000", 0, OK, NULL, 1000},
    {"size-zero", "SIZE=0", 0, OK, NULL, 0},
    {"size-leading-zeros", "SIZE=0001", 0, OK, NULL, 1},
    {"size-at-limit", "SIZE=1000", 1000, OK, NULL, 1000},
    {"size-over-limit", "SIZE=1001", 1000, SIZE_EXCEEDED, "SIZE"},
    {"size-20-digits", "SIZE=18446744073709551615", 0, OK, NULL, G_MAXUINT64},
    {"size-saturates", "SIZE=99999999999999999999", 0, OK, NULL, G_MAXUINT64},
    {"size-saturated-over-limit", "SIZE=99999999999999999999", 1000,
     SIZE_EXCEEDED, "SIZE"},
    {"size-21-digits", "SIZE=100000000000000000000", 0, BAD_VALUE, "SIZE"},
    {"size-no-value", "SIZE", 0, BAD_VALUE, "SIZE"},
    {"size-letters", "SIZE=12a", 0, BAD_VALUE, "SIZE"},
    {"size-negative", "SIZE=-1", 0, BAD_VALUE, "SIZE"},
    {"size-plus", "SIZE=+1", 0, BAD_VALUE, "SIZE"},
    {"body-7bit", "BODY=7BIT", 0, OK, NULL, 0, PST_BODY_7BIT},
    {"body-8bitmime", "body=8bitmime", 0, OK, NULL, 0, PST_BODY_8BITMIME},
    {"body-binarymime", "BODY=BINARYMIME", 0, UNSUPPORTED, "BODY"},
    {"body-bad", "BODY=8BIT", 0, BAD_VALUE, "BODY"},
    {"body-no-value", "BODY", 0, BAD_VALUE, "BODY"},
    {"smtputf8", "SMTPUTF8", 0, OK, NULL, 0, 0, TRUE},
    {"smtputf8-value", "SMTPUTF8=YES", 0, BAD_VALUE, "SMTPUTF8"},
    {"ret-full", "RET=FULL", 0, OK, NULL, 0, 0, FALSE, PST_DSN_RET_FULL},
    {"ret-hdrs", "RET=hdrs", 0, OK, NULL, 0, 0, FALSE, PST_DSN_RET_HDRS},
    {"ret-bad", "RET=BODY", 0, BAD_VALUE, "RET"},
    {"ret-no-value", "RET", 0, BAD_VALUE, "RET"},
    {"envid", "ENVID=QQ314159", 0, OK, NULL, 0, 0, FALSE, 0, "QQ314159"},
    {"envid-xtext", "ENVID=a+2Bb+3Dc+20d", 0, OK, NULL, 0, 0, FALSE, 0,
     "a+b=c d"},
    {"envid-truncated-escape", "ENVID=a+2", 0, BAD_VALUE, "ENVID"},
    {"envid-bad-escape", "ENVID=a+ZZ", 0, BAD_VALUE, "ENVID"},
    {"envid-nul", "ENVID=a+00", 0, BAD_VALUE, "ENVID"},
    {"envid-cr", "ENVID=a+0D+0A", 0, BAD_VALUE, "ENVID"},
    {"envid-8bit", "ENVID=a+C3+A9", 0, BAD_VALUE, "ENVID"},
    {"envid-no-value", "ENVID", 0, BAD_VALUE, "ENVID"},
    {"auth-null", "AUTH=<>", 0, OK, NULL, 0, 0, FALSE, 0, NULL, "<>"},
    {"auth-mailbox", "AUTH=e+3Dmc2@example.com", 0, OK, NULL, 0, 0, FALSE, 0,
     NULL, "e=mc2@example.com"},
    {"auth-utf8", "AUTH=pel+C3+A9@example.com", 0, OK, NULL, 0, 0, FALSE, 0,
     NULL, "pel\xc3\xa9@example.com"},
    {"auth-control", "AUTH=a+0Db", 0, BAD_VALUE, "AUTH"},
    {"auth-bad-utf8", "AUTH=a+FF", 0, BAD_VALUE, "AUTH"},
    {"auth-no-value", "AUTH", 0, BAD_VALUE, "AUTH"},
    {"unknown", "FOO=1", 0, UNSUPPORTED, "FOO"},
    {"unknown-after-good", "SIZE=1 ENVID=x XYZ", 0, UNSUPPORTED, "XYZ"},
    {"all", "SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id AUTH=<>", 100, OK,
     NULL, 10, PST_BODY_8BITMIME, TRUE, PST_DSN_RET_HDRS, "id", "<>"},
};
/* clang-format on */

/* Parses "FROM:<a@b.example> " + params into a path. */
static PstSmtpPath *params_path(PstSmtpPathKind kind, const char *params) {
  g_autofree char *argument =
      g_strdup_printf("%s<a@b.example> %s",
                      kind == PST_SMTP_PATH_MAIL ? "FROM:" : "TO:", params);
  PstSmtpPath *path = NULL;
  g_assert_null(
      pst_smtp_path_parse(argument, strlen(argument), kind, TRUE, &path));
  return path;
}

static void test_mail_params(gconstpointer data) {
  const MailParamsCase *c = data;
  g_autoptr(PstSmtpPath) path = params_path(PST_SMTP_PATH_MAIL, c->params);
  PstMailParams out;
  const PstSmtpReply *reply =
      pst_smtp_mail_params_parse(path->params, c->max_size, &out);
  g_assert_cmpstr(reply_name(reply), ==, reply_name(c->reply));
  g_assert_true(reply == c->reply);
  g_assert_cmpstr(out.bad_keyword, ==, c->bad_keyword);
  if (reply != NULL) {
    g_assert_null(out.envid);
    g_assert_null(out.auth);
    return;
  }
  g_assert_cmpuint(out.size, ==, c->size);
  g_assert_cmpint(out.body, ==, c->body);
  g_assert_cmpint(out.smtputf8, ==, c->smtputf8);
  g_assert_cmpint(out.ret, ==, c->ret);
  g_assert_cmpstr(out.envid, ==, c->envid);
  g_assert_cmpstr(out.auth, ==, c->auth);
  pst_mail_params_clear(&out);
  g_assert_null(out.envid);
}

typedef struct {
  const char *name;
  const char *params;
  const PstSmtpReply *reply;
  guint notify;
  const char *orcpt;
} RcptParamsCase;

/* clang-format off */
static const RcptParamsCase rcpt_params_cases[] = {
    {"none", "", OK, 0, NULL},
    {"never", "NOTIFY=NEVER", OK, PST_DSN_NOTIFY_NEVER},
    {"never-lower", "notify=never", OK, PST_DSN_NOTIFY_NEVER},
    {"success-failure", "NOTIFY=SUCCESS,FAILURE", OK,
     PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE},
    {"all-three", "NOTIFY=delay,Failure,SUCCESS", OK,
     PST_DSN_NOTIFY_SUCCESS | PST_DSN_NOTIFY_FAILURE | PST_DSN_NOTIFY_DELAY},
    {"never-with-other", "NOTIFY=NEVER,SUCCESS", BAD_VALUE},
    {"other-with-never", "NOTIFY=SUCCESS,NEVER", BAD_VALUE},
    {"repeated", "NOTIFY=SUCCESS,SUCCESS", BAD_VALUE},
    {"trailing-comma", "NOTIFY=SUCCESS,", BAD_VALUE},
    {"leading-comma", "NOTIFY=,SUCCESS", BAD_VALUE},
    {"unknown-word", "NOTIFY=ALWAYS", BAD_VALUE},
    {"notify-no-value", "NOTIFY", BAD_VALUE},
    {"orcpt", "ORCPT=rfc822;user@example.org", OK, 0,
     "rfc822;user@example.org"},
    {"orcpt-upper-type", "ORCPT=RFC822;a+2Bb@example.org", OK, 0,
     "rfc822;a+b@example.org"},
    {"orcpt-quoted", "ORCPT=rfc822;+22a+20b+22@example.org", OK, 0,
     "rfc822;\"a b\"@example.org"},
    {"orcpt-empty-address", "ORCPT=rfc822;", BAD_VALUE},
    {"orcpt-no-type", "ORCPT=user@example.org", BAD_VALUE},
    {"orcpt-empty-type", "ORCPT=;user@example.org", BAD_VALUE},
    {"orcpt-unknown-type", "ORCPT=x400;abc", BAD_VALUE},
    {"orcpt-control", "ORCPT=rfc822;a+0Db@example.org", BAD_VALUE},
    /* UTF-8 in an rfc822 xtext, as Postfix relays an SMTPUTF8 address */
    {"orcpt-utf8-in-rfc822", "ORCPT=rfc822;j+C3+BCrgen@example.net", OK, 0,
     "rfc822;j\xc3\xbcrgen@example.net"},
    {"orcpt-latin1-in-rfc822", "ORCPT=rfc822;a+E9@example.org", BAD_VALUE},
    {"orcpt-c1-in-rfc822", "ORCPT=rfc822;a+C2+85@example.org", BAD_VALUE},
    {"orcpt-bad-xtext", "ORCPT=rfc822;a+G1@example.org", BAD_VALUE},
    {"orcpt-no-value", "ORCPT", BAD_VALUE},
    {"orcpt-utf8-escape", "ORCPT=utf-8;user\\x{E9}@example.org", OK, 0,
     "utf-8;user\xc3\xa9@example.org"},
    {"orcpt-utf8-lower-hex", "ORCPT=UTF-8;a\\x{1f600}@example.org", OK, 0,
     "utf-8;a\xf0\x9f\x98\x80@example.org"},
    {"orcpt-utf8-raw", "ORCPT=utf-8;pel\xc3\xa9@example.org", OK, 0,
     "utf-8;pel\xc3\xa9@example.org"},
    {"orcpt-utf8-escaped-plus", "ORCPT=utf-8;a\\x{2B}b@example.org", OK, 0,
     "utf-8;a+b@example.org"},
    {"orcpt-utf8-nul", "ORCPT=utf-8;a\\x{0}@example.org", BAD_VALUE},
    {"orcpt-utf8-surrogate", "ORCPT=utf-8;a\\x{D800}@example.org", BAD_VALUE},
    {"orcpt-utf8-too-big", "ORCPT=utf-8;a\\x{110000}@example.org", BAD_VALUE},
    {"orcpt-utf8-seven-digits", "ORCPT=utf-8;a\\x{0000041}@example.org",
     BAD_VALUE},
    {"orcpt-utf8-c1", "ORCPT=utf-8;a\\x{85}@example.org", BAD_VALUE},
    {"orcpt-utf8-control", "ORCPT=utf-8;a\\x{D}@example.org", BAD_VALUE},
    {"orcpt-utf8-empty-escape", "ORCPT=utf-8;a\\x{}@example.org", BAD_VALUE},
    {"orcpt-utf8-unclosed", "ORCPT=utf-8;a\\x{41", BAD_VALUE},
    {"orcpt-utf8-backslash", "ORCPT=utf-8;a\\b@example.org", BAD_VALUE},
    {"orcpt-utf8-plus", "ORCPT=utf-8;a+b@example.org", BAD_VALUE},
    {"both", "NOTIFY=FAILURE ORCPT=rfc822;x@y.example", OK,
     PST_DSN_NOTIFY_FAILURE, "rfc822;x@y.example"},
    {"unknown", "SIZE=1", UNSUPPORTED},
};
/* clang-format on */

static void test_rcpt_params(gconstpointer data) {
  const RcptParamsCase *c = data;
  g_autoptr(PstSmtpPath) path = params_path(PST_SMTP_PATH_RCPT, c->params);
  PstRcptParams out;
  const PstSmtpReply *reply = pst_smtp_rcpt_params_parse(path->params, &out);
  g_assert_cmpstr(reply_name(reply), ==, reply_name(c->reply));
  g_assert_true(reply == c->reply);
  if (reply != NULL) {
    g_assert_nonnull(out.bad_keyword);
    g_assert_null(out.orcpt);
    return;
  }
  g_assert_null(out.bad_keyword);
  g_assert_cmpuint(out.notify, ==, c->notify);
  g_assert_cmpstr(out.orcpt, ==, c->orcpt);
  pst_rcpt_params_clear(&out);
}

static void test_params_limits(void) {
  /* ENVID: 100 octets decoded, not 101. */
  g_autofree char *id100 = g_strnfill(100, 'i');
  g_autofree char *id101 = g_strnfill(101, 'i');
  g_autofree char *p100 = g_strdup_printf("ENVID=%s", id100);
  g_autofree char *p101 = g_strdup_printf("ENVID=%s", id101);
  g_autoptr(PstSmtpPath) ok = params_path(PST_SMTP_PATH_MAIL, p100);
  g_autoptr(PstSmtpPath) too_long = params_path(PST_SMTP_PATH_MAIL, p101);
  PstMailParams mail;
  g_assert_null(pst_smtp_mail_params_parse(ok->params, 0, &mail));
  pst_mail_params_clear(&mail);
  g_assert_true(pst_smtp_mail_params_parse(too_long->params, 0, &mail) ==
                BAD_VALUE);
  /* ORCPT: 500 octets as sent, not 501. */
  g_autofree char *address = g_strnfill(500 - strlen("rfc822;"), 'o');
  g_autofree char *o500 = g_strdup_printf("ORCPT=rfc822;%s", address);
  g_autofree char *o501 = g_strdup_printf("ORCPT=rfc822;%so", address);
  g_autoptr(PstSmtpPath) orcpt_ok = params_path(PST_SMTP_PATH_RCPT, o500);
  g_autoptr(PstSmtpPath) orcpt_long = params_path(PST_SMTP_PATH_RCPT, o501);
  PstRcptParams rcpt;
  g_assert_null(pst_smtp_rcpt_params_parse(orcpt_ok->params, &rcpt));
  pst_rcpt_params_clear(&rcpt);
  g_assert_true(pst_smtp_rcpt_params_parse(orcpt_long->params, &rcpt) ==
                BAD_VALUE);
  /* A NULL or empty array has no parameters. */
  g_assert_null(pst_smtp_mail_params_parse(NULL, 0, &mail));
  g_assert_null(pst_smtp_rcpt_params_parse(NULL, &rcpt));
}

/* --- xtext --------------------------------------------------------------- */

static void test_xtext(void) {
  static const struct {
    const char *encoded;
    const char *decoded; /* NULL: refused */
  } cases[] = {
      {"", ""},         {"abc", "abc"},   {"a+2Bb", "a+b"},
      {"a+2bb", "a+b"}, /* lower-case hex accepted */
      {"+3D", "="},     {"+20+7E", " ~"}, {"+FF", "\xff"},
      {"+", NULL},      {"+2", NULL},     {"a+", NULL},
      {"+G0", NULL},    {"+00", NULL},    {"a=b", NULL},
      {"a b", NULL},    {"a\x7f", NULL},  {"\xc3\xa9", NULL},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *decoded = NULL;
    gboolean ok =
        pst_xtext_decode(cases[i].encoded, strlen(cases[i].encoded), &decoded);
    g_assert_cmpint(ok, ==, cases[i].decoded != NULL);
    g_assert_cmpstr(decoded, ==, cases[i].decoded);
  }
  static const struct {
    const char *plain;
    const char *encoded;
  } encode_cases[] = {
      {"", ""},
      {"user@example.org", "user@example.org"},
      {"a+b=c d", "a+2Bb+3Dc+20d"},
      {"\r\n\xc3\xa9", "+0D+0A+C3+A9"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(encode_cases); i++) {
    g_autofree char *encoded = pst_xtext_encode(encode_cases[i].plain);
    g_assert_cmpstr(encoded, ==, encode_cases[i].encoded);
  }
  /* Every octet but NUL survives encode + decode. */
  char all[256];
  for (int c = 1; c < 256; c++)
    all[c - 1] = (char)c;
  all[255] = '\0';
  g_autofree char *encoded = pst_xtext_encode(all);
  g_autofree char *decoded = NULL;
  g_assert_true(pst_xtext_decode(encoded, strlen(encoded), &decoded));
  g_assert_cmpstr(decoded, ==, all);
}

/* RFC 6533 utf-8-addr-xtext: ASCII out, and decode gives the input back. */
static void test_utf8_addr_xtext_encode(void) {
  static const struct {
    const char *plain;
    const char *encoded;
  } cases[] = {
      {"user@example.org", "user@example.org"},
      {"j\xc3\xbcrgen@example.net", "j\\x{FC}rgen@example.net"},
      {"a+b=c\\d e", "a\\x{2B}b\\x{3D}c\\x{5C}d\\x{20}e"},
      {"\xf0\x9f\x98\x80@x", "\\x{1F600}@x"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *encoded = pst_utf8_addr_xtext_encode(cases[i].plain);
    g_assert_cmpstr(encoded, ==, cases[i].encoded);
    g_autofree char *decoded = NULL;
    g_assert_true(
        pst_utf8_addr_xtext_decode(encoded, strlen(encoded), &decoded));
    g_assert_cmpstr(decoded, ==, cases[i].plain);
  }
}

static void test_text_is_clean(void) {
  g_assert_true(pst_smtp_text_is_clean("", 0));
  g_assert_true(pst_smtp_text_is_clean("a b", 3));
  g_assert_true(pst_smtp_text_is_clean("\xc2\xa0", 2));
  g_assert_false(pst_smtp_text_is_clean("\xc2\x9f", 2));
  g_assert_false(pst_smtp_text_is_clean("a\tb", 3));
  g_assert_false(pst_smtp_text_is_clean("\x7f", 1));
  g_assert_false(pst_smtp_text_is_clean("a\0b", 3));
  g_assert_false(pst_smtp_text_is_clean("\xc2", 1));
}

/* --- Registration -------------------------------------------------------- */

#define ADD_CASES(prefix, cases, func)                                         \
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {                            \
    g_autofree char *test_path_name =                                          \
        g_strdup_printf("%s/%s", prefix, cases[i].name);                       \
    g_test_add_data_func(test_path_name, &cases[i], func);                     \
  }

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  ADD_CASES("/smtp/command", command_cases, test_command);
  g_test_add_func("/smtp/command/limits", test_command_limits);
  g_test_add_func("/smtp/command/verb-names", test_verb_to_string);
  ADD_CASES("/smtp/path", path_cases, test_path);
  g_test_add_func("/smtp/path/limits", test_path_limits);
  ADD_CASES("/smtp/path/lenient", lenient_cases, test_path_lenient);
  g_test_add_func("/smtp/path/lenient-superset", test_path_lenient_superset);
  g_test_add_func("/smtp/domain/table", test_domain);
  g_test_add_func("/smtp/domain/a-label-length", test_a_label_length);
  g_test_add_func("/smtp/domain/address-literal", test_address_literal);
  ADD_CASES("/smtp/mail-params", mail_params_cases, test_mail_params);
  ADD_CASES("/smtp/rcpt-params", rcpt_params_cases, test_rcpt_params);
  g_test_add_func("/smtp/params/limits", test_params_limits);
  g_test_add_func("/smtp/xtext/table", test_xtext);
  g_test_add_func("/smtp/xtext/utf8-addr-encode", test_utf8_addr_xtext_encode);
  g_test_add_func("/smtp/text/clean", test_text_is_clean);
  return g_test_run();
}
