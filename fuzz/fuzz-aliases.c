/* fuzz-aliases.c - fuzzes the aliases and mailboxes parsers
 * (core/tables/tables.c).  The first octet picks the parser; the rest is
 * the file.  A parse either succeeds or fails with a message naming the
 * file and a line; lookups on what parsed must not fail. */
#include <stdint.h>
#include <string.h>

#include "tables/tables.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const char *text = (const char *)data + 1;
  gsize length = size - 1;
  g_autoptr(GError) error = NULL;
  if (data[0] & 1) {
    g_autoptr(PstMailboxes) mailboxes =
        pst_mailboxes_parse(text, length, "f", &error);
    g_assert((mailboxes == NULL) == (error != NULL));
    if (mailboxes != NULL)
      pst_mailboxes_contains(mailboxes, "a@example.org");
  } else {
    g_autoptr(PstAliases) aliases = pst_aliases_parse(text, length, "f",
                                                      &error);
    g_assert((aliases == NULL) == (error != NULL));
    if (aliases != NULL)
      pst_aliases_lookup(aliases, "postmaster");
  }
  if (error != NULL)
    g_assert(g_str_has_prefix(error->message, "f:"));
  return 0;
}
