/* auth-client.c - the client side of the SASL service: authenticating to
 * a relayhost with PLAIN or LOGIN through Cyrus SASL's client.
 *
 * The outbound SMTP client reaches it through the core
 * (pst_sasl_client_*, <postilion/sasl.h>).  Only PLAIN and LOGIN are
 * offered, and only on an encrypted connection: both send the password.
 * The credentials live in the AuthClient (the password in a
 * sasl_secret_t that Cyrus reads through SASL_CB_PASS) and are wiped when
 * it is closed.  Runs on the main thread; PLAIN and LOGIN compute their
 * responses locally and never block.
 */
#include <string.h>

#include "auth.h"

typedef struct {
  sasl_conn_t *conn;     /* owned */
  char *user;            /* owned, wiped */
  sasl_secret_t *secret; /* owned, wiped */
  gboolean encrypted;
  sasl_callback_t callbacks[4];
} AuthClient;

static const char *const client_mechanisms[] = {"PLAIN", "LOGIN", NULL};

static int client_simple(void *context, int id, const char **result,
                         unsigned *length) {
  AuthClient *client = context;
  /* The authorization identity is the authentication identity. */
  const char *value = id == SASL_CB_AUTHNAME ? client->user : "";
  if (id != SASL_CB_AUTHNAME && id != SASL_CB_USER)
    return SASL_BADPARAM;
  *result = value;
  if (length != NULL)
    *length = strlen(value);
  return SASL_OK;
}

static int client_password(sasl_conn_t *conn, void *context, int id,
                           sasl_secret_t **secret_r) {
  AuthClient *client = context;
  if (id != SASL_CB_PASS)
    return SASL_BADPARAM;
  *secret_r = client->secret;
  return SASL_OK;
}

void auth_client_close(gpointer data) {
  AuthClient *client = data;
  if (client->conn != NULL)
    sasl_dispose(&client->conn);
  if (client->secret != NULL) {
    memset(client->secret->data, 0, client->secret->len);
    g_free(client->secret);
  }
  if (client->user != NULL)
    memset(client->user, 0, strlen(client->user));
  g_free(client->user);
  g_free(client);
}

gpointer auth_client_open(gpointer data, const char *server_name,
                          const char *user, const char *password,
                          gboolean encrypted, GError **error) {
  AuthConfig *config = data;
  AuthClient *client = g_new0(AuthClient, 1);
  client->user = g_strdup(user);
  gsize length = strlen(password);
  client->secret = g_malloc0(sizeof(sasl_secret_t) + length + 1);
  client->secret->len = length;
  memcpy(client->secret->data, password, length);
  client->encrypted = encrypted;
  client->callbacks[0] = (sasl_callback_t){
      SASL_CB_USER, (int (*)(void))(void (*)(void))client_simple, client};
  client->callbacks[1] = (sasl_callback_t){
      SASL_CB_AUTHNAME, (int (*)(void))(void (*)(void))client_simple, client};
  client->callbacks[2] = (sasl_callback_t){
      SASL_CB_PASS, (int (*)(void))(void (*)(void))client_password, client};
  client->callbacks[3] = (sasl_callback_t){SASL_CB_LIST_END, NULL, NULL};
  int result = sasl_client_new(config->service_name, server_name, NULL, NULL,
                               client->callbacks, 0, &client->conn);
  if (result == SASL_OK) {
    sasl_security_properties_t properties = {
        .max_ssf = 0, .security_flags = SASL_SEC_NOANONYMOUS};
    result = sasl_setprop(client->conn, SASL_SEC_PROPS, &properties);
  }
  if (result != SASL_OK) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "Cyrus SASL refused a client connection: %s",
                sasl_errstring(result, NULL, NULL));
    auth_client_close(client);
    return NULL;
  }
  return client;
}

/* The words of `offered` that we use, in the server's order. */
static char *client_choices(const char *offered) {
  g_auto(GStrv) words = g_strsplit(offered, " ", -1);
  g_autoptr(GString) out = g_string_new(NULL);
  for (guint i = 0; words[i] != NULL; i++) {
    g_autofree char *word = g_ascii_strup(words[i], -1);
    if (!g_strv_contains(client_mechanisms, word))
      continue;
    if (out->len > 0)
      g_string_append_c(out, ' ');
    g_string_append(out, word);
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static PstSaslStatus client_result(AuthClient *client, int result,
                                   const char *out, unsigned length,
                                   GBytes **response_r, GError **error) {
  if (result != SASL_OK && result != SASL_CONTINUE) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "SASL client: %s",
                sasl_errdetail(client->conn));
    return result == SASL_NOMECH ? PST_SASL_NOMECH : PST_SASL_BADPROT;
  }
  *response_r = out != NULL ? g_bytes_new(out, length) : NULL;
  return result == SASL_OK ? PST_SASL_OK : PST_SASL_CONTINUE;
}

PstSaslStatus auth_client_start(gpointer data, const char *server_mechanisms,
                                const char **mechanism_r, GBytes **response_r,
                                GError **error) {
  AuthClient *client = data;
  *response_r = NULL;
  if (!client->encrypted) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                "refusing to send a password without TLS");
    return PST_SASL_NOMECH;
  }
  g_autofree char *choices = client_choices(server_mechanisms);
  if (choices[0] == '\0') {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "the server offers no PLAIN or LOGIN (it offers \"%s\")",
                server_mechanisms);
    return PST_SASL_NOMECH;
  }
  sasl_interact_t *prompts = NULL;
  const char *out = NULL;
  unsigned length = 0;
  int result = sasl_client_start(client->conn, choices, &prompts, &out, &length,
                                 mechanism_r);
  return client_result(client, result, out, length, response_r, error);
}

PstSaslStatus auth_client_step(gpointer data, const guint8 *challenge,
                               gsize length, GBytes **response_r,
                               GError **error) {
  AuthClient *client = data;
  *response_r = NULL;
  sasl_interact_t *prompts = NULL;
  const char *out = NULL;
  unsigned out_length = 0;
  int result = sasl_client_step(client->conn, (const char *)challenge,
                                (unsigned)length, &prompts, &out, &out_length);
  return client_result(client, result, out, out_length, response_r, error);
}
