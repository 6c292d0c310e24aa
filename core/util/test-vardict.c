/* test-vardict.c - util/vardict.c against GLib.
 *
 * The writers (pst_vardict_new(), pst_vardict_new_strings(),
 * pst_vardict_new_strv()) against GLib's own serialisation of the same
 * value, octet for octet: values of many types and sizes, around the sizes
 * where framing offsets grow (255, 65535, so every width of 1, 2 and 4
 * octets), empty strings, no entries, UTF-8 made valid.  The readers
 * (PstVardictArray over a{sv}, aa{sv} and as) against GLib's reading of
 * values GLib wrote at every width, of every prefix of them and after
 * single-octet mutations: where GLib says the octets are in normal form
 * the readers find what GLib finds; elsewhere they only stay inside the
 * octets (ASan).
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

/* --- Strings written: a{sv} and as --------------------------------------- */

/* GLib's a{sv} of strings, entries with a NULL value left out. */
static GVariant *glib_strings(const char *const *keys,
                              const char *const *values, gsize count) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  for (gsize i = 0; i < count; i++)
    if (values[i] != NULL)
      g_variant_builder_add(&builder, "{sv}", keys[i],
                            g_variant_new_string(values[i]));
  return g_variant_builder_end(&builder);
}

/* Both floating; the same value and octets, ours in normal form. */
static void assert_same_octets(GVariant *ours_floating,
                               GVariant *glib_floating) {
  g_assert_true(g_variant_is_floating(ours_floating));
  g_autoptr(GVariant) ours = g_variant_ref_sink(ours_floating);
  g_autoptr(GVariant) glib = g_variant_ref_sink(glib_floating);
  g_assert_true(g_variant_is_normal_form(ours));
  g_assert_true(g_variant_equal(ours, glib));
  g_assert_cmpmem(g_variant_get_data(ours), g_variant_get_size(ours),
                  g_variant_get_data(glib), g_variant_get_size(glib));
}

/* Sizes around every change of the framing offsets' width. */
static const gsize string_lengths[] = {
    0,   1,   7,   8,   9,   200, 230, 240,   245,   250,   251,   252,
    253, 254, 255, 256, 300, 500, 999, 65500, 65520, 65530, 65536, 70000};

static void test_strings(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(string_lengths); i++)
    for (gsize shift = 0; shift < 3; shift++) {
      g_autofree char *long_value = g_strnfill(string_lengths[i], 'x');
      g_autofree char *key =
          g_strnfill(1 + (string_lengths[i] + shift) % 13, 'k');
      const char *keys[] = {"result", key, "smtp.mailfrom", long_value};
      const char *values[] = {"pass", long_value, "", "v"};
      for (gsize n = 0; n <= G_N_ELEMENTS(keys); n++)
        assert_same_octets(pst_vardict_new_strings(keys, values, n),
                           glib_strings(keys, values, n));
      const char *one[] = {long_value + MIN(shift, string_lengths[i])};
      assert_same_octets(pst_vardict_new_strings(keys + 1, one, 1),
                         glib_strings(keys + 1, one, 1));
    }
  /* A NULL value leaves its entry out. */
  const char *keys[] = {"result", "reason", "header.d", "policy"};
  const char *values[] = {"pass", NULL, "example.com", NULL};
  assert_same_octets(pst_vardict_new_strings(keys, values, 4),
                     glib_strings(keys, values, 4));
  /* UTF-8: kept when valid, made valid when not. */
  const char *utf8_keys[] = {"r\xc3\xa9sultat", "k\xff"};
  const char *bad[] = {"bad \xff octet \xc3", "\xe2\x82\xac"};
  const char *made_keys[] = {"r\xc3\xa9sultat", "k\xef\xbf\xbd"};
  const char *made[] = {"bad \xef\xbf\xbd octet \xef\xbf\xbd", "\xe2\x82\xac"};
  assert_same_octets(pst_vardict_new_strings(utf8_keys, bad, 2),
                     glib_strings(made_keys, made, 2));
}

static void test_strv(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(string_lengths); i++) {
    g_autofree char *long_value = g_strnfill(string_lengths[i], 's');
    const char *strings[] = {"pass (a: b) client-ip=192.0.2.1;", long_value,
                             "", long_value};
    for (gsize n = 0; n <= G_N_ELEMENTS(strings); n++)
      assert_same_octets(pst_vardict_new_strv(strings, n),
                         g_variant_new_strv(strings, (gssize)n));
  }
  const char *bad[] = {"a\xff", "\xc3\xa9"};
  const char *made[] = {"a\xef\xbf\xbd", "\xc3\xa9"};
  assert_same_octets(pst_vardict_new_strv(bad, 2),
                     g_variant_new_strv(made, 2));
}

/* --- Reading in place ------------------------------------------------------
 */

static const char *const lookup_keys[] = {
    "result", "reason", "header.d", "smtp.mailfrom", "n", "x", "", "absent"};

/* Every key of `lookup_keys` looked up in `dict` as GLib finds it in
 * `glib_dict` (the same octets). */
static void assert_lookups_as_glib(const PstVardictArray *dict,
                                   GVariant *glib_dict) {
  for (gsize k = 0; k < G_N_ELEMENTS(lookup_keys); k++) {
    const char *ours = "unset";
    g_assert_true(pst_vardict_lookup_string(dict, lookup_keys[k], &ours));
    g_autoptr(GVariant) glib = g_variant_lookup_value(
        glib_dict, lookup_keys[k], G_VARIANT_TYPE_STRING);
    g_assert_cmpstr(ours, ==,
                    glib != NULL ? g_variant_get_string(glib, NULL) : NULL);
  }
}

/* Octets not in normal form: whatever the reader says, it stays inside
 * them. */
static void walk_dict(const PstVardictArray *dict) {
  for (gsize k = 0; k < G_N_ELEMENTS(lookup_keys); k++) {
    const char *string;
    (void)pst_vardict_lookup_string(dict, lookup_keys[k], &string);
  }
}

/* An untrusted value of its own copy of the octets (ASan sees reads past
 * them). */
static GVariant *from_octets(const GVariantType *type, const guint8 *data,
                             gsize size) {
  guint8 *copy = g_memdup2(data, size);
  return g_variant_ref_sink(
      g_variant_new_from_data(type, copy, size, FALSE, g_free, copy));
}

static void check_dict(const guint8 *data, gsize size) {
  g_autoptr(GVariant) value = from_octets(G_VARIANT_TYPE_VARDICT, data, size);
  PstVardictArray dict;
  const guint8 *octets = g_variant_get_data(value);
  gboolean read = pst_vardict_array_init(&dict, octets, size, 8);
  if (!g_variant_is_normal_form(value)) {
    if (read)
      walk_dict(&dict);
    g_assert_false(pst_vardict_array_open(&dict, value, 8));
    return;
  }
  g_assert_true(read);
  g_assert_cmpuint(dict.count, ==, g_variant_n_children(value));
  assert_lookups_as_glib(&dict, value);
  g_assert_true(pst_vardict_array_open(&dict, value, 8));
}

static void check_list(const guint8 *data, gsize size) {
  g_autoptr(GVariant) value = from_octets(G_VARIANT_TYPE("aa{sv}"), data, size);
  PstVardictArray list, dict;
  gboolean read =
      pst_vardict_array_init(&list, g_variant_get_data(value), size, 8);
  if (!g_variant_is_normal_form(value)) {
    for (gsize i = 0; read && i < list.count; i++)
      if (pst_vardict_array_child(&list, i, 8, &dict))
        walk_dict(&dict);
    return;
  }
  g_assert_true(read);
  g_assert_cmpuint(list.count, ==, g_variant_n_children(value));
  for (gsize i = 0; i < list.count; i++) {
    g_assert_true(pst_vardict_array_child(&list, i, 8, &dict));
    g_autoptr(GVariant) element = g_variant_get_child_value(value, i);
    assert_lookups_as_glib(&dict, element);
  }
  g_assert_false(pst_vardict_array_child(&list, list.count, 8, &dict));
}

static void check_strv(const guint8 *data, gsize size) {
  g_autoptr(GVariant) value =
      from_octets(G_VARIANT_TYPE_STRING_ARRAY, data, size);
  PstVardictArray strv;
  gboolean read =
      pst_vardict_array_init(&strv, g_variant_get_data(value), size, 1);
  const guint8 *octets;
  gsize length;
  if (!g_variant_is_normal_form(value)) {
    for (gsize i = 0; read && i < strv.count; i++)
      if (pst_vardict_array_element(&strv, i, &octets, &length))
        (void)pst_vardict_string_read(octets, length);
    return;
  }
  g_assert_true(read);
  gsize count = 0;
  g_autofree const char **glib = g_variant_get_strv(value, &count);
  g_assert_cmpuint(strv.count, ==, count);
  for (gsize i = 0; i < count; i++) {
    g_assert_true(pst_vardict_array_element(&strv, i, &octets, &length));
    g_assert_cmpstr(pst_vardict_string_read(octets, length), ==, glib[i]);
  }
}

typedef void (*CheckOctets)(const guint8 *data, gsize size);

/* `check` of `value`'s octets, and, when they are small, of each prefix
 * and of each single-octet mutation. */
static void check_octets(GVariant *value, CheckOctets check) {
  gsize size = g_variant_get_size(value);
  const guint8 *data = g_variant_get_data(value);
  check(data, size);
  if (size > 1000)
    return;
  for (gsize cut = 0; cut < size; cut++)
    check(data, cut);
  g_autofree guint8 *copy = g_memdup2(data, size);
  static const guint8 octets[] = {0x00, 0x01, 0x08, 's', 'v', 0x7f, 0xff};
  for (gsize at = 0; at < size; at++)
    for (gsize o = 0; o < G_N_ELEMENTS(octets); o++) {
      guint8 kept = copy[at];
      copy[at] = octets[o];
      check(copy, size);
      copy[at] = kept;
    }
}

/* A value GLib wrote: strings, a non-string, a key given twice, a list,
 * an empty key; `big` octets of reason. */
static GVariant *sample_dict(gsize big) {
  g_autofree char *long_value = g_strnfill(big, 'r');
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&builder, "{sv}", "result",
                        g_variant_new_string("pass"));
  g_variant_builder_add(&builder, "{sv}", "n", g_variant_new_uint32(7));
  g_variant_builder_add(&builder, "{sv}", "reason",
                        g_variant_new_string(long_value));
  g_variant_builder_add(&builder, "{sv}", "header.d",
                        g_variant_new_string("example.com"));
  g_variant_builder_add(&builder, "{sv}", "header.d",
                        g_variant_new_string("example.org"));
  g_variant_builder_add(&builder, "{sv}", "smtp.mailfrom",
                        g_variant_new_string(""));
  g_variant_builder_add(&builder, "{sv}", "",
                        g_variant_new_string("empty key"));
  g_variant_builder_add(&builder, "{sv}", "x",
                        g_variant_new_strv((const char *[]){"a", "b"}, 2));
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

static void test_read(void) {
  /* Sizes that give offsets of 1, 2 and 4 octets. */
  static const gsize bigs[] = {3, 300, 70000};
  for (gsize b = 0; b < G_N_ELEMENTS(bigs); b++) {
    g_autoptr(GVariant) dict = sample_dict(bigs[b]);
    check_octets(dict, check_dict);
    GVariantBuilder builder;
    g_variant_builder_init(&builder, G_VARIANT_TYPE("aa{sv}"));
    g_variant_builder_add_value(&builder, dict);
    g_variant_builder_add_value(&builder,
                                g_variant_new_array(G_VARIANT_TYPE("{sv}"),
                                                    NULL, 0));
    const char *keys[] = {"result", "header.d"};
    const char *values[] = {"fail", "example.net"};
    g_variant_builder_add_value(&builder,
                                pst_vardict_new_strings(keys, values, 2));
    g_autoptr(GVariant) list = g_variant_ref_sink(g_variant_builder_end(&builder));
    if (bigs[b] < 300)
      check_octets(list, check_list);
    else
      check_list(g_variant_get_data(list), g_variant_get_size(list));
    g_autofree char *long_value = g_strnfill(bigs[b], 'q');
    const char *strings[] = {"a", "", long_value, "z"};
    g_autoptr(GVariant) strv =
        g_variant_ref_sink(g_variant_new_strv(strings, 4));
    check_octets(strv, check_strv);
  }
  /* No octets: an empty array. */
  check_dict(NULL, 0);
  check_strv(NULL, 0);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vardict/empty", test_empty);
  g_test_add_func("/vardict/results", test_results);
  g_test_add_func("/vardict/random", test_random);
  g_test_add_func("/vardict/strings", test_strings);
  g_test_add_func("/vardict/strv", test_strv);
  g_test_add_func("/vardict/read", test_read);
  return g_test_run();
}
