/* test-deliver-smtp-protocol.c - the outbound client's pure protocol layer:
 * reply parsing (limits, garbage, enhanced codes), EHLO keywords, DATA
 * encoding, and transactions with and without PIPELINING. */
#include <string.h>

#include "deliver/smtp-protocol.h"

typedef struct {
  const char *input;
  PstSmtpParseStatus status;
  guint code;
  const char *enhanced;
  const char *text;
  gsize consumed; /* 0: the whole input */
} ParseCase;

static void test_reply_parse(void) {
  static const ParseCase cases[] = {
      {"250 2.0.0 Ok\r\n", PST_SMTP_PARSE_OK, 250, "2.0.0", "Ok", 0},
      {"250 Ok\r\n", PST_SMTP_PARSE_OK, 250, "2.0.0", "Ok", 0},
      {"250\r\n", PST_SMTP_PARSE_OK, 250, "2.0.0", "", 0},
      {"550-5.1.1 no\r\n550 5.1.1 such user\r\n", PST_SMTP_PARSE_OK, 550,
       "5.1.1", "no such user", 0},
      {"451 4.3.0 a\r\n250 next\r\n", PST_SMTP_PARSE_OK, 451, "4.3.0", "a", 13},
      {"220 bare LF\n", PST_SMTP_PARSE_OK, 220, "2.0.0", "bare LF", 0},
      /* A 5.x.x code inside a 4xx reply is not its enhanced code. */
      {"421 5.0.0 odd\r\n", PST_SMTP_PARSE_OK, 421, "4.0.0", "5.0.0 odd", 0},
      {"250 text\x01\xff\r\n", PST_SMTP_PARSE_OK, 250, "2.0.0", "text??", 0},
      {"250 2.0.0 Ok", PST_SMTP_PARSE_NEED_MORE, 0, NULL, NULL, 0},
      {"250-first\r\n", PST_SMTP_PARSE_NEED_MORE, 0, NULL, NULL, 0},
      {"", PST_SMTP_PARSE_NEED_MORE, 0, NULL, NULL, 0},
      {"hello\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
      {"650 bad class\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
      {"25 short\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
      {"250x\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
      {"250-a\r\n550 b\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
      {"\r\n", PST_SMTP_PARSE_ERROR, 0, NULL, NULL, 0},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    const ParseCase *c = &cases[i];
    gsize consumed = 0;
    g_autoptr(PstSmtpResponse) reply = NULL;
    g_autofree char *problem = NULL;
    PstSmtpParseStatus status = pst_smtp_response_parse(
        c->input, strlen(c->input), &consumed, &reply, &problem);
    /* Escaped: TAP output must stay valid UTF-8. */
    g_autofree char *shown = g_strescape(c->input, NULL);
    g_test_message("case %zu: %s", i, shown);
    g_assert_cmpint(status, ==, c->status);
    if (status == PST_SMTP_PARSE_ERROR)
      g_assert_nonnull(problem);
    if (status != PST_SMTP_PARSE_OK)
      continue;
    g_assert_cmpuint(reply->code, ==, c->code);
    g_assert_cmpstr(reply->enhanced, ==, c->enhanced);
    g_assert_cmpstr(reply->text, ==, c->text);
    g_assert_cmpuint(consumed, ==,
                     c->consumed ? c->consumed : strlen(c->input));
  }
}

/* --- The reply parser against the one it replaced --------------------------
 * The parser before it checked lines in place (round 8): it copied each
 * line, then each body, and grew the text in a GString.  Kept here as the
 * reference the in-place parser must equal on any input. */

/* "DDD" with a first digit 2-5 and a second 0-5 (RFC 5321 4.2). */
static gboolean ref_code_is_valid(const char *line, gsize length) {
  return length >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
         line[1] <= '5' && g_ascii_isdigit(line[2]) &&
         (length == 3 || line[3] == ' ' || line[3] == '-');
}

/* Length of an enhanced status code "C.SSS.DDD" at `text` whose class is
 * `class`, followed by a space or the end; 0 when there is none. */
static gsize ref_enhanced_length(const char *text, char class) {
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

/* Appends `text` as printable ASCII (others become '?'), bounded. */
static void ref_append_printable(GString *out, const char *text) {
  for (const char *p = text; *p && out->len < PST_SMTP_RESPONSE_TEXT_MAX; p++)
    g_string_append_c(out, (*p >= 0x20 && *p < 0x7f) ? *p : '?');
}

/* The reply from its lines (each "DDD[ -]text", validated). */
static PstSmtpResponse *ref_reply_build(GPtrArray *lines) {
  const char *first = lines->pdata[0];
  guint code = (guint)g_ascii_strtoull(first, NULL, 10) % 1000;
  char enhanced[16] = "";
  g_autoptr(GPtrArray) bodies = g_ptr_array_new();
  GString *text = g_string_new(NULL);
  for (guint i = 0; i < lines->len; i++) {
    const char *line = lines->pdata[i];
    const char *body = strlen(line) > 3 ? line + 4 : "";
    g_ptr_array_add(bodies, (gpointer)body);
    gsize skip = ref_enhanced_length(body, first[0]);
    if (skip > 0 && enhanced[0] == '\0')
      g_strlcpy(enhanced, body, MIN(skip + 1, sizeof enhanced));
    body += skip;
    while (*body == ' ')
      body++;
    if (text->len > 0 && *body != '\0' &&
        text->len < PST_SMTP_RESPONSE_TEXT_MAX)
      g_string_append_c(text, ' ');
    ref_append_printable(text, body);
  }
  if (enhanced[0] == '\0')
    g_snprintf(enhanced, sizeof enhanced, "%c.0.0", first[0]);
  g_autofree char *joined = g_string_free(text, FALSE);
  return pst_smtp_response_new_lines(code, enhanced, joined,
                                     (const char *const *)bodies->pdata,
                                     bodies->len);
}

static PstSmtpParseStatus
ref_pst_smtp_response_parse(const char *data, gsize length, gsize *consumed_r,
                            PstSmtpResponse **reply_r, char **problem_r) {
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
  gsize offset = 0;
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
    if (!ref_code_is_valid(start, line_length) ||
        memchr(start, '\0', line_length) != NULL ||
        (lines->len > 0 && memcmp(start, lines->pdata[0], 3) != 0)) {
      g_autofree char *shown = g_strndup(start, MIN(line_length, 60));
      g_autoptr(GString) printable = g_string_new(NULL);
      ref_append_printable(printable, shown);
      *problem_r = g_strdup_printf("a reply without a valid code: \"%s\"",
                                   printable->str);
      return PST_SMTP_PARSE_ERROR;
    }
    g_ptr_array_add(lines, g_strndup(start, line_length));
    offset += (gsize)(end - start) + 1;
    if (line_length == 3 || start[3] == ' ') {
      *reply_r = ref_reply_build(lines);
      *consumed_r = offset;
      return PST_SMTP_PARSE_OK;
    }
    if (lines->len >= PST_SMTP_RESPONSE_LINES_MAX) {
      *problem_r = g_strdup_printf("a reply of more than %d lines",
                                   PST_SMTP_RESPONSE_LINES_MAX);
      return PST_SMTP_PARSE_ERROR;
    }
  }
  return PST_SMTP_PARSE_NEED_MORE;
}

/* Both parsers on `data`: the same status, octets consumed, problem, and
 * reply (code, enhanced code, text, lines). */
static void reply_parse_compare(const char *data, gsize length) {
  gsize got_consumed = 0, want_consumed = 0;
  PstSmtpResponse *got = NULL, *want = NULL;
  g_autofree char *got_problem = NULL, *want_problem = NULL;
  PstSmtpParseStatus got_status =
      pst_smtp_response_parse(data, length, &got_consumed, &got, &got_problem);
  PstSmtpParseStatus want_status = ref_pst_smtp_response_parse(
      data, length, &want_consumed, &want, &want_problem);
  g_assert_cmpint(got_status, ==, want_status);
  g_assert_cmpuint(got_consumed, ==, want_consumed);
  g_assert_cmpstr(got_problem, ==, want_problem);
  g_assert_true((got == NULL) == (want == NULL));
  if (got != NULL) {
    g_assert_cmpuint(got->code, ==, want->code);
    g_assert_cmpstr(got->enhanced, ==, want->enhanced);
    g_assert_cmpstr(got->text, ==, want->text);
    g_assert_cmpuint(got->line_count, ==, want->line_count);
    for (guint i = 0; i < got->line_count; i++)
      g_assert_cmpstr(got->lines[i], ==, want->lines[i]);
  }
  pst_smtp_response_free(got);
  pst_smtp_response_free(want);
}

/* Random replies made of the pieces that matter: codes, separators,
 * enhanced codes, CR, LF, NUL, eight-bit and control octets. */
static void test_reply_parse_reference(void) {
  static const char *const pieces[] = {
      "250",    "250-",  "250 ", "354 ", "451-", "550 ", "25",   "2",
      "5.1.1 ", "2.0.0", "4.7.", " ",    "  ",   "text", "\r\n", "\n",
      "\r",     "\t",    "\x80", "\x01", "-",    "999 ", "",     "2.0.0 ok"};
  GRand *rand = g_rand_new_with_seed(8);
  for (guint n = 0; n < 200000; n++) {
    char data[96];
    gsize length = 0;
    guint count = (guint)g_rand_int_range(rand, 0, 12);
    for (guint p = 0; p < count; p++) {
      gint32 k = g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces) + 1);
      const char *piece = k < (gint32)G_N_ELEMENTS(pieces) ? pieces[k] : "\0";
      gsize piece_length = k < (gint32)G_N_ELEMENTS(pieces) ? strlen(piece) : 1;
      if (length + piece_length > sizeof data)
        break;
      memcpy(data + length, piece, piece_length);
      length += piece_length;
    }
    reply_parse_compare(data, length);
  }
  g_rand_free(rand);
  /* Long text: the 400-octet bound on the text, over several lines. */
  GString *lines = g_string_new(NULL);
  for (guint i = 0; i < 12; i++)
    g_string_append_printf(lines, "250-%s\r\n",
                           "0123456789abcdef0123456789abcdef01234567");
  g_string_append(lines, "250 2.0.0 end\r\n");
  reply_parse_compare(lines->str, lines->len);
  g_string_free(lines, TRUE);
}

static void test_reply_limits(void) {
  /* A line without its end, as long as the limit: an error, not a wait. */
  g_autofree char *long_line = g_strnfill(PST_SMTP_RESPONSE_LINE_MAX, 'a');
  memcpy(long_line, "250 ", 4);
  gsize consumed = 0;
  PstSmtpResponse *reply = NULL;
  g_autofree char *problem = NULL;
  g_assert_cmpint(pst_smtp_response_parse(long_line, strlen(long_line),
                                          &consumed, &reply, &problem),
                  ==, PST_SMTP_PARSE_ERROR);
  g_assert_nonnull(strstr(problem, "longer than"));
  g_clear_pointer(&problem, g_free);
  /* Too many lines. */
  GString *many = g_string_new(NULL);
  for (int i = 0; i < PST_SMTP_RESPONSE_LINES_MAX + 1; i++)
    g_string_append(many, "250-more\r\n");
  g_string_append(many, "250 end\r\n");
  g_assert_cmpint(pst_smtp_response_parse(many->str, many->len, &consumed,
                                          &reply, &problem),
                  ==, PST_SMTP_PARSE_ERROR);
  g_assert_nonnull(strstr(problem, "lines"));
  g_string_free(many, TRUE);
  /* Long text is cut for logs and DSNs. */
  GString *wide = g_string_new(NULL);
  for (int i = 0; i < 20; i++)
    g_string_append_printf(wide, "550-%s\r\n",
                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                           "xxxxxxxxxxxxxxxxxxxxxxxxxx");
  g_string_append(wide, "550 end\r\n");
  g_assert_cmpint(pst_smtp_response_parse(wide->str, wide->len, &consumed,
                                          &reply, &problem),
                  ==, PST_SMTP_PARSE_OK);
  g_assert_cmpuint(strlen(reply->text), <=, PST_SMTP_RESPONSE_TEXT_MAX);
  g_assert_cmpuint(reply->line_count, ==, 21);
  pst_smtp_response_free(reply);
  g_string_free(wide, TRUE);
}

static PstSmtpResponse *parse_one(const char *text) {
  gsize consumed = 0;
  PstSmtpResponse *reply = NULL;
  g_autofree char *problem = NULL;
  g_assert_cmpint(
      pst_smtp_response_parse(text, strlen(text), &consumed, &reply, &problem),
      ==, PST_SMTP_PARSE_OK);
  return reply;
}

static void test_extensions(void) {
  g_autoptr(PstSmtpResponse) ehlo =
      parse_one("250-mx.example greets you\r\n250-PIPELINING\r\n"
                "250-SIZE 1000000\r\n250-8bitmime\r\n250-STARTTLS\r\n"
                "250-AUTH PLAIN login\r\n250 ENHANCEDSTATUSCODES\r\n");
  PstSmtpExtensions extensions;
  pst_smtp_extensions_parse(ehlo, &extensions);
  g_assert_cmpuint(extensions.flags, ==,
                   PST_SMTP_EXT_PIPELINING | PST_SMTP_EXT_SIZE |
                       PST_SMTP_EXT_8BITMIME | PST_SMTP_EXT_STARTTLS |
                       PST_SMTP_EXT_AUTH | PST_SMTP_EXT_ENHANCEDSTATUSCODES);
  g_assert_cmpuint(extensions.size, ==, 1000000);
  g_assert_cmpstr(extensions.auth, ==, "PLAIN LOGIN");
  /* The greeting line is not a keyword. */
  g_autoptr(PstSmtpResponse) plain = parse_one("250 PIPELINING\r\n");
  pst_smtp_extensions_parse(plain, &extensions);
  g_assert_cmpuint(extensions.flags, ==, 0);
}

/* The same refusals for SMTP's EHLO and LMTP's LHLO keywords. */
static void test_extensions_refusal(void) {
  PstSmtpExtensions none = {0};
  PstSmtpExtensions all = {PST_SMTP_EXT_SMTPUTF8 | PST_SMTP_EXT_8BITMIME |
                               PST_SMTP_EXT_SIZE,
                           100, ""};
  g_assert_null(pst_smtp_extensions_refusal(&none, FALSE, FALSE, 10, "x"));
  g_assert_null(pst_smtp_extensions_refusal(&all, TRUE, TRUE, 100, "x"));
  g_autofree char *utf8 =
      pst_smtp_extensions_refusal(&none, TRUE, TRUE, 10, "the LMTP server");
  g_assert_cmpstr(utf8, ==,
                  "550 5.6.7 SMTPUTF8 is required, but was not offered by "
                  "the LMTP server");
  g_autofree char *eight = pst_smtp_extensions_refusal(&none, FALSE, TRUE, 10,
                                                       "host mx[192.0.2.1]:25");
  g_assert_true(g_str_has_prefix(eight, "554 5.6.3 the message has 8-bit "
                                        "content, host mx[192.0.2.1]:25 "
                                        "does not offer 8BITMIME"));
  g_autofree char *big =
      pst_smtp_extensions_refusal(&all, FALSE, FALSE, 101, "the LMTP server");
  g_assert_cmpstr(big, ==,
                  "552 5.3.4 the message (101 octets) exceeds the size "
                  "limit of the LMTP server (100 octets)");
}

static void test_mail_command(void) {
  PstSmtpExtensions none = {0};
  PstSmtpExtensions all = {
      PST_SMTP_EXT_SMTPUTF8 | PST_SMTP_EXT_8BITMIME | PST_SMTP_EXT_SIZE, 0, ""};
  g_autoptr(GString) plain =
      pst_smtp_mail_command_new(&none, "a@b.example", 10, TRUE, TRUE);
  g_assert_cmpstr(plain->str, ==, "MAIL FROM:<a@b.example>");
  g_autoptr(GString) full = pst_smtp_mail_command_new(&all, "", 10, TRUE, TRUE);
  g_assert_cmpstr(full->str, ==, "MAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8");
  g_autoptr(GString) seven =
      pst_smtp_mail_command_new(&all, "", 10, FALSE, FALSE);
  g_assert_cmpstr(seven->str, ==, "MAIL FROM:<> SIZE=10");
  /* SIZE's digits are written by hand: the edges of the range. */
  g_autoptr(GString) empty =
      pst_smtp_mail_command_new(&all, "a@b", 0, FALSE, FALSE);
  g_assert_cmpstr(empty->str, ==, "MAIL FROM:<a@b> SIZE=0");
  g_autoptr(GString) huge =
      pst_smtp_mail_command_new(&all, "a@b", G_MAXSIZE, FALSE, FALSE);
  g_autofree char *expected =
      g_strdup_printf("MAIL FROM:<a@b> SIZE=%" G_GSIZE_FORMAT, G_MAXSIZE);
  g_assert_cmpstr(huge->str, ==, expected);
}

/* "CODE ENHANCED TEXT" as printf's "%u %s %s" would write it, for every
 * code a reply can carry (parsed ones are 200-559, made ones any). */
static void test_response_to_string(void) {
  static const guint codes[] = {0,   7,   42,  100,  250,
                                421, 559, 999, 1000, G_MAXUINT};
  for (gsize i = 0; i < G_N_ELEMENTS(codes); i++) {
    g_autoptr(PstSmtpResponse) reply =
        pst_smtp_response_new(codes[i], "2.0.0", "Ok: queued");
    g_autofree char *text = pst_smtp_response_to_string(reply);
    g_autofree char *expected =
        g_strdup_printf("%u 2.0.0 Ok: queued", codes[i]);
    g_assert_cmpstr(text, ==, expected);
  }
  gsize consumed = 0;
  g_autoptr(PstSmtpResponse) parsed = NULL;
  g_autofree char *problem = NULL;
  static const char wire[] = "550-5.1.1 no\r\n550 such user\r\n";
  g_assert_cmpint(pst_smtp_response_parse(wire, sizeof wire - 1, &consumed,
                                          &parsed, &problem),
                  ==, PST_SMTP_PARSE_OK);
  g_autofree char *text = pst_smtp_response_to_string(parsed);
  g_assert_cmpstr(text, ==, "550 5.1.1 no such user");
}

static void test_header_is_8bit(void) {
  static const struct {
    const char *message;
    gboolean eight_bit;
  } cases[] = {
      {"Subject: hi\r\n\r\ncaf\xc3\xa9\r\n", FALSE},
      {"Subject: caf\xc3\xa9\r\n\r\nbody\r\n", TRUE},
      {"Subject: hi\n\ncaf\xc3\xa9\n", FALSE},
      {"Subject: hi\r\nFrom: j\xc3\xb6\r\n", TRUE},
      {"\r\n\xc3\xa9", FALSE},
      {"", FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
    g_assert_cmpint(pst_smtp_header_is_8bit((const guint8 *)cases[i].message,
                                            strlen(cases[i].message)),
                    ==, cases[i].eight_bit);
}

static void test_encode(void) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
      {"a\r\nb", "a\r\nb\r\n.\r\n"},
      {".x\r\n..\r\n.\r\n", "..x\r\n...\r\n..\r\n.\r\n"},
      {"bare\nlf\rcr\r\n", "bare\r\nlf\r\ncr\r\n.\r\n"},
      {"a\r\n.\nb\r.", "a\r\n..\r\nb\r\n..\r\n.\r\n"},
      {"", ".\r\n"},
      {"\r\r\n\n\r", "\r\n\r\n\r\n\r\n.\r\n"},
      {"a\r", "a\r\n.\r\n"},
      {".", "..\r\n.\r\n"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GBytes) out = pst_smtp_encode_content((const guint8 *)cases[i].in,
                                                    strlen(cases[i].in));
    g_autofree char *text =
        g_strndup(g_bytes_get_data(out, NULL), g_bytes_get_size(out));
    g_assert_cmpstr(text, ==, cases[i].out);
  }
  g_assert_false(pst_smtp_content_is_8bit((const guint8 *)"abc", 3));
  g_assert_true(pst_smtp_content_is_8bit((const guint8 *)"a\xc3\xa9", 3));
  /* Every length and position around the 32-octet steps. */
  guint8 text[100];
  for (gsize length = 0; length <= sizeof text; length++) {
    memset(text, 'a', sizeof text);
    g_assert_false(pst_smtp_content_is_8bit(text, length));
    for (gsize at = 0; at < length; at++) {
      text[at] = 0x80;
      g_assert_true(pst_smtp_content_is_8bit(text, length));
      g_assert_false(pst_smtp_content_is_8bit(text, at));
      text[at] = 'a';
    }
  }
}

/* The encoding one octet at a time, as the specification reads. */
static GBytes *encode_reference(const guint8 *data, gsize length) {
  GByteArray *out = g_byte_array_new();
  gboolean line_start = TRUE;
  for (gsize i = 0; i < length; i++) {
    guint8 c = data[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < length && data[i + 1] == '\n')
        i++;
      g_byte_array_append(out, (const guint8 *)"\r\n", 2);
      line_start = TRUE;
      continue;
    }
    if (line_start && c == '.')
      g_byte_array_append(out, (const guint8 *)".", 1);
    g_byte_array_append(out, &c, 1);
    line_start = FALSE;
  }
  if (!line_start)
    g_byte_array_append(out, (const guint8 *)"\r\n", 2);
  g_byte_array_append(out, (const guint8 *)".\r\n", 3);
  return g_byte_array_free_to_bytes(out);
}

/* The line-at-a-time encoder against the reference, on random content
 * made of the octets that matter. */
static void test_encode_random(void) {
  static const guint8 octets[] = {'.', '\r', '\n', 'a'};
  GRand *rand = g_rand_new_with_seed(18);
  for (guint n = 0; n < 5000; n++) {
    guint8 data[24];
    gsize length = (gsize)g_rand_int_range(rand, 0, sizeof data + 1);
    for (gsize i = 0; i < length; i++)
      data[i] = octets[g_rand_int_range(rand, 0, G_N_ELEMENTS(octets))];
    g_autoptr(GBytes) got = pst_smtp_encode_content(data, length);
    g_autoptr(GBytes) want = encode_reference(data, length);
    g_assert_true(g_bytes_equal(got, want));
  }
  g_rand_free(rand);
}

/* `data` encoded in pieces cut at `cuts` (ascending offsets). */
static GBytes *encode_in_pieces(const guint8 *data, gsize length,
                                const gsize *cuts, guint n_cuts) {
  GByteArray *out = g_byte_array_new();
  PstSmtpEncoder encoder = {0};
  gsize from = 0;
  for (guint c = 0; c <= n_cuts; c++) {
    gsize to = c < n_cuts ? cuts[c] : length;
    pst_smtp_encoder_add(&encoder, data + from, to - from, out);
    from = to;
  }
  pst_smtp_encoder_finish(&encoder, out);
  return g_byte_array_free_to_bytes(out);
}

/* `count` random offsets in [0, length], ascending. */
static void random_cuts(GRand *rand, gsize *cuts, guint count, gsize length) {
  for (guint c = 0; c < count; c++)
    cuts[c] = (gsize)g_rand_int_range(rand, 0, (gint32)length + 1);
  for (guint a = 0; a < count; a++)
    for (guint b = a + 1; b < count; b++)
      if (cuts[b] < cuts[a]) {
        gsize t = cuts[a];
        cuts[a] = cuts[b];
        cuts[b] = t;
      }
}

/* Boundaries that matter: a line split between two pieces, a dot at the
 * start of a piece (a line's start or not), CRLF split, a bare CR at the
 * end of a piece with an LF-less next piece, empty pieces. */
static void test_encode_pieces(void) {
  static const struct {
    const char *in;
    gsize cut;
    const char *out;
  } cases[] = {
      {"hello world\r\n", 5, "hello world\r\n.\r\n"},
      {"a\r\n.b\r\n", 3, "a\r\n..b\r\n.\r\n"},
      {"a.b\r\n", 1, "a.b\r\n.\r\n"},
      {"a\r\nb\r\n", 2, "a\r\nb\r\n.\r\n"},
      {"a\r\n.\r\n", 2, "a\r\n..\r\n.\r\n"},
      {"a\rb", 2, "a\r\nb\r\n.\r\n"},
      {"a\r\r\n", 2, "a\r\n\r\n.\r\n"},
      {"a\r", 2, "a\r\n.\r\n"},
      {"abc", 0, "abc\r\n.\r\n"},
      {"abc\r\n", 5, "abc\r\n.\r\n"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    gsize cut = cases[i].cut;
    g_autoptr(GBytes) out = encode_in_pieces((const guint8 *)cases[i].in,
                                             strlen(cases[i].in), &cut, 1);
    g_autofree char *text =
        g_strndup(g_bytes_get_data(out, NULL), g_bytes_get_size(out));
    g_assert_cmpstr(text, ==, cases[i].out);
  }
  /* Random content cut at random places, empty pieces included, against
   * the whole-content reference. */
  static const guint8 octets[] = {'.', '\r', '\n', 'a'};
  GRand *rand = g_rand_new_with_seed(21);
  for (guint n = 0; n < 20000; n++) {
    guint8 data[24];
    gsize length = (gsize)g_rand_int_range(rand, 0, sizeof data + 1);
    for (gsize i = 0; i < length; i++)
      data[i] = octets[g_rand_int_range(rand, 0, G_N_ELEMENTS(octets))];
    gsize cuts[4];
    random_cuts(rand, cuts, G_N_ELEMENTS(cuts), length);
    g_autoptr(GBytes) got =
        encode_in_pieces(data, length, cuts, G_N_ELEMENTS(cuts));
    g_autoptr(GBytes) want = encode_reference(data, length);
    g_assert_true(g_bytes_equal(got, want));
  }
  g_rand_free(rand);
}

/* Up to `max_parts - 1` of `parts` end to end: `parts[0]` (a plain line)
 * except one time in `one_in`, when any of them. */
static GByteArray *random_parts(GRand *rand, const char *const *parts,
                                guint n_parts, gint32 max_parts,
                                gint32 one_in) {
  GByteArray *data = g_byte_array_new();
  guint count = (guint)g_rand_int_range(rand, 0, max_parts);
  for (guint p = 0; p < count; p++) {
    gint32 k = g_rand_int_range(rand, 0, one_in) != 0
                   ? 0
                   : g_rand_int_range(rand, 0, (gint32)n_parts);
    g_byte_array_append(data, (const guint8 *)parts[k], strlen(parts[k]));
  }
  return data;
}

/* Whether `data`, cut at `cuts`, scans as verbatim. */
static gboolean verbatim_in_pieces(const guint8 *data, gsize length,
                                   const gsize *cuts, guint n_cuts) {
  PstSmtpVerbatimScan scan = {0};
  gsize from = 0;
  for (guint c = 0; c <= n_cuts; c++) {
    gsize to = c < n_cuts ? cuts[c] : length;
    pst_smtp_verbatim_scan_add(&scan, data + from, to - from);
    from = to;
  }
  return pst_smtp_verbatim_scan_result(&scan);
}

/* Verbatim exactly when the encoding is the content and the final dot,
 * however the content is cut. */
static gboolean encodes_to_itself(const guint8 *data, gsize length) {
  g_autoptr(GBytes) encoded = encode_reference(data, length);
  gsize size = 0;
  const guint8 *octets = g_bytes_get_data(encoded, &size);
  return size == length + 3 &&
         (length == 0 || memcmp(octets, data, length) == 0);
}

static void test_verbatim_scan(void) {
  static const struct {
    const char *in;
    gboolean verbatim;
  } cases[] = {
      {"", TRUE},         {"a\r\n", TRUE},   {"a\r\nb\r\n\r\n", TRUE},
      {"a.b\r\n", TRUE},  {"\r\n", TRUE},    {"a", FALSE},
      {"a\r\nb", FALSE},  {".a\r\n", FALSE}, {"a\r\n.\r\n", FALSE},
      {"a\n", FALSE},     {"a\r", FALSE},    {"a\rb\r\n", FALSE},
      {"a\r\r\n", FALSE}, {"\n", FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    const guint8 *in = (const guint8 *)cases[i].in;
    gsize length = strlen(cases[i].in);
    g_assert_cmpint(verbatim_in_pieces(in, length, NULL, 0), ==,
                    cases[i].verbatim);
    g_assert_cmpint(encodes_to_itself(in, length), ==, cases[i].verbatim);
    for (gsize cut = 0; cut <= length; cut++)
      g_assert_cmpint(verbatim_in_pieces(in, length, &cut, 1), ==,
                      cases[i].verbatim);
  }
  /* Random content, mostly lines that need no change, cut at random
   * places (empty pieces too), against the reference encoding. */
  static const char *const parts[] = {"abc\r\n", "\r\n",  ".x\r\n", "b\r",
                                      "c\n",     "\r",    "\n",     ".",
                                      "e",       "\r\n.", "a.\r\n"};
  GRand *rand = g_rand_new_with_seed(25);
  for (guint n = 0; n < 20000; n++) {
    g_autoptr(GByteArray) data =
        random_parts(rand, parts, G_N_ELEMENTS(parts), 40, 3);
    gsize cuts[4];
    random_cuts(rand, cuts, G_N_ELEMENTS(cuts), data->len);
    g_assert_cmpint(
        verbatim_in_pieces(data->data, data->len, cuts, G_N_ELEMENTS(cuts)), ==,
        encodes_to_itself(data->data, data->len));
  }
  g_rand_free(rand);
}

/* Longer content that is mostly lines ending in CRLF, as real mail is,
 * with a rare dot, bare CR or bare LF among them: the runs copied whole
 * must come out as the reference's octet-by-octet encoding, wherever the
 * pieces are cut. */
static void test_encode_runs(void) {
  static const char *const parts[] = {"abc\r\n", "a\r\n", "\r\n", ".x\r\n",
                                      "..\r\n",   "b\r",   "c\n",  "d\r\r\n",
                                      ".",        "e"};
  GRand *rand = g_rand_new_with_seed(64);
  for (guint n = 0; n < 5000; n++) {
    /* three in four are a plain CRLF line */
    g_autoptr(GByteArray) data =
        random_parts(rand, parts, G_N_ELEMENTS(parts), 60, 4);
    gsize cuts[3];
    random_cuts(rand, cuts, G_N_ELEMENTS(cuts), data->len);
    g_autoptr(GBytes) got =
        encode_in_pieces(data->data, data->len, cuts, G_N_ELEMENTS(cuts));
    g_autoptr(GBytes) want = encode_reference(data->data, data->len);
    g_assert_true(g_bytes_equal(got, want));
  }
  g_rand_free(rand);
}

/* The header scan gives the whole-content answer wherever it is cut. */
static void test_header_scan_pieces(void) {
  static const char *const messages[] = {
      "Subject: hi\r\n\r\ncaf\xc3\xa9\r\n",
      "Subject: caf\xc3\xa9\r\n\r\nb\r\n",
      "Subject: hi\n\ncaf\xc3\xa9\n",
      "Subject: hi\r\nFrom: j\xc3\xb6\r\n",
      "\r\n\xc3\xa9",
      "\n\xc3\xa9",
      "A: 1\n\r\n\xc3\xa9",
      "A: 1\n\r\xc3\xa9",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(messages); i++) {
    const guint8 *data = (const guint8 *)messages[i];
    gsize length = strlen(messages[i]);
    gboolean whole = pst_smtp_header_is_8bit(data, length);
    for (gsize cut = 0; cut <= length; cut++) {
      PstSmtpHeaderScan scan = {0};
      pst_smtp_header_scan_add(&scan, data, cut);
      pst_smtp_header_scan_add(&scan, data + cut, length - cut);
      g_assert_cmpint(scan.eight_bit, ==, whole);
    }
  }
  g_assert_false(pst_smtp_header_is_8bit((const guint8 *)"\n\xc3\xa9", 3));
  g_assert_true(pst_smtp_header_is_8bit((const guint8 *)"A: 1\n\r\xc3", 7));
  g_assert_false(pst_smtp_header_is_8bit((const guint8 *)"A: 1\n\r\n\xc3", 8));
}

/* Runs a transaction against scripted replies; returns the commands sent
 * (content as "<content>") joined. */
static char *run(PstSmtpTransaction *transaction, const char *const *replies) {
  GString *wire = g_string_new(NULL);
  guint next = 0;
  for (int round = 0; round < 100 && !pst_smtp_transaction_is_done(transaction);
       round++) {
    PstSmtpSend send = pst_smtp_transaction_next(transaction, wire);
    if (send == PST_SMTP_SEND_CONTENT)
      g_string_append(wire, "<content>");
    else if (send == PST_SMTP_SEND_EMPTY)
      g_string_append(wire, "<empty>");
    if (replies[next] == NULL) {
      g_autoptr(PstSmtpResponse) lost =
          pst_smtp_response_new(451, "4.4.2", "lost connection");
      pst_smtp_transaction_fail(transaction, lost);
      break;
    }
    g_autoptr(PstSmtpResponse) reply = parse_one(replies[next++]);
    pst_smtp_transaction_reply(transaction, reply);
  }
  g_assert_true(pst_smtp_transaction_is_done(transaction));
  return g_string_free(wire, FALSE);
}

static void assert_result(PstSmtpTransaction *transaction, guint index,
                          guint code, PstSmtpStage stage) {
  PstSmtpStage got = PST_SMTP_STAGE_NONE;
  const PstSmtpResponse *reply =
      pst_smtp_transaction_get_result(transaction, index, &got);
  g_assert_nonnull(reply);
  g_assert_cmpuint(reply->code, ==, code);
  g_assert_cmpint(got, ==, stage);
}

static const char *const three[] = {"RCPT TO:<a@x>", "RCPT TO:<b@x>",
                                    "RCPT TO:<c@x>", NULL};

static void test_transaction_pipelined_mixed(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const replies[] = {"250 ok\r\n",
                                        "250 ok\r\n",
                                        "450 4.2.0 later\r\n",
                                        "550 5.1.1 no\r\n",
                                        "354 go\r\n",
                                        "250 2.0.0 queued as X\r\n",
                                        NULL};
  g_autofree char *wire = run(t, replies);
  g_assert_cmpstr(wire, ==,
                  "MAIL FROM:<s@y>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
                  "RCPT TO:<c@x>\r\nDATA\r\n<content>");
  assert_result(t, 0, 250, PST_SMTP_STAGE_DOT);
  assert_result(t, 1, 450, PST_SMTP_STAGE_RCPT);
  assert_result(t, 2, 550, PST_SMTP_STAGE_RCPT);
  g_assert_false(pst_smtp_transaction_needs_reset(t));
}

/* Recipients answered by one reply hold that reply, not copies, and it
 * outlives the caller's hold (the run frees each reply once given; ASan
 * and LSan see a use after free or a leak). */
static void test_transaction_shares_replies(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const replies[] = {"250 ok\r\n", "250 ok\r\n",
                                        "250 ok\r\n", "250 ok\r\n",
                                        "354 go\r\n", "250 2.0.0 queued\r\n",
                                        NULL};
  g_autofree char *wire = run(t, replies);
  PstSmtpStage stage;
  const PstSmtpResponse *first = pst_smtp_transaction_get_result(t, 0, &stage);
  g_assert_cmpint(stage, ==, PST_SMTP_STAGE_DOT);
  g_assert_true(pst_smtp_transaction_get_result(t, 1, &stage) == first);
  g_assert_true(pst_smtp_transaction_get_result(t, 2, &stage) == first);
  g_assert_cmpstr(first->text, ==, "queued");
  g_assert_cmpint(first->shared, ==, 2); /* three holders: the results */
}

static void test_transaction_one_by_one(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, FALSE);
  static const char *const replies[] = {"250 ok\r\n",    "550 no\r\n",
                                        "550 no\r\n",    "550 no\r\n",
                                        "250 never\r\n", NULL};
  g_autofree char *wire = run(t, replies);
  /* Nobody accepted: no DATA. */
  g_assert_cmpstr(wire, ==,
                  "MAIL FROM:<s@y>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
                  "RCPT TO:<c@x>\r\n");
  assert_result(t, 1, 550, PST_SMTP_STAGE_RCPT);
  g_assert_true(pst_smtp_transaction_needs_reset(t));
}

static void test_transaction_mail_refused(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const replies[] = {"452 4.3.1 full\r\n", "503 no\r\n",
                                        "503 no\r\n",         "503 no\r\n",
                                        "503 no\r\n",         NULL};
  g_autofree char *wire = run(t, replies);
  for (guint i = 0; i < 3; i++)
    assert_result(t, i, 452, PST_SMTP_STAGE_MAIL);
}

static void test_transaction_data_refused_and_lost(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const refused[] = {"250 ok\r\n",
                                        "250 ok\r\n",
                                        "550 no\r\n",
                                        "250 ok\r\n",
                                        "554 5.3.0 no data\r\n",
                                        NULL};
  g_autofree char *wire = run(t, refused);
  assert_result(t, 0, 554, PST_SMTP_STAGE_DATA);
  assert_result(t, 1, 550, PST_SMTP_STAGE_RCPT);
  assert_result(t, 2, 554, PST_SMTP_STAGE_DATA);

  /* The connection drops after the content: accepted ones are deferred. */
  g_autoptr(PstSmtpTransaction) lost =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const cut[] = {"250 ok\r\n", "250 ok\r\n", "550 no\r\n",
                                    "250 ok\r\n", "354 go\r\n", NULL};
  g_autofree char *wire2 = run(lost, cut);
  assert_result(lost, 0, 451, PST_SMTP_STAGE_SESSION);
  assert_result(lost, 1, 550, PST_SMTP_STAGE_RCPT);
  g_assert_true(pst_smtp_transaction_needs_reset(lost));
}

static void test_transaction_354_without_recipients(void) {
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const replies[] = {
      "250 ok\r\n", "550 a\r\n",       "550 b\r\n", "550 c\r\n",
      "354 go\r\n", "554 nothing\r\n", NULL};
  g_autofree char *wire = run(t, replies);
  g_assert_true(g_str_has_suffix(wire, "DATA\r\n<empty>"));
  assert_result(t, 2, 550, PST_SMTP_STAGE_RCPT);
}

static void test_transaction_out_of_step(void) {
  /* 250 to DATA: nothing was sent, so nobody is delivered. */
  g_autoptr(PstSmtpTransaction) t =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, TRUE);
  static const char *const replies[] = {"250 ok\r\n", "250 ok\r\n",
                                        "250 ok\r\n", "250 ok\r\n",
                                        "250 ok\r\n", NULL};
  g_autofree char *wire = run(t, replies);
  for (guint i = 0; i < 3; i++)
    assert_result(t, i, 451, PST_SMTP_STAGE_DATA);
  /* 354 to RCPT. */
  g_autoptr(PstSmtpTransaction) u =
      pst_smtp_transaction_new("MAIL FROM:<s@y>", three, FALSE);
  static const char *const odd[] = {
      "250 ok\r\n", "354 what\r\n", "250 ok\r\n", "250 ok\r\n",
      "354 go\r\n", "250 done\r\n", NULL};
  g_autofree char *wire2 = run(u, odd);
  assert_result(u, 0, 451, PST_SMTP_STAGE_RCPT);
  assert_result(u, 1, 250, PST_SMTP_STAGE_DOT);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/smtp-protocol/reply/parse", test_reply_parse);
  g_test_add_func("/deliver/smtp-protocol/reply/limits", test_reply_limits);
  g_test_add_func("/deliver/smtp-protocol/reply/reference",
                  test_reply_parse_reference);
  g_test_add_func("/deliver/smtp-protocol/extensions", test_extensions);
  g_test_add_func("/deliver/smtp-protocol/extensions-refusal",
                  test_extensions_refusal);
  g_test_add_func("/deliver/smtp-protocol/mail-command", test_mail_command);
  g_test_add_func("/deliver/smtp-protocol/reply/to-string",
                  test_response_to_string);
  g_test_add_func("/deliver/smtp-protocol/header-is-8bit", test_header_is_8bit);
  g_test_add_func("/deliver/smtp-protocol/encode", test_encode);
  g_test_add_func("/deliver/smtp-protocol/encode-random", test_encode_random);
  g_test_add_func("/deliver/smtp-protocol/encode-pieces", test_encode_pieces);
  g_test_add_func("/deliver/smtp-protocol/encode-runs", test_encode_runs);
  g_test_add_func("/deliver/smtp-protocol/verbatim-scan", test_verbatim_scan);
  g_test_add_func("/deliver/smtp-protocol/header-scan-pieces",
                  test_header_scan_pieces);
  g_test_add_func("/deliver/smtp-protocol/transaction/pipelined-mixed",
                  test_transaction_pipelined_mixed);
  g_test_add_func("/deliver/smtp-protocol/transaction/shares-replies",
                  test_transaction_shares_replies);
  g_test_add_func("/deliver/smtp-protocol/transaction/one-by-one",
                  test_transaction_one_by_one);
  g_test_add_func("/deliver/smtp-protocol/transaction/mail-refused",
                  test_transaction_mail_refused);
  g_test_add_func("/deliver/smtp-protocol/transaction/data-refused-and-lost",
                  test_transaction_data_refused_and_lost);
  g_test_add_func("/deliver/smtp-protocol/transaction/354-without-recipients",
                  test_transaction_354_without_recipients);
  g_test_add_func("/deliver/smtp-protocol/transaction/out-of-step",
                  test_transaction_out_of_step);
  return g_test_run();
}
