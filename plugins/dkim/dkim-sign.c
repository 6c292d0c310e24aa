/* dkim-sign.c - signing: one job per message on the plugin's pool, and the
 * signer of the mail the daemon writes itself.
 *
 * dkim_sign_call() runs at EOM in the action band, after every other
 * header edit.  The worker gives our signer (dkim-signer.c) the header
 * fields exactly as the core will store them ("Name: value", see
 * pst_message_render_headers), streams the body from the spool in 64 KiB
 * pieces (memory does not grow with the message, and RSA never runs on
 * the main loop; the body is hashed once for every key: dual signing),
 * makes one signature per selector of the domain (RSA and Ed25519) and
 * inserts the DKIM-Signature fields on top.  The Received: and
 * Authentication-Results: fields the core adds after EOM are outside the
 * signature by construction.  A key OpenSSL fails with leaves the message
 * unsigned by that key and is logged; signing never refuses mail.
 *
 * dkim_sign_local() signs a whole message held in memory (a DSN), on the
 * core's delivery worker, for the domain of [server] hostname.
 */
#include <string.h>

#include "dkim.h"

#define DKIM_BODY_CHUNK (64 * 1024)
#define DKIM_SIGNATURE_FIELD "DKIM-Signature"

typedef struct {
  DkimJobKind kind; /* DKIM_JOB_SIGN: first, as every job's */
  PstCall *call;
  DkimConfig *config;       /* owned reference */
  const DkimDomain *domain; /* borrowed from config */
} DkimSignJob;

/* One signature per key of `domain`, over what `signing` holds; the
 * values in key order, and the keys that failed in `problems`. */
static GPtrArray *dkim_sign_all(DkimSigning *signing, const DkimConfig *config,
                                const DkimDomain *domain, GString *problems) {
  GPtrArray *values = g_ptr_array_new_with_free_func(g_free);
  guint64 now = (guint64)(g_get_real_time() / G_USEC_PER_SEC);
  for (guint i = 0; i < domain->keys->len; i++) {
    const DkimKey *key = domain->keys->pdata[i];
    DkimSignSpec spec = {
        .key = key,
        .domain = domain->signing_domain,
        .header_canon = config->header_canon,
        .timestamp = now,
        .expire_seconds = config->expire_seconds,
        .headers = (const char *const *)config->headers,
        .oversign = (const char *const *)config->oversign,
    };
    g_autoptr(GError) error = NULL;
    char *value = dkim_signing_sign(signing, &spec, &error);
    if (value != NULL)
      g_ptr_array_add(values, value);
    else
      g_string_append_printf(problems, "%s%s: %s", problems->len ? "; " : "",
                             key->selector, error->message);
  }
  return values;
}

/* --- The message at EOM -----------------------------------------------------
 */

void dkim_feed_headers(PstMessage *message, DkimFeedHeader feed,
                       gpointer data) {
  guint count = pst_message_get_header_count(message);
  g_autoptr(GString) field = g_string_new(NULL);
  for (guint i = 0; i < count; i++) {
    g_string_assign(field, pst_message_get_header_name(message, i));
    g_string_append(field, ": ");
    g_string_append(field, pst_message_get_header_value(message, i));
    feed(field->str, field->len, data);
  }
}

gboolean dkim_feed_body(PstMessage *message, DkimFeedBody feed, gpointer data,
                        GError **error) {
  g_autoptr(PstBodyReader) reader = pst_message_open_body(message, error);
  if (reader == NULL)
    return FALSE;
  g_autofree guint8 *buffer = g_malloc(DKIM_BODY_CHUNK);
  for (;;) {
    gssize got = pst_body_reader_read(reader, buffer, DKIM_BODY_CHUNK, error);
    if (got < 0)
      return FALSE;
    if (got == 0)
      return TRUE;
    if (!feed(buffer, (gsize)got, data))
      return TRUE;
  }
}

static void dkim_sign_header(const char *field, gsize length, gpointer data) {
  dkim_signing_add_header(data, field, length);
}

static gboolean dkim_sign_body(const guint8 *chunk, gsize length,
                               gpointer data) {
  dkim_signing_add_body(data, chunk, length);
  return TRUE;
}

static void dkim_sign_job_finish(DkimSignJob *job) {
  PstCall *call = job->call;
  dkim_config_unref(job->config);
  g_free(job);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
}

void dkim_sign_job_run(gpointer data) {
  DkimSignJob *job = data;
  PstMessage *message = pst_call_get_message(job->call);
  g_autoptr(DkimSigning) signing =
      dkim_signing_new(job->config->body_canon, job->config->sha256);
  dkim_feed_headers(message, dkim_sign_header, signing);
  g_autoptr(GError) error = NULL;
  if (!dkim_feed_body(message, dkim_sign_body, signing, &error)) {
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "not signed: cannot read the body: %s", error->message);
    dkim_sign_job_finish(job);
    return;
  }
  g_autoptr(GString) problems = g_string_new(NULL);
  g_autoptr(GPtrArray) values =
      dkim_sign_all(signing, job->config, job->domain, problems);
  for (guint i = values->len; i > 0; i--)
    if (!pst_message_insert_header(message, 0, DKIM_SIGNATURE_FIELD,
                                   values->pdata[i - 1]))
      g_string_append(problems, "; a signature field was refused");
  pst_call_log(job->call,
               problems->len > 0 ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
               "signed d=%s with %u of %u selectors%s%s",
               job->domain->signing_domain, values->len, job->domain->keys->len,
               problems->len > 0 ? ": " : "", problems->str);
  dkim_sign_job_finish(job);
}

void dkim_sign_call(GThreadPool *pool, PstCall *call, DkimConfig *config,
                    const DkimDomain *domain) {
  DkimSignJob *job = g_new0(DkimSignJob, 1);
  job->kind = DKIM_JOB_SIGN;
  job->call = call;
  job->config = dkim_config_ref(config);
  job->domain = domain;
  g_thread_pool_push(pool, job, NULL);
}

/* --- Mail the daemon writes -------------------------------------------------
 */

char *dkim_sign_local(PstPlugin *plugin, DkimConfig *config,
                      const DkimDomain *domain, GBytes *message) {
  g_autoptr(DkimSigning) signing =
      dkim_signing_new(config->body_canon, config->sha256);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(message, &length);
  dkim_signing_add_message(signing, data, length);
  g_autoptr(GString) problems = g_string_new(NULL);
  g_autoptr(GPtrArray) values =
      dkim_sign_all(signing, config, domain, problems);
  if (problems->len > 0)
    pst_plugin_log(plugin, G_LOG_LEVEL_WARNING, "own message for d=%s: %s",
                   domain->signing_domain, problems->str);
  if (values->len == 0)
    return NULL;
  GString *fields = g_string_new(NULL);
  for (guint i = 0; i < values->len; i++)
    g_string_append_printf(fields, DKIM_SIGNATURE_FIELD ": %s\r\n",
                           (const char *)values->pdata[i]);
  return g_string_free(fields, FALSE);
}
