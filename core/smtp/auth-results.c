/* auth-results.c - the Authentication-Results header field (RFC 8601).
 *
 * Pure functions over strings, used by the session at the end of a
 * message (core/session/session-authres.c):
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
 *    that no line passes 998 octets.  pst_auth_results_format_methods()
 *    does the same from the "auth.METHOD" results already picked out (the
 *    session reads them from its stores; no a{sv} of every result is
 *    built).  pst_auth_results_value_has_result() is the check the
 *    results store makes of every "auth.METHOD" a plugin writes, with the
 *    same in-place reading (util/vardict.c, which owns GVariant's framing
 *    rules).  Cost: this runs for every message with results, so each
 *    resinfo's entries are read once, values are copied in runs and
 *    pieces are written in place (no printf, no temporary strings).
 */
#include <string.h>

#include "util/vardict.h"
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
  switch (c) {
  case '(':
  case ')':
  case '<':
  case '>':
  case '@':
  case ',':
  case ';':
  case ':':
  case '\\':
  case '"':
  case '/':
  case '[':
  case ']':
  case '?':
  case '=':
    return FALSE;
  default:
    return c > ' ' && c < 0x7f;
  }
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
  if (!bare)
    g_string_append_c(out, '"');
  const char *end = value + strnlen(value, limit);
  /* Runs of octets written as they are, in one append each. */
  for (const char *p = value; p < end;) {
    const char *run = p;
    while (p < end && (guchar)*p >= ' ' && (guchar)*p < 0x7f &&
           (bare || (*p != '"' && *p != '\\')))
      p++;
    g_string_append_len(out, run, p - run);
    if (p == end)
      break;
    if ((guchar)*p >= ' ' && (guchar)*p < 0x7f) {
      g_string_append_c(out, '\\');
      g_string_append_c(out, *p);
    }
    p++;
  }
  if (!bare)
    g_string_append_c(out, '"');
}

/* Appends " PIECE" (out->str from `piece_start` on, just written there),
 * folding before it when the line would grow past 900 octets (a piece is
 * at most ~650: a 129-octet name and 514 of value). */
static void fold_piece(GString *out, gsize *line_start, gsize piece_start) {
  gsize piece = out->len - piece_start;
  if (piece_start - *line_start + 1 + piece > 900) {
    g_string_insert_len(out, (gssize)piece_start, "\r\n\t", 3);
    *line_start = piece_start + 2;
  } else {
    g_string_insert_c(out, (gssize)piece_start, ' ');
  }
}

/* The entries of one resinfo's a{sv} (`result`), read in one pass: each
 * key and, when the value is a string, that string.  Two ways: in place
 * from the value's serialised octets (resinfo_read_serialised()), or
 * through GLib's child values (resinfo_read()).  By index, never through
 * a format string or g_variant_lookup(). */
#define RESINFO_INLINE_ENTRIES 8

typedef struct {
  const char *key;    /* valid while the result (and `entry`) lives */
  const char *string; /* nullable: the value when it is a string */
  GVariant *entry;    /* owned, nullable: the {sv} (GLib's way) */
  GVariant *value;    /* owned, nullable: unboxed (GLib's way) */
} ResinfoEntry;

typedef struct {
  ResinfoEntry inline_entries[RESINFO_INLINE_ENTRIES];
  ResinfoEntry *entries; /* inline_entries or owned */
  gsize count;
} Resinfo;

static void resinfo_alloc(Resinfo *info, gsize count) {
  info->count = count;
  info->entries = count <= RESINFO_INLINE_ENTRIES ? info->inline_entries
                                                  : g_new0(ResinfoEntry, count);
  if (count <= RESINFO_INLINE_ENTRIES)
    memset(info->inline_entries, 0, sizeof info->inline_entries);
}

static void resinfo_read(Resinfo *info, GVariant *result) {
  resinfo_alloc(info, g_variant_n_children(result));
  for (gsize i = 0; i < info->count; i++) {
    ResinfoEntry *entry = &info->entries[i];
    entry->entry = g_variant_get_child_value(result, i);
    g_autoptr(GVariant) key = g_variant_get_child_value(entry->entry, 0);
    g_autoptr(GVariant) boxed = g_variant_get_child_value(entry->entry, 1);
    /* The key's string lives in the entry (tree form: the same child;
     * serialised: the same octets). */
    entry->key = g_variant_get_string(key, NULL);
    entry->value = g_variant_get_variant(boxed);
    if (g_variant_is_of_type(entry->value, G_VARIANT_TYPE_STRING))
      entry->string = g_variant_get_string(entry->value, NULL);
  }
}

static void resinfo_clear(Resinfo *info) {
  for (gsize i = 0; i < info->count; i++) {
    g_clear_pointer(&info->entries[i].value, g_variant_unref);
    g_clear_pointer(&info->entries[i].entry, g_variant_unref);
  }
  if (info->entries != info->inline_entries)
    g_free(info->entries);
  info->count = 0;
}

/* --- Reading a serialised a{sv} in place -------------------------------- */

/* `result` read from its serialised octets (util/vardict.c), without a
 * GVariant per entry (GLib makes four per entry, each a lookup of its
 * type): for values in normal form, which the plugins' are (GLib writes
 * normal form, and the SDK's pst_result_new_fields() too); FALSE (nothing
 * kept) for anything unexpected.  A value still in tree form is
 * serialised here, as the spool would do when it writes the results. */
static gboolean resinfo_read_serialised(Resinfo *info, GVariant *result) {
  PstVardictArray dict;
  if (!pst_vardict_array_open(&dict, result, 8))
    return FALSE;
  resinfo_alloc(info, dict.count);
  for (gsize i = 0; i < info->count; i++) {
    ResinfoEntry *entry = &info->entries[i];
    const guint8 *octets;
    gsize size;
    if (!pst_vardict_array_element(&dict, i, &octets, &size) ||
        !pst_vardict_entry_read(octets, size, &entry->key, &entry->string)) {
      resinfo_clear(info);
      return FALSE;
    }
  }
  return TRUE;
}

/* The string under the first `name` (valid while `info` lives), or NULL
 * (also when that value is no string). */
static const char *resinfo_string(const Resinfo *info, const char *name) {
  for (gsize i = 0; i < info->count; i++)
    if (strcmp(info->entries[i].key, name) == 0)
      return info->entries[i].string;
  return NULL;
}

gboolean pst_auth_results_value_has_result(GVariant *value) {
  if (!g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT))
    return FALSE;
  PstVardictArray dict;
  const char *result;
  if (pst_vardict_array_open(&dict, value, 8) &&
      pst_vardict_lookup_string(&dict, "result", &result))
    return result != NULL;
  g_autoptr(GVariant) found =
      g_variant_lookup_value(value, "result", G_VARIANT_TYPE_STRING);
  return found != NULL;
}

/* The resinfo's pieces: ";\r\n\tMETHOD=RESULT reason=... ptype.prop=...". */
static gboolean append_resinfo_entries(GString *out, const char *method,
                                       const Resinfo *info) {
  const char *verdict = resinfo_string(info, "result");
  if (verdict == NULL || !is_keyword(verdict))
    return FALSE;
  g_string_append(out, ";\r\n\t");
  gsize line_start = out->len - 1;
  g_string_append(out, method);
  g_string_append_c(out, '=');
  g_string_append(out, verdict);
  const char *reason = resinfo_string(info, "reason");
  if (reason != NULL && *reason != '\0') {
    gsize piece_start = out->len;
    g_string_append(out, "reason=");
    append_value(out, reason, AUTH_RESULTS_REASON_MAX, TRUE);
    fold_piece(out, &line_start, piece_start);
  }
  for (gsize i = 0; i < info->count; i++) {
    const ResinfoEntry *entry = &info->entries[i];
    if (!is_property_name(entry->key) || entry->string == NULL)
      continue;
    gsize piece_start = out->len;
    g_string_append(out, entry->key);
    g_string_append_c(out, '=');
    append_value(out, entry->string, AUTH_RESULTS_VALUE_MAX, FALSE);
    fold_piece(out, &line_start, piece_start);
  }
  return TRUE;
}

/* One resinfo of an a{sv}; FALSE (nothing written) when it is unusable. */
static gboolean append_resinfo(GString *out, const char *method,
                               GVariant *result) {
  if (!is_keyword(method) ||
      !g_variant_is_of_type(result, G_VARIANT_TYPE_VARDICT))
    return FALSE;
  Resinfo info;
  if (!resinfo_read_serialised(&info, result))
    resinfo_read(&info, result);
  gboolean written = append_resinfo_entries(out, method, &info);
  resinfo_clear(&info);
  return written;
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

static gint compare_methods(gconstpointer a, gconstpointer b, gpointer unused) {
  (void)unused;
  const char *x = ((const PstAuthResult *)a)->method;
  const char *y = ((const PstAuthResult *)b)->method;
  int rank = method_rank(x) - method_rank(y);
  return rank != 0 ? rank : strcmp(x, y);
}

char *pst_auth_results_format_methods(const char *authserv_id,
                                      PstAuthResult *methods, guint count) {
  /* Stable: of two equal names, the first stays first. */
  g_qsort_with_data(methods, (gint)count, sizeof *methods, compare_methods,
                    NULL);
  g_autoptr(GString) out = g_string_sized_new(256);
  g_string_append(out, authserv_id);
  guint written = 0;
  for (guint i = 0; i < count; i++)
    written += append_method(out, methods[i].method, methods[i].result);
  if (written == 0)
    return NULL;
  return g_string_free(g_steal_pointer(&out), FALSE);
}

char *pst_auth_results_format(const char *authserv_id, GVariant *results) {
  if (results == NULL || !g_variant_is_of_type(results, G_VARIANT_TYPE_VARDICT))
    return NULL;
  Resinfo entries;
  resinfo_read(&entries, results);
  g_autofree PstAuthResult *methods = g_new(PstAuthResult, entries.count + 1);
  guint count = 0;
  for (gsize i = 0; i < entries.count; i++)
    if (g_str_has_prefix(entries.entries[i].key, "auth.")) {
      methods[count].method = entries.entries[i].key + 5;
      methods[count].result = entries.entries[i].value;
      count++;
    }
  char *value = pst_auth_results_format_methods(authserv_id, methods, count);
  resinfo_clear(&entries);
  return value;
}
