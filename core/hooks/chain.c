/* chain.c - ordering hooks into chains and running a stage on them.
 *
 * pst_chain_table_new() builds, for one configuration, the chain of every
 * listener and stage: each plugin's hooks (only the listener's `plugins`
 * when it has that list), at the plugin's `[plugin:NAME] priority` if the
 * keyfile sets one and at the registered priority otherwise, sorted by
 * priority, then load order, then registration order.  A stage without
 * hooks has no array at all, so the dispatcher's empty case is one lookup.
 *
 * pst_chain_run() walks a chain for one session and stage.  Filter stages
 * stop at the first verdict other than CONTINUE; event stages run every
 * hook and decide nothing.  A PENDING hook parks the run until its call
 * finishes on the main context (call.c); a timeout applies the plugin's
 * on_timeout verdict, an invalid verdict its on_error verdict, each with a
 * log line naming the plugin.  done() is called exactly once unless the
 * run is cancelled, and the run is freed right after it.
 *
 * Called by the session (one run at a time per session) on the main
 * thread; the run keeps its chain table, so a reload does not touch it.
 */
#define G_LOG_DOMAIN "postilion"

#include <glib.h>

#include "hooks/hooks-private.h"

#define PST_POLICY_UNAVAILABLE_TEXT                                            \
  "Error: policy check unavailable, try again later"

struct _PstChainRun {
  PstChainTable *table; /* owned reference */
  GArray *entries;      /* of PstChainEntry, owned by `table` */
  guint index;          /* the entry running now */
  PstStage stage;
  PstSession *session;   /* not owned: the session outlives its runs */
  PstHookArgs args;      /* `message` referenced, `params` referenced */
  char *argument;        /* owned: args.argument points here */
  GMainContext *context; /* owned reference */
  PstCall *call;         /* owned (core reference), nullable: pending */
  PstChainDoneFunc done;
  gpointer user_data;
  PstHookOutcome outcome; /* enhanced and text owned */
};

/* ------------------------------------------------------------------ */
/* Building                                                            */
/* ------------------------------------------------------------------ */

static void chain_entry_clear(gpointer data) {
  PstChainEntry *entry = data;
  g_clear_pointer(&entry->hook, pst_hook_unref);
}

static void listener_chains_free(PstListenerChains *chains) {
  for (guint i = 0; i < PST_STAGE_COUNT; i++)
    g_clear_pointer(&chains->stages[i], g_array_unref);
  g_free(chains);
}

static gint chain_entry_compare(gconstpointer a, gconstpointer b) {
  const PstChainEntry *x = a, *y = b;
  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  if (x->load_index != y->load_index)
    return x->load_index < y->load_index ? -1 : 1;
  if (x->hook->sequence != y->hook->sequence)
    return x->hook->sequence < y->hook->sequence ? -1 : 1;
  return 0;
}

static const PstPluginConfig *plugin_config_find(PstConfig *config,
                                                 const char *name) {
  for (guint i = 0; config->plugins && i < config->plugins->len; i++) {
    const PstPluginConfig *plugin_config =
        g_ptr_array_index(config->plugins, i);
    if (g_strcmp0(plugin_config->name, name) == 0)
      return plugin_config;
  }
  return NULL;
}

static void chain_add_plugin(PstListenerChains *chains, PstPlugin *plugin,
                             guint load_index,
                             const PstPluginConfig *plugin_config) {
  for (guint i = 0; i < plugin->hooks->len; i++) {
    PstHook *hook = g_ptr_array_index(plugin->hooks, i);
    PstChainEntry entry = {
        .hook = pst_hook_ref(hook),
        .priority = hook->priority,
        .load_index = load_index,
        .timeout_ms = 30000,
        .on_timeout = PST_VERDICT_TEMPFAIL,
        .on_error = PST_VERDICT_TEMPFAIL,
    };
    if (plugin_config != NULL) {
      if (plugin_config->has_priority)
        entry.priority = plugin_config->priority;
      entry.timeout_ms = plugin_config->timeout_ms;
      entry.on_timeout = plugin_config->on_timeout;
      entry.on_error = plugin_config->on_error;
    }
    GArray **stage = &chains->stages[hook->stage];
    if (*stage == NULL) {
      *stage = g_array_new(FALSE, FALSE, sizeof(PstChainEntry));
      g_array_set_clear_func(*stage, chain_entry_clear);
    }
    g_array_append_val(*stage, entry);
  }
}

/* The chains of the plugins in `only` (NULL: all). */
static PstListenerChains *listener_chains_new(PstPluginGroup *group,
                                              PstConfig *config, char **only) {
  PstListenerChains *chains = g_new0(PstListenerChains, 1);
  for (guint i = 0; i < group->plugins->len; i++) {
    PstPlugin *plugin = g_ptr_array_index(group->plugins, i);
    if (only != NULL &&
        !g_strv_contains((const char *const *)only, plugin->name))
      continue;
    chain_add_plugin(chains, plugin, i,
                     plugin_config_find(config, plugin->name));
  }
  for (guint i = 0; i < PST_STAGE_COUNT; i++) {
    if (chains->stages[i] != NULL)
      g_array_sort(chains->stages[i], chain_entry_compare);
  }
  return chains;
}

PstChainTable *pst_chain_table_new(PstPluginGroup *group, PstConfig *config) {
  PstChainTable *table = g_new0(PstChainTable, 1);
  table->ref_count = 1;
  table->group = pst_plugin_group_ref(group);
  table->listeners = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)listener_chains_free);
  table->all = listener_chains_new(group, config, NULL);
  for (guint i = 0; config->listeners && i < config->listeners->len; i++) {
    const PstListenerConfig *listener = g_ptr_array_index(config->listeners, i);
    if (listener->plugins != NULL)
      g_hash_table_replace(
          table->listeners, g_strdup(listener->name),
          listener_chains_new(group, config, listener->plugins));
  }
  return table;
}

PstChainTable *pst_chain_table_ref(PstChainTable *table) {
  g_atomic_int_inc(&table->ref_count);
  return table;
}

void pst_chain_table_unref(PstChainTable *table) {
  if (table == NULL || !g_atomic_int_dec_and_test(&table->ref_count))
    return;
  g_hash_table_unref(table->listeners);
  listener_chains_free(table->all);
  pst_plugin_group_unref(table->group);
  g_free(table);
}

const PstListenerChains *pst_chain_table_lookup(PstChainTable *table,
                                                const char *listener) {
  const PstListenerChains *chains =
      listener ? g_hash_table_lookup(table->listeners, listener) : NULL;
  return chains ? chains : table->all;
}

static void describe_listener(GString *out, const char *name,
                              const PstListenerChains *chains) {
  for (guint stage = 0; stage < PST_STAGE_COUNT; stage++) {
    GArray *entries = chains->stages[stage];
    for (guint i = 0; entries && i < entries->len; i++) {
      const PstChainEntry *entry = &g_array_index(entries, PstChainEntry, i);
      g_string_append_printf(out, "%s %s %d %s\n", name,
                             pst_stage_to_string(stage), entry->priority,
                             entry->hook->plugin->name);
    }
  }
}

void pst_plugin_set_describe(PstPluginSet *set, PstConfig *config,
                             GString *out) {
  g_return_if_fail(set != NULL && config != NULL && out != NULL);
  PstChainTable *table =
      pst_chain_table_new(pst_plugin_set_get_chains(set)->group, config);
  if (config->listeners == NULL || config->listeners->len == 0)
    describe_listener(out, "*", table->all);
  for (guint i = 0; config->listeners && i < config->listeners->len; i++) {
    const PstListenerConfig *listener = g_ptr_array_index(config->listeners, i);
    describe_listener(out, listener->name,
                      pst_chain_table_lookup(table, listener->name));
  }
  PstPluginGroup *group = table->group;
  for (guint i = 0; i < group->plugins->len; i++) {
    const PstPlugin *plugin = g_ptr_array_index(group->plugins, i);
    const PstPluginDescriptor *d = plugin->descriptor;
    g_string_append_printf(out, "plugin\t%s\t%s\t%s\n", plugin->name,
                           d->version != NULL ? d->version : "",
                           d->description != NULL ? d->description : "");
  }
  pst_chain_table_unref(table);
}

/* ------------------------------------------------------------------ */
/* Running                                                             */
/* ------------------------------------------------------------------ */

static GArray *chain_lookup(PstPluginSet *set, const char *listener,
                            PstStage stage) {
  return pst_chain_table_lookup(pst_plugin_set_get_chains(set), listener)
      ->stages[stage];
}

gboolean pst_chain_has_hooks(PstPluginSet *set, const char *listener,
                             PstStage stage) {
  g_return_val_if_fail(set != NULL && (guint)stage < PST_STAGE_COUNT, FALSE);
  return chain_lookup(set, listener, stage) != NULL;
}

static void run_free(PstChainRun *run) {
  g_assert(run->call == NULL);
  g_free(run->outcome.enhanced);
  g_free(run->outcome.text);
  g_free(run->outcome.route);
  g_free(run->argument);
  if (run->args.params != NULL)
    g_ptr_array_unref((GPtrArray *)run->args.params);
  g_clear_pointer(&run->args.message, pst_message_unref);
  g_main_context_unref(run->context);
  pst_chain_table_unref(run->table);
  g_free(run);
}

static void call_warn(PstCall *call, const char *format, ...)
    G_GNUC_PRINTF(2, 3);
static void call_warn(PstCall *call, const char *format, ...) {
  va_list args;
  va_start(args, format);
  pst_hooks_logv(G_LOG_LEVEL_WARNING, call->session_id, call->plugin->name,
                 format, args);
  va_end(args);
}

/* The outcome of a verdict the plugin did not choose itself. */
static void run_decide_failure(PstChainRun *run) {
  if (run->outcome.verdict == PST_VERDICT_TEMPFAIL &&
      run->stage != PST_STAGE_CONNECT) {
    run->outcome.code = 451;
    run->outcome.enhanced = g_strdup("4.3.0");
    run->outcome.text = g_strdup(PST_POLICY_UNAVAILABLE_TEXT);
  }
}

/* Applies one call's verdict; TRUE when it decides the stage. */
static gboolean run_take_verdict(PstChainRun *run, PstCall *call,
                                 PstVerdict verdict, gboolean timed_out) {
  gboolean failed = FALSE;
  if (timed_out && pst_stage_is_event(run->stage)) {
    call_warn(call, "did not complete %s within %u ms: not waiting longer",
              pst_stage_to_string(run->stage), call->timeout_ms);
  } else if (timed_out) {
    call_warn(call, "no verdict at %s within %u ms: on_timeout=%s applies",
              pst_stage_to_string(run->stage), call->timeout_ms,
              pst_verdict_to_string(verdict));
  } else if (!pst_stage_is_event(run->stage) &&
             !pst_verdict_is_valid_at(verdict, run->stage)) {
    call_warn(call, "invalid verdict %d (%s) at %s: on_error=%s applies",
              (int)verdict, pst_verdict_to_string(verdict),
              pst_stage_to_string(run->stage),
              pst_verdict_to_string(call->on_error));
    verdict = call->on_error;
    failed = TRUE;
  }
  if (pst_stage_is_event(run->stage) || verdict == PST_VERDICT_CONTINUE)
    return FALSE;

  run->outcome.verdict = verdict;
  run->outcome.plugin = call->plugin->name;
  run->outcome.timed_out = timed_out;
  run->outcome.failed = failed;
  if (timed_out || failed) {
    run_decide_failure(run);
  } else {
    pst_call_take_reply(call, verdict, &run->outcome.code,
                        &run->outcome.enhanced, &run->outcome.text);
    run->outcome.disconnect = pst_call_get_disconnect(call);
    if (verdict == PST_VERDICT_ACCEPT)
      run->outcome.route = pst_call_take_route(call);
  }
  g_debug("%s: %s: plugin %s says %s", call->session_id,
          pst_stage_to_string(run->stage), call->plugin->name,
          pst_verdict_to_string(verdict));
  return TRUE;
}

static void run_call_finished(PstCall *call, PstVerdict verdict,
                              gboolean timed_out, gpointer user_data);

/* Runs hooks from run->index on; TRUE when the stage is over. */
static gboolean run_advance(PstChainRun *run) {
  for (; run->index < run->entries->len; run->index++) {
    const PstChainEntry *entry =
        &g_array_index(run->entries, PstChainEntry, run->index);
    PstCall *call =
        pst_call_new(run->stage, run->session, entry, &run->args, run->context);
    PstVerdict verdict = pst_call_invoke(call, run_call_finished, run);
    if (verdict == PST_VERDICT_PENDING) {
      run->call = call;
      return FALSE;
    }
    gboolean decided = run_take_verdict(run, call, verdict, FALSE);
    pst_call_release(call);
    if (decided)
      return TRUE;
  }
  return TRUE;
}

static void run_finish(PstChainRun *run) {
  run->done(&run->outcome, run->user_data);
  run_free(run);
}

static void run_call_finished(PstCall *call, PstVerdict verdict,
                              gboolean timed_out, gpointer user_data) {
  PstChainRun *run = user_data;
  g_assert(run->call == call);
  gboolean decided = run_take_verdict(run, call, verdict, timed_out);
  run->call = NULL;
  pst_call_release(call);
  if (!decided) {
    run->index++;
    if (!run_advance(run))
      return;
  }
  run_finish(run);
}

PstChainRun *pst_chain_run(PstPluginSet *set, const char *listener,
                           PstStage stage, PstSession *session,
                           const PstHookArgs *args, PstChainDoneFunc done,
                           gpointer user_data) {
  g_return_val_if_fail(set != NULL && done != NULL, NULL);
  g_return_val_if_fail((guint)stage < PST_STAGE_COUNT, NULL);
  GArray *entries = chain_lookup(set, listener, stage);
  if (entries == NULL) {
    const PstHookOutcome outcome = {.verdict = PST_VERDICT_CONTINUE};
    done(&outcome, user_data);
    return NULL;
  }

  PstChainRun *run = g_new0(PstChainRun, 1);
  run->table = pst_chain_table_ref(pst_plugin_set_get_chains(set));
  run->entries = entries;
  run->stage = stage;
  run->session = session;
  if (args != NULL) {
    run->args = *args;
    run->argument = g_strdup(args->argument);
    if (args->params != NULL)
      g_ptr_array_ref((GPtrArray *)args->params);
    if (args->message != NULL)
      pst_message_ref(args->message);
  }
  run->args.argument = run->argument;
  run->context = g_main_context_ref_thread_default();
  run->done = done;
  run->user_data = user_data;
  run->outcome.verdict = PST_VERDICT_CONTINUE;
  if (!run_advance(run))
    return run;
  run_finish(run);
  return NULL;
}

void pst_chain_run_cancel(PstChainRun *run) {
  g_return_if_fail(run != NULL);
  if (run->call != NULL) {
    pst_call_cancel(run->call);
    g_clear_pointer(&run->call, pst_call_release);
  }
  run_free(run);
}
