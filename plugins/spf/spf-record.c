/* spf-record.c - a strict RFC 7208 record parser, and the record libspf2
 * is handed instead of the one published.
 *
 * spf_record_parse() applies every rule of section 12's ABNF (with 4.6.1,
 * 5, 6 and 7.1) to a "v=spf1" record: terms separated by spaces only;
 * nothing but visible ASCII; the eight mechanisms with exactly their
 * arguments (all none; include and exists a domain-spec; a and mx an
 * optional domain-spec and dual-cidr-length; ptr an optional domain-spec;
 * ip4/ip6 a network and a CIDR length without leading zeros, at most 32
 * and 128); a domain-spec is a macro-string ending in a macro or "."
 * toplabel (not all numeric, no leading or trailing "-", one final dot
 * allowed); every '%' starts a macro of 7.1 (c, r and t only in
 * explanations, digits 1 to 128); modifiers are name "=" macro-string,
 * redirect= and exp= take a domain-spec and appear at most once.
 * Anything else is a permerror, reported as a problem text.
 *
 * spf_record_render() then writes the parsed record in the form libspf2
 * 1.2.10 evaluates the RFC 7208 way, and only that form reaches it (its
 * record and macro compilers are where CVE-2023-42118 lives):
 *   - redirect= last (section 6.1: it applies after every mechanism);
 *   - unknown modifiers dropped (section 6: they have no effect);
 *   - "ip4:X/0" and "ip6:X/0" as their two halves (libspf2 refuses /0);
 *   - "a"/"mx" with a zero prefix for the client's family (section 5.3:
 *     any address of the name matches) as the same term over the name
 *     with SPF_ZERO_PREFIX_SUFFIX appended and no prefix: the DNS layer
 *     (spf-dns.c) strips the suffix and answers any address with the
 *     client's own; a zero prefix of the other family is dropped.
 *
 * Pure: strings in, a new string (or a problem) out; records come from
 * the network, so this is unit tested (test-spf.c) and fuzzed
 * (fuzz/fuzz-spf-record.c).  Callers: spf-dns.c, spf-eval's explanation.
 */
#include <string.h>

#include <arpa/inet.h>

#include "spf.h"

typedef enum {
  SPF_MECH_ALL,
  SPF_MECH_INCLUDE,
  SPF_MECH_A,
  SPF_MECH_MX,
  SPF_MECH_PTR,
  SPF_MECH_IP4,
  SPF_MECH_IP6,
  SPF_MECH_EXISTS,
} SpfMechanismKind;

static const char *const spf_mechanism_names[] = {
    "all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"};

typedef struct {
  char qualifier; /* '+', '-', '~', '?', or 0 when none was written */
  SpfMechanismKind kind;
  char *target; /* owned, nullable: the domain-spec or the network */
  int cidr4;    /* -1 when not written */
  int cidr6;
} SpfMechanism;

struct SpfRecord {
  GPtrArray *mechanisms; /* owned, of SpfMechanism */
  char *redirect;        /* owned, nullable: a domain-spec */
  char *explanation;     /* owned, nullable: exp='s domain-spec */
};

static void spf_mechanism_free(SpfMechanism *mechanism) {
  g_free(mechanism->target);
  g_free(mechanism);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfMechanism, spf_mechanism_free)

void spf_record_free(SpfRecord *record) {
  if (record == NULL)
    return;
  g_ptr_array_unref(record->mechanisms);
  g_free(record->redirect);
  g_free(record->explanation);
  g_free(record);
}

/* --- Macros (section 7.1) ----------------------------------------------- */

/* The macro at `p` (just after its '%'); the octets it spans after the
 * '%', or 0 when it is not a valid macro-expand. */
static gsize spf_macro_length(const char *p, gboolean explanation) {
  if (*p == '%' || *p == '_' || *p == '-')
    return 1;
  if (*p != '{')
    return 0;
  const char *q = p + 1;
  char letter = g_ascii_tolower(*q);
  if (*q == '\0' || (strchr("slodiphv", letter) == NULL &&
                     !(explanation && strchr("crt", letter) != NULL)))
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

/* --- Domain-specs (section 7.1) ----------------------------------------- */

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static gboolean spf_toplabel_is_valid(const char *label, gsize length) {
  if (length == 0 || !g_ascii_isalnum(label[0]) ||
      !g_ascii_isalnum(label[length - 1]))
    return FALSE;
  gboolean alpha = FALSE, dash = FALSE;
  for (gsize i = 0; i < length; i++) {
    if (label[i] == '-')
      dash = TRUE;
    else if (g_ascii_isalpha(label[i]))
      alpha = TRUE;
    else if (!g_ascii_isdigit(label[i]))
      return FALSE;
  }
  return alpha || dash;
}

/* domain-spec = macro-string domain-end;
 * domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static gboolean spf_domain_spec_is_valid(const char *spec) {
  if (spec[0] == '\0' || !spf_macro_string_is_valid(spec, FALSE))
    return FALSE;
  /* The literal text after the last macro. */
  const char *literal = spec;
  for (const char *p = spec; *p != '\0'; p++)
    if (*p == '%') {
      p += spf_macro_length(p + 1, FALSE);
      literal = p + 1;
    }
  gsize length = strlen(literal);
  if (length == 0)
    return TRUE; /* ends in a macro-expand */
  if (literal[length - 1] == '.')
    length--;
  const char *dot = g_strrstr_len(literal, (gssize)length, ".");
  if (dot == NULL)
    return FALSE;
  return spf_toplabel_is_valid(dot + 1, length - (gsize)(dot + 1 - literal));
}

/* --- Networks and CIDR lengths ------------------------------------------ */

/* "/" ( "0" / %x31-39 0*N DIGIT ) up to `max`: its value, or -1. */
static int spf_cidr_parse(const char *digits, gsize length, int max) {
  if (length == 0 || length > 3 || (digits[0] == '0' && length > 1))
    return -1;
  int value = 0;
  for (gsize i = 0; i < length; i++) {
    if (!g_ascii_isdigit(digits[i]))
      return -1;
    value = value * 10 + (digits[i] - '0');
  }
  return value <= max ? value : -1;
}

/* qnum "." qnum "." qnum "." qnum, qnum 0-255 without leading zeros. */
static gboolean spf_ip4_network_is_valid(const char *text) {
  const char *p = text;
  for (int part = 0; part < 4; part++) {
    gsize digits = 0;
    while (g_ascii_isdigit(p[digits]))
      digits++;
    if (spf_cidr_parse(p, digits, 255) < 0)
      return FALSE;
    p += digits;
    if (part < 3 && *p++ != '.')
      return FALSE;
  }
  return *p == '\0';
}

static gboolean spf_ip6_network_is_valid(const char *text) {
  struct in6_addr address;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isxdigit(*p) && *p != ':' && *p != '.')
      return FALSE;
  return inet_pton(AF_INET6, text, &address) == 1;
}

/* --- Terms -------------------------------------------------------------- */

/* The "/" of a trailing "/" 1*DIGIT in `text`, or NULL. */
static char *spf_trailing_cidr(char *text) {
  char *slash = strrchr(text, '/');
  if (slash == NULL || slash[1] == '\0')
    return NULL;
  for (const char *p = slash + 1; *p != '\0'; p++)
    if (!g_ascii_isdigit(*p))
      return NULL;
  return slash;
}

/* The argument of an "a" or "mx": [ ":" domain-spec ] [ dual-cidr-length ]
 * = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]. */
static gboolean spf_parse_dual(SpfMechanism *mechanism, const char *argument) {
  g_autofree char *rest = g_strdup(argument);
  char *slash = spf_trailing_cidr(rest);
  if (slash != NULL && slash > rest && slash[-1] == '/') {
    mechanism->cidr6 = spf_cidr_parse(slash + 1, strlen(slash + 1), 128);
    if (mechanism->cidr6 < 0)
      return FALSE;
    slash[-1] = '\0';
    slash = spf_trailing_cidr(rest);
  }
  if (slash != NULL) {
    mechanism->cidr4 = spf_cidr_parse(slash + 1, strlen(slash + 1), 32);
    if (mechanism->cidr4 < 0)
      return FALSE;
    *slash = '\0';
  }
  if (rest[0] == '\0')
    return TRUE;
  if (rest[0] != ':' || !spf_domain_spec_is_valid(rest + 1))
    return FALSE;
  mechanism->target = g_strdup(rest + 1);
  return TRUE;
}

/* ip4/ip6: ":" network [ "/" length ]. */
static gboolean spf_parse_network(SpfMechanism *mechanism,
                                  const char *argument) {
  gboolean ip6 = mechanism->kind == SPF_MECH_IP6;
  if (argument[0] != ':')
    return FALSE;
  g_autofree char *network = g_strdup(argument + 1);
  char *slash = spf_trailing_cidr(network);
  int cidr = -1;
  if (slash != NULL) {
    cidr = spf_cidr_parse(slash + 1, strlen(slash + 1), ip6 ? 128 : 32);
    if (cidr < 0)
      return FALSE;
    *slash = '\0';
  }
  if (!(ip6 ? spf_ip6_network_is_valid(network)
            : spf_ip4_network_is_valid(network)))
    return FALSE;
  if (ip6)
    mechanism->cidr6 = cidr;
  else
    mechanism->cidr4 = cidr;
  mechanism->target = g_steal_pointer(&network);
  return TRUE;
}

static gboolean spf_parse_argument(SpfMechanism *mechanism,
                                   const char *argument) {
  switch (mechanism->kind) {
  case SPF_MECH_ALL:
    return argument[0] == '\0';
  case SPF_MECH_INCLUDE:
  case SPF_MECH_EXISTS:
  case SPF_MECH_PTR:
    if (argument[0] == '\0')
      return mechanism->kind == SPF_MECH_PTR;
    if (argument[0] != ':' || !spf_domain_spec_is_valid(argument + 1))
      return FALSE;
    mechanism->target = g_strdup(argument + 1);
    return TRUE;
  case SPF_MECH_A:
  case SPF_MECH_MX:
    return spf_parse_dual(mechanism, argument);
  case SPF_MECH_IP4:
  case SPF_MECH_IP6:
    return spf_parse_network(mechanism, argument);
  }
  return FALSE;
}

/* directive = [ qualifier ] mechanism; NULL when `term` is none. */
static SpfMechanism *spf_parse_mechanism(const char *term) {
  g_autoptr(SpfMechanism) mechanism = g_new0(SpfMechanism, 1);
  mechanism->cidr4 = mechanism->cidr6 = -1;
  if (strchr("+-~?", term[0]) != NULL && term[0] != '\0')
    mechanism->qualifier = *term++;
  gsize length = 0;
  while (g_ascii_isalnum(term[length]))
    length++;
  guint kind = 0;
  while (kind < G_N_ELEMENTS(spf_mechanism_names) &&
         !(strlen(spf_mechanism_names[kind]) == length &&
           g_ascii_strncasecmp(term, spf_mechanism_names[kind], length) == 0))
    kind++;
  if (kind == G_N_ELEMENTS(spf_mechanism_names))
    return NULL;
  mechanism->kind = (SpfMechanismKind)kind;
  if (!spf_parse_argument(mechanism, term + length))
    return NULL;
  return g_steal_pointer(&mechanism);
}

/* The length of a modifier's name (name "=" ...), or 0 for a mechanism:
 * name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ). */
static gsize spf_modifier_name_length(const char *term) {
  if (!g_ascii_isalpha(term[0]))
    return 0;
  gsize i = 1;
  while (g_ascii_isalnum(term[i]) || term[i] == '-' || term[i] == '_' ||
         term[i] == '.')
    i++;
  return term[i] == '=' ? i : 0;
}

static gboolean spf_name_is(const char *term, gsize length, const char *name) {
  return strlen(name) == length && g_ascii_strncasecmp(term, name, length) == 0;
}

/* A modifier into `record`; the problem, a new string, when it is not
 * one. */
static char *spf_parse_modifier(SpfRecord *record, const char *term,
                                gsize name_length) {
  const char *value = term + name_length + 1;
  char **slot = NULL;
  if (spf_name_is(term, name_length, "redirect"))
    slot = &record->redirect;
  else if (spf_name_is(term, name_length, "exp"))
    slot = &record->explanation;
  if (slot == NULL)
    return spf_macro_string_is_valid(value, FALSE)
               ? NULL
               : g_strdup_printf("invalid macro in \"%s\"", term);
  if (*slot != NULL)
    return g_strdup_printf("more than one %.*s= modifier", (int)name_length,
                           term);
  if (!spf_domain_spec_is_valid(value))
    return g_strdup_printf("invalid domain in \"%s\"", term);
  *slot = g_strdup(value);
  return NULL;
}

/* Why `term` is refused: the message names the class of error. */
static char *spf_term_problem(const char *term) {
  const char *body = strchr("+-~?", term[0]) != NULL ? term + 1 : term;
  if (!spf_macro_string_is_valid(body, FALSE))
    return g_strdup_printf("invalid macro in \"%s\"", term);
  const char *colon = strchr(body, ':');
  if (colon != NULL && (colon[1] == '\0' || colon[1] == '/'))
    return g_strdup_printf("empty domain in \"%s\"", term);
  return g_strdup_printf("syntax error in \"%s\"", term);
}

/* --- Records ------------------------------------------------------------ */

static char *spf_record_check_characters(const char *text) {
  for (const guchar *p = (const guchar *)text; *p != '\0'; p++)
    if (*p != ' ' && (*p < 0x21 || *p > 0x7e))
      return g_strdup_printf("character 0x%02x in the record (section 4.6.1: "
                             "visible ASCII and spaces only)",
                             *p);
  return NULL;
}

gboolean spf_record_text_is_spf(const char *text) {
  return g_ascii_strncasecmp(text, "v=spf1", 6) == 0 &&
         (text[6] == '\0' || text[6] == ' ');
}

SpfRecord *spf_record_parse(const char *text, char **problem_r) {
  *problem_r = spf_record_check_characters(text);
  if (*problem_r != NULL)
    return NULL;
  if (g_ascii_strncasecmp(text, "v=spf1", 6) != 0 ||
      (text[6] != '\0' && text[6] != ' ')) {
    *problem_r = g_strdup("not an SPF version 1 record");
    return NULL;
  }
  g_autoptr(SpfRecord) record = g_new0(SpfRecord, 1);
  record->mechanisms =
      g_ptr_array_new_with_free_func((GDestroyNotify)spf_mechanism_free);
  /* The terms cut apart in one copy (not g_strsplit(): a record is
   * parsed for every message). */
  g_autofree char *copy = g_strdup(text + 6);
  char *next = copy;
  while (next != NULL) {
    char *term = next;
    next = strchr(term, ' ');
    if (next != NULL)
      *next++ = '\0';
    if (term[0] == '\0')
      continue; /* 1*SP between terms */
    gsize name_length = spf_modifier_name_length(term);
    if (name_length > 0) {
      *problem_r = spf_parse_modifier(record, term, name_length);
      if (*problem_r != NULL)
        return NULL;
      continue;
    }
    SpfMechanism *mechanism = spf_parse_mechanism(term);
    if (mechanism == NULL) {
      *problem_r = spf_term_problem(term);
      return NULL;
    }
    g_ptr_array_add(record->mechanisms, mechanism);
  }
  return g_steal_pointer(&record);
}

/* --- What libspf2 gets -------------------------------------------------- */

/* A domain-spec (or the current domain) with the zero-prefix suffix. */
static void spf_append_zero_prefix_domain(GString *out, const char *target) {
  g_autofree char *domain = g_strdup(target != NULL ? target : "%{d}");
  gsize length = strlen(domain);
  if (length > 1 && domain[length - 1] == '.')
    domain[length - 1] = '\0';
  g_string_append_printf(out, ":%s" SPF_ZERO_PREFIX_SUFFIX, domain);
}

static void spf_render_dual(GString *out, const SpfMechanism *mechanism,
                            gboolean client_ipv6) {
  int own = client_ipv6 ? mechanism->cidr6 : mechanism->cidr4;
  int cidr4 = mechanism->cidr4 > 0 && !client_ipv6 ? mechanism->cidr4 : -1;
  int cidr6 = mechanism->cidr6 > 0 && client_ipv6 ? mechanism->cidr6 : -1;
  if (own == 0)
    spf_append_zero_prefix_domain(out, mechanism->target);
  else if (mechanism->target != NULL)
    g_string_append_printf(out, ":%s", mechanism->target);
  if (cidr4 >= 0)
    g_string_append_printf(out, "/%d", cidr4);
  if (cidr6 >= 0)
    g_string_append_printf(out, "//%d", cidr6);
}

static void spf_render_mechanism(GString *out, const SpfMechanism *mechanism,
                                 gboolean client_ipv6) {
  char qualifier[2] = {mechanism->qualifier, '\0'};
  const char *name = spf_mechanism_names[mechanism->kind];
  gboolean network =
      mechanism->kind == SPF_MECH_IP4 || mechanism->kind == SPF_MECH_IP6;
  int cidr =
      mechanism->kind == SPF_MECH_IP6 ? mechanism->cidr6 : mechanism->cidr4;
  if (network && cidr == 0) {
    /* ip4:X/0, ip6:X/0: every address, as two halves. */
    gboolean ip6 = mechanism->kind == SPF_MECH_IP6;
    g_string_append_printf(out, " %s%s:%s/1 %s%s:%s/1", qualifier, name,
                           ip6 ? "::" : "0.0.0.0", qualifier, name,
                           ip6 ? "8000::" : "128.0.0.0");
    return;
  }
  g_string_append_printf(out, " %s%s", qualifier, name);
  switch (mechanism->kind) {
  case SPF_MECH_A:
  case SPF_MECH_MX:
    spf_render_dual(out, mechanism, client_ipv6);
    return;
  case SPF_MECH_IP4:
  case SPF_MECH_IP6:
    g_string_append_printf(out, ":%s", mechanism->target);
    if (cidr > 0)
      g_string_append_printf(out, "/%d", cidr);
    return;
  default:
    if (mechanism->target != NULL)
      g_string_append_printf(out, ":%s", mechanism->target);
    return;
  }
}

char *spf_record_render(const SpfRecord *record, gboolean client_ipv6) {
  GString *out = g_string_new("v=spf1");
  for (guint i = 0; i < record->mechanisms->len; i++)
    spf_render_mechanism(out, record->mechanisms->pdata[i], client_ipv6);
  if (record->explanation != NULL)
    g_string_append_printf(out, " exp=%s", record->explanation);
  if (record->redirect != NULL)
    g_string_append_printf(out, " redirect=%s", record->redirect);
  return g_string_free(out, FALSE);
}

char *spf_record_prepare(const char *text, gboolean client_ipv6,
                         char **problem_r) {
  g_autoptr(SpfRecord) record = spf_record_parse(text, problem_r);
  return record != NULL ? spf_record_render(record, client_ipv6) : NULL;
}

/* --- Records decided without DNS ---------------------------------------- */

/* A name the plugin may look up as written: no macro, no final dot (libspf2
 * asks those in forms of its own), not empty. */
static gboolean spf_name_is_plain(const char *name) {
  gsize length = strlen(name);
  return length > 0 && strchr(name, '%') == NULL && name[length - 1] != '.';
}

static SpfResult spf_qualifier_result(char qualifier) {
  switch (qualifier) {
  case '-':
    return SPF_RES_FAIL;
  case '~':
    return SPF_RES_SOFTFAIL;
  case '?':
    return SPF_RES_NEUTRAL;
  default:
    return SPF_RES_PASS;
  }
}

/* TRUE when the first `bits` bits of `a` and `b` are equal. */
static gboolean spf_prefix_equal(const guint8 *a, const guint8 *b, int bits) {
  int whole = bits / 8;
  if (memcmp(a, b, (gsize)whole) != 0)
    return FALSE;
  int rest = bits % 8;
  if (rest == 0)
    return TRUE;
  guint8 mask = (guint8)(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

/* Does an ip4/ip6 mechanism cover the client (`address`, 4 or 16 octets)? */
static gboolean spf_network_matches(const SpfMechanism *mechanism,
                                    const guint8 *address, gsize length) {
  gboolean ip6 = mechanism->kind == SPF_MECH_IP6;
  if (length != (ip6 ? 16u : 4u))
    return FALSE;
  guint8 network[16];
  if (inet_pton(ip6 ? AF_INET6 : AF_INET, mechanism->target, network) != 1)
    return FALSE;
  int cidr = ip6 ? mechanism->cidr6 : mechanism->cidr4;
  return spf_prefix_equal(network, address,
                          cidr >= 0 ? cidr : (int)length * 8);
}

gboolean spf_record_decide(const SpfRecord *record, const guint8 *address,
                           gsize length, SpfIncludeFunc include,
                           gpointer include_data, guint *lookups,
                           SpfResult *result_r) {
  if (record->redirect != NULL || record->explanation != NULL)
    return FALSE;
  for (guint i = 0; i < record->mechanisms->len; i++) {
    const SpfMechanism *mechanism = record->mechanisms->pdata[i];
    if (mechanism->kind == SPF_MECH_INCLUDE
            ? include == NULL || !spf_name_is_plain(mechanism->target)
            : mechanism->kind != SPF_MECH_ALL &&
                  mechanism->kind != SPF_MECH_IP4 &&
                  mechanism->kind != SPF_MECH_IP6)
      return FALSE;
  }
  *result_r = SPF_RES_NEUTRAL; /* section 4.7: nothing matched */
  for (guint i = 0; i < record->mechanisms->len; i++) {
    const SpfMechanism *mechanism = record->mechanisms->pdata[i];
    gboolean match;
    if (mechanism->kind == SPF_MECH_INCLUDE) {
      /* Section 5.2: a match on the included record's pass; fail,
       * softfail and neutral do not match; anything else is for
       * libspf2 to say. */
      SpfResult included;
      if (!include(mechanism->target, include_data, lookups, &included) ||
          (included != SPF_RES_PASS && included != SPF_RES_FAIL &&
           included != SPF_RES_SOFTFAIL && included != SPF_RES_NEUTRAL))
        return FALSE;
      match = included == SPF_RES_PASS;
    } else {
      match = mechanism->kind == SPF_MECH_ALL ||
              spf_network_matches(mechanism, address, length);
    }
    if (match) {
      *result_r = spf_qualifier_result(mechanism->qualifier);
      break;
    }
  }
  return TRUE;
}

/* --- The questions a record names ---------------------------------------- */

static void spf_question(PstDnsType type, const char *target,
                         const char *domain, SpfQuestionFunc func,
                         gpointer data) {
  const char *name = target != NULL ? target : domain;
  if (name != NULL && spf_name_is_plain(name))
    func(type, name, data);
}

void spf_record_foreach_question(const SpfRecord *record, const char *domain,
                                 gboolean client_ipv6, SpfQuestionFunc func,
                                 gpointer data) {
  PstDnsType address = client_ipv6 ? PST_DNS_TYPE_AAAA : PST_DNS_TYPE_A;
  for (guint i = 0; i < record->mechanisms->len; i++) {
    const SpfMechanism *mechanism = record->mechanisms->pdata[i];
    switch (mechanism->kind) {
    case SPF_MECH_A:
      spf_question(address, mechanism->target, domain, func, data);
      break;
    case SPF_MECH_MX:
      spf_question(PST_DNS_TYPE_MX, mechanism->target, domain, func, data);
      break;
    case SPF_MECH_INCLUDE:
      spf_question(PST_DNS_TYPE_TXT, mechanism->target, NULL, func, data);
      break;
    case SPF_MECH_EXISTS:
      spf_question(PST_DNS_TYPE_A, mechanism->target, NULL, func, data);
      break;
    default:
      break;
    }
  }
  if (record->redirect != NULL)
    spf_question(PST_DNS_TYPE_TXT, record->redirect, NULL, func, data);
}
