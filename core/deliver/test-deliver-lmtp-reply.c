/* test-deliver-lmtp-reply.c - the LMTP client's reply reader
 * (lmtp-reply.c): single and multi-line replies, replies split across
 * reads, one reply per recipient after DATA, and what a hostile server
 * may send instead (long lines, garbage, endless continuations).
 */
#include <string.h>

#include "deliver/lmtp-reply.h"

typedef struct {
  GByteArray *input;
  guint lines;
  GString *all;
  char *reply;
  char *problem;
} Reader;

static Reader *reader_new(void) {
  Reader *reader = g_new0(Reader, 1);
  reader->input = g_byte_array_new();
  reader->all = g_string_new(NULL);
  return reader;
}

static void reader_free(Reader *reader) {
  g_byte_array_unref(reader->input);
  g_string_free(reader->all, TRUE);
  g_free(reader->reply);
  g_free(reader->problem);
  g_free(reader);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Reader, reader_free)

static void feed(Reader *reader, const char *octets) {
  g_byte_array_append(reader->input, (const guint8 *)octets, strlen(octets));
}

/* One call; a finished reply starts the count anew, as lmtp.c does. */
static PstLmtpReplyStatus step(Reader *reader) {
  g_clear_pointer(&reader->reply, g_free);
  g_clear_pointer(&reader->problem, g_free);
  PstLmtpReplyStatus status =
      pst_lmtp_reply_read(reader->input, &reader->lines, reader->all,
                          &reader->reply, &reader->problem);
  if (status == PST_LMTP_REPLY_DONE)
    reader->lines = 0;
  return status;
}

static void test_single_line(void) {
  g_autoptr(Reader) reader = reader_new();
  feed(reader, "220 lmtp.example ready\r\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
  g_assert_cmpstr(reader->reply, ==, "220 lmtp.example ready");
  g_assert_cmpuint(reader->input->len, ==, 0);
  /* A bare code, and a bare LF, are replies too. */
  feed(reader, "250\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
  g_assert_cmpstr(reader->reply, ==, "250");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
}

static void test_multi_line(void) {
  g_autoptr(Reader) reader = reader_new();
  feed(reader, "250-lmtp.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
               "250 SMTPUTF8\r\n221 next");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
  g_assert_cmpstr(reader->reply, ==, "250 SMTPUTF8");
  g_assert_cmpstr(reader->all->str, ==,
                  "250-lmtp.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                  "250 SMTPUTF8\r\n");
  /* The next reply's partial line stays buffered. */
  g_assert_cmpuint(reader->input->len, ==, strlen("221 next"));
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
}

static void test_split_across_reads(void) {
  g_autoptr(Reader) reader = reader_new();
  const char *wire = "250-first\r\n250-second\r\n250 last\r\n";
  /* Octet by octet: NEED_MORE until the last LF, continuation lines
   * counted across the calls. */
  for (const char *p = wire; p[1] != '\0'; p++) {
    char octet[2] = {*p, '\0'};
    feed(reader, octet);
    g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
  }
  g_assert_cmpuint(reader->lines, ==, 2);
  feed(reader, "\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
  g_assert_cmpstr(reader->reply, ==, "250 last");
}

/* After DATA: one reply per accepted recipient, in order, possibly in one
 * read, possibly multi-line. */
static void test_per_recipient_after_data(void) {
  g_autoptr(Reader) reader = reader_new();
  feed(reader, "250 2.0.0 <a@example.org> Saved\r\n"
               "452-4.2.2 <b@example.org> Mailbox full\r\n"
               "452 4.2.2 try later\r\n"
               "550 5.1.1 <c@example.org> gone\r\n");
  const char *expected[] = {"250 2.0.0 <a@example.org> Saved",
                            "452 4.2.2 try later",
                            "550 5.1.1 <c@example.org> gone"};
  for (guint i = 0; i < G_N_ELEMENTS(expected); i++) {
    g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
    g_assert_cmpstr(reader->reply, ==, expected[i]);
  }
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
}

static void test_long_lines(void) {
  g_autoptr(Reader) reader = reader_new();
  /* The longest line allowed, then one octet more. */
  g_autoptr(GString) line = g_string_new("250 ");
  while (line->len < PST_LMTP_LINE_MAX_OCTETS)
    g_string_append_c(line, 'x');
  feed(reader, line->str);
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
  feed(reader, "\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_DONE);
  g_assert_cmpuint(strlen(reader->reply), ==, PST_LMTP_LINE_MAX_OCTETS);
  g_string_append_c(line, 'x');
  feed(reader, line->str);
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_INVALID);
  g_assert_cmpstr(reader->problem, ==,
                  "the LMTP server sent a line longer than 4096 octets");
}

static void test_garbage(void) {
  static const char *const cases[] = {
      "hello\r\n",   "25\r\n",      "250x\r\n", "150 early\r\n",
      "650 six\r\n", "2a0 bad\r\n", "\r\n",     "250 \xff\xfe\r\n",
      "-250 x\r\n",  " 250 x\r\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(Reader) reader = reader_new();
    feed(reader, cases[i]);
    g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_INVALID);
    g_assert_true(g_str_has_prefix(reader->problem,
                                   "the LMTP server replied garbage: \""));
  }
  /* A NUL octet cuts the line; what is left is judged. */
  g_autoptr(Reader) reader = reader_new();
  g_byte_array_append(reader->input, (const guint8 *)"25\0 ok\r\n", 8);
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_INVALID);
  /* The text shown is escaped and bounded. */
  g_autoptr(Reader) shown = reader_new();
  g_autoptr(GString) noise = g_string_new("\x01");
  while (noise->len < 300)
    g_string_append_c(noise, 'n');
  g_string_append(noise, "\r\n");
  feed(shown, noise->str);
  g_assert_cmpint(step(shown), ==, PST_LMTP_REPLY_INVALID);
  g_assert_nonnull(strstr(shown->problem, "\\001nnn"));
  g_assert_cmpuint(strlen(shown->problem), <, 140);
}

static void test_too_many_lines(void) {
  g_autoptr(Reader) reader = reader_new();
  for (guint i = 0; i + 1 < PST_LMTP_REPLY_MAX_LINES; i++)
    feed(reader, "250-more\r\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_NEED_MORE);
  feed(reader, "250-one too many\r\n250 end\r\n");
  g_assert_cmpint(step(reader), ==, PST_LMTP_REPLY_INVALID);
  g_assert_cmpstr(reader->problem, ==,
                  "the LMTP server sent a reply of more than 100 lines");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/lmtp-reply/single-line", test_single_line);
  g_test_add_func("/deliver/lmtp-reply/multi-line", test_multi_line);
  g_test_add_func("/deliver/lmtp-reply/split", test_split_across_reads);
  g_test_add_func("/deliver/lmtp-reply/per-recipient",
                  test_per_recipient_after_data);
  g_test_add_func("/deliver/lmtp-reply/long-lines", test_long_lines);
  g_test_add_func("/deliver/lmtp-reply/garbage", test_garbage);
  g_test_add_func("/deliver/lmtp-reply/too-many-lines", test_too_many_lines);
  return g_test_run();
}
