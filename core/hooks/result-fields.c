/* result-fields.c - the SDK's results of string fields (ABI 1.2):
 * pst_result_new_fields(), pst_result_get_field(), pst_result_new_strv(),
 * pst_result_get_strv().
 *
 * Plugins cannot link the core, so each once wrote and read GVariant's
 * serialised form itself (the spf and dmarc plugins); these give them the
 * core's one implementation of its framing rules (util/vardict.c).  The
 * writers return floating values in normal form, octet for octet what
 * GLib's constructors make.  The readers read a value in normal form in
 * place (no GVariant per entry, element or string: what GLib and the
 * writers make, and what the spool hands back) and any other value
 * through GLib, with the same answer (g_variant_lookup_value()'s first
 * match; GLib's default for octets not in normal form).  A string
 * returned points into the value's octets (or is GLib's static ""), so
 * it lives as long as the value.
 *
 * Pure: any thread.  Tested in core/hooks/test-result-fields.c against
 * GLib's constructors and reading; the readers are fuzzed
 * (fuzz/fuzz-vardict.c).  Callers: plugins (spf, dmarc).
 */
#include <string.h>

#include <glib.h>

#include "hooks/hooks-private.h"
#include "util/vardict.h"

PST_API GVariant *pst_result_new_fields(const char *const *names,
                                        const char *const *values,
                                        gsize count) {
  g_return_val_if_fail(count == 0 || (names != NULL && values != NULL), NULL);
  for (gsize i = 0; i < count; i++)
    g_return_val_if_fail(names[i] != NULL, NULL);
  return pst_vardict_new_strings(names, values, count);
}

PST_API GVariant *pst_result_new_strv(const char *const *strings,
                                      gssize count) {
  g_return_val_if_fail(count <= 0 || strings != NULL, NULL);
  gsize n = 0;
  if (count < 0)
    while (strings != NULL && strings[n] != NULL)
      n++;
  else
    n = (gsize)count;
  for (gsize i = 0; i < n; i++)
    g_return_val_if_fail(strings[i] != NULL, NULL);
  return pst_vardict_new_strv(strings, n);
}

/* The dictionary the field is read from, through GLib: `value` or its
 * element `index` (a reference), or NULL. */
static GVariant *result_dict_glib(GVariant *value, gboolean list,
                                  gsize index) {
  if (!list)
    return g_variant_ref(value);
  return index < g_variant_n_children(value)
             ? g_variant_get_child_value(value, index)
             : NULL;
}

/* Through GLib, for a value not in normal form: the string stays in
 * `value`'s octets (or is GLib's static default), not in the children
 * dropped here. */
static const char *result_field_glib(GVariant *value, gboolean list,
                                     gsize index, const char *name) {
  g_autoptr(GVariant) dict = result_dict_glib(value, list, index);
  if (dict == NULL)
    return NULL;
  g_autoptr(GVariant) string =
      g_variant_lookup_value(dict, name, G_VARIANT_TYPE_STRING);
  return string != NULL ? g_variant_get_string(string, NULL) : NULL;
}

PST_API const char *pst_result_get_field(GVariant *value, gsize index,
                                         const char *name) {
  g_return_val_if_fail(name != NULL, NULL);
  if (value == NULL)
    return NULL;
  /* The type by its string: g_variant_is_of_type() walks both types for
   * wildcards, several times the cost of the rest of a field's reading. */
  const char *type = g_variant_get_type_string(value);
  gboolean list = strcmp(type, "aa{sv}") == 0;
  if (!list && (index != 0 || strcmp(type, "a{sv}") != 0))
    return NULL;
  PstVardictArray array, dict;
  const char *string;
  if (pst_vardict_array_open(&array, value, 8)) {
    if (list && index >= array.count)
      return NULL;
    if (!list)
      dict = array;
    if ((!list || pst_vardict_array_child(&array, index, 8, &dict)) &&
        pst_vardict_lookup_string(&dict, name, &string))
      return string;
  }
  return result_field_glib(value, list, index, name);
}

/* The strings of `strv` (open, in normal form), or NULL when an element is
 * not what normal form promises. */
static const char **result_strv_read(const PstVardictArray *strv) {
  const char **strings = g_new(const char *, strv->count + 1);
  for (gsize i = 0; i < strv->count; i++) {
    const guint8 *octets;
    gsize size;
    if (!pst_vardict_array_element(strv, i, &octets, &size) ||
        (strings[i] = pst_vardict_string_read(octets, size)) == NULL) {
      g_free(strings);
      return NULL;
    }
  }
  strings[strv->count] = NULL;
  return strings;
}

PST_API const char **pst_result_get_strv(GVariant *value, gsize *length) {
  gsize ignored;
  gsize *length_r = length != NULL ? length : &ignored;
  *length_r = 0;
  if (value == NULL || strcmp(g_variant_get_type_string(value), "as") != 0)
    return NULL;
  PstVardictArray strv;
  const char **strings;
  if (pst_vardict_array_open(&strv, value, 1) &&
      (strings = result_strv_read(&strv)) != NULL) {
    *length_r = strv.count;
    return strings;
  }
  return g_variant_get_strv(value, length_r); /* not in normal form */
}
