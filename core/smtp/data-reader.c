/* data-reader.c - DATA and BDAT octets to message octets.
 *
 * Entry points: pst_data_reader_new/feed/finish/free and the accessors.
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
 * The hot path is memchr(): one call finds each line's LF, one checks the
 * line for a stray CR, and one per feed finds NULs; output is appended in
 * runs that span many lines, broken only where a stuffed dot is dropped.
 */
#include <string.h>

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
  GByteArray *out; /* nullable */
  const guint8 *end;
  const guint8 *run; /* first octet of output not yet appended */
  const guint8 *nul; /* the first NUL at or after the scan, or end */
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
    if (feed->reader->faults == 0 && feed->out != NULL)
      g_byte_array_append(feed->out, feed->run, (guint)count);
  }
  feed->run = to;
}

static void line_grow(PstDataReader *reader, guint64 count) {
  reader->line_length += count;
  if (reader->line_length > PST_SMTP_MAX_TEXT_LINE)
    reader->faults |= PST_DATA_FAULT_LINE_TOO_LONG;
}

/* The first NUL in [from, end), or end. */
static const guint8 *nul_find(const guint8 *from, const guint8 *end) {
  const guint8 *nul = memchr(from, '\0', (gsize)(end - from));
  return nul != NULL ? nul : end;
}

/* IN_LINE: takes the rest of the line, or of the input when it holds no
 * LF.  Returns where to go on. */
static const guint8 *line_scan(Feed *feed, const guint8 *p) {
  PstDataReader *reader = feed->reader;
  const guint8 *lf = memchr(p, '\n', (gsize)(feed->end - p));
  const guint8 *stop = lf != NULL ? lf : feed->end;

  g_assert(feed->nul >= p);
  if (feed->nul < stop) {
    reader->faults |= PST_DATA_FAULT_NUL;
    feed->nul = nul_find(stop, feed->end);
  }

  /* The only CR allowed is the one right before the LF (or, when the line
   * goes on in the next feed, as the last octet). */
  gboolean crlf = lf != NULL && lf > p && lf[-1] == '\r';
  const guint8 *last =
      crlf || (lf == NULL && stop[-1] == '\r') ? stop - 1 : stop;
  if (memchr(p, '\r', (gsize)(last - p)) != NULL)
    reader->faults |= PST_DATA_FAULT_BARE_CR;

  line_grow(reader, (guint64)(stop - p) + (lf != NULL));
  if (lf == NULL) {
    reader->state = last < stop ? STATE_CR : STATE_IN_LINE;
    return stop;
  }
  if (!crlf)
    reader->faults |= PST_DATA_FAULT_BARE_LF;
  reader->line_length = 0;
  reader->state = crlf ? STATE_LINE_START : STATE_IN_LINE;
  return lf + 1;
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

PstDataStatus pst_data_reader_feed(PstDataReader *reader, const guint8 *data,
                                   gsize length, gsize *consumed_r,
                                   GByteArray *out) {
  g_return_val_if_fail(reader != NULL, PST_DATA_DONE);
  g_return_val_if_fail(data != NULL || length == 0, PST_DATA_DONE);
  if (consumed_r != NULL)
    *consumed_r = 0;
  if (reader->state == STATE_DONE)
    return PST_DATA_DONE;
  if (length == 0)
    return PST_DATA_MORE;

  Feed feed = {reader, out, data + length, data, NULL};
  feed.nul = nul_find(data, feed.end);
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
  g_return_if_fail(reader != NULL);
  g_return_if_fail(reader->mode == PST_DATA_READER_CHUNK);
  if (reader->state == STATE_CR) {
    reader->faults |= PST_DATA_FAULT_BARE_CR;
  } else if (reader->state == STATE_IN_LINE && reader->size > 0) {
    /* RFC 3030 2: the last chunk need not end with CRLF; the message does. */
    reader_count(reader, 2);
    line_grow(reader, 2);
    if (reader->faults == 0 && out != NULL)
      g_byte_array_append(out, (const guint8 *)"\r\n", 2);
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
