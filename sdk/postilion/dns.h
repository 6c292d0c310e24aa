/* postilion/dns.h - DNS lookups through the daemon's resolver.
 *
 * The core owns one asynchronous, caching, optionally DNSSEC-validating
 * resolver (libunbound, configured by the `[dns]` group) and every plugin
 * uses it instead of its own: SPF, DKIM, DMARC and DNSBL checks share one
 * cache, one timeout policy and one test mode (`[dns] nameservers =
 * 127.0.0.1@PORT` sends every query to a test server on loopback).
 *
 * Two ways to look a name up:
 *
 *  - pst_dns_lookup(), from the main thread (a hook callback, say): it
 *    never blocks, and calls `callback` later, on the main thread, exactly
 *    once per lookup: with the answer, with PST_DNS_TEMPFAIL after the
 *    configured `[dns] timeout`, or with PST_DNS_CANCELLED when the
 *    GCancellable was cancelled first.  The callback is never called from
 *    inside pst_dns_lookup() or g_cancellable_cancel(), so neither has to
 *    be reentrant.  Pass the call's cancellable (pst_call_get_cancellable())
 *    so that a client that disconnects cancels its lookups; the callback
 *    then still runs (with PST_DNS_CANCELLED) and is the place to release
 *    per-lookup state and to call pst_call_complete().
 *
 *  - pst_dns_lookup_sync(), from a worker thread only (libspf2's DNS
 *    callback, libopendkim's key lookup): blocks the calling thread until
 *    the answer, the timeout or the cancellation.  Any number of threads
 *    may call it at once.  Never call it on the main thread: the answers
 *    are delivered there, so it would wait for itself (it refuses, with a
 *    critical warning and PST_DNS_TEMPFAIL).
 *
 * Answers are classified, because mail policy depends on the difference:
 * PST_DNS_OK (records), PST_DNS_NXDOMAIN (the name does not exist),
 * PST_DNS_NODATA (the name exists, without records of that type) and
 * PST_DNS_TEMPFAIL (SERVFAIL, REFUSED, timeout, network error, DNSSEC
 * failure: try again later; SPF's temperror, DKIM's TEMPFAIL).  CNAME
 * chains are followed by the resolver; the records are those of the end of
 * the chain, whose name is pst_dns_result_get_canonical_name().
 *
 * Names are ASCII in presentation form without escapes ("example.com",
 * "sel._domainkey.example.com"; a final dot is allowed); convert
 * internationalised names with g_hostname_to_ascii() first.  A name that
 * cannot be a query (empty label, label over 63 octets, a space, a
 * backslash, non-ASCII) gives PST_DNS_INVALID without any query.
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* Record types, by their IANA numbers.  Other numbers may be passed too:
 * their records are then only available as raw RDATA. */
typedef enum {
  PST_DNS_TYPE_A = 1,
  PST_DNS_TYPE_NS = 2,
  PST_DNS_TYPE_CNAME = 5,
  PST_DNS_TYPE_PTR = 12,
  PST_DNS_TYPE_MX = 15,
  PST_DNS_TYPE_TXT = 16,
  PST_DNS_TYPE_AAAA = 28,
  PST_DNS_TYPE_TLSA = 52,
} PstDnsType;

typedef enum {
  PST_DNS_OK = 0,    /* at least one record of the type asked */
  PST_DNS_NXDOMAIN,  /* the name (or the end of its CNAME chain) does not exist
                      */
  PST_DNS_NODATA,    /* the name exists but has no record of that type */
  PST_DNS_TEMPFAIL,  /* SERVFAIL, REFUSED, timeout, network, DNSSEC bogus */
  PST_DNS_INVALID,   /* the name cannot be queried; nothing was sent */
  PST_DNS_CANCELLED, /* the cancellable was cancelled before the answer */
} PstDnsStatus;

/* One answer: status, flags and records.  Owned by whoever received it
 * (the callback, or the caller of pst_dns_lookup_sync()) and freed with
 * pst_dns_result_free(); it may be handed to and read from any thread, as
 * long as one thread at a time owns it.  Every pointer returned by an
 * accessor stays valid until the result is freed. */
typedef struct _PstDnsResult PstDnsResult;

/* Receives an answer on the main thread; `result` belongs to the callee. */
typedef void (*PstDnsCallback)(PstDnsResult *result, gpointer user_data);

/* Starts looking up `name` (see above for the form) for records of
 * `type`, and returns at once.  `cancellable` (nullable) may be cancelled
 * from any thread.  `callback` runs exactly once, on the main thread, from
 * the main loop; `user_data` is passed to it.  Main thread only. */
PST_API void pst_dns_lookup(PstDnsType type, const char *name,
                            GCancellable *cancellable, PstDnsCallback callback,
                            gpointer user_data);

/* Flags of pst_dns_lookup_full(). */
typedef enum {
  PST_DNS_LOOKUP_DEFAULT = 0,
  /* `name` is a name the caller built (an SPF domain-spec after macro
   * expansion, RFC 7208 section 7.3), looked up exactly as it is: any
   * octet but NUL may be in a label, a space, '%' and a backslash
   * included (each is an octet of the name, never an escape).  Labels
   * must still hold 1-63 octets and the name at most 253 (without a
   * final dot).  Not for names a client sent: those get the default
   * check. */
  PST_DNS_LOOKUP_VERBATIM = 1 << 0,
} PstDnsLookupFlags;

/* pst_dns_lookup() with `flags` (PstDnsLookupFlags).  Since 1.2. */
PST_API void pst_dns_lookup_full(PstDnsType type, const char *name,
                                 PstDnsLookupFlags flags,
                                 GCancellable *cancellable,
                                 PstDnsCallback callback, gpointer user_data);

/* Looks `name` up and blocks until the answer, `[dns] timeout` or the
 * cancellation of `cancellable` (nullable), whichever comes first.  Never
 * returns NULL.  Any thread except the main thread; thread-safe. */
PST_API PstDnsResult *pst_dns_lookup_sync(PstDnsType type, const char *name,
                                          GCancellable *cancellable);

/* Frees a result.  NULL is ignored. */
PST_API void pst_dns_result_free(PstDnsResult *result);

PST_API PstDnsStatus pst_dns_result_get_status(const PstDnsResult *result);
/* The type and the name as passed to the lookup. */
PST_API PstDnsType pst_dns_result_get_type(const PstDnsResult *result);
PST_API const char *pst_dns_result_get_name(const PstDnsResult *result);
/* The name the records belong to after following CNAMEs, without final
 * dot; the asked name when there was no CNAME. */
PST_API const char *
pst_dns_result_get_canonical_name(const PstDnsResult *result);
/* The DNS response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...)
 * or -1 when no response was received (timeout, cancelled, invalid). */
PST_API int pst_dns_result_get_rcode(const PstDnsResult *result);
/* A short text for logs and SMTP replies: "NXDOMAIN", "timeout after
 * 5000 ms", "DNSSEC validation failed: ..."; never NULL. */
PST_API const char *pst_dns_result_get_reason(const PstDnsResult *result);

/* TRUE when DNSSEC validation proved the answer (records, NXDOMAIN or
 * NODATA) authentic; FALSE when validation is off or the zone unsigned.
 * DANE (RFC 7672) must only use TLSA records of a secure answer. */
PST_API gboolean pst_dns_result_is_secure(const PstDnsResult *result);
/* TRUE when validation found the answer forged or broken; the status is
 * then PST_DNS_TEMPFAIL and there are no records. */
PST_API gboolean pst_dns_result_is_bogus(const PstDnsResult *result);
/* Seconds the answer may be cached (for negative answers, the SOA's
 * negative TTL); 0 for TEMPFAIL and friends, and when `[dns] cache_size`
 * is 0. */
PST_API guint32 pst_dns_result_get_ttl(const PstDnsResult *result);

/* Number of records (0 unless the status is PST_DNS_OK), in the order of
 * the answer (MX records are NOT sorted by preference). */
PST_API guint pst_dns_result_get_count(const PstDnsResult *result);
/* Record `index` as text: A/AAAA the address ("192.0.2.1", "2001:db8::1");
 * PTR, CNAME, NS the name without final dot; MX the exchange ("." for a
 * null MX); TXT the concatenation of its strings (see _get_txt() when a
 * NUL octet matters).  NULL for TLSA and other types. */
PST_API const char *pst_dns_result_get_string(const PstDnsResult *result,
                                              guint index);
/* TXT record `index`: its strings concatenated, NUL-terminated, and the
 * length (which counts any NUL octet inside).  NULL if not a TXT answer. */
PST_API const char *pst_dns_result_get_txt(const PstDnsResult *result,
                                           guint index, gsize *length);
/* MX record `index`: the preference (0 if not an MX answer). */
PST_API guint16 pst_dns_result_get_mx_preference(const PstDnsResult *result,
                                                 guint index);
/* A/AAAA record `index` as a new GInetAddress (NULL for other types). */
PST_API GInetAddress *pst_dns_result_get_address(const PstDnsResult *result,
                                                 guint index);
/* TLSA record `index`: FALSE if not a TLSA answer.  `data` points into the
 * result; any out-parameter may be NULL. */
PST_API gboolean pst_dns_result_get_tlsa(const PstDnsResult *result,
                                         guint index, guint8 *usage,
                                         guint8 *selector,
                                         guint8 *matching_type,
                                         const guint8 **data, gsize *length);
/* The raw RDATA of record `index`, for any type (never NULL, even for
 * an empty RDATA). */
PST_API const guint8 *pst_dns_result_get_rdata(const PstDnsResult *result,
                                               guint index, gsize *length);
/* The whole response in wire format (for libopendkim's resolver hooks);
 * NULL when no response was received. */
PST_API const guint8 *
pst_dns_result_get_answer_packet(const PstDnsResult *result, gsize *length);

/* "ok", "nxdomain", "nodata", "tempfail", "invalid", "cancelled". */
PST_API const char *pst_dns_status_to_string(PstDnsStatus status);
/* "A", "MX", ... or "TYPE99" for others (a static string for the known
 * types; others use a per-thread buffer valid until the next call). */
PST_API const char *pst_dns_type_to_string(PstDnsType type);

/* The reverse-lookup name of `address` under `zone`: with zone NULL the
 * PTR name ("4.3.2.1.in-addr.arpa", nibbles under "ip6.arpa"), otherwise
 * the DNSBL form ("4.3.2.1.zen.example.org").  IPv4-mapped IPv6 addresses
 * are taken as IPv4.  Free with g_free(). */
PST_API char *pst_dns_reverse_name(GInetAddress *address, const char *zone);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDnsResult, pst_dns_result_free)

G_END_DECLS
