/* dns.h - the core's DNS service: one libunbound context on the main loop.
 *
 * The daemon calls pst_dns_start() once at startup, on the main thread
 * (whose thread-default GMainContext receives every answer), before it
 * drops privileges: the context reads /etc/resolv.conf and the trust
 * anchor then and never opens a file again.  pst_dns_reconfigure() on
 * SIGHUP builds a new context from the new `[dns]` group; lookups already
 * sent finish on the old one, which is deleted when its last answer is in.
 * pst_dns_stop() at shutdown ends every lookup still in flight with
 * PST_DNS_TEMPFAIL ("resolver stopped"): async callbacks run from inside
 * it, so call it while the plugins are still loaded.
 *
 * Plugins (and the core) look names up through the SDK functions of
 * <postilion/dns.h>; the in-core users (the client's reverse name, MX
 * lookups for delivery) use the same functions.
 *
 * What the context is configured with, and why, is in resolver.c.
 */
#pragma once

#include <postilion/dns.h>

#include "config/config.h"

G_BEGIN_DECLS

#define PST_DNS_ERROR (pst_dns_error_quark())
GQuark pst_dns_error_quark(void);
typedef enum {
  PST_DNS_ERROR_CONFIG,       /* a [dns] value libunbound refuses */
  PST_DNS_ERROR_RESOLV_CONF,  /* /etc/resolv.conf unreadable or unusable */
  PST_DNS_ERROR_TRUST_ANCHOR, /* dnssec=yes without a usable trust anchor */
  PST_DNS_ERROR_UNBOUND,      /* libunbound failed to start */
} PstDnsError;

/* Creates the resolver from `config`.  Main thread; once (until stop). */
gboolean pst_dns_start(const PstDnsConfig *config, GError **error);

/* Replaces the resolver by one built from `config`.  On failure the old
 * one stays in service and `error` says why.  Main thread. */
gboolean pst_dns_reconfigure(const PstDnsConfig *config, GError **error);

/* Ends every lookup in flight and deletes the contexts.  Main thread, not
 * from inside a DNS callback.  pst_dns_start() may be called again. */
void pst_dns_stop(void);

/* Counters for `postilion status` and the tests. */
typedef struct {
  guint in_flight;   /* lookups sent to libunbound, not yet answered */
  guint contexts;    /* libunbound contexts alive (current + retiring) */
  guint64 lookups;   /* lookups started since pst_dns_start() */
  guint64 timeouts;  /* lookups ended by [dns] timeout */
  guint64 cancelled; /* lookups ended by their cancellable */
} PstDnsStats;
void pst_dns_get_stats(PstDnsStats *stats);

G_END_DECLS
