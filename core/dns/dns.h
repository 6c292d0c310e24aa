/* dns.h - the core's DNS service: libunbound contexts on the main loop.
 *
 * The daemon calls pst_dns_start() once at startup, on the main thread
 * (whose thread-default GMainContext receives every answer), before it
 * drops privileges: the first context reads /etc/resolv.conf and the
 * trust anchor then.  Each configuration generation carries a
 * PstDnsResolver (one context built from its `[dns]` group): the start's
 * one, or on SIGHUP one made by pst_dns_resolver_open() from the new
 * group.  Sessions and delivery jobs look names up on their generation's
 * resolver (pst_dns_lookup_on()), so a reload gives new sessions and jobs
 * the new resolver while those on the old generation keep theirs; a
 * resolver no generation holds any more is deleted once its last answer
 * is in.  Each resolver keeps the answers it got, for their TTL, in an
 * answer cache of its own (cache.c): a new resolver starts empty.
 * pst_dns_stop() at shutdown ends every lookup still in flight
 * with PST_DNS_TEMPFAIL ("resolver stopped"): async callbacks run from
 * inside it, so call it while the plugins are still loaded.
 *
 * Plugins look names up through the SDK functions of <postilion/dns.h>,
 * which take no resolver: a lookup started while a hook runs goes to the
 * resolver of the call's generation (the chain hands it over through
 * pst_dns_scope_enter()), one started from a DNS callback to the resolver
 * that answered, any other to the default resolver (the current
 * generation's, pst_dns_set_default()); pst_dns_lookup_sync(), on worker
 * threads, uses the default resolver.
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

/* One libunbound context built from one [dns] group (resolver.c). */
typedef struct _PstDnsResolver PstDnsResolver;

/* Creates the default resolver from `config`.  Main thread; once (until
 * stop). */
gboolean pst_dns_start(const PstDnsConfig *config, GError **error);

/* A new resolver built from `config` (resolv.conf and the trust anchor are
 * read now), held once for the caller: release it with
 * pst_dns_resolver_release().  NULL with `error` naming the key when the
 * configuration is unusable.  Main thread, after pst_dns_start(). */
PstDnsResolver *pst_dns_resolver_open(const PstDnsConfig *config,
                                      GError **error);
/* Holds `resolver` once more (a generation made with it).  Any thread. */
PstDnsResolver *pst_dns_resolver_hold(PstDnsResolver *resolver);
/* Drops one hold.  When nobody holds it any more its context is deleted,
 * from the main loop, once its last lookup has ended.  Any thread. */
void pst_dns_resolver_release(PstDnsResolver *resolver);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDnsResolver, pst_dns_resolver_release)

/* The resolver lookups without a generation use (the SDK's outside a
 * hook, pst_dns_lookup_sync(), the tools); borrowed, NULL when stopped. */
PstDnsResolver *pst_dns_get_default(void);
/* Makes `resolver` the default (the service holds it) and logs it when it
 * replaces another.  Main thread. */
void pst_dns_set_default(PstDnsResolver *resolver);

/* Replaces the default resolver by one built from `config`.  On failure
 * the old one stays in service and `error` says why.  Main thread. */
gboolean pst_dns_reconfigure(const PstDnsConfig *config, GError **error);

/* pst_dns_lookup_full() on `resolver` (nullable: the default; a resolver
 * already deleted: the default).  Main thread. */
void pst_dns_lookup_on(PstDnsResolver *resolver, PstDnsType type,
                       const char *name, PstDnsLookupFlags flags,
                       GCancellable *cancellable, PstDnsCallback callback,
                       gpointer user_data);

/* The answer `resolver`'s cache (nullable or deleted: the default's)
 * holds for `name` and `type`, fresh now, as a new result; NULL when
 * there is none (a query is needed: pst_dns_lookup_on()).  For a caller
 * that goes on at once with what is known, instead of a main-loop
 * iteration per answer.  Counted as a cache hit.  Main thread. */
PstDnsResult *pst_dns_lookup_cached_on(PstDnsResolver *resolver,
                                       PstDnsType type, const char *name);

/* Until the matching pst_dns_scope_leave(), the SDK's pst_dns_lookup()
 * and pst_dns_lookup_full() use `resolver` (nullable: no change); returns
 * what to hand to pst_dns_scope_leave().  The hooks module wraps each hook
 * function in it.  Main thread; scopes nest. */
PstDnsResolver *pst_dns_scope_enter(PstDnsResolver *resolver);
void pst_dns_scope_leave(PstDnsResolver *previous);

/* Ends every lookup in flight and deletes the contexts.  Main thread, not
 * from inside a DNS callback.  pst_dns_start() may be called again. */
void pst_dns_stop(void);

/* Counters for `postilion status` and the tests. */
typedef struct {
  guint in_flight;   /* lookups sent to libunbound, not yet answered */
  guint contexts;    /* libunbound contexts alive (held or retiring) */
  guint64 lookups;   /* lookups sent to libunbound since pst_dns_start() */
  guint64 cache_hits; /* lookups answered from a resolver's answer cache */
  guint64 timeouts;  /* lookups ended by [dns] timeout */
  guint64 cancelled; /* lookups ended by their cancellable */
} PstDnsStats;
void pst_dns_get_stats(PstDnsStats *stats);

G_END_DECLS
