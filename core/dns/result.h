/* result.h - building PstDnsResult values (internal to core/dns).
 *
 * The SDK accessors are declared in <postilion/dns.h> and implemented in
 * result.c next to these constructors.
 */
#pragma once

#include <postilion/dns.h>

G_BEGIN_DECLS

struct ub_result;

/* The result of a lookup that got no answer: `status` is TEMPFAIL,
 * INVALID or CANCELLED, `reason` says why (copied). */
PstDnsResult *pst_dns_result_new_status(PstDnsType type, const char *name,
                                        PstDnsStatus status,
                                        const char *reason);

/* Classifies a libunbound answer.  `ub_error` is the callback's err
 * argument; `ub` (nullable when ub_error != 0) is only read, the caller
 * still frees it.  Records that do not parse are dropped (logged at info);
 * an answer left without records is TEMPFAIL. */
PstDnsResult *pst_dns_result_new_from_unbound(PstDnsType type, const char *name,
                                              int ub_error,
                                              const struct ub_result *ub);

/* A copy of `result` with status CANCELLED and no records. */
PstDnsResult *pst_dns_result_new_cancelled(const PstDnsResult *result);

/* A copy of `result` (status, flags, records, packet) as the answer to
 * `name` with `ttl` seconds left: the cache's hits.  The records and the
 * packet are shared, not copied (a result never changes them). */
PstDnsResult *pst_dns_result_copy_as(const PstDnsResult *result,
                                     const char *name, guint32 ttl);

/* Octets `result` holds, roughly (strings, records, packet): what the
 * cache counts against its bound. */
gsize pst_dns_result_get_size(const PstDnsResult *result);

G_END_DECLS
