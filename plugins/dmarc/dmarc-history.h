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

/* --- Failure reports (RFC 9991, dmarc-failure.c) ------------------------- */

/* One failure report, kept in dmarc_failures until sent. */
typedef struct {
  char *id;            /* owned: unique, also the report's Message-ID */
  gint64 received;     /* Unix time */
  char *policy_domain; /* owned */
  char *ruf;           /* owned: the record's ruf= URIs, ','-joined */
  char *subject;       /* owned */
  char *feedback;      /* owned: the message/feedback-report part */
  char *headers;       /* owned: the reported message's header */
} DmarcFailure;

/* What the evaluation does not know about the message. */
typedef struct {
  const char *hostname;    /* ours, for Authentication-Results and ids */
  const char *client;      /* the client's address */
  const char *sender;      /* the envelope sender ("" for <>) */
  const char *disposition; /* none, quarantine, reject */
  const char *headers;     /* the header fields, CRLF-terminated */
} DmarcFailureContext;

/* A report when the record's fo= asks for one (and has ruf=, and is no
 * PSD's), else NULL. */
DmarcFailure *dmarc_failure_new(const DmarcOutcome *outcome,
                                const DmarcFailureContext *context);
void dmarc_failure_free(DmarcFailure *failure);
/* "dmarc", "dkim", "spf" (Auth-Failure) as fo= asks, or NULL. */
const char *dmarc_failure_type(const DmarcOutcome *outcome);
/* The ARF message to `to` (CRLF lines). */
char *dmarc_failure_message(const char *from, const char *to,
                            const char *subject, const char *id,
                            const char *feedback, const char *headers,
                            GDateTime *date);
gboolean dmarc_failure_insert(DmarcStore *store, const DmarcFailure *failure,
                              GError **error);

/* --- Rows -------------------------------------------------------------------
 */

/* One evaluated message, as the tables keep it.  The texts follow the
 * row in its one allocation (`strings`), made on the main loop and freed
 * on the writer thread.  The writer stores identical rows of one
 * second as one, with their count (`messages`). */
typedef struct {
  gint64 received; /* Unix time */
  const char *policy_domain, *source_ip, *header_from, *envelope_from,
      *envelope_to, *result;
  gboolean spf_aligned, dkim_aligned;
  const char *spf_domain, *spf_scope, *spf_result;
  const char *spf_human; /* why SPF erred, or "" */
  /* "DOMAIN SELECTOR RESULT[ HUMAN_RESULT]" lines, '\n'-separated */
  const char *dkim;
  const char *disposition, *override; /* override: "" for none */
  /* The policy published: p, sp, np ("" when absent), adkim, aspf ("r" or
   * "s"), testing ("y" or "n"), psd, fo, rua (','-joined). */
  const char *p, *sp, *np, *adkim, *aspf, *testing, *psd, *fo, *rua;
  char *strings;         /* every text above: in the row's allocation */
  gsize length;          /* of `strings`, NULs included */
  guint64 messages;      /* evaluations the row stands for: 1 when made */
  DmarcFailure *failure; /* owned, nullable: a failure report to keep */
} DmarcHistoryRow;

/* The row of an evaluation whose outcome has a policy record;
 * `disposition` as RFC 9990 names it, `override` nullable. */
DmarcHistoryRow *dmarc_history_row_new(const DmarcOutcome *outcome,
                                       const char *source_ip,
                                       const char *envelope_from,
                                       const char *envelope_to,
                                       const char *disposition,
                                       const char *override);
void dmarc_history_row_free(DmarcHistoryRow *row);
/* The columns of dmarc_messages a row fills, and the most rows one
 * INSERT takes. */
#define DMARC_ROW_COLUMNS 26
#define DMARC_INSERT_ROWS 16
/* The rows of `rows` (of DmarcHistoryRow*) that differ, in order: each
 * stands for the rows equal to it in every column (the same evaluation in
 * the same second), whose counts it took into `messages`.  The rows left
 * out stay in `rows` (their failure reports too).  Not owning. */
GPtrArray *dmarc_history_rows_merge(GPtrArray *rows);
/* The INSERT of `count` rows, parameters $1.. row after row (new). */
char *dmarc_history_insert_sql(guint count);
/* Inserts `count` rows (at most DMARC_INSERT_ROWS) with `sql`, which
 * dmarc_history_insert_sql(count) made, inside the caller's transaction
 * if any. */
gboolean dmarc_history_rows_insert(DmarcStore *store,
                                   const DmarcHistoryRow *const *rows,
                                   guint count, const char *sql,
                                   GError **error);

/* --- The writer
 * --------------------------------------------------------------- */

/* A writer thread that keeps rows for `uri`; reference-counted (each hook
 * and job holds one); the last unref flushes what is queued and joins. */
typedef struct _DmarcHistory DmarcHistory;

DmarcHistory *dmarc_history_new(const char *uri, PstPlugin *plugin);
DmarcHistory *dmarc_history_ref(DmarcHistory *history);
void dmarc_history_unref(DmarcHistory *history);
/* Queues `row` (taken over); never blocks.  Any thread; the rows reach
 * the writer from a timeout on the default main context (the daemon's
 * loop), or at once every DMARC_BATCH rows, flush and unref. */
void dmarc_history_add(DmarcHistory *history, DmarcHistoryRow *row);
/* Whether one more failure report for `domain` is allowed this hour (at
 * most DMARC_FAILURES_PER_HOUR: RFC 9991 asks receivers to keep their
 * volume down).  Counts it when allowed.  Any thread. */
#define DMARC_FAILURES_PER_HOUR 10
gboolean dmarc_history_failure_allowed(DmarcHistory *history,
                                       const char *domain);
/* Waits until every row queued so far is written or counted lost (tests,
 * shutdown). */
void dmarc_history_flush(DmarcHistory *history);

G_END_DECLS
