/* session-sdk.c - the SDK's pst_session_* accessors.
 *
 * Plugins see a session only through these functions (<postilion/plugin.h>),
 * so the struct can change without touching the ABI.  Main thread only.
 */
#include "session/session-private.h"

PST_API const char *pst_session_get_id(PstSession *session) {
  return session->id;
}

PST_API const char *pst_session_get_listener(PstSession *session) {
  return session->listener->name;
}

PST_API const char *pst_session_get_client_address(PstSession *session) {
  return session->client_address;
}

PST_API guint16 pst_session_get_client_port(PstSession *session) {
  return session->client_port;
}

PST_API GInetAddress *pst_session_get_client_inet_address(
    PstSession *session) {
  /* Parsed once: plugins ask for every message (the relay plugin twice),
   * and parsing cost ~2K instructions each time. */
  GInetAddress *address = g_atomic_pointer_get(&session->client_inet);
  if (address == NULL) {
    GInetAddress *parsed =
        g_inet_address_new_from_string(session->client_address);
    if (parsed == NULL)
      return NULL;
    if (!g_atomic_pointer_compare_and_exchange(&session->client_inet, NULL,
                                               parsed))
      g_object_unref(parsed);
    address = g_atomic_pointer_get(&session->client_inet);
  }
  return g_object_ref(address);
}

PST_API const char *pst_session_get_client_hostname(PstSession *session) {
  return session->client_hostname;
}

PST_API const char *pst_session_get_local_address(PstSession *session) {
  return session->local_address;
}

PST_API guint16 pst_session_get_local_port(PstSession *session) {
  return session->local_port;
}

PST_API const char *pst_session_get_helo(PstSession *session) {
  return session->helo;
}

PST_API gboolean pst_session_is_esmtp(PstSession *session) {
  return session->esmtp;
}

PST_API gboolean pst_session_is_tls(PstSession *session) {
  return session->tls;
}

PST_API const char *pst_session_get_auth_user(PstSession *session) {
  return session->auth_user;
}

PST_API const char *pst_session_get_sender(PstSession *session) {
  return session->envelope != NULL ? session->envelope->sender : NULL;
}

PST_API guint pst_session_get_recipient_count(PstSession *session) {
  return session->envelope != NULL ? session->envelope->recipients->len : 0;
}

PST_API const char *pst_session_get_recipient(PstSession *session,
                                              guint index) {
  if (session->envelope == NULL ||
      index >= session->envelope->recipients->len)
    return NULL;
  PstEnvelopeRecipient *recipient =
      session->envelope->recipients->pdata[index];
  return recipient->address;
}

PST_API gboolean pst_session_is_local_domain(PstSession *session,
                                             const char *domain) {
  g_return_val_if_fail(domain != NULL, FALSE);
  if (pst_config_is_local_domain(session->config, domain))
    return TRUE;
  /* U-labels (SMTPUTF8) compare as their A-labels. */
  if (domain[0] == '[' || g_str_is_ascii(domain))
    return FALSE;
  g_autofree char *ascii = g_hostname_to_ascii(domain);
  return ascii != NULL && pst_config_is_local_domain(session->config, ascii);
}

PST_API void pst_session_set_relay_allowed(PstSession *session,
                                           gboolean allowed) {
  session->relay_allowed = allowed;
}

PST_API gboolean pst_session_get_relay_allowed(PstSession *session) {
  return session->relay_allowed;
}

PST_API void pst_session_set_helo_required(PstSession *session,
                                           gboolean required) {
  session->helo_optional = !required;
}

PST_API gboolean pst_session_get_helo_required(PstSession *session) {
  return !session->helo_optional;
}
