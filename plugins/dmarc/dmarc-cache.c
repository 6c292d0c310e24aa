/* dmarc-cache.c - the DNS answers the plugin asked for, kept for their
 * TTL, so that the messages of a busy sender domain do not each send the
 * same _dmarc questions through the core's resolver: there every lookup
 * is a hop to libunbound's thread and back through the main loop, which
 * cost more CPU than the whole DMARC evaluation (bench/README.md); with
 * every answer here, the hook decides without waiting at all.
 *
 * Bounds: an answer is kept for its TTL and at most DMARC_CACHE_MAX_TTL
 * seconds; TEMPFAIL, CANCELLED and INVALID answers and those of TTL 0 (the
 * core's cache is off: `[dns] cache_size = 0`) are not kept; a full cache
 * drops its expired answers, or all of them.  One cache per configuration
 * generation (the hooks' data, dmarc.c): a reload starts empty, so a
 * changed `[dns]` is honoured at once.  Main thread only; time is passed
 * in (monotonic seconds), so the unit tests need no clock.
 */
#include <string.h>

#include "dmarc.h"

struct _DmarcCache {
  gint refs;
  guint max_entries;
  GHashTable *answers; /* "TYPE NAME" -> DmarcCachedAnswer* */
};

static void dmarc_cached_answer_free(DmarcCachedAnswer *answer) {
  for (guint i = 0; i < answer->count; i++)
    g_free(answer->records[i]);
  g_free(answer->records);
  g_free(answer->lengths);
  g_free(answer->reason);
  g_free(answer);
}

DmarcCache *dmarc_cache_new(guint max_entries) {
  DmarcCache *cache = g_new0(DmarcCache, 1);
  cache->refs = 1;
  cache->max_entries = max_entries;
  cache->answers =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                            (GDestroyNotify)dmarc_cached_answer_free);
  return cache;
}

DmarcCache *dmarc_cache_ref(DmarcCache *cache) {
  cache->refs++;
  return cache;
}

void dmarc_cache_unref(DmarcCache *cache) {
  if (cache == NULL || --cache->refs > 0)
    return;
  g_hash_table_unref(cache->answers);
  g_free(cache);
}

guint dmarc_cache_size(const DmarcCache *cache) {
  return g_hash_table_size(cache->answers);
}

static gboolean dmarc_cache_expired(gpointer key, gpointer value,
                                    gpointer now) {
  const DmarcCachedAnswer *answer = value;
  return answer->expires <= *(const gint64 *)now;
}

/* Room for one more: the expired go, and everything when that is not
 * enough (rare: more names than max_entries within DMARC_CACHE_MAX_TTL). */
static void dmarc_cache_make_room(DmarcCache *cache, gint64 now) {
  if (g_hash_table_size(cache->answers) < cache->max_entries)
    return;
  g_hash_table_foreach_remove(cache->answers, dmarc_cache_expired, &now);
  if (g_hash_table_size(cache->answers) >= cache->max_entries)
    g_hash_table_remove_all(cache->answers);
}

void dmarc_cache_put(DmarcCache *cache, PstDnsType type, const char *name,
                     PstDnsStatus status, const char *const *records,
                     const gsize *lengths, guint count, const char *reason,
                     guint32 ttl, gint64 now) {
  gboolean final = status == PST_DNS_OK || status == PST_DNS_NXDOMAIN ||
                   status == PST_DNS_NODATA;
  if (!final || ttl == 0 || cache->max_entries == 0)
    return;
  dmarc_cache_make_room(cache, now);
  DmarcCachedAnswer *answer = g_new0(DmarcCachedAnswer, 1);
  answer->status = status;
  answer->count = count;
  answer->records = g_new0(char *, count + 1);
  answer->lengths = g_new0(gsize, count + 1);
  for (guint i = 0; i < count; i++) {
    /* TXT strings may hold NUL octets: copied by length */
    answer->records[i] = g_malloc(lengths[i] + 1);
    memcpy(answer->records[i], records[i], lengths[i]);
    answer->records[i][lengths[i]] = '\0';
    answer->lengths[i] = lengths[i];
  }
  answer->reason = g_strdup(reason);
  answer->expires = now + MIN(ttl, DMARC_CACHE_MAX_TTL);
  g_hash_table_replace(cache->answers, dmarc_question_key(type, name), answer);
}

const DmarcCachedAnswer *dmarc_cache_get(DmarcCache *cache, PstDnsType type,
                                         const char *name, gint64 now) {
  g_autofree char *key = dmarc_question_key(type, name);
  const DmarcCachedAnswer *answer = g_hash_table_lookup(cache->answers, key);
  if (answer == NULL || answer->expires > now)
    return answer;
  g_hash_table_remove(cache->answers, key);
  return NULL;
}
