/* fuzz-auth.c - fuzzes the AUTH parsers (core/smtp/smtp-auth.c).
 *
 * Input: the AUTH argument, also taken as a line of the 334 exchange.
 * Beyond "no crash, no leak" it checks what a parse promises: the
 * mechanism is 1-20 of [A-Z0-9-_]; a decoded response re-encodes (GLib's
 * encoder) to the input; a refusal leaves nothing allocated.
 */
#include <stdint.h>
#include <string.h>

#include "smtp/smtp-auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reencodes(const char *text, gsize length,
                            const guint8 *decoded, gsize decoded_length) {
  g_autofree char *encoded = g_base64_encode(decoded, decoded_length);
  /* Non-canonical trailing bits decode too; compare all but the last
   * quantum's last character. */
  g_assert_cmpuint(strlen(encoded), ==, length);
  if (length >= 4)
    g_assert_true(memcmp(encoded, text, length - 4) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  PstSmtpAuthArgs args;
  if (pst_smtp_auth_parse(text, size, &args) == NULL) {
    gsize length = strlen(args.mechanism);
    g_assert_cmpuint(length, >=, 1);
    g_assert_cmpuint(length, <=, PST_SMTP_MAX_MECHANISM);
    for (gsize i = 0; i < length; i++)
      g_assert_true(g_ascii_isupper(args.mechanism[i]) ||
                    g_ascii_isdigit(args.mechanism[i]) ||
                    args.mechanism[i] == '-' || args.mechanism[i] == '_');
    g_assert_true(args.has_response || args.response == NULL);
    pst_smtp_auth_args_clear(&args);
  } else {
    g_assert_null(args.response);
  }
  guint8 *decoded = NULL;
  gsize decoded_length = 0;
  PstSmtpAuthLine kind =
      pst_smtp_auth_line_parse(text, size, &decoded, &decoded_length);
  if (kind == PST_SMTP_AUTH_LINE_DATA)
    check_reencodes(text, size, decoded, decoded_length);
  else
    g_assert_null(decoded);
  g_free(decoded);
  return 0;
}
