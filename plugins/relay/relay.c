/* relay.c - the relay plugin: no open relay, and the envelope checks
 * admins copy from Postfix's mail-server HOWTO.
 *
 * Clients come in three kinds, decided per call from the session: internal
 * (the address is in internal_networks), authenticated (AUTH, or XCLIENT
 * LOGIN=), and outside.  Internal and authenticated clients may relay: the
 * CONNECT and AUTH hooks tell the core with pst_session_set_relay_allowed()
 * (the core's relay rule then lets their non-local recipients through).
 * Outside clients get every check; trusted ones skip those that make no
 * sense for them, as Postfix's permit_mynetworks, permit_sasl_authenticated
 * placed first do:
 *
 *   check                               outside  internal  authenticated
 *   HELO syntax, FQDN HELO                 yes       -          -
 *   DNSBL                                  yes       -          -
 *   sender_login_required (our domains)    yes       -          -
 *   sender_login_map                        -        -         yes
 *   relay tricks in local recipients       yes       -          -
 *   non-FQDN / unknown sender domain       yes      yes        yes
 *   non-FQDN / unknown recipient domain    yes      yes        yes
 *
 * HELO, DNSBL and sender checks answer MAIL (Postfix answers them at RCPT
 * with smtpd_delay_reject; MAIL is where the client learns first).  DNS
 * answers: a name that does not exist is a 5xx, a DNS failure or timeout a
 * 4xx, and a DNSBL that does not answer never rejects.  Every hook is
 * registered at priority 0, the access-policy band.
 */
#include <string.h>

#include "relay.h"

/* One MAIL or RCPT call waiting for DNS: DNSBL zones first, then the
 * domain's MX, A and AAAA in turn. */
typedef struct {
  PstCall *call;
  RelayConfig *config;    /* owned reference */
  GInetAddress *client;   /* owned, nullable: NULL skips the DNSBLs */
  guint dnsbl_index;
  char *listed;           /* owned, nullable: "ZONE (ANSWER)" when listed */
  char *address;          /* owned: the envelope address */
  char *domain;           /* owned, nullable: the domain to check */
  gboolean recipient;     /* RCPT (recipient texts) rather than MAIL */
  PstDnsType step;        /* the domain lookup in flight */
} RelayJob;

static void relay_job_next(RelayJob *job);

static void relay_job_free(RelayJob *job) {
  relay_config_unref(job->config);
  g_clear_object(&job->client);
  g_free(job->listed);
  g_free(job->address);
  g_free(job->domain);
  g_free(job);
}

static void relay_job_finish(RelayJob *job, PstVerdict verdict) {
  pst_call_complete(job->call, verdict);
  relay_job_free(job);
}

/* --- Client classification ---------------------------------------------- */

static gboolean relay_client_is_internal(const RelayConfig *config,
                                         PstSession *session) {
  g_autoptr(GInetAddress) address =
      pst_session_get_client_inet_address(session);
  return address != NULL && relay_config_is_internal(config, address);
}

static gboolean relay_client_is_trusted(const RelayConfig *config,
                                        PstSession *session) {
  return pst_session_get_auth_user(session) != NULL ||
         relay_client_is_internal(config, session);
}

/* CONNECT (and again after XCLIENT, which runs CONNECT anew): internal
 * networks, and a login XCLIENT passed along, may relay; helo_required =
 * false lets every client send MAIL without HELO/EHLO. */
static PstVerdict relay_connect(PstCall *call, gpointer user_data) {
  RelayConfig *config = user_data;
  PstSession *session = pst_call_get_session(call);
  if (!config->helo_required)
    pst_session_set_helo_required(session, FALSE);
  gboolean internal = relay_client_is_internal(config, session);
  if (internal || pst_session_get_auth_user(session) != NULL) {
    pst_session_set_relay_allowed(session, TRUE);
    pst_call_log(call, G_LOG_LEVEL_DEBUG, "client %s may relay (%s)",
                 pst_session_get_client_address(session),
                 internal ? "internal network" : "authenticated");
  }
  return PST_VERDICT_CONTINUE;
}

static PstVerdict relay_auth(PstCall *call, gpointer user_data) {
  pst_session_set_relay_allowed(pst_call_get_session(call), TRUE);
  return PST_VERDICT_CONTINUE;
}

/* --- Replies ------------------------------------------------------------ */

static PstVerdict relay_refuse(PstCall *call, guint code, const char *enhanced,
                               const char *format, ...) G_GNUC_PRINTF(4, 5);
static PstVerdict relay_refuse(PstCall *call, guint code, const char *enhanced,
                               const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *text = g_strdup_vprintf(format, args);
  va_end(args);
  pst_call_set_reply(call, code, enhanced, text);
  return code >= 500 ? PST_VERDICT_REJECT : PST_VERDICT_TEMPFAIL;
}

static const char *relay_what(gboolean recipient) {
  return recipient ? "Recipient address rejected" : "Sender address rejected";
}

/* --- Addresses ---------------------------------------------------------- */

/* The domain of "local@domain" (after the last '@', which a quoted local
 * part cannot follow), or NULL for "" and "postmaster". */
static const char *relay_address_domain(const char *address) {
  const char *at = strrchr(address, '@');
  return at != NULL ? at + 1 : NULL;
}

static gboolean relay_domain_is_fqdn(const char *domain) {
  if (domain[0] == '[')
    return TRUE;
  const char *dot = strchr(domain, '.');
  return dot != NULL && dot[1] != '\0';
}

/* The percent hack (user%other@ours), bang paths (other!user@ours) and a
 * quoted '@' ("user@other"@ours) all name another destination inside a
 * local part: Postfix's resolver routes them there and
 * reject_unauth_destination then answers "Relay access denied". */
static gboolean relay_local_part_routes(const char *address,
                                        const char *domain) {
  gsize length = (gsize)(domain - 1 - address);
  for (gsize i = 0; i < length; i++)
    if (address[i] == '%' || address[i] == '!' || address[i] == '@')
      return TRUE;
  return FALSE;
}

/* --- DNS: DNSBL --------------------------------------------------------- */

/* TRUE when `answer` counts as a listing of `zone`.  127.255.255.0/24 are
 * the lists' error codes (Spamhaus: query refused, resolver blocked): never
 * a listing. */
static gboolean relay_dnsbl_counts(const RelayDnsbl *zone,
                                   GInetAddress *answer) {
  if (zone->code != NULL)
    return g_inet_address_equal(zone->code, answer);
  const guint8 *bytes = g_inet_address_to_bytes(answer);
  return g_inet_address_get_family(answer) == G_SOCKET_FAMILY_IPV4 &&
         bytes[0] == 127 && !(bytes[1] == 255 && bytes[2] == 255);
}

static void relay_dnsbl_txt_done(PstDnsResult *result, gpointer user_data) {
  RelayJob *job = user_data;
  g_autoptr(PstDnsResult) owned = result;
  if (pst_dns_result_get_status(result) == PST_DNS_CANCELLED) {
    relay_job_finish(job, PST_VERDICT_CONTINUE);
    return;
  }
  g_autofree char *client = g_inet_address_to_string(job->client);
  g_autofree char *reason = NULL;
  if (pst_dns_result_get_status(result) == PST_DNS_OK &&
      pst_dns_result_get_count(result) > 0)
    reason = g_strdup_printf("; %s", pst_dns_result_get_string(result, 0));
  pst_call_log(job->call, G_LOG_LEVEL_MESSAGE, "client %s listed by %s",
               client, job->listed);
  relay_refuse(job->call, 554, "5.7.1",
               "Service unavailable; Client host [%s] blocked using %s%s",
               client, job->listed, reason != NULL ? reason : "");
  relay_job_finish(job, PST_VERDICT_REJECT);
}

static void relay_dnsbl_done(PstDnsResult *result, gpointer user_data) {
  RelayJob *job = user_data;
  g_autoptr(PstDnsResult) owned = result;
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status == PST_DNS_CANCELLED) {
    relay_job_finish(job, PST_VERDICT_CONTINUE);
    return;
  }
  const RelayDnsbl *zone = job->config->dnsbl->pdata[job->dnsbl_index];
  if (status == PST_DNS_TEMPFAIL)
    pst_call_log(job->call, G_LOG_LEVEL_WARNING,
                 "DNSBL %s did not answer (%s): not rejecting", zone->zone,
                 pst_dns_result_get_reason(result));
  for (guint i = 0; status == PST_DNS_OK && i < pst_dns_result_get_count(result);
       i++) {
    g_autoptr(GInetAddress) answer = pst_dns_result_get_address(result, i);
    if (answer == NULL || !relay_dnsbl_counts(zone, answer))
      continue;
    g_autofree char *text = g_inet_address_to_string(answer);
    job->listed = g_strdup_printf("%s (%s)", zone->zone, text);
    /* The list's TXT record says why, usually with a removal URL. */
    pst_dns_lookup(PST_DNS_TYPE_TXT, pst_dns_result_get_name(result),
                   pst_call_get_cancellable(job->call), relay_dnsbl_txt_done,
                   job);
    return;
  }
  job->dnsbl_index++;
  relay_job_next(job);
}

/* --- DNS: does the domain exist ----------------------------------------- */

static PstVerdict relay_domain_refuse(RelayJob *job, gboolean temporary,
                                      gboolean null_mx, const char *detail) {
  const char *what = relay_what(job->recipient);
  if (temporary)
    return relay_refuse(job->call, 450, job->recipient ? "4.1.2" : "4.1.8",
                        "<%s>: %s: Domain not found (%s)", job->address, what,
                        detail);
  if (null_mx)
    /* RFC 7505 section 4.2 and 4.3. */
    return relay_refuse(job->call, job->recipient ? 556 : 550,
                        job->recipient ? "5.1.10" : "5.7.27",
                        "<%s>: %s: Domain %s does not accept mail (null MX)",
                        job->address, what, job->domain);
  return relay_refuse(job->call, 550, job->recipient ? "5.1.2" : "5.1.8",
                      "<%s>: %s: Domain not found", job->address, what);
}

static gboolean relay_is_null_mx(PstDnsResult *result) {
  return pst_dns_result_get_count(result) == 1 &&
         g_strcmp0(pst_dns_result_get_string(result, 0), ".") == 0;
}

static void relay_domain_done(PstDnsResult *result, gpointer user_data) {
  RelayJob *job = user_data;
  g_autoptr(PstDnsResult) owned = result;
  switch (pst_dns_result_get_status(result)) {
  case PST_DNS_CANCELLED:
    relay_job_finish(job, PST_VERDICT_CONTINUE);
    return;
  case PST_DNS_OK:
    if (job->step == PST_DNS_TYPE_MX && relay_is_null_mx(result)) {
      relay_job_finish(job, relay_domain_refuse(job, FALSE, TRUE, NULL));
      return;
    }
    relay_job_finish(job, PST_VERDICT_CONTINUE);
    return;
  case PST_DNS_TEMPFAIL:
    relay_job_finish(job, relay_domain_refuse(
                              job, TRUE, FALSE,
                              pst_dns_result_get_reason(result)));
    return;
  case PST_DNS_NXDOMAIN:
  case PST_DNS_INVALID:
    relay_job_finish(job, relay_domain_refuse(job, FALSE, FALSE, NULL));
    return;
  case PST_DNS_NODATA:
    break;
  }
  /* The name exists without this type: MX, then A, then AAAA. */
  if (job->step == PST_DNS_TYPE_AAAA) {
    relay_job_finish(job, relay_domain_refuse(job, FALSE, FALSE, NULL));
    return;
  }
  job->step = job->step == PST_DNS_TYPE_MX ? PST_DNS_TYPE_A : PST_DNS_TYPE_AAAA;
  pst_dns_lookup(job->step, job->domain, pst_call_get_cancellable(job->call),
                 relay_domain_done, job);
}

/* Starts the next lookup, or completes the call when none is left. */
static void relay_job_next(RelayJob *job) {
  GCancellable *cancellable = pst_call_get_cancellable(job->call);
  if (job->client != NULL && job->dnsbl_index < job->config->dnsbl->len) {
    const RelayDnsbl *zone = job->config->dnsbl->pdata[job->dnsbl_index];
    g_autofree char *name = pst_dns_reverse_name(job->client, zone->zone);
    pst_dns_lookup(PST_DNS_TYPE_A, name, cancellable, relay_dnsbl_done, job);
    return;
  }
  if (job->domain != NULL) {
    job->step = PST_DNS_TYPE_MX;
    pst_dns_lookup(PST_DNS_TYPE_MX, job->domain, cancellable,
                   relay_domain_done, job);
    return;
  }
  relay_job_finish(job, PST_VERDICT_CONTINUE);
}

/* Returns PENDING after starting the job, or CONTINUE when it has nothing
 * to look up (the job is then freed). */
static PstVerdict relay_job_start(RelayJob *job) {
  gboolean dnsbl = job->client != NULL && job->config->dnsbl->len > 0;
  if (!dnsbl && job->domain == NULL) {
    relay_job_free(job);
    return PST_VERDICT_CONTINUE;
  }
  relay_job_next(job);
  return PST_VERDICT_PENDING;
}

static RelayJob *relay_job_new(PstCall *call, RelayConfig *config,
                               const char *address, gboolean recipient) {
  RelayJob *job = g_new0(RelayJob, 1);
  job->call = call;
  job->config = relay_config_ref(config);
  job->address = g_strdup(address);
  job->recipient = recipient;
  return job;
}

/* TRUE when the domain needs the DNS: not ours, not an address literal. */
static gboolean relay_domain_needs_lookup(PstSession *session,
                                          const char *domain) {
  return domain != NULL && domain[0] != '[' &&
         !pst_session_is_local_domain(session, domain);
}

/* --- MAIL --------------------------------------------------------------- */

/* The checks of an outside client's HELO; CONTINUE when it passes. */
static PstVerdict relay_check_helo(PstCall *call, const RelayConfig *config,
                                   const char *helo) {
  if (helo == NULL)
    return PST_VERDICT_CONTINUE; /* the core demands HELO before MAIL */
  if (config->reject_invalid_helo && !relay_helo_is_valid(helo))
    return relay_refuse(call, 501, "5.5.2",
                        "<%s>: Helo command rejected: Invalid name", helo);
  if (config->reject_non_fqdn_helo && !relay_helo_is_fqdn(helo))
    return relay_refuse(
        call, 504, "5.5.2",
        "<%s>: Helo command rejected: need fully-qualified hostname", helo);
  return PST_VERDICT_CONTINUE;
}

/* The checks that need no DNS; CONTINUE when they all pass. */
static PstVerdict relay_check_sender(PstCall *call, const RelayConfig *config,
                                     gboolean trusted, const char *sender) {
  PstSession *session = pst_call_get_session(call);
  const char *user = pst_session_get_auth_user(session);
  const char *domain = relay_address_domain(sender);
  if (!trusted) {
    PstVerdict verdict =
        relay_check_helo(call, config, pst_session_get_helo(session));
    if (verdict != PST_VERDICT_CONTINUE)
      return verdict;
    if (config->sender_login_required && domain != NULL &&
        pst_session_is_local_domain(session, domain))
      return relay_refuse(call, 553, "5.7.1",
                          "<%s>: Sender address rejected: not logged in",
                          sender);
  }
  if (user != NULL && config->login_map != NULL && sender[0] != '\0' &&
      !relay_login_owns(config, sender, user))
    return relay_refuse(call, 553, "5.7.1",
                        "<%s>: Sender address rejected: not owned by user %s",
                        sender, user);
  if (config->reject_non_fqdn_sender && domain != NULL &&
      !relay_domain_is_fqdn(domain))
    return relay_refuse(
        call, 504, "5.5.2",
        "<%s>: Sender address rejected: need fully-qualified address",
        sender);
  return PST_VERDICT_CONTINUE;
}

static PstVerdict relay_mail(PstCall *call, gpointer user_data) {
  RelayConfig *config = user_data;
  PstSession *session = pst_call_get_session(call);
  const char *sender = pst_call_get_argument(call);
  /* relay_client_is_trusted(), with the client's address asked for once:
   * the job keeps it for the DNSBL checks of an untrusted client. */
  g_autoptr(GInetAddress) client = NULL;
  gboolean trusted = pst_session_get_auth_user(session) != NULL;
  if (!trusted) {
    client = pst_session_get_client_inet_address(session);
    trusted = client != NULL && relay_config_is_internal(config, client);
  }
  PstVerdict verdict = relay_check_sender(call, config, trusted, sender);
  if (verdict != PST_VERDICT_CONTINUE)
    return verdict;
  RelayJob *job = relay_job_new(call, config, sender, FALSE);
  if (!trusted)
    job->client = g_steal_pointer(&client);
  const char *domain = relay_address_domain(sender);
  if (config->reject_unknown_sender &&
      relay_domain_needs_lookup(session, domain))
    job->domain = g_strdup(domain);
  return relay_job_start(job);
}

/* --- RCPT --------------------------------------------------------------- */

static PstVerdict relay_rcpt(PstCall *call, gpointer user_data) {
  RelayConfig *config = user_data;
  PstSession *session = pst_call_get_session(call);
  const char *recipient = pst_call_get_argument(call);
  const char *domain = relay_address_domain(recipient);
  if (domain == NULL)
    return PST_VERDICT_CONTINUE; /* <postmaster> is always ours */
  gboolean local = pst_session_is_local_domain(session, domain);
  if (config->reject_relay_tricks && local &&
      relay_local_part_routes(recipient, domain) &&
      !relay_client_is_trusted(config, session)) {
    pst_call_log(call, G_LOG_LEVEL_MESSAGE,
                 "routing characters in the local part of <%s>", recipient);
    return relay_refuse(call, 554, "5.7.1", "<%s>: Relay access denied",
                        recipient);
  }
  if (config->reject_non_fqdn_recipient && !relay_domain_is_fqdn(domain))
    return relay_refuse(
        call, 504, "5.5.2",
        "<%s>: Recipient address rejected: need fully-qualified address",
        recipient);
  if (!config->reject_unknown_recipient ||
      !relay_domain_needs_lookup(session, domain))
    return PST_VERDICT_CONTINUE;
  RelayJob *job = relay_job_new(call, config, recipient, TRUE);
  job->domain = g_strdup(domain);
  return relay_job_start(job);
}

/* --- The plugin --------------------------------------------------------- */

static void relay_register(PstPlugin *plugin, RelayConfig *config) {
  const struct {
    PstStage stage;
    PstHookFunc func;
  } hooks[] = {
      {PST_STAGE_CONNECT, relay_connect},
      {PST_STAGE_AUTH, relay_auth},
      {PST_STAGE_MAIL, relay_mail},
      {PST_STAGE_RCPT, relay_rcpt},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(hooks); i++)
    pst_plugin_register_hook(plugin, hooks[i].stage, 0, hooks[i].func,
                             relay_config_ref(config),
                             (GDestroyNotify)relay_config_unref);
}

static gboolean relay_init(PstPlugin *plugin, GKeyFile *keyfile,
                           const char *group, GError **error) {
  RelayConfig *config = relay_config_load(keyfile, group, error);
  if (config == NULL)
    return FALSE;
  relay_register(plugin, config);
  pst_plugin_log(plugin, G_LOG_LEVEL_INFO,
                 "%u internal networks, %u DNSBLs%s", config->networks->len,
                 config->dnsbl->len,
                 config->login_map != NULL ? ", sender login map" : "");
  relay_config_unref(config);
  return TRUE;
}

POSTILION_PLUGIN_DEFINE("relay", "1.0",
                        "No open relay: relay rules, envelope checks, DNSBL",
                        relay_init, NULL, relay_init);
