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
#include <spf2/spf_record.h>
#include <spf2/spf_server.h>

#include "spf.h"

typedef struct _SpfDnsLayer SpfDnsLayer;

SpfDnsLayer *spf_dns_layer_new(const SpfQuery *query);
void spf_dns_layer_free(SpfDnsLayer *layer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfDnsLayer, spf_dns_layer_free)

/* The layer as libspf2 wants it (owned by the layer; destroy is NULL, so
 * SPF_server_free() leaves it alone). */
SPF_dns_server_t *spf_dns_layer_get_server(SpfDnsLayer *layer);
/* The request being evaluated and the explanation macro-string used when
 * a domain's exp= gives none: get_exp() expands with them.  Set before
 * the query. */
void spf_dns_layer_set_request(SpfDnsLayer *layer, SPF_request_t *request,
                               const char *default_explanation);
/* Why the evaluation is a permerror libspf2 did not see: an RFC 7208
 * section 4.6.4 limit exceeded, or a record spf_record_prepare() refused;
 * NULL when none. */
const char *spf_dns_layer_get_problem(SpfDnsLayer *layer);
guint spf_dns_layer_get_lookups(SpfDnsLayer *layer);
guint spf_dns_layer_get_voids(SpfDnsLayer *layer);
