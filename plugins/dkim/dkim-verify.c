/* dkim-verify.c - verifying every DKIM-Signature of an incoming message
 * with our verifier (dkim-verifier.c).
 *
 * dkim_verify_call() runs at EOM on the main thread: it gives the header
 * fields to a DkimVerifying, which parses the first `max_signatures`
 * DKIM-Signature fields (the rest are counted and logged).  Each parsed
 * signature with a valid d= and s= needs the key record of
 * s._domainkey.d: from the configuration's key cache when a fresh answer
 * is there, else through the core's resolver (pst_dns_lookup(),
 * asynchronous; one lookup per name and message).  An answer is parsed
 * (dkim_record_parse()) and its key decoded once, on the main thread, and
 * kept in the cache for its TTL (at most an hour, 10,000 names; a
 * configuration has its own cache, so a reload starts empty).  No thread
 * waits for DNS: fifty messages waiting on a silent name server cost
 * fifty small structures.  When the last answer is in, the job goes to
 * the pool.
 *
 * The worker streams the body from the spool in 64 KiB pieces (memory
 * does not grow with the message), verifies, and walks the signatures:
 * each gets one auth.dkim entry (pst_result_append, the transaction scope,
 * for DMARC and the Authentication-Results field) with the result
 * dkim_check_decide() gives.  Only names that pass
 * dkim_domain_is_valid()/dkim_selector_is_valid() and base64 from b= reach
 * the entry.  A message without signatures gets one entry "none".
 *
 * Ownership: the job owns the DkimVerifying, a reference to the config
 * and to each key answer; it is freed by whoever completes the call (the
 * last DNS callback when the call was cancelled, else the worker).  Key
 * answers are reference-counted: the cache and jobs share them, and they
 * do not change once answered.
 */
#include <string.h>

#include "dkim.h"

#define DKIM_SIGNHEADER "DKIM-Signature"
#define DKIM_CACHE_TTL_MAX 3600 /* seconds a key answer is kept at most */
#define DKIM_CACHE_NAMES_MAX 10000

typedef struct {
  DkimLookup status;
  char *problem;       /* owned, nullable: why MALFORMED or TEMPFAIL */
  DkimKeyType type;    /* k=, when FOUND or REVOKED */
  DkimPublicKey *key;  /* owned, when FOUND */
  gboolean done;
} DkimKeyAnswer;

static void dkim_key_answer_clear(DkimKeyAnswer *answer) {
  g_free(answer->problem);
  g_clear_pointer(&answer->key, dkim_public_key_unref);
}

static DkimKeyAnswer *dkim_key_answer_ref(DkimKeyAnswer *answer) {
  return g_atomic_rc_box_acquire(answer);
}

static void dkim_key_answer_unref(DkimKeyAnswer *answer) {
  g_atomic_rc_box_release_full(answer, (GDestroyNotify)dkim_key_answer_clear);
}

/* --- The key cache (main thread) ------------------------------------------ */

typedef struct {
  DkimKeyAnswer *answer; /* owned reference */
  gint64 expires;        /* g_get_monotonic_time() */
} DkimCacheEntry;

struct _DkimKeyCache {
  GHashTable *entries; /* owned: name -> DkimCacheEntry* */
};

static void dkim_cache_entry_free(DkimCacheEntry *entry) {
  dkim_key_answer_unref(entry->answer);
  g_free(entry);
}

DkimKeyCache *dkim_key_cache_new(void) {
  DkimKeyCache *cache = g_new0(DkimKeyCache, 1);
  cache->entries = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)dkim_cache_entry_free);
  return cache;
}

void dkim_key_cache_free(DkimKeyCache *cache) {
  if (cache == NULL)
    return;
  g_hash_table_unref(cache->entries);
  g_free(cache);
}

static gboolean dkim_cache_entry_expired(gpointer key, gpointer value,
                                         gpointer now) {
  (void)key;
  return ((DkimCacheEntry *)value)->expires <= *(gint64 *)now;
}

/* A fresh answer for `name`, or NULL. */
static DkimKeyAnswer *dkim_key_cache_get(DkimKeyCache *cache,
                                         const char *name) {
  DkimCacheEntry *entry = g_hash_table_lookup(cache->entries, name);
  if (entry == NULL)
    return NULL;
  if (entry->expires <= g_get_monotonic_time()) {
    g_hash_table_remove(cache->entries, name);
    return NULL;
  }
  return dkim_key_answer_ref(entry->answer);
}

static void dkim_key_cache_put(DkimKeyCache *cache, const char *name,
                               DkimKeyAnswer *answer, guint32 ttl) {
  gint64 now = g_get_monotonic_time();
  if (ttl == 0)
    return;
  if (g_hash_table_size(cache->entries) >= DKIM_CACHE_NAMES_MAX)
    g_hash_table_foreach_remove(cache->entries, dkim_cache_entry_expired, &now);
  if (g_hash_table_size(cache->entries) >= DKIM_CACHE_NAMES_MAX)
    g_hash_table_remove_all(cache->entries);
  DkimCacheEntry *entry = g_new0(DkimCacheEntry, 1);
  entry->answer = dkim_key_answer_ref(answer);
  entry->expires =
      now + (gint64)MIN(ttl, DKIM_CACHE_TTL_MAX) * G_USEC_PER_SEC;
  g_hash_table_replace(cache->entries, g_strdup(name), entry);
}

/* --- The job ---------------------------------------------------------------- */

typedef struct {
  DkimJobKind kind; /* DKIM_JOB_VERIFY: first, as every job's */
  PstCall *call;
  DkimConfig *config;        /* owned reference */
  GThreadPool *pool;         /* borrowed: the plugin's */
  GCancellable *cancellable; /* owned reference: the call's */
  DkimVerifying *verifying;  /* owned */
  guint total;               /* signatures in the message */
  GPtrArray *answers; /* owned: per parsed signature, DkimKeyAnswer* or NULL */
  guint pending;      /* lookups not answered yet */
} DkimVerifyJob;

static void dkim_verify_job_free(DkimVerifyJob *job) {
  dkim_verifying_free(job->verifying);
  g_ptr_array_unref(job->answers);
  g_object_unref(job->cancellable);
  dkim_config_unref(job->config);
  g_free(job);
}

static void dkim_verify_job_finish(DkimVerifyJob *job) {
  PstCall *call = job->call;
  dkim_verify_job_free(job);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
}

/* --- Key answers ---------------------------------------------------------- */

static void dkim_key_answer_problem(DkimKeyAnswer *answer, char *problem) {
  g_free(answer->problem);
  answer->problem = problem;
}

/* The key record among the TXT records of an answer, its key decoded. */
static void dkim_key_answer_fill(DkimKeyAnswer *answer, PstDnsResult *result) {
  guint count = pst_dns_result_get_count(result);
  for (guint i = 0; i < count; i++) {
    gsize length = 0;
    const char *text = pst_dns_result_get_txt(result, i, &length);
    g_auto(DkimRecord) record = {0};
    g_autoptr(GError) error = NULL;
    if (text == NULL || strlen(text) != length) {
      dkim_key_answer_problem(answer, g_strdup("NUL octet in the record"));
      continue;
    }
    if (!dkim_record_parse(text, &record, &error)) {
      if (answer->problem == NULL)
        answer->problem = g_strdup(error->message);
      continue;
    }
    answer->type = record.type;
    if (record.public_key[0] == '\0') {
      answer->status = DKIM_LOOKUP_REVOKED;
      return;
    }
    answer->key = dkim_public_key_new(&record, &error);
    if (answer->key == NULL) {
      dkim_key_answer_problem(answer, g_strdup(error->message));
      continue;
    }
    answer->status = DKIM_LOOKUP_FOUND;
    return;
  }
  answer->status = DKIM_LOOKUP_MALFORMED;
  if (answer->problem == NULL)
    answer->problem = g_strdup("no key record");
}

static void dkim_verify_resume(DkimVerifyJob *job);

typedef struct {
  DkimVerifyJob *job;
  DkimKeyAnswer *answer; /* owned reference */
} DkimLookupData;

static void dkim_key_answered(PstDnsResult *result, gpointer user_data) {
  g_autofree DkimLookupData *lookup = user_data;
  DkimKeyAnswer *answer = lookup->answer;
  DkimVerifyJob *job = lookup->job;
  gboolean cacheable = TRUE;
  switch (pst_dns_result_get_status(result)) {
  case PST_DNS_OK:
    dkim_key_answer_fill(answer, result);
    break;
  case PST_DNS_NXDOMAIN:
  case PST_DNS_NODATA:
    answer->status = DKIM_LOOKUP_NOT_FOUND;
    break;
  default:
    answer->status = DKIM_LOOKUP_TEMPFAIL;
    answer->problem = g_strdup(pst_dns_result_get_reason(result));
    cacheable = FALSE;
    break;
  }
  answer->done = TRUE;
  if (cacheable)
    dkim_key_cache_put(job->config->keys, pst_dns_result_get_name(result),
                       answer, pst_dns_result_get_ttl(result));
  dkim_key_answer_unref(answer);
  pst_dns_result_free(result);
  if (--job->pending == 0)
    dkim_verify_resume(job);
}

/* The answer for signature `index` (NULL: none needed), from this
 * message's lookups (`asked`: name -> owned reference), the cache, or a
 * new lookup. */
static DkimKeyAnswer *dkim_verify_key(DkimVerifyJob *job, guint index,
                                      GHashTable *asked) {
  const char *domain = NULL, *selector = NULL;
  if (!dkim_verifying_get_names(job->verifying, index, &domain, &selector) ||
      !dkim_domain_is_valid(domain) || !dkim_selector_is_valid(selector))
    return NULL;
  g_autofree char *name = g_strconcat(selector, "._domainkey.", domain, NULL);
  for (char *p = name; *p != '\0'; p++)
    *p = g_ascii_tolower(*p);
  DkimKeyAnswer *answer = g_hash_table_lookup(asked, name);
  if (answer == NULL) {
    answer = dkim_key_cache_get(job->config->keys, name);
    if (answer == NULL) {
      answer = g_atomic_rc_box_new0(DkimKeyAnswer);
      DkimLookupData *lookup = g_new0(DkimLookupData, 1);
      lookup->job = job;
      lookup->answer = dkim_key_answer_ref(answer);
      job->pending++;
      pst_dns_lookup(PST_DNS_TYPE_TXT, name, job->cancellable,
                     dkim_key_answered, lookup);
    }
    g_hash_table_insert(asked, g_steal_pointer(&name), answer); /* owns it */
  }
  return dkim_key_answer_ref(answer);
}

/* --- The results ---------------------------------------------------------- */

static void dkim_add_string(GVariantBuilder *builder, const char *key,
                            const char *value) {
  if (value != NULL)
    g_variant_builder_add(builder, "{sv}", key, g_variant_new_string(value));
}

static void dkim_check_fill(DkimVerifyJob *job, guint index,
                            DkimCheck *check) {
  const DkimKeyAnswer *answer = job->answers->pdata[index];
  dkim_verifying_check(job->verifying, index,
                       answer != NULL ? answer->key : NULL, check);
  check->lookup = answer != NULL ? answer->status : DKIM_LOOKUP_NONE;
  check->lookup_problem = answer != NULL ? answer->problem : NULL;
  check->key_type_known = answer != NULL && answer->status == DKIM_LOOKUP_FOUND;
  check->key_type = answer != NULL ? answer->type : DKIM_KEY_RSA;
  check->now = g_get_real_time() / G_USEC_PER_SEC;
  check->min_key_bits = job->config->min_key_bits;
  check->allow_rsa_sha1 = job->config->allow_rsa_sha1;
}

/* One signature's auth.dkim entry; logs it. */
static void dkim_report_signature(DkimVerifyJob *job, guint index) {
  DkimCheck check = {0};
  dkim_check_fill(job, index, &check);
  g_autofree char *reason = NULL;
  const char *result = dkim_check_decide(&check, &reason);
  const char *domain = NULL, *selector = NULL;
  (void)dkim_verifying_get_names(job->verifying, index, &domain, &selector);
  if (!dkim_domain_is_valid(domain))
    domain = NULL;
  if (!dkim_selector_is_valid(selector))
    selector = NULL;
  g_autofree char *b = dkim_verifying_get_b(job->verifying, index);
  g_autofree char *i =
      domain != NULL ? dkim_verifying_get_i(job->verifying, index) : NULL;
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  dkim_add_string(&builder, "result", result);
  dkim_add_string(&builder, "reason", reason);
  dkim_add_string(&builder, "header.d", domain);
  dkim_add_string(&builder, "header.i", i);
  dkim_add_string(&builder, "header.s", selector);
  dkim_add_string(&builder, "header.a", check.algorithm);
  dkim_add_string(&builder, "header.b", b);
  pst_result_append(job->call, PST_SCOPE_TRANSACTION, "auth.dkim",
                    g_variant_builder_end(&builder));
  pst_call_log(job->call, G_LOG_LEVEL_INFO, "dkim=%s d=%s s=%s a=%s (%s)",
               result, domain != NULL ? domain : "(invalid)",
               selector != NULL ? selector : "(invalid)",
               check.algorithm != NULL ? check.algorithm : "(unknown)",
               reason);
}

static void dkim_report_none(PstCall *call, const char *reason) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  dkim_add_string(&builder, "result", "none");
  dkim_add_string(&builder, "reason", reason);
  pst_result_append(call, PST_SCOPE_TRANSACTION, "auth.dkim",
                    g_variant_builder_end(&builder));
}

/* --- The worker ----------------------------------------------------------- */

static gboolean dkim_verify_body(const guint8 *chunk, gsize length,
                                 gpointer data) {
  DkimVerifyJob *job = data;
  dkim_verifying_add_body(job->verifying, chunk, length);
  return !g_cancellable_is_cancelled(job->cancellable);
}

void dkim_verify_job_run(gpointer data) {
  DkimVerifyJob *job = data;
  if (g_cancellable_is_cancelled(job->cancellable)) {
    dkim_verify_job_finish(job);
    return;
  }
  g_autoptr(GError) error = NULL;
  if (!dkim_feed_body(pst_call_get_message(job->call), dkim_verify_body, job,
                      &error)) {
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "not verified: cannot read the body: %s", error->message);
    dkim_report_none(job->call, "body unreadable");
    dkim_verify_job_finish(job);
    return;
  }
  dkim_verifying_finish_body(job->verifying);
  guint count = dkim_verifying_get_count(job->verifying);
  for (guint i = 0; i < count; i++)
    dkim_report_signature(job, i);
  if (job->total > count)
    pst_call_log(job->call, G_LOG_LEVEL_INFO,
                 "%u of %u signatures not verified (max_signatures = %u)",
                 job->total - count, job->total, job->config->max_signatures);
  if (count == 0)
    dkim_report_none(job->call, "no valid signature");
  dkim_verify_job_finish(job);
}

/* --- The main-thread part ------------------------------------------------- */

/* After the last key answer: the body, on the pool. */
static void dkim_verify_resume(DkimVerifyJob *job) {
  if (g_cancellable_is_cancelled(job->cancellable)) {
    dkim_verify_job_finish(job);
    return;
  }
  g_thread_pool_push(job->pool, job, NULL);
}

static void dkim_verify_header(const char *field, gsize length,
                               gpointer data) {
  dkim_verifying_add_header(data, field, length);
}

PstVerdict dkim_verify_call(GThreadPool *pool, PstCall *call,
                            DkimConfig *config) {
  PstMessage *message = pst_call_get_message(call);
  if (pst_message_get_header(message, DKIM_SIGNHEADER, 0) == NULL) {
    dkim_report_none(call, "no signature");
    return PST_VERDICT_CONTINUE;
  }
  DkimVerifyJob *job = g_new0(DkimVerifyJob, 1);
  job->kind = DKIM_JOB_VERIFY;
  job->call = call;
  job->config = dkim_config_ref(config);
  job->pool = pool;
  job->cancellable = g_object_ref(pst_call_get_cancellable(call));
  job->verifying = dkim_verifying_new();
  job->answers =
      g_ptr_array_new_with_free_func((GDestroyNotify)dkim_key_answer_unref);
  dkim_feed_headers(message, dkim_verify_header, job->verifying);
  job->total =
      dkim_verifying_parse_signatures(job->verifying, config->max_signatures);
  g_autoptr(GHashTable) asked = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)dkim_key_answer_unref);
  guint count = dkim_verifying_get_count(job->verifying);
  for (guint i = 0; i < count; i++)
    g_ptr_array_add(job->answers, dkim_verify_key(job, i, asked));
  /* Lookups in flight: the last answer resumes (never from inside
   * pst_dns_lookup(), so not before this returns); every key from the
   * cache: to the pool now (a completion before we return PENDING is
   * taken when we do). */
  if (job->pending == 0)
    dkim_verify_resume(job);
  return PST_VERDICT_PENDING;
}
