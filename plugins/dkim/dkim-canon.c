/* dkim-canon.c - DKIM canonicalization (RFC 6376 section 3.4) and the
 * folding of a DKIM-Signature value: pure functions, no I/O, no crypto.
 *
 *   dkim_field_name_length() a field's name, for header selection
 *   dkim_canon_header()    one header field, simple or relaxed (3.4.1/3.4.2)
 *   dkim_body_canon_*()    a body streamed in pieces of any size, simple or
 *                          relaxed (3.4.3/3.4.4); the output does not depend
 *                          on where the pieces are cut
 *   dkim_signature_fold()  the tags of a signature laid out in lines as
 *                          libopendkim lays them out (75 columns, CRLF TAB)
 *
 * The body canonicalizer reads CRLF as the end of a line, and a bare LF or
 * a bare CR as one too (the spool holds CRLF only; libopendkim's FIXCRLF
 * reads the others so).  Trailing empty lines are counted, not buffered:
 * memory stays constant whatever the body.  The signer (dkim-signer.c)
 * hashes what these emit; fuzz/fuzz-dkim-canon.c checks the invariants.
 */
#include <string.h>

#include "dkim.h"

#define DKIM_FOLD_MARGIN 75
#define DKIM_FOLD_INDENT 8 /* the width of the TAB after a fold */

/* --- Header fields -------------------------------------------------------- */

static gboolean dkim_is_wsp(guint8 c) {
  return c == ' ' || c == '\t';
}

/* Relaxed: the name lower-cased, without white space; the value unfolded,
 * each run of white space one SP, none at either end (RFC 6376 3.4.2). */
static void dkim_canon_header_relaxed(const char *field, gsize length,
                                      GString *out) {
  gsize i = 0;
  for (; i < length && field[i] != ':'; i++)
    if (!dkim_is_wsp((guint8)field[i]) && field[i] != '\r' && field[i] != '\n')
      g_string_append_c(out, g_ascii_tolower(field[i]));
  g_string_append_c(out, ':');
  gboolean space = FALSE, started = FALSE;
  for (i++; i < length; i++) {
    guint8 c = (guint8)field[i];
    if (c == '\r' || c == '\n')
      continue; /* unfolding */
    if (dkim_is_wsp(c)) {
      space = started;
      continue;
    }
    if (space)
      g_string_append_c(out, ' ');
    space = FALSE;
    started = TRUE;
    g_string_append_c(out, (char)c);
  }
}

gsize dkim_field_name_length(const char *field) {
  const char *colon = strchr(field, ':');
  gsize length = colon != NULL ? (gsize)(colon - field) : strlen(field);
  while (length > 0 && dkim_is_wsp((guint8)field[length - 1]))
    length--;
  return length;
}

void dkim_canon_header(DkimCanon canon, const char *field, gsize length,
                       GString *out) {
  if (canon == DKIM_CANON_SIMPLE_)
    g_string_append_len(out, field, (gssize)length);
  else
    dkim_canon_header_relaxed(field, length, out);
}

/* --- The body ------------------------------------------------------------- */

void dkim_body_canon_init(DkimBodyCanon *body, DkimCanon canon,
                          DkimCanonEmit emit, gpointer data) {
  memset(body, 0, sizeof *body);
  body->canon = canon;
  body->emit = emit;
  body->data = data;
}

static void dkim_body_emit(DkimBodyCanon *body, const void *bytes,
                           gsize length) {
  body->wrote += length;
  body->emit(bytes, length, body->data);
}

/* The empty lines held back, now that a line with content follows. */
static void dkim_body_flush_blanks(DkimBodyCanon *body) {
  static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                              "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
  while (body->blanks > 0) {
    guint64 n = MIN(body->blanks, (sizeof crlfs - 1) / 2);
    dkim_body_emit(body, crlfs, (gsize)n * 2);
    body->blanks -= n;
  }
}

static void dkim_body_end_line(DkimBodyCanon *body) {
  if (body->in_line)
    dkim_body_emit(body, "\r\n", 2);
  else
    body->blanks++;
  body->in_line = FALSE;
  body->space = FALSE;
}

/* A run of octets that are neither CR, LF nor (relaxed) white space. */
static void dkim_body_content(DkimBodyCanon *body, const guint8 *run,
                              gsize length) {
  if (!body->in_line) {
    dkim_body_flush_blanks(body);
    body->in_line = TRUE;
  }
  if (body->space)
    dkim_body_emit(body, " ", 1);
  body->space = FALSE;
  dkim_body_emit(body, run, length);
}

static gboolean dkim_body_is_special(const DkimBodyCanon *body, guint8 c) {
  return c == '\r' || c == '\n' ||
         (body->canon == DKIM_CANON_RELAXED_ && dkim_is_wsp(c));
}

void dkim_body_canon_feed(DkimBodyCanon *body, const guint8 *data,
                          gsize length) {
  gsize i = 0;
  while (i < length) {
    guint8 c = data[i];
    if (body->cr) {
      /* CR LF, or a bare CR: either ends the line. */
      body->cr = FALSE;
      dkim_body_end_line(body);
      if (c == '\n') {
        i++;
        continue;
      }
    }
    if (c == '\r') {
      body->cr = TRUE;
      i++;
    } else if (c == '\n') {
      dkim_body_end_line(body); /* a bare LF */
      i++;
    } else if (dkim_body_is_special(body, c)) {
      body->space = TRUE; /* relaxed white space */
      i++;
    } else {
      gsize end = i + 1;
      while (end < length && !dkim_body_is_special(body, data[end]))
        end++;
      dkim_body_content(body, data + i, end - i);
      i = end;
    }
  }
}

void dkim_body_canon_finish(DkimBodyCanon *body) {
  if (body->cr) {
    body->cr = FALSE;
    dkim_body_end_line(body);
  }
  if (body->in_line)
    dkim_body_end_line(body); /* the last line had no CRLF: add one */
  /* Empty lines at the end are ignored; simple hashes an empty body as a
   * single CRLF (RFC 6376 3.4.3), relaxed as nothing (3.4.4). */
  if (body->canon == DKIM_CANON_SIMPLE_ && body->wrote == 0)
    dkim_body_emit(body, "\r\n", 2);
  body->blanks = 0;
}

/* --- Folding ----------------------------------------------------------------
 */

/* Appends a tag's value in pieces that end at the margin (b=, bh=). */
static void dkim_fold_split(GString *out, const char *tag, gsize *column) {
  const char *equals = strchr(tag, '=');
  gsize name = (gsize)(equals - tag) + 1;
  g_string_append_len(out, tag, (gssize)name);
  *column += name;
  const char *p = tag + name;
  if (*p != '\0') {
    g_string_append_c(out, *p++);
    (*column)++;
  }
  for (gsize left = strlen(p); left > 0;) {
    if (*column >= DKIM_FOLD_MARGIN) {
      g_string_append(out, "\r\n\t ");
      *column = DKIM_FOLD_INDENT + 1;
    }
    gsize n = MIN(DKIM_FOLD_MARGIN - *column, left);
    g_string_append_len(out, p, (gssize)n);
    p += n;
    left -= n;
    *column += n;
  }
}

/* Appends h= broken at its colons (empty names skipped, as strtok()
 * does in libopendkim).  One pass: h= may name 100,000 fields. */
static void dkim_fold_names(GString *out, const char *tag, gsize *column) {
  gboolean first = TRUE;
  for (const char *p = tag; *p != '\0';) {
    gsize length = 0;
    while (p[length] != '\0' && p[length] != ':')
      length++;
    if (length > 0) {
      if (first) {
        first = FALSE;
      } else if (*column + length + 1 > DKIM_FOLD_MARGIN) {
        g_string_append(out, ":\r\n\t ");
        *column = DKIM_FOLD_INDENT + 1;
      } else {
        g_string_append_c(out, ':');
        (*column)++;
      }
      g_string_append_len(out, p, (gssize)length);
      *column += length;
    }
    p += length;
    if (*p == ':')
      p++;
  }
}

char *dkim_signature_fold(const char *const *tags, gsize initial) {
  GString *out = g_string_new(NULL);
  gsize column = initial;
  for (guint i = 0; tags[i] != NULL; i++) {
    const char *tag = tags[i];
    gsize length = strlen(tag);
    gboolean b = g_str_has_prefix(tag, "b=");
    if (i == 0) {
      g_string_append(out, tag);
      column += length;
    } else if (b || column + length > DKIM_FOLD_MARGIN) {
      /* b= always starts a line of its own, empty (the text that is
       * hashed) or not (the text that is sent), so the two agree. */
      g_string_append(out, "\r\n\t");
      column = DKIM_FOLD_INDENT;
      if (g_str_has_prefix(tag, "h="))
        dkim_fold_names(out, tag, &column);
      else if (b || g_str_has_prefix(tag, "bh="))
        dkim_fold_split(out, tag, &column);
      else {
        g_string_append(out, tag);
        column += length;
      }
    } else {
      g_string_append_c(out, ' ');
      g_string_append(out, tag);
      column += length + 1;
    }
  }
  return g_string_free(out, FALSE);
}
