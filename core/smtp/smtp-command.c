/* smtp-command.c - splits one SMTP command line into verb and argument.
 *
 * Entry points: pst_smtp_command_parse(), pst_smtp_verb_to_string().
 * Called by the session for every line it reads in command state; the line
 * comes without its CRLF.  The parse never allocates: the argument points
 * into the caller's line.  What the argument means (paths, parameters,
 * hostnames) is left to the verb's own parser.
 *
 * Besides SMTP, it recognizes the two things that most often arrive on a
 * mail port by mistake or as an attack: an HTTP request line (a browser,
 * a cross-protocol request smuggled through a web client) and a TLS
 * ClientHello (a client that expected implicit TLS).  Both come back as
 * PST_SMTP_VERB_NOT_SMTP so the session can hang up instead of answering
 * each "line" with an error.
 */
#include <string.h>

#include "smtp/smtp-auth.h"
#include "smtp/smtp-parse.h"

typedef struct {
  const char *name;
  PstSmtpVerb verb;
} VerbName;

static const VerbName verb_names[] = {
    {"HELO", PST_SMTP_VERB_HELO},         {"EHLO", PST_SMTP_VERB_EHLO},
    {"MAIL", PST_SMTP_VERB_MAIL},         {"RCPT", PST_SMTP_VERB_RCPT},
    {"DATA", PST_SMTP_VERB_DATA},         {"BDAT", PST_SMTP_VERB_BDAT},
    {"RSET", PST_SMTP_VERB_RSET},         {"NOOP", PST_SMTP_VERB_NOOP},
    {"QUIT", PST_SMTP_VERB_QUIT},         {"VRFY", PST_SMTP_VERB_VRFY},
    {"EXPN", PST_SMTP_VERB_EXPN},         {"HELP", PST_SMTP_VERB_HELP},
    {"STARTTLS", PST_SMTP_VERB_STARTTLS}, {"AUTH", PST_SMTP_VERB_AUTH},
    {"XCLIENT", PST_SMTP_VERB_XCLIENT},
};

/* HTTP methods that a browser or proxy client sends first.  "PRI" is the
 * HTTP/2 connection preface ("PRI * HTTP/2.0"). */
static const char *const http_methods[] = {
    "GET", "POST", "CONNECT", "HEAD", "PUT", "OPTIONS", "DELETE", "PRI",
};

static gboolean word_equal(const char *word, gsize length, const char *name) {
  return strlen(name) == length && g_ascii_strncasecmp(word, name, length) == 0;
}

static PstSmtpVerb verb_lookup(const char *word, gsize length) {
  for (gsize i = 0; i < G_N_ELEMENTS(verb_names); i++)
    if (word_equal(word, length, verb_names[i].name))
      return verb_names[i].verb;
  for (gsize i = 0; i < G_N_ELEMENTS(http_methods); i++)
    if (word_equal(word, length, http_methods[i]))
      return PST_SMTP_VERB_NOT_SMTP;
  return PST_SMTP_VERB_UNKNOWN;
}

/* A TLS record header: handshake (0x16), version major 3.  No SMTP line
 * starts with a control octet, so two octets are enough. */
static gboolean is_tls_client_hello(const char *line, gsize length) {
  return length >= 2 && (guint8)line[0] == 0x16 && (guint8)line[1] == 0x03;
}

/* The first refusal that the octets of the line deserve, or NULL. */
static const PstSmtpReply *check_octets(const char *line, gsize length) {
  if (memchr(line, '\0', length) != NULL)
    return &pst_smtp_reply_nul_in_command;
  if (memchr(line, '\r', length) != NULL || memchr(line, '\n', length) != NULL)
    return &pst_smtp_reply_bare_cr_lf_in_command;
  return NULL;
}

const PstSmtpReply *pst_smtp_command_parse(const char *line, gsize length,
                                           PstSmtpCommand *command_r) {
  g_return_val_if_fail(line != NULL || length == 0,
                       &pst_smtp_reply_unrecognized);
  g_return_val_if_fail(command_r != NULL, &pst_smtp_reply_unrecognized);
  if (line == NULL)
    line = "";
  memset(command_r, 0, sizeof(*command_r));
  command_r->argument = line + length;

  /* Before the length and octet checks: a ClientHello is binary and long. */
  if (is_tls_client_hello(line, length)) {
    command_r->verb = PST_SMTP_VERB_NOT_SMTP;
    return NULL;
  }
  /* AUTH with an initial response may be longer (RFC 4954 section 4). */
  if (length > (pst_smtp_line_is_auth(line, length) ? PST_SMTP_MAX_AUTH_LINE
                                                     : PST_SMTP_MAX_COMMAND_LINE) -
                   2)
    return &pst_smtp_reply_line_too_long;
  const PstSmtpReply *refusal = check_octets(line, length);
  if (refusal != NULL)
    return refusal;

  /* The verb runs up to the first space. */
  const char *space = length > 0 ? memchr(line, ' ', length) : NULL;
  gsize verb_length = space != NULL ? (gsize)(space - line) : length;
  for (gsize i = 0; i < verb_length; i++)
    if ((guint8)line[i] >= 0x80)
      return &pst_smtp_reply_unrecognized;
  command_r->verb = verb_lookup(line, verb_length);

  /* The argument: after the separating spaces, trailing spaces removed. */
  gsize start = verb_length;
  while (start < length && line[start] == ' ')
    start++;
  gsize end = length;
  while (end > start && line[end - 1] == ' ')
    end--;
  command_r->argument = line + start;
  command_r->argument_length = end - start;
  return NULL;
}

const char *pst_smtp_verb_to_string(PstSmtpVerb verb) {
  if (verb == PST_SMTP_VERB_NOT_SMTP)
    return "NOT-SMTP";
  for (gsize i = 0; i < G_N_ELEMENTS(verb_names); i++)
    if (verb_names[i].verb == verb)
      return verb_names[i].name;
  return "UNKNOWN";
}
