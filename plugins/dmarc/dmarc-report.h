/* dmarc-report.h - aggregate reports (RFC 9990): what the history holds
 * for one policy domain and period, as XML, gzip, file name, subject and
 * message (dmarc-report.c, pure), and the history queries behind them
 * (dmarc-report-db.c).  Used by `postilion dmarc report` (tools/) and the
 * unit tests.
 */
#pragma once

#include "dmarc-history.h"

G_BEGIN_DECLS

/* One <record>: the messages that share all of these. */
typedef struct {
  char *source_ip, *result, *disposition, *override;
  char *header_from, *envelope_from, *envelope_to;
  gboolean dkim_aligned, spf_aligned;
  char *spf_domain, *spf_result;
  char *spf_human; /* "" or why SPF erred */
  char *dkim;      /* "DOMAIN SELECTOR RESULT[ HUMAN_RESULT]" lines */
  guint64 count;
} DmarcReportRecord;

void dmarc_report_record_free(DmarcReportRecord *record);

/* The report's metadata and the policy published (the last one seen in
 * the period: RFC 9990 "SHOULD note only the final configuration"). */
typedef struct {
  const char *org_name, *email, *report_id, *generator;
  gint64 begin, end; /* Unix time; end is exclusive */
  const char *domain;
  const char *p, *sp, *np, *fo, *adkim, *aspf, *testing;
  const char *rua; /* ','-joined */
  /* Errors met while making the report (RFC 9990 "error"), nullable;
   * dmarc_report_xml() adds its own. */
  const char *const *errors;
} DmarcReportHeader;

/* Evaluations of a domain the history could not record (dmarc_gaps). */
typedef struct {
  guint64 lost;
  gint64 first, last; /* Unix time of the first and last one */
} DmarcReportGap;

/* The "error" text for `gap` (lost > 0). */
char *dmarc_report_gap_error(const DmarcReportGap *gap);

/* The XML document (namespace urn:ietf:params:xml:ns:dmarc-2.0), valid
 * against plugins/dmarc/dmarc-aggregate.xsd when `records` is not empty. */
char *dmarc_report_xml(const DmarcReportHeader *header,
                       const GPtrArray *records);

/* Report-ID (RFC 9990 "Definition of Report-ID"): the same for the same
 * domain, period and submitter, so a repeated run resends the same report
 * under the same name. */
char *dmarc_report_id(const char *domain, gint64 begin, const char *submitter);
/* receiver "!" policy-domain "!" begin "!" end "!" unique-id ".xml.gz" */
char *dmarc_report_filename(const char *receiver, const char *domain,
                            gint64 begin, gint64 end, const char *report_id);
/* "Report Domain: D Submitter: S Report-ID: <ID>" */
char *dmarc_report_subject(const char *domain, const char *submitter,
                           const char *report_id);
/* `data` compressed as a gzip file (RFC 1952). */
GBytes *dmarc_gzip(const char *data, gsize length, GError **error);
/* The whole message (CRLF lines): a text part and the gzip file as an
 * application/gzip attachment named `filename`. */
char *dmarc_report_message(const char *from, const char *to,
                           const char *subject, const char *report_id,
                           const char *filename, GBytes *gzip, GDateTime *date);

/* --- The history's reports (dmarc-report-db.c)
 * -------------------------------- */

/* Policy domains with messages in [begin, end). */
GPtrArray *dmarc_report_db_domains(DmarcStore *store, gint64 begin, gint64 end,
                                   GError **error);
/* The records of `domain` in [begin, end), grouped and counted; the
 * policy of the last message in `policy_r` (p, sp, np, adkim, aspf,
 * testing, psd, fo, rua: a NULL-terminated GStrv). */
GPtrArray *dmarc_report_db_records(DmarcStore *store, const char *domain,
                                   gint64 begin, gint64 end, GStrv *policy_r,
                                   GError **error);
/* What the history lost of `domain` in [begin, end); lost is 0 when
 * nothing was. */
gboolean dmarc_report_db_gap(DmarcStore *store, const char *domain,
                             gint64 begin, gint64 end, DmarcReportGap *gap_r,
                             GError **error);
/* Whether the report of (domain, begin) went to `destination`. */
gboolean dmarc_report_db_was_sent(DmarcStore *store, const char *domain,
                                  gint64 begin, const char *destination,
                                  gboolean *sent_r, GError **error);
gboolean dmarc_report_db_mark_sent(DmarcStore *store, const char *domain,
                                   gint64 begin, const char *destination,
                                   const char *report_id, GError **error);
/* Failure reports kept since `since`, oldest first: each row is id,
 * policy_domain, ruf, subject, feedback, headers. */
GPtrArray *dmarc_report_db_failures(DmarcStore *store, gint64 since,
                                    GError **error);
gboolean dmarc_report_db_failure_was_sent(DmarcStore *store, const char *id,
                                          const char *destination,
                                          gboolean *sent_r, GError **error);
gboolean dmarc_report_db_failure_mark_sent(DmarcStore *store, const char *id,
                                           const char *destination,
                                           GError **error);
/* Removes what the history holds from before `before` (unix seconds):
 * evaluations, failure reports and the notes of what was sent of them,
 * the notes of aggregate reports for days that ended by then, and gaps
 * that ended by then.  The evaluations go an hour of arrivals per
 * statement, so that a long backlog never holds SQLite's write lock long
 * against the daemon's history writer.  `rows_r` and `messages_r`: the
 * evaluation rows removed and the messages they counted. */
gboolean dmarc_report_db_expire(DmarcStore *store, gint64 before,
                                guint64 *rows_r, guint64 *messages_r,
                                GError **error);
/* Reports (aggregate and failure) sent to `destination` since `since`. */
gboolean dmarc_report_db_sent_since(DmarcStore *store, const char *destination,
                                    gint64 since, guint *count_r,
                                    GError **error);

G_END_DECLS
