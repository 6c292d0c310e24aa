/* xtext.c - the encodings of DSN parameter values.
 *
 * Entry points: pst_xtext_decode() and pst_xtext_encode() (RFC 3461
 * section 4: ENVID, ORCPT rfc822, and RFC 4954's AUTH=), and
 * pst_utf8_addr_xtext_decode() and _encode() (RFC 6533 section 3: ORCPT
 * "utf-8;", whose escapes are "\x{HEX}").  Called by smtp-params.c when it reads
 * MAIL and RCPT parameters, and by the queue when it relays them.
 *
 * The decoders never produce a NUL octet: a value that would decode to one
 * is refused, so the result is a plain C string.  They accept lower-case
 * hex digits although the RFCs write upper case, as other MTAs do; the
 * encoder writes upper case.
 */
#include <string.h>

#include "smtp/smtp-parse.h"

/* xchar of RFC 3461: printable ASCII except '+' and '='. */
static gboolean is_xchar(guint8 c) {
  return c >= 33 && c <= 126 && c != '+' && c != '=';
}

gboolean pst_xtext_decode(const char *text, gsize length, char **decoded_r) {
  g_return_val_if_fail(text != NULL || length == 0, FALSE);
  g_return_val_if_fail(decoded_r != NULL, FALSE);
  *decoded_r = NULL;
  g_autofree char *decoded = g_malloc(length + 1);
  gsize out = 0;
  for (gsize i = 0; i < length; i++) {
    guint8 c = (guint8)text[i];
    if (c == '+') {
      if (length - i < 3 || !g_ascii_isxdigit(text[i + 1]) ||
          !g_ascii_isxdigit(text[i + 2]))
        return FALSE;
      c = (guint8)(g_ascii_xdigit_value(text[i + 1]) * 16 +
                   g_ascii_xdigit_value(text[i + 2]));
      if (c == '\0')
        return FALSE;
      i += 2;
    } else if (!is_xchar(c)) {
      return FALSE;
    }
    decoded[out++] = (char)c;
  }
  decoded[out] = '\0';
  *decoded_r = g_steal_pointer(&decoded);
  return TRUE;
}

char *pst_xtext_encode(const char *text) {
  g_return_val_if_fail(text != NULL, NULL);
  GString *encoded = g_string_sized_new(strlen(text));
  for (const char *p = text; *p != '\0'; p++) {
    if (is_xchar((guint8)*p))
      g_string_append_c(encoded, *p);
    else
      g_string_append_printf(encoded, "+%02X", (guint)(guint8)*p);
  }
  return g_string_free(encoded, FALSE);
}

/* QCHAR of RFC 6533: printable ASCII except '+', '=' and '\'. */
static gboolean is_qchar(guint8 c) {
  return is_xchar(c) && c != '\\';
}

/* Reads "\x{HEX}" at text[0..length): the code point, or 0 when it is
 * malformed, a surrogate, out of range or NUL.  Sets *taken_r. */
static gunichar embedded_char_read(const char *text, gsize length,
                                   gsize *taken_r) {
  if (length < 5 || text[0] != '\\' || text[1] != 'x' || text[2] != '{')
    return 0;
  gunichar point = 0;
  gsize i = 3;
  while (i < length && i < 3 + 6 && g_ascii_isxdigit(text[i]))
    point = point * 16 + (gunichar)g_ascii_xdigit_value(text[i++]);
  if (i == 3 || i == length || text[i] != '}')
    return 0;
  if (point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
    return 0;
  *taken_r = i + 1;
  return point;
}

gboolean pst_utf8_addr_xtext_decode(const char *text, gsize length,
                                    char **decoded_r) {
  g_return_val_if_fail(text != NULL || length == 0, FALSE);
  g_return_val_if_fail(decoded_r != NULL, FALSE);
  *decoded_r = NULL;
  if (!g_utf8_validate_len(text, length, NULL))
    return FALSE;
  g_autoptr(GString) decoded = g_string_sized_new(length);
  gsize i = 0;
  while (i < length) {
    guint8 c = (guint8)text[i];
    if (c == '\\') {
      gsize taken = 0;
      gunichar point = embedded_char_read(text + i, length - i, &taken);
      if (point == 0)
        return FALSE;
      g_string_append_unichar(decoded, point);
      i += taken;
    } else if (is_qchar(c) || c >= 0x80) {
      g_string_append_c(decoded, (char)c);
      i++;
    } else {
      return FALSE;
    }
  }
  *decoded_r = g_string_free(g_steal_pointer(&decoded), FALSE);
  return TRUE;
}

char *pst_utf8_addr_xtext_encode(const char *text) {
  g_return_val_if_fail(text != NULL, NULL);
  GString *encoded = g_string_sized_new(strlen(text));
  const char *p = text;
  while (*p != '\0') {
    gunichar point = g_utf8_get_char_validated(p, -1);
    if (point == (gunichar)-1 || point == (gunichar)-2) {
      point = (guint8)*p++; /* not UTF-8: escape the octet as it is */
    } else {
      p = g_utf8_next_char(p);
    }
    if (point < 0x80 && is_qchar((guint8)point))
      g_string_append_c(encoded, (char)point);
    else
      g_string_append_printf(encoded, "\\x{%X}", (guint)point);
  }
  return g_string_free(encoded, FALSE);
}
