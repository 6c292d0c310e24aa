/* envelope.c - the envelope of one message: plain owned data.
 *
 * Entry points: pst_envelope_new(), pst_envelope_add_recipient(),
 * pst_envelope_copy(), pst_envelope_equal(), pst_envelope_free().
 *
 * The SMTP session builds an envelope during a transaction and hands it to
 * the spool, which serializes it (spool-format.c); the spool reader builds
 * one back from a queue file.  Every string and GVariant is owned by the
 * envelope; recipients are owned by its array and freed with it.  Results
 * are kept as the caller gave them (a{sv}); the spool checks their type.
 */
#include "queue/envelope.h"

static void pst_envelope_recipient_free(PstEnvelopeRecipient *recipient) {
  g_free(recipient->address);
  g_free(recipient->orcpt);
  g_clear_pointer(&recipient->results, g_variant_unref);
  g_free(recipient);
}

PstEnvelope *pst_envelope_new(void) {
  PstEnvelope *envelope = g_new0(PstEnvelope, 1);
  envelope->recipients = g_ptr_array_new_with_free_func(
      (GDestroyNotify)pst_envelope_recipient_free);
  return envelope;
}

void pst_envelope_free(PstEnvelope *envelope) {
  if (envelope == NULL)
    return;
  g_free(envelope->sender);
  g_free(envelope->envid);
  g_ptr_array_unref(envelope->recipients);
  g_free(envelope->client_address);
  g_free(envelope->client_hostname);
  g_free(envelope->helo);
  g_free(envelope->listener);
  g_free(envelope->protocol);
  g_free(envelope->auth_user);
  g_free(envelope->session_id);
  g_free(envelope->hold_reason);
  g_free(envelope->dsn_original);
  g_clear_pointer(&envelope->results, g_variant_unref);
  g_free(envelope);
}

PstEnvelopeRecipient *pst_envelope_add_recipient(PstEnvelope *envelope,
                                                 const char *address) {
  g_return_val_if_fail(envelope != NULL, NULL);
  g_return_val_if_fail(address != NULL, NULL);
  PstEnvelopeRecipient *recipient = g_new0(PstEnvelopeRecipient, 1);
  recipient->address = g_strdup(address);
  g_ptr_array_add(envelope->recipients, recipient);
  return recipient;
}

static GVariant *variant_ref0(GVariant *value) {
  return value != NULL ? g_variant_ref(value) : NULL;
}

PstEnvelope *pst_envelope_copy(const PstEnvelope *envelope) {
  g_return_val_if_fail(envelope != NULL, NULL);
  PstEnvelope *copy = pst_envelope_new();
  copy->sender = g_strdup(envelope->sender);
  copy->envid = g_strdup(envelope->envid);
  copy->ret = envelope->ret;
  copy->body = envelope->body;
  copy->smtputf8 = envelope->smtputf8;
  copy->size_declared = envelope->size_declared;
  for (guint i = 0; i < envelope->recipients->len; i++) {
    const PstEnvelopeRecipient *from = envelope->recipients->pdata[i];
    PstEnvelopeRecipient *to = pst_envelope_add_recipient(copy, from->address);
    to->orcpt = g_strdup(from->orcpt);
    to->notify = from->notify;
    to->results = variant_ref0(from->results);
  }
  copy->client_address = g_strdup(envelope->client_address);
  copy->client_hostname = g_strdup(envelope->client_hostname);
  copy->helo = g_strdup(envelope->helo);
  copy->listener = g_strdup(envelope->listener);
  copy->protocol = g_strdup(envelope->protocol);
  copy->auth_user = g_strdup(envelope->auth_user);
  copy->session_id = g_strdup(envelope->session_id);
  copy->arrival_time = envelope->arrival_time;
  copy->results = variant_ref0(envelope->results);
  copy->hold_reason = g_strdup(envelope->hold_reason);
  copy->dsn_original = g_strdup(envelope->dsn_original);
  return copy;
}

const char *pst_envelope_get_dsn_original(const PstEnvelope *envelope) {
  if (envelope->dsn_original != NULL)
    return envelope->dsn_original;
  if (g_strcmp0(envelope->listener, "bounce") == 0)
    return envelope->session_id; /* written before the explicit link */
  return NULL;
}

/* GVariants compare by value; NULL equals only NULL. */
static gboolean variant_equal0(GVariant *a, GVariant *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return g_variant_equal(a, b);
}

static gboolean recipient_equal(const PstEnvelopeRecipient *a,
                                const PstEnvelopeRecipient *b) {
  return g_strcmp0(a->address, b->address) == 0 &&
         g_strcmp0(a->orcpt, b->orcpt) == 0 && a->notify == b->notify &&
         variant_equal0(a->results, b->results);
}

gboolean pst_envelope_equal(const PstEnvelope *a, const PstEnvelope *b) {
  g_return_val_if_fail(a != NULL && b != NULL, FALSE);
  if (a->recipients->len != b->recipients->len)
    return FALSE;
  for (guint i = 0; i < a->recipients->len; i++) {
    if (!recipient_equal(a->recipients->pdata[i], b->recipients->pdata[i]))
      return FALSE;
  }
  return g_strcmp0(a->sender, b->sender) == 0 &&
         g_strcmp0(a->envid, b->envid) == 0 && a->ret == b->ret &&
         a->body == b->body && !a->smtputf8 == !b->smtputf8 &&
         a->size_declared == b->size_declared &&
         g_strcmp0(a->client_address, b->client_address) == 0 &&
         g_strcmp0(a->client_hostname, b->client_hostname) == 0 &&
         g_strcmp0(a->helo, b->helo) == 0 &&
         g_strcmp0(a->listener, b->listener) == 0 &&
         g_strcmp0(a->protocol, b->protocol) == 0 &&
         g_strcmp0(a->auth_user, b->auth_user) == 0 &&
         g_strcmp0(a->session_id, b->session_id) == 0 &&
         a->arrival_time == b->arrival_time &&
         g_strcmp0(a->hold_reason, b->hold_reason) == 0 &&
         g_strcmp0(a->dsn_original, b->dsn_original) == 0 &&
         variant_equal0(a->results, b->results);
}
