/* test-smtp-auth.c - tables for the AUTH parsers (smtp-auth.c): the
 * command's argument, the exchange lines and the strict base64.
 *
 * One GTest case per row (/smtp/auth/args/..., /smtp/auth/line/...,
 * /smtp/auth/base64/...), so a failure names the row.
 */
#include <string.h>

#include "smtp/smtp-auth.h"
#include "smtp/smtp-parse.h"

typedef struct {
  const char *name;
  const char *argument;
  const PstSmtpReply *refusal;
  const char *mechanism;
  gboolean has_response;
  const char *response; /* decoded; may hold NULs, see length */
  gsize response_length;
} ArgsRow;

static const ArgsRow args_rows[] = {
    {"plain-bare", "PLAIN", NULL, "PLAIN", FALSE, NULL, 0},
    {"lower-case", "plain", NULL, "PLAIN", FALSE, NULL, 0},
    {"initial", "PLAIN AGFsaWNlAHMzY3JldA==", NULL, "PLAIN", TRUE,
     "\0alice\0s3cret", 13},
    {"empty-initial", "PLAIN =", NULL, "PLAIN", TRUE, "", 0},
    {"scram", "SCRAM-SHA-256", NULL, "SCRAM-SHA-256", FALSE, NULL, 0},
    {"underscore", "X_Y", NULL, "X_Y", FALSE, NULL, 0},
    {"twenty", "ABCDEFGHIJKLMNOPQRST", NULL, "ABCDEFGHIJKLMNOPQRST", FALSE,
     NULL, 0},
    {"twenty-one", "ABCDEFGHIJKLMNOPQRSTU", &pst_smtp_reply_auth_syntax},
    {"empty", "", &pst_smtp_reply_auth_syntax},
    {"bad-char", "PLA!N", &pst_smtp_reply_auth_syntax},
    {"utf8", "PL\xc3\x84IN", &pst_smtp_reply_auth_syntax},
    {"two-args", "PLAIN AAAA BBBB", &pst_smtp_reply_auth_syntax},
    {"double-space", "PLAIN  AAAA", &pst_smtp_reply_auth_syntax},
    {"trailing-space", "PLAIN ", &pst_smtp_reply_auth_syntax},
    {"bad-base64", "PLAIN AAA", &pst_smtp_reply_auth_base64},
    {"bad-base64-char", "PLAIN AA*A", &pst_smtp_reply_auth_base64},
    {"bad-padding", "PLAIN A===", &pst_smtp_reply_auth_base64},
    {"padding-inside", "PLAIN AA==AAAA", &pst_smtp_reply_auth_base64},
};

static void test_args(gconstpointer data) {
  const ArgsRow *row = data;
  PstSmtpAuthArgs args;
  const PstSmtpReply *refusal =
      pst_smtp_auth_parse(row->argument, strlen(row->argument), &args);
  g_assert_true(refusal == row->refusal);
  if (refusal != NULL) {
    g_assert_null(args.response);
    return;
  }
  g_assert_cmpstr(args.mechanism, ==, row->mechanism);
  g_assert_cmpint(args.has_response, ==, row->has_response);
  if (row->has_response) {
    g_assert_nonnull(args.response);
    g_assert_cmpmem(args.response, args.response_length, row->response,
                    row->response_length);
  }
  pst_smtp_auth_args_clear(&args);
  g_assert_null(args.response);
}

typedef struct {
  const char *name;
  const char *line;
  PstSmtpAuthLine kind;
  const char *data;
} LineRow;

static const LineRow line_rows[] = {
    {"abort", "*", PST_SMTP_AUTH_LINE_ABORT, NULL},
    {"empty", "", PST_SMTP_AUTH_LINE_DATA, ""},
    {"user", "YWxpY2U=", PST_SMTP_AUTH_LINE_DATA, "alice"},
    {"two-pad", "YQ==", PST_SMTP_AUTH_LINE_DATA, "a"},
    {"no-pad", "YWJj", PST_SMTP_AUTH_LINE_DATA, "abc"},
    {"star-star", "**", PST_SMTP_AUTH_LINE_BAD, NULL},
    {"space", "YWxp Y2U=", PST_SMTP_AUTH_LINE_BAD, NULL},
    {"short", "YWx", PST_SMTP_AUTH_LINE_BAD, NULL},
    {"url-safe", "YW-_", PST_SMTP_AUTH_LINE_BAD, NULL},
    {"equals-only", "====", PST_SMTP_AUTH_LINE_BAD, NULL},
};

static void test_line(gconstpointer data) {
  const LineRow *row = data;
  guint8 *out = NULL;
  gsize length = 0;
  PstSmtpAuthLine kind =
      pst_smtp_auth_line_parse(row->line, strlen(row->line), &out, &length);
  g_assert_cmpint(kind, ==, row->kind);
  if (row->data == NULL) {
    g_assert_null(out);
    return;
  }
  g_assert_cmpmem(out, length, row->data, strlen(row->data));
  g_free(out);
}

/* Every octet string of a few lengths survives GLib's encoder and our
 * decoder. */
static void test_base64_round_trip(void) {
  for (gsize length = 0; length < 40; length++) {
    guint8 input[40];
    for (gsize i = 0; i < length; i++)
      input[i] = (guint8)(i * 37 + length);
    g_autofree char *encoded = g_base64_encode(input, length);
    g_autofree guint8 *decoded = NULL;
    gsize decoded_length = 0;
    g_assert_true(pst_sasl_base64_decode(encoded, strlen(encoded), &decoded,
                                         &decoded_length));
    g_assert_cmpmem(decoded, decoded_length, input, length);
  }
}

/* The AUTH command line may be 12288 octets with CRLF, others 512. */
static void test_command_limits(void) {
  PstSmtpCommand command;
  g_autoptr(GString) line = g_string_new("AUTH PLAIN ");
  while (line->len < PST_SMTP_MAX_AUTH_LINE - 2)
    g_string_append_c(line, 'A');
  g_assert_null(pst_smtp_command_parse(line->str, line->len, &command));
  g_assert_cmpint(command.verb, ==, PST_SMTP_VERB_AUTH);
  g_string_append_c(line, 'A');
  g_assert_true(pst_smtp_command_parse(line->str, line->len, &command) ==
                &pst_smtp_reply_line_too_long);
  g_autoptr(GString) noop = g_string_new("NOOP ");
  while (noop->len < PST_SMTP_MAX_COMMAND_LINE - 1)
    g_string_append_c(noop, 'A');
  g_assert_true(pst_smtp_command_parse(noop->str, noop->len, &command) ==
                &pst_smtp_reply_line_too_long);
  g_assert_true(pst_smtp_line_is_auth("auth x", 6));
  g_assert_false(pst_smtp_line_is_auth("AUTHX", 5));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(args_rows); i++) {
    g_autofree char *path =
        g_strdup_printf("/smtp/auth/args/%s", args_rows[i].name);
    g_test_add_data_func(path, &args_rows[i], test_args);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(line_rows); i++) {
    g_autofree char *path =
        g_strdup_printf("/smtp/auth/line/%s", line_rows[i].name);
    g_test_add_data_func(path, &line_rows[i], test_line);
  }
  g_test_add_func("/smtp/auth/base64/round-trip", test_base64_round_trip);
  g_test_add_func("/smtp/auth/command-limits", test_command_limits);
  return g_test_run();
}
