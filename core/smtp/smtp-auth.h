/* smtp-auth.h - pure parsers for SMTP AUTH (RFC 4954): the command's
 * argument and the base64 of every line of the exchange.
 *
 * Pure functions over a buffer, unit-tested (test-smtp-auth.c) and fuzzed
 * (fuzz/fuzz-auth.c).  What they return is owned by the caller; decoded
 * octets may hold a password, so callers wipe them (pst_sasl_bytes_wipe).
 */
#pragma once

#include <glib.h>

#include "smtp/smtp-reply.h"

G_BEGIN_DECLS

/* RFC 4954 section 4: a line of the exchange (and the AUTH command with
 * its initial response) may be up to 12288 octets with CRLF. */
#define PST_SMTP_MAX_AUTH_LINE 12288
/* RFC 4422 section 3.1: mechanism names are 1 to 20 characters. */
#define PST_SMTP_MAX_MECHANISM 20

/* "AUTH" + SP: the command whose line may be as long as an exchange line.
 * Looks only at the first 5 octets (case-insensitive). */
gboolean pst_smtp_line_is_auth(const char *line, gsize length);

/* Strict base64 (RFC 4648 section 4): only the alphabet, length a multiple
 * of 4, at most two '=' and only at the end.  "" decodes to nothing.
 * On success `*data_r` is a new buffer (NUL-terminated past `*length_r`,
 * free with g_free()); on failure nothing is allocated. */
gboolean pst_sasl_base64_decode(const char *text, gsize length, guint8 **data_r,
                                gsize *length_r);

/* The argument of AUTH: "MECHANISM [SP initial-response]". */
typedef struct {
  char mechanism[PST_SMTP_MAX_MECHANISM + 1]; /* upper case */
  gboolean has_response; /* an initial response was given */
  guint8 *response;      /* owned, nullable: decoded ("=" is empty) */
  gsize response_length;
} PstSmtpAuthArgs;

/* Parses `argument` (the command's argument, without "AUTH ").  Refuses
 * with 501 5.5.4 (syntax: no mechanism, a mechanism that is not 1-20 of
 * [A-Z0-9-_], more than one argument) or 501 5.5.2 (an initial response
 * that is not base64).  Returns NULL on success; `args_r` is then filled
 * and must be cleared with pst_smtp_auth_args_clear(). */
const PstSmtpReply *pst_smtp_auth_parse(const char *argument, gsize length,
                                        PstSmtpAuthArgs *args_r);
/* Wipes and frees the response.  Safe on a zeroed struct. */
void pst_smtp_auth_args_clear(PstSmtpAuthArgs *args);

/* What a line of the exchange (after a 334) says. */
typedef enum {
  PST_SMTP_AUTH_LINE_DATA = 0, /* base64, decoded into data_r */
  PST_SMTP_AUTH_LINE_ABORT,    /* "*": the client cancels (RFC 4954) */
  PST_SMTP_AUTH_LINE_BAD,      /* not base64 */
} PstSmtpAuthLine;

PstSmtpAuthLine pst_smtp_auth_line_parse(const char *line, gsize length,
                                         guint8 **data_r, gsize *length_r);

extern const PstSmtpReply pst_smtp_reply_auth_syntax; /* 501 5.5.4 */
extern const PstSmtpReply pst_smtp_reply_auth_base64; /* 501 5.5.2 */

G_END_DECLS
