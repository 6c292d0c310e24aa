/* dmarc-history.c - history rows and the plugin's writer thread.
 *
 * The EOM hook hands each evaluated message to dmarc_history_add(), which
 * only appends it to a list: the SMTP session never waits for a database.
 * The list goes to the writer thread every DMARC_HANDOFF_MS (one wake-up
 * of the thread per hand-off, not per message).  The thread takes rows in
 * batches (up to DMARC_BATCH rows, or what arrived within a second) and
 * writes each batch in one transaction: rows equal in every column (the
 * same evaluation in the same second, as a busy sender's mail is) as one
 * row that counts them (`messages`: SQLite's insert cost about 18,000
 * instructions a row, comparing one a few hundred), DMARC_INSERT_ROWS
 * rows per INSERT (a statement cost SQLite about as much as the row it
 * inserted), opening
 * the store on first use and again after a failure (after 1 s, backing
 * off to every DMARC_RETRY_SECONDS).  When the database is down or
 * refuses a batch, the rows are dropped, counted and logged (mail flow
 * never depends on the history); so are rows beyond DMARC_QUEUE_MAX
 * waiting.  What was lost is
 * also noted per policy domain (count, first and last arrival) and stored
 * in dmarc_gaps with the next batch that is written, so that the
 * aggregate reports of those days say they undercount.  The writer lives
 * as long as its last reference (hooks of a configuration, jobs in
 * flight); the last unref writes what is queued and joins the thread.
 */
#include <string.h>

#include "dmarc-history.h"

#define DMARC_BATCH 500
#define DMARC_HANDOFF_MS 100
#define DMARC_QUEUE_MAX 100000
/* After a failure the store is opened again after 1 s, then 2, 4, 8 and
 * 10 s at most while it stays down. */
#define DMARC_RETRY_FIRST_SECONDS 1
#define DMARC_RETRY_SECONDS 10

/* --- Rows ------------------------------------------------------------------
 */

/* Appends `text` (NULL: "") and its NUL to the row's block; returns
 * where it starts. */
static gsize dmarc_row_text(GString *block, const char *text) {
  gsize start = block->len;
  g_string_append(block, text != NULL ? text : "");
  g_string_append_c(block, '\0');
  return start;
}

static gsize dmarc_row_dkim_lines(GString *block, const GPtrArray *dkim) {
  gsize start = block->len;
  for (guint i = 0; i < dkim->len; i++) {
    const DmarcAuth *auth = dkim->pdata[i];
    if (auth->domain == NULL)
      continue;
    if (block->len > start)
      g_string_append_c(block, '\n');
    g_string_append(block, auth->domain);
    g_string_append_c(block, ' ');
    g_string_append(block,
                    auth->selector != NULL && auth->selector[0] != '\0' &&
                            strpbrk(auth->selector, " \n") == NULL
                        ? auth->selector
                        : "-");
    g_string_append_c(block, ' ');
    g_string_append(block, auth->result);
    /* dmarc_auth_set_human() left no control characters */
    if (auth->human != NULL) {
      g_string_append_c(block, ' ');
      g_string_append(block, auth->human);
    }
  }
  g_string_append_c(block, '\0');
  return start;
}

/* fo= as the report writes it ("0", "1:d", ...). */
static gsize dmarc_row_fo(GString *block, guint fo) {
  static const char names[] = {'0', '1', 'd', 's'};
  G_STATIC_ASSERT(DMARC_FO_0 == 1 << 0 && DMARC_FO_1 == 1 << 1 &&
                  DMARC_FO_D == 1 << 2 && DMARC_FO_S == 1 << 3);
  gsize start = block->len;
  for (guint i = 0; i < G_N_ELEMENTS(names); i++)
    if (fo & (1u << i)) {
      if (block->len > start)
        g_string_append_c(block, ':');
      g_string_append_c(block, names[i]);
    }
  g_string_append_c(block, '\0');
  return start;
}

static gsize dmarc_row_rua(GString *block, const GPtrArray *rua) {
  gsize start = block->len;
  for (guint i = 0; i < rua->len; i++) {
    if (i > 0)
      g_string_append_c(block, ',');
    g_string_append(block, rua->pdata[i]);
  }
  g_string_append_c(block, '\0');
  return start;
}

/* Where each text of a row starts in its allocation. */
typedef struct {
  gsize policy_domain, source_ip, header_from, envelope_from, envelope_to,
      spf_domain, spf_scope, spf_result, spf_human, dkim, disposition,
      override, fo, rua;
} DmarcRowOffsets;

static void dmarc_row_set_policy(DmarcHistoryRow *row,
                                 const DmarcRecord *record) {
  row->p = dmarc_policy_to_string(record->p);
  row->sp = dmarc_policy_to_string(record->sp);
  row->np = dmarc_policy_to_string(record->np);
  row->adkim = record->adkim_strict ? "s" : "r";
  row->aspf = record->aspf_strict ? "s" : "r";
  row->testing = record->testing ? "y" : "n";
  row->psd = record->psd == DMARC_PSD_Y   ? "y"
             : record->psd == DMARC_PSD_N ? "n"
                                          : "u";
}

DmarcHistoryRow *dmarc_history_row_new(const DmarcOutcome *outcome,
                                       const char *source_ip,
                                       const char *envelope_from,
                                       const char *envelope_to,
                                       const char *disposition,
                                       const char *override) {
  const DmarcAuth *spf = outcome->spf;
  /* The row and its texts in one allocation: the row, then the texts
   * (one malloc here, one free on the writer thread).  GLib's allocation
   * is aligned for any type. */
  GString *block = g_string_sized_new(sizeof(DmarcHistoryRow) + 256);
  g_string_set_size(block, sizeof(DmarcHistoryRow));
  DmarcRowOffsets at = {
      .policy_domain = dmarc_row_text(block, outcome->policy_domain),
      .source_ip = dmarc_row_text(block, source_ip),
      .header_from = dmarc_row_text(block, outcome->from_domain),
      .envelope_from = dmarc_row_text(block, envelope_from),
      .envelope_to = dmarc_row_text(block, envelope_to),
      .spf_domain = dmarc_row_text(block, spf != NULL ? spf->domain : NULL),
      .spf_scope = dmarc_row_text(block, spf != NULL ? spf->scope : NULL),
      .spf_result = dmarc_row_text(block, spf != NULL ? spf->result : "none"),
      .spf_human = dmarc_row_text(block, spf != NULL ? spf->human : NULL),
      .dkim = dmarc_row_dkim_lines(block, outcome->dkim),
      .disposition = dmarc_row_text(block, disposition),
      .override = dmarc_row_text(block, override),
      .fo = dmarc_row_fo(block, outcome->record->fo),
      .rua = dmarc_row_rua(block, outcome->record->rua),
  };
  gsize length = block->len - sizeof(DmarcHistoryRow);
  char *base = g_string_free(block, FALSE);
  DmarcHistoryRow *row = (DmarcHistoryRow *)(gpointer)base;
  memset(row, 0, sizeof *row);
  row->received = g_get_real_time() / G_USEC_PER_SEC;
  row->result = dmarc_result_to_string(outcome->result);
  row->spf_aligned = outcome->spf_aligned;
  row->dkim_aligned = outcome->dkim_aligned;
  dmarc_row_set_policy(row, outcome->record);
  row->messages = 1;
  row->strings = base + sizeof *row;
  row->length = length;
  row->policy_domain = base + at.policy_domain;
  row->source_ip = base + at.source_ip;
  row->header_from = base + at.header_from;
  row->envelope_from = base + at.envelope_from;
  row->envelope_to = base + at.envelope_to;
  row->spf_domain = base + at.spf_domain;
  row->spf_scope = base + at.spf_scope;
  row->spf_result = base + at.spf_result;
  row->spf_human = base + at.spf_human;
  row->dkim = base + at.dkim;
  row->disposition = base + at.disposition;
  row->override = base + at.override;
  row->fo = base + at.fo;
  row->rua = base + at.rua;
  return row;
}

void dmarc_history_row_free(DmarcHistoryRow *row) {
  dmarc_failure_free(row->failure);
  g_free(row); /* its texts too */
}

gboolean dmarc_failure_insert(DmarcStore *store, const DmarcFailure *failure,
                              GError **error) {
  g_autofree char *received =
      g_strdup_printf("%" G_GINT64_FORMAT, failure->received);
  const char *params[] = {
      failure->id,      received,          failure->policy_domain, failure->ruf,
      failure->subject, failure->feedback, failure->headers,       NULL};
  return dmarc_store_exec(
      store,
      "INSERT INTO dmarc_failures (id, received, policy_domain, ruf, subject,"
      " feedback, headers) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      params, error);
}

/* `value` in decimal into `out` (at least 21 octets). */
static const char *dmarc_int64_text(gint64 value, char *out) {
  char digits[21];
  gsize n = 0;
  guint64 magnitude = value < 0 ? -(guint64)value : (guint64)value;
  do
    digits[n++] = (char)('0' + magnitude % 10);
  while ((magnitude /= 10) != 0);
  gsize length = 0;
  if (value < 0)
    out[length++] = '-';
  while (n > 0)
    out[length++] = digits[--n];
  out[length] = '\0';
  return out;
}

/* The row's DMARC_ROW_COLUMNS values, in the INSERT's order; `received`
 * and `messages` hold those numbers as text. */
static void dmarc_history_row_params(const DmarcHistoryRow *row,
                                     const char **params, char *received,
                                     char *messages) {
#define S(x) ((x) != NULL ? (x) : "")
  const char *values[] = {
      dmarc_int64_text(row->received, received),
      S(row->policy_domain),
      S(row->source_ip),
      S(row->header_from),
      S(row->envelope_from),
      S(row->envelope_to),
      S(row->result),
      row->spf_aligned ? "y" : "n",
      row->dkim_aligned ? "y" : "n",
      S(row->spf_domain),
      S(row->spf_scope),
      S(row->spf_result),
      S(row->spf_human),
      S(row->dkim),
      S(row->disposition),
      S(row->override),
      S(row->p),
      S(row->sp),
      S(row->np),
      S(row->adkim),
      S(row->aspf),
      S(row->testing),
      S(row->psd),
      S(row->fo),
      S(row->rua),
      dmarc_int64_text((gint64)row->messages, messages),
  };
#undef S
  G_STATIC_ASSERT(G_N_ELEMENTS(values) == DMARC_ROW_COLUMNS);
  memcpy(params, values, sizeof values);
}

char *dmarc_history_insert_sql(guint count) {
  GString *sql = g_string_new(
      "INSERT INTO dmarc_messages (received, policy_domain, source_ip,"
      " header_from, envelope_from, envelope_to, result, spf_aligned,"
      " dkim_aligned, spf_domain, spf_scope, spf_result, spf_human, dkim,"
      " disposition, override, p, sp, np, adkim, aspf, testing, psd, fo, rua,"
      " messages) VALUES ");
  for (guint r = 0; r < count; r++) {
    g_string_append(sql, r > 0 ? ", (" : "(");
    for (guint c = 1; c <= DMARC_ROW_COLUMNS; c++)
      g_string_append_printf(sql, c > 1 ? ", $%u" : "$%u",
                             r * DMARC_ROW_COLUMNS + c);
    g_string_append_c(sql, ')');
  }
  return g_string_free(sql, FALSE);
}

gboolean dmarc_history_rows_insert(DmarcStore *store,
                                   const DmarcHistoryRow *const *rows,
                                   guint count, const char *sql,
                                   GError **error) {
  g_return_val_if_fail(count <= DMARC_INSERT_ROWS, FALSE);
  const char *params[DMARC_INSERT_ROWS * DMARC_ROW_COLUMNS + 1];
  char received[DMARC_INSERT_ROWS][24], messages[DMARC_INSERT_ROWS][24];
  for (guint r = 0; r < count; r++)
    dmarc_history_row_params(rows[r], params + r * DMARC_ROW_COLUMNS,
                             received[r], messages[r]);
  params[count * DMARC_ROW_COLUMNS] = NULL;
  return dmarc_store_exec(store, sql, params, error);
}

/* --- Merging equal rows ----------------------------------------------------
 */

/* The texts a row points to outside its block (static strings). */
static gboolean dmarc_row_outside_equal(const DmarcHistoryRow *a,
                                        const DmarcHistoryRow *b) {
  const char *const left[] = {a->result, a->p,    a->sp,      a->np,
                              a->adkim,  a->aspf, a->testing, a->psd};
  const char *const right[] = {b->result, b->p,    b->sp,      b->np,
                               b->adkim,  b->aspf, b->testing, b->psd};
  for (guint i = 0; i < G_N_ELEMENTS(left); i++)
    if (g_strcmp0(left[i], right[i]) != 0)
      return FALSE;
  return TRUE;
}

static guint dmarc_row_hash(gconstpointer key) {
  const DmarcHistoryRow *row = key;
  guint hash = (guint)row->received;
  for (gsize i = 0; i < row->length; i++)
    hash = hash * 31 + (guchar)row->strings[i];
  return hash;
}

/* Equal in every column but `messages`: the block holds the texts in a
 * fixed order, each ended by its NUL, so equal blocks are equal texts. */
static gboolean dmarc_row_equal(gconstpointer a_row, gconstpointer b_row) {
  const DmarcHistoryRow *a = a_row, *b = b_row;
  return a->received == b->received && a->spf_aligned == b->spf_aligned &&
         a->dkim_aligned == b->dkim_aligned && a->length == b->length &&
         memcmp(a->strings, b->strings, a->length) == 0 &&
         dmarc_row_outside_equal(a, b);
}

GPtrArray *dmarc_history_rows_merge(GPtrArray *rows) {
  GPtrArray *merged = g_ptr_array_sized_new(rows->len);
  g_autoptr(GHashTable) first =
      g_hash_table_new(dmarc_row_hash, dmarc_row_equal);
  for (guint i = 0; i < rows->len; i++) {
    DmarcHistoryRow *row = rows->pdata[i];
    DmarcHistoryRow *same = g_hash_table_lookup(first, row);
    if (same != NULL) {
      same->messages += row->messages;
      continue;
    }
    g_hash_table_add(first, row);
    g_ptr_array_add(merged, row);
  }
  return merged;
}

/* --- The writer
 * ---------------------------------------------------------------- */

/* What the queue carries to the writer: rows, or a marker.  A flush
 * marker is answered (`answered`, under the lock; its sender frees it);
 * the stop marker ends the thread. */
typedef enum { DMARC_ITEM_ROWS, DMARC_ITEM_FLUSH, DMARC_ITEM_STOP } DmarcItemKind;

typedef struct {
  DmarcItemKind kind;
  GPtrArray *rows; /* DMARC_ITEM_ROWS: owned, of DmarcHistoryRow* */
  gboolean answered;
} DmarcItem;

struct _DmarcHistory {
  gint refs;
  char *uri;          /* owned */
  PstPlugin *plugin;  /* for log lines */
  GAsyncQueue *queue; /* of DmarcItem* */
  GThread *thread;
  GMutex lock;        /* guards what follows, and markers' answers */
  GCond flushed_cond; /* a flush marker was answered */
  /* Rows not handed to the writer yet: they go together, at most
   * DMARC_HANDOFF_MS later (one wake-up of the writer per hand-off, not
   * per message). */
  GPtrArray *pending;
  guint handoff_source; /* the timeout that hands `pending` over, or 0 */
  guint64 queued;       /* rows handed over and not taken yet */
  guint64 written, lost;
  GHashTable *gaps;     /* policy domain -> DmarcGap*, not yet stored */
  GHashTable *failures; /* domain -> reports this hour (GUINT_TO_POINTER) */
  gint64 failures_hour; /* the hour they count, Unix time / 3600 */
  /* The INSERTs of one row and of DMARC_INSERT_ROWS rows. */
  char *insert_one, *insert_many;
  /* The thread's own. */
  DmarcStore *store;
  gint64 next_open;  /* monotonic time of the next open attempt */
  gint retry_delay;  /* seconds from a failure to the next attempt */
  gboolean down;    /* the last write failed (logged once per outage) */
};

/* Rows of one policy domain that were lost, and when they arrived. */
typedef struct {
  gint64 first, last;
  guint64 lost;
} DmarcGap;

/* Counts `row` as lost in its domain's gap; the lock is held. */
static void dmarc_history_note_lost_locked(DmarcHistory *history,
                                           const DmarcHistoryRow *row) {
  history->lost++;
  DmarcGap *gap = g_hash_table_lookup(history->gaps, row->policy_domain);
  if (gap == NULL) {
    gap = g_new0(DmarcGap, 1);
    gap->first = row->received;
    g_hash_table_insert(history->gaps, g_strdup(row->policy_domain), gap);
  }
  gap->first = MIN(gap->first, row->received);
  gap->last = MAX(gap->last, row->received);
  gap->lost++;
}

static void dmarc_history_note_lost(DmarcHistory *history,
                                    const DmarcHistoryRow *row) {
  g_mutex_lock(&history->lock);
  dmarc_history_note_lost_locked(history, row);
  g_mutex_unlock(&history->lock);
}

/* Writes the gaps noted so far into dmarc_gaps (inside the caller's
 * transaction); they are forgotten once the transaction commits
 * (dmarc_history_forget_gaps()). */
static gboolean dmarc_history_store_gaps(DmarcHistory *history,
                                         DmarcStore *store,
                                         GHashTable *stored, GError **error) {
  g_mutex_lock(&history->lock);
  GHashTableIter iter;
  gpointer domain, value;
  g_hash_table_iter_init(&iter, history->gaps);
  while (g_hash_table_iter_next(&iter, &domain, &value)) {
    const DmarcGap *gap = value;
    DmarcGap *copy = g_memdup2(gap, sizeof *gap);
    g_hash_table_insert(stored, g_strdup(domain), copy);
  }
  g_mutex_unlock(&history->lock);
  g_hash_table_iter_init(&iter, stored);
  while (g_hash_table_iter_next(&iter, &domain, &value)) {
    const DmarcGap *gap = value;
    g_autofree char *first = g_strdup_printf("%" G_GINT64_FORMAT, gap->first);
    g_autofree char *last = g_strdup_printf("%" G_GINT64_FORMAT, gap->last);
    g_autofree char *lost = g_strdup_printf("%" G_GUINT64_FORMAT, gap->lost);
    const char *params[] = {domain, first, last, lost, NULL};
    if (!dmarc_store_exec(store,
                          "INSERT INTO dmarc_gaps (policy_domain, first_lost,"
                          " last_lost, lost) VALUES ($1, $2, $3, $4)",
                          params, error))
      return FALSE;
  }
  return TRUE;
}

/* After a commit: what `stored` holds is in the database now (rows lost
 * meanwhile stay noted). */
static void dmarc_history_forget_gaps(DmarcHistory *history,
                                      GHashTable *stored) {
  g_mutex_lock(&history->lock);
  GHashTableIter iter;
  gpointer domain, value;
  g_hash_table_iter_init(&iter, stored);
  while (g_hash_table_iter_next(&iter, &domain, &value)) {
    const DmarcGap *done = value;
    DmarcGap *gap = g_hash_table_lookup(history->gaps, domain);
    if (gap != NULL && gap->lost <= done->lost)
      g_hash_table_remove(history->gaps, domain);
    else if (gap != NULL)
      gap->lost -= done->lost;
  }
  g_mutex_unlock(&history->lock);
}

static void dmarc_history_count_written(DmarcHistory *history,
                                        guint64 written) {
  g_mutex_lock(&history->lock);
  history->written += written;
  g_mutex_unlock(&history->lock);
}

/* The next open attempt after a failure now (backing off). */
static void dmarc_history_back_off(DmarcHistory *history) {
  history->retry_delay =
      history->retry_delay == 0
          ? DMARC_RETRY_FIRST_SECONDS
          : MIN(history->retry_delay * 2, DMARC_RETRY_SECONDS);
  history->next_open =
      g_get_monotonic_time() + history->retry_delay * G_USEC_PER_SEC;
}

static DmarcStore *dmarc_history_store(DmarcHistory *history, GError **error) {
  if (history->store != NULL)
    return history->store;
  gint64 now = g_get_monotonic_time();
  if (now < history->next_open) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "database unreachable, next attempt in %" G_GINT64_FORMAT " s",
                (history->next_open - now) / G_USEC_PER_SEC + 1);
    return NULL;
  }
  history->store = dmarc_store_open(history->uri, error);
  if (history->store == NULL)
    dmarc_history_back_off(history);
  return history->store;
}

static gboolean dmarc_history_write(DmarcHistory *history, GPtrArray *rows,
                                    GError **error) {
  DmarcStore *store = dmarc_history_store(history, error);
  if (store == NULL || !dmarc_store_exec(store, "BEGIN", NULL, error))
    return FALSE;
  g_autoptr(GHashTable) gaps =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  gboolean ok = dmarc_history_store_gaps(history, store, gaps, error);
  g_autoptr(GPtrArray) merged = dmarc_history_rows_merge(rows);
  const DmarcHistoryRow *const *row =
      (const DmarcHistoryRow *const *)merged->pdata;
  guint i = 0;
  for (; ok && i + DMARC_INSERT_ROWS <= merged->len; i += DMARC_INSERT_ROWS)
    ok = dmarc_history_rows_insert(store, row + i, DMARC_INSERT_ROWS,
                                   history->insert_many, error);
  for (; ok && i < merged->len; i++)
    ok = dmarc_history_rows_insert(store, row + i, 1, history->insert_one,
                                   error);
  for (i = 0; ok && i < rows->len; i++) {
    const DmarcHistoryRow *each = rows->pdata[i];
    ok = each->failure == NULL ||
         dmarc_failure_insert(store, each->failure, error);
  }
  if (!ok || !dmarc_store_exec(store, "COMMIT", NULL, error)) {
    dmarc_store_exec(store, "ROLLBACK", NULL, NULL);
    return FALSE;
  }
  dmarc_history_forget_gaps(history, gaps);
  return TRUE;
}

static void dmarc_history_write_batch(DmarcHistory *history, GPtrArray *rows) {
  if (rows->len == 0)
    return;
  g_autoptr(GError) error = NULL;
  if (dmarc_history_write(history, rows, &error)) {
    dmarc_history_count_written(history, rows->len);
    if (history->down)
      pst_plugin_log(history->plugin, G_LOG_LEVEL_MESSAGE,
                     "history: writing to %s again", history->uri);
    history->down = FALSE;
    history->retry_delay = 0;
    return;
  }
  for (guint i = 0; i < rows->len; i++)
    dmarc_history_note_lost(history, rows->pdata[i]);
  /* A broken connection is reopened later (a failed open backed off in
   * dmarc_history_store() already). */
  if (history->store != NULL) {
    g_clear_pointer(&history->store, dmarc_store_close);
    dmarc_history_back_off(history);
  }
  pst_plugin_log(history->plugin, G_LOG_LEVEL_WARNING,
                 "history: %u rows lost (%" G_GUINT64_FORMAT
                 " so far; mail is not affected): %s",
                 rows->len, history->lost, error->message);
  history->down = TRUE;
}

static void dmarc_history_answer(DmarcHistory *history, DmarcItem *marker) {
  g_mutex_lock(&history->lock);
  marker->answered = TRUE;
  g_cond_broadcast(&history->flushed_cond);
  g_mutex_unlock(&history->lock);
}

/* Takes the rows of `item` into `rows` (and counts them as taken). */
static void dmarc_history_take_rows(DmarcHistory *history, DmarcItem *item,
                                    GPtrArray *rows) {
  g_mutex_lock(&history->lock);
  history->queued -= item->rows->len;
  g_mutex_unlock(&history->lock);
  g_ptr_array_extend_and_steal(rows, item->rows);
  g_free(item);
}

static gpointer dmarc_history_thread(gpointer data) {
  DmarcHistory *history = data;
  gboolean stop = FALSE;
  while (!stop) {
    g_autoptr(GPtrArray) rows =
        g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_history_row_free);
    DmarcItem *marker = NULL;
    DmarcItem *item = g_async_queue_timeout_pop(history->queue, G_USEC_PER_SEC);
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    while (item != NULL) {
      if (item->kind != DMARC_ITEM_ROWS) {
        marker = item;
        break;
      }
      dmarc_history_take_rows(history, item, rows);
      gint64 left = deadline - g_get_monotonic_time();
      if (rows->len >= DMARC_BATCH || left <= 0)
        break;
      item = g_async_queue_timeout_pop(history->queue, left);
    }
    dmarc_history_write_batch(history, rows);
    if (marker != NULL && marker->kind == DMARC_ITEM_STOP) {
      stop = TRUE;
      g_free(marker);
    } else if (marker != NULL) {
      dmarc_history_answer(history, marker);
    }
  }
  return NULL;
}

/* Hands the pending rows to the writer; the lock is held. */
static void dmarc_history_hand_off_locked(DmarcHistory *history) {
  if (history->pending->len == 0)
    return;
  DmarcItem *item = g_new0(DmarcItem, 1);
  item->kind = DMARC_ITEM_ROWS;
  item->rows = g_steal_pointer(&history->pending);
  history->pending =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_history_row_free);
  history->queued += item->rows->len;
  g_async_queue_push(history->queue, item);
}

static gboolean dmarc_history_hand_off_due(gpointer data) {
  DmarcHistory *history = data;
  g_mutex_lock(&history->lock);
  history->handoff_source = 0;
  dmarc_history_hand_off_locked(history);
  g_mutex_unlock(&history->lock);
  return G_SOURCE_REMOVE;
}

/* Hands over what is pending now and sends `kind` after it. */
static DmarcItem *dmarc_history_send_marker(DmarcHistory *history,
                                            DmarcItemKind kind) {
  DmarcItem *marker = g_new0(DmarcItem, 1);
  marker->kind = kind;
  g_mutex_lock(&history->lock);
  if (history->handoff_source != 0)
    g_source_remove(history->handoff_source);
  history->handoff_source = 0;
  dmarc_history_hand_off_locked(history);
  g_async_queue_push(history->queue, marker);
  g_mutex_unlock(&history->lock);
  return marker;
}

DmarcHistory *dmarc_history_new(const char *uri, PstPlugin *plugin) {
  DmarcHistory *history = g_new0(DmarcHistory, 1);
  history->refs = 1;
  history->uri = g_strdup(uri);
  history->plugin = plugin;
  history->queue = g_async_queue_new();
  g_mutex_init(&history->lock);
  g_cond_init(&history->flushed_cond);
  history->failures =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  history->gaps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  history->pending =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_history_row_free);
  history->insert_one = dmarc_history_insert_sql(1);
  history->insert_many = dmarc_history_insert_sql(DMARC_INSERT_ROWS);
  history->thread =
      g_thread_new("dmarc-history", dmarc_history_thread, history);
  return history;
}

DmarcHistory *dmarc_history_ref(DmarcHistory *history) {
  g_atomic_int_inc(&history->refs);
  return history;
}

void dmarc_history_flush(DmarcHistory *history) {
  /* Rows queued before the marker are written before it is answered. */
  DmarcItem *marker = dmarc_history_send_marker(history, DMARC_ITEM_FLUSH);
  g_mutex_lock(&history->lock);
  while (!marker->answered)
    g_cond_wait(&history->flushed_cond, &history->lock);
  g_mutex_unlock(&history->lock);
  g_free(marker);
}

void dmarc_history_unref(DmarcHistory *history) {
  if (!g_atomic_int_dec_and_test(&history->refs))
    return;
  dmarc_history_send_marker(history, DMARC_ITEM_STOP);
  g_thread_join(history->thread);
  pst_plugin_log(history->plugin,
                 history->lost > 0 ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
                 "history %s: %" G_GUINT64_FORMAT
                 " rows written, %" G_GUINT64_FORMAT " lost",
                 history->uri, history->written, history->lost);
  g_async_queue_unref(history->queue);
  dmarc_store_close(history->store);
  g_mutex_clear(&history->lock);
  g_cond_clear(&history->flushed_cond);
  g_hash_table_unref(history->failures);
  g_hash_table_unref(history->gaps);
  g_ptr_array_unref(history->pending);
  g_free(history->insert_one);
  g_free(history->insert_many);
  g_free(history->uri);
  g_free(history);
}

void dmarc_history_add(DmarcHistory *history, DmarcHistoryRow *row) {
  g_mutex_lock(&history->lock);
  if (history->queued + history->pending->len >= DMARC_QUEUE_MAX) {
    dmarc_history_note_lost_locked(history, row);
    dmarc_history_row_free(row);
  } else {
    g_ptr_array_add(history->pending, row);
    if (history->pending->len >= DMARC_BATCH)
      dmarc_history_hand_off_locked(history);
    else if (history->handoff_source == 0)
      history->handoff_source = g_timeout_add(
          DMARC_HANDOFF_MS, dmarc_history_hand_off_due, history);
  }
  g_mutex_unlock(&history->lock);
}

gboolean dmarc_history_failure_allowed(DmarcHistory *history,
                                       const char *domain) {
  gint64 hour = g_get_real_time() / G_USEC_PER_SEC / 3600;
  g_mutex_lock(&history->lock);
  if (hour != history->failures_hour) {
    g_hash_table_remove_all(history->failures);
    history->failures_hour = hour;
  }
  guint count =
      GPOINTER_TO_UINT(g_hash_table_lookup(history->failures, domain));
  gboolean allowed = count < DMARC_FAILURES_PER_HOUR;
  if (allowed)
    g_hash_table_replace(history->failures, g_strdup(domain),
                         GUINT_TO_POINTER(count + 1));
  g_mutex_unlock(&history->lock);
  return allowed;
}
