/* smtp-address.c - the mailbox grammar of RFC 5321 4.1.2 and RFC 6531.
 *
 * Entry points: pst_smtp_mailbox_check() (local part, '@', domain or
 * address literal), pst_smtp_domain_is_valid(),
 * pst_smtp_address_literal_is_valid(), pst_smtp_text_is_clean() and
 * pst_smtp_a_label_length().  Used by the path parser (smtp-path.c), the
 * ESMTP parameter parser and, for HELO/EHLO arguments, by the session.
 *
 * Stricter than the RFC in four places, each because a looser reading
 * lets two programs disagree about one address: IPv4 octets with leading
 * zeros are refused (inet_pton() refuses them, inet_aton() reads octal);
 * a general address literal may not contain '@', and its tag must start
 * with a letter (so "[2001:db8::1]" is not a literal tagged "2001"); a
 * domain may not end with a dot.  Percent hacks and bang paths are valid
 * local parts here: the relay policy, not the grammar, decides what they
 * mean.
 *
 * Pure functions over buffers that are not NUL-terminated; no allocation
 * except the code point array for an A-label length.
 */
#include <string.h>

#include "smtp/smtp-address.h"
#include "smtp/smtp-parse.h"

#define MAX_LABEL 63

gboolean pst_smtp_text_is_clean(const char *text, gsize length) {
  const char *end = NULL;
  if (!g_utf8_validate_len(text, length, &end))
    return FALSE;
  for (gsize i = 0; i < length; i++) {
    guint8 c = (guint8)text[i];
    if (c < 0x20 || c == 0x7f)
      return FALSE;
    /* U+0080..U+009F are encoded as C2 80..C2 9F. */
    if (c == 0xc2 && i + 1 < length && (guint8)text[i + 1] < 0xa0)
      return FALSE;
  }
  return TRUE;
}

/* --- Local part ---------------------------------------------------------- */

/* RFC 5322 atext, plus any octet of a UTF-8 sequence (RFC 6531). */
static gboolean is_atext(guint8 c) {
  if (g_ascii_isalnum(c) || c >= 0x80)
    return TRUE;
  return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Dot-string: Atom *("." Atom).  Returns its length (0 if none). */
static gsize dot_string_scan(const char *text, gsize length) {
  gsize i = 0;
  while (i < length) {
    gsize atom = i;
    while (i < length && is_atext((guint8)text[i]))
      i++;
    if (i == atom)
      return 0; /* empty atom: leading, trailing or double dot */
    if (i == length || text[i] != '.')
      return i;
    i++;
  }
  return 0; /* ended on a dot */
}

/* Quoted-string of RFC 5321 (qtextSMTP, quoted-pairSMTP, UTF-8).  Returns
 * its length including both quotes, or 0 when it is malformed. */
static gsize quoted_string_scan(const char *text, gsize length) {
  if (length == 0 || text[0] != '"')
    return 0;
  for (gsize i = 1; i < length; i++) {
    guint8 c = (guint8)text[i];
    if (c == '"')
      return i + 1;
    if (c == '\\') {
      i++;
      if (i == length || (guint8)text[i] < 32 || (guint8)text[i] > 126)
        return 0;
    } else if (c < 32 || c == 127) {
      return 0;
    }
  }
  return 0;
}

/* --- Domain -------------------------------------------------------------- */

/* Adapts the Punycode bias (RFC 3492 6.1). */
static guint64 punycode_adapt(guint64 delta, guint64 points, gboolean first) {
  delta = first ? delta / 700 : delta / 2;
  delta += delta / points;
  guint64 k = 0;
  while (delta > ((36 - 1) * 26) / 2) {
    delta /= 36 - 1;
    k += 36;
  }
  return k + (36 * delta) / (delta + 38);
}

/* Octets of the Punycode encoding of `points` (RFC 3492 6.3), counted
 * rather than produced. */
static gsize punycode_length(const gunichar *points, gsize count) {
  gsize basic = 0;
  for (gsize i = 0; i < count; i++)
    basic += points[i] < 0x80;
  gsize out = basic + (basic > 0);
  guint64 n = 0x80, delta = 0, bias = 72, handled = basic;
  while (handled < count) {
    guint64 m = G_MAXUINT64;
    for (gsize i = 0; i < count; i++)
      if (points[i] >= n && points[i] < m)
        m = points[i];
    delta += (m - n) * (handled + 1);
    n = m;
    for (gsize i = 0; i < count; i++) {
      if (points[i] < n)
        delta++;
      if (points[i] != n)
        continue;
      /* One digit per step of the variable-length integer for delta. */
      for (guint64 q = delta, k = 36;; k += 36) {
        guint64 t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
        out++;
        if (q < t)
          break;
        q = (q - t) / (36 - t);
      }
      bias = punycode_adapt(delta, handled + 1, handled == basic);
      delta = 0;
      handled++;
    }
    delta++;
    n++;
  }
  return out;
}

gsize pst_smtp_a_label_length(const char *label, gsize length) {
  glong count = 0;
  g_autofree gunichar *points =
      g_utf8_to_ucs4(label, (glong)length, NULL, &count, NULL);
  g_return_val_if_fail(points != NULL, G_MAXSIZE);
  return strlen("xn--") + punycode_length(points, (gsize)count);
}

/* One label: Let-dig [Ldh-str], or a U-label of letters, digits, hyphens
 * and non-ASCII characters; at most 63 octets in its DNS (A-label) form. */
static gboolean label_is_valid(const char *label, gsize length,
                               gboolean allow_utf8) {
  if (length == 0 || label[0] == '-' || label[length - 1] == '-')
    return FALSE;
  gboolean ascii = TRUE;
  for (gsize i = 0; i < length; i++) {
    guint8 c = (guint8)label[i];
    if (c >= 0x80)
      ascii = FALSE;
    else if (!g_ascii_isalnum(c) && c != '-')
      return FALSE;
  }
  if (ascii)
    return length <= MAX_LABEL;
  return allow_utf8 && pst_smtp_a_label_length(label, length) <= MAX_LABEL;
}

gboolean pst_smtp_domain_is_valid(const char *domain, gsize length,
                                  gboolean allow_utf8) {
  g_return_val_if_fail(domain != NULL || length == 0, FALSE);
  if (length == 0 || length > PST_SMTP_MAX_DOMAIN)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if ((guint8)domain[i] >= 0x80) {
      if (!allow_utf8 || !pst_smtp_text_is_clean(domain, length))
        return FALSE;
      break;
    }
  gsize start = 0;
  while (start <= length) {
    const char *dot = memchr(domain + start, '.', length - start);
    gsize end = dot != NULL ? (gsize)(dot - domain) : length;
    if (!label_is_valid(domain + start, end - start, allow_utf8))
      return FALSE; /* also an empty label: "a..b", ".a", "a." */
    start = end + 1;
  }
  return TRUE;
}

/* --- Address literals ---------------------------------------------------- */

/* Snum "." Snum "." Snum "." Snum, each 0..255 without leading zeros. */
static gboolean ipv4_is_valid(const char *text, gsize length) {
  guint octets = 0;
  gsize i = 0;
  while (octets < 4) {
    gsize start = i;
    guint value = 0;
    while (i < length && i - start < 3 && g_ascii_isdigit(text[i]))
      value = value * 10 + (guint)(text[i++] - '0');
    gsize digits = i - start;
    if (digits == 0 || value > 255 || (digits > 1 && text[start] == '0'))
      return FALSE;
    octets++;
    if (octets < 4) {
      if (i == length || text[i] != '.')
        return FALSE;
      i++;
    }
  }
  return i == length;
}

/* One IPv6-hex group: 1*4HEXDIG. */
static gboolean hex_group_is_valid(const char *text, gsize length) {
  if (length == 0 || length > 4)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (!g_ascii_isxdigit(text[i]))
      return FALSE;
  return TRUE;
}

/* IPv6-addr of RFC 5321 4.1.3: eight groups, or at most six besides a
 * "::" (which stands for at least two), the last two optionally written
 * as an IPv4 address. */
static gboolean ipv6_is_valid(const char *text, gsize length) {
  guint groups = 0;
  gboolean compressed = FALSE;
  gsize i = 0;
  if (length >= 2 && text[0] == ':' && text[1] == ':') {
    compressed = TRUE;
    i = 2;
  }
  while (i < length) {
    const char *colon = memchr(text + i, ':', length - i);
    gsize end = colon != NULL ? (gsize)(colon - text) : length;
    if (end == length && memchr(text + i, '.', end - i) != NULL) {
      if (!ipv4_is_valid(text + i, end - i))
        return FALSE;
      groups += 2;
      break;
    }
    if (!hex_group_is_valid(text + i, end - i))
      return FALSE;
    groups++;
    if (end == length)
      break;
    if (end + 1 < length && text[end + 1] == ':') {
      if (compressed)
        return FALSE;
      compressed = TRUE;
      i = end + 2;
    } else {
      i = end + 1;
      if (i == length)
        return FALSE; /* a single trailing ':' */
    }
  }
  return compressed ? groups <= 6 : groups == 8;
}

/* Standardized-tag ":" 1*dcontent, the tag an Ldh-str that starts with a
 * letter (as every registered tag does), so that an IPv6 address without
 * its "IPv6:" tag is not taken for a general literal. */
static gboolean general_literal_is_valid(const char *text, gsize length,
                                         gsize colon) {
  if (colon == 0 || !g_ascii_isalpha(text[0]) || text[colon - 1] == '-' ||
      colon + 1 == length)
    return FALSE;
  for (gsize i = 0; i < colon; i++)
    if (!g_ascii_isalnum(text[i]) && text[i] != '-')
      return FALSE;
  for (gsize i = colon + 1; i < length; i++) {
    guint8 c = (guint8)text[i];
    if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' || c == '@')
      return FALSE;
  }
  return TRUE;
}

gboolean pst_smtp_address_literal_is_valid(const char *literal, gsize length) {
  g_return_val_if_fail(literal != NULL || length == 0, FALSE);
  if (length < 3 || literal[0] != '[' || literal[length - 1] != ']')
    return FALSE;
  const char *text = literal + 1;
  gsize text_length = length - 2;
  const char *colon = memchr(text, ':', text_length);
  if (colon == NULL)
    return ipv4_is_valid(text, text_length);
  gsize tag_length = (gsize)(colon - text);
  if (tag_length == 4 && g_ascii_strncasecmp(text, "IPv6", 4) == 0)
    return ipv6_is_valid(colon + 1, text_length - 5);
  return general_literal_is_valid(text, text_length, tag_length);
}

/* --- Mailbox ------------------------------------------------------------- */

const PstSmtpReply *pst_smtp_mailbox_check(const char *text, gsize length,
                                           gsize *at_r) {
  gsize local = length > 0 && text[0] == '"' ? quoted_string_scan(text, length)
                                             : dot_string_scan(text, length);
  if (local == 0 || local == length || text[local] != '@')
    return &pst_smtp_reply_bad_address;
  if (local > PST_SMTP_MAX_LOCAL_PART)
    return &pst_smtp_reply_address_too_long;

  const char *domain = text + local + 1;
  gsize domain_length = length - local - 1;
  if (domain_length > PST_SMTP_MAX_DOMAIN)
    return &pst_smtp_reply_address_too_long;
  gboolean valid =
      domain_length > 0 && domain[0] == '['
          ? pst_smtp_address_literal_is_valid(domain, domain_length)
          : pst_smtp_domain_is_valid(domain, domain_length, TRUE);
  if (!valid)
    return &pst_smtp_reply_bad_address;
  *at_r = local;
  return NULL;
}
