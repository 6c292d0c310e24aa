/* fuzz-auth-results.c - fuzzes the Authentication-Results readers and
 * writer.
 *
 * Input: a field value as a client could send it.  Checks that the
 * authserv-id reader never reads past the value and returns an id without
 * CR, LF or NUL; and that formatting stored results whose method, result,
 * reason and property come from the input gives a value whose lines are
 * all under 998 octets and contain only printable ASCII and TAB.  The
 * input's octets are also taken as a serialised a{sv} stored by a plugin
 * (any octets: GLib reads what is not in normal form its own way): the
 * field, read in place when the value is in normal form and through GLib
 * otherwise, must be the one its normal form gives; and the results
 * store's check of an auth.* value (pst_auth_results_value_has_result(),
 * also in place) must say what GLib's lookup of "result" says.
 */
#include <stdint.h>
#include <string.h>

#include "smtp/smtp-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *value) {
  g_auto(GStrv) lines = g_strsplit(value, "\r\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    g_assert_cmpuint(strlen(lines[i]), <, 998);
    for (const char *p = lines[i]; *p != '\0'; p++)
      g_assert_true((*p >= ' ' && *p < 0x7f) || *p == '\t');
  }
}

static char *format_stored(GVariant *stored) {
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&all, "{sv}", "auth.x", stored);
  g_autoptr(GVariant) results = g_variant_ref_sink(g_variant_builder_end(&all));
  return pst_auth_results_format("mx.example.org", results);
}

static void check_serialised(const uint8_t *data, size_t size) {
  gpointer copy = g_memdup2(data, size);
  g_autoptr(GVariant) stored = g_variant_ref_sink(g_variant_new_from_data(
      G_VARIANT_TYPE_VARDICT, copy, size, FALSE, g_free, copy));
  g_autoptr(GVariant) normal = g_variant_get_normal_form(stored);
  g_autofree char *as_stored = format_stored(stored);
  g_autofree char *as_normal = format_stored(normal);
  g_assert_cmpstr(as_stored, ==, as_normal);
  if (as_stored != NULL)
    check_value(as_stored);
  g_autoptr(GVariant) result =
      g_variant_lookup_value(stored, "result", G_VARIANT_TYPE_STRING);
  g_assert_cmpint(pst_auth_results_value_has_result(stored), ==,
                  result != NULL);
  g_autoptr(GVariant) normal_result =
      g_variant_lookup_value(normal, "result", G_VARIANT_TYPE_STRING);
  g_assert_cmpint(pst_auth_results_value_has_result(normal), ==,
                  normal_result != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autofree char *value = g_strndup((const char *)data, size);
  g_autofree char *id = pst_auth_results_authserv_id(value);
  if (id != NULL) {
    g_assert_null(strchr(id, '\r'));
    g_assert_null(strchr(id, '\n'));
    g_assert_cmpuint(strlen(id), <=, strlen(value));
  }
  /* The same bytes as every part a plugin could store. */
  g_auto(GStrv) parts = g_strsplit(value, "|", 4);
  guint n = g_strv_length(parts);
  GVariantBuilder result;
  g_variant_builder_init(&result, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&result, "{sv}", "result",
                        g_variant_new_string(n > 1 && g_utf8_validate(parts[1], -1, NULL) ? parts[1] : "pass"));
  if (n > 2 && g_utf8_validate(parts[2], -1, NULL))
    g_variant_builder_add(&result, "{sv}", "reason",
                          g_variant_new_string(parts[2]));
  if (n > 3 && g_utf8_validate(parts[3], -1, NULL))
    g_variant_builder_add(&result, "{sv}", "smtp.mailfrom",
                          g_variant_new_string(parts[3]));
  g_autofree char *key = g_strconcat(
      "auth.", n > 0 && g_utf8_validate(parts[0], -1, NULL) ? parts[0] : "x",
      NULL);
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&all, "{sv}", key, g_variant_builder_end(&result));
  g_autoptr(GVariant) results = g_variant_ref_sink(g_variant_builder_end(&all));
  g_autofree char *formatted =
      pst_auth_results_format("mx.example.org", results);
  if (formatted != NULL)
    check_value(formatted);
  check_serialised(data, size);
  return 0;
}
