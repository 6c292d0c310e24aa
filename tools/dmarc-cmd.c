/* dmarc-cmd.c - `postilion dmarc report [--day YYYY-MM-DD] [--dry-run DIR]`:
 * the DMARC aggregate reports (RFC 9990) of one day (UTC; default
 * yesterday) from the history the dmarc plugin keeps ([plugin:dmarc]
 * history), one report per policy domain; and `postilion dmarc expire`.
 *
 * For each policy domain with messages that day: the records counted by
 * the database (plugins/dmarc/dmarc-report-db.c), the XML, gzip, the RFC's
 * file name, subject and Report-ID (dmarc-report.c); then each rua=mailto:
 * destination, in the record's order:
 *   - outside the policy domain's Organizational Domain, only after the
 *     external destination verification (RFC 9990 "Verifying External
 *     Destinations": a DMARC1 TXT record at DOMAIN._report._dmarc.HOST,
 *     whose own rua= may replace the address on the same host);
 *   - not when dmarc_reports says it was sent already (never twice);
 *   - not beyond `report_rate_limit` reports to that address in 24 hours;
 * and the message goes through our own queue: submitted over SMTP to the
 * daemon's first listener like `sendmail` does (sendmail.c), so it gets
 * DKIM-signed and retried like any outgoing mail.  Only after the daemon
 * accepted it is it marked sent, so a failed run can simply be repeated.
 * Then, with failure_reports = true, the failure reports (RFC 9991) the
 * plugin kept during the last 7 days and did not send yet, to every ruf=
 * destination under the same checks.  --dry-run DIR writes the gzip files
 * (and failure reports as .eml files) into DIR and sends and marks
 * nothing.  DNS goes through the core's resolver with the daemon's [dns]
 * settings.
 *
 * Expiry: the history keeps its rows for [plugin:dmarc] history_keep
 * (31d; 0: for ever).  Every run that is not a dry run ends by removing
 * what is older (dmarc_report_db_expire()), so the daily timer keeps the
 * database's size bounded; `postilion dmarc expire` does only that.
 *
 * Exit status: 0, 64 usage, 75 when something must be retried (a report
 * not submitted, DNS or database trouble), 78 configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns.h"
#include "tools/postilion-tool.h"

#include "dmarc-report.h"

#define DMARC_DAY_SECONDS (24 * 60 * 60)

typedef struct {
  const PstConfig *config;
  DmarcConfig *dmarc;  /* owned */
  DmarcStore *store;   /* owned */
  const char *dry_run; /* nullable: the directory */
  gint64 begin, end;
  gboolean retry; /* something must be tried again later */
} ReportRun;

/* --- DNS on the tool's main thread -----------------------------------------
 */

typedef struct {
  PstDnsResult *result;
} Lookup;

static void report_lookup_done(PstDnsResult *result, gpointer user_data) {
  ((Lookup *)user_data)->result = result;
}

/* Looks `name` up and waits, running the main context (the tool has no
 * other work meanwhile). */
static PstDnsResult *report_lookup(PstDnsType type, const char *name) {
  Lookup lookup = {NULL};
  pst_dns_lookup(type, name, NULL, report_lookup_done, &lookup);
  while (lookup.result == NULL)
    g_main_context_iteration(NULL, TRUE);
  return lookup.result;
}

static void report_txt_records(const PstDnsResult *result, GPtrArray *texts,
                               GArray *lengths) {
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    gsize length = 0;
    const char *text = pst_dns_result_get_txt(result, i, &length);
    g_ptr_array_add(texts, (gpointer)text);
    g_array_append_val(lengths, length);
  }
}

/* The Organizational Domain of `domain` by the tree walk; NULL on DNS
 * trouble. */
static char *report_organizational_domain(const char *domain) {
  g_autoptr(DmarcWalk) walk = dmarc_walk_new(domain);
  const char *target;
  while ((target = dmarc_walk_next(walk)) != NULL) {
    g_autofree char *name = g_strconcat("_dmarc.", target, NULL);
    g_autoptr(PstDnsResult) result = report_lookup(PST_DNS_TYPE_TXT, name);
    g_autoptr(GPtrArray) texts = g_ptr_array_new();
    g_autoptr(GArray) lengths = g_array_new(FALSE, TRUE, sizeof(gsize));
    report_txt_records(result, texts, lengths);
    dmarc_walk_feed(walk, pst_dns_result_get_status(result),
                    (const char *const *)texts->pdata,
                    (const gsize *)lengths->data, texts->len,
                    pst_dns_result_get_reason(result));
  }
  return walk->tempfail ? NULL
                        : g_strdup(dmarc_walk_organizational_domain(walk));
}

/* --- Destinations ------------------------------------------------------------
 */

typedef enum { DEST_NO, DEST_YES, DEST_RETRY } Verdict;

/* RFC 9990 "Verifying External Destinations" for `address` (on `host`):
 * DEST_YES with `address_r` possibly replaced by the consumer's own rua=
 * on the same host. */
static Verdict report_verify_external(const char *domain, const char *host,
                                      char **address_r, const char **why_r) {
  g_autofree char *name = g_strconcat(domain, "._report._dmarc.", host, NULL);
  g_autoptr(PstDnsResult) result = report_lookup(PST_DNS_TYPE_TXT, name);
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status == PST_DNS_TEMPFAIL) {
    *why_r = "the authorization lookup failed";
    return DEST_RETRY;
  }
  Verdict verdict = DEST_NO;
  *why_r = "the destination does not authorize reports for this domain";
  for (guint i = 0;
       status == PST_DNS_OK && i < pst_dns_result_get_count(result); i++) {
    gsize length = 0;
    const char *text = pst_dns_result_get_txt(result, i, &length);
    g_autoptr(DmarcRecord) record = dmarc_record_parse(text, length);
    if (record == NULL)
      continue;
    verdict = DEST_YES;
    /* An override on another host forbids both (loops, indirect abuse). */
    for (guint k = 0; k < record->rua->len; k++) {
      g_autofree char *other = dmarc_uri_mailto_address(record->rua->pdata[k]);
      const char *at = other != NULL ? strrchr(other, '@') : NULL;
      if (at == NULL || !g_str_equal(at + 1, host)) {
        *why_r = "the destination's own rua= names another host";
        return DEST_NO;
      }
      if (k == 0) {
        g_free(*address_r);
        *address_r = g_steal_pointer(&other);
      }
    }
  }
  return verdict;
}

static Verdict report_verify(const char *domain, const char *domain_org,
                             char **address_r, const char **why_r) {
  const char *host = strrchr(*address_r, '@') + 1;
  g_autofree char *host_org = report_organizational_domain(host);
  if (host_org == NULL || domain_org == NULL) {
    *why_r = "DNS trouble while finding Organizational Domains";
    return DEST_RETRY;
  }
  if (g_str_equal(host_org, domain_org))
    return DEST_YES;
  return report_verify_external(domain, host, address_r, why_r);
}

/* --- One report to one destination
 * --------------------------------------------- */

typedef struct {
  const char *domain;
  const char *report_id;
  const char *filename;
  const char *subject;
  GBytes *gzip;
  guint records;
  guint64 messages;
} Report;

static gboolean report_store_ok(ReportRun *run, gboolean ok, GError *error) {
  if (!ok) {
    fprintf(stderr, "postilion dmarc report: history: %s\n", error->message);
    run->retry = TRUE;
  }
  return ok;
}

/* Under the rate limit: fewer than report_rate_limit reports (aggregate
 * and failure) to `address` in 24 hours. */
static gboolean report_under_limit(ReportRun *run, const char *domain,
                                   const char *address) {
  g_autoptr(GError) error = NULL;
  guint recent = 0;
  if (!report_store_ok(
          run,
          dmarc_report_db_sent_since(run->store, address,
                                     g_get_real_time() / G_USEC_PER_SEC -
                                         DMARC_DAY_SECONDS,
                                     &recent, &error),
          error))
    return FALSE;
  if (recent < run->dmarc->report_rate_limit)
    return TRUE;
  printf("%s: report to %s held back: %u reports in 24 hours "
         "(report_rate_limit); run again later\n",
         domain, address, recent);
  run->retry = TRUE;
  return FALSE;
}

/* Hands `message` to the daemon; FALSE (and a retry) when it refused. */
static gboolean report_submit(ReportRun *run, const char *domain,
                              const char *address, const char *message) {
  const char *recipients[] = {address, NULL};
  if (pst_tool_submit(run->config, run->dmarc->report_email, recipients,
                      message) == PST_EXIT_OK)
    return TRUE;
  printf("%s: report to %s not submitted; run again later\n", domain, address);
  run->retry = TRUE;
  return FALSE;
}

static void report_send(ReportRun *run, const Report *report,
                        const char *address) {
  g_autoptr(GError) error = NULL;
  gboolean sent = FALSE;
  if (!report_store_ok(run,
                       dmarc_report_db_was_sent(run->store, report->domain,
                                                run->begin, address, &sent,
                                                &error),
                       error))
    return;
  if (sent) {
    printf("%s: report %s already sent to %s\n", report->domain,
           report->report_id, address);
    return;
  }
  if (!report_under_limit(run, report->domain, address))
    return;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *message = dmarc_report_message(
      run->dmarc->report_email, address, report->subject, report->report_id,
      report->filename, report->gzip, now);
  if (!report_submit(run, report->domain, address, message))
    return;
  report_store_ok(run,
                  dmarc_report_db_mark_sent(run->store, report->domain,
                                            run->begin, address,
                                            report->report_id, &error),
                  error);
  printf("%s: report %s sent to %s (%u records, %" G_GUINT64_FORMAT
         " messages)\n",
         report->domain, report->filename, address, report->records,
         report->messages);
}

static void report_dry_run(ReportRun *run, const Report *report,
                           const char *address) {
  g_autofree char *path =
      g_build_filename(run->dry_run, report->filename, NULL);
  gsize size = 0;
  const char *data = g_bytes_get_data(report->gzip, &size);
  g_autoptr(GError) error = NULL;
  if (!g_file_set_contents(path, data, size, &error)) {
    fprintf(stderr, "postilion dmarc report: %s\n", error->message);
    run->retry = TRUE;
    return;
  }
  printf("%s: report %s for %s (dry run: not sent; %u records, "
         "%" G_GUINT64_FORMAT " messages)\n",
         report->domain, path, address, report->records, report->messages);
}

/* Every rua= destination of `report`, verified. */
static void report_deliver(ReportRun *run, const Report *report,
                           const char *rua) {
  g_auto(GStrv) uris = g_strsplit(rua, ",", -1);
  g_autofree char *domain_org = report_organizational_domain(report->domain);
  for (guint i = 0; uris[i] != NULL; i++) {
    g_autofree char *address = dmarc_uri_mailto_address(uris[i]);
    if (address == NULL) {
      printf("%s: %s ignored (only mailto: URIs are supported)\n",
             report->domain, uris[i]);
      continue;
    }
    const char *why = NULL;
    Verdict verdict = report_verify(report->domain, domain_org, &address, &why);
    if (verdict != DEST_YES) {
      printf("%s: not sent to %s: %s\n", report->domain, address, why);
      run->retry = run->retry || verdict == DEST_RETRY;
      continue;
    }
    if (run->dry_run != NULL)
      report_dry_run(run, report, address);
    else
      report_send(run, report, address);
  }
}

/* --- One policy domain
 * ------------------------------------------------------------ */

static void report_domain(ReportRun *run, const char *domain) {
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) policy = NULL;
  g_autoptr(GPtrArray) records = dmarc_report_db_records(
      run->store, domain, run->begin, run->end, &policy, &error);
  if (!report_store_ok(run, records != NULL, error) || records->len == 0 ||
      policy == NULL)
    return;
  DmarcReportGap gap = {0};
  gboolean gap_ok = dmarc_report_db_gap(run->store, domain, run->begin,
                                        run->end, &gap, &error);
  if (!report_store_ok(run, gap_ok, error))
    return;
  g_autofree char *gap_error =
      gap.lost > 0 ? dmarc_report_gap_error(&gap) : NULL;
  const char *errors[] = {gap_error, NULL};
  const char *hostname = run->config->server.hostname;
  g_autofree char *report_id = dmarc_report_id(domain, run->begin, hostname);
  DmarcReportHeader header = {
      .org_name = run->dmarc->report_org_name,
      .email = run->dmarc->report_email,
      .report_id = report_id,
      .generator = "Postilion " PST_TOOL_VERSION,
      .begin = run->begin,
      .end = run->end,
      .domain = domain,
      .p = policy[0],
      .sp = policy[1],
      .np = policy[2],
      .adkim = policy[3],
      .aspf = policy[4],
      .testing = policy[5],
      .fo = policy[7],
      .rua = policy[8],
      .errors = errors,
  };
  g_autofree char *xml = dmarc_report_xml(&header, records);
  g_autoptr(GBytes) gzip = dmarc_gzip(xml, strlen(xml), &error);
  g_autofree char *filename =
      dmarc_report_filename(hostname, domain, run->begin, run->end, report_id);
  g_autofree char *subject = dmarc_report_subject(domain, hostname, report_id);
  Report report = {domain, report_id, filename, subject, gzip, records->len, 0};
  for (guint i = 0; i < records->len; i++)
    report.messages += ((DmarcReportRecord *)records->pdata[i])->count;
  report_deliver(run, &report, header.rua);
}

/* --- Failure reports (RFC 9991)
 * ------------------------------------------------------ */

/* Failure reports older than this are not sent any more. */
#define DMARC_FAILURE_MAX_AGE (7 * DMARC_DAY_SECONDS)

/* One kept failure report (id, domain, ruf, subject, feedback, headers)
 * to one verified address. */
static void report_failure_send(ReportRun *run, char **row,
                                const char *address) {
  g_autoptr(GError) error = NULL;
  gboolean sent = FALSE;
  if (!report_store_ok(run,
                       dmarc_report_db_failure_was_sent(run->store, row[0],
                                                        address, &sent, &error),
                       error) ||
      sent || !report_under_limit(run, row[1], address))
    return;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *message = dmarc_failure_message(
      run->dmarc->report_email, address, row[3], row[0], row[4], row[5], now);
  if (run->dry_run != NULL) {
    g_autofree char *name =
        g_strdup_printf("failure-%s-%s.eml", row[0], address);
    g_autofree char *path = g_build_filename(run->dry_run, name, NULL);
    if (!g_file_set_contents(path, message, -1, &error)) {
      fprintf(stderr, "postilion dmarc report: %s\n", error->message);
      run->retry = TRUE;
      return;
    }
    printf("%s: failure report %s for %s (dry run: not sent)\n", row[1], path,
           address);
    return;
  }
  if (!report_submit(run, row[1], address, message))
    return;
  report_store_ok(
      run,
      dmarc_report_db_failure_mark_sent(run->store, row[0], address, &error),
      error);
  printf("%s: failure report %s sent to %s\n", row[1], row[0], address);
}

/* Every failure report of the last days not yet sent, to each ruf=
 * destination that passes the same checks as aggregate reports (RFC 9991
 * "Verifying External Destinations"). */
static void report_failures(ReportRun *run) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rows = dmarc_report_db_failures(
      run->store, g_get_real_time() / G_USEC_PER_SEC - DMARC_FAILURE_MAX_AGE,
      &error);
  if (!report_store_ok(run, rows != NULL, error))
    return;
  for (guint i = 0; i < rows->len; i++) {
    char **row = rows->pdata[i];
    g_auto(GStrv) uris = g_strsplit(row[2], ",", -1);
    g_autofree char *domain_org = report_organizational_domain(row[1]);
    for (guint k = 0; uris[k] != NULL; k++) {
      g_autofree char *address = dmarc_uri_mailto_address(uris[k]);
      const char *why = "only mailto: URIs are supported";
      Verdict verdict = address != NULL
                            ? report_verify(row[1], domain_org, &address, &why)
                            : DEST_NO;
      if (verdict == DEST_YES)
        report_failure_send(run, row, address);
      else
        printf("%s: failure report not sent to %s: %s\n", row[1],
               address != NULL ? address : uris[k], why);
      run->retry = run->retry || verdict == DEST_RETRY;
    }
  }
}

/* --- The command
 * ---------------------------------------------------------------------- */

/* --day YYYY-MM-DD as [begin, end) in UTC; yesterday without it. */
static gboolean report_parse_day(const char *day, gint64 *begin_r) {
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  if (day == NULL) {
    g_autoptr(GDateTime) yesterday = g_date_time_add_days(now, -1);
    g_autoptr(GDateTime) midnight = g_date_time_new_utc(
        g_date_time_get_year(yesterday), g_date_time_get_month(yesterday),
        g_date_time_get_day_of_month(yesterday), 0, 0, 0);
    *begin_r = g_date_time_to_unix(midnight);
    return TRUE;
  }
  int year = 0, month = 0, mday = 0;
  char extra = 0;
  if (strlen(day) != 10 ||
      sscanf(day, "%4d-%2d-%2d%c", &year, &month, &mday, &extra) != 3)
    return FALSE;
  g_autoptr(GDateTime) midnight =
      g_date_time_new_utc(year, month, mday, 0, 0, 0);
  if (midnight == NULL)
    return FALSE;
  *begin_r = g_date_time_to_unix(midnight);
  return TRUE;
}

static int report_usage(void) {
  fputs("usage: postilion [-c FILE] dmarc report [--day YYYY-MM-DD] "
        "[--dry-run DIR]\n"
        "       postilion [-c FILE] dmarc expire\n",
        stderr);
  return PST_EXIT_USAGE;
}

/* "report [--day D] [--dry-run DIR]" or "expire" (`expire_r`). */
static gboolean report_parse_args(int argc, char **argv, const char **day_r,
                                  const char **dry_run_r,
                                  gboolean *expire_r) {
  *expire_r = argc == 2 && g_str_equal(argv[1], "expire");
  if (*expire_r)
    return TRUE;
  if (argc < 2 || !g_str_equal(argv[1], "report"))
    return FALSE;
  for (int i = 2; i < argc; i++) {
    if (g_str_equal(argv[i], "--day") && i + 1 < argc)
      *day_r = argv[++i];
    else if (g_str_equal(argv[i], "--dry-run") && i + 1 < argc)
      *dry_run_r = argv[++i];
    else
      return FALSE;
  }
  return TRUE;
}

/* Removes what is older than history_keep; FALSE on database trouble. */
static gboolean report_expire(ReportRun *run) {
  if (run->dmarc->history_keep == 0) {
    printf("history: every row is kept ([plugin:dmarc] history_keep = 0)\n");
    return TRUE;
  }
  gint64 before = g_get_real_time() / G_USEC_PER_SEC -
                  (gint64)run->dmarc->history_keep;
  guint64 rows = 0, messages = 0;
  g_autoptr(GError) error = NULL;
  if (!dmarc_report_db_expire(run->store, before, &rows, &messages, &error)) {
    fprintf(stderr, "postilion dmarc expire: history %s: %s\n",
            run->dmarc->history, error->message);
    return FALSE;
  }
  g_autoptr(GDateTime) limit = g_date_time_new_from_unix_utc(before);
  g_autofree char *when = g_date_time_format(limit, "%Y-%m-%d %H:%M:%S UTC");
  printf("history: %" G_GUINT64_FORMAT " row%s (%" G_GUINT64_FORMAT
         " message%s) from before %s removed ([plugin:dmarc] history_keep)\n",
         rows, rows == 1 ? "" : "s", messages, messages == 1 ? "" : "s",
         when);
  return TRUE;
}

static int report_run(ReportRun *run) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) domains =
      dmarc_report_db_domains(run->store, run->begin, run->end, &error);
  if (domains == NULL) {
    fprintf(stderr, "postilion dmarc report: history: %s\n", error->message);
    return PST_EXIT_TEMPFAIL;
  }
  if (!pst_dns_start(&run->config->dns, &error)) {
    fprintf(stderr, "postilion dmarc report: DNS: %s\n", error->message);
    return PST_EXIT_TEMPFAIL;
  }
  for (guint i = 0; i < domains->len; i++)
    report_domain(run, domains->pdata[i]);
  if (domains->len == 0)
    printf("no DMARC history for that day: no reports\n");
  if (run->dmarc->failure_reports)
    report_failures(run);
  pst_dns_stop();
  if (run->dry_run == NULL && !report_expire(run))
    run->retry = TRUE;
  return run->retry ? PST_EXIT_TEMPFAIL : PST_EXIT_OK;
}

int pst_tool_dmarc(const PstConfig *config, int argc, char **argv) {
  const char *day = NULL;
  gboolean expire = FALSE;
  ReportRun run = {.config = config};
  if (!report_parse_args(argc, argv, &day, &run.dry_run, &expire) ||
      !report_parse_day(day, &run.begin))
    return report_usage();
  run.end = run.begin + DMARC_DAY_SECONDS;
  g_autoptr(GError) error = NULL;
  g_autoptr(DmarcConfig) dmarc =
      dmarc_config_load(config->keyfile, "plugin:dmarc", &error);
  if (dmarc == NULL) {
    fprintf(stderr, "postilion dmarc report: %s\n", error->message);
    return PST_EXIT_CONFIG;
  }
  if (dmarc->history[0] == '\0') {
    printf("no DMARC history is kept ([plugin:dmarc] history): no reports\n");
    return PST_EXIT_OK;
  }
  /* Without reports the history is still kept, and expired. */
  if (!dmarc->reports && !expire) {
    printf("aggregate reports are off ([plugin:dmarc] reports)\n");
    if (run.dry_run != NULL)
      return PST_EXIT_OK;
    expire = TRUE;
  }
  run.dmarc = dmarc;
  if (run.dry_run != NULL && g_mkdir_with_parents(run.dry_run, 0755) != 0) {
    fprintf(stderr, "postilion dmarc report: %s: %s\n", run.dry_run,
            g_strerror(errno));
    return PST_EXIT_OSERR;
  }
  g_autoptr(DmarcStore) store = dmarc_store_open(dmarc->history, &error);
  if (store == NULL) {
    fprintf(stderr, "postilion dmarc report: history %s: %s\n", dmarc->history,
            error->message);
    return PST_EXIT_TEMPFAIL;
  }
  run.store = store;
  if (expire)
    return report_expire(&run) ? PST_EXIT_OK : PST_EXIT_TEMPFAIL;
  return report_run(&run);
}
