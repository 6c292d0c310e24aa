/* testpolicy.c - a test plugin whose verdict at each stage comes from its
 * `[plugin:NAME]` group, so end-to-end tests can make the daemon meet any
 * plugin behaviour: a verdict with or without a reply, a disconnect, a
 * completion from a worker thread or a main-loop timer, a call that never
 * completes, a call completed twice, an invalid verdict.
 *
 * Built twice, as `testpolicy` and `testpolicy2` (TEST_PLUGIN_NAME), so a
 * test can put two of them in one chain.  The keys are documented in
 * README.md beside this file.  Each stage's settings live in the user_data
 * of that stage's hook, registered again by reload(): a session started
 * before a SIGHUP keeps the hooks, and so the behaviour, it started with.
 *
 * Every hook logs "NAME: STAGE <argument> -> VERDICT (MODE)" so tests can
 * follow the order of the chain in the daemon's log.  Uses the SDK only.
 */
#include <string.h>

#include <postilion/plugin.h>

#ifndef TEST_PLUGIN_NAME
#define TEST_PLUGIN_NAME "testpolicy"
#endif

#define TEST_VERDICT_INVALID ((PstVerdict)42)

typedef enum {
  MODE_SYNC,   /* return the verdict */
  MODE_THREAD, /* PENDING; a worker thread completes after `delay` */
  MODE_TIMER,  /* PENDING; a main-loop timer completes after `delay` */
  MODE_NEVER,  /* PENDING; completes only when the call is cancelled */
  MODE_TWICE,  /* PENDING; a timer completes twice after `delay` */
} Mode;

static const char *const mode_names[] = {"sync", "thread", "timer", "never",
                                         "twice"};

static const struct {
  const char *name;
  PstVerdict verdict;
} verdict_names[] = {
    {"continue", PST_VERDICT_CONTINUE}, {"accept", PST_VERDICT_ACCEPT},
    {"reject", PST_VERDICT_REJECT},     {"tempfail", PST_VERDICT_TEMPFAIL},
    {"discard", PST_VERDICT_DISCARD},   {"quarantine", PST_VERDICT_QUARANTINE},
    {"invalid", TEST_VERDICT_INVALID},
};

/* One stage's settings: the user_data of its hook. */
typedef struct {
  PstStage stage;
  PstVerdict verdict;
  Mode mode;
  char *match;    /* nullable: glob the argument must match */
  guint code;     /* 0: no reply */
  char *enhanced; /* nullable */
  char *text;     /* nullable */
  gboolean disconnect;
  guint64 delay_ms;
} StageSpec;

/* Work in flight, so shutdown() can wait for it. */
typedef struct {
  GMutex lock;
  GPtrArray *threads; /* of GThread* */
  GHashTable *timers; /* source id -> PstCall* */
} Plugin;

static Plugin *plugin_state;

static void stage_spec_free(gpointer data) {
  StageSpec *spec = data;
  g_free(spec->match);
  g_free(spec->enhanced);
  g_free(spec->text);
  g_free(spec);
}

static const char *verdict_name(PstVerdict verdict) {
  return verdict == TEST_VERDICT_INVALID ? "invalid"
                                         : pst_verdict_to_string(verdict);
}

/* ------------------------------------------------------------------ */
/* Completing                                                          */
/* ------------------------------------------------------------------ */

static void spec_apply_reply(PstCall *call, const StageSpec *spec) {
  if (spec->code != 0)
    pst_call_set_reply(call, spec->code, spec->enhanced, spec->text);
  if (spec->disconnect)
    pst_call_set_disconnect(call, TRUE);
}

/* Completing may release the call and its hook (and so `spec`): read
 * what the log line needs first. */
static void complete_logged(PstCall *call, const StageSpec *spec,
                            const char *how) {
  PstPlugin *plugin = pst_call_get_plugin(call);
  const char *stage = pst_stage_to_string(spec->stage);
  spec_apply_reply(call, spec);
  gboolean taken = pst_call_complete(call, spec->verdict);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "%s: %s completion %s", stage,
                 how, taken ? "taken" : "refused");
}

typedef struct {
  PstCall *call;
  const StageSpec *spec; /* the hook's user_data: lives while we run */
} Work;

static gpointer thread_main(gpointer data) {
  Work *work = data;
  g_usleep(work->spec->delay_ms * 1000);
  complete_logged(work->call, work->spec, "thread");
  g_free(work);
  return NULL;
}

static gboolean timer_fired(gpointer data) {
  Work *work = data;
  g_mutex_lock(&plugin_state->lock);
  g_hash_table_remove(plugin_state->timers, GUINT_TO_POINTER(g_source_get_id(
                                                g_main_current_source())));
  g_mutex_unlock(&plugin_state->lock);
  /* On the main thread the call lives until we return, even completed:
   * a second completion is safe to try. */
  gboolean twice = work->spec->mode == MODE_TWICE;
  complete_logged(work->call, work->spec, "timer");
  if (twice)
    complete_logged(work->call, work->spec, "second");
  return G_SOURCE_REMOVE;
}

static void never_cancelled(GCancellable *cancellable, gpointer data) {
  PstCall *call = data;
  PstPlugin *plugin = pst_call_get_plugin(call);
  const char *stage = pst_stage_to_string(pst_call_get_stage(call));
  gboolean taken = pst_call_complete(call, PST_VERDICT_CONTINUE);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "%s: cancelled, completion %s",
                 stage, taken ? "taken" : "refused");
}

/* ------------------------------------------------------------------ */
/* The hook                                                            */
/* ------------------------------------------------------------------ */

static gboolean spec_matches(const StageSpec *spec, PstCall *call) {
  if (spec->match == NULL)
    return TRUE;
  const char *argument = pst_call_get_argument(call);
  g_autofree char *lower = g_ascii_strdown(argument ? argument : "", -1);
  return g_pattern_match_simple(spec->match, lower);
}

static PstVerdict stage_hook(PstCall *call, gpointer user_data) {
  const StageSpec *spec = user_data;
  const char *argument = pst_call_get_argument(call);
  if (!spec_matches(spec, call)) {
    pst_call_log(call, G_LOG_LEVEL_MESSAGE, "%s <%s> -> continue (no match)",
                 pst_stage_to_string(spec->stage), argument ? argument : "");
    return PST_VERDICT_CONTINUE;
  }
  pst_call_log(call, G_LOG_LEVEL_MESSAGE, "%s <%s> -> %s (%s)",
               pst_stage_to_string(spec->stage), argument ? argument : "",
               verdict_name(spec->verdict), mode_names[spec->mode]);
  Work *work = NULL;
  switch (spec->mode) {
  case MODE_SYNC:
    spec_apply_reply(call, spec);
    return spec->verdict;
  case MODE_THREAD:
    work = g_new0(Work, 1);
    work->call = call;
    work->spec = spec;
    g_mutex_lock(&plugin_state->lock);
    g_ptr_array_add(plugin_state->threads,
                    g_thread_new("testpolicy", thread_main, work));
    g_mutex_unlock(&plugin_state->lock);
    return PST_VERDICT_PENDING;
  case MODE_TIMER:
  case MODE_TWICE:
    work = g_new0(Work, 1);
    work->call = call;
    work->spec = spec;
    g_mutex_lock(&plugin_state->lock);
    g_hash_table_insert(
        plugin_state->timers,
        GUINT_TO_POINTER(g_timeout_add_full(G_PRIORITY_DEFAULT, spec->delay_ms,
                                            timer_fired, work, g_free)),
        call);
    g_mutex_unlock(&plugin_state->lock);
    return PST_VERDICT_PENDING;
  case MODE_NEVER:
    g_cancellable_connect(pst_call_get_cancellable(call),
                          G_CALLBACK(never_cancelled), call, NULL);
    return PST_VERDICT_PENDING;
  }
  return TEST_VERDICT_INVALID;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

static gboolean parse_verdict(const char *group, const char *key,
                              const char *value, PstVerdict *verdict_r,
                              GError **error) {
  for (guint i = 0; i < G_N_ELEMENTS(verdict_names); i++) {
    if (g_ascii_strcasecmp(value, verdict_names[i].name) == 0) {
      *verdict_r = verdict_names[i].verdict;
      return TRUE;
    }
  }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] %s = %s: expected continue, accept, reject, tempfail, "
              "discard, quarantine or invalid",
              group, key, value);
  return FALSE;
}

static gboolean parse_mode(const char *group, const char *key,
                           const char *value, Mode *mode_r, GError **error) {
  for (guint i = 0; i < G_N_ELEMENTS(mode_names); i++) {
    if (g_ascii_strcasecmp(value, mode_names[i]) == 0) {
      *mode_r = (Mode)i;
      return TRUE;
    }
  }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] %s = %s: expected sync, thread, timer, never or twice",
              group, key, value);
  return FALSE;
}

/* "550 5.7.1 Some text" or "550 Some text" or "550". */
static gboolean parse_reply(const char *group, const char *key,
                            const char *value, StageSpec *spec,
                            GError **error) {
  g_auto(GStrv) words = g_strsplit(value, " ", 3);
  guint64 code = 0;
  if (words[0] == NULL ||
      !g_ascii_string_to_unsigned(words[0], 10, 100, 999, &code, NULL)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] %s = %s: expected CODE [ENHANCED] [TEXT]", group, key,
                value);
    return FALSE;
  }
  spec->code = (guint)code;
  if (words[1] != NULL && g_ascii_isdigit(words[1][0]) &&
      strchr(words[1], '.') != NULL) {
    spec->enhanced = g_strdup(words[1]);
    spec->text = words[2] ? g_strdup(words[2]) : NULL;
  } else if (words[1] != NULL) {
    spec->text = words[2] ? g_strjoin(" ", words[1], words[2], NULL)
                          : g_strdup(words[1]);
  }
  return TRUE;
}

static char *stage_key(PstStage stage, const char *suffix) {
  return g_strconcat(pst_stage_to_string(stage), suffix, NULL);
}

/* The spec for `stage`, or NULL (and no error) when not configured. */
static StageSpec *spec_load(GKeyFile *config, const char *group, PstStage stage,
                            GError **error) {
  g_autofree char *verdict_key = stage_key(stage, "");
  g_autofree char *verdict = NULL;
  if (!pst_config_get_string(config, group, verdict_key, NULL, &verdict,
                             error) ||
      verdict == NULL)
    return NULL;
  StageSpec *spec = g_new0(StageSpec, 1);
  spec->stage = stage;
  g_autofree char *mode_key = stage_key(stage, "_mode");
  g_autofree char *mode = NULL;
  g_autofree char *reply_key = stage_key(stage, "_reply");
  g_autofree char *reply = NULL;
  g_autofree char *match_key = stage_key(stage, "_match");
  g_autofree char *disconnect_key = stage_key(stage, "_disconnect");
  g_autofree char *delay_key = stage_key(stage, "_delay");
  gboolean ok =
      parse_verdict(group, verdict_key, verdict, &spec->verdict, error) &&
      pst_config_get_string(config, group, mode_key, "sync", &mode, error) &&
      parse_mode(group, mode_key, mode, &spec->mode, error) &&
      pst_config_get_string(config, group, reply_key, NULL, &reply, error) &&
      (reply == NULL || parse_reply(group, reply_key, reply, spec, error)) &&
      pst_config_get_string(config, group, match_key, NULL, &spec->match,
                            error) &&
      pst_config_get_boolean(config, group, disconnect_key, FALSE,
                             &spec->disconnect, error) &&
      pst_config_get_duration(config, group, delay_key, 50, &spec->delay_ms,
                              error);
  if (!ok) {
    stage_spec_free(spec);
    return NULL;
  }
  if (spec->match != NULL) {
    char *lower = g_ascii_strdown(spec->match, -1);
    g_free(spec->match);
    spec->match = lower;
  }
  return spec;
}

static gboolean check_keys(GKeyFile *config, const char *group,
                           GError **error) {
  static const char *const suffixes[] = {"",       "_mode",       "_reply",
                                         "_match", "_disconnect", "_delay"};
  g_autoptr(GPtrArray) allowed = g_ptr_array_new_with_free_func(g_free);
  for (guint stage = 0; stage < PST_STAGE_COUNT; stage++)
    for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++)
      g_ptr_array_add(allowed, stage_key(stage, suffixes[i]));
  g_ptr_array_add(allowed, g_strdup("hook_priority"));
  g_ptr_array_add(allowed, NULL);
  return pst_config_check_keys(config, group,
                               (const char *const *)allowed->pdata, error);
}

/* Registers one hook per configured stage. */
static gboolean configure(PstPlugin *plugin, GKeyFile *config,
                          const char *group, GError **error) {
  gint64 priority = 0;
  if (!check_keys(config, group, error) ||
      !pst_config_get_int(config, group, "hook_priority", 0, -10000, 10000,
                          &priority, error))
    return FALSE;
  g_autoptr(GPtrArray) specs = g_ptr_array_new_with_free_func(stage_spec_free);
  for (guint stage = 0; stage < PST_STAGE_COUNT; stage++) {
    GError *local_error = NULL;
    StageSpec *spec = spec_load(config, group, stage, &local_error);
    if (local_error != NULL) {
      g_propagate_error(error, local_error);
      return FALSE;
    }
    if (spec != NULL)
      g_ptr_array_add(specs, spec);
  }
  /* Registered only once every key is known good. */
  while (specs->len > 0) {
    StageSpec *spec = g_ptr_array_steal_index(specs, 0);
    pst_plugin_register_hook(plugin, spec->stage, (int)priority, stage_hook,
                             spec, stage_spec_free);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

static gboolean testpolicy_init(PstPlugin *plugin, GKeyFile *config,
                                const char *group, GError **error) {
  if (!configure(plugin, config, group, error))
    return FALSE;
  plugin_state = g_new0(Plugin, 1);
  g_mutex_init(&plugin_state->lock);
  plugin_state->threads = g_ptr_array_new();
  plugin_state->timers = g_hash_table_new(NULL, NULL);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "started");
  return TRUE;
}

static gboolean testpolicy_reload(PstPlugin *plugin, GKeyFile *config,
                                  const char *group, GError **error) {
  if (!configure(plugin, config, group, error))
    return FALSE;
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "reloaded");
  return TRUE;
}

/* Waits for the workers and fires the timers still armed, so nothing of
 * ours runs after the daemon unloads us. */
static void testpolicy_shutdown(PstPlugin *plugin) {
  g_mutex_lock(&plugin_state->lock);
  GPtrArray *threads = g_steal_pointer(&plugin_state->threads);
  GHashTable *timers = g_steal_pointer(&plugin_state->timers);
  g_mutex_unlock(&plugin_state->lock);
  for (guint i = 0; i < threads->len; i++)
    g_thread_join(g_ptr_array_index(threads, i));
  g_ptr_array_unref(threads);
  GHashTableIter iter;
  gpointer id, call;
  g_hash_table_iter_init(&iter, timers);
  while (g_hash_table_iter_next(&iter, &id, &call)) {
    pst_call_complete(call, PST_VERDICT_CONTINUE);
    g_source_remove(GPOINTER_TO_UINT(id));
  }
  g_hash_table_unref(timers);
  g_mutex_clear(&plugin_state->lock);
  g_clear_pointer(&plugin_state, g_free);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "stopped");
}

POSTILION_PLUGIN_DEFINE(TEST_PLUGIN_NAME, "1.0",
                        "Test plugin: verdicts from its config group",
                        testpolicy_init, testpolicy_shutdown,
                        testpolicy_reload);
