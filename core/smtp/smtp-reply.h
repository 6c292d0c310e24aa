/* smtp-reply.h - a static SMTP reply: code, enhanced status and text.
 *
 * The parsers return a pointer to one of these constant replies when they
 * refuse input, so a caller can send it as is.  Never freed.  The replies
 * the parsers can return are declared below (texts as in
 * doc/smtp-replies.md), so a caller may compare a result by pointer
 * (`reply == &pst_smtp_reply_bad_address`) or send one itself.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint code;           /* 3 digits */
  const char *enhanced; /* "5.5.2", nullable */
  const char *text;     /* one line, no CRLF */
} PstSmtpReply;

/* Command lines (pst_smtp_command_parse). */
extern const PstSmtpReply pst_smtp_reply_line_too_long;         /* 500 5.5.2 */
extern const PstSmtpReply pst_smtp_reply_nul_in_command;        /* 500 5.5.2 */
extern const PstSmtpReply pst_smtp_reply_bare_cr_lf_in_command; /* 500 */
/* Also for a verb with non-ASCII octets; the session sends it for an
 * unknown verb too. */
extern const PstSmtpReply pst_smtp_reply_unrecognized; /* 500 5.5.2 */
/* Not returned by the parser; for the session, after PST_SMTP_VERB_NOT_SMTP. */
extern const PstSmtpReply pst_smtp_reply_non_smtp; /* 554 5.7.0 */

/* MAIL and RCPT (pst_smtp_path_parse, pst_smtp_*_params_parse). */
extern const PstSmtpReply pst_smtp_reply_mail_syntax;       /* 501 5.5.4 */
extern const PstSmtpReply pst_smtp_reply_rcpt_syntax;       /* 501 5.5.4 */
extern const PstSmtpReply pst_smtp_reply_bad_address;       /* 553 5.1.3 */
extern const PstSmtpReply pst_smtp_reply_address_too_long;  /* 501 5.1.3 */
extern const PstSmtpReply pst_smtp_reply_utf8_required;     /* 553 5.6.7 */
extern const PstSmtpReply pst_smtp_reply_unsupported_param; /* 555 5.5.4 */
extern const PstSmtpReply pst_smtp_reply_bad_param_value;   /* 501 5.5.4 */
extern const PstSmtpReply pst_smtp_reply_size_exceeded;     /* 552 5.3.4 */

/* DATA and BDAT (pst_data_fault_reply). */
extern const PstSmtpReply pst_smtp_reply_bare_cr_lf;         /* 550 5.6.0 */
extern const PstSmtpReply pst_smtp_reply_nul_in_message;     /* 550 5.6.0 */
extern const PstSmtpReply pst_smtp_reply_text_line_too_long; /* 500 5.5.2 */
extern const PstSmtpReply pst_smtp_reply_message_too_big;    /* 552 5.3.4 */

G_END_DECLS
