/* tls.c - the tls plugin: STARTTLS, implicit TLS and SNI certificates
 * with GnuTLS, as the daemon's transport provider (README.md).
 *
 * init() loads the configuration into a TlsContext (every certificate and
 * key is read here, before the daemon drops root, and checked) and
 * registers the provider; it registers no hook.  reload() (SIGHUP) builds
 * a new context from the new keyfile: new connections use it, connections
 * in progress keep theirs; when it fails (say, a renewed key that does not
 * match) the old certificates stay and the daemon logs why.
 *
 * Session tickets: one server key, replaced every ticket_key_rotation by a
 * timer on the main loop.  GnuTLS copies the key into each session at
 * gnutls_session_ticket_enable_server(), so replacing it never touches a
 * connection in progress; a ticket made under an older key falls back to a
 * full handshake.
 */
#include "tls.h"

static void tls_plugin_free(gpointer data) {
  TlsPlugin *tls = data;
  if (tls->rotation_source != 0)
    g_source_remove(tls->rotation_source);
  tls_context_unref(tls->context);
  if (tls->ticket_key.data != NULL) {
    gnutls_memset(tls->ticket_key.data, 0, tls->ticket_key.size);
    gnutls_free(tls->ticket_key.data);
  }
  g_free(tls);
}

static gboolean tls_new_ticket_key(TlsPlugin *tls, GError **error) {
  gnutls_datum_t key = {0};
  int ret = gnutls_session_ticket_key_generate(&key);
  if (ret < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "cannot make a session ticket key: %s", gnutls_strerror(ret));
    return FALSE;
  }
  if (tls->ticket_key.data != NULL) {
    gnutls_memset(tls->ticket_key.data, 0, tls->ticket_key.size);
    gnutls_free(tls->ticket_key.data);
  }
  tls->ticket_key = key;
  return TRUE;
}

static gboolean tls_rotate(gpointer data) {
  TlsPlugin *tls = data;
  g_autoptr(GError) error = NULL;
  if (tls_new_ticket_key(tls, &error))
    pst_plugin_log(tls->plugin, G_LOG_LEVEL_DEBUG, "new session ticket key");
  else
    pst_plugin_log(tls->plugin, G_LOG_LEVEL_WARNING, "%s", error->message);
  return G_SOURCE_CONTINUE;
}

/* (Re)starts the rotation timer when the period changed. */
static void tls_schedule_rotation(TlsPlugin *tls) {
  guint64 period = tls->context->ticket_rotation_ms;
  if (tls->rotation_source != 0 && tls->rotation_ms == period)
    return;
  if (tls->rotation_source != 0)
    g_source_remove(tls->rotation_source);
  tls->rotation_ms = period;
  tls->rotation_source =
      g_timeout_add_seconds((guint)MAX(period / 1000, 60), tls_rotate, tls);
}

/* "loaded 2 certificates: default mx.example.org; by SNI example.net": the
 * default is named by the DNS names it carries (it has no configured
 * name), the others by the name that selects them. */
static void tls_log_loaded(TlsPlugin *tls, const char *verb) {
  TlsContext *context = tls->context;
  TlsCertificate *fallback = context->certificates->pdata[0];
  g_autoptr(GString) text = g_string_new(NULL);
  g_string_append_printf(text, "%s %u certificate%s: default ", verb,
                         context->certificates->len,
                         context->certificates->len == 1 ? "" : "s");
  if (fallback->names->len == 0)
    g_string_append(text, "(a certificate without DNS names)");
  for (guint i = 0; i < fallback->names->len; i++)
    g_string_append_printf(text, "%s%s", i > 0 ? "," : "",
                           (const char *)fallback->names->pdata[i]);
  for (guint i = 1; i < context->certificates->len; i++) {
    TlsCertificate *certificate = context->certificates->pdata[i];
    g_string_append_printf(text, "%s%s", i == 1 ? "; by SNI " : " ",
                           certificate->name);
  }
  pst_plugin_log(tls->plugin, G_LOG_LEVEL_INFO, "%s", text->str);
}

static gboolean tls_init(PstPlugin *plugin, GKeyFile *config, const char *group,
                         GError **error) {
  TlsContext *context = tls_context_new(config, group, error);
  if (context == NULL)
    return FALSE;
  TlsPlugin *tls = g_new0(TlsPlugin, 1);
  tls->plugin = plugin;
  tls->context = context;
  pst_plugin_set_data(plugin, tls, tls_plugin_free);
  if (!tls_new_ticket_key(tls, error) ||
      !pst_plugin_provide_transport(plugin, &tls_provider, tls, error))
    return FALSE;
  tls_schedule_rotation(tls);
  tls_log_loaded(tls, "loaded");
  return TRUE;
}

static gboolean tls_reload(PstPlugin *plugin, GKeyFile *config,
                           const char *group, GError **error) {
  TlsPlugin *tls = pst_plugin_get_data(plugin);
  TlsContext *context = tls_context_new(config, group, error);
  if (context == NULL)
    return FALSE;
  tls_context_unref(tls->context);
  tls->context = context;
  tls_schedule_rotation(tls);
  tls_log_loaded(tls, "reloaded");
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("tls", "1.0",
                        "STARTTLS, implicit TLS and SNI certificates (GnuTLS)",
                        tls_init, NULL, tls_reload);
