/* fuzz-spf-record.c - fuzzes spf_record_prepare() (plugins/spf), the
 * strict RFC 7208 parser that decides which records libspf2 ever sees,
 * and the form it sees them in.
 *
 * Input: one byte choosing the client's family, then the record text
 * after "v=spf1 " (a NUL ends it early).  Beyond "no crash, no leak" it
 * checks the contract: exactly one of the result and the problem is set;
 * a result starts with "v=spf1", is visible ASCII with single spaces, has
 * at most one redirect= and it last, and preparing it again gives it back
 * unchanged.  It also decides the parsed record without DNS
 * (spf_record_decide(), which the plugin runs in the daemon) for a client
 * of that family whose address the input's first byte sets.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/spf/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_prepared(const char *prepared, gboolean ipv6) {
  g_assert_true(g_str_has_prefix(prepared, "v=spf1"));
  for (const char *p = prepared; *p != '\0'; p++)
    g_assert_true(*p >= 0x20 && *p <= 0x7e);
  g_assert_null(strstr(prepared, "  "));
  g_assert_false(g_str_has_suffix(prepared, " "));
  const char *redirect = NULL;
  for (const char *p = strstr(prepared, " redirect="); p != NULL;
       p = strstr(p + 1, " redirect="))
    redirect = p;
  if (redirect != NULL)
    g_assert_null(strchr(redirect + 1, ' '));
  g_autofree char *problem = NULL;
  g_autofree char *again = spf_record_prepare(prepared, ipv6, &problem);
  g_assert_null(problem);
  g_assert_cmpstr(again, ==, prepared);
}

/* An include's record: decided by its name's length, after one lookup,
 * refused past the limit (as spf-eval.c's is). */
static gboolean fuzz_include(const char *target, gpointer data,
                             guint *lookups, SpfResult *result_r) {
  (void)data;
  if (++*lookups > 10)
    return FALSE;
  *result_r = (SpfResult)(strlen(target) % 7);
  return TRUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  gboolean ipv6 = (data[0] & 1) != 0;
  g_autofree char *body = g_strndup((const char *)data + 1, size - 1);
  g_autofree char *record = g_strconcat("v=spf1 ", body, NULL);
  g_autofree char *problem = NULL;
  g_autofree char *prepared = spf_record_prepare(record, ipv6, &problem);
  g_assert_true((prepared == NULL) != (problem == NULL));
  if (prepared != NULL)
    check_prepared(prepared, ipv6);
  g_autofree char *parse_problem = NULL;
  g_autoptr(SpfRecord) parsed = spf_record_parse(record, &parse_problem);
  g_assert_true((parsed == NULL) == (prepared == NULL));
  if (parsed != NULL) {
    guint8 address[16];
    memset(address, data[0], sizeof address);
    SpfResult result = SPF_RES_NONE;
    guint lookups = 0;
    if (spf_record_decide(parsed, address, ipv6 ? 16 : 4, fuzz_include,
                          NULL, &lookups, &result))
      g_assert_true(result >= SPF_RES_NEUTRAL && result <= SPF_RES_SOFTFAIL);
    g_assert_cmpuint(lookups, <=, 11);
  }
  return 0;
}
