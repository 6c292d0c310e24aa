/* postilion/sasl.h - the SASL service: SMTP AUTH (RFC 4954), both sides.
 *
 * The core owns the SMTP side of AUTH: the command and its arguments, the
 * base64 of every line, the 334 exchange, `*` to abort, the line limits,
 * the rule that plaintext mechanisms (PLAIN, LOGIN) are offered only over
 * TLS, the delays and limits after failures, the replies, the results
 * `auth.user` / `auth.mechanism`, the Received: protocol (ESMTPA) and the
 * log lines.  A plugin (plugins/auth, with Cyrus SASL) owns the mechanisms
 * and the password check: it provides the service once, from init(), with
 * pst_plugin_provide_sasl().  A listener offers AUTH when a plugin in its
 * chain provides the service and lists at least one usable mechanism.
 *
 * Server side.  For each connection that needs it the core calls open()
 * (lazily, at the first EHLO), list_mechanisms() before it advertises
 * AUTH and before every start(), then start() and step() for the
 * exchange, and close() when the connection ends.  The plugin sees only
 * decoded octets: never base64, never `*`.  The response buffers given to
 * start()/step() are valid during the call only (the core wipes them
 * afterwards: they may hold a password): copy what a worker needs.
 *
 *   start()/step() never answer directly: they complete the PstSaslStep
 *   they are given with pst_sasl_step_complete(), exactly once, from any
 *   thread, possibly before they return (a password check that may block,
 *   saslauthd or a database, belongs on a worker thread).  The core
 *   handles the completion on the main loop, later, never from inside
 *   start()/step().  The core starts at most one step per connection at a
 *   time.  When the client leaves while a step is pending, the core calls
 *   close() anyway: the plugin must still complete the step (the core
 *   ignores it then), and must keep what the pending step uses alive
 *   until it has completed.
 *
 * Client side (the outbound SMTP client authenticating to a relayhost,
 * `[delivery] relayhost_credentials`): pst_sasl_client_new() and friends
 * below, implemented by the core on top of the providing plugin's client
 * functions.  They speak SMTP text (base64 lines) so the caller needs no
 * SASL knowledge.  PLAIN and LOGIN only, and only over TLS (a client made
 * with `encrypted` FALSE refuses to start).  The outbound client's steps:
 *
 *   // core/util/credentials.h parses [delivery] relayhost_credentials:
 *   // pst_credentials_load(path) once, pst_credentials_lookup(host, port)
 *   g_autoptr(PstSaslClient) sasl =
 *       pst_sasl_client_new(host, user, password, tls_active, &error);
 *   char *line = pst_sasl_client_start(sasl, ehlo_auth_list, &error);
 *   send(line); reply = read();          // "AUTH PLAIN AGFs..."
 *   while (reply.code == 334) {
 *     g_free(line);
 *     line = pst_sasl_client_step(sasl, reply.text, &error);
 *     if (line == NULL) { send("*"); reply = read(); break; }
 *     send(line); reply = read();
 *   }
 *   // 235: authenticated; 535: wrong credentials (a permanent error for
 *   // this relayhost); 454/4xx: try later
 *
 * The lines hold the password in base64: never log them.
 *
 * Everything here runs on the main thread except pst_sasl_step_complete().
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* How a SASL step ended.  The core's replies for each are in
 * doc/smtp-replies.md. */
typedef enum {
  PST_SASL_CONTINUE = 0, /* send the challenge (334), wait for a response */
  PST_SASL_OK,           /* authenticated: `user` is the identity (235) */
  PST_SASL_BADAUTH,      /* wrong password, unknown user (535 5.7.8) */
  PST_SASL_BADPROT,      /* the client's response is malformed (501) */
  PST_SASL_NOMECH,       /* the mechanism is not available (504) */
  PST_SASL_TEMPFAIL,     /* the backend is unavailable (454 4.7.0) */
} PstSaslStatus;

/* "continue", "ok", "badauth", "badprot", "nomech", "tempfail". */
PST_API const char *pst_sasl_status_to_string(PstSaslStatus status);

/* One pending start() or step(): core-owned, released by the completion. */
typedef struct _PstSaslStep PstSaslStep;

/* Completes `step`: exactly once, from any thread.  With
 * PST_SASL_CONTINUE, `challenge` (`length` octets, nullable when 0) is
 * sent to the client base64-encoded; with PST_SASL_OK, `user` (required,
 * valid UTF-8, no control characters) is the authenticated identity.  The
 * core copies what it needs before this returns.  Other arguments are
 * ignored for other statuses. */
PST_API void pst_sasl_step_complete(PstSaslStep *step, PstSaslStatus status,
                                    const guint8 *challenge, gsize length,
                                    const char *user);

/* What a plugin that provides SASL implements.  Starts with its own size
 * and only grows at the end (set struct_size = sizeof (PstSaslFuncs)). */
typedef struct {
  guint32 struct_size;

  /* --- Server side: all required --- */

  /* A new connection's state (the core passes it back as `connection`).
   * `session` is valid until close().  NULL with `error` set: the
   * connection gets no AUTH (the error is logged). */
  gpointer (*open)(gpointer data, PstSession *session, GError **error);
  /* The mechanisms usable on the connection now, upper case, separated by
   * single spaces ("PLAIN LOGIN"), newly allocated; "" or NULL for none.
   * `plaintext_allowed` is FALSE on a connection without TLS (unless the
   * listener allows it): mechanisms that send the password in the clear
   * must then be left out.  The core calls it right before each start(),
   * with the same `plaintext_allowed`. */
  char *(*list_mechanisms)(gpointer connection, gboolean plaintext_allowed);
  /* Starts an exchange with `mechanism` (one that list_mechanisms() just
   * returned).  `has_response` is FALSE for "AUTH MECH" without initial
   * response; "AUTH MECH =" gives an empty one. */
  void (*start)(gpointer connection, const char *mechanism,
                const guint8 *response, gsize length, gboolean has_response,
                PstSaslStep *step);
  /* The client's next response (decoded) after a PST_SASL_CONTINUE. */
  void (*step)(gpointer connection, const guint8 *response, gsize length,
               PstSaslStep *step);
  /* The connection ended (see above about a pending step). */
  void (*close)(gpointer connection);

  /* --- Client side: all NULL, or all set --- */

  /* A client exchange with `server_name` as `user` with `password`;
   * `encrypted` tells whether the connection is under TLS. */
  gpointer (*client_open)(gpointer data, const char *server_name,
                          const char *user, const char *password,
                          gboolean encrypted, GError **error);
  /* Picks a mechanism among `server_mechanisms` (the EHLO AUTH list) and
   * gives the initial response (`*response_r` NULL when the mechanism has
   * none, an empty GBytes when it is empty).  Returns PST_SASL_CONTINUE or
   * PST_SASL_OK; anything else with `error` set. */
  PstSaslStatus (*client_start)(gpointer client, const char *server_mechanisms,
                                const char **mechanism_r, GBytes **response_r,
                                GError **error);
  /* The response to the server's decoded 334 challenge. */
  PstSaslStatus (*client_step)(gpointer client, const guint8 *challenge,
                               gsize length, GBytes **response_r,
                               GError **error);
  void (*client_close)(gpointer client);
} PstSaslFuncs;

/* Provides the SASL service from `plugin`; call it from init() only.
 * `funcs` and `data` must stay valid until the plugin's shutdown() (the
 * core never frees `data`).  A second call replaces the first.  Returns
 * FALSE (and logs) when `funcs` is incomplete or called outside init(). */
PST_API gboolean pst_plugin_provide_sasl(PstPlugin *plugin,
                                         const PstSaslFuncs *funcs,
                                         gpointer data);

/* ------------------------------------------------------------------ */
/* Client side, for the outbound SMTP client                           */
/* ------------------------------------------------------------------ */

/* One client exchange with one server. */
typedef struct _PstSaslClient PstSaslClient;

/* TRUE when a loaded plugin provides the client side. */
PST_API gboolean pst_sasl_client_available(void);

/* Prepares to authenticate to `server_name` (the relayhost's name, for
 * logs and mechanisms that need it) as `user` with `password` (both
 * copied; the password is wiped from memory when the client is freed).
 * `encrypted`: the connection is under TLS; without it PLAIN and LOGIN are
 * refused (the password would cross the network in the clear).  NULL with
 * `error` when no plugin provides the client side, or it refuses. */
PST_API PstSaslClient *pst_sasl_client_new(const char *server_name,
                                           const char *user,
                                           const char *password,
                                           gboolean encrypted, GError **error);

/* Chooses a mechanism among the server's EHLO "AUTH" keyword's list
 * (`server_mechanisms`, "PLAIN LOGIN CRAM-MD5", any case) and returns the
 * whole command line to send, without CRLF: "AUTH PLAIN AGFsaWNlAHMzY3I="
 * or "AUTH LOGIN" (free with g_free()).  NULL with `error` when no
 * mechanism fits. */
PST_API char *pst_sasl_client_start(PstSaslClient *client,
                                    const char *server_mechanisms,
                                    GError **error);

/* After a "334 TEXT" reply: `text` is TEXT (the base64 challenge, possibly
 * empty).  Returns the line to send, without CRLF (base64, possibly "");
 * NULL with `error` when the challenge is not base64 or the mechanism
 * fails (then send "*" to abort).  A 235 reply means success, 535 wrong
 * credentials: the client has nothing more to do. */
PST_API char *pst_sasl_client_step(PstSaslClient *client, const char *text,
                                   GError **error);

/* The mechanism chosen by pst_sasl_client_start(), or NULL before. */
PST_API const char *pst_sasl_client_get_mechanism(PstSaslClient *client);

/* Frees the client and wipes the password.  NULL is ignored. */
PST_API void pst_sasl_client_free(PstSaslClient *client);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSaslClient, pst_sasl_client_free)

G_END_DECLS
