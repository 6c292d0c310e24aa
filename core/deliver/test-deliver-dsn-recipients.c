/* test-deliver-dsn-recipients.c - whom final and "delayed" DSNs list:
 * NOTIFY's choices, "relayed" after an SMTP hop, a DSN handed on to the
 * next server, the status taken from a reply or generic, the Maildir
 * transport's local paths kept out of the sender's view, and when a delay
 * notice is due. */
#include "deliver/dsn-recipients.h"

#define SECOND G_TIME_SPAN_SECOND

typedef struct {
  const char *address;
  guint notify;
  PstRecipientStatus status;
  const char *reply, *relay;
  gboolean delay_notified, dsn_passed;
} Case;

/* An envelope from `sender` and one folded state per case. */
static PstEnvelope *envelope_of(const char *sender, const Case *cases,
                                guint n, PstRecipientState **states_r) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup(sender);
  envelope->arrival_time = 1000 * SECOND;
  PstRecipientState *states = g_new0(PstRecipientState, n);
  for (guint i = 0; i < n; i++) {
    PstEnvelopeRecipient *r =
        pst_envelope_add_recipient(envelope, cases[i].address);
    r->notify = cases[i].notify;
    states[i].status = cases[i].status;
    states[i].time = 2000 * SECOND + i;
    states[i].reply = g_strdup(cases[i].reply);
    states[i].relay = g_strdup(cases[i].relay);
    states[i].delay_notified = cases[i].delay_notified;
    states[i].dsn_passed = cases[i].dsn_passed;
  }
  *states_r = states;
  return envelope;
}

static void states_free(PstRecipientState *states, guint n) {
  for (guint i = 0; i < n; i++) {
    g_free(states[i].reply);
    g_free(states[i].relay);
  }
  g_free(states);
}

static void assert_entry(GPtrArray *list, guint i, const char *address,
                         const char *action, const char *status,
                         const char *diagnostic) {
  g_assert_cmpuint(i, <, list->len);
  const PstDsnRecipient *entry = list->pdata[i];
  g_assert_cmpstr(entry->address, ==, address);
  g_assert_cmpstr(entry->action, ==, action);
  g_assert_cmpstr(entry->status, ==, status);
  g_assert_cmpstr(entry->diagnostic, ==, diagnostic);
}

static const char maildir_hidden[] =
    "451 4.3.0 the mailbox could not be written (the postmaster has the "
    "details)";

static void test_final(void) {
  const Case cases[] = {
      {"bounced@x", 0, PST_RECIPIENT_BOUNCED, "550 5.1.1 User unknown",
       "[192.0.2.1]:25"},
      {"generic@x", PST_DSN_NOTIFY_FAILURE, PST_RECIPIENT_BOUNCED,
       "expired after 5d", NULL},
      {"never@x", PST_DSN_NOTIFY_NEVER, PST_RECIPIENT_BOUNCED,
       "550 5.1.1 no", NULL},
      {"delay-only@x", PST_DSN_NOTIFY_DELAY, PST_RECIPIENT_BOUNCED,
       "550 5.1.1 no", NULL},
      {"quiet@x", 0, PST_RECIPIENT_DELIVERED, "250 2.0.0 ok", "maildir"},
      {"local@x", PST_DSN_NOTIFY_SUCCESS, PST_RECIPIENT_DELIVERED, NULL,
       "maildir"},
      {"relayed@x", PST_DSN_NOTIFY_SUCCESS, PST_RECIPIENT_DELIVERED,
       "250 2.6.0 queued as 123", "[192.0.2.1]:25"},
      {"passed@x", PST_DSN_NOTIFY_SUCCESS, PST_RECIPIENT_DELIVERED,
       "250 2.0.0 ok", "[192.0.2.1]:25", FALSE, TRUE},
      {"disk@x", 0, PST_RECIPIENT_BOUNCED,
       "451 4.3.0 cannot write /var/mail/x/tmp/1.2.3: Input/output error",
       "maildir"},
      {"odd@x", 0, PST_RECIPIENT_BOUNCED, "550 no status here at all",
       NULL},
  };
  guint n = G_N_ELEMENTS(cases);
  PstRecipientState *states;
  g_autoptr(PstEnvelope) envelope = envelope_of("s@y", cases, n, &states);
  g_autoptr(GPtrArray) storage = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) list =
      pst_dsn_recipients_final(envelope, states, storage);
  g_assert_cmpuint(list->len, ==, 6);
  assert_entry(list, 0, "bounced@x", "failed", "5.1.1",
               "550 5.1.1 User unknown");
  assert_entry(list, 1, "generic@x", "failed", "5.0.0", "expired after 5d");
  assert_entry(list, 2, "local@x", "delivered", "2.0.0", NULL);
  assert_entry(list, 3, "relayed@x", "relayed", "2.6.0",
               "250 2.6.0 queued as 123");
  assert_entry(list, 4, "disk@x", "failed", "4.3.0", maildir_hidden);
  assert_entry(list, 5, "odd@x", "failed", "5.0.0",
               "550 no status here at all");
  const PstDsnRecipient *first = list->pdata[0];
  g_assert_cmpint(first->last_attempt, ==, 2000 * SECOND);
  g_assert_cmpint(first->retry_until, ==, 0);
  states_free(states, n);
}

static const Case delayed_cases[] = {
    {"due@x", 0, PST_RECIPIENT_DEFERRED, "451 4.4.1 no answer",
     "[192.0.2.1]:25"},
    {"asked@x", PST_DSN_NOTIFY_DELAY | PST_DSN_NOTIFY_FAILURE,
     PST_RECIPIENT_DEFERRED, "connection refused", NULL},
    {"failure-only@x", PST_DSN_NOTIFY_FAILURE, PST_RECIPIENT_DEFERRED,
     "451 4.4.1 no", NULL},
    {"never@x", PST_DSN_NOTIFY_NEVER, PST_RECIPIENT_DEFERRED, "451 4.4.1 no",
     NULL},
    {"told@x", 0, PST_RECIPIENT_DEFERRED, "451 4.4.1 no", NULL, TRUE},
    {"done@x", 0, PST_RECIPIENT_DELIVERED, "250 2.0.0 ok", NULL},
    {"new@x", 0, PST_RECIPIENT_PENDING, NULL, NULL},
    {"disk@x", 0, PST_RECIPIENT_DEFERRED,
     "451 4.3.0 cannot fsync /var/mail/x/new: Input/output error", "maildir"},
};

static void test_delayed(void) {
  guint n = G_N_ELEMENTS(delayed_cases);
  PstRecipientState *states;
  g_autoptr(PstEnvelope) envelope =
      envelope_of("s@y", delayed_cases, n, &states);
  g_autoptr(GPtrArray) storage = g_ptr_array_new_with_free_func(g_free);
  gint64 now = envelope->arrival_time + 4 * 3600 * SECOND;
  g_autoptr(GPtrArray) list = pst_dsn_recipients_delayed(
      envelope, states, now, 4 * 3600 * SECOND, 5 * 86400 * SECOND, storage);
  g_assert_cmpuint(list->len, ==, 3);
  assert_entry(list, 0, "due@x", "delayed", "4.4.1", "451 4.4.1 no answer");
  assert_entry(list, 1, "asked@x", "delayed", "4.0.0", "connection refused");
  assert_entry(list, 2, "disk@x", "delayed", "4.3.0", maildir_hidden);
  for (guint i = 0; i < list->len; i++)
    g_assert_cmpint(((PstDsnRecipient *)list->pdata[i])->retry_until, ==,
                    envelope->arrival_time + 5 * 86400 * SECOND);
  states_free(states, n);
}

/* Not yet (one µs short), never (warning 0), and never to <>. */
static void test_delayed_not_due(void) {
  guint n = G_N_ELEMENTS(delayed_cases);
  gint64 warning = 4 * 3600 * SECOND, lifetime = 5 * 86400 * SECOND;
  PstRecipientState *states;
  g_autoptr(PstEnvelope) envelope =
      envelope_of("s@y", delayed_cases, n, &states);
  g_autoptr(GPtrArray) storage = g_ptr_array_new_with_free_func(g_free);
  gint64 due = envelope->arrival_time + warning;
  g_autoptr(GPtrArray) early = pst_dsn_recipients_delayed(
      envelope, states, due - 1, warning, lifetime, storage);
  g_assert_cmpuint(early->len, ==, 0);
  g_autoptr(GPtrArray) off = pst_dsn_recipients_delayed(
      envelope, states, due + 86400 * SECOND, 0, lifetime, storage);
  g_assert_cmpuint(off->len, ==, 0);
  g_free(envelope->sender);
  envelope->sender = g_strdup("");
  g_autoptr(GPtrArray) null_sender = pst_dsn_recipients_delayed(
      envelope, states, due, warning, lifetime, storage);
  g_assert_cmpuint(null_sender->len, ==, 0);
  states_free(states, n);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dsn-recipients/final", test_final);
  g_test_add_func("/dsn-recipients/delayed", test_delayed);
  g_test_add_func("/dsn-recipients/delayed-not-due", test_delayed_not_due);
  return g_test_run();
}
