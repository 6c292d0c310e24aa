/* resolver.h - one configured libunbound context and its main-loop watch
 * (internal to core/dns).
 */
#pragma once

#include <unbound.h>

#include "config/config.h"
#include "dns/cache.h"
#include "dns/dns.h"

G_BEGIN_DECLS

struct _PstDnsResolver {
  gint ref_count;          /* atomic */
  struct ub_ctx *ctx;      /* owned, nullable: NULL once closed.  Other threads
                            * use it only under lookup.c's service lock. */
  GSource *watch;          /* owned, nullable: ub_fd() on the main context */
  guint timeout_ms;        /* [dns] timeout */
  gboolean validating;     /* a trust anchor is loaded */
  gboolean cache_disabled; /* [dns] cache_size = 0 */
  PstDnsCache *cache;      /* owned, nullable (cache_size 0, or closed):
                            * answers in front of libunbound, used under
                            * lookup.c's service lock */
  char *description;       /* owned: for the log line at start */
  GHashTable *requests;    /* owned: lookups inside libunbound (lookup.c) */
  guint users;             /* lookup.c's lock: holds (generations, the
                            * service's default); 0: retiring */
  gboolean dispatching;    /* inside ub_process(): closing is a bug */
};

/* Creates and finalizes a context from `config` (reading resolv.conf and
 * the trust anchor now) and watches its fd on `context`: when answers are
 * ready the watch runs ub_process(), which calls the lookups' callbacks. */
PstDnsResolver *pst_dns_resolver_new(const PstDnsConfig *config,
                                     GMainContext *context, GError **error);

/* Memory references (requests, holders); distinct from the holds of
 * dns.h, which keep the context open. */
PstDnsResolver *pst_dns_resolver_ref(PstDnsResolver *resolver);
/* The last unref frees the struct; it must be closed by then. */
void pst_dns_resolver_unref(PstDnsResolver *resolver);

/* Deletes the context (outstanding queries are dropped without callback)
 * and the watch.  Main thread, never from inside ub_process(). */
void pst_dns_resolver_close(PstDnsResolver *resolver);

/* The resolver of the innermost pst_dns_scope_enter() (scope.c),
 * nullable.  Main thread. */
PstDnsResolver *pst_dns_scope_get(void);

/* The outbound-msg-retry value used for a given [dns] timeout. */
guint pst_dns_resolver_retries_for_timeout(guint timeout_ms);

G_END_DECLS
