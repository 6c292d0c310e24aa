/* session-xclient.c - Postfix's XCLIENT command: a trusted proxy (nginx's
 * mail proxy, a test harness) passes on the real client's attributes.
 *
 *   XCLIENT ADDR=192.0.2.1 PORT=4711 NAME=client.example HELO=client.example
 *           LOGIN=alice PROTO=ESMTP
 *
 * As in Postfix's XCLIENT_README: attribute names are case-insensitive
 * (NAME, REVERSE_NAME, ADDR, PORT, PROTO, HELO, LOGIN, DESTADDR,
 * DESTPORT), values are xtext (RFC 3461), "[UNAVAILABLE]" and
 * "[TEMPUNAVAIL]" mean unknown, an IPv6 ADDR carries the "IPV6:" prefix,
 * attributes not sent keep their values.  A HELO name known after XCLIENT
 * (HELO=, or the EHLO before it) counts as the client's HELO, so MAIL may
 * follow the 220 at once, as in Postfix.  Success answers with a new 220
 * greeting: the session starts again as a new connection from that
 * client, so the transaction is forgotten, relay permission is
 * dropped, and the CONNECT plugins run again with the new address (the
 * relay plugin decides anew).  XCLIENT inside a transaction is refused.
 * Only clients in [server] xclient_hosts may use it (checked against the
 * connecting address, session->xclient_allowed): others get the reply of
 * an unknown command, and EHLO advertises it only to them.
 *
 * pst_xclient_parse() (xclient-parse.c) is pure and fuzzed;
 * pst_session_command_xclient() applies the result.  Called from the
 * command table in session-commands.c.
 */
#include <string.h>

#include "session/session-private.h"

/* --- The command ------------------------------------------------------- */

static void session_xclient_apply(PstSession *session,
                                  PstXclientAttrs *attrs) {
  if (attrs->set & PST_XCLIENT_ADDR) {
    /* No hook runs while a command is handled: nothing reads it now. */
    g_clear_object(&session->client_inet);
    g_free(session->client_address);
    /* Unknown: "unknown", as Postfix logs it; no plugin can parse it. */
    session->client_address =
        attrs->addr != NULL ? g_steal_pointer(&attrs->addr)
                            : g_strdup("unknown");
  }
  if (attrs->set & PST_XCLIENT_PORT)
    session->client_port = attrs->port;
  if (attrs->set & PST_XCLIENT_NAME) {
    g_free(session->client_hostname);
    session->client_hostname = g_steal_pointer(&attrs->name);
  } else if (attrs->set & PST_XCLIENT_ADDR) {
    /* The proxy's own name does not belong to the new address, and XCLIENT
     * never looks names up: the proxy passes NAME when it knows it. */
    g_clear_pointer(&session->client_hostname, g_free);
  }
  if (attrs->set & PST_XCLIENT_HELO) {
    g_free(session->helo);
    session->helo = g_steal_pointer(&attrs->helo);
  }
  if (attrs->set & PST_XCLIENT_PROTO)
    session->esmtp = attrs->esmtp;
  if (attrs->set & PST_XCLIENT_LOGIN) {
    g_free(session->auth_user);
    session->auth_user = g_steal_pointer(&attrs->login);
  }
  if ((attrs->set & PST_XCLIENT_DESTADDR) && attrs->destaddr != NULL) {
    g_free(session->local_address);
    session->local_address = g_steal_pointer(&attrs->destaddr);
  }
  if (attrs->set & PST_XCLIENT_DESTPORT)
    session->local_port = attrs->destport;
}

void pst_session_command_xclient(PstSession *session,
                                 const PstSmtpCommand *command) {
  PstXclientAttrs attrs;
  g_autofree char *problem =
      pst_xclient_parse(command->argument, command->argument_length, &attrs);
  if (problem != NULL) {
    pst_session_reply(session, 501, "5.5.4", "%s", problem);
    return;
  }
  g_autofree char *previous = g_strdup(session->client_address);
  guint16 previous_port = session->client_port;
  session_xclient_apply(session, &attrs);
  pst_xclient_attrs_clear(&attrs);
  g_message("%s: xclient: [%s]:%u is [%s]:%u name=%s helo=%s login=%s",
            session->id, previous, previous_port, session->client_address,
            session->client_port,
            session->client_hostname ? session->client_hostname : "unknown",
            session->helo ? session->helo : "none",
            session->auth_user ? session->auth_user : "none");
  /* A new connection from the new client, as far as policy is concerned. */
  pst_session_reset_transaction(session);
  session->relay_allowed = FALSE;
  session->helo_optional = FALSE;
  session->session_disposition = PST_DISPOSITION_QUEUE;
  session->disposition = PST_DISPOSITION_QUEUE;
  pst_session_set_state(session, PST_SESSION_STATE_CONNECT);
  pst_session_start_connect(session);
}
