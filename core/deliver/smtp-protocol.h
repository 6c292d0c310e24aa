/* smtp-protocol.h - the outbound SMTP client's protocol, without sockets.
 *
 * Pure functions and a state machine over buffers, unit-tested
 * (test-deliver-smtp-protocol.c) and fuzzed (fuzz/fuzz-smtp-reply.c):
 *
 *  - pst_smtp_response_parse(): one reply (single or multi-line) from the
 *    start of what the server sent.  The server is hostile: a line longer
 *    than PST_SMTP_RESPONSE_LINE_MAX, more than PST_SMTP_RESPONSE_LINES_MAX
 *    lines, a line without a valid code, or lines whose codes differ, is
 *    an error, which the client turns into a temporary failure.
 *  - pst_smtp_extensions_parse(): the EHLO keywords we use.
 *  - pst_smtp_encode_content(): the message as DATA sends it: CRLF line
 *    ends only (a bare CR or LF becomes CRLF: a message is never a
 *    smuggling vector outbound), dot-stuffed, ended by "."; the same
 *    piece by piece with a PstSmtpEncoder (delivery streams the content,
 *    delivery-content.c); a PstSmtpVerbatimScan tells content whose
 *    encoding is itself and the final dot, which needs no encoder.
 *  - PstSmtpTransaction: MAIL, RCPT..., DATA, content, final reply, with
 *    or without PIPELINING (RFC 2920), and the result of each recipient.
 *    The I/O layer (smtp-client.c) asks it what to send next and feeds it
 *    every reply in order; it never touches a socket.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PST_SMTP_RESPONSE_LINE_MAX                                             \
  2048 /* octets in one reply line, with CRLF */
#define PST_SMTP_RESPONSE_LINES_MAX 100 /* lines in one reply */
#define PST_SMTP_RESPONSE_TEXT_MAX 400  /* octets of text kept for logs, DSNs  \
                                         */

/* A reply is one allocation: the struct, then its line pointers, text
 * and lines (the client parses four per relayed message; five allocations
 * each cost more than the parsing).  Made only by the functions below. */
typedef struct {
  guint code;        /* 200..599 */
  char enhanced[16]; /* "5.1.1": the server's, or derived from the code */
  const char *text;  /* in the reply: every line's text after the enhanced
                      * code, joined by " ", printable ASCII only, at most
                      * PST_SMTP_RESPONSE_TEXT_MAX octets */
  const char *const *lines; /* in the reply, `line_count` of them: each
                             * line after "DDD-", raw but without CR/LF
                             * and NUL (for EHLO keywords) */
  guint line_count;
  gint shared;       /* holders besides the first (0 as made): a
                      * transaction keeps the replies it is given that
                      * way, not as copies; a reply is never changed once
                      * made */
} PstSmtpResponse;

/* Drops the caller's hold on `reply`; the last one frees it. */
void pst_smtp_response_free(PstSmtpResponse *reply);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSmtpResponse, pst_smtp_response_free)
/* "550 5.1.1 text" (a new string). */
char *pst_smtp_response_to_string(const PstSmtpResponse *reply);
/* A reply made by us (a connection failure, a local refusal): one line,
 * `text` (bounded to PST_SMTP_RESPONSE_TEXT_MAX octets). */
PstSmtpResponse *pst_smtp_response_new(guint code, const char *enhanced,
                                       const char *text);
/* A reply of `count` lines, its text and enhanced code as given (at most
 * 15 octets kept): copies of them all. */
PstSmtpResponse *pst_smtp_response_new_lines(guint code, const char *enhanced,
                                             const char *text,
                                             const char *const *lines,
                                             guint count);

typedef enum {
  PST_SMTP_PARSE_OK = 0,    /* *reply_r set, *consumed_r octets used */
  PST_SMTP_PARSE_NEED_MORE, /* no complete reply yet */
  PST_SMTP_PARSE_ERROR,     /* *problem_r says why (a new string) */
} PstSmtpParseStatus;

/* Parses the first reply in `data`.  Lines end with CRLF (a bare LF is
 * accepted as well).  Never reads beyond `length`. */
PstSmtpParseStatus pst_smtp_response_parse(const char *data, gsize length,
                                           gsize *consumed_r,
                                           PstSmtpResponse **reply_r,
                                           char **problem_r);

/* EHLO keywords (RFC 5321 section 4.1.1.1 and the extensions' RFCs). */
typedef enum {
  PST_SMTP_EXT_PIPELINING = 1 << 0,
  PST_SMTP_EXT_STARTTLS = 1 << 1,
  PST_SMTP_EXT_8BITMIME = 1 << 2,
  PST_SMTP_EXT_SMTPUTF8 = 1 << 3,
  PST_SMTP_EXT_SIZE = 1 << 4,
  PST_SMTP_EXT_ENHANCEDSTATUSCODES = 1 << 5,
  PST_SMTP_EXT_AUTH = 1 << 6,
  PST_SMTP_EXT_DSN = 1 << 7,
} PstSmtpExtension;

typedef struct {
  guint flags;    /* PstSmtpExtension bits */
  guint64 size;   /* SIZE's limit, 0 when none was given */
  char auth[256]; /* AUTH's mechanisms, space-separated, upper case */
} PstSmtpExtensions;

/* Reads the keywords of a 250 reply to EHLO (its first line, the
 * greeting, is skipped). */
void pst_smtp_extensions_parse(const PstSmtpResponse *ehlo,
                               PstSmtpExtensions *extensions);

/* TRUE when the header block of `data` (up to its blank line) has an
 * octet with the high bit set: with a non-ASCII envelope address, what
 * makes a message need SMTPUTF8 (RFC 6531/6532).  A message that came
 * with SMTPUTF8 but needs none goes to a peer without it as it is, as
 * Postfix does. */
gboolean pst_smtp_header_is_8bit(const guint8 *data, gsize length);

/* The same over content that comes in pieces: zero-initialized, fed each
 * piece in order; `eight_bit` is the answer once the content (or its
 * header block) was seen. */
typedef struct {
  guint64 seen;       /* octets looked at */
  guint8 prev, prev2; /* the last two of them */
  gboolean done;      /* the blank line or an 8-bit octet was seen */
  gboolean eight_bit;
} PstSmtpHeaderScan;
void pst_smtp_header_scan_add(PstSmtpHeaderScan *scan, const guint8 *data,
                              gsize length);

/* "MAIL FROM:<sender>" with SIZE=, BODY=8BITMIME (for 8-bit content) and
 * SMTPUTF8 (asked for) as far as the peer's keywords offer them; a new
 * string the caller may extend (DSN parameters).  For SMTP and LMTP. */
GString *pst_smtp_mail_command_new(const PstSmtpExtensions *extensions,
                                   const char *sender, gsize size,
                                   gboolean eight_bit, gboolean smtputf8);

/* Why a message cannot go to a peer with these keywords (SMTP's EHLO or
 * LMTP's LHLO): SMTPUTF8 needed and not offered (550 5.6.7), 8-bit
 * content without 8BITMIME (554 5.6.3), larger than its SIZE (552 5.3.4).
 * `peer` names it in the text: "host mx[192.0.2.1]:25", "the LMTP
 * server".  A new "CODE X.Y.Z text", or NULL when the message may go. */
char *pst_smtp_extensions_refusal(const PstSmtpExtensions *extensions,
                                  gboolean smtputf8, gboolean eight_bit,
                                  gsize size, const char *peer);

/* The content as sent after DATA's 354: CRLF only, dot-stuffed, ending
 * with "\r\n.\r\n" (a missing final line end is added). */
GBytes *pst_smtp_encode_content(const guint8 *data, gsize length);

/* The same encoding over content that comes in pieces, each piece's
 * encoding appended to `out` as it is added: a line, a CRLF or a leading
 * dot split between two pieces comes out as if the content were whole.
 * Zero-initialized; pst_smtp_encoder_finish() appends the end (a missing
 * final line end, then ".\r\n") and makes it ready for new content. */
typedef struct {
  gboolean mid_line; /* the octets added so far end inside a line */
  gboolean after_cr; /* ... with a CR, so an LF first is its pair */
} PstSmtpEncoder;
void pst_smtp_encoder_add(PstSmtpEncoder *encoder, const guint8 *data,
                          gsize length, GByteArray *out);
void pst_smtp_encoder_finish(PstSmtpEncoder *encoder, GByteArray *out);
/* TRUE when an octet of `data` has its high bit set. */
gboolean pst_smtp_content_is_8bit(const guint8 *data, gsize length);

/* Whether content, added in pieces, is already as DATA sends it: its
 * encoding is the content itself followed by ".\r\n" (CRLF line ends
 * only, no line that starts with a dot, and it is empty or ends with
 * CRLF), so it can go out without the encoder's pass and copy.
 * Zero-initialized; pst_smtp_verbatim_scan_result() after the last
 * piece. */
typedef struct {
  gboolean changed;  /* the encoder would change an octet seen so far */
  gboolean started;  /* an octet was seen */
  gboolean after_cr; /* the octets seen end with a CR */
  gboolean after_lf; /* ... with an LF (a line's start) */
} PstSmtpVerbatimScan;
void pst_smtp_verbatim_scan_add(PstSmtpVerbatimScan *scan, const guint8 *data,
                                gsize length);
gboolean pst_smtp_verbatim_scan_result(const PstSmtpVerbatimScan *scan);

/* --- The transaction ----------------------------------------------------- */

typedef enum {
  PST_SMTP_STAGE_NONE = 0, /* not answered yet */
  PST_SMTP_STAGE_MAIL,     /* MAIL FROM decided it */
  PST_SMTP_STAGE_RCPT,     /* RCPT TO */
  PST_SMTP_STAGE_DATA,     /* DATA */
  PST_SMTP_STAGE_DOT,      /* the end of the data */
  PST_SMTP_STAGE_SESSION,  /* the connection (lost, timeout, garbage) */
} PstSmtpStage;

/* "MAIL FROM", "RCPT TO", "DATA", "end of DATA", "connection". */
const char *pst_smtp_stage_to_string(PstSmtpStage stage);

typedef struct _PstSmtpTransaction PstSmtpTransaction;

/* `mail` is the whole MAIL command without CRLF, `rcpts` the RCPT
 * commands (NULL-terminated, copied). */
PstSmtpTransaction *pst_smtp_transaction_new(const char *mail,
                                             const char *const *rcpts,
                                             gboolean pipelining);
void pst_smtp_transaction_free(PstSmtpTransaction *transaction);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSmtpTransaction, pst_smtp_transaction_free)

typedef enum {
  PST_SMTP_SEND_NOTHING = 0, /* wait for a reply (or done) */
  PST_SMTP_SEND_COMMANDS,    /* send the CRLF-terminated commands given */
  PST_SMTP_SEND_CONTENT,     /* send the encoded content */
  PST_SMTP_SEND_EMPTY,       /* send ".\r\n" (354 without recipients) */
} PstSmtpSend;

/* What to send now; commands are appended to `out`.  Call it, send, and
 * read a reply while it is not done. */
PstSmtpSend pst_smtp_transaction_next(PstSmtpTransaction *transaction,
                                      GString *out);
/* The next reply, in the order of the commands sent. */
void pst_smtp_transaction_reply(PstSmtpTransaction *transaction,
                                const PstSmtpResponse *reply);
/* The connection failed: every recipient without a final reply gets
 * `reply` (stage SESSION); the transaction is done. */
void pst_smtp_transaction_fail(PstSmtpTransaction *transaction,
                               const PstSmtpResponse *reply);
gboolean pst_smtp_transaction_is_done(const PstSmtpTransaction *transaction);
/* Done without the final reply to the data: send RSET before reuse. */
gboolean
pst_smtp_transaction_needs_reset(const PstSmtpTransaction *transaction);
/* Recipient `index`'s final reply (NULL until the transaction is done)
 * and the command it answered. */
const PstSmtpResponse *
pst_smtp_transaction_get_result(const PstSmtpTransaction *transaction,
                                guint index, PstSmtpStage *stage_r);

G_END_DECLS
