/* dsn-recipients.c - whom a DSN lists, and how (dsn-recipients.h).
 *
 * Pure functions over a message's envelope and its recipients' folded
 * states (queue/state-journal.h); the delivery job builds its final and
 * "delayed" DSNs from their lists.  Invariant: every entry has an action,
 * a status ("5.1.1" from its reply when the reply carries one, else a
 * generic one for its action) and the diagnostic the sender may see. */
#include <string.h>

#include "deliver/dsn-recipients.h"

/* "550 5.1.1 ..." carries an enhanced status code. */
static gboolean reply_has_status(const char *reply) {
  return reply != NULL && strlen(reply) > 9 && reply[3] == ' ' &&
         reply[5] == '.';
}

/* TRUE when `relay` (a journaled recipient's) is an SMTP server: its
 * success is "relayed" (RFC 3464 2.3.3), not "delivered". */
static gboolean relay_is_smtp(const char *relay) {
  return relay != NULL && strchr(relay, '[') != NULL;
}

/* A recipient's diagnostic as a DSN shows it.  A DSN goes to the sender,
 * often outside: the Maildir transport's own failures (always "451 4.3.0
 * cannot ... PATH: why", see deliver_maildir()) name files of this host,
 * so the DSN says what failed without them; the log and `postilion queue
 * list` keep the whole text for the postmaster.  Replies that came from
 * another server (SMTP, LMTP) are theirs to word and pass as they are. */
static const char *dsn_diagnostic(const PstRecipientState *state) {
  if (state->reply != NULL && g_strcmp0(state->relay, "maildir") == 0 &&
      g_str_has_prefix(state->reply, "451 4.3.0 "))
    return "451 4.3.0 the mailbox could not be written (the postmaster has "
           "the details)";
  return state->reply;
}

/* A new entry for `recipient` in `list`: its status is the one in its
 * diagnostic ("550 5.1.1 x" -> "5.1.1", copied into `storage`), else
 * `generic`. */
static PstDsnRecipient *entry_add(GPtrArray *list,
                                  const PstEnvelopeRecipient *recipient,
                                  const PstRecipientState *state,
                                  const char *action, const char *generic,
                                  GPtrArray *storage) {
  PstDsnRecipient *entry = g_new0(PstDsnRecipient, 1);
  entry->address = recipient->address;
  entry->orcpt = recipient->orcpt;
  entry->action = action;
  entry->diagnostic = dsn_diagnostic(state);
  entry->last_attempt = state->time;
  entry->status = generic;
  if (reply_has_status(state->reply)) {
    const char *code = entry->diagnostic + 4;
    char *status = g_strndup(code, strcspn(code, " "));
    g_ptr_array_add(storage, status);
    entry->status = status;
  }
  g_ptr_array_add(list, entry);
  return entry;
}

GPtrArray *pst_dsn_recipients_final(const PstEnvelope *envelope,
                                    const PstRecipientState *states,
                                    GPtrArray *storage) {
  GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < envelope->recipients->len; i++) {
    const PstEnvelopeRecipient *recipient = envelope->recipients->pdata[i];
    const PstRecipientState *state = &states[i];
    gboolean failed = state->status == PST_RECIPIENT_BOUNCED;
    gboolean wanted =
        failed ? recipient->notify == 0 ||
                     (recipient->notify & PST_DSN_NOTIFY_FAILURE) != 0
               : (recipient->notify & PST_DSN_NOTIFY_SUCCESS) != 0 &&
                     !state->dsn_passed;
    if (!wanted)
      continue;
    const char *action = failed                        ? "failed"
                         : relay_is_smtp(state->relay) ? "relayed"
                                                       : "delivered";
    entry_add(list, recipient, state, action, failed ? "5.0.0" : "2.0.0",
              storage);
  }
  return list;
}

/* Whether recipient `r` wants a "delayed" DSN (RFC 3461: NOTIFY=DELAY, or
 * no NOTIFY at all, where it is the MTA's choice). */
static gboolean wants_delay_notice(const PstEnvelopeRecipient *r) {
  return r->notify == 0 || ((r->notify & PST_DSN_NOTIFY_DELAY) != 0 &&
                            (r->notify & PST_DSN_NOTIFY_NEVER) == 0);
}

GPtrArray *pst_dsn_recipients_delayed(const PstEnvelope *envelope,
                                      const PstRecipientState *states,
                                      gint64 now, gint64 delay_warning,
                                      gint64 lifetime, GPtrArray *storage) {
  GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
  if (delay_warning == 0 || envelope->sender[0] == '\0' ||
      now - envelope->arrival_time < delay_warning)
    return list;
  for (guint i = 0; i < envelope->recipients->len; i++) {
    const PstEnvelopeRecipient *recipient = envelope->recipients->pdata[i];
    const PstRecipientState *state = &states[i];
    if (state->status != PST_RECIPIENT_DEFERRED || state->delay_notified ||
        !wants_delay_notice(recipient))
      continue;
    PstDsnRecipient *entry =
        entry_add(list, recipient, state, "delayed", "4.0.0", storage);
    entry->retry_until = envelope->arrival_time + lifetime;
  }
  return list;
}
