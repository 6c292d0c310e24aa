/* hooks.h - loading plugins and running their hooks (the core side of the
 * SDK).
 *
 * A PstPluginSet is every plugin of one configuration generation: loaded
 * from `[plugins] load` in order, each found on `[plugins] path` as
 * NAME.so (or libpostilion-NAME.so), its descriptor's size and ABI checked
 * before any of its code runs, its init() called with the merged keyfile.
 * A SIGHUP that changes nothing about which plugins are loaded calls each
 * plugin's reload() and keeps the set; the dispatcher builds new chains.
 *
 * A PstChain is the ordered list of hooks for one listener and stage:
 * sorted by priority (the keyfile's `[plugin:NAME] priority` wins over the
 * one the plugin registered), ties in load order, restricted to the
 * listener's `plugins` list when it has one.
 *
 * pst_chain_run() runs one stage for one session: filter stages stop at the
 * first verdict other than CONTINUE (ACCEPT ends the stage with yes);
 * event stages run every hook.  A hook returning PENDING is given its
 * plugin's timeout: its completion (from any thread) is marshalled back to
 * the main context; on timeout or cancellation the plugin's on_timeout
 * verdict applies and a late completion is ignored.
 *
 * Main thread only, except the pst_call_* / pst_result_* / pst_message_*
 * functions the SDK marks "any thread".
 */
#pragma once

#include <gio/gio.h>

#include <postilion/plugin.h>

#include "config/config.h"
#include "queue/envelope.h"
#include "smtp/smtp-parse.h"

G_BEGIN_DECLS

#define PST_PLUGIN_ERROR (pst_plugin_error_quark())
GQuark pst_plugin_error_quark(void);
typedef enum {
  PST_PLUGIN_ERROR_NOT_FOUND, /* no such file on the plugin path */
  PST_PLUGIN_ERROR_OPEN,      /* dlopen() failed */
  PST_PLUGIN_ERROR_ENTRY,     /* the descriptor symbol is missing */
  PST_PLUGIN_ERROR_ABI,       /* wrong size or ABI version */
  PST_PLUGIN_ERROR_INIT,      /* init() failed */
  PST_PLUGIN_ERROR_DUPLICATE, /* the same name twice */
} PstPluginError;

typedef struct _PstPluginSet PstPluginSet;
typedef struct _PstChainRun PstChainRun;

/* Loads every plugin of `config`.  On failure nothing stays loaded and the
 * error names the file (or the name searched) and the reason. */
PstPluginSet *pst_plugin_set_load(PstConfig *config, GError **error);
/* Applies a new configuration: each plugin's reload() (or nothing when it
 * has none) and new chains.  When a plugin refuses, the set keeps the old
 * configuration and chains and the error says which plugin and why.  The
 * list of plugins must be the same (the server loads a new set otherwise).
 * A plugin whose reload() registers hooks gets exactly those; one whose
 * reload() registers none, or that has no reload(), keeps its hooks.
 * Runs in progress keep the chains they started on. */
gboolean pst_plugin_set_reload(PstPluginSet *set, PstConfig *config,
                               GError **error);
/* Like pst_plugin_set_reload(), but leaves `set` and its chains untouched
 * and returns a new set (a new reference) that shares the loaded plugins
 * and has the new chains: sessions holding `set` finish on the old chains,
 * sessions given the new set use the new ones.  The plugins are shut down
 * when the last set sharing them goes.  NULL with `error` when a plugin
 * refuses (the plugins that accepted are given the old keyfile again). */
PstPluginSet *pst_plugin_set_reload_new(PstPluginSet *set, PstConfig *config,
                                        GError **error);
/* TRUE when `config` loads the same plugins, in the same order. */
gboolean pst_plugin_set_matches(PstPluginSet *set, PstConfig *config);
/* Loads plugins whose descriptors are linked into the program instead of
 * found on the plugin path (unit tests, static builds): `descriptors`
 * (NULL-terminated) must name, in order, the plugins of `config`.  The
 * same checks as for files apply. */
PstPluginSet *
pst_plugin_set_load_builtin(PstConfig *config,
                            const PstPluginDescriptor *const *descriptors,
                            GError **error);
PstPluginSet *pst_plugin_set_ref(PstPluginSet *set);
/* The last unref calls every plugin's shutdown() and unloads them, but
 * for those a call still holds (a plugin's worker that has not completed
 * it, or whose completion's release waits for the main loop): they go
 * with their last call. */
void pst_plugin_set_unref(PstPluginSet *set);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstPluginSet, pst_plugin_set_unref)
/* How many plugin instances are loaded; their names, ", "-separated, are
 * appended to `names` (nullable).  Main thread. */
guint pst_plugin_count_loaded(GString *names);

/* Writes the effective chain per listener and stage, for `postilion
 * plugins` and `postiliond --check -v`: one line per hook,
 * "LISTENER STAGE PRIORITY PLUGIN", then one line per loaded plugin,
 * "plugin<TAB>NAME<TAB>VERSION<TAB>DESCRIPTION". */
void pst_plugin_set_describe(PstPluginSet *set, PstConfig *config,
                             GString *out);

/* What a stage decided. */
typedef struct {
  PstVerdict verdict; /* CONTINUE when no plugin decided */
  guint code;         /* 0 = the core's standard reply for the verdict */
  char *enhanced;     /* nullable */
  char *text;         /* nullable */
  gboolean disconnect;
  const char *plugin; /* the deciding plugin's name, NULL when none */
  gboolean timed_out; /* the verdict is the plugin's on_timeout */
  gboolean failed;    /* the verdict is the plugin's on_error (it
                       * returned an invalid verdict) */
  char *route;        /* nullable: DELIVERY's route, with ACCEPT */
} PstHookOutcome;
/* For a TEMPFAIL that comes from on_timeout / on_error at a command stage
 * (not CONNECT), the outcome carries the reply "451 4.3.0 Error: policy
 * check unavailable, try again later"; at CONNECT code is 0 and the
 * session sends its standard 421. */

typedef struct _PstResults PstResults; /* results.c, below */

/* The results stores of one session (PST_SCOPE_SESSION, _TRANSACTION,
 * _RECIPIENT), owned by the session, which hands them to every stage run
 * (PstHookArgs.stores): the hooks module never reaches into a session.
 * The session keeps this struct at one address for its life; its members
 * change as transactions begin and end. */
typedef struct {
  PstResults *session;     /* nullable */
  PstResults *transaction; /* nullable: no transaction */
  GPtrArray *recipients;   /* nullable, of PstResults*: the recipients */
} PstResultsStores;

/* The store for `scope` (PST_SCOPE_SERVER: the daemon's), NULL when there
 * is no such scope now (`stores` NULL, no transaction, index out of
 * range). */
PstResults *pst_results_stores_lookup(const PstResultsStores *stores,
                                      PstScope scope, guint recipient_index);

typedef struct _PstDnsResolver PstDnsResolver; /* dns/dns.h */

/* The stage's inputs that do not live on the session (DELIVERY has no
 * session: its argument is the recipient). */
typedef struct {
  /* nullable, borrowed while the run lives: the session's stores */
  const PstResultsStores *stores;
  const char *argument;    /* see pst_call_get_argument() */
  const GPtrArray *params; /* nullable, of PstEsmtpParam* (MAIL, RCPT) */
  PstMessage *message;     /* EOM and QUEUED */
  guint recipient_index;   /* RCPT: index of the recipient in the store */
  /* nullable, borrowed while the run lives: the resolver of the caller's
   * generation, which the hooks' pst_dns_lookup() calls use */
  PstDnsResolver *dns;
} PstHookArgs;

/* Called once per run, on the main thread, possibly before
 * pst_chain_run() returns.  `outcome` is only valid during the call.  The
 * run handle is gone when it is called: do not cancel it from there. */
typedef void (*PstChainDoneFunc)(const PstHookOutcome *outcome,
                                 gpointer user_data);

/* Runs `stage` for `session` on the chain of its listener (a listener the
 * configuration does not name, or NULL, gets every plugin).  Returns a
 * handle while a hook is pending, NULL when the run already finished
 * (done was called).  With no hooks for the stage this costs one lookup
 * and allocates nothing.  `args` is copied; its `message` is referenced.
 * The run keeps a reference to the chains it started on, so a reload does
 * not change a run in progress. */
PstChainRun *pst_chain_run(PstPluginSet *set, const char *listener,
                           PstStage stage, PstSession *session,
                           const PstHookArgs *args, PstChainDoneFunc done,
                           gpointer user_data);
/* Cancels a pending run (client gone): the pending call's cancellable
 * fires, `done` is NOT called, the handle is freed. */
void pst_chain_run_cancel(PstChainRun *run);
/* TRUE when the listener's chain has any hook for `stage`. */
gboolean pst_chain_has_hooks(PstPluginSet *set, const char *listener,
                             PstStage stage);

/* --- Names (hooks-names.c) ---------------------------------------------- */

/* TRUE for the event stages (QUEUED, DISCONNECT): every hook runs and the
 * verdicts are ignored. */
gboolean pst_stage_is_event(PstStage stage);
/* Parses a lower- or upper-case stage / verdict name as printed by
 * pst_stage_to_string() / pst_verdict_to_string(); FALSE when unknown. */
gboolean pst_stage_from_string(const char *name, PstStage *stage_r);
gboolean pst_verdict_from_string(const char *name, PstVerdict *verdict_r);
/* TRUE when a hook at `stage` may return `verdict` (DISCARD only at RCPT
 * and EOM, QUARANTINE only at EOM, PENDING never as a final verdict). */
gboolean pst_verdict_is_valid_at(PstVerdict verdict, PstStage stage);

/* --- The results store (results.c) -------------------------------------- */

/* A thread-safe map of key -> GVariant for one scope instance. */
PstResults *pst_results_new(void);
void pst_results_free(PstResults *results);
void pst_results_set(PstResults *results, const char *key, GVariant *value);
GVariant *pst_results_get(PstResults *results, const char *key); /* new ref */
/* a{sv} of everything, for the queue file, sorted by key and already in
 * serialised normal form (util/vardict.c); NULL when empty.  New ref. */
GVariant *pst_results_to_variant(PstResults *results);
/* Calls `func` (key, value, data) for every entry, under the store's lock
 * (`func` must not use the store); the key and value are the store's,
 * valid until it changes. */
void pst_results_foreach(PstResults *results, GHFunc func, gpointer data);
void pst_results_clear(PstResults *results);
/* Removes one key (nothing when absent). */
void pst_results_remove(PstResults *results, const char *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstResults, pst_results_free)

/* The daemon-wide store (PST_SCOPE_SERVER). */
PstResults *pst_results_get_server(void);
/* TRUE when the plugin `plugin_name` may write `key`: "NAME.rest" (rest of
 * [A-Za-z0-9_-] words joined by single dots) or exactly "auth.NAME". */
gboolean pst_results_key_is_writable(const char *plugin_name, const char *key);

/* --- The message (message.c) -------------------------------------------- */

/* Builds the EOM view of a message: takes ownership of `fields` (of
 * PstHeaderField*) and copies the envelope.  The body is read lazily from
 * `path` starting at `body_offset` (the spool's tmp file, flushed). */
PstMessage *pst_message_new(const char *queue_id, GPtrArray *fields,
                            const char *path, guint64 body_offset, guint64 size,
                            const PstEnvelope *envelope);
PstMessage *pst_message_ref(PstMessage *message);
void pst_message_unref(PstMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstMessage, pst_message_unref)
/* TRUE once a header edit was made. */
gboolean pst_message_headers_modified(PstMessage *message);
/* The header block as it stands, each field "Name: value\r\n", then the
 * blank line "\r\n".  New reference. */
GBytes *pst_message_render_headers(PstMessage *message);
/* The body a plugin put in place with pst_message_replace_body() (new
 * reference), or NULL when the body is the one received. */
GBytes *pst_message_get_body_replacement(PstMessage *message);
/* Writes the envelope edits (sender, recipients added and removed) into
 * `envelope`; recipients added get no DSN parameters, removed ones lose
 * their results. */
void pst_message_apply_envelope(PstMessage *message, PstEnvelope *envelope);

/* --- Services the plugins provide (services.c) --------------------------- */

typedef struct _PstTransportService PstTransportService; /* transport.h */

/* The TLS provider among `set`'s plugins: a new reference (which keeps
 * the plugin loaded), or NULL when none provides TLS. */
PstTransportService *pst_plugin_set_get_transport(PstPluginSet *set);
/* The plugin of `set` that provides the SASL client side, or NULL.
 * Borrowed: valid while `set` lives (pst_sasl_client_open()). */
PstPlugin *pst_plugin_set_get_sasl_client(PstPluginSet *set);
/* The plugin of `set` that signs the daemon's own mail, or NULL.
 * Borrowed: valid while `set` lives. */
PstPlugin *pst_plugin_set_get_signer(PstPluginSet *set);

/* The daemon's own message (a DSN), with the header fields `signer`
 * (nullable: pst_plugin_set_get_signer()) puts on top: a new reference,
 * `message` itself when there is no signer or it added nothing.  Any
 * thread holding a reference to the signer's set; may block while the
 * signer works. */
GBytes *pst_signer_sign(PstPlugin *signer, GBytes *message);

G_END_DECLS
