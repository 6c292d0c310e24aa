/* test-dmarc-history.c - unit tests of the history rows (dmarc-history.c)
 * against a real SQLite file: a row keeps every text of the outcome in
 * its one block, and rows inserted DMARC_INSERT_ROWS per INSERT read back
 * exactly as rows inserted one by one, column by column; the writer
 * thread stores what it was given (batches of one, of
 * DMARC_INSERT_ROWS, and of a size that is neither); rows equal in every
 * column are stored as one that counts them, and only those.
 */
#include <string.h>

#include <glib/gstdio.h>

#include "dmarc-history.h"

/* An outcome of a record with fo=1:d and two rua URIs, SPF and two DKIM
 * results; `n` makes the texts of each row differ. */
typedef struct {
  DmarcRecord *record;
  DmarcAuth *spf;
  GPtrArray *dkim;
  char *from;
  DmarcOutcome outcome;
} Sample;

static void sample_init(Sample *sample, guint n) {
  static const char text[] = "v=DMARC1; p=quarantine; sp=reject; adkim=s; "
                             "fo=1:d; rua=mailto:a@x.example,mailto:b@x.example";
  sample->record = dmarc_record_parse(text, strlen(text));
  sample->spf = dmarc_auth_new("mail.x.example", NULL, "temperror", "mfrom");
  dmarc_auth_set_human(sample->spf, "DNS timeout");
  sample->dkim = g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_auth_free);
  g_ptr_array_add(sample->dkim,
                  dmarc_auth_new("x.example", "s1", "pass", NULL));
  DmarcAuth *failed = dmarc_auth_new("other.example", "bad selector", "fail",
                                     NULL);
  dmarc_auth_set_human(failed, "body hash mismatch");
  g_ptr_array_add(sample->dkim, failed);
  sample->from = g_strdup_printf("m%u.x.example", n);
  sample->outcome = (DmarcOutcome){.result = DMARC_RESULT_PASS,
                                   .from_domain = sample->from,
                                   .policy_domain = "x.example",
                                   .org_domain = "x.example",
                                   .record = sample->record,
                                   .policy = DMARC_POLICY_REJECT,
                                   .dkim_aligned = n % 2 == 0,
                                   .spf = sample->spf,
                                   .dkim = sample->dkim};
}

static void sample_clear(Sample *sample) {
  dmarc_record_free(sample->record);
  dmarc_auth_free(sample->spf);
  g_ptr_array_unref(sample->dkim);
  g_free(sample->from);
}

static DmarcHistoryRow *sample_row(guint n) {
  Sample sample;
  sample_init(&sample, n);
  DmarcHistoryRow *row = dmarc_history_row_new(
      &sample.outcome, "192.0.2.1", "mail.x.example", "rcpt.example",
      "none", n % 3 == 0 ? "local_policy" : NULL);
  sample_clear(&sample); /* the row keeps its own copies */
  row->received = 1700000000 + n;
  return row;
}

static void test_row_texts(void) {
  DmarcHistoryRow *row = sample_row(4);
  g_assert_cmpstr(row->policy_domain, ==, "x.example");
  g_assert_cmpstr(row->source_ip, ==, "192.0.2.1");
  g_assert_cmpstr(row->header_from, ==, "m4.x.example");
  g_assert_cmpstr(row->envelope_from, ==, "mail.x.example");
  g_assert_cmpstr(row->envelope_to, ==, "rcpt.example");
  g_assert_cmpstr(row->result, ==, "pass");
  g_assert_cmpstr(row->spf_domain, ==, "mail.x.example");
  g_assert_cmpstr(row->spf_scope, ==, "mfrom");
  g_assert_cmpstr(row->spf_result, ==, "temperror");
  g_assert_cmpstr(row->spf_human, ==, "DNS timeout");
  g_assert_cmpstr(row->dkim, ==,
                  "x.example s1 pass\nother.example - fail body hash mismatch");
  g_assert_cmpstr(row->disposition, ==, "none");
  g_assert_cmpstr(row->override, ==, "");
  g_assert_cmpstr(row->p, ==, "quarantine");
  g_assert_cmpstr(row->sp, ==, "reject");
  g_assert_cmpstr(row->np, ==, dmarc_policy_to_string(DMARC_POLICY_UNSET));
  g_assert_cmpstr(row->adkim, ==, "s");
  g_assert_cmpstr(row->aspf, ==, "r");
  g_assert_cmpstr(row->testing, ==, "n");
  g_assert_cmpstr(row->psd, ==, "u");
  g_assert_cmpstr(row->fo, ==, "1:d");
  g_assert_cmpstr(row->rua, ==, "mailto:a@x.example,mailto:b@x.example");
  g_assert_true(row->dkim_aligned);
  g_assert_false(row->spf_aligned);
  dmarc_history_row_free(row);
  /* No SPF result, no DKIM signature. */
  static const char text[] = "v=DMARC1; p=none";
  g_autoptr(DmarcRecord) record = dmarc_record_parse(text, strlen(text));
  g_autoptr(GPtrArray) none = g_ptr_array_new();
  DmarcOutcome outcome = {.result = DMARC_RESULT_FAIL,
                          .from_domain = "y.example",
                          .policy_domain = "y.example",
                          .record = record,
                          .dkim = none};
  row = dmarc_history_row_new(&outcome, NULL, NULL, NULL, "none",
                              "trusted_forwarder");
  g_assert_cmpstr(row->source_ip, ==, "");
  g_assert_cmpstr(row->spf_domain, ==, "");
  g_assert_cmpstr(row->spf_result, ==, "none");
  g_assert_cmpstr(row->dkim, ==, "");
  g_assert_cmpstr(row->override, ==, "trusted_forwarder");
  g_assert_cmpstr(row->fo, ==, "0");
  g_assert_cmpstr(row->rua, ==, "");
  dmarc_history_row_free(row);
}

static const char select_all[] =
    "SELECT received, policy_domain, source_ip, header_from, envelope_from,"
    " envelope_to, result, spf_aligned, dkim_aligned, spf_domain, spf_scope,"
    " spf_result, spf_human, dkim, disposition, override, p, sp, np, adkim,"
    " aspf, testing, psd, fo, rua, messages FROM dmarc_messages"
    " ORDER BY received";

static DmarcStore *open_store(const char *dir, const char *name) {
  g_autofree char *uri = g_strdup_printf("sqlite:%s/%s", dir, name);
  g_autoptr(GError) error = NULL;
  DmarcStore *store = dmarc_store_open(uri, &error);
  g_assert_no_error(error);
  return store;
}

/* 16 + 16 + 3 rows: two INSERTs of DMARC_INSERT_ROWS rows, then three
 * of one, against 35 INSERTs of one. */
static void test_rows_insert(void) {
  g_autofree char *dir = g_dir_make_tmp("dmarc-history-XXXXXX", NULL);
  g_assert_nonnull(dir);
  DmarcStore *many = open_store(dir, "many.db");
  DmarcStore *one = open_store(dir, "one.db");
  g_autofree char *insert_one = dmarc_history_insert_sql(1);
  g_autofree char *insert_many = dmarc_history_insert_sql(DMARC_INSERT_ROWS);
  enum { COUNT = 2 * DMARC_INSERT_ROWS + 3 };
  DmarcHistoryRow *rows[COUNT];
  for (guint i = 0; i < COUNT; i++)
    rows[i] = sample_row(i);
  g_autoptr(GError) error = NULL;
  const DmarcHistoryRow *const *all = (const DmarcHistoryRow *const *)rows;
  guint i = 0;
  for (; i + DMARC_INSERT_ROWS <= COUNT; i += DMARC_INSERT_ROWS)
    g_assert_true(dmarc_history_rows_insert(many, all + i, DMARC_INSERT_ROWS,
                                            insert_many, &error));
  for (; i < COUNT; i++)
    g_assert_true(
        dmarc_history_rows_insert(many, all + i, 1, insert_one, &error));
  for (i = 0; i < COUNT; i++)
    g_assert_true(
        dmarc_history_rows_insert(one, all + i, 1, insert_one, &error));
  g_assert_no_error(error);
  g_autoptr(GPtrArray) got = dmarc_store_query(many, select_all, NULL, &error);
  g_autoptr(GPtrArray) want = dmarc_store_query(one, select_all, NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(got->len, ==, COUNT);
  g_assert_cmpuint(want->len, ==, COUNT);
  for (i = 0; i < COUNT; i++) {
    char **g = got->pdata[i], **w = want->pdata[i];
    g_assert_cmpuint(g_strv_length(g), ==, DMARC_ROW_COLUMNS);
    for (guint c = 0; c < DMARC_ROW_COLUMNS; c++)
      g_assert_cmpstr(g[c], ==, w[c]);
  }
  char **first = got->pdata[0];
  g_assert_cmpstr(first[0], ==, "1700000000");
  g_assert_cmpstr(first[3], ==, "m0.x.example");
  g_assert_cmpstr(first[15], ==, "local_policy");
  g_assert_cmpstr(first[25], ==, "1");
  for (i = 0; i < COUNT; i++)
    dmarc_history_row_free(rows[i]);
  dmarc_store_close(many);
  dmarc_store_close(one);
  g_autofree char *many_db = g_build_filename(dir, "many.db", NULL);
  g_autofree char *one_db = g_build_filename(dir, "one.db", NULL);
  for (const char *const *suffix = (const char *const[]){"", "-wal", "-shm", NULL};
       *suffix != NULL; suffix++) {
    g_autofree char *a = g_strconcat(many_db, *suffix, NULL);
    g_autofree char *b = g_strconcat(one_db, *suffix, NULL);
    g_remove(a);
    g_remove(b);
  }
  g_rmdir(dir);
}

/* Rows equal in every column merge into the first of them, whatever lies
 * between; a different second, result (a text outside the block), texts
 * or alignment keeps a row apart.  Stored, the counts add up. */
static void test_rows_merge(void) {
  enum { COUNT = 8 };
  DmarcHistoryRow *rows[COUNT] = {
      sample_row(1), sample_row(1), sample_row(2), sample_row(1),
      sample_row(1), sample_row(1), sample_row(1), sample_row(1)};
  rows[3]->received += 1;
  rows[4]->result = dmarc_result_to_string(DMARC_RESULT_FAIL);
  rows[6]->spf_aligned = !rows[6]->spf_aligned;
  g_autoptr(GPtrArray) all = g_ptr_array_new();
  for (guint i = 0; i < COUNT; i++)
    g_ptr_array_add(all, rows[i]);
  g_autoptr(GPtrArray) merged = dmarc_history_rows_merge(all);
  const DmarcHistoryRow *want[] = {rows[0], rows[2], rows[3], rows[4],
                                   rows[6]};
  g_assert_cmpuint(merged->len, ==, G_N_ELEMENTS(want));
  for (guint i = 0; i < merged->len; i++)
    g_assert_true(merged->pdata[i] == want[i]);
  g_assert_cmpuint(rows[0]->messages, ==, 4); /* 0, 1, 5 and 7 */
  for (guint i = 1; i < merged->len; i++)
    g_assert_cmpuint(want[i]->messages, ==, 1);

  g_autofree char *dir = g_dir_make_tmp("dmarc-history-XXXXXX", NULL);
  g_assert_nonnull(dir);
  DmarcStore *store = open_store(dir, "merged.db");
  g_autofree char *insert_one = dmarc_history_insert_sql(1);
  g_autoptr(GError) error = NULL;
  for (guint i = 0; i < merged->len; i++)
    g_assert_true(dmarc_history_rows_insert(
        store, (const DmarcHistoryRow *const *)merged->pdata + i, 1,
        insert_one, &error));
  g_autoptr(GPtrArray) sum = dmarc_store_query(
      store, "SELECT SUM(messages), COUNT(*) FROM dmarc_messages", NULL,
      &error);
  g_assert_no_error(error);
  g_assert_cmpstr(((char **)sum->pdata[0])[0], ==, "8");
  g_assert_cmpstr(((char **)sum->pdata[0])[1], ==, "5");
  dmarc_store_close(store);
  for (guint i = 0; i < COUNT; i++)
    dmarc_history_row_free(rows[i]);
  for (const char *const *suffix = (const char *const[]){"", "-wal", "-shm", NULL};
       *suffix != NULL; suffix++) {
    g_autofree char *path =
        g_strconcat(dir, "/merged.db", *suffix, NULL);
    g_remove(path);
  }
  g_rmdir(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dmarc/history/row-texts", test_row_texts);
  g_test_add_func("/dmarc/history/rows-insert", test_rows_insert);
  g_test_add_func("/dmarc/history/rows-merge", test_rows_merge);
  return g_test_run();
}
