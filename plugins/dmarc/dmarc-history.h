/* dmarc-history.h - the evaluation history behind the aggregate reports:
 * the store (SQLite or PostgreSQL, dmarc-store.c) and the plugin's writer
 * thread (dmarc-history.c).
 */
#pragma once

#include "dmarc.h"

G_BEGIN_DECLS

/* --- The store: one connection, string parameters and values ------------ */

typedef struct _DmarcStore DmarcStore;

/* Opens `uri` ("sqlite:/PATH" or "postgresql://...") and creates the
 * tables when they are missing.  Blocking: a worker thread or the tool. */
DmarcStore *dmarc_store_open(const char *uri, GError **error);
void dmarc_store_close(DmarcStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DmarcStore, dmarc_store_close)

/* Runs `sql` with the parameters $1..$N (`params`, NULL-terminated, NULL
 * entries are SQL NULL... a parameter may not be NULL: use "" instead). */
gboolean dmarc_store_exec(DmarcStore *store, const char *sql,
                          const char *const *params, GError **error);
/* Runs a query; the rows, each a NULL-terminated GStrv (SQL NULL is "").
 * NULL with `error` set on failure. */
GPtrArray *dmarc_store_query(DmarcStore *store, const char *sql,
                             const char *const *params, GError **error);

/* --- Rows ------------------------------------------------------------------- */

/* One evaluated message, as the tables keep it. */
typedef struct {
  gint64 received; /* Unix time */
  char *policy_domain, *source_ip, *header_from, *envelope_from,
      *envelope_to, *result;
  gboolean spf_aligned, dkim_aligned;
  char *spf_domain, *spf_scope, *spf_result;
  char *dkim; /* "DOMAIN SELECTOR RESULT" lines, '\n'-separated */
  char *disposition, *override;
  /* The policy published: p, sp, np ("" when absent), adkim, aspf ("r" or
   * "s"), testing ("y" or "n"), psd, fo, rua (','-joined). */
  char *p, *sp, *np, *adkim, *aspf, *testing, *psd, *fo, *rua;
} DmarcHistoryRow;

DmarcHistoryRow *dmarc_history_row_new(const DmarcOutcome *outcome,
                                       const char *source_ip,
                                       const char *envelope_from,
                                       const char *envelope_to);
void dmarc_history_row_free(DmarcHistoryRow *row);
/* Inserts one row (inside the caller's transaction, if any). */
gboolean dmarc_history_row_insert(DmarcStore *store,
                                  const DmarcHistoryRow *row, GError **error);

/* --- The writer --------------------------------------------------------------- */

/* A writer thread that keeps rows for `uri`; reference-counted (each hook
 * and job holds one); the last unref flushes what is queued and joins. */
typedef struct _DmarcHistory DmarcHistory;

DmarcHistory *dmarc_history_new(const char *uri, PstPlugin *plugin);
DmarcHistory *dmarc_history_ref(DmarcHistory *history);
void dmarc_history_unref(DmarcHistory *history);
/* Queues `row` (taken over); never blocks.  Main thread or any. */
void dmarc_history_add(DmarcHistory *history, DmarcHistoryRow *row);
/* Rows written, and rows lost (database down, queue full), so far. */
void dmarc_history_get_counts(DmarcHistory *history, guint64 *written_r,
                              guint64 *lost_r);
/* Waits until every row queued so far is written or counted lost (tests,
 * shutdown). */
void dmarc_history_flush(DmarcHistory *history);

G_END_DECLS
