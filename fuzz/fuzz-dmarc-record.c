/* fuzz-dmarc-record.c - fuzzes dmarc_record_parse() (plugins/dmarc), which
 * reads DMARC policy records from DNS, and dmarc_uri_mailto_address() on
 * the URIs it keeps.
 *
 * Input: the TXT record's octets (NUL octets included).  Beyond "no crash,
 * no leak" it checks the contract: a record is returned only for text
 * starting with the version tag; a usable record has a policy; every URI
 * kept is printable ASCII without white space.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/dmarc/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autoptr(DmarcRecord) record = dmarc_record_parse((const char *)data, size);
  if (record == NULL)
    return 0;
  g_assert_null(memchr(data, '\0', size));
  gsize start = strspn((const char *)data, " \t");
  g_assert_true(start < size && (data[start] == 'v' || data[start] == 'V'));
  if (record->usable)
    g_assert_cmpint(record->p, !=, DMARC_POLICY_UNSET);
  GPtrArray *lists[] = {record->rua, record->ruf};
  for (guint l = 0; l < G_N_ELEMENTS(lists); l++)
    for (guint i = 0; i < lists[l]->len; i++) {
      const char *uri = lists[l]->pdata[i];
      for (const char *p = uri; *p != '\0'; p++)
        g_assert_true(*p > 0x20 && *p < 0x7f);
      g_autofree char *address = dmarc_uri_mailto_address(uri);
      if (address != NULL)
        g_assert_nonnull(strchr(address, '@'));
    }
  return 0;
}
