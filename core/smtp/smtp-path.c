/* smtp-path.c - the argument of MAIL and RCPT: "FROM:<path> [params]".
 *
 * Entry points: pst_smtp_path_parse() (and pst_smtp_path_parse_lenient(),
 * which also takes a path without its angle brackets), pst_smtp_path_free(),
 * pst_esmtp_param_free().  Called by the session for MAIL and RCPT, after
 * pst_smtp_command_parse() split off the verb; the typed meaning of the
 * parameters is smtp-params.c's job, the mailbox grammar smtp-address.c's.
 *
 * The steps, each with its own reply: the "FROM:"/"TO:" framing and the
 * angle brackets (501 5.5.4 Syntax), the path length (501 5.1.3), the
 * source route and mailbox (553 5.1.3, or 501 5.1.3 when too long), the
 * parameter list (501 5.5.4 Syntax), and last whether non-ASCII is allowed
 * (553 5.6.7).  On success the caller owns the returned PstSmtpPath; on a
 * refusal nothing is allocated.
 */
#include <string.h>

#include "smtp/smtp-address.h"
#include "smtp/smtp-parse.h"

void pst_esmtp_param_free(PstEsmtpParam *param) {
  if (param == NULL)
    return;
  g_free(param->keyword);
  g_free(param->value);
  g_free(param);
}

void pst_smtp_path_free(PstSmtpPath *path) {
  if (path == NULL)
    return;
  g_free(path->address);
  g_free(path->local_part);
  g_free(path->domain);
  if (path->params != NULL)
    g_ptr_array_unref(path->params);
  g_free(path);
}

static gboolean has_non_ascii(const char *text, gsize length) {
  for (gsize i = 0; i < length; i++)
    if ((guint8)text[i] >= 0x80)
      return TRUE;
  return FALSE;
}

/* Offset of the '>' that closes the path opened at text[0] == '<', skipping
 * quoted strings (a quoted local part may hold '>'), or 0 when none. */
static gsize path_end_find(const char *text, gsize length) {
  gboolean quoted = FALSE;
  for (gsize i = 1; i < length; i++) {
    if (quoted && text[i] == '\\')
      i++;
    else if (text[i] == '"')
      quoted = !quoted;
    else if (!quoted && text[i] == '>')
      return i;
  }
  return 0;
}

/* A-d-l ":" = "@" domain *("," "@" domain) ":".  Returns the octets it
 * takes (the colon included), or 0 when it is malformed. */
static gsize source_route_scan(const char *text, gsize length) {
  gsize i = 0;
  while (i < length && text[i] == '@') {
    gsize start = ++i;
    while (i < length && text[i] != ',' && text[i] != ':')
      i++;
    if (i == length || !pst_smtp_domain_is_valid(text + start, i - start, TRUE))
      return 0;
    if (text[i++] == ':')
      return i;
  }
  return 0;
}

/* --- Parameters ---------------------------------------------------------- */

static gboolean keyword_is_valid(const char *text, gsize length) {
  if (length == 0 || !g_ascii_isalnum(text[0]))
    return FALSE;
  for (gsize i = 1; i < length; i++)
    if (!g_ascii_isalnum(text[i]) && text[i] != '-')
      return FALSE;
  return TRUE;
}

/* esmtp-value: printable ASCII but '=' (RFC 5321), plus UTF-8 (RFC 6531,
 * checked by the caller). */
static gboolean value_is_valid(const char *text, gsize length) {
  if (length == 0)
    return FALSE;
  for (gsize i = 0; i < length; i++) {
    guint8 c = (guint8)text[i];
    if (c < 33 || c == '=' || c == 127)
      return FALSE;
  }
  return TRUE;
}

static gboolean params_have_keyword(GPtrArray *params, const char *keyword) {
  for (guint i = 0; i < params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(params, i);
    if (strcmp(param->keyword, keyword) == 0)
      return TRUE;
  }
  return FALSE;
}

/* Appends the parameter `text` (one space-separated word); FALSE when it
 * is malformed or a duplicate. */
static gboolean param_add(GPtrArray *params, const char *text, gsize length) {
  const char *equal = memchr(text, '=', length);
  gsize keyword_length = equal != NULL ? (gsize)(equal - text) : length;
  if (!keyword_is_valid(text, keyword_length))
    return FALSE;
  if (equal != NULL && !value_is_valid(equal + 1, length - keyword_length - 1))
    return FALSE;
  g_autofree char *keyword = g_ascii_strup(text, (gssize)keyword_length);
  if (params_have_keyword(params, keyword))
    return FALSE;
  PstEsmtpParam *param = g_new0(PstEsmtpParam, 1);
  param->keyword = g_steal_pointer(&keyword);
  if (equal != NULL)
    param->value = g_strndup(equal + 1, length - keyword_length - 1);
  g_ptr_array_add(params, param);
  return TRUE;
}

/* Splits "KEY[=VALUE] ..." (one or more spaces between, trailing spaces
 * allowed) into `params`.  FALSE on a malformed or duplicate parameter. */
static gboolean params_split(const char *text, gsize length,
                             GPtrArray *params) {
  gsize i = 0;
  while (i < length) {
    if (text[i] == ' ') {
      i++;
      continue;
    }
    const char *space = memchr(text + i, ' ', length - i);
    gsize end = space != NULL ? (gsize)(space - text) : length;
    if (!param_add(params, text + i, end - i))
      return FALSE;
    i = end;
  }
  return TRUE;
}

/* --- The path ------------------------------------------------------------ */

/* Fills `path` from the inside of the angle brackets.  NULL or a reply. */
static const PstSmtpReply *path_fill(const char *inner, gsize length,
                                     PstSmtpPathKind kind, PstSmtpPath *path) {
  if (length == 0 && kind == PST_SMTP_PATH_MAIL) {
    path->address = g_strdup("");
    path->local_part = g_strdup("");
    return NULL;
  }
  /* RFC 5321 4.1.1.3: <Postmaster> without a domain, any case. */
  if (kind == PST_SMTP_PATH_RCPT && length == strlen("postmaster") &&
      g_ascii_strncasecmp(inner, "postmaster", length) == 0) {
    path->address = g_strdup("postmaster");
    path->local_part = g_strndup(inner, length);
    return NULL;
  }
  if (length > 0 && inner[0] == '@') {
    gsize route = source_route_scan(inner, length);
    if (route == 0)
      return &pst_smtp_reply_bad_address;
    path->source_route = TRUE;
    inner += route;
    length -= route;
  }
  if (has_non_ascii(inner, length) && !pst_smtp_text_is_clean(inner, length))
    return &pst_smtp_reply_bad_address;
  gsize at = 0;
  const PstSmtpReply *refusal = pst_smtp_mailbox_check(inner, length, &at);
  if (refusal != NULL)
    return refusal;
  path->address = g_strndup(inner, length);
  path->local_part = g_strndup(inner, at);
  path->domain = g_strndup(inner + at + 1, length - at - 1);
  path->utf8 = has_non_ascii(inner, length);
  return NULL;
}

/* Octets of "FROM:"/"TO:" and the spaces after it, or 0 without it. */
static gsize prefix_scan(const char *argument, gsize length,
                         PstSmtpPathKind kind) {
  const char *prefix = kind == PST_SMTP_PATH_MAIL ? "FROM:" : "TO:";
  gsize i = strlen(prefix);
  if (length < i || g_ascii_strncasecmp(argument, prefix, i) != 0)
    return 0;
  while (i < length && argument[i] == ' ')
    i++;
  return i;
}

/* A bare path ("FROM:user@example.org [params]", lenient parsing only):
 * the octets from `open` to the first space or the end; sets *close_r to
 * its end (the index of that space, or `length`).  FALSE when empty or
 * holding an angle bracket. */
static gboolean bare_path_find(const char *argument, gsize length, gsize open,
                               gsize *close_r) {
  const char *space = memchr(argument + open, ' ', length - open);
  gsize close = space != NULL ? (gsize)(space - argument) : length;
  if (close == open || memchr(argument + open, '<', close - open) != NULL ||
      memchr(argument + open, '>', close - open) != NULL)
    return FALSE;
  *close_r = close;
  return TRUE;
}

static const PstSmtpReply *path_parse(const char *argument, gsize length,
                                      PstSmtpPathKind kind, gboolean allow_utf8,
                                      gboolean bare_ok, PstSmtpPath **path_r) {
  const PstSmtpReply *syntax = kind == PST_SMTP_PATH_MAIL
                                   ? &pst_smtp_reply_mail_syntax
                                   : &pst_smtp_reply_rcpt_syntax;
  g_return_val_if_fail(argument != NULL || length == 0, syntax);
  g_return_val_if_fail(path_r != NULL, syntax);
  *path_r = NULL;

  /* Framing: prefix, '<', the matching '>', then a space or the end (or,
   * lenient, a bare path up to a space).  `inner` is the path without
   * its brackets, `rest` where the parameters start. */
  gsize open = prefix_scan(argument, length, kind);
  if (open == 0 || open == length)
    return syntax;
  gsize inner, inner_length, rest;
  if (argument[open] == '<') {
    gsize close = path_end_find(argument + open, length - open);
    if (close == 0)
      return syntax;
    close += open;
    if (close + 1 < length && argument[close + 1] != ' ')
      return syntax;
    if (close - open + 1 > PST_SMTP_MAX_PATH)
      return &pst_smtp_reply_address_too_long;
    inner = open + 1;
    inner_length = close - open - 1;
    rest = close + 1;
  } else {
    gsize close = 0;
    if (!bare_ok || !bare_path_find(argument, length, open, &close))
      return syntax;
    if (close - open + 2 > PST_SMTP_MAX_PATH)
      return &pst_smtp_reply_address_too_long;
    inner = open;
    inner_length = close - open;
    rest = close;
  }

  g_autoptr(PstSmtpPath) path = g_new0(PstSmtpPath, 1);
  const PstSmtpReply *refusal =
      path_fill(argument + inner, inner_length, kind, path);
  if (refusal != NULL)
    return refusal;

  /* Parameters; their UTF-8 is checked once for all of them. */
  const char *params = argument + rest;
  gsize params_length = length - rest;
  path->params =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_esmtp_param_free);
  if (!params_split(params, params_length, path->params))
    return syntax;
  gboolean params_utf8 = has_non_ascii(params, params_length);
  if (params_utf8 && !pst_smtp_text_is_clean(params, params_length))
    return syntax;

  /* Non-ASCII needs SMTPUTF8: the session's word, or for MAIL the
   * parameter in this very command. */
  gboolean utf8_allowed =
      allow_utf8 || (kind == PST_SMTP_PATH_MAIL &&
                     params_have_keyword(path->params, "SMTPUTF8"));
  if (!utf8_allowed && path->utf8)
    return &pst_smtp_reply_utf8_required;
  if (!utf8_allowed && params_utf8)
    return syntax;
  *path_r = g_steal_pointer(&path);
  return NULL;
}

const PstSmtpReply *pst_smtp_path_parse(const char *argument, gsize length,
                                        PstSmtpPathKind kind,
                                        gboolean allow_utf8,
                                        PstSmtpPath **path_r) {
  return path_parse(argument, length, kind, allow_utf8, FALSE, path_r);
}

const PstSmtpReply *pst_smtp_path_parse_lenient(const char *argument,
                                                gsize length,
                                                PstSmtpPathKind kind,
                                                gboolean allow_utf8,
                                                PstSmtpPath **path_r) {
  return path_parse(argument, length, kind, allow_utf8, TRUE, path_r);
}
