/* smtp-auth.c - the SASL service's client, called from delivery workers
 * through the main context (see smtp-auth.h).
 *
 * Each call packs its arguments in a struct on the worker's stack and
 * runs the SDK function with pst_main_call_run(); results and GErrors
 * come back in the same struct.  The mechanism name is copied after
 * start() so reading it needs no main-thread call.
 */
#include <postilion/sasl.h>

#include "deliver/main-call.h"
#include "deliver/smtp-auth.h"

struct _PstSmtpAuth {
  PstSaslClient *client; /* owned; used on the main thread only */
  char *mechanism;       /* owned, nullable */
};

static gint sasl_available; /* atomic */

void pst_smtp_auth_update_available(void) {
  g_atomic_int_set(&sasl_available, pst_sasl_client_available());
}

gboolean pst_smtp_auth_available(void) {
  return g_atomic_int_get(&sasl_available);
}

typedef struct {
  PstSmtpAuth *auth;
  const char *server_name, *user, *password, *text;
  gboolean encrypted;
  char *line; /* out */
  GError *error;
} Call;

static void new_on_main(gpointer data) {
  Call *call = data;
  PstSaslClient *client =
      pst_sasl_client_new(call->server_name, call->user, call->password,
                          call->encrypted, &call->error);
  if (client != NULL) {
    call->auth = g_new0(PstSmtpAuth, 1);
    call->auth->client = client;
  }
}

PstSmtpAuth *pst_smtp_auth_new(const char *server_name, const char *user,
                               const char *password, gboolean encrypted,
                               GError **error) {
  Call call = {.server_name = server_name,
               .user = user,
               .password = password,
               .encrypted = encrypted};
  pst_main_call_run(new_on_main, &call);
  if (call.error != NULL)
    g_propagate_error(error, call.error);
  return call.auth;
}

static void start_on_main(gpointer data) {
  Call *call = data;
  call->line =
      pst_sasl_client_start(call->auth->client, call->text, &call->error);
  const char *mechanism = pst_sasl_client_get_mechanism(call->auth->client);
  g_free(call->auth->mechanism);
  call->auth->mechanism = g_strdup(mechanism);
}

char *pst_smtp_auth_start(PstSmtpAuth *auth, const char *mechanisms,
                          GError **error) {
  Call call = {.auth = auth, .text = mechanisms};
  pst_main_call_run(start_on_main, &call);
  if (call.error != NULL)
    g_propagate_error(error, call.error);
  return call.line;
}

static void step_on_main(gpointer data) {
  Call *call = data;
  call->line =
      pst_sasl_client_step(call->auth->client, call->text, &call->error);
}

char *pst_smtp_auth_step(PstSmtpAuth *auth, const char *challenge,
                         GError **error) {
  Call call = {.auth = auth, .text = challenge};
  pst_main_call_run(step_on_main, &call);
  if (call.error != NULL)
    g_propagate_error(error, call.error);
  return call.line;
}

const char *pst_smtp_auth_get_mechanism(PstSmtpAuth *auth) {
  return auth->mechanism != NULL ? auth->mechanism : "none";
}

static void free_on_main(gpointer data) {
  pst_sasl_client_free(data);
}

void pst_smtp_auth_free(PstSmtpAuth *auth) {
  if (auth == NULL)
    return;
  pst_main_call_run(free_on_main, auth->client);
  g_free(auth->mechanism);
  g_free(auth);
}
