/* cache.h - one resolver's answer cache (internal to core/dns).
 *
 * Not thread-safe: lookup.c uses it under its service lock.
 */
#pragma once

#include <postilion/dns.h>

G_BEGIN_DECLS

/* Answers are kept at most this long, whatever their TTL. */
#define PST_DNS_CACHE_MAX_TTL 3600

typedef struct _PstDnsCache PstDnsCache;

/* An empty cache of at most `max_entries` answers and `max_bytes` octets
 * (pst_dns_result_get_size()). */
PstDnsCache *pst_dns_cache_new(guint max_entries, gsize max_bytes);
void pst_dns_cache_free(PstDnsCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDnsCache, pst_dns_cache_free)

/* The answer kept for `query` (the name as sent to libunbound) and
 * `type` if it is still fresh at `now` (monotonic microseconds), as a new
 * result for `name` (the name as the caller gave it) with the seconds it
 * has left as its TTL; NULL when there is none. */
PstDnsResult *pst_dns_cache_lookup(PstDnsCache *cache, PstDnsType type,
                                   const char *query, const char *name,
                                   gint64 now);

/* Keeps `result`, the answer to `query` received at `now`, for its TTL
 * (at most PST_DNS_CACHE_MAX_TTL) when it is an answer (OK, NXDOMAIN,
 * NODATA) with a TTL, evicting the least recently used answers beyond the
 * bounds.  Anything else is ignored: temporary failures, bogus answers,
 * TTL 0, an answer bigger than the whole cache. */
void pst_dns_cache_store(PstDnsCache *cache, const char *query,
                         const PstDnsResult *result, gint64 now);

guint pst_dns_cache_get_entries(const PstDnsCache *cache);
gsize pst_dns_cache_get_bytes(const PstDnsCache *cache);

G_END_DECLS
