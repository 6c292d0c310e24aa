/* postilion/plugin.h - the Postilion plugin ABI.
 *
 * A plugin is a shared object that exports one data symbol,
 * `postilion_plugin` (see POSTILION_PLUGIN_DEFINE), a constant
 * PstPluginDescriptor.  The daemon dlopen()s the file, reads the
 * descriptor's size and ABI version *before* it calls any plugin code,
 * refuses a different major or a newer minor, and then calls init().
 *
 * init() receives the daemon's merged keyfile and the plugin's own group
 * name (`plugin:NAME`).  It registers hooks with pst_plugin_register_hook():
 * one callback per SMTP stage, each with a priority (lower runs first; ties
 * keep the order of `[plugins] load`; `[plugin:NAME] priority=` overrides).
 *
 * Threading: every hook runs on the daemon's main thread (a GMainLoop on the
 * default main context) and must not block.  A hook that has to wait
 * returns PST_VERDICT_PENDING and later calls pst_call_complete() exactly
 * once, from any thread.  Functions documented as "any thread" may be called
 * from a worker thread while the call is pending; everything else belongs to
 * the main thread.
 *
 * Every type is an opaque handle; every field is reached through a function.
 * Structures that cross the boundary (the descriptor) start with their own
 * size and only ever grow at the end, so the ABI major rarely changes.
 */
#pragma once

#include <glib.h>
#include <gio/gio.h>

G_BEGIN_DECLS

/* ABI version.  The major changes only when an existing function or type
 * changes incompatibly; the minor grows when functions are added. */
#define PST_ABI_MAJOR 1
#define PST_ABI_MINOR 2

#if defined(__GNUC__)
#define PST_API __attribute__((visibility("default")))
#define PST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PST_API
#define PST_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------ */
/* Opaque handles                                                      */
/* ------------------------------------------------------------------ */

/* A loaded plugin.  Lives from init() until after shutdown(). */
typedef struct _PstPlugin PstPlugin;
/* One SMTP connection.  Valid during every hook call made for it. */
typedef struct _PstSession PstSession;
/* One invocation of one hook: its arguments, its verdict and reply. */
typedef struct _PstCall PstCall;
/* The received message at EOM: header list, envelope, body. */
typedef struct _PstMessage PstMessage;

/* ------------------------------------------------------------------ */
/* Stages and verdicts                                                 */
/* ------------------------------------------------------------------ */

typedef enum {
  PST_STAGE_CONNECT = 0, /* after accept, before the banner (filter) */
  PST_STAGE_HELO,        /* HELO / EHLO (filter) */
  PST_STAGE_AUTH,        /* after a successful SASL exchange (filter) */
  PST_STAGE_MAIL,        /* MAIL FROM (filter) */
  PST_STAGE_RCPT,        /* each RCPT TO (filter) */
  PST_STAGE_DATA,        /* DATA, or the first BDAT (filter) */
  PST_STAGE_EOM,         /* whole message received, before the reply (filter) */
  PST_STAGE_QUEUED,      /* message is durably queued (event) */
  PST_STAGE_DISCONNECT,  /* once per connection, always (event) */
  /* ABI 1.1: each recipient of a queued message, when the queue picks its
   * route (filter; no session: pst_call_get_session() is NULL). */
  PST_STAGE_DELIVERY,
  PST_STAGE_COUNT
} PstStage;

typedef enum {
  PST_VERDICT_CONTINUE = 0, /* no opinion: run the next plugin */
  PST_VERDICT_ACCEPT,       /* decided yes: skip the rest of this stage */
  PST_VERDICT_REJECT,       /* permanent refusal (5xx) */
  PST_VERDICT_TEMPFAIL,     /* temporary refusal (4xx) */
  PST_VERDICT_DISCARD,      /* EOM/RCPT: answer 250, drop silently */
  PST_VERDICT_QUARANTINE,   /* EOM: answer 250, put in the held queue */
  PST_VERDICT_PENDING,      /* the plugin will call pst_call_complete() */
} PstVerdict;

/* Scopes of the shared results store. */
typedef enum {
  PST_SCOPE_SERVER = 0,  /* the whole daemon, until it exits */
  PST_SCOPE_SESSION,     /* this connection */
  PST_SCOPE_TRANSACTION, /* this message (MAIL .. end of DATA); saved with it */
  PST_SCOPE_RECIPIENT,   /* the recipient the call is about; saved with it */
} PstScope;

/* Returns the stage's name in lower case ("connect", "eom", ...). */
PST_API const char *pst_stage_to_string(PstStage stage);
/* Returns the verdict's name in lower case ("continue", "reject", ...). */
PST_API const char *pst_verdict_to_string(PstVerdict verdict);

/* ------------------------------------------------------------------ */
/* The descriptor                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
  /* sizeof (PstPluginDescriptor) as the plugin was compiled. */
  guint32 struct_size;
  guint16 abi_major; /* PST_ABI_MAJOR the plugin was built against */
  guint16 abi_minor; /* PST_ABI_MINOR the plugin was built against */
  const char *name;  /* "relay", "dkim": [a-z0-9_-]+, the config group suffix */
  const char *version;     /* the plugin's own version, free form */
  const char *description; /* one line, for `postilion plugins` */

  /* Called once after loading.  `config` is the daemon's merged keyfile,
   * `group` is "plugin:NAME" (it may be absent from the keyfile).  Register
   * hooks here.  Return FALSE with `error` set to refuse to start; the
   * daemon then exits naming the plugin and the message. */
  gboolean (*init)(PstPlugin *plugin, GKeyFile *config, const char *group,
                   GError **error);
  /* Called once before the daemon unloads the plugin.  Nullable. */
  void (*shutdown)(PstPlugin *plugin);
  /* Called on SIGHUP with the new configuration.  Nullable: a plugin
   * without it keeps its settings.  Return FALSE to refuse the new
   * configuration: the daemon then keeps serving with the old one.  A
   * plugin stays loaded across a SIGHUP that keeps it in `[plugins] load`
   * (even when the list changes): it gets reload(), never a second
   * init(), and shutdown() only when it leaves the list. */
  gboolean (*reload)(PstPlugin *plugin, GKeyFile *config, const char *group,
                     GError **error);
} PstPluginDescriptor;

/* The one exported symbol every plugin defines. */
#define POSTILION_PLUGIN_SYMBOL "postilion_plugin"

/* Defines the exported descriptor.  Use once per plugin:
 *
 *   POSTILION_PLUGIN_DEFINE ("hello", "1.0", "Says hello", hello_init,
 *                            NULL, NULL);
 */
#define POSTILION_PLUGIN_DEFINE(name_, version_, description_, init_,        \
                                shutdown_, reload_)                           \
  PST_API const PstPluginDescriptor postilion_plugin = {                      \
      .struct_size = sizeof(PstPluginDescriptor),                             \
      .abi_major = PST_ABI_MAJOR,                                             \
      .abi_minor = PST_ABI_MINOR,                                             \
      .name = (name_),                                                        \
      .version = (version_),                                                  \
      .description = (description_),                                         \
      .init = (init_),                                                        \
      .shutdown = (shutdown_),                                                \
      .reload = (reload_),                                                    \
  }

/* ------------------------------------------------------------------ */
/* Plugins and hooks                                                   */
/* ------------------------------------------------------------------ */

/* A hook callback.  Return a verdict; or return PST_VERDICT_PENDING after
 * taking responsibility to call pst_call_complete() exactly once.  Event
 * stages (QUEUED, DISCONNECT) ignore the verdict.  A verdict the stage
 * cannot take (an unknown value, DISCARD outside RCPT and EOM, QUARANTINE
 * outside EOM) is logged and replaced by the plugin's `on_error` verdict. */
typedef PstVerdict (*PstHookFunc)(PstCall *call, gpointer user_data);

/* Registers `func` for `stage` with `priority` (lower runs first).  Call it
 * from init() or reload() only.  `destroy` (nullable) frees `user_data`
 * when the hook is no longer used: after the plugin is unloaded, or after a
 * reload() replaced it and the sessions still running on it ended.  A
 * reload() that registers hooks replaces all of the plugin's hooks (for new
 * sessions); one that registers none keeps them.  Bands: enrichment <
 * -500, authentication checks -500..-1, access policy 0, aggregation
 * 1..499, actions >= 500. */
PST_API void pst_plugin_register_hook(PstPlugin *plugin, PstStage stage,
                                      int priority, PstHookFunc func,
                                      gpointer user_data,
                                      GDestroyNotify destroy);

/* The plugin's name, from its descriptor. */
PST_API const char *pst_plugin_get_name(PstPlugin *plugin);
/* Plugin-wide private data; the daemon never looks at it.  `destroy`
 * (nullable) runs after shutdown() or when the data is replaced. */
PST_API void pst_plugin_set_data(PstPlugin *plugin, gpointer data,
                                 GDestroyNotify destroy);
PST_API gpointer pst_plugin_get_data(PstPlugin *plugin);
/* Logs a line prefixed with the plugin's name.  Any thread. */
PST_API void pst_plugin_log(PstPlugin *plugin, GLogLevelFlags level,
                            const char *format, ...) PST_PRINTF(3, 4);

/* ABI 1.2: the signer of the daemon's own mail.  Delivery status
 * notifications and delay notices pass through it before they are queued,
 * so that they can be DKIM-signed like a user's mail.  `func` gets the
 * whole message (header and body, CRLF lines) and returns the header
 * fields to put on top of it ("Name: value\r\n" each, folded with CRLF
 * and a tab or space; freed by the core with g_free()), or NULL to leave
 * the message as it is.  It runs on the core's delivery workers, several
 * at once, so it must be thread-safe; it may take its time (RSA).  One
 * signer per daemon: the plugin that provided one most recently.  Call it
 * from init() only; the core forgets it (after the calls in progress
 * return) before the plugin's shutdown(). */
typedef char *(*PstSignerFunc)(GBytes *message, gpointer user_data);
PST_API void pst_plugin_provide_signer(PstPlugin *plugin, PstSignerFunc func,
                                       gpointer user_data);

/* ------------------------------------------------------------------ */
/* Configuration helpers                                               */
/* ------------------------------------------------------------------ */

/* Fails naming the group and key if `group` holds a key that is neither in
 * `allowed` (NULL-terminated) nor one the core reads for every plugin
 * (priority, timeout, on_timeout, on_error).  An absent group is fine. */
PST_API gboolean pst_config_check_keys(GKeyFile *config, const char *group,
                                       const char *const *allowed,
                                       GError **error);
/* Typed getters with a default for an absent key; a present key of the
 * wrong form fails with a message naming group, key, value and the form
 * expected.  Durations accept "30", "30s", "500ms", "5m", "2h", "5d" and
 * return milliseconds.  Sizes accept "1000", "10k", "35M", "1G" (powers of
 * 1024).  Lists are ';'-separated, empty items dropped; free with
 * g_strfreev(). */
PST_API gboolean pst_config_get_string(GKeyFile *config, const char *group,
                                       const char *key, const char *fallback,
                                       char **value_r, GError **error);
PST_API gboolean pst_config_get_boolean(GKeyFile *config, const char *group,
                                        const char *key, gboolean fallback,
                                        gboolean *value_r, GError **error);
PST_API gboolean pst_config_get_int(GKeyFile *config, const char *group,
                                    const char *key, gint64 fallback,
                                    gint64 min, gint64 max, gint64 *value_r,
                                    GError **error);
PST_API gboolean pst_config_get_duration(GKeyFile *config, const char *group,
                                         const char *key, guint64 fallback_ms,
                                         guint64 *value_ms_r, GError **error);
PST_API gboolean pst_config_get_size(GKeyFile *config, const char *group,
                                     const char *key, guint64 fallback,
                                     guint64 *value_r, GError **error);
PST_API gboolean pst_config_get_list(GKeyFile *config, const char *group,
                                     const char *key, char ***value_r,
                                     GError **error);

/* ------------------------------------------------------------------ */
/* Calls                                                               */
/* ------------------------------------------------------------------ */

/* The stage the call is made for. */
PST_API PstStage pst_call_get_stage(PstCall *call);
/* The session the call is about.  Valid during the hook and, for a pending
 * call, until the call's cancellable fires (the client may be gone then). */
PST_API PstSession *pst_call_get_session(PstCall *call);
/* The plugin whose hook is called. */
PST_API PstPlugin *pst_call_get_plugin(PstCall *call);

/* The stage's argument, as the client sent it, already parsed:
 * HELO: the HELO/EHLO name; MAIL: the reverse-path address without angle
 * brackets ("" for the null sender); RCPT: the forward-path address; AUTH:
 * the authenticated identity; DELIVERY: the recipient's address after
 * alias expansion (lower case); otherwise NULL. */
PST_API const char *pst_call_get_argument(PstCall *call);
/* MAIL and RCPT: an ESMTP parameter's value by name, case-insensitively
 * ("SIZE", "BODY", "NOTIFY", "ORCPT" ...).  A parameter without value
 * returns "".  Absent: NULL. */
PST_API const char *pst_call_get_parameter(PstCall *call, const char *name);

/* Sets the reply sent with the verdict.  `code` is a 3-digit SMTP code
 * matching the verdict's class (4xx for TEMPFAIL, 5xx for REJECT, 2xx for
 * ACCEPT, DISCARD, QUARANTINE: there the text is the hold reason, logged
 * and shown by `postilion queue show`); `enhanced` ("5.7.1", nullable) and `text`
 * (nullable) follow.  Checked when the verdict is known: a code of the
 * wrong class drops the reply (the standard one is sent, a warning
 * logged); an enhanced status that is not "C.S.D" with C the code's first
 * digit is dropped; in the text, CR, LF and other control characters
 * become spaces and it is cut to 400 octets.  A later call replaces an
 * earlier one.  Without a reply the core uses a standard one.  Any thread
 * while the call is pending. */
PST_API void pst_call_set_reply(PstCall *call, guint code,
                                const char *enhanced, const char *text);
/* Asks the core to close the connection after the reply (421-style). Any
 * thread while the call is pending. */
PST_API void pst_call_set_disconnect(PstCall *call, gboolean disconnect);
/* DELIVERY (ABI 1.1): the route of the recipient the call is about (its
 * address is pst_call_get_argument()), taken with the verdict ACCEPT:
 *   "local"          our own mailboxes (Maildir, LMTP), for our domains;
 *   "smtp"           SMTP: the relayhost when one is set, else the MX
 *                    hosts of the recipient's domain;
 *   "smtp:NEXTHOP"   SMTP via NEXTHOP: "host" (its MX hosts), "[host]"
 *                    or "[host]:port" (that host, no MX lookup).
 * CONTINUE keeps the default (our domains local, others SMTP), REJECT
 * bounces the recipient and TEMPFAIL defers it, with the call's reply.  A
 * route the core cannot use defers the recipient, logged.  Any thread
 * while the call is pending. */
PST_API void pst_call_set_route(PstCall *call, const char *route);

/* Cancelled when the client disconnects or the call's deadline passes.
 * Valid until the call is completed. */
PST_API GCancellable *pst_call_get_cancellable(PstCall *call);
/* Remaining time before the deadline, in milliseconds (0 when past). */
PST_API gint64 pst_call_get_remaining_ms(PstCall *call);

/* Completes a call for which the hook returned PST_VERDICT_PENDING.  Call
 * it exactly once, from any thread, also after cancellation (the verdict
 * is then ignored): it releases the call.  Returns FALSE (and logs) when
 * the call was already completed, or when the verdict arrived too late and
 * the call's `on_timeout` verdict was applied instead. */
PST_API gboolean pst_call_complete(PstCall *call, PstVerdict verdict);

/* Logs a line with the session id and plugin name.  Any thread. */
PST_API void pst_call_log(PstCall *call, GLogLevelFlags level,
                          const char *format, ...) PST_PRINTF(3, 4);

/* ------------------------------------------------------------------ */
/* Sessions                                                            */
/* ------------------------------------------------------------------ */

/* A short unique id used in every log line about the session. */
PST_API const char *pst_session_get_id(PstSession *session);
/* The listener's name from `[listener:NAME]`. */
PST_API const char *pst_session_get_listener(PstSession *session);
/* The client's address as text ("192.0.2.1", "2001:db8::1"), already
 * unmapped from IPv4-mapped IPv6, and its port.  These are the real
 * client's, after PROXY/XCLIENT where those are enabled. */
PST_API const char *pst_session_get_client_address(PstSession *session);
PST_API guint16 pst_session_get_client_port(PstSession *session);
/* The client's address as a socket address (a new reference). */
PST_API GInetAddress *pst_session_get_client_inet_address(PstSession *session);
/* Verified reverse DNS name of the client, or NULL when unknown. */
PST_API const char *pst_session_get_client_hostname(PstSession *session);
/* The address the client connected to, as text, and the port. */
PST_API const char *pst_session_get_local_address(PstSession *session);
PST_API guint16 pst_session_get_local_port(PstSession *session);
/* The HELO/EHLO name, NULL before HELO. */
PST_API const char *pst_session_get_helo(PstSession *session);
/* TRUE after EHLO (as opposed to HELO). */
PST_API gboolean pst_session_is_esmtp(PstSession *session);
/* TRUE once the connection is encrypted. */
PST_API gboolean pst_session_is_tls(PstSession *session);
/* The authenticated identity, NULL when not authenticated. */
PST_API const char *pst_session_get_auth_user(PstSession *session);

/* The transaction: the envelope sender ("" for <>, NULL outside a
 * transaction) and the accepted recipients so far. */
PST_API const char *pst_session_get_sender(PstSession *session);
PST_API guint pst_session_get_recipient_count(PstSession *session);
PST_API const char *pst_session_get_recipient(PstSession *session,
                                              guint index);

/* TRUE when `domain` (ASCII, any case) is one of `[server] domains`. */
PST_API gboolean pst_session_is_local_domain(PstSession *session,
                                             const char *domain);
/* Marks this connection as allowed to relay (the core's relay rule: the
 * recipient must be local unless the client may relay).  Plugins that
 * classify clients (internal networks, authenticated) set it at CONNECT,
 * AUTH or MAIL.  Sticky for the session. */
PST_API void pst_session_set_relay_allowed(PstSession *session,
                                           gboolean allowed);
PST_API gboolean pst_session_get_relay_allowed(PstSession *session);
/* Whether MAIL needs HELO/EHLO first (Postfix's smtpd_helo_required).
 * The core's default is TRUE: MAIL before HELO/EHLO gets `503 5.5.1`.  A
 * plugin may relax it for this connection at CONNECT (the relay plugin's
 * `helo_required = false`, for old devices that never say HELLO); the
 * session then takes MAIL as plain SMTP with an unknown HELO name.  Since
 * ABI 1.1. */
PST_API void pst_session_set_helo_required(PstSession *session,
                                           gboolean required);
PST_API gboolean pst_session_get_helo_required(PstSession *session);

/* ------------------------------------------------------------------ */
/* The results store                                                   */
/* ------------------------------------------------------------------ */

/* Stores `value` (floating references are sunk) under `key` in `scope`.
 * A plugin may write only keys in its own namespace, "NAME." or
 * "auth.NAME" (RFC 8601 results: "auth.spf", "auth.dkim", "auth.dmarc",
 * each an a{sv} with "result", "reason" and properties; a value without a
 * string "result" is refused).  "auth." keys other than "auth.NAME" are
 * refused even to a plugin called "auth".  Other keys are refused with a
 * warning and FALSE.  PST_SCOPE_RECIPIENT addresses the recipient the
 * call is about (RCPT); use pst_result_set_recipient() at
 * EOM.  Any thread while the call is pending: writes made then are applied
 * when the call completes, and dropped if it was cancelled.
 *
 * The core renders the "auth.*" results of the session and the transaction
 * as one Authentication-Results field (RFC 8601, authserv-id = [server]
 * hostname) on top of the message after EOM: "auth.spf" = {"result":
 * "pass", "reason": "...", "smtp.mailfrom": "a@example.com"} becomes
 * `spf=pass reason="..." smtp.mailfrom=a@example.com`; properties are the
 * string entries named "ptype.property".  Fields a client sent with our
 * authserv-id are deleted before EOM. */
PST_API gboolean pst_result_set(PstCall *call, PstScope scope,
                                const char *key, GVariant *value);
/* Returns a new reference to a stored value or NULL; the call's own
 * writes not yet applied are seen too.  PST_SCOPE_RECIPIENT outside RCPT
 * returns NULL (use pst_result_get_recipient()).  Main thread. */
PST_API GVariant *pst_result_get(PstCall *call, PstScope scope,
                                 const char *key);
/* Recipient scope by index into pst_session_get_recipient(), at any
 * stage; writing an index with no recipient fails. */
PST_API gboolean pst_result_set_recipient(PstCall *call, guint index,
                                          const char *key, GVariant *value);
PST_API GVariant *pst_result_get_recipient(PstCall *call, guint index,
                                           const char *key);

/* Several results for one method, one per DKIM signature say (ABI 1.2).
 * Appends `value` (an a{sv}; floating references are sunk; the key rules
 * and, for "auth.NAME", the "result" rule of pst_result_set() apply) to
 * the list stored under `key`: the stored value becomes an "aa{sv}" in
 * append order, a single a{sv} stored before being its first element.  A
 * later pst_result_set() replaces the whole list.  The core renders each
 * element of an "auth.NAME" list as its own Authentication-Results resinfo
 * (`dkim=pass header.d=a.example; dkim=fail header.d=b.example`), at most
 * 50 per method.  PST_SCOPE_RECIPIENT only at RCPT.  Any thread while the
 * call is pending, as pst_result_set(). */
PST_API gboolean pst_result_append(PstCall *call, PstScope scope,
                                   const char *key, GVariant *value);
/* Every result under `key` as a new "aa{sv}" reference: a list as stored,
 * a single a{sv} as a one-element list; NULL when nothing is stored or the
 * value is neither (ABI 1.2).  Main thread, as pst_result_get(). */
PST_API GVariant *pst_result_get_all(PstCall *call, PstScope scope,
                                     const char *key);

/* Results of string fields without GVariant trees (ABI 1.2).  Most
 * results are an a{sv} of strings ("auth.spf" = {"result": "pass",
 * "smtp.mailfrom": "a@example.com"}); built with GVariantBuilder they cost
 * a GVariant per key, box and value, and the core serialises them again
 * for the spool.  These write and read GLib's serialised normal form
 * directly: the values are the same GVariants, octet for octet, as GLib's
 * constructors make, so any reader (GLib, these, other plugins) sees the
 * same.  Pure functions of their arguments: any thread, no call needed.
 *
 * pst_result_new_fields() returns a new floating a{sv} (for
 * pst_result_set() or pst_result_append(), which sink it) with the
 * entries `names[i]` -> string `values[i]`, in this order; an entry whose
 * value is NULL is left out (an optional "reason", say).  A name or value
 * that is not valid UTF-8 (a GVariant string must be) is stored as
 * g_utf8_make_valid() makes it, U+FFFD for each invalid sequence.  The
 * arrays and strings are only read; they stay the caller's.
 *
 *   const char *names[] = {"result", "reason", "smtp.mailfrom"};
 *   const char *values[] = {"pass", NULL, sender};
 *   pst_result_set(call, PST_SCOPE_TRANSACTION, "auth.spf",
 *                  pst_result_new_fields(names, values, 3));
 */
PST_API GVariant *pst_result_new_fields(const char *const *names,
                                        const char *const *values,
                                        gsize count);
/* The string field `name` of a result `value` holds, read in place (no
 * GVariant made): of the a{sv} pst_result_get() returns (`index` 0), or
 * of element `index` of the "aa{sv}" pst_result_get_all() returns (count
 * them with g_variant_n_children()).  The first entry named `name`, as
 * g_variant_lookup_value(dict, name, G_VARIANT_TYPE_STRING) finds it.
 * NULL when `value` is NULL or of another type, `index` is out of range,
 * there is no such entry or its value is not a string.  The string
 * belongs to `value`: valid as long as the caller holds its reference.
 * Any value is read, in normal form or not (GLib reads the latter).
 *
 *   g_autoptr(GVariant) all =
 *       pst_result_get_all(call, PST_SCOPE_TRANSACTION, "auth.dkim");
 *   gsize count = all != NULL ? g_variant_n_children(all) : 0;
 *   for (gsize i = 0; i < count; i++)
 *     if (g_strcmp0(pst_result_get_field(all, i, "result"), "pass") == 0)
 *       use(pst_result_get_field(all, i, "header.d"));
 */
PST_API const char *pst_result_get_field(GVariant *value, gsize index,
                                         const char *name);
/* A new floating "as" of `count` strings (-1: `strings` ends with NULL),
 * with the same UTF-8 rule as pst_result_new_fields(); what
 * g_variant_new_strv() makes. */
PST_API GVariant *pst_result_new_strv(const char *const *strings,
                                      gssize count);
/* The strings of the "as" `value`, read in place, as g_variant_get_strv()
 * gives them: a new NULL-terminated array (free it with g_free(), not the
 * strings) whose strings belong to `value`, valid as long as the caller
 * holds it; their count in `*length` (nullable).  NULL (and 0) when
 * `value` is NULL or of another type. */
PST_API const char **pst_result_get_strv(GVariant *value, gsize *length);

/* ------------------------------------------------------------------ */
/* The message at EOM                                                  */
/* ------------------------------------------------------------------ */

/* The message, at EOM and QUEUED; NULL at other stages.  Edits made by one
 * plugin are visible at once to the plugins that run after it.  Every
 * pst_message_* function may be called from any thread while the call is
 * pending. */
PST_API PstMessage *pst_call_get_message(PstCall *call);

/* The queue id, as in the logs. */
PST_API const char *pst_message_get_id(PstMessage *message);
/* Size in octets of the message as received (headers and body, CRLF). */
PST_API guint64 pst_message_get_size(PstMessage *message);

/* The header fields, in order.  Names are as sent; values are unfolded
 * only by the caller: they keep their CRLF-whitespace folding, without the
 * final CRLF and without the space after the colon. */
PST_API guint pst_message_get_header_count(PstMessage *message);
PST_API const char *pst_message_get_header_name(PstMessage *message,
                                                guint index);
PST_API const char *pst_message_get_header_value(PstMessage *message,
                                                 guint index);
/* The value of the `occurrence`th (0-based) field called `name` (case
 * insensitive), or NULL. */
PST_API const char *pst_message_get_header(PstMessage *message,
                                           const char *name,
                                           guint occurrence);

/* Header edits.  `name` must be a valid field name (printable ASCII, no
 * colon); `value` may be folded with "\r\n\t" or "\r\n " but has no other
 * CR or LF.  A bad name or value returns FALSE and edits nothing. */
/* Values are refused, besides, when a line is only white space or longer
 * than 998 octets (the first line counting "Name: ").  Strings returned by
 * the getters stay valid until the message is freed, also across edits. */
/* Appends a field after the last one. */
PST_API gboolean pst_message_add_header(PstMessage *message, const char *name,
                                        const char *value);
/* Inserts a field before the field at `index` (0 = on top; an index past
 * the end appends). */
PST_API gboolean pst_message_insert_header(PstMessage *message, guint index,
                                           const char *name,
                                           const char *value);
/* Replaces the value of the `occurrence`th field called `name`; FALSE if
 * there is none. */
PST_API gboolean pst_message_change_header(PstMessage *message,
                                           const char *name, guint occurrence,
                                           const char *value);
/* Deletes the `occurrence`th field called `name`; FALSE if there is none. */
PST_API gboolean pst_message_delete_header(PstMessage *message,
                                           const char *name, guint occurrence);

/* The body (after the blank line that ends the header), with CRLF line
 * endings and no dot-stuffing.  The returned bytes are a new reference and
 * stay valid after the call ends.  NULL, with a warning logged, when the
 * spooled message cannot be read. */
PST_API GBytes *pst_message_get_body(PstMessage *message);

/* The body in pieces (ABI 1.2): what pst_message_get_body() returns, read
 * from the spool with pread() so that memory does not grow with the
 * message (DKIM hashing, milters, content scanners).  Any thread; each
 * reader has its own position and holds its own reference to the message,
 * so it stays valid after the call ends; free it with
 * pst_body_reader_free().  NULL with `error` set when the spooled file
 * cannot be read. */
typedef struct _PstBodyReader PstBodyReader;
PST_API PstBodyReader *pst_message_open_body(PstMessage *message,
                                             GError **error);
/* Reads up to `size` octets into `buffer`: the count, 0 at the end of the
 * body, -1 with `error` set on an I/O error. */
PST_API gssize pst_body_reader_read(PstBodyReader *reader, void *buffer,
                                    gsize size, GError **error);
PST_API void pst_body_reader_free(PstBodyReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstBodyReader, pst_body_reader_free)

/* Replaces the body (ABI 1.2): `body` is the new body after the blank line
 * that ends the header, with CRLF line endings and no dot-stuffing (a
 * bare CR or LF returns FALSE and changes nothing).  From then on
 * pst_message_get_body() and pst_message_open_body() return the new body,
 * plugins later in the chain see it, and the spool stores it in place of
 * the received one when the message is queued.  The header is not
 * touched: a plugin that changes the body's MIME structure edits
 * Content-Type and friends itself.  Any thread while the call is pending. */
PST_API gboolean pst_message_replace_body(PstMessage *message, GBytes *body);

/* Envelope edits. `address` without angle brackets; "" is the null
 * sender; an address with white space, control characters, angle brackets
 * or no "local@domain" form returns FALSE.  Recipients added this way skip
 * RCPT-stage policy: they are the plugin's decision; adding one already
 * there does nothing and returns TRUE.  A message left without recipients
 * is answered 250 and dropped. */
PST_API gboolean pst_message_set_sender(PstMessage *message,
                                        const char *address);
PST_API gboolean pst_message_add_recipient(PstMessage *message,
                                           const char *address);
/* Removes a recipient, compared case-insensitively; FALSE if absent. */
PST_API gboolean pst_message_remove_recipient(PstMessage *message,
                                              const char *address);
/* The envelope as it stands after the edits so far. */
PST_API const char *pst_message_get_sender(PstMessage *message);
PST_API guint pst_message_get_recipient_count(PstMessage *message);
PST_API const char *pst_message_get_recipient(PstMessage *message,
                                              guint index);

G_END_DECLS

/* DNS lookups through the daemon's resolver. */
#include <postilion/dns.h>
/* The transport service: TLS connections and a session's TLS state. */
#include <postilion/transport.h>
/* The SASL service: SMTP AUTH, server and client side. */
#include <postilion/sasl.h>
