/* spf-dns.c - libspf2's DNS layer over the core resolver, and the RFC 7208
 * section 4.6.4 limits libspf2 does not enforce across includes.
 *
 * libspf2 calls lookup() synchronously for every query; this layer asks
 * an SpfResolveFunc (in pst-spf-eval: a question to the plugin over its
 * socket, answered by the core's resolver; a table in the unit tests) and
 * turns the answer into libspf2's RR form.  spf_answer_from_dns_result()
 * makes the plugin's answer of a core resolver result.
 *
 * The limits.  libspf2 counts DNS mechanisms per record only, so nested
 * includes go past 10 (its issue #51), and it has no void-lookup limit.
 * The layer sees queries, not terms, so it classifies each query:
 *   - the first TXT query is the checked domain's own record: not a term;
 *   - every later TXT query is an include or redirect (one term);
 *   - MX and PTR queries are terms (mx, ptr, the %{p} macro);
 *   - the A/AAAA queries libspf2 makes right after an MX or PTR answer,
 *     for its names in order, belong to that term (libspf2 caps them at
 *     10 itself);
 *   - any other A/AAAA query is a term (a, exists).
 * A term past max_lookups, or a term's NXDOMAIN/NODATA past max_void (TXT
 * excepted: an include or redirect of nothing is a permerror anyway),
 * marks the layer and answers TRY_AGAIN, which makes libspf2 stop at
 * once; spf-eval.c then reports permerror with the layer's problem.
 * Every SPF record goes through spf_record_prepare() (spf-record.c, the
 * strict parser), whose permerrors are reported the same way.  An MX
 * answer of more than 10 names is a permerror the same way; a PTR answer
 * is cut to its first 10 names (section 4.6.4 says ignore the rest;
 * libspf2 would call it a permerror), and a PTR name whose addresses
 * fail to resolve is skipped (section 5.5), not a temperror.  A name
 * ending in SPF_ZERO_PREFIX_SUFFIX ("a/0", "mx/0" as spf-record.c
 * rewrites them) is looked up without it, and any address it has is
 * answered as the client's own.
 *
 * The exp= lookup does not go through lookup(): the layer's get_exp()
 * does it (so it is never counted) and expands the text itself with
 * libspf2's macro expander, because libspf2's own path leaks its answer
 * on every error, takes one of several records (section 6.2: several are
 * no explanation), and stops expanding at the first space.
 */
#include <string.h>

#include <arpa/inet.h>

#include "spf-dns.h"

#define SPF_MAX_PTR_NAMES 10
#define SPF_MAX_MX_NAMES 10

struct _SpfDnsLayer {
  SPF_dns_server_t server; /* server.hook points back here */
  const SpfQuery *query;   /* borrowed: outlives the layer */
  gboolean client_ipv6;    /* an IPv6 client (a mapped one is IPv4) */
  char *client_address;    /* owned: as the A or AAAA record it matches */
  gboolean seen_top_txt;
  guint lookups;
  guint voids;
  char *problem;       /* owned, nullable */
  GPtrArray *expected; /* owned: the last MX/PTR answer's names, whose
                        * addresses libspf2 asks next, in this order */
  guint next_expected;
  ns_type expected_from;  /* ns_t_mx or ns_t_ptr: the answer they came from */
  SPF_request_t *request; /* borrowed, nullable: for get_exp() */
  const char *default_explanation; /* borrowed: a macro-string */
};

typedef enum {
  SPF_QUERY_TOP,         /* the domain's own record */
  SPF_QUERY_TERM,        /* a DNS-querying term */
  SPF_QUERY_SUBORDINATE, /* an MX host's or PTR name's addresses */
} SpfQueryKind;

/* --- The core resolver's answers -------------------------------------- */

SpfAnswer *spf_answer_from_dns_result(PstDnsType type,
                                      const PstDnsResult *result) {
  SpfAnswer *answer = spf_answer_new(pst_dns_result_get_status(result));
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    gsize length = 0;
    const char *text = type == PST_DNS_TYPE_TXT
                           ? pst_dns_result_get_txt(result, i, &length)
                           : pst_dns_result_get_string(result, i);
    if (text == NULL)
      continue;
    char *copy = g_strdup(text);
    /* A NUL octet inside a TXT record would cut it short: it becomes DEL,
     * which no SPF record or explanation may hold (section 4.6.1). */
    if (type == PST_DNS_TYPE_TXT && strlen(text) != length) {
      g_free(copy);
      copy = g_memdup2(text, length + 1);
      for (gsize j = 0; j < length; j++)
        if (copy[j] == '\0')
          copy[j] = '\x7f';
    }
    g_ptr_array_add(answer->records, copy);
  }
  return answer;
}

/* --- Answers to libspf2 ------------------------------------------------- */

static int spf_dns_herrno(PstDnsStatus status) {
  switch (status) {
  case PST_DNS_OK:
    return NETDB_SUCCESS;
  case PST_DNS_NODATA:
    return NO_DATA;
  case PST_DNS_NXDOMAIN:
  case PST_DNS_INVALID: /* a name that cannot exist */
    return HOST_NOT_FOUND;
  case PST_DNS_TEMPFAIL:
  case PST_DNS_CANCELLED:
    break;
  }
  return TRY_AGAIN;
}

/* Fills record `n` of `rr` from `text`; FALSE to skip it. */
static gboolean spf_dns_fill(SPF_dns_rr_t *rr, int n, ns_type type,
                             const char *text) {
  switch (type) {
  case ns_t_a: {
    struct in_addr address;
    if (inet_pton(AF_INET, text, &address) != 1 ||
        SPF_dns_rr_buf_realloc(rr, n, sizeof address) != SPF_E_SUCCESS)
      return FALSE;
    rr->rr[n]->a = address;
    return TRUE;
  }
  case ns_t_aaaa: {
    struct in6_addr address;
    if (inet_pton(AF_INET6, text, &address) != 1 ||
        SPF_dns_rr_buf_realloc(rr, n, sizeof address) != SPF_E_SUCCESS)
      return FALSE;
    rr->rr[n]->aaaa = address;
    return TRUE;
  }
  case ns_t_mx:
  case ns_t_ptr:
  case ns_t_txt:
    if (type == ns_t_mx && strcmp(text, ".") == 0)
      return FALSE; /* a null MX names no host */
    if (SPF_dns_rr_buf_realloc(rr, n, strlen(text) + 1) != SPF_E_SUCCESS)
      return FALSE;
    /* The union's members all start at the same place. */
    memcpy(rr->rr[n]->txt, text, strlen(text) + 1);
    return TRUE;
  default:
    return FALSE;
  }
}

static SPF_dns_rr_t *spf_dns_rr_new(SpfDnsLayer *layer, const char *domain,
                                    ns_type type, const SpfAnswer *answer) {
  SPF_dns_rr_t *rr = SPF_dns_rr_new_init(&layer->server, domain, type, 0,
                                         spf_dns_herrno(answer->status));
  if (rr == NULL || answer->status != PST_DNS_OK)
    return rr;
  int n = 0;
  for (guint i = 0; i < answer->records->len; i++)
    if (spf_dns_fill(rr, n, type, answer->records->pdata[i]))
      n++;
  rr->num_rr = n;
  return rr;
}

static SPF_dns_rr_t *spf_dns_rr_try_again(SpfDnsLayer *layer,
                                          const char *domain, ns_type type) {
  return SPF_dns_rr_new_init(&layer->server, domain, type, 0, TRY_AGAIN);
}

/* --- Classification and limits ------------------------------------------ */

static char *spf_dns_name_key(const char *name) {
  char *key = g_ascii_strdown(name, -1);
  gsize length = strlen(key);
  if (length > 0 && key[length - 1] == '.')
    key[length - 1] = '\0';
  return key;
}

static SpfQueryKind spf_dns_classify(SpfDnsLayer *layer, const char *domain,
                                     ns_type type) {
  if (type == ns_t_txt && !layer->seen_top_txt) {
    layer->seen_top_txt = TRUE;
    return SPF_QUERY_TOP;
  }
  /* libspf2 asks for the addresses of an MX or PTR answer's names right
   * after it, in the answer's order: those belong to that term.  Anything
   * else starts a new term (so a name from an old answer counts again). */
  if ((type == ns_t_a || type == ns_t_aaaa) &&
      layer->next_expected < layer->expected->len) {
    g_autofree char *key = spf_dns_name_key(domain);
    if (strcmp(key, layer->expected->pdata[layer->next_expected]) == 0) {
      layer->next_expected++;
      return SPF_QUERY_SUBORDINATE;
    }
  }
  g_ptr_array_set_size(layer->expected, 0);
  layer->next_expected = 0;
  layer->expected_from = type;
  return SPF_QUERY_TERM;
}

/* Rewrites the answer's SPF records for libspf2 (spf-record.c); FALSE,
 * with the layer's problem set, when one is a permerror. */
static gboolean spf_dns_prepare_records(SpfDnsLayer *layer, SpfAnswer *answer) {
  for (guint i = 0; i < answer->records->len; i++) {
    if (!spf_record_text_is_spf(answer->records->pdata[i]))
      continue;
    char *problem = NULL;
    char *prepared = spf_record_prepare(answer->records->pdata[i],
                                        layer->client_ipv6, &problem);
    if (prepared == NULL) {
      if (layer->problem == NULL)
        layer->problem = problem;
      else
        g_free(problem);
      return FALSE;
    }
    g_free(answer->records->pdata[i]);
    answer->records->pdata[i] = prepared;
  }
  return TRUE;
}

static gboolean spf_answer_is_void(const SpfAnswer *answer) {
  return answer->status == PST_DNS_NXDOMAIN ||
         answer->status == PST_DNS_NODATA ||
         (answer->status == PST_DNS_OK && answer->records->len == 0);
}

static void spf_dns_exceed(SpfDnsLayer *layer, gboolean void_lookups) {
  const SpfQuery *query = layer->query;
  if (layer->problem != NULL)
    return;
  layer->problem =
      void_lookups
          ? g_strdup_printf("more than %u void DNS lookups", query->max_void)
          : g_strdup_printf("more than %u DNS-querying terms",
                            query->max_lookups);
}

/* Remembers the names libspf2 will look up next (it skips a null MX). */
static void spf_dns_remember(SpfDnsLayer *layer, ns_type type,
                             const SpfAnswer *answer) {
  if ((type != ns_t_mx && type != ns_t_ptr) || answer->status != PST_DNS_OK)
    return;
  for (guint i = 0; i < answer->records->len; i++) {
    const char *name = answer->records->pdata[i];
    if (!(type == ns_t_mx && strcmp(name, ".") == 0))
      g_ptr_array_add(layer->expected, spf_dns_name_key(name));
  }
}

static PstDnsType spf_dns_type(ns_type type) {
  return (PstDnsType)type; /* both are the IANA numbers */
}

/* The name without SPF_ZERO_PREFIX_SUFFIX (a new string), or NULL when
 * it does not end with it (spf-record.c puts it on "a/0" and "mx/0"). */
static char *spf_dns_strip_zero_prefix(const char *name) {
  g_autofree char *key = spf_dns_name_key(name);
  gsize length = strlen(key), suffix = strlen(SPF_ZERO_PREFIX_SUFFIX);
  if (length <= suffix ||
      strcmp(key + length - suffix, SPF_ZERO_PREFIX_SUFFIX) != 0)
    return NULL;
  return g_strndup(name, length - suffix);
}

/* A zero prefix matches any address (section 5.3): an MX answer's names
 * keep the suffix, so their address lookups come back here, and any
 * address of the client's family becomes the client's own. */
static void spf_dns_apply_zero_prefix(SpfDnsLayer *layer, ns_type type,
                                      SpfAnswer *answer) {
  if (answer->status != PST_DNS_OK || answer->records->len == 0)
    return;
  GPtrArray *records = answer->records;
  if (type == ns_t_mx) {
    for (guint i = 0; i < records->len; i++) {
      g_autofree char *name = spf_dns_name_key(records->pdata[i]);
      if (name[0] == '\0')
        continue; /* a null MX */
      g_free(records->pdata[i]);
      records->pdata[i] = g_strconcat(name, SPF_ZERO_PREFIX_SUFFIX, NULL);
    }
  } else if (type == (layer->client_ipv6 ? ns_t_aaaa : ns_t_a)) {
    g_ptr_array_set_size(records, 0);
    g_ptr_array_add(records, g_strdup(layer->client_address));
  }
}

/* Section 4.6.4: more than 10 MX names make the "mx" a permerror. */
static gboolean spf_dns_check_mx_names(SpfDnsLayer *layer,
                                       const SpfAnswer *answer) {
  if (answer->records->len <= SPF_MAX_MX_NAMES)
    return TRUE;
  if (layer->problem == NULL)
    layer->problem =
        g_strdup_printf("more than %u MX names", (guint)SPF_MAX_MX_NAMES);
  return FALSE;
}

static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *server,
                                    const char *domain, ns_type type,
                                    int should_cache) {
  (void)should_cache;
  SpfDnsLayer *layer = server->hook;
  const SpfQuery *query = layer->query;
  if (layer->problem != NULL)
    return spf_dns_rr_try_again(layer, domain, type);
  SpfQueryKind kind = spf_dns_classify(layer, domain, type);
  if (kind == SPF_QUERY_TERM && ++layer->lookups > query->max_lookups) {
    spf_dns_exceed(layer, FALSE);
    return spf_dns_rr_try_again(layer, domain, type);
  }
  g_autofree char *zero = spf_dns_strip_zero_prefix(domain);
  g_autoptr(SpfAnswer) answer = query->resolve(
      spf_dns_type(type), zero != NULL ? zero : domain, query->resolve_data);
  if (kind == SPF_QUERY_TERM && type != ns_t_txt &&
      spf_answer_is_void(answer) && ++layer->voids > query->max_void) {
    spf_dns_exceed(layer, TRUE);
    return spf_dns_rr_try_again(layer, domain, type);
  }
  /* Section 5.5: a PTR name whose addresses cannot be looked up (a
   * CNAME loop, a failing server) is skipped, not an error. */
  if (kind == SPF_QUERY_SUBORDINATE && layer->expected_from == ns_t_ptr &&
      answer->status == PST_DNS_TEMPFAIL)
    answer->status = PST_DNS_NXDOMAIN;
  if (type == ns_t_mx && answer->status == PST_DNS_OK &&
      !spf_dns_check_mx_names(layer, answer))
    return spf_dns_rr_try_again(layer, domain, type);
  /* RFC 7208 section 4.6.4: names past the 10th PTR record are ignored
   * (libspf2 would make them a permerror). */
  if (type == ns_t_ptr && answer->records->len > SPF_MAX_PTR_NAMES)
    g_ptr_array_set_size(answer->records, SPF_MAX_PTR_NAMES);
  if (type == ns_t_txt && !spf_dns_prepare_records(layer, answer))
    return spf_dns_rr_try_again(layer, domain, type);
  if (zero != NULL)
    spf_dns_apply_zero_prefix(layer, type, answer);
  spf_dns_remember(layer, type, answer);
  return spf_dns_rr_new(layer, domain, type, answer);
}

/* --- Explanations ------------------------------------------------------ */

/* Expands `text` (an explanation macro-string) into *bufp; FALSE when it
 * does not compile. */
static gboolean spf_dns_expand(SpfDnsLayer *layer, SPF_server_t *server,
                               const char *text, char **bufp, size_t *buflenp) {
  /* Section 6.2: a syntax error means the default explanation; and only
   * checked macros reach libspf2's compiler (CVE-2023-42118). */
  if (!spf_macro_string_is_valid(text, TRUE))
    return FALSE;
  SPF_response_t *scratch = SPF_response_new(layer->request);
  SPF_macro_t *macro = NULL;
  SPF_errcode_t error = SPF_record_compile_macro(server, scratch, &macro, text);
  if (error == SPF_E_SUCCESS)
    /* The compiled data follows the header (libspf2's SPF_macro_data()). */
    error = SPF_record_expand_data(server, layer->request, scratch,
                                   (SPF_data_t *)(macro + 1), macro->macro_len,
                                   bufp, buflenp);
  if (macro != NULL)
    SPF_macro_free(macro);
  SPF_response_free(scratch);
  return error == SPF_E_SUCCESS;
}

/* libspf2 stops expanding at a literal space; "%_" is the macro for one
 * (section 7.2), which it expands everywhere. */
static char *spf_dns_escape_spaces(const char *text) {
  g_auto(GStrv) words = g_strsplit(text, " ", -1);
  return g_strjoinv("%_", words);
}

/* libspf2's get_exp hook: the explanation at `name` (section 6.2), or
 * the server's default when there is not exactly one TXT record, or it
 * does not expand. */
static SPF_errcode_t spf_dns_get_exp(SPF_server_t *server, const char *name,
                                     char **bufp, size_t *buflenp) {
  SpfDnsLayer *layer = server->resolver->hook;
  const SpfQuery *query = layer->query;
  g_autofree char *domain = g_strdup(name); /* `name` may be *bufp */
  g_autoptr(SpfAnswer) answer =
      query->resolve(PST_DNS_TYPE_TXT, domain, query->resolve_data);
  if (answer->status == PST_DNS_OK && answer->records->len == 1) {
    g_autofree char *text = spf_dns_escape_spaces(answer->records->pdata[0]);
    if (spf_dns_expand(layer, server, text, bufp, buflenp))
      return SPF_E_SUCCESS;
  }
  return spf_dns_expand(layer, server, layer->default_explanation, bufp,
                        buflenp)
             ? SPF_E_SUCCESS
             : SPF_E_INVALID_CHAR;
}

/* --- The layer ---------------------------------------------------------- */

/* The client's family, and its address as an A or AAAA record holds it
 * (an IPv4-mapped IPv6 client is IPv4, section 5). */
static void spf_dns_layer_set_client(SpfDnsLayer *layer, const char *ip) {
  g_autoptr(GInetAddress) address =
      ip != NULL ? g_inet_address_new_from_string(ip) : NULL;
  if (address == NULL) {
    layer->client_address = g_strdup("");
    return;
  }
  const guint8 *bytes = g_inet_address_to_bytes(address);
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6 &&
      memcmp(bytes, mapped, sizeof mapped) == 0) {
    g_autoptr(GInetAddress) v4 =
        g_inet_address_new_from_bytes(bytes + 12, G_SOCKET_FAMILY_IPV4);
    layer->client_address = g_inet_address_to_string(v4);
    return;
  }
  layer->client_ipv6 =
      g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6;
  layer->client_address = g_inet_address_to_string(address);
}

SpfDnsLayer *spf_dns_layer_new(const SpfQuery *query) {
  SpfDnsLayer *layer = g_new0(SpfDnsLayer, 1);
  layer->query = query;
  layer->server.destroy = NULL;
  layer->server.lookup = spf_dns_lookup;
  layer->server.get_exp = spf_dns_get_exp;
  layer->server.name = "postilion";
  layer->server.hook = layer;
  layer->expected = g_ptr_array_new_with_free_func(g_free);
  spf_dns_layer_set_client(layer, query->ip);
  return layer;
}

void spf_dns_layer_free(SpfDnsLayer *layer) {
  if (layer == NULL)
    return;
  g_ptr_array_unref(layer->expected);
  g_free(layer->client_address);
  g_free(layer->problem);
  g_free(layer);
}

void spf_dns_layer_set_request(SpfDnsLayer *layer, SPF_request_t *request,
                               const char *default_explanation) {
  layer->request = request;
  layer->default_explanation = default_explanation;
}

SPF_dns_server_t *spf_dns_layer_get_server(SpfDnsLayer *layer) {
  return &layer->server;
}

const char *spf_dns_layer_get_problem(SpfDnsLayer *layer) {
  return layer->problem;
}

guint spf_dns_layer_get_lookups(SpfDnsLayer *layer) {
  return MIN(layer->lookups, layer->query->max_lookups + 1);
}

guint spf_dns_layer_get_voids(SpfDnsLayer *layer) {
  return layer->voids;
}
