/* milter-eom.c - the end of message for one milter: the header fields,
 * the end of header, the body in pieces of at most 64 KiB (read off the
 * main thread by milter-body.c, one piece in memory at a time: the next is
 * read when the milter answered the last, or with SMFIP_NR_BODY when the
 * socket took it), the end of body, and then the milter's edits.
 *
 * Each step is skipped when the milter negotiated SMFIP_NOHDRS,
 * SMFIP_NOEOH or SMFIP_NOBODY, and not waited for with SMFIP_NR_HDR,
 * SMFIP_NR_EOH, SMFIP_NR_BODY.  SKIP during the body jumps to the end of
 * body.  After the end of body the milter sends edits and then one final
 * reply; the edits are kept and applied only when that reply lets the
 * message through (continue, accept), in the order they came, to the
 * message the next milter then sees: add, insert, change and delete
 * header (change with an empty value deletes; a change of a field that is
 * not there adds it, as Postfix does), change sender, add and delete
 * recipient, replace body (pieces joined, bare LF made CRLF), quarantine
 * (the first reason wins; the message goes to the held queue).  An edit
 * the milter did not negotiate is a protocol error (default_action); an
 * edit the core refuses (a bad header name) is logged and skipped.
 */
#include <string.h>

#include "milter-run.h"

static void eom_send_eoh(MilterRun *run, MilterPeer *peer);
static void eom_send_body(MilterRun *run, MilterPeer *peer);
static void eom_send_eob(MilterRun *run, MilterPeer *peer);

typedef void (*EomNextFunc)(MilterRun *run, MilterPeer *peer);

static MilterPeer *eom_peer(MilterRun *run) {
  return g_ptr_array_index(run->ms->peers, run->index);
}

static PstMessage *eom_message(MilterRun *run) {
  return pst_call_get_message(run->call);
}

/* A reply to a header, the end of header or a body piece: continue goes
 * on with `next`; anything else that is allowed ends this milter's
 * message (accept) or the run (refusal, discard). */
static void eom_step_reply(MilterRun *run, MilterPeer *peer,
                           const MilterReply *reply, const GError *error,
                           EomNextFunc next) {
  if (error != NULL) {
    milter_run_peer_failed(run, peer, "no usable reply", error);
    return;
  }
  if (reply->type == MILTER_REPLY_CONTINUE) {
    next(run, peer);
    return;
  }
  if (reply->type == MILTER_REPLY_SKIP && next == eom_send_body) {
    eom_send_eob(run, peer);
    return;
  }
  if (!milter_run_take_reply(run, peer, reply)) {
    g_autoptr(GError) bad =
        g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "reply %d is not allowed before the end of body",
                    (int)reply->type);
    milter_run_peer_failed(run, peer, "protocol error", bad);
    return;
  }
  if (run->decision.verdict != PST_VERDICT_CONTINUE || run->ms->discard)
    milter_run_finish(run);
  else
    milter_run_next_peer(run);
}

/* --- Header ---------------------------------------------------------------- */

static void eom_send_headers(MilterRun *run, MilterPeer *peer);

static void eom_header_reply_cb(MilterConn *conn, const MilterReply *reply,
                                const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  eom_step_reply(run, eom_peer(run), reply, error, eom_send_headers);
}

/* Sends the next field (all of them when the milter does not answer). */
static void eom_send_headers(MilterRun *run, MilterPeer *peer) {
  PstMessage *message = eom_message(run);
  guint count = pst_message_get_header_count(message);
  if ((peer->steps & MILTER_STEP_NO_HEADERS) || run->header_index >= count) {
    eom_send_eoh(run, peer);
    return;
  }
  gboolean answers = !(peer->steps & MILTER_STEP_NR_HEADER);
  gboolean leading = peer->steps & MILTER_STEP_HEADER_LEADING_SPACE;
  g_autoptr(GByteArray) out = g_byte_array_new();
  while (run->header_index < count) {
    guint index = run->header_index++;
    g_autofree char *value = milter_header_value_to_milter(
        pst_message_get_header_value(message, index), leading);
    milter_encode_header(out, pst_message_get_header_name(message, index),
                         value);
    if (answers)
      break;
  }
  milter_conn_send(peer->conn, out);
  if (!answers) {
    eom_send_eoh(run, peer);
    return;
  }
  milter_conn_expect(peer->conn,
                     milter_run_timeout(run, peer->spec->command_timeout_ms),
                     eom_header_reply_cb, run);
}

static void eom_eoh_reply_cb(MilterConn *conn, const MilterReply *reply,
                             const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  eom_step_reply(run, eom_peer(run), reply, error, eom_send_body);
}

static void eom_send_eoh(MilterRun *run, MilterPeer *peer) {
  if (peer->steps & MILTER_STEP_NO_EOH) {
    eom_send_body(run, peer);
    return;
  }
  g_autoptr(GByteArray) out = g_byte_array_new();
  milter_session_add_macros(run->ms, peer, run->call, MILTER_MACROS_EOH,
                            MILTER_CMD_EOH, out);
  milter_encode_frame(out, MILTER_CMD_EOH, NULL, 0);
  milter_conn_send(peer->conn, out);
  if (peer->steps & MILTER_STEP_NR_EOH) {
    eom_send_body(run, peer);
    return;
  }
  milter_conn_expect(peer->conn,
                     milter_run_timeout(run, peer->spec->command_timeout_ms),
                     eom_eoh_reply_cb, run);
}

/* --- Body ------------------------------------------------------------------ */

static void eom_body_reply_cb(MilterConn *conn, const MilterReply *reply,
                              const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  eom_step_reply(run, eom_peer(run), reply, error, eom_send_body);
}

/* A milter that does not answer body pieces took the last one: the next. */
static void eom_body_drained_cb(MilterConn *conn, const MilterReply *reply,
                                const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  MilterPeer *peer = eom_peer(run);
  if (error != NULL) {
    milter_run_peer_failed(run, peer, "cannot send the body", error);
    return;
  }
  eom_send_body(run, peer);
}

/* The spool cannot be read: a 4xx for the message, whatever the milters. */
static void eom_body_unreadable(MilterRun *run, const GError *error) {
  pst_call_log(run->call, G_LOG_LEVEL_WARNING,
               "cannot read the body for the milters: %s", error->message);
  pst_call_set_reply(run->call, 451, "4.3.0",
                     "Error: cannot read the message for the milters");
  run->decision.verdict = PST_VERDICT_TEMPFAIL;
  milter_run_finish(run);
}

/* The next piece, read off the main thread: sent, and then the reply or
 * (with SMFIP_NR_BODY) the socket's draining is awaited before the next
 * read, so one piece at a time is in memory however slow the milter. */
static void eom_body_piece_cb(GByteArray *frame, const GError *error,
                              gpointer user_data) {
  MilterRun *run = user_data;
  MilterPeer *peer = eom_peer(run);
  if (error != NULL) {
    eom_body_unreadable(run, error);
    return;
  }
  if (frame == NULL) {
    eom_send_eob(run, peer);
    return;
  }
  milter_conn_send_take(peer->conn, frame);
  guint timeout = milter_run_timeout(run, peer->spec->command_timeout_ms);
  if (peer->steps & MILTER_STEP_NR_BODY)
    milter_conn_drain(peer->conn, timeout, eom_body_drained_cb, run);
  else
    milter_conn_expect(peer->conn, timeout, eom_body_reply_cb, run);
}

/* Asks for the next piece of the body as the milter before this one left
 * it (opened at the first). */
static void eom_send_body(MilterRun *run, MilterPeer *peer) {
  if (peer->steps & MILTER_STEP_NO_BODY) {
    eom_send_eob(run, peer);
    return;
  }
  if (run->body == NULL) {
    g_autoptr(GError) error = NULL;
    run->body = milter_body_open(eom_message(run), run->ms->body_pool, &error);
    if (run->body == NULL) {
      eom_body_unreadable(run, error);
      return;
    }
  }
  milter_body_read(run->body, eom_body_piece_cb, run);
}

/* --- Edits ----------------------------------------------------------------- */

static void edit_free(MilterReply *edit) {
  milter_reply_clear(edit);
  g_free(edit);
}

static MilterReply *edit_copy(const MilterReply *reply) {
  MilterReply *edit = g_new0(MilterReply, 1);
  edit->type = reply->type;
  edit->index = reply->index;
  edit->name = g_strdup(reply->name);
  edit->value = g_strdup(reply->value);
  edit->text = g_strdup(reply->text);
  edit->body = reply->body != NULL ? g_bytes_ref(reply->body) : NULL;
  return edit;
}

/* The action an edit needs (SMFIF_*), 0 for a final reply. */
static guint32 edit_action(MilterReplyType type) {
  switch (type) {
  case MILTER_REPLY_ADD_HEADER:
    return MILTER_ACTION_ADD_HEADERS;
  case MILTER_REPLY_INSERT_HEADER:
  case MILTER_REPLY_CHANGE_HEADER:
    return MILTER_ACTION_CHANGE_HEADERS;
  case MILTER_REPLY_ADD_RCPT:
    return MILTER_ACTION_ADD_RCPT | MILTER_ACTION_ADD_RCPT_PAR;
  case MILTER_REPLY_DELETE_RCPT:
    return MILTER_ACTION_DELETE_RCPT;
  case MILTER_REPLY_CHANGE_FROM:
    return MILTER_ACTION_CHANGE_FROM;
  case MILTER_REPLY_REPLACE_BODY:
    return MILTER_ACTION_CHANGE_BODY;
  case MILTER_REPLY_QUARANTINE:
    return MILTER_ACTION_QUARANTINE;
  default:
    return 0;
  }
}

/* "<a@b>" -> "a@b"; "<>" -> "". */
static char *edit_address(const char *address) {
  gsize length = strlen(address);
  if (length >= 2 && address[0] == '<' && address[length - 1] == '>')
    return g_strndup(address + 1, length - 2);
  return g_strdup(address);
}

static gboolean edit_header(PstMessage *message, MilterPeer *peer,
                            const MilterReply *edit) {
  g_autofree char *value = milter_header_value_from_milter(
      edit->value, peer->steps & MILTER_STEP_HEADER_LEADING_SPACE);
  switch (edit->type) {
  case MILTER_REPLY_ADD_HEADER:
    return pst_message_add_header(message, edit->name, value);
  case MILTER_REPLY_INSERT_HEADER:
    return pst_message_insert_header(message, edit->index, edit->name, value);
  default: {
    guint occurrence = edit->index > 0 ? edit->index - 1 : 0;
    if (value[0] == '\0') {
      pst_message_delete_header(message, edit->name, occurrence);
      return TRUE;
    }
    return pst_message_change_header(message, edit->name, occurrence,
                                     value) ||
           pst_message_add_header(message, edit->name, value);
  }
  }
}

/* Applies one edit other than the body; FALSE when the core refused it. */
static gboolean edit_apply(MilterRun *run, MilterPeer *peer,
                           const MilterReply *edit) {
  PstMessage *message = eom_message(run);
  g_autofree char *address = edit->name ? edit_address(edit->name) : NULL;
  switch (edit->type) {
  case MILTER_REPLY_ADD_RCPT:
    return pst_message_add_recipient(message, address);
  case MILTER_REPLY_DELETE_RCPT:
    return pst_message_remove_recipient(message, address);
  case MILTER_REPLY_CHANGE_FROM:
    return pst_message_set_sender(message, address);
  case MILTER_REPLY_QUARANTINE:
    if (run->quarantine == NULL)
      run->quarantine = g_strdup_printf(
          "%s (milter %s)", edit->text[0] ? edit->text : "quarantined",
          peer->spec->name);
    return TRUE;
  default:
    return edit_header(message, peer, edit);
  }
}

static void edit_log_refused(MilterRun *run, MilterPeer *peer,
                             const MilterReply *edit) {
  pst_call_log(run->call, G_LOG_LEVEL_WARNING,
               "milter %s: edit refused (%s%s%s), skipped", peer->spec->name,
               edit->name ? edit->name : "body",
               edit->value ? ": " : "", edit->value ? edit->value : "");
}

/* The body pieces, joined, with bare LF made CRLF. */
static void edits_replace_body(MilterRun *run, MilterPeer *peer,
                               GByteArray *body) {
  g_autoptr(GBytes) bytes = g_byte_array_free_to_bytes(body);
  if (!pst_message_replace_body(eom_message(run), bytes))
    pst_call_log(run->call, G_LOG_LEVEL_WARNING,
                 "milter %s: replacement body refused (bare CR), skipped",
                 peer->spec->name);
}

static void eom_apply_edits(MilterRun *run, MilterPeer *peer) {
  GByteArray *body = NULL;
  gboolean last_cr = FALSE;
  for (guint i = 0; i < run->edits->len; i++) {
    const MilterReply *edit = g_ptr_array_index(run->edits, i);
    if (edit->type == MILTER_REPLY_REPLACE_BODY) {
      if (body == NULL)
        body = g_byte_array_new();
      gsize size = 0;
      const guint8 *data = g_bytes_get_data(edit->body, &size);
      milter_body_append_crlf(body, data, size, &last_cr);
    } else if (!edit_apply(run, peer, edit)) {
      edit_log_refused(run, peer, edit);
    }
  }
  if (body != NULL)
    edits_replace_body(run, peer, body);
}

/* --- End of body ----------------------------------------------------------- */

static void eom_eob_reply_cb(MilterConn *conn, const MilterReply *reply,
                             const GError *error, gpointer user_data);

static void eom_expect_eob(MilterRun *run, MilterPeer *peer) {
  milter_conn_expect(peer->conn,
                     milter_run_timeout(run, peer->spec->eom_timeout_ms),
                     eom_eob_reply_cb, run);
}

/* The final reply after the end of body. */
static void eom_final_reply(MilterRun *run, MilterPeer *peer,
                            const MilterReply *reply) {
  peer->in_message = FALSE;
  if (reply->type == MILTER_REPLY_SKIP ||
      !milter_run_take_reply(run, peer, reply)) {
    g_autoptr(GError) bad =
        g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "reply %d is not allowed at the end of body",
                    (int)reply->type);
    milter_run_peer_failed(run, peer, "protocol error", bad);
    return;
  }
  if (run->decision.verdict != PST_VERDICT_CONTINUE || run->ms->discard) {
    milter_run_finish(run);
    return;
  }
  eom_apply_edits(run, peer);
  if (peer->state == MILTER_PEER_MESSAGE_DONE)
    peer->state = MILTER_PEER_ACTIVE;
  milter_run_next_peer(run);
}

static void eom_eob_reply_cb(MilterConn *conn, const MilterReply *reply,
                             const GError *error, gpointer user_data) {
  MilterRun *run = user_data;
  MilterPeer *peer = eom_peer(run);
  if (error != NULL) {
    milter_run_peer_failed(run, peer, "no usable reply", error);
    return;
  }
  guint32 action = edit_action(reply->type);
  if (action == 0) {
    eom_final_reply(run, peer, reply);
    return;
  }
  if ((peer->actions & action) == 0) {
    g_autoptr(GError) bad = g_error_new(
        G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
        "edit %d without negotiating action 0x%x", (int)reply->type, action);
    milter_run_peer_failed(run, peer, "protocol error", bad);
    return;
  }
  g_ptr_array_add(run->edits, edit_copy(reply));
  eom_expect_eob(run, peer);
}

static void eom_send_eob(MilterRun *run, MilterPeer *peer) {
  g_autoptr(GByteArray) out = g_byte_array_new();
  milter_session_add_macros(run->ms, peer, run->call, MILTER_MACROS_EOM,
                            MILTER_CMD_BODYEOB, out);
  milter_encode_frame(out, MILTER_CMD_BODYEOB, NULL, 0);
  milter_conn_send(peer->conn, out);
  eom_expect_eob(run, peer);
}

void milter_eom_start_peer(MilterRun *run, MilterPeer *peer) {
  run->header_index = 0;
  g_clear_pointer(&run->body, milter_body_free);
  g_clear_pointer(&run->edits, g_ptr_array_unref);
  run->edits = g_ptr_array_new_with_free_func((GDestroyNotify)edit_free);
  eom_send_headers(run, peer);
}
