/* scope.c - which resolver the SDK's pst_dns_lookup() uses right now.
 *
 * The SDK's lookup functions take no resolver, so the core says which
 * generation's resolver is meant while it runs code on that generation's
 * behalf: the hooks module around each hook function (call.c), lookup.c
 * around each DNS callback (the resolver that answered).  Scopes nest;
 * outside every scope the lookup goes to the default resolver.  Main
 * thread only: worker threads' blocking lookups use the default.  Kept
 * apart from lookup.c so that the hooks module (and its unit test) needs
 * nothing else of the DNS service.
 */
#include "dns/resolver.h"

static PstDnsResolver *scope; /* main thread, borrowed, nullable */

PstDnsResolver *pst_dns_scope_enter(PstDnsResolver *resolver) {
  PstDnsResolver *previous = scope;
  if (resolver != NULL)
    scope = resolver;
  return previous;
}

void pst_dns_scope_leave(PstDnsResolver *previous) {
  scope = previous;
}

PstDnsResolver *pst_dns_scope_get(void) {
  return scope;
}
