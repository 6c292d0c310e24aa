/* fuzz-state-journal.c - fuzzes the state journal decoder
 * (core/queue/state-journal.c).
 *
 * The input is a journal file.  Whatever prefix decodes must re-encode to
 * exactly the octets it spans (decoder/encoder agreement), and folding the
 * records into recipient states must not fail, whatever indexes they name.
 */
#include <stdint.h>
#include <string.h>

#include "queue/state-journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autoptr(GPtrArray) records =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  gsize valid = pst_state_records_decode(data, size, records);
  g_assert(valid <= size);
  g_autoptr(GByteArray) again = g_byte_array_new();
  for (guint i = 0; i < records->len; i++)
    pst_state_record_encode(records->pdata[i], again);
  g_assert(again->len == valid);
  g_assert(memcmp(again->data, data, valid) == 0);
  PstRecipientState *states = pst_recipient_states_fold(records, 3);
  pst_recipient_states_free(states, 3);
  return 0;
}
