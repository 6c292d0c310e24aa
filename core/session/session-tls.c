/* session-tls.c - the core's side of TLS on a server session: STARTTLS
 * (RFC 3207) and implicit TLS (RFC 8314), over the transport service
 * (<postilion/transport.h>); the crypto is the provider plugin's.
 *
 * STARTTLS, in order:
 *   1. check: not inside TLS (503), not before HELO/EHLO (503), no
 *      argument (501), offered on this listener (502 otherwise);
 *   2. reply 220 and stop reading: the session waits (WAIT_TLS), so
 *      nothing pipelined after STARTTLS runs;
 *   3. once the 220 is written, pst_session_tls_begin() drops every
 *      plaintext octet read after it (CVE-2011-0411: a man in the middle
 *      must not inject commands that would run inside TLS) and starts the
 *      handshake on the socket;
 *   4. on success the SMTP state is forgotten as RFC 3207 section 4.2
 *      says: no HELO (the client must EHLO again), no transaction, no
 *      AUTH; on failure the connection is closed without a reply (none
 *      could be read) and the reason logged.
 *
 * Implicit TLS (mode = tls): pst_session_start() calls
 * pst_session_tls_begin() before anything, and the reverse name lookup,
 * CONNECT and the banner follow the handshake.
 *
 * The handshake callback holds a session reference; session_finish()
 * cancels the handshake, so a callback after the close only drops it.
 */
#include "session/session-private.h"
#include "transport/transport.h"

static const PstSmtpReply reply_tls_active = {503, "5.5.1",
                                              "Error: TLS already active"};

gboolean pst_session_offers_starttls(PstSession *session) {
  return session->listener->mode == PST_LISTENER_MODE_STARTTLS &&
         !session->tls &&
         pst_generation_get_transport(session->generation) != NULL;
}

const PstSmtpReply *pst_session_check_starttls(PstSession *session) {
  if (session->tls)
    return &reply_tls_active;
  if (session->listener->mode != PST_LISTENER_MODE_STARTTLS ||
      pst_generation_get_transport(session->generation) == NULL)
    return &pst_session_reply_not_offered;
  if (session->state == PST_SESSION_STATE_GREETED)
    return &pst_session_reply_need_helo;
  return NULL;
}

void pst_session_command_starttls(PstSession *session,
                                  const PstSmtpCommand *command) {
  if (command->argument_length != 0) {
    pst_session_reply(session, 501, "5.5.4", "Syntax: STARTTLS");
    return;
  }
  pst_session_reply(session, 220, "2.0.0", "Ready to start TLS");
  /* session_can_process() is FALSE from here: the rest of the client's
   * input stays unread until pst_session_tls_begin() drops it. */
  session->waiting = PST_SESSION_WAIT_TLS;
  session->starttls_pending = TRUE;
}

/* RFC 3207 section 4.2: the client must start over. */
static void session_tls_forget(PstSession *session) {
  pst_session_reset_transaction(session);
  g_clear_pointer(&session->helo, g_free);
  pst_session_auth_forget(session);
  g_clear_pointer(&session->auth_user, g_free);
  session->esmtp = FALSE;
  pst_session_set_state(session, PST_SESSION_STATE_GREETED);
}

static void session_tls_log(PstSession *session) {
  PstTransport *transport = session->transport;
  const char *sni = pst_transport_get_tls_server_name(transport);
  g_message("%s: TLS established from [%s]:%u: %s with cipher %s "
            "(%u bits)%s%s",
            session->id, session->client_address, session->client_port,
            pst_transport_get_tls_version(transport),
            pst_transport_get_tls_cipher(transport),
            pst_transport_get_tls_cipher_bits(transport),
            sni != NULL ? " sni=" : "", sni != NULL ? sni : "");
}

static void session_tls_handshake_done(GObject *source, GAsyncResult *result,
                                       gpointer user_data) {
  PstSession *session = user_data; /* the handshake's reference */
  g_autoptr(GError) error = NULL;
  gboolean ok =
      pst_transport_handshake_finish(session->transport, result, &error);
  if (session->fd < 0 || session->handshake == NULL) {
    pst_session_unref(session); /* closed meanwhile */
    return;
  }
  g_clear_object(&session->handshake);
  session->waiting = PST_SESSION_WAIT_NONE;
  if (!ok) {
    g_message("%s: TLS handshake failed with [%s]:%u: %s", session->id,
              session->client_address, session->client_port, error->message);
    pst_session_drop(session);
    pst_session_unref(session);
    return;
  }
  session->tls = TRUE;
  session_tls_log(session);
  if (session->state == PST_SESSION_STATE_CONNECT)
    /* Implicit TLS: now the reverse name, CONNECT and the banner. */
    pst_session_lookup_client_name(session, pst_session_start_connect);
  else
    session_tls_forget(session);
  pst_session_resume(session);
  pst_session_unref(session);
}

void pst_session_tls_begin(PstSession *session) {
  /* Plaintext read after STARTTLS is never processed. */
  g_clear_pointer(&session->input, g_byte_array_unref);
  session->input_offset = 0;
  session->discarding_line = FALSE;

  g_autoptr(GError) error = NULL;
  PstTransport *tls = pst_transport_new_tls_server(
      pst_generation_get_transport(session->generation), session->fd,
      session->listener->name, &error);
  if (tls == NULL) {
    g_warning("%s: cannot start TLS with [%s]:%u: %s", session->id,
              session->client_address, session->client_port, error->message);
    pst_session_drop(session);
    return;
  }
  pst_transport_unref(session->transport);
  session->transport = tls;
  session->waiting = PST_SESSION_WAIT_TLS;
  session->handshake = g_cancellable_new();
  pst_transport_handshake_async(session->transport, 0, session->handshake,
                                session_tls_handshake_done,
                                pst_session_ref(session));
  /* The caller's settle stops watching the socket and the idle deadline
   * (WAIT_TLS): the handshake has its own. */
}

/* --- The SDK accessors ------------------------------------------------- */

PST_API const char *pst_session_get_tls_version(PstSession *session) {
  return pst_transport_get_tls_version(session->transport);
}

PST_API const char *pst_session_get_tls_cipher(PstSession *session) {
  return pst_transport_get_tls_cipher(session->transport);
}

PST_API guint pst_session_get_tls_cipher_bits(PstSession *session) {
  return pst_transport_get_tls_cipher_bits(session->transport);
}

PST_API const char *pst_session_get_tls_server_name(PstSession *session) {
  return pst_transport_get_tls_server_name(session->transport);
}

PST_API GBytes *pst_session_get_tls_peer_certificate(PstSession *session) {
  return pst_transport_get_tls_peer_certificate(session->transport);
}
