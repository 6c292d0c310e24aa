/* route.c - the hosts outbound SMTP tries for a destination (rules in
 * route.h).
 *
 * Entry points: pst_route_lookup() (smtp-deliver.c, main loop) and the
 * pure pst_route_order_mx() (unit-tested).  A lookup is a chain of
 * asynchronous DNS questions (MX, then AAAA and A of each host in order)
 * whose state lives in a Lookup until its callback.  DNS answers are sorted
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
 * (Postfix's "dead destination").  The only mutable state here: that
 * cache and the last address literal routed to (last_literal), private to
 * this file, used on the main thread only.  It is process-wide,
 * not the generation's, on purpose: a destination's DNS failure is a fact
 * about the network, and a reload must not send a dead destination's
 * backlog back to waiting on its DNS (doc/architecture.md, "Generations
 * and services").
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
  g_free(host->description);
  g_free(host);
}

static char *route_host_format(const char *name, GInetAddress *address,
                               guint16 port) {
  g_autofree char *text = g_inet_address_to_string(address);
  return g_strdup_printf("%s[%s]:%u", name, text, port);
}

char *pst_route_host_describe(const PstRouteHost *host) {
  if (host->description != NULL)
    return g_strdup(host->description);
  return route_host_format(host->name, host->address, host->port);
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

static GHashTable *dead_destinations; /* name -> DeadDestination* */

static void dead_destination_free(gpointer data) {
  DeadDestination *dead = data;
  g_free(dead->failure);
  g_free(dead);
}

/* The remembered failure of `name` (a new string), or NULL. */
static char *route_dead_check(const char *name) {
  char *failure = NULL;
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
  return failure;
}

static void route_dead_note(const char *name, const char *failure,
                            guint ttl_ms) {
  DeadDestination *dead = g_new0(DeadDestination, 1);
  dead->failure = g_strdup(failure);
  dead->until = g_get_monotonic_time() + (gint64)ttl_ms * 1000;
  if (dead_destinations == NULL)
    dead_destinations = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                              dead_destination_free);
  /* Bounded: a flood of failing domains starts the memory afresh. */
  if (g_hash_table_size(dead_destinations) >= ROUTE_DEAD_ENTRIES_MAX)
    g_hash_table_remove_all(dead_destinations);
  g_hash_table_replace(dead_destinations, g_ascii_strdown(name, -1), dead);
}

/* --- An address literal --------------------------------------------------- */

/* The last address literal routed to (a relayhost "[192.0.2.1]:25" is the
 * same for every message): its address and description, so that neither
 * is made again per message.  Main thread only, like the memory above. */
static struct {
  char *name; /* owned, nullable */
  guint16 port;
  GInetAddress *address; /* owned */
  char *description;     /* owned */
} last_literal;

/* The host for `name` when it is an address literal, else NULL. */
static PstRouteHost *route_literal_host(const char *name, guint16 port) {
  if (last_literal.name == NULL || last_literal.port != port ||
      !g_str_equal(last_literal.name, name)) {
    GInetAddress *address = g_inet_address_new_from_string(name);
    if (address == NULL)
      return NULL;
    g_free(last_literal.name);
    g_clear_object(&last_literal.address);
    g_free(last_literal.description);
    last_literal.name = g_strdup(name);
    last_literal.port = port;
    last_literal.address = address;
    last_literal.description = route_host_format(name, address, port);
  }
  PstRouteHost *host = g_new0(PstRouteHost, 1);
  host->name = g_strdup(name);
  host->address = g_object_ref(last_literal.address);
  host->port = port;
  host->description = g_strdup(last_literal.description);
  return host;
}

/* --- Lookups -------------------------------------------------------------- */

typedef struct {
  PstDnsResolver *dns;               /* borrowed, nullable: the default */
  const PstDeliveryConfig *delivery; /* borrowed until the callback */
  char *domain;                      /* owned, nullable with a relayhost */
  char *name;                        /* owned: what is looked up, lower case */
  GPtrArray *hosts;                  /* owned, of PstRouteHost* */
  gboolean tempfail;                 /* some lookup failed temporarily */
  char *last_problem;                /* owned, nullable: for the failure text */
  GPtrArray *names;                  /* owned, of char*: hosts to resolve */
  guint16 port;
  guint next_name, next_type; /* the address lookup under way */
  PstRouteFunc callback;
  gpointer user_data;
} Lookup;

static const PstDnsType address_types[] = {PST_DNS_TYPE_AAAA, PST_DNS_TYPE_A};

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

static void lookup_free(Lookup *lookup) {
  g_free(lookup->domain);
  g_free(lookup->name);
  g_clear_pointer(&lookup->hosts, g_ptr_array_unref);
  g_free(lookup->last_problem);
  g_clear_pointer(&lookup->names, g_ptr_array_unref);
  g_free(lookup);
}

/* The end: `failure` (owned, nullable) or the hosts found. */
static void lookup_finish(Lookup *lookup, char *failure) {
  const PstDeliveryConfig *delivery = lookup->delivery;
  if (failure == NULL && lookup->hosts->len == 0) {
    const char *name = delivery->relayhost_host != NULL
                           ? delivery->relayhost_host
                           : lookup->domain;
    failure = lookup->tempfail
                  ? g_strdup_printf("451 4.4.3 no address for the mail "
                                    "hosts of %s: %s",
                                    name, lookup->last_problem)
                  : g_strdup_printf("550 5.4.4 the mail hosts of %s have "
                                    "no address",
                                    name);
  }
  if (failure != NULL && delivery->relayhost_host != NULL &&
      failure[0] == '5') {
    /* A relayhost that does not resolve is our setup's problem: retry. */
    const char *text = strchr(failure + 4, ' ');
    char *temporary =
        g_strdup_printf("451 4.4.4 relayhost %s: %s", delivery->relayhost,
                        text != NULL ? text + 1 : failure);
    g_free(failure);
    failure = temporary;
  }
  if (failure != NULL && failure[0] == '4')
    route_dead_note(lookup->name, failure,
                    MIN(delivery->retry_first_ms, ROUTE_DEAD_MAX_MS));
  GPtrArray *hosts = failure == NULL ? g_steal_pointer(&lookup->hosts) : NULL;
  lookup->callback(hosts, failure, lookup->user_data);
  lookup_free(lookup);
}

static void addresses_next(Lookup *lookup);

static void address_answer(PstDnsResult *answer, gpointer user_data) {
  Lookup *lookup = user_data;
  g_autoptr(PstDnsResult) result = answer;
  const char *name = lookup->names->pdata[lookup->next_name];
  if (pst_dns_result_get_status(result) != PST_DNS_OK) {
    if (pst_dns_result_get_status(result) != PST_DNS_NODATA)
      lookup_note(lookup, result);
  } else {
    for (guint i = 0; i < pst_dns_result_get_count(result) &&
                      lookup->hosts->len < ROUTE_ADDRESSES_MAX;
         i++) {
      PstRouteHost *host = g_new0(PstRouteHost, 1);
      host->name = g_strdup(name);
      host->address = pst_dns_result_get_address(result, i);
      host->port = lookup->port;
      g_ptr_array_add(lookup->hosts, host);
    }
  }
  if (++lookup->next_type == G_N_ELEMENTS(address_types)) {
    lookup->next_type = 0;
    lookup->next_name++;
  }
  addresses_next(lookup);
}

/* Each name's addresses in turn: AAAA first, then A. */
static void addresses_next(Lookup *lookup) {
  while (lookup->next_name < lookup->names->len) {
    const char *name = lookup->names->pdata[lookup->next_name];
    PstRouteHost *host = route_literal_host(name, lookup->port);
    if (host == NULL) {
      pst_dns_lookup_on(lookup->dns, address_types[lookup->next_type], name,
                        PST_DNS_LOOKUP_DEFAULT, NULL, address_answer, lookup);
      return;
    }
    g_ptr_array_add(lookup->hosts, host);
    lookup->next_name++;
  }
  lookup_finish(lookup, NULL);
}

/* The MX hosts of `result` in order, at most ROUTE_MX_MAX. */
static void mx_names(Lookup *lookup, const PstDnsResult *result) {
  guint count = pst_dns_result_get_count(result);
  g_autoptr(GArray) records = g_array_new(FALSE, FALSE, sizeof(PstMxRecord));
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
  for (guint i = 0; i < records->len && i < ROUTE_MX_MAX; i++)
    g_ptr_array_add(lookup->names,
                    g_strdup(g_array_index(records, PstMxRecord, i).name));
}

/* MX hosts of the name, or its own addresses without MX records. */
static void mx_answer(PstDnsResult *answer, gpointer user_data) {
  Lookup *lookup = user_data;
  g_autoptr(PstDnsResult) result = answer;
  const char *name = pst_dns_result_get_name(result);
  PstDnsStatus status = pst_dns_result_get_status(result);
  if (status == PST_DNS_OK && pst_dns_result_get_count(result) == 1 &&
      g_str_equal(pst_dns_result_get_string(result, 0), ".")) {
    lookup_finish(lookup, g_strdup_printf("556 5.1.10 the domain %s does not "
                                          "accept mail (null MX)",
                                          name));
    return;
  }
  if (status == PST_DNS_OK) {
    mx_names(lookup, result);
    addresses_next(lookup);
    return;
  }
  if (status != PST_DNS_NODATA)
    lookup_note(lookup, result);
  if (status == PST_DNS_NXDOMAIN || status == PST_DNS_INVALID)
    lookup_finish(lookup,
                  g_strdup_printf("550 5.4.4 Host or domain name not found: %s",
                                  lookup->last_problem));
  else if (lookup->tempfail)
    lookup_finish(lookup, g_strdup_printf("451 4.4.3 DNS lookup failed: %s",
                                          lookup->last_problem));
  else {
    g_ptr_array_add(lookup->names, g_strdup(name));
    addresses_next(lookup);
  }
}

void pst_route_lookup(PstDnsResolver *dns, const PstDeliveryConfig *delivery,
                      const char *domain, PstRouteFunc callback,
                      gpointer user_data) {
  Lookup *lookup = g_new0(Lookup, 1);
  lookup->dns = dns;
  lookup->delivery = delivery;
  lookup->domain = g_strdup(domain);
  lookup->name = g_ascii_strdown(
      delivery->relayhost_host != NULL ? delivery->relayhost_host : domain, -1);
  lookup->hosts =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_route_host_free);
  lookup->names = g_ptr_array_new_with_free_func(g_free);
  lookup->callback = callback;
  lookup->user_data = user_data;
  char *remembered = route_dead_check(lookup->name);
  if (remembered != NULL) {
    /* Not noted again: the memory keeps its first deadline. */
    lookup->callback(NULL, remembered, lookup->user_data);
    lookup_free(lookup);
    return;
  }
  if (delivery->relayhost_host != NULL && !delivery->relayhost_mx) {
    lookup->port = delivery->relayhost_port;
    g_ptr_array_add(lookup->names, g_strdup(delivery->relayhost_host));
    addresses_next(lookup);
    return;
  }
  const char *name =
      delivery->relayhost_host != NULL ? delivery->relayhost_host : domain;
  lookup->port = delivery->relayhost_host != NULL
                     ? delivery->relayhost_port
                     : (guint16)delivery->smtp_port;
  pst_dns_lookup_on(lookup->dns, PST_DNS_TYPE_MX, name, PST_DNS_LOOKUP_DEFAULT,
                    NULL, mx_answer, lookup);
}
