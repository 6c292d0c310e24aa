/* session-stage.c - running a plugin stage for the session, and turning
 * what the plugins decided into SMTP replies and log lines.
 *
 * pst_session_run_stage() is the one way the session asks the plugins: it
 * skips the dispatcher when the listener's chain has no hook for the stage
 * (the common case costs one lookup), otherwise it runs the chain and
 * hands the outcome to the continuation.  While a hook is pending the
 * session waits (no command is read) and holds a reference for the run.
 *
 * The standard replies for verdicts without a reply of their own are in
 * doc/smtp-replies.md; every refusal is logged in one greppable line.
 */
#include "session/session-private.h"

typedef struct {
  const char *log_name; /* the stage as logs name it */
  const char *reject_text;
} PstStageInfo;

static const PstStageInfo stage_info[PST_STAGE_COUNT] = {
    [PST_STAGE_CONNECT] = {"CONNECT", "Service unavailable"},
    [PST_STAGE_HELO] = {"HELO", "Error: HELO rejected by policy"},
    [PST_STAGE_AUTH] = {"AUTH", "Error: authentication rejected by policy"},
    [PST_STAGE_MAIL] = {"MAIL", "Error: sender rejected by policy"},
    [PST_STAGE_RCPT] = {"RCPT", "Error: recipient rejected by policy"},
    [PST_STAGE_DATA] = {"DATA", "Error: message rejected by policy"},
    [PST_STAGE_EOM] = {"END-OF-MESSAGE", "Error: message rejected by policy"},
    [PST_STAGE_QUEUED] = {"QUEUED", NULL},
    [PST_STAGE_DISCONNECT] = {"DISCONNECT", NULL},
};

static void session_stage_done(const PstHookOutcome *outcome,
                               gpointer user_data) {
  PstSession *session = user_data;
  gboolean asynchronous = session->run != NULL;
  session->run = NULL;
  session->waiting = PST_SESSION_WAIT_NONE;
  PstStageNextFunc next = session->stage_next;
  session->stage_next = NULL;
  if (session->fd >= 0)
    next(session, outcome);
  if (asynchronous)
    pst_session_resume(session);
  pst_session_unref(session);
}

void pst_session_run_stage(PstSession *session, PstStage stage,
                           const PstHookArgs *args, PstStageNextFunc next) {
  PstPluginSet *plugins = pst_generation_get_plugins(session->generation);
  if (plugins == NULL ||
      !pst_chain_has_hooks(plugins, session->listener->name, stage)) {
    PstHookOutcome outcome = {.verdict = PST_VERDICT_CONTINUE};
    next(session, &outcome);
    return;
  }
  session->stage = stage;
  session->stage_next = next;
  session->waiting = PST_SESSION_WAIT_HOOK;
  /* The session hands its results stores to the run. */
  PstHookArgs with_stores = *args;
  with_stores.stores = &session->results;
  with_stores.dns = pst_generation_get_dns(session->generation);
  PstChainRun *run =
      pst_chain_run(plugins, session->listener->name, stage, session,
                    &with_stores, session_stage_done, pst_session_ref(session));
  if (run != NULL) {
    session->run = run;
    pst_session_touch(session);
  }
}

static void session_event_done(const PstHookOutcome *outcome,
                               gpointer user_data) {
  pst_session_unref(user_data);
}

void pst_session_fire_event(PstSession *session, PstStage stage,
                            PstMessage *message) {
  PstPluginSet *plugins = pst_generation_get_plugins(session->generation);
  if (plugins == NULL ||
      !pst_chain_has_hooks(plugins, session->listener->name, stage))
    return;
  PstHookArgs args = {.message = message,
                      .stores = &session->results,
                      .dns = pst_generation_get_dns(session->generation)};
  /* Nobody waits for an event; the run keeps the session alive. */
  pst_chain_run(plugins, session->listener->name, stage, session, &args,
                session_event_done, pst_session_ref(session));
}

void pst_session_log_reject(PstSession *session, const char *stage,
                            guint code, const char *enhanced,
                            const char *text, const char *recipient,
                            const char *plugin) {
  g_autoptr(GString) line = g_string_sized_new(256);
  g_string_append_printf(line, "%s: reject: %s from [%s]:%u: %u %s%s%s",
                         session->id, stage, session->client_address,
                         session->client_port, code,
                         enhanced != NULL ? enhanced : "",
                         enhanced != NULL ? " " : "", text);
  if (session->envelope != NULL)
    g_string_append_printf(line, "; from=<%s>", session->envelope->sender);
  if (recipient != NULL)
    g_string_append_printf(line, "%cto=<%s>",
                           session->envelope != NULL ? ' ' : ';', recipient);
  g_string_append_printf(line, " proto=%s", pst_session_protocol(session));
  if (session->helo != NULL)
    g_string_append_printf(line, " helo=<%s>", session->helo);
  g_string_append_printf(line, " plugin=%s", plugin != NULL ? plugin : "?");
  g_message("%s", line->str);
}

gboolean pst_session_outcome_refuses(PstSession *session, PstStage stage,
                                     const PstHookOutcome *outcome,
                                     const char *recipient) {
  if (outcome->verdict != PST_VERDICT_REJECT &&
      outcome->verdict != PST_VERDICT_TEMPFAIL)
    return FALSE;
  guint code;
  const char *enhanced;
  const char *text;
  if (outcome->code != 0) {
    code = outcome->code;
    enhanced = outcome->enhanced;
    text = outcome->text != NULL ? outcome->text : stage_info[stage].reject_text;
  } else if (outcome->verdict == PST_VERDICT_REJECT) {
    code = 550;
    enhanced = "5.7.1";
    text = stage_info[stage].reject_text;
  } else if (outcome->timed_out) {
    code = 451;
    enhanced = "4.3.0";
    text = "Error: policy check unavailable, try again later";
  } else {
    code = 451;
    enhanced = "4.7.1";
    text = "Error: temporarily rejected by policy, try again later";
  }
  pst_session_log_reject(session, stage_info[stage].log_name, code, enhanced,
                         text, recipient, outcome->plugin);
  pst_session_reply(session, code, enhanced, "%s", text);
  if (outcome->disconnect)
    pst_session_close_after_reply(session);
  return TRUE;
}

void pst_session_reply_success(PstSession *session,
                               const PstHookOutcome *outcome, guint code,
                               const char *enhanced, const char *text) {
  if (outcome->verdict == PST_VERDICT_ACCEPT && outcome->code >= 200 &&
      outcome->code < 300)
    pst_session_reply(session, outcome->code, outcome->enhanced, "%s",
                      outcome->text != NULL ? outcome->text : text);
  else
    pst_session_reply(session, code, enhanced, "%s", text);
  if (outcome->disconnect)
    pst_session_close_after_reply(session);
}

void pst_session_apply_disposition(PstSession *session, PstStage stage,
                                   const PstHookOutcome *outcome) {
  PstDisposition disposition;
  if (outcome->verdict == PST_VERDICT_DISCARD)
    disposition = PST_DISPOSITION_DISCARD;
  else if (outcome->verdict == PST_VERDICT_QUARANTINE)
    disposition = PST_DISPOSITION_HOLD;
  else
    return;
  /* A QUARANTINE's reply text is the hold reason: the client gets the
   * stage's normal 2xx, the admin reads the reason in the log and in
   * `postilion queue show`. */
  const char *reason =
      disposition == PST_DISPOSITION_HOLD ? outcome->text : NULL;
  g_message("%s: %s: %s from [%s]:%u: plugin=%s%s%s", session->id,
            disposition == PST_DISPOSITION_DISCARD ? "discard" : "hold",
            stage_info[stage].log_name, session->client_address,
            session->client_port,
            outcome->plugin != NULL ? outcome->plugin : "?",
            reason != NULL ? " reason=" : "", reason != NULL ? reason : "");
  if (reason != NULL && session->envelope != NULL &&
      session->envelope->hold_reason == NULL)
    session->envelope->hold_reason = g_strdup(reason);
  /* DISCARD wins over HOLD: nothing is kept. */
  if (session->disposition != PST_DISPOSITION_DISCARD)
    session->disposition = disposition;
  if (stage == PST_STAGE_CONNECT || stage == PST_STAGE_HELO) {
    if (session->session_disposition != PST_DISPOSITION_DISCARD)
      session->session_disposition = disposition;
  }
}
