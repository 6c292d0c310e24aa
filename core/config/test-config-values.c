/* test-config-values.c - the value parsers, the SDK helpers on a bare
 * keyfile, and the schema table itself (defaults parse, are in range, and
 * every key is documented in doc/postilion.conf.5 and etc/postilion.conf).
 */
#include <string.h>

#include "config/config-private.h"

/* ------------------------------------------------------------------ */
/* Pure parsers                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *text;
  gboolean ok;
  guint64 value;
} NumberCase;

static void test_boolean(void) {
  static const NumberCase cases[] = {
      {"true", TRUE, 1},    {"TRUE", TRUE, 1}, {"yes", TRUE, 1},
      {" Yes ", TRUE, 1},   {"1", TRUE, 1},    {"false", TRUE, 0},
      {"No", TRUE, 0},      {"0", TRUE, 0},    {"", FALSE, 0},
      {"on", FALSE, 0},     {"2", FALSE, 0},   {"truth", FALSE, 0},
      {"yes no", FALSE, 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    gboolean value = 7;
    g_test_message("boolean \"%s\"", cases[i].text);
    g_assert_cmpint(pst_config_parse_boolean(cases[i].text, &value), ==,
                    cases[i].ok);
    if (cases[i].ok)
      g_assert_cmpint(value, ==, (gboolean)cases[i].value);
    else
      g_assert_cmpint(value, ==, 7);
  }
}

static void test_int(void) {
  static const struct {
    const char *text;
    gboolean ok;
    gint64 value;
  } cases[] = {
      {"0", TRUE, 0},
      {"1000", TRUE, 1000},
      {" 42 ", TRUE, 42},
      {"-5", TRUE, -5},
      {"+5", TRUE, 5},
      {"9223372036854775807", TRUE, G_MAXINT64},
      {"9223372036854775808", FALSE, 0},
      {"", FALSE, 0},
      {"lots", FALSE, 0},
      {"10k", FALSE, 0},
      {"1.5", FALSE, 0},
      {"0x10", FALSE, 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    gint64 value = 0;
    g_test_message("int \"%s\"", cases[i].text);
    g_assert_cmpint(pst_config_parse_int(cases[i].text, &value), ==,
                    cases[i].ok);
    if (cases[i].ok)
      g_assert_cmpint(value, ==, cases[i].value);
  }
}

static void test_duration(void) {
  static const NumberCase cases[] = {
      {"30", TRUE, 30000},
      {"30s", TRUE, 30000},
      {"500ms", TRUE, 500},
      {"5m", TRUE, 300000},
      {"2h", TRUE, 7200000},
      {"5d", TRUE, 432000000},
      {" 7 s ", TRUE, 7000},
      {"0", TRUE, 0},
      {"0ms", TRUE, 0},
      {"", FALSE, 0},
      {"s", FALSE, 0},
      {"5x", FALSE, 0},
      {"-1", FALSE, 0},
      {"1.5h", FALSE, 0},
      {"5M", FALSE, 0},
      {"5 min", FALSE, 0},
      {"1h30m", FALSE, 0},
      {"18446744073709551615", FALSE, 0},
      {"99999999999999999999", FALSE, 0},
      {"213503982335d", FALSE, 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    guint64 value = 0;
    g_test_message("duration \"%s\"", cases[i].text);
    g_assert_cmpint(pst_config_parse_duration(cases[i].text, &value), ==,
                    cases[i].ok);
    if (cases[i].ok)
      g_assert_cmpuint(value, ==, cases[i].value);
  }
}

static void test_size(void) {
  static const NumberCase cases[] = {
      {"1000", TRUE, 1000},
      {"10k", TRUE, 10240},
      {"10K", TRUE, 10240},
      {"35M", TRUE, 35 * 1024 * 1024},
      {"35m", TRUE, 35 * 1024 * 1024},
      {"35MB", TRUE, 35 * 1024 * 1024},
      {"35MiB", TRUE, 35 * 1024 * 1024},
      {"1G", TRUE, G_GUINT64_CONSTANT(1) << 30},
      {"2T", TRUE, G_GUINT64_CONSTANT(2) << 40},
      {" 4 k ", TRUE, 4096},
      {"512b", TRUE, 512},
      {"0", TRUE, 0},
      {"", FALSE, 0},
      {"k", FALSE, 0},
      {"1.5M", FALSE, 0},
      {"10 kilos", FALSE, 0},
      {"-1", FALSE, 0},
      {"10P", FALSE, 0},
      {"20000000T", FALSE, 0},
      {"35Mi", FALSE, 0},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    guint64 value = 0;
    g_test_message("size \"%s\"", cases[i].text);
    g_assert_cmpint(pst_config_parse_size(cases[i].text, &value), ==,
                    cases[i].ok);
    if (cases[i].ok)
      g_assert_cmpuint(value, ==, cases[i].value);
  }
}

static void test_list(void) {
  static const struct {
    const char *raw;
    char separator;
    const char *joined; /* items joined with '|', NULL = bad escape */
    const char *bad;
  } cases[] = {
      {"a; b;;c", ';', "a|b|c", NULL},
      {"  ", ';', "", NULL},
      {"", ';', "", NULL},
      {"one", ';', "one", NULL},
      {"x\\;y; z", ';', "x;y|z", NULL},
      {"a\\sb", ';', "a b", NULL},
      {"tab\\there", ';', "tab\there", NULL},
      {"back\\\\slash", ';', "back\\slash", NULL},
      {"a, b", ';', "a, b", NULL},
      {"\\q", ';', NULL, "\\q"},
      {"end\\", ';', NULL, "\\"},
      {" keep ; spaces ", '\0', " keep ; spaces ", NULL},
      {"", '\0', "", NULL},
      {"\\sbanner", '\0', " banner", NULL},
      {"C:\\dir", '\0', NULL, "\\d"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *bad = NULL;
    g_test_message("list \"%s\"", cases[i].raw);
    g_auto(GStrv) items =
        pst_config_parse_list(cases[i].raw, cases[i].separator, &bad);
    if (cases[i].joined == NULL) {
      g_assert_null(items);
      g_assert_cmpstr(bad, ==, cases[i].bad);
      continue;
    }
    g_assert_nonnull(items);
    g_autofree char *joined = g_strjoinv("|", items);
    g_assert_cmpstr(joined, ==, cases[i].joined);
  }
}

static void test_format(void) {
  static const struct {
    guint64 value;
    const char *duration;
    const char *size;
  } cases[] = {
      {0, "0ms", "0"},
      {500, "500ms", "500"},
      {1000, "1s", "1000"},
      {1024, "1024ms", "1k"},
      {30000, "30s", "30000"},
      {300000, "5m", "300000"},
      {7200000, "2h", "7200000"},
      {86400000, "1d", "84375k"},
      {35 * 1024 * 1024, "36700160ms", "35M"},
      {G_GUINT64_CONSTANT(1) << 30, "1073741824ms", "1G"},
      {G_GUINT64_CONSTANT(3) << 40, "3298534883328ms", "3T"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *duration = pst_config_format_duration(cases[i].value);
    g_autofree char *size = pst_config_format_size(cases[i].value);
    g_assert_cmpstr(duration, ==, cases[i].duration);
    g_assert_cmpstr(size, ==, cases[i].size);
  }
}

static void test_dns_name(void) {
  static const struct {
    const char *name;
    gboolean ok;
  } cases[] = {
      {"example.org", TRUE},
      {"EXAMPLE.org.", TRUE},
      {"localhost", TRUE},
      {"a-b.c", TRUE},
      {"xn--bcher-kva.de", TRUE},
      {"1.2.3.4", TRUE},
      {"", FALSE},
      {".", FALSE},
      {"a..b", FALSE},
      {".a", FALSE},
      {"-a.b", FALSE},
      {"a-.b", FALSE},
      {"a.b-", FALSE},
      {"under_score.org", FALSE},
      {"sp ace.org", FALSE},
      {"a,b", FALSE},
      {"b\xc3\xbc"
       "cher.de",
       FALSE},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
       FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("name \"%s\"", cases[i].name);
    g_assert_cmpint(pst_config_is_dns_name(cases[i].name), ==, cases[i].ok);
  }
}

static void test_address(void) {
  static const struct {
    const char *text;
    const char *host; /* NULL = refused */
    guint16 port;
    const char *problem;
  } cases[] = {
      {"127.0.0.1:2525", "127.0.0.1", 2525, NULL},
      {"0.0.0.0:25", "0.0.0.0", 25, NULL},
      {"[::1]:2525", "::1", 2525, NULL},
      {"[::]:587", "::", 587, NULL},
      {"[2001:DB8::1]:25", "2001:db8::1", 25, NULL},
      {" 10.0.0.1:65535 ", "10.0.0.1", 65535, NULL},
      {"127.0.0.1", NULL, 0, "port is missing"},
      {"127.0.0.1:", NULL, 0, "not a port"},
      {"127.0.0.1:0", NULL, 0, "not a port from 1 to 65535"},
      {"127.0.0.1:65536", NULL, 0, "not a port"},
      {"127.0.0.1:-1", NULL, 0, "not a port"},
      {"127.0.0.1:smtp", NULL, 0, "not a port"},
      {"localhost:25", NULL, 0, "host names are not resolved"},
      {"mx.example.org:25", NULL, 0, "host names are not resolved"},
      {"127.1:25", NULL, 0, "literal IP address"},
      {"::1:25", NULL, 0, "in brackets, [::1]:25"},
      {"[::1]", NULL, 0, "[ADDRESS]:PORT"},
      {"[::1:25", NULL, 0, "[ADDRESS]:PORT"},
      {"[127.0.0.1]:25", NULL, 0, "not an IPv6 address"},
      {"*:25", NULL, 0, "not an IP address"},
      {":25", NULL, 0, "not an IP address"},
      {"", NULL, 0, "port is missing"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *host = NULL;
    g_autofree char *problem = NULL;
    guint16 port = 0;
    g_test_message("address \"%s\"", cases[i].text);
    gboolean ok =
        pst_config_parse_address(cases[i].text, &host, &port, &problem);
    g_assert_cmpint(ok, ==, cases[i].host != NULL);
    if (ok) {
      g_assert_cmpstr(host, ==, cases[i].host);
      g_assert_cmpuint(port, ==, cases[i].port);
    } else {
      g_assert_nonnull(strstr(problem, cases[i].problem));
    }
  }
}

static void test_nameserver(void) {
  static const struct {
    const char *text;
    gboolean ok;
  } cases[] = {
      {"127.0.0.1", TRUE},         {"::1", TRUE},
      {"192.0.2.53@5353", TRUE},   {"::1@5353", TRUE},
      {"2001:db8::53@53", TRUE},   {"", FALSE},
      {"127.0.0.1@", FALSE},       {"127.0.0.1@0", FALSE},
      {"127.0.0.1@70000", FALSE},  {"ns1.example", FALSE},
      {"[::1]:53", FALSE},         {"127.0.0.1:53", FALSE},
      {"1.1.1.1, 8.8.8.8", FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *problem = NULL;
    g_test_message("nameserver \"%s\"", cases[i].text);
    g_assert_cmpint(pst_config_parse_nameserver(cases[i].text, &problem), ==,
                    cases[i].ok);
    g_assert_true(cases[i].ok == (problem == NULL));
  }
}

static void test_suggest(void) {
  static const char *const keys[] = {"max_recipients", "max_errors", "spool",
                                     "user", NULL};
  g_assert_cmpstr(pst_config_suggest("max_recipient", keys), ==,
                  "max_recipients");
  g_assert_cmpstr(pst_config_suggest("Max_Errors", keys), ==, "max_errors");
  g_assert_cmpstr(pst_config_suggest("spol", keys), ==, "spool");
  g_assert_null(pst_config_suggest("banana", keys));
  g_assert_null(pst_config_suggest("x", keys));
  g_assert_null(pst_config_suggest("anything", NULL));
}

/* ------------------------------------------------------------------ */
/* SDK helpers on a keyfile the loader did not make                    */
/* ------------------------------------------------------------------ */

static GKeyFile *keyfile_from(const char *text) {
  GKeyFile *keyfile = g_key_file_new();
  g_assert_true(
      g_key_file_load_from_data(keyfile, text, -1, G_KEY_FILE_NONE, NULL));
  return keyfile;
}

static const char sdk_text[] = "[plugin:demo]\n"
                               "name = Demo \\sPlugin  \n"
                               "flag = yes\n"
                               "count = 12\n"
                               "wait = 250ms\n"
                               "limit = 10k\n"
                               "items = a; b ;; c\n"
                               "bad_int = lots\n"
                               "bad_flag = maybe\n"
                               "bad_wait = 3 weeks\n"
                               "bad_size = big\n"
                               "bad_text = C:\\data\n"
                               "empty =\n";

static void test_sdk_good(void) {
  g_autoptr(GKeyFile) keyfile = keyfile_from(sdk_text);
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  g_autofree char *missing = NULL;
  g_autofree char *empty = NULL;
  g_auto(GStrv) items = NULL;
  g_auto(GStrv) no_items = NULL;
  gboolean flag = FALSE;
  gint64 count = 0;
  guint64 wait = 0, limit = 0;

  g_assert_true(pst_config_get_string(keyfile, "plugin:demo", "name", "x",
                                      &name, &error));
  g_assert_cmpstr(name, ==, "Demo  Plugin");
  g_assert_true(pst_config_get_string(keyfile, "plugin:demo", "nothing",
                                      "fallback", &missing, &error));
  g_assert_cmpstr(missing, ==, "fallback");
  g_assert_true(pst_config_get_string(keyfile, "plugin:demo", "empty", "x",
                                      &empty, &error));
  g_assert_cmpstr(empty, ==, "");
  g_assert_true(pst_config_get_boolean(keyfile, "plugin:demo", "flag", FALSE,
                                       &flag, &error));
  g_assert_true(flag);
  g_assert_true(pst_config_get_int(keyfile, "plugin:demo", "count", 0, 1, 20,
                                   &count, &error));
  g_assert_cmpint(count, ==, 12);
  g_assert_true(pst_config_get_duration(keyfile, "plugin:demo", "wait", 0,
                                        &wait, &error));
  g_assert_cmpuint(wait, ==, 250);
  g_assert_true(
      pst_config_get_size(keyfile, "plugin:demo", "limit", 0, &limit, &error));
  g_assert_cmpuint(limit, ==, 10240);
  g_assert_true(
      pst_config_get_list(keyfile, "plugin:demo", "items", &items, &error));
  g_assert_cmpuint(g_strv_length(items), ==, 3);
  g_assert_cmpstr(items[2], ==, "c");
  g_assert_true(pst_config_get_list(keyfile, "plugin:demo", "nothing",
                                    &no_items, &error));
  g_assert_null(no_items);
  g_assert_no_error(error);
}

static void test_sdk_absent_group(void) {
  g_autoptr(GKeyFile) keyfile = keyfile_from(sdk_text);
  g_autoptr(GError) error = NULL;
  gint64 count = 0;
  guint64 wait = 0;
  gboolean flag = FALSE;
  g_assert_true(pst_config_get_int(keyfile, "plugin:other", "count", 7, 0, 9,
                                   &count, &error));
  g_assert_cmpint(count, ==, 7);
  g_assert_true(pst_config_get_duration(keyfile, "plugin:other", "wait", 1500,
                                        &wait, &error));
  g_assert_cmpuint(wait, ==, 1500);
  g_assert_true(pst_config_get_boolean(keyfile, "plugin:other", "flag", TRUE,
                                       &flag, &error));
  g_assert_true(flag);
  g_assert_true(pst_config_check_keys(keyfile, "plugin:other", NULL, &error));
  g_assert_no_error(error);
}

static void test_sdk_bad(void) {
  g_autoptr(GKeyFile) keyfile = keyfile_from(sdk_text);
  struct {
    const char *key;
    const char *message;
  } cases[] = {
      {"bad_int", "[plugin:demo] bad_int = \"lots\": expected a whole number "
                  "from 1 to 20; fix the value or remove the key to use the "
                  "default (5)"},
      {"bad_flag", "[plugin:demo] bad_flag = \"maybe\": expected true or "
                   "false (also yes/no, 1/0); fix the value or remove the "
                   "key to use the default (false)"},
      {"bad_wait", "[plugin:demo] bad_wait = \"3 weeks\": expected a "
                   "duration: a whole number with a unit ms, s, m, h or d"},
      {"bad_size", "[plugin:demo] bad_size = \"big\": expected a size in "
                   "octets: a whole number, optionally with k, M, G or T"},
      {"bad_text", "[plugin:demo] bad_text = \"C:\\data\": expected text "
                   "where a backslash starts one of the escapes"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    gboolean flag = FALSE;
    gint64 number = 0;
    guint64 big = 0;
    gboolean ok = TRUE;
    const char *key = cases[i].key;
    if (strcmp(key, "bad_int") == 0)
      ok = pst_config_get_int(keyfile, "plugin:demo", key, 5, 1, 20, &number,
                              &error);
    else if (strcmp(key, "bad_flag") == 0)
      ok = pst_config_get_boolean(keyfile, "plugin:demo", key, FALSE, &flag,
                                  &error);
    else if (strcmp(key, "bad_wait") == 0)
      ok = pst_config_get_duration(keyfile, "plugin:demo", key, 1000, &big,
                                   &error);
    else if (strcmp(key, "bad_size") == 0)
      ok = pst_config_get_size(keyfile, "plugin:demo", key, 1000, &big, &error);
    else
      ok = pst_config_get_string(keyfile, "plugin:demo", key, NULL, &text,
                                 &error);
    g_assert_false(ok);
    g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_VALUE);
    g_test_message("%s", error->message);
    /* No origins for a keyfile the loader did not make: no location. */
    g_assert_true(g_str_has_prefix(error->message, "[plugin:demo] "));
    g_assert_nonnull(strstr(error->message, cases[i].message));
  }
}

static void test_sdk_count_range(void) {
  g_autoptr(GKeyFile) keyfile = keyfile_from(sdk_text);
  g_autoptr(GError) error = NULL;
  gint64 number = 0;
  g_assert_false(pst_config_get_int(keyfile, "plugin:demo", "count", 5, 1, 10,
                                    &number, &error));
  g_assert_cmpstr(error->message, ==,
                  "[plugin:demo] count = \"12\": expected a whole number "
                  "from 1 to 10; fix the value or remove the key to use the "
                  "default (5)");
}

static void test_sdk_check_keys(void) {
  static const char *const allowed[] = {
      "name",     "flag",    "count",    "wait",     "limit",
      "items",    "bad_int", "bad_flag", "bad_wait", "bad_size",
      "bad_text", "empty",   NULL};
  static const char *const too_few[] = {"name", NULL};
  g_autoptr(GKeyFile) keyfile = keyfile_from(sdk_text);
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_config_check_keys(keyfile, "plugin:demo", allowed, &error));
  g_assert_no_error(error);

  g_autoptr(GKeyFile) with_core = keyfile_from("[plugin:x]\npriority = 5\n"
                                               "timeout = 2s\non_error = "
                                               "accept\non_timeout = reject\n");
  g_assert_true(pst_config_check_keys(with_core, "plugin:x", NULL, &error));
  g_assert_no_error(error);

  g_assert_false(
      pst_config_check_keys(keyfile, "plugin:demo", too_few, &error));
  g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_UNKNOWN);
  g_assert_cmpstr(error->message, ==,
                  "[plugin:demo] flag: unknown key; expected one of: name, "
                  "enable, priority, timeout, on_timeout, on_error; fix the "
                  "name or remove the line");
  g_clear_error(&error);

  g_autoptr(GKeyFile) typo = keyfile_from("[plugin:x]\nnmae = 1\n");
  g_assert_false(pst_config_check_keys(typo, "plugin:x", too_few, &error));
  g_assert_nonnull(strstr(error->message, "(did you mean name?)"));
}

/* ------------------------------------------------------------------ */
/* The schema table                                                    */
/* ------------------------------------------------------------------ */

static void test_schema_rows(void) {
  for (const PstConfigKey *row = pst_config_keys; row->group; row++) {
    g_test_message("row [%s] %s", row->group, row->key);
    gboolean known_group = FALSE;
    for (const PstConfigGroup *kind = pst_config_groups; kind->pattern; kind++)
      known_group |= strcmp(kind->pattern, row->group) == 0;
    g_assert_true(known_group);
    g_assert_true(row->doc != NULL && row->doc[0] != '\0');
    g_assert_true(
        row->fallback != NULL || row->type == PST_CONFIG_TYPE_STRING ||
        row->type == PST_CONFIG_TYPE_LIST || row->type == PST_CONFIG_TYPE_INT);
    for (const PstConfigKey *other = row + 1; other->group; other++)
      g_assert_false(strcmp(other->group, row->group) == 0 &&
                     strcmp(other->key, row->key) == 0);
    gint64 number = 0;
    guint64 unsigned_number = 0;
    gboolean flag = FALSE;
    switch (row->type) {
    case PST_CONFIG_TYPE_INT:
      if (row->fallback == NULL)
        break;
      g_assert_true(pst_config_parse_int(row->fallback, &number));
      g_assert_cmpint(number, >=, row->min);
      g_assert_cmpint(number, <=, row->max);
      break;
    case PST_CONFIG_TYPE_DURATION:
      g_assert_true(pst_config_parse_duration(row->fallback, &unsigned_number));
      g_assert_cmpuint(unsigned_number, >=, row->min);
      g_assert_cmpuint(unsigned_number, <=, row->max);
      g_assert_cmpint(row->max, <=, G_MAXUINT);
      break;
    case PST_CONFIG_TYPE_SIZE:
      g_assert_true(pst_config_parse_size(row->fallback, &unsigned_number));
      g_assert_cmpuint(unsigned_number, >=, row->min);
      g_assert_cmpuint(unsigned_number, <=, row->max);
      break;
    case PST_CONFIG_TYPE_BOOLEAN:
      g_assert_true(pst_config_parse_boolean(row->fallback, &flag));
      break;
    case PST_CONFIG_TYPE_CHOICE:
      g_assert_nonnull(row->choices);
      g_assert_true(g_strv_contains(row->choices, row->fallback));
      break;
    case PST_CONFIG_TYPE_STRING:
    case PST_CONFIG_TYPE_LIST:
      break;
    }
  }
}

static char *read_source(const char *relative) {
  g_autofree char *path = g_build_filename(PST_TEST_SRCDIR, relative, NULL);
  char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  return text;
}

/* The text of a section: from `start` to the next line starting with
 * `next` (or the end). */
static char *section_of(const char *text, const char *start, const char *next) {
  const char *begin = strstr(text, start);
  g_assert_nonnull(begin);
  const char *end = strstr(begin + strlen(start), next);
  return end ? g_strndup(begin, end - begin) : g_strdup(begin);
}

static void test_schema_documented(void) {
  g_autofree char *man = read_source("doc/postilion.conf.5");
  g_autofree char *example = read_source("etc/postilion.conf");
  for (const PstConfigGroup *kind = pst_config_groups; kind->pattern; kind++) {
    g_autofree char *heading = g_strdup_printf("\n.SS \"%s\"\n", kind->shown);
    g_autofree char *man_section = section_of(man, heading, "\n.SS ");
    /* The example writes [listener:NAME] as [listener:smtp] etc. */
    gsize cut = strcspn(kind->shown, ":]");
    g_autofree char *prefix =
        g_strndup(kind->shown, cut + (kind->shown[cut] == ':'));
    g_autofree char *example_start = g_strdup_printf("\n%s", prefix);
    if (strstr(example, example_start) == NULL) {
      g_free(example_start);
      example_start = g_strdup_printf("\n#%s", prefix);
    }
    g_autofree char *example_section =
        section_of(example, example_start, "\n[");
    for (const PstConfigKey *row = pst_config_keys; row->group; row++) {
      if (strcmp(row->group, kind->pattern) != 0)
        continue;
      g_test_message("documenting [%s] %s", row->group, row->key);
      g_autofree char *man_entry = g_strdup_printf("\n.B %s\n", row->key);
      g_assert_nonnull(strstr(man_section, man_entry));
      g_autofree char *example_entry = g_strdup_printf("%s =", row->key);
      g_assert_nonnull(strstr(example_section, example_entry));
    }
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/config/values/boolean", test_boolean);
  g_test_add_func("/config/values/int", test_int);
  g_test_add_func("/config/values/duration", test_duration);
  g_test_add_func("/config/values/size", test_size);
  g_test_add_func("/config/values/list", test_list);
  g_test_add_func("/config/values/format", test_format);
  g_test_add_func("/config/values/dns-name", test_dns_name);
  g_test_add_func("/config/values/address", test_address);
  g_test_add_func("/config/values/nameserver", test_nameserver);
  g_test_add_func("/config/values/suggest", test_suggest);
  g_test_add_func("/config/sdk/good", test_sdk_good);
  g_test_add_func("/config/sdk/absent-group", test_sdk_absent_group);
  g_test_add_func("/config/sdk/bad", test_sdk_bad);
  g_test_add_func("/config/sdk/int-range", test_sdk_count_range);
  g_test_add_func("/config/sdk/check-keys", test_sdk_check_keys);
  g_test_add_func("/config/schema/rows", test_schema_rows);
  g_test_add_func("/config/schema/documented", test_schema_documented);
  return g_test_run();
}
