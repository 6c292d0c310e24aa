/* fuzz-credentials.c - fuzzes the relayhost credentials file parser
 * (core/util/credentials.c).  Beyond "no crash, no leak": a file that
 * parses has at most one entry per line.
 */
#include <stdint.h>
#include <string.h>

#include "util/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstCredentials) credentials =
      pst_credentials_parse((const char *)data, size, "fuzz", &error);
  if (credentials == NULL) {
    g_assert_nonnull(error);
    return 0;
  }
  guint lines = 1;
  for (size_t i = 0; i < size; i++)
    lines += data[i] == '\n';
  g_assert_cmpuint(pst_credentials_count(credentials), <=, lines);
  return 0;
}
