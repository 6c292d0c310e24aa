/* hooks-private.h - the structures the hooks module's files share.
 *
 * Not for the rest of the core (which uses hooks.h) and never for plugins
 * (which see only <postilion/plugin.h>).
 *
 * Lifetimes, from the longest:
 *   PstPlugin       one loaded module and its instance: descriptor, hooks,
 *                   private data.  One instance per module at any time
 *                   (dlopen() hands out one copy of its static state): a
 *                   set loaded while another lives reuses the instances
 *                   they share, giving them reload() instead of a second
 *                   init().  Reference counted by the groups and calls that
 *                   use it; the last reference shuts it down and unloads
 *                   it, always on the main thread.
 *   PstPluginGroup  the plugins of one `[plugins] load` list, in order.
 *                   Shared by every PstPluginSet made from it by reload.
 *   PstChainTable   the ordered hooks per listener and stage for one
 *                   configuration.  Holds the group; held by its set and by
 *                   every run started on it, so a reload never changes a
 *                   run in progress.
 *   PstHook         one registration.  Reference counted: a plugin whose
 *                   reload() registers new hooks drops its old ones, which
 *                   live on (with their user_data) in the older tables.
 *   PstCall         one invocation; see call.c for its states.
 */
#pragma once

#include "hooks/hooks.h"
#include "hooks/sasl-service.h"

G_BEGIN_DECLS

typedef struct _PstPluginGroup PstPluginGroup;

/* The services a plugin can provide to the core (services.c).  Each is
 * registered the same way, from init() or reload(), as a function table
 * and its data recorded on the plugin; a generation picks its providers
 * from its plugin set; nothing is kept in a process-wide slot. */
typedef enum {
  PST_SERVICE_TRANSPORT = 0, /* TLS (PstTransportProvider) */
  PST_SERVICE_SASL_SERVER,   /* AUTH for a listener (PstSaslFuncs) */
  PST_SERVICE_SASL_CLIENT,   /* AUTH to a relayhost (the same PstSaslFuncs) */
  PST_SERVICE_SIGNER,        /* the daemon's own mail (PstSignerFunc) */
  PST_SERVICE_COUNT,
} PstServiceKind;

typedef struct {
  gconstpointer funcs; /* nullable: not provided; not owned */
  gpointer data;       /* the plugin's, not owned */
} PstProvided;

typedef struct {
  gint ref_count;
  PstPlugin *plugin; /* not owned: the group outlives every hook */
  PstStage stage;
  int priority;   /* as registered */
  guint sequence; /* registration order within the plugin */
  PstHookFunc func;
  gpointer user_data;     /* owned through destroy */
  GDestroyNotify destroy; /* nullable */
} PstHook;

PstHook *pst_hook_ref(PstHook *hook);
void pst_hook_unref(PstHook *hook);

struct _PstPlugin {
  gint ref_count;     /* groups and calls using it; main thread only */
  char *name;         /* owned */
  char *path;         /* owned: the file, or "(built-in)" */
  char *config_group; /* owned: "plugin:NAME" */
  void *module;       /* nullable: the dlopen() handle */
  const PstPluginDescriptor *descriptor;
  GKeyFile *keyfile; /* owned reference: the configuration in force */
  GPtrArray *hooks;  /* owned, of PstHook* (references) */
  GPtrArray *staged; /* owned, nullable: registered during init/reload */
  gpointer data;     /* owned through data_destroy */
  GDestroyNotify data_destroy; /* nullable */
  guint next_sequence;
  gboolean initialized; /* init() succeeded: shutdown() is due */
  guint64 init_sequence; /* order of init() among every plugin loaded */
  /* The services it provides (services.c): valid until shutdown(). */
  PstProvided provided[PST_SERVICE_COUNT];
};

struct _PstPluginGroup {
  gint ref_count;
  GPtrArray *plugins; /* owned, of PstPlugin*, load order */
};

PstPlugin *pst_plugin_ref(PstPlugin *plugin);
/* The last reference calls shutdown() and unloads; main thread only. */
void pst_plugin_unref(PstPlugin *plugin);
PstPluginGroup *pst_plugin_group_ref(PstPluginGroup *group);
void pst_plugin_group_unref(PstPluginGroup *group);

/* One hook as placed in a chain, with the configuration of its plugin in
 * that chain's generation. */
typedef struct {
  PstHook *hook;    /* owned reference */
  int priority;     /* effective: [plugin:NAME] priority wins */
  guint load_index; /* the plugin's place in `[plugins] load` */
  guint timeout_ms;
  PstVerdict on_timeout;
  PstVerdict on_error;
} PstChainEntry;

/* The chains of one listener: one array of PstChainEntry per stage, NULL
 * when the stage has no hooks (the dispatcher's fast path). */
typedef struct {
  GArray *stages[PST_STAGE_COUNT];
} PstListenerChains;

typedef struct {
  gint ref_count;
  PstPluginGroup *group;  /* owned reference */
  GHashTable *listeners;  /* owned: name -> PstListenerChains* */
  PstListenerChains *all; /* owned: every plugin (unnamed listeners) */
} PstChainTable;

/* chain.c */
PstChainTable *pst_chain_table_new(PstPluginGroup *group, PstConfig *config);
PstChainTable *pst_chain_table_ref(PstChainTable *table);
void pst_chain_table_unref(PstChainTable *table);
const PstListenerChains *pst_chain_table_lookup(PstChainTable *table,
                                                const char *listener);

/* plugin-loader.c: the chains `set` runs now (borrowed). */
PstChainTable *pst_plugin_set_get_chains(PstPluginSet *set);
/* plugin-loader.c: TRUE while init() or reload() runs (registration). */
gboolean pst_plugin_is_registering(PstPlugin *plugin);

/* services.c: records what `plugin` provides (replacing an earlier
 * registration of the same kind).  Main thread. */
void pst_plugin_provide(PstPlugin *plugin, PstServiceKind kind,
                        gconstpointer funcs, gpointer data);
/* services.c: the provider of `kind` among `set`'s plugins (for
 * PST_SERVICE_SASL_SERVER the first of `listener`'s chain; for the others,
 * which serve the whole daemon, the last in load order), or NULL. */
PstPlugin *pst_plugin_set_find_provider(PstPluginSet *set, PstServiceKind kind,
                                        const PstListenerConfig *listener);
/* plugin-loader.c: the most recently initialised plugin alive that
 * provides `kind` other than `except` (nullable), or NULL.  Only for the
 * SDK functions that have no generation to ask (pst_transport_*,
 * pst_sasl_client_* called by a plugin or a tool). */
PstPlugin *pst_plugin_find_live_provider(PstServiceKind kind,
                                         PstPlugin *except);
static inline const PstSaslFuncs *pst_plugin_sasl_funcs(PstPlugin *plugin) {
  return plugin->provided[PST_SERVICE_SASL_SERVER].funcs;
}
static inline gpointer pst_plugin_sasl_data(PstPlugin *plugin) {
  return plugin->provided[PST_SERVICE_SASL_SERVER].data;
}

/* --- Calls (call.c) ----------------------------------------------------- */

/* One log line about a plugin: "SESSION: plugin NAME: message" (or without
 * the session), with PST_SESSION / PST_PLUGIN fields.  Any thread. */
void pst_hooks_log(GLogLevelFlags level, const char *session_id,
                   const char *plugin, const char *message);
/* The same with the message formatted (once, after the prefix). */
void pst_hooks_logv(GLogLevelFlags level, const char *session_id,
                    const char *plugin, const char *format, va_list args)
    G_GNUC_PRINTF(4, 0);

typedef enum {
  PST_CALL_IN_HOOK = 0, /* the hook function is running */
  PST_CALL_PENDING,     /* it returned PENDING; waiting for completion */
  PST_CALL_COMPLETED,   /* completed; the core is told on the main context */
  PST_CALL_DONE,        /* the core has the verdict */
  PST_CALL_TIMED_OUT,   /* the deadline passed first */
  PST_CALL_CANCELLED,   /* the run was cancelled (client gone) */
} PstCallState;

/* How a call ended, told to the run on the main thread. */
typedef void (*PstCallFinishFunc)(PstCall *call, PstVerdict verdict,
                                  gboolean timed_out, gpointer user_data);

/* A result written while the call was not on its hook's stack. */
typedef struct {
  PstScope scope;
  guint recipient_index;
  char *key;       /* owned */
  GVariant *value; /* owned */
  gboolean append; /* pst_result_append(): add to the list, not replace */
} PstPendingResult;

struct _PstCall {
  gint ref_count;
  PstStage stage;
  PstSession *session; /* not owned: valid while the run lives */
  PstPlugin *plugin;   /* owned reference: loaded while we live */
  PstHook *hook;       /* owned reference */
  guint timeout_ms;
  PstVerdict on_timeout;
  PstVerdict on_error;
  /* Both in the call's own allocation, after the struct (pst_call_new()):
   * they live as long as the call. */
  const char *session_id; /* for logs from any thread */
  const char *argument;   /* nullable */
  GPtrArray *params;   /* owned reference, nullable */
  PstMessage *message; /* owned reference, nullable */
  /* The session's, nullable (see PstHookArgs); NULL once the call is
   * cancelled or timed out: the session may be gone.  Under `lock`. */
  const PstResultsStores *stores;
  guint recipient_index;
  PstDnsResolver *dns;   /* borrowed, nullable: see PstHookArgs */
  GMainContext *context; /* owned reference: where the run lives */
  GThread *owner_thread; /* the thread that runs the hooks */
  gint64 deadline;       /* monotonic, microseconds */

  /* Everything below is guarded by `lock`. */
  GMutex lock;
  PstCallState state;
  gboolean plugin_holds_ref; /* the plugin's reference is not released */
  gboolean plugin_completed; /* pst_call_complete() was called */
  PstVerdict completed_verdict;
  GCancellable *cancellable; /* owned, nullable: made on demand */
  GSource *timeout_source;   /* owned, nullable */
  GSource *finish_source;    /* owned, nullable */
  PstCallFinishFunc finish;
  gpointer finish_data;
  guint reply_code;     /* 0 = none */
  char *reply_enhanced; /* owned, nullable */
  char *reply_text;     /* owned, nullable, sanitized */
  char *route;          /* owned, nullable: DELIVERY's pst_call_set_route() */
  gboolean disconnect;
  GPtrArray *results; /* owned, nullable, of PstPendingResult* */
};

PstCall *pst_call_new(PstStage stage, PstSession *session,
                      const PstChainEntry *entry, const PstHookArgs *args,
                      GMainContext *context);
/* Runs the hook.  Returns its verdict when it finished synchronously
 * (PENDING never); returns PENDING when `finish` will be called later on
 * the call's context (with the plugin's verdict, or on_timeout when the
 * deadline passed).  The results the call wrote are applied before a
 * synchronous return or before `finish`. */
PstVerdict pst_call_invoke(PstCall *call, PstCallFinishFunc finish,
                           gpointer user_data);
/* Cancels a pending call: `finish` will not be called. */
void pst_call_cancel(PstCall *call);
/* The core's reference: the call is freed once the plugin let go too. */
void pst_call_release(PstCall *call);
/* The reply set by the plugin, checked against `verdict`: FALSE (with a
 * warning logged) when there is none or it does not fit.  Main thread. */
gboolean pst_call_take_reply(PstCall *call, PstVerdict verdict, guint *code_r,
                             char **enhanced_r, char **text_r);
gboolean pst_call_get_disconnect(PstCall *call);

/* Pure checks, exposed for the unit tests. */
/* TRUE when `code` (200..599) fits `verdict`'s class. */
gboolean pst_reply_code_fits(PstVerdict verdict, guint code);
/* TRUE when `enhanced` is "C.S.D" with C the first digit of `code`, S and
 * D 1-3 digits. */
gboolean pst_reply_enhanced_is_valid(const char *enhanced, guint code);
/* CR, LF, NUL and other controls -> space, invalid UTF-8 repaired, cut to
 * PST_REPLY_TEXT_MAX octets at a character boundary.  Newly allocated. */
#define PST_REPLY_TEXT_MAX 400
char *pst_reply_text_sanitize(const char *text);
/* The route set by pst_call_set_route() (DELIVERY), handed over. */
char *pst_call_take_route(PstCall *call);

/* --- Results (results.c) ------------------------------------------------ */

void pst_pending_result_free(PstPendingResult *result);
/* Writes the results buffered in `call` to their stores.  Main thread. */
void pst_call_apply_results(PstCall *call);

G_END_DECLS
