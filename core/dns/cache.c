/* cache.c - one resolver's answer cache, in front of libunbound.
 *
 * Entry points: pst_dns_cache_lookup() and pst_dns_cache_store() (lookup.c,
 * under its service lock: async lookups on the main thread, blocking ones
 * on workers; answers are stored on the main thread, in on_answer()).
 *
 * Why: libunbound caches too, but asking it costs a round trip through
 * its thread and pipe (a write, a wakeup, a read, ub_process()), about
 * 50 us of CPU per lookup even for a cached name, and each connection
 * asks two (PTR and the forward confirmation).  A hit here costs a hash
 * lookup and a copy of the result that shares its records.
 *
 * Invariants:
 *  - An entry is kept for the answer's TTL, capped at
 *    PST_DNS_CACHE_MAX_TTL; negative answers (NXDOMAIN, NODATA) for the
 *    TTL libunbound reports for them (the SOA's negative TTL, RFC 2308).
 *    TEMPFAIL (timeouts, SERVFAIL, bogus DNSSEC) is never kept; neither is
 *    an answer with TTL 0 ([dns] cache_size = 0 makes every TTL 0).
 *  - The DNSSEC status travels with the answer (it is part of the result).
 *  - `entries` and `bytes` stay within the bounds: the least recently
 *    used entries go first.  An expired entry goes when it is next found.
 *  - The key is the type and the query without a final dot, exactly (so
 *    a hit's answer packet carries the question as it was asked).
 *  - One cache per resolver (one generation's [dns]): a reload's new
 *    resolver starts empty, and answers never cross configurations.
 */
#define G_LOG_DOMAIN "postilion"

#include <string.h>

#include "dns/cache.h"
#include "dns/result.h"

/* A table key: the type and the query without a final dot.  Lookups use
 * one on the stack (no allocation per hit). */
typedef struct {
  PstDnsType type;
  const char *name; /* not NUL-terminated at `length` */
  gsize length;
} CacheKey;

typedef struct {
  CacheKey key;         /* the table's key; its name is `name` */
  char *name;           /* owned */
  PstDnsResult *result; /* owned: as first asked, with its full TTL */
  gint64 expires;       /* monotonic microseconds */
  gsize bytes;
  GList link; /* in `lru`, most recently used first */
} CacheEntry;

struct _PstDnsCache {
  GHashTable *entries; /* CacheKey* (in the entry) -> owned CacheEntry* */
  GQueue lru;          /* of the entries' links */
  guint max_entries;
  gsize max_bytes;
  gsize bytes;
};

static void entry_free(gpointer data) {
  CacheEntry *entry = data;
  g_free(entry->name);
  pst_dns_result_free(entry->result);
  g_free(entry);
}

static guint cache_key_hash(gconstpointer data) {
  const CacheKey *key = data;
  guint hash = 5381u + (guint)key->type;
  for (gsize i = 0; i < key->length; i++)
    hash = hash * 33u + (guchar)key->name[i];
  return hash;
}

static gboolean cache_key_equal(gconstpointer a, gconstpointer b) {
  const CacheKey *left = a, *right = b;
  return left->type == right->type && left->length == right->length &&
         memcmp(left->name, right->name, left->length) == 0;
}

PstDnsCache *pst_dns_cache_new(guint max_entries, gsize max_bytes) {
  PstDnsCache *cache = g_new0(PstDnsCache, 1);
  cache->entries =
      g_hash_table_new_full(cache_key_hash, cache_key_equal, NULL, entry_free);
  g_queue_init(&cache->lru);
  cache->max_entries = max_entries;
  cache->max_bytes = max_bytes;
  return cache;
}

void pst_dns_cache_free(PstDnsCache *cache) {
  if (cache == NULL)
    return;
  g_hash_table_unref(cache->entries);
  g_free(cache);
}

static CacheKey cache_key(PstDnsType type, const char *query) {
  gsize length = strlen(query);
  if (length > 1 && query[length - 1] == '.')
    length--;
  return (CacheKey){type, query, length};
}

static void cache_remove(PstDnsCache *cache, CacheEntry *entry) {
  g_queue_unlink(&cache->lru, &entry->link);
  cache->bytes -= entry->bytes;
  g_hash_table_remove(cache->entries, &entry->key); /* frees the entry */
}

PstDnsResult *pst_dns_cache_lookup(PstDnsCache *cache, PstDnsType type,
                                   const char *query, const char *name,
                                   gint64 now) {
  g_return_val_if_fail(cache != NULL && query != NULL && name != NULL, NULL);
  CacheKey key = cache_key(type, query);
  CacheEntry *entry = g_hash_table_lookup(cache->entries, &key);
  if (entry == NULL)
    return NULL;
  if (entry->expires <= now) {
    cache_remove(cache, entry);
    return NULL;
  }
  g_queue_unlink(&cache->lru, &entry->link);
  g_queue_push_head_link(&cache->lru, &entry->link);
  /* Whole seconds left, rounded up: a fresh entry never reads 0. */
  guint32 left = (guint32)((entry->expires - now + G_USEC_PER_SEC - 1) /
                           G_USEC_PER_SEC);
  return pst_dns_result_copy_as(entry->result, name, left);
}

static gboolean result_is_cacheable(const PstDnsResult *result) {
  PstDnsStatus status = pst_dns_result_get_status(result);
  return (status == PST_DNS_OK || status == PST_DNS_NXDOMAIN ||
          status == PST_DNS_NODATA) &&
         !pst_dns_result_is_bogus(result) && pst_dns_result_get_ttl(result) > 0;
}

void pst_dns_cache_store(PstDnsCache *cache, const char *query,
                         const PstDnsResult *result, gint64 now) {
  g_return_if_fail(cache != NULL && query != NULL && result != NULL);
  if (!result_is_cacheable(result) || cache->max_entries == 0)
    return;
  gsize bytes = pst_dns_result_get_size(result);
  if (bytes > cache->max_bytes)
    return;
  CacheKey key = cache_key(pst_dns_result_get_type(result), query);
  CacheEntry *old = g_hash_table_lookup(cache->entries, &key);
  if (old != NULL)
    cache_remove(cache, old);
  guint32 ttl = MIN(pst_dns_result_get_ttl(result), PST_DNS_CACHE_MAX_TTL);
  CacheEntry *entry = g_new0(CacheEntry, 1);
  entry->name = g_strndup(query, key.length);
  entry->key = (CacheKey){key.type, entry->name, key.length};
  entry->result =
      pst_dns_result_copy_as(result, pst_dns_result_get_name(result), ttl);
  entry->expires = now + (gint64)ttl * G_USEC_PER_SEC;
  entry->bytes = bytes;
  entry->link.data = entry;
  g_hash_table_insert(cache->entries, &entry->key, entry);
  g_queue_push_head_link(&cache->lru, &entry->link);
  cache->bytes += bytes;
  while (cache->lru.length > cache->max_entries ||
         cache->bytes > cache->max_bytes)
    cache_remove(cache, g_queue_peek_tail(&cache->lru));
}

guint pst_dns_cache_get_entries(const PstDnsCache *cache) {
  g_return_val_if_fail(cache != NULL, 0);
  return cache->lru.length;
}

gsize pst_dns_cache_get_bytes(const PstDnsCache *cache) {
  g_return_val_if_fail(cache != NULL, 0);
  return cache->bytes;
}
