/* dmarc-variant.c - results (a{sv} of strings) read and written in
 * GVariant's serialised form, without a GVariant per entry.
 *
 * Reading: spf's and dkim's results are read at every message.  Through
 * GLib each entry costs four GVariants (entry, key, box, value), each a
 * lookup of its type under GLib's lock, more than the rest of the
 * evaluation.  dmarc_variant_lookup_strings() reads a value in normal
 * form (what GLib and the spf plugin write) from its octets in place; a
 * value still in tree form is serialised by g_variant_get_data() once, in
 * place, which the core's Authentication-Results renderer and the spool
 * would do anyway; FALSE for anything not in normal form (the caller
 * reads it through GLib then).
 *
 * Writing: auth.dmarc is written straight in normal form
 * (dmarc_variant_new_strings()), the octets GLib would write for the
 * same value: strings with their NUL, a variant's value followed by NUL
 * and its type, entries aligned to 8 with zero padding, framing offsets
 * of the smallest width that addresses the container.  A string that is
 * not valid UTF-8 is written with U+FFFD for its invalid octets (a
 * GVariant string is UTF-8).
 *
 * Pure.  Tested byte for byte against GLib's serialisation, and the
 * reader against GLib's own reading of every prefix and mutation of such
 * values (test-dmarc.c, /dmarc/variant/...).  Callers: dmarc.c.
 */
#include <string.h>

#include "dmarc.h"

/* --- Framing offsets ------------------------------------------------------ */

/* The width of the framing offsets of a container of `size` octets. */
static gsize dmarc_variant_offset_width(gsize size) {
  if (size > G_MAXUINT32)
    return 8;
  if (size > G_MAXUINT16)
    return 4;
  if (size > G_MAXUINT8)
    return 2;
  return size > 0 ? 1 : 0;
}

/* A container's size: `body` octets and `offsets` framing offsets of the
 * smallest width that can address the whole (GLib's
 * gvs_calculate_total_size()). */
static gsize dmarc_variant_framed_size(gsize body, gsize offsets) {
  if (body + offsets <= G_MAXUINT8)
    return body + offsets;
  if (body + 2 * offsets <= G_MAXUINT16)
    return body + 2 * offsets;
  if (body + 4 * offsets <= G_MAXUINT32)
    return body + 4 * offsets;
  return body + 8 * offsets;
}

static gsize dmarc_variant_offset_read(const guint8 *p, gsize width) {
  gsize value = 0;
  for (gsize i = 0; i < width; i++)
    value |= (gsize)p[i] << (8 * i);
  return value;
}

static void dmarc_variant_offset_write(guint8 *p, gsize value, gsize width) {
  for (gsize i = 0; i < width; i++)
    p[i] = (guint8)(value >> (8 * i));
}

static gsize dmarc_variant_align8(gsize n) {
  return (n + 7) & ~(gsize)7;
}

/* --- Writing ---------------------------------------------------------------
 */

/* The serialised size of one {sv} entry holding the string `value`. */
static gsize dmarc_variant_entry_size(gsize key_length, gsize value_length) {
  gsize body = dmarc_variant_align8(key_length + 1) + value_length + 3;
  return dmarc_variant_framed_size(body, 1);
}

/* Writes the entry (`size` octets, zeroed) at `e`. */
static void dmarc_variant_entry_write(guint8 *e, gsize size, const char *key,
                                      gsize key_length, const char *value,
                                      gsize value_length) {
  memcpy(e, key, key_length + 1);
  guint8 *v = e + dmarc_variant_align8(key_length + 1);
  memcpy(v, value, value_length + 1);
  v[value_length + 2] = 's'; /* after the value's NUL, the variant's NUL */
  gsize width = dmarc_variant_offset_width(size);
  dmarc_variant_offset_write(e + size - width, key_length + 1, width);
}

/* `text`, or a valid copy (U+FFFD for invalid octets) in `*copy_r`: a
 * GVariant string is UTF-8 (a policy record's problem may quote octets
 * of the DNS). */
static const char *dmarc_variant_utf8(const char *text, char **copy_r) {
  if (g_utf8_validate(text, -1, NULL))
    return text;
  *copy_r = g_utf8_make_valid(text, -1);
  return *copy_r;
}

GVariant *dmarc_variant_new_strings(const char *const *in_keys,
                                    const char *const *in_values,
                                    gsize count) {
  g_return_val_if_fail(count <= DMARC_VARIANT_MAX_ENTRIES, NULL);
  char *copies[2 * DMARC_VARIANT_MAX_ENTRIES] = {NULL};
  const char *keys[DMARC_VARIANT_MAX_ENTRIES], *values[DMARC_VARIANT_MAX_ENTRIES];
  gsize key_lengths[DMARC_VARIANT_MAX_ENTRIES];
  gsize value_lengths[DMARC_VARIANT_MAX_ENTRIES];
  gsize ends[DMARC_VARIANT_MAX_ENTRIES];
  gsize body = 0;
  for (gsize i = 0; i < count; i++) {
    keys[i] = dmarc_variant_utf8(in_keys[i], &copies[2 * i]);
    values[i] = dmarc_variant_utf8(in_values[i], &copies[2 * i + 1]);
    key_lengths[i] = strlen(keys[i]);
    value_lengths[i] = strlen(values[i]);
    body = dmarc_variant_align8(body) +
           dmarc_variant_entry_size(key_lengths[i], value_lengths[i]);
    ends[i] = body;
  }
  gsize size = dmarc_variant_framed_size(body, count);
  guint8 *data = g_malloc0(MAX(size, 1));
  gsize start = 0;
  for (gsize i = 0; i < count; i++) {
    dmarc_variant_entry_write(data + start, ends[i] - start, keys[i],
                              key_lengths[i], values[i], value_lengths[i]);
    start = dmarc_variant_align8(ends[i]);
  }
  gsize width = dmarc_variant_offset_width(size);
  for (gsize i = 0; i < count; i++)
    dmarc_variant_offset_write(data + body + i * width, ends[i], width);
  for (gsize i = 0; i < 2 * count; i++)
    g_free(copies[i]);
  return g_variant_new_from_data(G_VARIANT_TYPE_VARDICT, data, size, TRUE,
                                 g_free, data);
}

/* --- Reading ---------------------------------------------------------------
 */

/* The string a serialised 'v' of `size` octets holds ("TEXT\0" "\0" "s"),
 * or NULL when it holds anything else. */
static const char *dmarc_variant_string(const guint8 *v, gsize size) {
  if (size < 3 || v[size - 1] != 's' || v[size - 2] != '\0' ||
      v[size - 3] != '\0' || memchr(v, '\0', size - 3) != NULL)
    return NULL;
  return (const char *)v;
}

/* One serialised {sv} entry of `size` octets: its key and, when the value
 * is a string, that string.  FALSE when it is not in normal form. */
static gboolean dmarc_variant_entry_read(const guint8 *e, gsize size,
                                         const char **key_r,
                                         const char **string_r) {
  gsize width = dmarc_variant_offset_width(size);
  if (size < width + 1)
    return FALSE;
  gsize key_end = dmarc_variant_offset_read(e + size - width, width);
  if (key_end == 0 || key_end > size - width || e[key_end - 1] != '\0' ||
      memchr(e, '\0', key_end - 1) != NULL)
    return FALSE;
  gsize value_start = dmarc_variant_align8(key_end);
  if (value_start > size - width)
    return FALSE;
  *key_r = (const char *)e;
  *string_r = dmarc_variant_string(e + value_start, size - width - value_start);
  return TRUE;
}

/* Stores `string` for `key` when it is one of `keys`; for a key given
 * twice, the last string (as reading the entries in order through GLib
 * finds it). */
static void dmarc_variant_keep(const char *key, const char *string,
                               const char *const *keys, const char **values,
                               gsize n_keys) {
  for (gsize k = 0; k < n_keys; k++)
    if (strcmp(key, keys[k]) == 0) {
      values[k] = string;
      return;
    }
}

gboolean dmarc_variant_lookup_strings(GVariant *dict, const char *const *keys,
                                      const char **values, gsize n_keys) {
  g_return_val_if_fail(n_keys <= DMARC_VARIANT_MAX_ENTRIES, FALSE);
  memset(values, 0, n_keys * sizeof *values);
  if (!g_variant_is_of_type(dict, G_VARIANT_TYPE_VARDICT) ||
      !g_variant_is_normal_form(dict))
    return FALSE;
  const guint8 *data = g_variant_get_data(dict);
  gsize size = g_variant_get_size(dict);
  if (size == 0)
    return TRUE;
  gsize width = dmarc_variant_offset_width(size);
  gsize table = dmarc_variant_offset_read(data + size - width, width);
  if (table > size - width || (size - table) % width != 0)
    return FALSE;
  gsize start = 0;
  for (gsize i = 0; table + i * width < size; i++) {
    gsize end = dmarc_variant_offset_read(data + table + i * width, width);
    const char *key, *string;
    if (end < start || end > table ||
        !dmarc_variant_entry_read(data + start, end - start, &key, &string)) {
      memset(values, 0, n_keys * sizeof *values);
      return FALSE;
    }
    if (string != NULL)
      dmarc_variant_keep(key, string, keys, values, n_keys);
    start = dmarc_variant_align8(end);
  }
  return TRUE;
}
