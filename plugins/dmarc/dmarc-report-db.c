/* dmarc-report-db.c - the history queries behind the aggregate reports.
 *
 * The database does the counting: one GROUP BY per policy domain and
 * period turns the messages into <record>s (RFC 9990: "One record per
 * (IP, result, IDs Auths) tuples"), so a busy day costs one query, not
 * one row per message in memory.  dmarc_reports remembers which report
 * went to which destination: a report is sent once, and a run that failed
 * halfway can be repeated.  SQL is the dialect both SQLite and PostgreSQL
 * speak (dmarc-store.c).
 */
#include "dmarc-report.h"

static char *dmarc_int_text(gint64 value) {
  return g_strdup_printf("%" G_GINT64_FORMAT, value);
}

GPtrArray *dmarc_report_db_domains(DmarcStore *store, gint64 begin, gint64 end,
                                   GError **error) {
  g_autofree char *from = dmarc_int_text(begin), *to = dmarc_int_text(end);
  const char *params[] = {from, to, NULL};
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store,
      "SELECT DISTINCT policy_domain FROM dmarc_messages"
      " WHERE received >= $1 AND received < $2 ORDER BY policy_domain",
      params, error);
  if (rows == NULL)
    return NULL;
  GPtrArray *domains = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < rows->len; i++)
    g_ptr_array_add(domains, g_strdup(((char **)rows->pdata[i])[0]));
  return domains;
}

static DmarcReportRecord *dmarc_record_from_row(char **row) {
  DmarcReportRecord *record = g_new0(DmarcReportRecord, 1);
  record->source_ip = g_strdup(row[0]);
  record->result = g_strdup(row[1]);
  record->disposition = g_strdup(row[2]);
  record->override = g_strdup(row[3]);
  record->header_from = g_strdup(row[4]);
  record->envelope_from = g_strdup(row[5]);
  record->envelope_to = g_strdup(row[6]);
  record->dkim_aligned = g_str_equal(row[7], "y");
  record->spf_aligned = g_str_equal(row[8], "y");
  record->spf_domain = g_strdup(row[9]);
  record->spf_result = g_strdup(row[10]);
  record->spf_human = g_strdup(row[11]);
  record->dkim = g_strdup(row[12]);
  record->count = g_ascii_strtoull(row[13], NULL, 10);
  return record;
}

GPtrArray *dmarc_report_db_records(DmarcStore *store, const char *domain,
                                   gint64 begin, gint64 end, GStrv *policy_r,
                                   GError **error) {
  g_autofree char *from = dmarc_int_text(begin), *to = dmarc_int_text(end);
  const char *params[] = {domain, from, to, NULL};
  g_autoptr(GPtrArray) policy = dmarc_store_query(
      store,
      "SELECT p, sp, np, adkim, aspf, testing, psd, fo, rua"
      " FROM dmarc_messages WHERE policy_domain = $1 AND received >= $2"
      " AND received < $3 ORDER BY received DESC LIMIT 1",
      params, error);
  if (policy == NULL)
    return NULL;
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store,
      "SELECT source_ip, result, disposition, override, header_from,"
      " envelope_from, envelope_to, dkim_aligned, spf_aligned, spf_domain,"
      " spf_result, spf_human, dkim, SUM(messages) FROM dmarc_messages"
      " WHERE policy_domain = $1 AND received >= $2 AND received < $3"
      " GROUP BY source_ip, result, disposition, override, header_from,"
      " envelope_from, envelope_to, dkim_aligned, spf_aligned, spf_domain,"
      " spf_result, spf_human, dkim"
      " ORDER BY source_ip, header_from, result, disposition, dkim",
      params, error);
  if (rows == NULL)
    return NULL;
  GPtrArray *records =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_report_record_free);
  for (guint i = 0; i < rows->len; i++)
    g_ptr_array_add(records, dmarc_record_from_row(rows->pdata[i]));
  *policy_r = policy->len > 0 ? g_strdupv(policy->pdata[0]) : NULL;
  return records;
}

gboolean dmarc_report_db_gap(DmarcStore *store, const char *domain,
                             gint64 begin, gint64 end, DmarcReportGap *gap_r,
                             GError **error) {
  g_autofree char *from = dmarc_int_text(begin), *to = dmarc_int_text(end);
  const char *params[] = {domain, from, to, NULL};
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store,
      "SELECT COALESCE(SUM(lost), 0), COALESCE(MIN(first_lost), 0),"
      " COALESCE(MAX(last_lost), 0) FROM dmarc_gaps WHERE policy_domain = $1"
      " AND last_lost >= $2 AND first_lost < $3",
      params, error);
  if (rows == NULL)
    return FALSE;
  char **row = rows->len > 0 ? rows->pdata[0] : NULL;
  gap_r->lost = row != NULL ? g_ascii_strtoull(row[0], NULL, 10) : 0;
  gap_r->first = row != NULL ? g_ascii_strtoll(row[1], NULL, 10) : 0;
  gap_r->last = row != NULL ? g_ascii_strtoll(row[2], NULL, 10) : 0;
  return TRUE;
}

/* Whether `sql` with `params` returns a row. */
static gboolean dmarc_query_has_rows(DmarcStore *store, const char *sql,
                                     const char *const *params,
                                     gboolean *found_r, GError **error) {
  g_autoptr(GPtrArray) rows = dmarc_store_query(store, sql, params, error);
  if (rows == NULL)
    return FALSE;
  *found_r = rows->len > 0;
  return TRUE;
}

gboolean dmarc_report_db_was_sent(DmarcStore *store, const char *domain,
                                  gint64 begin, const char *destination,
                                  gboolean *sent_r, GError **error) {
  g_autofree char *from = dmarc_int_text(begin);
  const char *params[] = {domain, from, destination, NULL};
  return dmarc_query_has_rows(
      store,
      "SELECT report_id FROM dmarc_reports WHERE policy_domain = $1"
      " AND period_begin = $2 AND destination = $3",
      params, sent_r, error);
}

gboolean dmarc_report_db_mark_sent(DmarcStore *store, const char *domain,
                                   gint64 begin, const char *destination,
                                   const char *report_id, GError **error) {
  g_autofree char *from = dmarc_int_text(begin);
  g_autofree char *now = dmarc_int_text(g_get_real_time() / G_USEC_PER_SEC);
  const char *params[] = {domain, from, destination, report_id, now, NULL};
  return dmarc_store_exec(
      store,
      "INSERT INTO dmarc_reports (policy_domain, period_begin, destination,"
      " report_id, sent) VALUES ($1, $2, $3, $4, $5)",
      params, error);
}

gboolean dmarc_report_db_sent_since(DmarcStore *store, const char *destination,
                                    gint64 since, guint *count_r,
                                    GError **error) {
  g_autofree char *from = dmarc_int_text(since);
  const char *params[] = {destination, from, NULL};
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store,
      "SELECT (SELECT COUNT(*) FROM dmarc_reports WHERE destination = $1"
      " AND sent >= $2) + (SELECT COUNT(*) FROM dmarc_failures_sent"
      " WHERE destination = $1 AND sent >= $2)",
      params, error);
  if (rows == NULL)
    return FALSE;
  *count_r =
      rows->len > 0
          ? (guint)g_ascii_strtoull(((char **)rows->pdata[0])[0], NULL, 10)
          : 0;
  return TRUE;
}

GPtrArray *dmarc_report_db_failures(DmarcStore *store, gint64 since,
                                    GError **error) {
  g_autofree char *from = dmarc_int_text(since);
  const char *params[] = {from, NULL};
  return dmarc_store_query(
      store,
      "SELECT id, policy_domain, ruf, subject, feedback, headers"
      " FROM dmarc_failures WHERE received >= $1 ORDER BY received, id",
      params, error);
}

gboolean dmarc_report_db_failure_was_sent(DmarcStore *store, const char *id,
                                          const char *destination,
                                          gboolean *sent_r, GError **error) {
  const char *params[] = {id, destination, NULL};
  return dmarc_query_has_rows(store,
                              "SELECT sent FROM dmarc_failures_sent"
                              " WHERE id = $1 AND destination = $2",
                              params, sent_r, error);
}

gboolean dmarc_report_db_failure_mark_sent(DmarcStore *store, const char *id,
                                           const char *destination,
                                           GError **error) {
  g_autofree char *now = dmarc_int_text(g_get_real_time() / G_USEC_PER_SEC);
  const char *params[] = {id, destination, now, NULL};
  return dmarc_store_exec(store,
                          "INSERT INTO dmarc_failures_sent (id, destination,"
                          " sent) VALUES ($1, $2, $3)",
                          params, error);
}

/* --- Expiry ------------------------------------------------------------------
 */

#define DMARC_EXPIRE_STEP (60 * 60) /* seconds of arrivals per DELETE */
#define DMARC_EXPIRE_DAY (24 * 60 * 60)

/* Rows, messages and the first arrival of the evaluations before
 * `before`; *rows_r is 0 when there are none. */
static gboolean dmarc_expire_count(DmarcStore *store, const char *before,
                                   guint64 *rows_r, guint64 *messages_r,
                                   gint64 *first_r, GError **error) {
  const char *params[] = {before, NULL};
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store,
      "SELECT COUNT(*), COALESCE(SUM(messages), 0), MIN(received)"
      " FROM dmarc_messages WHERE received < $1",
      params, error);
  if (rows == NULL)
    return FALSE;
  char **row = rows->len > 0 ? rows->pdata[0] : NULL;
  *rows_r = row != NULL ? g_ascii_strtoull(row[0], NULL, 10) : 0;
  *messages_r = row != NULL ? g_ascii_strtoull(row[1], NULL, 10) : 0;
  *first_r = row != NULL && *rows_r > 0 ? g_ascii_strtoll(row[2], NULL, 10) : 0;
  return TRUE;
}

/* The first arrival of the evaluations before `before` in *first_r, or
 * FALSE in *found_r when there are none: one seek in the index on
 * `received`, where a COUNT would scan every row left. */
static gboolean dmarc_expire_first(DmarcStore *store, const char *before,
                                   gboolean *found_r, gint64 *first_r,
                                   GError **error) {
  const char *params[] = {before, NULL};
  g_autoptr(GPtrArray) rows = dmarc_store_query(
      store, "SELECT MIN(received) FROM dmarc_messages WHERE received < $1",
      params, error);
  if (rows == NULL)
    return FALSE;
  const char *first = rows->len > 0 ? ((char **)rows->pdata[0])[0] : NULL;
  *found_r = first != NULL && *first != '\0';
  *first_r = *found_r ? g_ascii_strtoll(first, NULL, 10) : 0;
  return TRUE;
}

/* The evaluations before `before`, an hour of arrivals at a time from the
 * first (`first`, then the first left after each step): each DELETE
 * commits on its own, and a gap of months between two rows costs one
 * step, not one per hour. */
static gboolean dmarc_expire_messages(DmarcStore *store, gint64 first,
                                      gint64 before, GError **error) {
  g_autofree char *limit = dmarc_int_text(before);
  for (;;) {
    g_autofree char *step = dmarc_int_text(
        first < before - DMARC_EXPIRE_STEP ? first + DMARC_EXPIRE_STEP
                                           : before);
    const char *params[] = {step, NULL};
    gboolean more = FALSE;
    if (!dmarc_store_exec(store,
                          "DELETE FROM dmarc_messages WHERE received < $1",
                          params, error) ||
        !dmarc_expire_first(store, limit, &more, &first, error))
      return FALSE;
    if (!more)
      return TRUE;
  }
}

gboolean dmarc_report_db_expire(DmarcStore *store, gint64 before,
                                guint64 *rows_r, guint64 *messages_r,
                                GError **error) {
  g_autofree char *limit = dmarc_int_text(before);
  g_autofree char *day_limit = dmarc_int_text(before - DMARC_EXPIRE_DAY);
  gint64 first = 0;
  if (!dmarc_expire_count(store, limit, rows_r, messages_r, &first, error) ||
      (*rows_r > 0 && !dmarc_expire_messages(store, first, before, error)))
    return FALSE;
  static const struct {
    const char *sql;
    gboolean whole_days; /* by a period's beginning: days ended by then */
  } tables[] = {
      {"DELETE FROM dmarc_failures WHERE received < $1", FALSE},
      {"DELETE FROM dmarc_failures_sent WHERE sent < $1", FALSE},
      {"DELETE FROM dmarc_gaps WHERE last_lost < $1", FALSE},
      {"DELETE FROM dmarc_reports WHERE period_begin <= $1", TRUE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(tables); i++) {
    const char *params[] = {tables[i].whole_days ? day_limit : limit, NULL};
    if (!dmarc_store_exec(store, tables[i].sql, params, error))
      return FALSE;
  }
  return TRUE;
}
