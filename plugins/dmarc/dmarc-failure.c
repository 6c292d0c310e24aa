/* dmarc-failure.c - failure reports (RFC 9991): when one is due, and the
 * ARF message (RFC 5965, RFC 6591 as RFC 9991 updates it) that carries it.
 *
 * dmarc_failure_new() decides from the record's fo= ("fo" in RFC 9989
 * "General Record Format") and the evaluation: fo=0 when no mechanism
 * produced an aligned pass (DMARC fail), fo=1 when any did not, fo=d when
 * a DKIM signature failed, fo=s when SPF failed; never for a record with
 * psd=y (RFC 9991: "MUST NOT consider ruf tags in DMARC Policy Records
 * having a psd=y tag") or without a ruf= URI.  The report carries the
 * feedback fields (Feedback-Type auth-failure, Auth-Failure, the
 * REQUIRED Identity-Alignment, DKIM-Domain/-Selector of failed aligned
 * signatures, Reported-Domain, Source-IP, Original-Mail-From...) and the
 * message's header only (text/rfc822-headers): the body stays private.
 * The plugin stores it in the history (dmarc_failures); `postilion dmarc
 * report` sends it, as RFC 9991 suggests ("store reports for a period of
 * time before sending them"), after the external destination check and
 * under the per-destination rate limit.  Pure functions: unit-tested.
 */
#include <string.h>

#include "dmarc-history.h"

void dmarc_failure_free(DmarcFailure *failure) {
  if (failure == NULL)
    return;
  g_free(failure->id);
  g_free(failure->policy_domain);
  g_free(failure->ruf);
  g_free(failure->subject);
  g_free(failure->feedback);
  g_free(failure->headers);
  g_free(failure);
}

static gboolean dmarc_result_failed(const char *result) {
  return g_strcmp0(result, "fail") == 0 ||
         g_strcmp0(result, "permerror") == 0 ||
         g_strcmp0(result, "softfail") == 0;
}

/* The Auth-Failure type the record's fo= asks a report for, or NULL. */
const char *dmarc_failure_type(const DmarcOutcome *outcome) {
  guint fo = outcome->record->fo;
  gboolean any_aligned = outcome->spf_aligned || outcome->dkim_aligned;
  if ((fo & DMARC_FO_0) && outcome->result == DMARC_RESULT_FAIL)
    return "dmarc";
  if ((fo & DMARC_FO_1) && !(outcome->spf_aligned && outcome->dkim_aligned) &&
      (outcome->result == DMARC_RESULT_FAIL || any_aligned))
    return "dmarc";
  for (guint i = 0; (fo & DMARC_FO_D) && i < outcome->dkim->len; i++)
    if (dmarc_result_failed(((DmarcAuth *)outcome->dkim->pdata[i])->result))
      return "dkim";
  if ((fo & DMARC_FO_S) && outcome->spf != NULL &&
      dmarc_result_failed(outcome->spf->result))
    return "spf";
  return NULL;
}

/* Identity-Alignment: the mechanisms that failed to authenticate an
 * aligned identity, or "none" (RFC 9991 "Reporting Format Update"). */
static const char *dmarc_identity_alignment(const DmarcOutcome *outcome) {
  if (!outcome->dkim_aligned && !outcome->spf_aligned)
    return "dkim, spf";
  if (!outcome->dkim_aligned)
    return "dkim";
  if (!outcome->spf_aligned)
    return "spf";
  return "none";
}

/* Keeps header text safe to put in a field value: printable ASCII. */
static char *dmarc_field_text(const char *text) {
  GString *out = g_string_new(NULL);
  for (const char *p = text != NULL ? text : ""; *p != '\0'; p++)
    g_string_append_c(out, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
  return g_string_free(out, FALSE);
}

static void dmarc_feedback_auth(GString *out, const DmarcOutcome *outcome,
                                const char *hostname) {
  g_string_append_printf(out,
                         "Authentication-Results: %s;\r\n\tdmarc=%s "
                         "header.from=%s",
                         hostname, dmarc_result_to_string(outcome->result),
                         outcome->from_domain);
  if (outcome->spf != NULL && outcome->spf->domain != NULL)
    g_string_append_printf(out, ";\r\n\tspf=%s smtp.mailfrom=%s",
                           outcome->spf->result, outcome->spf->domain);
  for (guint i = 0; i < outcome->dkim->len && i < 10; i++) {
    const DmarcAuth *dkim = outcome->dkim->pdata[i];
    if (dkim->domain != NULL)
      g_string_append_printf(out, ";\r\n\tdkim=%s header.d=%s", dkim->result,
                             dkim->domain);
  }
  g_string_append(out, "\r\n");
}

/* DKIM-Domain and DKIM-Selector of the first failed signature aligned
 * with the From domain (REQUIRED for DKIM failures of an aligned
 * identifier). */
static void dmarc_feedback_dkim(GString *out, const DmarcOutcome *outcome) {
  for (guint i = 0; i < outcome->dkim->len; i++) {
    const DmarcAuth *dkim = outcome->dkim->pdata[i];
    if (dkim->domain == NULL || !dmarc_result_failed(dkim->result) ||
        outcome->org_domain == NULL ||
        !dmarc_domain_is_within(dkim->domain, outcome->org_domain))
      continue;
    g_autofree char *selector = dmarc_field_text(dkim->selector);
    g_string_append_printf(out,
                           "DKIM-Domain: %s\r\nDKIM-Identity: @%s\r\n"
                           "DKIM-Selector: %s\r\n",
                           dkim->domain, dkim->domain, selector);
    return;
  }
}

static char *dmarc_failure_feedback(const DmarcOutcome *outcome,
                                    const DmarcFailureContext *context,
                                    const char *type) {
  GString *out = g_string_new(NULL);
  g_autofree char *sender = dmarc_field_text(context->sender);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *arrival =
      g_date_time_format(now, "%a, %d %b %Y %H:%M:%S +0000");
  g_string_append_printf(out,
                         "Feedback-Type: auth-failure\r\nVersion: 1\r\n"
                         "User-Agent: Postilion-DMARC/1.0\r\n"
                         "Auth-Failure: %s\r\n",
                         type);
  dmarc_feedback_auth(out, outcome, context->hostname);
  g_string_append_printf(out, "Identity-Alignment: %s\r\n",
                         dmarc_identity_alignment(outcome));
  if (context->disposition != NULL)
    g_string_append_printf(
        out, "Delivery-Result: %s\r\n",
        g_str_equal(context->disposition, "reject")       ? "reject"
        : g_str_equal(context->disposition, "quarantine") ? "spam"
                                                          : "delivered");
  dmarc_feedback_dkim(out, outcome);
  g_string_append_printf(out,
                         "Original-Mail-From: <%s>\r\nArrival-Date: %s\r\n"
                         "Source-IP: %s\r\nReported-Domain: %s\r\n",
                         sender, arrival, context->client,
                         outcome->from_domain);
  return g_string_free(out, FALSE);
}

DmarcFailure *dmarc_failure_new(const DmarcOutcome *outcome,
                                const DmarcFailureContext *context) {
  const DmarcRecord *record = outcome->record;
  if (record == NULL || !record->usable || record->ruf->len == 0 ||
      record->psd == DMARC_PSD_Y)
    return NULL;
  const char *type = dmarc_failure_type(outcome);
  if (type == NULL)
    return NULL;
  DmarcFailure *failure = g_new0(DmarcFailure, 1);
  g_autofree char *uuid = g_uuid_string_random();
  failure->id = g_strdup_printf("%s@%s", uuid, context->hostname);
  failure->received = g_get_real_time() / G_USEC_PER_SEC;
  failure->policy_domain = g_strdup(outcome->policy_domain);
  g_ptr_array_add(record->ruf, NULL);
  failure->ruf = g_strjoinv(",", (char **)record->ruf->pdata);
  g_ptr_array_remove_index(record->ruf, record->ruf->len - 1);
  failure->subject = g_strdup_printf("DMARC failure report for %s from %s",
                                     outcome->from_domain, context->client);
  failure->feedback = dmarc_failure_feedback(outcome, context, type);
  failure->headers = g_strdup(context->headers);
  return failure;
}

char *dmarc_failure_message(const char *from, const char *to,
                            const char *subject, const char *id,
                            const char *feedback, const char *headers,
                            GDateTime *date) {
  g_autofree char *when = g_date_time_format(date, "%a, %d %b %Y %H:%M:%S %z");
  g_autofree char *boundary =
      g_compute_checksum_for_string(G_CHECKSUM_SHA1, id, -1);
  return g_strdup_printf(
      "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
      "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=feedback-report;\r\n"
      "\tboundary=\"%s\"\r\n\r\n"
      "This is a DMARC failure report (RFC 9991).\r\n\r\n"
      "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
      "This is an authentication failure report for a message that failed "
      "DMARC checks.\r\nOnly its header is included.\r\n\r\n"
      "--%s\r\nContent-Type: message/feedback-report\r\n\r\n%s\r\n"
      "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n%s\r\n"
      "--%s--\r\n",
      from, to, subject, when, id, boundary, boundary, boundary, feedback,
      boundary, headers, boundary);
}
