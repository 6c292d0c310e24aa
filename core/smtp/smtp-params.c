/* smtp-params.c - the typed meaning of MAIL and RCPT parameters.
 *
 * Entry points: pst_smtp_mail_params_parse(), pst_smtp_rcpt_params_parse()
 * and their _clear() functions.  The session calls them with the params of
 * a path from pst_smtp_path_parse(), which has already checked the
 * keyword/value syntax and refused duplicates.  Each keyword has a small
 * handler in a table; a keyword without one is 555, a value of the wrong
 * form 501 (RFC 5321 4.1.1.11, RFC 1870, RFC 6152, RFC 6531, RFC 3461,
 * RFC 4954).
 *
 * On a refusal the output holds nothing to free and its bad_keyword points
 * at the parameter's keyword (inside `params`), so the session can name it
 * in a log line.
 */
#include <string.h>

#include "smtp/smtp-address.h"
#include "smtp/smtp-parse.h"

#define MAX_SIZE_DIGITS 20 /* RFC 1870 size-value */
#define MAX_ENVID 100      /* RFC 3461 4.4 */
#define MAX_ORCPT 500      /* RFC 3461 4.2 */

static gboolean value_equal(const char *value, const char *word) {
  return value != NULL && g_ascii_strcasecmp(value, word) == 0;
}

/* Printable US-ASCII, space included: what DSN fields may carry. */
static gboolean is_printable_ascii(const char *text) {
  for (const char *p = text; *p != '\0'; p++)
    if ((guint8)*p < 32 || (guint8)*p > 126)
      return FALSE;
  return TRUE;
}

/* --- MAIL ---------------------------------------------------------------- */

/* 1*20DIGIT; a value past G_MAXUINT64 saturates (it is over any limit). */
static gboolean size_parse(const char *value, guint64 *size_r) {
  gsize length = value != NULL ? strlen(value) : 0;
  if (length == 0 || length > MAX_SIZE_DIGITS)
    return FALSE;
  guint64 size = 0;
  for (gsize i = 0; i < length; i++) {
    if (!g_ascii_isdigit(value[i]))
      return FALSE;
    guint digit = (guint)(value[i] - '0');
    size = size > (G_MAXUINT64 - digit) / 10 ? G_MAXUINT64 : size * 10 + digit;
  }
  *size_r = size;
  return TRUE;
}

static const PstSmtpReply *mail_param_apply(const PstEsmtpParam *param,
                                            guint64 max_size,
                                            PstMailParams *out) {
  const char *key = param->keyword, *value = param->value;
  if (strcmp(key, "SIZE") == 0) {
    if (!size_parse(value, &out->size))
      return &pst_smtp_reply_bad_param_value;
    if (max_size != 0 && out->size > max_size)
      return &pst_smtp_reply_size_exceeded;
  } else if (strcmp(key, "BODY") == 0) {
    if (value_equal(value, "7BIT"))
      out->body = PST_BODY_7BIT;
    else if (value_equal(value, "8BITMIME"))
      out->body = PST_BODY_8BITMIME;
    else if (value_equal(value, "BINARYMIME"))
      return &pst_smtp_reply_unsupported_param; /* CHUNKING only */
    else
      return &pst_smtp_reply_bad_param_value;
  } else if (strcmp(key, "SMTPUTF8") == 0) {
    if (value != NULL)
      return &pst_smtp_reply_bad_param_value;
    out->smtputf8 = TRUE;
  } else if (strcmp(key, "RET") == 0) {
    if (value_equal(value, "FULL"))
      out->ret = PST_DSN_RET_FULL;
    else if (value_equal(value, "HDRS"))
      out->ret = PST_DSN_RET_HDRS;
    else
      return &pst_smtp_reply_bad_param_value;
  } else if (strcmp(key, "ENVID") == 0) {
    if (value == NULL || out->envid != NULL ||
        !pst_xtext_decode(value, strlen(value), &out->envid) ||
        out->envid[0] == '\0' || strlen(out->envid) > MAX_ENVID ||
        !is_printable_ascii(out->envid))
      return &pst_smtp_reply_bad_param_value;
  } else if (strcmp(key, "AUTH") == 0) {
    /* RFC 4954 5: "<>" or an xtext-encoded mailbox (UTF-8 with 6531). */
    if (value == NULL || out->auth != NULL ||
        !pst_xtext_decode(value, strlen(value), &out->auth) ||
        out->auth[0] == '\0' ||
        !pst_smtp_text_is_clean(out->auth, strlen(out->auth)))
      return &pst_smtp_reply_bad_param_value;
  } else {
    return &pst_smtp_reply_unsupported_param;
  }
  return NULL;
}

const PstSmtpReply *pst_smtp_mail_params_parse(const GPtrArray *params,
                                               guint64 max_size,
                                               PstMailParams *out) {
  g_return_val_if_fail(out != NULL, &pst_smtp_reply_mail_syntax);
  memset(out, 0, sizeof(*out));
  for (guint i = 0; params != NULL && i < params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(params, i);
    const PstSmtpReply *refusal = mail_param_apply(param, max_size, out);
    if (refusal != NULL) {
      pst_mail_params_clear(out);
      out->bad_keyword = param->keyword;
      return refusal;
    }
  }
  return NULL;
}

void pst_mail_params_clear(PstMailParams *params) {
  g_return_if_fail(params != NULL);
  g_free(params->envid);
  g_free(params->auth);
  memset(params, 0, sizeof(*params));
}

/* --- RCPT ---------------------------------------------------------------- */

/* "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1),
 * each at most once.  0 when malformed. */
static guint notify_parse(const char *value) {
  static const struct {
    const char *name;
    guint bit;
  } words[] = {{"SUCCESS", PST_DSN_NOTIFY_SUCCESS},
               {"FAILURE", PST_DSN_NOTIFY_FAILURE},
               {"DELAY", PST_DSN_NOTIFY_DELAY}};
  if (value_equal(value, "NEVER"))
    return PST_DSN_NOTIFY_NEVER;
  if (value == NULL)
    return 0;
  g_auto(GStrv) items = g_strsplit(value, ",", -1);
  guint notify = 0;
  for (guint i = 0; items[i] != NULL; i++) {
    guint bit = 0;
    for (gsize w = 0; w < G_N_ELEMENTS(words); w++)
      if (g_ascii_strcasecmp(items[i], words[w].name) == 0)
        bit = words[w].bit;
    if (bit == 0 || (notify & bit) != 0)
      return 0;
    notify |= bit;
  }
  return notify;
}

/* addr-type ";" xtext (RFC 3461 4.2) or "utf-8;" utf-8-addr (RFC 6533),
 * decoded to "rfc822;user@example.org" / "utf-8;...".  An rfc822 value
 * may decode to UTF-8: Postfix and others xtext-encode an SMTPUTF8
 * address that way ("rfc822;j+C3+BCrgen@example.net").  NULL if
 * malformed. */
static char *orcpt_parse(const char *value) {
  if (value == NULL || strlen(value) > MAX_ORCPT)
    return NULL;
  const char *semicolon = strchr(value, ';');
  if (semicolon == NULL || semicolon[1] == '\0')
    return NULL;
  gsize type_length = (gsize)(semicolon - value);
  const char *encoded = semicolon + 1;
  g_autofree char *decoded = NULL;
  if (type_length == 6 && g_ascii_strncasecmp(value, "rfc822", 6) == 0) {
    if (!pst_xtext_decode(encoded, strlen(encoded), &decoded) ||
        !pst_smtp_text_is_clean(decoded, strlen(decoded)))
      return NULL;
    return g_strconcat("rfc822;", decoded, NULL);
  }
  if (type_length == 5 && g_ascii_strncasecmp(value, "utf-8", 5) == 0) {
    if (!pst_utf8_addr_xtext_decode(encoded, strlen(encoded), &decoded) ||
        !pst_smtp_text_is_clean(decoded, strlen(decoded)))
      return NULL;
    return g_strconcat("utf-8;", decoded, NULL);
  }
  return NULL;
}

static const PstSmtpReply *rcpt_param_apply(const PstEsmtpParam *param,
                                            PstRcptParams *out) {
  if (strcmp(param->keyword, "NOTIFY") == 0) {
    out->notify = notify_parse(param->value);
    if (out->notify == 0)
      return &pst_smtp_reply_bad_param_value;
  } else if (strcmp(param->keyword, "ORCPT") == 0) {
    if (out->orcpt != NULL)
      return &pst_smtp_reply_bad_param_value;
    out->orcpt = orcpt_parse(param->value);
    if (out->orcpt == NULL)
      return &pst_smtp_reply_bad_param_value;
  } else {
    return &pst_smtp_reply_unsupported_param;
  }
  return NULL;
}

const PstSmtpReply *pst_smtp_rcpt_params_parse(const GPtrArray *params,
                                               PstRcptParams *out) {
  g_return_val_if_fail(out != NULL, &pst_smtp_reply_rcpt_syntax);
  memset(out, 0, sizeof(*out));
  for (guint i = 0; params != NULL && i < params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(params, i);
    const PstSmtpReply *refusal = rcpt_param_apply(param, out);
    if (refusal != NULL) {
      pst_rcpt_params_clear(out);
      out->bad_keyword = param->keyword;
      return refusal;
    }
  }
  return NULL;
}

void pst_rcpt_params_clear(PstRcptParams *params) {
  g_return_if_fail(params != NULL);
  g_free(params->orcpt);
  memset(params, 0, sizeof(*params));
}
