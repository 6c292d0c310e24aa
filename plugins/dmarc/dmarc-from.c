/* dmarc-from.c - the RFC5322.From domain (RFC 9989 "Extract Author
 * Domain") and domain-name normalization.
 *
 * dmarc_from_domain() reads the From: field as RFC 5322 section 3.4
 * writes it (mailbox-list, display names, quoted strings, nested comments,
 * angle addresses with an obsolete route, groups) with a small scanner
 * that never copies more than the field: it is fed by clients and fuzzed
 * (fuzz/fuzz-dmarc-from.c).  Exactly one From: field is required; several
 * addresses are accepted only when they share one domain (RFC 9989:
 * "only proceed with DMARC checking if the domain is identical for all
 * addresses"); anything else is malformed and the plugin's
 * `malformed_from` decides.  Domains become lower-case A-labels (U-labels
 * "MUST be converted to an A-label").
 */
#include <string.h>

#include "dmarc.h"

#define DMARC_FROM_MAX_ADDRESSES 100

/* `ascii` (a new string) without its final dot, lower-cased, when it is
 * LDH labels of 1 to 63 octets ('_' is allowed: it occurs in the DNS), at
 * most 253 octets; otherwise NULL (and `ascii` is freed). */
static char *dmarc_domain_check_ascii(char *ascii) {
  gsize length = strlen(ascii);
  if (length > 0 && ascii[length - 1] == '.')
    ascii[--length] = '\0';
  gsize label = 0;
  gboolean valid = length > 0 && length <= 253;
  for (gsize i = 0; valid && i < length; i++) {
    char c = ascii[i];
    if (c == '.') {
      valid = label > 0;
      label = 0;
    } else if (g_ascii_isalnum(c) || c == '-' || c == '_') {
      valid = ++label <= 63;
      /* g_ascii_tolower() is a call per octet */
      if (g_ascii_isupper(c))
        ascii[i] = (char)(c - 'A' + 'a');
    } else {
      valid = FALSE;
    }
  }
  if (valid && label > 0)
    return ascii;
  g_free(ascii);
  return NULL;
}

static gboolean dmarc_is_ascii(const char *name) {
  for (const char *p = name; *p != '\0'; p++)
    if ((guchar)*p >= 0x80)
      return FALSE;
  return TRUE;
}

char *dmarc_domain_normalize(const char *name) {
  if (name == NULL || name[0] == '\0' || strlen(name) > 1024)
    return NULL;
  /* For ASCII, g_hostname_to_ascii() only lower-cases (nameprep removes
   * no ASCII character), which the check does: the usual name costs one
   * copy instead of GLib's IDNA pass. */
  if (dmarc_is_ascii(name))
    return dmarc_domain_check_ascii(g_strdup(name));
  /* g_hostname_to_ascii() reads past the end of invalid UTF-8. */
  if (!g_utf8_validate(name, -1, NULL))
    return NULL;
  char *ascii = g_hostname_to_ascii(name);
  return ascii != NULL ? dmarc_domain_check_ascii(ascii) : NULL;
}

/* --- The scanner -----------------------------------------------------------
 */

typedef struct {
  GString *text;        /* the current mailbox outside <>, comments removed */
  GString *angle;       /* inside <>, comments removed */
  gboolean has_angle;   /* this mailbox had <...> */
  GPtrArray *addresses; /* of char*: the addr-specs found */
  gboolean broken;
} FromScan;

static void from_scan_finish_mailbox(FromScan *scan) {
  const char *source = scan->has_angle ? scan->angle->str : scan->text->str;
  g_autofree char *address = g_strstrip(g_strdup(source));
  /* An obsolete route "@a,@b:local@domain" inside <> is dropped. */
  if (scan->has_angle && address[0] == '@') {
    char *colon = strchr(address, ':');
    char *rest = g_strdup(colon != NULL ? colon + 1 : "");
    g_free(address);
    address = rest;
  }
  if (address[0] != '\0') {
    if (scan->addresses->len < DMARC_FROM_MAX_ADDRESSES)
      g_ptr_array_add(scan->addresses, g_steal_pointer(&address));
    else
      scan->broken = TRUE;
  }
  g_string_truncate(scan->text, 0);
  g_string_truncate(scan->angle, 0);
  scan->has_angle = FALSE;
}

/* Skips a comment starting at value[*i] == '('; FALSE when unclosed. */
static gboolean from_skip_comment(const char *value, gsize *i) {
  guint depth = 0;
  for (; value[*i] != '\0'; (*i)++) {
    char c = value[*i];
    if (c == '\\' && value[*i + 1] != '\0')
      (*i)++;
    else if (c == '(')
      depth++;
    else if (c == ')' && --depth == 0)
      return TRUE;
  }
  return FALSE;
}

/* Copies a quoted string starting at value[*i] == '"' into `out`, quotes
 * and escapes included; FALSE when unclosed. */
static gboolean from_copy_quoted(const char *value, gsize *i, GString *out) {
  g_string_append_c(out, '"');
  for ((*i)++; value[*i] != '\0'; (*i)++) {
    char c = value[*i];
    if (c == '\\' && value[*i + 1] != '\0') {
      g_string_append_c(out, c);
      c = value[++(*i)];
    } else if (c == '"') {
      g_string_append_c(out, c);
      return TRUE;
    }
    g_string_append_c(out, c);
  }
  return FALSE;
}

/* One character outside comments and quotes. */
static void from_scan_char(FromScan *scan, char c, gboolean *in_angle) {
  GString *out = *in_angle ? scan->angle : scan->text;
  if (c == '<' && !*in_angle) {
    if (scan->has_angle)
      scan->broken = TRUE;
    *in_angle = TRUE;
    scan->has_angle = TRUE;
  } else if (c == '>' && *in_angle) {
    *in_angle = FALSE;
  } else if (c == '<' || c == '>') {
    scan->broken = TRUE;
  } else if (!*in_angle && (c == ',' || c == ';')) {
    from_scan_finish_mailbox(scan);
  } else if (!*in_angle && c == ':') {
    /* A group's display name ends: its members follow. */
    g_string_truncate(scan->text, 0);
  } else if (c == '\r' || c == '\n') {
    g_string_append_c(out, ' '); /* folding */
  } else {
    g_string_append_c(out, c);
  }
}

/* The addr-specs of one From: value, or NULL when it cannot be read. */
static GPtrArray *from_scan(const char *value) {
  FromScan scan = {
      .text = g_string_new(NULL),
      .angle = g_string_new(NULL),
      .addresses = g_ptr_array_new_with_free_func(g_free),
  };
  gboolean in_angle = FALSE;
  /* broken first: an unclosed quote or comment leaves i on the NUL. */
  for (gsize i = 0; !scan.broken && value[i] != '\0'; i++) {
    char c = value[i];
    if (c == '(')
      scan.broken = !from_skip_comment(value, &i);
    else if (c == '"')
      scan.broken =
          !from_copy_quoted(value, &i, in_angle ? scan.angle : scan.text);
    else
      from_scan_char(&scan, c, &in_angle);
  }
  if (in_angle)
    scan.broken = TRUE;
  from_scan_finish_mailbox(&scan);
  g_string_free(scan.text, TRUE);
  g_string_free(scan.angle, TRUE);
  if (scan.broken) {
    g_ptr_array_unref(scan.addresses);
    return NULL;
  }
  return scan.addresses;
}

/* The domain of an addr-spec: after the last '@' outside quotes; NULL for
 * a domain literal or a missing or bad domain. */
static char *from_address_domain(const char *address) {
  const char *at = NULL;
  gboolean quoted = FALSE;
  for (const char *p = address; *p != '\0'; p++) {
    if (*p == '\\' && quoted && p[1] != '\0')
      p++;
    else if (*p == '"')
      quoted = !quoted;
    else if (*p == '@' && !quoted)
      at = p;
  }
  if (at == NULL || at == address)
    return NULL;
  /* White space around the dots of an obsolete domain is allowed. */
  g_autoptr(GString) domain = g_string_new(NULL);
  for (const char *p = at + 1; *p != '\0'; p++)
    if (*p != ' ' && *p != '\t')
      g_string_append_c(domain, *p);
  if (domain->str[0] == '[')
    return NULL;
  return dmarc_domain_normalize(domain->str);
}

char *dmarc_from_domain(const char *const *values, guint count,
                        const char **problem_r) {
  if (count != 1) {
    *problem_r = count == 0 ? "no From: field" : "several From: fields";
    return NULL;
  }
  g_autoptr(GPtrArray) addresses = from_scan(values[0]);
  if (addresses == NULL) {
    *problem_r = "unreadable From: field";
    return NULL;
  }
  if (addresses->len == 0) {
    *problem_r = "no address in From:";
    return NULL;
  }
  g_autofree char *domain = NULL;
  for (guint i = 0; i < addresses->len; i++) {
    g_autofree char *next = from_address_domain(addresses->pdata[i]);
    if (next == NULL) {
      *problem_r = "From: address without a usable domain";
      return NULL;
    }
    if (domain != NULL && !g_str_equal(domain, next)) {
      *problem_r = "From: addresses with different domains";
      return NULL;
    }
    if (domain == NULL)
      domain = g_steal_pointer(&next);
  }
  *problem_r = NULL;
  return g_steal_pointer(&domain);
}
