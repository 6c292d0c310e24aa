/* spf.c - the SPF plugin: checks the client's right to use the HELO name
 * and the envelope sender's domain (RFC 7208), stores the result for
 * DMARC and adds a Received-SPF header.
 *
 * MAIL (priority -400, the authentication-checks band) decides whether
 * the session is checked at all (authenticated and relay-allowed sessions
 * are not: their mail is outgoing), copies what the check needs out of the
 * session into a job and returns PENDING.  Each check starts with the
 * question every check asks first, the domain's TXT record, looked up here
 * with the core's resolver: when it holds no record at all (NXDOMAIN,
 * NODATA; most HELO names) the result is `none` without an evaluator
 * (spf_outcome_new_none(), the outcome libspf2 gives then), and a record
 * of ip4, ip6 and all mechanisms only is decided here by the strict
 * parser's record (spf_outcome_new_local(): libspf2's outcome to the
 * octet, tested against it; no DNS, no macro); otherwise the
 * answer travels with the query to one of the plugin's evaluator
 * processes, driven from the main loop (spf-pool.c, spf-child.c), which
 * asks only the questions after it.  When the last check is in, the job
 * writes the results,
 * sets the reply and completes the call.  No thread is involved: the
 * evaluators' DNS questions are answered by the core's async resolver on
 * the main loop (spf_lookup_core()).  The HELO identity is checked at MAIL too,
 * when the session's authentication is known (clients authenticate after EHLO).
 * With both identities, a HELO fail (or softfail, by policy) decides it
 * (section 2.3) and MAIL FROM is not evaluated; otherwise MAIL FROM decides (a
 * HELO temperror or permerror does not refuse the mail then).
 *
 * Isolation: libspf2 never runs in the daemon.  Each identity is checked
 * by a pst-spf-eval process of the plugin's pool (spf-pool.c,
 * spf-child.c, spf-eval-main.c), which retires an evaluator after a
 * number of checks and an age.  If it dies, times out or misbehaves, it
 * is killed and reaped, the identity's result is temperror (the temperror
 * action applies), the reason is logged once, and the next evaluation
 * gets another evaluator.  A check waits for an evaluator only when
 * `evaluators` checks are under way.
 *
 * Cancellation: the job holds the call's cancellable; when the client
 * leaves (or the call times out), the lookup under way ends at once, the
 * evaluator is retired, and the check is a temperror ("check cancelled");
 * the job completes the call as usual: the core drops the results and the
 * reply of a cancelled or timed-out call (its session may be gone).
 *
 * Results (transaction scope): auth.spf {result, reason, smtp.mailfrom or
 * smtp.helo} for the identity that decided (MAIL FROM when it was
 * checked), spf.helo the same for the HELO identity, spf.received the
 * Received-SPF values that EOM (priority -400) prepends to the message.
 */
#include <string.h>

#include "spf.h"

#define SPF_PRIORITY (-400)
/* Evaluators started at init; more on demand up to `evaluators`. */
#define SPF_START_EVALUATORS 1
/* When the call has no deadline of its own. */
#define SPF_DEFAULT_DEADLINE_MS (5 * 60 * 1000)

typedef struct {
  PstCall *call;
  GCancellable *cancellable; /* owned reference */
  SpfConfig *config;         /* owned reference */
  char *ip;                  /* owned */
  char *helo;                /* owned, nullable */
  char *sender;              /* owned */
  SpfPool *evaluators;       /* the plugin's */
  SpfAnswerCache *answers;   /* the plugin's */
  gint64 deadline;           /* monotonic microseconds: the call's */
  SpfQuery query;            /* the identity under way; points into the job */
  char *top_name;            /* owned, nullable: its domain */
  SpfAnswer *top;            /* owned, nullable: that domain's TXT answer */
  GPtrArray *known;          /* owned, nullable: answers sent with it */
  GPtrArray *headers;        /* owned: Received-SPF values, in order */
  SpfParsedRecords parsed;   /* the identity's records, parsed once */
  SpfDecision decision;
} SpfJob;

static void spf_job_free(SpfJob *job) {
  spf_parsed_records_clear(&job->parsed);
  g_free(job->top_name);
  spf_answer_unref(job->top);
  if (job->known != NULL)
    g_ptr_array_unref(job->known);
  g_ptr_array_unref(job->headers);
  spf_decision_clear(&job->decision);
  g_clear_object(&job->cancellable);
  spf_config_unref(job->config);
  g_free(job->ip);
  g_free(job->helo);
  g_free(job->sender);
  g_free(job);
}

/* --- Results ------------------------------------------------------------ */

/* The auth.spf (spf.helo) value: an a{sv} of three strings, written in
 * serialised form by the SDK (no GVariant per entry). */
static GVariant *spf_auth_value(const SpfOutcome *outcome,
                                const SpfQuery *query) {
  gboolean helo = query->identity == SPF_IDENTITY_HELO;
  const char *const keys[] = {"result", "reason",
                              helo ? "smtp.helo" : "smtp.mailfrom"};
  const char *const values[] = {
      spf_result_to_string(outcome->result),
      outcome->problem != NULL ? outcome->problem : outcome->comment,
      helo ? (query->helo != NULL ? query->helo : "") : outcome->identity};
  return pst_result_new_fields(keys, values, G_N_ELEMENTS(keys));
}

/* --- The job ----------------------------------------------------------- */

static void spf_query_init(SpfQuery *query, const SpfJob *job,
                           SpfIdentity identity) {
  memset(query, 0, sizeof *query);
  query->ip = job->ip;
  query->helo = job->helo;
  query->sender = job->sender;
  query->identity = identity;
  query->receiver = job->config->receiver;
  query->max_lookups = job->config->max_lookups;
  query->max_void = job->config->max_void;
}

static void spf_job_on_outcome(SpfOutcome *outcome, const char *failure,
                               gpointer data);

static SpfAnswer *spf_job_peek(PstDnsType type, const char *name,
                               gpointer data);

/* Hands the query to an evaluator of the pool, with the answers the cache
 * has to the questions it may ask; spf_job_on_outcome() goes on. */
static void spf_job_evaluate(SpfJob *job) {
  g_clear_pointer(&job->known, g_ptr_array_unref);
  job->known = spf_known_collect(&job->query, spf_job_peek, job);
  job->query.known = job->known;
  spf_pool_evaluate(job->evaluators, &job->query, job->deadline,
                    job->cancellable, spf_lookup_core, job->answers,
                    spf_job_on_outcome, job);
}

/* SpfPeekFunc: an answer from the plugin's cache. */
static SpfAnswer *spf_job_peek(PstDnsType type, const char *name,
                               gpointer data) {
  SpfJob *job = data;
  return spf_answer_cache_lookup(job->answers, type, name,
                                 g_get_monotonic_time());
}

/* The outcome of the identity under way when the domain's TXT answer
 * decides it without an evaluator: no record at all is `none`, and so is
 * an identity without a domain (spf_outcome_new_none(), the outcome
 * libspf2 gives then); a record of ip4, ip6 and all only is decided here,
 * and so is one with includes whose answers the cache holds
 * (spf_outcome_new_local()).  NULL when an evaluator must decide.  Sets
 * the query's top answer for it. */
static SpfOutcome *spf_job_decide(SpfJob *job, SpfAnswer *answer) {
  g_clear_pointer(&job->top, spf_answer_unref);
  job->top = answer;
  if (job->top_name == NULL || spf_answer_is_no_record(answer))
    return spf_outcome_new_none(&job->query);
  job->query.top_name = job->top_name;
  job->query.top = job->top;
  return spf_outcome_new_local(&job->query, spf_job_peek, job);
}

/* The checked domain's TXT answer came: decided here, or by an
 * evaluator, which gets the answer with the query. */
static void spf_job_on_top(SpfAnswer *answer, gpointer data) {
  SpfJob *job = data;
  SpfOutcome *outcome = spf_job_decide(job, answer);
  if (outcome != NULL)
    spf_job_on_outcome(outcome, NULL, job);
  else
    spf_job_evaluate(job);
}

/* Makes `identity` the one under way: its query and its domain. */
static void spf_job_start(SpfJob *job, SpfIdentity identity) {
  spf_query_init(&job->query, job, identity);
  spf_parsed_records_clear(&job->parsed);
  job->query.parsed = &job->parsed;
  g_clear_pointer(&job->top_name, g_free);
  g_clear_pointer(&job->top, spf_answer_unref);
  job->top_name = spf_identity_domain(job->sender, job->helo, identity);
}

/* The outcome of the identity under way if it is known now, without a
 * lookup or an evaluator: no domain to check, or the plugin's cache holds
 * the domain's TXT answer and it decides.  NULL otherwise. */
static SpfOutcome *spf_job_decide_now(SpfJob *job) {
  if (job->top_name == NULL)
    return spf_job_decide(job, NULL);
  SpfAnswer *cached = spf_answer_cache_lookup(
      job->answers, PST_DNS_TYPE_TXT, job->top_name, g_get_monotonic_time());
  return cached != NULL ? spf_job_decide(job, cached) : NULL;
}

/* Checks `identity`: the domain's TXT record first, here (the question
 * every check asks first, and often the only one), then in an evaluator
 * of the pool if the answer does not decide it. */
static void spf_job_check(SpfJob *job, SpfIdentity identity) {
  spf_job_start(job, identity);
  SpfOutcome *now = spf_job_decide_now(job);
  if (now != NULL) {
    spf_job_on_outcome(now, NULL, job);
    return;
  }
  spf_lookup_core(PST_DNS_TYPE_TXT, job->top_name, job->cancellable,
                  spf_job_on_top, job, job->answers);
}

/* Logs one identity's outcome. */
static void spf_job_log(SpfJob *job, const SpfOutcome *outcome,
                        const char *failure) {
  const SpfQuery *query = &job->query;
  if (failure != NULL)
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "SPF evaluator failed: %s; result temperror", failure);
  pst_call_log(job->call, G_LOG_LEVEL_INFO,
               "%s %s: %s (%s) client=%s lookups=%u voids=%u",
               query->identity == SPF_IDENTITY_HELO ? "helo" : "mailfrom",
               outcome->identity, spf_result_to_string(outcome->result),
               outcome->problem != NULL ? outcome->problem : "ok", job->ip,
               outcome->lookups, outcome->voids);
}

/* Records one identity's outcome (header, results), and decides on it. */
static void spf_job_record(SpfJob *job, const SpfOutcome *outcome) {
  const SpfQuery *query = &job->query;
  g_ptr_array_add(job->headers, spf_received_spf(outcome, query));
  GVariant *value = spf_auth_value(outcome, query);
  g_variant_ref_sink(value);
  if (query->identity == SPF_IDENTITY_HELO)
    pst_result_set(job->call, PST_SCOPE_TRANSACTION, "spf.helo", value);
  if (query->identity == SPF_IDENTITY_MAIL_FROM ||
      !(job->config->identities & SPF_IDENTITY_MAIL_FROM))
    pst_result_set(job->call, PST_SCOPE_TRANSACTION, "auth.spf", value);
  g_variant_unref(value);
  spf_decision_clear(&job->decision);
  spf_decide(job->config, outcome, query, &job->decision);
}

/* The results and the reply; the job ends.  The verdict. */
static PstVerdict spf_job_finish(SpfJob *job) {
  pst_result_set(job->call, PST_SCOPE_TRANSACTION, "spf.received",
                 pst_result_new_strv((const char *const *)job->headers->pdata,
                                     job->headers->len));
  if (job->decision.verdict != PST_VERDICT_CONTINUE)
    pst_call_set_reply(job->call, job->decision.code, job->decision.enhanced,
                       job->decision.text);
  PstVerdict verdict = job->decision.verdict;
  spf_job_free(job);
  return verdict;
}

/* Takes one identity's outcome (owned): logged, recorded, decided on.
 * TRUE when MAIL FROM is to be checked next, FALSE when the job is
 * decided. */
static gboolean spf_job_take(SpfJob *job, SpfOutcome *outcome,
                             const char *failure) {
  g_autoptr(SpfOutcome) owned = outcome;
  spf_job_log(job, outcome, failure);
  spf_job_record(job, outcome);
  gboolean mail_from = (job->config->identities & SPF_IDENTITY_MAIL_FROM);
  if (job->query.identity != SPF_IDENTITY_HELO || !mail_from)
    return FALSE;
  /* Only a HELO fail (softfail) is conclusive (section 2.3); a broken or
   * unreachable HELO domain leaves the decision to MAIL FROM. */
  if (outcome->result == SPF_RES_TEMPERROR ||
      outcome->result == SPF_RES_PERMERROR) {
    spf_decision_clear(&job->decision);
    job->decision.verdict = PST_VERDICT_CONTINUE;
  }
  return job->decision.verdict == PST_VERDICT_CONTINUE;
}

static void spf_job_on_outcome(SpfOutcome *outcome, const char *failure,
                               gpointer data) {
  SpfJob *job = data;
  if (spf_job_take(job, outcome, failure)) {
    spf_job_check(job, SPF_IDENTITY_MAIL_FROM);
    return;
  }
  PstCall *call = job->call;
  pst_call_complete(call, spf_job_finish(job));
}

/* Decides the job within the hook when every identity it checks is
 * decided without waiting (spf_job_decide_now()); otherwise goes on from
 * the main loop and the call is pending. */
static PstVerdict spf_job_run(SpfJob *job, SpfIdentity identity) {
  for (;;) {
    spf_job_start(job, identity);
    SpfOutcome *now = spf_job_decide_now(job);
    if (now == NULL) {
      spf_lookup_core(PST_DNS_TYPE_TXT, job->top_name, job->cancellable,
                      spf_job_on_top, job, job->answers);
      return PST_VERDICT_PENDING;
    }
    if (!spf_job_take(job, now, NULL))
      return spf_job_finish(job);
    identity = SPF_IDENTITY_MAIL_FROM;
  }
}

/* --- Hooks -------------------------------------------------------------- */

typedef struct {
  SpfConfig *config;        /* owned reference */
  SpfPool *evaluators;      /* borrowed: the plugin's data owns it */
  SpfAnswerCache *answers;  /* borrowed: the plugin's data owns it */
} SpfHookData;

static void spf_hook_data_free(SpfHookData *data) {
  spf_config_unref(data->config);
  g_free(data);
}

/* Why this session is not checked, or NULL. */
static const char *spf_skip_reason(const SpfConfig *config,
                                   PstSession *session) {
  if (config->skip_authenticated && pst_session_get_auth_user(session) != NULL)
    return "authenticated";
  if (config->skip_internal && pst_session_get_relay_allowed(session))
    return "internal (allowed to relay)";
  return NULL;
}

static PstVerdict spf_mail(PstCall *call, gpointer user_data) {
  SpfHookData *data = user_data;
  PstSession *session = pst_call_get_session(call);
  const char *skip = spf_skip_reason(data->config, session);
  if (skip != NULL) {
    pst_call_log(call, G_LOG_LEVEL_DEBUG, "not checked: client is %s", skip);
    return PST_VERDICT_CONTINUE;
  }
  SpfJob *job = g_new0(SpfJob, 1);
  job->call = call;
  job->cancellable = g_object_ref(pst_call_get_cancellable(call));
  job->config = spf_config_ref(data->config);
  job->ip = g_strdup(pst_session_get_client_address(session));
  job->helo = g_strdup(pst_session_get_helo(session));
  job->sender = g_strdup(pst_call_get_argument(call));
  gint64 remaining = pst_call_get_remaining_ms(call);
  job->deadline = g_get_monotonic_time() +
                  (remaining > 0 ? remaining : SPF_DEFAULT_DEADLINE_MS) * 1000;
  job->evaluators = data->evaluators;
  job->answers = data->answers;
  job->headers = g_ptr_array_new_with_free_func(g_free);
  job->decision.verdict = PST_VERDICT_CONTINUE;
  return spf_job_run(job, (data->config->identities & SPF_IDENTITY_HELO)
                              ? SPF_IDENTITY_HELO
                              : SPF_IDENTITY_MAIL_FROM);
}

/* EOM: the Received-SPF fields, on top (section 9.1: prepended). */
static PstVerdict spf_eom(PstCall *call, gpointer user_data) {
  (void)user_data;
  g_autoptr(GVariant) value =
      pst_result_get(call, PST_SCOPE_TRANSACTION, "spf.received");
  if (value == NULL ||
      !g_variant_is_of_type(value, G_VARIANT_TYPE_STRING_ARRAY))
    return PST_VERDICT_CONTINUE;
  PstMessage *message = pst_call_get_message(call);
  gsize count = 0;
  g_autofree const char **fields = pst_result_get_strv(value, &count);
  /* Inserted in reverse at the top, so they read in evaluation order. */
  for (gsize i = count; i > 0; i--)
    if (!pst_message_insert_header(message, 0, "Received-SPF", fields[i - 1]))
      pst_call_log(call, G_LOG_LEVEL_WARNING,
                   "Received-SPF not added: the value was refused");
  return PST_VERDICT_CONTINUE;
}

/* --- The plugin --------------------------------------------------------- */

/* DNS answers the plugin keeps for their TTL (spf-cache.c). */
#define SPF_CACHE_ENTRIES 4096

typedef struct {
  SpfPool *evaluators;     /* owned: pst-spf-eval processes */
  SpfAnswerCache *answers; /* owned reference */
} SpfPluginData;

static void spf_plugin_data_free(gpointer data) {
  SpfPluginData *plugin = data;
  /* Every call, so every check, has completed by now (a pending call
   * holds the plugin): every evaluator is ended and reaped. */
  spf_pool_free(plugin->evaluators);
  spf_answer_cache_unref(plugin->answers);
  g_free(plugin);
}

static SpfPluginData *spf_plugin_data_new(GError **error) {
  g_autofree char *evaluator = spf_child_default_path();
  SpfPool *evaluators =
      spf_pool_new(evaluator != NULL ? evaluator : "pst-spf-eval",
                   SPF_START_EVALUATORS, error);
  if (evaluators == NULL) {
    g_prefix_error(error, "plugin spf: ");
    return NULL;
  }
  SpfPluginData *plugin = g_new0(SpfPluginData, 1);
  plugin->evaluators = evaluators;
  plugin->answers = spf_answer_cache_new(SPF_CACHE_ENTRIES);
  return plugin;
}

static gboolean spf_init(PstPlugin *plugin, GKeyFile *keyfile,
                         const char *group, GError **error) {
  SpfConfig *config = spf_config_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  spf_library_init();
  SpfPluginData *data = pst_plugin_get_data(plugin);
  if (data == NULL) {
    data = spf_plugin_data_new(error);
    if (data == NULL) {
      spf_config_unref(config);
      return FALSE;
    }
    pst_plugin_set_data(plugin, data, spf_plugin_data_free);
  } else {
    /* A reload may point [dns] elsewhere: nothing kept from before. */
    spf_answer_cache_clear(data->answers);
  }
  /* Init and every reload: the pool follows the configuration. */
  spf_pool_set_limits(data->evaluators, config->evaluators,
                      config->evaluator_max_checks,
                      (gint64)config->evaluator_max_age_ms * 1000);
  SpfHookData *mail = g_new0(SpfHookData, 1);
  mail->config = spf_config_ref(config);
  mail->evaluators = data->evaluators;
  mail->answers = data->answers;
  pst_plugin_register_hook(plugin, PST_STAGE_MAIL, SPF_PRIORITY, spf_mail, mail,
                           (GDestroyNotify)spf_hook_data_free);
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, SPF_PRIORITY, spf_eom, NULL,
                           NULL);
  static const char *const identities[] = {"", "mail_from", "helo", "both"};
  static const char *const policies[] = {"none", "soft", "strict"};
  pst_plugin_log(plugin, G_LOG_LEVEL_INFO,
                 "identities %s, policy %s, evaluators %u",
                 identities[config->identities], policies[config->policy],
                 config->evaluators);
  spf_config_unref(config);
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("spf", "1.0",
                        "SPF (RFC 7208) with libspf2: Received-SPF, auth.spf",
                        spf_init, NULL, spf_init);
