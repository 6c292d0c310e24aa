/* call.c - one invocation of one hook: its arguments, its verdict, its
 * reply, its deadline, and the hand-over of an asynchronous completion to
 * the main context.
 *
 * The dispatcher (chain.c) creates a call, pst_call_invoke()s it and, for
 * a PENDING hook, is told the end through its PstCallFinishFunc, on the
 * main context, exactly once: with the plugin's verdict, or with
 * timed_out when the deadline passed first.  pst_call_cancel() ends a
 * pending call without telling anyone.
 *
 * States (guarded by call->lock, since pst_call_complete() and the reply
 * setters run on any thread):
 *   IN_HOOK -> DONE                      hook returned a verdict
 *   IN_HOOK -> PENDING -> COMPLETED -> DONE   completed later
 *   PENDING -> TIMED_OUT                 deadline (on_timeout applies)
 *   PENDING | COMPLETED -> CANCELLED     the run was cancelled
 * A completion made while the hook is still running (from the hook itself
 * or a fast worker) is taken when the hook returns PENDING.
 *
 * Ownership: two references.  The core's is dropped by pst_call_release();
 * the plugin's is held from the hook's start until it returns a verdict or,
 * when it returned PENDING, until its first pst_call_complete().  The last
 * reference frees the call on the main thread (a worker's last unref is
 * posted there, and so is the plugin's, dropped inside its own
 * pst_call_complete()), because freeing may shut its plugin down.
 */
#define G_LOG_DOMAIN "postilion"

#include <string.h>

#include <glib.h>

#include "dns/dns.h"
#include "hooks/hooks-private.h"
#include "util/vformat.h"

/* A verdict value no enum member has: a completion with PENDING. */
#define PST_VERDICT_BOGUS ((PstVerdict)0x7fff)

static const char *call_plugin_name(PstCall *call) {
  return call->plugin->name;
}

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

static GLogLevelFlags log_level_sanitize(GLogLevelFlags level) {
  level &= G_LOG_LEVEL_MASK;
  /* A plugin never aborts the daemon: ERROR is logged as CRITICAL. */
  if (level == 0 || (level & G_LOG_LEVEL_ERROR))
    return level == 0 ? G_LOG_LEVEL_MESSAGE : G_LOG_LEVEL_CRITICAL;
  /* Keep the most severe bit only. */
  return level & -level;
}

static const char *log_priority(GLogLevelFlags level) {
  switch (level) {
  case G_LOG_LEVEL_CRITICAL:
  case G_LOG_LEVEL_WARNING:
    return "4";
  case G_LOG_LEVEL_MESSAGE:
    return "5";
  case G_LOG_LEVEL_INFO:
    return "6";
  default:
    return "7";
  }
}

/* "SESSION: plugin NAME: " (or "plugin NAME: "), the start of a line. */
static GString *hooks_log_start(const char *session_id, const char *plugin) {
  GString *line = g_string_sized_new(256);
  if (session_id != NULL) {
    g_string_append(line, session_id);
    g_string_append_len(line, ": ", 2);
  }
  g_string_append_len(line, "plugin ", 7);
  g_string_append(line, plugin);
  g_string_append_len(line, ": ", 2);
  return line;
}

static void hooks_log_write(GLogLevelFlags level, const char *session_id,
                            const char *plugin, const char *text) {
  level = log_level_sanitize(level);
  GLogField fields[] = {
      {"MESSAGE", text, -1},
      {"PRIORITY", log_priority(level), -1},
      {"GLIB_DOMAIN", G_LOG_DOMAIN, -1},
      {"PST_PLUGIN", plugin, -1},
      {"PST_SESSION", session_id, -1},
  };
  g_log_structured_array(level, fields,
                         session_id ? G_N_ELEMENTS(fields)
                                    : G_N_ELEMENTS(fields) - 1);
}

void pst_hooks_log(GLogLevelFlags level, const char *session_id,
                   const char *plugin, const char *message) {
  g_autoptr(GString) line = hooks_log_start(session_id, plugin);
  g_string_append(line, message);
  hooks_log_write(level, session_id, plugin, line->str);
}

void pst_hooks_logv(GLogLevelFlags level, const char *session_id,
                    const char *plugin, const char *format, va_list args) {
  g_autoptr(GString) line = hooks_log_start(session_id, plugin);
  pst_vformat_append(line, format, args);
  hooks_log_write(level, session_id, plugin, line->str);
}

static void call_logf(PstCall *call, GLogLevelFlags level, const char *format,
                      ...) G_GNUC_PRINTF(3, 4);
static void call_logf(PstCall *call, GLogLevelFlags level, const char *format,
                      ...) {
  va_list args;
  va_start(args, format);
  pst_hooks_logv(level, call->session_id, call_plugin_name(call), format,
                 args);
  va_end(args);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */
/* ------------------------------------------------------------------ */

gboolean pst_reply_code_fits(PstVerdict verdict, guint code) {
  switch (verdict) {
  case PST_VERDICT_REJECT:
    return code >= 500 && code <= 599;
  case PST_VERDICT_TEMPFAIL:
    return code >= 400 && code <= 499;
  case PST_VERDICT_ACCEPT:
  case PST_VERDICT_DISCARD:
  case PST_VERDICT_QUARANTINE:
    return code >= 200 && code <= 299;
  default:
    return FALSE;
  }
}

/* Reads 1 to 3 digits at *p. */
static gboolean enhanced_number(const char **p) {
  guint digits = 0;
  while (g_ascii_isdigit(**p) && digits < 4) {
    (*p)++;
    digits++;
  }
  return digits >= 1 && digits <= 3;
}

gboolean pst_reply_enhanced_is_valid(const char *enhanced, guint code) {
  if (enhanced == NULL || code < 200 || code > 599)
    return FALSE;
  /* RFC 3463: class "." subject "." detail; the class is 2, 4 or 5 and
   * matches the reply code's first digit. */
  if (enhanced[0] != (char)('0' + code / 100) || enhanced[1] != '.')
    return FALSE;
  const char *p = enhanced + 2;
  if (!enhanced_number(&p) || *p++ != '.' || !enhanced_number(&p))
    return FALSE;
  return *p == '\0';
}

char *pst_reply_text_sanitize(const char *text) {
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  for (char *p = valid; *p != '\0'; p++) {
    if ((guchar)*p < 0x20 || *p == 0x7f)
      *p = ' ';
  }
  gsize length = strlen(valid);
  if (length > PST_REPLY_TEXT_MAX) {
    /* Back up to the start of a character. */
    length = PST_REPLY_TEXT_MAX;
    while (length > 0 && ((guchar)valid[length] & 0xc0) == 0x80)
      length--;
    valid[length] = '\0';
  }
  return g_steal_pointer(&valid);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

static void call_free(PstCall *call) {
  g_assert(call->timeout_source == NULL && call->finish_source == NULL);
  g_clear_pointer(&call->results, g_ptr_array_unref);
  g_clear_object(&call->cancellable);
  g_free(call->reply_enhanced);
  g_free(call->reply_text);
  g_free(call->route);
  g_clear_pointer(&call->params, g_ptr_array_unref);
  g_clear_pointer(&call->message, pst_message_unref);
  pst_hook_unref(call->hook);
  pst_plugin_unref(call->plugin);
  g_main_context_unref(call->context);
  g_mutex_clear(&call->lock);
  g_free(call);
}

static gboolean call_free_cb(gpointer data) {
  call_free(data);
  return G_SOURCE_REMOVE;
}

static PstCall *call_ref(PstCall *call) {
  g_atomic_int_inc(&call->ref_count);
  return call;
}

/* `in_plugin`: the caller is plugin code (pst_call_complete()), which
 * freeing must not unload under its own feet. */
static void call_unref_full(PstCall *call, gboolean in_plugin) {
  if (!g_atomic_int_dec_and_test(&call->ref_count))
    return;
  if (!in_plugin && g_thread_self() == call->owner_thread) {
    call_free(call);
    return;
  }
  /* Freeing may unload plugins: never on a plugin's worker thread, nor
   * inside a plugin's own callback (a main-loop timer that completes the
   * last call of a plugin whose set is gone). */
  GSource *source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(source, call_free_cb, call, NULL);
  g_source_attach(source, call->context);
  g_source_unref(source);
}

static void call_unref(PstCall *call) {
  call_unref_full(call, FALSE);
}

PstCall *pst_call_new(PstStage stage, PstSession *session,
                      const PstChainEntry *entry, const PstHookArgs *args,
                      GMainContext *context) {
  /* One allocation per call (the dispatcher makes one per hook and stage):
   * the call, then its copies of the session id and the argument. */
  const char *session_id = session ? pst_session_get_id(session) : "-";
  gsize id_size = strlen(session_id) + 1;
  gsize argument_size = args->argument ? strlen(args->argument) + 1 : 0;
  PstCall *call = g_malloc0(sizeof *call + id_size + argument_size);
  char *strings = (char *)(call + 1);
  call->session_id = memcpy(strings, session_id, id_size);
  if (args->argument != NULL)
    call->argument = memcpy(strings + id_size, args->argument, argument_size);
  call->ref_count = 1;
  call->stage = stage;
  call->session = session;
  call->hook = pst_hook_ref(entry->hook);
  call->plugin = pst_plugin_ref(entry->hook->plugin);
  call->timeout_ms = entry->timeout_ms;
  call->on_timeout = entry->on_timeout;
  call->on_error = entry->on_error;
  if (args->params != NULL)
    call->params = g_ptr_array_ref((GPtrArray *)args->params);
  if (args->message != NULL)
    call->message = pst_message_ref(args->message);
  call->recipient_index = args->recipient_index;
  call->stores = args->stores;
  call->dns = args->dns;
  call->context = g_main_context_ref(context);
  call->owner_thread = g_thread_self();
  call->deadline = g_get_monotonic_time() + (gint64)entry->timeout_ms * 1000;
  g_mutex_init(&call->lock);
  call->state = PST_CALL_IN_HOOK;
  return call;
}

void pst_call_release(PstCall *call) {
  call_unref(call);
}

/* Takes the sources out of the call; the caller destroys them unlocked. */
static void call_take_sources(PstCall *call, GSource **timeout_r,
                              GSource **finish_r) {
  *timeout_r = g_steal_pointer(&call->timeout_source);
  *finish_r = g_steal_pointer(&call->finish_source);
}

static void source_drop(GSource *source) {
  if (source == NULL)
    return;
  g_source_destroy(source);
  g_source_unref(source);
}

/* A call that ended without a verdict of its own writes nothing. */
static void call_drop_results(PstCall *call) {
  g_mutex_lock(&call->lock);
  GPtrArray *results = g_steal_pointer(&call->results);
  g_mutex_unlock(&call->lock);
  if (results != NULL)
    g_ptr_array_unref(results);
}

/* Applies what the call wrote when its verdict is one the core takes. */
static void call_settle_results(PstCall *call, PstVerdict verdict) {
  if (pst_stage_is_event(call->stage) ||
      pst_verdict_is_valid_at(verdict, call->stage))
    pst_call_apply_results(call);
  else
    call_drop_results(call);
}

/* ------------------------------------------------------------------ */
/* Running and completing                                              */
/* ------------------------------------------------------------------ */

static gboolean call_timeout_cb(gpointer data) {
  PstCall *call = data;
  g_mutex_lock(&call->lock);
  if (call->state != PST_CALL_PENDING) {
    /* A completion got in first; its finish source is queued. */
    g_mutex_unlock(&call->lock);
    return G_SOURCE_REMOVE;
  }
  call->state = PST_CALL_TIMED_OUT;
  /* Nothing the plugin writes now is kept, and the stores may go with
   * their session while the plugin still holds the call. */
  call->stores = NULL;
  g_clear_pointer(&call->timeout_source, g_source_unref);
  GCancellable *cancellable =
      call->cancellable ? g_object_ref(call->cancellable) : NULL;
  g_mutex_unlock(&call->lock);

  /* Unlocked: the plugin's cancelled handler may complete the call. */
  if (cancellable != NULL) {
    g_cancellable_cancel(cancellable);
    g_object_unref(cancellable);
  }
  call_drop_results(call);
  call->finish(call, call->on_timeout, TRUE, call->finish_data);
  return G_SOURCE_REMOVE;
}

static gboolean call_finish_cb(gpointer data) {
  PstCall *call = data;
  GSource *timeout_source, *finish_source;
  g_mutex_lock(&call->lock);
  if (call->state != PST_CALL_COMPLETED) {
    g_mutex_unlock(&call->lock);
    return G_SOURCE_REMOVE;
  }
  call->state = PST_CALL_DONE;
  PstVerdict verdict = call->completed_verdict;
  call_take_sources(call, &timeout_source, &finish_source);
  g_mutex_unlock(&call->lock);

  source_drop(timeout_source);
  g_source_unref(finish_source); /* the context holds it until we return */
  call_settle_results(call, verdict);
  call->finish(call, verdict, FALSE, call->finish_data);
  return G_SOURCE_REMOVE;
}

static void call_start_timer(PstCall *call) {
  gint64 remaining = (call->deadline - g_get_monotonic_time()) / 1000;
  call->timeout_source =
      g_timeout_source_new((guint)CLAMP(remaining, 0, G_MAXUINT));
  g_source_set_callback(call->timeout_source, call_timeout_cb, call_ref(call),
                        (GDestroyNotify)call_unref);
  g_source_attach(call->timeout_source, call->context);
}

PstVerdict pst_call_invoke(PstCall *call, PstCallFinishFunc finish,
                           gpointer user_data) {
  g_return_val_if_fail(call->state == PST_CALL_IN_HOOK, PST_VERDICT_BOGUS);
  call->finish = finish;
  call->finish_data = user_data;
  call->plugin_holds_ref = TRUE;
  call_ref(call);

  /* The hook's DNS lookups go to its generation's resolver. */
  PstDnsResolver *previous = pst_dns_scope_enter(call->dns);
  PstVerdict verdict = call->hook->func(call, call->hook->user_data);
  pst_dns_scope_leave(previous);

  g_mutex_lock(&call->lock);
  gboolean release = FALSE;
  if (verdict == PST_VERDICT_PENDING && !call->plugin_completed) {
    call->state = PST_CALL_PENDING;
    call_start_timer(call);
    g_mutex_unlock(&call->lock);
    return PST_VERDICT_PENDING;
  }
  if (verdict == PST_VERDICT_PENDING) {
    verdict = call->completed_verdict; /* completed before returning */
  } else if (call->plugin_completed) {
    call_logf(call, G_LOG_LEVEL_WARNING,
              "completed a %s call it did not return PENDING for: ignored",
              pst_stage_to_string(call->stage));
  } else {
    release = call->plugin_holds_ref;
    call->plugin_holds_ref = FALSE;
  }
  call->state = PST_CALL_DONE;
  g_mutex_unlock(&call->lock);
  if (release)
    call_unref(call);
  call_settle_results(call, verdict);
  return verdict;
}

void pst_call_cancel(PstCall *call) {
  GSource *timeout_source, *finish_source;
  g_mutex_lock(&call->lock);
  if (call->state != PST_CALL_PENDING && call->state != PST_CALL_COMPLETED) {
    g_mutex_unlock(&call->lock);
    return;
  }
  call->state = PST_CALL_CANCELLED;
  call->stores = NULL; /* see call_timeout_cb() */
  call_take_sources(call, &timeout_source, &finish_source);
  GCancellable *cancellable =
      call->cancellable ? g_object_ref(call->cancellable) : NULL;
  g_mutex_unlock(&call->lock);

  source_drop(timeout_source);
  source_drop(finish_source);
  if (cancellable != NULL) {
    g_cancellable_cancel(cancellable);
    g_object_unref(cancellable);
  }
  call_drop_results(call);
}

gboolean pst_call_take_reply(PstCall *call, PstVerdict verdict, guint *code_r,
                             char **enhanced_r, char **text_r) {
  g_mutex_lock(&call->lock);
  guint code = call->reply_code;
  g_autofree char *enhanced = g_steal_pointer(&call->reply_enhanced);
  g_autofree char *text = g_steal_pointer(&call->reply_text);
  call->reply_code = 0;
  g_mutex_unlock(&call->lock);

  if (code == 0)
    return FALSE;
  if (!pst_reply_code_fits(verdict, code)) {
    call_logf(call, G_LOG_LEVEL_WARNING,
              "reply code %u does not fit verdict %s at %s: standard reply "
              "used",
              code, pst_verdict_to_string(verdict),
              pst_stage_to_string(call->stage));
    return FALSE;
  }
  if (enhanced != NULL && !pst_reply_enhanced_is_valid(enhanced, code)) {
    call_logf(call, G_LOG_LEVEL_WARNING,
              "enhanced status \"%s\" is not valid for reply code %u: "
              "dropped",
              enhanced, code);
    g_clear_pointer(&enhanced, g_free);
  }
  *code_r = code;
  *enhanced_r = g_steal_pointer(&enhanced);
  *text_r = g_steal_pointer(&text);
  return TRUE;
}

gboolean pst_call_get_disconnect(PstCall *call) {
  g_mutex_lock(&call->lock);
  gboolean disconnect = call->disconnect;
  g_mutex_unlock(&call->lock);
  return disconnect;
}

/* ------------------------------------------------------------------ */
/* The SDK side                                                        */
/* ------------------------------------------------------------------ */

PST_API PstStage pst_call_get_stage(PstCall *call) {
  g_return_val_if_fail(call != NULL, PST_STAGE_COUNT);
  return call->stage;
}

PST_API PstSession *pst_call_get_session(PstCall *call) {
  g_return_val_if_fail(call != NULL, NULL);
  return call->session;
}

PST_API PstPlugin *pst_call_get_plugin(PstCall *call) {
  g_return_val_if_fail(call != NULL, NULL);
  return call->plugin;
}

PST_API const char *pst_call_get_argument(PstCall *call) {
  g_return_val_if_fail(call != NULL, NULL);
  return call->argument;
}

PST_API const char *pst_call_get_parameter(PstCall *call, const char *name) {
  g_return_val_if_fail(call != NULL && name != NULL, NULL);
  for (guint i = 0; call->params && i < call->params->len; i++) {
    const PstEsmtpParam *param = g_ptr_array_index(call->params, i);
    if (g_ascii_strcasecmp(param->keyword, name) == 0)
      return param->value ? param->value : "";
  }
  return NULL;
}

PST_API PstMessage *pst_call_get_message(PstCall *call) {
  g_return_val_if_fail(call != NULL, NULL);
  return call->message;
}

static gboolean call_is_open(PstCall *call) {
  return call->state == PST_CALL_IN_HOOK || call->state == PST_CALL_PENDING;
}

PST_API void pst_call_set_reply(PstCall *call, guint code, const char *enhanced,
                                const char *text) {
  g_return_if_fail(call != NULL);
  char *clean = text ? pst_reply_text_sanitize(text) : NULL;
  g_mutex_lock(&call->lock);
  if (call_is_open(call)) {
    call->reply_code = code;
    g_free(call->reply_enhanced);
    call->reply_enhanced = g_strdup(enhanced);
    g_free(call->reply_text);
    call->reply_text = g_steal_pointer(&clean);
  }
  g_mutex_unlock(&call->lock);
  g_free(clean);
}

PST_API void pst_call_set_route(PstCall *call, const char *route) {
  g_return_if_fail(call != NULL);
  g_mutex_lock(&call->lock);
  if (call_is_open(call)) {
    g_free(call->route);
    call->route = g_strdup(route);
  }
  g_mutex_unlock(&call->lock);
}

char *pst_call_take_route(PstCall *call) {
  g_mutex_lock(&call->lock);
  char *route = g_steal_pointer(&call->route);
  g_mutex_unlock(&call->lock);
  return route;
}

PST_API void pst_call_set_disconnect(PstCall *call, gboolean disconnect) {
  g_return_if_fail(call != NULL);
  g_mutex_lock(&call->lock);
  if (call_is_open(call))
    call->disconnect = disconnect;
  g_mutex_unlock(&call->lock);
}

PST_API GCancellable *pst_call_get_cancellable(PstCall *call) {
  g_return_val_if_fail(call != NULL, NULL);
  g_mutex_lock(&call->lock);
  gboolean ended =
      call->state == PST_CALL_TIMED_OUT || call->state == PST_CALL_CANCELLED;
  if (call->cancellable == NULL)
    call->cancellable = g_cancellable_new();
  GCancellable *cancellable = call->cancellable;
  g_mutex_unlock(&call->lock);
  if (ended)
    g_cancellable_cancel(cancellable);
  return cancellable;
}

PST_API gint64 pst_call_get_remaining_ms(PstCall *call) {
  g_return_val_if_fail(call != NULL, 0);
  gint64 remaining = call->deadline - g_get_monotonic_time();
  return remaining > 0 ? remaining / 1000 : 0;
}

/* Called with the lock held: the state's answer to a completion. */
static gboolean call_accept_completion(PstCall *call) {
  switch (call->state) {
  case PST_CALL_IN_HOOK:
    return TRUE; /* pst_call_invoke() takes it when the hook returns */
  case PST_CALL_PENDING:
    call->state = PST_CALL_COMPLETED;
    call->finish_source = g_idle_source_new();
    g_source_set_priority(call->finish_source, G_PRIORITY_DEFAULT);
    g_source_set_callback(call->finish_source, call_finish_cb, call_ref(call),
                          (GDestroyNotify)call_unref);
    g_source_attach(call->finish_source, call->context);
    return TRUE;
  default:
    return FALSE;
  }
}

PST_API gboolean pst_call_complete(PstCall *call, PstVerdict verdict) {
  g_return_val_if_fail(call != NULL, FALSE);
  if (verdict == PST_VERDICT_PENDING)
    verdict = PST_VERDICT_BOGUS;
  g_mutex_lock(&call->lock);
  if (call->plugin_completed) {
    g_mutex_unlock(&call->lock);
    call_logf(call, G_LOG_LEVEL_WARNING,
              "completed a %s call twice: the second verdict (%s) is ignored",
              pst_stage_to_string(call->stage), pst_verdict_to_string(verdict));
    return FALSE;
  }
  call->plugin_completed = TRUE;
  call->completed_verdict = verdict;
  gboolean release = call->plugin_holds_ref;
  call->plugin_holds_ref = FALSE;
  PstCallState state = call->state;
  gboolean accepted = call_accept_completion(call);
  g_mutex_unlock(&call->lock);

  if (state == PST_CALL_TIMED_OUT)
    call_logf(call, G_LOG_LEVEL_WARNING,
              "completed a %s call after its deadline (%u ms): verdict %s "
              "ignored, on_timeout (%s) was applied",
              pst_stage_to_string(call->stage), call->timeout_ms,
              pst_verdict_to_string(verdict),
              pst_verdict_to_string(call->on_timeout));
  else if (state == PST_CALL_CANCELLED)
    call_logf(call, G_LOG_LEVEL_DEBUG,
              "completed a %s call after the client left: ignored",
              pst_stage_to_string(call->stage));
  if (release)
    call_unref_full(call, TRUE);
  return accepted;
}

PST_API void pst_call_log(PstCall *call, GLogLevelFlags level,
                          const char *format, ...) {
  g_return_if_fail(call != NULL && format != NULL);
  va_list args;
  va_start(args, format);
  pst_hooks_logv(level, call->session_id, call_plugin_name(call), format,
                 args);
  va_end(args);
}
