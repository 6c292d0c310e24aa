/* milter-protocol.h - the Sendmail milter wire protocol (version 6, as
 * libmilter and Postfix speak it): pure encoders for what we send and a
 * pure, bounded decoder for what a milter sends back.
 *
 * A frame is a 32-bit big-endian length (counting the command octet), one
 * command octet and the payload.  milter_frame_parse() finds one frame in
 * a buffer without trusting the length beyond `max_payload`;
 * milter_reply_decode() and milter_negotiation_decode() turn a frame into
 * a typed reply, checking every string for its NUL and every code for its
 * class.  None of these functions does I/O; they are unit tested
 * (test-milter-protocol.c) and fuzzed (fuzz/fuzz-milter-reply.c).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MILTER_PROTOCOL_VERSION 6
/* libmilter's MILTER_CHUNK_SIZE: the largest body piece it expects. */
#define MILTER_BODY_CHUNK 65535

/* Commands (MTA to milter). */
enum {
  MILTER_CMD_ABORT = 'A',
  MILTER_CMD_BODY = 'B',
  MILTER_CMD_CONNECT = 'C',
  MILTER_CMD_MACRO = 'D',
  MILTER_CMD_BODYEOB = 'E',
  MILTER_CMD_HELO = 'H',
  MILTER_CMD_HEADER = 'L',
  MILTER_CMD_MAIL = 'M',
  MILTER_CMD_EOH = 'N',
  MILTER_CMD_OPTNEG = 'O',
  MILTER_CMD_QUIT = 'Q',
  MILTER_CMD_RCPT = 'R',
  MILTER_CMD_DATA = 'T',
};

/* Actions a milter may take at end of message (SMFIF_*). */
enum {
  MILTER_ACTION_ADD_HEADERS = 0x01,
  MILTER_ACTION_CHANGE_BODY = 0x02,
  MILTER_ACTION_ADD_RCPT = 0x04,
  MILTER_ACTION_DELETE_RCPT = 0x08,
  MILTER_ACTION_CHANGE_HEADERS = 0x10,
  MILTER_ACTION_QUARANTINE = 0x20,
  MILTER_ACTION_CHANGE_FROM = 0x40,
  MILTER_ACTION_ADD_RCPT_PAR = 0x80,
  MILTER_ACTION_SET_SYMLIST = 0x100,
  MILTER_ACTIONS_ALL = 0x1ff,
};

/* Protocol steps (SMFIP_*): stages a milter skips, replies it will not
 * send. */
enum {
  MILTER_STEP_NO_CONNECT = 0x1,
  MILTER_STEP_NO_HELO = 0x2,
  MILTER_STEP_NO_MAIL = 0x4,
  MILTER_STEP_NO_RCPT = 0x8,
  MILTER_STEP_NO_BODY = 0x10,
  MILTER_STEP_NO_HEADERS = 0x20,
  MILTER_STEP_NO_EOH = 0x40,
  MILTER_STEP_NR_HEADER = 0x80,
  MILTER_STEP_NO_UNKNOWN = 0x100,
  MILTER_STEP_NO_DATA = 0x200,
  MILTER_STEP_SKIP = 0x400,
  MILTER_STEP_RCPT_REJ = 0x800,
  MILTER_STEP_NR_CONNECT = 0x1000,
  MILTER_STEP_NR_HELO = 0x2000,
  MILTER_STEP_NR_MAIL = 0x4000,
  MILTER_STEP_NR_RCPT = 0x8000,
  MILTER_STEP_NR_DATA = 0x10000,
  MILTER_STEP_NR_UNKNOWN = 0x20000,
  MILTER_STEP_NR_EOH = 0x40000,
  MILTER_STEP_NR_BODY = 0x80000,
  MILTER_STEP_HEADER_LEADING_SPACE = 0x100000,
  /* What we offer: everything but RCPT_REJ (the core never shows a
   * plugin a recipient another one refused). */
  MILTER_STEPS_OFFERED = 0x1ff7ff,
};

/* The macro stages of SMFIR_SETSYMLIST (SMFIM_*), which index the lists. */
typedef enum {
  MILTER_MACROS_CONNECT = 0,
  MILTER_MACROS_HELO,
  MILTER_MACROS_MAIL,
  MILTER_MACROS_RCPT,
  MILTER_MACROS_DATA,
  MILTER_MACROS_EOM,
  MILTER_MACROS_EOH,
  MILTER_MACROS_COUNT
} MilterMacroStage;

/* One frame found in a buffer; `payload` points into that buffer. */
typedef struct {
  char command;
  const guint8 *payload;
  gsize length;
  gsize consumed; /* octets of the buffer the frame took */
} MilterFrame;

typedef enum {
  MILTER_FRAME_INCOMPLETE, /* need more octets */
  MILTER_FRAME_OK,
  MILTER_FRAME_ERROR, /* length 0 or over the bound: the stream is garbage */
} MilterFrameStatus;

/* Finds the frame at the start of `data`.  A payload over `max_payload`
 * octets is an error as soon as its length is seen. */
MilterFrameStatus milter_frame_parse(const guint8 *data, gsize length,
                                     gsize max_payload, MilterFrame *frame,
                                     GError **error);

typedef enum {
  MILTER_REPLY_ACCEPT,        /* 'a' */
  MILTER_REPLY_CONTINUE,      /* 'c' */
  MILTER_REPLY_DISCARD,       /* 'd' */
  MILTER_REPLY_REJECT,        /* 'r' */
  MILTER_REPLY_TEMPFAIL,      /* 't' */
  MILTER_REPLY_CODE,          /* 'y': code, enhanced, text */
  MILTER_REPLY_SKIP,          /* 's' */
  MILTER_REPLY_PROGRESS,      /* 'p' */
  MILTER_REPLY_SHUTDOWN,      /* '4' (SMFIR_SHUTDOWN): like tempfail */
  MILTER_REPLY_CONN_FAIL,     /* 'f' (SMFIR_CONN_FAIL): like tempfail */
  MILTER_REPLY_ADD_HEADER,    /* 'h': name, value */
  MILTER_REPLY_INSERT_HEADER, /* 'i': index, name, value */
  MILTER_REPLY_CHANGE_HEADER, /* 'm': index, name, value ("" deletes) */
  MILTER_REPLY_ADD_RCPT,      /* '+' and '2': name (address), value (args) */
  MILTER_REPLY_DELETE_RCPT,   /* '-': name (address) */
  MILTER_REPLY_CHANGE_FROM,   /* 'e': name (address), value (args) */
  MILTER_REPLY_REPLACE_BODY,  /* 'b': body (a piece) */
  MILTER_REPLY_QUARANTINE,    /* 'q': text (the reason) */
} MilterReplyType;

typedef struct {
  MilterReplyType type;
  guint32 index; /* INSERT_HEADER: position; CHANGE_HEADER: occurrence (1..) */
  char *name;    /* owned, nullable */
  char *value;   /* owned, nullable */
  guint code;    /* CODE: 4xx or 5xx */
  char *enhanced; /* owned, nullable: CODE's "x.y.z", class matching code */
  char *text;     /* owned, nullable: CODE's text, QUARANTINE's reason */
  GBytes *body;   /* owned, nullable: REPLACE_BODY's piece */
} MilterReply;

void milter_reply_clear(MilterReply *reply);
/* Decodes a frame a milter sent after a command.  Unknown commands,
 * missing NULs, extra octets, bad reply codes fail with a message that an
 * admin can read in the log. */
gboolean milter_reply_decode(const MilterFrame *frame, MilterReply *reply,
                             GError **error);
/* A reply text "550 5.7.1 text" (lines of a multi-line one joined by
 * CRLF): each line must start with the same 4xx or 5xx code. */
gboolean milter_reply_code_parse(const char *line, guint *code_r,
                                 char **enhanced_r, char **text_r,
                                 GError **error);

/* The milter's answer to option negotiation. */
typedef struct {
  guint32 version;
  guint32 actions;
  guint32 steps;
  /* Macro names per stage the milter asked for (SETSYMLIST), or NULL. */
  char *macros[MILTER_MACROS_COUNT]; /* owned, nullable */
} MilterNegotiation;

void milter_negotiation_clear(MilterNegotiation *negotiation);
/* Decodes an 'O' frame and checks it against what we offered: version 2
 * to 6, only actions in `actions_offered`, only steps in `steps_offered`.
 * A refusal names what the milter asked for. */
gboolean milter_negotiation_decode(const MilterFrame *frame,
                                   guint32 actions_offered,
                                   guint32 steps_offered,
                                   MilterNegotiation *negotiation,
                                   GError **error);

/* --- Encoding: each appends one frame to `out` ---------------------- */

/* The octets before a frame's payload: its length (4, network order, the
 * command included) and the command. */
#define MILTER_FRAME_HEAD 5
void milter_frame_head(guint8 head[MILTER_FRAME_HEAD], char command,
                       gsize length);
void milter_encode_frame(GByteArray *out, char command, const void *payload,
                         gsize length);
void milter_encode_negotiate(GByteArray *out, guint32 actions, guint32 steps);
/* `family` is '4', '6', 'L' (unix socket) or 'U' (unknown). */
void milter_encode_connect(GByteArray *out, const char *hostname, char family,
                           guint16 port, const char *address);
/* HELO, MAIL, RCPT: NUL-terminated strings in a row. */
void milter_encode_strings(GByteArray *out, char command,
                           const char *const *strings);
void milter_encode_header(GByteArray *out, const char *name,
                          const char *value);
/* A macro frame for `command`: `pairs` is name, value, name, value ...,
 * NULL-terminated.  Nothing is appended when it is empty. */
void milter_encode_macros(GByteArray *out, char command,
                          const char *const *pairs);

/* --- Text conversions ---------------------------------------------- */

/* A header value as milters expect it: folds as "\n" + WSP (as Postfix
 * sends them), with one leading space when `leading_space`. */
char *milter_header_value_to_milter(const char *value, gboolean leading_space);
/* A header value from a milter, as the core takes it: every line break
 * (LF or CRLF) becomes CRLF, and a continuation line that does not start
 * with white space gets a tab; trailing line breaks are dropped; with
 * `leading_space` one leading space is removed. */
char *milter_header_value_from_milter(const char *value,
                                      gboolean leading_space);
/* Appends `data` to `out` with every bare LF turned into CRLF; `last_cr`
 * carries whether the previous piece ended in CR. */
void milter_body_append_crlf(GByteArray *out, const guint8 *data,
                             gsize length, gboolean *last_cr);

G_END_DECLS
