/* auth-results.c - the Authentication-Results header field (RFC 8601).
 *
 * Two pure functions over strings, used by the session at the end of a
 * message (core/session/session-auth-results.c):
 *
 *  - pst_auth_results_authserv_id() reads the authserv-id of a field a
 *    client sent, so that fields claiming to come from us can be removed
 *    (RFC 8601 section 5: an MTA that adds the field MUST remove forged
 *    ones carrying its own authserv-id, or a later filter would trust
 *    them).  It skips CFWS, nested comments and folding, and takes a token
 *    or a quoted-string.  Hostile input: never reads past the string, no
 *    recursion (comments are counted, not recursed into).
 *
 *  - pst_auth_results_format() renders the results plugins stored under
 *    "auth.METHOD" (each an a{sv} with a string "result", an optional
 *    "reason" and "ptype.property" strings such as "smtp.mailfrom") as the
 *    field's value, one resinfo per folded line.  A method stored as a
 *    list ("aa{sv}", pst_result_append()) gives one resinfo per element,
 *    in order, at most AUTH_RESULTS_PER_METHOD of them.  Anything that is not
 *    RFC 8601 syntax (a method or result that is not a keyword, a property
 *    name out of ptype.property form, a value that cannot be quoted) is
 *    left out rather than written broken; reasons and values are cut so
 *    that no line passes 998 octets.
 */
#include <string.h>

#include "smtp/smtp-parse.h"

/* Longest reason and property value written, in octets. */
#define AUTH_RESULTS_REASON_MAX 200
#define AUTH_RESULTS_VALUE_MAX 256
/* Most resinfos written for one method (a message may carry a hundred
 * DKIM signatures; the verifier reports at most max_signatures). */
#define AUTH_RESULTS_PER_METHOD 50

/* --- Reading the authserv-id ------------------------------------------- */

/* Skips white space, folding and comments; NULL on an unclosed comment. */
static const char *skip_cfws(const char *p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
      p++;
    if (*p != '(')
      return p;
    guint depth = 0;
    do {
      if (*p == '\0')
        return NULL;
      if (*p == '\\' && p[1] != '\0')
        p++;
      else if (*p == '(')
        depth++;
      else if (*p == ')')
        depth--;
      p++;
    } while (depth > 0);
  }
}

static gboolean is_token_char(char c) {
  return c > ' ' && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

char *pst_auth_results_authserv_id(const char *value) {
  const char *p = skip_cfws(value);
  if (p == NULL)
    return NULL;
  if (*p == '"') {
    g_autoptr(GString) id = g_string_new(NULL);
    for (p++; *p != '"'; p++) {
      if (*p == '\0')
        return NULL;
      if (*p == '\\' && p[1] != '\0')
        p++;
      if (*p != '\r' && *p != '\n')
        g_string_append_c(id, *p);
    }
    return g_string_free(g_steal_pointer(&id), FALSE);
  }
  const char *start = p;
  while (is_token_char(*p))
    p++;
  /* RFC 8601 2.2 allows a version after the id, and requires ';' or the
   * end after it; the id itself is what matters here. */
  return p > start ? g_strndup(start, (gsize)(p - start)) : NULL;
}

gboolean pst_auth_results_is_from(const char *value, const char *authserv_id) {
  g_autofree char *id = pst_auth_results_authserv_id(value);
  return id != NULL && g_ascii_strcasecmp(id, authserv_id) == 0;
}

/* --- Writing ----------------------------------------------------------- */

/* RFC 8601 keyword (methods, results, ptypes, properties): letters,
 * digits and '-', starting and ending with a letter or digit. */
static gboolean is_keyword_len(const char *s, gsize n) {
  if (n == 0 || n > 64 || !g_ascii_isalnum(s[0]) || !g_ascii_isalnum(s[n - 1]))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '_')
      return FALSE;
  return TRUE;
}

static gboolean is_keyword(const char *s) {
  return is_keyword_len(s, strlen(s));
}

/* "smtp.mailfrom", "header.d": a ptype and a property, both keywords. */
static gboolean is_property_name(const char *s) {
  const char *dot = strchr(s, '.');
  if (dot == NULL || strchr(dot + 1, '.') != NULL)
    return FALSE;
  return is_keyword_len(s, (gsize)(dot - s)) && is_keyword(dot + 1);
}

/* A value as written: bare when it is a token or an address (token
 * characters and '@') unless `quote`, quoted otherwise; control characters
 * and non-ASCII are dropped, quotes and backslashes escaped. */
static void append_value(GString *out, const char *value, gsize limit,
                         gboolean quote) {
  gboolean bare = !quote && *value != '\0';
  for (const char *p = value; *p != '\0' && bare; p++)
    bare = is_token_char(*p) || *p == '@';
  gsize n = 0;
  if (!bare)
    g_string_append_c(out, '"');
  for (const char *p = value; *p != '\0' && n < limit; p++, n++) {
    guchar c = (guchar)*p;
    if (c < ' ' || c >= 0x7f)
      continue;
    if (!bare && (c == '"' || c == '\\'))
      g_string_append_c(out, '\\');
    g_string_append_c(out, (char)c);
  }
  if (!bare)
    g_string_append_c(out, '"');
}

/* Appends " PIECE", folding first when the line would grow past 900
 * octets (a piece is at most ~650: a 129-octet name and 514 of value). */
static void append_piece(GString *out, gsize *line_start, GString *piece) {
  if (out->len - *line_start + 1 + piece->len > 900) {
    g_string_append(out, "\r\n\t");
    *line_start = out->len - 1;
  } else {
    g_string_append_c(out, ' ');
  }
  g_string_append_len(out, piece->str, (gssize)piece->len);
}

/* Entry `i` of an a{sv}: its key (valid while `dict` lives) and its value,
 * unboxed (a new reference).  By index, not through a format string: the
 * plugins' results are in GVariant's tree form, where g_variant_lookup()
 * and "{&sv}" (any '&' format) serialize the value they read anew, which
 * cost more than the rendering itself. */
static GVariant *vardict_entry(GVariant *dict, gsize i, const char **key_r) {
  g_autoptr(GVariant) entry = g_variant_get_child_value(dict, i);
  g_autoptr(GVariant) key = g_variant_get_child_value(entry, 0);
  g_autoptr(GVariant) boxed = g_variant_get_child_value(entry, 1);
  *key_r = g_variant_get_string(key, NULL);
  return g_variant_get_variant(boxed);
}

/* The string under `name` in an a{sv} (valid while `dict` lives), or NULL. */
static const char *vardict_string(GVariant *dict, const char *name) {
  gsize count = g_variant_n_children(dict);
  for (gsize i = 0; i < count; i++) {
    const char *key;
    g_autoptr(GVariant) value = vardict_entry(dict, i, &key);
    if (strcmp(key, name) == 0)
      return g_variant_is_of_type(value, G_VARIANT_TYPE_STRING)
                 ? g_variant_get_string(value, NULL)
                 : NULL;
  }
  return NULL;
}

/* One resinfo: ";\r\n\tMETHOD=RESULT reason=... ptype.prop=value ...". */
static gboolean append_resinfo(GString *out, const char *method,
                               GVariant *result) {
  if (!is_keyword(method) ||
      !g_variant_is_of_type(result, G_VARIANT_TYPE_VARDICT))
    return FALSE;
  const char *verdict = vardict_string(result, "result");
  if (verdict == NULL || !is_keyword(verdict))
    return FALSE;
  g_string_append(out, ";\r\n\t");
  gsize line_start = out->len - 1;
  g_string_append(out, method);
  g_string_append_c(out, '=');
  g_string_append(out, verdict);
  g_autoptr(GString) piece = g_string_new(NULL);
  const char *reason = vardict_string(result, "reason");
  if (reason != NULL && *reason != '\0') {
    g_string_assign(piece, "reason=");
    append_value(piece, reason, AUTH_RESULTS_REASON_MAX, TRUE);
    append_piece(out, &line_start, piece);
  }
  gsize count = g_variant_n_children(result);
  for (gsize i = 0; i < count; i++) {
    const char *key;
    g_autoptr(GVariant) value = vardict_entry(result, i, &key);
    if (!is_property_name(key) ||
        !g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
      continue;
    g_string_assign(piece, key);
    g_string_append_c(piece, '=');
    append_value(piece, g_variant_get_string(value, NULL),
                 AUTH_RESULTS_VALUE_MAX, FALSE);
    append_piece(out, &line_start, piece);
  }
  return TRUE;
}

/* One method's resinfos: one for an a{sv}, one per element of an
 * aa{sv}.  Returns how many were written. */
static guint append_method(GString *out, const char *method, GVariant *result) {
  if (!g_variant_is_of_type(result, G_VARIANT_TYPE("aa{sv}")))
    return append_resinfo(out, method, result) ? 1 : 0;
  guint written = 0;
  gsize count = g_variant_n_children(result);
  for (gsize i = 0; i < count && written < AUTH_RESULTS_PER_METHOD; i++) {
    g_autoptr(GVariant) element = g_variant_get_child_value(result, i);
    if (append_resinfo(out, method, element))
      written++;
  }
  return written;
}

/* Methods in a stable, readable order: these first, then by name. */
static int method_rank(const char *method) {
  static const char *const order[] = {"auth", "spf", "dkim", "dmarc", "arc"};
  for (guint i = 0; i < G_N_ELEMENTS(order); i++)
    if (strcmp(method, order[i]) == 0)
      return (int)i;
  return G_N_ELEMENTS(order);
}

/* A method and its stored result, as sorted for writing. */
typedef struct {
  const char *method; /* in the results' key, after "auth." */
  GVariant *result;   /* owned reference */
} AuthMethod;

static void auth_method_clear(gpointer data) {
  g_variant_unref(((AuthMethod *)data)->result);
}

static int compare_methods(gconstpointer a, gconstpointer b) {
  const char *x = ((const AuthMethod *)a)->method;
  const char *y = ((const AuthMethod *)b)->method;
  int rank = method_rank(x) - method_rank(y);
  return rank != 0 ? rank : strcmp(x, y);
}

char *pst_auth_results_format(const char *authserv_id, GVariant *results) {
  if (results == NULL || !g_variant_is_of_type(results, G_VARIANT_TYPE_VARDICT))
    return NULL;
  g_autoptr(GArray) methods = g_array_new(FALSE, FALSE, sizeof(AuthMethod));
  g_array_set_clear_func(methods, auth_method_clear);
  gsize count = g_variant_n_children(results);
  for (gsize i = 0; i < count; i++) {
    AuthMethod method;
    const char *key;
    method.result = vardict_entry(results, i, &key);
    if (!g_str_has_prefix(key, "auth.")) {
      g_variant_unref(method.result);
      continue;
    }
    method.method = key + 5;
    g_array_append_val(methods, method);
  }
  g_array_sort(methods, compare_methods);
  g_autoptr(GString) out = g_string_new(NULL);
  g_string_append(out, authserv_id);
  guint written = 0;
  for (guint i = 0; i < methods->len; i++) {
    const AuthMethod *method = &g_array_index(methods, AuthMethod, i);
    written += append_method(out, method->method, method->result);
  }
  if (written == 0)
    return NULL;
  return g_string_free(g_steal_pointer(&out), FALSE);
}
