/* session-data.c - DATA, BDAT, the end of a message and its commit.
 *
 * The message streams from the socket through the data reader (which owns
 * the end-of-data and smuggling rules) into the spool writer, after the
 * Received: header the core writes first: the reader hands over runs of
 * the read buffer (pst_data_reader_feed_to), so the octets are copied only
 * into the writer's buffer, or not at all when a piece fills it.  The
 * header block is also kept in memory (up to max_header_size) so that at
 * EOM the plugins get a parsed header list without reading the file back.
 *
 * At the end of data: faults refuse the message; otherwise the EOM stage
 * runs, its edits are folded into the envelope and the header override,
 * and the spool commits.  The 250 is sent only from the commit callback,
 * after the file and its directory entry are on disk.
 */
#include <string.h>

#include "session/session-private.h"
#include "util/log.h"

static const PstSmtpReply reply_need_rcpt = {503, "5.5.1",
                                             "Error: need RCPT command"};
static const PstSmtpReply reply_data_after_bdat = {
    503, "5.5.1", "Error: DATA after BDAT"};
static const PstSmtpReply reply_data_syntax = {501, "5.5.4", "Syntax: DATA"};
static const PstSmtpReply reply_bdat_syntax = {501, "5.5.4",
                                               "Syntax: BDAT count [LAST]"};
static const PstSmtpReply reply_write_error = {
    451, "4.3.0", "Error: queue file write error"};
static const PstSmtpReply reply_no_space = {
    452, "4.3.1", "Error: insufficient system storage"};

/* The reply for a spool failure: a full file system is 452 4.3.1 (RFC
 * 3463 "mail system full"), anything else 451 4.3.0. */
static const PstSmtpReply *session_spool_reply(const GError *error) {
  return g_error_matches(error, PST_SPOOL_ERROR, PST_SPOOL_ERROR_NO_SPACE)
             ? &reply_no_space
             : &reply_write_error;
}
static const PstSmtpReply reply_header_too_big = {
    552, "5.3.4", "Error: message header too big"};
static const PstSmtpReply reply_too_many_hops = {
    554, "5.4.6", "Error: too many hops (mail forwarding loop?)"};

/* Postfix's hopcount_limit: a message that passed more than max_hops
 * servers (our own Received: counts) is looping; refusing it ends the
 * loop with one bounce instead of a storm. */
static gboolean session_too_many_hops(PstSession *session, GPtrArray *fields) {
  guint hops = 0;
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = fields->pdata[i];
    if (g_ascii_strcasecmp(field->name, "Received") == 0)
      hops++;
  }
  return hops > session->config->server.max_hops;
}

static const PstSmtpReply *session_check_data(PstSession *session) {
  if (session->envelope == NULL)
    return &pst_session_reply_need_mail;
  if (session->envelope->recipients->len == 0 &&
      session->discarded_recipients == 0)
    return &reply_need_rcpt;
  return NULL;
}

/* Ends the transaction and goes back to the command state. */
static void session_end_transaction(PstSession *session) {
  pst_session_reset_transaction(session);
  pst_session_set_state(session, session->helo != NULL
                                     ? PST_SESSION_STATE_READY
                                     : PST_SESSION_STATE_GREETED);
}

/* --- Starting a message ------------------------------------------------ */

/* Fills the envelope's origin fields, which the Received: header and the
 * queue file share. */
static void session_fill_origin(PstSession *session) {
  PstEnvelope *envelope = session->envelope;
  g_free(envelope->client_address);
  envelope->client_address = g_strdup(session->client_address);
  g_free(envelope->client_hostname);
  envelope->client_hostname = g_strdup(session->client_hostname);
  g_free(envelope->helo);
  envelope->helo = g_strdup(session->helo);
  g_free(envelope->listener);
  envelope->listener = g_strdup(session->listener->name);
  g_free(envelope->protocol);
  envelope->protocol = g_strdup(pst_session_protocol(session));
  g_free(envelope->auth_user);
  envelope->auth_user = g_strdup(session->auth_user);
  g_free(envelope->session_id);
  envelope->session_id = g_strdup(session->id);
}

/* Opens the spool file and writes the Received: header; NULL, or the
 * reply that refuses the message. */
static const PstSmtpReply *session_begin_message(PstSession *session,
                                                 PstDataReaderMode mode) {
  g_autoptr(GError) error = NULL;
  session->writer = pst_spool_writer_new(session->spool, &error);
  if (session->writer == NULL) {
    g_warning("%s: cannot start a queue file: %s", session->id,
              error->message);
    return session_spool_reply(error);
  }
  session_fill_origin(session);
  g_autoptr(GString) received = g_string_sized_new(256);
  pst_received_format(session, pst_spool_writer_get_id(session->writer),
                      received);
  if (!pst_spool_writer_write(session->writer, received->str, received->len,
                              &error)) {
    g_warning("%s: %s", session->id, error->message);
    return session_spool_reply(error);
  }
  session->header = g_byte_array_sized_new(received->len + 1024);
  g_byte_array_append(session->header, (const guint8 *)received->str,
                      received->len);
  session->reader =
      pst_data_reader_new(mode, session->config->server.max_message_size);
  return NULL;
}

/* --- DATA -------------------------------------------------------------- */

static void session_data_done(PstSession *session,
                              const PstHookOutcome *outcome) {
  if (pst_session_outcome_refuses(session, PST_STAGE_DATA, outcome, NULL)) {
    session_end_transaction(session);
    return;
  }
  pst_session_apply_disposition(session, PST_STAGE_DATA, outcome);
  const PstSmtpReply *refusal =
      session_begin_message(session, PST_DATA_READER_DOT);
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    session_end_transaction(session);
    return;
  }
  pst_session_reply(session, 354, NULL,
                    "End data with <CR><LF>.<CR><LF>");
  pst_session_set_state(session, PST_SESSION_STATE_DATA);
}

void pst_session_command_data(PstSession *session,
                              const PstSmtpCommand *command) {
  const PstSmtpReply *refusal = session_check_data(session);
  if (refusal == NULL && session->bdat_used)
    refusal = &reply_data_after_bdat;
  if (refusal == NULL && command->argument_length > 0)
    refusal = &reply_data_syntax;
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    return;
  }
  PstHookArgs args = {0};
  pst_session_run_stage(session, PST_STAGE_DATA, &args, session_data_done);
}

/* --- Message bytes ----------------------------------------------------- */

/* Keeps the header block in memory until its blank line. */
static void session_capture_header(PstSession *session, const guint8 *data,
                                   gsize length) {
  if (session->header_complete || session->header_overflow)
    return;
  GByteArray *header = session->header;
  /* Keep one line more than the limit, to tell a header that is too big
   * from one that ends right at the limit. */
  gsize keep = session->config->server.max_header_size + PST_SMTP_MAX_TEXT_LINE;
  gsize start = header->len >= 3 ? header->len - 3 : 0;
  gsize room = keep > header->len ? keep - header->len : 0;
  g_byte_array_append(header, data, MIN(length, room));
  const guint8 *end = memmem(header->data + start, header->len - start,
                             "\r\n\r\n", 4);
  if (end != NULL) {
    session->header_complete = TRUE;
    g_byte_array_set_size(header, end - header->data + 4);
  } else if (header->len >= keep) {
    session->header_overflow = TRUE;
  }
}

/* The reader's sink: message octets, straight from the read buffer (no
 * copy in between), into the header block and the spool file. */
static void session_store_output(const guint8 *data, gsize length,
                                 gpointer user_data) {
  PstSession *session = user_data;
  session_capture_header(session, data, length);
  g_autoptr(GError) error = NULL;
  if (!session->write_failed &&
      !pst_spool_writer_write(session->writer, data, length, &error)) {
    g_warning("%s: %s", session->id, error->message);
    session->write_failed = TRUE;
  }
}

static void session_end_of_data(PstSession *session);

/* A BDAT chunk ended. */
static void session_chunk_done(PstSession *session) {
  if (session->bdat_discard) {
    session_end_transaction(session);
    return;
  }
  if (session->bdat_last) {
    pst_data_reader_finish_to(session->reader, session_store_output, session);
    session_end_of_data(session);
    return;
  }
  pst_session_reply(session, 250, "2.0.0", "Ok: %" G_GUINT64_FORMAT
                    " octets received",
                    pst_data_reader_get_size(session->reader));
  pst_session_set_state(session, PST_SESSION_STATE_RCPT);
}

gsize pst_session_feed_message(PstSession *session, const guint8 *data,
                               gsize length) {
  if (session->state == PST_SESSION_STATE_BDAT) {
    gsize take = (gsize)MIN((guint64)length, session->bdat_remaining);
    if (!session->bdat_discard) {
      gsize consumed = 0;
      pst_data_reader_feed_to(session->reader, data, take, &consumed,
                              session_store_output, session);
    }
    session->bdat_remaining -= take;
    if (session->bdat_remaining == 0)
      session_chunk_done(session);
    return take;
  }
  gsize consumed = 0;
  PstDataStatus status = pst_data_reader_feed_to(
      session->reader, data, length, &consumed, session_store_output, session);
  if (status == PST_DATA_DONE)
    session_end_of_data(session);
  return consumed;
}

/* --- BDAT -------------------------------------------------------------- */

/* Parses "count [LAST]"; FALSE when it is not that. */
static gboolean session_parse_bdat(const PstSmtpCommand *command,
                                   guint64 *size_r, gboolean *last_r) {
  g_autofree char *argument =
      g_strndup(command->argument, command->argument_length);
  g_auto(GStrv) words = g_strsplit(argument, " ", -1);
  guint n = g_strv_length(words);
  if (n < 1 || n > 2 || words[0][0] == '\0' || strlen(words[0]) > 19)
    return FALSE;
  for (const char *p = words[0]; *p != '\0'; p++)
    if (!g_ascii_isdigit(*p))
      return FALSE;
  if (n == 2 && g_ascii_strcasecmp(words[1], "LAST") != 0)
    return FALSE;
  *size_r = g_ascii_strtoull(words[0], NULL, 10);
  *last_r = n == 2;
  return TRUE;
}

/* Starts reading the chunk announced by the BDAT command. */
static void session_start_chunk(PstSession *session) {
  pst_session_set_state(session, PST_SESSION_STATE_BDAT);
  if (session->bdat_remaining == 0)
    session_chunk_done(session);
}

/* A refused BDAT still owns its chunk: the reply goes out (replies are
 * ordered), the chunk's octets are read and dropped. */
static void session_discard_chunk(PstSession *session) {
  session->bdat_discard = TRUE;
  session_start_chunk(session);
}

static void session_bdat_done(PstSession *session,
                              const PstHookOutcome *outcome) {
  if (pst_session_outcome_refuses(session, PST_STAGE_DATA, outcome, NULL)) {
    session_discard_chunk(session);
    return;
  }
  pst_session_apply_disposition(session, PST_STAGE_DATA, outcome);
  session->bdat_used = TRUE;
  const PstSmtpReply *refusal =
      session_begin_message(session, PST_DATA_READER_CHUNK);
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    session_discard_chunk(session);
    return;
  }
  session_start_chunk(session);
}

void pst_session_command_bdat(PstSession *session,
                              const PstSmtpCommand *command) {
  guint64 size = 0;
  gboolean last = FALSE;
  if (!session_parse_bdat(command, &size, &last)) {
    /* Without a count the chunk's end is unknown: nothing after this can
     * be read as commands. */
    pst_session_reply_static(session, &reply_bdat_syntax);
    pst_session_close_after_reply(session);
    return;
  }
  session->bdat_remaining = size;
  session->bdat_last = last;
  session->bdat_discard = FALSE;
  const PstSmtpReply *refusal = session_check_data(session);
  if (refusal != NULL) {
    pst_session_reply_static(session, refusal);
    session_discard_chunk(session);
    return;
  }
  if (session->bdat_used) {
    session_start_chunk(session);
    return;
  }
  PstHookArgs args = {0};
  pst_session_run_stage(session, PST_STAGE_DATA, &args, session_bdat_done);
}

/* --- End of message ---------------------------------------------------- */

static void session_commit_done(GObject *source, GAsyncResult *result,
                                gpointer user_data);

/* The reply when the message as received cannot be accepted, or NULL.
 * The writer's buffer is not flushed here: what it holds goes out with the
 * trailer on the syncer thread (a write error then fails the commit),
 * unless something reads the file first (session_flush_for_readers). */
static const PstSmtpReply *session_message_fault(PstSession *session) {
  const PstSmtpReply *fault =
      pst_data_fault_reply(pst_data_reader_get_faults(session->reader));
  if (fault != NULL)
    return fault;
  if (!session->write_failed)
    return NULL;
  g_autoptr(GError) error = NULL;
  /* After a failed write the flush fails too, with that first error. */
  pst_spool_writer_flush(session->writer, &error);
  return session_spool_reply(error);
}

/* Writes out the writer's buffer before the message is handed to what
 * reads its file (plugins at END-OF-MESSAGE); FALSE, answered 451/452,
 * when that fails. */
static gboolean session_flush_for_readers(PstSession *session) {
  g_autoptr(GError) error = NULL;
  if (pst_spool_writer_flush(session->writer, &error))
    return TRUE;
  g_warning("%s: %s", session->id, error->message);
  pst_session_reply_static(session, session_spool_reply(error));
  session_end_transaction(session);
  return FALSE;
}

/* Parses the kept header block; FALSE when it is over the limit. */
static gboolean session_parse_header(PstSession *session, GPtrArray *fields) {
  gsize header_length = 0;
  pst_header_parse(session->header->data, session->header->len, 10000,
                   fields, &header_length);
  session->header_length = header_length;
  /* A header that ran to the end of what was kept, with more message
   * behind it, is too big. */
  return !(session->header_overflow &&
           header_length + PST_SMTP_MAX_TEXT_LINE >= session->header->len);
}

/* Answers 250 for a message nobody will get (DISCARD), and logs it. */
static void session_discard_message(PstSession *session, const char *plugin) {
  const char *id = pst_spool_writer_get_id(session->writer);
  g_message("%s: discard: END-OF-MESSAGE from [%s]:%u: from=<%s> plugin=%s",
            id, session->client_address, session->client_port,
            session->envelope->sender, plugin != NULL ? plugin : "?");
  pst_session_reply(session, 250, "2.0.0", "Ok: queued as %s", id);
  session_end_transaction(session);
}

/* A body a plugin replaced goes into the queue file in place of the
 * received one; FALSE (answered 451/452) when it cannot be written. */
static gboolean session_store_replaced_body(PstSession *session) {
  g_autoptr(GBytes) body = pst_message_get_body_replacement(session->message);
  if (body == NULL)
    return TRUE;
  g_autoptr(GError) error = NULL;
  if (pst_spool_writer_replace_body(session->writer, session->header_length,
                                    body, &error))
    return TRUE;
  g_warning("%s: %s", session->id, error->message);
  pst_session_reply_static(session, session_spool_reply(error));
  session_end_transaction(session);
  return FALSE;
}

/* `authres`: our Authentication-Results value (owned, nullable), rendered
 * once the results are final. */
static void session_commit(PstSession *session, char *authres) {
  g_autofree char *authres_value = authres;
  PstEnvelope *envelope = session->envelope;
  envelope->results = pst_results_to_variant(session->results.transaction);
  for (guint i = 0; i < envelope->recipients->len; i++) {
    PstEnvelopeRecipient *recipient = envelope->recipients->pdata[i];
    recipient->results =
        pst_results_to_variant(session->results.recipients->pdata[i]);
  }
  g_autoptr(GBytes) header_override = NULL;
  if (session->message != NULL) {
    pst_session_authres_add(session->message, authres_value);
    pst_message_apply_envelope(session->message, envelope);
    if (pst_message_headers_modified(session->message))
      header_override = pst_message_render_headers(session->message);
  }
  if (envelope->recipients->len == 0) {
    session_discard_message(session, "(all recipients removed)");
    return;
  }
  if (session->message != NULL && !session_store_replaced_body(session))
    return;
  session->waiting = PST_SESSION_WAIT_COMMIT;
  pst_session_touch(session);
  pst_spool_writer_commit_async(
      session->writer, envelope, header_override, session->header_length,
      session->disposition == PST_DISPOSITION_HOLD ? PST_SPOOL_QUEUE_HOLD
                                                   : PST_SPOOL_QUEUE_ACTIVE,
      session_commit_done, pst_session_ref(session));
}

static void session_eom_done(PstSession *session,
                             const PstHookOutcome *outcome) {
  if (pst_session_outcome_refuses(session, PST_STAGE_EOM, outcome, NULL)) {
    session_end_transaction(session);
    return;
  }
  if (outcome->verdict == PST_VERDICT_DISCARD) {
    session_discard_message(session, outcome->plugin);
    return;
  }
  pst_session_apply_disposition(session, PST_STAGE_EOM, outcome);
  session_commit(session, pst_session_authres_render(session));
}

static void session_end_of_data(PstSession *session) {
  const PstSmtpReply *fault = session_message_fault(session);
  g_autoptr(GPtrArray) fields =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_header_field_free);
  if (fault == NULL && !session_parse_header(session, fields))
    fault = &reply_header_too_big;
  if (fault == NULL && session_too_many_hops(session, fields))
    fault = &reply_too_many_hops;
  /* Plugins and the commit may take a while: what only the reception
   * needed goes now (the header block), not when hundreds of messages
   * ending at once are queued. */
  g_clear_pointer(&session->header, g_byte_array_unref);
  if (fault != NULL) {
    pst_session_log_reject(session, "END-OF-MESSAGE", fault->code,
                           fault->enhanced, fault->text, NULL, "core");
    pst_session_reply_static(session, fault);
    session_end_transaction(session);
    return;
  }
  if (session->disposition == PST_DISPOSITION_DISCARD ||
      session->envelope->recipients->len == 0) {
    session_discard_message(session, NULL);
    return;
  }
  PstEnvelope *envelope = session->envelope;
  envelope->arrival_time = g_get_real_time();
  PstPluginSet *plugins = pst_generation_get_plugins(session->generation);
  const char *listener = session->listener->name;
  gboolean hooks =
      plugins != NULL &&
      (pst_chain_has_hooks(plugins, listener, PST_STAGE_EOM) ||
       pst_chain_has_hooks(plugins, listener, PST_STAGE_QUEUED));
  /* Without plugins at EOM the results are final now (the field is
   * rendered once, here), and the message is only built when the
   * Authentication-Results field needs edits. */
  g_autofree char *authres = NULL;
  if (!hooks) {
    authres = pst_session_authres_render(session);
    if (!pst_session_authres_needed(session, fields, authres) &&
        !pst_session_submission_needed(session, fields)) {
      session_commit(session, NULL);
      return;
    }
  }
  if (!session_flush_for_readers(session))
    return;
  session->message = pst_message_new(
      pst_spool_writer_get_id(session->writer), g_steal_pointer(&fields),
      pst_spool_writer_get_path(session->writer), session->header_length,
      pst_spool_writer_get_size(session->writer), envelope);
  pst_session_authres_strip(session, session->message);
  pst_session_submission_complete(session, session->message);
  if (!hooks) {
    session_commit(session, g_steal_pointer(&authres));
    return;
  }
  PstHookArgs args = {.message = session->message};
  pst_session_run_stage(session, PST_STAGE_EOM, &args, session_eom_done);
}

static void session_log_queued(PstSession *session, const char *id) {
  pst_log_message(
      "%s: queued from=<%s>, size=%" G_GUINT64_FORMAT
      ", nrcpt=%u, session=%s, queue=%s",
      id, session->envelope->sender, pst_spool_writer_get_size(session->writer),
      session->envelope->recipients->len, session->id,
      session->disposition == PST_DISPOSITION_HOLD ? "hold" : "active");
}

/* The 250 goes out (with the replies to what the client pipelined after
 * the message) before the queue manager is told: waking its thread first
 * could put it on this core ahead of the reply. */
static void session_commit_done(GObject *source, GAsyncResult *result,
                                gpointer user_data) {
  PstSession *session = user_data;
  g_autoptr(GError) error = NULL;
  session->waiting = PST_SESSION_WAIT_NONE;
  g_autofree char *queued = NULL;
  gboolean held = session->disposition == PST_DISPOSITION_HOLD;
  const char *id = pst_spool_writer_get_id(session->writer);
  if (pst_spool_writer_commit_finish(session->writer, result, &error)) {
    session_log_queued(session, id);
    pst_session_reply(session, 250, "2.0.0", "Ok: queued as %s", id);
    if (session->message != NULL)
      pst_session_fire_event(session, PST_STAGE_QUEUED, session->message);
    queued = g_strdup(id);
  } else {
    g_warning("%s: queue file write error: %s", id, error->message);
    pst_session_reply_static(session, session_spool_reply(error));
  }
  session_end_transaction(session);
  if (session->shutting_down)
    pst_session_abort(session);
  pst_session_resume(session);
  if (queued != NULL)
    pst_generation_notify_committed(session->generation, queued, held);
  pst_session_unref(session);
}
