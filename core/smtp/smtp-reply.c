/* smtp-reply.c - the constant replies the SMTP parsers return.
 *
 * One definition per refusal, so every caller sends the same text and the
 * tests can compare by pointer.  The texts are those of doc/smtp-replies.md;
 * change both together.  Declared in smtp-reply.h; never freed.
 */
#include "smtp/smtp-reply.h"

const PstSmtpReply pst_smtp_reply_line_too_long = {500, "5.5.2",
                                                   "Error: line too long"};
const PstSmtpReply pst_smtp_reply_nul_in_command = {
    500, "5.5.2", "Error: NUL character in command"};
const PstSmtpReply pst_smtp_reply_bare_cr_lf_in_command = {
    500, "5.5.2", "Error: bare CR or LF in command"};
const PstSmtpReply pst_smtp_reply_unrecognized = {
    500, "5.5.2", "Error: command not recognized"};
const PstSmtpReply pst_smtp_reply_non_smtp = {554, "5.7.0",
                                              "Error: non-SMTP command"};

const PstSmtpReply pst_smtp_reply_mail_syntax = {501, "5.5.4",
                                                 "Syntax: MAIL FROM:<address>"};
const PstSmtpReply pst_smtp_reply_rcpt_syntax = {501, "5.5.4",
                                                 "Syntax: RCPT TO:<address>"};
const PstSmtpReply pst_smtp_reply_bad_address = {553, "5.1.3",
                                                 "Error: bad address syntax"};
const PstSmtpReply pst_smtp_reply_address_too_long = {
    501, "5.1.3", "Error: address too long"};
const PstSmtpReply pst_smtp_reply_utf8_required = {
    553, "5.6.7", "Error: SMTPUTF8 is required for this address"};
const PstSmtpReply pst_smtp_reply_unsupported_param = {
    555, "5.5.4", "Error: unsupported parameter"};
const PstSmtpReply pst_smtp_reply_bad_param_value = {
    501, "5.5.4", "Error: bad parameter value"};
const PstSmtpReply pst_smtp_reply_size_exceeded = {
    552, "5.3.4", "Error: message size exceeds fixed limit"};

const PstSmtpReply pst_smtp_reply_bare_cr_lf = {
    550, "5.6.0",
    "Error: bare CR or LF in message text (see RFC 5321 section 2.3.8)"};
const PstSmtpReply pst_smtp_reply_nul_in_message = {
    550, "5.6.0", "Error: NUL character in message text"};
const PstSmtpReply pst_smtp_reply_text_line_too_long = {
    500, "5.5.2", "Error: message line too long"};
const PstSmtpReply pst_smtp_reply_message_too_big = {
    552, "5.3.4", "Error: message file too big"};
