/* lmtp-reply.h - the LMTP client's reply reader: pure, over the octets
 * received so far (lmtp.c feeds it the connection's input buffer; unit
 * tests in test-deliver-lmtp-reply.c, fuzzed by fuzz/fuzz-lmtp-reply.c).
 *
 * A reply is "DDD-text" lines up to one "DDD text" (or bare "DDD") line,
 * D a digit, the first 2 to 5; lines end with LF, a CR before it is
 * dropped.  The server is hostile: a line longer than
 * PST_LMTP_LINE_MAX_OCTETS, one that is not of that form or not UTF-8,
 * and a reply of PST_LMTP_REPLY_MAX_LINES lines or more end the session.
 * After DATA, LMTP gives one reply per accepted recipient: each call
 * reads one, so the caller calls again for the next.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PST_LMTP_LINE_MAX_OCTETS 4096
#define PST_LMTP_REPLY_MAX_LINES 100

typedef enum {
  PST_LMTP_REPLY_NEED_MORE = 0, /* no complete reply yet: read more */
  PST_LMTP_REPLY_DONE,          /* *reply_r: its last line, CR LF removed */
  PST_LMTP_REPLY_INVALID,       /* *problem_r: why the session ends */
} PstLmtpReplyStatus;

/* Takes the complete lines of one reply out of the front of `input`.
 * `lines` counts the continuation lines of the reply being read across
 * calls (0 before a new reply).  Every accepted line is appended to `all`
 * (nullable) with CR LF.  On DONE, *reply_r (owned) is the last line;
 * on INVALID, *problem_r (owned) says what was wrong. */
PstLmtpReplyStatus pst_lmtp_reply_read(GByteArray *input, guint *lines,
                                       GString *all, char **reply_r,
                                       char **problem_r);

G_END_DECLS
