/* test-queue-spool.c - unit tests for the spool: open, write, group commit,
 * read back, recover, and the failure paths.
 *
 * Paths: /queue/spool/...  Each test gets a fresh spool directory under
 * $TMPDIR and removes it.  Commits complete on the main context, so tests
 * iterate it (bounded by a timeout) until their callbacks ran.  Log lines
 * go to a capturing writer: tests that expect a warning check for it, and
 * every test ends with no unexpected one.  Failures are injected through
 * the syncer's sync function (fdatasync/fsync returning EIO) and through
 * RLIMIT_FSIZE with SIGXFSZ ignored (writes fail with EFBIG, as on a full
 * disk).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "queue/content-reader.h"
#include "queue/queue-id.h"
#include "queue/spool-manage.h"
#include "queue/spool-private.h"
#include "queue/test-page-cache.h"

/* --- Captured log lines ------------------------------------------------- */

static GMutex log_lock;
static GPtrArray *log_lines; /* of char*, owned */

static GLogWriterOutput capture_writer(GLogLevelFlags level,
                                       const GLogField *fields, gsize n_fields,
                                       gpointer data) {
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return g_log_writer_default(level, fields, n_fields, data);
  if (level & G_LOG_LEVEL_DEBUG)
    return G_LOG_WRITER_HANDLED;
  for (gsize i = 0; i < n_fields; i++) {
    if (!g_str_equal(fields[i].key, "MESSAGE"))
      continue;
    g_mutex_lock(&log_lock);
    g_ptr_array_add(log_lines, g_strdup(fields[i].value));
    g_mutex_unlock(&log_lock);
  }
  return G_LOG_WRITER_HANDLED;
}

/* TRUE (and forgets the line) when a captured line contains every
 * string of the NULL-terminated list. */
static gboolean log_take(const char *first, ...) G_GNUC_NULL_TERMINATED;
static gboolean log_take(const char *first, ...) {
  gboolean found = FALSE;
  g_mutex_lock(&log_lock);
  for (guint i = 0; i < log_lines->len && !found; i++) {
    const char *line = log_lines->pdata[i];
    va_list args;
    va_start(args, first);
    found = TRUE;
    for (const char *s = first; s != NULL; s = va_arg(args, const char *))
      found = found && strstr(line, s) != NULL;
    va_end(args);
    if (found)
      g_ptr_array_remove_index(log_lines, i);
  }
  g_mutex_unlock(&log_lock);
  return found;
}

/* Forgets every captured line containing `text`; returns how many. */
static guint log_drop(const char *text) {
  guint dropped = 0;
  g_mutex_lock(&log_lock);
  for (guint i = log_lines->len; i > 0; i--) {
    if (strstr(log_lines->pdata[i - 1], text) != NULL) {
      g_ptr_array_remove_index(log_lines, i - 1);
      dropped++;
    }
  }
  g_mutex_unlock(&log_lock);
  return dropped;
}

static void log_assert_empty(void) {
  g_mutex_lock(&log_lock);
  for (guint i = 0; i < log_lines->len; i++)
    g_test_message("unexpected log line: %s", (char *)log_lines->pdata[i]);
  g_assert_cmpuint(log_lines->len, ==, 0);
  g_mutex_unlock(&log_lock);
}

/* --- Fixture -------------------------------------------------------------- */

typedef struct {
  char *base;      /* owned: the temporary directory */
  char *directory; /* owned: BASE/spool */
  PstSpool *spool; /* owned, nullable */
} Fixture;

static void remove_tree(const char *path) {
  GStatBuf st;
  if (g_lstat(path, &st) != 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    const char *name;
    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *child = g_build_filename(path, name, NULL);
      remove_tree(child);
    }
    g_rmdir(path);
  } else {
    g_unlink(path);
  }
}

static void fixture_set_up(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  /* A test's subprocess works in its parent's directory. */
  if (g_test_subprocess())
    return;
  f->base = g_dir_make_tmp("pst-queue-XXXXXX", &error);
  g_assert_no_error(error);
  f->directory = g_build_filename(f->base, "spool", NULL);
  if (data == NULL) {
    f->spool = pst_spool_open(f->directory, &error);
    g_assert_no_error(error);
  }
}

static void fixture_tear_down(Fixture *f, gconstpointer data) {
  pst_spool_close(f->spool);
  if (f->base != NULL)
    remove_tree(f->base);
  g_free(f->base);
  g_free(f->directory);
  log_assert_empty();
}

static char *fixture_path(Fixture *f, const char *dir, const char *name) {
  return g_build_filename(f->directory, dir, name, NULL);
}

/* Files in a spool subdirectory, not counting the syncer's spare files
 * (empty, "spare.PID.N") unless `spares` is set. */
static guint count_files_full(Fixture *f, const char *dir, gboolean spares) {
  g_autofree char *path = fixture_path(f, dir, NULL);
  g_autoptr(GDir) handle = g_dir_open(path, 0, NULL);
  g_assert_nonnull(handle);
  guint count = 0;
  const char *name;
  while ((name = g_dir_read_name(handle)) != NULL)
    count += spares || !g_str_has_prefix(name, "spare.");
  return count;
}

static guint count_files(Fixture *f, const char *dir) {
  return count_files_full(f, dir, FALSE);
}

/* --- Helpers -------------------------------------------------------------- */

static void write_file(Fixture *f, const char *dir, const char *name,
                       const void *data, gsize length) {
  g_autofree char *path = fixture_path(f, dir, name);
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_set_contents(path, data, (gssize)length, &error));
  g_assert_no_error(error);
}

static gboolean timeout_reached(gpointer data) {
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until *done reaches `count` (30 s at most). */
static void wait_for(guint *done, guint count) {
  gboolean timed_out = FALSE;
  guint timer = g_timeout_add_seconds(30, timeout_reached, &timed_out);
  while (*done < count && !timed_out)
    g_main_context_iteration(NULL, TRUE);
  g_assert_false(timed_out);
  g_source_remove(timer);
}

/* Has the syncer make spare files and waits (30 s at most) until some are
 * durable and ready: the messages started next take one. */
static void wait_for_spares(PstSpool *spool) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *first = pst_spool_writer_new(spool, &error);
  g_assert_no_error(error);
  pst_spool_writer_free(first);
  for (guint i = 0; i < 3000 && pst_spool_count_spares(spool) < 16; i++)
    g_usleep(10000);
  g_assert_cmpuint(pst_spool_count_spares(spool), >=, 16);
}

static PstEnvelope *envelope_new(const char *sender, guint recipients) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup(sender);
  envelope->client_address = g_strdup("192.0.2.1");
  envelope->client_hostname = g_strdup("client.example");
  envelope->helo = g_strdup("client.example");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("ESMTP");
  envelope->session_id = g_strdup("S1");
  envelope->arrival_time = g_get_real_time();
  envelope->results =
      g_variant_ref_sink(g_variant_new_parsed("@a{sv} {'auth.spf': <'pass'>}"));
  for (guint i = 0; i < recipients; i++) {
    g_autofree char *address = g_strdup_printf("rcpt%u@example.org", i);
    PstEnvelopeRecipient *r = pst_envelope_add_recipient(envelope, address);
    r->notify = PST_DSN_NOTIFY_FAILURE;
  }
  return envelope;
}

/* One commit: its result lands here. */
typedef struct {
  PstSpoolWriter *writer; /* owned, nullable */
  GError *error;          /* owned, nullable */
  gboolean ok;
  guint *done; /* incremented on completion */
} Commit;

static void commit_done(GObject *source, GAsyncResult *result,
                        gpointer user_data) {
  Commit *commit = user_data;
  g_assert_null(source);
  commit->ok =
      pst_spool_writer_commit_finish(commit->writer, result, &commit->error);
  (*commit->done)++;
}

static void commit_clear(Commit *commit) {
  pst_spool_writer_free(commit->writer);
  g_clear_error(&commit->error);
}

/* Commits what `writer` holds into queue/ for one recipient of a@b and
 * waits; the outcome is in `*commit` (commit_clear() frees the writer). */
static void commit_writer_wait(PstSpoolWriter *writer, Commit *commit) {
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  guint done = 0;
  *commit = (Commit){.writer = writer, .done = &done};
  pst_spool_writer_commit_async(writer, envelope, NULL, 0,
                                PST_SPOOL_QUEUE_ACTIVE, commit_done, commit);
  wait_for(&done, 1);
  commit->done = NULL;
}

/* A new writer for `commit`. */
static void commit_open(PstSpool *spool, Commit *commit, guint *done) {
  g_autoptr(GError) error = NULL;
  *commit = (Commit){.done = done};
  commit->writer = pst_spool_writer_new(spool, &error);
  g_assert_no_error(error);
}

/* Writes `content` in pieces of `piece` octets into the writer of
 * `commit` and starts the commit. */
static void commit_write_start(Commit *commit, const char *content,
                               gsize length, gsize piece,
                               const PstEnvelope *envelope, GBytes *override,
                               guint64 header_length, PstSpoolQueue queue) {
  g_autoptr(GError) error = NULL;
  for (gsize at = 0; at < length; at += piece) {
    gsize n = MIN(piece, length - at);
    if (!pst_spool_writer_write(commit->writer, content + at, n, &error))
      break;
  }
  pst_spool_writer_commit_async(commit->writer, envelope, override,
                                header_length, queue, commit_done, commit);
}

/* Opens a writer, writes `content` in pieces of `piece` octets and starts
 * the commit. */
static void commit_start(PstSpool *spool, Commit *commit, guint *done,
                         const char *content, gsize length, gsize piece,
                         const PstEnvelope *envelope, GBytes *override,
                         guint64 header_length, PstSpoolQueue queue) {
  commit_open(spool, commit, done);
  commit_write_start(commit, content, length, piece, envelope, override,
                     header_length, queue);
}

/* --- Tests ---------------------------------------------------------------- */

static void test_open_layout(Fixture *f, gconstpointer data) {
  static const char *const dirs[] = {"tmp", "queue", "hold", "corrupt"};
  for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
    g_autofree char *path = fixture_path(f, dirs[i], NULL);
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_true(S_ISDIR(st.st_mode));
    g_assert_cmpint(st.st_mode & 0777, ==, 0700);
  }
  g_assert_cmpstr(pst_spool_get_directory(f->spool), ==, f->directory);

  /* A second daemon is refused; a reader is not. */
  g_autoptr(GError) error = NULL;
  PstSpool *second = pst_spool_open(f->directory, &error);
  g_assert_null(second);
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_BUSY);
  g_assert_nonnull(strstr(error->message, f->directory));
  g_clear_error(&error);
  PstSpool *reader = pst_spool_open_readonly(f->directory, &error);
  g_assert_no_error(error);
  g_assert_null(pst_spool_writer_new(reader, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  pst_spool_close(reader);
}

static void test_open_stale_tmp(Fixture *f, gconstpointer data) {
  /* What a crash leaves: a message being received, and anything else. */
  write_file(f, "tmp", "0000000000000001", "Subject: half", 13);
  write_file(f, "tmp", "left-over", "junk", 4);
  g_autoptr(GError) error = NULL;
  pst_spool_close(f->spool);
  f->spool = pst_spool_open(f->directory, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  g_assert_true(log_take("removed 2", "tmp/", f->directory, NULL));
}

static void test_open_missing_readonly(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_spool_open_readonly(f->directory, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, f->directory));
}

/* The parent's directory for the child of test_open_not_writable(). */
static char *not_writable_directory(pid_t parent) {
  g_autofree char *name = g_strdup_printf("pst-queue-ro-%d", (int)parent);
  return g_build_filename(g_get_tmp_dir(), name, "spool", NULL);
}

/* Root ignores modes, so the child becomes nobody first. */
static void test_open_not_writable(Fixture *f, gconstpointer data) {
  if (g_test_subprocess()) {
    g_autofree char *directory = not_writable_directory(getppid());
    if (geteuid() == 0)
      g_assert_cmpint(setresuid(65534, 65534, 65534), ==, 0);
    g_autoptr(GError) error = NULL;
    PstSpool *spool = pst_spool_open(directory, &error);
    g_assert_null(spool);
    /* Raw UTF-8: g_printerr() would convert to the C locale. */
    fprintf(stderr, "%s\n", error->message);
    return;
  }
  g_autofree char *directory = not_writable_directory(getpid());
  g_autofree char *base = g_path_get_dirname(directory);
  g_assert_cmpint(g_mkdir(base, 0755), ==, 0);
  g_assert_cmpint(g_mkdir(directory, 0555), ==, 0);
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_autofree char *expected = g_strdup_printf("*spool directory “%s”: %s*",
                                              directory, g_strerror(EACCES));
  remove_tree(base);
  g_test_trap_assert_passed();
  g_test_trap_assert_stderr(expected);
}

static void test_commit_roundtrip(Fixture *f, gconstpointer data) {
  /* Larger than the writer's buffer, written in odd pieces. */
  g_autoptr(GString) content = g_string_new("Received: by test\r\n");
  g_string_append(content, "Subject: roundtrip\r\n\r\n");
  for (guint i = 0; content->len < 200000; i++)
    g_string_append_printf(content, "line %u with a NUL \x01 and 8bit \xe9\r\n",
                           i);
  g_autoptr(PstEnvelope) envelope = envelope_new("sender@example.org", 3);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, content->str, content->len, 777,
               envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  g_assert_cmpuint(pst_spool_writer_get_size(commit.writer), ==, content->len);
  wait_for(&done, 1);
  g_assert_no_error(commit.error);
  g_assert_true(commit.ok);
  /* The session still reads id and size after the commit. */
  g_assert_cmpstr(pst_spool_writer_get_id(commit.writer), ==, id);
  commit_clear(&commit);

  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ids =
      pst_spool_list(f->spool, PST_SPOOL_QUEUE_ACTIVE, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(ids->len, ==, 1);
  g_assert_cmpstr(ids->pdata[0], ==, id);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(pst_queued_message_get_id(message), ==, id);
  g_assert_true(
      pst_envelope_equal(pst_queued_message_get_envelope(message), envelope));
  g_autoptr(GBytes) loaded = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  g_assert_cmpmem(g_bytes_get_data(loaded, NULL), g_bytes_get_size(loaded),
                  content->str, content->len);

  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_assert_cmpuint(stats.commits, ==, 1);
  g_assert_cmpuint(stats.file_syncs, ==, 1);
  g_assert_cmpuint(stats.directory_syncs, ==, 1);
}

/* Pieces small and larger than the writer's buffer, in turn: a large one
 * goes out with what the buffer holds in one writev(), and the rest of
 * the buffer with the trailer at the commit. */
static void test_commit_mixed_pieces(Fixture *f, gconstpointer data) {
  static const gsize pieces[] = {100, 70000, 3000, 140000, 65536, 1, 50};
  g_autoptr(GString) content = g_string_new(NULL);
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = pst_spool_writer_new(f->spool, &error);
  g_assert_no_error(error);
  for (gsize i = 0; i < G_N_ELEMENTS(pieces); i++) {
    gsize start = content->len;
    for (gsize n = 0; n < pieces[i]; n++)
      g_string_append_c(content, (char)('a' + (start + n * 7) % 26));
    g_assert_true(pst_spool_writer_write(writer, content->str + start,
                                         pieces[i], &error));
    g_assert_no_error(error);
  }
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(writer));
  Commit commit;
  commit_writer_wait(writer, &commit);
  g_assert_no_error(commit.error);
  g_assert_true(commit.ok);
  commit_clear(&commit);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_autoptr(GBytes) loaded = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  g_assert_cmpmem(g_bytes_get_data(loaded, NULL), g_bytes_get_size(loaded),
                  content->str, content->len);
}

static void test_commit_header_override_hold(Fixture *f, gconstpointer data) {
  static const char content[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
  g_autoptr(PstEnvelope) envelope = envelope_new("", 1);
  g_autoptr(GBytes) override =
      g_bytes_new_static("DKIM: x\r\nA: 1\r\n\r\n", 17);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, content, strlen(content), 5, envelope,
               override, 14, PST_SPOOL_QUEUE_HOLD);
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  wait_for(&done, 1);
  g_assert_no_error(commit.error);
  commit_clear(&commit);

  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) active =
      pst_spool_list(f->spool, PST_SPOOL_QUEUE_ACTIVE, &error);
  g_assert_cmpuint(active->len, ==, 0);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_HOLD, id, &error);
  g_assert_no_error(error);
  g_autoptr(GBytes) loaded = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  static const char expected[] = "DKIM: x\r\nA: 1\r\n\r\nbody\r\n";
  g_assert_cmpmem(g_bytes_get_data(loaded, NULL), g_bytes_get_size(loaded),
                  expected, strlen(expected));
}

/* Content over 1 MiB comes back in a mapping of its own (see
 * spool-reader.c), the edited header block in front of the body. */
static void test_commit_large_override(Fixture *f, gconstpointer data) {
  g_autoptr(GString) content = g_string_new("A: 1\r\nB: 2\r\n\r\n");
  gsize header_length = content->len;
  for (guint i = 0; content->len < 1536 * 1024; i++)
    g_string_append_printf(content, "body line %u\r\n", i);
  g_autoptr(PstEnvelope) envelope = envelope_new("", 1);
  static const char edited[] = "DKIM: x\r\nA: 1\r\n\r\n";
  g_autoptr(GBytes) override = g_bytes_new_static(edited, strlen(edited));
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, content->str, content->len, 9,
               envelope, override, header_length, PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  wait_for(&done, 1);
  g_assert_no_error(commit.error);
  commit_clear(&commit);

  g_autoptr(GError) error = NULL;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_autoptr(GBytes) loaded = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  g_autoptr(GString) expected = g_string_new(edited);
  g_string_append_len(expected, content->str + header_length,
                      (gssize)(content->len - header_length));
  g_assert_cmpmem(g_bytes_get_data(loaded, NULL), g_bytes_get_size(loaded),
                  expected->str, expected->len);
}

/* Holds the syncer in its first sync until the test opens the gate, so
 * that the commits behind it pile up however fast the disk is. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean open;
} Gate;

static int sync_behind_gate(int fd, gboolean directory, gpointer data) {
  Gate *gate = data;
  g_mutex_lock(&gate->lock);
  while (!gate->open)
    g_cond_wait(&gate->cond, &gate->lock);
  g_mutex_unlock(&gate->lock);
  return directory ? fsync(fd) : fdatasync(fd);
}

/* Many sessions at once: every commit succeeds, and they share syncs. */
static void commit_group(Fixture *f) {
  enum { N = 300 };
  Gate gate = {.open = FALSE};
  g_mutex_init(&gate.lock);
  g_cond_init(&gate.cond);
  pst_spool_set_sync_func(f->spool, sync_behind_gate, &gate);
  g_autoptr(PstEnvelope) envelope = envelope_new("group@example.org", 2);
  Commit *commits = g_new0(Commit, N);
  guint done = 0;
  for (guint i = 0; i < N; i++) {
    g_autofree char *content =
        g_strdup_printf("Subject: %u\r\n\r\nmessage %u\r\n", i, i);
    commit_start(f->spool, &commits[i], &done, content, strlen(content), 1000,
                 envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  }
  g_mutex_lock(&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast(&gate.cond);
  g_mutex_unlock(&gate.lock);
  wait_for(&done, N);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
  for (guint i = 0; i < N; i++) {
    g_assert_no_error(commits[i].error);
    g_assert_true(commits[i].ok);
    commit_clear(&commits[i]);
  }
  g_free(commits);
  g_mutex_clear(&gate.lock);
  g_cond_clear(&gate.cond);
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_test_message("%" G_GUINT64_FORMAT " commits in %" G_GUINT64_FORMAT
                 " batches, %" G_GUINT64_FORMAT " directory syncs",
                 stats.commits, stats.batches, stats.directory_syncs);
  g_assert_cmpuint(stats.commits, ==, N);
  g_assert_cmpuint(stats.failures, ==, 0);
  g_assert_cmpuint(stats.file_syncs, ==, N);
  /* The batch held at the gate, the second thread's batch of what
   * arrived while it started (held there too), then everything that piled
   * up behind them in one more.  A batch waits for at most one directory
   * sync (only for files made without a spare). */
  g_assert_cmpuint(stats.batches, <=, 3);
  g_assert_cmpuint(stats.directory_syncs, <=, stats.batches);
  g_assert_cmpuint(count_files(f, "queue"), ==, N);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  /* Closing removes the spare files the syncer made ahead. */
  g_clear_pointer(&f->spool, pst_spool_close);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
}

static void test_commit_group(Fixture *f, gconstpointer data) {
  commit_group(f);
}

/* Holds file syncs number 1 to 3 (counted from 1) until `released`
 * reaches them; later ones pass.  Tells when each arrives. */
typedef struct {
  GMutex lock;
  GCond cond;
  guint file_syncs; /* arrived */
  guint released;   /* syncs up to this one may return */
} CountGate;

static int sync_counted(int fd, gboolean directory, gpointer data) {
  CountGate *gate = data;
  g_mutex_lock(&gate->lock);
  guint number = directory ? 0 : ++gate->file_syncs;
  g_cond_broadcast(&gate->cond);
  while (number > gate->released && number <= 3)
    g_cond_wait(&gate->cond, &gate->lock);
  g_mutex_unlock(&gate->lock);
  return directory ? fsync(fd) : fdatasync(fd);
}

/* Waits (30 s at most) until no spool thread is busy or about to be
 * (pst_spool_is_quiet()), so that the next commits, up to `commits`, are
 * taken by the syncer thread as the test expects: one that came while
 * it published spares went to the second thread instead.  Fresh spares
 * are published only when few are ready: while it is not quiet, a
 * writer opened and dropped takes one every 100 ms. */
static void wait_quiet(Fixture *f, guint commits) {
  for (guint i = 0; i < 3000 && !pst_spool_is_quiet(f->spool, commits); i++) {
    if (i % 10 == 9) {
      g_autoptr(GError) error = NULL;
      pst_spool_writer_free(pst_spool_writer_new(f->spool, &error));
      g_assert_no_error(error);
    }
    g_usleep(10000);
  }
  g_assert_true(pst_spool_is_quiet(f->spool, commits));
}

static void count_gate_wait(CountGate *gate, guint syncs) {
  gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
  g_mutex_lock(&gate->lock);
  while (gate->file_syncs < syncs)
    g_assert_true(g_cond_wait_until(&gate->cond, &gate->lock, end));
  g_mutex_unlock(&gate->lock);
}

static void count_gate_release(CountGate *gate, guint released) {
  g_mutex_lock(&gate->lock);
  gate->released = released;
  g_cond_broadcast(&gate->cond);
  g_mutex_unlock(&gate->lock);
}

/* Batches overlap, when the running one holds several files: a message
 * submitted while the syncer thread waits on the disk for such a batch is
 * made durable (synced, renamed, answered) by the second thread
 * meanwhile, not after that batch.  A batch of one file does not overlap:
 * what arrives meanwhile waits and forms the next batch (light load keeps
 * its group commit).  Every message ends in the queue. */
static void test_commit_overlap(Fixture *f, gconstpointer data) {
  CountGate gate = {0};
  g_mutex_init(&gate.lock);
  g_cond_init(&gate.cond);
  wait_for_spares(f->spool);
  enum { LONE, PAIR_A, PAIR_B, LATE, N };
  wait_quiet(f, N);
  pst_spool_set_sync_func(f->spool, sync_counted, &gate);
  g_autoptr(PstEnvelope) envelope = envelope_new("overlap@example.org", 1);
  Commit commits[N];
  guint done[N] = {0};
  for (guint i = 0; i < N; i++) {
    g_autofree char *content = g_strdup_printf("Subject: %u\r\n\r\nx\r\n", i);
    if (i == PAIR_A)
      count_gate_wait(&gate, 1); /* the lone file's batch is held */
    if (i == LATE) {
      count_gate_release(&gate, 1);
      count_gate_wait(&gate, 3); /* the pair's batch is held */
    }
    commit_start(f->spool, &commits[i], &done[i], content, strlen(content),
                 100, envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  }
  wait_for(&done[LONE], 1);
  wait_for(&done[LATE], 1);
  g_assert_true(commits[LATE].ok);
  g_assert_cmpuint(done[PAIR_A] + done[PAIR_B], ==, 0);
  count_gate_release(&gate, 3);
  wait_for(&done[PAIR_A], 1);
  wait_for(&done[PAIR_B], 1);
  for (guint i = 0; i < N; i++) {
    g_assert_no_error(commits[i].error);
    g_assert_true(commits[i].ok);
    commit_clear(&commits[i]);
  }
  g_assert_cmpuint(count_files(f, "queue"), ==, N);
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  /* The lone file, the pair (which waited for it), the late one. */
  g_assert_cmpuint(stats.batches, ==, 3);
  g_assert_cmpuint(stats.commits, ==, N);
  /* Every file had a durable name (a spare): none waited for a directory
   * sync. */
  g_assert_cmpuint(stats.directory_syncs, ==, 0);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
  g_clear_pointer(&f->spool, pst_spool_close);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
  g_mutex_clear(&gate.lock);
  g_cond_clear(&gate.cond);
}

static ino_t fixture_inode(Fixture *f, const char *dir);

/* Once armed, holds every sync of queue/ at the gate, and counts the
 * file syncs and the syncs of queue/ that reached it.  Other directory
 * syncs pass: tmp/'s, which publishes new spares, can be under way when
 * the first message arrives, and its rename then waits for it (by
 * design), so holding it would hold that message, not the deferred sync
 * after its rename that this gate is for. */
typedef struct {
  Gate gate;
  gboolean armed;
  ino_t queue_inode;
  guint held;       /* syncs of queue/ waiting or passed */
  guint file_syncs; /* since armed */
} DirGate;

static int sync_dirs_behind_gate(int fd, gboolean directory, gpointer data) {
  DirGate *dirs = data;
  struct stat st;
  if (directory && (fstat(fd, &st) != 0 || st.st_ino != dirs->queue_inode))
    return fsync(fd);
  g_mutex_lock(&dirs->gate.lock);
  if (dirs->armed && directory)
    dirs->held++;
  else if (dirs->armed)
    dirs->file_syncs++;
  g_cond_broadcast(&dirs->gate.cond);
  while (dirs->armed && directory && !dirs->gate.open)
    g_cond_wait(&dirs->gate.cond, &dirs->gate.lock);
  g_mutex_unlock(&dirs->gate.lock);
  return directory ? fsync(fd) : fdatasync(fd);
}

/* Waits (30 s at most) until `*counter` reaches `count`; under the lock. */
static gboolean dir_gate_wait(DirGate *dirs, guint *counter, guint count) {
  gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
  while (*counter < count)
    if (!g_cond_wait_until(&dirs->gate.cond, &dirs->gate.lock, end))
      return FALSE;
  return TRUE;
}

/* While the syncer thread waits for a directory sync (the deferred ones
 * after a rename, due at once here), a new message's file sync starts
 * on the second thread instead of waiting for it; the message completes
 * once the directory sync is done (its rename waits for it). */
static void test_commit_overlap_directory_sync(Fixture *f, gconstpointer data) {
  DirGate dirs = {.gate.open = FALSE, .queue_inode = fixture_inode(f, "queue")};
  g_mutex_init(&dirs.gate.lock);
  g_cond_init(&dirs.gate.cond);
  wait_for_spares(f->spool);
  pst_spool_set_directory_sync_delay(f->spool, 1);
  pst_spool_set_sync_func(f->spool, sync_dirs_behind_gate, &dirs);
  g_autoptr(PstEnvelope) envelope = envelope_new("dirsync@example.org", 1);
  g_mutex_lock(&dirs.gate.lock);
  dirs.armed = TRUE;
  g_mutex_unlock(&dirs.gate.lock);
  Commit first, second;
  guint first_done = 0, second_done = 0;
  commit_start(f->spool, &first, &first_done, "Subject: a\r\n\r\na\r\n", 17,
               17, envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  g_mutex_lock(&dirs.gate.lock);
  g_assert_true(dir_gate_wait(&dirs, &dirs.held, 1));
  g_mutex_unlock(&dirs.gate.lock);
  commit_start(f->spool, &second, &second_done, "Subject: b\r\n\r\nb\r\n",
               17, 17, envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  g_mutex_lock(&dirs.gate.lock);
  g_assert_true(dir_gate_wait(&dirs, &dirs.file_syncs, 2));
  g_assert_false(dirs.gate.open);
  dirs.gate.open = TRUE;
  g_cond_broadcast(&dirs.gate.cond);
  g_mutex_unlock(&dirs.gate.lock);
  wait_for(&first_done, 1);
  wait_for(&second_done, 1);
  g_assert_no_error(first.error);
  g_assert_no_error(second.error);
  g_assert_true(first.ok && second.ok);
  commit_clear(&first);
  commit_clear(&second);
  g_assert_cmpuint(count_files(f, "queue"), ==, 2);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
  g_clear_pointer(&f->spool, pst_spool_close);
  g_mutex_clear(&dirs.gate.lock);
  g_cond_clear(&dirs.gate.cond);
}

/* Holds the first sync of queue/ once armed; records the order of the
 * directory syncs: 'q' queue/, 'h' hold/, 't' tmp/, and 'D' where the
 * test saw a commit done. */
typedef struct {
  Gate gate;
  gboolean armed;
  gboolean held; /* the held sync arrived */
  ino_t queue_inode, tmp_inode;
  GString *order;
} TargetGate;

static int sync_first_target_behind_gate(int fd, gboolean directory,
                                         gpointer data) {
  TargetGate *target = data;
  struct stat st;
  if (!directory || fstat(fd, &st) != 0)
    return directory ? fsync(fd) : fdatasync(fd);
  gboolean queue = st.st_ino == target->queue_inode;
  char name = queue ? 'q' : st.st_ino == target->tmp_inode ? 't' : 'h';
  g_mutex_lock(&target->gate.lock);
  g_string_append_c(target->order, name);
  if (target->armed && queue && !target->held) {
    target->held = TRUE;
    g_cond_broadcast(&target->gate.cond);
    while (!target->gate.open)
      g_cond_wait(&target->gate.cond, &target->gate.lock);
  }
  g_mutex_unlock(&target->gate.lock);
  return fsync(fd);
}

static ino_t fixture_inode(Fixture *f, const char *dir) {
  g_autofree char *path = fixture_path(f, dir, NULL);
  struct stat st;
  g_assert_cmpint(stat(path, &st), ==, 0);
  return st.st_ino;
}

/* While the deferred sync of queue/ waits on the disk, a batch that
 * finishes renames its file and answers at once (the targets' syncs do
 * not hold the renames back); tmp/ is synced only after a sync of queue/
 * that began after that rename (THE INVARIANT). */
static void test_commit_rename_during_target_sync(Fixture *f,
                                                  gconstpointer data) {
  TargetGate target = {.queue_inode = fixture_inode(f, "queue"),
                       .tmp_inode = fixture_inode(f, "tmp"),
                       .order = g_string_new(NULL)};
  g_mutex_init(&target.gate.lock);
  g_cond_init(&target.gate.cond);
  wait_for_spares(f->spool);
  pst_spool_set_directory_sync_delay(f->spool, 1);
  pst_spool_set_sync_func(f->spool, sync_first_target_behind_gate, &target);
  g_autoptr(PstEnvelope) envelope = envelope_new("rename@example.org", 1);
  g_mutex_lock(&target.gate.lock);
  target.armed = TRUE;
  g_mutex_unlock(&target.gate.lock);
  Commit first, second;
  guint first_done = 0, second_done = 0;
  commit_start(f->spool, &first, &first_done, "Subject: a\r\n\r\na\r\n", 17, 17,
               envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&first_done, 1);
  g_mutex_lock(&target.gate.lock);
  gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
  while (!target.held)
    g_assert_true(g_cond_wait_until(&target.gate.cond, &target.gate.lock, end));
  g_mutex_unlock(&target.gate.lock);
  commit_start(f->spool, &second, &second_done, "Subject: b\r\n\r\nb\r\n", 17,
               17, envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&second_done, 1);
  g_mutex_lock(&target.gate.lock);
  g_assert_false(target.gate.open);
  g_string_append_c(target.order, 'D');
  target.gate.open = TRUE;
  g_cond_broadcast(&target.gate.cond);
  g_mutex_unlock(&target.gate.lock);
  g_assert_no_error(first.error);
  g_assert_no_error(second.error);
  g_assert_true(first.ok && second.ok);
  commit_clear(&first);
  commit_clear(&second);
  g_clear_pointer(&f->spool, pst_spool_close); /* settles */
  g_assert_cmpuint(count_files(f, "queue"), ==, 2);
  /* After the second rename: queue/ again, then tmp/. */
  const char *after = strchr(target.order->str, 'D');
  g_assert_nonnull(after);
  const char *queue = strchr(after, 'q'), *tmp = strchr(after, 't');
  g_assert_nonnull(queue);
  g_assert_nonnull(tmp);
  g_assert_true(queue < tmp);
  g_string_free(target.order, TRUE);
  g_mutex_clear(&target.gate.lock);
  g_cond_clear(&target.gate.cond);
}

/* The same with the files of a batch synced one after the other. */
static void test_commit_group_sequential(Fixture *f, gconstpointer data) {
  pst_spool_set_sync_threads(f->spool, 1);
  commit_group(f);
}

/* An idle syncer makes spare files; a new message takes one, and is
 * still queued under its own id. */
static void test_commit_spare_files(Fixture *f, gconstpointer data) {
  /* None before the first message (see spool-syncer.c: privileges). */
  g_usleep(100000);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
  wait_for_spares(f->spool);
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, "x\r\n", 3, 3, envelope, NULL, 0,
               PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *base =
      g_path_get_basename(pst_spool_writer_get_path(commit.writer));
  g_assert_true(g_str_has_prefix(base, "spare."));
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  wait_for(&done, 1);
  g_assert_true(commit.ok);
  commit_clear(&commit);
  g_autofree char *path = fixture_path(f, "queue", id);
  g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_assert_cmpuint(stats.spare_files, ==, 1);
  /* Its name was durable: the 250 waited for no directory sync. */
  g_assert_cmpuint(stats.directory_syncs, ==, 0);
  g_clear_pointer(&f->spool, pst_spool_close);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
}

static void test_commit_one_at_a_time(Fixture *f, gconstpointer data) {
  enum { N = 20 };
  wait_for_spares(f->spool);
  pst_spool_set_batch_limit(f->spool, 1);
  g_autoptr(PstEnvelope) envelope = envelope_new("one@example.org", 1);
  Commit commits[N];
  guint done = 0;
  for (guint i = 0; i < N; i++)
    commit_start(f->spool, &commits[i], &done, "x\r\n", 3, 3, envelope, NULL, 0,
                 PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, N);
  for (guint i = 0; i < N; i++) {
    g_assert_true(commits[i].ok);
    commit_clear(&commits[i]);
  }
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_assert_cmpuint(stats.batches, ==, N);
  g_assert_cmpuint(stats.file_syncs, ==, N);
  /* One sync per message: the directory syncs are deferred. */
  g_assert_cmpuint(stats.directory_syncs, ==, 0);
  g_assert_cmpuint(count_files(f, "queue"), ==, N);
}

static void test_abort_removes_tmp(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = pst_spool_writer_new(f->spool, &error);
  g_assert_no_error(error);
  g_assert_true(pst_spool_writer_write(writer, "abc", 3, &error));
  g_assert_true(pst_spool_writer_flush(writer, &error));
  g_assert_cmpuint(count_files(f, "tmp"), ==, 1);
  g_autofree char *contents = NULL;
  g_assert_true(g_file_get_contents(pst_spool_writer_get_path(writer),
                                    &contents, NULL, &error));
  g_assert_cmpstr(contents, ==, "abc");
  pst_spool_writer_free(writer);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
}

/* The session may drop its writer before the commit completes. */
static void test_free_while_committing(Fixture *f, gconstpointer data) {
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, "x\r\n", 3, 3, envelope, NULL, 0,
               PST_SPOOL_QUEUE_ACTIVE);
  g_clear_pointer(&commit.writer, pst_spool_writer_free);
  wait_for(&done, 1);
  g_assert_true(commit.ok);
  g_assert_cmpuint(count_files(f, "queue"), ==, 1);
}

/* Closing waits for the commits already submitted. */
static void test_close_drains(Fixture *f, gconstpointer data) {
  enum { N = 10 };
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  Commit commits[N];
  guint done = 0;
  for (guint i = 0; i < N; i++)
    commit_start(f->spool, &commits[i], &done, "x\r\n", 3, 3, envelope, NULL, 0,
                 PST_SPOOL_QUEUE_ACTIVE);
  for (guint i = 0; i < N; i++)
    g_clear_pointer(&commits[i].writer, pst_spool_writer_free);
  g_clear_pointer(&f->spool, pst_spool_close);
  g_assert_cmpuint(count_files(f, "queue"), ==, N);
  wait_for(&done, N);
  for (guint i = 0; i < N; i++)
    g_assert_true(commits[i].ok);
}

/* --- Failures ------------------------------------------------------------- */

typedef struct {
  gint calls;
  gint fail_file_call; /* 1-based call number of a file sync to fail; 0 none */
  gboolean fail_files;
  gboolean fail_directories;
} SyncFault;

static int sync_with_faults(int fd, gboolean directory, gpointer data) {
  SyncFault *fault = data;
  if (directory) {
    if (fault->fail_directories) {
      errno = EIO;
      return -1;
    }
    return fsync(fd);
  }
  gint call = g_atomic_int_add(&fault->calls, 1) + 1;
  if (fault->fail_files || call == fault->fail_file_call) {
    errno = EIO;
    return -1;
  }
  return fdatasync(fd);
}

static void assert_commits_failed(Commit *commits, guint n) {
  for (guint i = 0; i < n; i++) {
    g_assert_false(commits[i].ok);
    g_assert_error(commits[i].error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
    g_assert_nonnull(strstr(commits[i].error->message, g_strerror(EIO)));
    g_assert_nonnull(strstr(commits[i].error->message,
                            pst_spool_writer_get_id(commits[i].writer)));
  }
}

static void test_fail_file_sync(Fixture *f, gconstpointer data) {
  SyncFault fault = {.fail_files = TRUE};
  pst_spool_set_sync_func(f->spool, sync_with_faults, &fault);
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  Commit commits[3];
  guint done = 0;
  for (guint i = 0; i < 3; i++)
    commit_start(f->spool, &commits[i], &done, "x\r\n", 3, 3, envelope, NULL, 0,
                 PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, 3);
  assert_commits_failed(commits, 3);
  for (guint i = 0; i < 3; i++)
    commit_clear(&commits[i]);
  g_assert_cmpuint(count_files(f, "queue"), ==, 0);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
}

/* One message of a batch fails; the others are queued. */
static void test_fail_one_of_batch(Fixture *f, gconstpointer data) {
  enum { N = 5 };
  SyncFault fault = {.fail_file_call = 3};
  pst_spool_set_sync_func(f->spool, sync_with_faults, &fault);
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  Commit commits[N];
  guint done = 0;
  for (guint i = 0; i < N; i++)
    commit_start(f->spool, &commits[i], &done, "x\r\n", 3, 3, envelope, NULL, 0,
                 PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, N);
  guint failed = 0;
  for (guint i = 0; i < N; i++) {
    if (!commits[i].ok) {
      failed++;
      assert_commits_failed(&commits[i], 1);
    }
    commit_clear(&commits[i]);
  }
  g_assert_cmpuint(failed, ==, 1);
  g_assert_cmpuint(count_files(f, "queue"), ==, N - 1);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
}

/* Files made without a spare (their tmp/ names are not durable: with
 * every directory sync failing, no spare is ever published) wait for their
 * directory sync; it fails after the renames: they are undone. */
static void test_fail_directory_sync(Fixture *f, gconstpointer data) {
  SyncFault fault = {.fail_directories = TRUE};
  pst_spool_set_sync_func(f->spool, sync_with_faults, &fault);
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  Commit commits[4];
  guint done = 0;
  for (guint i = 0; i < 4; i++)
    commit_start(f->spool, &commits[i], &done, "x\r\n", 3, 3, envelope, NULL, 0,
                 i % 2 ? PST_SPOOL_QUEUE_HOLD : PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, 4);
  assert_commits_failed(commits, 4);
  for (guint i = 0; i < 4; i++)
    commit_clear(&commits[i]);
  g_assert_cmpuint(count_files(f, "queue"), ==, 0);
  g_assert_cmpuint(count_files(f, "hold"), ==, 0);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_assert_cmpuint(stats.spare_files, ==, 0);
  pst_spool_set_sync_func(f->spool, NULL, NULL);
  g_clear_pointer(&f->spool, pst_spool_close);
  g_assert_cmpuint(log_drop("cannot sync directory queue/"), >=, 1);
  g_assert_cmpuint(log_drop("cannot sync directory hold/"), >=, 1);
  log_drop("cannot sync directory tmp/");
}

/* A full disk, as RLIMIT_FSIZE makes it: EFBIG from write(). */
static void with_file_size_limit(rlim_t limit, void (*body)(Fixture *),
                                 Fixture *f) {
  struct rlimit saved;
  g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &saved), ==, 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit tight = {limit, saved.rlim_max};
  g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &tight), ==, 0);
  body(f);
  g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &saved), ==, 0);
  signal(SIGXFSZ, old_handler);
}

/* Big enough to overflow the writer's buffer: write() itself fails. */
static void disk_full_large(Fixture *f) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = pst_spool_writer_new(f->spool, &error);
  g_assert_no_error(error);
  g_autofree char *chunk = g_strnfill(32 * 1024, 'x');
  gboolean ok = TRUE;
  for (guint i = 0; i < 8 && ok; i++)
    ok = pst_spool_writer_write(writer, chunk, 32 * 1024, &error);
  g_assert_false(ok);
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  g_assert_nonnull(strstr(error->message, g_strerror(EFBIG)));
  g_assert_nonnull(strstr(error->message, pst_spool_writer_get_path(writer)));
  g_clear_error(&error);
  /* The error sticks, and the commit reports it. */
  g_assert_false(pst_spool_writer_write(writer, "x", 1, &error));
  g_clear_error(&error);
  Commit commit;
  commit_writer_wait(writer, &commit);
  g_assert_false(commit.ok);
  g_assert_error(commit.error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  commit_clear(&commit);
}

/* A large piece after a small one: one writev() of both is cut short at
 * the limit, inside the large piece, and the next one fails. */
static void disk_full_vector(Fixture *f) {
  g_autoptr(GError) error = NULL;
  PstSpoolWriter *writer = pst_spool_writer_new(f->spool, &error);
  g_assert_no_error(error);
  g_autofree char *chunk = g_strnfill(160 * 1024, 'v');
  g_assert_true(pst_spool_writer_write(writer, chunk, 1000, &error));
  g_assert_false(pst_spool_writer_write(writer, chunk, 160 * 1024, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  g_assert_nonnull(strstr(error->message, g_strerror(EFBIG)));
  g_clear_error(&error);
  struct stat st;
  g_assert_cmpint(stat(pst_spool_writer_get_path(writer), &st), ==, 0);
  g_assert_cmpint(st.st_size, ==, 100 * 1024);
  pst_spool_writer_free(writer);
}

/* Small: the buffer holds it, and the syncer's write fails. */
static void disk_full_small(Fixture *f) {
  g_autofree char *content = g_strnfill(5000, 'y');
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, content, 5000, 5000, envelope, NULL, 0,
               PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, 1);
  g_assert_false(commit.ok);
  g_assert_error(commit.error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  g_assert_nonnull(strstr(commit.error->message, g_strerror(EFBIG)));
  commit_clear(&commit);
}

static void test_fail_disk_full(Fixture *f, gconstpointer data) {
  with_file_size_limit(100 * 1024, disk_full_large, f);
  with_file_size_limit(100 * 1024, disk_full_vector, f);
  with_file_size_limit(4096, disk_full_small, f);
  g_assert_cmpuint(count_files(f, "queue"), ==, 0);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  /* And the spool works again once there is room. */
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, "x\r\n", 3, 3, envelope, NULL, 0,
               PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, 1);
  g_assert_true(commit.ok);
  commit_clear(&commit);
}

/* An id already in the queue (another process, a clock gone wrong) is
 * never overwritten: the commit fails instead. */
static void test_fail_id_taken(Fixture *f, gconstpointer data) {
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  g_autoptr(GError) error = NULL;
  guint done = 0;
  Commit commit = {.done = &done};
  commit.writer = pst_spool_writer_new(f->spool, &error);
  g_assert_no_error(error);
  const char *id = pst_spool_writer_get_id(commit.writer);
  write_file(f, "queue", id, "older message", 13);
  pst_spool_writer_commit_async(commit.writer, envelope, NULL, 0,
                                PST_SPOOL_QUEUE_ACTIVE, commit_done, &commit);
  wait_for(&done, 1);
  g_assert_error(commit.error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_IO);
  g_assert_nonnull(strstr(commit.error->message, g_strerror(EEXIST)));
  g_autofree char *path = fixture_path(f, "queue", id);
  g_autofree char *contents = NULL;
  g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
  g_assert_cmpstr(contents, ==, "older message");
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
  commit_clear(&commit);
}

static void test_fail_limit(Fixture *f, gconstpointer data) {
  g_autoptr(PstEnvelope) envelope = envelope_new("a@b", 1);
  g_free(envelope->helo);
  envelope->helo = g_strnfill(70000, 'h');
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, "x\r\n", 3, 3, envelope, NULL, 0,
               PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, 1);
  g_assert_error(commit.error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_LIMIT);
  commit_clear(&commit);
  g_assert_cmpuint(count_files(f, "tmp"), ==, 0);
}

/* --- Reading and recovery ------------------------------------------------- */

/* Queues one small message and returns its id. */
static char *queue_one(Fixture *f, const char *sender, PstSpoolQueue queue) {
  g_autoptr(PstEnvelope) envelope = envelope_new(sender, 1);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, "Subject: s\r\n\r\nb\r\n", 17, 17,
               envelope, NULL, 0, queue);
  wait_for(&done, 1);
  g_assert_true(commit.ok);
  char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  commit_clear(&commit);
  return id;
}

static void test_load_errors(Fixture *f, gconstpointer data) {
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE,
                               "0000000000000000", &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND);
  g_clear_error(&error);
  g_assert_null(
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, "../lock", &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NOT_FOUND);
  g_clear_error(&error);

  /* A flipped content octet: the trailer loads, the content does not. */
  g_autofree char *id = queue_one(f, "a@b", PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *path = fixture_path(f, "queue", id);
  int fd = open(path, O_WRONLY);
  g_assert_cmpint(pwrite(fd, "T", 1, 0), ==, 1);
  close(fd);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_assert_null(pst_queued_message_get_content(message, &error));
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, path));
  g_clear_error(&error);

  g_assert_true(pst_spool_move_to_corrupt(f->spool, PST_SPOOL_QUEUE_ACTIVE, id,
                                          "content checksum mismatch", &error));
  g_assert_no_error(error);
  g_assert_true(log_take(id, "corrupt/", "content checksum mismatch", NULL));
  g_assert_cmpuint(count_files(f, "queue"), ==, 0);
  g_assert_cmpuint(count_files(f, "corrupt"), ==, 1);
}

static void test_recover(Fixture *f, gconstpointer data) {
  g_autofree char *good = queue_one(f, "good@x", PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *held = queue_one(f, "held@x", PST_SPOOL_QUEUE_HOLD);
  g_autofree char *victim = queue_one(f, "victim@x", PST_SPOOL_QUEUE_ACTIVE);
  g_autoptr(GError) error = NULL;

  /* Truncate one message: the tail of its trailer is gone. */
  g_autofree char *victim_path = fixture_path(f, "queue", victim);
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_assert_true(g_file_get_contents(victim_path, &contents, &length, &error));
  write_file(f, "queue", victim, contents, length - 10);
  /* Garbage under an id-like name, a stray name, a symlink. */
  write_file(f, "hold", "00000000000000ZZ", "garbage", 7);
  write_file(f, "queue", "notes.txt", "hello", 5);
  g_autofree char *link = fixture_path(f, "queue", "1111111111111111");
  g_assert_cmpint(symlink(good, link), ==, 0);
  /* A corrupt file of the same name was moved before. */
  write_file(f, "corrupt", victim, "older", 5);

  guint queued = 0;
  g_assert_true(pst_spool_recover(f->spool, &queued, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(queued, ==, 2);
  g_assert_cmpuint(count_files(f, "queue"), ==, 1);
  g_assert_cmpuint(count_files(f, "hold"), ==, 1);
  g_assert_cmpuint(count_files(f, "corrupt"), ==, 5);
  g_autofree char *renamed = g_strdup_printf("%s.1", victim);
  g_autofree char *renamed_path = fixture_path(f, "corrupt", renamed);
  g_assert_true(g_file_test(renamed_path, G_FILE_TEST_EXISTS));

  g_autofree char *victim_line = g_strdup_printf("queue/%s", victim);
  g_assert_true(log_take(victim_line, "corrupt/", renamed, NULL));
  g_assert_true(
      log_take("hold/00000000000000ZZ", "corrupt/00000000000000ZZ", NULL));
  g_assert_true(log_take("queue/notes.txt", "not a queue file name", NULL));
  g_assert_true(log_take("queue/1111111111111111", "symbolic link", NULL));

  /* What is left loads. */
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_HOLD, held, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(pst_queued_message_get_envelope(message)->sender, ==,
                  "held@x");
}

/* --- Directory syncs: order and failures -------------------------------- */

enum { MODEL_TMP, MODEL_QUEUE, MODEL_HOLD, MODEL_DIRS };

/* A model of what is durable, as powercutfs.py keeps it: each directory's
 * names as of its last fsync.  It checks THE INVARIANT of spool-syncer.c
 * at every fsync of tmp/: no name in queue/ or hold/ that their last
 * fsync did not see. */
typedef struct {
  GMutex lock;
  char *paths[MODEL_DIRS]; /* owned */
  ino_t inodes[MODEL_DIRS];
  GHashTable *durable[MODEL_DIRS]; /* of char*, owned */
  guint syncs[MODEL_DIRS];
  guint violations;
  gboolean fail_queue; /* fsyncs of queue/ fail with EIO */
  gboolean failed;     /* one did */
  guint tmp_syncs_after_failure;
} DirModel;

static GHashTable *model_list(const char *path) {
  GHashTable *names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            NULL);
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL)
    g_hash_table_add(names, g_strdup(name));
  return names;
}

static void model_init(DirModel *m, Fixture *f) {
  static const char *const names[MODEL_DIRS] = {"tmp", "queue", "hold"};
  *m = (DirModel){0};
  g_mutex_init(&m->lock);
  for (guint i = 0; i < MODEL_DIRS; i++) {
    m->paths[i] = fixture_path(f, names[i], NULL);
    GStatBuf st;
    g_assert_cmpint(g_stat(m->paths[i], &st), ==, 0);
    m->inodes[i] = st.st_ino;
    m->durable[i] = model_list(m->paths[i]);
  }
}

static void model_clear(DirModel *m) {
  for (guint i = 0; i < MODEL_DIRS; i++) {
    g_free(m->paths[i]);
    g_hash_table_unref(m->durable[i]);
  }
  g_mutex_clear(&m->lock);
}

/* Names in `which` that its last fsync did not see; under the lock. */
static guint model_undurable(DirModel *m, guint which) {
  g_autoptr(GHashTable) live = model_list(m->paths[which]);
  guint count = 0;
  GHashTableIter iter;
  gpointer name;
  g_hash_table_iter_init(&iter, live);
  while (g_hash_table_iter_next(&iter, &name, NULL))
    count += !g_hash_table_contains(m->durable[which], name);
  return count;
}

static int sync_modelled(int fd, gboolean directory, gpointer data) {
  DirModel *m = data;
  if (!directory)
    return fdatasync(fd);
  struct stat st;
  g_assert_cmpint(fstat(fd, &st), ==, 0);
  guint which = 0;
  while (which < MODEL_DIRS && m->inodes[which] != st.st_ino)
    which++;
  g_assert_cmpuint(which, <, MODEL_DIRS);
  g_mutex_lock(&m->lock);
  if (which == MODEL_QUEUE && m->fail_queue) {
    m->failed = TRUE;
    g_mutex_unlock(&m->lock);
    errno = EIO;
    return -1;
  }
  if (which == MODEL_TMP) {
    m->tmp_syncs_after_failure += m->failed;
    m->violations += model_undurable(m, MODEL_QUEUE);
    m->violations += model_undurable(m, MODEL_HOLD);
  }
  GHashTable *live = model_list(m->paths[which]);
  int rc = fsync(fd);
  if (rc == 0) {
    g_hash_table_unref(m->durable[which]);
    m->durable[which] = live;
    m->syncs[which]++;
  } else {
    g_hash_table_unref(live);
  }
  g_mutex_unlock(&m->lock);
  return rc;
}

/* Whether tmp/'s last fsync saw `name` there. */
static gboolean model_tmp_durable(DirModel *m, const char *name) {
  g_mutex_lock(&m->lock);
  gboolean durable = g_hash_table_contains(m->durable[MODEL_TMP], name);
  g_mutex_unlock(&m->lock);
  return durable;
}

/* Starts a commit, checking first that a spare it got was durable (once
 * submitted, the file may be renamed away and tmp/ synced before a later
 * check). */
static void model_commit(DirModel *m, PstSpool *spool, Commit *commit,
                         guint *done, const PstEnvelope *envelope,
                         PstSpoolQueue queue) {
  commit_open(spool, commit, done);
  g_autofree char *name =
      g_path_get_basename(pst_spool_writer_get_path(commit->writer));
  if (g_str_has_prefix(name, "spare."))
    g_assert_true(model_tmp_durable(m, name));
  commit_write_start(commit, "Subject: o\r\n\r\nx\r\n", 17, 17, envelope,
                     NULL, 0, queue);
}

/* Many commits into queue/ and hold/, in bursts and with pauses, with the
 * deferred syncs due at once: tmp/ is never synced while a rename into
 * queue/ or hold/ is not; spares are durable when handed out; a removal
 * right after a commit first makes tmp/ forget the message. */
static void test_order_invariant(Fixture *f, gconstpointer data) {
  enum { ROUNDS = 10, PER_ROUND = 20 };
  DirModel m;
  model_init(&m, f);
  pst_spool_set_sync_func(f->spool, sync_modelled, &m);
  pst_spool_set_directory_sync_delay(f->spool, 1);
  wait_for_spares(f->spool);
  g_autoptr(PstEnvelope) envelope = envelope_new("order@example.org", 1);
  for (guint round = 0; round < ROUNDS; round++) {
    Commit commits[PER_ROUND];
    guint done = 0;
    for (guint i = 0; i < PER_ROUND; i++)
      model_commit(&m, f->spool, &commits[i], &done, envelope,
                   (i + round) % 3 ? PST_SPOOL_QUEUE_ACTIVE
                                   : PST_SPOOL_QUEUE_HOLD);
    wait_for(&done, PER_ROUND);
    for (guint i = 0; i < PER_ROUND; i++) {
      g_assert_true(commits[i].ok);
      commit_clear(&commits[i]);
    }
    g_usleep(round % 2 ? 5000 : 0);
  }
  g_assert_cmpuint(count_files(f, "queue") + count_files(f, "hold"), ==,
                   ROUNDS * PER_ROUND);

  /* Removed at once (the deferred syncs far off): tmp/ forgets it first. */
  pst_spool_set_directory_sync_delay(f->spool, 60000);
  guint done = 0;
  Commit commit;
  model_commit(&m, f->spool, &commit, &done, envelope, PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *name =
      g_path_get_basename(pst_spool_writer_get_path(commit.writer));
  g_autofree char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  wait_for(&done, 1);
  g_assert_true(commit.ok);
  commit_clear(&commit);
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_spool_remove(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error));
  g_assert_no_error(error);
  g_assert_false(model_tmp_durable(&m, name));

  g_clear_pointer(&f->spool, pst_spool_close);
  g_test_message("syncs: tmp/ %u, queue/ %u, hold/ %u", m.syncs[MODEL_TMP],
                 m.syncs[MODEL_QUEUE], m.syncs[MODEL_HOLD]);
  g_assert_cmpuint(m.violations, ==, 0);
  g_assert_cmpuint(m.syncs[MODEL_TMP], >=, 2);
  g_assert_cmpuint(m.syncs[MODEL_QUEUE], >=, 1);
  g_assert_cmpuint(m.syncs[MODEL_HOLD], >=, 1);
  /* After a clean close nothing is left for recovery. */
  g_assert_cmpuint(model_undurable(&m, MODEL_QUEUE), ==, 0);
  g_assert_cmpuint(model_undurable(&m, MODEL_HOLD), ==, 0);
  model_clear(&m);
}

/* The deferred fsync of queue/ fails: the messages were acknowledged and
 * stay so (their names in tmp/ hold them), tmp/ is never synced again,
 * the failure is logged, and messages with durable spares still commit. */
static void test_fail_deferred_directory_sync(Fixture *f, gconstpointer data) {
  DirModel m;
  model_init(&m, f);
  pst_spool_set_sync_func(f->spool, sync_modelled, &m);
  wait_for_spares(f->spool);
  g_mutex_lock(&m.lock);
  m.fail_queue = TRUE;
  g_mutex_unlock(&m.lock);
  g_autoptr(PstEnvelope) envelope = envelope_new("deferred@example.org", 1);
  for (guint round = 0; round < 2; round++) {
    Commit commits[3];
    guint done = 0;
    for (guint i = 0; i < 3; i++)
      model_commit(&m, f->spool, &commits[i], &done, envelope,
                   PST_SPOOL_QUEUE_ACTIVE);
    wait_for(&done, 3);
    for (guint i = 0; i < 3; i++) {
      g_assert_no_error(commits[i].error);
      commit_clear(&commits[i]);
    }
    /* The deferred sync, now: it fails (or failed already). */
    pst_spool_settle(f->spool, NULL, NULL);
  }
  g_assert_cmpuint(count_files(f, "queue"), ==, 6);
  PstSpoolStats stats;
  pst_spool_get_stats(f->spool, &stats);
  g_assert_cmpuint(stats.directory_sync_failures, >=, 1);
  g_assert_cmpuint(stats.directory_syncs, ==, 0);
  /* The sync that failed may be the syncer thread's own (the idle
   * settle): pst_spool_settle() then returns as soon as tmp/ is frozen,
   * and the thread logs just after; wait for its line (5 s at most). */
  gboolean logged = FALSE;
  for (guint i = 0; i < 500 && !logged; i++) {
    logged = log_take("cannot sync directory queue/", g_strerror(EIO),
                      "safe under their names in tmp/", NULL);
    if (!logged)
      g_usleep(10000);
  }
  g_assert_true(logged);
  log_drop("cannot sync directory queue/");
  /* And for the rest of the process: not even at close. */
  g_clear_pointer(&f->spool, pst_spool_close);
  log_drop("cannot sync directory queue/");
  g_assert_true(m.failed);
  g_assert_cmpuint(m.tmp_syncs_after_failure, ==, 0);
  g_assert_cmpuint(m.violations, ==, 0);
  model_clear(&m);
}

/* --- Recovery of tmp/ ------------------------------------------------------ */

/* Moves queue file `id` of `dir` to tmp/NAME (what a power cut before the
 * deferred directory sync leaves); with `keep`, a hard link instead. */
static void move_to_tmp(Fixture *f, const char *dir, const char *id,
                        const char *name, gboolean keep) {
  g_autofree char *from = fixture_path(f, dir, id);
  g_autofree char *to = fixture_path(f, "tmp", name);
  g_assert_cmpint(keep ? link(from, to) : rename(from, to), ==, 0);
}

/* A copy of queue/ID in tmp/NAME, cut to `length` octets (0: whole) with
 * the octet at `flip` changed (-1: none). */
static void copy_to_tmp(Fixture *f, const char *id, const char *name,
                        gsize length, gssize flip) {
  g_autofree char *from = fixture_path(f, "queue", id);
  g_autofree char *contents = NULL;
  gsize size = 0;
  g_assert_true(g_file_get_contents(from, &contents, &size, NULL));
  if (flip >= 0)
    contents[flip] ^= 0x20;
  write_file(f, "tmp", name, contents, length > 0 ? length : size);
}

static void test_recover_tmp(Fixture *f, gconstpointer data) {
  g_autofree char *lost = queue_one(f, "lost@x", PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *held = queue_one(f, "held@x", PST_SPOOL_QUEUE_HOLD);
  g_autofree char *both = queue_one(f, "both@x", PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *model = queue_one(f, "model@x", PST_SPOOL_QUEUE_ACTIVE);
  g_clear_pointer(&f->spool, pst_spool_close);

  /* Renamed out of tmp/, but the cut came before queue/ or hold/ was
   * synced: found complete in tmp/ only. */
  move_to_tmp(f, "queue", lost, "spare.1.1", FALSE);
  move_to_tmp(f, "hold", held, "spare.1.2", FALSE);
  /* The rename reached the disk, tmp/'s removal of the name did not. */
  move_to_tmp(f, "queue", both, "spare.1.3", TRUE);
  /* Torn (no valid footer), an empty spare, a valid footer over a damaged
   * content. */
  copy_to_tmp(f, model, "spare.1.4", 20, -1);
  write_file(f, "tmp", "spare.1.5", "", 0);
  copy_to_tmp(f, model, "spare.1.6", 0, 3);
  g_autofree char *model_path = fixture_path(f, "queue", model);
  g_assert_cmpint(g_unlink(model_path), ==, 0);

  g_autoptr(GError) error = NULL;
  f->spool = pst_spool_open(f->directory, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
  g_assert_cmpuint(count_files(f, "queue"), ==, 2);
  g_assert_cmpuint(count_files(f, "hold"), ==, 1);
  g_assert_cmpuint(count_files_full(f, "corrupt", TRUE), ==, 1);
  g_autofree char *in_corrupt = fixture_path(f, "corrupt", "spare.1.6");
  g_assert_true(g_file_test(in_corrupt, G_FILE_TEST_IS_REGULAR));
  g_assert_true(log_take(lost, "tmp/spare.1.1", "recovered into queue/", NULL));
  g_assert_true(log_take(held, "tmp/spare.1.2", "recovered into hold/", NULL));
  g_assert_true(log_take("removed 1 incomplete", f->directory, NULL));
  g_assert_true(log_take("removed 1 files", "queued already", NULL));
  g_assert_true(log_take("tmp/spare.1.6", "checksum", "corrupt/spare.1.6",
                         NULL));

  guint queued = 0;
  g_assert_true(pst_spool_recover(f->spool, &queued, &error));
  g_assert_cmpuint(queued, ==, 3);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, lost, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(pst_queued_message_get_envelope(message)->sender, ==,
                  "lost@x");
  g_autoptr(GBytes) content = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  g_autoptr(PstQueuedMessage) hold =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_HOLD, held, &error);
  g_assert_no_error(error);
}

/* --- Pre-zeroed spares (format version 2) ----------------------------------
 */

static gsize file_size_of(Fixture *f, const char *dir, const char *name) {
  g_autofree char *path = fixture_path(f, dir, name);
  GStatBuf st;
  g_assert_cmpint(g_stat(path, &st), ==, 0);
  return (gsize)st.st_size;
}

/* The footer's version and trailer length of DIR/NAME. */
static guint footer_field(Fixture *f, const char *dir, const char *name,
                          guint offset) {
  g_autofree char *path = fixture_path(f, dir, name);
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_assert_true(g_file_get_contents(path, &contents, &length, NULL));
  const guint8 *field = (const guint8 *)contents + length - 32 + offset;
  return field[0] | field[1] << 8 | field[2] << 16 | (guint)field[3] << 24;
}

/* Commits `length` octets of `content` into a spare (spares are made
 * first) and returns the message's id.  Waits (30 s at most) for a spare
 * first: on a loaded machine the spare thread's next chunk may not be
 * published yet when the previous commits took the last one. */
static char *commit_in_spare(Fixture *f, const char *content, gsize length) {
  g_autoptr(PstEnvelope) envelope = envelope_new("spare@x", 1);
  for (guint i = 0; i < 3000 && pst_spool_count_spares(f->spool) == 0; i++)
    g_usleep(10000);
  g_assert_cmpuint(pst_spool_count_spares(f->spool), >, 0);
  guint done = 0;
  Commit commit;
  commit_start(f->spool, &commit, &done, content, length, 1000, envelope, NULL,
               0, PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *base =
      g_path_get_basename(pst_spool_writer_get_path(commit.writer));
  g_assert_true(g_str_has_prefix(base, "spare."));
  wait_for(&done, 1);
  g_assert_no_error(commit.error);
  g_assert_true(commit.ok);
  char *id = g_strdup(pst_spool_writer_get_id(commit.writer));
  commit_clear(&commit);
  return id;
}

/* Loads queue/ID and checks its content both ways: whole, and through
 * the content reader delivery uses. */
static void assert_content(Fixture *f, const char *id, const char *content,
                           gsize length) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_autoptr(GBytes) loaded = pst_queued_message_get_content(message, &error);
  g_assert_no_error(error);
  g_assert_cmpmem(g_bytes_get_data(loaded, NULL), g_bytes_get_size(loaded),
                  content, length);
  PstContentReader *reader = pst_content_reader_new(message, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(pst_content_reader_get_size(reader), ==, length);
  g_autofree guint8 *read = g_malloc(length + 1);
  g_assert_true(pst_content_reader_read_all(reader, read, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(read, length, content, length);
  pst_content_reader_free(reader);
}

/* Drops the pages of queue/ID from the page cache; FALSE when some stay
 * (a file system that keeps them, such as tmpfs). */
static gboolean evict_pages(Fixture *f, const char *id) {
  g_autofree char *path = fixture_path(f, "queue", id);
  return pst_test_evict_pages(path);
}

/* The main loop's load never waits for the disk: a small message whose
 * pages are in the page cache loads whole; evicted, or too large to be
 * read at once, it fails with WOULD_BLOCK, and the blocking load (a
 * worker's) reads it. */
static void test_load_cached(Fixture *f, gconstpointer data) {
  static const char small[] = "Subject: cached\r\n\r\nin the page cache\r\n";
  wait_for_spares(f->spool);
  g_autofree char *id = commit_in_spare(f, small, strlen(small));
  g_autoptr(GError) error = NULL;
  PstQueuedMessage *message =
      pst_spool_load_cached(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_assert_true(pst_queued_message_is_whole(message));
  pst_queued_message_free(message);
  assert_content(f, id, small, strlen(small));

  g_autoptr(GString) large = g_string_new("Subject: large\r\n\r\n");
  while (large->len < 40 * 1024)
    g_string_append(large, "a line of a message too large to read at once\r\n");
  g_autofree char *large_id = commit_in_spare(f, large->str, large->len);
  message = pst_spool_load_cached(f->spool, PST_SPOOL_QUEUE_ACTIVE, large_id,
                                  &error);
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK);
  g_assert_null(message);
  g_clear_error(&error);
  assert_content(f, large_id, large->str, large->len);

  if (!evict_pages(f, id)) {
    g_test_skip("this file system keeps a file's pages in memory");
    return;
  }
  message = pst_spool_load_cached(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_error(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_WOULD_BLOCK);
  g_assert_null(message);
  g_clear_error(&error);
  /* The blocking load reads it from the disk; then it is cached again. */
  assert_content(f, id, small, strlen(small));
  message = pst_spool_load_cached(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_no_error(error);
  g_assert_true(pst_queued_message_is_whole(message));
  pst_queued_message_free(message);
}

/* A message that fits its spare overwrites the zeros: the file keeps the
 * spare's size, the footer in its last octets (version 2). */
static void test_spare_fits(Fixture *f, gconstpointer data) {
  static const char content[] = "Received: x\r\nSubject: s\r\n\r\nsmall\r\n";
  wait_for_spares(f->spool);
  g_autofree char *id = commit_in_spare(f, content, strlen(content));
  g_assert_cmpuint(file_size_of(f, "queue", id), ==, PST_SPOOL_SPARE_SIZE);
  g_assert_cmpuint(footer_field(f, "queue", id, 8), ==, 2);
  assert_content(f, id, content, strlen(content));
}

/* A message larger than its spare grows the file as before (version 1,
 * the footer right after the trailer); one that fills it exactly keeps
 * its size without a gap (version 1 too). */
static void test_spare_outgrown(Fixture *f, gconstpointer data) {
  wait_for_spares(f->spool);
  g_autoptr(GString) large = g_string_new("Subject: large\r\n\r\n");
  while (large->len < PST_SPOOL_SPARE_SIZE + 1000)
    g_string_append(large, "a line of a message larger than a spare\r\n");
  g_autofree char *id = commit_in_spare(f, large->str, large->len);
  guint trailer = footer_field(f, "queue", id, 12);
  g_assert_cmpuint(file_size_of(f, "queue", id), ==, large->len + trailer + 32);
  g_assert_cmpuint(footer_field(f, "queue", id, 8), ==, 1);
  assert_content(f, id, large->str, large->len);
  /* The same envelope takes as many octets again: fill the spare. */
  g_string_truncate(large, PST_SPOOL_SPARE_SIZE - trailer - 32);
  g_autofree char *exact = commit_in_spare(f, large->str, large->len);
  g_assert_cmpuint(footer_field(f, "queue", exact, 12), ==, trailer);
  g_assert_cmpuint(file_size_of(f, "queue", exact), ==, PST_SPOOL_SPARE_SIZE);
  g_assert_cmpuint(footer_field(f, "queue", exact, 8), ==, 1);
  assert_content(f, exact, large->str, large->len);
}

/* Spares in tmp/ of `size` octets. */
static guint count_spares_of_size(Fixture *f, goffset size) {
  g_autofree char *path = fixture_path(f, "tmp", NULL);
  g_autoptr(GDir) handle = g_dir_open(path, 0, NULL);
  g_assert_nonnull(handle);
  guint count = 0;
  const char *name;
  while ((name = g_dir_read_name(handle)) != NULL) {
    g_autofree char *file = g_build_filename(path, name, NULL);
    GStatBuf st;
    count += g_str_has_prefix(name, "spare.") && g_stat(file, &st) == 0 &&
             st.st_size == size;
  }
  return count;
}

/* While most messages are larger than a spare, new spares come empty:
 * zeros that no message overwrites would only cost writes and syncs. */
static void test_spare_adaptive(Fixture *f, gconstpointer data) {
  wait_for_spares(f->spool);
  g_autoptr(GString) large = g_string_new("Subject: large\r\n\r\n");
  while (large->len < PST_SPOOL_SPARE_SIZE + 100)
    g_string_append(large, "a line of a message larger than a spare\r\n");
  /* Enough for the spare thread to make the next chunk. */
  for (guint i = 0; i < 40; i++) {
    g_autofree char *id = commit_in_spare(f, large->str, large->len);
  }
  /* A whole chunk (one being created is empty for a moment, too). */
  for (guint i = 0; i < 3000 && count_spares_of_size(f, 0) < 32; i++)
    g_usleep(10000);
  g_assert_cmpuint(count_spares_of_size(f, 0), >=, 32);
}

/* Files in tmp/ whose name starts with `prefix`. */
static guint count_prefixed(Fixture *f, const char *prefix) {
  g_autofree char *path = fixture_path(f, "tmp", NULL);
  g_autoptr(GDir) handle = g_dir_open(path, 0, NULL);
  g_assert_nonnull(handle);
  guint count = 0;
  const char *name;
  while ((name = g_dir_read_name(handle)) != NULL)
    count += g_str_has_prefix(name, prefix);
  return count;
}

/* How many files in `dir` have an inode of `inodes`. */
static guint count_inodes(Fixture *f, const char *dir, GHashTable *inodes) {
  g_autofree char *path = fixture_path(f, dir, NULL);
  g_autoptr(GDir) handle = g_dir_open(path, 0, NULL);
  g_assert_nonnull(handle);
  guint count = 0;
  const char *name;
  while ((name = g_dir_read_name(handle)) != NULL) {
    g_autofree char *file = fixture_path(f, dir, name);
    GStatBuf st;
    count += g_stat(file, &st) == 0 &&
             g_hash_table_contains(inodes, GSIZE_TO_POINTER((gsize)st.st_ino));
  }
  return count;
}

/* Checks the file `dir`/NAME that was a recycled message's: a spare in
 * tmp/ holds only zeros, `spare_size` of them (or at least one page,
 * G_MAXSIZE: either empty or zeros), with the mode of a new one; one in
 * queue/ holds a message written into it since.  Returns TRUE when NAME
 * is such a file. */
static gboolean check_recycled(Fixture *f, const char *dir, const char *name,
                               GHashTable *inodes, const char *content,
                               gsize spare_size) {
  g_autofree char *path = fixture_path(f, dir, name);
  GStatBuf st;
  if (g_stat(path, &st) != 0 ||
      !g_hash_table_contains(inodes, GSIZE_TO_POINTER((gsize)st.st_ino)))
    return FALSE;
  g_assert_cmpint(st.st_mode & 07777, ==, 0600);
  g_assert_cmpint(st.st_uid, ==, getuid());
  if (strcmp(dir, "queue") == 0) {
    assert_content(f, name, content, strlen(content));
    return TRUE;
  }
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_assert_true(g_file_get_contents(path, &contents, &length, NULL));
  if (spare_size != G_MAXSIZE)
    g_assert_cmpuint(length, ==, spare_size);
  else if (length > 0)
    g_assert_cmpuint(length, >=, 4096);
  g_autofree char *zeros = g_malloc0(length + 1);
  g_assert_cmpmem(contents, length, zeros, length);
  return TRUE;
}

/* Adds to `seen` the inodes of `inodes` found recycled as spares in tmp/
 * or holding a new message in queue/, checking each (check_recycled());
 * returns how many `seen` holds. */
static guint count_recycled(Fixture *f, GHashTable *inodes, GHashTable *seen,
                            const char *content, gsize spare_size) {
  const char *const dirs[] = {"tmp", "queue"};
  for (guint d = 0; d < G_N_ELEMENTS(dirs); d++) {
    g_autofree char *path = fixture_path(f, dirs[d], NULL);
    g_autoptr(GDir) handle = g_dir_open(path, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(handle)) != NULL) {
      if (d == 0 && !g_str_has_prefix(name, "spare."))
        continue;
      g_autofree char *file = fixture_path(f, dirs[d], name);
      GStatBuf st;
      if (check_recycled(f, dirs[d], name, inodes, content, spare_size) &&
          g_stat(file, &st) == 0)
        g_hash_table_add(seen, GSIZE_TO_POINTER((gsize)st.st_ino));
    }
  }
  return g_hash_table_size(seen);
}

/* A delivered message's file becomes a spare: removed from queue/ into
 * tmp/ as used.*, overwritten with zeros (emptied, with spares of no
 * zeros: `spare_size` 0) once a settle has made that durable, then a
 * spare again (same inode, mode and size), and messages written into it
 * read back as themselves. */
static void spare_recycle(Fixture *f, gsize spare_size) {
  static const char content[] = "Received: x\r\nSubject: r\r\n\r\nagain\r\n";
  pst_spool_set_spare_size(f->spool, spare_size);
  wait_for_spares(f->spool);
  g_autoptr(GHashTable) inodes = g_hash_table_new(NULL, NULL);
  g_autoptr(GError) error = NULL;
  for (guint i = 0; i < 8; i++) {
    g_autofree char *id = commit_in_spare(f, content, strlen(content));
    g_autofree char *path = fixture_path(f, "queue", id);
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_hash_table_add(inodes, GSIZE_TO_POINTER((gsize)st.st_ino));
    g_assert_true(pst_spool_remove_unsynced(f->spool, PST_SPOOL_QUEUE_ACTIVE,
                                            id, &error));
    g_assert_no_error(error);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
  }
  /* Waiting as used.* (or, once a deferred sync made that durable,
   * recycled already). */
  g_assert_cmpuint(count_inodes(f, "tmp", inodes), ==, 8);
  /* Their names in tmp/ durable: now they may be overwritten. */
  g_assert_true(pst_spool_settle(f->spool, NULL, &error));
  g_assert_no_error(error);
  /* Messages take spares until the spare thread makes its next chunk,
   * of the used files first. */
  for (guint i = 0; i < 300 && count_prefixed(f, "used.") > 0; i++) {
    g_autofree char *id = commit_in_spare(f, content, strlen(content));
  }
  g_assert_cmpuint(count_prefixed(f, "used."), ==, 0);
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  g_assert_cmpuint(count_recycled(f, inodes, seen, content, spare_size), ==,
                   8);
}

static void test_spare_recycle(Fixture *f, gconstpointer data) {
  spare_recycle(f, PST_SPOOL_SPARE_SIZE);
}

static void test_spare_recycle_empty(Fixture *f, gconstpointer data) {
  spare_recycle(f, 0);
}

/* While most messages are larger than a spare, chunks of empty spares
 * recycle delivered files too: one of at most 128 KiB keeps its blocks,
 * overwritten with zeros at its own size rounded up to a page (so the
 * next message of about that size overwrites allocated blocks and its
 * fdatasync commits no metadata: emptying them cost a third of the
 * 64 KiB rate, bench/README.md round 12); a larger one is emptied. */
static void spare_recycle_outgrown(Fixture *f, gsize line_count) {
  g_autoptr(GString) large = g_string_new("Subject: outgrown\r\n\r\n");
  for (gsize i = 0; i < line_count; i++)
    g_string_append(large, "a line of a message larger than a spare\r\n");
  g_assert_cmpuint(large->len, >, PST_SPOOL_SPARE_SIZE);
  wait_for_spares(f->spool);
  g_autoptr(GHashTable) inodes = g_hash_table_new(NULL, NULL);
  g_autoptr(GError) error = NULL;
  goffset file_size = 0;
  /* Enough outgrown spares for the next chunks to be empty ones. */
  for (guint i = 0; i < 40; i++) {
    g_autofree char *id = commit_in_spare(f, large->str, large->len);
    g_autofree char *path = fixture_path(f, "queue", id);
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_hash_table_add(inodes, GSIZE_TO_POINTER((gsize)st.st_ino));
    g_assert_true(file_size == 0 || file_size == st.st_size);
    file_size = st.st_size;
    g_assert_true(pst_spool_remove_unsynced(f->spool, PST_SPOOL_QUEUE_ACTIVE,
                                            id, &error));
    g_assert_no_error(error);
  }
  g_assert_true(pst_spool_settle(f->spool, NULL, &error));
  g_assert_no_error(error);
  for (guint i = 0; i < 300 && count_prefixed(f, "used.") > 0; i++) {
    g_autofree char *id = commit_in_spare(f, large->str, large->len);
  }
  g_assert_cmpuint(count_prefixed(f, "used."), ==, 0);
  gsize expected = file_size <= 128 * 1024
                       ? ((gsize)file_size + 4095) / 4096 * 4096
                       : 0;
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  guint recycled = count_recycled(f, inodes, seen, large->str, expected);
  g_assert_cmpuint(recycled, >, 0);
  /* Some are still spares in tmp/, so their size was checked. */
  g_assert_cmpuint(count_inodes(f, "tmp", inodes), >, 0);
}

/* About 24 KiB: zeros at its own size. */
static void test_spare_recycle_outgrown(Fixture *f, gconstpointer data) {
  spare_recycle_outgrown(f, 600);
}

/* About 160 KiB: too large to zero, emptied. */
static void test_spare_recycle_too_large(Fixture *f, gconstpointer data) {
  spare_recycle_outgrown(f, 4000);
}

/* Commits `n` messages of `content` at once (they come in batches) and
 * removes each (unsynced, as after its delivery), noting its inode. */
static void commit_and_remove_batch(Fixture *f, guint n, const char *content,
                                    GHashTable *inodes) {
  g_autoptr(PstEnvelope) envelope = envelope_new("batch@x", 1);
  g_autofree Commit *commits = g_new0(Commit, n);
  guint done = 0;
  for (guint i = 0; i < n; i++)
    commit_start(f->spool, &commits[i], &done, content, strlen(content), 1000,
                 envelope, NULL, 0, PST_SPOOL_QUEUE_ACTIVE);
  wait_for(&done, n);
  for (guint i = 0; i < n; i++) {
    g_assert_no_error(commits[i].error);
    g_assert_true(commits[i].ok);
    const char *id = pst_spool_writer_get_id(commits[i].writer);
    g_autofree char *path = fixture_path(f, "queue", id);
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    if (inodes != NULL)
      g_hash_table_add(inodes, GSIZE_TO_POINTER((gsize)st.st_ino));
    g_autoptr(GError) error = NULL;
    g_assert_true(pst_spool_remove_unsynced(f->spool, PST_SPOOL_QUEUE_ACTIVE,
                                            id, &error));
    g_assert_no_error(error);
    commit_clear(&commits[i]);
  }
}

/* While messages come in batches, delivered files are unlinked; with
 * the knob on, recycled too: as empty spares or spares of zeros, never
 * handed out before a settle made used.* their only durable name. */
static void test_spare_recycle_batches(Fixture *f, gconstpointer data) {
  static const char content[] = "Received: x\r\nSubject: b\r\n\r\nbatch\r\n";
  enum { N = 24 };
  g_autoptr(GError) error = NULL;
  pst_spool_set_batch_recycling(f->spool, FALSE);
  wait_for_spares(f->spool);
  for (guint round = 0; round < 3; round++)
    commit_and_remove_batch(f, N, content, NULL);
  g_assert_cmpuint(count_prefixed(f, "used."), ==, 0);
  pst_spool_set_batch_recycling(f->spool, TRUE);
  g_autoptr(GHashTable) inodes = g_hash_table_new(NULL, NULL);
  commit_and_remove_batch(f, N, content, inodes);
  g_assert_cmpuint(count_prefixed(f, "used."), ==, N);
  g_assert_true(pst_spool_settle(f->spool, NULL, &error));
  g_assert_no_error(error);
  /* Batches take spares until the spare thread has made chunks of the
   * used files (their own removals add more, not counted). */
  g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
  guint recycled = 0;
  for (guint i = 0; i < 100 && recycled < N; i++) {
    commit_and_remove_batch(f, N, content, NULL);
    recycled = count_recycled(f, inodes, seen, content, G_MAXSIZE);
  }
  g_assert_cmpuint(recycled, ==, N);
}

/* After a crash, a delivered message's file waiting in tmp/ to be
 * recycled is removed unread, whatever it holds: the whole old message
 * (never delivered again), part of its zeros (never moved to corrupt/),
 * or only zeros; without a log line, like a spare. */
static void test_recover_used(Fixture *f, gconstpointer data) {
  g_autofree char *whole = queue_one(f, "whole@x", PST_SPOOL_QUEUE_ACTIVE);
  g_autofree char *model = queue_one(f, "model@x", PST_SPOOL_QUEUE_ACTIVE);
  g_clear_pointer(&f->spool, pst_spool_close);
  move_to_tmp(f, "queue", whole, "used.1.1", FALSE);
  copy_to_tmp(f, model, "used.1.2", 0, 3);
  g_autofree char *zeros = g_malloc0(PST_SPOOL_SPARE_SIZE);
  write_file(f, "tmp", "used.1.3", zeros, PST_SPOOL_SPARE_SIZE);
  write_file(f, "tmp", "used.1.4", "", 0);
  g_autoptr(GError) error = NULL;
  f->spool = pst_spool_open(f->directory, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
  g_assert_cmpuint(count_files(f, "queue"), ==, 1);
  g_assert_cmpuint(count_files_full(f, "corrupt", TRUE), ==, 0);
  g_autofree char *kept = fixture_path(f, "queue", model);
  g_assert_true(g_file_test(kept, G_FILE_TEST_IS_REGULAR));
}

/* A file of format version 1 (content, trailer, footer; what every
 * earlier version wrote) still loads, recovers and delivers. */
static void test_read_version_1(Fixture *f, gconstpointer data) {
  static const char content[] = "Subject: old\r\n\r\nwritten before\r\n";
  char id[PST_QUEUE_ID_LENGTH + 1];
  pst_queue_id_new(id);
  g_autoptr(PstEnvelope) envelope = envelope_new("old@x", 2);
  gsize length = strlen(content);
  g_autoptr(GBytes) tail =
      pst_spool_format_encode(id, envelope, NULL, 0, length,
                              pst_spool_crc32c(0, content, length), NULL);
  g_autoptr(GByteArray) file = g_byte_array_new();
  g_byte_array_append(file, (const guint8 *)content, length);
  g_byte_array_append(file, g_bytes_get_data(tail, NULL),
                      g_bytes_get_size(tail));
  write_file(f, "queue", id, file->data, file->len);
  g_assert_cmpuint(footer_field(f, "queue", id, 8), ==, 1);
  guint queued = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_spool_recover(f->spool, &queued, &error));
  g_assert_cmpuint(queued, ==, 1);
  assert_content(f, id, content, length);
  g_autoptr(PstQueuedMessage) message =
      pst_spool_load(f->spool, PST_SPOOL_QUEUE_ACTIVE, id, &error);
  g_assert_true(
      pst_envelope_equal(pst_queued_message_get_envelope(message), envelope));
}

/* After a crash: a pre-zeroed spare (all zeros, no footer) is removed
 * without a word, like an empty one; a message in a spare whose footer
 * and trailer reached the disk but not its content (zeros) fails its
 * content checksum and goes to corrupt/, never delivered as something
 * else; one whose footer did not reach the disk is incomplete. */
static void test_recover_tmp_zeros(Fixture *f, gconstpointer data) {
  static const char content[] = "Subject: z\r\n\r\ntorn\r\n";
  wait_for_spares(f->spool);
  g_autofree char *id = commit_in_spare(f, content, strlen(content));
  g_clear_pointer(&f->spool, pst_spool_close);
  g_autofree char *path = fixture_path(f, "queue", id);
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_assert_true(g_file_get_contents(path, &contents, &length, NULL));
  g_assert_cmpuint(length, ==, PST_SPOOL_SPARE_SIZE);
  g_assert_cmpint(g_unlink(path), ==, 0);

  g_autofree char *zeros = g_malloc0(length);
  write_file(f, "tmp", "spare.1.1", zeros, length);
  memset(contents, 0, strlen(content));
  write_file(f, "tmp", "spare.1.2", contents, length);
  memset(contents + length - 32, 0, 32);
  write_file(f, "tmp", "spare.1.3", contents, length);

  g_autoptr(GError) error = NULL;
  f->spool = pst_spool_open(f->directory, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(count_files_full(f, "tmp", TRUE), ==, 0);
  g_assert_cmpuint(count_files(f, "queue"), ==, 0);
  g_assert_cmpuint(count_files_full(f, "corrupt", TRUE), ==, 1);
  g_autofree char *in_corrupt = fixture_path(f, "corrupt", "spare.1.2");
  g_assert_true(g_file_test(in_corrupt, G_FILE_TEST_IS_REGULAR));
  g_assert_true(
      log_take("tmp/spare.1.2", "checksum", "corrupt/spare.1.2", NULL));
  /* spare.1.3 only: the zeros are not counted. */
  g_assert_true(log_take("removed 1 incomplete", f->directory, NULL));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  log_lines = g_ptr_array_new_with_free_func(g_free);
  g_log_set_writer_func(capture_writer, NULL, NULL);
#define ADD(path, func, no_open)                                               \
  g_test_add("/queue/spool/" path, Fixture, no_open, fixture_set_up, func,     \
             fixture_tear_down)
  ADD("open/layout", test_open_layout, NULL);
  ADD("open/stale-tmp", test_open_stale_tmp, NULL);
  ADD("open/missing-readonly", test_open_missing_readonly, "no");
  ADD("open/not-writable", test_open_not_writable, "no");
  ADD("commit/roundtrip", test_commit_roundtrip, NULL);
  ADD("load/cached", test_load_cached, NULL);
  ADD("commit/header-override-hold", test_commit_header_override_hold, NULL);
  ADD("commit/large-override", test_commit_large_override, NULL);
  ADD("commit/mixed-pieces", test_commit_mixed_pieces, NULL);
  ADD("commit/group", test_commit_group, NULL);
  ADD("commit/group-sequential", test_commit_group_sequential, NULL);
  ADD("commit/overlap", test_commit_overlap, NULL);
  ADD("commit/overlap-directory-sync", test_commit_overlap_directory_sync,
      NULL);
  ADD("commit/rename-during-target-sync",
      test_commit_rename_during_target_sync, NULL);
  ADD("commit/spare-files", test_commit_spare_files, NULL);
  ADD("commit/one-at-a-time", test_commit_one_at_a_time, NULL);
  ADD("commit/abort", test_abort_removes_tmp, NULL);
  ADD("commit/free-while-committing", test_free_while_committing, NULL);
  ADD("commit/close-drains", test_close_drains, NULL);
  ADD("fail/file-sync", test_fail_file_sync, NULL);
  ADD("fail/one-of-batch", test_fail_one_of_batch, NULL);
  ADD("fail/directory-sync", test_fail_directory_sync, NULL);
  ADD("fail/deferred-directory-sync", test_fail_deferred_directory_sync,
      NULL);
  ADD("fail/disk-full", test_fail_disk_full, NULL);
  ADD("fail/id-taken", test_fail_id_taken, NULL);
  ADD("fail/limit", test_fail_limit, NULL);
  ADD("read/load-errors", test_load_errors, NULL);
  ADD("read/recover", test_recover, NULL);
  ADD("order/invariant", test_order_invariant, NULL);
  ADD("read/recover-tmp", test_recover_tmp, NULL);
  ADD("read/recover-tmp-zeros", test_recover_tmp_zeros, NULL);
  ADD("read/version-1", test_read_version_1, NULL);
  ADD("spare/fits", test_spare_fits, NULL);
  ADD("spare/outgrown", test_spare_outgrown, NULL);
  ADD("spare/adaptive", test_spare_adaptive, NULL);
  ADD("spare/recycle", test_spare_recycle, NULL);
  ADD("spare/recycle-empty", test_spare_recycle_empty, NULL);
  ADD("spare/recycle-outgrown", test_spare_recycle_outgrown, NULL);
  ADD("spare/recycle-too-large", test_spare_recycle_too_large, NULL);
  ADD("spare/recycle-batches", test_spare_recycle_batches, NULL);
  ADD("read/recover-used", test_recover_used, NULL);
#undef ADD
  return g_test_run();
}
