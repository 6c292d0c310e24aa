/* milter-run.c - one hook call asked of the session's milters in order.
 *
 * A run is the pending call of one stage.  For each peer in turn it sends
 * the stage's macros and command (CONNECT first connects and negotiates)
 * and, unless the milter negotiated not to answer that step (SMFIP_NR_*)
 * or to skip it (SMFIP_NO*), waits for the reply:
 *
 *   continue           next peer
 *   accept             the peer is done for the message (CONNECT, HELO:
 *                      for the session); next peer
 *   reject, tempfail,  the call's verdict, with the milter's reply or
 *   reply code         Postfix's standard one; nobody else is asked
 *   discard            the message is discarded at EOM (250, dropped)
 *   shutdown, garbage, the milter failed: its default_action
 *   timeout, EOF
 *
 * A failed milter is logged once, naming it, and keeps answering its
 * default_action (tempfail, reject) for the rest of the session, as in
 * Postfix; with accept it is left out.  The call's cancellable (client
 * gone, deadline) ends the run at once and closes the peer being asked.
 */
#include <string.h>

#include "milter-run.h"

/* Postfix's texts for a bare reject and tempfail. */
#define REJECT_TEXT "Command rejected"
#define TEMPFAIL_TEXT "Service unavailable - try again later"

typedef struct {
  MilterMacroStage macros;
  char command;
  guint32 skip;     /* SMFIP_NO* */
  guint32 no_reply; /* SMFIP_NR_* */
} StageInfo;

static const StageInfo stage_info[] = {
    [PST_STAGE_CONNECT] = {MILTER_MACROS_CONNECT, MILTER_CMD_CONNECT,
                           MILTER_STEP_NO_CONNECT, MILTER_STEP_NR_CONNECT},
    [PST_STAGE_HELO] = {MILTER_MACROS_HELO, MILTER_CMD_HELO,
                        MILTER_STEP_NO_HELO, MILTER_STEP_NR_HELO},
    [PST_STAGE_MAIL] = {MILTER_MACROS_MAIL, MILTER_CMD_MAIL,
                        MILTER_STEP_NO_MAIL, MILTER_STEP_NR_MAIL},
    [PST_STAGE_RCPT] = {MILTER_MACROS_RCPT, MILTER_CMD_RCPT,
                        MILTER_STEP_NO_RCPT, MILTER_STEP_NR_RCPT},
    [PST_STAGE_DATA] = {MILTER_MACROS_DATA, MILTER_CMD_DATA,
                        MILTER_STEP_NO_DATA, MILTER_STEP_NR_DATA},
};

static void run_ask_peer(MilterRun *run);

static void decision_clear(MilterDecision *decision) {
  g_clear_pointer(&decision->enhanced, g_free);
  g_clear_pointer(&decision->text, g_free);
}

static void decision_set(MilterDecision *decision, PstVerdict verdict,
                         guint code, const char *enhanced, const char *text) {
  decision_clear(decision);
  decision->verdict = verdict;
  decision->code = code;
  decision->enhanced = g_strdup(enhanced);
  decision->text = g_strdup(text);
}

static MilterPeer *run_peer(MilterRun *run) {
  return g_ptr_array_index(run->ms->peers, run->index);
}

static void run_free(MilterRun *run) {
  decision_clear(&run->decision);
  g_free(run->quarantine);
  g_clear_pointer(&run->body, milter_body_free);
  g_clear_pointer(&run->edits, g_ptr_array_unref);
  g_free(run);
}

/* --- Finishing ------------------------------------------------------------- */

/* The verdict of a run without a refusal: EOM's disposition. */
static PstVerdict run_disposition(MilterRun *run) {
  if (run->stage != PST_STAGE_EOM)
    return PST_VERDICT_CONTINUE;
  if (run->ms->discard || run->ms->discard_session)
    return PST_VERDICT_DISCARD;
  if (run->quarantine != NULL) {
    pst_call_set_reply(run->call, 250, "2.0.0", run->quarantine);
    return PST_VERDICT_QUARANTINE;
  }
  return PST_VERDICT_CONTINUE;
}

void milter_run_finish(MilterRun *run) {
  MilterSession *ms = run->ms;
  GCancellable *cancellable = pst_call_get_cancellable(run->call);
  if (run->cancel_id != 0)
    g_signal_handler_disconnect(cancellable, run->cancel_id);
  PstVerdict verdict = run->decision.verdict;
  if (verdict == PST_VERDICT_REJECT || verdict == PST_VERDICT_TEMPFAIL) {
    if (run->decision.code != 0)
      pst_call_set_reply(run->call, run->decision.code,
                         run->decision.enhanced, run->decision.text);
    pst_call_set_disconnect(run->call, run->decision.disconnect);
  } else {
    verdict = run_disposition(run);
  }
  if (run->stage == PST_STAGE_EOM)
    ms->discard = FALSE;
  ms->run = NULL;
  pst_call_complete(run->call, verdict);
  run_free(run);
}

/* --- Failures -------------------------------------------------------------- */

/* Postfix's reply for a bare reject or tempfail; at CONNECT the core's
 * own (554, or 421 and close) with our host name. */
static void run_refuse(MilterRun *run, PstVerdict verdict) {
  if (run->stage == PST_STAGE_CONNECT)
    decision_set(&run->decision, verdict, 0, NULL, NULL);
  else if (verdict == PST_VERDICT_REJECT)
    decision_set(&run->decision, verdict, 550, "5.7.1", REJECT_TEXT);
  else
    decision_set(&run->decision, verdict, 451, "4.7.1", TEMPFAIL_TEXT);
}

static void run_apply_default(MilterRun *run, MilterDefault action) {
  run_refuse(run, action == MILTER_DEFAULT_REJECT ? PST_VERDICT_REJECT
                                                  : PST_VERDICT_TEMPFAIL);
}

void milter_run_peer_failed(MilterRun *run, MilterPeer *peer, const char *what,
                            const GError *error) {
  pst_call_log(run->call, G_LOG_LEVEL_WARNING,
               "milter %s (%s): %s at %s: %s; default_action=%s",
               peer->spec->name, peer->spec->socket, what,
               pst_stage_to_string(run->stage),
               error != NULL ? error->message : "failed",
               milter_default_to_string(peer->spec->default_action));
  milter_conn_close(peer->conn, FALSE);
  peer->in_message = FALSE;
  if (peer->spec->default_action == MILTER_DEFAULT_ACCEPT) {
    peer->state = MILTER_PEER_SESSION_DONE;
    milter_run_next_peer(run);
    return;
  }
  peer->state = MILTER_PEER_FAILED;
  run_apply_default(run, peer->spec->default_action);
  milter_run_finish(run);
}

/* --- Replies --------------------------------------------------------------- */

static void run_take_code(MilterRun *run, const MilterReply *reply) {
  PstVerdict verdict =
      reply->code >= 500 ? PST_VERDICT_REJECT : PST_VERDICT_TEMPFAIL;
  decision_set(&run->decision, verdict, reply->code, reply->enhanced,
               reply->text != NULL ? reply->text
                                   : (verdict == PST_VERDICT_REJECT
                                          ? REJECT_TEXT
                                          : TEMPFAIL_TEXT));
}

gboolean milter_run_take_reply(MilterRun *run, MilterPeer *peer,
                               const MilterReply *reply) {
  gboolean session_wide =
      run->stage == PST_STAGE_CONNECT || run->stage == PST_STAGE_HELO;
  switch (reply->type) {
  case MILTER_REPLY_CONTINUE:
    return TRUE;
  case MILTER_REPLY_ACCEPT:
    peer->state = session_wide ? MILTER_PEER_SESSION_DONE
                               : MILTER_PEER_MESSAGE_DONE;
    return TRUE;
  case MILTER_REPLY_REJECT:
    run_refuse(run, PST_VERDICT_REJECT);
    return TRUE;
  case MILTER_REPLY_TEMPFAIL:
    run_refuse(run, PST_VERDICT_TEMPFAIL);
    return TRUE;
  case MILTER_REPLY_CONN_FAIL:
    decision_set(&run->decision, PST_VERDICT_TEMPFAIL, 421, "4.7.0",
                 TEMPFAIL_TEXT);
    run->decision.disconnect = TRUE;
    return TRUE;
  case MILTER_REPLY_CODE:
    run_take_code(run, reply);
    return TRUE;
  case MILTER_REPLY_DISCARD:
    if (session_wide)
      run->ms->discard_session = TRUE;
    else
      run->ms->discard = TRUE;
    peer->state = session_wide ? MILTER_PEER_SESSION_DONE
                               : MILTER_PEER_MESSAGE_DONE;
    return TRUE;
  default:
    return FALSE;
  }
}

/* A refusal ends the run; anything else goes on with the next peer. */
static void run_after_reply(MilterRun *run) {
  if (run->decision.verdict == PST_VERDICT_REJECT ||
      run->decision.verdict == PST_VERDICT_TEMPFAIL ||
      (run->stage != PST_STAGE_EOM && run->ms->discard))
    milter_run_finish(run);
  else
    milter_run_next_peer(run);
}

static void run_reply_cb(MilterConn *conn, const MilterReply *reply,
                         const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  MilterPeer *peer = run_peer(run);
  if (error != NULL) {
    milter_run_peer_failed(run, peer, "no usable reply", error);
    return;
  }
  if (!milter_run_take_reply(run, peer, reply)) {
    g_autoptr(GError) bad = g_error_new(
        G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "reply %d is not allowed here",
        (int)reply->type);
    milter_run_peer_failed(run, peer, "protocol error", bad);
    return;
  }
  run_after_reply(run);
}

/* --- Asking ---------------------------------------------------------------- */

guint milter_run_timeout(MilterRun *run, guint timeout_ms) {
  gint64 remaining = pst_call_get_remaining_ms(run->call);
  return (guint)CLAMP(remaining, 1, (gint64)timeout_ms);
}

/* The command of a simple stage, after its macros. */
static void run_encode_command(MilterRun *run, MilterPeer *peer,
                               GByteArray *out) {
  PstSession *session = pst_call_get_session(run->call);
  const StageInfo *info = &stage_info[run->stage];
  if (run->stage == PST_STAGE_CONNECT) {
    const char *name = pst_session_get_client_hostname(session);
    const char *address = pst_session_get_client_address(session);
    g_autofree char *bracketed = g_strdup_printf("[%s]", address);
    milter_encode_connect(out, name != NULL ? name : bracketed,
                          strchr(address, ':') != NULL ? '6' : '4',
                          pst_session_get_client_port(session), address);
    return;
  }
  if (run->stage == PST_STAGE_DATA) {
    milter_encode_frame(out, info->command, NULL, 0);
    return;
  }
  const char *argument = pst_call_get_argument(run->call);
  g_autofree char *text = run->stage == PST_STAGE_HELO
                              ? g_strdup(argument)
                              : g_strdup_printf("<%s>", argument);
  const char *strings[] = {text, NULL};
  milter_encode_strings(out, info->command, strings);
}

/* Sends the stage to the current peer; waits unless it will not answer. */
static void run_send_stage(MilterRun *run, MilterPeer *peer) {
  const StageInfo *info = &stage_info[run->stage];
  g_autoptr(GByteArray) out = g_byte_array_new();
  /* A new MAIL (or HELO after STARTTLS) ends an unfinished message. */
  if ((run->stage == PST_STAGE_MAIL || run->stage == PST_STAGE_HELO) &&
      peer->in_message) {
    milter_encode_frame(out, MILTER_CMD_ABORT, NULL, 0);
    peer->in_message = FALSE;
  }
  if (run->stage == PST_STAGE_MAIL)
    peer->in_message = TRUE;
  milter_session_add_macros(run->ms, peer, run->call, info->macros,
                            info->command, out);
  run_encode_command(run, peer, out);
  milter_conn_send(peer->conn, out);
  if (peer->steps & info->no_reply) {
    milter_run_next_peer(run);
    return;
  }
  milter_conn_expect(peer->conn,
                     milter_run_timeout(run, peer->spec->command_timeout_ms),
                     run_reply_cb, run);
}

static void run_opened_cb(MilterConn *conn, const MilterReply *reply,
                          const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  MilterPeer *peer = run_peer(run);
  if (error != NULL) {
    milter_run_peer_failed(run, peer, "unavailable", error);
    return;
  }
  const MilterNegotiation *negotiation = milter_conn_get_negotiation(conn);
  peer->steps = negotiation->steps;
  peer->actions = negotiation->actions;
  run_ask_peer(run);
}

/* TRUE when the current peer has nothing to do with this stage. */
static gboolean run_peer_skips(MilterRun *run, MilterPeer *peer) {
  if (peer->state == MILTER_PEER_SESSION_DONE)
    return TRUE;
  if (run->stage == PST_STAGE_MAIL && peer->state == MILTER_PEER_MESSAGE_DONE)
    peer->state = MILTER_PEER_ACTIVE;
  if (peer->state == MILTER_PEER_MESSAGE_DONE)
    return TRUE;
  if (run->stage == PST_STAGE_EOM)
    return FALSE;
  return (peer->steps & stage_info[run->stage].skip) != 0;
}

static void run_ask_peer(MilterRun *run) {
  MilterPeer *peer = run_peer(run);
  if (peer->state == MILTER_PEER_FAILED) {
    /* Logged when it failed; its default_action stands. */
    run_apply_default(run, peer->spec->default_action);
    milter_run_finish(run);
    return;
  }
  if (run->stage == PST_STAGE_CONNECT && !milter_conn_is_open(peer->conn) &&
      peer->steps == 0 && peer->actions == 0) {
    milter_conn_open(peer->conn,
                     milter_run_timeout(run, peer->spec->connect_timeout_ms),
                     run_opened_cb, run);
    return;
  }
  if (run_peer_skips(run, peer)) {
    milter_run_next_peer(run);
    return;
  }
  if (run->stage == PST_STAGE_EOM)
    milter_eom_start_peer(run, peer);
  else
    run_send_stage(run, peer);
}

void milter_run_next_peer(MilterRun *run) {
  if (run->stage == PST_STAGE_EOM)
    g_clear_pointer(&run->body, milter_body_free);
  run->index++;
  if (run->index >= run->ms->peers->len) {
    milter_run_finish(run);
    return;
  }
  run_ask_peer(run);
}

/* The client left or the deadline passed: close the peer being asked
 * (where its protocol stands is unknown) and complete. */
static void run_cancelled_cb(GCancellable *cancellable, gpointer user_data) {
  MilterRun *run = user_data;
  if (run->index < run->ms->peers->len) {
    MilterPeer *peer = run_peer(run);
    milter_conn_close(peer->conn, FALSE);
    peer->state = MILTER_PEER_SESSION_DONE;
  }
  run->index = run->ms->peers->len;
  milter_run_finish(run);
}

PstVerdict milter_run_start(MilterSession *ms, PstCall *call) {
  PstStage stage = pst_call_get_stage(call);
  if (stage == PST_STAGE_MAIL)
    ms->discard = FALSE;
  if (stage == PST_STAGE_EOM && (ms->discard || ms->discard_session)) {
    ms->discard = FALSE;
    return PST_VERDICT_DISCARD;
  }
  GCancellable *cancellable = pst_call_get_cancellable(call);
  if (ms->run != NULL || ms->peers->len == 0 ||
      g_cancellable_is_cancelled(cancellable))
    return PST_VERDICT_CONTINUE;
  MilterRun *run = g_new0(MilterRun, 1);
  run->ms = ms;
  run->call = call;
  run->stage = stage;
  run->decision.verdict = PST_VERDICT_CONTINUE;
  ms->run = run;
  run->cancel_id = g_signal_connect(cancellable, "cancelled",
                                    G_CALLBACK(run_cancelled_cb), run);
  run_ask_peer(run);
  return PST_VERDICT_PENDING;
}
