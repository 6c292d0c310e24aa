/* auth-server.c - the server side of the SASL service: Cyrus SASL, or
 * Dovecot's auth service for connections opened under backend = dovecot.
 *
 * Dovecot: every call goes straight to the config's DovecotClient on the
 * main thread (auth-dovecot.c is non-blocking); the worker is not used.
 *
 * A password check may block (saslauthd asks PAM; sasldb reads a Berkeley
 * DB file), so every Cyrus server call of every connection runs on one
 * worker thread, in order, under auth_cyrus_lock(): one thread because
 * Cyrus's global state is not meant for concurrent use, which also keeps
 * a connection's jobs (start, step, close) in the order they were queued.
 * The main thread only queues jobs and answers list_mechanisms() from the
 * lists the config probed at start.
 *
 * An AuthConnection is reference counted: the core's handle (dropped by
 * close(), which queues the sasl_dispose()) and one per queued job.  The
 * responses queued for the worker are copies, wiped when the job is done.
 */
#include <string.h>

#include "auth.h"

typedef struct {
  gint ref_count;
  AuthConfig *config;  /* owned reference: the one of open() */
  char *session_id;    /* owned */
  char *local;         /* owned: "IP;PORT" for Cyrus */
  char *remote;        /* owned */
  gboolean plaintext;  /* main thread: as last listed */
  sasl_conn_t *conn;   /* worker only, nullable */
  PstSession *session; /* not owned: valid until close() */
  guint dovecot_id;    /* main thread: Dovecot's request, 0 for none */
} AuthConnection;

typedef enum { JOB_START, JOB_STEP, JOB_CLOSE } AuthJobKind;

typedef struct {
  AuthJobKind kind;
  AuthConnection *connection; /* owned reference */
  char *mechanism;            /* owned, nullable */
  guint8 *response;           /* owned, nullable: wiped */
  gsize length;
  gboolean has_response;
  gboolean plaintext; /* START: plaintext mechanisms allowed */
  PstSaslStep *step;  /* completed exactly once by the worker */
} AuthJob;

static GThreadPool *worker;
static GMutex config_lock;
static AuthConfig *current_config; /* under config_lock */

void auth_server_set_config(AuthConfig *config) {
  g_mutex_lock(&config_lock);
  AuthConfig *old = current_config;
  current_config = auth_config_ref(config);
  g_mutex_unlock(&config_lock);
  if (old != NULL)
    auth_config_unref(old);
}

static AuthConnection *connection_ref(AuthConnection *connection) {
  g_atomic_int_inc(&connection->ref_count);
  return connection;
}

static void connection_unref(AuthConnection *connection) {
  if (!g_atomic_int_dec_and_test(&connection->ref_count))
    return;
  g_assert(connection->conn == NULL);
  auth_config_unref(connection->config);
  g_free(connection->session_id);
  g_free(connection->local);
  g_free(connection->remote);
  g_free(connection);
}

/* --- The worker ------------------------------------------------------------
 */

static PstSaslStatus auth_status(int result) {
  switch (result) {
  case SASL_OK:
    return PST_SASL_OK;
  case SASL_CONTINUE:
    return PST_SASL_CONTINUE;
  case SASL_BADAUTH:
  case SASL_NOUSER:
  case SASL_NOAUTHZ:
  case SASL_EXPIRED:
  case SASL_DISABLED:
  case SASL_NOVERIFY:
    return PST_SASL_BADAUTH;
  case SASL_BADPROT:
  case SASL_BADPARAM:
    return PST_SASL_BADPROT;
  case SASL_NOMECH:
  case SASL_TOOWEAK:
  case SASL_ENCRYPT:
    return PST_SASL_NOMECH;
  default:
    return PST_SASL_TEMPFAIL;
  }
}

/* A fresh Cyrus connection for a new exchange. */
static int job_new_conn(AuthConnection *connection, gboolean plaintext) {
  if (connection->conn != NULL)
    sasl_dispose(&connection->conn);
  AuthConfig *config = connection->config;
  int result = sasl_server_new(
      config->service_name, config->hostname, config->realm, connection->local,
      connection->remote, config->callbacks, 0, &connection->conn);
  if (result != SASL_OK)
    return result;
  /* SMTP has no SASL security layer (max_ssf 0); plaintext mechanisms
   * only where the core allows them. */
  sasl_security_properties_t properties = {
      .max_ssf = 0,
      .security_flags = SASL_SEC_NOANONYMOUS |
                        (plaintext ? 0u : (unsigned)SASL_SEC_NOPLAINTEXT)};
  return sasl_setprop(connection->conn, SASL_SEC_PROPS, &properties);
}

static void job_complete(AuthJob *job, int result, const char *out,
                         unsigned out_length) {
  AuthConnection *connection = job->connection;
  PstSaslStatus status = auth_status(result);
  const char *user = NULL;
  if (status == PST_SASL_OK) {
    const void *value = NULL;
    if (sasl_getprop(connection->conn, SASL_USERNAME, &value) == SASL_OK)
      user = value;
  }
  if (status == PST_SASL_TEMPFAIL)
    pst_plugin_log(auth_plugin(), G_LOG_LEVEL_WARNING, "%s: SASL failure: %s",
                   connection->session_id,
                   connection->conn != NULL
                       ? sasl_errdetail(connection->conn)
                       : sasl_errstring(result, NULL, NULL));
  pst_sasl_step_complete(job->step, status, (const guint8 *)out, out_length,
                         user);
  /* An exchange that ended needs no Cyrus state until the next one. */
  if (status != PST_SASL_CONTINUE && connection->conn != NULL)
    sasl_dispose(&connection->conn);
}

static void job_run(AuthJob *job) {
  AuthConnection *connection = job->connection;
  const char *out = NULL;
  unsigned out_length = 0;
  int result;
  switch (job->kind) {
  case JOB_START:
    result = job_new_conn(connection, job->plaintext);
    if (result == SASL_OK)
      result = sasl_server_start(connection->conn, job->mechanism,
                                 job->has_response ? (const char *)job->response
                                                   : NULL,
                                 (unsigned)job->length, &out, &out_length);
    job_complete(job, result, out, out_length);
    return;
  case JOB_STEP:
    if (connection->conn == NULL)
      result = SASL_BADPROT; /* no exchange in progress */
    else
      result = sasl_server_step(connection->conn, (const char *)job->response,
                                (unsigned)job->length, &out, &out_length);
    job_complete(job, result, out, out_length);
    return;
  case JOB_CLOSE:
    if (connection->conn != NULL)
      sasl_dispose(&connection->conn);
    return;
  }
}

static void job_free(AuthJob *job) {
  if (job->response != NULL)
    memset(job->response, 0, job->length);
  g_free(job->response);
  g_free(job->mechanism);
  connection_unref(job->connection);
  g_free(job);
}

static void worker_func(gpointer data, gpointer user_data) {
  AuthJob *job = data;
  auth_cyrus_lock();
  job_run(job);
  auth_cyrus_unlock();
  job_free(job);
}

gboolean auth_server_start_worker(GError **error) {
  if (worker != NULL)
    return TRUE;
  worker = g_thread_pool_new(worker_func, NULL, 1, TRUE, error);
  return worker != NULL;
}

void auth_server_stop_worker(void) {
  if (worker != NULL)
    g_thread_pool_free(g_steal_pointer(&worker), FALSE, TRUE);
  g_mutex_lock(&config_lock);
  g_clear_pointer(&current_config, auth_config_unref);
  g_mutex_unlock(&config_lock);
}

static void queue_job(AuthConnection *connection, AuthJobKind kind,
                      const char *mechanism, const guint8 *response,
                      gsize length, gboolean has_response, PstSaslStep *step) {
  AuthJob *job = g_new0(AuthJob, 1);
  job->kind = kind;
  job->connection = connection_ref(connection);
  job->mechanism = g_strdup(mechanism);
  /* NUL-terminated: Cyrus's LOGIN reads the user name as a string. */
  job->response = has_response ? g_malloc0(length + 1) : NULL;
  if (length > 0)
    memcpy(job->response, response, length);
  job->length = length;
  job->has_response = has_response;
  job->plaintext = connection->plaintext;
  job->step = step;
  g_thread_pool_push(worker, job, NULL);
}

/* --- The service (main thread) -------------------------------------------- */

static char *ip_port(const char *address, guint16 port) {
  return address != NULL ? g_strdup_printf("%s;%u", address, port) : NULL;
}

gpointer auth_server_open(gpointer data, PstSession *session, GError **error) {
  AuthConnection *connection = g_new0(AuthConnection, 1);
  connection->ref_count = 1;
  g_mutex_lock(&config_lock);
  connection->config = auth_config_ref(current_config);
  g_mutex_unlock(&config_lock);
  connection->session_id = g_strdup(pst_session_get_id(session));
  connection->local = ip_port(pst_session_get_local_address(session),
                              pst_session_get_local_port(session));
  connection->remote = ip_port(pst_session_get_client_address(session),
                               pst_session_get_client_port(session));
  connection->session = session;
  return connection;
}

static gboolean is_dovecot(AuthConnection *connection) {
  return connection->config->backend == AUTH_BACKEND_DOVECOT;
}

static char *dovecot_list(AuthConnection *connection,
                          gboolean plaintext_allowed) {
  AuthConfig *config = connection->config;
  dovecot_client_connect(config->dovecot);
  return dovecot_client_list(config->dovecot, plaintext_allowed,
                             config->mechanisms_set ? config->mechanisms : NULL,
                             config->mechanisms);
}

static void dovecot_start(AuthConnection *connection, const char *mechanism,
                          const guint8 *response, gsize length,
                          gboolean has_response, PstSaslStep *step) {
  PstSession *session = connection->session;
  DovecotAuthRequest params = {
      .mechanism = mechanism,
      .service = connection->config->service_name,
      .secured = pst_session_is_tls(session),
      .session = connection->session_id,
      .local_ip = pst_session_get_local_address(session),
      .local_port = pst_session_get_local_port(session),
      .remote_ip = pst_session_get_client_address(session),
      .remote_port = pst_session_get_client_port(session),
      .has_response = has_response,
      .response = response,
      .length = length,
  };
  connection->dovecot_id =
      dovecot_client_start(connection->config->dovecot, &params, step);
}

char *auth_server_list(gpointer data, gboolean plaintext_allowed) {
  AuthConnection *connection = data;
  /* The core lists right before each start(): that is the setting the
   * next exchange uses. */
  connection->plaintext = plaintext_allowed;
  if (is_dovecot(connection))
    return dovecot_list(connection, plaintext_allowed);
  return g_strdup(plaintext_allowed ? connection->config->usable_plaintext
                                    : connection->config->usable_secure);
}

void auth_server_start(gpointer data, const char *mechanism,
                       const guint8 *response, gsize length,
                       gboolean has_response, PstSaslStep *step) {
  if (is_dovecot(data)) {
    dovecot_start(data, mechanism, response, length, has_response, step);
    return;
  }
  queue_job(data, JOB_START, mechanism, response, length, has_response, step);
}

void auth_server_step(gpointer data, const guint8 *response, gsize length,
                      PstSaslStep *step) {
  AuthConnection *connection = data;
  if (is_dovecot(connection)) {
    dovecot_client_step(connection->config->dovecot, connection->dovecot_id,
                        response, length, step);
    return;
  }
  queue_job(data, JOB_STEP, NULL, response, length, TRUE, step);
}

void auth_server_close(gpointer data) {
  AuthConnection *connection = data;
  if (is_dovecot(connection))
    dovecot_client_abort(connection->config->dovecot, connection->dovecot_id);
  else
    queue_job(connection, JOB_CLOSE, NULL, NULL, 0, FALSE, NULL);
  connection_unref(connection);
}
