/* route.c - the hosts outbound SMTP tries for a destination (rules in
 * route.h).
 *
 * Entry points: pst_route_lookup() (smtp-deliver.c, worker threads) and
 * the pure pst_route_order_mx() (unit-tested).  DNS answers are sorted
 * into three outcomes: hosts to try; a permanent refusal (null MX, no
 * such domain, hosts without any address); a temporary one (SERVFAIL,
 * timeout).  An MX host whose own lookups fail temporarily is skipped as
 * long as another host has an address.
 *
 * A destination whose lookup failed temporarily is remembered for the
 * first retry delay (at most a minute): messages for it meanwhile are
 * deferred at once with that reply instead of waiting for the DNS again,
 * so a backlog for a destination whose DNS is down does not hold every
 * delivery worker while other mail (local mailboxes too) waits behind it
 * (Postfix's "dead destination").  The only mutable state here: a cache
 * private to this file, under its own lock.
 */
#include <string.h>

#include <postilion/dns.h>

#include "deliver/route.h"

#define ROUTE_ADDRESSES_MAX 20
#define ROUTE_MX_MAX 10
#define ROUTE_DEAD_MAX_MS 60000
#define ROUTE_DEAD_ENTRIES_MAX 10000

void pst_route_host_free(PstRouteHost *host) {
  if (host == NULL)
    return;
  g_free(host->name);
  g_clear_object(&host->address);
  g_free(host);
}

char *pst_route_host_describe(const PstRouteHost *host) {
  g_autofree char *address = g_inet_address_to_string(host->address);
  return g_strdup_printf("%s[%s]:%u", host->name, address, host->port);
}

static gint compare_preference(gconstpointer a, gconstpointer b) {
  const PstMxRecord *left = a, *right = b;
  return (gint)left->preference - (gint)right->preference;
}

void pst_route_order_mx(GArray *records, GRand *rand) {
  /* Shuffle first (Fisher-Yates), then a stable sort keeps that random
   * order among equal preferences. */
  for (guint i = records->len; i > 1; i--) {
    guint j = (guint)g_rand_int_range(rand, 0, (gint32)i);
    PstMxRecord swap = g_array_index(records, PstMxRecord, i - 1);
    g_array_index(records, PstMxRecord, i - 1) =
        g_array_index(records, PstMxRecord, j);
    g_array_index(records, PstMxRecord, j) = swap;
  }
  g_array_sort(records, compare_preference); /* g_array_sort is stable */
}

static void mx_record_clear(gpointer data) {
  PstMxRecord *record = data;
  g_free(record->name);
}

/* --- Destinations whose DNS failed ---------------------------------------- */

typedef struct {
  char *failure; /* owned: the reply of the failed lookup */
  gint64 until;  /* monotonic µs */
} DeadDestination;

static GMutex dead_lock;
static GHashTable *dead_destinations; /* name -> DeadDestination*, locked */

static void dead_destination_free(gpointer data) {
  DeadDestination *dead = data;
  g_free(dead->failure);
  g_free(dead);
}

/* The remembered failure of `name` (a new string), or NULL. */
static char *route_dead_check(const char *name) {
  char *failure = NULL;
  g_mutex_lock(&dead_lock);
  DeadDestination *dead = dead_destinations != NULL
                              ? g_hash_table_lookup(dead_destinations, name)
                              : NULL;
  if (dead != NULL && dead->until > g_get_monotonic_time())
    failure = g_strdup_printf(
        "%s (remembered: not asked again for %" G_GINT64_FORMAT " s)",
        dead->failure,
        (dead->until - g_get_monotonic_time()) / G_USEC_PER_SEC + 1);
  else if (dead != NULL)
    g_hash_table_remove(dead_destinations, name);
  g_mutex_unlock(&dead_lock);
  return failure;
}

static void route_dead_note(const char *name, const char *failure,
                            guint ttl_ms) {
  DeadDestination *dead = g_new0(DeadDestination, 1);
  dead->failure = g_strdup(failure);
  dead->until = g_get_monotonic_time() + (gint64)ttl_ms * 1000;
  g_mutex_lock(&dead_lock);
  if (dead_destinations == NULL)
    dead_destinations = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                              dead_destination_free);
  /* Bounded: a flood of failing domains starts the memory afresh. */
  if (g_hash_table_size(dead_destinations) >= ROUTE_DEAD_ENTRIES_MAX)
    g_hash_table_remove_all(dead_destinations);
  g_hash_table_replace(dead_destinations, g_ascii_strdown(name, -1), dead);
  g_mutex_unlock(&dead_lock);
}

/* --- Lookups -------------------------------------------------------------- */

typedef struct {
  GPtrArray *hosts;   /* of PstRouteHost* */
  gboolean tempfail;  /* some lookup failed temporarily */
  char *last_problem; /* owned, nullable: for the failure text */
} Lookup;

static void lookup_note(Lookup *lookup, const PstDnsResult *result) {
  g_free(lookup->last_problem);
  lookup->last_problem =
      g_strdup_printf("%s %s: %s", pst_dns_result_get_name(result),
                      pst_dns_type_to_string(pst_dns_result_get_type(result)),
                      pst_dns_result_get_reason(result));
  if (pst_dns_result_get_status(result) == PST_DNS_TEMPFAIL ||
      pst_dns_result_get_status(result) == PST_DNS_CANCELLED)
    lookup->tempfail = TRUE;
}

/* Adds `name`'s addresses: AAAA first, then A. */
static void add_addresses(Lookup *lookup, const char *name, guint16 port) {
  g_autoptr(GInetAddress) literal = g_inet_address_new_from_string(name);
  if (literal != NULL) {
    PstRouteHost *host = g_new0(PstRouteHost, 1);
    host->name = g_strdup(name);
    host->address = g_steal_pointer(&literal);
    host->port = port;
    g_ptr_array_add(lookup->hosts, host);
    return;
  }
  static const PstDnsType types[] = {PST_DNS_TYPE_AAAA, PST_DNS_TYPE_A};
  for (gsize t = 0; t < G_N_ELEMENTS(types); t++) {
    g_autoptr(PstDnsResult) result = pst_dns_lookup_sync(types[t], name, NULL);
    if (pst_dns_result_get_status(result) != PST_DNS_OK) {
      if (pst_dns_result_get_status(result) != PST_DNS_NODATA)
        lookup_note(lookup, result);
      continue;
    }
    for (guint i = 0; i < pst_dns_result_get_count(result) &&
                      lookup->hosts->len < ROUTE_ADDRESSES_MAX;
         i++) {
      PstRouteHost *host = g_new0(PstRouteHost, 1);
      host->name = g_strdup(name);
      host->address = pst_dns_result_get_address(result, i);
      host->port = port;
      g_ptr_array_add(lookup->hosts, host);
    }
  }
}

/* The MX hosts of `name` in order; NULL when it has no MX record (the
 * caller falls back to its addresses), with `null_mx_r` for RFC 7505. */
static GArray *lookup_mx(Lookup *lookup, const char *name, gboolean *null_mx_r,
                         gboolean *missing_r) {
  g_autoptr(PstDnsResult) result =
      pst_dns_lookup_sync(PST_DNS_TYPE_MX, name, NULL);
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status != PST_DNS_OK) {
    if (status != PST_DNS_NODATA)
      lookup_note(lookup, result);
    *missing_r = status == PST_DNS_NXDOMAIN || status == PST_DNS_INVALID;
    return NULL;
  }
  guint count = pst_dns_result_get_count(result);
  if (count == 1 && g_str_equal(pst_dns_result_get_string(result, 0), ".")) {
    *null_mx_r = TRUE;
    return NULL;
  }
  GArray *records = g_array_new(FALSE, FALSE, sizeof(PstMxRecord));
  g_array_set_clear_func(records, mx_record_clear);
  for (guint i = 0; i < count; i++) {
    const char *exchange = pst_dns_result_get_string(result, i);
    if (g_str_equal(exchange, "."))
      continue; /* a null MX among others: ignored */
    PstMxRecord record = {pst_dns_result_get_mx_preference(result, i),
                          g_ascii_strdown(exchange, -1)};
    g_array_append_val(records, record);
  }
  g_autoptr(GRand) rand = g_rand_new();
  pst_route_order_mx(records, rand);
  if (records->len > ROUTE_MX_MAX)
    g_array_set_size(records, ROUTE_MX_MAX);
  return records;
}

/* MX hosts of `name`, or its own addresses without MX records. */
static gboolean lookup_destination(Lookup *lookup, const char *name,
                                   guint16 port, char **failure_r) {
  gboolean null_mx = FALSE, missing = FALSE;
  g_autoptr(GArray) records = lookup_mx(lookup, name, &null_mx, &missing);
  if (null_mx) {
    *failure_r = g_strdup_printf(
        "556 5.1.10 the domain %s does not accept mail (null MX)", name);
    return FALSE;
  }
  if (missing) {
    *failure_r = g_strdup_printf("550 5.4.4 Host or domain name not found: %s",
                                 lookup->last_problem);
    return FALSE;
  }
  if (records == NULL && lookup->tempfail) {
    *failure_r = g_strdup_printf("451 4.4.3 DNS lookup failed: %s",
                                 lookup->last_problem);
    return FALSE;
  }
  if (records == NULL)
    add_addresses(lookup, name, port);
  for (guint i = 0; records != NULL && i < records->len; i++)
    add_addresses(lookup, g_array_index(records, PstMxRecord, i).name, port);
  return TRUE;
}

static GPtrArray *route_lookup(const PstDeliveryConfig *delivery,
                               const char *domain, char **failure_r);

GPtrArray *pst_route_lookup(const PstDeliveryConfig *delivery,
                            const char *domain, char **failure_r) {
  g_autofree char *name = g_ascii_strdown(
      delivery->relayhost_host != NULL ? delivery->relayhost_host : domain, -1);
  char *remembered = route_dead_check(name);
  if (remembered != NULL) {
    *failure_r = remembered;
    return NULL;
  }
  GPtrArray *hosts = route_lookup(delivery, domain, failure_r);
  if (hosts == NULL && (*failure_r)[0] == '4')
    route_dead_note(name, *failure_r,
                    MIN(delivery->retry_first_ms, ROUTE_DEAD_MAX_MS));
  return hosts;
}

static GPtrArray *route_lookup(const PstDeliveryConfig *delivery,
                               const char *domain, char **failure_r) {
  Lookup lookup = {
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_route_host_free),
      FALSE, NULL};
  gboolean ok;
  if (delivery->relayhost_host != NULL && !delivery->relayhost_mx) {
    add_addresses(&lookup, delivery->relayhost_host, delivery->relayhost_port);
    ok = TRUE;
  } else if (delivery->relayhost_host != NULL) {
    ok = lookup_destination(&lookup, delivery->relayhost_host,
                            delivery->relayhost_port, failure_r);
  } else {
    ok = lookup_destination(&lookup, domain, (guint16)delivery->smtp_port,
                            failure_r);
  }
  if (ok && lookup.hosts->len == 0) {
    const char *name =
        delivery->relayhost_host != NULL ? delivery->relayhost_host : domain;
    *failure_r = lookup.tempfail
                     ? g_strdup_printf("451 4.4.3 no address for the mail "
                                       "hosts of %s: %s",
                                       name, lookup.last_problem)
                     : g_strdup_printf("550 5.4.4 the mail hosts of %s have "
                                       "no address",
                                       name);
    ok = FALSE;
  }
  g_free(lookup.last_problem);
  if (!ok && delivery->relayhost_host != NULL && (*failure_r)[0] == '5') {
    /* A relayhost that does not resolve is our setup's problem: retry. */
    char *permanent = *failure_r;
    const char *text = strchr(permanent + 4, ' ');
    *failure_r =
        g_strdup_printf("451 4.4.4 relayhost %s: %s", delivery->relayhost,
                        text != NULL ? text + 1 : permanent);
    g_free(permanent);
  }
  if (!ok) {
    g_ptr_array_unref(lookup.hosts);
    return NULL;
  }
  return lookup.hosts;
}
