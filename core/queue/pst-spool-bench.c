/* pst-spool-bench.c - measures the spool's commit throughput.
 *
 *   pst-spool-bench [--messages N] [--producers M] [--size OCTETS]
 *                   [--mode group|single|both] [--sync-threads T]
 *                   [--remove] [--no-recycle] [--recycle-batches]
 *                   [--spare-size OCTETS] [--dir DIRECTORY] [--keep]
 *
 * M producers, simulated on one main loop like SMTP sessions, each write a
 * message of OCTETS (in 512-octet pieces, as DATA arrives) and commit it,
 * starting the next one when the commit completes, until N messages are
 * durable.  "group" is the spool as the daemon runs it; "single" limits
 * each batch to one message (one fdatasync per message; the directory
 * fsyncs are deferred either way), the baseline group commit is measured
 * against.  T threads
 * fdatasync the files of a batch concurrently (default: the spool's
 * default; 1 = one after the other).  Each run uses
 * a fresh spool under DIRECTORY (default /var/tmp), removed afterwards
 * unless --keep.
 *
 * Prints, per run: messages per second; CPU per message on the main thread
 * and on all threads; the disk's cache flushes per message (from
 * /proc/diskstats: the whole disk, so other programs' flushes count too);
 * the syncs per message a commit waited for (file, and directory for the
 * messages that got no spare) and the deferred directory syncs (queue/,
 * hold/, tmp/) per message; batches; how many messages started
 * in a spare file; and commit latency (from commit_async to its callback:
 * what a client waits for after its final dot), average, p50, p90, p99
 * and maximum.
 *
 * --spare-size: the zeros in each spare file (default the spool's,
 * PST_SPOOL_SPARE_SIZE; 0: empty spares, as before format version 2).
 * Each run starts once the first spares are ready, as on a daemon that
 * has received a message before.
 *
 * --remove: each committed message is removed from queue/ (unsynced, as
 * the queue manager does once it relayed it) by a worker thread while the
 * next ones are written and synced, as in a relay: the directory then
 * changes under the deferred directory syncs and the journal commits of
 * the messages that follow.  Their files are recycled as spares, as the
 * daemon does, unless --no-recycle (they are unlinked, as before);
 * --recycle-batches recycles them also while commits come in batches of
 * several (the daemon does not: see "Recycling" in spool-syncer.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <glib/gstdio.h>

#include "queue/spool-manage.h"
#include "queue/spool-private.h"

typedef struct _Bench Bench;

static gboolean no_recycle;        /* --no-recycle */
static gboolean batch_recycle;     /* --recycle-batches */

typedef struct {
  Bench *bench;           /* not owned */
  PstSpoolWriter *writer; /* owned, nullable */
  gint64 commit_started;  /* monotonic µs */
} Producer;

struct _Bench {
  PstSpool *spool;       /* owned */
  PstEnvelope *envelope; /* owned */
  char *content;         /* owned: one message */
  gsize size;
  guint target; /* messages to commit */
  guint started;
  guint committed;
  guint failed;
  GArray *latencies;  /* of gint64 µs */
  GMainLoop *loop;    /* owned */
  guint sync_threads; /* as set, for the report */
  guint64 spare_size; /* as set, for the report */
  GThreadPool *remover; /* owned, nullable: --remove */
  guint remove_failures; /* under the pool: its one thread */
};

/* --remove: the worker thread removes a committed message. */
static void bench_remove(gpointer data, gpointer user_data) {
  g_autofree char *id = data;
  Bench *bench = user_data;
  g_autoptr(GError) error = NULL;
  if (!pst_spool_remove_unsynced(bench->spool, PST_SPOOL_QUEUE_ACTIVE, id,
                                 &error)) {
    fprintf(stderr, "remove failed: %s\n", error->message);
    bench->remove_failures++;
  }
}

static void producer_next(Producer *producer);

static void producer_committed(GObject *source, GAsyncResult *result,
                               gpointer user_data) {
  Producer *producer = user_data;
  Bench *bench = producer->bench;
  g_autoptr(GError) error = NULL;
  gint64 latency = g_get_monotonic_time() - producer->commit_started;
  if (pst_spool_writer_commit_finish(producer->writer, result, &error)) {
    bench->committed++;
    g_array_append_val(bench->latencies, latency);
    if (bench->remover != NULL)
      g_thread_pool_push(
          bench->remover,
          g_strdup(pst_spool_writer_get_id(producer->writer)), NULL);
  } else {
    bench->failed++;
    fprintf(stderr, "commit failed: %s\n", error->message);
  }
  g_clear_pointer(&producer->writer, pst_spool_writer_free);
  if (bench->committed + bench->failed == bench->target)
    g_main_loop_quit(bench->loop);
  else
    producer_next(producer);
}

/* Writes one message as DATA would arrive, then commits it. */
static void producer_next(Producer *producer) {
  Bench *bench = producer->bench;
  if (bench->started == bench->target)
    return;
  bench->started++;
  g_autoptr(GError) error = NULL;
  producer->writer = pst_spool_writer_new(bench->spool, &error);
  if (producer->writer == NULL) {
    fprintf(stderr, "pst-spool-bench: %s\n", error->message);
    exit(1);
  }
  for (gsize at = 0; at < bench->size; at += 512) {
    gsize piece = MIN(512, bench->size - at);
    if (!pst_spool_writer_write(producer->writer, bench->content + at, piece,
                                &error)) {
      fprintf(stderr, "pst-spool-bench: %s\n", error->message);
      exit(1);
    }
  }
  bench->envelope->arrival_time = g_get_real_time();
  producer->commit_started = g_get_monotonic_time();
  pst_spool_writer_commit_async(producer->writer, bench->envelope, NULL, 0,
                                PST_SPOOL_QUEUE_ACTIVE, producer_committed,
                                producer);
}

static PstEnvelope *bench_envelope(void) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup("sender@example.org");
  PstEnvelopeRecipient *r =
      pst_envelope_add_recipient(envelope, "recipient@example.net");
  r->notify = PST_DSN_NOTIFY_FAILURE;
  envelope->client_address = g_strdup("192.0.2.10");
  envelope->client_hostname = g_strdup("client.example.org");
  envelope->helo = g_strdup("client.example.org");
  envelope->listener = g_strdup("smtp");
  envelope->protocol = g_strdup("ESMTP");
  envelope->session_id = g_strdup("BENCH");
  envelope->results = g_variant_ref_sink(
      g_variant_new_parsed("@a{sv} {'auth.spf': <{'result': <'pass'>}>}"));
  return envelope;
}

static char *bench_content(gsize size) {
  char *content = g_malloc(size + 1);
  for (gsize i = 0; i < size; i++)
    content[i] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : 'a' + i % 26;
  content[size] = '\0';
  return content;
}

static gint compare_int64(gconstpointer a, gconstpointer b) {
  gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
  return x < y ? -1 : x > y;
}

static gint64 thread_cpu_us(void) {
  struct rusage usage;
  getrusage(RUSAGE_THREAD, &usage);
  return (gint64)usage.ru_utime.tv_sec * G_USEC_PER_SEC +
         usage.ru_utime.tv_usec +
         (gint64)usage.ru_stime.tv_sec * G_USEC_PER_SEC +
         usage.ru_stime.tv_usec;
}

static void remove_spool(const char *directory) {
  static const char *const dirs[] = {"tmp", "queue", "hold", "corrupt"};
  for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
    g_autofree char *path = g_build_filename(directory, dirs[i], NULL);
    g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
    const char *name;
    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *file = g_build_filename(path, name, NULL);
      g_unlink(file);
    }
    g_rmdir(path);
  }
  g_autofree char *lock = g_build_filename(directory, "lock", NULL);
  g_unlink(lock);
  g_rmdir(directory);
}

/* Cache flushes the disk holding `directory` completed so far (field 15
 * after the name in /proc/diskstats, Linux 5.5+); -1 when unknown.  The
 * whole disk's count: other programs' flushes are included. */
static gint64 disk_flushes(const char *directory) {
  GStatBuf st;
  g_autofree char *stats = NULL;
  if (g_stat(directory, &st) != 0 ||
      !g_file_get_contents("/proc/diskstats", &stats, NULL, NULL))
    return -1;
  g_auto(GStrv) lines = g_strsplit(stats, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    guint major = 0, minor = 0;
    gint64 flushes = -1;
    if (sscanf(lines[i],
               " %u %u %*s %*u %*u %*u %*u %*u %*u %*u %*u %*u %*u %*u %*u "
               "%*u %*u %*u %" G_GINT64_FORMAT,
               &major, &minor, &flushes) == 3 &&
        major == major(st.st_dev) && minor == minor(st.st_dev))
      return flushes;
  }
  return -1;
}

static gint64 process_cpu_us(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (gint64)usage.ru_utime.tv_sec * G_USEC_PER_SEC +
         usage.ru_utime.tv_usec +
         (gint64)usage.ru_stime.tv_sec * G_USEC_PER_SEC +
         usage.ru_stime.tv_usec;
}

/* What a run cost, measured around it. */
typedef struct {
  gint64 elapsed;      /* µs */
  gint64 main_cpu;     /* µs on the main thread */
  gint64 process_cpu;  /* µs on all threads */
  gint64 disk_flushes; /* -1 when unknown */
} Costs;

/* The `percent` percentile of the sorted latencies, in ms. */
static double bench_percentile(GArray *sorted, guint percent) {
  if (sorted->len == 0)
    return 0.0;
  guint index = MIN(sorted->len * percent / 100, sorted->len - 1);
  return g_array_index(sorted, gint64, index) / 1000.0;
}

static void print_results(const char *mode, Bench *bench, guint producers,
                          const Costs *costs) {
  PstSpoolStats stats;
  pst_spool_get_stats(bench->spool, &stats);
  g_array_sort(bench->latencies, compare_int64);
  GArray *l = bench->latencies;
  gint64 sum = 0;
  for (guint i = 0; i < l->len; i++)
    sum += g_array_index(l, gint64, i);
  double n = MAX(bench->committed, 1);
  printf("%-6s threads=%u producers=%u messages=%u size=%" G_GSIZE_FORMAT
         " spare=%" G_GUINT64_FORMAT ": %.0f msgs/s\n"
         "  CPU us/msg: main thread %.1f, all threads %.1f\n"
         "  disk cache flushes/msg %.3f (whole disk)\n"
         "  syncs/msg waited for %.3f (file %.3f + dir %.3f), deferred dir "
         "%.3f | batches %" G_GUINT64_FORMAT " (%.1f msgs) | spare files "
         "%.0f%%\n"
         "  commit latency ms: avg %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f "
         "| failed %u\n",
         mode, bench->sync_threads, producers, bench->committed, bench->size,
         bench->spare_size, bench->committed / (costs->elapsed / 1e6),
         costs->main_cpu / n, costs->process_cpu / n,
         costs->disk_flushes >= 0 ? costs->disk_flushes / n : -1.0,
         (stats.file_syncs + stats.directory_syncs) / n, stats.file_syncs / n,
         stats.directory_syncs / n, stats.deferred_syncs / n, stats.batches,
         stats.commits / (double)MAX(stats.batches, 1),
         100.0 * stats.spare_files / n, sum / n / 1000.0,
         bench_percentile(l, 50), bench_percentile(l, 90),
         bench_percentile(l, 99), bench_percentile(l, 100), bench->failed);
  fflush(stdout);
}

/* Has the spool make its first spares and waits (5 s at most) until a
 * chunk is ready. */
static void bench_wait_for_spares(PstSpool *spool) {
  PstSpoolWriter *first = pst_spool_writer_new(spool, NULL);
  pst_spool_writer_free(first);
  for (guint i = 0; i < 500 && pst_spool_count_spares(spool) < 32; i++)
    g_usleep(10000);
}

static gboolean bench_run(const char *mode, const char *parent, guint messages,
                          guint producers, gsize size, gint sync_threads,
                          gint64 spare_size, gboolean remove_each,
                          gboolean keep) {
  g_autofree char *template =
      g_build_filename(parent, "pst-bench-XXXXXX", NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *directory = g_mkdtemp(g_strdup(template));
  if (directory == NULL) {
    fprintf(stderr, "pst-spool-bench: cannot create a directory in %s\n",
            parent);
    return FALSE;
  }
  Bench bench = {.size = size, .target = messages};
  bench.spool = pst_spool_open(directory, &error);
  if (bench.spool == NULL) {
    fprintf(stderr, "pst-spool-bench: %s\n", error->message);
    return FALSE;
  }
  if (g_str_equal(mode, "single"))
    pst_spool_set_batch_limit(bench.spool, 1);
  if (sync_threads >= 0)
    pst_spool_set_sync_threads(bench.spool, (guint)sync_threads);
  bench.sync_threads =
      sync_threads >= 0 ? (guint)sync_threads : PST_SPOOL_SYNC_THREADS;
  if (spare_size >= 0)
    pst_spool_set_spare_size(bench.spool, (guint64)spare_size);
  pst_spool_set_recycling(bench.spool, !no_recycle);
  pst_spool_set_batch_recycling(bench.spool, batch_recycle);
  bench.spare_size =
      spare_size >= 0 ? (guint64)spare_size : PST_SPOOL_SPARE_SIZE;
  bench_wait_for_spares(bench.spool);
  bench.envelope = bench_envelope();
  bench.content = bench_content(size);
  bench.latencies = g_array_sized_new(FALSE, FALSE, sizeof(gint64), messages);
  bench.loop = g_main_loop_new(NULL, FALSE);
  if (remove_each)
    bench.remover =
        g_thread_pool_new(bench_remove, &bench, 1, TRUE, NULL);
  Producer *all = g_new0(Producer, producers);
  gint64 flushes_start = disk_flushes(directory);
  gint64 process_start = process_cpu_us();
  gint64 cpu_start = thread_cpu_us();
  gint64 start = g_get_monotonic_time();
  for (guint i = 0; i < producers; i++) {
    all[i].bench = &bench;
    producer_next(&all[i]);
  }
  g_main_loop_run(bench.loop);
  if (bench.remover != NULL) /* the removals are part of the run */
    g_thread_pool_free(g_steal_pointer(&bench.remover), FALSE, TRUE);
  gint64 elapsed = g_get_monotonic_time() - start;
  gint64 flushes_end = disk_flushes(directory);
  Costs costs = {
      .elapsed = elapsed,
      .main_cpu = thread_cpu_us() - cpu_start,
      .process_cpu = process_cpu_us() - process_start,
      .disk_flushes = flushes_start >= 0 && flushes_end >= 0
                          ? flushes_end - flushes_start
                          : -1,
  };
  print_results(mode, &bench, producers, &costs);
  pst_spool_close(bench.spool);
  if (!keep)
    remove_spool(directory);
  g_free(all);
  g_main_loop_unref(bench.loop);
  g_array_unref(bench.latencies);
  g_free(bench.content);
  pst_envelope_free(bench.envelope);
  return bench.failed == 0 && bench.remove_failures == 0;
}

int main(int argc, char **argv) {
  gint messages = 10000, producers = 64, size = 1024, sync_threads = -1;
  gint64 spare_size = -1;
  g_autofree char *mode = NULL;
  g_autofree char *parent = NULL;
  gboolean keep = FALSE, remove_each = FALSE;
  const GOptionEntry entries[] = {
      {"messages", 'n', 0, G_OPTION_ARG_INT, &messages,
       "Messages per run (10000)", "N"},
      {"producers", 'p', 0, G_OPTION_ARG_INT, &producers,
       "Concurrent senders (64)", "M"},
      {"size", 's', 0, G_OPTION_ARG_INT, &size, "Message size (1024)",
       "OCTETS"},
      {"mode", 0, 0, G_OPTION_ARG_STRING, &mode, "group, single or both (both)",
       "MODE"},
      {"sync-threads", 't', 0, G_OPTION_ARG_INT, &sync_threads,
       "Threads that fdatasync a batch (spool default)", "T"},
      {"spare-size", 0, 0, G_OPTION_ARG_INT64, &spare_size,
       "Zeros in each spare file, 0 for empty ones (spool default)", "OCTETS"},
      {"dir", 0, 0, G_OPTION_ARG_FILENAME, &parent,
       "Where to create spools (/var/tmp)", "DIRECTORY"},
      {"remove", 0, 0, G_OPTION_ARG_NONE, &remove_each,
       "Remove each message once committed, from another thread (a relay)",
       NULL},
      {"no-recycle", 0, 0, G_OPTION_ARG_NONE, &no_recycle,
       "With --remove, unlink the files instead of recycling them as spares",
       NULL},
      {"recycle-batches", 0, 0, G_OPTION_ARG_NONE, &batch_recycle,
       "With --remove, recycle also while commits come in batches of several",
       NULL},
      {"keep", 0, 0, G_OPTION_ARG_NONE, &keep, "Keep the spools", NULL},
      {NULL},
  };
  g_autoptr(GOptionContext) context =
      g_option_context_new("- measure spool commit throughput");
  g_option_context_add_main_entries(context, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "pst-spool-bench: %s\n", error->message);
    return 1;
  }
  const char *run_mode = mode != NULL ? mode : "both";
  if (messages < 1 || producers < 1 || size < 0 ||
      spare_size > PST_SPOOL_MAX_GAP ||
      !(g_str_equal(run_mode, "group") || g_str_equal(run_mode, "single") ||
        g_str_equal(run_mode, "both"))) {
    fprintf(stderr, "pst-spool-bench: bad arguments (see --help)\n");
    return 1;
  }
  const char *where = parent != NULL ? parent : "/var/tmp";
  gboolean ok = TRUE;
  if (!g_str_equal(run_mode, "single"))
    ok = bench_run("group", where, messages, producers, size, sync_threads,
                   spare_size, remove_each, keep) &&
         ok;
  if (!g_str_equal(run_mode, "group"))
    ok = bench_run("single", where, messages, producers, size, sync_threads,
                   spare_size, remove_each, keep) &&
         ok;
  return ok ? 0 : 1;
}
