/* milter-session.c - one SMTP session's milters: a MilterPeer per
 * configured milter, made at CONNECT and ended at DISCONNECT.
 *
 * The session holds a reference to the config it started on, so the
 * specs its peers point to live as long as it does.  Ending a session
 * completes a call still in progress (its verdict is ignored then: the
 * client is gone) and says QUIT to every milter still open.  Called by
 * milter.c (hooks) and milter-run.c.
 */
#include "milter-run.h"

static void milter_peer_free(MilterPeer *peer) {
  milter_conn_free(peer->conn);
  g_free(peer);
}

MilterSession *milter_session_new(MilterConfig *config, GThreadPool *body_pool,
                                  PstSession *session) {
  MilterSession *ms = g_new0(MilterSession, 1);
  ms->config = milter_config_ref(config);
  ms->body_pool = body_pool;
  ms->session = session;
  ms->session_id = g_strdup(pst_session_get_id(session));
  ms->peers = g_ptr_array_new_with_free_func((GDestroyNotify)milter_peer_free);
  for (guint i = 0; i < config->milters->len; i++) {
    MilterPeer *peer = g_new0(MilterPeer, 1);
    peer->spec = g_ptr_array_index(config->milters, i);
    peer->conn = milter_conn_new(peer->spec, ms->session_id);
    g_ptr_array_add(ms->peers, peer);
  }
  return ms;
}

void milter_session_end(MilterSession *ms) {
  if (ms->run != NULL) {
    ms->run->index = ms->peers->len; /* nobody is asked any more */
    milter_run_finish(ms->run);
  }
  for (guint i = 0; i < ms->peers->len; i++) {
    MilterPeer *peer = g_ptr_array_index(ms->peers, i);
    milter_conn_close(peer->conn, TRUE);
  }
  g_ptr_array_unref(ms->peers);
  milter_config_unref(ms->config);
  g_free(ms->session_id);
  g_free(ms);
}

const char *milter_default_to_string(MilterDefault action) {
  switch (action) {
  case MILTER_DEFAULT_ACCEPT:
    return "accept";
  case MILTER_DEFAULT_REJECT:
    return "reject";
  default:
    return "tempfail";
  }
}

/* The milter's own list for `stage` (SETSYMLIST) wins over ours. */
static GStrv peer_macro_names(MilterPeer *peer, MilterMacroStage stage) {
  const MilterNegotiation *negotiation =
      milter_conn_get_negotiation(peer->conn);
  if (negotiation->macros[stage] != NULL)
    return g_strsplit_set(negotiation->macros[stage], " ,", -1);
  return g_strdupv(peer->spec->macros[stage]);
}

void milter_session_add_macros(MilterSession *ms, MilterPeer *peer,
                               PstCall *call, MilterMacroStage stage,
                               char command, GByteArray *out) {
  g_auto(GStrv) names = peer_macro_names(peer, stage);
  MilterMacroContext context = {ms->config->hostname, call};
  g_autoptr(GPtrArray) pairs = g_ptr_array_new_with_free_func(g_free);
  milter_macros_collect(&context, (const char *const *)names, pairs);
  g_ptr_array_add(pairs, NULL);
  milter_encode_macros(out, command, (const char *const *)pairs->pdata);
}
