/* bounce.h - delivery status notifications (RFC 3464) for a queued message.
 * Pure: builds the message text; the queue manager queues it from <> to
 * the envelope sender. */
#pragma once

#include <glib.h>

#include "queue/envelope.h"

G_BEGIN_DECLS

typedef struct {
  const char *address;    /* the recipient as given at RCPT */
  const char *orcpt;      /* nullable: "rfc822;user@example.org" */
  const char *action;     /* "failed", "delivered", "delayed" */
  const char *status;     /* "5.1.1" */
  const char *diagnostic; /* nullable: "550 5.1.1 User unknown" */
  gint64 last_attempt;    /* µs since the epoch, 0 when never tried */
  gint64 retry_until;     /* µs, 0 when none: Will-Retry-Until (delayed) */
} PstDsnRecipient;

/* TRUE when a DSN for `recipients` returns the whole original message (a
 * failure report, and RET is not HDRS); else it returns only its header. */
gboolean pst_dsn_returns_whole(const PstEnvelope *envelope,
                               GPtrArray *recipients);

/* The whole DSN message, CRLF lines: a multipart/report with the text for
 * people, the message/delivery-status part, and the original message
 * (message/rfc822) or only its header (text/rfc822-headers) as RET asks,
 * only the header for success and delay reports.  `original` is the whole
 * message when `original_whole`, else at least its header block: a report
 * that would return the whole message then returns the header and says the
 * message was too large.  A report is a failure
 * report when any recipient failed, else a delay report when any is
 * delayed, else a success report.  For a message that came with SMTPUTF8
 * (envelope->smtputf8) it is an RFC 6533 report: message/global-delivery-
 * status, "utf-8" address types for non-ASCII addresses, message/global or
 * message/global-headers, a UTF-8 text part; the DSN must then be queued
 * with SMTPUTF8 too.  `id` is the original queue id; `now` in µs. */
GBytes *pst_dsn_build(const char *reporting_host, const char *id,
                      const PstEnvelope *envelope, GPtrArray *recipients,
                      GBytes *original, gboolean original_whole, gint64 now);

G_END_DECLS
