/* spf-cache.c - the plugin's small cache of DNS answers, kept for their
 * TTL.
 *
 * Every check asks the core's resolver the same questions again (the
 * sender domain's TXT record, the names its record includes), and each
 * lookup goes through the resolver's thread and back, even when the
 * answer is in its cache: for a record of ip4/ip6 terms that round trip
 * cost more CPU than the rest of the check.  This cache keeps, on the main
 * thread, what the resolver answered: records, NXDOMAIN and NODATA with a
 * TTL above 0 (never a failure), for that TTL (at most an hour), so the
 * next check with the same question is answered without a lookup.
 *
 * Bounded: at most `max_entries` answers of at most SPF_CACHE_MAX_RECORDS
 * records and SPF_CACHE_MAX_OCTETS octets each; when full, the expired
 * entries go, and if none had, all of them (the next checks fill it
 * again).  Names are compared case-insensitively (DNS), as octets
 * otherwise (names built by macros are looked up verbatim).  A lookup
 * hands out a reference to the kept answer, which stays read only.
 * Reference counted: a lookup still out when the plugin is unloaded keeps
 * it.
 * Main thread only.  Callers: spf-child.c (spf_lookup_core()), spf.c,
 * test-spf-wire.c.
 */
#include <string.h>

#include "spf.h"

#define SPF_CACHE_MAX_TTL_S 3600
#define SPF_CACHE_MAX_RECORDS 32
#define SPF_CACHE_MAX_OCTETS 8192

struct SpfAnswerCache {
  gint ref_count;
  guint max_entries;
  GHashTable *entries; /* "TYPE NAME" (owned) -> SpfCacheEntry (owned) */
};

typedef struct {
  SpfAnswer *answer; /* owned */
  gint64 expires;    /* monotonic microseconds */
} SpfCacheEntry;

static void spf_cache_entry_free(gpointer data) {
  SpfCacheEntry *entry = data;
  spf_answer_unref(entry->answer);
  g_free(entry);
}

SpfAnswerCache *spf_answer_cache_new(guint max_entries) {
  SpfAnswerCache *cache = g_new0(SpfAnswerCache, 1);
  cache->ref_count = 1;
  cache->max_entries = MAX(max_entries, 1);
  cache->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         spf_cache_entry_free);
  return cache;
}

SpfAnswerCache *spf_answer_cache_ref(SpfAnswerCache *cache) {
  cache->ref_count++;
  return cache;
}

void spf_answer_cache_unref(SpfAnswerCache *cache) {
  if (cache == NULL || --cache->ref_count > 0)
    return;
  g_hash_table_unref(cache->entries);
  g_free(cache);
}

void spf_answer_cache_clear(SpfAnswerCache *cache) {
  g_hash_table_remove_all(cache->entries);
}

guint spf_answer_cache_get_size(SpfAnswerCache *cache) {
  return g_hash_table_size(cache->entries);
}

/* "TYPE name" with the name in lower case: one allocation, no format
 * (this runs for every check). */
static char *spf_cache_key(PstDnsType type, const char *name) {
  char number[16];
  gsize digits = 0;
  for (guint value = (guint)type; digits == 0 || value > 0; value /= 10)
    number[digits++] = (char)('0' + value % 10);
  gsize length = strlen(name);
  char *key = g_malloc(digits + 1 + length + 1);
  char *p = key;
  while (digits > 0)
    *p++ = number[--digits];
  *p++ = ' ';
  for (gsize i = 0; i < length; i++)
    p[i] = g_ascii_tolower(name[i]);
  p[length] = '\0';
  return key;
}

static SpfAnswer *spf_answer_copy(const SpfAnswer *answer) {
  SpfAnswer *copy = spf_answer_new(answer->status);
  for (guint i = 0; i < answer->records->len; i++)
    g_ptr_array_add(copy->records,
                    g_strdup(g_ptr_array_index(answer->records, i)));
  return copy;
}

SpfAnswer *spf_answer_cache_lookup(SpfAnswerCache *cache, PstDnsType type,
                                   const char *name, gint64 now) {
  g_autofree char *key = spf_cache_key(type, name);
  SpfCacheEntry *entry = g_hash_table_lookup(cache->entries, key);
  if (entry == NULL)
    return NULL;
  if (now >= entry->expires) {
    g_hash_table_remove(cache->entries, key);
    return NULL;
  }
  /* Shared, not copied: a check reads its answers only (each copy cost
   * an allocation per record, the answer and its array). */
  return spf_answer_ref(entry->answer);
}

/* Worth keeping: an answer (not a failure), small enough. */
static gboolean spf_cache_is_keepable(const SpfAnswer *answer, guint32 ttl) {
  if (ttl == 0 || (answer->status != PST_DNS_OK &&
                   answer->status != PST_DNS_NXDOMAIN &&
                   answer->status != PST_DNS_NODATA))
    return FALSE;
  if (answer->records->len > SPF_CACHE_MAX_RECORDS)
    return FALSE;
  gsize octets = 0;
  for (guint i = 0; i < answer->records->len; i++)
    octets += strlen(g_ptr_array_index(answer->records, i));
  return octets <= SPF_CACHE_MAX_OCTETS;
}

static gboolean spf_cache_entry_is_expired(gpointer key, gpointer value,
                                           gpointer now) {
  (void)key;
  const SpfCacheEntry *entry = value;
  return *(const gint64 *)now >= entry->expires;
}

void spf_answer_cache_store(SpfAnswerCache *cache, PstDnsType type,
                            const char *name, const SpfAnswer *answer,
                            guint32 ttl, gint64 now) {
  if (!spf_cache_is_keepable(answer, ttl))
    return;
  if (g_hash_table_size(cache->entries) >= cache->max_entries) {
    g_hash_table_foreach_remove(cache->entries, spf_cache_entry_is_expired,
                                &now);
    if (g_hash_table_size(cache->entries) >= cache->max_entries)
      g_hash_table_remove_all(cache->entries);
  }
  SpfCacheEntry *entry = g_new0(SpfCacheEntry, 1);
  entry->answer = spf_answer_copy(answer);
  entry->expires = now + (gint64)MIN(ttl, SPF_CACHE_MAX_TTL_S) * G_USEC_PER_SEC;
  g_hash_table_replace(cache->entries, spf_cache_key(type, name), entry);
}
