/* smtp-parse.h - pure parsers for what an SMTP client sends.
 *
 * Every function here is a pure function over a buffer: no I/O, no global
 * state, no allocation that outlives its result.  They are unit-tested
 * table by table and fuzzed (fuzz/).  Every refusal comes back as a
 * constant PstSmtpReply with the RFC 5321/3463 code to send.
 *
 *   pst_smtp_command_parse()   one command line -> verb + argument
 *   pst_smtp_path_parse()      "FROM:<a@b> SIZE=1" -> address + params
 *   pst_smtp_mail_params_parse / pst_smtp_rcpt_params_parse
 *                              ESMTP parameters -> typed values
 *   PstDataReader              DATA/BDAT bytes -> message bytes, with
 *                              the end-of-data and smuggling rules
 *   pst_header_parse()         message bytes -> header fields
 */
#pragma once

#include <glib.h>

#include "queue/envelope.h"
#include "smtp/smtp-reply.h"

G_BEGIN_DECLS

/* Limits from RFC 5321 section 4.5.3.1. */
#define PST_SMTP_MAX_COMMAND_LINE 512 /* octets, including CRLF */
#define PST_SMTP_MAX_TEXT_LINE 1000   /* octets, including CRLF */
#define PST_SMTP_MAX_LOCAL_PART 64
#define PST_SMTP_MAX_DOMAIN 255
#define PST_SMTP_MAX_PATH 256 /* including the angle brackets */

/* --- Command lines ------------------------------------------------------ */

typedef enum {
  PST_SMTP_VERB_UNKNOWN = 0,
  PST_SMTP_VERB_HELO,
  PST_SMTP_VERB_EHLO,
  PST_SMTP_VERB_MAIL,
  PST_SMTP_VERB_RCPT,
  PST_SMTP_VERB_DATA,
  PST_SMTP_VERB_BDAT,
  PST_SMTP_VERB_RSET,
  PST_SMTP_VERB_NOOP,
  PST_SMTP_VERB_QUIT,
  PST_SMTP_VERB_VRFY,
  PST_SMTP_VERB_EXPN,
  PST_SMTP_VERB_HELP,
  PST_SMTP_VERB_STARTTLS,
  PST_SMTP_VERB_AUTH,
  PST_SMTP_VERB_XCLIENT,
  /* Not SMTP: the first line of an HTTP request ("GET / HTTP/1.1",
   * "POST", "CONNECT", "HEAD", "PUT", "OPTIONS", "DELETE") or a TLS
   * ClientHello where a command was expected. */
  PST_SMTP_VERB_NOT_SMTP,
  PST_SMTP_VERB_COUNT
} PstSmtpVerb;

typedef struct {
  PstSmtpVerb verb;
  /* The argument: what follows the verb and its separating space(s), with
   * trailing spaces removed; "" when there is none.  Points into the line
   * passed to the parser (not NUL-terminated there, hence the length). */
  const char *argument;
  gsize argument_length;
} PstSmtpCommand;

/* Parses one command line `line` of `length` octets without its CRLF.
 * Verbs are case-insensitive; the verb ends at the first space (only SP
 * separates, as RFC 5321 says).  Refuses (returning the reply):
 *   - a NUL octet: 500 5.5.2 (pst_smtp_reply_nul_in_command)
 *   - a bare CR/LF inside the line: 500 5.5.2
 *     (pst_smtp_reply_bare_cr_lf_in_command)
 *   - a line longer than PST_SMTP_MAX_COMMAND_LINE - 2: 500 5.5.2 line too
 *     long (pst_smtp_reply_line_too_long)
 *   - non-ASCII octets in the verb: 500 5.5.2 command not recognized
 * An unknown verb is not a refusal: verb is PST_SMTP_VERB_UNKNOWN.  A line
 * starting with a TLS record header (0x16 0x03) is NOT_SMTP whatever its
 * length or content; an HTTP method as the verb (any case) is NOT_SMTP.
 * Never allocates.  Returns NULL on success. */
const PstSmtpReply *pst_smtp_command_parse(const char *line, gsize length,
                                           PstSmtpCommand *command_r);
/* The verb's name in upper case ("MAIL"), "UNKNOWN" or "NOT-SMTP". */
const char *pst_smtp_verb_to_string(PstSmtpVerb verb);

/* --- MAIL and RCPT ------------------------------------------------------ */

typedef struct {
  char *keyword; /* owned, upper case */
  char *value;   /* owned, nullable: NULL when the parameter has no '=' */
} PstEsmtpParam;

/* Frees a parameter (the free func of PstSmtpPath.params). */
void pst_esmtp_param_free(PstEsmtpParam *param);

typedef struct {
  char *address;    /* owned: "local@domain" as sent (quoted local parts keep
                     * their quotes), "" for the null path <>,
                     * "postmaster" (lower case, whatever case was sent)
                     * for RCPT TO:<postmaster> */
  char *local_part; /* owned: as sent, including quotes if quoted; "" for
                     * <>; "Postmaster" as sent for <Postmaster> */
  char *domain;     /* owned, nullable: NULL only for "" and "postmaster";
                     * an address literal keeps its brackets "[192.0.2.1]" */
  gboolean utf8;    /* the address contains non-ASCII (needs SMTPUTF8) */
  gboolean source_route; /* an A-d-l "@a,@b:" was present and dropped */
  GPtrArray *params;     /* owned, of PstEsmtpParam*, in order; never NULL
                          * (empty without parameters), frees its elements */
} PstSmtpPath;

void pst_smtp_path_free(PstSmtpPath *path);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSmtpPath, pst_smtp_path_free)

typedef enum {
  PST_SMTP_PATH_MAIL, /* "FROM:<reverse-path> [params]"; <> allowed */
  PST_SMTP_PATH_RCPT, /* "TO:<forward-path> [params]"; <postmaster> allowed */
} PstSmtpPathKind;

/* Parses the argument of MAIL or RCPT.  Accepts "FROM:" / "TO:" in any
 * case, with optional spaces after the colon (as common clients send);
 * requires the angle brackets; strips a source route; validates the
 * mailbox against RFC 5321 (dot-string or quoted-string local part, domain
 * or address literal, IPv4, "IPv6:" and General-address-literal checked)
 * and RFC 6531 (UTF-8 must be valid, without C0/C1 controls; a U-label's
 * A-label form must fit in 63 octets); enforces the length limits above;
 * splits the ESMTP parameters (keyword ["=" value], keyword
 * [A-Za-z0-9][A-Za-z0-9-]*, value printable ASCII without '=' or space,
 * or UTF-8 when allowed; duplicates refused).
 *
 * Non-ASCII is allowed when `allow_utf8` (the transaction is SMTPUTF8),
 * or for MAIL when this very argument carries the SMTPUTF8 parameter; so
 * the session may pass FALSE for MAIL and envelope->smtputf8 for RCPT.
 * Percent hacks ("a%b@c") and bang paths ("b!a@c") are valid local parts
 * and come back as sent: relay policy decides about them.
 *
 * Replies, in the order checked:
 *   501 5.5.4 Syntax: MAIL FROM:<address> (or RCPT TO:) for the FROM:/TO:
 *     part, missing '<' or '>', text glued after '>', bad parameters;
 *   501 5.1.3 address too long: path over 256 octets, local part over 64,
 *     domain over 255;
 *   553 5.1.3 bad address syntax (also: no '@', two '@', <> for RCPT,
 *     a domain with a trailing dot, invalid UTF-8);
 *   553 5.6.7 SMTPUTF8 required: a non-ASCII address not allowed.
 * Returns NULL on success and sets *path_r (NULL on a refusal). */
const PstSmtpReply *pst_smtp_path_parse(const char *argument, gsize length,
                                        PstSmtpPathKind kind,
                                        gboolean allow_utf8,
                                        PstSmtpPath **path_r);
/* The same, and a path without its angle brackets is taken too, up to the
 * first space ("FROM:scan@example.org SIZE=100"; not empty, no '<' or
 * '>' in it), as Postfix does unless strict_rfc821_envelopes: for a
 * listener with strict_envelopes = false.  The mailbox, the lengths and
 * the parameters are checked as above. */
const PstSmtpReply *pst_smtp_path_parse_lenient(const char *argument,
                                                gsize length,
                                                PstSmtpPathKind kind,
                                                gboolean allow_utf8,
                                                PstSmtpPath **path_r);

/* Typed MAIL parameters. */
typedef struct {
  guint64 size;      /* SIZE=, 0 when absent (G_MAXUINT64 when larger) */
  PstBodyType body;  /* BODY=7BIT|8BITMIME */
  gboolean smtputf8; /* SMTPUTF8 */
  PstDsnRet ret;     /* RET=FULL|HDRS */
  char *envid;       /* owned, nullable: ENVID=, xtext-decoded, printable
                      * ASCII, 1..100 octets */
  char *auth;        /* owned, nullable: AUTH=, xtext-decoded (RFC 4954):
                      * "<>" or a mailbox, UTF-8 without controls */
  /* Not owned, nullable: after a refusal, the keyword of the parameter at
   * fault (points into the params passed in), for logs. */
  const char *bad_keyword;
} PstMailParams;

/* Typed RCPT parameters. */
typedef struct {
  guint notify;            /* PstDsnNotify bits from NOTIFY=, 0 when absent */
  char *orcpt;             /* owned, nullable: ORCPT=addr-type;xtext, decoded to
                            * "rfc822;user@example.org" or "utf-8;..." (both
                            * UTF-8 without controls: an rfc822 xtext may
                            * encode UTF-8); the addr-type in lower case */
  const char *bad_keyword; /* not owned, nullable: as in PstMailParams */
} PstRcptParams;

void pst_mail_params_clear(PstMailParams *params);
void pst_rcpt_params_clear(PstRcptParams *params);

/* Interprets the parameters of a parsed MAIL path.  `out` is overwritten
 * (what it held is not freed); after a refusal it holds nothing to free.
 * Unknown keywords: 555 5.5.4 unsupported parameter.  A value of the wrong
 * form: 501 5.5.4 bad parameter value.  BODY=BINARYMIME is not offered:
 * 555 5.5.4.  SIZE over `max_size` (when not 0): 552 5.3.4.  SMTPUTF8 with
 * a value: 501 5.5.4.  The texts are generic (they do not name the
 * keyword); out->bad_keyword names it.  NULL on success. */
const PstSmtpReply *pst_smtp_mail_params_parse(const GPtrArray *params,
                                               guint64 max_size,
                                               PstMailParams *out);
/* Interprets the parameters of a parsed RCPT path: NOTIFY (NEVER alone,
 * or a comma list of SUCCESS, FAILURE, DELAY, each once), ORCPT (addr-type
 * "rfc822" or "utf-8", xtext/utf-8-addr-xtext decoded, at most 500 octets
 * as sent).  Unknown keywords: 555 5.5.4; bad values: 501 5.5.4; `out` as
 * for MAIL.  NULL on success. */
const PstSmtpReply *pst_smtp_rcpt_params_parse(const GPtrArray *params,
                                               PstRcptParams *out);

/* RFC 3461 xtext: decodes "+XX" hex escapes; FALSE for a malformed one,
 * one that decodes to NUL, or a character outside xchar.  Sets *decoded_r
 * (owned, NUL-terminated) on success, NULL otherwise. */
gboolean pst_xtext_decode(const char *text, gsize length, char **decoded_r);
/* Encodes for xtext (used when relaying ORCPT/ENVID). */
char *pst_xtext_encode(const char *text);
/* Encodes UTF-8 `text` as RFC 6533 utf-8-addr-xtext: ASCII only, with
 * "\x{HEX}" for non-ASCII characters and for '+', '=', '\', space and
 * controls (used when relaying a "utf-8" ORCPT, and in a delivery-status
 * field that must stay ASCII). */
char *pst_utf8_addr_xtext_encode(const char *text);
/* RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext: decodes "\x{HEX}" escapes
 * (1..6 hex digits, no surrogates, no NUL) and passes UTF-8 through; FALSE
 * for '+', '=', a malformed escape or invalid UTF-8. */
gboolean pst_utf8_addr_xtext_decode(const char *text, gsize length,
                                    char **decoded_r);

/* TRUE for a domain name of RFC 5321 (letters, digits, hyphens; no empty
 * label, no hyphen at either end of a label, labels up to 63 octets, 255
 * in all, no trailing dot) or, when `allow_utf8`, with U-labels (valid
 * UTF-8, no controls, at most 63 octets as an A-label).  Not an address
 * literal.  For HELO/EHLO arguments too. */
gboolean pst_smtp_domain_is_valid(const char *domain, gsize length,
                                  gboolean allow_utf8);
/* TRUE for an RFC 5321 address literal with its brackets: "[192.0.2.1]"
 * (no leading zeros), "[IPv6:2001:db8::1]", or a General-address-literal
 * "[tag:content]" (content without '@'). */
gboolean pst_smtp_address_literal_is_valid(const char *literal, gsize length);

/* --- DATA and BDAT ------------------------------------------------------ */

typedef enum {
  PST_DATA_READER_DOT,   /* DATA: dot-stuffed, ends with CRLF.CRLF */
  PST_DATA_READER_CHUNK, /* BDAT: raw octets, the caller counts the chunk */
} PstDataReaderMode;

typedef enum {
  PST_DATA_MORE = 0, /* all input consumed, more expected */
  PST_DATA_DONE,     /* DATA: CRLF.CRLF seen; input after it not consumed */
} PstDataStatus;

/* Sticky faults found in the message.  The reader keeps consuming up to the
 * end of data (so the session stays in sync with the client and a smuggled
 * second message is never parsed as commands), discards output after the
 * first fault, and the session refuses the message at the end. */
typedef enum {
  PST_DATA_FAULT_NONE = 0,
  PST_DATA_FAULT_BARE_LF = 1 << 0, /* LF not preceded by CR */
  PST_DATA_FAULT_BARE_CR = 1 << 1, /* CR not followed by LF */
  PST_DATA_FAULT_NUL = 1 << 2,     /* a NUL octet */
  PST_DATA_FAULT_LINE_TOO_LONG = 1
                                 << 3, /* > PST_SMTP_MAX_TEXT_LINE with CRLF */
  PST_DATA_FAULT_TOO_BIG = 1 << 4,     /* over max_size octets */
} PstDataFault;

typedef struct _PstDataReader PstDataReader;

/* `max_size`: octets of output after which PST_DATA_FAULT_TOO_BIG is set
 * (0 = no limit). */
PstDataReader *pst_data_reader_new(PstDataReaderMode mode, guint64 max_size);
void pst_data_reader_free(PstDataReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDataReader, pst_data_reader_free)

/* Feeds `length` octets.  Appends the message octets (dot-unstuffed, the
 * final ".\r\n" removed, the CRLF before it kept) to `out` (nullable: to
 * read and drop), unless a fault was seen.  A ".\r\n" first of all is the
 * empty message.  In DOT mode returns DONE at the end of data, with
 * `*consumed_r` telling how many input octets belong to the message (the
 * rest are the client's next, pipelined commands); later feeds consume
 * nothing.  In CHUNK mode always consumes everything and returns MORE; a
 * CR at the end of one chunk is resolved by the next chunk or by
 * pst_data_reader_finish(). */
PstDataStatus pst_data_reader_feed(PstDataReader *reader, const guint8 *data,
                                   gsize length, gsize *consumed_r,
                                   GByteArray *out);
/* Receives message octets from pst_data_reader_feed_to(): `data` points
 * into the input being fed (or to static memory for the CRLF that
 * pst_data_reader_finish_to() adds) and is valid only during the call. */
typedef void (*PstDataSinkFunc)(const guint8 *data, gsize length,
                                gpointer user_data);
/* pst_data_reader_feed(), handing the message octets to `sink` (nullable:
 * read and drop) as runs of the input instead of copying them: the same
 * octets in the same order, a run per stretch between dropped octets
 * (stuffed dots, the terminator).  For a caller that stores them anyway,
 * this saves a copy. */
PstDataStatus pst_data_reader_feed_to(PstDataReader *reader, const guint8 *data,
                                      gsize length, gsize *consumed_r,
                                      PstDataSinkFunc sink, gpointer user_data);
/* CHUNK mode, after the LAST chunk: checks for a dangling CR and that the
 * message ends with CRLF (appending one to `out` if the client's did not
 * end so, as RFC 3030 allows the sender to rely on; an empty message stays
 * empty).  `out` is nullable. */
void pst_data_reader_finish(PstDataReader *reader, GByteArray *out);
/* pst_data_reader_finish(), handing the added CRLF to `sink` (nullable). */
void pst_data_reader_finish_to(PstDataReader *reader, PstDataSinkFunc sink,
                               gpointer user_data);
/* The PstDataFault bits seen so far.  After a fault nothing more is
 * appended to `out`, and what was appended must be dropped. */
guint pst_data_reader_get_faults(PstDataReader *reader);
/* Message octets produced so far (including any discarded after a fault). */
guint64 pst_data_reader_get_size(PstDataReader *reader);
/* The reply for the most serious fault in `faults` (NULL when 0):
 *   bare LF/CR: 550 5.6.0 (SMTP smuggling protection, RFC 5321 2.3.8)
 *   NUL: 550 5.6.0; line too long: 500 5.5.2 (RFC 5321 4.5.3.1.6);
 *   too big: 552 5.3.4 */
const PstSmtpReply *pst_data_fault_reply(guint faults);

/* --- Header fields ------------------------------------------------------ */

/* One allocation: the struct, then its name and value (a message's fields
 * cost three allocations each before).  Made by pst_header_field_new(),
 * freed by pst_header_field_free() (g_free() does the same). */
typedef struct {
  char *name;  /* in the field: as sent (white space before the colon,
                * allowed by RFC 5322 obs-optional, is dropped) */
  char *value; /* in the field: after "name:" and one optional space,
                * folding kept (CRLF + WSP), final CRLF removed */
} PstHeaderField;

/* A field of the `name_length` octets at `name` and the `value_length`
 * at `value` (copied; no NUL needed after either). */
PstHeaderField *pst_header_field_new(const char *name, gsize name_length,
                                     const char *value, gsize value_length);
void pst_header_field_free(PstHeaderField *field);

/* --- Authentication-Results (auth-results.c) ---------------------------- */

/* The authserv-id of an Authentication-Results field's value (after the
 * colon), CFWS and comments skipped; NULL when there is none.  Free with
 * g_free(). */
char *pst_auth_results_authserv_id(const char *value);
/* TRUE when the field's authserv-id is `authserv_id`, case-insensitively. */
gboolean pst_auth_results_is_from(const char *value, const char *authserv_id);
/* The value of our field from `results` (an a{sv} of stored results; the
 * "auth.METHOD" entries are used): "ID;\r\n\tspf=pass smtp.mailfrom=...",
 * one folded line per method.  NULL when no entry is usable. */
char *pst_auth_results_format(const char *authserv_id, GVariant *results);
/* One stored "auth.METHOD" result, for pst_auth_results_format_methods(). */
typedef struct {
  const char *method; /* after "auth." */
  GVariant *result;   /* borrowed: an a{sv} or an aa{sv} */
} PstAuthResult;
/* pst_auth_results_format() of results already picked out: `methods` is
 * sorted in place (the field's order), nothing else is changed. */
char *pst_auth_results_format_methods(const char *authserv_id,
                                      PstAuthResult *methods, guint count);
/* TRUE when `value` is a resinfo's a{sv}: its first "result" entry holds
 * a string (what g_variant_lookup_value(value, "result", "s") finds),
 * read in place when the value is in normal form. */
gboolean pst_auth_results_value_has_result(GVariant *value);

/* Parses the header block at the start of a message (CRLF lines).  Fills
 * `fields` (of PstHeaderField*, caller-owned, with free func) and sets
 * `*header_length_r` to the octets up to and including the blank line that
 * ends the header (or the whole input when there is no body and no blank
 * line).  Lines that are not fields (no colon, or a continuation with no
 * field before it) end the header there, as RFC 5322 readers do: the rest
 * is body; so is everything after an mbox "From " line (not a field).
 * Continuation lines (SP or HTAB first, obs-fold lines of white space
 * only too) extend the field before them.  A line holding a NUL ends the
 * header.  Never fails; at most `max_fields` fields are kept (parsing goes
 * on to find the header's end). */
void pst_header_parse(const guint8 *data, gsize length, guint max_fields,
                      GPtrArray *fields, gsize *header_length_r);
/* TRUE when `name` is a valid field name (printable ASCII 33..126 except
 * ':', 1..76 octets). */
gboolean pst_header_name_is_valid(const char *name);

G_END_DECLS
