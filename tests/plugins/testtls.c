/* testtls.c - a site policy written against the session's TLS state
 * (<postilion/transport.h>): vSMTP's "deny unencrypted" in a few lines.
 *
 * At MAIL it logs "testtls: tls=yes|no version=V cipher=C bits=N sni=S
 * peer_certificate=N octets" and, with `[plugin:testtls] deny_unencrypted
 * = true`, refuses a plaintext session with 530 5.7.0.  At DISCONNECT it
 * logs the version again (the TLS state outlives the socket).  Uses the
 * SDK only: it also proves the ABI 1.1 symbols resolve from a module.
 */
#include <postilion/plugin.h>

static gboolean deny_unencrypted;

static PstVerdict testtls_mail(PstCall *call, gpointer user_data) {
  PstSession *session = pst_call_get_session(call);
  g_autoptr(GBytes) peer = pst_session_get_tls_peer_certificate(session);
  const char *sni = pst_session_get_tls_server_name(session);
  const char *version = pst_session_get_tls_version(session);
  const char *cipher = pst_session_get_tls_cipher(session);
  pst_call_log(call, G_LOG_LEVEL_MESSAGE,
               "tls=%s version=%s cipher=%s bits=%u sni=%s "
               "peer_certificate=%zu octets",
               pst_session_is_tls(session) ? "yes" : "no",
               version ? version : "-", cipher ? cipher : "-",
               pst_session_get_tls_cipher_bits(session), sni ? sni : "-",
               peer != NULL ? g_bytes_get_size(peer) : 0);
  if (deny_unencrypted && !pst_session_is_tls(session)) {
    pst_call_set_reply(call, 530, "5.7.0", "Encryption required");
    return PST_VERDICT_REJECT;
  }
  return PST_VERDICT_CONTINUE;
}

static PstVerdict testtls_disconnect(PstCall *call, gpointer user_data) {
  const char *version = pst_session_get_tls_version(pst_call_get_session(call));
  pst_call_log(call, G_LOG_LEVEL_MESSAGE, "disconnect version=%s",
               version ? version : "-");
  return PST_VERDICT_CONTINUE;
}

static gboolean testtls_init(PstPlugin *plugin, GKeyFile *config,
                             const char *group, GError **error) {
  static const char *const keys[] = {"deny_unencrypted", NULL};
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_boolean(config, group, "deny_unencrypted", FALSE,
                              &deny_unencrypted, error))
    return FALSE;
  pst_plugin_register_hook(plugin, PST_STAGE_MAIL, 0, testtls_mail, NULL, NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_DISCONNECT, 0, testtls_disconnect,
                           NULL, NULL);
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("testtls", "1.0", "Reads the session's TLS state",
                        testtls_init, NULL, NULL);
