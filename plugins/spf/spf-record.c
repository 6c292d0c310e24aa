/* spf-record.c - an SPF record, as published, made fit for libspf2.
 *
 * libspf2 1.2.10 departs from RFC 7208 on a few records; the DNS layer
 * (spf-dns.c) passes every "v=spf1" TXT record through
 * spf_record_prepare() before libspf2 compiles it:
 *   - a second redirect= or exp= modifier is a permerror (section 6);
 *     libspf2 takes one of them;
 *   - redirect= is applied after every mechanism, wherever it stands
 *     (section 6.1); libspf2 applies it in place, so it is moved last;
 *   - "a:", "mx:", "ptr:", "include:", "exists:" with an empty
 *     domain-spec are syntax errors (section 5); libspf2 takes the
 *     current domain;
 *   - "ip4:ADDR/0" and "ip6:ADDR/0" match every address (section 5.6);
 *     libspf2 refuses a zero prefix, so each becomes its two halves.
 *   - every '%' must start a macro of RFC 7208 section 7.1's grammar
 *     ("%%", "%_", "%-", "%{" letter [digits] ["r"] *delimiter "}"), with
 *     a digit transformer of 1 to 128 and no c, r or t letter outside
 *     explanation text (section 7.2); anything else is a permerror.
 *     libspf2 takes odd macros as literals, and its macro compiler has an
 *     unfixed integer underflow (CVE-2023-42118, libraries.md): records
 *     from the network reach it only in this checked form.
 * Anything else is left to libspf2, which refuses what it does not parse.
 *
 * Pure: a string in, a new string (or a problem) out; the record comes
 * from the network, so it is unit tested and fuzzed (fuzz/fuzz-spf-record).
 */
#include <string.h>

#include "spf.h"

/* The name of a modifier term ("redirect" of "redirect=x"), or NULL for a
 * mechanism: a modifier's name is ALPHA *( ALPHA / DIGIT / "-" / "_" /
 * "." ) right before its "=". */
static gboolean spf_term_is_modifier(const char *term, gsize *name_length) {
  if (!g_ascii_isalpha(term[0]))
    return FALSE;
  gsize i = 1;
  while (g_ascii_isalnum(term[i]) || term[i] == '-' || term[i] == '_' ||
         term[i] == '.')
    i++;
  *name_length = i;
  return term[i] == '=';
}

static gboolean spf_modifier_is(const char *term, gsize length,
                                const char *name) {
  return strlen(name) == length && g_ascii_strncasecmp(term, name, length) == 0;
}

/* A mechanism with ':' and nothing (or only a CIDR) after it. */
static gboolean spf_mechanism_has_empty_domain(const char *term) {
  static const char *const names[] = {"a", "mx", "ptr", "include", "exists"};
  const char *body = strchr("+-~?", term[0]) != NULL ? term + 1 : term;
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
    gsize length = strlen(names[i]);
    if (g_ascii_strncasecmp(body, names[i], length) == 0 &&
        body[length] == ':' &&
        (body[length + 1] == '\0' || body[length + 1] == '/'))
      return TRUE;
  }
  return FALSE;
}

/* "ip4:X/0" -> "ip4:0.0.0.0/1 ip4:128.0.0.0/1" (qualifier kept), or
 * FALSE when `term` is not such a term. */
static gboolean spf_append_zero_prefix(GString *out, const char *term) {
  char qualifier[2] = {0, 0};
  const char *body = term;
  if (strchr("+-~?", term[0]) != NULL) {
    qualifier[0] = term[0];
    body = term + 1;
  }
  gsize length = strlen(body);
  if (length < 6 || strcmp(body + length - 2, "/0") != 0 ||
      strchr(body + 4, '/') != body + length - 2)
    return FALSE;
  if (g_ascii_strncasecmp(body, "ip4:", 4) == 0)
    g_string_append_printf(out, " %sip4:0.0.0.0/1 %sip4:128.0.0.0/1", qualifier,
                           qualifier);
  else if (g_ascii_strncasecmp(body, "ip6:", 4) == 0)
    g_string_append_printf(out, " %sip6:::/1 %sip6:8000::/1", qualifier,
                           qualifier);
  else
    return FALSE;
  return TRUE;
}

/* The macro at `p` (just after its '%'); the octets it spans after the
 * '%', or 0 when it is not a valid macro. */
static gsize spf_macro_length(const char *p, gboolean explanation) {
  if (*p == '%' || *p == '_' || *p == '-')
    return 1;
  if (*p != '{')
    return 0;
  const char *q = p + 1;
  char letter = g_ascii_tolower(*q);
  if (strchr("slodiphv", letter) == NULL &&
      !(explanation && strchr("crt", letter) != NULL))
    return 0;
  if (*q == '\0')
    return 0;
  q++;
  if (g_ascii_isdigit(*q)) {
    guint value = 0, count = 0;
    for (; g_ascii_isdigit(*q) && count < 3; q++, count++)
      value = value * 10 + (guint)(*q - '0');
    /* Section 7.3: nonzero; 127 labels is the most a name has. */
    if (value == 0 || value > 128 || g_ascii_isdigit(*q))
      return 0;
  }
  if (*q == 'r' || *q == 'R')
    q++;
  while (*q != '\0' && strchr(".-+,/_=", *q) != NULL)
    q++;
  return *q == '}' ? (gsize)(q - p) + 1 : 0;
}

gboolean spf_macro_string_is_valid(const char *text, gboolean explanation) {
  for (const char *p = text; *p != '\0'; p++) {
    if (*p != '%')
      continue;
    gsize length = spf_macro_length(p + 1, explanation);
    if (length == 0)
      return FALSE;
    p += length;
  }
  return TRUE;
}

char *spf_record_prepare(const char *record, char **problem_r) {
  g_auto(GStrv) terms = g_strsplit(record, " ", -1);
  g_autoptr(GString) out = g_string_new(NULL);
  const char *redirect = NULL;
  guint exp_count = 0, redirect_count = 0;
  for (guint i = 0; terms[i] != NULL; i++) {
    const char *term = terms[i];
    gsize name_length = 0;
    if (term[0] == '\0')
      continue; /* 1*SP between terms */
    if (!spf_macro_string_is_valid(term, FALSE)) {
      *problem_r = g_strdup_printf("invalid macro in \"%s\"", term);
      return NULL;
    }
    if (i > 0 && spf_term_is_modifier(term, &name_length)) {
      if (spf_modifier_is(term, name_length, "redirect")) {
        redirect_count++;
        redirect = term;
        continue; /* applied last */
      }
      if (spf_modifier_is(term, name_length, "exp"))
        exp_count++;
    } else if (i > 0 && spf_mechanism_has_empty_domain(term)) {
      *problem_r = g_strdup_printf("empty domain in \"%s\"", term);
      return NULL;
    } else if (i > 0 && spf_append_zero_prefix(out, term)) {
      continue;
    }
    if (out->len > 0)
      g_string_append_c(out, ' ');
    g_string_append(out, term);
  }
  if (redirect_count > 1 || exp_count > 1) {
    *problem_r = g_strdup_printf("more than one %s= modifier",
                                 redirect_count > 1 ? "redirect" : "exp");
    return NULL;
  }
  if (redirect != NULL)
    g_string_append_printf(out, " %s", redirect);
  return g_string_free(g_steal_pointer(&out), FALSE);
}
