/* dkim-sign.c - signing: one job per message on the plugin's pool, and the
 * signer of the mail the daemon writes itself.
 *
 * dkim_sign_call() runs at EOM in the action band, after every other
 * header edit.  The worker feeds the header fields exactly as the core
 * will store them ("Name: value", see pst_message_render_headers) to one
 * libopendkim handle per selector (dual signing: RSA and Ed25519), streams
 * the body from the spool in 64 KiB pieces to all of them (memory does not
 * grow with the message, and RSA never runs on the main loop), and
 * inserts the DKIM-Signature fields on top.  The Received: and
 * Authentication-Results: fields the core adds after EOM are outside the
 * signature by construction.  A key the library refuses leaves the message
 * unsigned by that key and is logged; signing never refuses mail.
 *
 * dkim_sign_local() signs a whole message held in memory (a DSN), on the
 * core's delivery worker, for the domain of [server] hostname.
 */
#include <string.h>

#include <opendkim/dkim.h>

#include "dkim.h"

#define DKIM_BODY_CHUNK (64 * 1024)

typedef struct {
  DkimJobKind kind; /* DKIM_JOB_SIGN: first, as every job's */
  PstCall *call;
  DkimConfig *config;       /* owned reference */
  const DkimDomain *domain; /* borrowed from config */
} DkimSignJob;

/* One handle per key of the domain; an entry is NULL once its key failed
 * (the reason is in `problems`). */
typedef struct {
  const DkimDomain *domain; /* borrowed */
  DKIM **handles;           /* owned: domain->keys->len entries */
  guint count;
  GString *problems; /* owned: "selector: reason; ..." */
} DkimSigners;

typedef enum {
  DKIM_STEP_HEADER,
  DKIM_STEP_EOH,
  DKIM_STEP_BODY,
  DKIM_STEP_CHUNK,
  DKIM_STEP_EOM,
} DkimStep;

static void dkim_signers_clear(DkimSigners *signers) {
  for (guint i = 0; i < signers->count; i++)
    if (signers->handles[i] != NULL)
      dkim_free(signers->handles[i]);
  g_clear_pointer(&signers->handles, g_free);
  if (signers->problems != NULL)
    g_string_free(signers->problems, TRUE);
  signers->problems = NULL;
}

static void dkim_signers_note(DkimSigners *signers, guint index,
                              DKIM_STAT status) {
  const DkimKey *key = signers->domain->keys->pdata[index];
  g_string_append_printf(signers->problems, "%s%s: %s",
                         signers->problems->len > 0 ? "; " : "",
                         key->selector, dkim_getresultstr(status));
}

static void dkim_signers_open(DkimSigners *signers, DkimConfig *config,
                              const DkimDomain *domain, const char *id) {
  signers->domain = domain;
  signers->count = domain->keys->len;
  signers->handles = g_new0(DKIM *, signers->count);
  signers->problems = g_string_new(NULL);
  dkim_canon_t header = config->header_canon == DKIM_CANON_RELAXED_
                            ? DKIM_CANON_RELAXED
                            : DKIM_CANON_SIMPLE;
  dkim_canon_t body = config->body_canon == DKIM_CANON_RELAXED_
                          ? DKIM_CANON_RELAXED
                          : DKIM_CANON_SIMPLE;
  for (guint i = 0; i < signers->count; i++) {
    const DkimKey *key = domain->keys->pdata[i];
    DKIM_STAT status = DKIM_STAT_OK;
    /* libopendkim 2.11's Ed25519 signatures over simple-canonicalised
     * headers verify nowhere else (dkimpy, tested): relaxed for those. */
    dkim_canon_t key_header =
        key->type == DKIM_KEY_ED25519 ? DKIM_CANON_RELAXED : header;
    signers->handles[i] = dkim_sign(
        config->library, (const unsigned char *)id, NULL,
        (dkim_sigkey_t)key->pem, (const unsigned char *)key->selector,
        (const unsigned char *)domain->signing_domain, key_header, body,
        key->type == DKIM_KEY_ED25519 ? DKIM_SIGN_ED25519SHA256
                                      : DKIM_SIGN_RSASHA256,
        -1, &status);
    if (signers->handles[i] == NULL)
      dkim_signers_note(signers, i, status);
  }
}

/* One step on every live handle; a handle that fails is dropped. */
static void dkim_signers_step(DkimSigners *signers, DkimStep step,
                              const void *data, gsize length) {
  for (guint i = 0; i < signers->count; i++) {
    DKIM *dkim = signers->handles[i];
    if (dkim == NULL)
      continue;
    unsigned char *bytes = (unsigned char *)data;
    DKIM_STAT status = DKIM_STAT_OK;
    switch (step) {
    case DKIM_STEP_HEADER:
      status = dkim_header(dkim, bytes, length);
      break;
    case DKIM_STEP_EOH:
      status = dkim_eoh(dkim);
      break;
    case DKIM_STEP_BODY:
      status = dkim_body(dkim, bytes, length);
      break;
    case DKIM_STEP_CHUNK:
      status = dkim_chunk(dkim, bytes, length);
      break;
    case DKIM_STEP_EOM:
      status = dkim_eom(dkim, NULL);
      break;
    }
    if (status != DKIM_STAT_OK) {
      dkim_signers_note(signers, i, status);
      dkim_free(dkim);
      signers->handles[i] = NULL;
    }
  }
}

/* Every live handle's signature as a "DKIM-Signature" value (folded with
 * CRLF TAB by the library). */
static GPtrArray *dkim_signers_values(DkimSigners *signers) {
  GPtrArray *values = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < signers->count; i++) {
    DKIM *dkim = signers->handles[i];
    unsigned char *text = NULL;
    size_t length = 0;
    if (dkim == NULL)
      continue;
    DKIM_STAT status = dkim_getsighdr_d(dkim, strlen(DKIM_SIGNHEADER ": "),
                                        &text, &length);
    if (status == DKIM_STAT_OK)
      g_ptr_array_add(values, g_strndup((const char *)text, length));
    else
      dkim_signers_note(signers, i, status);
  }
  return values;
}

/* --- The message at EOM ----------------------------------------------------- */

void dkim_feed_headers(PstMessage *message, DkimFeedHeader feed,
                       gpointer data) {
  guint count = pst_message_get_header_count(message);
  g_autoptr(GString) field = g_string_new(NULL);
  for (guint i = 0; i < count; i++) {
    g_string_printf(field, "%s: %s", pst_message_get_header_name(message, i),
                    pst_message_get_header_value(message, i));
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
  dkim_signers_step(data, DKIM_STEP_HEADER, field, length);
}

static gboolean dkim_sign_body(const guint8 *chunk, gsize length,
                               gpointer data) {
  dkim_signers_step(data, DKIM_STEP_BODY, chunk, length);
  return TRUE;
}

static void dkim_sign_job_free(DkimSignJob *job) {
  dkim_config_unref(job->config);
  g_free(job);
}

void dkim_sign_job_run(gpointer data) {
  DkimSignJob *job = data;
  PstMessage *message = pst_call_get_message(job->call);
  DkimSigners signers = {0};
  dkim_signers_open(&signers, job->config, job->domain,
                    pst_message_get_id(message));
  dkim_feed_headers(message, dkim_sign_header, &signers);
  dkim_signers_step(&signers, DKIM_STEP_EOH, NULL, 0);
  g_autoptr(GError) error = NULL;
  if (!dkim_feed_body(message, dkim_sign_body, &signers, &error)) {
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "not signed: cannot read the body: %s", error->message);
    dkim_signers_clear(&signers);
    PstCall *call = job->call;
    dkim_sign_job_free(job);
    pst_call_complete(call, PST_VERDICT_CONTINUE);
    return;
  }
  dkim_signers_step(&signers, DKIM_STEP_EOM, NULL, 0);
  g_autoptr(GPtrArray) values = dkim_signers_values(&signers);
  for (guint i = values->len; i > 0; i--)
    if (!pst_message_insert_header(message, 0, DKIM_SIGNHEADER,
                                   values->pdata[i - 1]))
      g_string_append(signers.problems, "; a signature field was refused");
  pst_call_log(job->call,
               signers.problems->len > 0 ? G_LOG_LEVEL_WARNING
                                         : G_LOG_LEVEL_INFO,
               "signed d=%s with %u of %u selectors%s%s",
               job->domain->signing_domain, values->len, signers.count,
               signers.problems->len > 0 ? ": " : "",
               signers.problems->str);
  dkim_signers_clear(&signers);
  PstCall *call = job->call;
  dkim_sign_job_free(job);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
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

/* --- Mail the daemon writes ------------------------------------------------- */

char *dkim_sign_local(PstPlugin *plugin, DkimConfig *config,
                      const DkimDomain *domain, GBytes *message) {
  DkimSigners signers = {0};
  dkim_signers_open(&signers, config, domain, "local");
  gsize length = 0;
  const char *data = g_bytes_get_data(message, &length);
  dkim_signers_step(&signers, DKIM_STEP_CHUNK, data, length);
  dkim_signers_step(&signers, DKIM_STEP_CHUNK, NULL, 0);
  dkim_signers_step(&signers, DKIM_STEP_EOM, NULL, 0);
  g_autoptr(GPtrArray) values = dkim_signers_values(&signers);
  if (signers.problems->len > 0)
    pst_plugin_log(plugin, G_LOG_LEVEL_WARNING,
                   "own message for d=%s: %s", domain->signing_domain,
                   signers.problems->str);
  dkim_signers_clear(&signers);
  if (values->len == 0)
    return NULL;
  GString *fields = g_string_new(NULL);
  for (guint i = 0; i < values->len; i++)
    g_string_append_printf(fields, DKIM_SIGNHEADER ": %s\r\n",
                           (const char *)values->pdata[i]);
  return g_string_free(fields, FALSE);
}
