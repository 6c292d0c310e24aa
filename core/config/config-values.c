/* config-values.c - the forms a configuration value may take, and the
 * readers that fetch, check and explain them.
 *
 * The pure parsers (pst_config_parse_*) turn one value's text into a
 * number, a boolean or a list and know nothing of keyfiles; they are what
 * the unit tests hammer.  The readers (pst_config_read_*) fetch a key from
 * a GKeyFile, fall back to a default when it is absent, parse and
 * range-check it, and on failure set the one message format every bad
 * value gets (pst_config_set_value_error):
 *
 *   FILE:LINE: [GROUP] KEY = "VALUE": expected ...; fix the value or remove
 *   the key to use the default (DEFAULT)
 *
 * The SDK helpers (config-sdk.c) are these readers with the origins looked
 * up from the registry; the core reads its own keys through the same
 * readers (via config-schema.c), so both give the same messages.
 *
 * Lists: ';' separates items (the GLib keyfile convention), "\;" is a
 * literal ';', items are trimmed and empty ones dropped.  ',' is not a
 * separator: values such as regular expressions or reply texts may hold
 * commas; the core's own list checks point at ';' when an item has one.
 */
#include <string.h>

#include "config/config-private.h"

/* ------------------------------------------------------------------ */
/* Pure parsers                                                        */
/* ------------------------------------------------------------------ */

gboolean pst_config_parse_boolean(const char *text, gboolean *value_r) {
  static const char *const words_true[] = {"true", "yes", "1", NULL};
  static const char *const words_false[] = {"false", "no", "0", NULL};
  g_autofree char *word = g_strstrip(g_strdup(text));
  for (guint i = 0; words_true[i] != NULL; i++) {
    if (g_ascii_strcasecmp(word, words_true[i]) == 0) {
      *value_r = TRUE;
      return TRUE;
    }
    if (g_ascii_strcasecmp(word, words_false[i]) == 0) {
      *value_r = FALSE;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean pst_config_parse_int(const char *text, gint64 *value_r) {
  g_autofree char *number = g_strstrip(g_strdup(text));
  return g_ascii_string_to_signed(number, 10, G_MININT64, G_MAXINT64, value_r,
                                  NULL);
}

/* Reads the leading decimal digits of `p` into `value_r`; the end of the
 * digits, or NULL when there are none or they overflow. */
static const char *parse_digits(const char *p, guint64 *value_r) {
  guint64 value = 0;
  const char *start = p;
  for (; g_ascii_isdigit(*p); p++) {
    guint digit = *p - '0';
    if (value > (G_MAXUINT64 - digit) / 10)
      return NULL;
    value = value * 10 + digit;
  }
  if (p == start)
    return NULL;
  *value_r = value;
  return p;
}

/* number * unit, or FALSE on overflow. */
static gboolean multiply(guint64 number, guint64 unit, guint64 *value_r) {
  if (unit != 0 && number > G_MAXUINT64 / unit)
    return FALSE;
  *value_r = number * unit;
  return TRUE;
}

gboolean pst_config_parse_duration(const char *text, guint64 *value_ms_r) {
  static const struct {
    const char *suffix;
    guint64 ms;
  } units[] = {
      {"", 1000},   {"ms", 1},          {"s", 1000},
      {"m", 60000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
  };
  g_autofree char *copy = g_strstrip(g_strdup(text));
  guint64 number = 0;
  const char *unit = parse_digits(copy, &number);
  if (unit == NULL)
    return FALSE;
  while (*unit == ' ' || *unit == '\t')
    unit++;
  for (guint i = 0; i < G_N_ELEMENTS(units); i++)
    if (strcmp(unit, units[i].suffix) == 0)
      return multiply(number, units[i].ms, value_ms_r);
  return FALSE;
}

gboolean pst_config_parse_size(const char *text, guint64 *value_r) {
  static const char letters[] = "kmgt";
  g_autofree char *copy = g_strstrip(g_strdup(text));
  guint64 number = 0, unit_size = 1;
  const char *unit = parse_digits(copy, &number);
  if (unit == NULL)
    return FALSE;
  while (*unit == ' ' || *unit == '\t')
    unit++;
  const char *letter = *unit ? strchr(letters, g_ascii_tolower(*unit)) : NULL;
  if (letter != NULL) {
    unit_size = (guint64)1 << (10 * (letter - letters + 1));
    unit++;
    /* "35M", "35MB" and "35MiB" all mean 35 * 1024 * 1024. */
    if (g_ascii_tolower(unit[0]) == 'i' && g_ascii_tolower(unit[1]) == 'b')
      unit += 2;
  }
  if (g_ascii_tolower(*unit) == 'b')
    unit++;
  if (*unit != '\0')
    return FALSE;
  return multiply(number, unit_size, value_r);
}

/* Appends the character an escape stands for; FALSE for an unknown one. */
static gboolean unescape_one(char c, GString *out) {
  static const char from[] = "sntr\\;";
  static const char to[] = " \n\t\r\\;";
  const char *found = c != '\0' ? strchr(from, c) : NULL;
  if (found == NULL)
    return FALSE;
  g_string_append_c(out, to[found - from]);
  return TRUE;
}

/* Ends the current item: trimmed, kept unless empty (lists). */
static void list_flush(GPtrArray *items, GString *item, char separator) {
  g_autofree char *text = g_strndup(item->str, item->len);
  g_string_truncate(item, 0);
  if (separator != '\0')
    g_strstrip(text);
  if (separator == '\0' || text[0] != '\0')
    g_ptr_array_add(items, g_steal_pointer(&text));
}

char **pst_config_parse_list(const char *raw, char separator,
                             char **bad_escape_r) {
  g_autoptr(GPtrArray) items = g_ptr_array_new_null_terminated(4, g_free, TRUE);
  g_autoptr(GString) item = g_string_new(NULL);
  for (const char *p = raw; *p != '\0'; p++) {
    if (*p == '\\') {
      if (!unescape_one(p[1], item)) {
        *bad_escape_r = g_strndup(p, p[1] != '\0' ? 2 : 1);
        return NULL;
      }
      p++;
    } else if (separator != '\0' && *p == separator) {
      list_flush(items, item, separator);
    } else {
      g_string_append_c(item, *p);
    }
  }
  list_flush(items, item, separator);
  return (char **)g_ptr_array_free(g_steal_pointer(&items), FALSE);
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */
/* ------------------------------------------------------------------ */

char *pst_config_format_duration(guint64 ms) {
  static const struct {
    const char *suffix;
    guint64 ms;
  } units[] = {
      {"d", 24 * 3600 * 1000},
      {"h", 3600 * 1000},
      {"m", 60000},
      {"s", 1000},
  };
  for (guint i = 0; i < G_N_ELEMENTS(units) && ms != 0; i++)
    if (ms % units[i].ms == 0)
      return g_strdup_printf("%" G_GUINT64_FORMAT "%s", ms / units[i].ms,
                             units[i].suffix);
  return g_strdup_printf("%" G_GUINT64_FORMAT "ms", ms);
}

char *pst_config_format_size(guint64 size) {
  static const char letters[] = "TGMk";
  for (guint i = 0; i < 4 && size != 0; i++) {
    guint64 unit = (guint64)1 << (10 * (4 - i));
    if (size % unit == 0)
      return g_strdup_printf("%" G_GUINT64_FORMAT "%c", size / unit,
                             letters[i]);
  }
  return g_strdup_printf("%" G_GUINT64_FORMAT, size);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/* The value as shown in a message: valid UTF-8, at most 80 characters. */
static char *shown_value(const char *raw) {
  g_autofree char *valid = g_utf8_make_valid(raw, -1);
  if (g_utf8_strlen(valid, -1) <= 80)
    return g_steal_pointer(&valid);
  g_autofree char *start = g_utf8_substring(valid, 0, 77);
  return g_strconcat(start, "...", NULL);
}

void pst_config_set_value_error(GError **error, const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *raw, const char *expected,
                                const char *shown_default) {
  g_autofree char *where = pst_config_origins_describe(origins, group, key);
  g_autofree char *value = shown_value(raw);
  g_autofree char *fix =
      shown_default != NULL
          ? g_strdup_printf("fix the value or remove the key to use the "
                            "default (%s)",
                            shown_default[0] != '\0' ? shown_default : "empty")
          : g_strdup("fix the value");
  g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_VALUE,
              "%s[%s] %s = \"%s\": expected %s; %s", where, group, key, value,
              expected, fix);
}

gboolean pst_config_get_raw(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, const char *key, char **raw_r,
                            GError **error) {
  g_autofree char *raw = g_key_file_get_value(keyfile, group, key, NULL);
  *raw_r = NULL;
  if (raw == NULL)
    return TRUE;
  if (!g_utf8_validate(raw, -1, NULL)) {
    pst_config_set_value_error(error, origins, group, key, raw,
                               "UTF-8 text (the value has bytes that are "
                               "not UTF-8)",
                               NULL);
    return FALSE;
  }
  *raw_r = g_steal_pointer(&raw);
  return TRUE;
}

static const char escape_help[] =
    "text where a backslash starts one of the escapes \\s \\n \\t \\r \\; "
    "\\\\ (write \\\\ for a backslash)";

/* "from 1 to 100" / "of at least 1" / "" for the range [min, max] of a
 * type whose full range is [lowest, highest]. */
static char *range_text(const char *min, const char *max, gboolean has_min,
                        gboolean has_max) {
  if (has_min && has_max)
    return g_strdup_printf(" from %s to %s", min, max);
  if (has_min)
    return g_strdup_printf(" of at least %s", min);
  if (has_max)
    return g_strdup_printf(" of at most %s", max);
  return g_strdup("");
}

/* ------------------------------------------------------------------ */
/* Typed readers                                                       */
/* ------------------------------------------------------------------ */

gboolean pst_config_read_string(GKeyFile *keyfile,
                                const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *fallback, const char *shown_default,
                                char **value_r, GError **error) {
  g_autofree char *raw = NULL;
  g_autofree char *bad = NULL;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_r = g_strdup(fallback);
    return TRUE;
  }
  /* GLib keeps trailing blanks; they are never meant ("\s" keeps one). */
  g_auto(GStrv) parts = pst_config_parse_list(g_strchomp(raw), '\0', &bad);
  if (parts == NULL) {
    g_autofree char *expected =
        g_strdup_printf("%s; \"%s\" is not one", escape_help, bad);
    pst_config_set_value_error(error, origins, group, key, raw, expected,
                               shown_default ? shown_default : fallback);
    return FALSE;
  }
  *value_r = g_strdup(parts[0]);
  return TRUE;
}

gboolean pst_config_read_boolean(GKeyFile *keyfile,
                                 const PstConfigOrigins *origins,
                                 const char *group, const char *key,
                                 gboolean fallback, gboolean *value_r,
                                 GError **error) {
  g_autofree char *raw = NULL;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_r = fallback;
    return TRUE;
  }
  if (pst_config_parse_boolean(raw, value_r))
    return TRUE;
  pst_config_set_value_error(error, origins, group, key, raw,
                             "true or false (also yes/no, 1/0)",
                             fallback ? "true" : "false");
  return FALSE;
}

gboolean pst_config_read_int(GKeyFile *keyfile, const PstConfigOrigins *origins,
                             const char *group, const char *key,
                             gint64 fallback, gint64 min, gint64 max,
                             const char *shown_default, gint64 *value_r,
                             GError **error) {
  g_autofree char *raw = NULL;
  gint64 value = 0;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_r = fallback;
    return TRUE;
  }
  if (pst_config_parse_int(raw, &value) && value >= min && value <= max) {
    *value_r = value;
    return TRUE;
  }
  g_autofree char *min_text = g_strdup_printf("%" G_GINT64_FORMAT, min);
  g_autofree char *max_text = g_strdup_printf("%" G_GINT64_FORMAT, max);
  g_autofree char *range =
      range_text(min_text, max_text, min != G_MININT64, max != G_MAXINT64);
  g_autofree char *expected = g_strdup_printf("a whole number%s", range);
  g_autofree char *fallback_text =
      g_strdup_printf("%" G_GINT64_FORMAT, fallback);
  pst_config_set_value_error(error, origins, group, key, raw, expected,
                             shown_default ? shown_default : fallback_text);
  return FALSE;
}

gboolean pst_config_read_duration(GKeyFile *keyfile,
                                  const PstConfigOrigins *origins,
                                  const char *group, const char *key,
                                  guint64 fallback_ms, guint64 min_ms,
                                  guint64 max_ms, guint64 *value_ms_r,
                                  GError **error) {
  g_autofree char *raw = NULL;
  guint64 value = 0;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_ms_r = fallback_ms;
    return TRUE;
  }
  if (pst_config_parse_duration(raw, &value) && value >= min_ms &&
      value <= max_ms) {
    *value_ms_r = value;
    return TRUE;
  }
  g_autofree char *min_text = pst_config_format_duration(min_ms);
  g_autofree char *max_text = pst_config_format_duration(max_ms);
  g_autofree char *range =
      range_text(min_text, max_text, min_ms != 0, max_ms != G_MAXUINT64);
  g_autofree char *expected = g_strdup_printf(
      "a duration%s: a whole number with a unit ms, s, m, h or d (30s, "
      "500ms, 5m, 2h, 1d; no unit means seconds)",
      range);
  g_autofree char *fallback_text = pst_config_format_duration(fallback_ms);
  pst_config_set_value_error(error, origins, group, key, raw, expected,
                             fallback_text);
  return FALSE;
}

gboolean pst_config_read_size(GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              guint64 fallback, guint64 min, guint64 max,
                              guint64 *value_r, GError **error) {
  g_autofree char *raw = NULL;
  guint64 value = 0;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_r = fallback;
    return TRUE;
  }
  if (pst_config_parse_size(raw, &value) && value >= min && value <= max) {
    *value_r = value;
    return TRUE;
  }
  g_autofree char *min_text = pst_config_format_size(min);
  g_autofree char *max_text = pst_config_format_size(max);
  g_autofree char *range =
      range_text(min_text, max_text, min != 0, max != G_MAXUINT64);
  g_autofree char *expected = g_strdup_printf(
      "a size in octets%s: a whole number, optionally with k, M, G or T "
      "(powers of 1024: 1000, 10k, 35M, 1G)",
      range);
  g_autofree char *fallback_text = pst_config_format_size(fallback);
  pst_config_set_value_error(error, origins, group, key, raw, expected,
                             fallback_text);
  return FALSE;
}

gboolean pst_config_read_choice(GKeyFile *keyfile,
                                const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *const *choices, guint fallback,
                                guint *value_r, GError **error) {
  g_autofree char *raw = NULL;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL) {
    *value_r = fallback;
    return TRUE;
  }
  g_strstrip(raw);
  for (guint i = 0; choices[i] != NULL; i++) {
    if (g_ascii_strcasecmp(raw, choices[i]) == 0) {
      *value_r = i;
      return TRUE;
    }
  }
  g_autofree char *words = g_strjoinv(", ", (char **)choices);
  g_autofree char *expected = g_strdup_printf("one of %s", words);
  pst_config_set_value_error(error, origins, group, key, raw, expected,
                             choices[fallback]);
  return FALSE;
}

gboolean pst_config_read_list(GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              const char *shown_default, char ***value_r,
                              GError **error) {
  g_autofree char *raw = NULL;
  g_autofree char *bad = NULL;
  *value_r = NULL;
  if (!pst_config_get_raw(keyfile, origins, group, key, &raw, error))
    return FALSE;
  if (raw == NULL)
    return TRUE;
  char **items = pst_config_parse_list(raw, ';', &bad);
  if (items == NULL) {
    g_autofree char *expected = g_strdup_printf(
        "a list separated by ';' of %s; \"%s\" is not one", escape_help, bad);
    pst_config_set_value_error(error, origins, group, key, raw, expected,
                               shown_default);
    return FALSE;
  }
  *value_r = items;
  return TRUE;
}

gboolean pst_config_is_dns_name(const char *name) {
  gsize length = strlen(name);
  if (length > 0 && name[length - 1] == '.')
    length--;
  if (length == 0 || length > 253)
    return FALSE;
  gsize label = 0;
  for (gsize i = 0; i < length; i++) {
    char c = name[i];
    if (c == '.') {
      if (label == 0 || name[i - 1] == '-')
        return FALSE;
      label = 0;
    } else if (g_ascii_isalnum(c) || (c == '-' && label > 0)) {
      if (++label > 63)
        return FALSE;
    } else {
      return FALSE;
    }
  }
  return name[length - 1] != '-';
}
