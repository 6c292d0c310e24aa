/* test-result-fields.c - the SDK's results of string fields
 * (result-fields.c) against GLib: pst_result_new_fields() and
 * pst_result_new_strv() make GLib's values octet for octet (floating, a
 * NULL value left out, UTF-8 made valid); pst_result_get_field() and
 * pst_result_get_strv() find what GLib's lookup and reading find, in
 * tree form, in normal form and in octets that are not (every prefix and
 * single-octet mutation of a value GLib wrote, read through GLib then),
 * for an a{sv}, each element of an aa{sv}, and an as.
 */
#include <string.h>

#include <postilion/plugin.h>

static void assert_same(GVariant *ours_floating, GVariant *glib_floating) {
  g_assert_nonnull(ours_floating);
  g_assert_true(g_variant_is_floating(ours_floating));
  g_autoptr(GVariant) ours = g_variant_ref_sink(ours_floating);
  g_autoptr(GVariant) glib = g_variant_ref_sink(glib_floating);
  g_assert_true(g_variant_is_normal_form(ours));
  g_assert_true(g_variant_equal(ours, glib));
  g_assert_cmpmem(g_variant_get_data(ours), g_variant_get_size(ours),
                  g_variant_get_data(glib), g_variant_get_size(glib));
}

static void test_new(void) {
  const char *names[] = {"result", "reason", "smtp.mailfrom"};
  const char *values[] = {"pass", NULL, "a@example.com"};
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&builder, "{sv}", "result",
                        g_variant_new_string("pass"));
  g_variant_builder_add(&builder, "{sv}", "smtp.mailfrom",
                        g_variant_new_string("a@example.com"));
  assert_same(pst_result_new_fields(names, values, 3),
              g_variant_builder_end(&builder));
  assert_same(pst_result_new_fields(NULL, NULL, 0),
              g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
  const char *bad[] = {"fail", "\xff"};
  const char *made[] = {"fail", "\xef\xbf\xbd"};
  g_autoptr(GVariant) ours =
      g_variant_ref_sink(pst_result_new_fields(names, bad, 2));
  g_assert_cmpstr(pst_result_get_field(ours, 0, "reason"), ==, made[1]);

  const char *strings[] = {"one", "", "three", NULL};
  assert_same(pst_result_new_strv(strings, -1),
              g_variant_new_strv(strings, -1));
  assert_same(pst_result_new_strv(strings, 2), g_variant_new_strv(strings, 2));
  assert_same(pst_result_new_strv(NULL, 0), g_variant_new_strv(NULL, 0));
}

static const char *const names[] = {"result", "reason", "header.d", "n",
                                    "x",      "",       "absent"};

/* pst_result_get_field() of element `index` of `value` against GLib. */
static void check_fields(GVariant *value, gsize index) {
  g_autoptr(GVariant) dict =
      g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT)
          ? g_variant_ref(value)
          : g_variant_get_child_value(value, index);
  for (gsize k = 0; k < G_N_ELEMENTS(names); k++) {
    g_autoptr(GVariant) glib =
        g_variant_lookup_value(dict, names[k], G_VARIANT_TYPE_STRING);
    const char *expected =
        glib != NULL ? g_variant_get_string(glib, NULL) : NULL;
    g_assert_cmpstr(pst_result_get_field(value, index, names[k]), ==,
                    expected);
  }
}

static void check_value(GVariant *value) {
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT)) {
    check_fields(value, 0);
    g_assert_null(pst_result_get_field(value, 1, "result"));
    return;
  }
  gsize count = g_variant_n_children(value);
  for (gsize i = 0; i < count; i++)
    check_fields(value, i);
  g_assert_null(pst_result_get_field(value, count, "result"));
}

static void check_octets(const GVariantType *type, const guint8 *data,
                         gsize size) {
  guint8 *copy = g_memdup2(data, size);
  g_autoptr(GVariant) value = g_variant_ref_sink(
      g_variant_new_from_data(type, copy, size, FALSE, g_free, copy));
  check_value(value);
}

/* The value, and when small every prefix and single-octet mutation of
 * its octets. */
static void check_all(GVariant *value) {
  check_value(value);
  const GVariantType *type = g_variant_get_type(value);
  gsize size = g_variant_get_size(value);
  const guint8 *data = g_variant_get_data(value);
  check_octets(type, data, size);
  if (size > 600)
    return;
  for (gsize cut = 0; cut < size; cut++)
    check_octets(type, data, cut);
  g_autofree guint8 *copy = g_memdup2(data, size);
  static const guint8 octets[] = {0x00, 0x01, 's', 'v', 0xff};
  for (gsize at = 0; at < size; at++)
    for (gsize o = 0; o < G_N_ELEMENTS(octets); o++) {
      guint8 kept = copy[at];
      copy[at] = octets[o];
      check_octets(type, copy, size);
      copy[at] = kept;
    }
}

static GVariant *sample(gsize big) {
  g_autofree char *reason = g_strnfill(big, 'r');
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&builder, "{sv}", "result",
                        g_variant_new_string("pass"));
  g_variant_builder_add(&builder, "{sv}", "n", g_variant_new_uint32(7));
  g_variant_builder_add(&builder, "{sv}", "reason",
                        g_variant_new_string(reason));
  g_variant_builder_add(&builder, "{sv}", "header.d",
                        g_variant_new_string("a.example"));
  g_variant_builder_add(&builder, "{sv}", "header.d",
                        g_variant_new_string("b.example"));
  g_variant_builder_add(&builder, "{sv}", "x",
                        g_variant_new_strv((const char *[]){"a"}, 1));
  return g_variant_builder_end(&builder);
}

static void test_get_field(void) {
  static const gsize bigs[] = {3, 300, 70000};
  for (gsize b = 0; b < G_N_ELEMENTS(bigs); b++) {
    /* Tree form (GLib's builder), then its octets. */
    g_autoptr(GVariant) dict = g_variant_ref_sink(sample(bigs[b]));
    check_all(dict);
    const char *fields[] = {"result", "header.d"};
    const char *values[] = {"fail", "c.example"};
    GVariant *elements[] = {sample(bigs[b]),
                            pst_result_new_fields(fields, values, 2),
                            pst_result_new_fields(NULL, NULL, 0)};
    g_autoptr(GVariant) list = g_variant_ref_sink(g_variant_new_array(
        G_VARIANT_TYPE_VARDICT, elements, G_N_ELEMENTS(elements)));
    check_all(list);
  }
  /* Neither an a{sv} nor an aa{sv}. */
  g_autoptr(GVariant) other = g_variant_ref_sink(g_variant_new_string("x"));
  g_assert_null(pst_result_get_field(other, 0, "result"));
  g_assert_null(pst_result_get_field(NULL, 0, "result"));
}

static void check_strings(GVariant *value) {
  gsize count = 0, length = 0;
  g_autofree const char **glib = g_variant_get_strv(value, &count);
  g_autofree const char **ours = pst_result_get_strv(value, &length);
  g_assert_cmpuint(length, ==, count);
  for (gsize i = 0; i <= count; i++)
    g_assert_cmpstr(ours[i], ==, glib[i]);
}

static void test_get_strv(void) {
  g_autofree char *big = g_strnfill(300, 'b');
  const char *strings[] = {"a", "", big, "z"};
  g_autoptr(GVariant) strv =
      g_variant_ref_sink(pst_result_new_strv(strings, 4));
  check_strings(strv);
  /* Octets not in normal form (a NUL inside a string, cut): GLib's way. */
  gsize size = g_variant_get_size(strv);
  g_autofree guint8 *octets = g_memdup2(g_variant_get_data(strv), size);
  octets[0] = 0;
  for (gsize cut = 0; cut <= size; cut += 7) {
    g_autoptr(GVariant) odd = g_variant_ref_sink(g_variant_new_from_data(
        G_VARIANT_TYPE_STRING_ARRAY, octets, cut, FALSE, NULL, NULL));
    check_strings(odd);
  }
  g_autoptr(GVariant) tree = g_variant_ref_sink(g_variant_new_strv(strings, 4));
  check_strings(tree);
  g_autoptr(GVariant) other = g_variant_ref_sink(g_variant_new_string("x"));
  gsize length = 1;
  g_assert_null(pst_result_get_strv(other, &length));
  g_assert_cmpuint(length, ==, 0);
  g_assert_null(pst_result_get_strv(NULL, NULL));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/result-fields/new", test_new);
  g_test_add_func("/result-fields/get-field", test_get_field);
  g_test_add_func("/result-fields/get-strv", test_get_strv);
  return g_test_run();
}
