/* session.c - one SMTP connection: lifecycle, socket I/O, replies, timers.
 *
 * A session is driven by one GSource that watches its socket and carries its
 * idle deadline as the source's ready time, so resetting the timer costs a
 * store, not a new timer.  Reading appends to nothing when it can: complete
 * command lines and message bytes are processed straight from the read
 * buffer on the stack, and only a partial line is kept (session->input),
 * which keeps an idle session small.
 *
 * Replies are queued in session->output and written when the session runs
 * out of complete input or starts to wait (RFC 2920: replies to a pipelined
 * group go out together).  While a plugin call or a spool commit is
 * pending the session keeps reading, bounded, so that a client that leaves
 * is noticed and the pending work cancelled.
 *
 * Every byte goes through session->transport (<postilion/transport.h>):
 * plain at first, TLS after STARTTLS or from the start on a mode=tls
 * listener.  While the handshake runs (PST_SESSION_WAIT_TLS) the session
 * watches nothing: the handshake driver owns the socket.  Decrypted input
 * that TLS holds does not make the socket readable, so read_pending makes
 * the source dispatch at once instead.
 *
 * Entry points: pst_session_start() (server), the event dispatch below,
 * and the helpers in session-private.h used by the session's other files.
 */
#include <string.h>
#include <unistd.h>

#include "session/session-private.h"
#include "smtp/smtp-auth.h"
#include "util/log.h"
#include "util/vformat.h"

/* Sessions receiving message content (DATA, BDAT: "bulk") must not delay
 * a new client's banner, however many send at once:
 *  - their sources run below everything else on the main loop (accepting,
 *    DNS answers, TLS handshake steps, plugin and commit completions,
 *    sessions between commands), so none of those waits for bulk data in
 *    an iteration where both are ready;
 *  - a bulk session reads one buffer per dispatch, and bulk reading in one
 *    main-loop iteration stops after SESSION_BULK_SLICE_US, so the
 *    listener and the resolver are polled again at least that often.  The
 *    sessions left over stay readable and go first in the next iteration:
 *    every session gets a turn number when it becomes bulk (GLib keeps
 *    sources of one priority in the order they got it, so dispatch order
 *    is turn order), and an iteration serves the turns after the last one
 *    served, starting over from the first once one reached the end with
 *    time to spare (session_bulk_may_read).
 * Two GLib costs that grow with the number of sessions are avoided too:
 * a source that may not recurse has its descriptor taken out of and put
 * back into the context's sorted poll list around every dispatch (two
 * walks of a list as long as the sessions), so session sources may
 * recurse (nothing runs a nested main loop in a session's dispatch); and
 * changing a source's descriptor events, priority or ready time writes
 * the context's wake-up eventfd (GLib does so even on the thread that
 * runs the loop, and the loop then polls once more for nothing), so:
 *  - the source starts watching input with its first deadline set, before
 *    it is attached;
 *  - the watch is changed only when it differs;
 *  - a deadline is armed lazily: one already armed that is earlier than
 *    the new one is left to fire early (the dispatch then re-arms it), and
 *    a wait (plugin, DNS, commit) leaves it armed too (the dispatch then
 *    disarms it), so a command, a lookup or a commit costs no wake-up;
 *  - a session in DATA or BDAT becomes bulk (the low priority) only after
 *    SESSION_BULK_AFTER octets of content: a message up to twice the read
 *    size is read in one dispatch (a 64 KiB message and its final dot in
 *    two reads), while switching to bulk after the first read would cost
 *    the message two priority changes (two wake-ups each) and a main-loop
 *    iteration of its own for the last few octets, all on the path to its
 *    250. */
#define SESSION_PRIORITY_BULK G_PRIORITY_LOW
#define SESSION_READ_SIZE (64 * 1024)
#define SESSION_BULK_AFTER (2 * SESSION_READ_SIZE)
#define SESSION_BULK_SLICE_US 2000
#define SESSION_READ_ROUNDS 4
/* Input kept while a command waits, before the session stops reading. */
#define SESSION_INPUT_LIMIT (256 * 1024)
/* Replies queued for a client that does not read, before it is dropped. */
#define SESSION_OUTPUT_LIMIT (1024 * 1024)

struct _PstSessionSource {
  GSource source;
  PstSession *session; /* not owned: the session owns the source */
  gpointer fd_tag;
  GIOCondition watched; /* the events fd_tag watches now */
  guint64 bulk_turn;    /* its place among bulk sessions */
};

/* The bulk sessions' round (main thread only; see the top). */
static struct {
  guint64 last_turn;   /* handed out last */
  guint64 served_turn; /* the last one that read in this round */
  gint64 iteration;    /* the main-loop iteration seen last (its time) */
  gboolean out_of_time; /* that iteration used its whole slice */
} session_bulk;

static void session_handle_events(PstSession *session, GIOCondition events);
static void session_finish(PstSession *session);
static void session_settle(PstSession *session);

/* --- The GSource ------------------------------------------------------- */

static gboolean session_source_dispatch(GSource *source, GSourceFunc callback,
                                        gpointer user_data) {
  PstSessionSource *self = (PstSessionSource *)source;
  GIOCondition events = g_source_query_unix_fd(source, self->fd_tag);
  PstSession *session = pst_session_ref(self->session);
  session_handle_events(session, events);
  pst_session_unref(session);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs session_source_funcs = {
    .dispatch = session_source_dispatch,
};

static gboolean session_in_message(PstSession *session) {
  return session->state == PST_SESSION_STATE_DATA ||
         session->state == PST_SESSION_STATE_BDAT;
}

/* TRUE when the session reads content at the bulk priority (see the top). */
static gboolean session_is_bulk(PstSession *session) {
  return session_in_message(session) &&
         session->content_read >= SESSION_BULK_AFTER;
}

static void session_watch(PstSession *session, GIOCondition condition) {
  if (session->source == NULL)
    return;
  PstSessionSource *self = session->source;
  if (self->watched != condition) {
    g_source_modify_unix_fd(&self->source, self->fd_tag, condition);
    self->watched = condition;
  }
  gint priority =
      session_is_bulk(session) ? SESSION_PRIORITY_BULK : G_PRIORITY_DEFAULT;
  if (g_source_get_priority(&self->source) != priority) {
    g_source_set_priority(&self->source, priority);
    if (priority == SESSION_PRIORITY_BULK)
      self->bulk_turn = ++session_bulk.last_turn;
  }
}

/* Sets the source's ready time (-1: none, 0: dispatch now), but leaves a
 * deadline still ahead armed when the new one is later or none (see the
 * top): session_handle_events() re-arms or disarms it when it fires. */
static void session_arm(PstSession *session, gint64 ready_time) {
  GSource *source = &session->source->source;
  gint64 armed = g_source_get_ready_time(source);
  if (armed == ready_time)
    return;
  if (ready_time != 0 && armed > 0 && (ready_time < 0 || ready_time > armed) &&
      armed > g_get_monotonic_time())
    return;
  g_source_set_ready_time(source, ready_time);
}

/* The conditions the session wants now: input unless it holds too much,
 * output while replies are unwritten. */
static void session_update_watch(PstSession *session) {
  GIOCondition condition = 0;
  session->read_pending = FALSE;
  if (session->waiting == PST_SESSION_WAIT_TLS) {
    /* Only STARTTLS's 220 may still go out; the handshake owns input. */
    if (session->output->len > session->output_offset)
      condition |= G_IO_OUT;
    session_watch(session, condition);
    return;
  }
  gsize buffered = session->input != NULL
                       ? session->input->len - session->input_offset
                       : 0;
  if (!session->peer_closed && session->state != PST_SESSION_STATE_CLOSING &&
      buffered < SESSION_INPUT_LIMIT)
    condition |= G_IO_IN;
  if (session->output->len > session->output_offset)
    condition |= G_IO_OUT;
  session->read_pending = (condition & G_IO_IN) &&
                          pst_transport_has_pending(session->transport);
  session_watch(session, condition);
}

void pst_session_touch(PstSession *session) {
  if (session->source == NULL)
    return;
  const PstServerConfig *server = &session->config->server;
  guint timeout_ms = session_in_message(session) ? server->timeout_data_ms
                                                 : server->timeout_command_ms;
  if (session->read_pending) {
    /* Dispatch now: TLS holds input the socket will not announce. */
    session_arm(session, 0);
    return;
  }
  if (session->waiting != PST_SESSION_WAIT_NONE) {
    /* Plugins, the spool and the TLS handshake have deadlines of their
     * own. */
    session_arm(session, -1);
    return;
  }
  /* Between commands the deadline runs from the end of the last command
   * (or the state change) to the end of the next line, not from the last
   * octet: a client that trickles a byte at a time is closed after
   * timeout_command all the same.  In DATA and BDAT it is an idle timer. */
  if (session_in_message(session) || session->command_deadline == 0 ||
      session->command_deadline_total != session->command_total ||
      session->command_deadline_state != session->state) {
    session->command_deadline =
        g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    session->command_deadline_total = session->command_total;
    session->command_deadline_state = session->state;
  }
  session_arm(session, session->command_deadline);
}

/* --- Lifecycle --------------------------------------------------------- */

static void session_make_id(char *buffer, gsize size) {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuv";
  static guint32 counter;
  guint64 value = ((guint64)(g_get_real_time() / 1000000) << 24) |
                  (++counter & 0xffffff);
  char digits[14];
  int n = 0;
  for (; n < 13; n++, value >>= 5)
    digits[12 - n] = alphabet[value & 31];
  digits[13] = '\0';
  /* "s" and the last ten digits, cut to `size` like snprintf. */
  g_assert(size > 0);
  buffer[0] = 's';
  g_strlcpy(buffer + 1, digits + 3, size - 1);
}

PstSession *pst_session_start(const PstSessionSetup *setup) {
  PstSession *session = g_new0(PstSession, 1);
  session->ref_count = 1;
  session_make_id(session->id, sizeof session->id);
  session->generation = pst_generation_ref(setup->generation);
  session->config = pst_generation_get_config(session->generation);
  session->listener = setup->listener;
  session->spool = setup->spool;
  session->closed = setup->closed;
  session->closed_data = setup->closed_data;
  session->fd = setup->fd;
  session->answering = PST_SMTP_VERB_COUNT;
  session->transport = pst_transport_new_plain(setup->fd);
  session->client_address = g_strdup(setup->client_address);
  session->client_port = setup->client_port;
  session->local_address = g_strdup(setup->local_address);
  session->local_port = setup->local_port;
  session->xclient_allowed =
      pst_config_is_xclient_host(session->config, setup->client_address);
  session->output = g_string_sized_new(256);
  session->results.session = pst_results_new();

  GSource *source = g_source_new(&session_source_funcs,
                                 sizeof(PstSessionSource));
  session->source = (PstSessionSource *)source;
  session->source->session = session;
  /* Watching input, with a first deadline, before it is attached: no
   * wake-up for either (see the top).  The shorter of the two timeouts,
   * so that every deadline pst_session_touch() sets later is later than
   * this one and leaves it armed. */
  session->source->fd_tag =
      g_source_add_unix_fd(source, session->fd, G_IO_IN);
  session->source->watched = G_IO_IN;
  const PstServerConfig *server = &session->config->server;
  guint first_ms = MIN(server->timeout_command_ms, server->timeout_data_ms);
  g_source_set_ready_time(source,
                          g_get_monotonic_time() + (gint64)first_ms * 1000);
  g_source_set_can_recurse(source, TRUE);
  g_source_attach(source, NULL);

  pst_log_message("%s: connect from [%s]:%u to listener %s", session->id,
                  session->client_address, session->client_port,
                  session->listener->name);
  pst_session_set_state(session, PST_SESSION_STATE_CONNECT);
  pst_session_ref(session);
  /* Implicit TLS: the handshake comes first (nothing may read the
   * ClientHello as SMTP), the reverse name and CONNECT after it. */
  if (session->listener->mode == PST_LISTENER_MODE_TLS)
    pst_session_tls_begin(session);
  else
    pst_session_lookup_client_name(session, pst_session_start_connect);
  /* Write the banner when CONNECT decided at once, or watch the socket
   * while it is pending, so a client that leaves cancels the call.  That
   * may end the session (a refusal that disconnects): then NULL. */
  session_settle(session);
  gboolean open = session->fd >= 0;
  pst_session_unref(session);
  return open ? session : NULL;
}

PstSession *pst_session_ref(PstSession *session) {
  g_atomic_int_inc(&session->ref_count);
  return session;
}

void pst_session_unref(PstSession *session) {
  if (!g_atomic_int_dec_and_test(&session->ref_count))
    return;
  g_assert(session->fd < 0);
  pst_session_reset_transaction(session);
  g_clear_pointer(&session->results.session, pst_results_free);
  g_clear_pointer(&session->input, g_byte_array_unref);
  g_clear_pointer(&session->transport, pst_transport_unref);
  g_string_free(session->output, TRUE);
  g_free(session->client_address);
  g_clear_object(&session->client_inet);
  g_free(session->client_hostname);
  g_clear_object(&session->rdns_cancellable);
  g_free(session->local_address);
  g_free(session->helo);
  g_free(session->auth_user);
  pst_generation_unref(session->generation);
  g_free(session);
}

static const char *session_state_name(PstSessionState state) {
  static const char *const names[] = {
      "connect", "greeted", "ready",   "mail",   "rcpt",
      "data",    "bdat",    "refused", "closing", "closed", "auth",
  };
  return state < G_N_ELEMENTS(names) ? names[state] : "?";
}

void pst_session_set_state(PstSession *session, PstSessionState state) {
  /* Once closing, only closed follows: a handler that replied with an
   * error that ended the session must not reopen it. */
  if ((session->state == PST_SESSION_STATE_CLOSING &&
       state != PST_SESSION_STATE_CLOSED) ||
      session->state == PST_SESSION_STATE_CLOSED)
    return;
  if (pst_log_debug_enabled())
    g_debug("%s: state %s -> %s", session->id,
            session_state_name(session->state), session_state_name(state));
  session->state = state;
  session->content_read = 0;
}

void pst_session_reset_transaction(PstSession *session) {
  g_clear_pointer(&session->envelope, pst_envelope_free);
  g_clear_pointer(&session->writer, pst_spool_writer_free);
  g_clear_pointer(&session->reader, pst_data_reader_free);
  g_clear_pointer(&session->header, g_byte_array_unref);
  g_clear_pointer(&session->message, pst_message_unref);
  g_clear_pointer(&session->results.transaction, pst_results_free);
  g_clear_pointer(&session->results.recipients, g_ptr_array_unref);
  session->disposition = session->session_disposition;
  session->discarded_recipients = 0;
  g_clear_pointer(&session->command_path, pst_smtp_path_free);
  pst_rcpt_params_clear(&session->rcpt_params);
  session->header_complete = FALSE;
  session->header_overflow = FALSE;
  session->header_length = 0;
  session->write_failed = FALSE;
  session->bdat_used = FALSE;
  session->bdat_remaining = 0;
  session->bdat_last = FALSE;
  session->bdat_discard = FALSE;
}

/* Appends " name=N", or " name=OK/N" when some of the N were refused
 * (Postfix's "rcpt=0/1"), with `name` in lower case, at *p; the buffer
 * has room for the longest verb and two numbers. */
static char *session_append_count(char *p, const char *name, guint total,
                                  guint failed) {
  *p++ = ' ';
  for (; *name != '\0'; name++)
    *p++ = g_ascii_tolower(*name);
  *p++ = '=';
  if (failed != 0) {
    p += pst_format_decimal(p, total - failed);
    *p++ = '/';
  }
  return p + pst_format_decimal(p, total);
}

/* Logs the disconnect line with the command counts, Postfix style.  Put
 * together by hand in one buffer (one entry per verb used, each at most
 * " starttls=N/N"): it is written at every disconnect, and building it
 * with printf calls and a lower-case copy of each verb's name cost more
 * than the rest of the line. */
static void session_log_disconnect(PstSession *session) {
  char counts[(PST_SMTP_VERB_COUNT + 1) * 40];
  char *p = counts;
  for (guint verb = 0; verb < PST_SMTP_VERB_COUNT; verb++) {
    if (session->command_counts[verb] == 0)
      continue;
    const char *name = pst_smtp_verb_to_string(verb);
    g_assert(strlen(name) <= 16);
    p = session_append_count(p, name, session->command_counts[verb],
                             session->command_failures[verb]);
  }
  p = session_append_count(p, "commands", session->command_total,
                           session->command_failures_total);
  *p = '\0';
  pst_log_message("%s: disconnect from [%s]:%u%s", session->id,
                  session->client_address, session->client_port, counts);
}

/* Closes the socket, cancels pending work, fires DISCONNECT.  Idempotent. */
static void session_finish(PstSession *session) {
  if (session->fd < 0)
    return;
  if (session->rdns_cancellable != NULL)
    g_cancellable_cancel(session->rdns_cancellable);
  if (session->run != NULL) {
    /* A cancelled run never calls back: drop the reference it held. */
    pst_chain_run_cancel(session->run);
    session->run = NULL;
    session->waiting = PST_SESSION_WAIT_NONE;
    pst_session_unref(session);
  }
  if (session->handshake != NULL) {
    /* The handshake's callback still runs, and holds a reference. */
    g_cancellable_cancel(session->handshake);
    g_clear_object(&session->handshake);
  }
  pst_session_auth_finish(session);
  g_source_destroy(&session->source->source);
  g_source_unref(&session->source->source);
  session->source = NULL;
  /* The transport lives until the session goes: DISCONNECT hooks may
   * still read its TLS state. */
  pst_transport_shutdown(session->transport);
  close(session->fd);
  session->fd = -1;
  pst_session_set_state(session, PST_SESSION_STATE_CLOSED);
  session_log_disconnect(session);
  pst_session_fire_event(session, PST_STAGE_DISCONNECT, NULL);
  if (session->closed != NULL)
    session->closed(session, session->closed_data);
  pst_session_unref(session);
}

void pst_session_drop(PstSession *session) {
  session_finish(session);
}

/* --- Output ------------------------------------------------------------ */

/* Writes queued replies; FALSE when the connection failed. */
static gboolean session_flush(PstSession *session) {
  while (session->output->len > session->output_offset) {
    g_autoptr(GError) error = NULL;
    gssize n = pst_transport_write(
        session->transport, session->output->str + session->output_offset,
        session->output->len - session->output_offset, &error);
    if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      break;
    if (n <= 0) {
      g_debug("%s: write to client failed: %s", session->id,
              n < 0 ? error->message : "closed");
      return FALSE;
    }
    session->output_offset += n;
  }
  if (session->output_offset == session->output->len) {
    g_string_truncate(session->output, 0);
    session->output_offset = 0;
  }
  return TRUE;
}

/* Counts a 4xx/5xx to the command being answered, once per command. */
static void session_count_failure(PstSession *session, guint code) {
  if (code < 400 || session->answering >= PST_SMTP_VERB_COUNT ||
      session->answering_failed)
    return;
  session->answering_failed = TRUE;
  session->command_failures[session->answering]++;
  session->command_failures_total++;
}

void pst_session_count_command(PstSession *session, PstSmtpVerb verb) {
  session->command_total++;
  session->command_counts[verb]++;
  session->answering = verb;
  session->answering_failed = FALSE;
}

static void session_append_reply(PstSession *session, guint code, char sep,
                                 const char *enhanced, const char *text) {
  if (sep == ' ')
    session_count_failure(session, code);
  if (code >= 100 && code <= 999) {
    /* Not printf: a reply per command, formatting showed in profiles. */
    char head[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
                    (char)('0' + code % 10), sep};
    g_string_append_len(session->output, head, sizeof head);
  } else {
    g_string_append_printf(session->output, "%03u%c", code, sep);
  }
  /* Enhanced codes go out always, as Postfix does: clients that did not
   * ask for them (HELO) read them as part of the text. */
  if (enhanced != NULL) {
    g_string_append(session->output, enhanced);
    g_string_append_c(session->output, ' ');
  }
  gsize start = session->output->len;
  gsize length = strlen(text);
  g_string_append_len(session->output, text, (gssize)length);
  /* A reply is one line: whatever a plugin wrote, no CR/LF reaches the
   * client. */
  if (text[strcspn(text, "\r\n")] != '\0')
    for (gsize i = start; i < session->output->len; i++) {
      char c = session->output->str[i];
      if (c == '\r' || c == '\n')
        session->output->str[i] = ' ';
    }
  g_string_append_len(session->output, "\r\n", 2);
}

void pst_session_reply_line(PstSession *session, guint code, gboolean last,
                            const char *text) {
  session_append_reply(session, code, last ? ' ' : '-', NULL, text);
}

static void session_count_error(PstSession *session, guint code) {
  if (code < 400 || session->state == PST_SESSION_STATE_CLOSING)
    return;
  session->errors++;
  if (session->errors <= session->config->server.max_errors)
    return;
  g_message("%s: too many errors from [%s]:%u", session->id,
            session->client_address, session->client_port);
  g_autofree char *text = g_strdup_printf(
      "%s Error: too many errors", session->config->server.hostname);
  session_append_reply(session, 421, ' ', "4.7.0", text);
  pst_session_close_after_reply(session);
}

void pst_session_reply(PstSession *session, guint code, const char *enhanced,
                       const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *formatted = NULL;
  char stack[1024];
  const char *text;
  if (strchr(format, '%') == NULL || strcmp(format, "%s") == 0) {
    text = pst_vformat_text(format, args, &formatted); /* no copy */
  } else if (pst_vformat_into(stack, sizeof stack, format, args) <
             sizeof stack) {
    text = stack; /* "Ok: queued as %s": no allocation, no printf */
  } else {
    va_end(args);
    va_start(args, format);
    text = formatted = g_strdup_vprintf(format, args);
  }
  va_end(args);
  session_append_reply(session, code, ' ', enhanced, text);
  session_count_error(session, code);
}

void pst_session_reply_static(PstSession *session, const PstSmtpReply *reply) {
  session_append_reply(session, reply->code, ' ', reply->enhanced,
                       reply->text);
  session_count_error(session, reply->code);
}

void pst_session_close_after_reply(PstSession *session) {
  if (session->state == PST_SESSION_STATE_CLOSED)
    return;
  pst_session_set_state(session, PST_SESSION_STATE_CLOSING);
  /* Nothing the client sent after this is read. */
  g_clear_pointer(&session->input, g_byte_array_unref);
  session->input_offset = 0;
  if (!session->processing) {
    if (!session_flush(session) ||
        session->output->len == session->output_offset)
      session_finish(session);
    else
      session_update_watch(session);
  }
}

/* --- Input ------------------------------------------------------------- */

/* TRUE while the session may consume more input now. */
static gboolean session_can_process(PstSession *session) {
  switch (session->state) {
  case PST_SESSION_STATE_CONNECT:
  case PST_SESSION_STATE_CLOSING:
  case PST_SESSION_STATE_CLOSED:
    return FALSE;
  default:
    return session->waiting == PST_SESSION_WAIT_NONE &&
           session->output->len - session->output_offset <
               SESSION_OUTPUT_LIMIT;
  }
}

/* Handles one line of command input: a line too long is refused once and
 * the rest of it skipped. */
static gsize session_process_command(PstSession *session, const guint8 *data,
                                     gsize length, gboolean at_eof) {
  const guint8 *newline = memchr(data, '\n', length);
  /* AUTH lines may be longer (RFC 4954 section 4). */
  gboolean auth_line =
      session->state == PST_SESSION_STATE_AUTH ||
      pst_smtp_line_is_auth((const char *)data, length);
  gsize limit =
      auth_line ? PST_SMTP_MAX_AUTH_LINE : PST_SMTP_MAX_COMMAND_LINE;
  if (newline == NULL) {
    if (length < limit && !at_eof)
      return 0; /* wait for the rest of the line */
    if (!session->discarding_line && auth_line)
      pst_session_auth_line_too_long(session);
    else if (!session->discarding_line)
      pst_session_reply(session, 500, "5.5.2", "Error: line too long");
    session->discarding_line = TRUE;
    return length;
  }
  gsize consumed = newline - data + 1;
  gsize line_length = consumed - 1;
  gboolean crlf = line_length > 0 && data[line_length - 1] == '\r';
  if (crlf)
    line_length--;
  if (session->discarding_line) {
    session->discarding_line = FALSE;
    return consumed;
  }
  if (session->state == PST_SESSION_STATE_AUTH) {
    if (line_length > PST_SMTP_MAX_AUTH_LINE - 2)
      pst_session_auth_line_too_long(session);
    else
      pst_session_auth_line(session, (const char *)data, line_length);
    return consumed;
  }
  /* Only CRLF ends a line (RFC 5321 section 2.3.8): a bare LF is refused,
   * never taken as the end of a command, so no two programs on the path
   * can split this client's input differently. */
  PstSmtpCommand command;
  if (!crlf && (pst_smtp_command_parse((const char *)data, line_length,
                                       &command) != NULL ||
                command.verb != PST_SMTP_VERB_NOT_SMTP)) {
    /* Web and TLS clients end lines their own way: they still get the
     * non-SMTP reply below. */
    pst_session_count_command(session, PST_SMTP_VERB_UNKNOWN);
    pst_session_reply_static(session, &pst_smtp_reply_bare_cr_lf_in_command);
    return consumed;
  }
  if (line_length > limit - 2) {
    if (auth_line)
      pst_session_auth_line_too_long(session);
    else
      pst_session_reply(session, 500, "5.5.2", "Error: line too long");
    return consumed;
  }
  pst_session_dispatch_line(session, (const char *)data, line_length);
  return consumed;
}

/* Consumes as much of data[0..length) as the state allows; returns the
 * number of octets used. */
static gsize session_process(PstSession *session, const guint8 *data,
                             gsize length) {
  gsize offset = 0;
  session->processing = TRUE;
  while (offset < length && session_can_process(session)) {
    gsize used;
    if (session_in_message(session))
      used = pst_session_feed_message(session, data + offset, length - offset);
    else
      used = session_process_command(session, data + offset, length - offset,
                                     session->peer_closed);
    if (used == 0)
      break;
    offset += used;
  }
  session->processing = FALSE;
  return offset;
}

/* Processes buffered input (after a read or when resuming). */
static void session_process_buffered(PstSession *session) {
  if (session->input == NULL)
    return;
  gsize used = session_process(session,
                               session->input->data + session->input_offset,
                               session->input->len - session->input_offset);
  session->input_offset += used;
  if (session->input != NULL &&
      session->input_offset == session->input->len) {
    /* Idle sessions keep no buffer. */
    g_clear_pointer(&session->input, g_byte_array_unref);
    session->input_offset = 0;
  } else if (session->input != NULL && session->input_offset > 4096) {
    g_byte_array_remove_range(session->input, 0, session->input_offset);
    session->input_offset = 0;
  }
}

static void session_keep_input(PstSession *session, const guint8 *data,
                               gsize length) {
  if (length == 0 || session->state == PST_SESSION_STATE_CLOSING)
    return;
  if (session->input == NULL)
    session->input = g_byte_array_sized_new(MAX(length, 512));
  g_byte_array_append(session->input, data, length);
}

/* TRUE when this bulk session may read now: its turn has not come yet
 * in this round and the iteration's slice has time left (see the top). */
static gboolean session_bulk_may_read(PstSession *session) {
  PstSessionSource *self = session->source;
  gint64 iteration = g_source_get_time(&self->source);
  if (iteration != session_bulk.iteration) {
    if (!session_bulk.out_of_time)
      session_bulk.served_turn = 0; /* the last round reached the end */
    session_bulk.iteration = iteration;
    session_bulk.out_of_time = FALSE;
  }
  if (self->bulk_turn <= session_bulk.served_turn)
    return FALSE;
  if (g_get_monotonic_time() - iteration > SESSION_BULK_SLICE_US) {
    session_bulk.out_of_time = TRUE;
    return FALSE;
  }
  session_bulk.served_turn = self->bulk_turn;
  return TRUE;
}

/* Reads what the socket has; returns FALSE when the connection is gone. */
static gboolean session_read(PstSession *session) {
  guint8 buffer[SESSION_READ_SIZE];
  gboolean bulk = session_is_bulk(session);
  if (bulk && !session_bulk_may_read(session))
    return TRUE;
  for (int round = 0; round < (bulk ? 1 : SESSION_READ_ROUNDS); round++) {
    g_autoptr(GError) error = NULL;
    gssize n =
        pst_transport_read(session->transport, buffer, sizeof buffer, &error);
    if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return TRUE;
    if (n < 0) {
      g_debug("%s: read from client failed: %s", session->id,
              error->message);
      return FALSE;
    }
    if (n == 0) {
      session->peer_closed = TRUE;
      return TRUE;
    }
    gboolean in_message = session_in_message(session);
    if (in_message)
      session->content_read += (gsize)n;
    if (session->input != NULL) {
      /* Earlier bytes wait: keep order. */
      session_keep_input(session, buffer, n);
      session_process_buffered(session);
    } else {
      gsize used = session_process(session, buffer, n);
      session_keep_input(session, buffer + used, n - used);
    }
    if (((gsize)n < sizeof buffer &&
         !pst_transport_has_pending(session->transport)) ||
        !session_can_process(session) ||
        (!bulk && in_message && session_is_bulk(session)))
      return TRUE; /* the rest of a large message at the bulk priority */
  }
  return TRUE;
}

/* Called after every event and every asynchronous completion: writes the
 * replies, notices the end of the connection, re-arms the watch. */
static void session_settle(PstSession *session) {
  if (session->fd < 0)
    return;
  if (!session_flush(session)) {
    session_finish(session);
    return;
  }
  gboolean drained = session->output->len == session->output_offset;
  if (session->state == PST_SESSION_STATE_CLOSING && drained) {
    session_finish(session);
    return;
  }
  if (session->starttls_pending && drained) {
    /* STARTTLS's 220 is out: the handshake starts on a clean stream. */
    session->starttls_pending = FALSE;
    pst_session_tls_begin(session);
    if (session->fd < 0)
      return;
  }
  if (session->peer_closed && session->state != PST_SESSION_STATE_CLOSING &&
      (session->waiting == PST_SESSION_WAIT_NONE ||
       session->waiting == PST_SESSION_WAIT_HOOK ||
       session->waiting == PST_SESSION_WAIT_DNS ||
       session->waiting == PST_SESSION_WAIT_AUTH)) {
    /* The client left: no reply can reach it.  A pending commit still
     * finishes (it holds a reference), a pending plugin call is cancelled. */
    if (session->state != PST_SESSION_STATE_REFUSED &&
        session->state != PST_SESSION_STATE_GREETED &&
        session->command_counts[PST_SMTP_VERB_QUIT] == 0)
      g_message("%s: lost connection from [%s]:%u in state %s", session->id,
                session->client_address, session->client_port,
                session_state_name(session->state));
    session_finish(session);
    return;
  }
  session_update_watch(session);
  pst_session_touch(session);
}

static void session_handle_events(PstSession *session, GIOCondition events) {
  if (session->fd < 0)
    return;
  if (events == 0 && session->read_pending) {
    /* Not a timeout: TLS holds decrypted input (see session_touch). */
    events = G_IO_IN;
    session->read_pending = FALSE;
  }
  if (events == 0) {
    /* The ready time passed: the idle timeout, unless it was armed early
     * (session_arm). */
    if (session->waiting == PST_SESSION_WAIT_NONE &&
        g_get_monotonic_time() < session->command_deadline) {
      g_source_set_ready_time(&session->source->source,
                              session->command_deadline);
      return;
    }
    g_source_set_ready_time(&session->source->source, -1);
    if (session->waiting != PST_SESSION_WAIT_NONE)
      return;
    g_message("%s: timeout after %s from [%s]:%u", session->id,
              session_state_name(session->state), session->client_address,
              session->client_port);
    pst_session_reply(session, 421, "4.4.2", "%s Error: timeout exceeded",
                      session->config->server.hostname);
    pst_session_close_after_reply(session);
    session_settle(session);
    return;
  }
  if (events & (G_IO_ERR | G_IO_NVAL)) {
    session_finish(session);
    return;
  }
  if (session->waiting == PST_SESSION_WAIT_TLS) {
    /* Nothing is read before the handshake: it reads for itself. */
    session_settle(session);
    return;
  }
  if ((events & (G_IO_IN | G_IO_HUP)) && !session_read(session)) {
    session_finish(session);
    return;
  }
  if (session->peer_closed && session->fd >= 0)
    session_process_buffered(session);
  session_settle(session);
}

void pst_session_resume(PstSession *session) {
  if (session->fd < 0)
    return;
  pst_session_ref(session);
  if (session->state != PST_SESSION_STATE_CLOSING)
    session_process_buffered(session);
  session_settle(session);
  pst_session_unref(session);
}

/* --- Shutdown ---------------------------------------------------------- */

void pst_session_shutdown(PstSession *session) {
  session->shutting_down = TRUE;
  if (session->fd < 0 || session->envelope != NULL ||
      session->waiting != PST_SESSION_WAIT_NONE)
    return; /* the transaction ends first: see pst_session_dispatch_line */
  pst_session_abort(session);
}

void pst_session_abort(PstSession *session) {
  if (session->fd < 0 || session->state == PST_SESSION_STATE_CLOSING)
    return;
  if (session->waiting == PST_SESSION_WAIT_COMMIT)
    return; /* the commit is quick and its 250 is owed */
  if (session->waiting == PST_SESSION_WAIT_TLS) {
    /* No reply can be sent in the middle of a handshake. */
    session_finish(session);
    return;
  }
  pst_session_ref(session);
  pst_session_reply(session, 421, "4.3.2", "%s Service shutting down",
                    session->config->server.hostname);
  pst_session_close_after_reply(session);
  session_settle(session);
  pst_session_unref(session);
}
