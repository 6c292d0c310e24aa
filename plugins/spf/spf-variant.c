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
 * may not be) the value is made with GLib's constructors, as before.
 * spf_variant_get_strv() reads spf.received back the same way, in place.
 * Pure; tested byte for byte against GLib's own serialisation (test-spf.c,
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

/* The octets being written, in a buffer sized for them beforehand
 * (spf_variant_buffer()): appends are copies, never a reallocation. */
typedef struct {
  guint8 *data;
  gsize len;
  gsize allocated;
} SpfVariantOut;

static void spf_variant_put(SpfVariantOut *out, const void *octets,
                            gsize length) {
  g_assert(out->len + length <= out->allocated);
  memcpy(out->data + out->len, octets, length);
  out->len += length;
}

/* Appends `value` in `width` octets, little-endian. */
static void spf_variant_put_offset(SpfVariantOut *out, gsize value,
                                   gsize width) {
  guint8 octets[8];
  for (gsize i = 0; i < width; i++)
    octets[i] = (guint8)(value >> (8 * i));
  spf_variant_put(out, octets, width);
}

/* Zeros up to the next multiple of `alignment` from `start`. */
static void spf_variant_pad(SpfVariantOut *out, gsize start,
                            gsize alignment) {
  static const guint8 zeros[8] = {0};
  gsize misalignment = (out->len - start) % alignment;
  if (misalignment != 0)
    spf_variant_put(out, zeros, alignment - misalignment);
}

/* The framing offsets of a container that starts at `start`, whose
 * variable-sized parts end at `ends` (relative to `start`). */
static void spf_variant_frame(SpfVariantOut *out, gsize start,
                              const gsize *ends, gsize count) {
  gsize width =
      spf_variant_offset_size(spf_variant_total_size(out->len - start, count));
  for (gsize i = 0; i < count; i++)
    spf_variant_put_offset(out, ends[i], width);
}

/* A string with its NUL; `length` is strlen(text). */
static void spf_variant_put_string(SpfVariantOut *out, const char *text,
                                   gsize length) {
  spf_variant_put(out, text, length + 1);
}

/* One {sv} entry with a string value, from `start` (aligned to 8). */
static void spf_variant_put_entry(SpfVariantOut *out, const char *key,
                                  gsize key_length, const char *value,
                                  gsize value_length) {
  gsize start = out->len;
  spf_variant_put_string(out, key, key_length);
  gsize key_end = out->len - start;
  spf_variant_pad(out, start, 8);
  spf_variant_put_string(out, value, value_length);
  spf_variant_put(out, "\0s", 2);
  spf_variant_frame(out, start, &key_end, 1);
}

/* ASCII, eight octets at a time: the common case of valid UTF-8. */
static gboolean spf_variant_is_ascii(const char *text, gsize length) {
  guint64 any = 0;
  gsize i = 0;
  for (; i + 8 <= length; i += 8) {
    guint64 word;
    memcpy(&word, text + i, 8);
    any |= word;
  }
  for (; i < length; i++)
    any |= (guchar)text[i];
  return (any & G_GUINT64_CONSTANT(0x8080808080808080)) == 0;
}

/* The strings' lengths into `lengths`; FALSE when one is not UTF-8. */
static gboolean spf_variant_measure(const char *const *strings, gsize count,
                                    gsize *lengths) {
  for (gsize i = 0; i < count; i++) {
    lengths[i] = strlen(strings[i]);
    if (!spf_variant_is_ascii(strings[i], lengths[i]) &&
        !g_utf8_validate(strings[i], (gssize)lengths[i], NULL))
      return FALSE;
  }
  return TRUE;
}

/* A buffer that holds strings of these `lengths` (and keys of
 * `key_lengths`, nullable) serialised: their octets, and per entry 8 of
 * padding, 3 of a variant's NUL and type and 16 of framing offsets at
 * most. */
static void spf_variant_buffer(SpfVariantOut *out, const gsize *lengths,
                               const gsize *key_lengths, gsize count) {
  gsize size = 64;
  for (gsize i = 0; i < count; i++)
    size += lengths[i] + 1 + (key_lengths != NULL ? key_lengths[i] + 1 : 0) +
            8 + 3 + 16;
  out->data = g_malloc(size);
  out->len = 0;
  out->allocated = size;
}

static GVariant *spf_variant_take(const GVariantType *type,
                                  SpfVariantOut *out) {
  return g_variant_new_from_data(type, out->data, out->len, TRUE, g_free,
                                 out->data);
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
  /* keys, values, ends */
  g_autofree gsize *sizes = g_new(gsize, 3 * count + 1);
  gsize *key_lengths = sizes, *value_lengths = sizes + count;
  gsize *ends = sizes + 2 * count;
  if (!spf_variant_measure(keys, count, key_lengths) ||
      !spf_variant_measure(values, count, value_lengths))
    return spf_variant_new_vardict_tree(keys, values, count);
  SpfVariantOut out;
  spf_variant_buffer(&out, value_lengths, key_lengths, count);
  for (gsize i = 0; i < count; i++) {
    spf_variant_pad(&out, 0, 8);
    spf_variant_put_entry(&out, keys[i], key_lengths[i], values[i],
                          value_lengths[i]);
    ends[i] = out.len;
  }
  spf_variant_frame(&out, 0, ends, count);
  return spf_variant_take(G_VARIANT_TYPE_VARDICT, &out);
}

GVariant *spf_variant_new_strv(const char *const *strings, gsize count) {
  /* lengths, ends */
  g_autofree gsize *sizes = g_new(gsize, 2 * count + 1);
  gsize *lengths = sizes, *ends = sizes + count;
  if (!spf_variant_measure(strings, count, lengths))
    return g_variant_new_strv(strings, (gssize)count);
  SpfVariantOut out;
  spf_variant_buffer(&out, lengths, NULL, count);
  for (gsize i = 0; i < count; i++) {
    spf_variant_put_string(&out, strings[i], lengths[i]);
    ends[i] = out.len;
  }
  spf_variant_frame(&out, 0, ends, count);
  return spf_variant_take(G_VARIANT_TYPE_STRING_ARRAY, &out);
}

/* --- Reading an "as" in place ------------------------------------------ */

const char **spf_variant_get_strv(GVariant *value, gsize *count_r) {
  gsize size = g_variant_get_size(value);
  const guint8 *data = g_variant_get_data(value);
  if (!g_variant_is_normal_form(value) || size == 0 || data == NULL)
    return g_variant_get_strv(value, count_r);
  /* Normal form: the last offset ends the last string, where the table of
   * one offset per string begins. */
  gsize width = spf_variant_offset_size(size);
  gsize table = 0;
  for (gsize k = 0; k < width; k++)
    table |= (gsize)data[size - width + k] << (8 * k);
  gsize count = (size - table) / width;
  const char **strings = g_new(const char *, count + 1);
  gsize start = 0;
  for (gsize i = 0; i < count; i++) {
    const guint8 *offset = data + table + i * width;
    gsize end = 0;
    for (gsize k = 0; k < width; k++)
      end |= (gsize)offset[k] << (8 * k);
    strings[i] = (const char *)data + start;
    start = end;
  }
  strings[count] = NULL;
  *count_r = count;
  return strings;
}
