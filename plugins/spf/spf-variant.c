/* spf-variant.c - the plugin's results written straight in GVariant's
 * serialised form.
 *
 * The results a check stores (auth.spf and spf.helo, each an a{sv} of
 * three strings; spf.received, an "as") were built as GVariant trees: a
 * node per string, boxed value and entry, each taking GLib's type-info
 * lock when made and freed, and the whole tree serialised again when the
 * spool writes the results.  For every message that cost more than the
 * rest of the check.  These functions write the bytes GLib would write
 * for the same value (GVariant's documented serialisation: strings with a
 * NUL, a variant's value followed by NUL and its type, entries and array
 * elements aligned to 8, framing offsets of the smallest size that fits)
 * into one buffer: one GVariant, already in normal form.
 *
 * Only for strings: when one is not valid UTF-8 (which a GVariant string
 * may not be) the value is made with GLib's constructors, as before.  Pure;
 * tested byte for byte against GLib's own serialisation (test-spf.c,
 * /spf/variant).  Callers: spf.c.
 */
#include <string.h>

#include "spf.h"

/* GLib's gvs_calculate_total_size(): the container's size with `offsets`
 * framing offsets of the smallest width that can address it. */
static gsize spf_variant_total_size(gsize body, gsize offsets) {
  if (body + offsets <= G_MAXUINT8)
    return body + offsets;
  if (body + 2 * offsets <= G_MAXUINT16)
    return body + 2 * offsets;
  if (body + 4 * offsets <= G_MAXUINT32)
    return body + 4 * offsets;
  return body + 8 * offsets;
}

/* GLib's gvs_get_offset_size(). */
static gsize spf_variant_offset_size(gsize total) {
  if (total > G_MAXUINT32)
    return 8;
  if (total > G_MAXUINT16)
    return 4;
  if (total > G_MAXUINT8)
    return 2;
  return total > 0 ? 1 : 0;
}

/* Appends `value` in `width` octets, little-endian. */
static void spf_variant_put_offset(GByteArray *out, gsize value, gsize width) {
  for (gsize i = 0; i < width; i++) {
    guint8 octet = (guint8)(value >> (8 * i));
    g_byte_array_append(out, &octet, 1);
  }
}

static void spf_variant_pad(GByteArray *out, gsize start, gsize alignment) {
  static const guint8 zeros[8] = {0};
  gsize misalignment = (out->len - start) % alignment;
  if (misalignment != 0)
    g_byte_array_append(out, zeros, (guint)(alignment - misalignment));
}

/* The framing offsets of a container that starts at `start`, whose
 * variable-sized parts end at `ends` (relative to `start`). */
static void spf_variant_frame(GByteArray *out, gsize start, const gsize *ends,
                              gsize count) {
  gsize width =
      spf_variant_offset_size(spf_variant_total_size(out->len - start, count));
  for (gsize i = 0; i < count; i++)
    spf_variant_put_offset(out, ends[i], width);
}

static void spf_variant_put_string(GByteArray *out, const char *text) {
  g_byte_array_append(out, (const guint8 *)text, (guint)strlen(text) + 1);
}

/* One {sv} entry with a string value, from `start` (aligned to 8). */
static void spf_variant_put_entry(GByteArray *out, const char *key,
                                  const char *value) {
  gsize start = out->len;
  spf_variant_put_string(out, key);
  gsize key_end = out->len - start;
  spf_variant_pad(out, start, 8);
  spf_variant_put_string(out, value);
  g_byte_array_append(out, (const guint8 *)"\0s", 2);
  spf_variant_frame(out, start, &key_end, 1);
}

static gboolean spf_variant_strings_are_utf8(const char *const *strings,
                                             gsize count) {
  for (gsize i = 0; i < count; i++)
    if (!g_utf8_validate(strings[i], -1, NULL))
      return FALSE;
  return TRUE;
}

/* A buffer that holds `strings` and `keys` (nullable) serialised
 * without growing: their octets, and per entry 8 of padding, 3 of a
 * variant's NUL and type and 16 of framing offsets at most. */
static GByteArray *spf_variant_buffer(const char *const *strings,
                                      const char *const *keys, gsize count) {
  gsize size = 64;
  for (gsize i = 0; i < count; i++)
    size += strlen(strings[i]) + 1 + (keys != NULL ? strlen(keys[i]) + 1 : 0) +
            8 + 3 + 16;
  return g_byte_array_sized_new((guint)MIN(size, G_MAXUINT));
}

static GVariant *spf_variant_take(const GVariantType *type, GByteArray *out) {
  gsize size = out->len;
  guint8 *data = g_byte_array_free(out, FALSE);
  return g_variant_new_from_data(type, data, size, TRUE, g_free, data);
}

/* GLib's constructors: a tree, what the plugin made before. */
static GVariant *spf_variant_new_vardict_tree(const char *const *keys,
                                              const char *const *values,
                                              gsize count) {
  g_autofree GVariant **entries = g_new(GVariant *, count + 1);
  for (gsize i = 0; i < count; i++)
    entries[i] = g_variant_new_dict_entry(
        g_variant_new_string(keys[i]),
        g_variant_new_variant(g_variant_new_string(values[i])));
  return g_variant_new_array(G_VARIANT_TYPE("{sv}"), entries, count);
}

GVariant *spf_variant_new_vardict(const char *const *keys,
                                  const char *const *values, gsize count) {
  if (!spf_variant_strings_are_utf8(keys, count) ||
      !spf_variant_strings_are_utf8(values, count))
    return spf_variant_new_vardict_tree(keys, values, count);
  GByteArray *out = spf_variant_buffer(values, keys, count);
  g_autofree gsize *ends = g_new(gsize, count + 1);
  for (gsize i = 0; i < count; i++) {
    spf_variant_pad(out, 0, 8);
    spf_variant_put_entry(out, keys[i], values[i]);
    ends[i] = out->len;
  }
  spf_variant_frame(out, 0, ends, count);
  return spf_variant_take(G_VARIANT_TYPE_VARDICT, out);
}

GVariant *spf_variant_new_strv(const char *const *strings, gsize count) {
  if (!spf_variant_strings_are_utf8(strings, count))
    return g_variant_new_strv(strings, (gssize)count);
  GByteArray *out = spf_variant_buffer(strings, NULL, count);
  g_autofree gsize *ends = g_new(gsize, count + 1);
  for (gsize i = 0; i < count; i++) {
    spf_variant_put_string(out, strings[i]);
    ends[i] = out->len;
  }
  spf_variant_frame(out, 0, ends, count);
  return spf_variant_take(G_VARIANT_TYPE_STRING_ARRAY, out);
}
