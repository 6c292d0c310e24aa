/* dkim.c - the DKIM plugin: signs outgoing mail, verifies incoming mail
 * (RFC 6376, RFC 8463 Ed25519, RFC 8301 policy) with our own signer and
 * verifier (dkim-signer.c, dkim-verifier.c) on OpenSSL.
 *
 * EOM, priority -450 (authentication checks, before DMARC): mail that is
 * not ours to sign is verified (dkim-verify.c); every signature gets its
 * auth.dkim entry, the verdict stays CONTINUE (DMARC decides).
 * EOM, priority 900 (the action band, after every other header edit):
 * mail ours to sign is signed (dkim-sign.c) with every selector of its
 * From: domain (or that domain's signing_domain).  Ours to sign means: the
 * client authenticated, or may relay (the relay plugin's internal
 * networks), or is the local `sendmail` entry (a loopback client); mail
 * from anyone else claiming one of our domains is verified, never signed.
 * The daemon's own mail (DSNs, delay notices) is signed through the signer
 * this plugin provides (pst_plugin_provide_signer) for the domain of
 * [server] hostname.
 *
 * Heavy work (body hashing, RSA) runs on the plugin's GThreadPool; key
 * lookups are asynchronous on the main loop.  init() and reload() read a
 * new DkimConfig (keys included): a reload that fails keeps the old one;
 * running jobs keep the configuration they started with.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "dkim.h"

#define DKIM_VERIFY_PRIORITY (-450)
#define DKIM_SIGN_PRIORITY 900
#define DKIM_WORKERS 4

typedef struct {
  GThreadPool *pool; /* owned */
  GThread *reniced[DKIM_WORKERS]; /* the pool's threads already reniced,
                                     claimed atomically, in any order */
  GMutex lock;
  DkimConfig *current; /* owned reference, under lock: the own-mail signer's */
  PstPlugin *plugin;
} DkimPlugin;

typedef struct {
  DkimConfig *config; /* owned reference */
  GThreadPool *pool;  /* borrowed from DkimPlugin */
} DkimHookData;

static void dkim_hook_data_free(DkimHookData *data) {
  dkim_config_unref(data->config);
  g_free(data);
}

/* The workers hash whole bodies: each runs at a nice value of its own
 * (per thread on Linux), below the thread of the daemon's main loop, so
 * that accepting and serving clients never waits for a CPU behind them. */
#define DKIM_WORKER_NICE 10

/* OpenSSL keeps per-thread state (its error queue, random generators)
 * that it frees when the thread exits, unless the process is already in
 * OPENSSL_cleanup() then (exit() with a pool thread still winding down:
 * LeakSanitizer saw the 904-octet error queue leak so).  Each job frees
 * it at its end instead: a few microseconds against a signature's 400. */
static void dkim_openssl_thread_done(void) {
  OPENSSL_thread_stop();
}

/* A worker's first job renices it; the plugin remembers which threads
 * are done (two system calls per job saved).  The pool is exclusive: its
 * threads live as long as it does, so a GThread seen once stays the same
 * thread.  No per-thread flag: a __thread variable of this dlopen()ed
 * module lives in dynamic TLS, and a thread still alive after the plugin
 * is unloaded keeps a DTV entry pointing into freed memory (LeakSanitizer's
 * scan at exit crashed on it); a static GPrivate's key would be lost with
 * the unloaded module. */
static void dkim_worker_renice(DkimPlugin *plugin) {
  GThread *self = g_thread_self();
  for (guint i = 0; i < DKIM_WORKERS; i++) {
    if (g_atomic_pointer_get(&plugin->reniced[i]) == self)
      return;
    if (g_atomic_pointer_compare_and_exchange(&plugin->reniced[i], NULL, self))
      break; /* a free slot, now ours */
  }
  if (setpriority(PRIO_PROCESS, (id_t)gettid(), DKIM_WORKER_NICE) < 0)
    g_debug("dkim: worker keeps its nice value: %s", g_strerror(errno));
}

void dkim_job_run(gpointer job, gpointer user_data) {
  dkim_worker_renice(user_data);
  if (*(DkimJobKind *)job == DKIM_JOB_SIGN)
    dkim_sign_job_run(job);
  else
    dkim_verify_job_run(job);
  dkim_openssl_thread_done();
}

/* --- Who is signed -------------------------------------------------------- */

static gboolean dkim_client_is_loopback(PstSession *session) {
  g_autoptr(GInetAddress) address =
      pst_session_get_client_inet_address(session);
  return address != NULL && g_inet_address_get_is_loopback(address);
}

/* Why the session's mail is ours to sign, or NULL. */
static const char *dkim_sign_reason(PstSession *session) {
  if (pst_session_get_auth_user(session) != NULL)
    return "authenticated";
  if (pst_session_get_relay_allowed(session))
    return "internal";
  if (dkim_client_is_loopback(session))
    return "local submission";
  return NULL;
}

/* The domain entry that signs this message, or NULL. */
static const DkimDomain *dkim_signing_domain(PstCall *call,
                                             const DkimConfig *config) {
  PstMessage *message = pst_call_get_message(call);
  if (pst_message_get_header(message, "From", 1) != NULL)
    return NULL; /* several From: fields: no single author */
  g_autofree char *domain =
      dkim_from_domain(pst_message_get_header(message, "From", 0));
  return dkim_config_find_domain(config, domain);
}

/* --- Hooks ---------------------------------------------------------------- */

static PstVerdict dkim_eom_verify(PstCall *call, gpointer user_data) {
  DkimHookData *data = user_data;
  if (!data->config->verify)
    return PST_VERDICT_CONTINUE;
  if (data->config->sign &&
      dkim_sign_reason(pst_call_get_session(call)) != NULL &&
      dkim_signing_domain(call, data->config) != NULL)
    return PST_VERDICT_CONTINUE; /* ours: signed later, not verified */
  return dkim_verify_call(data->pool, call, data->config);
}

static PstVerdict dkim_eom_sign(PstCall *call, gpointer user_data) {
  DkimHookData *data = user_data;
  if (!data->config->sign)
    return PST_VERDICT_CONTINUE;
  const DkimDomain *domain = dkim_signing_domain(call, data->config);
  if (domain == NULL)
    return PST_VERDICT_CONTINUE;
  const char *reason = dkim_sign_reason(pst_call_get_session(call));
  if (reason == NULL) {
    pst_call_log(call, G_LOG_LEVEL_INFO,
                 "not signed: From: is %s but the client is outside "
                 "(not authenticated, not internal)",
                 domain->domain);
    return PST_VERDICT_CONTINUE;
  }
  if (domain->keys->len == 0)
    return PST_VERDICT_CONTINUE;
  dkim_sign_call(data->pool, call, data->config, domain);
  return PST_VERDICT_PENDING;
}

/* --- The daemon's own mail ------------------------------------------------ */

static char *dkim_sign_own_mail(GBytes *message, gpointer user_data) {
  DkimPlugin *plugin = user_data;
  g_mutex_lock(&plugin->lock);
  g_autoptr(DkimConfig) config =
      plugin->current != NULL ? dkim_config_ref(plugin->current) : NULL;
  g_mutex_unlock(&plugin->lock);
  if (config == NULL || !config->sign)
    return NULL;
  const DkimDomain *domain = dkim_config_find_local(config);
  if (domain == NULL || domain->keys->len == 0)
    return NULL;
  char *fields = dkim_sign_local(plugin->plugin, config, domain, message);
  dkim_openssl_thread_done(); /* the core's delivery worker: as above */
  return fields;
}

/* --- The plugin ----------------------------------------------------------- */

static void dkim_plugin_free(gpointer data) {
  DkimPlugin *plugin = data;
  /* Lets queued jobs run: each completes its call. */
  g_thread_pool_free(plugin->pool, FALSE, TRUE);
  g_clear_pointer(&plugin->current, dkim_config_unref);
  g_mutex_clear(&plugin->lock);
  g_free(plugin);
}

static DkimPlugin *dkim_plugin_get(PstPlugin *plugin) {
  DkimPlugin *data = pst_plugin_get_data(plugin);
  if (data != NULL)
    return data;
  data = g_new0(DkimPlugin, 1);
  g_mutex_init(&data->lock);
  data->plugin = plugin;
  /* Exclusive: the nice value a worker takes must stay on threads of this
   * pool, not on GLib's shared threads that also run the core's deliveries. */
  data->pool = g_thread_pool_new(dkim_job_run, data, DKIM_WORKERS, TRUE, NULL);
  pst_plugin_set_data(plugin, data, dkim_plugin_free);
  pst_plugin_provide_signer(plugin, dkim_sign_own_mail, data);
  return data;
}

static void dkim_register(PstPlugin *plugin, DkimPlugin *data,
                          DkimConfig *config, int priority, PstHookFunc func) {
  DkimHookData *hook = g_new0(DkimHookData, 1);
  hook->config = dkim_config_ref(config);
  hook->pool = data->pool;
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, priority, func, hook,
                           (GDestroyNotify)dkim_hook_data_free);
}

/* Logs what will be signed, with a warning for short RSA keys. */
static void dkim_log_domains(PstPlugin *plugin, const DkimConfig *config) {
  GHashTableIter iter;
  gpointer value = NULL;
  g_hash_table_iter_init(&iter, config->domains);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    const DkimDomain *domain = value;
    for (guint i = 0; i < domain->keys->len; i++) {
      const DkimKey *key = domain->keys->pdata[i];
      pst_plugin_log(plugin, G_LOG_LEVEL_INFO,
                     "%s: signs d=%s s=%s (%s, %u bits)", domain->domain,
                     domain->signing_domain, key->selector,
                     dkim_key_type_to_string(key->type), key->bits);
      if (key->type == DKIM_KEY_RSA && key->bits < 2048)
        pst_plugin_log(plugin, G_LOG_LEVEL_WARNING,
                       "%s: a %u-bit RSA key; use 2048 bits (postilion dkim "
                       "genkey %s NEW-SELECTOR --bits 2048)",
                       key->path, key->bits, domain->signing_domain);
    }
  }
}

static gboolean dkim_init(PstPlugin *plugin, GKeyFile *keyfile,
                          const char *group, GError **error) {
  g_autofree char *user =
      g_key_file_get_string(keyfile, "server", "user", NULL);
  const char *reader = user != NULL && user[0] != '\0' ? user : NULL;
  g_autoptr(DkimConfig) config =
      dkim_config_load(keyfile, group, reader, error);
  if (config == NULL)
    return FALSE;
  DkimPlugin *data = dkim_plugin_get(plugin);
  g_mutex_lock(&data->lock);
  g_clear_pointer(&data->current, dkim_config_unref);
  data->current = dkim_config_ref(config);
  g_mutex_unlock(&data->lock);
  dkim_register(plugin, data, config, DKIM_VERIFY_PRIORITY, dkim_eom_verify);
  dkim_register(plugin, data, config, DKIM_SIGN_PRIORITY, dkim_eom_sign);
  dkim_log_domains(plugin, config);
  pst_plugin_log(plugin, G_LOG_LEVEL_INFO,
                 "sign %s, verify %s, %u signing domain%s",
                 config->sign ? "on" : "off", config->verify ? "on" : "off",
                 g_hash_table_size(config->domains),
                 g_hash_table_size(config->domains) == 1 ? "" : "s");
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("dkim", "1.0",
                        "DKIM (RFC 6376, 8463): signing, "
                        "verification, auth.dkim",
                        dkim_init, NULL, dkim_init);
