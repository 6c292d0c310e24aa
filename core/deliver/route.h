/* route.h - where outbound SMTP goes: the hosts to try for one
 * destination, in order.
 *
 * A destination is a recipient domain (its MX hosts, RFC 5321 section 5)
 * or the configured relayhost.  pst_route_lookup() asks the core DNS
 * service (pst_dns_lookup_sync(): worker threads only) and applies the
 * rules: MX hosts by preference, in random order among equal preferences
 * (pst_route_order_mx(), pure); no MX record -> the domain's own A/AAAA
 * (implicit MX); a null MX (RFC 7505, a sole "." exchange) -> refused at
 * once; each host's IPv6 then IPv4 addresses; at most ROUTE_ADDRESSES_MAX
 * addresses in all.  "[host]:port" relayhosts skip the MX lookup.
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"

G_BEGIN_DECLS

typedef struct {
  char *name;            /* owned: the MX exchange or relayhost name */
  GInetAddress *address; /* owned */
  guint16 port;
} PstRouteHost;

void pst_route_host_free(PstRouteHost *host);

typedef struct {
  guint16 preference;
  char *name; /* owned */
} PstMxRecord;

/* Sorts `records` (of PstMxRecord) by preference, shuffling equal ones
 * with `rand`.  Pure but for `rand`. */
void pst_route_order_mx(GArray *records, GRand *rand);

/* The hosts for `domain` (or the relayhost when one is configured), or
 * NULL with `failure_r` set to a reply for every recipient: "556 5.1.10
 * ..." (null MX), "550 5.4.4 ..." (no such domain, no address), "451
 * 4.4.3 ..." (DNS failure: try later).  A temporary failure is remembered
 * for the destination for delivery->retry_first_ms (at most a minute) and
 * returned again meanwhile without a lookup.  Blocking; worker threads. */
GPtrArray *pst_route_lookup(const PstDeliveryConfig *delivery,
                            const char *domain, char **failure_r);

/* "mx.example.net[192.0.2.1]:25" (a new string). */
char *pst_route_host_describe(const PstRouteHost *host);

G_END_DECLS
