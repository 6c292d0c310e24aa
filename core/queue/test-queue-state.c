/* test-queue-state.c - the per-recipient state journal: codec round trip,
 * torn and damaged tails, folding, and the file functions. */
#include <stdio.h>

#include <glib/gstdio.h>

#include "queue/state-journal.h"

static PstStateRecord *make(PstRecipientStatus status, guint index,
                            guint attempts, const char *reply,
                            const char *target) {
  PstStateRecord *record = g_new0(PstStateRecord, 1);
  record->status = status;
  record->index = index;
  record->time = 1700000000000000 + attempts;
  record->attempts = attempts;
  record->reply = g_strdup(reply);
  record->relay = g_strdup("maildir");
  record->target = g_strdup(target);
  return record;
}

static GPtrArray *sample(void) {
  GPtrArray *records =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  g_ptr_array_add(records,
                  make(PST_RECIPIENT_DEFERRED, 0, 1, "451 4.3.0 x", NULL));
  g_ptr_array_add(records, make(PST_RECIPIENT_TARGET_DONE, 1, 1, "250 ok",
                                "a@example.org"));
  g_ptr_array_add(records, make(PST_RECIPIENT_DELIVERED, 0, 2, "250 ok", NULL));
  return records;
}

static GByteArray *encode_all(GPtrArray *records) {
  GByteArray *buffer = g_byte_array_new();
  for (guint i = 0; i < records->len; i++)
    pst_state_record_encode(records->pdata[i], buffer);
  return buffer;
}

static void test_roundtrip(void) {
  g_autoptr(GPtrArray) records = sample();
  g_autoptr(GByteArray) buffer = encode_all(records);
  g_autoptr(GPtrArray) decoded =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  g_assert_cmpuint(pst_state_records_decode(buffer->data, buffer->len, decoded),
                   ==, buffer->len);
  g_assert_cmpuint(decoded->len, ==, 3);
  PstStateRecord *second = decoded->pdata[1];
  g_assert_cmpint(second->status, ==, PST_RECIPIENT_TARGET_DONE);
  g_assert_cmpstr(second->target, ==, "a@example.org");
  g_assert_cmpint(second->time, ==, 1700000000000001);
}

/* Every truncation and every flipped octet keeps only whole, valid
 * records before the damage. */
static void test_damage(void) {
  g_autoptr(GPtrArray) records = sample();
  g_autoptr(GByteArray) buffer = encode_all(records);
  for (guint cut = 0; cut < buffer->len; cut++) {
    g_autoptr(GPtrArray) decoded =
        g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
    gsize valid = pst_state_records_decode(buffer->data, cut, decoded);
    g_assert_cmpuint(valid, <=, cut);
    g_assert_cmpuint(decoded->len, <, 3);
  }
  for (guint at = 0; at < buffer->len; at++) {
    g_autoptr(GByteArray) copy = g_byte_array_new();
    g_byte_array_append(copy, buffer->data, buffer->len);
    copy->data[at] ^= 0x41;
    g_autoptr(GPtrArray) decoded =
        g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
    pst_state_records_decode(copy->data, copy->len, decoded);
    g_assert_cmpuint(decoded->len, <, 3);
  }
}

static void test_fold(void) {
  g_autoptr(GPtrArray) records = sample();
  g_ptr_array_add(records, make(PST_RECIPIENT_BOUNCED, 7, 1, "550", NULL));
  PstRecipientState *states = pst_recipient_states_fold(records, 2);
  g_assert_cmpint(states[0].status, ==, PST_RECIPIENT_DELIVERED);
  g_assert_cmpuint(states[0].attempts, ==, 2);
  g_assert_cmpstr(states[0].reply, ==, "250 ok");
  g_assert_cmpint(states[1].status, ==, PST_RECIPIENT_PENDING);
  g_assert_true(g_hash_table_contains(states[1].done, "a@example.org"));
  g_assert_true(pst_recipient_status_is_final(states[0].status));
  pst_recipient_states_free(states, 2);
}

static void test_files(void) {
  g_autofree char *spool = g_dir_make_tmp("test-queue-state-XXXXXX", NULL);
  const char *id = "0N6Q3J8Z2K4M0000";
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_state_journal_prepare(spool, &error));
  g_autoptr(GPtrArray) records = sample();
  g_assert_true(pst_state_journal_append(spool, id, records, &error));
  /* A torn append: half a record at the end. */
  g_autofree char *path = g_build_filename(spool, "state", id, NULL);
  FILE *file = fopen(path, "ab");
  fwrite("\x30\x00\x00\x00\x01\x02", 1, 6, file);
  fclose(file);
  /* The repair is logged as a warning: not fatal here. */
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
  g_autoptr(GPtrArray) read = pst_state_journal_read(spool, id, TRUE, &error);
  g_assert_nonnull(read);
  g_assert_cmpuint(read->len, ==, 3);
  g_autoptr(GByteArray) expected = encode_all(records);
  GStatBuf st;
  g_assert_cmpint(g_stat(path, &st), ==, 0);
  g_assert_cmpint(st.st_size, ==, expected->len); /* repaired */
  /* Orphans: no queue/ID, so the journal goes. */
  g_assert_cmpuint(pst_state_journal_remove_orphans(spool), ==, 1);
  g_autoptr(GPtrArray) none = pst_state_journal_read(spool, id, TRUE, &error);
  g_assert_cmpuint(none->len, ==, 0);
  g_autofree char *state = g_build_filename(spool, "state", NULL);
  g_rmdir(state);
  g_rmdir(spool);
}

/* Notes (delay notified, DSN queued) survive the codec, leave the state
 * as it was, and the last DSN note names the DSN. */
static void test_notes(void) {
  g_autoptr(GPtrArray) records = sample();
  g_ptr_array_add(records,
                  make(PST_RECIPIENT_DEFERRED, 1, 3, "451 4.3.0 y", NULL));
  g_ptr_array_add(records,
                  make(PST_RECIPIENT_DELAY_NOTIFIED, 1, 0, NULL, NULL));
  g_ptr_array_add(records,
                  make(PST_RECIPIENT_DSN_QUEUED, 0, 0, NULL, "OLDDSN"));
  g_ptr_array_add(records,
                  make(PST_RECIPIENT_DSN_QUEUED, 0, 0, NULL, "NEWDSN"));
  g_autoptr(GByteArray) buffer = encode_all(records);
  g_autoptr(GPtrArray) decoded =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_state_record_free);
  g_assert_cmpuint(pst_state_records_decode(buffer->data, buffer->len, decoded),
                   ==, buffer->len);
  g_assert_cmpuint(decoded->len, ==, records->len);
  g_assert_cmpstr(pst_state_records_dsn_id(decoded), ==, "NEWDSN");
  PstRecipientState *states = pst_recipient_states_fold(decoded, 2);
  g_assert_cmpint(states[0].status, ==, PST_RECIPIENT_DELIVERED);
  g_assert_false(states[0].delay_notified);
  g_assert_cmpint(states[1].status, ==, PST_RECIPIENT_DEFERRED);
  g_assert_cmpuint(states[1].attempts, ==, 3);
  g_assert_cmpstr(states[1].reply, ==, "451 4.3.0 y");
  g_assert_true(states[1].delay_notified);
  pst_recipient_states_free(states, 2);
  g_autoptr(GPtrArray) none = sample();
  g_assert_null(pst_state_records_dsn_id(none));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/queue/state/roundtrip", test_roundtrip);
  g_test_add_func("/queue/state/damage", test_damage);
  g_test_add_func("/queue/state/fold", test_fold);
  g_test_add_func("/queue/state/notes", test_notes);
  g_test_add_func("/queue/state/files", test_files);
  return g_test_run();
}
