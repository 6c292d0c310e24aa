/* test-vardict.c - pst_vardict_new() against GLib's own serialisation of
 * the same dictionary, octet for octet: values of many types and sizes,
 * around the sizes where framing offsets grow (255, 65535 octets).
 */
#include <string.h>

#include <glib.h>

#include "util/vardict.h"

/* GLib's serialisation of the dictionary. */
static GVariant *reference_vardict(const char *const *keys,
                                   GVariant *const *values, gsize count) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  for (gsize i = 0; i < count; i++)
    g_variant_builder_add(&builder, "{sv}", keys[i], values[i]);
  return g_variant_get_normal_form(g_variant_builder_end(&builder));
}

static void assert_same_as_glib(const char *const *keys,
                                GVariant *const *values, gsize count) {
  g_autoptr(GVariant) expected = reference_vardict(keys, values, count);
  g_autoptr(GVariant) got = pst_vardict_new(keys, values, count);
  g_assert_false(g_variant_is_floating(got));
  g_assert_true(g_variant_is_of_type(got, G_VARIANT_TYPE_VARDICT));
  g_assert_cmpmem(g_variant_get_data(got), g_variant_get_size(got),
                  g_variant_get_data(expected), g_variant_get_size(expected));
  g_assert_true(g_variant_equal(got, expected));
  /* What GLib reads back from it is the same dictionary. */
  g_autoptr(GVariant) reread = g_variant_new_from_data(
      G_VARIANT_TYPE_VARDICT, g_variant_get_data(got), g_variant_get_size(got),
      FALSE, NULL, NULL);
  g_assert_true(g_variant_is_normal_form(reread));
  g_assert_true(g_variant_equal(reread, expected));
}

static void test_empty(void) {
  assert_same_as_glib(NULL, NULL, 0);
}

static void test_results(void) {
  GVariantBuilder spf;
  g_variant_builder_init(&spf, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&spf, "{sv}", "result", g_variant_new_string("pass"));
  g_variant_builder_add(&spf, "{sv}", "smtp.mailfrom",
                        g_variant_new_string("example.org"));
  const char *received[] = {"pass (a: b) client-ip=192.0.2.1;", "none", NULL};
  const char *const keys[] = {"auth.spf", "auth.user", "spf.received",
                              "x.empty", "x.unit"};
  GVariant *values[] = {
      g_variant_ref_sink(g_variant_builder_end(&spf)),
      g_variant_ref_sink(g_variant_new_string("alice")),
      g_variant_ref_sink(g_variant_new_strv(received, -1)),
      g_variant_ref_sink(g_variant_new_strv(NULL, 0)),
      g_variant_ref_sink(g_variant_new_tuple(NULL, 0)),
  };
  assert_same_as_glib(keys, values, G_N_ELEMENTS(keys));
  for (gsize i = 0; i < G_N_ELEMENTS(values); i++)
    g_variant_unref(values[i]);
}

/* A random value: a string, a number, octets, a boolean, a list of
 * strings or a small nested a{sv}; sizes from 0 to `max_length`. */
static GVariant *random_value(GRand *rand, gsize max_length, guint depth) {
  gsize length = (gsize)g_rand_int_range(rand, 0, (gint32)max_length + 1);
  switch (g_rand_int_range(rand, 0, depth > 0 ? 6 : 5)) {
  case 0: {
    g_autofree char *text = g_strnfill(length, 'a' + (char)(length % 26));
    return g_variant_ref_sink(g_variant_new_string(text));
  }
  case 1:
    return g_variant_ref_sink(g_variant_new_uint64(g_rand_int(rand)));
  case 2: {
    g_autofree guint8 *octets = g_malloc0(length + 1);
    return g_variant_ref_sink(g_variant_new_fixed_array(
        G_VARIANT_TYPE_BYTE, octets, length, 1));
  }
  case 3:
    return g_variant_ref_sink(g_variant_new_boolean(length % 2));
  case 4: {
    GVariantBuilder list;
    g_variant_builder_init(&list, G_VARIANT_TYPE_STRING_ARRAY);
    for (gsize i = 0; i < length % 7; i++)
      g_variant_builder_add(&list, "s", i % 2 ? "x" : "");
    return g_variant_ref_sink(g_variant_builder_end(&list));
  }
  default: {
    GVariantBuilder dict;
    g_variant_builder_init(&dict, G_VARIANT_TYPE_VARDICT);
    for (gsize i = 0; i < length % 4; i++) {
      g_autoptr(GVariant) inner = random_value(rand, max_length, depth - 1);
      g_variant_builder_add(&dict, "{sv}", i % 2 ? "k" : "key.name", inner);
    }
    return g_variant_ref_sink(g_variant_builder_end(&dict));
  }
  }
}

static void test_random(void) {
  GRand *rand = g_rand_new_with_seed(61206);
  static const gsize max_lengths[] = {8, 60, 300, 9000, 70000};
  for (guint round = 0; round < 400; round++) {
    gsize max_length = max_lengths[round % G_N_ELEMENTS(max_lengths)];
    gsize count = (gsize)g_rand_int_range(rand, 0, 9);
    char *keys[9];
    GVariant *values[9];
    for (gsize i = 0; i < count; i++) {
      keys[i] = g_strdup_printf("k%" G_GSIZE_FORMAT ".%s", i,
                                i % 3 ? "word" : "longer-key-word");
      values[i] = random_value(rand, max_length, 2);
    }
    assert_same_as_glib((const char *const *)keys, values, count);
    for (gsize i = 0; i < count; i++) {
      g_free(keys[i]);
      g_variant_unref(values[i]);
    }
  }
  g_rand_free(rand);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vardict/empty", test_empty);
  g_test_add_func("/vardict/results", test_results);
  g_test_add_func("/vardict/random", test_random);
  return g_test_run();
}
