/* rdata-parse.c - pure parsers of DNS record data, names and query names.
 *
 * Entry points: pst_dns_name_from_wire(), pst_dns_name_rdata_parse(),
 * pst_dns_txt_rdata_parse(), pst_dns_mx_rdata_parse(),
 * pst_dns_tlsa_rdata_parse(), pst_dns_address_rdata_parse() (called by
 * result.c on every record libunbound returns), pst_dns_message_answer_rdata()
 * (result.c, for an answer libunbound could not hand over as records),
 * pst_dns_query_name_is_valid() and pst_dns_query_name_escape() (lookup.c,
 * before a name is handed to libunbound) and
 * pst_dns_reverse_name_build() (the SDK's pst_dns_reverse_name()).
 *
 * Invariants: every read is preceded by a bounds check against `length`;
 * returned strings are newly allocated, NUL-terminated and (for names)
 * printable ASCII.  A malformed input returns NULL/FALSE with
 * PST_DNS_PARSE_ERROR; nothing here asserts on input data, only on NULL
 * pointers from the caller (bugs).
 */
#include <arpa/inet.h>
#include <string.h>

#include "dns/rdata-parse.h"
#include "util/vformat.h"

G_DEFINE_QUARK(pst - dns - parse - error - quark, pst_dns_parse_error)

static gboolean parse_fail(GError **error, const char *what) {
  g_set_error(error, PST_DNS_PARSE_ERROR, 0, "malformed DNS data: %s", what);
  return FALSE;
}

/* Appends one label octet in presentation form. */
static void append_label_octet(GString *out, guint8 octet) {
  if (octet == '.' || octet == '\\')
    g_string_append_printf(out, "\\%c", octet);
  else if (octet < 0x21 || octet > 0x7e)
    g_string_append_printf(out, "\\%03u", (unsigned)octet);
  else
    g_string_append_c(out, (char)octet);
}

char *pst_dns_name_from_wire(const guint8 *data, gsize length, gsize *offset,
                             GError **error) {
  g_return_val_if_fail(data != NULL || length == 0, NULL);
  g_return_val_if_fail(offset != NULL, NULL);

  g_autoptr(GString) out = g_string_new(NULL);
  gsize position = *offset;
  gsize wire_length = 0;
  for (;;) {
    if (position >= length) {
      parse_fail(error, "name runs past the end of the record");
      return NULL;
    }
    guint8 label_length = data[position++];
    wire_length += 1u + label_length;
    if (wire_length > PST_DNS_NAME_MAX_WIRE) {
      parse_fail(error, "name longer than 255 octets");
      return NULL;
    }
    if (label_length == 0)
      break;
    /* 0xC0 is a compression pointer, 0x40/0x80 are obsolete label types;
     * none may appear in decompressed record data. */
    if (label_length > PST_DNS_LABEL_MAX) {
      parse_fail(error, "compressed or extended label type in a name");
      return NULL;
    }
    if (label_length > length - position) {
      parse_fail(error, "label runs past the end of the record");
      return NULL;
    }
    if (out->len > 0)
      g_string_append_c(out, '.');
    for (guint i = 0; i < label_length; i++)
      append_label_octet(out, data[position + i]);
    position += label_length;
  }
  if (out->len == 0)
    g_string_append_c(out, '.');
  *offset = position;
  return g_string_free(g_steal_pointer(&out), FALSE);
}

char *pst_dns_name_rdata_parse(const guint8 *data, gsize length,
                               GError **error) {
  gsize offset = 0;
  g_autofree char *name = pst_dns_name_from_wire(data, length, &offset, error);
  if (name == NULL)
    return NULL;
  if (offset != length) {
    parse_fail(error, "trailing octets after a name");
    return NULL;
  }
  return g_steal_pointer(&name);
}

char *pst_dns_txt_rdata_parse(const guint8 *data, gsize length,
                              gsize *text_length, GError **error) {
  g_return_val_if_fail(data != NULL || length == 0, NULL);

  /* RFC 1035 asks for one or more strings, but zones do publish records
   * of none: that is the empty text, not a malformed record.  The text is
   * never longer than the RDATA, so one allocation does. */
  g_autofree char *text = g_malloc(length + 1);
  gsize used = 0;
  gsize position = 0;
  while (position < length) {
    guint8 string_length = data[position++];
    if (string_length > length - position) {
      parse_fail(error, "TXT string runs past the end of the record");
      return NULL;
    }
    memcpy(text + used, data + position, string_length);
    used += string_length;
    position += string_length;
  }
  text[used] = '\0';
  if (text_length != NULL)
    *text_length = used;
  return g_steal_pointer(&text);
}

gboolean pst_dns_mx_rdata_parse(const guint8 *data, gsize length,
                                guint16 *preference, char **exchange,
                                GError **error) {
  g_return_val_if_fail(data != NULL || length == 0, FALSE);
  g_return_val_if_fail(preference != NULL && exchange != NULL, FALSE);

  if (length < 3)
    return parse_fail(error, "MX record shorter than 3 octets");
  char *name = pst_dns_name_rdata_parse(data + 2, length - 2, error);
  if (name == NULL)
    return FALSE;
  *preference = (guint16)((data[0] << 8) | data[1]);
  *exchange = name;
  return TRUE;
}

gboolean pst_dns_tlsa_rdata_parse(const guint8 *data, gsize length,
                                  guint8 *usage, guint8 *selector,
                                  guint8 *matching_type,
                                  const guint8 **association,
                                  gsize *association_length, GError **error) {
  g_return_val_if_fail(data != NULL || length == 0, FALSE);

  if (length < 3)
    return parse_fail(error, "TLSA record shorter than 3 octets");
  if (usage != NULL)
    *usage = data[0];
  if (selector != NULL)
    *selector = data[1];
  if (matching_type != NULL)
    *matching_type = data[2];
  if (association != NULL)
    *association = data + 3;
  if (association_length != NULL)
    *association_length = length - 3;
  return TRUE;
}

char *pst_dns_address_rdata_parse(guint16 rrtype, const guint8 *data,
                                  gsize length, GError **error) {
  g_return_val_if_fail(rrtype == 1 || rrtype == 28, NULL);
  g_return_val_if_fail(data != NULL || length == 0, NULL);

  char text[INET6_ADDRSTRLEN];
  int family = rrtype == 1 ? AF_INET : AF_INET6;
  gsize expected = rrtype == 1 ? 4 : 16;
  if (length != expected) {
    parse_fail(error, rrtype == 1 ? "A record is not 4 octets"
                                  : "AAAA record is not 16 octets");
    return NULL;
  }
  if (inet_ntop(family, data, text, sizeof text) == NULL) {
    parse_fail(error, "address not printable");
    return NULL;
  }
  return g_strdup(text);
}

/* Skips the name at `*offset` in a whole DNS message (compression
 * pointers end it: the name they point to is not needed here). */
static gboolean message_skip_name(const guint8 *message, gsize length,
                                  gsize *offset) {
  gsize position = *offset;
  for (guint labels = 0; labels <= PST_DNS_NAME_MAX_WIRE / 2; labels++) {
    if (position >= length)
      return FALSE;
    guint8 octet = message[position];
    if (octet == 0 || (octet & 0xc0) == 0xc0) {
      position += octet == 0 ? 1 : 2;
      if (position > length)
        return FALSE;
      *offset = position;
      return TRUE;
    }
    if ((octet & 0xc0) != 0)
      return FALSE;
    position += 1 + (gsize)octet;
  }
  return FALSE;
}

static guint16 message_u16(const guint8 *p) {
  return (guint16)(p[0] << 8 | p[1]);
}

GPtrArray *pst_dns_message_answer_rdata(const guint8 *message, gsize length,
                                        guint16 rrtype, guint32 *ttl_r,
                                        GError **error) {
  g_return_val_if_fail(message != NULL || length == 0, NULL);

  if (length < 12 || (message[3] & 0x0f) != 0) {
    parse_fail(error, "not a NOERROR response");
    return NULL;
  }
  guint questions = message_u16(message + 4);
  guint answers = message_u16(message + 6);
  gsize position = 12;
  for (guint i = 0; i < questions; i++) {
    if (!message_skip_name(message, length, &position) ||
        length - position < 4) {
      parse_fail(error, "question runs past the end of the message");
      return NULL;
    }
    position += 4;
  }
  g_autoptr(GPtrArray) rdatas =
      g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  guint32 ttl = G_MAXUINT32;
  for (guint i = 0; i < answers; i++) {
    if (!message_skip_name(message, length, &position) ||
        length - position < 10) {
      parse_fail(error, "answer runs past the end of the message");
      return NULL;
    }
    const guint8 *fixed = message + position;
    gsize rdlength = message_u16(fixed + 8);
    position += 10;
    if (rdlength > length - position) {
      parse_fail(error, "RDATA runs past the end of the message");
      return NULL;
    }
    if (message_u16(fixed) == rrtype && message_u16(fixed + 2) == 1 /* IN */) {
      g_ptr_array_add(rdatas, g_bytes_new(message + position, rdlength));
      ttl = MIN(ttl, (guint32)fixed[4] << 24 | (guint32)fixed[5] << 16 |
                         (guint32)fixed[6] << 8 | (guint32)fixed[7]);
    }
    position += rdlength;
  }
  if (ttl_r != NULL)
    *ttl_r = rdatas->len > 0 ? ttl : 0;
  return g_steal_pointer(&rdatas);
}

gboolean pst_dns_query_name_is_valid(const char *name) {
  if (name == NULL || name[0] == '\0')
    return FALSE;
  if (strcmp(name, ".") == 0)
    return TRUE;
  gsize total = strlen(name);
  if (name[total - 1] == '.')
    total--;
  if (total > 253)
    return FALSE;
  gsize label = 0;
  for (gsize i = 0; i < total; i++) {
    guchar c = (guchar)name[i];
    if (c == '.') {
      if (label == 0)
        return FALSE;
      label = 0;
      continue;
    }
    if (c < 0x21 || c > 0x7e || c == '\\')
      return FALSE;
    if (++label > PST_DNS_LABEL_MAX)
      return FALSE;
  }
  return label > 0;
}

char *pst_dns_query_name_escape(const char *name) {
  if (name == NULL || name[0] == '\0')
    return NULL;
  if (strcmp(name, ".") == 0)
    return g_strdup(".");
  gsize total = strlen(name);
  if (name[total - 1] == '.')
    total--;
  if (total > 253)
    return NULL;
  g_autoptr(GString) out = g_string_sized_new(total * 2);
  gsize label = 0;
  for (gsize i = 0; i < total; i++) {
    guchar c = (guchar)name[i];
    if (c == '.') {
      if (label == 0)
        return NULL;
      label = 0;
      g_string_append_c(out, '.');
      continue;
    }
    if (++label > PST_DNS_LABEL_MAX)
      return NULL;
    if (g_ascii_isalnum(c) || c == '-' || c == '_')
      g_string_append_c(out, (char)c);
    else
      g_string_append_printf(out, "\\%03u", (unsigned)c);
  }
  if (label == 0)
    return NULL;
  return g_string_free(g_steal_pointer(&out), FALSE);
}

char *pst_dns_reverse_name_build(const guint8 *address, gsize length,
                                 const char *zone) {
  g_return_val_if_fail(address != NULL, NULL);

  /* Put together by hand, not with printf: every connection's reverse
   * lookup makes one. */
  static const char hex[] = "0123456789abcdef";
  g_autoptr(GString) out = g_string_sized_new(96);
  if (length == 4) {
    for (gsize i = 4; i-- > 0;) {
      char digits[PST_DECIMAL_MAX];
      g_string_append_len(out, digits,
                          (gssize)pst_format_decimal(digits, address[i]));
      if (i > 0)
        g_string_append_c(out, '.');
    }
  } else if (length == 16) {
    for (gsize i = 16; i-- > 0;) {
      if (i != 15)
        g_string_append_c(out, '.');
      g_string_append_c(out, hex[address[i] & 0x0f]);
      g_string_append_c(out, '.');
      g_string_append_c(out, hex[address[i] >> 4]);
    }
  } else {
    return NULL;
  }
  const char *suffix = zone != NULL  ? zone
                       : length == 4 ? "in-addr.arpa"
                                     : "ip6.arpa";
  gsize suffix_length = strlen(suffix);
  if (suffix_length > 0 && suffix[suffix_length - 1] == '.')
    suffix_length--;
  if (suffix_length > 0) {
    g_string_append_c(out, '.');
    g_string_append_len(out, suffix, (gssize)suffix_length);
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}
