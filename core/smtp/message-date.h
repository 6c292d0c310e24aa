/* message-date.h - the RFC 5322 date-time the daemon writes into headers
 * (Received:, a submission's missing Date:, DSNs).
 *
 * Pure formatting over a time value: no SMTP state, any thread.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* "Sun, 6 Dec 2026 09:03:55 +0100": `time` (µs since the epoch) in the
 * local zone, with English day and month names whatever the locale.
 * Newly allocated. */
char *pst_message_date_format(gint64 time);

G_END_DECLS
