/* session-mail.c - MAIL and RCPT: building the envelope.
 *
 * Each command is parsed (pure parsers in smtp/), checked against the
 * core's own rules (size, SMTPUTF8, the recipient limit, the relay rule),
 * then offered to the plugins' stage, and only then changes the envelope.
 * The relay rule of ARCHITECTURE.md section 4 lives here and no plugin can
 * switch it off: a recipient outside our domains is accepted only when a
 * plugin marked the session as allowed to relay.
 *
 * While a stage is pending, the parsed path and parameters wait in the
 * session (command_path, rcpt_params); the continuation uses them.
 */
#include <string.h>

#include "session/session-private.h"

static const PstSmtpReply reply_need_utf8 = {
    553, "5.6.7", "Error: SMTPUTF8 is required for this address"};

/* Logs a MAIL or RCPT parameter that was refused, with its keyword and
 * value (printable ASCII or UTF-8: the path parser checked them), so an
 * admin sees why a peer's mail bounced. */
static void session_log_param_refused(PstSession *session, const char *stage,
                                      const PstSmtpReply *refusal,
                                      const PstSmtpPath *path,
                                      const char *keyword) {
  const char *value = NULL;
  for (guint i = 0; path->params != NULL && i < path->params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(path->params, i);
    if (param->keyword == keyword)
      value = param->value;
  }
  g_autofree char *text =
      g_strdup_printf("%s (%s%s%s)", refusal->text, keyword,
                      value != NULL ? "=" : "", value != NULL ? value : "");
  pst_session_log_reject(session, stage, refusal->code, refusal->enhanced, text,
                         g_str_equal(stage, "RCPT") ? path->address : NULL,
                         "core");
}

static void session_clear_command(PstSession *session) {
  g_clear_pointer(&session->command_path, pst_smtp_path_free);
  pst_rcpt_params_clear(&session->rcpt_params);
}

/* --- MAIL -------------------------------------------------------------- */

/* The path of MAIL or RCPT, parsed as the session's listener wants it:
 * angle brackets required, unless strict_envelopes = false. */
static const PstSmtpReply *session_path_parse(PstSession *session,
                                              const PstSmtpCommand *command,
                                              PstSmtpPathKind kind,
                                              PstSmtpPath **path_r) {
  if (!session->listener->strict_envelopes)
    return pst_smtp_path_parse_lenient(
        command->argument, command->argument_length, kind, TRUE, path_r);
  return pst_smtp_path_parse(command->argument, command->argument_length, kind,
                             TRUE, path_r);
}

static void session_mail_done(PstSession *session,
                              const PstHookOutcome *outcome) {
  session_clear_command(session);
  if (pst_session_outcome_refuses(session, PST_STAGE_MAIL, outcome, NULL)) {
    pst_session_reset_transaction(session);
    return;
  }
  pst_session_apply_disposition(session, PST_STAGE_MAIL, outcome);
  pst_session_reply_success(session, outcome, 250, "2.1.0", "Ok");
  pst_session_set_state(session, PST_SESSION_STATE_MAIL);
}

/* Starts the transaction's envelope from a parsed MAIL command. */
static PstEnvelope *session_new_envelope(const PstSmtpPath *path,
                                         PstMailParams *params) {
  PstEnvelope *envelope = pst_envelope_new();
  envelope->sender = g_strdup(path->address);
  envelope->envid = g_steal_pointer(&params->envid);
  envelope->ret = params->ret;
  envelope->body = params->body;
  envelope->smtputf8 = params->smtputf8;
  envelope->size_declared = params->size;
  return envelope;
}

void pst_session_command_mail(PstSession *session,
                              const PstSmtpCommand *command) {
  PstSmtpPath *path = NULL;
  const PstSmtpReply *refusal =
      session_path_parse(session, command, PST_SMTP_PATH_MAIL, &path);
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    return;
  }
  PstMailParams params = {0};
  refusal = pst_smtp_mail_params_parse(
      path->params, session->config->server.max_message_size, &params);
  if (refusal == NULL && path->utf8 && !params.smtputf8)
    refusal = &reply_need_utf8;
  if (refusal != NULL) {
    if (params.bad_keyword != NULL)
      session_log_param_refused(session, "MAIL", refusal, path,
                                params.bad_keyword);
    pst_mail_params_clear(&params);
    pst_smtp_path_free(path);
    pst_session_reply_static(session, refusal);
    return;
  }

  pst_session_reset_transaction(session);
  session->envelope = session_new_envelope(path, &params);
  session->results.transaction = pst_results_new();
  session->results.recipients =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_results_free);
  pst_mail_params_clear(&params);
  session->command_path = path;

  PstHookArgs args = {.argument = session->envelope->sender,
                      .params = path->params};
  pst_session_run_stage(session, PST_STAGE_MAIL, &args, session_mail_done);
}

/* --- RCPT -------------------------------------------------------------- */

/* TRUE when the recipient's domain is one of ours.  RCPT TO:<postmaster>
 * always is (RFC 5321 section 4.5.1). */
static gboolean session_domain_is_local(PstSession *session,
                                        const char *domain) {
  return domain == NULL || pst_session_is_local_domain(session, domain);
}

static void session_rcpt_done(PstSession *session,
                              const PstHookOutcome *outcome) {
  guint index = session->results.recipients->len - 1;
  if (pst_session_outcome_refuses(session, PST_STAGE_RCPT, outcome,
                                  session->command_path->address)) {
    g_ptr_array_remove_index(session->results.recipients, index);
    session_clear_command(session);
    return;
  }
  if (outcome->verdict == PST_VERDICT_DISCARD) {
    g_ptr_array_remove_index(session->results.recipients, index);
    session->discarded_recipients++;
    g_message("%s: discard: RCPT <%s> plugin=%s", session->id,
              session->command_path->address,
              outcome->plugin != NULL ? outcome->plugin : "?");
  } else {
    pst_session_apply_disposition(session, PST_STAGE_RCPT, outcome);
    PstEnvelopeRecipient *recipient = pst_envelope_add_recipient(
        session->envelope, session->command_path->address);
    recipient->orcpt = g_steal_pointer(&session->rcpt_params.orcpt);
    recipient->notify = session->rcpt_params.notify;
  }
  session_clear_command(session);
  pst_session_reply_success(session, outcome, 250, "2.1.5", "Ok");
  pst_session_set_state(session, PST_SESSION_STATE_RCPT);
}

/* The core's own checks of a parsed recipient; NULL when it may go on. */
static gboolean session_rcpt_refused_by_core(PstSession *session,
                                             const PstSmtpPath *path) {
  PstEnvelope *envelope = session->envelope;
  if (envelope->recipients->len >= session->config->server.max_recipients) {
    pst_session_log_reject(session, "RCPT", 452, "4.5.3",
                           "Error: too many recipients", path->address,
                           "core");
    pst_session_reply(session, 452, "4.5.3", "Error: too many recipients");
    return TRUE;
  }
  if (!session->relay_allowed &&
      !session_domain_is_local(session, path->domain)) {
    g_autofree char *text =
        g_strdup_printf("<%s>: Relay access denied", path->address);
    pst_session_log_reject(session, "RCPT", 554, "5.7.1", text,
                           path->address, "core");
    pst_session_reply(session, 554, "5.7.1", "%s", text);
    return TRUE;
  }
  /* A local recipient must reach a mailbox in the tables of the session's
   * own generation (a reload does not change them mid-session). */
  g_autofree char *reason = NULL;
  if (session_domain_is_local(session, path->domain) &&
      !pst_generation_recipient_exists(session->generation, path->address,
                                       &reason)) {
    g_autofree char *text = g_strdup_printf("<%s>: %s", path->address, reason);
    pst_session_log_reject(session, "RCPT", 550, "5.1.1", text, path->address,
                           "core");
    pst_session_reply(session, 550, "5.1.1", "%s", text);
    return TRUE;
  }
  return FALSE;
}

void pst_session_command_rcpt(PstSession *session,
                              const PstSmtpCommand *command) {
  PstSmtpPath *path = NULL;
  const PstSmtpReply *refusal =
      session_path_parse(session, command, PST_SMTP_PATH_RCPT, &path);
  if (refusal == NULL && path->utf8 && !session->envelope->smtputf8)
    refusal = &reply_need_utf8;
  PstRcptParams params = {0};
  if (refusal == NULL)
    refusal = pst_smtp_rcpt_params_parse(path->params, &params);
  if (refusal != NULL) {
    if (params.bad_keyword != NULL)
      session_log_param_refused(session, "RCPT", refusal, path,
                                params.bad_keyword);
    pst_rcpt_params_clear(&params);
    g_clear_pointer(&path, pst_smtp_path_free);
    pst_session_reply_static(session, refusal);
    return;
  }
  if (session_rcpt_refused_by_core(session, path)) {
    pst_rcpt_params_clear(&params);
    pst_smtp_path_free(path);
    return;
  }

  session->command_path = path;
  session->rcpt_params = params;
  g_ptr_array_add(session->results.recipients, pst_results_new());
  PstHookArgs args = {.argument = path->address,
                      .params = path->params,
                      .recipient_index = session->results.recipients->len - 1};
  pst_session_run_stage(session, PST_STAGE_RCPT, &args, session_rcpt_done);
}
