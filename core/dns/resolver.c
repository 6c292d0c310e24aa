/* resolver.c - builds one libunbound context from [dns] and watches it.
 *
 * Entry points: pst_dns_resolver_new() (lookup.c, at start and on SIGHUP),
 * pst_dns_resolver_close() and the ref/unref pair.
 *
 * The context always forwards: to `[dns] nameservers` (ADDR or ADDR@PORT)
 * or to the servers of /etc/resolv.conf.  It is set up in the order
 * libunbound demands (every setter before the first call that finalizes
 * it; libraries.md section 6), and finalized here by the zone changes, so
 * that resolv.conf and the trust anchor are read before the daemon drops
 * privileges and no file is opened later.  Why each option:
 *
 *  - threads (ub_ctx_async 1): a failed call would silently mean fork().
 *  - outgoing-range: libunbound's library default is 16 UDP sockets, so
 *    the 17th concurrent query waited for a free one (ten silent DNSBL
 *    queries delayed every other lookup past its timeout).  We allow a
 *    quarter of RLIMIT_NOFILE, 64 to 1024, and 16 TCP connections (large
 *    TXT answers) instead of 2.
 *  - unblock-lan-zones, insecure-lan-zones, and removing the built-in
 *    test., home.arpa., 127.in-addr.arpa. and ::1 zones: libunbound answers
 *    those itself (NXDOMAIN, or "localhost") and would never ask the
 *    forwarder, which is the authority for them here: a site's own
 *    RFC 1918 reverse zones, and every zone of the test DNS server.  They
 *    are marked domain-insecure, as the real DNS does not sign them.
 *  - infra-cache-min-rtt 400: a forwarder recurses, so a retransmission
 *    sooner than that only doubles its load.
 *  - outbound-msg-retry from [dns] timeout: unbound gives up on a silent
 *    forwarder soon after our own timer (per lookup, in lookup.c), instead
 *    of retrying for 17 s in the background.
 *  - infra-host-ttl 10: after a few silent queries libunbound marks the
 *    (only) forwarder unusable for A or AAAA queries until this entry
 *    expires (900 s by default), which turned one unanswered DNSBL query
 *    into a quarter hour of SERVFAIL for every name.  Ten seconds bounds it.
 *  - cache: libunbound's own message and RRset caches honour TTLs
 *    (positive, and negative from the SOA as in RFC 2308); [dns]
 *    cache_size (entries) sizes them and the resolver's answer cache in
 *    front of them (cache.c: asking libunbound costs a round trip through
 *    its pipe even for a name it has cached), which holds at most that
 *    many answers and 1 KiB per entry in all.  0 sets cache-max-ttl and
 *    cache-max-negative-ttl to 0 (every lookup asks the forwarder; TTLs
 *    then read 0) and leaves the answer cache out.
 *  - DNSSEC: the trust anchor file is loaded when dnssec=yes (an error if
 *    unusable) or dnssec=auto and the file exists; otherwise the validator
 *    module is left out.
 */
#define G_LOG_DOMAIN "postilion"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib-unix.h>

#include "dns/dns.h"
#include "dns/resolver.h"

G_DEFINE_QUARK(pst - dns - error - quark, pst_dns_error)

#define RESOLV_CONF "/etc/resolv.conf"
#define MIN_RTT_MS 400
#define MAX_RETRIES 5
#define CACHE_BYTES_PER_ENTRY 1024

/* Zones libunbound serves itself that must reach the forwarder. */
static const char *const forwarded_zones[] = {
    "test.",
    "home.arpa.",
    "127.in-addr.arpa.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
};

guint pst_dns_resolver_retries_for_timeout(guint timeout_ms) {
  /* Measured with libunbound 1.17 and a silent forwarder: with n retries
   * it gives up after MIN_RTT_MS * (2^(n+1) - 2) (800 ms, 2.4 s, 5.6 s,
   * 12 s), longer once the server's RTT has backed off.  Take the smallest
   * n that outlasts our own timer by a margin, so that our timer decides. */
  guint retries = 1;
  while (retries < MAX_RETRIES && (guint64)MIN_RTT_MS * ((2u << retries) - 2) <
                                      (guint64)timeout_ms + 200)
    retries++;
  return retries;
}

static gboolean set_option(struct ub_ctx *ctx, const char *option,
                           const char *value, GError **error) {
  int status = ub_ctx_set_option(ctx, option, value);
  if (status != 0) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_UNBOUND,
                "libunbound refused option %s %s: %s", option, value,
                ub_strerror(status));
    return FALSE;
  }
  return TRUE;
}

/* Checks "ADDR" or "ADDR@PORT" before libunbound sees it, for a message
 * that names the key. */
static gboolean nameserver_check(const char *server, GError **error) {
  g_autofree char *address = g_strdup(server);
  char *at = strrchr(address, '@');
  gboolean valid = TRUE;
  if (at != NULL) {
    *at = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(at + 1, &end, 10);
    valid = at[1] != '\0' && *end == '\0' && errno == 0 && port >= 1 &&
            port <= 65535;
  }
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(address);
  if (!valid || inet == NULL) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG,
                "[dns] nameservers: \"%s\" is not an IP address with an "
                "optional @PORT (for example 127.0.0.1 or 127.0.0.1@5353 or "
                "::1@53)",
                server);
    return FALSE;
  }
  return TRUE;
}

static gboolean configure_forwarders(struct ub_ctx *ctx,
                                     const PstDnsConfig *config,
                                     GString *description, GError **error) {
  if ((config->nameservers == NULL || config->nameservers[0] == NULL) &&
      !g_file_test(RESOLV_CONF, G_FILE_TEST_EXISTS)) {
    /* resolv.conf(5): without the file, the resolver is on this host. */
    g_string_append(description,
                    "forwarding to 127.0.0.1 (no " RESOLV_CONF ")");
    return ub_ctx_set_fwd(ctx, "127.0.0.1") == 0;
  }
  if (config->nameservers == NULL || config->nameservers[0] == NULL) {
    int status = ub_ctx_resolvconf(ctx, RESOLV_CONF);
    if (status != 0) {
      g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_RESOLV_CONF,
                  "%s: %s (%s); set [dns] nameservers= to the address of a "
                  "resolver instead",
                  RESOLV_CONF, ub_strerror(status),
                  status == UB_READFILE ? g_strerror(errno) : "unusable");
      return FALSE;
    }
    g_string_append(description, "forwarding to the servers of " RESOLV_CONF);
    return TRUE;
  }
  g_string_append(description, "forwarding to");
  for (guint i = 0; config->nameservers[i] != NULL; i++) {
    const char *server = config->nameservers[i];
    if (!nameserver_check(server, error))
      return FALSE;
    int status = ub_ctx_set_fwd(ctx, server);
    if (status != 0) {
      g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG,
                  "[dns] nameservers: \"%s\": %s", server, ub_strerror(status));
      return FALSE;
    }
    g_string_append_printf(description, " %s", server);
  }
  return TRUE;
}

/* Loads the trust anchor, or leaves the validator out.  Sets *validating. */
static gboolean configure_dnssec(struct ub_ctx *ctx, const PstDnsConfig *config,
                                 gboolean *validating, GString *description,
                                 GError **error) {
  const char *anchor = config->trust_anchor;
  gboolean readable = anchor != NULL && access(anchor, R_OK) == 0;
  *validating = FALSE;
  if (config->dnssec == PST_DNSSEC_YES && !readable) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_TRUST_ANCHOR,
                "[dns] dnssec=yes: the trust anchor %s is not readable (%s); "
                "install dns-root-data, set [dns] trust_anchor=, or set "
                "dnssec=auto",
                anchor != NULL ? anchor : "(none)",
                anchor != NULL ? g_strerror(errno) : "no file configured");
    return FALSE;
  }
  if (config->dnssec == PST_DNSSEC_NO || !readable) {
    g_string_append(description, ", DNSSEC validation off");
    return set_option(ctx, "module-config:", "iterator", error);
  }
  int status = ub_ctx_add_ta_file(ctx, anchor);
  if (status != 0) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_TRUST_ANCHOR,
                "[dns] trust_anchor %s: %s", anchor, ub_strerror(status));
    return FALSE;
  }
  for (guint i = 0; i < G_N_ELEMENTS(forwarded_zones); i++)
    if (!set_option(ctx, "domain-insecure:", forwarded_zones[i], error))
      return FALSE;
  *validating = TRUE;
  g_string_append_printf(description, ", DNSSEC validation with %s", anchor);
  return TRUE;
}

/* UDP sockets for concurrent queries: leave most descriptors to SMTP. */
static guint outgoing_range(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return 1024;
  return (guint)CLAMP(limit.rlim_cur / 4, 64, 1024);
}

static gboolean configure_tuning(struct ub_ctx *ctx, const PstDnsConfig *config,
                                 GString *description, GError **error) {
  guint range = outgoing_range();
  g_autofree char *ports = g_strdup_printf("%u", range);
  g_autofree char *queries = g_strdup_printf("%u", range * 2);
  g_autofree char *retries = g_strdup_printf(
      "%u", pst_dns_resolver_retries_for_timeout(config->timeout_ms));
  g_autofree char *min_rtt = g_strdup_printf("%d", MIN_RTT_MS);
  if (!set_option(ctx, "do-not-query-localhost:", "no", error) ||
      !set_option(ctx, "unblock-lan-zones:", "yes", error) ||
      !set_option(ctx, "insecure-lan-zones:", "yes", error) ||
      !set_option(ctx, "infra-cache-min-rtt:", min_rtt, error) ||
      !set_option(ctx, "infra-host-ttl:", "10", error) ||
      !set_option(ctx, "infra-keep-probing:", "yes", error) ||
      !set_option(ctx, "outbound-msg-retry:", retries, error) ||
      !set_option(ctx, "outgoing-range:", ports, error) ||
      !set_option(ctx, "num-queries-per-thread:", queries, error) ||
      !set_option(ctx, "outgoing-num-tcp:", "16", error))
    return FALSE;
  g_string_append_printf(description, ", timeout %u ms, %u sockets",
                         config->timeout_ms, range);
  if (config->cache_size == 0) {
    g_string_append(description, ", no cache");
    return set_option(ctx, "cache-max-ttl:", "0", error) &&
           set_option(ctx, "cache-max-negative-ttl:", "0", error);
  }
  /* About 0.5 KiB per message and 1 KiB of RRsets per cached answer. */
  guint64 entries = MAX(config->cache_size, 128u);
  g_autofree char *msg = g_strdup_printf("%" G_GUINT64_FORMAT, entries * 512);
  g_autofree char *rrset =
      g_strdup_printf("%" G_GUINT64_FORMAT, entries * 1024);
  g_string_append_printf(description, ", cache %u entries", config->cache_size);
  return set_option(ctx, "msg-cache-size:", msg, error) &&
         set_option(ctx, "rrset-cache-size:", rrset, error);
}

/* Removing the zones is also what finalizes the context: the trust
 * anchor is read and checked here. */
static gboolean finalize(struct ub_ctx *ctx, const PstDnsConfig *config,
                         gboolean validating, GError **error) {
  int status = ub_ctx_async(ctx, 1);
  if (status != 0) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_UNBOUND,
                "libunbound cannot run in a thread: %s", ub_strerror(status));
    return FALSE;
  }
  for (guint i = 0; i < G_N_ELEMENTS(forwarded_zones); i++) {
    status = ub_ctx_zone_remove(ctx, forwarded_zones[i]);
    if (status != 0) {
      g_set_error(error, PST_DNS_ERROR,
                  validating ? PST_DNS_ERROR_TRUST_ANCHOR
                             : PST_DNS_ERROR_UNBOUND,
                  "libunbound failed to start: %s%s%s", ub_strerror(status),
                  validating ? "; check [dns] trust_anchor " : "",
                  validating ? config->trust_anchor : "");
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean on_readable(gint fd, GIOCondition condition,
                            gpointer user_data) {
  PstDnsResolver *resolver = pst_dns_resolver_ref(user_data);
  int status = UB_NOERROR;
  if (resolver->ctx != NULL) {
    resolver->dispatching = TRUE;
    status = ub_process(resolver->ctx);
    resolver->dispatching = FALSE;
  }
  pst_dns_resolver_unref(resolver);
  if (status == UB_NOERROR)
    return G_SOURCE_CONTINUE;
  /* The pipe from libunbound's thread is broken: it would stay readable
   * forever.  Stop watching; lookups in flight end by their timers. */
  g_warning("dns: reading answers from libunbound: %s; DNS lookups will "
            "time out until the next reload",
            ub_strerror(status));
  return G_SOURCE_REMOVE;
}

PstDnsResolver *pst_dns_resolver_new(const PstDnsConfig *config,
                                     GMainContext *context, GError **error) {
  g_return_val_if_fail(config != NULL, NULL);

  if (config->timeout_ms == 0) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_CONFIG,
                "[dns] timeout must be more than 0 (for example 5s)");
    return NULL;
  }
  struct ub_ctx *ctx = ub_ctx_create();
  if (ctx == NULL) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_UNBOUND,
                "libunbound cannot create a context");
    return NULL;
  }
  g_autoptr(GString) description = g_string_new(NULL);
  gboolean validating = FALSE;
  if (!configure_forwarders(ctx, config, description, error) ||
      !configure_dnssec(ctx, config, &validating, description, error) ||
      !configure_tuning(ctx, config, description, error) ||
      !finalize(ctx, config, validating, error)) {
    ub_ctx_delete(ctx);
    return NULL;
  }

  PstDnsResolver *resolver = g_new0(PstDnsResolver, 1);
  resolver->ref_count = 1;
  resolver->ctx = ctx;
  resolver->timeout_ms = config->timeout_ms;
  resolver->validating = validating;
  resolver->cache_disabled = config->cache_size == 0;
  if (!resolver->cache_disabled)
    resolver->cache = pst_dns_cache_new(
        config->cache_size, (gsize)config->cache_size * CACHE_BYTES_PER_ENTRY);
  resolver->description = g_string_free(g_steal_pointer(&description), FALSE);
  resolver->requests = g_hash_table_new(NULL, NULL);
  resolver->watch = g_unix_fd_source_new(ub_fd(ctx), G_IO_IN);
  g_source_set_callback(resolver->watch, G_SOURCE_FUNC(on_readable), resolver,
                        NULL);
  g_source_set_name(resolver->watch, "postilion dns");
  g_source_attach(resolver->watch, context);
  return resolver;
}

PstDnsResolver *pst_dns_resolver_ref(PstDnsResolver *resolver) {
  g_return_val_if_fail(resolver != NULL, NULL);
  g_atomic_int_inc(&resolver->ref_count);
  return resolver;
}

void pst_dns_resolver_close(PstDnsResolver *resolver) {
  g_return_if_fail(resolver != NULL);
  g_return_if_fail(!resolver->dispatching);
  if (resolver->watch != NULL) {
    g_source_destroy(resolver->watch);
    g_clear_pointer(&resolver->watch, g_source_unref);
  }
  g_clear_pointer(&resolver->ctx, ub_ctx_delete);
  g_clear_pointer(&resolver->cache, pst_dns_cache_free);
}

void pst_dns_resolver_unref(PstDnsResolver *resolver) {
  g_return_if_fail(resolver != NULL);
  if (!g_atomic_int_dec_and_test(&resolver->ref_count))
    return;
  /* Only the main thread closes; a resolver is closed before the service
   * drops its reference, so no thread can get here with a live context. */
  g_warn_if_fail(resolver->ctx == NULL);
  g_hash_table_unref(resolver->requests);
  g_free(resolver->description);
  g_free(resolver);
}
