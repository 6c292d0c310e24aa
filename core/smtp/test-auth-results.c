/* test-auth-results.c - Authentication-Results reading and writing. */
#include <string.h>

#include "smtp/smtp-parse.h"

static void test_authserv_id(void) {
  static const struct {
    const char *value;
    const char *id; /* NULL: none */
  } cases[] = {
      {"mx.example.org; spf=pass smtp.mailfrom=example.com", "mx.example.org"},
      {" mx.example.org 1; none", "mx.example.org"},
      {"MX.Example.ORG;none", "MX.Example.ORG"},
      {"\r\n\tmx.example.org;\r\n\tdkim=pass", "mx.example.org"},
      {"(c) mx.example.org; none", "mx.example.org"},
      {"(a (nested \\) comment) here) mx.example.org; none", "mx.example.org"},
      {"\"mx.example.org\"; none", "mx.example.org"},
      {"\"mx.\\\"odd\"; none", "mx.\"odd"},
      {"(unclosed mx.example.org; none", NULL},
      {"\"unclosed", NULL},
      {"", NULL},
      {"   ", NULL},
      {"; spf=pass", NULL},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *id = pst_auth_results_authserv_id(cases[i].value);
    g_assert_cmpstr(id, ==, cases[i].id);
  }
  g_assert_true(
      pst_auth_results_is_from("MX.example.org; none", "mx.example.org"));
  g_assert_false(
      pst_auth_results_is_from("mx.example.org.evil; none", "mx.example.org"));
  g_assert_false(pst_auth_results_is_from("(mx.example.org) other; none",
                                          "mx.example.org"));
}

static GVariant *result_new(const char *result, const char *reason,
                            const char *property, const char *value) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&builder, "{sv}", "result",
                        g_variant_new_string(result));
  if (reason != NULL)
    g_variant_builder_add(&builder, "{sv}", "reason",
                          g_variant_new_string(reason));
  if (property != NULL)
    g_variant_builder_add(&builder, "{sv}", property,
                          g_variant_new_string(value));
  return g_variant_builder_end(&builder);
}

static char *format_one(const char *method, GVariant *result) {
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_autofree char *key = g_strconcat("auth.", method, NULL);
  g_variant_builder_add(&all, "{sv}", key, result);
  g_variant_builder_add(&all, "{sv}", "spf.helo",
                        g_variant_new_string("not a method"));
  g_autoptr(GVariant) results = g_variant_ref_sink(g_variant_builder_end(&all));
  return pst_auth_results_format("mx.example.org", results);
}

static void test_format(void) {
  static const struct {
    const char *method, *result, *reason, *property, *value;
    const char *expected; /* NULL: nothing written */
  } cases[] = {
      {"spf", "pass", NULL, "smtp.mailfrom", "example.com",
       "mx.example.org;\r\n\tspf=pass smtp.mailfrom=example.com"},
      {"spf", "fail", "not permitted", "smtp.mailfrom", "bob@example.com",
       "mx.example.org;\r\n\tspf=fail reason=\"not permitted\" "
       "smtp.mailfrom=bob@example.com"},
      {"dkim", "pass", NULL, "header.d", "a b",
       "mx.example.org;\r\n\tdkim=pass header.d=\"a b\""},
      {"dkim", "pass", "say \"hi\"\r\nX-Evil: 1", NULL, NULL,
       "mx.example.org;\r\n\tdkim=pass reason=\"say \\\"hi\\\"X-Evil: 1\""},
      {"spf", "pass", NULL, "smtp.mailfrom", "x\"y;z",
       "mx.example.org;\r\n\tspf=pass smtp.mailfrom=\"x\\\"y;z\""},
      /* Not RFC 8601 syntax: left out. */
      {"spf", "pass ed", NULL, NULL, NULL, NULL},
      {"sp f", "pass", NULL, NULL, NULL, NULL},
      {"spf", "pass", NULL, "mailfrom", "example.com",
       "mx.example.org;\r\n\tspf=pass"},
      {"spf", "pass", NULL, "smtp.mail.from", "example.com",
       "mx.example.org;\r\n\tspf=pass"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *value = format_one(
        cases[i].method, result_new(cases[i].result, cases[i].reason,
                                    cases[i].property, cases[i].value));
    g_assert_cmpstr(value, ==, cases[i].expected);
  }
}

static void test_format_order_and_limits(void) {
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_autofree char *long_reason = g_strnfill(5000, '"');
  g_autofree char *long_value = g_strnfill(5000, 'v');
  g_variant_builder_add(&all, "{sv}", "auth.zzz",
                        result_new("pass", NULL, NULL, NULL));
  g_variant_builder_add(&all, "{sv}", "auth.dmarc",
                        result_new("pass", NULL, NULL, NULL));
  g_variant_builder_add(
      &all, "{sv}", "auth.dkim",
      result_new("fail", long_reason, "header.d", long_value));
  g_variant_builder_add(&all, "{sv}", "auth.spf",
                        result_new("pass", NULL, NULL, NULL));
  g_variant_builder_add(&all, "{sv}", "auth.broken",
                        g_variant_new_string("no result"));
  g_autoptr(GVariant) results = g_variant_ref_sink(g_variant_builder_end(&all));
  g_autofree char *value = pst_auth_results_format("mx.example.org", results);
  g_assert_nonnull(value);
  const char *spf = strstr(value, "spf=pass");
  const char *dkim = strstr(value, "dkim=fail");
  const char *dmarc = strstr(value, "dmarc=pass");
  const char *zzz = strstr(value, "zzz=pass");
  g_assert_true(spf != NULL && spf < dkim && dkim < dmarc && dmarc < zzz);
  g_assert_null(strstr(value, "broken"));
  g_auto(GStrv) lines = g_strsplit(value, "\r\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    g_assert_cmpuint(strlen(lines[i]), <, 998);

  g_autoptr(GVariant) empty =
      g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
  g_assert_null(pst_auth_results_format("mx.example.org", empty));
  g_assert_null(pst_auth_results_format("mx.example.org", NULL));
}

/* A list under one method (pst_result_append()): one resinfo per element,
 * in order, elements without a result left out, at most 50. */
static void test_format_list(void) {
  GVariantBuilder list;
  g_variant_builder_init(&list, G_VARIANT_TYPE("aa{sv}"));
  g_variant_builder_add_value(
      &list, result_new("pass", NULL, "header.d", "example.org"));
  g_variant_builder_add_value(
      &list, g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
  g_variant_builder_add_value(
      &list, result_new("fail", "body hash", "header.d", "example.net"));
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&all, "{sv}", "auth.dkim",
                        g_variant_builder_end(&list));
  g_autoptr(GVariant) results = g_variant_ref_sink(g_variant_builder_end(&all));
  g_autofree char *value = pst_auth_results_format("mx.example.org", results);
  g_assert_cmpstr(value, ==,
                  "mx.example.org;\r\n\tdkim=pass header.d=example.org;"
                  "\r\n\tdkim=fail reason=\"body hash\" header.d=example.net");

  g_variant_builder_init(&list, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < 120; i++)
    g_variant_builder_add_value(&list, result_new("neutral", NULL, NULL, NULL));
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&all, "{sv}", "auth.dkim",
                        g_variant_builder_end(&list));
  g_autoptr(GVariant) many = g_variant_ref_sink(g_variant_builder_end(&all));
  g_autofree char *capped = pst_auth_results_format("mx.example.org", many);
  guint count = 0;
  for (const char *p = capped; (p = strstr(p, "dkim=neutral")) != NULL; p++)
    count++;
  g_assert_cmpuint(count, ==, 50);
}

/* Results covering what the renderer does: the order of methods, a list,
 * elements and methods left out, quoting and escaping, control and
 * non-ASCII octets dropped, the reason and value limits, folding, a first
 * "result" that wins, properties that are not strings; in GVariant's tree
 * form or serialised. */
static GVariant *golden_results(gboolean serialised) {
  GVariantBuilder dkim;
  g_variant_builder_init(&dkim, G_VARIANT_TYPE("aa{sv}"));
  for (guint i = 0; i < 3; i++) {
    GVariantBuilder one;
    g_variant_builder_init(&one, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_add(
        &one, "{sv}", "header.d",
        g_variant_new_string(i == 1 ? "ex\"ample.org" : "example.org"));
    g_variant_builder_add(&one, "{sv}", "result",
                          g_variant_new_string(i == 2 ? "bad result" : "pass"));
    g_variant_builder_add(&one, "{sv}", "header.s",
                          g_variant_new_string("sel 1"));
    g_variant_builder_add(&one, "{sv}", "reason", g_variant_new_string(""));
    g_variant_builder_add_value(&dkim, g_variant_builder_end(&one));
  }
  g_autofree char *long_reason = g_strnfill(950, 'r');
  long_reason[10] = '"';
  long_reason[20] = '\\';
  long_reason[30] = '\x01';
  long_reason[40] = (char)0xc3;
  long_reason[41] = (char)0xa9;
  g_autofree char *long_value = g_strnfill(300, 'v');
  long_value[5] = '\t';
  long_value[255] = '\\';
  long_value[256] = '"';
  GVariantBuilder spf;
  g_variant_builder_init(&spf, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&spf, "{sv}", "result",
                        g_variant_new_string("softfail"));
  g_variant_builder_add(&spf, "{sv}", "reason",
                        g_variant_new_string(long_reason));
  g_variant_builder_add(&spf, "{sv}", "smtp.mailfrom",
                        g_variant_new_string("user@example.com"));
  g_variant_builder_add(&spf, "{sv}", "smtp.helo",
                        g_variant_new_string(long_value));
  g_variant_builder_add(&spf, "{sv}", "policy.x", g_variant_new_uint32(3));
  g_variant_builder_add(&spf, "{sv}", "bad..name", g_variant_new_string("x"));
  g_variant_builder_add(&spf, "{sv}", "smtp.a", g_variant_new_string(""));
  g_variant_builder_add(&spf, "{sv}", "smtp.b", g_variant_new_string("a;b"));
  g_variant_builder_add(&spf, "{sv}", "smtp.c",
                        g_variant_new_string(long_value + 40));
  g_variant_builder_add(&spf, "{sv}", "smtp.d",
                        g_variant_new_string(long_value + 2));
  g_variant_builder_add(&spf, "{sv}", "result", g_variant_new_string("pass"));
  GVariantBuilder all;
  g_variant_builder_init(&all, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&all, "{sv}", "auth.x-local",
                        g_variant_new_parsed("{'result': <'none'>}"));
  g_variant_builder_add(&all, "{sv}", "auth.dkim",
                        g_variant_builder_end(&dkim));
  g_variant_builder_add(&all, "{sv}", "auth.spf", g_variant_builder_end(&spf));
  g_variant_builder_add(
      &all, "{sv}", "auth.arc",
      g_variant_new_parsed("{'result': <'fail'>, 'reason': <'a\\\\b'>}"));
  g_variant_builder_add(&all, "{sv}", "spf.helo", g_variant_new_string("x"));
  g_variant_builder_add(&all, "{sv}", "auth.bad method",
                        g_variant_new_parsed("{'result': <'pass'>}"));
  GVariant *v = g_variant_ref_sink(g_variant_builder_end(&all));
  if (serialised) {
    GVariant *s = g_variant_new_from_bytes(
        G_VARIANT_TYPE_VARDICT, g_variant_get_data_as_bytes(v), TRUE);
    g_variant_unref(v);
    v = g_variant_ref_sink(s);
  }
  return v;
}

/* The rendering of golden_results(), byte for byte as the renderer of
 * round 5 wrote it (before it read the stores directly). */
static const char golden_field[] =
    "mx.example.org;\r\n"
    "\tspf=softfail reason=\"rrrrrrrrrr\\\"rrrrrrrrr\\\\rrrrrrrrrrrrrrr"
    "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
    "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
    "rrrrrrrrrrrrrrrrrrrrrrrrrrrrr\" smtp.mailfrom=user@example.com smt"
    "p.helo=\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\\"
    "\\\" smtp.a=\"\" smtp.b=\"a;b\" smtp.c=\"vvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\\\\\\\""
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"\r\n"
    "\tsmtp.d=\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\\"
    "\\\\\"v\";\r\n"
    "\tdkim=pass header.d=example.org header.s=\"sel 1\";\r\n"
    "\tdkim=pass header.d=\"ex\\\"ample.org\" header.s=\"sel 1\";\r\n"
    "\tarc=fail reason=\"a\\\\b\";\r\n"
    "\tx-local=none";

static void test_format_golden(void) {
  for (int serialised = 0; serialised < 2; serialised++) {
    g_autoptr(GVariant) results = golden_results(serialised);
    g_autofree char *value = pst_auth_results_format("mx.example.org", results);
    g_assert_cmpstr(value, ==, golden_field);
  }
  /* The same through pst_auth_results_format_methods(), in another order
   * and without the entries that are no auth.* result. */
  g_autoptr(GVariant) results = golden_results(FALSE);
  PstAuthResult methods[8];
  guint count = 0;
  gsize n = g_variant_n_children(results);
  GVariant *values[8];
  for (gsize i = n; i > 0; i--) {
    const char *key;
    g_autoptr(GVariant) value = NULL;
    g_variant_get_child(results, i - 1, "{&sv}", &key, &value);
    if (!g_str_has_prefix(key, "auth."))
      continue;
    values[count] = g_steal_pointer(&value);
    methods[count].method = key + 5;
    methods[count].result = values[count];
    count++;
  }
  g_autofree char *value =
      pst_auth_results_format_methods("mx.example.org", methods, count);
  g_assert_cmpstr(value, ==, golden_field);
  for (guint i = 0; i < count; i++)
    g_variant_unref(values[i]);
  g_assert_null(pst_auth_results_format_methods("mx.example.org", methods, 0));
}

/* A value whose octets are not in normal form (a padding octet set) is
 * read through GLib's child values, and renders as its normal form
 * would. */
static void test_format_not_normal(void) {
  g_autoptr(GVariant) normal = g_variant_ref_sink(
      result_new("pass", "why not", "smtp.mailfrom", "a@example.com"));
  gsize size = g_variant_get_size(normal);
  g_autofree guint8 *octets = g_memdup2(g_variant_get_data(normal), size);
  /* "result\0" is 7 octets: the 8th pads the entry's value to 8. */
  g_assert_cmpuint(octets[7], ==, 0);
  octets[7] = 'X';
  GVariant *odd = g_variant_new_from_data(G_VARIANT_TYPE_VARDICT, octets, size,
                                          FALSE, NULL, NULL);
  g_assert_false(g_variant_is_normal_form(odd));
  g_autofree char *expected = format_one("spf", normal);
  g_autofree char *value = format_one("spf", odd);
  g_assert_cmpstr(value, ==, expected);
  g_assert_cmpstr(value, ==,
                  "mx.example.org;\r\n\tspf=pass reason=\"why not\" "
                  "smtp.mailfrom=a@example.com");
}

/* What the results store asked GLib before: the first "result" entry,
 * holding a string. */
static gboolean reference_has_result(GVariant *value) {
  if (!g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT))
    return FALSE;
  g_autoptr(GVariant) result =
      g_variant_lookup_value(value, "result", G_VARIANT_TYPE_STRING);
  return result != NULL;
}

/* Each value as GLib built it (a tree), as octets read back (serialised)
 * and with a padding octet set (not normal form). */
static void assert_has_result_like_glib(GVariant *floating) {
  g_autoptr(GVariant) tree = g_variant_ref_sink(floating);
  gboolean expected = reference_has_result(tree);
  g_assert_cmpint(pst_auth_results_value_has_result(tree), ==, expected);
  gsize size = g_variant_get_size(tree);
  g_autofree guint8 *octets = g_memdup2(g_variant_get_data(tree), MAX(size, 1));
  g_autoptr(GVariant) serialised = g_variant_ref_sink(g_variant_new_from_data(
      g_variant_get_type(tree), octets, size, FALSE, NULL, NULL));
  g_assert_cmpint(pst_auth_results_value_has_result(serialised), ==, expected);
  g_autofree guint8 *odd_octets = g_memdup2(octets, MAX(size, 1));
  for (gsize i = 1; i < size; i++)
    if (odd_octets[i] == 0 && odd_octets[i - 1] == 0) {
      odd_octets[i] = 'X';
      break;
    }
  g_autoptr(GVariant) odd = g_variant_ref_sink(g_variant_new_from_data(
      g_variant_get_type(tree), odd_octets, size, FALSE, NULL, NULL));
  g_assert_cmpint(pst_auth_results_value_has_result(odd), ==,
                  reference_has_result(odd));
}

static GVariant *dict_of(const char *key1, GVariant *value1, const char *key2,
                         GVariant *value2) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  if (key1 != NULL)
    g_variant_builder_add(&builder, "{sv}", key1, value1);
  if (key2 != NULL)
    g_variant_builder_add(&builder, "{sv}", key2, value2);
  return g_variant_builder_end(&builder);
}

static void test_value_has_result(void) {
  assert_has_result_like_glib(
      result_new("pass", "why not", "smtp.mailfrom", "a@example.com"));
  assert_has_result_like_glib(dict_of(NULL, NULL, NULL, NULL));
  assert_has_result_like_glib(
      dict_of("reason", g_variant_new_string("x"), NULL, NULL));
  assert_has_result_like_glib(
      dict_of("result", g_variant_new_string(""), NULL, NULL));
  assert_has_result_like_glib(
      dict_of("result", g_variant_new_int32(1), NULL, NULL));
  /* The first "result" decides, as g_variant_lookup_value() reads. */
  assert_has_result_like_glib(dict_of("result", g_variant_new_int32(1),
                                      "result", g_variant_new_string("pass")));
  assert_has_result_like_glib(dict_of("result", g_variant_new_string("pass"),
                                      "result", g_variant_new_int32(1)));
  assert_has_result_like_glib(dict_of(
      "results", g_variant_new_string("pass"), "resul",
      g_variant_new_string("pass")));
  const char *strv[] = {"pass", NULL};
  assert_has_result_like_glib(
      dict_of("result", g_variant_new_strv(strv, -1), NULL, NULL));
  assert_has_result_like_glib(
      dict_of("result", g_variant_new_object_path("/s"), NULL, NULL));
  assert_has_result_like_glib(g_variant_new_string("result"));
  g_autofree char *long_reason = g_strnfill(300, 'r');
  assert_has_result_like_glib(dict_of("reason",
                                      g_variant_new_string(long_reason),
                                      "result", g_variant_new_string("fail")));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/smtp/auth-results/authserv-id", test_authserv_id);
  g_test_add_func("/smtp/auth-results/format", test_format);
  g_test_add_func("/smtp/auth-results/format-order-limits",
                  test_format_order_and_limits);
  g_test_add_func("/smtp/auth-results/format-list", test_format_list);
  g_test_add_func("/smtp/auth-results/format-golden", test_format_golden);
  g_test_add_func("/smtp/auth-results/format-not-normal",
                  test_format_not_normal);
  g_test_add_func("/smtp/auth-results/value-has-result",
                  test_value_has_result);
  return g_test_run();
}
