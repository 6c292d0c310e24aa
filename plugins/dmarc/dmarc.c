/* dmarc.c - the DMARC plugin: evaluates every received message against
 * the policy of its RFC5322.From domain (RFC 9989), stores auth.dmarc for
 * Authentication-Results, enforces the policy as configured and records
 * the evaluation for the aggregate reports (RFC 9990).
 *
 * EOM (priority 200, the aggregation band): runs after spf (auth.spf, one
 * a{sv}) and DKIM verification (auth.dkim, one a{sv} per signature, read
 * with pst_result_get_all()).  Sessions that are authenticated or allowed
 * to relay are skipped (their mail is outgoing).  The hook reads the From
 * domain and the results, builds a DmarcCheck (dmarc-check.c) and returns
 * PENDING; the check's DNS questions go to the core's asynchronous
 * resolver (pst_dns_lookup(), with the call's cancellable), answers come
 * back on the main thread, and when the check is done the job applies the
 * policy and completes the call.  Answers are kept for their TTL in the
 * configuration's cache (dmarc-cache.c): when it holds every answer the
 * check needs, the hook decides at once and returns the verdict.  Nothing
 * here blocks the main loop; history rows go to the writer thread
 * (dmarc-history.c).
 *
 * Enforcement: fail under p/sp/np=reject is refused with reject_reply,
 * under quarantine held (QUARANTINE) or marked with the
 * X-Postilion-DMARC header; never when enforce = false, the record says
 * t=y, or the client is a trusted forwarder (the report then names the
 * override).  temperror is accepted or deferred (temperror_action).  A
 * From: that yields no single author domain is refused or accepted
 * (malformed_from).
 */
#include <string.h>

#include "dmarc.h"
#include "dmarc-history.h"

#define DMARC_PRIORITY 200

typedef struct {
  DmarcConfig *config;   /* owned reference */
  DmarcHistory *history; /* owned reference, nullable */
  DmarcCache *cache;     /* owned reference: this generation's answers */
} DmarcHookData;

typedef struct {
  PstCall *call;
  GCancellable *cancellable; /* owned reference */
  DmarcConfig *config;       /* owned reference */
  DmarcHistory *history;     /* owned reference, nullable */
  DmarcCache *cache;         /* owned reference */
  DmarcCheck *check;         /* owned */
  guint pending;             /* lookups not answered yet */
  gboolean completed;
  gboolean trusted_forwarder;
  char *client;        /* owned: the client's address */
  char *sender;        /* owned: the envelope sender ("" for <>) */
  char *envelope_from; /* owned: the MAIL FROM domain, nullable */
  char *envelope_to;   /* owned: the first recipient's domain */
} DmarcJob;

static void dmarc_job_free(DmarcJob *job) {
  g_clear_object(&job->cancellable);
  dmarc_config_unref(job->config);
  if (job->history != NULL)
    dmarc_history_unref(job->history);
  dmarc_cache_unref(job->cache);
  dmarc_check_free(job->check);
  g_free(job->client);
  g_free(job->sender);
  g_free(job->envelope_from);
  g_free(job->envelope_to);
  g_free(job);
}

/* --- Reading the other plugins' results ------------------------------------
 */

static char *dmarc_address_domain(const char *address) {
  const char *at = address != NULL ? strrchr(address, '@') : NULL;
  return at != NULL ? dmarc_domain_normalize(at + 1) : NULL;
}

/* SPF's result for DMARC: the MAIL FROM identity (for the null sender the
 * spf plugin checks postmaster@HELO, RFC 7208 section 2.4), or the HELO
 * identity when only that was checked and MAIL FROM is null. */
static DmarcAuth *dmarc_read_spf(PstCall *call, const char *sender) {
  g_autoptr(GVariant) spf =
      pst_result_get(call, PST_SCOPE_TRANSACTION, "auth.spf");
  if (spf == NULL)
    return NULL;
  /* Read in place by the SDK (no GVariant per entry); the strings live
   * as long as `spf`. */
  const char *result = pst_result_get_field(spf, 0, "result");
  const char *mailfrom = pst_result_get_field(spf, 0, "smtp.mailfrom");
  const char *helo = pst_result_get_field(spf, 0, "smtp.helo");
  DmarcAuth *auth = NULL;
  if (mailfrom != NULL) {
    g_autofree char *domain = dmarc_address_domain(mailfrom);
    gboolean null_sender = sender == NULL || sender[0] == '\0';
    auth = dmarc_auth_new(domain, NULL, result, null_sender ? "helo" : "mfrom");
  } else if (helo != NULL && (sender == NULL || sender[0] == '\0')) {
    auth = dmarc_auth_new(helo, NULL, result, "helo");
  }
  /* The report's human_result says why an SPF check erred; other reasons
   * name the sender's address, which would split the report's records
   * per sender. */
  if (auth != NULL && (g_str_equal(auth->result, "temperror") ||
                       g_str_equal(auth->result, "permerror")))
    dmarc_auth_set_human(auth, pst_result_get_field(spf, 0, "reason"));
  return auth;
}

static GPtrArray *dmarc_read_dkim(PstCall *call) {
  GPtrArray *dkim =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_auth_free);
  g_autoptr(GVariant) all =
      pst_result_get_all(call, PST_SCOPE_TRANSACTION, "auth.dkim");
  if (all == NULL)
    return dkim;
  gsize count = g_variant_n_children(all);
  for (gsize i = 0; i < count; i++) {
    DmarcAuth *auth = dmarc_auth_new(pst_result_get_field(all, i, "header.d"),
                                     pst_result_get_field(all, i, "header.s"),
                                     pst_result_get_field(all, i, "result"),
                                     NULL);
    dmarc_auth_set_human(auth, pst_result_get_field(all, i, "reason"));
    g_ptr_array_add(dkim, auth);
  }
  return dkim;
}

/* --- The decision ------------------------------------------------------------
 */

/* auth.dmarc, written in serialised form by the SDK; a NULL value leaves
 * its entry out. */
static void dmarc_store_result(DmarcJob *job, const DmarcOutcome *outcome) {
  static const char *const keys[] = {"result", "reason", "header.from",
                                     "policy.dmarc"};
  const char *values[] = {
      dmarc_result_to_string(outcome->result),
      outcome->result != DMARC_RESULT_PASS ? outcome->reason : NULL,
      outcome->from_domain,
      outcome->policy != DMARC_POLICY_UNSET
          ? dmarc_policy_to_string(outcome->policy)
          : NULL,
  };
  pst_result_set(job->call, PST_SCOPE_TRANSACTION, "auth.dmarc",
                 pst_result_new_fields(keys, values, G_N_ELEMENTS(keys)));
}

/* Why a failing message is not treated per its policy, or NULL (RFC 9990
 * PolicyOverrideType names). */
static const char *dmarc_override(const DmarcJob *job,
                                  const DmarcOutcome *outcome) {
  if (outcome->record != NULL && outcome->record->testing)
    return "policy_test_mode";
  if (job->trusted_forwarder)
    return "trusted_forwarder";
  if (!job->config->enforce)
    return "local_policy";
  return NULL;
}

/* The verdict for a failing message under `policy`; `disposition_r` gets
 * what was done (RFC 9990 disposition). */
static PstVerdict dmarc_enforce(DmarcJob *job, const DmarcOutcome *outcome,
                                const char **disposition_r) {
  const DmarcConfig *config = job->config;
  const char *policy = dmarc_policy_to_string(outcome->policy);
  if (outcome->policy == DMARC_POLICY_REJECT) {
    g_autofree char *text =
        dmarc_reply_format(config->reject.text, outcome->from_domain, policy);
    pst_call_set_reply(job->call, config->reject.code, config->reject.enhanced,
                       text);
    *disposition_r = "reject";
    return PST_VERDICT_REJECT;
  }
  if (outcome->policy != DMARC_POLICY_QUARANTINE)
    return PST_VERDICT_CONTINUE;
  *disposition_r = "quarantine";
  if (config->quarantine == DMARC_QUARANTINE_HOLD)
    return PST_VERDICT_QUARANTINE;
  g_autofree char *value = g_strdup_printf("quarantine (DMARC policy of %s)",
                                           outcome->policy_domain);
  if (!pst_message_insert_header(pst_call_get_message(job->call), 0,
                                 DMARC_QUARANTINE_HEADER_NAME, value))
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "%s header not added: the value was refused",
                 DMARC_QUARANTINE_HEADER_NAME);
  return PST_VERDICT_CONTINUE;
}

static PstVerdict dmarc_decide(DmarcJob *job, const DmarcOutcome *outcome,
                               const char **disposition_r,
                               const char **override_r) {
  *disposition_r = "none";
  *override_r = NULL;
  if (outcome->result == DMARC_RESULT_TEMPERROR &&
      job->config->temperror_tempfail) {
    pst_call_set_reply(job->call, 451, "4.4.3",
                       "DMARC policy check failed temporarily, try again "
                       "later");
    return PST_VERDICT_TEMPFAIL;
  }
  if (outcome->result != DMARC_RESULT_FAIL ||
      outcome->policy == DMARC_POLICY_NONE)
    return PST_VERDICT_CONTINUE;
  *override_r = dmarc_override(job, outcome);
  if (*override_r != NULL)
    return PST_VERDICT_CONTINUE;
  return dmarc_enforce(job, outcome, disposition_r);
}

static void dmarc_job_log(const DmarcJob *job, const DmarcOutcome *outcome,
                          const char *disposition, const char *override) {
  pst_call_log(job->call, G_LOG_LEVEL_INFO,
               "from=%s result=%s policy_domain=%s policy=%s spf=%s dkim=%s "
               "disposition=%s%s%s%s%s",
               outcome->from_domain, dmarc_result_to_string(outcome->result),
               outcome->policy_domain != NULL ? outcome->policy_domain : "-",
               outcome->policy != DMARC_POLICY_UNSET
                   ? dmarc_policy_to_string(outcome->policy)
                   : "-",
               outcome->spf_aligned ? "aligned" : "unaligned",
               outcome->dkim_aligned ? "aligned" : "unaligned", disposition,
               override != NULL ? " override=" : "",
               override != NULL ? override : "",
               outcome->reason != NULL ? " reason=" : "",
               outcome->reason != NULL ? outcome->reason : "");
}

/* The message's header fields, CRLF-terminated, for failure reports. */
static char *dmarc_message_header(PstMessage *message) {
  GString *out = g_string_new(NULL);
  guint count = pst_message_get_header_count(message);
  for (guint i = 0; i < count; i++)
    g_string_append_printf(out, "%s: %s\r\n",
                           pst_message_get_header_name(message, i),
                           pst_message_get_header_value(message, i));
  return g_string_free(out, FALSE);
}

/* A failure report (RFC 9991) when enabled, asked for, and within the
 * hourly limit; NULL otherwise. */
static DmarcFailure *dmarc_job_failure(DmarcJob *job,
                                       const DmarcOutcome *outcome,
                                       const char *disposition) {
  if (!job->config->failure_reports || outcome->record->ruf->len == 0 ||
      dmarc_failure_type(outcome) == NULL)
    return NULL;
  g_autofree char *headers =
      dmarc_message_header(pst_call_get_message(job->call));
  DmarcFailureContext context = {.hostname = job->config->hostname,
                                 .client = job->client,
                                 .sender = job->sender,
                                 .disposition = disposition,
                                 .headers = headers};
  DmarcFailure *failure = dmarc_failure_new(outcome, &context);
  if (failure != NULL &&
      !dmarc_history_failure_allowed(job->history, outcome->policy_domain)) {
    pst_call_log(job->call, G_LOG_LEVEL_INFO,
                 "no failure report for %s: %d this hour already",
                 outcome->policy_domain, DMARC_FAILURES_PER_HOUR);
    g_clear_pointer(&failure, dmarc_failure_free);
  }
  return failure;
}

/* The evaluation goes to the history (unless the client left). */
static void dmarc_job_record(DmarcJob *job, const DmarcOutcome *outcome,
                             const char *disposition, const char *override) {
  if (job->history == NULL || outcome->record == NULL ||
      !outcome->record->usable || g_cancellable_is_cancelled(job->cancellable))
    return;
  DmarcHistoryRow *row =
      dmarc_history_row_new(outcome, job->client, job->envelope_from,
                            job->envelope_to, disposition, override);
  row->failure = dmarc_job_failure(job, outcome, disposition);
  dmarc_history_add(job->history, row);
}

/* Applies the finished check: the result, the verdict, the log line and
 * the history row. */
static PstVerdict dmarc_job_conclude(DmarcJob *job) {
  DmarcOutcome outcome;
  dmarc_check_get_outcome(job->check, &outcome);
  dmarc_store_result(job, &outcome);
  const char *disposition = NULL, *override = NULL;
  PstVerdict verdict = dmarc_decide(job, &outcome, &disposition, &override);
  dmarc_job_log(job, &outcome, disposition, override);
  dmarc_job_record(job, &outcome, disposition, override);
  job->completed = TRUE;
  return verdict;
}

/* --- DNS
 * ------------------------------------------------------------------------ */

typedef struct {
  DmarcJob *job;
  PstDnsType type;
  char *name; /* owned */
} DmarcLookup;

static gboolean dmarc_job_ask(DmarcJob *job);

static gint64 dmarc_now(void) {
  return g_get_monotonic_time() / G_USEC_PER_SEC;
}

static void dmarc_lookup_done(PstDnsResult *result, gpointer user_data) {
  DmarcLookup *lookup = user_data;
  DmarcJob *job = lookup->job;
  guint count = pst_dns_result_get_count(result);
  if (lookup->type != PST_DNS_TYPE_TXT)
    count = 0; /* the existence questions need the status only */
  g_autofree const char **records = g_new0(const char *, count + 1);
  g_autofree gsize *lengths = g_new0(gsize, count + 1);
  for (guint i = 0; i < count; i++)
    records[i] = pst_dns_result_get_txt(result, i, &lengths[i]);
  PstDnsStatus status = pst_dns_result_get_status(result);
  const char *reason = pst_dns_result_get_reason(result);
  dmarc_cache_put(job->cache, lookup->type, lookup->name, status,
                  (const char *const *)records, lengths, count, reason,
                  pst_dns_result_get_ttl(result), dmarc_now());
  dmarc_check_answer(job->check, lookup->type, lookup->name, status,
                     (const char *const *)records, lengths, count, reason);
  pst_dns_result_free(result);
  g_free(lookup->name);
  g_free(lookup);
  job->pending--;
  if (!job->completed && dmarc_job_ask(job))
    pst_call_complete(job->call, dmarc_job_conclude(job));
  if (job->completed && job->pending == 0)
    dmarc_job_free(job);
}

/* The check's kept answers: the configuration's cache. */
static const DmarcCachedAnswer *dmarc_job_kept(PstDnsType type,
                                               const char *name,
                                               gpointer data) {
  DmarcJob *job = data;
  return dmarc_cache_get(job->cache, type, name, dmarc_now());
}

static void dmarc_job_lookup(DmarcJob *job, const DmarcQuestion *question) {
  DmarcLookup *lookup = g_new0(DmarcLookup, 1);
  lookup->job = job;
  lookup->type = question->type;
  lookup->name = g_strdup(question->name);
  job->pending++;
  pst_dns_lookup(question->type, question->name, job->cancellable,
                 dmarc_lookup_done, lookup);
}

/* Looks up what the check asks (it took the kept answers itself).  TRUE
 * when the check is done; FALSE while it waits for lookups. */
static gboolean dmarc_job_ask(DmarcJob *job) {
  g_autoptr(GPtrArray) questions = dmarc_check_questions(job->check);
  if (dmarc_check_is_done(job->check))
    return TRUE;
  for (guint i = 0; i < questions->len; i++)
    dmarc_job_lookup(job, questions->pdata[i]);
  return FALSE;
}

/* --- The hook ----------------------------------------------------------------
 */

/* Why this session is not checked, or NULL. */
static const char *dmarc_skip_reason(const DmarcConfig *config,
                                     PstSession *session) {
  if (config->skip_authenticated && pst_session_get_auth_user(session) != NULL)
    return "authenticated";
  if (config->skip_internal && pst_session_get_relay_allowed(session))
    return "internal (allowed to relay)";
  return NULL;
}

/* Our quarantine mark is ours alone: a copy a client sent goes. */
static void dmarc_remove_marks(PstMessage *message) {
  while (pst_message_delete_header(message, DMARC_QUARANTINE_HEADER_NAME, 0))
    ;
}

/* The author domain, or NULL after deciding what a malformed From: gets. */
static char *dmarc_author_domain(PstCall *call, const DmarcConfig *config,
                                 PstVerdict *verdict_r) {
  PstMessage *message = pst_call_get_message(call);
  const char *fields[16];
  guint count = 0;
  while (count < G_N_ELEMENTS(fields) &&
         (fields[count] = pst_message_get_header(message, "From", count)))
    count++;
  const char *problem = NULL;
  char *domain = dmarc_from_domain(fields, count, &problem);
  if (domain != NULL)
    return domain;
  static const char *const keys[] = {"result", "reason"};
  const char *values[] = {"none", problem};
  pst_result_set(call, PST_SCOPE_TRANSACTION, "auth.dmarc",
                 pst_result_new_fields(keys, values, G_N_ELEMENTS(keys)));
  pst_call_log(call, G_LOG_LEVEL_INFO, "malformed From: %s (%s)", problem,
               config->malformed_reject ? "rejected" : "accepted");
  *verdict_r = PST_VERDICT_CONTINUE;
  if (config->malformed_reject) {
    pst_call_set_reply(call, 550, "5.7.1",
                       "The From: field must name exactly one author domain "
                       "(RFC 9989)");
    *verdict_r = PST_VERDICT_REJECT;
  }
  return NULL;
}

static DmarcJob *dmarc_job_new(PstCall *call, DmarcHookData *data,
                               char *from_domain) {
  PstSession *session = pst_call_get_session(call);
  const char *sender = pst_session_get_sender(session);
  DmarcJob *job = g_new0(DmarcJob, 1);
  job->call = call;
  job->cancellable = g_object_ref(pst_call_get_cancellable(call));
  job->config = dmarc_config_ref(data->config);
  if (data->config->reports && data->history != NULL)
    job->history = dmarc_history_ref(data->history);
  job->cache = dmarc_cache_ref(data->cache);
  job->client = g_strdup(pst_session_get_client_address(session));
  if (data->config->trusted_forwarders->len > 0) {
    g_autoptr(GInetAddress) address =
        pst_session_get_client_inet_address(session);
    job->trusted_forwarder =
        address != NULL &&
        dmarc_config_is_trusted_forwarder(data->config, address);
  }
  job->sender = g_strdup(sender != NULL ? sender : "");
  job->envelope_from = dmarc_address_domain(sender);
  if (pst_session_get_recipient_count(session) > 0)
    job->envelope_to =
        dmarc_address_domain(pst_session_get_recipient(session, 0));
  job->check = dmarc_check_new(from_domain, dmarc_read_spf(call, sender),
                               dmarc_read_dkim(call));
  dmarc_check_set_kept(job->check, dmarc_job_kept, job);
  return job;
}

static PstVerdict dmarc_eom(PstCall *call, gpointer user_data) {
  DmarcHookData *data = user_data;
  PstSession *session = pst_call_get_session(call);
  dmarc_remove_marks(pst_call_get_message(call));
  const char *skip = dmarc_skip_reason(data->config, session);
  if (skip != NULL) {
    pst_call_log(call, G_LOG_LEVEL_DEBUG, "not checked: client is %s", skip);
    return PST_VERDICT_CONTINUE;
  }
  PstVerdict verdict = PST_VERDICT_CONTINUE;
  g_autofree char *from_domain =
      dmarc_author_domain(call, data->config, &verdict);
  if (from_domain == NULL)
    return verdict;
  DmarcJob *job = dmarc_job_new(call, data, from_domain);
  if (!dmarc_job_ask(job))
    return PST_VERDICT_PENDING;
  /* Every answer was kept: decided without waiting. */
  verdict = dmarc_job_conclude(job);
  if (job->pending == 0)
    dmarc_job_free(job);
  return verdict;
}

/* --- The plugin
 * ---------------------------------------------------------------- */

typedef struct {
  DmarcHistory *history; /* owned, nullable */
  char *history_uri;     /* owned: what it writes to */
} DmarcPluginData;

static void dmarc_plugin_data_free(gpointer data) {
  DmarcPluginData *plugin = data;
  if (plugin->history != NULL)
    dmarc_history_unref(plugin->history);
  g_free(plugin->history_uri);
  g_free(plugin);
}

static void dmarc_hook_data_free(DmarcHookData *data) {
  dmarc_config_unref(data->config);
  if (data->history != NULL)
    dmarc_history_unref(data->history);
  dmarc_cache_unref(data->cache);
  g_free(data);
}

/* The plugin's history writer for `config` (a new one when the URI
 * changed on reload). */
static DmarcHistory *dmarc_plugin_history(PstPlugin *plugin,
                                          const DmarcConfig *config) {
  DmarcPluginData *data = pst_plugin_get_data(plugin);
  if (data == NULL) {
    data = g_new0(DmarcPluginData, 1);
    pst_plugin_set_data(plugin, data, dmarc_plugin_data_free);
  }
  if (g_strcmp0(data->history_uri, config->history) != 0) {
    if (data->history != NULL)
      dmarc_history_unref(data->history);
    data->history = config->history[0] != '\0'
                        ? dmarc_history_new(config->history, plugin)
                        : NULL;
    g_free(data->history_uri);
    data->history_uri = g_strdup(config->history);
  }
  return data->history;
}

static gboolean dmarc_init(PstPlugin *plugin, GKeyFile *keyfile,
                           const char *group, GError **error) {
  DmarcConfig *config = dmarc_config_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  DmarcHookData *hook = g_new0(DmarcHookData, 1);
  hook->config = config;
  DmarcHistory *history = dmarc_plugin_history(plugin, config);
  hook->history = history != NULL ? dmarc_history_ref(history) : NULL;
  hook->cache = dmarc_cache_new(DMARC_CACHE_MAX_ENTRIES);
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, DMARC_PRIORITY, dmarc_eom,
                           hook, (GDestroyNotify)dmarc_hook_data_free);
  pst_plugin_log(
      plugin, G_LOG_LEVEL_INFO, "enforce %s, quarantine %s, history %s",
      config->enforce ? "yes" : "no",
      config->quarantine == DMARC_QUARANTINE_HOLD ? "hold" : "header",
      config->history[0] != '\0' ? config->history : "off");
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("dmarc", "1.0",
                        "DMARC (RFC 9989 tree walk) with aggregate reports "
                        "(RFC 9990): auth.dmarc",
                        dmarc_init, NULL, dmarc_init);
