/* dkim-verify.c - verifying every DKIM-Signature of an incoming message.
 *
 * dkim_verify_call() runs at EOM on the main thread: it feeds the header
 * fields to a libopendkim handle and calls dkim_eoh().  The library calls
 * the prescreen callback with every signature: past `max_signatures` they
 * are ignored, the others get their key record looked up through the
 * core's resolver (pst_dns_lookup(), asynchronous).  The key-lookup
 * callback answers DKIM_CBSTAT_TRYAGAIN while an answer is missing, so
 * dkim_eoh() returns DKIM_STAT_CBTRYAGAIN; when the last answer is in, the
 * DNS callback calls dkim_eoh() again (the library resumes) and hands the
 * job to the pool.  No thread waits for DNS: fifty messages waiting on a
 * silent name server cost fifty small structures, not fifty threads.
 *
 * The worker streams the body from the spool, calls dkim_eom(), and walks
 * the signatures: each gets one auth.dkim entry (pst_result_append, the
 * transaction scope, for DMARC and the Authentication-Results field) with
 * the result dkim_check_decide() gives.  Only names that pass
 * dkim_domain_is_valid()/dkim_selector_is_valid() and base64 from b= reach
 * the entry.  A message without signatures gets one entry "none".
 *
 * Ownership: the job owns the handle and a reference to the config; it is
 * freed by whoever completes the call (the last DNS callback when the call
 * was cancelled, else the worker).
 */
#include <stdbool.h>
#include <string.h>

#include <opendkim/dkim.h>

#include "dkim.h"

/* A key record's TXT as the library's callback buffer takes it. */
#define DKIM_KEY_TEXT_MAX 1024

typedef struct {
  DkimLookup status;
  char *text;    /* owned, nullable: the record, when FOUND or REVOKED */
  char *problem; /* owned, nullable: why MALFORMED */
  DkimKeyType type; /* k=, when FOUND or REVOKED */
  gboolean done;
} DkimKeyAnswer;

typedef struct {
  DkimJobKind kind; /* DKIM_JOB_VERIFY: first, as every job's */
  PstCall *call;
  DkimConfig *config; /* owned reference */
  GThreadPool *pool;  /* borrowed: the plugin's */
  GCancellable *cancellable; /* owned reference: the call's */
  DKIM *dkim;                /* owned */
  GHashTable *answers; /* owned: "s._domainkey.d" -> DkimKeyAnswer* */
  guint pending;       /* lookups not answered yet */
  gboolean prescreened;
  gboolean waiting; /* dkim_eoh() said "try again": call it again */
} DkimVerifyJob;

static void dkim_key_answer_free(DkimKeyAnswer *answer) {
  g_free(answer->text);
  g_free(answer->problem);
  g_free(answer);
}

static void dkim_verify_job_free(DkimVerifyJob *job) {
  if (job->dkim != NULL)
    dkim_free(job->dkim);
  g_hash_table_unref(job->answers);
  g_object_unref(job->cancellable);
  dkim_config_unref(job->config);
  g_free(job);
}

static void dkim_verify_job_finish(DkimVerifyJob *job) {
  PstCall *call = job->call;
  dkim_verify_job_free(job);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
}

/* "SELECTOR._domainkey.DOMAIN" for a signature, or NULL when its names
 * cannot be looked up. */
static char *dkim_key_name(DKIM_SIGINFO *sig) {
  const char *domain = (const char *)dkim_sig_getdomain(sig);
  const char *selector = (const char *)dkim_sig_getselector(sig);
  if (!dkim_domain_is_valid(domain) || !dkim_selector_is_valid(selector))
    return NULL;
  return g_strconcat(selector, "._domainkey.", domain, NULL);
}

/* --- Key answers ---------------------------------------------------------- */

/* The key record among the TXT records of an answer. */
static void dkim_key_answer_fill(DkimKeyAnswer *answer, PstDnsResult *result) {
  guint count = pst_dns_result_get_count(result);
  for (guint i = 0; i < count; i++) {
    gsize length = 0;
    const char *text = pst_dns_result_get_txt(result, i, &length);
    g_auto(DkimRecord) record = {0};
    g_autoptr(GError) error = NULL;
    if (text == NULL || strlen(text) != length) {
      g_clear_pointer(&answer->problem, g_free);
      answer->problem = g_strdup("NUL octet in the record");
      continue;
    }
    if (!dkim_record_parse(text, &record, &error)) {
      if (answer->problem == NULL)
        answer->problem = g_strdup(error->message);
      continue;
    }
    if (length > DKIM_KEY_TEXT_MAX) {
      g_clear_pointer(&answer->problem, g_free);
      answer->problem = g_strdup_printf("record of %" G_GSIZE_FORMAT
                                        " octets is too long",
                                        length);
      continue;
    }
    answer->status = record.public_key[0] == '\0' ? DKIM_LOOKUP_REVOKED
                                                  : DKIM_LOOKUP_FOUND;
    answer->type = record.type;
    answer->text = g_strdup(text);
    return;
  }
  answer->status = DKIM_LOOKUP_MALFORMED;
  if (answer->problem == NULL)
    answer->problem = g_strdup("no key record");
}

static void dkim_verify_resume(DkimVerifyJob *job);

typedef struct {
  DkimVerifyJob *job;
  DkimKeyAnswer *answer;
} DkimLookupData;

static void dkim_key_answered(PstDnsResult *result, gpointer user_data) {
  g_autofree DkimLookupData *lookup = user_data;
  DkimKeyAnswer *answer = lookup->answer;
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
    break;
  }
  answer->done = TRUE;
  pst_dns_result_free(result);
  DkimVerifyJob *job = lookup->job;
  if (--job->pending == 0)
    dkim_verify_resume(job);
}

/* --- libopendkim's callbacks ---------------------------------------------- */

static DKIM_CBSTAT dkim_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int count) {
  DkimVerifyJob *job = dkim_get_user_context(dkim);
  if (job == NULL || job->prescreened)
    return DKIM_CBSTAT_CONTINUE;
  job->prescreened = TRUE;
  for (int i = 0; i < count; i++) {
    if ((guint)i >= job->config->max_signatures) {
      dkim_sig_ignore(sigs[i]);
      continue;
    }
    g_autofree char *name = dkim_key_name(sigs[i]);
    if (name == NULL || g_hash_table_contains(job->answers, name))
      continue;
    DkimKeyAnswer *answer = g_new0(DkimKeyAnswer, 1);
    g_hash_table_insert(job->answers, g_strdup(name), answer);
    DkimLookupData *lookup = g_new0(DkimLookupData, 1);
    lookup->job = job;
    lookup->answer = answer;
    job->pending++;
    pst_dns_lookup(PST_DNS_TYPE_TXT, name, job->cancellable,
                   dkim_key_answered, lookup);
  }
  return DKIM_CBSTAT_CONTINUE;
}

static DKIM_CBSTAT dkim_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig,
                                   unsigned char *buffer, size_t size) {
  DkimVerifyJob *job = dkim_get_user_context(dkim);
  g_autofree char *name = dkim_key_name(sig);
  DkimKeyAnswer *answer =
      job != NULL && name != NULL ? g_hash_table_lookup(job->answers, name)
                                  : NULL;
  if (answer == NULL)
    return DKIM_CBSTAT_NOTFOUND;
  if (!answer->done)
    return DKIM_CBSTAT_TRYAGAIN;
  switch (answer->status) {
  case DKIM_LOOKUP_FOUND:
  case DKIM_LOOKUP_REVOKED:
    if (strlen(answer->text) >= size)
      return DKIM_CBSTAT_ERROR;
    memcpy(buffer, answer->text, strlen(answer->text) + 1);
    return DKIM_CBSTAT_CONTINUE;
  case DKIM_LOOKUP_NOT_FOUND:
    return DKIM_CBSTAT_NOTFOUND;
  default:
    return DKIM_CBSTAT_ERROR;
  }
}

void dkim_verify_install_callbacks(void *library) {
  dkim_set_prescreen(library, dkim_prescreen);
  dkim_set_key_lookup(library, dkim_key_lookup);
}

/* --- The results ---------------------------------------------------------- */

static const char *dkim_algorithm_name(DKIM_SIGINFO *sig) {
  dkim_alg_t algorithm = -1;
  if (dkim_sig_getsignalg(sig, &algorithm) != DKIM_STAT_OK)
    return NULL;
  switch (algorithm) {
  case DKIM_SIGN_RSASHA1:
    return "rsa-sha1";
  case DKIM_SIGN_RSASHA256:
    return "rsa-sha256";
  case DKIM_SIGN_ED25519SHA256:
    return "ed25519-sha256";
  default:
    return NULL;
  }
}

/* The first 8 characters of b=, when they are base64 (RFC 6008). */
static char *dkim_header_b(DKIM *dkim, DKIM_SIGINFO *sig) {
  char text[64] = {0};
  size_t length = sizeof text - 1;
  if (dkim_get_sigsubstring(dkim, sig, text, &length) != DKIM_STAT_OK)
    return NULL;
  text[MIN(length, 8)] = '\0';
  for (const char *p = text; *p != '\0'; p++)
    if (!(g_ascii_isalnum(*p) || *p == '+' || *p == '/'))
      return NULL;
  return text[0] != '\0' ? g_strdup(text) : NULL;
}

/* i=, when it is local@domain with a valid domain and no character that
 * could end a value in Authentication-Results. */
static char *dkim_header_i(DKIM *dkim, DKIM_SIGINFO *sig) {
  char text[256] = {0};
  if (dkim_sig_getidentity(dkim, sig, (unsigned char *)text, sizeof text) !=
      DKIM_STAT_OK)
    return NULL;
  const char *at = strrchr(text, '@');
  if (at == NULL || !dkim_domain_is_valid(at + 1))
    return NULL;
  for (const char *p = text; p < at; p++)
    if (!g_ascii_isalnum(*p) && strchr(".!#$%&'*+/=?^_`{|}~-", *p) == NULL)
      return NULL;
  return g_strdup(text);
}

/* A t= or x= tag as seconds, -1 when absent or not a number. */
static gint64 dkim_sig_time_tag(DKIM_SIGINFO *sig, const char *tag) {
  const char *value =
      (const char *)dkim_sig_gettagvalue(sig, false, (unsigned char *)tag);
  guint64 seconds = 0;
  if (value == NULL ||
      !g_ascii_string_to_unsigned(value, 10, 0, G_MAXINT64, &seconds, NULL))
    return -1;
  return (gint64)seconds;
}

static void dkim_check_fill(DkimVerifyJob *job, DKIM_SIGINFO *sig,
                            DkimCheck *check) {
  DkimConfig *config = job->config;
  check->domain = (const char *)dkim_sig_getdomain(sig);
  check->algorithm = dkim_algorithm_name(sig);
  g_autofree char *name = dkim_key_name(sig);
  DkimKeyAnswer *answer =
      name != NULL ? g_hash_table_lookup(job->answers, name) : NULL;
  check->lookup = answer != NULL ? answer->status : DKIM_LOOKUP_NONE;
  check->lookup_problem = answer != NULL ? answer->problem : NULL;
  check->key_type_known = answer != NULL &&
                          answer->status == DKIM_LOOKUP_FOUND;
  check->key_type = answer != NULL ? answer->type : DKIM_KEY_RSA;
  check->library_error = dkim_sig_geterror(sig);
  check->library_text = dkim_sig_geterrorstr(check->library_error);
  check->passed = DKIM_SIG_CHECK(sig);
  check->body_mismatch = dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH;
  check->ed25519 = check->algorithm != NULL &&
                   g_str_equal(check->algorithm, "ed25519-sha256");
  unsigned int bits = 0;
  if (dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK)
    check->key_bits = bits;
  ssize_t message_length = -1, canon_length = -1, signed_length = -1;
  if (dkim_sig_getcanonlen(job->dkim, sig, &message_length, &canon_length,
                           &signed_length) == DKIM_STAT_OK) {
    /* The body as received: l= below it leaves octets unsigned (simple
     * canonicalisation's trailing empty lines count as such). */
    check->signed_length = signed_length;
    check->body_length = message_length;
  } else {
    check->signed_length = check->body_length = -1;
  }
  check->signed_at = dkim_sig_time_tag(sig, "t");
  check->expires_at = dkim_sig_time_tag(sig, "x");
  check->now = g_get_real_time() / G_USEC_PER_SEC;
  check->min_key_bits = config->min_key_bits;
  check->allow_rsa_sha1 = config->allow_rsa_sha1;
}

static void dkim_add_string(GVariantBuilder *builder, const char *key,
                            const char *value) {
  if (value != NULL)
    g_variant_builder_add(builder, "{sv}", key, g_variant_new_string(value));
}

/* One signature's auth.dkim entry; logs it. */
static void dkim_report_signature(DkimVerifyJob *job, DKIM_SIGINFO *sig) {
  DkimCheck check = {0};
  dkim_check_fill(job, sig, &check);
  g_autofree char *reason = NULL;
  const char *result = dkim_check_decide(&check, &reason);
  const char *domain =
      dkim_domain_is_valid(check.domain) ? check.domain : NULL;
  const char *selector = (const char *)dkim_sig_getselector(sig);
  if (!dkim_selector_is_valid(selector))
    selector = NULL;
  g_autofree char *b = dkim_header_b(job->dkim, sig);
  g_autofree char *i = domain != NULL ? dkim_header_i(job->dkim, sig) : NULL;
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

static void dkim_report_none(DkimVerifyJob *job, const char *reason) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  dkim_add_string(&builder, "result", "none");
  dkim_add_string(&builder, "reason", reason);
  pst_result_append(job->call, PST_SCOPE_TRANSACTION, "auth.dkim",
                    g_variant_builder_end(&builder));
}

/* --- The worker ----------------------------------------------------------- */

static gboolean dkim_verify_body(const guint8 *chunk, gsize length,
                                 gpointer data) {
  DkimVerifyJob *job = data;
  DKIM_STAT status = dkim_body(job->dkim, (unsigned char *)chunk, length);
  return status == DKIM_STAT_OK &&
         !g_cancellable_is_cancelled(job->cancellable);
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
    dkim_report_none(job, "body unreadable");
    dkim_verify_job_finish(job);
    return;
  }
  bool testing = false;
  dkim_eom(job->dkim, &testing);
  DKIM_SIGINFO **sigs = NULL;
  int count = 0;
  if (dkim_getsiglist(job->dkim, &sigs, &count) != DKIM_STAT_OK)
    count = 0;
  guint reported = 0;
  for (int i = 0; i < count; i++) {
    if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
      continue;
    dkim_report_signature(job, sigs[i]);
    reported++;
  }
  if ((guint)count > reported)
    pst_call_log(job->call, G_LOG_LEVEL_INFO,
                 "%u of %d signatures not verified (max_signatures = %u)",
                 (guint)count - reported, count, job->config->max_signatures);
  if (reported == 0)
    dkim_report_none(job, "no valid signature");
  dkim_verify_job_finish(job);
}

/* --- The main-thread part ------------------------------------------------- */

/* After the last key answer: the library resumes, then the body. */
static void dkim_verify_resume(DkimVerifyJob *job) {
  if (g_cancellable_is_cancelled(job->cancellable)) {
    dkim_verify_job_finish(job);
    return;
  }
  if (job->waiting && dkim_eoh(job->dkim) == DKIM_STAT_CBTRYAGAIN)
    /* Every lookup is answered: the library asked for a key nobody looked
     * up.  Its signature ends without a key (logged with its result). */
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "libopendkim still waits for a key after every answer");
  g_thread_pool_push(job->pool, job, NULL);
}

static void dkim_verify_header(const char *field, gsize length,
                               gpointer data) {
  DkimVerifyJob *job = data;
  dkim_header(job->dkim, (unsigned char *)field, length);
}

PstVerdict dkim_verify_call(GThreadPool *pool, PstCall *call,
                            DkimConfig *config) {
  PstMessage *message = pst_call_get_message(call);
  if (pst_message_get_header(message, DKIM_SIGNHEADER, 0) == NULL) {
    GVariantBuilder builder;
    g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
    dkim_add_string(&builder, "result", "none");
    dkim_add_string(&builder, "reason", "no signature");
    pst_result_append(call, PST_SCOPE_TRANSACTION, "auth.dkim",
                      g_variant_builder_end(&builder));
    return PST_VERDICT_CONTINUE;
  }
  DkimVerifyJob *job = g_new0(DkimVerifyJob, 1);
  job->kind = DKIM_JOB_VERIFY;
  job->call = call;
  job->config = dkim_config_ref(config);
  job->pool = pool;
  job->cancellable = g_object_ref(pst_call_get_cancellable(call));
  job->answers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)dkim_key_answer_free);
  DKIM_STAT status = DKIM_STAT_OK;
  job->dkim = dkim_verify(config->library,
                          (const unsigned char *)pst_message_get_id(message),
                          NULL, &status);
  if (job->dkim == NULL) {
    pst_call_log(call, G_LOG_LEVEL_WARNING, "libopendkim: %s",
                 dkim_getresultstr(status));
    dkim_verify_job_free(job);
    return PST_VERDICT_CONTINUE;
  }
  dkim_set_user_context(job->dkim, job);
  dkim_feed_headers(message, dkim_verify_header, job);
  job->waiting = dkim_eoh(job->dkim) == DKIM_STAT_CBTRYAGAIN;
  /* Lookups in flight: the last answer resumes (never from inside
   * pst_dns_lookup(), so not before this returns). */
  if (job->pending == 0)
    dkim_verify_resume(job);
  return PST_VERDICT_PENDING;
}
