/* spf-dns.h - libspf2's DNS layer over an SpfResolveFunc (spf-dns.c).
 *
 * One layer per evaluation (it counts that evaluation's lookups), used on
 * one thread.  Only spf-eval.c and the unit tests include this: it is the
 * one place besides spf-eval.c that sees libspf2's types.
 */
#pragma once

#include <netinet/in.h>
#include <arpa/nameser.h>
#include <netdb.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>

#include "spf.h"

typedef struct _SpfDnsLayer SpfDnsLayer;

SpfDnsLayer *spf_dns_layer_new(const SpfQuery *query);
void spf_dns_layer_free(SpfDnsLayer *layer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfDnsLayer, spf_dns_layer_free)

/* The layer as libspf2 wants it (owned by the layer; destroy is NULL, so
 * SPF_server_free() leaves it alone). */
SPF_dns_server_t *spf_dns_layer_get_server(SpfDnsLayer *layer);
/* The RFC 7208 section 4.6.4 limit that was exceeded (the evaluation is
 * then a permerror), or NULL. */
const char *spf_dns_layer_get_limit_problem(SpfDnsLayer *layer);
guint spf_dns_layer_get_lookups(SpfDnsLayer *layer);
guint spf_dns_layer_get_voids(SpfDnsLayer *layer);
