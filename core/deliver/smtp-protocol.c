/* smtp-protocol.c - the outbound SMTP client's pure protocol layer: reply
 * parser, EHLO keywords, DATA encoding and the transaction state machine
 * (contracts in smtp-protocol.h).
 *
 * Nothing here does I/O or keeps global state; every function is safe on
 * any thread.  The transaction keeps the commands it was built with and a
 * count of commands sent and replies received: replies come back in
 * command order (RFC 2920), so the reply number says which command it
 * answers.  Commands after the first are sent at once when the server
 * offered PIPELINING (at most PIPELINE_WINDOW outstanding), one by one
 * otherwise.
 */
#include <string.h>

#include "deliver/smtp-protocol.h"
#include "util/vformat.h"

#define PIPELINE_WINDOW 100

/* --- Replies -------------------------------------------------------------- */

void pst_smtp_response_free(PstSmtpResponse *reply) {
  if (reply == NULL)
    return;
  /* Another holder keeps it (the value before the decrement). */
  if (g_atomic_int_add(&reply->shared, -1) > 0)
    return;
  g_free(reply);
}

/* One more hold on `reply` (replies are not changed once made, so the
 * results of a transaction share the reply each recipient got, where
 * copying it cost five allocations per recipient and stage). */
static PstSmtpResponse *reply_share(const PstSmtpResponse *reply) {
  PstSmtpResponse *shared = (PstSmtpResponse *)reply;
  g_atomic_int_inc(&shared->shared);
  return shared;
}

/* The reply in one allocation: the struct, `count` line pointers, the
 * text, then each line (starts[i], lengths[i] octets: not necessarily
 * NUL-terminated), each NUL-terminated. */
static PstSmtpResponse *reply_new(guint code, const char *enhanced,
                                  const char *text, gsize text_length,
                                  const char *const *starts,
                                  const gsize *lengths, guint count) {
  gsize size = sizeof(PstSmtpResponse) + count * sizeof(char *) +
               text_length + 1;
  for (guint i = 0; i < count; i++)
    size += lengths[i] + 1;
  PstSmtpResponse *reply = g_malloc(size);
  *reply = (PstSmtpResponse){.code = code, .line_count = count};
  g_strlcpy(reply->enhanced, enhanced, sizeof reply->enhanced);
  const char **lines = (const char **)(reply + 1);
  char *strings = (char *)(lines + count);
  reply->text = memcpy(strings, text, text_length);
  strings[text_length] = '\0';
  strings += text_length + 1;
  for (guint i = 0; i < count; i++) {
    lines[i] = memcpy(strings, starts[i], lengths[i]);
    strings[lengths[i]] = '\0';
    strings += lengths[i] + 1;
  }
  reply->lines = lines;
  return reply;
}

PstSmtpResponse *pst_smtp_response_new(guint code, const char *enhanced,
                                       const char *text) {
  gsize length = strnlen(text, PST_SMTP_RESPONSE_TEXT_MAX);
  return reply_new(code, enhanced, text, length, &text, &length, 1);
}

PstSmtpResponse *pst_smtp_response_new_lines(guint code, const char *enhanced,
                                             const char *text,
                                             const char *const *lines,
                                             guint count) {
  g_autofree gsize *lengths = g_new(gsize, count);
  for (guint i = 0; i < count; i++)
    lengths[i] = strlen(lines[i]);
  return reply_new(code, enhanced, text, strlen(text), lines, lengths, count);
}

char *pst_smtp_response_to_string(const PstSmtpResponse *reply) {
  /* Put together by hand: every delivered message logs one. */
  char code[4] = {(char)('0' + reply->code / 100 % 10),
                  (char)('0' + reply->code / 10 % 10),
                  (char)('0' + reply->code % 10), '\0'};
  if (reply->code > 999) /* not from the parser: keep printf's rendering */
    return g_strdup_printf("%u %s %s", reply->code, reply->enhanced,
                           reply->text);
  return g_strconcat(reply->code >= 100  ? code
                     : reply->code >= 10 ? code + 1
                                         : code + 2,
                     " ", reply->enhanced, " ", reply->text, NULL);
}

/* "DDD" with a first digit 2-5 and a second 0-5 (RFC 5321 4.2). */
static gboolean code_is_valid(const char *line, gsize length) {
  return length >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
         line[1] <= '5' && g_ascii_isdigit(line[2]) &&
         (length == 3 || line[3] == ' ' || line[3] == '-');
}

/* Length of an enhanced status code "C.SSS.DDD" at `text` whose class is
 * `class`, followed by a space or the end; 0 when there is none. */
static gsize enhanced_length(const char *text, char class) {
  if (text[0] != class || text[1] != '.')
    return 0;
  const char *p = text + 2;
  for (int part = 0; part < 2; part++) {
    gsize digits = 0;
    while (g_ascii_isdigit(p[digits]))
      digits++;
    if (digits == 0 || digits > 3)
      return 0;
    p += digits;
    if (part == 0) {
      if (*p != '.')
        return 0;
      p++;
    }
  }
  if (*p != ' ' && *p != '\0')
    return 0;
  return (gsize)(p - text);
}

/* Appends `text` to text[*length] as printable ASCII (others become
 * '?'), up to PST_SMTP_RESPONSE_TEXT_MAX octets (`text` holds one more). */
static void append_printable(char *text, gsize *length, const char *from) {
  for (const char *p = from; *p && *length < PST_SMTP_RESPONSE_TEXT_MAX; p++)
    text[(*length)++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
}

/* The line at `start`, which has an LF within `available` octets: its
 * length without CR LF, and where the next one starts (*next_r). */
static gsize line_measure(const char *start, gsize available, gsize *next_r) {
  const char *lf = memchr(start, '\n', available);
  gsize length = (gsize)(lf - start);
  *next_r = length + 1;
  return length > 0 && start[length - 1] == '\r' ? length - 1 : length;
}

/* The reply from the `count` lines in data[0, length) (each "DDD[ -]text"
 * up to its LF, validated): the text built in place, then one allocation
 * (reply_new()). */
static PstSmtpResponse *reply_build(const char *data, gsize length,
                                    guint count) {
  guint code = (guint)g_ascii_strtoull(data, NULL, 10) % 1000;
  char enhanced[G_SIZEOF_MEMBER(PstSmtpResponse, enhanced)] = "";
  const char *starts[PST_SMTP_RESPONSE_LINES_MAX];
  gsize lengths[PST_SMTP_RESPONSE_LINES_MAX];
  char text[PST_SMTP_RESPONSE_TEXT_MAX + 1];
  gsize text_length = 0;
  const char *line = data;
  for (guint i = 0; i < count; i++) {
    gsize next = 0;
    gsize line_length =
        line_measure(line, length - (gsize)(line - data), &next);
    starts[i] = line_length > 3 ? line + 4 : "";
    lengths[i] = line_length > 3 ? line_length - 4 : 0;
    /* The line's text ends at its end (no NUL: the parser refused them). */
    char body_copy[PST_SMTP_RESPONSE_LINE_MAX + 1];
    memcpy(body_copy, starts[i], lengths[i]);
    body_copy[lengths[i]] = '\0';
    const char *body = body_copy;
    gsize skip = enhanced_length(body, data[0]);
    if (skip > 0 && enhanced[0] == '\0')
      g_strlcpy(enhanced, body, MIN(skip + 1, sizeof enhanced));
    body += skip;
    while (*body == ' ')
      body++;
    if (text_length > 0 && *body != '\0' &&
        text_length < PST_SMTP_RESPONSE_TEXT_MAX)
      text[text_length++] = ' ';
    append_printable(text, &text_length, body);
    line += next;
  }
  if (enhanced[0] == '\0')
    memcpy(enhanced, (char[]){data[0], '.', '0', '.', '0', '\0'}, 6);
  return reply_new(code, enhanced, text, text_length, starts, lengths, count);
}

/* The lines are checked where they are, without a copy; only a complete
 * reply is built (reply_build()). */
PstSmtpParseStatus pst_smtp_response_parse(const char *data, gsize length,
                                           gsize *consumed_r,
                                           PstSmtpResponse **reply_r,
                                           char **problem_r) {
  gsize offset = 0;
  guint count = 0;
  while (offset < length) {
    const char *start = data + offset;
    gsize available = length - offset;
    const char *end =
        memchr(start, '\n', MIN(available, PST_SMTP_RESPONSE_LINE_MAX));
    if (end == NULL) {
      if (available < PST_SMTP_RESPONSE_LINE_MAX)
        return PST_SMTP_PARSE_NEED_MORE;
      *problem_r = g_strdup_printf("a reply line longer than %d octets",
                                   PST_SMTP_RESPONSE_LINE_MAX);
      return PST_SMTP_PARSE_ERROR;
    }
    gsize line_length = (gsize)(end - start);
    if (line_length > 0 && start[line_length - 1] == '\r')
      line_length--;
    if (!code_is_valid(start, line_length) ||
        memchr(start, '\0', line_length) != NULL ||
        (count > 0 && memcmp(start, data, 3) != 0)) {
      g_autofree char *shown = g_strndup(start, MIN(line_length, 60));
      char printable[PST_SMTP_RESPONSE_TEXT_MAX + 1];
      gsize printable_length = 0;
      append_printable(printable, &printable_length, shown);
      printable[printable_length] = '\0';
      *problem_r =
          g_strdup_printf("a reply without a valid code: \"%s\"", printable);
      return PST_SMTP_PARSE_ERROR;
    }
    count++;
    offset += (gsize)(end - start) + 1;
    if (line_length == 3 || start[3] == ' ') {
      *reply_r = reply_build(data, offset, count);
      *consumed_r = offset;
      return PST_SMTP_PARSE_OK;
    }
    if (count >= PST_SMTP_RESPONSE_LINES_MAX) {
      *problem_r = g_strdup_printf("a reply of more than %d lines",
                                   PST_SMTP_RESPONSE_LINES_MAX);
      return PST_SMTP_PARSE_ERROR;
    }
  }
  return PST_SMTP_PARSE_NEED_MORE;
}

/* --- EHLO ----------------------------------------------------------------- */

void pst_smtp_extensions_parse(const PstSmtpResponse *ehlo,
                               PstSmtpExtensions *extensions) {
  static const struct {
    const char *keyword;
    PstSmtpExtension flag;
  } known[] = {
      {"PIPELINING", PST_SMTP_EXT_PIPELINING},
      {"STARTTLS", PST_SMTP_EXT_STARTTLS},
      {"8BITMIME", PST_SMTP_EXT_8BITMIME},
      {"SMTPUTF8", PST_SMTP_EXT_SMTPUTF8},
      {"SIZE", PST_SMTP_EXT_SIZE},
      {"ENHANCEDSTATUSCODES", PST_SMTP_EXT_ENHANCEDSTATUSCODES},
      {"AUTH", PST_SMTP_EXT_AUTH},
      {"DSN", PST_SMTP_EXT_DSN},
  };
  memset(extensions, 0, sizeof *extensions);
  for (guint i = 1; i < ehlo->line_count; i++) {
    g_auto(GStrv) words = g_strsplit(ehlo->lines[i], " ", 0);
    if (words[0] == NULL)
      continue;
    for (gsize k = 0; k < G_N_ELEMENTS(known); k++) {
      if (g_ascii_strcasecmp(words[0], known[k].keyword) != 0)
        continue;
      extensions->flags |= known[k].flag;
      if (known[k].flag == PST_SMTP_EXT_SIZE && words[1] != NULL)
        extensions->size = g_ascii_strtoull(words[1], NULL, 10);
      if (known[k].flag == PST_SMTP_EXT_AUTH) {
        g_autofree char *joined = g_strjoinv(" ", words + 1);
        g_autofree char *upper = g_ascii_strup(joined, -1);
        g_strlcpy(extensions->auth, upper, sizeof extensions->auth);
      }
    }
  }
}

/* --- DATA ----------------------------------------------------------------- */

/* The end of the line that starts at `from`: its first CR or LF, or
 * `length`.  memchr() looks at many octets per step. */
static gsize line_end(const guint8 *data, gsize from, gsize length) {
  const guint8 *lf = memchr(data + from, '\n', length - from);
  gsize end = lf != NULL ? (gsize)(lf - data) : length;
  const guint8 *cr = memchr(data + from, '\r', end - from);
  return cr != NULL ? (gsize)(cr - data) : end;
}

/* Appends data[from, to) when it is not empty. */
static void encoder_copy(GByteArray *out, const guint8 *data, gsize from,
                         gsize to) {
  if (to > from)
    g_byte_array_append(out, data + from, (guint)(to - from));
}

void pst_smtp_encoder_add(PstSmtpEncoder *encoder, const guint8 *data,
                          gsize length, GByteArray *out) {
  gsize i = 0;
  if (encoder->after_cr && length > 0) {
    encoder->after_cr = FALSE;
    if (data[0] == '\n')
      i = 1; /* the pair of the CR that ended the last piece */
  }
  /* A line at a time: CRLF, a bare CR and a bare LF all end one line; a
   * line that starts with a dot gets another.  Octets that need no change
   * (lines ending in CRLF inside this piece) are not copied line by line
   * but in runs, from `run` to where a change is due. */
  gsize run = i;
  while (i < length) {
    if (!encoder->mid_line && data[i] == '.') {
      encoder_copy(out, data, run, i);
      g_byte_array_append(out, (const guint8 *)".", 1);
      run = i; /* the line's own dot goes with the run */
    }
    gsize end = line_end(data, i, length);
    if (end == length) {
      encoder->mid_line = TRUE; /* it goes on in the next piece */
      i = length;
      break;
    }
    encoder->mid_line = FALSE;
    if (data[end] == '\r' && end + 1 < length && data[end + 1] == '\n') {
      i = end + 2; /* CRLF: the run goes on */
      continue;
    }
    /* A bare CR or LF, or a CR that ends the piece: the run ends before
     * it and CRLF replaces it. */
    encoder_copy(out, data, run, end);
    g_byte_array_append(out, (const guint8 *)"\r\n", 2);
    if (data[end] == '\r' && end + 1 == length)
      encoder->after_cr = TRUE;
    i = end + 1;
    run = i;
  }
  encoder_copy(out, data, run, i);
}

void pst_smtp_encoder_finish(PstSmtpEncoder *encoder, GByteArray *out) {
  if (encoder->mid_line)
    g_byte_array_append(out, (const guint8 *)"\r\n", 2);
  g_byte_array_append(out, (const guint8 *)".\r\n", 3);
  *encoder = (PstSmtpEncoder){0};
}

GBytes *pst_smtp_encode_content(const guint8 *data, gsize length) {
  GByteArray *out = g_byte_array_sized_new(length + length / 64 + 8);
  PstSmtpEncoder encoder = {0};
  pst_smtp_encoder_add(&encoder, data, length, out);
  pst_smtp_encoder_finish(&encoder, out);
  return g_byte_array_free_to_bytes(out);
}

gboolean pst_smtp_content_is_8bit(const guint8 *data, gsize length) {
  /* Eight octets at a time (memcpy: any alignment), the rest one by one. */
  const guint64 high = G_GUINT64_CONSTANT(0x8080808080808080);
  gsize i = 0;
  for (; i + 32 <= length; i += 32) {
    guint64 words[4];
    memcpy(words, data + i, sizeof words);
    if (((words[0] | words[1] | words[2] | words[3]) & high) != 0)
      return TRUE;
  }
  for (; i < length; i++)
    if (data[i] & 0x80)
      return TRUE;
  return FALSE;
}

/* A line at a time: memchr() finds each LF, and a second one looks for a
 * CR before it (only the one just before the LF may be there). */
void pst_smtp_verbatim_scan_add(PstSmtpVerbatimScan *scan, const guint8 *data,
                                gsize length) {
  if (scan->changed || length == 0)
    return;
  /* The piece's first octet, against how the last one ended. */
  gboolean line_start = !scan->started || scan->after_lf;
  if ((line_start && data[0] == '.') || (scan->after_cr && data[0] != '\n') ||
      (!scan->after_cr && data[0] == '\n')) {
    scan->changed = TRUE;
    return;
  }
  scan->started = TRUE;
  gsize i = 0;
  for (;;) {
    const guint8 *lf = memchr(data + i, '\n', length - i);
    gsize end = lf != NULL ? (gsize)(lf - data) : length;
    /* A CR anywhere but just before this LF (or at the piece's end, where
     * the next piece must bring its LF) is a bare one. */
    gsize crs = lf != NULL ? end - 1 : length - 1;
    if (end > i && crs > i && memchr(data + i, '\r', crs - i) != NULL) {
      scan->changed = TRUE;
      return;
    }
    if (lf == NULL)
      break;
    if (end == 0 ? !scan->after_cr : data[end - 1] != '\r') {
      scan->changed = TRUE; /* a bare LF */
      return;
    }
    i = end + 1;
    if (i == length)
      break;
    if (data[i] == '.') {
      scan->changed = TRUE;
      return;
    }
  }
  scan->after_cr = data[length - 1] == '\r';
  scan->after_lf = data[length - 1] == '\n';
}

gboolean pst_smtp_verbatim_scan_result(const PstSmtpVerbatimScan *scan) {
  return !scan->changed && (!scan->started || scan->after_lf);
}

/* A line at a time (memchr, and eight octets at a time for the high bit):
 * only an LF can end the header block, so the octets before one need no
 * other look. */
void pst_smtp_header_scan_add(PstSmtpHeaderScan *scan, const guint8 *data,
                              gsize length) {
  gsize i = 0;
  while (i < length && !scan->done) {
    const guint8 *lf = memchr(data + i, '\n', length - i);
    gsize end = lf != NULL ? (gsize)(lf - data) : length;
    gsize n = end - i;
    if (pst_smtp_content_is_8bit(data + i, n)) {
      scan->eight_bit = TRUE;
      scan->done = TRUE;
      return;
    }
    if (n >= 2) {
      scan->prev2 = data[end - 2];
      scan->prev = data[end - 1];
    } else if (n == 1) {
      scan->prev2 = scan->prev;
      scan->prev = data[i];
    }
    scan->seen += n;
    if (lf == NULL)
      return;
    /* No header at all, or the blank line. */
    if (scan->seen == 0 || scan->prev == '\n' ||
        (scan->prev == '\r' && (scan->seen == 1 || scan->prev2 == '\n')))
      scan->done = TRUE;
    scan->prev2 = scan->prev;
    scan->prev = '\n';
    scan->seen++;
    i = end + 1;
  }
}

gboolean pst_smtp_header_is_8bit(const guint8 *data, gsize length) {
  PstSmtpHeaderScan scan = {0};
  pst_smtp_header_scan_add(&scan, data, length);
  return scan.eight_bit;
}

GString *pst_smtp_mail_command_new(const PstSmtpExtensions *extensions,
                                   const char *sender, gsize size,
                                   gboolean eight_bit, gboolean smtputf8) {
  GString *mail = g_string_sized_new(64);
  g_string_append_len(mail, "MAIL FROM:<", 11);
  g_string_append(mail, sender);
  g_string_append_c(mail, '>');
  if (extensions->flags & PST_SMTP_EXT_SIZE) {
    /* Digits by hand: this runs for every message. */
    char digits[PST_DECIMAL_MAX];
    g_string_append_len(mail, " SIZE=", 6);
    g_string_append_len(mail, digits,
                        (gssize)pst_format_decimal(digits, size));
  }
  if (eight_bit && (extensions->flags & PST_SMTP_EXT_8BITMIME))
    g_string_append(mail, " BODY=8BITMIME");
  if (smtputf8 && (extensions->flags & PST_SMTP_EXT_SMTPUTF8))
    g_string_append(mail, " SMTPUTF8");
  return mail;
}

char *pst_smtp_extensions_refusal(const PstSmtpExtensions *extensions,
                                  gboolean smtputf8, gboolean eight_bit,
                                  gsize size, const char *peer) {
  if (smtputf8 && !(extensions->flags & PST_SMTP_EXT_SMTPUTF8))
    return g_strdup_printf("550 5.6.7 SMTPUTF8 is required, but was not "
                           "offered by %s",
                           peer);
  if (eight_bit && !(extensions->flags & PST_SMTP_EXT_8BITMIME))
    return g_strdup_printf("554 5.6.3 the message has 8-bit content, %s "
                           "does not offer 8BITMIME, and Postilion does not "
                           "convert to 7 bit",
                           peer);
  if ((extensions->flags & PST_SMTP_EXT_SIZE) && extensions->size > 0 &&
      size > extensions->size)
    return g_strdup_printf("552 5.3.4 the message (%" G_GSIZE_FORMAT
                           " octets) exceeds the size limit of %s "
                           "(%" G_GUINT64_FORMAT " octets)",
                           size, peer, extensions->size);
  return NULL;
}

/* --- The transaction ------------------------------------------------------ */

typedef enum {
  PHASE_ENVELOPE = 0, /* MAIL, RCPTs, DATA: sending and answering */
  PHASE_CONTENT,      /* DATA said 354: the content is to be sent */
  PHASE_EMPTY,        /* 354 without any recipient: "." to be sent */
  PHASE_DOT,          /* waiting for the reply to the final dot */
  PHASE_DONE,
} Phase;

typedef struct {
  PstSmtpResponse *reply; /* owned, nullable */
  PstSmtpStage stage;
  gboolean accepted; /* RCPT said 2xx: the data's reply decides */
} RecipientResult;

struct _PstSmtpTransaction {
  GPtrArray *commands; /* owned: MAIL, RCPT..., DATA */
  guint recipients;
  gboolean pipelining;
  guint sent, answered;
  guint accepted;
  gboolean mail_failed;
  gboolean completed; /* the final dot was answered */
  Phase phase;
  RecipientResult *results; /* owned: one per recipient */
};

const char *pst_smtp_stage_to_string(PstSmtpStage stage) {
  switch (stage) {
  case PST_SMTP_STAGE_MAIL:
    return "MAIL FROM";
  case PST_SMTP_STAGE_RCPT:
    return "RCPT TO";
  case PST_SMTP_STAGE_DATA:
    return "DATA";
  case PST_SMTP_STAGE_DOT:
    return "end of DATA";
  case PST_SMTP_STAGE_SESSION:
    return "connection";
  case PST_SMTP_STAGE_NONE:
  default:
    return "none";
  }
}

PstSmtpTransaction *pst_smtp_transaction_new(const char *mail,
                                             const char *const *rcpts,
                                             gboolean pipelining) {
  PstSmtpTransaction *transaction = g_new0(PstSmtpTransaction, 1);
  transaction->commands = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(transaction->commands, g_strdup(mail));
  for (const char *const *rcpt = rcpts; *rcpt != NULL; rcpt++)
    g_ptr_array_add(transaction->commands, g_strdup(*rcpt));
  g_ptr_array_add(transaction->commands, g_strdup("DATA"));
  transaction->recipients = transaction->commands->len - 2;
  transaction->pipelining = pipelining;
  transaction->results = g_new0(RecipientResult, transaction->recipients);
  return transaction;
}

void pst_smtp_transaction_free(PstSmtpTransaction *transaction) {
  if (transaction == NULL)
    return;
  for (guint i = 0; i < transaction->recipients; i++)
    pst_smtp_response_free(transaction->results[i].reply);
  g_free(transaction->results);
  g_ptr_array_unref(transaction->commands);
  g_free(transaction);
}

static void result_set(PstSmtpTransaction *transaction, guint index,
                       const PstSmtpResponse *reply, PstSmtpStage stage) {
  RecipientResult *result = &transaction->results[index];
  pst_smtp_response_free(result->reply);
  result->reply = reply_share(reply);
  result->stage = stage;
}

/* Every recipient RCPT accepted gets `reply`. */
static void accepted_set(PstSmtpTransaction *transaction,
                         const PstSmtpResponse *reply, PstSmtpStage stage) {
  for (guint i = 0; i < transaction->recipients; i++)
    if (transaction->results[i].accepted)
      result_set(transaction, i, reply, stage);
}

PstSmtpSend pst_smtp_transaction_next(PstSmtpTransaction *transaction,
                                      GString *out) {
  switch (transaction->phase) {
  case PHASE_CONTENT:
    transaction->phase = PHASE_DOT;
    return PST_SMTP_SEND_CONTENT;
  case PHASE_EMPTY:
    transaction->phase = PHASE_DOT;
    return PST_SMTP_SEND_EMPTY;
  case PHASE_ENVELOPE:
    break;
  case PHASE_DOT:
  case PHASE_DONE:
  default:
    return PST_SMTP_SEND_NOTHING;
  }
  guint window = transaction->pipelining ? PIPELINE_WINDOW : 1;
  gboolean any = FALSE;
  while (transaction->sent < transaction->commands->len &&
         transaction->sent - transaction->answered < window) {
    g_string_append(out, transaction->commands->pdata[transaction->sent++]);
    g_string_append_len(out, "\r\n", 2);
    any = TRUE;
  }
  return any ? PST_SMTP_SEND_COMMANDS : PST_SMTP_SEND_NOTHING;
}

static void reply_to_mail(PstSmtpTransaction *transaction,
                          const PstSmtpResponse *reply) {
  if (reply->code / 100 == 2)
    return;
  transaction->mail_failed = TRUE;
  for (guint i = 0; i < transaction->recipients; i++)
    result_set(transaction, i, reply, PST_SMTP_STAGE_MAIL);
  if (!transaction->pipelining)
    transaction->phase = PHASE_DONE;
}

static void reply_to_rcpt(PstSmtpTransaction *transaction, guint index,
                          const PstSmtpResponse *reply) {
  if (transaction->mail_failed)
    return;
  result_set(transaction, index, reply, PST_SMTP_STAGE_RCPT);
  if (reply->code / 100 == 2) {
    transaction->results[index].accepted = TRUE;
    transaction->accepted++;
  }
  /* One by one: no DATA when nobody was accepted. */
  if (!transaction->pipelining && index + 1 == transaction->recipients &&
      transaction->accepted == 0)
    transaction->phase = PHASE_DONE;
}

static void reply_to_data(PstSmtpTransaction *transaction,
                          const PstSmtpResponse *reply) {
  gboolean useful = !transaction->mail_failed && transaction->accepted > 0;
  if (reply->code == 354) {
    transaction->phase = useful ? PHASE_CONTENT : PHASE_EMPTY;
    return;
  }
  if (useful)
    accepted_set(transaction, reply, PST_SMTP_STAGE_DATA);
  transaction->phase = PHASE_DONE;
}

/* A reply of a class the command cannot get (a 3xx to RCPT, a 250 to
 * DATA) means the dialogue is out of step: a temporary failure. */
static PstSmtpResponse *reply_unexpected(const PstSmtpResponse *reply) {
  g_autofree char *text =
      g_strdup_printf("unexpected reply \"%u %s\" (protocol out of step)",
                      reply->code, reply->text);
  return pst_smtp_response_new(451, "4.5.0", text);
}

static gboolean reply_expected(const PstSmtpTransaction *transaction,
                               const PstSmtpResponse *reply) {
  gboolean to_data = transaction->phase == PHASE_ENVELOPE &&
                     transaction->answered == transaction->recipients + 1;
  guint class = reply->code / 100;
  if (to_data)
    return reply->code == 354 || class == 4 || class == 5;
  return class == 2 || class == 4 || class == 5;
}

void pst_smtp_transaction_reply(PstSmtpTransaction *transaction,
                                const PstSmtpResponse *reply) {
  g_autoptr(PstSmtpResponse) replaced = NULL;
  if (!reply_expected(transaction, reply))
    reply = replaced = reply_unexpected(reply);
  if (transaction->phase == PHASE_DONE)
    return;
  if (transaction->phase == PHASE_DOT) {
    if (!transaction->mail_failed && transaction->accepted > 0) {
      accepted_set(transaction, reply, PST_SMTP_STAGE_DOT);
      transaction->completed = TRUE;
    }
    transaction->phase = PHASE_DONE;
    return;
  }
  if (transaction->phase != PHASE_ENVELOPE ||
      transaction->answered >= transaction->sent)
    return; /* a reply nobody asked for: ignored */
  guint index = transaction->answered++;
  if (index == 0)
    reply_to_mail(transaction, reply);
  else if (index <= transaction->recipients)
    reply_to_rcpt(transaction, index - 1, reply);
  else
    reply_to_data(transaction, reply);
}

void pst_smtp_transaction_fail(PstSmtpTransaction *transaction,
                               const PstSmtpResponse *reply) {
  for (guint i = 0; i < transaction->recipients; i++) {
    RecipientResult *result = &transaction->results[i];
    if (result->reply == NULL || (result->accepted && !transaction->completed))
      result_set(transaction, i, reply, PST_SMTP_STAGE_SESSION);
  }
  transaction->phase = PHASE_DONE;
}

gboolean pst_smtp_transaction_is_done(const PstSmtpTransaction *transaction) {
  return transaction->phase == PHASE_DONE;
}

gboolean
pst_smtp_transaction_needs_reset(const PstSmtpTransaction *transaction) {
  return !transaction->completed;
}

const PstSmtpResponse *
pst_smtp_transaction_get_result(const PstSmtpTransaction *transaction,
                                guint index, PstSmtpStage *stage_r) {
  g_return_val_if_fail(index < transaction->recipients, NULL);
  if (transaction->phase != PHASE_DONE)
    return NULL;
  const RecipientResult *result = &transaction->results[index];
  if (stage_r != NULL)
    *stage_r = result->stage;
  return result->reply;
}
