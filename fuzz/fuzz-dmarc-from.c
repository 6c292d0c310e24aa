/* fuzz-dmarc-from.c - fuzzes dmarc_from_domain() (plugins/dmarc), which
 * reads the client's From: field.
 *
 * Input: one or more field values separated by NUL octets (so several
 * From: fields are tried too).  Beyond "no crash, no leak" it checks the
 * contract: exactly one of the domain and the problem is set, and a
 * domain is already normalized (normalizing it again changes nothing).
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/dmarc/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autofree char *copy = g_malloc(size + 1);
  memcpy(copy, data, size);
  copy[size] = '\0';
  const char *values[4];
  guint count = 0;
  for (const char *p = copy; p <= copy + size && count < 4; p += strlen(p) + 1)
    values[count++] = p;
  const char *problem = NULL;
  g_autofree char *domain = dmarc_from_domain(values, count, &problem);
  g_assert_true((domain == NULL) != (problem == NULL));
  if (domain != NULL) {
    g_autofree char *again = dmarc_domain_normalize(domain);
    g_assert_cmpstr(again, ==, domain);
  }
  return 0;
}
