/* test-dmarc-variant.c - unit tests of dmarc-variant.c: the a{sv} the
 * writer makes is byte for byte the one GLib serialises (at every framing
 * offset width, empty strings, long keys), and the reader finds what
 * GLib's own reading finds, in values GLib wrote, in every prefix of them
 * and after single-octet mutations (where GLib says the octets are no
 * normal form, the reader refuses them).
 */
#include <string.h>

#include "dmarc.h"

/* GLib's a{sv} of strings (g_variant_get_data() serialises it). */
static GVariant *glib_vardict(const char *const *keys, const char *const *values,
                              gsize count) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  for (gsize i = 0; i < count; i++)
    g_variant_builder_add(&builder, "{sv}", keys[i],
                          g_variant_new_string(values[i]));
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

static void assert_same_octets(GVariant *ours, GVariant *glib) {
  g_assert_true(g_variant_is_of_type(ours, G_VARIANT_TYPE_VARDICT));
  g_assert_cmpmem(g_variant_get_data(ours), g_variant_get_size(ours),
                  g_variant_get_data(glib), g_variant_get_size(glib));
  g_assert_true(g_variant_equal(ours, glib));
}

static void check_write(const char *const *keys, const char *const *values,
                        gsize count) {
  g_autoptr(GVariant) ours =
      g_variant_ref_sink(dmarc_variant_new_strings(keys, values, count));
  g_autoptr(GVariant) glib = glib_vardict(keys, values, count);
  assert_same_octets(ours, glib);
  g_assert_true(g_variant_is_normal_form(ours));
}

static void test_write(void) {
  const char *keys[] = {"result", "reason", "header.from", "policy.dmarc"};
  const char *values[] = {"fail", "no aligned identifier passed",
                          "example.com", "reject"};
  for (gsize n = 0; n <= G_N_ELEMENTS(keys); n++)
    check_write(keys, values, n);
  const char *empty[] = {"", "", "", ""};
  check_write(keys, empty, 4);
  check_write(empty, values, 4);
  /* Entries of 7, 8 and 9 octets of key: the value's padding. */
  const char *odd_keys[] = {"abcdef", "abcdefg", "abcdefgh", "a"};
  check_write(odd_keys, values, 4);
  /* Framing offsets of 2 and 4 octets (containers over 255 and 65535
   * octets), in the entries and in the array. */
  gsize lengths[] = {200, 250, 260, 65000, 65530, 70000};
  for (gsize i = 0; i < G_N_ELEMENTS(lengths); i++) {
    g_autofree char *big = g_strnfill(lengths[i], 'x');
    const char *mixed[] = {"pass", big, "example.com", big};
    check_write(keys, mixed, 4);
    const char *big_keys[] = {"result", big, "header.from", "z"};
    check_write(big_keys, values, 4);
  }
  /* Not UTF-8: written as g_utf8_make_valid() makes it. */
  const char *bad[] = {"fail", "bad \xff octet"};
  const char *made_valid[] = {"fail", "bad \xef\xbf\xbd octet"};
  g_autoptr(GVariant) ours =
      g_variant_ref_sink(dmarc_variant_new_strings(keys, bad, 2));
  g_autoptr(GVariant) glib = glib_vardict(keys, made_valid, 2);
  assert_same_octets(ours, glib);
}

/* What reading `dict` through GLib gives for `keys`: the last string
 * entry of each key. */
static void glib_lookup(GVariant *dict, const char *const *keys,
                        const char **values, gsize n_keys) {
  memset(values, 0, n_keys * sizeof *values);
  gsize count = g_variant_n_children(dict);
  for (gsize i = 0; i < count; i++) {
    const char *key;
    g_autoptr(GVariant) value = NULL;
    g_variant_get_child(dict, i, "{&sv}", &key, &value);
    for (gsize k = 0; k < n_keys; k++)
      if (strcmp(key, keys[k]) == 0 &&
          g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
        values[k] = g_variant_get_string(value, NULL);
  }
}

/* Reads `dict` both ways; when ours refuses it, GLib says it is not in
 * normal form. */
static void check_read(GVariant *dict) {
  static const char *const keys[] = {"result", "reason", "header.d",
                                     "smtp.mailfrom", "n"};
  const char *ours[G_N_ELEMENTS(keys)], *glib[G_N_ELEMENTS(keys)];
  gboolean read =
      dmarc_variant_lookup_strings(dict, keys, ours, G_N_ELEMENTS(keys));
  if (!read) {
    g_assert_false(g_variant_is_normal_form(dict));
    for (gsize k = 0; k < G_N_ELEMENTS(keys); k++)
      g_assert_null(ours[k]);
    return;
  }
  g_assert_true(g_variant_is_normal_form(dict));
  glib_lookup(dict, keys, glib, G_N_ELEMENTS(keys));
  for (gsize k = 0; k < G_N_ELEMENTS(keys); k++)
    g_assert_cmpstr(ours[k], ==, glib[k]);
}

/* A value GLib serialised: strings, a non-string, a key given twice. */
static GVariant *sample(gsize big) {
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
  g_variant_builder_add(&builder, "{sv}", "x",
                        g_variant_new_strv((const char *[]){"a", "b"}, 2));
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

/* An untrusted value of `size` octets (GLib checks them when asked). */
static GVariant *from_octets(const guint8 *data, gsize size) {
  guint8 *copy = g_memdup2(data, size);
  return g_variant_ref_sink(g_variant_new_from_data(
      G_VARIANT_TYPE_VARDICT, copy, size, FALSE, g_free, copy));
}

static void test_read(void) {
  gsize bigs[] = {3, 300, 70000};
  for (gsize b = 0; b < G_N_ELEMENTS(bigs); b++) {
    g_autoptr(GVariant) tree = sample(bigs[b]);
    check_read(tree); /* tree form: serialised in place, then read */
    gsize size = g_variant_get_size(tree);
    const guint8 *data = g_variant_get_data(tree);
    g_autoptr(GVariant) whole = from_octets(data, size);
    check_read(whole);
    if (bigs[b] > 300)
      continue; /* the prefixes and mutations of the small ones suffice */
    for (gsize cut = 0; cut < size; cut++) {
      g_autoptr(GVariant) prefix = from_octets(data, cut);
      check_read(prefix);
    }
    g_autofree guint8 *copy = g_memdup2(data, size);
    static const guint8 octets[] = {0x00, 0x01, 's', 'v', 0x7f, 0xff};
    for (gsize at = 0; at < size; at++)
      for (gsize o = 0; o < G_N_ELEMENTS(octets); o++) {
        guint8 kept = copy[at];
        copy[at] = octets[o];
        g_autoptr(GVariant) mutated = from_octets(copy, size);
        check_read(mutated);
        copy[at] = kept;
      }
  }
  /* What the writer writes reads back. */
  const char *keys[] = {"result", "reason", "header.d"};
  const char *values[] = {"fail", "why", "example.net"};
  g_autoptr(GVariant) ours =
      g_variant_ref_sink(dmarc_variant_new_strings(keys, values, 3));
  const char *read[3];
  g_assert_true(dmarc_variant_lookup_strings(ours, keys, read, 3));
  for (gsize k = 0; k < 3; k++)
    g_assert_cmpstr(read[k], ==, values[k]);
  /* Not an a{sv}: refused. */
  g_autoptr(GVariant) other = g_variant_ref_sink(g_variant_new_string("x"));
  g_assert_false(dmarc_variant_lookup_strings(other, keys, read, 3));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dmarc/variant/write", test_write);
  g_test_add_func("/dmarc/variant/read", test_read);
  return g_test_run();
}
