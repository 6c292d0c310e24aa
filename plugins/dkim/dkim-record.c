/* dkim-record.c - the DKIM plugin's pure parts: name syntax, key records,
 * and the decision of one verified signature.
 *
 * Everything here reads text from the network (d=, s=, TXT records) or
 * writes text for an admin (zone-file lines), has no state, and is unit
 * tested (test-dkim.c) and fuzzed (fuzz/fuzz-dkim-record.c).
 *
 * dkim_check_decide() is where RFC 8301 and RFC 6376 section 8 policy
 * lives (which libopendkim and dkimpy do not enforce): rsa-sha1, short
 * RSA keys, l= shorter than the body, t= in the future, x= past.  Callers: dkim-verify.c, dkim-key.c, the
 * `postilion dkim` tool.
 */
#include <string.h>

#include "dkim.h"

/* --- Names ---------------------------------------------------------------- */

static gboolean dkim_label_char(char c, gboolean underscore) {
  return g_ascii_isalnum(c) || c == '-' || (underscore && c == '_');
}

/* Labels of 1..63 characters, no hyphen first or last; counts them. */
static gboolean dkim_labels_valid(const char *name, gboolean underscore,
                                  guint *count_r) {
  gsize length = strlen(name);
  if (length == 0 || length > 253)
    return FALSE;
  guint count = 0;
  const char *label = name;
  for (const char *p = name;; p++) {
    if (*p == '.' || *p == '\0') {
      gsize size = (gsize)(p - label);
      if (size == 0 || size > 63 || label[0] == '-' || p[-1] == '-')
        return FALSE;
      count++;
      if (*p == '\0')
        break;
      label = p + 1;
    } else if (!dkim_label_char(*p, underscore)) {
      return FALSE;
    }
  }
  *count_r = count;
  return TRUE;
}

gboolean dkim_domain_is_valid(const char *domain) {
  guint count = 0;
  return domain != NULL && dkim_labels_valid(domain, FALSE, &count) &&
         count >= 2;
}

gboolean dkim_selector_is_valid(const char *selector) {
  guint count = 0;
  return selector != NULL && dkim_labels_valid(selector, TRUE, &count);
}

const char *dkim_key_type_to_string(DkimKeyType type) {
  return type == DKIM_KEY_ED25519 ? "ed25519" : "rsa";
}

/* --- Key records ---------------------------------------------------------- */

void dkim_record_clear(DkimRecord *record) {
  g_clear_pointer(&record->public_key, g_free);
}

/* Whether a ':'-separated list (h=, s=) names `want` (or "*"). */
static gboolean dkim_record_list_has(const char *list, const char *want,
                                     gboolean star) {
  g_auto(GStrv) items = g_strsplit(list, ":", 64);
  for (guint i = 0; items[i] != NULL; i++) {
    g_strstrip(items[i]);
    if (g_ascii_strcasecmp(items[i], want) == 0 ||
        (star && g_str_equal(items[i], "*")))
      return TRUE;
  }
  return FALSE;
}

static gboolean dkim_record_fail(GError **error, const char *message) {
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, message);
  return FALSE;
}

typedef struct {
  DkimRecord *record;
  guint index;
  gboolean have_p;
} DkimRecordParse;

static gboolean dkim_record_type(DkimRecord *record, const char *value,
                                 GError **error) {
  if (g_ascii_strcasecmp(value, "rsa") == 0)
    record->type = DKIM_KEY_RSA;
  else if (g_ascii_strcasecmp(value, "ed25519") == 0)
    record->type = DKIM_KEY_ED25519;
  else {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "unknown key type k=%.40s", value);
    return FALSE;
  }
  return TRUE;
}

/* Checks one tag=value and records what the caller needs. */
static gboolean dkim_record_tag(const DkimTag *tag, gpointer data,
                                GError **error) {
  DkimRecordParse *parse = data;
  DkimRecord *record = parse->record;
  guint index = parse->index++;
  g_autofree char *value = dkim_tag_value_strip(tag);
  if (dkim_tag_is(tag, "v")) {
    if (index != 0 || !g_str_equal(value, "DKIM1"))
      return dkim_record_fail(error, "v= must come first and be DKIM1");
  } else if (dkim_tag_is(tag, "k")) {
    return dkim_record_type(record, value, error);
  } else if (dkim_tag_is(tag, "p")) {
    if (!dkim_base64_is_valid(value))
      return dkim_record_fail(error, "p= is not base64");
    g_free(record->public_key);
    record->public_key = g_steal_pointer(&value);
    parse->have_p = TRUE;
  } else if (dkim_tag_is(tag, "h")) {
    record->sha1 = dkim_record_list_has(value, "sha1", FALSE);
    record->sha256 = dkim_record_list_has(value, "sha256", FALSE);
  } else if (dkim_tag_is(tag, "s")) {
    record->not_email = !dkim_record_list_has(value, "email", TRUE);
  } else if (dkim_tag_is(tag, "t")) {
    record->testing = dkim_record_list_has(value, "y", FALSE);
    record->strict = dkim_record_list_has(value, "s", FALSE);
  }
  return TRUE;
}

gboolean dkim_record_parse(const char *text, DkimRecord *record,
                           GError **error) {
  memset(record, 0, sizeof *record);
  record->sha1 = record->sha256 = TRUE;
  DkimRecordParse parse = {.record = record};
  if (!dkim_tags_parse(text, strlen(text), dkim_record_tag, &parse, error)) {
    dkim_record_clear(record);
    return FALSE;
  }
  if (!parse.have_p) {
    dkim_record_clear(record);
    return dkim_record_fail(error, "no p= tag");
  }
  return TRUE;
}

char *dkim_record_format(DkimKeyType type, const char *public_key) {
  return g_strdup_printf("v=DKIM1; %sk=%s; p=%s",
                         type == DKIM_KEY_RSA ? "h=sha256; " : "",
                         dkim_key_type_to_string(type), public_key);
}

char *dkim_record_zone_line(const char *domain, const char *selector,
                            const char *record) {
  GString *out = g_string_new(NULL);
  g_string_append_printf(out, "%s._domainkey.%s.\tIN\tTXT\t", selector,
                         domain);
  gsize length = strlen(record);
  gboolean several = length > 255;
  if (several)
    g_string_append(out, "( ");
  for (gsize at = 0; at < length || at == 0; at += 255) {
    gsize size = MIN(255, length - at);
    if (at > 0)
      g_string_append(out, "\n\t\t\t\t  ");
    g_string_append_printf(out, "\"%.*s\"", (int)size, record + at);
    if (length == 0)
      break;
  }
  g_string_append(out, several ? " )\n" : "\n");
  return g_string_free(out, FALSE);
}

/* --- The From: domain ---------------------------------------------------- */

char *dkim_from_domain(const char *from_value) {
  if (from_value == NULL)
    return NULL;
  /* The address is in angle brackets, or the whole value; comments and
   * display names are skipped by taking the last '@' before the end. */
  const char *open = strchr(from_value, '<');
  if (open != NULL && strchr(open + 1, '<') != NULL)
    return NULL; /* several addresses */
  g_autofree char *address = NULL;
  if (open != NULL) {
    const char *close = strchr(open, '>');
    if (close == NULL)
      return NULL;
    address = g_strndup(open + 1, (gsize)(close - open - 1));
  } else {
    address = g_strdup(from_value);
  }
  if (strchr(from_value, ',') != NULL && open == NULL)
    return NULL; /* a list of addresses: no single author domain */
  g_strstrip(address);
  const char *at = strrchr(address, '@');
  if (at == NULL)
    return NULL;
  g_autofree char *domain = g_strdup(at + 1);
  g_strstrip(domain);
  /* A trailing comment "(...)" after a bare address. */
  char *space = strpbrk(domain, " \t\r\n(");
  if (space != NULL)
    *space = '\0';
  if (domain[0] != '\0' && domain[strlen(domain) - 1] == '.')
    domain[strlen(domain) - 1] = '\0';
  if (!dkim_domain_is_valid(domain))
    return NULL;
  return g_ascii_strdown(domain, -1);
}

/* --- The decision of one signature ---------------------------------------- */

/* The lookup's own outcome, before the signature's. */
static const char *dkim_check_lookup(const DkimCheck *check, char **reason_r) {
  switch (check->lookup) {
  case DKIM_LOOKUP_TEMPFAIL:
    *reason_r = g_strdup("key lookup failed (DNS timeout or error)");
    return "temperror";
  case DKIM_LOOKUP_NOT_FOUND:
    *reason_r = g_strdup("no key published");
    return "permerror";
  case DKIM_LOOKUP_MALFORMED:
    *reason_r = g_strdup_printf("malformed key record: %s",
                                check->lookup_problem != NULL
                                    ? check->lookup_problem
                                    : "unusable");
    return "permerror";
  case DKIM_LOOKUP_REVOKED:
    *reason_r = g_strdup("key revoked (empty p=)");
    return "fail";
  default:
    return NULL;
  }
}

/* RFC 8301 and RFC 6376 section 8.2: what a cryptographic pass still
 * needs. */
static const char *dkim_check_policy(const DkimCheck *check,
                                     char **reason_r) {
  if (check->algorithm != NULL &&
      g_ascii_strcasecmp(check->algorithm, "rsa-sha1") == 0 &&
      !check->allow_rsa_sha1) {
    *reason_r = g_strdup("rsa-sha1 is not accepted (RFC 8301)");
    return "fail";
  }
  if (!check->ed25519 && check->key_bits < check->min_key_bits) {
    *reason_r = g_strdup_printf("%u-bit RSA key is under %u bits (RFC 8301)",
                                check->key_bits, check->min_key_bits);
    return "fail";
  }
  if (check->signed_length >= 0 && check->body_length >= 0 &&
      check->signed_length < check->body_length) {
    *reason_r = g_strdup_printf(
        "l=%" G_GSSIZE_FORMAT " covers only part of the %" G_GSSIZE_FORMAT
        "-octet body",
        check->signed_length, check->body_length);
    return "policy";
  }
  return NULL;
}

const char *dkim_check_decide(const DkimCheck *check, char **reason_r) {
  *reason_r = NULL;
  if (check->domain == NULL || !dkim_domain_is_valid(check->domain)) {
    *reason_r = g_strdup("invalid d= domain");
    return "permerror";
  }
  const char *result = dkim_check_lookup(check, reason_r);
  if (result != NULL)
    return result;
  if (check->key_type_known && check->algorithm != NULL &&
      (check->key_type == DKIM_KEY_ED25519) !=
          g_str_has_prefix(check->algorithm, "ed25519")) {
    *reason_r = g_strdup_printf("key record k=%s does not fit a=%s",
                                dkim_key_type_to_string(check->key_type),
                                check->algorithm);
    return "permerror";
  }
  if (check->expires_at >= 0 && check->expires_at < check->now) {
    *reason_r = g_strdup("signature expired (x= is past)");
    return "fail";
  }
  if (check->signed_at > check->now + DKIM_CLOCK_DRIFT) {
    *reason_r = g_strdup("signature in the future (t= ahead of our clock)");
    return "fail";
  }
  if (check->problem != NULL) {
    *reason_r = g_strdup(check->problem);
    return "permerror";
  }
  if (check->body_mismatch) {
    *reason_r = g_strdup("body hash mismatch (body changed)");
    return "fail";
  }
  if (!check->passed) {
    *reason_r = g_strdup("signature did not verify (signed header changed)");
    return "fail";
  }
  result = dkim_check_policy(check, reason_r);
  if (result != NULL)
    return result;
  *reason_r = check->ed25519
                  ? g_strdup("ed25519 key")
                  : g_strdup_printf("%u-bit key", check->key_bits);
  return "pass";
}
