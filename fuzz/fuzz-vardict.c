/* fuzz-vardict.c - fuzzes the in-place readers of serialised results
 * (core/util/vardict.c) and the SDK's readers over them
 * (core/hooks/result-fields.c).
 *
 * Input: any octets, taken as a stored a{sv}, an aa{sv} (what
 * pst_result_get_all() returns) and an "as", each as a value a plugin or
 * the spool could hand over (untrusted: GLib checks normal form when
 * asked).  Checks that the readers never read outside the octets (ASan),
 * that where GLib says the octets are in normal form PstVardictArray finds
 * the entries, elements, keys and strings GLib finds, and that
 * pst_result_get_field() and pst_result_get_strv() give GLib's answer
 * for every value, in normal form or not.
 */
#include <stdint.h>
#include <string.h>

#include <postilion/plugin.h>

#include "util/vardict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"result", "reason", "header.d", "a", ""};

static GVariant *value_new(const char *type, const uint8_t *data,
                           size_t size) {
  gpointer copy = g_memdup2(data, size);
  return g_variant_ref_sink(g_variant_new_from_data(
      G_VARIANT_TYPE(type), copy, size, FALSE, g_free, copy));
}

/* The dictionary `dict` (GLib's child) read both ways. */
static void check_dict(GVariant *value, gsize index, GVariant *dict,
                       const PstVardictArray *in_place) {
  for (gsize k = 0; k < G_N_ELEMENTS(names); k++) {
    g_autoptr(GVariant) glib =
        g_variant_lookup_value(dict, names[k], G_VARIANT_TYPE_STRING);
    const char *expected =
        glib != NULL ? g_variant_get_string(glib, NULL) : NULL;
    g_assert_cmpstr(pst_result_get_field(value, index, names[k]), ==,
                    expected);
    const char *string = NULL;
    if (in_place != NULL) {
      g_assert_true(pst_vardict_lookup_string(in_place, names[k], &string));
      g_assert_cmpstr(string, ==, expected);
    }
  }
}

/* The raw octets walked whatever they hold: every read stays inside. */
static void walk(const uint8_t *data, size_t size, gsize alignment) {
  PstVardictArray array, child;
  if (!pst_vardict_array_init(&array, data, size, alignment))
    return;
  for (gsize i = 0; i < array.count; i++) {
    const guint8 *octets;
    gsize length;
    const char *key, *string;
    if (!pst_vardict_array_element(&array, i, &octets, &length))
      continue;
    (void)pst_vardict_string_read(octets, length);
    (void)pst_vardict_entry_read(octets, length, &key, &string);
    if (pst_vardict_array_child(&array, i, 8, &child))
      (void)pst_vardict_lookup_string(&child, "result", &string);
  }
}

static void check_vardict(const uint8_t *data, size_t size) {
  g_autoptr(GVariant) value = value_new("a{sv}", data, size);
  PstVardictArray dict;
  gboolean normal = g_variant_is_normal_form(value);
  g_assert_cmpint(pst_vardict_array_open(&dict, value, 8), ==, normal);
  check_dict(value, 0, value, normal ? &dict : NULL);
  g_assert_null(pst_result_get_field(value, 1, "result"));
}

static void check_list(const uint8_t *data, size_t size) {
  g_autoptr(GVariant) value = value_new("aa{sv}", data, size);
  PstVardictArray list, dict;
  gboolean normal = pst_vardict_array_open(&list, value, 8);
  gsize count = g_variant_n_children(value);
  if (normal)
    g_assert_cmpuint(list.count, ==, count);
  for (gsize i = 0; i < count && i < 64; i++) {
    g_autoptr(GVariant) element = g_variant_get_child_value(value, i);
    if (normal)
      g_assert_true(pst_vardict_array_child(&list, i, 8, &dict));
    check_dict(value, i, element, normal ? &dict : NULL);
  }
  g_assert_null(pst_result_get_field(value, count, "result"));
}

static void check_strv(const uint8_t *data, size_t size) {
  g_autoptr(GVariant) value = value_new("as", data, size);
  PstVardictArray strv;
  gboolean normal = pst_vardict_array_open(&strv, value, 1);
  gsize count = 0, length = 0;
  g_autofree const char **glib = g_variant_get_strv(value, &count);
  g_autofree const char **ours = pst_result_get_strv(value, &length);
  g_assert_cmpuint(length, ==, count);
  for (gsize i = 0; i <= count; i++) {
    g_assert_cmpstr(ours[i], ==, glib[i]);
    const guint8 *octets;
    gsize octets_size;
    if (normal && i < count) {
      g_assert_true(
          pst_vardict_array_element(&strv, i, &octets, &octets_size));
      g_assert_cmpstr(pst_vardict_string_read(octets, octets_size), ==,
                      glib[i]);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Exactly `size` octets of their own, so ASan sees any read past. */
  g_autofree uint8_t *octets = g_memdup2(data, size);
  walk(octets, size, 8);
  walk(octets, size, 1);
  check_vardict(octets, size);
  check_list(octets, size);
  check_strv(octets, size);
  return 0;
}
