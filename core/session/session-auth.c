/* session-auth.c - SMTP AUTH (RFC 4954): the core's framing of a SASL
 * exchange whose mechanisms a plugin provides (<postilion/sasl.h>).
 *
 * The flow: AUTH MECH [initial-response] -> the checks (EHLO first, not
 * twice, not in a transaction, the address not rate-limited, the
 * mechanism usable: plaintext ones only over TLS unless the listener's
 * allow_plaintext_auth) -> the plugin's start(), then for each 334 one
 * client line (base64, or `*` to abort) -> step().  Success runs the AUTH
 * stage; when no plugin refuses, the session is authenticated: auth_user,
 * the results `auth.user` / `auth.mechanism`, relay allowed (the core's
 * relay rule), 235.  A wrong password is answered 535 after
 * [server] auth_failure_delay x the connection's failures; the
 * auth_max_failures-th failure gets 421 and the connection closes; an
 * address with auth_failures_per_minute failures gets 454 until its
 * minute is over.
 *
 * While a step or a delay is pending the session waits
 * (PST_SESSION_WAIT_AUTH) and holds a reference; pst_session_auth_finish()
 * cancels both when the connection ends.  Decoded responses may hold a
 * password: they are wiped after use and never logged.
 *
 * Entry points: the command table (session-commands.c), the EHLO keyword,
 * the exchange lines from session.c.  Main thread only.
 */
#include <string.h>

#include "hooks/sasl-service.h"
#include "session/session-private.h"
#include "smtp/smtp-auth.h"

struct _PstSessionAuth {
  PstPlugin *plugin;   /* not owned: in the session's generation */
  gpointer connection; /* the plugin's, nullable when open failed */
  char *mechanism;     /* owned, nullable: the exchange's */
  PstSaslStep *step;   /* nullable: pending start()/step() */
  GSource *deadline;   /* owned, nullable: while `step` is pending */
  GSource *delay;      /* owned, nullable: before a 535/421 */
  guint failures;
  gboolean relay_before; /* relay_allowed before the AUTH stage */
};

#define AUTH_RATE_WINDOW_US (60 * G_USEC_PER_SEC)
#define AUTH_RATE_TABLE_MAX 10000

static const PstSmtpReply reply_need_ehlo = {503, "5.5.1",
                                             "Error: send EHLO first"};
static const PstSmtpReply reply_twice = {503, "5.5.1",
                                         "Error: already authenticated"};
static const PstSmtpReply reply_in_transaction = {
    503, "5.5.1", "Error: MAIL transaction in progress"};
static const PstSmtpReply reply_encryption = {
    538, "5.7.11",
    "Encryption required for requested authentication "
    "mechanism"};
static const PstSmtpReply reply_unknown_mechanism = {
    504, "5.5.4", "Unrecognized authentication type"};
static const PstSmtpReply reply_aborted = {501, "5.7.0",
                                           "Authentication aborted"};
static const PstSmtpReply reply_malformed = {
    501, "5.5.2", "Error: malformed authentication response"};
static const PstSmtpReply reply_invalid = {
    535, "5.7.8", "Authentication credentials invalid"};
static const PstSmtpReply reply_tempfail = {454, "4.7.0",
                                            "Temporary authentication failure"};
static const PstSmtpReply reply_line_too_long = {
    500, "5.5.6", "Authentication Exchange line is too long"};

/* --- Failures per client address ---------------------------------------- */

typedef struct {
  gint64 window_start; /* monotonic, microseconds */
  guint failures;
} AuthAddressFailures;

static GHashTable *address_failures; /* char* -> AuthAddressFailures* */

static gboolean auth_window_expired(const AuthAddressFailures *entry,
                                    gint64 now) {
  return now - entry->window_start >= AUTH_RATE_WINDOW_US;
}

static gboolean remove_expired(gpointer key, gpointer value, gpointer now) {
  return auth_window_expired(value, *(gint64 *)now);
}

/* The address's entry for the current minute, made when `create`. */
static AuthAddressFailures *auth_address_entry(const char *address,
                                               gboolean create) {
  gint64 now = g_get_monotonic_time();
  if (address_failures == NULL)
    address_failures =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  AuthAddressFailures *entry = g_hash_table_lookup(address_failures, address);
  if (entry != NULL && auth_window_expired(entry, now)) {
    g_hash_table_remove(address_failures, address);
    entry = NULL;
  }
  if (entry != NULL || !create)
    return entry;
  if (g_hash_table_size(address_failures) >= AUTH_RATE_TABLE_MAX)
    g_hash_table_foreach_remove(address_failures, remove_expired, &now);
  entry = g_new0(AuthAddressFailures, 1);
  entry->window_start = now;
  g_hash_table_insert(address_failures, g_strdup(address), entry);
  return entry;
}

static gboolean auth_address_limited(PstSession *session) {
  AuthAddressFailures *entry =
      auth_address_entry(session->client_address, FALSE);
  return entry != NULL &&
         entry->failures >= session->config->server.auth_failures_per_minute;
}

/* --- The per-session state ---------------------------------------------- */

/* The session's AUTH state, made at first use; NULL when no plugin of the
 * listener's chain provides SASL. */
static PstSessionAuth *auth_get(PstSession *session) {
  if (session->auth != NULL)
    return session->auth;
  PstPluginSet *plugins = pst_generation_get_plugins(session->generation);
  PstPlugin *plugin = plugins != NULL
                          ? pst_plugin_set_find_sasl(plugins, session->listener)
                          : NULL;
  if (plugin == NULL)
    return NULL;
  PstSessionAuth *auth = g_new0(PstSessionAuth, 1);
  auth->plugin = plugin;
  g_autoptr(GError) error = NULL;
  auth->connection = pst_sasl_server_open(plugin, session, &error);
  if (auth->connection == NULL)
    g_warning("%s: SASL unavailable: %s", session->id,
              error != NULL ? error->message : "the plugin refused");
  session->auth = auth;
  return auth;
}

static gboolean auth_plaintext_allowed(PstSession *session) {
  return session->tls || session->listener->allow_plaintext_auth;
}

/* The usable mechanisms now, or NULL for none. */
static char *auth_mechanisms(PstSession *session, gboolean plaintext) {
  PstSessionAuth *auth = auth_get(session);
  if (auth == NULL || auth->connection == NULL)
    return NULL;
  char *list = pst_sasl_server_list(auth->plugin, auth->connection, plaintext);
  if (list != NULL && list[0] == '\0')
    g_clear_pointer(&list, g_free);
  return list;
}

char *pst_session_auth_ehlo_keyword(PstSession *session) {
  g_autofree char *list =
      auth_mechanisms(session, auth_plaintext_allowed(session));
  return list != NULL ? g_strconcat("AUTH ", list, NULL) : NULL;
}

/* Back to READY: the exchange is over, whatever its end. */
static void auth_end_exchange(PstSession *session) {
  g_clear_pointer(&session->auth->mechanism, g_free);
  if (session->state == PST_SESSION_STATE_AUTH)
    pst_session_set_state(session, PST_SESSION_STATE_READY);
}

/* Drops a pending step (its completion is then ignored) and its
 * deadline. */
static void auth_cancel_step(PstSession *session) {
  PstSessionAuth *auth = session->auth;
  if (auth->deadline != NULL) {
    g_source_destroy(auth->deadline);
    g_clear_pointer(&auth->deadline, g_source_unref);
  }
  if (auth->step != NULL) {
    pst_sasl_step_cancel(g_steal_pointer(&auth->step));
    pst_session_unref(session); /* the step's */
  }
}

void pst_session_auth_forget(PstSession *session) {
  PstSessionAuth *auth = session->auth;
  if (auth == NULL || session->auth_user == NULL)
    return;
  g_autoptr(GVariant) user =
      pst_results_get(session->results.session, "auth.user");
  if (user == NULL)
    return;
  /* Undo what a successful AUTH did (XCLIENT LOGIN is not ours). */
  session->relay_allowed = auth->relay_before;
  pst_results_remove(session->results.session, "auth.user");
  pst_results_remove(session->results.session, "auth.mechanism");
}

void pst_session_auth_finish(PstSession *session) {
  PstSessionAuth *auth = session->auth;
  if (auth == NULL)
    return;
  auth_cancel_step(session);
  if (auth->delay != NULL) {
    g_source_destroy(auth->delay);
    g_clear_pointer(&auth->delay, g_source_unref);
    pst_session_unref(session); /* the delay's */
  }
  if (auth->connection != NULL)
    pst_sasl_server_close(auth->plugin, auth->connection);
  auth->connection = NULL;
  g_free(auth->mechanism);
  g_clear_pointer(&session->auth, g_free);
}

/* --- Outcomes ------------------------------------------------------------ */

static void auth_log_failure(PstSession *session, const char *what) {
  g_message(
      "%s: auth failed: %s mechanism=%s from [%s]:%u failures=%u", session->id,
      what, session->auth->mechanism != NULL ? session->auth->mechanism : "?",
      session->client_address, session->client_port, session->auth->failures);
}

static gboolean auth_delay_done(gpointer data) {
  PstSession *session = data;
  PstSessionAuth *auth = session->auth;
  g_clear_pointer(&auth->delay, g_source_unref);
  session->waiting = PST_SESSION_WAIT_NONE;
  auth_end_exchange(session);
  if (auth->failures >= session->config->server.auth_max_failures) {
    g_message("%s: too many failed authentications from [%s]:%u", session->id,
              session->client_address, session->client_port);
    pst_session_reply(session, 421, "4.7.0",
                      "%s Error: too many failed authentication attempts",
                      session->config->server.hostname);
    pst_session_close_after_reply(session);
  } else {
    pst_session_reply_static(session, &reply_invalid);
  }
  pst_session_resume(session);
  pst_session_unref(session);
  return G_SOURCE_REMOVE;
}

/* Wrong credentials: count, then answer after the growing delay. */
static void auth_failed(PstSession *session) {
  PstSessionAuth *auth = session->auth;
  auth->failures++;
  AuthAddressFailures *entry =
      auth_address_entry(session->client_address, TRUE);
  entry->failures++;
  auth_log_failure(session, "invalid credentials");
  guint delay_ms = session->config->server.auth_failure_delay_ms;
  auth->delay = g_timeout_source_new(
      MIN((guint64)delay_ms * auth->failures, (guint64)G_MAXUINT));
  g_source_set_callback(auth->delay, auth_delay_done, pst_session_ref(session),
                        NULL);
  g_source_attach(auth->delay, NULL);
  session->waiting = PST_SESSION_WAIT_AUTH;
  pst_session_touch(session);
}

static void auth_stage_done(PstSession *session,
                            const PstHookOutcome *outcome) {
  PstSessionAuth *auth = session->auth;
  if (pst_session_outcome_refuses(session, PST_STAGE_AUTH, outcome, NULL)) {
    g_clear_pointer(&session->auth_user, g_free);
    session->relay_allowed = auth->relay_before;
    auth_end_exchange(session);
    return;
  }
  /* The relay rule: an authenticated client may relay. */
  session->relay_allowed = TRUE;
  pst_results_set(session->results.session, "auth.user",
                  g_variant_new_string(session->auth_user));
  pst_results_set(session->results.session, "auth.mechanism",
                  g_variant_new_string(auth->mechanism));
  g_message("%s: auth: user=%s mechanism=%s from [%s]:%u", session->id,
            session->auth_user, auth->mechanism, session->client_address,
            session->client_port);
  pst_session_reply_success(session, outcome, 235, "2.7.0",
                            "Authentication successful");
  auth_end_exchange(session);
}

static void auth_succeeded(PstSession *session, const char *user) {
  PstSessionAuth *auth = session->auth;
  g_free(session->auth_user);
  session->auth_user = g_strdup(user);
  auth->relay_before = session->relay_allowed;
  PstHookArgs args = {.argument = session->auth_user};
  pst_session_run_stage(session, PST_STAGE_AUTH, &args, auth_stage_done);
}

static void auth_handle(PstSession *session, PstSaslStatus status,
                        GBytes *challenge, const char *user) {
  switch (status) {
  case PST_SASL_CONTINUE: {
    gsize length = 0;
    const guint8 *data = g_bytes_get_data(challenge, &length);
    g_autofree char *encoded =
        length > 0 ? g_base64_encode(data, length) : g_strdup("");
    pst_session_reply_line(session, 334, TRUE, encoded);
    pst_session_set_state(session, PST_SESSION_STATE_AUTH);
    return;
  }
  case PST_SASL_OK:
    auth_succeeded(session, user);
    return;
  case PST_SASL_BADAUTH:
    auth_failed(session);
    return;
  case PST_SASL_BADPROT:
    auth_log_failure(session, "malformed response");
    pst_session_reply_static(session, &reply_malformed);
    break;
  case PST_SASL_NOMECH:
    pst_session_reply_static(session, &reply_unknown_mechanism);
    break;
  case PST_SASL_TEMPFAIL:
    auth_log_failure(session, "backend unavailable");
    pst_session_reply_static(session, &reply_tempfail);
    break;
  }
  auth_end_exchange(session);
}

static void auth_step_done(PstSaslStatus status, GBytes *challenge,
                           const char *user, gpointer data) {
  PstSession *session = data;
  session->auth->step = NULL;
  if (session->auth->deadline != NULL) {
    g_source_destroy(session->auth->deadline);
    g_clear_pointer(&session->auth->deadline, g_source_unref);
  }
  session->waiting = PST_SESSION_WAIT_NONE;
  if (session->fd >= 0)
    auth_handle(session, status, challenge, user);
  pst_session_resume(session);
  pst_session_unref(session);
}

/* The plugin missed its deadline ([plugin:NAME] timeout): 454, the
 * exchange ends, a late completion is ignored. */
static gboolean auth_deadline_passed(gpointer data) {
  PstSession *session = data;
  PstSessionAuth *auth = session->auth;
  g_clear_pointer(&auth->deadline, g_source_unref);
  pst_session_ref(session);
  auth_cancel_step(session);
  session->waiting = PST_SESSION_WAIT_NONE;
  auth_log_failure(session, "the SASL plugin did not answer in time");
  pst_session_reply_static(session, &reply_tempfail);
  auth_end_exchange(session);
  pst_session_resume(session);
  pst_session_unref(session);
  return G_SOURCE_REMOVE;
}

/* The deadline of a step: the providing plugin's `timeout`. */
static guint auth_step_timeout_ms(PstSession *session) {
  const PstPluginConfig *plugin = pst_config_find_plugin(
      session->config, pst_plugin_get_name(session->auth->plugin));
  return plugin != NULL && plugin->timeout_ms > 0 ? plugin->timeout_ms : 30000;
}

/* A step for the plugin; the session waits for it, until the deadline. */
static PstSaslStep *auth_new_step(PstSession *session) {
  PstSaslStep *step =
      pst_sasl_step_new(auth_step_done, pst_session_ref(session));
  session->auth->step = step;
  /* The step holds the session: the deadline's source needs no
   * reference of its own (auth_cancel_step() removes it first). */
  session->auth->deadline = g_timeout_source_new(auth_step_timeout_ms(session));
  g_source_set_callback(session->auth->deadline, auth_deadline_passed, session,
                        NULL);
  g_source_attach(session->auth->deadline, NULL);
  session->waiting = PST_SESSION_WAIT_AUTH;
  pst_session_touch(session);
  return step;
}

/* --- The command and the exchange ---------------------------------------- */

const PstSmtpReply *pst_session_check_auth(PstSession *session) {
  if (session->state == PST_SESSION_STATE_GREETED || !session->esmtp)
    return &reply_need_ehlo;
  if (session->auth_user != NULL)
    return &reply_twice;
  if (session->envelope != NULL)
    return &reply_in_transaction;
  PstSessionAuth *auth = auth_get(session);
  if (auth == NULL || auth->connection == NULL)
    return &pst_session_reply_not_offered;
  return NULL;
}

/* The mechanism's refusal on this connection, or NULL when usable. */
static const PstSmtpReply *auth_check_mechanism(PstSession *session,
                                                const char *mechanism) {
  gboolean plaintext = auth_plaintext_allowed(session);
  g_autofree char *usable = auth_mechanisms(session, plaintext);
  if (pst_sasl_list_contains(usable, mechanism))
    return NULL;
  if (!plaintext) {
    g_autofree char *with_tls = auth_mechanisms(session, TRUE);
    if (pst_sasl_list_contains(with_tls, mechanism))
      return &reply_encryption;
  }
  return &reply_unknown_mechanism;
}

void pst_session_command_auth(PstSession *session,
                              const PstSmtpCommand *command) {
  if (auth_address_limited(session)) {
    g_message("%s: auth refused: too many failures from [%s] in the last "
              "minute",
              session->id, session->client_address);
    pst_session_reply(session, 454, "4.7.0",
                      "Error: too many failed authentications from your "
                      "address, try again later");
    return;
  }
  PstSmtpAuthArgs args;
  const PstSmtpReply *refusal =
      pst_smtp_auth_parse(command->argument, command->argument_length, &args);
  if (refusal == NULL)
    refusal = auth_check_mechanism(session, args.mechanism);
  if (refusal != NULL) {
    pst_smtp_auth_args_clear(&args);
    pst_session_reply_static(session, refusal);
    return;
  }
  PstSessionAuth *auth = session->auth;
  g_free(auth->mechanism);
  auth->mechanism = g_strdup(args.mechanism);
  PstSaslStep *step = auth_new_step(session);
  pst_sasl_server_start(auth->plugin, auth->connection, auth->mechanism,
                        args.response, args.response_length, args.has_response,
                        step);
  pst_smtp_auth_args_clear(&args);
}

void pst_session_auth_line(PstSession *session, const char *line,
                           gsize length) {
  guint8 *data = NULL;
  gsize data_length = 0;
  switch (pst_smtp_auth_line_parse(line, length, &data, &data_length)) {
  case PST_SMTP_AUTH_LINE_ABORT:
    pst_session_reply_static(session, &reply_aborted);
    auth_end_exchange(session);
    return;
  case PST_SMTP_AUTH_LINE_BAD:
    pst_session_reply_static(session, &pst_smtp_reply_auth_base64);
    auth_end_exchange(session);
    return;
  case PST_SMTP_AUTH_LINE_DATA:
    break;
  }
  PstSessionAuth *auth = session->auth;
  PstSaslStep *step = auth_new_step(session);
  pst_sasl_server_step(auth->plugin, auth->connection, data, data_length, step);
  memset(data, 0, data_length);
  g_free(data);
}

void pst_session_auth_line_too_long(PstSession *session) {
  pst_session_reply_static(session, &reply_line_too_long);
  if (session->auth != NULL)
    auth_end_exchange(session);
}
