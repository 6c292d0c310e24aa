/* header-addresses.h - the addresses of a To:, Cc: or Bcc: field. */
#pragma once

#include <glib.h>

/* Appends to `out` (of char*, owned) the addr-spec of each mailbox in
 * `value`, a field's value as RFC 5322 3.4 writes an address-list
 * (display names, quoted strings, comments, angle addresses with an
 * obsolete route, groups, folding).  Best effort:
 * an unclosed quote, comment or angle ends at the end of the value. */
void pst_header_addresses_scan(const char *value, GPtrArray *out);
