/* bounce.c - building RFC 3464 delivery status notifications.
 *
 * Entry point: pst_dsn_build(), called by the queue manager's worker when
 * every recipient of a message is final and some need a report (failed
 * ones unless NOTIFY=NEVER or NOTIFY without FAILURE; delivered ones with
 * NOTIFY=SUCCESS).  Pure: envelope and content in, message out.  The
 * report carries ENVID (Original-Envelope-Id), ORCPT (Original-Recipient)
 * and honours RET (FULL, the default, returns the whole message; HDRS
 * only its header).  A message larger than [delivery] bounce_size_limit
 * is returned as its header only, and the text says so: the caller
 * (bounce-original.c) reads no more than that.  "Delayed" reports (Action: delayed, for [delivery]
 * delay_warning) have their own subject and text, Will-Retry-Until, and
 * the header only.  A message accepted with SMTPUTF8 gets an RFC 6533
 * report (message/global-delivery-status; utf-8 address types).  The
 * caller never sends one to the null sender.
 */
#include <string.h>

#include "deliver/bounce.h"
#include "smtp/message-date.h"
#include "smtp/smtp-parse.h"

/* The header block of `original` (up to and including its blank line). */
static gsize header_length(const char *data, gsize length) {
  for (gsize i = 0; i + 3 < length; i++)
    if (memcmp(data + i, "\r\n\r\n", 4) == 0)
      return i + 4;
  return length;
}

typedef enum { REPORT_SUCCESS, REPORT_DELAY, REPORT_FAILURE } ReportKind;

static gboolean is_ascii(const char *text) {
  for (const char *p = text; *p; p++)
    if ((guchar)*p >= 0x80)
      return FALSE;
  return TRUE;
}

/* RFC 6533 section 3: an address with non-ASCII octets is of type utf-8
 * (in message/global-delivery-status); an ASCII one stays rfc822. */
static const char *address_type(const char *address) {
  return is_ascii(address) ? "rfc822" : "utf-8";
}

/* Failure when any recipient failed, else delay when any is delayed. */
static ReportKind report_kind(GPtrArray *recipients) {
  ReportKind kind = REPORT_SUCCESS;
  for (guint i = 0; i < recipients->len; i++) {
    const char *action = ((PstDsnRecipient *)recipients->pdata[i])->action;
    if (g_str_equal(action, "failed"))
      kind = REPORT_FAILURE;
    else if (g_str_equal(action, "delayed") && kind == REPORT_SUCCESS)
      kind = REPORT_DELAY;
  }
  return kind;
}

gboolean pst_dsn_returns_whole(const PstEnvelope *envelope,
                               GPtrArray *recipients) {
  return envelope->ret != PST_DSN_RET_HDRS &&
         report_kind(recipients) == REPORT_FAILURE;
}

static void append_human_part(GString *out, const char *host, const char *id,
                              GPtrArray *recipients, ReportKind kind,
                              gboolean utf8, gboolean cut) {
  g_string_append_printf(out,
                         "Content-Type: text/plain; charset=%s\r\n%s"
                         "Content-Description: Notification\r\n\r\n",
                         utf8 ? "utf-8" : "us-ascii",
                         utf8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
  g_string_append_printf(out, "This is the mail system at host %s.\r\n\r\n",
                         host);
  if (kind == REPORT_FAILURE)
    g_string_append(out, "I'm sorry to have to inform you that your message "
                         "could not\r\nbe delivered to one or more "
                         "recipients.\r\n\r\n");
  else if (kind == REPORT_DELAY)
    g_string_append(out, "Your message could not be delivered yet to the "
                         "recipients listed\r\nbelow.  The mail system will "
                         "keep trying; you do not need to\r\nresend it.  "
                         "You will be told if it finally fails.\r\n\r\n");
  else
    g_string_append(out, "Your message was successfully delivered to the "
                         "destination(s)\r\nlisted below.\r\n\r\n");
  for (guint i = 0; i < recipients->len; i++) {
    const PstDsnRecipient *r = recipients->pdata[i];
    g_string_append_printf(out, "<%s>: %s\r\n", r->address,
                           r->diagnostic != NULL ? r->diagnostic : r->action);
  }
  g_string_append_printf(out, "\r\nQueue id: %s\r\n", id);
  if (cut)
    g_string_append(out, "\r\nYour message was too large to be returned in "
                         "full: only its header\r\nfollows.\r\n");
}

/* "Original-Recipient: type; address".  A non-ASCII address is of type
 * utf-8 (RFC 6533 section 3): as it is in a message/global-delivery-status,
 * as utf-8-addr-xtext in a plain one, which must stay ASCII. */
static void append_original_recipient(GString *out, const char *orcpt,
                                      gboolean utf8) {
  const char *semicolon = strchr(orcpt, ';');
  if (semicolon == NULL)
    return;
  const char *address = semicolon + 1;
  if (is_ascii(address)) {
    g_string_append_printf(out, "Original-Recipient: %.*s; %s\r\n",
                           (int)(semicolon - orcpt), orcpt, address);
  } else if (utf8) {
    g_string_append_printf(out, "Original-Recipient: utf-8; %s\r\n", address);
  } else {
    g_autofree char *encoded = pst_utf8_addr_xtext_encode(address);
    g_string_append_printf(out, "Original-Recipient: utf-8; %s\r\n", encoded);
  }
}

static void append_status_part(GString *out, const char *host,
                               const PstEnvelope *envelope,
                               GPtrArray *recipients, gboolean utf8) {
  g_autofree char *arrival = pst_message_date_format(envelope->arrival_time);
  g_string_append_printf(out,
                         "Content-Type: message/%sdelivery-status\r\n"
                         "Content-Description: Delivery report\r\n\r\n",
                         utf8 ? "global-" : "");
  g_string_append_printf(out, "Reporting-MTA: dns; %s\r\n", host);
  if (envelope->envid != NULL)
    g_string_append_printf(out, "Original-Envelope-Id: %s\r\n",
                           envelope->envid);
  g_string_append_printf(out, "Arrival-Date: %s\r\n", arrival);
  for (guint i = 0; i < recipients->len; i++) {
    const PstDsnRecipient *r = recipients->pdata[i];
    g_string_append_printf(out, "\r\nFinal-Recipient: %s; %s\r\n",
                           utf8 ? address_type(r->address) : "rfc822",
                           r->address);
    if (r->orcpt != NULL)
      append_original_recipient(out, r->orcpt, utf8);
    g_string_append_printf(out, "Action: %s\r\nStatus: %s\r\n", r->action,
                           r->status);
    if (r->diagnostic != NULL)
      g_string_append_printf(out, "Diagnostic-Code: smtp; %s\r\n",
                             r->diagnostic);
    if (r->last_attempt > 0) {
      g_autofree char *last = pst_message_date_format(r->last_attempt);
      g_string_append_printf(out, "Last-Attempt-Date: %s\r\n", last);
    }
    if (r->retry_until > 0) {
      g_autofree char *until = pst_message_date_format(r->retry_until);
      g_string_append_printf(out, "Will-Retry-Until: %s\r\n", until);
    }
  }
}

static void append_original_part(GString *out, GBytes *original,
                                 gboolean headers_only, gboolean utf8) {
  gsize length = 0;
  const char *data =
      original != NULL ? g_bytes_get_data(original, &length) : NULL;
  if (headers_only) {
    g_string_append_printf(out,
                           "Content-Type: %s\r\n"
                           "Content-Description: Undelivered Message Headers"
                           "\r\n\r\n",
                           utf8 ? "message/global-headers"
                                : "text/rfc822-headers");
    length = data != NULL ? header_length(data, length) : 0;
  } else {
    g_string_append_printf(out,
                           "Content-Type: message/%s\r\n"
                           "Content-Description: Undelivered Message\r\n\r\n",
                           utf8 ? "global" : "rfc822");
  }
  if (data != NULL)
    g_string_append_len(out, data, (gssize)length);
  if (out->len < 2 || strcmp(out->str + out->len - 2, "\r\n") != 0)
    g_string_append(out, "\r\n");
}

GBytes *pst_dsn_build(const char *reporting_host, const char *id,
                      const PstEnvelope *envelope, GPtrArray *recipients,
                      GBytes *original, gboolean original_whole, gint64 now) {
  ReportKind kind = report_kind(recipients);
  gboolean whole = pst_dsn_returns_whole(envelope, recipients);
  gboolean cut = whole && !original_whole;
  gboolean utf8 = envelope->smtputf8;
  static const char *const subjects[] = {
      [REPORT_SUCCESS] = "Successful Mail Delivery Report",
      [REPORT_DELAY] = "Delayed Mail (still being retried)",
      [REPORT_FAILURE] = "Undelivered Mail Returned to Sender",
  };
  g_autofree char *date = pst_message_date_format(now);
  g_autofree char *boundary =
      g_strdup_printf("%s.%" G_GINT64_FORMAT "/%s", id, now, reporting_host);
  GString *out = g_string_new(NULL);
  g_string_append_printf(
      out,
      "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
      "To: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
      "Message-ID: <%s.%" G_GINT64_FORMAT ".dsn@%s>\r\n"
      "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/report; report-type=%sdelivery-status;\r\n"
      "\tboundary=\"%s\"\r\n\r\n"
      "This is a MIME-encapsulated message.\r\n\r\n--%s\r\n",
      reporting_host, envelope->sender, subjects[kind], date, id, now,
      reporting_host, utf8 ? "global-" : "", boundary, boundary);
  append_human_part(out, reporting_host, id, recipients, kind, utf8, cut);
  g_string_append_printf(out, "\r\n--%s\r\n", boundary);
  append_status_part(out, reporting_host, envelope, recipients, utf8);
  g_string_append_printf(out, "\r\n--%s\r\n", boundary);
  append_original_part(out, original, !whole || cut, utf8);
  g_string_append_printf(out, "\r\n--%s--\r\n", boundary);
  return g_string_free_to_bytes(out);
}
