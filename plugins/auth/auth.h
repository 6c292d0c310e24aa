/* auth.h - the auth plugin's shared declarations (plugins/auth).
 *
 *   auth.c         the descriptor, init/reload/shutdown, the service table
 *   auth-config.c  [plugin:auth] read into an immutable AuthConfig, and the
 *                  options Cyrus SASL asks for (SASL_CB_GETOPT)
 *   auth-server.c  the server side: one worker thread runs every Cyrus
 *                  server call, so no password check blocks the main loop
 *   auth-client.c  the client side (PLAIN/LOGIN to a relayhost)
 *   auth-dovecot.c backend = dovecot: Dovecot's auth-client socket, on the
 *                  main loop (no worker, no Cyrus on the server side)
 *   dovecot-protocol.c  that protocol's pure parser and builders
 *
 * Cyrus SASL is initialised once per process (auth.c) with its options
 * coming from our callbacks, never from /etc/sasl2.
 */
#pragma once

#include <sasl/sasl.h>

#include <postilion/plugin.h>
#include <postilion/sasl.h>

#include "dovecot-protocol.h"

G_BEGIN_DECLS

typedef enum {
  AUTH_BACKEND_SASLDB = 0, /* auxprop sasldb: a file made by saslpasswd2 */
  AUTH_BACKEND_SASLAUTHD,  /* pwcheck_method saslauthd: PAM, shadow ... */
  AUTH_BACKEND_DOVECOT,    /* Dovecot's auth service (auth-dovecot.c) */
} AuthBackend;

/* auth-dovecot.c: one connection to Dovecot's auth service.  Main thread
 * only; reference counted (the config holds one). */
typedef struct _DovecotClient DovecotClient;

/* Immutable after auth_config_load() (and auth_config_probe()); shared by
 * reference between the main thread and the worker. */
typedef struct {
  char **mechanisms; /* owned: upper case, configured order */
  AuthBackend backend;
  char *sasldb_path;       /* owned */
  char *saslauthd_path;    /* owned: the saslauthd socket ("mux") */
  char *service_name;      /* owned: "smtp" */
  char *realm;             /* owned, nullable */
  char *hostname;          /* owned: [server] hostname, the server FQDN */
  char *mech_list;         /* owned: mechanisms joined by spaces */
  gboolean mechanisms_set; /* `mechanisms` is in the file */
  char *dovecot_socket;    /* owned: "/run/dovecot/auth-client", "inet:H:P" */
  DovecotClient *dovecot;  /* owned, nullable: backend = dovecot; main
                            * thread only (its config is never released
                            * on the worker) */
  /* Set by auth_config_probe(): what Cyrus offers of `mechanisms`, with
   * plaintext mechanisms allowed or not.  Owned. */
  char *usable_plaintext;
  char *usable_secure;
  sasl_callback_t callbacks[3]; /* GETOPT and LOG with this config */
} AuthConfig;

AuthConfig *auth_config_load(GKeyFile *keyfile, const char *group,
                             GError **error);
AuthConfig *auth_config_ref(AuthConfig *config);
void auth_config_unref(AuthConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AuthConfig, auth_config_unref)
/* Asks Cyrus which configured mechanisms it can offer (a throwaway server
 * connection); fails naming the mechanisms it cannot.  Call with Cyrus
 * initialised, under auth_cyrus_lock(). */
gboolean auth_config_probe(AuthConfig *config, GError **error);

/* auth.c: every Cyrus server call runs under this lock. */
void auth_cyrus_lock(void);
void auth_cyrus_unlock(void);
/* auth.c: the log callback's plugin handle. */
PstPlugin *auth_plugin(void);

/* auth-server.c */
gboolean auth_server_start_worker(GError **error);
void auth_server_stop_worker(void);
/* The config new connections use (a reference is taken). */
void auth_server_set_config(AuthConfig *config);
gpointer auth_server_open(gpointer data, PstSession *session, GError **error);
char *auth_server_list(gpointer connection, gboolean plaintext_allowed);
void auth_server_start(gpointer connection, const char *mechanism,
                       const guint8 *response, gsize length,
                       gboolean has_response, PstSaslStep *step);
void auth_server_step(gpointer connection, const guint8 *response, gsize length,
                      PstSaslStep *step);
void auth_server_close(gpointer connection);

/* auth-dovecot.c */
/* A client for `socket_spec` ("/path" or "inet:HOST:PORT"); no I/O yet.
 * Requests Dovecot leaves unanswered fail after `timeout_ms`. */
DovecotClient *dovecot_client_new(const char *socket_spec, guint timeout_ms,
                                  GError **error);
DovecotClient *dovecot_client_ref(DovecotClient *client);
void dovecot_client_unref(DovecotClient *client);
/* Connects (and learns the mechanisms) unless connected or connecting, or
 * the last attempt failed less than a second ago. */
void dovecot_client_connect(DovecotClient *client);
/* The mechanisms to offer, space-separated: those Dovecot offers (in
 * `wanted`'s order when not NULL), without the plaintext ones unless
 * `plaintext_allowed`; before Dovecot ever answered, `fallback`. */
char *dovecot_client_list(DovecotClient *client, gboolean plaintext_allowed,
                          char **wanted, char **fallback);
/* Starts an exchange (params->id is set here) and returns its id; `step`
 * is completed when Dovecot answers, fails or times out (at once, and 0
 * returned, for an unknown mechanism or while Dovecot is unreachable). */
guint dovecot_client_start(DovecotClient *client, DovecotAuthRequest *params,
                           PstSaslStep *step);
/* The client's next response in exchange `id`. */
void dovecot_client_step(DovecotClient *client, guint id,
                         const guint8 *response, gsize length,
                         PstSaslStep *step);
/* The SMTP client left: a pending step completes (TEMPFAIL, ignored by
 * the core) and Dovecot is told to forget the exchange. */
void dovecot_client_abort(DovecotClient *client, guint id);

/* auth-client.c */
gpointer auth_client_open(gpointer data, const char *server_name,
                          const char *user, const char *password,
                          gboolean encrypted, GError **error);
PstSaslStatus auth_client_start(gpointer client, const char *server_mechanisms,
                                const char **mechanism_r, GBytes **response_r,
                                GError **error);
PstSaslStatus auth_client_step(gpointer client, const guint8 *challenge,
                               gsize length, GBytes **response_r,
                               GError **error);
void auth_client_close(gpointer client);

G_END_DECLS
