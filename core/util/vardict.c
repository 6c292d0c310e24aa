/* vardict.c - results written and read straight in GVariant's serialised
 * normal form.
 *
 * The one place that knows the framing rules of GVariant's documented
 * serialisation as far as results need them: strings end with their NUL;
 * a variant is its value, a NUL and its type string; an array of
 * variable-sized elements (a{sv}, aa{sv}, as) is its elements, each
 * aligned to its type's alignment (8 for {sv} and a{sv}) with zero
 * padding, followed by one framing offset per element (where it ends), of
 * the smallest width (1, 2, 4 or 8 octets, little-endian) that addresses
 * the whole container; a {sv} entry is its key, padding to 8, the
 * variant, and one framing offset (where the key ends).
 *
 * Writing: built with GLib's constructors, a result costs a node per key,
 * boxed value and entry, each taking GLib's type-info lock, and the tree
 * is serialised again when the spool writes it.  pst_vardict_new() (the
 * stores handed to the spool), pst_vardict_new_strings() and
 * pst_vardict_new_strv() (the SDK's pst_result_new_fields() and
 * pst_result_new_strv()) write the octets GLib would write into one
 * buffer.
 *
 * Reading: through GLib every entry costs four GVariants (entry, key, box,
 * value).  PstVardictArray reads a value in normal form (what GLib and the
 * writers above write) from its octets in place; callers take any other
 * value through GLib.  The checks here keep every read inside the octets
 * whatever they hold; normal form (which GLib checks once per value, at
 * no cost for values it or these writers made) makes the reading agree
 * with GLib's.
 *
 * Pure.  Tested byte for byte against GLib's serialisation at every
 * offset width, and the readers against GLib's reading (test-vardict.c);
 * the readers are fuzzed (fuzz/fuzz-vardict.c).  Callers:
 * core/hooks/results.c, core/hooks/result-fields.c,
 * core/smtp/auth-results.c.
 */
#include <string.h>

#include "util/vardict.h"

/* --- Framing rules ------------------------------------------------------ */

gsize pst_vardict_framed_size(gsize body, gsize offsets) {
  if (body + offsets <= G_MAXUINT8)
    return body + offsets;
  if (body + 2 * offsets <= G_MAXUINT16)
    return body + 2 * offsets;
  if (body + 4 * offsets <= G_MAXUINT32)
    return body + 4 * offsets;
  return body + 8 * offsets;
}

gsize pst_vardict_offset_width(gsize size) {
  if (size > G_MAXUINT32)
    return 8;
  if (size > G_MAXUINT16)
    return 4;
  if (size > G_MAXUINT8)
    return 2;
  return size > 0 ? 1 : 0;
}

static gsize vardict_align(gsize offset, gsize alignment) {
  return (offset + alignment - 1) & ~(alignment - 1);
}

/* Writes the `count` framing offsets `ends` of a container of `total`
 * octets at `p`; returns where they end. */
static guint8 *vardict_offsets_write(guint8 *p, gsize total, const gsize *ends,
                                     gsize count) {
  gsize width = pst_vardict_offset_width(total);
  for (gsize i = 0; i < count; i++)
    for (gsize k = 0; k < width; k++)
      *p++ = (guint8)(ends[i] >> (8 * k));
  return p;
}

/* --- Reading in place ---------------------------------------------------- */

gboolean pst_vardict_array_init(PstVardictArray *array, const guint8 *data,
                                gsize size, gsize alignment) {
  *array = (PstVardictArray){.data = data, .alignment = alignment};
  if (size == 0)
    return TRUE;
  gsize width = pst_vardict_offset_width(size);
  if (data == NULL || size < width)
    return FALSE;
  gsize table = pst_vardict_offset_read(data + size - width, width);
  if (table > size - width || (size - table) % width != 0)
    return FALSE;
  array->table = table;
  array->width = width;
  array->count = (size - table) / width;
  return TRUE;
}

gboolean pst_vardict_array_open(PstVardictArray *array, GVariant *value,
                                gsize alignment) {
  if (!g_variant_is_normal_form(value))
    return FALSE;
  gsize size = g_variant_get_size(value);
  return pst_vardict_array_init(array, g_variant_get_data(value), size,
                                alignment);
}

gboolean pst_vardict_array_child(const PstVardictArray *array, gsize index,
                                 gsize alignment, PstVardictArray *child_r) {
  const guint8 *data;
  gsize size;
  return pst_vardict_array_element(array, index, &data, &size) &&
         pst_vardict_array_init(child_r, data, size, alignment);
}

const char *pst_vardict_string_read(const guint8 *data, gsize size) {
  if (size == 0 || data[size - 1] != '\0' ||
      memchr(data, '\0', size - 1) != NULL)
    return NULL;
  return (const char *)data;
}

/* The string a serialised 'v' holds ("TEXT\0" "\0" "s"), or NULL when it
 * holds anything else. */
static const char *vardict_variant_string(const guint8 *v, gsize size) {
  if (size < 3 || v[size - 1] != 's' || v[size - 2] != '\0')
    return NULL;
  return pst_vardict_string_read(v, size - 2);
}

gboolean pst_vardict_entry_read(const guint8 *entry, gsize size,
                                const char **key_r, const char **string_r) {
  gsize width = pst_vardict_offset_width(size);
  if (size < width + 1)
    return FALSE;
  gsize key_end = pst_vardict_offset_read(entry + size - width, width);
  if (key_end == 0 || key_end > size - width ||
      pst_vardict_string_read(entry, key_end) == NULL)
    return FALSE;
  gsize value_start = vardict_align(key_end, 8);
  if (value_start > size - width)
    return FALSE;
  *key_r = (const char *)entry;
  *string_r =
      vardict_variant_string(entry + value_start, size - width - value_start);
  return TRUE;
}

gboolean pst_vardict_lookup_string(const PstVardictArray *dict,
                                   const char *key, const char **string_r) {
  *string_r = NULL;
  gsize key_size = strlen(key) + 1;
  for (gsize i = 0; i < dict->count; i++) {
    const guint8 *entry;
    gsize size;
    if (!pst_vardict_array_element(dict, i, &entry, &size))
      return FALSE;
    /* An entry starts with its key and the key's NUL: compared first,
     * read in full only when it is the one. */
    if (size < key_size || entry[0] != (guint8)key[0] ||
        memcmp(entry, key, key_size) != 0)
      continue;
    const char *name;
    return pst_vardict_entry_read(entry, size, &name, string_r);
  }
  return TRUE;
}

/* --- Writing: any values -------------------------------------------------
 */

/* One {sv} entry's octets, without its framing offset: the key, padding
 * to 8, the value, a NUL and the value's type. */
static gsize vardict_entry_body(gsize key_length, gsize value_size,
                                gsize type_length) {
  return vardict_align(key_length + 1, 8) + value_size + 1 + type_length;
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
    size->size = pst_vardict_framed_size(entry, 1);
    body = vardict_align(body, 8) + size->size;
    ends[i] = body;
  }
  gsize total = pst_vardict_framed_size(body, count);
  guint8 *data = g_malloc0(MAX(total, 1));
  guint8 *p = data;
  for (gsize i = 0; i < count; i++) {
    p = data + vardict_align((gsize)(p - data), 8);
    guint8 *start = p;
    memcpy(p, keys[i], sizes[i].key_length + 1);
    gsize key_end = sizes[i].key_length + 1;
    p = start + vardict_align(key_end, 8);
    gsize value_size = g_variant_get_size(values[i]);
    if (value_size > 0)
      memcpy(p, g_variant_get_data(values[i]), value_size);
    p += value_size + 1; /* the NUL is there */
    memcpy(p, g_variant_get_type_string(values[i]), sizes[i].type_length);
    p += sizes[i].type_length;
    p = vardict_offsets_write(p, sizes[i].size, &key_end, 1);
  }
  p = vardict_offsets_write(p, total, ends, count);
  g_assert((gsize)(p - data) == total);
  return g_variant_ref_sink(g_variant_new_from_data(
      G_VARIANT_TYPE_VARDICT, data, total, TRUE, g_free, data));
}

/* --- Writing: strings ----------------------------------------------------
 */

/* A string to write: its text (valid UTF-8) and length. */
typedef struct {
  const char *text;
  gsize length;
  char *copy; /* owned, nullable: the text made valid */
} VardictString;

/* ASCII, eight octets at a time: the common case of valid UTF-8. */
static gboolean vardict_is_ascii(const char *text, gsize length) {
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

static void vardict_string_init(VardictString *string, const char *text) {
  gsize length = strlen(text);
  string->copy = NULL;
  if (!vardict_is_ascii(text, length) &&
      !g_utf8_validate_len(text, length, NULL)) {
    string->copy = g_utf8_make_valid(text, (gssize)length);
    text = string->copy;
    length = strlen(text);
  }
  string->text = text;
  string->length = length;
}

/* Up to this many strings are measured on the stack. */
#define VARDICT_INLINE_STRINGS 16

typedef struct {
  VardictString inline_strings[VARDICT_INLINE_STRINGS];
  gsize inline_ends[VARDICT_INLINE_STRINGS / 2];
  VardictString *strings; /* inline_strings or owned */
  gsize *ends;            /* inline_ends or owned */
} VardictStrings;

static void vardict_strings_alloc(VardictStrings *all, gsize strings,
                                  gsize ends) {
  all->strings = strings <= VARDICT_INLINE_STRINGS
                     ? all->inline_strings
                     : g_new(VardictString, strings);
  all->ends = ends <= VARDICT_INLINE_STRINGS / 2 ? all->inline_ends
                                                 : g_new(gsize, ends);
}

static void vardict_strings_clear(VardictStrings *all, gsize strings) {
  for (gsize i = 0; i < strings; i++)
    g_free(all->strings[i].copy);
  if (all->strings != all->inline_strings)
    g_free(all->strings);
  if (all->ends != all->inline_ends)
    g_free(all->ends);
}

/* The serialised size of one {sv} entry holding a string. */
static gsize vardict_string_entry_size(const VardictString *key,
                                       const VardictString *value) {
  return pst_vardict_framed_size(
      vardict_align(key->length + 1, 8) + value->length + 3, 1);
}

/* Writes the entry (`size` octets, zeroed) at `e`. */
static void vardict_string_entry_write(guint8 *e, gsize size,
                                       const VardictString *key,
                                       const VardictString *value) {
  memcpy(e, key->text, key->length + 1);
  guint8 *v = e + vardict_align(key->length + 1, 8);
  memcpy(v, value->text, value->length + 1);
  v[value->length + 2] = 's'; /* after the value's NUL, the variant's NUL */
  gsize key_end = key->length + 1;
  vardict_offsets_write(e + size - pst_vardict_offset_width(size), size,
                        &key_end, 1);
}

GVariant *pst_vardict_new_strings(const char *const *keys,
                                  const char *const *values, gsize count) {
  VardictStrings all;
  vardict_strings_alloc(&all, 2 * count, count);
  /* The entries kept (a NULL value is left out), measured. */
  gsize n = 0, body = 0;
  for (gsize i = 0; i < count; i++) {
    if (values[i] == NULL)
      continue;
    VardictString *key = &all.strings[2 * n], *value = key + 1;
    vardict_string_init(key, keys[i]);
    vardict_string_init(value, values[i]);
    body = vardict_align(body, 8) + vardict_string_entry_size(key, value);
    all.ends[n++] = body;
  }
  gsize total = pst_vardict_framed_size(body, n);
  guint8 *data = g_malloc0(MAX(total, 1));
  gsize start = 0;
  for (gsize i = 0; i < n; i++) {
    vardict_string_entry_write(data + start, all.ends[i] - start,
                               &all.strings[2 * i], &all.strings[2 * i + 1]);
    start = vardict_align(all.ends[i], 8);
  }
  vardict_offsets_write(data + body, total, all.ends, n);
  vardict_strings_clear(&all, 2 * n);
  return g_variant_new_from_data(G_VARIANT_TYPE_VARDICT, data, total, TRUE,
                                 g_free, data);
}

GVariant *pst_vardict_new_strv(const char *const *strings, gsize count) {
  VardictStrings all;
  vardict_strings_alloc(&all, count, count);
  gsize body = 0;
  for (gsize i = 0; i < count; i++) {
    vardict_string_init(&all.strings[i], strings[i]);
    body += all.strings[i].length + 1;
    all.ends[i] = body;
  }
  gsize total = pst_vardict_framed_size(body, count);
  guint8 *data = g_malloc(MAX(total, 1));
  gsize start = 0;
  for (gsize i = 0; i < count; i++) {
    memcpy(data + start, all.strings[i].text, all.strings[i].length + 1);
    start = all.ends[i];
  }
  vardict_offsets_write(data + body, total, all.ends, count);
  vardict_strings_clear(&all, count);
  return g_variant_new_from_data(G_VARIANT_TYPE_STRING_ARRAY, data, total,
                                 TRUE, g_free, data);
}
