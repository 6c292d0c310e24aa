/* test-deliver-bounce.c - the DSN builder: parts, fields from the
 * envelope (ENVID, ORCPT), RET=HDRS, success, delay and SMTPUTF8
 * (RFC 6533) reports.  The full format is
 * parsed back with Python's email module in tests/e2e. */
#include <string.h>

#include "deliver/bounce.h"

static const char original[] =
    "Subject: hi\r\nFrom: a@client.example\r\n\r\nbody line\r\n";

static char *build_for(PstDsnRet ret, const char *action, gboolean utf8,
                       const char *address, const char *orcpt) {
  g_autoptr(PstEnvelope) envelope = pst_envelope_new();
  envelope->sender = g_strdup("a@client.example");
  envelope->smtputf8 = utf8;
  envelope->envid = g_strdup("ENV-1");
  envelope->ret = ret;
  envelope->arrival_time = 1700000000000000;
  PstDsnRecipient recipient = {address,
                               orcpt,
                               action,
                               "5.1.1",
                               "550 5.1.1 bob@example.org: User unknown",
                               1700000001000000,
                               g_str_equal(action, "delayed") ? 1700400000000000
                                                              : 0};
  g_autoptr(GPtrArray) list = g_ptr_array_new();
  g_ptr_array_add(list, &recipient);
  g_autoptr(GBytes) content = g_bytes_new_static(original, strlen(original));
  g_autoptr(GBytes) dsn =
      pst_dsn_build("mx.example.org", "0N6Q3J8Z2K4M0000", envelope, list,
                    content, TRUE, 1700000002000000);
  return g_strndup(g_bytes_get_data(dsn, NULL), g_bytes_get_size(dsn));
}

static char *build(PstDsnRet ret, const char *action) {
  return build_for(ret, action, FALSE, "bob@example.org",
                   "rfc822;Bob@example.org");
}

static void test_failed_full(void) {
  g_autofree char *text = build(PST_DSN_RET_DEFAULT, "failed");
  static const char *const wanted[] = {
      "To: <a@client.example>\r\n",
      "Subject: Undelivered Mail Returned to Sender\r\n",
      "Auto-Submitted: auto-replied\r\n",
      "report-type=delivery-status",
      "Reporting-MTA: dns; mx.example.org\r\n",
      "Original-Envelope-Id: ENV-1\r\n",
      "Final-Recipient: rfc822; bob@example.org\r\n",
      "Original-Recipient: rfc822; Bob@example.org\r\n",
      "Action: failed\r\nStatus: 5.1.1\r\n",
      "Diagnostic-Code: smtp; 550 5.1.1 bob@example.org: User unknown\r\n",
      "Content-Type: message/rfc822\r\n",
      "body line\r\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS(wanted); i++)
    if (strstr(text, wanted[i]) == NULL)
      g_error("missing \"%s\" in:\n%s", wanted[i], text);
  g_assert_null(strstr(text, "\r\n\r\n\r\n\r\n"));
  g_assert_null(strstr(text, "\n\n"));
}

static void test_headers_only(void) {
  g_autofree char *text = build(PST_DSN_RET_HDRS, "failed");
  g_assert_nonnull(strstr(text, "Content-Type: text/rfc822-headers\r\n"));
  g_assert_null(strstr(text, "body line"));
  g_autofree char *success = build(PST_DSN_RET_DEFAULT, "delivered");
  g_assert_nonnull(strstr(success, "Successful Mail Delivery Report"));
  g_assert_null(strstr(success, "body line"));
}

static void test_delayed(void) {
  g_autofree char *text = build(PST_DSN_RET_DEFAULT, "delayed");
  g_assert_nonnull(strstr(text, "Subject: Delayed Mail (still being "
                                "retried)\r\n"));
  g_assert_nonnull(strstr(text, "Action: delayed\r\n"));
  g_assert_nonnull(strstr(text, "Will-Retry-Until: "));
  g_assert_nonnull(strstr(text, "Content-Type: text/rfc822-headers\r\n"));
  g_assert_null(strstr(text, "body line"));
  g_autofree char *failed = build(PST_DSN_RET_DEFAULT, "failed");
  g_assert_null(strstr(failed, "Will-Retry-Until"));
}

/* RFC 6533: global types; utf-8 address type only for non-ASCII ones. */
static void test_smtputf8(void) {
  g_autofree char *text = build_for(PST_DSN_RET_DEFAULT, "failed", TRUE,
                                    "b\xc3\xb8"
                                    "b@example.org",
                                    "rfc822;Bob@example.org");
  static const char *const wanted[] = {
      "report-type=global-delivery-status",
      "Content-Type: text/plain; charset=utf-8\r\n",
      "Content-Type: message/global-delivery-status\r\n",
      "Final-Recipient: utf-8; b\xc3\xb8"
      "b@example.org\r\n",
      "Content-Type: message/global\r\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS(wanted); i++)
    if (strstr(text, wanted[i]) == NULL)
      g_error("missing \"%s\" in:\n%s", wanted[i], text);
  g_autofree char *ascii =
      build_for(PST_DSN_RET_HDRS, "failed", TRUE, "bob@example.org",
                "rfc822;Bob@example.org");
  g_assert_nonnull(strstr(ascii, "Final-Recipient: rfc822; bob@example.org"));
  g_assert_nonnull(strstr(ascii, "Content-Type: message/global-headers\r\n"));
}

/* A UTF-8 ORCPT (kept decoded, whatever type it came with) is of type
 * utf-8: as it is in a global report, as utf-8-addr-xtext in a plain one. */
static void test_utf8_orcpt(void) {
  g_autofree char *global =
      build_for(PST_DSN_RET_HDRS, "delivered", TRUE,
                "j\xc3\xbcrgen@example.net", "rfc822;J\xc3\xbcrgen@example.net");
  g_assert_nonnull(strstr(global, "Original-Recipient: utf-8; "
                                  "J\xc3\xbcrgen@example.net\r\n"));
  g_autofree char *plain =
      build_for(PST_DSN_RET_HDRS, "delivered", FALSE, "jurgen@example.net",
                "utf-8;J\xc3\xbcrgen+x@example.net");
  g_assert_nonnull(strstr(plain, "Original-Recipient: utf-8; "
                                 "J\\x{FC}rgen\\x{2B}x@example.net\r\n"));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/bounce/failed-full", test_failed_full);
  g_test_add_func("/deliver/bounce/headers-only", test_headers_only);
  g_test_add_func("/deliver/bounce/delayed", test_delayed);
  g_test_add_func("/deliver/bounce/smtputf8", test_smtputf8);
  g_test_add_func("/deliver/bounce/utf8-orcpt", test_utf8_orcpt);
  return g_test_run();
}
