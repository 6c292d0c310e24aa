/* data-reader.c - DATA and BDAT octets to message octets.
 *
 * Entry points: pst_data_reader_new/feed/finish/free and the accessors;
 * feed_to/finish_to hand the output to a sink as runs of the input
 * instead of appending it to a buffer.
 * The session creates one reader per DATA command (DOT mode) or per BDAT
 * transaction (CHUNK mode) and feeds it whatever the socket gave, in any
 * split: one octet at a time or megabytes.
 *
 * Invariants, all of them about SMTP smuggling (RFC 5321 2.3.8, 4.1.1.4):
 *   - only CR LF "." CR LF ends DATA.  A line starts only after CR LF, so
 *     LF "." LF, CR "." CR, LF "." CR LF and CR LF "." LF never end it;
 *   - a bare LF or bare CR is a fault in both modes, as is a NUL, a text
 *     line over 1000 octets (CRLF included, the stuffed dot not) and a
 *     message over max_size;
 *   - faults are sticky: after the first one no output is appended, but
 *     the reader goes on to the real end of data so that the rest of the
 *     message is never read as commands.
 * The hot path is one scan (special_find: 16 octets per step with SSE2)
 * for the next CR, LF or NUL: a line of text is crossed once, and
 * consecutive lines that need no state change (no dot at their start) are
 * taken in one loop; output is appended in runs that span many lines,
 * broken only where a stuffed dot is dropped.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "smtp/smtp-parse.h"

typedef enum {
  STATE_LINE_START, /* after CR LF, or at the start */
  STATE_IN_LINE,
  STATE_CR,     /* the last octet was a CR inside a line (output) */
  STATE_DOT,    /* DOT mode: "." at a line start (dropped) */
  STATE_DOT_CR, /* DOT mode: "." CR at a line start (both held back) */
  STATE_DONE,
} ReaderState;

struct _PstDataReader {
  PstDataReaderMode mode;
  ReaderState state;
  guint faults;        /* PstDataFault bits */
  guint64 max_size;    /* 0: no limit */
  guint64 size;        /* output octets, including discarded ones */
  guint64 line_length; /* output octets of the current line so far */
};

/* One call of pst_data_reader_feed(). */
typedef struct {
  PstDataReader *reader;
  PstDataSinkFunc sink; /* nullable */
  gpointer sink_data;
  const guint8 *end;
  const guint8 *run; /* first octet of output not yet appended */
} Feed;

PstDataReader *pst_data_reader_new(PstDataReaderMode mode, guint64 max_size) {
  PstDataReader *reader = g_new0(PstDataReader, 1);
  reader->mode = mode;
  reader->max_size = max_size;
  reader->state = STATE_LINE_START;
  return reader;
}

void pst_data_reader_free(PstDataReader *reader) {
  g_free(reader);
}

/* Counts `count` more output octets and sets TOO_BIG when over the limit. */
static void reader_count(PstDataReader *reader, guint64 count) {
  reader->size += count;
  if (reader->max_size != 0 && reader->size > reader->max_size)
    reader->faults |= PST_DATA_FAULT_TOO_BIG;
}

/* Appends the run up to `to` (unless a fault was seen) and restarts it. */
static void feed_flush(Feed *feed, const guint8 *to) {
  gsize count = (gsize)(to - feed->run);
  if (count > 0) {
    reader_count(feed->reader, count);
    if (feed->reader->faults == 0 && feed->sink != NULL)
      feed->sink(feed->run, count, feed->sink_data);
  }
  feed->run = to;
}

static void line_grow(PstDataReader *reader, guint64 count) {
  reader->line_length += count;
  if (reader->line_length > PST_SMTP_MAX_TEXT_LINE)
    reader->faults |= PST_DATA_FAULT_LINE_TOO_LONG;
}

/* The first CR, LF or NUL in [p, end), or end: the only octets that
 * matter inside a line. */
static const guint8 *special_find(const guint8 *p, const guint8 *end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i nul = _mm_setzero_si128();
  while (end - p >= 16) {
    __m128i block = _mm_loadu_si128((const __m128i *)p);
    __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(block, cr), _mm_cmpeq_epi8(block, lf)),
        _mm_cmpeq_epi8(block, nul));
    unsigned mask = (unsigned)_mm_movemask_epi8(hits);
    if (mask != 0)
      return p + __builtin_ctz(mask);
    p += 16;
  }
#endif
  for (; p < end; p++)
    if (*p == '\r' || *p == '\n' || *p == '\0')
      return p;
  return end;
}

/* IN_LINE: takes the rest of the line, and the lines after it while none
 * starts with a dot (DOT mode), up to the end of the input.  Returns where
 * to go on. */
static const guint8 *line_scan(Feed *feed, const guint8 *p) {
  PstDataReader *reader = feed->reader;
  const guint8 *end = feed->end;
  gboolean dot_mode = reader->mode == PST_DATA_READER_DOT;
  const guint8 *line = p; /* where this feed's part of the line began */
  for (;;) {
    p = special_find(p, end);
    if (p == end) {
      line_grow(reader, (guint64)(end - line));
      reader->state = STATE_IN_LINE;
      return end;
    }
    if (*p == '\0') {
      reader->faults |= PST_DATA_FAULT_NUL;
      p++;
      continue;
    }
    if (*p == '\n') {
      /* A CR right before it would have been seen first: a bare LF. */
      reader->faults |= PST_DATA_FAULT_BARE_LF;
      line_grow(reader, (guint64)(p + 1 - line));
      reader->line_length = 0;
      reader->state = STATE_IN_LINE;
      return p + 1;
    }
    /* A CR: the end of the line when LF follows, held when the input ends
     * here, else a bare CR inside the line. */
    if (p + 1 == end) {
      line_grow(reader, (guint64)(end - line));
      reader->state = STATE_CR;
      return end;
    }
    if (p[1] != '\n') {
      reader->faults |= PST_DATA_FAULT_BARE_CR;
      p++;
      continue;
    }
    p += 2;
    line_grow(reader, (guint64)(p - line));
    reader->line_length = 0;
    if (p == end || (dot_mode && *p == '.')) {
      reader->state = STATE_LINE_START;
      return p;
    }
    line = p; /* the next line, in this loop */
  }
}

/* One step of the state machine at *p; returns where to go on, or NULL at
 * the end of data (DOT mode), with feed->run past the terminator. */
static const guint8 *reader_step(Feed *feed, const guint8 *p) {
  PstDataReader *reader = feed->reader;
  switch (reader->state) {
  case STATE_LINE_START:
    reader->state = STATE_IN_LINE;
    if (reader->mode == PST_DATA_READER_DOT && *p == '.') {
      feed_flush(feed, p);
      feed->run = p + 1;
      reader->state = STATE_DOT;
      return p + 1;
    }
    return p;
  case STATE_IN_LINE:
    return line_scan(feed, p);
  case STATE_CR:
    if (*p == '\n') {
      line_grow(reader, 1);
      reader->line_length = 0;
      reader->state = STATE_LINE_START;
      return p + 1;
    }
    reader->faults |= PST_DATA_FAULT_BARE_CR;
    reader->state = STATE_IN_LINE;
    return p;
  case STATE_DOT:
    /* "." CR may be the end; anything else is a stuffed line. */
    reader->state = *p == '\r' ? STATE_DOT_CR : STATE_IN_LINE;
    if (*p != '\r')
      return p;
    feed->run = p + 1;
    return p + 1;
  case STATE_DOT_CR:
    if (*p == '\n') {
      feed->run = p + 1;
      reader->state = STATE_DONE;
      return NULL;
    }
    /* A bare CR after a stuffed dot: count the CR held back. */
    reader->faults |= PST_DATA_FAULT_BARE_CR;
    reader_count(reader, 1);
    line_grow(reader, 1);
    reader->state = STATE_IN_LINE;
    return p;
  case STATE_DONE:
  default:
    g_assert_not_reached();
  }
  return NULL;
}

/* The sink of pst_data_reader_feed() and _finish(): appends to a buffer. */
static void append_to_buffer(const guint8 *data, gsize length,
                             gpointer user_data) {
  g_byte_array_append(user_data, data, (guint)length);
}

PstDataStatus pst_data_reader_feed(PstDataReader *reader, const guint8 *data,
                                   gsize length, gsize *consumed_r,
                                   GByteArray *out) {
  return pst_data_reader_feed_to(reader, data, length, consumed_r,
                                 out != NULL ? append_to_buffer : NULL, out);
}

PstDataStatus pst_data_reader_feed_to(PstDataReader *reader, const guint8 *data,
                                      gsize length, gsize *consumed_r,
                                      PstDataSinkFunc sink,
                                      gpointer user_data) {
  g_return_val_if_fail(reader != NULL, PST_DATA_DONE);
  g_return_val_if_fail(data != NULL || length == 0, PST_DATA_DONE);
  if (consumed_r != NULL)
    *consumed_r = 0;
  if (reader->state == STATE_DONE)
    return PST_DATA_DONE;
  if (length == 0)
    return PST_DATA_MORE;

  Feed feed = {reader, sink, user_data, data + length, data};
  const guint8 *p = data;
  while (p < feed.end) {
    p = reader_step(&feed, p);
    if (p == NULL) {
      if (consumed_r != NULL)
        *consumed_r = (gsize)(feed.run - data);
      return PST_DATA_DONE;
    }
  }
  feed_flush(&feed, feed.end);
  if (consumed_r != NULL)
    *consumed_r = length;
  return PST_DATA_MORE;
}

void pst_data_reader_finish(PstDataReader *reader, GByteArray *out) {
  pst_data_reader_finish_to(reader, out != NULL ? append_to_buffer : NULL, out);
}

void pst_data_reader_finish_to(PstDataReader *reader, PstDataSinkFunc sink,
                               gpointer user_data) {
  g_return_if_fail(reader != NULL);
  g_return_if_fail(reader->mode == PST_DATA_READER_CHUNK);
  if (reader->state == STATE_CR) {
    reader->faults |= PST_DATA_FAULT_BARE_CR;
  } else if (reader->state == STATE_IN_LINE && reader->size > 0) {
    /* RFC 3030 2: the last chunk need not end with CRLF; the message does. */
    reader_count(reader, 2);
    line_grow(reader, 2);
    if (reader->faults == 0 && sink != NULL)
      sink((const guint8 *)"\r\n", 2, user_data);
  }
  reader->state = STATE_DONE;
}

guint pst_data_reader_get_faults(PstDataReader *reader) {
  g_return_val_if_fail(reader != NULL, 0);
  return reader->faults;
}

guint64 pst_data_reader_get_size(PstDataReader *reader) {
  g_return_val_if_fail(reader != NULL, 0);
  return reader->size;
}

const PstSmtpReply *pst_data_fault_reply(guint faults) {
  if (faults & (PST_DATA_FAULT_BARE_LF | PST_DATA_FAULT_BARE_CR))
    return &pst_smtp_reply_bare_cr_lf;
  if (faults & PST_DATA_FAULT_NUL)
    return &pst_smtp_reply_nul_in_message;
  if (faults & PST_DATA_FAULT_LINE_TOO_LONG)
    return &pst_smtp_reply_text_line_too_long;
  if (faults & PST_DATA_FAULT_TOO_BIG)
    return &pst_smtp_reply_message_too_big;
  return NULL;
}
