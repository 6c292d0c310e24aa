/* fuzz-spf-record.c - fuzzes spf_record_prepare() (plugins/spf), which
 * rewrites SPF records from DNS before libspf2 sees them.
 *
 * Input: the record text after "v=spf1 " (a NUL ends it early).  Beyond
 * "no crash, no leak" it checks the contract: exactly one of the result
 * and the problem is set; a result starts with "v=spf1", has no empty
 * term, at most one redirect= and it last, and preparing it again gives
 * it back unchanged.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/spf/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_prepared(const char *prepared) {
  g_assert_true(g_str_has_prefix(prepared, "v=spf1"));
  g_assert_null(strstr(prepared, "  "));
  g_assert_false(g_str_has_suffix(prepared, " "));
  const char *redirect = NULL;
  for (const char *p = strstr(prepared, " redirect="); p != NULL;
       p = strstr(p + 1, " redirect="))
    redirect = p;
  if (redirect != NULL)
    g_assert_null(strchr(redirect + 1, ' '));
  g_autofree char *problem = NULL;
  g_autofree char *again = spf_record_prepare(prepared, &problem);
  g_assert_null(problem);
  g_assert_cmpstr(again, ==, prepared);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autofree char *body = g_strndup((const char *)data, size);
  g_autofree char *record = g_strconcat("v=spf1 ", body, NULL);
  g_autofree char *problem = NULL;
  g_autofree char *prepared = spf_record_prepare(record, &problem);
  g_assert_true((prepared == NULL) != (problem == NULL));
  if (prepared != NULL)
    check_prepared(prepared);
  return 0;
}
