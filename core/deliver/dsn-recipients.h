/* dsn-recipients.h - whom a DSN lists, with which action, status and
 * diagnostic, from a message's envelope and its folded journal.  Pure;
 * the delivery job (delivery-job.c) calls it on its worker, and
 * bounce.c's pst_dsn_build() writes the report from the list. */
#pragma once

#include <glib.h>

#include "deliver/bounce.h"
#include "queue/envelope.h"
#include "queue/state-journal.h"

G_BEGIN_DECLS

/* The recipients a final DSN reports, in envelope order: the failed ones
 * unless NOTIFY excludes FAILURE, the delivered ones that asked for
 * SUCCESS unless a DSN-capable server took the request over (RFC 3461
 * 6.2.1).  `states` has one entry per envelope recipient.  The entries
 * (g_free'd by the array) point into `envelope`, `states` and `storage`,
 * which holds the status codes copied out of replies: all must outlive
 * the list. */
GPtrArray *pst_dsn_recipients_final(const PstEnvelope *envelope,
                                    const PstRecipientState *states,
                                    GPtrArray *storage);

/* The recipients due a "delayed" DSN at `now` (µs since the epoch):
 * deferred, not yet notified, asking for it (NOTIFY=DELAY, or no NOTIFY,
 * where it is the MTA's choice), in a message from a sender other than
 * <> that has waited `delay_warning` µs or longer (0: never).  Each says
 * it will be retried until arrival + `lifetime` µs.  Ownership as for
 * pst_dsn_recipients_final(). */
GPtrArray *pst_dsn_recipients_delayed(const PstEnvelope *envelope,
                                      const PstRecipientState *states,
                                      gint64 now, gint64 delay_warning,
                                      gint64 lifetime, GPtrArray *storage);

G_END_DECLS
