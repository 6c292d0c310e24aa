/* smtp-auth.c - the pure parsers of SMTP AUTH (RFC 4954): the argument of
 * the command, the lines of the 334 exchange and their base64.
 *
 * The base64 decoder is strict where GLib's is lenient (g_base64_decode
 * skips characters outside the alphabet): a response that is not exactly
 * base64 is refused with 501, never guessed at.  Decoded buffers may hold
 * a password: every path that drops one wipes it first.
 *
 * Callers: core/session/session-auth.c, core/hooks/sasl-service.c; fuzzed
 * by fuzz/fuzz-auth.c.
 */
#include <string.h>

#include "smtp/smtp-auth.h"

const PstSmtpReply pst_smtp_reply_auth_syntax = {
    501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"};
const PstSmtpReply pst_smtp_reply_auth_base64 = {
    501, "5.5.2", "Error: authentication response is not valid base64"};

gboolean pst_smtp_line_is_auth(const char *line, gsize length) {
  return length >= 5 && g_ascii_strncasecmp(line, "AUTH ", 5) == 0;
}

/* The 6-bit value of a base64 character, or -1. */
static int base64_value(guchar c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

gboolean pst_sasl_base64_decode(const char *text, gsize length, guint8 **data_r,
                                gsize *length_r) {
  *data_r = NULL;
  *length_r = 0;
  if (length % 4 != 0)
    return FALSE;
  gsize padding = 0;
  if (length > 0 && text[length - 1] == '=')
    padding = length > 1 && text[length - 2] == '=' ? 2 : 1;
  guint8 *out = g_malloc(length / 4 * 3 + 1);
  gsize n = 0;
  for (gsize i = 0; i < length; i += 4) {
    guint32 quantum = 0;
    gsize valid = i + 4 == length ? 4 - padding : 4;
    for (gsize j = 0; j < 4; j++) {
      int value = j < valid ? base64_value((guchar)text[i + j]) : 0;
      if (value < 0) {
        memset(out, 0, length / 4 * 3 + 1);
        g_free(out);
        return FALSE;
      }
      quantum = quantum << 6 | (guint32)value;
    }
    out[n++] = quantum >> 16;
    if (valid > 2)
      out[n++] = (quantum >> 8) & 0xff;
    if (valid > 3)
      out[n++] = quantum & 0xff;
  }
  out[n] = '\0';
  *data_r = out;
  *length_r = n;
  return TRUE;
}

static gboolean mechanism_char_is_valid(char c) {
  return g_ascii_isupper(c) || g_ascii_isdigit(c) || c == '-' || c == '_';
}

const PstSmtpReply *pst_smtp_auth_parse(const char *argument, gsize length,
                                        PstSmtpAuthArgs *args_r) {
  memset(args_r, 0, sizeof *args_r);
  const char *space = memchr(argument, ' ', length);
  gsize mechanism_length = space != NULL ? (gsize)(space - argument) : length;
  if (mechanism_length == 0 || mechanism_length > PST_SMTP_MAX_MECHANISM)
    return &pst_smtp_reply_auth_syntax;
  for (gsize i = 0; i < mechanism_length; i++) {
    char c = g_ascii_toupper(argument[i]);
    if (!mechanism_char_is_valid(c)) {
      memset(args_r, 0, sizeof *args_r);
      return &pst_smtp_reply_auth_syntax;
    }
    args_r->mechanism[i] = c;
  }
  if (space == NULL)
    return NULL;
  /* One space, then the response, which has no space of its own. */
  const char *response = space + 1;
  gsize response_length = length - mechanism_length - 1;
  if (response_length == 0 || memchr(response, ' ', response_length)) {
    memset(args_r, 0, sizeof *args_r);
    return &pst_smtp_reply_auth_syntax;
  }
  args_r->has_response = TRUE;
  if (response_length == 1 && response[0] == '=') {
    args_r->response = g_malloc0(1);
    return NULL;
  }
  if (!pst_sasl_base64_decode(response, response_length, &args_r->response,
                              &args_r->response_length)) {
    memset(args_r, 0, sizeof *args_r);
    return &pst_smtp_reply_auth_base64;
  }
  return NULL;
}

void pst_smtp_auth_args_clear(PstSmtpAuthArgs *args) {
  if (args->response != NULL)
    memset(args->response, 0, args->response_length);
  g_clear_pointer(&args->response, g_free);
  args->response_length = 0;
  args->has_response = FALSE;
}

PstSmtpAuthLine pst_smtp_auth_line_parse(const char *line, gsize length,
                                         guint8 **data_r, gsize *length_r) {
  *data_r = NULL;
  *length_r = 0;
  if (length == 1 && line[0] == '*')
    return PST_SMTP_AUTH_LINE_ABORT;
  /* An empty line is an empty response (RFC 4954 section 4). */
  if (!pst_sasl_base64_decode(line, length, data_r, length_r))
    return PST_SMTP_AUTH_LINE_BAD;
  return PST_SMTP_AUTH_LINE_DATA;
}
