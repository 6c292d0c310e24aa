/* dmarc-record.c - the DMARC policy record parser (RFC 9989 "General
 * Record Format" and "Formal Definition").
 *
 * dmarc_record_parse() takes a TXT record from DNS (hostile input: it is
 * fuzzed by fuzz/fuzz-dmarc-record.c) and returns NULL unless the first
 * tag is exactly "v=DMARC1" (the version value is case-sensitive, %s"DMARC1").
 * Then every tag is "name *WSP = *WSP value" separated by ";" with white
 * space around it; unknown tags are ignored and a known tag with an
 * invalid value falls back to its default, as RFC 9989 requires ("Syntax
 * errors in the remainder of the record MUST be discarded in favor of
 * default values (if any) or ignored outright").  The removed tags pct, rf
 * and ri are unknown tags now.  A p, sp or np value that is not a
 * dmarc-request makes the record p=none when rua holds a valid URI, and
 * unusable otherwise ("DMARC Policy Discovery").  A record without p is
 * treated as p=none (the p tag's definition).  The first occurrence of a
 * tag counts; repeats are noted as a problem and ignored.
 */
#include <stdarg.h>
#include <string.h>

#include "dmarc.h"

/* Longer records are not DMARC records anyone publishes. */
#define DMARC_RECORD_MAX_LENGTH 8192

void dmarc_record_free(DmarcRecord *record) {
  if (record == NULL)
    return;
  g_ptr_array_unref(record->rua);
  g_ptr_array_unref(record->ruf);
  g_free(record->problem);
  g_free(record);
}

const char *dmarc_policy_to_string(DmarcPolicy policy) {
  switch (policy) {
  case DMARC_POLICY_NONE:
    return "none";
  case DMARC_POLICY_QUARANTINE:
    return "quarantine";
  case DMARC_POLICY_REJECT:
    return "reject";
  case DMARC_POLICY_UNSET:
    break;
  }
  return "";
}

static gboolean dmarc_is_wsp(char c) {
  return c == ' ' || c == '\t';
}

static char *dmarc_strip_wsp(const char *start, const char *end) {
  while (start < end && dmarc_is_wsp(*start))
    start++;
  while (end > start && dmarc_is_wsp(end[-1]))
    end--;
  return g_strndup(start, end - start);
}

/* Notes the first problem only: it is what an admin fixes first. */
static void dmarc_record_note(DmarcRecord *record, const char *format, ...)
    G_GNUC_PRINTF(2, 3);
static void dmarc_record_note(DmarcRecord *record, const char *format, ...) {
  if (record->problem != NULL)
    return;
  va_list args;
  va_start(args, format);
  record->problem = g_strdup_vprintf(format, args);
  va_end(args);
}

/* dmarc-request: "none" / "quarantine" / "reject" (ABNF strings are
 * case-insensitive). */
static DmarcPolicy dmarc_policy_parse(const char *value) {
  if (g_ascii_strcasecmp(value, "none") == 0)
    return DMARC_POLICY_NONE;
  if (g_ascii_strcasecmp(value, "quarantine") == 0)
    return DMARC_POLICY_QUARANTINE;
  if (g_ascii_strcasecmp(value, "reject") == 0)
    return DMARC_POLICY_REJECT;
  return DMARC_POLICY_UNSET;
}

/* dmarc-fo: "0" / "1" / "d" / "s" / "d:s" / "s:d"; 0 when invalid.  The
 * colon-separated list is taken in general ("0:d" too), as receivers do. */
static guint dmarc_fo_parse(const char *value) {
  g_auto(GStrv) options = g_strsplit(value, ":", -1);
  guint fo = 0;
  for (guint i = 0; options[i] != NULL; i++) {
    g_autofree char *option =
        dmarc_strip_wsp(options[i], options[i] + strlen(options[i]));
    if (g_str_equal(option, "0"))
      fo |= DMARC_FO_0;
    else if (g_str_equal(option, "1"))
      fo |= DMARC_FO_1;
    else if (g_ascii_strcasecmp(option, "d") == 0)
      fo |= DMARC_FO_D;
    else if (g_ascii_strcasecmp(option, "s") == 0)
      fo |= DMARC_FO_S;
    else
      return 0;
  }
  return fo;
}

/* RFC 3986 scheme ":" and printable ASCII without white space. */
static gboolean dmarc_uri_is_valid(const char *uri) {
  if (!g_ascii_isalpha(uri[0]))
    return FALSE;
  const char *p = uri + 1;
  while (g_ascii_isalnum(*p) || *p == '+' || *p == '-' || *p == '.')
    p++;
  if (*p != ':' || p[1] == '\0')
    return FALSE;
  for (p++; *p != '\0'; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return FALSE;
  return TRUE;
}

/* dmarc-urilist: the valid URIs; FALSE when one is not valid (the valid
 * ones are still kept). */
static gboolean dmarc_urilist_parse(const char *value, GPtrArray *uris) {
  g_auto(GStrv) items = g_strsplit(value, ",", -1);
  gboolean all_valid = TRUE;
  for (guint i = 0; items[i] != NULL; i++) {
    g_autofree char *uri =
        dmarc_strip_wsp(items[i], items[i] + strlen(items[i]));
    if (dmarc_uri_is_valid(uri) && uris->len < 32)
      g_ptr_array_add(uris, g_steal_pointer(&uri));
    else
      all_valid = FALSE;
  }
  return all_valid;
}

typedef struct {
  gboolean policy_invalid; /* p, sp or np had an invalid value */
  guint seen;              /* bits of the tags seen, for repeats */
} DmarcParseState;

enum {
  TAG_P = 1 << 0,
  TAG_SP = 1 << 1,
  TAG_NP = 1 << 2,
  TAG_ADKIM = 1 << 3,
  TAG_ASPF = 1 << 4,
  TAG_PSD = 1 << 5,
  TAG_T = 1 << 6,
  TAG_FO = 1 << 7,
  TAG_RUA = 1 << 8,
  TAG_RUF = 1 << 9,
};

static const struct {
  const char *name;
  guint bit;
} dmarc_tags[] = {
    {"p", TAG_P},       {"sp", TAG_SP},   {"np", TAG_NP}, {"adkim", TAG_ADKIM},
    {"aspf", TAG_ASPF}, {"psd", TAG_PSD}, {"t", TAG_T},   {"fo", TAG_FO},
    {"rua", TAG_RUA},   {"ruf", TAG_RUF},
};

static guint dmarc_tag_bit(const char *name) {
  for (guint i = 0; i < G_N_ELEMENTS(dmarc_tags); i++)
    if (g_ascii_strcasecmp(name, dmarc_tags[i].name) == 0)
      return dmarc_tags[i].bit;
  return 0;
}

static void dmarc_policy_tag(DmarcRecord *record, DmarcParseState *state,
                             DmarcPolicy *slot, const char *name,
                             const char *value) {
  *slot = dmarc_policy_parse(value);
  if (*slot == DMARC_POLICY_UNSET) {
    state->policy_invalid = TRUE;
    dmarc_record_note(record, "invalid %s=%s", name, value);
  }
}

/* "r" or "s"; anything else keeps relaxed. */
static void dmarc_mode_tag(DmarcRecord *record, gboolean *strict,
                           const char *name, const char *value) {
  if (g_ascii_strcasecmp(value, "s") == 0)
    *strict = TRUE;
  else if (g_ascii_strcasecmp(value, "r") != 0)
    dmarc_record_note(record, "invalid %s=%s (relaxed used)", name, value);
}

static void dmarc_tag_apply(DmarcRecord *record, DmarcParseState *state,
                            guint bit, const char *name, const char *value) {
  switch (bit) {
  case TAG_P:
    dmarc_policy_tag(record, state, &record->p, name, value);
    break;
  case TAG_SP:
    dmarc_policy_tag(record, state, &record->sp, name, value);
    break;
  case TAG_NP:
    dmarc_policy_tag(record, state, &record->np, name, value);
    break;
  case TAG_ADKIM:
    dmarc_mode_tag(record, &record->adkim_strict, name, value);
    break;
  case TAG_ASPF:
    dmarc_mode_tag(record, &record->aspf_strict, name, value);
    break;
  case TAG_PSD:
    if (g_ascii_strcasecmp(value, "y") == 0)
      record->psd = DMARC_PSD_Y;
    else if (g_ascii_strcasecmp(value, "n") == 0)
      record->psd = DMARC_PSD_N;
    else if (g_ascii_strcasecmp(value, "u") != 0)
      dmarc_record_note(record, "invalid %s=%s (u used)", name, value);
    break;
  case TAG_T:
    if (g_ascii_strcasecmp(value, "y") == 0)
      record->testing = TRUE;
    else if (g_ascii_strcasecmp(value, "n") != 0)
      dmarc_record_note(record, "invalid %s=%s (n used)", name, value);
    break;
  case TAG_FO:
    record->fo = dmarc_fo_parse(value);
    if (record->fo == 0) {
      record->fo = DMARC_FO_0;
      dmarc_record_note(record, "invalid %s=%s (0 used)", name, value);
    }
    break;
  case TAG_RUA:
  case TAG_RUF:
    if (!dmarc_urilist_parse(value, bit == TAG_RUA ? record->rua : record->ruf))
      dmarc_record_note(record, "invalid URI in %s=%s", name, value);
    break;
  }
}

/* One "name = value" tag (after the version); unknown names are
 * ignored. */
static void dmarc_tag_parse(DmarcRecord *record, DmarcParseState *state,
                            const char *start, const char *end) {
  const char *equals = memchr(start, '=', end - start);
  g_autofree char *name = dmarc_strip_wsp(start, equals != NULL ? equals : end);
  if (name[0] == '\0' && equals == NULL)
    return; /* an empty tag: "p=none;;" or the optional final ";" */
  if (equals == NULL) {
    dmarc_record_note(record, "tag %s without a value", name);
    return;
  }
  g_autofree char *value = dmarc_strip_wsp(equals + 1, end);
  guint bit = dmarc_tag_bit(name);
  if (bit == 0)
    return; /* unknown tags MUST be ignored (pct, rf, ri among them) */
  if (state->seen & bit) {
    dmarc_record_note(record, "repeated tag %s ignored", name);
    return;
  }
  state->seen |= bit;
  if (value[0] == '\0') {
    dmarc_record_note(record, "tag %s with an empty value", name);
    if (bit == TAG_P || bit == TAG_SP || bit == TAG_NP)
      state->policy_invalid = TRUE;
    return;
  }
  dmarc_tag_apply(record, state, bit, name, value);
}

/* "v" equals %s"DMARC1" as the first tag; `end_r` gets where it ends. */
static gboolean dmarc_version_parse(const char *text, const char **end_r) {
  const char *p = text;
  while (dmarc_is_wsp(*p))
    p++;
  if (*p != 'v' && *p != 'V')
    return FALSE;
  for (p++; dmarc_is_wsp(*p); p++)
    ;
  if (*p != '=')
    return FALSE;
  for (p++; dmarc_is_wsp(*p); p++)
    ;
  if (strncmp(p, "DMARC1", 6) != 0)
    return FALSE;
  for (p += 6; dmarc_is_wsp(*p); p++)
    ;
  if (*p != '\0' && *p != ';')
    return FALSE;
  *end_r = p;
  return TRUE;
}

/* The policy tags' fallbacks ("DMARC Policy Discovery"). */
static void dmarc_record_settle(DmarcRecord *record,
                                const DmarcParseState *state) {
  record->usable = TRUE;
  if (state->policy_invalid) {
    if (record->rua->len == 0) {
      record->usable = FALSE;
      return;
    }
    /* "act as if a record containing p=none was retrieved" */
    record->p = DMARC_POLICY_NONE;
    record->sp = record->np = DMARC_POLICY_UNSET;
    return;
  }
  if (record->p == DMARC_POLICY_UNSET)
    record->p = DMARC_POLICY_NONE;
}

DmarcRecord *dmarc_record_parse(const char *text, gsize length) {
  if (length > DMARC_RECORD_MAX_LENGTH || memchr(text, '\0', length) != NULL)
    return NULL;
  g_autofree char *copy = g_strndup(text, length);
  const char *p = NULL;
  if (!dmarc_version_parse(copy, &p))
    return NULL;
  DmarcRecord *record = g_new0(DmarcRecord, 1);
  record->rua = g_ptr_array_new_with_free_func(g_free);
  record->ruf = g_ptr_array_new_with_free_func(g_free);
  record->fo = DMARC_FO_0;
  DmarcParseState state = {0};
  while (*p == ';') {
    const char *start = p + 1;
    const char *end = strchr(start, ';');
    if (end == NULL)
      end = start + strlen(start);
    dmarc_tag_parse(record, &state, start, end);
    p = end;
  }
  dmarc_record_settle(record, &state);
  return record;
}

/* --- mailto: URIs ------------------------------------------------------- */

static int dmarc_hex_value(char c) {
  if (g_ascii_isdigit(c))
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* %XX decoded; NULL on a bad escape or a decoded control character. */
static char *dmarc_percent_decode(const char *start, gsize length) {
  GString *out = g_string_sized_new(length);
  for (gsize i = 0; i < length; i++) {
    char c = start[i];
    if (c == '%') {
      int high = i + 2 < length ? dmarc_hex_value(start[i + 1]) : -1;
      int low = high >= 0 ? dmarc_hex_value(start[i + 2]) : -1;
      if (low < 0) {
        g_string_free(out, TRUE);
        return NULL;
      }
      c = (char)(high * 16 + low);
      i += 2;
    }
    if ((guchar)c <= 0x20 || c == 0x7f || c == '<' || c == '>') {
      g_string_free(out, TRUE);
      return NULL;
    }
    g_string_append_c(out, c);
  }
  return g_string_free(out, FALSE);
}

char *dmarc_uri_mailto_address(const char *uri) {
  if (g_ascii_strncasecmp(uri, "mailto:", 7) != 0)
    return NULL;
  const char *start = uri + 7;
  gsize length = strcspn(start, "?!");
  g_autofree char *address = dmarc_percent_decode(start, length);
  if (address == NULL)
    return NULL;
  const char *at = strrchr(address, '@');
  if (at == NULL || at == address || strchr(address, ',') != NULL)
    return NULL;
  g_autofree char *domain = dmarc_domain_normalize(at + 1);
  if (domain == NULL)
    return NULL;
  return g_strdup_printf("%.*s@%s", (int)(at - address), address, domain);
}
