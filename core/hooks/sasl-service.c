/* sasl-service.c - the SASL service between the core and the plugin that
 * provides it (<postilion/sasl.h>): registration, the steps of a server
 * exchange, and the client side for the outbound SMTP client.
 *
 * A PstSaslStep has two references: the core's (dropped when `done` runs
 * or the step is cancelled) and the plugin's (dropped by
 * pst_sasl_step_complete(), from any thread).  The completion is always
 * handed to the main context through an idle source, so `done` never runs
 * inside the plugin's start()/step(); a cancelled step drops it there.
 *
 * Providers are registered like every plugin service (services.c): the
 * server side is found per listener in the session's generation, the
 * client side is the generation's (pst_sasl_client_open()); the SDK's
 * pst_sasl_client_new(), which has no generation to ask, takes the most
 * recently initialised plugin alive that provides it.  A PstSaslClient
 * holds a reference to its plugin.
 *
 * Main thread only, except pst_sasl_step_complete().
 */
#include <string.h>

#include "hooks/hooks-private.h"
#include "smtp/smtp-auth.h"

struct _PstSaslStep {
  gint ref_count;
  GMutex lock;
  gboolean cancelled; /* under lock */
  gboolean completed; /* under lock */
  PstSaslStepDoneFunc done;
  gpointer user_data;
  PstSaslStatus status;
  GBytes *challenge; /* owned, nullable */
  char *user;        /* owned, nullable */
};

PST_API const char *pst_sasl_status_to_string(PstSaslStatus status) {
  static const char *const names[] = {"continue", "ok",     "badauth",
                                      "badprot",  "nomech", "tempfail"};
  return (guint)status < G_N_ELEMENTS(names) ? names[status] : "invalid";
}

gboolean pst_sasl_list_contains(const char *list, const char *mechanism) {
  if (list == NULL || mechanism == NULL || mechanism[0] == '\0')
    return FALSE;
  g_auto(GStrv) words = g_strsplit(list, " ", -1);
  for (guint i = 0; words[i] != NULL; i++)
    if (g_ascii_strcasecmp(words[i], mechanism) == 0)
      return TRUE;
  return FALSE;
}

/* --- Registration ------------------------------------------------------- */

static gboolean sasl_funcs_are_complete(const PstSaslFuncs *funcs) {
  if (funcs->struct_size < G_STRUCT_OFFSET(PstSaslFuncs, client_open))
    return FALSE;
  if (funcs->open == NULL || funcs->list_mechanisms == NULL ||
      funcs->start == NULL || funcs->step == NULL || funcs->close == NULL)
    return FALSE;
  if (funcs->struct_size < sizeof(PstSaslFuncs))
    return TRUE; /* built before the client side existed */
  gboolean any = funcs->client_open || funcs->client_start ||
                 funcs->client_step || funcs->client_close;
  gboolean all = funcs->client_open && funcs->client_start &&
                 funcs->client_step && funcs->client_close;
  return all || !any;
}

static gboolean sasl_funcs_have_client(const PstSaslFuncs *funcs) {
  return funcs->struct_size >= sizeof(PstSaslFuncs) &&
         funcs->client_open != NULL;
}

PST_API gboolean pst_plugin_provide_sasl(PstPlugin *plugin,
                                         const PstSaslFuncs *funcs,
                                         gpointer data) {
  g_return_val_if_fail(plugin != NULL && funcs != NULL, FALSE);
  if (!pst_plugin_is_registering(plugin)) {
    g_critical("plugin \"%s\" provided SASL outside init(): ignored",
               plugin->name);
    return FALSE;
  }
  if (!sasl_funcs_are_complete(funcs)) {
    g_critical("plugin \"%s\" provided incomplete SASL functions: ignored",
               plugin->name);
    return FALSE;
  }
  pst_plugin_provide(plugin, PST_SERVICE_SASL_SERVER, funcs, data);
  pst_plugin_provide(plugin, PST_SERVICE_SASL_CLIENT,
                     sasl_funcs_have_client(funcs) ? funcs : NULL, data);
  return TRUE;
}

PstPlugin *pst_plugin_set_find_sasl(PstPluginSet *set,
                                    const PstListenerConfig *listener) {
  return pst_plugin_set_find_provider(set, PST_SERVICE_SASL_SERVER, listener);
}

/* --- Steps -------------------------------------------------------------- */

PstSaslStep *pst_sasl_step_new(PstSaslStepDoneFunc done, gpointer user_data) {
  PstSaslStep *step = g_new0(PstSaslStep, 1);
  step->ref_count = 2; /* the core's and the plugin's */
  g_mutex_init(&step->lock);
  step->done = done;
  step->user_data = user_data;
  return step;
}

static void sasl_step_unref(PstSaslStep *step) {
  if (!g_atomic_int_dec_and_test(&step->ref_count))
    return;
  g_clear_pointer(&step->challenge, g_bytes_unref);
  g_free(step->user);
  g_mutex_clear(&step->lock);
  g_free(step);
}

void pst_sasl_step_cancel(PstSaslStep *step) {
  g_mutex_lock(&step->lock);
  gboolean owned = !step->cancelled;
  step->cancelled = TRUE;
  g_mutex_unlock(&step->lock);
  if (owned)
    sasl_step_unref(step);
}

/* On the main context: hand the result to the core, unless cancelled. */
static gboolean sasl_step_deliver(gpointer data) {
  PstSaslStep *step = data;
  g_mutex_lock(&step->lock);
  gboolean cancelled = step->cancelled;
  step->cancelled = TRUE; /* the core's reference goes with `done` */
  g_mutex_unlock(&step->lock);
  if (!cancelled) {
    step->done(step->status, step->challenge, step->user, step->user_data);
    sasl_step_unref(step);
  }
  return G_SOURCE_REMOVE;
}

static gboolean sasl_user_is_valid(const char *user) {
  if (user == NULL || user[0] == '\0' || strlen(user) > 1024 ||
      !g_utf8_validate(user, -1, NULL))
    return FALSE;
  for (const guchar *p = (const guchar *)user; *p != '\0'; p++)
    if (*p < 0x20 || *p == 0x7f)
      return FALSE;
  return TRUE;
}

PST_API void pst_sasl_step_complete(PstSaslStep *step, PstSaslStatus status,
                                    const guint8 *challenge, gsize length,
                                    const char *user) {
  g_return_if_fail(step != NULL);
  g_mutex_lock(&step->lock);
  gboolean twice = step->completed;
  step->completed = TRUE;
  g_mutex_unlock(&step->lock);
  if (twice) {
    g_critical("a SASL step was completed twice: ignored");
    return;
  }
  if (status == PST_SASL_OK && !sasl_user_is_valid(user)) {
    g_warning("SASL plugin reported success without a valid user name: "
              "taken as a temporary failure");
    status = PST_SASL_TEMPFAIL;
  }
  if ((guint)status > PST_SASL_TEMPFAIL)
    status = PST_SASL_TEMPFAIL;
  step->status = status;
  if (status == PST_SASL_CONTINUE)
    step->challenge = g_bytes_new(challenge, challenge != NULL ? length : 0);
  if (status == PST_SASL_OK)
    step->user = g_strdup(user);
  /* The plugin's reference travels with the idle source. */
  GSource *source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(source, sasl_step_deliver, step,
                        (GDestroyNotify)sasl_step_unref);
  g_source_attach(source, NULL);
  g_source_unref(source);
}

/* --- Server wrappers ---------------------------------------------------- */

gpointer pst_sasl_server_open(PstPlugin *plugin, PstSession *session,
                              GError **error) {
  return pst_plugin_sasl_funcs(plugin)->open(pst_plugin_sasl_data(plugin),
                                             session, error);
}

char *pst_sasl_server_list(PstPlugin *plugin, gpointer connection,
                           gboolean plaintext_allowed) {
  return pst_plugin_sasl_funcs(plugin)->list_mechanisms(connection,
                                                        plaintext_allowed);
}

void pst_sasl_server_start(PstPlugin *plugin, gpointer connection,
                           const char *mechanism, const guint8 *response,
                           gsize length, gboolean has_response,
                           PstSaslStep *step) {
  pst_plugin_sasl_funcs(plugin)->start(connection, mechanism, response, length,
                                       has_response, step);
}

void pst_sasl_server_step(PstPlugin *plugin, gpointer connection,
                          const guint8 *response, gsize length,
                          PstSaslStep *step) {
  pst_plugin_sasl_funcs(plugin)->step(connection, response, length, step);
}

void pst_sasl_server_close(PstPlugin *plugin, gpointer connection) {
  pst_plugin_sasl_funcs(plugin)->close(connection);
}

/* --- Client side -------------------------------------------------------- */

struct _PstSaslClient {
  PstPlugin *plugin; /* owned reference */
  gpointer client;   /* the plugin's */
  char *mechanism;   /* owned, nullable */
};

PST_API gboolean pst_sasl_client_available(void) {
  return pst_plugin_find_live_provider(PST_SERVICE_SASL_CLIENT, NULL) != NULL;
}

PstSaslClient *pst_sasl_client_open(PstPlugin *provider,
                                    const char *server_name, const char *user,
                                    const char *password, gboolean encrypted,
                                    GError **error) {
  g_return_val_if_fail(server_name != NULL && user != NULL && password != NULL,
                       NULL);
  if (provider == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "no plugin provides SASL client authentication (add auth "
                "to [plugins] load)");
    return NULL;
  }
  gpointer client = pst_plugin_sasl_funcs(provider)->client_open(
      pst_plugin_sasl_data(provider), server_name, user, password, encrypted,
      error);
  if (client == NULL)
    return NULL;
  PstSaslClient *self = g_new0(PstSaslClient, 1);
  self->plugin = pst_plugin_ref(provider);
  self->client = client;
  return self;
}

PST_API PstSaslClient *pst_sasl_client_new(const char *server_name,
                                           const char *user,
                                           const char *password,
                                           gboolean encrypted, GError **error) {
  return pst_sasl_client_open(
      pst_plugin_find_live_provider(PST_SERVICE_SASL_CLIENT, NULL), server_name,
      user, password, encrypted, error);
}

/* "AUTH MECH" or "AUTH MECH BASE64" ("=" for an empty response). */
static char *sasl_client_command(const char *mechanism, GBytes *response) {
  if (response == NULL)
    return g_strdup_printf("AUTH %s", mechanism);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(response, &length);
  if (length == 0)
    return g_strdup_printf("AUTH %s =", mechanism);
  g_autofree char *encoded = g_base64_encode(data, length);
  char *line = g_strdup_printf("AUTH %s %s", mechanism, encoded);
  memset(encoded, 0, strlen(encoded));
  return line;
}

/* Wipes and frees a response that may hold a password. */
static void sasl_bytes_wipe(GBytes *bytes) {
  if (bytes == NULL)
    return;
  gsize length = 0;
  guint8 *data = g_bytes_unref_to_data(bytes, &length);
  if (data != NULL)
    memset(data, 0, length);
  g_free(data);
}

PST_API char *pst_sasl_client_start(PstSaslClient *client,
                                    const char *server_mechanisms,
                                    GError **error) {
  g_return_val_if_fail(client != NULL && server_mechanisms != NULL, NULL);
  const char *mechanism = NULL;
  GBytes *response = NULL;
  PstSaslStatus status = pst_plugin_sasl_funcs(client->plugin)
                             ->client_start(client->client, server_mechanisms,
                                            &mechanism, &response, error);
  if (status != PST_SASL_CONTINUE && status != PST_SASL_OK) {
    sasl_bytes_wipe(response);
    if (error != NULL && *error == NULL)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                  "no usable SASL mechanism among \"%s\"", server_mechanisms);
    return NULL;
  }
  g_free(client->mechanism);
  client->mechanism = g_ascii_strup(mechanism, -1);
  char *line = sasl_client_command(client->mechanism, response);
  sasl_bytes_wipe(response);
  return line;
}

PST_API char *pst_sasl_client_step(PstSaslClient *client, const char *text,
                                   GError **error) {
  g_return_val_if_fail(client != NULL && text != NULL, NULL);
  g_autofree guint8 *challenge = NULL;
  gsize length = 0;
  if (!pst_sasl_base64_decode(text, strlen(text), &challenge, &length)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "the server's SASL challenge is not base64");
    return NULL;
  }
  GBytes *response = NULL;
  PstSaslStatus status =
      pst_plugin_sasl_funcs(client->plugin)
          ->client_step(client->client, challenge, length, &response, error);
  if (status != PST_SASL_CONTINUE && status != PST_SASL_OK) {
    sasl_bytes_wipe(response);
    if (error != NULL && *error == NULL)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                  "the SASL mechanism failed (%s)",
                  pst_sasl_status_to_string(status));
    return NULL;
  }
  gsize out_length = 0;
  const guint8 *out =
      response != NULL ? g_bytes_get_data(response, &out_length) : NULL;
  char *line = out_length > 0 ? g_base64_encode(out, out_length) : g_strdup("");
  sasl_bytes_wipe(response);
  return line;
}

PST_API const char *pst_sasl_client_get_mechanism(PstSaslClient *client) {
  g_return_val_if_fail(client != NULL, NULL);
  return client->mechanism;
}

PST_API void pst_sasl_client_free(PstSaslClient *client) {
  if (client == NULL)
    return;
  pst_plugin_sasl_funcs(client->plugin)->client_close(client->client);
  g_free(client->mechanism);
  pst_plugin_unref(client->plugin);
  g_free(client);
}
