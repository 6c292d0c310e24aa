/* session-commands.c - the SMTP command table and the commands that live
 * outside a mail transaction.
 *
 * Every verb has one row: {verb, flags, check, proceed}.  `check` is pure:
 * it looks at the session's state and returns the reply that refuses the
 * command out of sequence, or NULL.  `proceed` acts: it parses the
 * argument, runs the plugins' stage between parsing and effect, and
 * replies.  The table is the one place that says which command is allowed
 * when (RFC 5321 section 4.1.4 and the ESMTP extensions).
 *
 * Called from session.c for each complete command line.
 */
#include <string.h>

#include "session/session-private.h"

typedef const PstSmtpReply *(*PstCommandCheck)(PstSession *session);
typedef void (*PstCommandProceed)(PstSession *session,
                                  const PstSmtpCommand *command);

typedef struct {
  PstSmtpVerb verb;
  PstCommandCheck check;     /* nullable: allowed in every state */
  PstCommandProceed proceed;
} PstCommandSpec;

/* Shared with the session's other files (session-private.h). */
const PstSmtpReply pst_session_reply_need_helo = {
    503, "5.5.1", "Error: send HELO/EHLO first"};
const PstSmtpReply pst_session_reply_need_mail = {503, "5.5.1",
                                                  "Error: need MAIL command"};
const PstSmtpReply pst_session_reply_not_offered = {
    502, "5.5.1", "Error: command not implemented"};
static const PstSmtpReply reply_nested_mail = {503, "5.5.1",
                                               "Error: nested MAIL command"};
static const PstSmtpReply reply_unknown = {500, "5.5.2",
                                           "Error: command not recognized"};
static const PstSmtpReply reply_no_service = {503, "5.5.1",
                                              "Error: no SMTP service here"};
static const PstSmtpReply reply_need_tls = {
    530, "5.7.0", "Must issue a STARTTLS command first"};
static const PstSmtpReply reply_need_auth = {530, "5.7.0",
                                             "Authentication required"};

/* --- Checks ------------------------------------------------------------ */

static const PstSmtpReply *check_mail(PstSession *session) {
  if (session->state == PST_SESSION_STATE_GREETED && !session->helo_optional)
    return &pst_session_reply_need_helo;
  if (session->envelope != NULL)
    return &reply_nested_mail;
  if (session->listener->require_tls && !session->tls)
    return &reply_need_tls;
  if (session->listener->require_auth && session->auth_user == NULL)
    return &reply_need_auth;
  return NULL;
}

static const PstSmtpReply reply_xclient_in_transaction = {
    503, "5.5.1", "Error: MAIL transaction in progress"};

/* XCLIENT from a host not in xclient_hosts is an unknown command. */
static const PstSmtpReply *check_xclient(PstSession *session) {
  if (!session->xclient_allowed)
    return &reply_unknown;
  if (session->envelope != NULL)
    return &reply_xclient_in_transaction;
  return NULL;
}

static const PstSmtpReply *check_rcpt(PstSession *session) {
  if (session->envelope == NULL)
    return &pst_session_reply_need_mail;
  return NULL;
}

/* --- Greeting ---------------------------------------------------------- */

static void session_connect_done(PstSession *session,
                                 const PstHookOutcome *outcome) {
  const char *host = session->config->server.hostname;
  if (outcome->verdict == PST_VERDICT_TEMPFAIL) {
    if (outcome->code != 0)
      pst_session_outcome_refuses(session, PST_STAGE_CONNECT, outcome, NULL);
    else {
      pst_session_log_reject(session, "CONNECT", 421, "4.7.1",
                             "Service temporarily unavailable", NULL,
                             outcome->plugin);
      pst_session_reply(session, 421, "4.7.1",
                        "%s Service temporarily unavailable", host);
    }
    pst_session_close_after_reply(session);
    return;
  }
  if (outcome->verdict == PST_VERDICT_REJECT) {
    if (outcome->code != 0)
      pst_session_outcome_refuses(session, PST_STAGE_CONNECT, outcome, NULL);
    else {
      pst_session_log_reject(session, "CONNECT", 554, "5.7.1",
                             "Service unavailable", NULL, outcome->plugin);
      pst_session_reply(session, 554, "5.7.1", "%s Service unavailable",
                        host);
    }
    if (outcome->disconnect)
      pst_session_close_after_reply(session);
    else
      pst_session_set_state(session, PST_SESSION_STATE_REFUSED);
    return;
  }
  pst_session_apply_disposition(session, PST_STAGE_CONNECT, outcome);
  /* The banner carries no enhanced code (RFC 2034 applies after EHLO). */
  g_autofree char *banner =
      g_strconcat(host, " ", session->config->server.banner, NULL);
  pst_session_reply_line(session, 220, TRUE, banner);
  /* Only XCLIENT HELO= can name a HELO before the banner: it counts as
   * the client's HELO, as in Postfix. */
  pst_session_set_state(session, session->helo != NULL
                                     ? PST_SESSION_STATE_READY
                                     : PST_SESSION_STATE_GREETED);
  if (outcome->disconnect)
    pst_session_close_after_reply(session);
}

void pst_session_start_connect(PstSession *session) {
  PstHookArgs args = {0};
  pst_session_run_stage(session, PST_STAGE_CONNECT, &args,
                        session_connect_done);
}

/* --- HELO and EHLO ----------------------------------------------------- */

static void session_send_ehlo(PstSession *session) {
  const PstServerConfig *server = &session->config->server;
  char size_line[40];
  g_snprintf(size_line, sizeof size_line, "SIZE %" G_GUINT64_FORMAT,
             server->max_message_size);
  const char *const extensions[] = {
      "PIPELINING", size_line,   "8BITMIME", "SMTPUTF8",
      "ENHANCEDSTATUSCODES",     "DSN",      "CHUNKING",
  };
  pst_session_reply_line(session, 250, FALSE, server->hostname);
  /* AUTH only with a SASL plugin and usable mechanisms (session-auth.c). */
  g_autofree char *auth = pst_session_auth_ehlo_keyword(session);
  if (auth != NULL)
    pst_session_reply_line(session, 250, FALSE, auth);
  /* Only the hosts that may use it learn of XCLIENT. */
  if (session->xclient_allowed)
    pst_session_reply_line(session, 250, FALSE,
                           "XCLIENT NAME ADDR PORT PROTO HELO LOGIN "
                           "DESTADDR DESTPORT");
  if (pst_session_offers_starttls(session))
    pst_session_reply_line(session, 250, FALSE, "STARTTLS");
  for (gsize i = 0; i < G_N_ELEMENTS(extensions); i++)
    pst_session_reply_line(session, 250, i + 1 == G_N_ELEMENTS(extensions),
                           extensions[i]);
}

static void session_helo_done(PstSession *session,
                              const PstHookOutcome *outcome) {
  if (pst_session_outcome_refuses(session, PST_STAGE_HELO, outcome, NULL))
    return;
  pst_session_apply_disposition(session, PST_STAGE_HELO, outcome);
  if (session->esmtp)
    session_send_ehlo(session);
  else
    pst_session_reply_line(session, 250, TRUE,
                           session->config->server.hostname);
  pst_session_set_state(session, PST_SESSION_STATE_READY);
}

static void proceed_helo(PstSession *session, const PstSmtpCommand *command) {
  gboolean esmtp = command->verb == PST_SMTP_VERB_EHLO;
  if (command->argument_length == 0) {
    pst_session_reply(session, 501, "5.5.4", "Syntax: %s hostname",
                      esmtp ? "EHLO" : "HELO");
    return;
  }
  /* HELO resets the transaction (RFC 5321 section 4.1.4). */
  pst_session_reset_transaction(session);
  g_free(session->helo);
  session->helo = g_strndup(command->argument, command->argument_length);
  session->esmtp = esmtp;
  PstHookArgs args = {.argument = session->helo};
  pst_session_run_stage(session, PST_STAGE_HELO, &args, session_helo_done);
}

/* --- Simple commands --------------------------------------------------- */

static void proceed_rset(PstSession *session, const PstSmtpCommand *command) {
  pst_session_reset_transaction(session);
  if (session->state != PST_SESSION_STATE_GREETED)
    pst_session_set_state(session, PST_SESSION_STATE_READY);
  pst_session_reply(session, 250, "2.0.0", "Ok");
}

static void proceed_noop(PstSession *session, const PstSmtpCommand *command) {
  pst_session_reply(session, 250, "2.0.0", "Ok");
}

static void proceed_quit(PstSession *session, const PstSmtpCommand *command) {
  pst_session_reply(session, 221, "2.0.0", "Bye");
  pst_session_close_after_reply(session);
}

static void proceed_disabled(PstSession *session,
                             const PstSmtpCommand *command) {
  pst_session_reply(session, 502, "5.5.1", "Error: command disabled");
}

/* The commands this session can use now: STARTTLS and AUTH as EHLO
 * would offer them. */
static void proceed_help(PstSession *session, const PstSmtpCommand *command) {
  g_autofree char *auth = pst_session_auth_ehlo_keyword(session);
  pst_session_reply(
      session, 214, "2.0.0",
      "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP%s%s",
      pst_session_offers_starttls(session) ? " STARTTLS" : "",
      auth != NULL ? " AUTH" : "");
}

static void proceed_unknown(PstSession *session,
                            const PstSmtpCommand *command) {
  pst_session_reply_static(session, &reply_unknown);
}

static void proceed_not_smtp(PstSession *session,
                             const PstSmtpCommand *command) {
  g_message("%s: non-SMTP command from [%s]:%u", session->id,
            session->client_address, session->client_port);
  pst_session_reply(session, 554, "5.7.0", "Error: non-SMTP command");
  pst_session_close_after_reply(session);
}

/* --- The table --------------------------------------------------------- */

static const PstCommandSpec command_table[PST_SMTP_VERB_COUNT] = {
    [PST_SMTP_VERB_UNKNOWN] = {PST_SMTP_VERB_UNKNOWN, NULL, proceed_unknown},
    [PST_SMTP_VERB_HELO] = {PST_SMTP_VERB_HELO, NULL, proceed_helo},
    [PST_SMTP_VERB_EHLO] = {PST_SMTP_VERB_EHLO, NULL, proceed_helo},
    [PST_SMTP_VERB_MAIL] = {PST_SMTP_VERB_MAIL, check_mail,
                            pst_session_command_mail},
    [PST_SMTP_VERB_RCPT] = {PST_SMTP_VERB_RCPT, check_rcpt,
                            pst_session_command_rcpt},
    [PST_SMTP_VERB_DATA] = {PST_SMTP_VERB_DATA, NULL,
                            pst_session_command_data},
    [PST_SMTP_VERB_BDAT] = {PST_SMTP_VERB_BDAT, NULL,
                            pst_session_command_bdat},
    [PST_SMTP_VERB_RSET] = {PST_SMTP_VERB_RSET, NULL, proceed_rset},
    [PST_SMTP_VERB_NOOP] = {PST_SMTP_VERB_NOOP, NULL, proceed_noop},
    [PST_SMTP_VERB_QUIT] = {PST_SMTP_VERB_QUIT, NULL, proceed_quit},
    [PST_SMTP_VERB_VRFY] = {PST_SMTP_VERB_VRFY, NULL, proceed_disabled},
    [PST_SMTP_VERB_EXPN] = {PST_SMTP_VERB_EXPN, NULL, proceed_disabled},
    [PST_SMTP_VERB_HELP] = {PST_SMTP_VERB_HELP, NULL, proceed_help},
    [PST_SMTP_VERB_STARTTLS] = {PST_SMTP_VERB_STARTTLS,
                                pst_session_check_starttls,
                                pst_session_command_starttls},
    [PST_SMTP_VERB_AUTH] = {PST_SMTP_VERB_AUTH, pst_session_check_auth,
                            pst_session_command_auth},
    /* XCLIENT is refused like any unknown command unless the client is
     * one of the configured xclient hosts. */
    [PST_SMTP_VERB_XCLIENT] = {PST_SMTP_VERB_XCLIENT, check_xclient,
                               pst_session_command_xclient},
    [PST_SMTP_VERB_NOT_SMTP] = {PST_SMTP_VERB_NOT_SMTP, NULL,
                                proceed_not_smtp},
};

void pst_session_dispatch_line(PstSession *session, const char *line,
                               gsize length) {
  PstSmtpCommand command;
  const PstSmtpReply *refusal = pst_smtp_command_parse(line, length, &command);
  pst_session_count_command(session, refusal != NULL ? PST_SMTP_VERB_UNKNOWN
                                                     : command.verb);
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    return;
  }

  if (session->state == PST_SESSION_STATE_REFUSED &&
      command.verb != PST_SMTP_VERB_QUIT) {
    pst_session_reply_static(session, &reply_no_service);
    return;
  }
  /* A stopping daemon serves no new transaction. */
  if (session->shutting_down && session->envelope == NULL &&
      command.verb != PST_SMTP_VERB_QUIT) {
    pst_session_abort(session);
    return;
  }

  const PstCommandSpec *spec = &command_table[command.verb];
  const PstSmtpReply *out_of_sequence =
      spec->check != NULL ? spec->check(session) : NULL;
  if (out_of_sequence != NULL) {
    pst_session_reply_static(session, out_of_sequence);
    return;
  }
  spec->proceed(session, &command);
}
