/* route.h - where outbound SMTP goes: the hosts to try for one
 * destination, in order.
 *
 * A destination is a recipient domain (its MX hosts, RFC 5321 section 5)
 * or the configured relayhost.  pst_route_lookup() asks the core DNS
 * service (asynchronously, on the main loop) and applies the
 * rules: MX hosts by preference, in random order among equal preferences
 * (pst_route_order_mx(), pure); no MX record -> the domain's own A/AAAA
 * (implicit MX); a null MX (RFC 7505, a sole "." exchange) -> refused at
 * once; each host's IPv6 then IPv4 addresses; at most ROUTE_ADDRESSES_MAX
 * addresses in all.  "[host]:port" relayhosts skip the MX lookup.
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "dns/dns.h"

G_BEGIN_DECLS

typedef struct {
  char *name;            /* owned: the MX exchange or relayhost name */
  GInetAddress *address; /* owned */
  guint16 port;
  char *description; /* owned, nullable: pst_route_host_describe()'s,
                      * when known in advance (a literal relayhost) */
} PstRouteHost;

void pst_route_host_free(PstRouteHost *host);

typedef struct {
  guint16 preference;
  char *name; /* owned */
} PstMxRecord;

/* Sorts `records` (of PstMxRecord) by preference, shuffling equal ones
 * with `rand`.  Pure but for `rand`. */
void pst_route_order_mx(GArray *records, GRand *rand);

/* The end of a lookup: the hosts (of PstRouteHost*, owned by the callee),
 * or NULL and `failure` (owned by the callee), a reply for every
 * recipient. */
typedef void (*PstRouteFunc)(GPtrArray *hosts, char *failure,
                             gpointer user_data);

/* Looks up the hosts for `domain` (or the relayhost when `delivery` names
 * one) on `dns` (the delivery's generation's resolver, nullable: the
 * default; `dns` and `delivery` are borrowed until the callback).
 * Failures: "556 5.1.10 ..." (null MX), "550 5.4.4 ..." (no such domain,
 * no address), "451 4.4.3 ..." (DNS failure: try later).  A temporary
 * failure is remembered for the destination for delivery->retry_first_ms
 * (at most a minute) and returned again meanwhile without a lookup.  The callback runs exactly
 * once, possibly before this returns.  Main thread. */
void pst_route_lookup(PstDnsResolver *dns, const PstDeliveryConfig *delivery,
                      const char *domain, PstRouteFunc callback,
                      gpointer user_data);

/* "mx.example.net[192.0.2.1]:25" (a new string). */
char *pst_route_host_describe(const PstRouteHost *host);

G_END_DECLS
