/* fuzz-command.c - fuzzes the command line parser and what follows it.
 *
 * The input is one command line (without CRLF).  It goes through
 * pst_smtp_command_parse(); a MAIL or RCPT argument then goes through
 * pst_smtp_path_parse() (with and without UTF-8) and the typed parameter
 * parsers, the way the session chains them.  Checks that the argument lies
 * inside the line and is trimmed, that only AUTH lines pass the 512-octet
 * limit (RFC 4954's 12288 for an initial response: fuzz-auth.c parses its
 * argument), and that nothing leaks or overreads.
 */
#include <stdint.h>
#include <string.h>

#include "smtp/smtp-auth.h"
#include "smtp/smtp-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void path_check(const char *argument, gsize length, PstSmtpPathKind kind,
                       gboolean allow_utf8) {
  g_autoptr(PstSmtpPath) path = NULL;
  const PstSmtpReply *reply =
      pst_smtp_path_parse(argument, length, kind, allow_utf8, &path);
  g_assert_true((reply == NULL) == (path != NULL));
  if (path == NULL)
    return;
  if (kind == PST_SMTP_PATH_MAIL) {
    PstMailParams params;
    if (pst_smtp_mail_params_parse(path->params, 1000000, &params) == NULL)
      pst_mail_params_clear(&params);
    else
      g_assert_nonnull(params.bad_keyword);
  } else {
    PstRcptParams params;
    if (pst_smtp_rcpt_params_parse(path->params, &params) == NULL)
      pst_rcpt_params_clear(&params);
    else
      g_assert_nonnull(params.bad_keyword);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *line = (const char *)data;
  PstSmtpCommand command;
  const PstSmtpReply *reply = pst_smtp_command_parse(line, size, &command);
  if (reply != NULL) {
    g_assert_cmpuint(reply->code, ==, 500);
    return 0;
  }
  g_assert_true(command.verb < PST_SMTP_VERB_COUNT);
  g_assert_nonnull(pst_smtp_verb_to_string(command.verb));
  if (command.verb == PST_SMTP_VERB_NOT_SMTP)
    return 0;
  g_assert_true(command.argument >= line &&
                command.argument + command.argument_length <= line + size);
  /* Only AUTH, whose initial response may be long, passes 510 octets. */
  if (size > PST_SMTP_MAX_COMMAND_LINE - 2) {
    g_assert_cmpuint(size, <=, PST_SMTP_MAX_AUTH_LINE - 2);
    g_assert_true(pst_smtp_line_is_auth(line, size));
    g_assert_cmpint(command.verb, ==, PST_SMTP_VERB_AUTH);
  }
  if (command.argument_length > 0) {
    g_assert_true(command.argument[0] != ' ');
    g_assert_true(command.argument[command.argument_length - 1] != ' ');
  }
  if (command.verb == PST_SMTP_VERB_MAIL ||
      command.verb == PST_SMTP_VERB_RCPT) {
    PstSmtpPathKind kind = command.verb == PST_SMTP_VERB_MAIL
                               ? PST_SMTP_PATH_MAIL
                               : PST_SMTP_PATH_RCPT;
    path_check(command.argument, command.argument_length, kind, FALSE);
    path_check(command.argument, command.argument_length, kind, TRUE);
  }
  return 0;
}
