/* fuzz-smtp-reply.c - fuzzes the outbound client's reply parser and the
 * transaction state machine it feeds.
 *
 * Input: what a hostile SMTP server sends.  Replies are parsed one after
 * the other, as the client does; each must consume at least one octet and
 * no more than it was given, keep its text printable and bounded, and a
 * 250 reply is read as EHLO keywords too.  Every reply is fed to a
 * pipelined three-recipient transaction (as if content was sent when
 * asked): whatever arrives, once done every recipient has a result.
 */
#include <stdint.h>
#include <string.h>

#include "deliver/smtp-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const PstSmtpResponse *reply) {
  g_assert_cmpuint(reply->code, >=, 200);
  g_assert_cmpuint(reply->code, <=, 559);
  g_assert_cmpuint(strlen(reply->text), <=, PST_SMTP_RESPONSE_TEXT_MAX);
  for (const char *p = reply->text; *p; p++)
    g_assert_true(*p >= 0x20 && *p < 0x7f);
  g_assert_cmpint(reply->enhanced[0], ==, '0' + (int)(reply->code / 100));
  g_assert_cmpuint(reply->line_count, <=, PST_SMTP_RESPONSE_LINES_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const rcpts[] = {"RCPT TO:<a@x>", "RCPT TO:<b@x>",
                                      "RCPT TO:<c@x>", NULL};
  g_autoptr(PstSmtpTransaction) transaction =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", rcpts, TRUE);
  g_autoptr(GString) wire = g_string_new(NULL);
  gsize offset = 0;
  while (offset < size && !pst_smtp_transaction_is_done(transaction)) {
    pst_smtp_transaction_next(transaction, wire);
    gsize consumed = 0;
    PstSmtpResponse *reply = NULL;
    char *problem = NULL;
    PstSmtpParseStatus status =
        pst_smtp_response_parse((const char *)data + offset, size - offset,
                                &consumed, &reply, &problem);
    if (status != PST_SMTP_PARSE_OK) {
      g_assert_true(status == PST_SMTP_PARSE_NEED_MORE || problem != NULL);
      g_free(problem);
      break;
    }
    g_assert_cmpuint(consumed, >, 0);
    g_assert_cmpuint(consumed, <=, size - offset);
    offset += consumed;
    check_reply(reply);
    if (reply->code == 250) {
      PstSmtpExtensions extensions;
      pst_smtp_extensions_parse(reply, &extensions);
    }
    pst_smtp_transaction_reply(transaction, reply);
    pst_smtp_response_free(reply);
  }
  g_autoptr(PstSmtpResponse) lost = pst_smtp_response_new(451, "4.4.2", "lost");
  pst_smtp_transaction_fail(transaction, lost);
  for (guint i = 0; i < 3; i++)
    g_assert_nonnull(pst_smtp_transaction_get_result(transaction, i, NULL));
  return 0;
}
