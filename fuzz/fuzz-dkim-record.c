/* fuzz-dkim-record.c - fuzzes the DKIM plugin's parsers of network text
 * (plugins/dkim/dkim-record.c, on dkim-tags.c): key records from DNS (v=,
 * k=, p=, h=, s=, t=) and the d=/s= names
 * that may reach an Authentication-Results field.
 *
 * Input: a key record's text (a NUL ends it early).  Beyond "no crash, no
 * leak" it checks the contract: a parsed record has a p= of base64 only;
 * formatted again and parsed, it gives the same key; a name accepted as a
 * domain holds nothing but letters, digits, hyphens and dots.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/dkim/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const DkimRecord *record) {
  for (const char *p = record->public_key; *p != '\0'; p++)
    g_assert_true(g_ascii_isalnum(*p) || *p == '+' || *p == '/' || *p == '=');
  g_autofree char *again = dkim_record_format(record->type, record->public_key);
  g_auto(DkimRecord) reparsed = {0};
  g_assert_true(dkim_record_parse(again, &reparsed, NULL));
  g_assert_cmpstr(reparsed.public_key, ==, record->public_key);
  g_assert_cmpint(reparsed.type, ==, record->type);
  g_autofree char *line = dkim_record_zone_line("example.org", "s", again);
  g_assert_nonnull(strstr(line, "._domainkey.example.org."));
}

static void check_name(const char *text) {
  if (dkim_domain_is_valid(text))
    for (const char *p = text; *p != '\0'; p++)
      g_assert_true(g_ascii_isalnum(*p) || *p == '-' || *p == '.');
  (void)dkim_selector_is_valid(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autofree char *text = g_strndup((const char *)data, size);
  g_auto(DkimRecord) record = {0};
  g_autoptr(GError) error = NULL;
  if (dkim_record_parse(text, &record, &error))
    check_record(&record);
  else
    g_assert_nonnull(error);
  check_name(text);
  return 0;
}
