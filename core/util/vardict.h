/* vardict.h - results (a{sv}, aa{sv}, as) written and read straight in
 * GVariant's serialised normal form: the one place that knows its framing
 * rules (see vardict.c).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* --- Framing rules ------------------------------------------------------ */

/* The width of the framing offsets of a container of `size` octets (GLib's
 * gvs_get_offset_size()): 0, 1, 2, 4 or 8. */
gsize pst_vardict_offset_width(gsize size);
/* A container's size: `body` octets and `offsets` framing offsets of the
 * smallest width that can address the whole (gvs_calculate_total_size()). */
gsize pst_vardict_framed_size(gsize body, gsize offsets);

/* --- Reading in place ---------------------------------------------------- */

/* An array of variable-sized elements (a{sv}: {sv} entries; aa{sv}: a{sv}
 * elements; as: strings) over serialised octets, which it does not own. */
typedef struct {
  const guint8 *data;
  gsize table;     /* where the framing offsets begin */
  gsize width;     /* of one framing offset */
  gsize count;     /* elements */
  gsize alignment; /* of an element: 8 ({sv}, a{sv}) or 1 (s) */
} PstVardictArray;

/* Opens `value` (an array of variable-sized elements of `alignment`) in
 * place; FALSE when it is not in normal form (read it through GLib then)
 * or its framing is not what normal form promises.  A value still in tree
 * form is serialised once, in place, by g_variant_get_data(). */
gboolean pst_vardict_array_open(PstVardictArray *array, GVariant *value,
                                gsize alignment);
/* The same over `size` octets at `data`. */
gboolean pst_vardict_array_init(PstVardictArray *array, const guint8 *data,
                                gsize size, gsize alignment);
/* One framing offset: `width` octets at `p`, little-endian. */
static inline gsize pst_vardict_offset_read(const guint8 *p, gsize width) {
  gsize value = 0;
  for (gsize i = 0; i < width; i++)
    value |= (gsize)p[i] << (8 * i);
  return value;
}

/* Element `index`'s octets; FALSE (NULL, 0) when its framing offsets are
 * out of order or bounds (never reads outside the array).  Inline: readers call
 * it once per entry. */
static inline gboolean pst_vardict_array_element(const PstVardictArray *array,
                                                 gsize index,
                                                 const guint8 **data_r,
                                                 gsize *size_r) {
  *data_r = NULL;
  *size_r = 0;
  if (index >= array->count)
    return FALSE;
  const guint8 *table = array->data + array->table;
  gsize start = 0;
  if (index > 0) {
    start = pst_vardict_offset_read(table + (index - 1) * array->width,
                                    array->width);
    start = (start + array->alignment - 1) & ~(array->alignment - 1);
  }
  gsize end = pst_vardict_offset_read(table + index * array->width,
                                      array->width);
  if (end < start || end > array->table)
    return FALSE;
  *data_r = array->data + start;
  *size_r = end - start;
  return TRUE;
}
/* One serialised {sv} entry of `size` octets: its key and, when the value
 * is a string, that string (else NULL); both point into `entry`.  FALSE
 * when the entry is not in normal form. */
gboolean pst_vardict_entry_read(const guint8 *entry, gsize size,
                                const char **key_r, const char **string_r);
/* A serialised string ("TEXT\0") of `size` octets, or NULL when it is not
 * one in normal form. */
const char *pst_vardict_string_read(const guint8 *data, gsize size);
/* Element `index` of `array` opened as an array itself (an aa{sv}'s a{sv}
 * element: `alignment` 8); FALSE as pst_vardict_array_init(). */
gboolean pst_vardict_array_child(const PstVardictArray *array, gsize index,
                                 gsize alignment, PstVardictArray *child_r);
/* The string of the first entry named `key` of the a{sv} `dict`, as
 * g_variant_lookup_value(dict, key, "s") finds it: NULL in `*string_r`
 * when there is none or its value is no string.  FALSE when the framing or
 * the entry found is not what normal form promises (entries with other
 * keys are only compared, not checked: open `dict` with
 * pst_vardict_array_open(), which makes GLib check normal form). */
gboolean pst_vardict_lookup_string(const PstVardictArray *dict,
                                   const char *key, const char **string_r);

/* --- Writing --------------------------------------------------------------
 */

/* A new (non-floating) a{sv} of `count` entries in this order: the same
 * value, octet for octet, as GLib's serialisation of the dictionary built
 * from them.  Each key is valid UTF-8; each value is in normal form
 * (g_variant_get_normal_form()), so the result is too. */
GVariant *pst_vardict_new(const char *const *keys, GVariant *const *values,
                          gsize count);
/* A floating a{sv} of string values, in normal form: `keys[i]` ->
 * `values[i]`, in this order; an entry whose value is NULL is left out.
 * A key or value that is not valid UTF-8 is written as
 * g_utf8_make_valid() makes it (U+FFFD for invalid octets). */
GVariant *pst_vardict_new_strings(const char *const *keys,
                                  const char *const *values, gsize count);
/* A floating "as" of `count` strings, in normal form, UTF-8 made valid as
 * above. */
GVariant *pst_vardict_new_strv(const char *const *strings, gsize count);

G_END_DECLS
