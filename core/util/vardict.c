/* vardict.c - an a{sv} written straight in GVariant's serialised normal
 * form.
 *
 * The session hands each transaction's and recipient's results to the
 * spool as one a{sv} (pst_results_to_variant()), which the spool stores
 * as its serialised octets.  Built with GLib's constructors that cost a
 * node per key, boxed value and entry, each taking GLib's type-info lock,
 * and then the whole tree was serialised again.  pst_vardict_new() writes
 * the octets GLib would write (GVariant's documented serialisation:
 * strings with their NUL, a variant's value followed by a NUL and its type
 * string, entries aligned to 8, framing offsets of the smallest width that
 * fits) into one buffer, copying each value's own serialised octets.
 *
 * Pure; tested byte for byte against GLib's serialisation (test-vardict.c).
 * Callers: core/hooks/results.c.
 */
#include <string.h>

#include "util/vardict.h"

/* GLib's gvs_calculate_total_size(): a container's size with `offsets`
 * framing offsets of the smallest width that can address it. */
static gsize vardict_total_size(gsize body, gsize offsets) {
  if (body + offsets <= G_MAXUINT8)
    return body + offsets;
  if (body + 2 * offsets <= G_MAXUINT16)
    return body + 2 * offsets;
  if (body + 4 * offsets <= G_MAXUINT32)
    return body + 4 * offsets;
  return body + 8 * offsets;
}

/* GLib's gvs_get_offset_size(). */
static gsize vardict_offset_size(gsize total) {
  if (total > G_MAXUINT32)
    return 8;
  if (total > G_MAXUINT16)
    return 4;
  if (total > G_MAXUINT8)
    return 2;
  return total > 0 ? 1 : 0;
}

/* Writes the offsets that end a container of `body` octets at `p`. */
static guint8 *vardict_put_offsets(guint8 *p, gsize body, const gsize *ends,
                                   gsize count) {
  gsize width = vardict_offset_size(vardict_total_size(body, count));
  for (gsize i = 0; i < count; i++)
    for (gsize k = 0; k < width; k++)
      *p++ = (guint8)(ends[i] >> (8 * k));
  return p;
}

static gsize vardict_align(gsize offset) {
  return (offset + 7) & ~(gsize)7;
}

/* One {sv} entry's octets, without its framing offset: the key, padding
 * to 8, the value, a NUL and the value's type. */
static gsize vardict_entry_body(gsize key_length, gsize value_size,
                                gsize type_length) {
  return vardict_align(key_length + 1) + value_size + 1 + type_length;
}

typedef struct {
  gsize key_length;
  gsize type_length;
  gsize size; /* the whole entry, with its framing offset */
} VardictEntrySize;

GVariant *pst_vardict_new(const char *const *keys, GVariant *const *values,
                          gsize count) {
  g_autofree VardictEntrySize *sizes = g_new(VardictEntrySize, count + 1);
  g_autofree gsize *ends = g_new(gsize, count + 1);
  gsize body = 0;
  for (gsize i = 0; i < count; i++) {
    VardictEntrySize *size = &sizes[i];
    size->key_length = strlen(keys[i]);
    size->type_length = strlen(g_variant_get_type_string(values[i]));
    gsize entry = vardict_entry_body(
        size->key_length, g_variant_get_size(values[i]), size->type_length);
    size->size = vardict_total_size(entry, 1);
    body = vardict_align(body) + size->size;
    ends[i] = body;
  }
  gsize total = vardict_total_size(body, count);
  guint8 *data = g_malloc0(MAX(total, 1));
  guint8 *p = data;
  for (gsize i = 0; i < count; i++) {
    p = data + vardict_align((gsize)(p - data));
    guint8 *start = p;
    memcpy(p, keys[i], sizes[i].key_length + 1);
    gsize key_end = sizes[i].key_length + 1;
    p = start + vardict_align(key_end);
    gsize value_size = g_variant_get_size(values[i]);
    if (value_size > 0)
      memcpy(p, g_variant_get_data(values[i]), value_size);
    p += value_size + 1; /* the NUL is there */
    memcpy(p, g_variant_get_type_string(values[i]), sizes[i].type_length);
    p += sizes[i].type_length;
    p = vardict_put_offsets(p, (gsize)(p - start), &key_end, 1);
  }
  p = vardict_put_offsets(p, body, ends, count);
  g_assert((gsize)(p - data) == total);
  return g_variant_ref_sink(g_variant_new_from_data(
      G_VARIANT_TYPE_VARDICT, data, total, TRUE, g_free, data));
}
