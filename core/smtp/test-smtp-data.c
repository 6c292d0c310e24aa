/* test-smtp-data.c - the DATA/BDAT reader, fed in every way a socket can.
 *
 * Each table row (/smtp/data/...) is fed whole, one octet at a time, and
 * split in two at every position, so every split of the terminator and of
 * every smuggling sequence is covered; each result must equal the row and
 * the byte-at-a-time reference model (test-data-reference.c).  Then
 * random inputs over the alphabet that matters ('.', CR, LF, NUL, text)
 * are cross-checked against the model under random splits, and the limits
 * are tested at N and N+1.  With -m perf, /smtp/data/perf reports MB/s.
 */
#include <string.h>

#include "smtp/test-data-reference.h"

#define DOT PST_DATA_READER_DOT
#define CHUNK PST_DATA_READER_CHUNK
#define LF_F PST_DATA_FAULT_BARE_LF
#define CR_F PST_DATA_FAULT_BARE_CR
#define NUL_F PST_DATA_FAULT_NUL
#define END -1 /* expected consumed: everything, status MORE */
#define ALL -2 /* expected consumed: everything, status DONE */

typedef struct {
  const char *name;
  PstDataReaderMode mode;
  const char *input;
  gssize input_length; /* -1: strlen */
  const char *output;  /* when faults == 0 */
  guint faults;
  gssize consumed; /* DOT: octets up to the end of data, END or ALL */
} DataCase;

/* clang-format off */
static const DataCase data_cases[] = {
    /* Plain DATA. */
    {"simple", DOT, "Subject: x\r\n\r\nbody\r\n.\r\n", -1,
     "Subject: x\r\n\r\nbody\r\n", 0, 23},
    {"empty-message", DOT, ".\r\n", -1, "", 0, 3},
    {"empty-then-quit", DOT, ".\r\nQUIT\r\n", -1, "", 0, 3},
    {"pipelined", DOT, "a\r\n.\r\nMAIL FROM:<x@y>\r\n", -1, "a\r\n", 0, 6},
    {"blank-line-then-end", DOT, "a\r\n\r\n.\r\n", -1, "a\r\n\r\n", 0, 8},
    {"no-terminator", DOT, "a\r\nb\r\n", -1, "a\r\nb\r\n", 0, END},
    {"no-terminator-partial-line", DOT, "a\r\nb", -1, "a\r\nb", 0, END},
    {"dot-mid-line", DOT, "a.\r\n.\r\n", -1, "a.\r\n", 0, 7},
    {"dot-crlf-mid-line", DOT, "a\r\nb.\r\nc\r\n.\r\n", -1, "a\r\nb.\r\nc\r\n",
     0, 13},
    {"only-dot-crlf-after-text", DOT, "a.\r\n", -1, "a.\r\n", 0, END},
    /* Dot-unstuffing (RFC 5321 4.5.2). */
    {"stuffed", DOT, "..x\r\n.\r\n", -1, ".x\r\n", 0, 8},
    {"stuffed-lone-dot", DOT, "..\r\n.\r\n", -1, ".\r\n", 0, 7},
    {"unstuffed-dot-dropped", DOT, ".x\r\n.\r\n", -1, "x\r\n", 0, 7},
    {"stuffed-lines", DOT, "a\r\n..\r\n...\r\n.a.\r\n.\r\n", -1,
     "a\r\n.\r\n..\r\na.\r\n", 0, ALL},
    {"dot-space", DOT, "a\r\n. \r\n.\r\n", -1, "a\r\n \r\n", 0, 10},
    {"dot-dot-crlf-is-not-end", DOT, "a\r\n..\r\nb\r\n.\r\n", -1,
     "a\r\n.\r\nb\r\n", 0, 13},
    /* SMTP smuggling: none of these ends the data. */
    {"lf-dot-lf", DOT, "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"cr-dot-cr", DOT, "a\r.\rMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"lf-dot-crlf", DOT, "a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"crlf-dot-lf", DOT, "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"cr-dot-crlf", DOT, "a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"crlf-dot-cr", DOT, "a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"crlf-dot-cr-cr-lf", DOT, "a\r\n.\r\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"crlf-dot-lf-cr", DOT, "a\r\n.\n\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"lf-dot-lf-unterminated", DOT, "a\n.\nRSET\n", -1, NULL, LF_F, END},
    {"lf-first", DOT, "\n.\r\n", -1, NULL, LF_F, END},
    {"cr-first", DOT, "\r.\r\n", -1, NULL, CR_F, END},
    {"dot-lf-first", DOT, ".\n", -1, NULL, LF_F, END},
    {"dot-cr-first", DOT, ".\r", -1, "", 0, END},
    {"dot-cr-x-first", DOT, ".\rx", -1, NULL, CR_F, END},
    {"bare-lf", DOT, "a\nb\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"bare-cr", DOT, "a\rb\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"cr-cr-lf", DOT, "a\r\r\n.\r\n", -1, NULL, CR_F,
     ALL},
    {"lf-cr-lf", DOT, "a\n\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"lf-lf", DOT, "a\n\n.\r\n\r\n.\r\n", -1, NULL, LF_F,
     ALL},
    {"bare-lf-after-end", DOT, "a\r\n.\r\nb\nc", -1, "a\r\n", 0, 6},
    /* NUL. */
    {"nul", DOT, "a\0b\r\n.\r\n", 8, NULL, NUL_F, ALL},
    {"nul-first", DOT, "\0\r\n.\r\n", 6, NULL, NUL_F, ALL},
    {"nul-after-dot", DOT, "a\r\n.\0\r\n.\r\n", 10, NULL, NUL_F, ALL},
    {"nul-after-dot-cr", DOT, "a\r\n.\r\0\r\n.\r\n", 11, NULL,
     CR_F | NUL_F, ALL},
    {"nul-after-cr", DOT, "a\r\0\n.\r\n", 7, NULL, CR_F | NUL_F | LF_F, END},
    {"nul-after-end", DOT, "a\r\n.\r\n\0", 7, "a\r\n", 0, 6},
    /* BDAT chunks: no dots, no end, same line rules; finish() runs. */
    {"chunk", CHUNK, "a\r\nb\r\n", -1, "a\r\nb\r\n", 0, END},
    {"chunk-empty", CHUNK, "", -1, "", 0, END},
    {"chunk-crlf-only", CHUNK, "\r\n", -1, "\r\n", 0, END},
    {"chunk-no-final-crlf", CHUNK, "a\r\nb", -1, "a\r\nb\r\n", 0, END},
    {"chunk-dots-verbatim", CHUNK, ".\r\n..\r\n.x", -1, ".\r\n..\r\n.x\r\n", 0,
     END},
    {"chunk-bare-lf", CHUNK, "a\nb\r\n", -1, NULL, LF_F, END},
    {"chunk-bare-cr", CHUNK, "a\rb\r\n", -1, NULL, CR_F, END},
    {"chunk-dangling-cr", CHUNK, "a\r", -1, NULL, CR_F, END},
    {"chunk-lone-cr", CHUNK, "\r", -1, NULL, CR_F, END},
    {"chunk-lone-lf", CHUNK, "\n", -1, NULL, LF_F, END},
    {"chunk-nul", CHUNK, "a\0\r\n", 4, NULL, NUL_F, END},
};
/* clang-format on */

/* What one run of the reader produced. */
typedef struct {
  PstDataStatus status;
  gsize consumed;
  guint faults;
  guint64 size;
  GByteArray *out;
} Run;

/* Feeds `data` in pieces ending at the offsets in `cuts` (ascending, the
 * last one `length`), the way the session does: after DONE it stops. */
static void run_reader(PstDataReaderMode mode, guint64 max_size,
                       const guint8 *data, gsize length, const gsize *cuts,
                       gsize cut_count, Run *run) {
  g_autoptr(PstDataReader) reader = pst_data_reader_new(mode, max_size);
  memset(run, 0, sizeof(*run));
  run->out = g_byte_array_new();
  run->status = PST_DATA_MORE;
  gsize start = 0;
  for (gsize i = 0; i < cut_count && run->status == PST_DATA_MORE; i++) {
    gsize consumed = G_MAXSIZE;
    run->status = pst_data_reader_feed(reader, data + start, cuts[i] - start,
                                       &consumed, run->out);
    g_assert_cmpuint(consumed, <=, cuts[i] - start);
    if (run->status == PST_DATA_MORE)
      g_assert_cmpuint(consumed, ==, cuts[i] - start);
    run->consumed += consumed;
    start = cuts[i];
  }
  if (mode == PST_DATA_READER_CHUNK)
    pst_data_reader_finish(reader, run->out);
  run->faults = pst_data_reader_get_faults(reader);
  run->size = pst_data_reader_get_size(reader);
  /* After DONE nothing more is consumed. */
  if (run->status == PST_DATA_DONE) {
    gsize consumed = 1;
    g_assert_cmpint(pst_data_reader_feed(reader, (const guint8 *)"x", 1,
                                         &consumed, run->out),
                    ==, PST_DATA_DONE);
    g_assert_cmpuint(consumed, ==, 0);
  }
}

static void run_check(const Run *run, const PstDataReference *model,
                      const char *how) {
  g_test_message("fed %s", how);
  g_assert_cmpint(run->status, ==, model->status);
  g_assert_cmpuint(run->consumed, ==, model->consumed);
  g_assert_cmphex(run->faults, ==, model->faults);
  g_assert_cmpuint(run->size, ==, model->size);
  if (model->faults == 0)
    g_assert_cmpmem(run->out->data, run->out->len, model->out->data,
                    model->out->len);
}

/* Runs `data` whole, octet by octet and in every two-piece split. */
static void check_all_splits(PstDataReaderMode mode, guint64 max_size,
                             const guint8 *data, gsize length,
                             const PstDataReference *model) {
  Run run;
  gsize whole = length;
  run_reader(mode, max_size, data, length, &whole, 1, &run);
  run_check(&run, model, "whole");
  g_byte_array_unref(run.out);

  g_autofree gsize *cuts = g_new(gsize, length + 1);
  for (gsize i = 0; i < length; i++)
    cuts[i] = i + 1;
  run_reader(mode, max_size, data, length, cuts, length, &run);
  run_check(&run, model, "octet by octet");
  g_byte_array_unref(run.out);

  for (gsize split = 0; split <= length; split++) {
    gsize two[2] = {split, length};
    run_reader(mode, max_size, data, length, two, 2, &run);
    g_autofree char *how = g_strdup_printf("split at %zu", split);
    run_check(&run, model, how);
    g_byte_array_unref(run.out);
  }
}

static void test_data_case(gconstpointer data) {
  const DataCase *c = data;
  gsize length =
      c->input_length < 0 ? strlen(c->input) : (gsize)c->input_length;
  const guint8 *input = (const guint8 *)c->input;
  PstDataReference model;
  pst_data_reference_run(c->mode, 0, input, length, &model);
  /* The model agrees with the row... */
  g_assert_cmphex(model.faults, ==, c->faults);
  g_assert_cmpuint(model.consumed, ==,
                   c->consumed < 0 ? length : (gsize)c->consumed);
  g_assert_cmpint(model.status, ==,
                  c->consumed == END ? PST_DATA_MORE : PST_DATA_DONE);
  if (c->faults == 0)
    g_assert_cmpmem(model.out->data, model.out->len, c->output,
                    strlen(c->output));
  /* ...and the reader agrees with the model, fed in any split. */
  check_all_splits(c->mode, 0, input, length, &model);
  pst_data_reference_clear(&model);
}

/* A message of one line of `content` octets (then CRLF), optionally
 * starting with a stuffed dot, then the end of data. */
static GByteArray *long_line_message(gsize content, gboolean stuffed) {
  GByteArray *message = g_byte_array_new();
  if (stuffed)
    g_byte_array_append(message, (const guint8 *)".", 1);
  for (gsize i = 0; i < content; i++)
    g_byte_array_append(message,
                        (const guint8 *)(stuffed && i == 0 ? "." : "x"), 1);
  g_byte_array_append(message, (const guint8 *)"\r\n.\r\n", 5);
  return message;
}

static guint faults_of(PstDataReaderMode mode, guint64 max_size,
                       const GByteArray *input) {
  PstDataReference model;
  pst_data_reference_run(mode, max_size, input->data, input->len, &model);
  check_all_splits(mode, max_size, input->data, input->len, &model);
  guint faults = model.faults;
  pst_data_reference_clear(&model);
  return faults;
}

static void test_data_limits(void) {
  /* 998 octets + CRLF = 1000: fine; 999 + CRLF: too long. */
  g_autoptr(GByteArray) ok = long_line_message(998, FALSE);
  g_autoptr(GByteArray) over = long_line_message(999, FALSE);
  g_assert_cmphex(faults_of(DOT, 0, ok), ==, 0);
  g_assert_cmphex(faults_of(DOT, 0, over), ==, PST_DATA_FAULT_LINE_TOO_LONG);
  /* The stuffed dot does not count (RFC 5321 4.5.3.1.6). */
  g_autoptr(GByteArray) stuffed = long_line_message(998, TRUE);
  g_autoptr(GByteArray) stuffed_over = long_line_message(999, TRUE);
  g_assert_cmpuint(stuffed->len, ==, 1 + 998 + 5);
  g_assert_cmphex(faults_of(DOT, 0, stuffed), ==, 0);
  g_assert_cmphex(faults_of(DOT, 0, stuffed_over), ==,
                  PST_DATA_FAULT_LINE_TOO_LONG);
  /* Chunks: the CRLF added by finish() counts as well. */
  g_autoptr(GByteArray) chunk = g_byte_array_new();
  for (gsize i = 0; i < 998; i++)
    g_byte_array_append(chunk, (const guint8 *)"x", 1);
  g_assert_cmphex(faults_of(CHUNK, 0, chunk), ==, 0);
  g_byte_array_append(chunk, (const guint8 *)"x", 1);
  g_assert_cmphex(faults_of(CHUNK, 0, chunk), ==, PST_DATA_FAULT_LINE_TOO_LONG);

  /* max_size: the message octets (CRLF before the dot included). */
  g_autoptr(GByteArray) small = g_byte_array_new();
  g_byte_array_append(small, (const guint8 *)"abc\r\n..\r\n.\r\n", 12);
  /* output "abc\r\n.\r\n" = 8 octets */
  g_assert_cmphex(faults_of(DOT, 8, small), ==, 0);
  g_assert_cmphex(faults_of(DOT, 7, small), ==, PST_DATA_FAULT_TOO_BIG);
  g_assert_cmphex(faults_of(DOT, 0, small), ==, 0);
  g_autoptr(GByteArray) small_chunk = g_byte_array_new();
  g_byte_array_append(small_chunk, (const guint8 *)"abc", 3);
  g_assert_cmphex(faults_of(CHUNK, 5, small_chunk), ==, 0);
  g_assert_cmphex(faults_of(CHUNK, 4, small_chunk), ==, PST_DATA_FAULT_TOO_BIG);
}

/* After a fault the reader appends nothing more but still finds the end. */
static void test_data_fault_discards(void) {
  static const char input[] = "good\r\nbad\nstill\r\nmore\r\n.\r\nNOOP\r\n";
  g_autoptr(PstDataReader) reader = pst_data_reader_new(DOT, 0);
  g_autoptr(GByteArray) out = g_byte_array_new();
  gsize consumed = 0;
  g_assert_cmpint(pst_data_reader_feed(reader, (const guint8 *)input,
                                       strlen(input), &consumed, out),
                  ==, PST_DATA_DONE);
  g_assert_cmpuint(consumed, ==, strlen(input) - strlen("NOOP\r\n"));
  g_assert_cmphex(pst_data_reader_get_faults(reader), ==, LF_F);
  g_assert_cmpuint(out->len, <=, strlen("good\r\n"));
  g_assert_cmpuint(pst_data_reader_get_size(reader), ==,
                   strlen("good\r\nbad\nstill\r\nmore\r\n"));
  /* A NULL output reads and drops. */
  g_autoptr(PstDataReader) dropper = pst_data_reader_new(CHUNK, 0);
  g_assert_cmpint(
      pst_data_reader_feed(dropper, (const guint8 *)"ab", 2, &consumed, NULL),
      ==, PST_DATA_MORE);
  pst_data_reader_finish(dropper, NULL);
  g_assert_cmpuint(pst_data_reader_get_size(dropper), ==, 4);
}

static void test_data_fault_reply(void) {
  g_assert_null(pst_data_fault_reply(0));
  g_assert_true(pst_data_fault_reply(LF_F) == &pst_smtp_reply_bare_cr_lf);
  g_assert_true(pst_data_fault_reply(CR_F | PST_DATA_FAULT_TOO_BIG) ==
                &pst_smtp_reply_bare_cr_lf);
  g_assert_true(pst_data_fault_reply(NUL_F | PST_DATA_FAULT_LINE_TOO_LONG) ==
                &pst_smtp_reply_nul_in_message);
  g_assert_true(pst_data_fault_reply(PST_DATA_FAULT_LINE_TOO_LONG |
                                     PST_DATA_FAULT_TOO_BIG) ==
                &pst_smtp_reply_text_line_too_long);
  g_assert_true(pst_data_fault_reply(PST_DATA_FAULT_TOO_BIG) ==
                &pst_smtp_reply_message_too_big);
  g_assert_cmpuint(pst_data_fault_reply(LF_F)->code, ==, 550);
  g_assert_cmpstr(pst_data_fault_reply(LF_F)->enhanced, ==, "5.6.0");
}

/* Random inputs over {text, '.', CR, LF, NUL} and random splits against
 * the model.  Seeded, so a failure repeats. */
static void test_data_random(void) {
  static const guint8 alphabet[] = "ab.\r\n.\r\n\r\n..x";
  g_autoptr(GRand) rand = g_rand_new_with_seed(20261122);
  for (guint iteration = 0; iteration < 20000; iteration++) {
    gsize length = (gsize)g_rand_int_range(rand, 0, 40);
    g_autofree guint8 *data = g_malloc(length + 1);
    for (gsize i = 0; i < length; i++)
      data[i] = g_rand_int_range(rand, 0, 200) == 0
                    ? 0
                    : alphabet[g_rand_int_range(rand, 0, sizeof(alphabet) - 1)];
    PstDataReaderMode mode = g_rand_boolean(rand) ? DOT : CHUNK;
    guint64 max_size = g_rand_int_range(rand, 0, 4) == 0
                           ? (guint64)g_rand_int_range(rand, 1, 30)
                           : 0;
    PstDataReference model;
    pst_data_reference_run(mode, max_size, data, length, &model);
    g_autofree gsize *cuts = g_new(gsize, length + 1);
    gsize cut_count = 0;
    for (gsize i = 1; i < length; i++)
      if (g_rand_int_range(rand, 0, 3) == 0)
        cuts[cut_count++] = i;
    cuts[cut_count++] = length;
    Run run;
    run_reader(mode, max_size, data, length, cuts, cut_count, &run);
    run_check(&run, &model, "randomly");
    g_byte_array_unref(run.out);
    pst_data_reference_clear(&model);
  }
}

/* Best time of `rounds` to read `message` in 64 KiB feeds into `out`
 * (NULL: read and drop). */
static gdouble perf_time(const GByteArray *message, GByteArray *out,
                         guint rounds) {
  gdouble best = G_MAXDOUBLE;
  for (guint round = 0; round < rounds; round++) {
    if (out != NULL)
      g_byte_array_set_size(out, 0);
    g_autoptr(PstDataReader) reader = pst_data_reader_new(DOT, 0);
    g_test_timer_start();
    PstDataStatus status = PST_DATA_MORE;
    for (gsize offset = 0; offset < message->len && status == PST_DATA_MORE;
         offset += 65536) {
      gsize piece = MIN(65536, message->len - offset);
      gsize consumed = 0;
      status = pst_data_reader_feed(reader, message->data + offset, piece,
                                    &consumed, out);
    }
    best = MIN(best, g_test_timer_elapsed());
    g_assert_cmpint(status, ==, PST_DATA_DONE);
    g_assert_cmphex(pst_data_reader_get_faults(reader), ==, 0);
  }
  return best;
}

/* Throughput on a realistic message: 64 MiB of 78-octet lines, one in a
 * hundred dot-stuffed, fed in 64 KiB reads; scanning alone, and scanning
 * plus copying into a (warm) output buffer. */
static void test_data_perf(void) {
  const gsize message_size = 64 * 1024 * 1024;
  g_autoptr(GByteArray) message = g_byte_array_sized_new(message_size + 80);
  for (guint line = 0; message->len < message_size; line++) {
    char text[80];
    memset(text, 'a' + line % 26, 78);
    if (line % 100 == 0)
      text[0] = '.';
    memcpy(text + 78, "\r\n", 2);
    g_byte_array_append(message, (const guint8 *)text, 80);
  }
  g_byte_array_append(message, (const guint8 *)".\r\n", 3);
  g_autoptr(GByteArray) out = g_byte_array_sized_new(message->len);
  gdouble scan = perf_time(message, NULL, 5);
  gdouble copy = perf_time(message, out, 5);
  g_test_minimized_result(copy,
                          "DOT mode, 80-octet lines, into a buffer: "
                          "%.0f MB/s",
                          message->len / copy / 1e6);
  g_print("# data reader, %u octets: %.0f MB/s scanning only, %.0f MB/s "
          "into a buffer\n",
          message->len, message->len / scan / 1e6, message->len / copy / 1e6);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(data_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/smtp/data/%s", data_cases[i].name);
    g_test_add_data_func(path, &data_cases[i], test_data_case);
  }
  g_test_add_func("/smtp/data/limits", test_data_limits);
  g_test_add_func("/smtp/data/fault-discards", test_data_fault_discards);
  g_test_add_func("/smtp/data/fault-reply", test_data_fault_reply);
  g_test_add_func("/smtp/data/random-splits", test_data_random);
  if (g_test_perf())
    g_test_add_func("/smtp/data/perf", test_data_perf);
  return g_test_run();
}
