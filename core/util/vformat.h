/* vformat.h - printf-style text without printf when there is nothing to
 * format (see vformat.c).
 */
#pragma once

#include <stdarg.h>

#include <string.h>

#include <glib.h>

G_BEGIN_DECLS

/* The most decimal digits a guint64 has. */
#define PST_DECIMAL_MAX 20

/* Writes the decimal digits of `value` at `out` (room for PST_DECIMAL_MAX
 * octets; no NUL) and returns how many: what "%" G_GUINT64_FORMAT prints,
 * without printf, for the numbers written per message and connection.
 * Inline so that parts built without util/ (tests, fuzz targets) use it. */
static inline gsize pst_format_decimal(char *out, guint64 value) {
  char digits[PST_DECIMAL_MAX];
  gsize n = sizeof digits;
  do {
    digits[--n] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  memcpy(out, digits + n, sizeof digits - n);
  return sizeof digits - n;
}

/* The text `format` and `args` make, as g_strdup_vprintf() makes it: the
 * format itself when it holds no '%', the argument when it is exactly
 * "%s" (and that is not NULL), otherwise formatted into *owned_r (which
 * the caller frees; left NULL in the other cases).  Valid while `format`,
 * the argument and *owned_r live. */
const char *pst_vformat_text(const char *format, va_list args, char **owned_r)
    G_GNUC_PRINTF(1, 0);

/* g_string_append_vprintf(), with %s, %d, %i, %u, %c, %lu, %ld and %%
 * (no flags, width or precision) formatted by hand when they are all the
 * format holds: the same octets, without printf. */
void pst_vformat_append(GString *out, const char *format, va_list args)
    G_GNUC_PRINTF(2, 0);

/* g_vsnprintf() with the same conversions by hand: at most `size` octets
 * into `buffer` (size > 0), NUL included, the text cut if longer.
 * Returns the length of the whole text (>= size: it was cut). */
gsize pst_vformat_into(char *buffer, gsize size, const char *format,
                       va_list args) G_GNUC_PRINTF(3, 0);

G_END_DECLS
