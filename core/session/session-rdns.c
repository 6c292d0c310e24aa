/* session-rdns.c - the client's verified reverse name, before CONNECT.
 *
 * Postfix's rule (smtpd_peername_lookup): the client's name is the result
 * of a PTR lookup of its address only when a forward lookup of that name
 * (A for IPv4, AAAA for IPv6) gives the address back (FCrDNS).  Otherwise
 * the name is unknown and the logs and the Received: header say "unknown",
 * so a client cannot borrow a name by controlling its reverse zone.
 *
 * pst_session_lookup_client_name() runs when a connection is accepted (and
 * after a PROXY header: the address is then the real client's), unless
 * `[server] reverse_dns = false`.  XCLIENT never starts a lookup: the proxy
 * passes NAME itself.  When the resolver's answer cache holds every answer
 * needed (a client seen recently), the name is known at once and the
 * banner goes out in the iteration that accepted the connection.
 * Otherwise the session waits (WAIT_DNS: nothing is read as a command, a
 * client that leaves is noticed); the lookups take the session's
 * cancellable, so a disconnect ends them at once.  Every
 * lookup is bounded by `[dns] timeout`; a DNS failure leaves the name
 * unknown and never refuses the client (plugins that want to refuse
 * unknown clients can, at CONNECT).
 *
 * Owner: one PstRdnsLookup per session, holding a session reference until
 * its last callback ran.
 */
#include <string.h>

#include "dns/dns.h"
#include "generation/generation.h"
#include "session/session-private.h"
#include "util/log.h"

/* PTR names tried, at most: a client with many names gets no more work. */
#define RDNS_MAX_NAMES 4

typedef struct {
  PstSession *session;            /* owned reference */
  GInetAddress *address;          /* owned: the client's, unmapped */
  char *names[RDNS_MAX_NAMES];    /* owned: PTR answers still to confirm */
  guint name_count;
  guint next;                     /* the name whose forward lookup runs */
  PstSessionRdnsDone done;
} PstRdnsLookup;

static void rdns_lookup_free(PstRdnsLookup *lookup) {
  for (guint i = 0; i < lookup->name_count; i++)
    g_free(lookup->names[i]);
  g_clear_object(&lookup->address);
  pst_session_unref(lookup->session);
  g_free(lookup);
}

/* Records the verified name (nullable: unknown). */
static void rdns_set_name(PstSession *session, const char *name) {
  if (name == NULL)
    return;
  g_free(session->client_hostname);
  session->client_hostname = g_ascii_strdown(name, -1);
  pst_log_message("%s: client [%s] is %s (verified reverse DNS)", session->id,
                  session->client_address, session->client_hostname);
}

/* Ends the lookup: the session goes on with CONNECT, unless it closed. */
static void rdns_finish(PstRdnsLookup *lookup, const char *name) {
  PstSession *session = lookup->session;
  if (session->waiting == PST_SESSION_WAIT_DNS)
    session->waiting = PST_SESSION_WAIT_NONE;
  g_clear_object(&session->rdns_cancellable);
  if (session->fd >= 0) {
    rdns_set_name(session, name);
    lookup->done(session);
    pst_session_resume(session);
  }
  rdns_lookup_free(lookup);
}

static gboolean rdns_name_is_usable(const char *name) {
  /* A PTR target must be a host name: a root "." or a name with odd
   * characters would end up in headers and logs. */
  if (name == NULL || *name == '\0' || strlen(name) > 253)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
      return FALSE;
  return TRUE;
}

/* Keeps the usable names of a PTR answer, up to RDNS_MAX_NAMES. */
static void rdns_keep_names(PstRdnsLookup *lookup, PstDnsResult *result) {
  for (guint i = 0; i < pst_dns_result_get_count(result) &&
                    lookup->name_count < RDNS_MAX_NAMES;
       i++) {
    const char *name = pst_dns_result_get_string(result, i);
    if (rdns_name_is_usable(name))
      lookup->names[lookup->name_count++] = g_strdup(name);
  }
}

static PstDnsType rdns_forward_type(PstRdnsLookup *lookup) {
  return g_inet_address_get_family(lookup->address) == G_SOCKET_FAMILY_IPV6
             ? PST_DNS_TYPE_AAAA
             : PST_DNS_TYPE_A;
}

/* Whether a forward answer gives the client's address back (its records'
 * octets compared: no address object per record). */
static gboolean rdns_confirms(PstRdnsLookup *lookup, PstDnsResult *result) {
  if (pst_dns_result_get_type(result) != rdns_forward_type(lookup))
    return FALSE;
  const guint8 *want = g_inet_address_to_bytes(lookup->address);
  gsize want_length = g_inet_address_get_native_size(lookup->address);
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    gsize length = 0;
    const guint8 *rdata = pst_dns_result_get_rdata(result, i, &length);
    if (length == want_length && memcmp(rdata, want, length) == 0)
      return TRUE;
  }
  return FALSE;
}

static void rdns_confirm_next(PstRdnsLookup *lookup);

static void rdns_forward_done(PstDnsResult *result, gpointer user_data) {
  g_autoptr(PstDnsResult) owned = result;
  PstRdnsLookup *lookup = user_data;
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status == PST_DNS_CANCELLED || lookup->session->fd < 0) {
    rdns_finish(lookup, NULL);
    return;
  }
  if (rdns_confirms(lookup, result)) {
    rdns_finish(lookup, lookup->names[lookup->next]);
    return;
  }
  lookup->next++;
  rdns_confirm_next(lookup);
}

/* Looks the next PTR name up forward; none left: the name is unknown. */
static void rdns_confirm_next(PstRdnsLookup *lookup) {
  if (lookup->next >= lookup->name_count) {
    rdns_finish(lookup, NULL);
    return;
  }
  pst_dns_lookup_on(pst_generation_get_dns(lookup->session->generation),
                    rdns_forward_type(lookup), lookup->names[lookup->next],
                    PST_DNS_LOOKUP_DEFAULT, lookup->session->rdns_cancellable,
                    rdns_forward_done, lookup);
}

static void rdns_ptr_done(PstDnsResult *result, gpointer user_data) {
  g_autoptr(PstDnsResult) owned = result;
  PstRdnsLookup *lookup = user_data;
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status != PST_DNS_OK || lookup->session->fd < 0) {
    if (status == PST_DNS_TEMPFAIL)
      g_debug("%s: reverse lookup of %s: %s", lookup->session->id,
              lookup->session->client_address,
              pst_dns_result_get_reason(result));
    rdns_finish(lookup, NULL);
    return;
  }
  rdns_keep_names(lookup, result);
  rdns_confirm_next(lookup);
}

/* The same steps from the answer cache alone: TRUE when its answers
 * settle the name (`*name_r`: the verified name, owned, or NULL: unknown),
 * FALSE when a query is needed. */
static gboolean rdns_from_cache(PstSession *session, GInetAddress *address,
                                const char *ptr_name, char **name_r) {
  PstDnsResolver *resolver = pst_generation_get_dns(session->generation);
  g_autoptr(PstDnsResult) ptr =
      pst_dns_lookup_cached_on(resolver, PST_DNS_TYPE_PTR, ptr_name);
  if (ptr == NULL)
    return FALSE;
  *name_r = NULL;
  if (pst_dns_result_get_status(ptr) != PST_DNS_OK)
    return TRUE;
  PstRdnsLookup cached = {.address = address};
  rdns_keep_names(&cached, ptr);
  gboolean known = TRUE;
  for (guint i = 0; i < cached.name_count && *name_r == NULL && known; i++) {
    g_autoptr(PstDnsResult) forward = pst_dns_lookup_cached_on(
        resolver, rdns_forward_type(&cached), cached.names[i]);
    known = forward != NULL;
    if (known && rdns_confirms(&cached, forward))
      *name_r = g_strdup(cached.names[i]);
  }
  for (guint i = 0; i < cached.name_count; i++)
    g_free(cached.names[i]);
  return known;
}

/* The client's address as the forward lookups will return it: IPv4 for an
 * IPv4-mapped IPv6 address (session addresses are already unmapped, this
 * only parses).  The session's own parse, which plugins share (a new
 * GInetAddress cost ~3K instructions per connection to make and free). */
static GInetAddress *rdns_client_address(PstSession *session) {
  return pst_session_get_client_inet_address(session);
}

void pst_session_lookup_client_name(PstSession *session,
                                    PstSessionRdnsDone done) {
  g_autoptr(GInetAddress) address = rdns_client_address(session);
  if (!session->config->server.reverse_dns || address == NULL ||
      session->client_hostname != NULL) {
    done(session);
    return;
  }
  g_autofree char *ptr_name = pst_dns_reverse_name(address, NULL);
  g_autofree char *cached_name = NULL;
  if (rdns_from_cache(session, address, ptr_name, &cached_name)) {
    rdns_set_name(session, cached_name);
    done(session);
    return;
  }
  PstRdnsLookup *lookup = g_new0(PstRdnsLookup, 1);
  lookup->session = pst_session_ref(session);
  lookup->address = g_steal_pointer(&address);
  lookup->done = done;
  session->rdns_cancellable = g_cancellable_new();
  session->waiting = PST_SESSION_WAIT_DNS;
  pst_dns_lookup_on(pst_generation_get_dns(session->generation),
                    PST_DNS_TYPE_PTR, ptr_name, PST_DNS_LOOKUP_DEFAULT,
                    session->rdns_cancellable, rdns_ptr_done, lookup);
}
