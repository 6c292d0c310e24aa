/* dmarc-store.c - the history database: SQLite (embedded, the default) or
 * PostgreSQL (libpq, for several MX hosts writing one history).
 *
 * One small vtable (exec, query, close) over both, with SQL written once:
 * parameters are $1..$N in order of appearance, which both engines accept
 * (SQLite numbers "$NAME" parameters by first appearance), every value
 * travels as text, and the schema uses only types both know.  Opening
 * creates the tables (dmarc_messages: one row per evaluation, or per
 * equal evaluations of one second with their count in `messages`;
 * dmarc_reports: one row per report sent, so a report is never sent twice
 * and a failed run can be repeated; dmarc_failures and
 * dmarc_failures_sent: the same for failure reports; dmarc_gaps:
 * evaluations the writer could not record, per policy domain, so that a
 * report says it undercounts).  Columns added later are added to an older
 * history when it is opened (dmarc_added_columns).  Blocking: used by the
 * plugin's writer thread and by `postilion dmarc report`, never the main loop.
 */
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "dmarc-history.h"

typedef struct {
  gboolean (*exec)(DmarcStore *store, const char *sql,
                   const char *const *params, GPtrArray *rows, GError **error);
  void (*close)(DmarcStore *store);
} DmarcStoreClass;

struct _DmarcStore {
  const DmarcStoreClass *klass;
  sqlite3 *sqlite;        /* owned, nullable */
  GHashTable *statements; /* SQLite: SQL text -> its prepared statement */
  PGconn *pg;             /* owned, nullable */
};

static const char *const dmarc_schema[] = {
    "CREATE TABLE IF NOT EXISTS dmarc_messages ("
    " received BIGINT NOT NULL, policy_domain TEXT NOT NULL,"
    " source_ip TEXT NOT NULL, header_from TEXT NOT NULL,"
    " envelope_from TEXT NOT NULL, envelope_to TEXT NOT NULL,"
    " result TEXT NOT NULL, spf_aligned TEXT NOT NULL,"
    " dkim_aligned TEXT NOT NULL, spf_domain TEXT NOT NULL,"
    " spf_scope TEXT NOT NULL, spf_result TEXT NOT NULL,"
    " spf_human TEXT NOT NULL DEFAULT '', dkim TEXT NOT NULL,"
    " disposition TEXT NOT NULL, override TEXT NOT NULL, p TEXT NOT NULL,"
    " sp TEXT NOT NULL, np TEXT NOT NULL, adkim TEXT NOT NULL,"
    " aspf TEXT NOT NULL, testing TEXT NOT NULL, psd TEXT NOT NULL,"
    " fo TEXT NOT NULL, rua TEXT NOT NULL,"
    " messages BIGINT NOT NULL DEFAULT 1)",
    "CREATE INDEX IF NOT EXISTS dmarc_messages_received"
    " ON dmarc_messages (received, policy_domain)",
    "CREATE TABLE IF NOT EXISTS dmarc_reports ("
    " policy_domain TEXT NOT NULL, period_begin BIGINT NOT NULL,"
    " destination TEXT NOT NULL, report_id TEXT NOT NULL,"
    " sent BIGINT NOT NULL,"
    " PRIMARY KEY (policy_domain, period_begin, destination))",
    "CREATE TABLE IF NOT EXISTS dmarc_failures ("
    " id TEXT PRIMARY KEY, received BIGINT NOT NULL,"
    " policy_domain TEXT NOT NULL, ruf TEXT NOT NULL, subject TEXT NOT NULL,"
    " feedback TEXT NOT NULL, headers TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dmarc_failures_sent ("
    " id TEXT NOT NULL, destination TEXT NOT NULL, sent BIGINT NOT NULL,"
    " PRIMARY KEY (id, destination))",
    "CREATE TABLE IF NOT EXISTS dmarc_gaps ("
    " policy_domain TEXT NOT NULL, first_lost BIGINT NOT NULL,"
    " last_lost BIGINT NOT NULL, lost BIGINT NOT NULL)",
};

/* Columns added after a history was first created: an older one gets them
 * when opened. */
static const struct {
  const char *table, *column, *definition;
} dmarc_added_columns[] = {
    {"dmarc_messages", "spf_human", "TEXT NOT NULL DEFAULT ''"},
    {"dmarc_messages", "messages", "BIGINT NOT NULL DEFAULT 1"},
};

#define DMARC_STORE_ERROR g_quark_from_static_string("dmarc-store")

/* --- SQLite ------------------------------------------------------------------
 */

static void dmarc_sqlite_row(sqlite3_stmt *statement, GPtrArray *rows) {
  int columns = sqlite3_column_count(statement);
  char **row = g_new0(char *, columns + 1);
  for (int i = 0; i < columns; i++) {
    const unsigned char *text = sqlite3_column_text(statement, i);
    row[i] = g_strdup(text != NULL ? (const char *)text : "");
  }
  g_ptr_array_add(rows, row);
}

/* A hash of an SQL text from its length and its first and last 32
 * octets: the history's INSERT is 500 octets, which g_str_hash() read
 * octet by octet for every row (g_str_equal() still compares the whole
 * text). */
static guint dmarc_sql_hash(gconstpointer key) {
  const char *sql = key;
  gsize length = strlen(sql);
  guint hash = (guint)length;
  gsize head = MIN(length, 32);
  for (gsize i = 0; i < head; i++)
    hash = hash * 31 + (guchar)sql[i];
  for (gsize i = length - MIN(length - head, 32); i < length; i++)
    hash = hash * 31 + (guchar)sql[i];
  return hash;
}

/* The statement of `sql`, prepared once and reused (a history row's
 * INSERT took longer to prepare than to run), or NULL with `status_r`. */
static sqlite3_stmt *dmarc_sqlite_statement(DmarcStore *store,
                                            const char *sql, int *status_r) {
  sqlite3_stmt *statement = g_hash_table_lookup(store->statements, sql);
  if (statement != NULL)
    return statement;
  *status_r = sqlite3_prepare_v2(store->sqlite, sql, -1, &statement, NULL);
  if (*status_r != SQLITE_OK) {
    sqlite3_finalize(statement);
    return NULL;
  }
  g_hash_table_insert(store->statements, g_strdup(sql), statement);
  return statement;
}

static gboolean dmarc_sqlite_exec(DmarcStore *store, const char *sql,
                                  const char *const *params, GPtrArray *rows,
                                  GError **error) {
  int status = SQLITE_OK;
  sqlite3_stmt *statement = dmarc_sqlite_statement(store, sql, &status);
  /* SQLITE_STATIC: the parameters outlive the statement's use (its
   * bindings are cleared below), so SQLite need not copy each one. */
  for (int i = 0; status == SQLITE_OK && params != NULL && params[i] != NULL;
       i++)
    status = sqlite3_bind_text(statement, i + 1, params[i], -1, SQLITE_STATIC);
  if (status == SQLITE_OK) {
    while ((status = sqlite3_step(statement)) == SQLITE_ROW)
      if (rows != NULL)
        dmarc_sqlite_row(statement, rows);
    if (status == SQLITE_DONE)
      status = SQLITE_OK;
  }
  if (status != SQLITE_OK)
    g_set_error(error, DMARC_STORE_ERROR, status, "SQLite: %s",
                sqlite3_errmsg(store->sqlite));
  if (statement != NULL) {
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
  }
  return status == SQLITE_OK;
}

static void dmarc_sqlite_finalize(gpointer statement) {
  sqlite3_finalize(statement);
}

static void dmarc_sqlite_close(DmarcStore *store) {
  g_hash_table_unref(store->statements);
  sqlite3_close(store->sqlite);
}

static const DmarcStoreClass dmarc_sqlite_class = {dmarc_sqlite_exec,
                                                   dmarc_sqlite_close};

static gboolean dmarc_sqlite_open(DmarcStore *store, const char *path,
                                  GError **error) {
  store->klass = &dmarc_sqlite_class;
  store->statements = g_hash_table_new_full(dmarc_sql_hash, g_str_equal, g_free,
                                            dmarc_sqlite_finalize);
  int status = sqlite3_open_v2(
      path, &store->sqlite,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (status != SQLITE_OK) {
    g_set_error(error, DMARC_STORE_ERROR, status, "SQLite %s: %s", path,
                store->sqlite != NULL ? sqlite3_errmsg(store->sqlite)
                                      : sqlite3_errstr(status));
    return FALSE;
  }
  /* Another writer (the report tool) waits instead of failing. */
  sqlite3_busy_timeout(store->sqlite, 10000);
  return dmarc_store_exec(store, "PRAGMA journal_mode=WAL", NULL, error);
}

/* --- PostgreSQL
 * ----------------------------------------------------------------- */

static gboolean dmarc_pg_exec(DmarcStore *store, const char *sql,
                              const char *const *params, GPtrArray *rows,
                              GError **error) {
  int count = params != NULL ? (int)g_strv_length((char **)params) : 0;
  PGresult *result =
      PQexecParams(store->pg, sql, count, NULL, params, NULL, NULL, 0);
  ExecStatusType status = PQresultStatus(result);
  gboolean ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  if (!ok)
    g_set_error(error, DMARC_STORE_ERROR, status, "PostgreSQL: %s",
                g_strchomp(PQresultErrorMessage(result)));
  for (int r = 0; ok && rows != NULL && r < PQntuples(result); r++) {
    int columns = PQnfields(result);
    char **row = g_new0(char *, columns + 1);
    for (int c = 0; c < columns; c++)
      row[c] = g_strdup(PQgetvalue(result, r, c));
    g_ptr_array_add(rows, row);
  }
  PQclear(result);
  return ok;
}

static void dmarc_pg_close(DmarcStore *store) {
  PQfinish(store->pg);
}

static const DmarcStoreClass dmarc_pg_class = {dmarc_pg_exec, dmarc_pg_close};

static gboolean dmarc_pg_open(DmarcStore *store, const char *uri,
                              GError **error) {
  store->klass = &dmarc_pg_class;
  store->pg = PQconnectdb(uri);
  if (PQstatus(store->pg) == CONNECTION_OK) {
    /* CREATE ... IF NOT EXISTS notices are not worth a log line. */
    return dmarc_store_exec(store, "SET client_min_messages = warning", NULL,
                            error);
  }
  g_set_error(error, DMARC_STORE_ERROR, 0, "PostgreSQL: %s",
              g_strchomp(PQerrorMessage(store->pg)));
  return FALSE;
}

/* --- The store
 * ------------------------------------------------------------------ */

static gboolean dmarc_store_has_column(DmarcStore *store, const char *table,
                                       const char *column) {
  g_autofree char *sql =
      g_strdup_printf("SELECT %s FROM %s WHERE 1 = 0", column, table);
  return dmarc_store_exec(store, sql, NULL, NULL);
}

/* Adds the missing columns.  Another opener (the report tool, a second MX
 * host) may add one at the same time: an ALTER that fails because the
 * column now exists is no error. */
static gboolean dmarc_store_upgrade(DmarcStore *store, GError **error) {
  for (guint i = 0; i < G_N_ELEMENTS(dmarc_added_columns); i++) {
    const char *table = dmarc_added_columns[i].table;
    const char *column = dmarc_added_columns[i].column;
    if (dmarc_store_has_column(store, table, column))
      continue;
    g_autofree char *sql =
        g_strdup_printf("ALTER TABLE %s ADD COLUMN %s %s", table, column,
                        dmarc_added_columns[i].definition);
    g_autoptr(GError) local = NULL;
    if (!dmarc_store_exec(store, sql, NULL, &local) &&
        !dmarc_store_has_column(store, table, column)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
  }
  return TRUE;
}

DmarcStore *dmarc_store_open(const char *uri, GError **error) {
  g_autoptr(DmarcStore) store = g_new0(DmarcStore, 1);
  gboolean ok = g_str_has_prefix(uri, "sqlite:")
                    ? dmarc_sqlite_open(store, uri + strlen("sqlite:"), error)
                    : dmarc_pg_open(store, uri, error);
  for (guint i = 0; ok && i < G_N_ELEMENTS(dmarc_schema); i++)
    ok = dmarc_store_exec(store, dmarc_schema[i], NULL, error);
  ok = ok && dmarc_store_upgrade(store, error);
  return ok ? g_steal_pointer(&store) : NULL;
}

void dmarc_store_close(DmarcStore *store) {
  if (store == NULL)
    return;
  if (store->klass != NULL)
    store->klass->close(store);
  g_free(store);
}

gboolean dmarc_store_exec(DmarcStore *store, const char *sql,
                          const char *const *params, GError **error) {
  return store->klass->exec(store, sql, params, NULL, error);
}

GPtrArray *dmarc_store_query(DmarcStore *store, const char *sql,
                             const char *const *params, GError **error) {
  GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
  if (store->klass->exec(store, sql, params, rows, error))
    return rows;
  g_ptr_array_unref(rows);
  return NULL;
}
