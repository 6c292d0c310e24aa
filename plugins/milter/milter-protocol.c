/* milter-protocol.c - encoding commands and decoding milter replies (see
 * milter-protocol.h).
 *
 * The decoder reads only inside the frame it is given: every string must
 * end with its NUL inside the payload, every fixed field must be there,
 * and nothing may follow the last field.  Reply codes must be 4xx or 5xx
 * (Postfix refuses the others too), with an enhanced code of the same
 * class when there is one.  Errors are G_IO_ERROR_INVALID_DATA.
 */
#include <string.h>

#include <gio/gio.h>

#include "milter-protocol.h"

/* --- Frames -------------------------------------------------------------- */

MilterFrameStatus milter_frame_parse(const guint8 *data, gsize length,
                                     gsize max_payload, MilterFrame *frame,
                                     GError **error) {
  if (length < 4)
    return MILTER_FRAME_INCOMPLETE;
  guint32 size = (guint32)data[0] << 24 | (guint32)data[1] << 16 |
                 (guint32)data[2] << 8 | data[3];
  if (size == 0 || size - 1 > max_payload) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "frame of %u octets (at most %" G_GSIZE_FORMAT " allowed)",
                size, max_payload + 1);
    return MILTER_FRAME_ERROR;
  }
  if (length - 4 < size)
    return MILTER_FRAME_INCOMPLETE;
  frame->command = (char)data[4];
  frame->payload = data + 5;
  frame->length = size - 1;
  frame->consumed = 4 + (gsize)size;
  return MILTER_FRAME_OK;
}

/* --- Decoding helpers ---------------------------------------------------- */

/* A cursor over a payload. */
typedef struct {
  const guint8 *data;
  gsize length;
  gsize offset;
} Cursor;

static gboolean cursor_string(Cursor *cursor, char **string_r, GError **error) {
  const guint8 *start = cursor->data + cursor->offset;
  gsize left = cursor->length - cursor->offset;
  const guint8 *nul = left > 0 ? memchr(start, '\0', left) : NULL;
  if (nul == NULL) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "string without its NUL");
    return FALSE;
  }
  *string_r = g_strndup((const char *)start, nul - start);
  cursor->offset += (gsize)(nul - start) + 1;
  return TRUE;
}

static gboolean cursor_uint32(Cursor *cursor, guint32 *value_r,
                              GError **error) {
  if (cursor->length - cursor->offset < 4) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "truncated 32-bit field");
    return FALSE;
  }
  const guint8 *p = cursor->data + cursor->offset;
  *value_r = (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 |
             p[3];
  cursor->offset += 4;
  return TRUE;
}

static gboolean cursor_end(const Cursor *cursor, GError **error) {
  if (cursor->offset == cursor->length)
    return TRUE;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "%" G_GSIZE_FORMAT " stray octets after the last field",
              cursor->length - cursor->offset);
  return FALSE;
}

/* --- Reply codes ----------------------------------------------------------- */

/* "x.y.z" with x the code's class, each part 1..3 digits. */
static gsize enhanced_length(const char *text, char class) {
  if (text[0] != class || text[1] != '.')
    return 0;
  const char *p = text + 2;
  for (int part = 0; part < 2; part++) {
    int digits = 0;
    while (g_ascii_isdigit(*p) && digits < 4) {
      p++;
      digits++;
    }
    if (digits == 0 || digits > 3 || *p != (part == 0 ? '.' : *p))
      return 0;
    if (part == 0)
      p++;
  }
  return *p == ' ' || *p == '\0' ? (gsize)(p - text) : 0;
}

/* One line "ddd[ -][x.y.z ]text"; appends the text to `text`. */
static gboolean reply_line_parse(const char *line, guint *code_r,
                                 char **enhanced_r, GString *text,
                                 GError **error) {
  if (!g_ascii_isdigit(line[0]) || !g_ascii_isdigit(line[1]) ||
      !g_ascii_isdigit(line[2]) || (line[0] != '4' && line[0] != '5') ||
      (line[3] != ' ' && line[3] != '-' && line[3] != '\0')) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "reply \"%.40s\" is not a 4xx or 5xx code", line);
    return FALSE;
  }
  guint code = (guint)g_ascii_strtoull(line, NULL, 10);
  if (*code_r != 0 && code != *code_r) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "multi-line reply mixes codes %u and %u", *code_r, code);
    return FALSE;
  }
  *code_r = code;
  const char *rest = line[3] != '\0' ? line + 4 : line + 3;
  gsize enhanced = enhanced_length(rest, line[0]);
  if (enhanced > 0) {
    if (*enhanced_r == NULL)
      *enhanced_r = g_strndup(rest, enhanced);
    rest += enhanced;
    while (*rest == ' ')
      rest++;
  }
  if (*rest != '\0') {
    if (text->len > 0)
      g_string_append_c(text, ' ');
    g_string_append(text, rest);
  }
  return TRUE;
}

gboolean milter_reply_code_parse(const char *line, guint *code_r,
                                 char **enhanced_r, char **text_r,
                                 GError **error) {
  g_auto(GStrv) lines = g_strsplit(line, "\n", 100);
  g_autoptr(GString) text = g_string_new(NULL);
  g_autofree char *enhanced = NULL;
  guint code = 0;
  for (guint i = 0; lines[i] != NULL; i++) {
    g_strchomp(lines[i]); /* the CR of CRLF, trailing blanks */
    if (lines[i][0] == '\0' && lines[i + 1] == NULL && i > 0)
      break;
    if (!reply_line_parse(lines[i], &code, &enhanced, text, error))
      return FALSE;
  }
  if (code == 0) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                        "empty reply code");
    return FALSE;
  }
  *code_r = code;
  *enhanced_r = g_steal_pointer(&enhanced);
  *text_r = text->len > 0 ? g_strdup(text->str) : NULL;
  return TRUE;
}

/* --- Replies --------------------------------------------------------------- */

void milter_reply_clear(MilterReply *reply) {
  g_clear_pointer(&reply->name, g_free);
  g_clear_pointer(&reply->value, g_free);
  g_clear_pointer(&reply->enhanced, g_free);
  g_clear_pointer(&reply->text, g_free);
  g_clear_pointer(&reply->body, g_bytes_unref);
}

/* The replies that are one octet and nothing else. */
static gboolean reply_simple(char command, MilterReplyType *type_r) {
  static const struct {
    char command;
    MilterReplyType type;
  } simple[] = {
      {'a', MILTER_REPLY_ACCEPT},   {'c', MILTER_REPLY_CONTINUE},
      {'d', MILTER_REPLY_DISCARD},  {'r', MILTER_REPLY_REJECT},
      {'t', MILTER_REPLY_TEMPFAIL}, {'s', MILTER_REPLY_SKIP},
      {'p', MILTER_REPLY_PROGRESS}, {'4', MILTER_REPLY_SHUTDOWN},
      {'f', MILTER_REPLY_CONN_FAIL},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(simple); i++) {
    if (simple[i].command == command) {
      *type_r = simple[i].type;
      return TRUE;
    }
  }
  return FALSE;
}

/* Decodes the fields of a reply that carries some; FALSE for an unknown
 * command. */
static gboolean reply_fields(char command, Cursor *cursor, MilterReply *reply,
                             GError **error) {
  switch (command) {
  case 'y': {
    g_autofree char *line = NULL;
    reply->type = MILTER_REPLY_CODE;
    return cursor_string(cursor, &line, error) &&
           milter_reply_code_parse(line, &reply->code, &reply->enhanced,
                                   &reply->text, error);
  }
  case 'h':
    reply->type = MILTER_REPLY_ADD_HEADER;
    return cursor_string(cursor, &reply->name, error) &&
           cursor_string(cursor, &reply->value, error);
  case 'i':
  case 'm':
    reply->type = command == 'i' ? MILTER_REPLY_INSERT_HEADER
                                 : MILTER_REPLY_CHANGE_HEADER;
    return cursor_uint32(cursor, &reply->index, error) &&
           cursor_string(cursor, &reply->name, error) &&
           cursor_string(cursor, &reply->value, error);
  case '+':
  case '-':
    reply->type =
        command == '+' ? MILTER_REPLY_ADD_RCPT : MILTER_REPLY_DELETE_RCPT;
    return cursor_string(cursor, &reply->name, error);
  case '2':
  case 'e':
    reply->type =
        command == '2' ? MILTER_REPLY_ADD_RCPT : MILTER_REPLY_CHANGE_FROM;
    /* The ESMTP arguments are optional. */
    return cursor_string(cursor, &reply->name, error) &&
           (cursor->offset == cursor->length ||
            cursor_string(cursor, &reply->value, error));
  case 'q':
    reply->type = MILTER_REPLY_QUARANTINE;
    return cursor_string(cursor, &reply->text, error);
  case 'b':
    reply->type = MILTER_REPLY_REPLACE_BODY;
    reply->body = g_bytes_new(cursor->data, cursor->length);
    cursor->offset = cursor->length;
    return TRUE;
  default:
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "unknown reply command 0x%02x", (guchar)command);
    return FALSE;
  }
}

gboolean milter_reply_decode(const MilterFrame *frame, MilterReply *reply,
                             GError **error) {
  memset(reply, 0, sizeof *reply);
  Cursor cursor = {frame->payload, frame->length, 0};
  if (reply_simple(frame->command, &reply->type))
    return cursor_end(&cursor, error);
  if (!reply_fields(frame->command, &cursor, reply, error) ||
      !cursor_end(&cursor, error)) {
    milter_reply_clear(reply);
    return FALSE;
  }
  return TRUE;
}

/* --- Negotiation ----------------------------------------------------------- */

void milter_negotiation_clear(MilterNegotiation *negotiation) {
  for (int i = 0; i < MILTER_MACROS_COUNT; i++)
    g_clear_pointer(&negotiation->macros[i], g_free);
}

/* The SETSYMLIST part: (stage, "names") pairs to the end. */
static gboolean negotiation_macros(Cursor *cursor,
                                   MilterNegotiation *negotiation,
                                   GError **error) {
  while (cursor->offset < cursor->length) {
    guint32 stage = 0;
    g_autofree char *names = NULL;
    if (!cursor_uint32(cursor, &stage, error) ||
        !cursor_string(cursor, &names, error))
      return FALSE;
    if (stage >= MILTER_MACROS_COUNT || negotiation->macros[stage] != NULL) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "macro list for stage %u is unknown or repeated", stage);
      return FALSE;
    }
    negotiation->macros[stage] = g_steal_pointer(&names);
  }
  return TRUE;
}

gboolean milter_negotiation_decode(const MilterFrame *frame,
                                   guint32 actions_offered,
                                   guint32 steps_offered,
                                   MilterNegotiation *negotiation,
                                   GError **error) {
  memset(negotiation, 0, sizeof *negotiation);
  Cursor cursor = {frame->payload, frame->length, 0};
  if (frame->command != MILTER_CMD_OPTNEG) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "answered option negotiation with command 0x%02x",
                (guchar)frame->command);
    return FALSE;
  }
  if (!cursor_uint32(&cursor, &negotiation->version, error) ||
      !cursor_uint32(&cursor, &negotiation->actions, error) ||
      !cursor_uint32(&cursor, &negotiation->steps, error))
    return FALSE;
  if (negotiation->version < 2 ||
      negotiation->version > MILTER_PROTOCOL_VERSION) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "speaks protocol version %u (2 to %d supported)",
                negotiation->version, MILTER_PROTOCOL_VERSION);
    return FALSE;
  }
  if ((negotiation->actions & ~actions_offered) != 0 ||
      (negotiation->steps & ~steps_offered) != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "asks for actions 0x%x and steps 0x%x; offered 0x%x and 0x%x",
                negotiation->actions, negotiation->steps, actions_offered,
                steps_offered);
    return FALSE;
  }
  if (!negotiation_macros(&cursor, negotiation, error)) {
    milter_negotiation_clear(negotiation);
    return FALSE;
  }
  return TRUE;
}

/* --- Encoding -------------------------------------------------------------- */

static void append_uint32(GByteArray *out, guint32 value) {
  guint8 octets[4] = {value >> 24, value >> 16, value >> 8, value};
  g_byte_array_append(out, octets, 4);
}

static void append_string(GByteArray *out, const char *string) {
  g_byte_array_append(out, (const guint8 *)string, strlen(string) + 1);
}

void milter_frame_head(guint8 head[MILTER_FRAME_HEAD], char command,
                       gsize length) {
  g_return_if_fail(length < G_MAXUINT32);
  guint32 value = GUINT32_TO_BE((guint32)length + 1);
  memcpy(head, &value, 4);
  head[4] = (guint8)command;
}

void milter_encode_frame(GByteArray *out, char command, const void *payload,
                         gsize length) {
  guint8 head[MILTER_FRAME_HEAD];
  milter_frame_head(head, command, length);
  g_byte_array_append(out, head, sizeof head);
  if (length > 0)
    g_byte_array_append(out, payload, length);
}

/* Starts a frame whose length is filled in by frame_end(). */
static gsize frame_begin(GByteArray *out, char command) {
  gsize start = out->len;
  append_uint32(out, 0);
  g_byte_array_append(out, (const guint8 *)&command, 1);
  return start;
}

static void frame_end(GByteArray *out, gsize start) {
  guint32 size = out->len - start - 4;
  guint8 *p = out->data + start;
  p[0] = size >> 24;
  p[1] = size >> 16;
  p[2] = size >> 8;
  p[3] = size;
}

void milter_encode_negotiate(GByteArray *out, guint32 actions, guint32 steps) {
  gsize start = frame_begin(out, MILTER_CMD_OPTNEG);
  append_uint32(out, MILTER_PROTOCOL_VERSION);
  append_uint32(out, actions);
  append_uint32(out, steps);
  frame_end(out, start);
}

void milter_encode_connect(GByteArray *out, const char *hostname, char family,
                           guint16 port, const char *address) {
  gsize start = frame_begin(out, MILTER_CMD_CONNECT);
  append_string(out, hostname);
  g_byte_array_append(out, (const guint8 *)&family, 1);
  if (family != 'U') {
    guint8 octets[2] = {port >> 8, port & 0xff};
    g_byte_array_append(out, octets, 2);
    append_string(out, address);
  }
  frame_end(out, start);
}

void milter_encode_strings(GByteArray *out, char command,
                           const char *const *strings) {
  gsize start = frame_begin(out, command);
  for (guint i = 0; strings[i] != NULL; i++)
    append_string(out, strings[i]);
  frame_end(out, start);
}

void milter_encode_header(GByteArray *out, const char *name,
                          const char *value) {
  const char *strings[] = {name, value, NULL};
  milter_encode_strings(out, MILTER_CMD_HEADER, strings);
}

void milter_encode_macros(GByteArray *out, char command,
                          const char *const *pairs) {
  if (pairs[0] == NULL)
    return;
  gsize start = frame_begin(out, MILTER_CMD_MACRO);
  g_byte_array_append(out, (const guint8 *)&command, 1);
  for (guint i = 0; pairs[i] != NULL; i++)
    append_string(out, pairs[i]);
  frame_end(out, start);
}

/* --- Text conversions ------------------------------------------------------ */

char *milter_header_value_to_milter(const char *value, gboolean leading_space) {
  GString *out = g_string_sized_new(strlen(value) + 2);
  if (leading_space)
    g_string_append_c(out, ' ');
  for (const char *p = value; *p != '\0'; p++) {
    if (p[0] == '\r' && p[1] == '\n')
      continue;
    g_string_append_c(out, *p);
  }
  return g_string_free(out, FALSE);
}

char *milter_header_value_from_milter(const char *value,
                                      gboolean leading_space) {
  if (leading_space && value[0] == ' ')
    value++;
  GString *out = g_string_sized_new(strlen(value) + 8);
  for (const char *p = value; *p != '\0'; p++) {
    if (*p != '\r' && *p != '\n') {
      g_string_append_c(out, *p);
      continue;
    }
    if (p[0] == '\r' && p[1] == '\n')
      p++;
    /* A break with nothing after it, or only more breaks, is dropped. */
    if (strspn(p + 1, "\r\n") == strlen(p + 1))
      break;
    g_string_append(out, "\r\n");
    if (p[1] != ' ' && p[1] != '\t')
      g_string_append_c(out, '\t');
  }
  return g_string_free(out, FALSE);
}

void milter_body_append_crlf(GByteArray *out, const guint8 *data,
                             gsize length, gboolean *last_cr) {
  static const guint8 crlf[2] = {'\r', '\n'};
  gsize start = 0;
  for (gsize i = 0; i < length; i++) {
    gboolean after_cr = i > 0 ? data[i - 1] == '\r' : *last_cr;
    if (data[i] == '\n' && !after_cr) {
      g_byte_array_append(out, data + start, i - start);
      g_byte_array_append(out, crlf, 2);
      start = i + 1;
    }
  }
  g_byte_array_append(out, data + start, length - start);
  if (length > 0)
    *last_cr = data[length - 1] == '\r';
}
