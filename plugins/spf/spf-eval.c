/* spf-eval.c - one SPF check_host() through libspf2, and what the plugin
 * makes of its result: the Received-SPF header and the policy decision.
 *
 * spf_evaluate() builds a libspf2 server over its own DNS layer
 * (spf-dns.c) for each evaluation, so nothing is shared between threads
 * but libspf2's log hooks.  It maps libspf2's results to RFC 7208's:
 *   - INVALID with SPF_E_DNS_ERROR (the top-level TXT lookup failed) is a
 *     temperror, any other INVALID (a syntax error) a permerror;
 *   - a limit the DNS layer enforced, or a record it refused
 *     (spf-record.c), makes the result a permerror;
 *   - IPv4-mapped IPv6 clients are checked as IPv4 (section 5 note).
 * libspf2's SPF_request_query_mailfrom() answers "pass" for every 127/8
 * and ::1 client without looking at DNS; spf_query_check_host() is the
 * same without that rule, so a loopback client is checked like any other
 * (the plugin's skip rules keep local clients away by default).
 *
 * spf_received_spf(), spf_decide() and spf_format_text() are pure: every
 * client-supplied string (sender, HELO) and the domain's explanation is
 * quoted or cleaned before it reaches a header or a reply.  Callers: spf.c
 * (worker threads), the unit tests.
 */
#include <string.h>

#include <arpa/inet.h>

#include "spf-dns.h"

/* What libspf2 expands when the domain gives no exp= (section 6.2); "%_"
 * is a space (libspf2 stops expanding at a literal one, see spf-dns.c). */
#define SPF_DEFAULT_EXPLANATION                                                \
  "%{d}%_does%_not%_designate%_%{i}%_as%_permitted%_sender"

const char *spf_result_to_string(SpfResult result) {
  static const char *const names[] = {
      "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"};
  return (guint)result < G_N_ELEMENTS(names) ? names[result] : "permerror";
}

/* --- Identities --------------------------------------------------------- */

static gboolean spf_name_is_domain(const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '[')
    return FALSE;
  const char *dot = strchr(name, '.');
  if (dot == NULL || dot == name || dot[1] == '\0')
    return FALSE;
  /* A bare address is not a domain either (what
   * g_inet_address_new_from_string() accepts, without an object). */
  struct in6_addr address;
  return inet_pton(AF_INET, name, &address) != 1 &&
         inet_pton(AF_INET6, name, &address) != 1;
}

/* g_hostname_to_ascii(), which for a name of ASCII octets only folds
 * its case (GLib's nameprep: no junk to remove, nothing to encode); that
 * case, every message's, is done here without its allocations and
 * passes.  NULL for invalid UTF-8 (which GLib would read past). */
static char *spf_hostname_to_ascii(const char *name) {
  for (const guchar *p = (const guchar *)name; *p != '\0'; p++)
    if (*p >= 0x80)
      return g_utf8_validate(name, -1, NULL) ? g_hostname_to_ascii(name)
                                             : NULL;
  return g_ascii_strdown(name, -1);
}

char *spf_identity_domain(const char *sender, const char *helo,
                          SpfIdentity identity) {
  const char *domain = helo;
  if (identity == SPF_IDENTITY_MAIL_FROM && sender != NULL &&
      sender[0] != '\0') {
    const char *at = strrchr(sender, '@');
    domain = at != NULL ? at + 1 : NULL;
  }
  if (!spf_name_is_domain(domain))
    return NULL;
  char *ascii = spf_hostname_to_ascii(domain);
  if (ascii == NULL || !spf_name_is_domain(ascii)) {
    g_free(ascii);
    return NULL;
  }
  return ascii;
}

/* The identity as RFC 7208 names it: the sender, or postmaster@HELO for
 * the HELO identity and the null sender (section 2.4). */
static char *spf_identity_mailbox(const SpfQuery *query) {
  if (query->identity == SPF_IDENTITY_MAIL_FROM && query->sender != NULL &&
      query->sender[0] != '\0')
    return g_strdup(query->sender);
  return g_strconcat("postmaster@", query->helo != NULL ? query->helo : "",
                     NULL);
}

/* --- Text hygiene ------------------------------------------------------- */

/* Printable ASCII only, and in a comment none of "()\\": others become
 * '?'.  Appended in runs of clean octets (one octet at a time cost more
 * than the rest of an outcome). */
static gboolean spf_octet_is_clean(guchar c, gboolean comment) {
  return c >= 0x20 && c <= 0x7e &&
         !(comment && (c == '(' || c == ')' || c == '\\'));
}

static void spf_append_clean(GString *out, const char *text,
                             gboolean comment) {
  const guchar *run = (const guchar *)text;
  for (const guchar *p = run;; p++) {
    if (spf_octet_is_clean(*p, comment))
      continue;
    g_string_append_len(out, (const char *)run, p - run);
    if (*p == '\0')
      return;
    g_string_append_c(out, '?');
    run = p + 1;
  }
}

static gboolean spf_is_ascii_printable(const char *text) {
  for (const guchar *p = (const guchar *)text; *p != '\0'; p++)
    if (*p < 0x20 || *p > 0x7e)
      return FALSE;
  return TRUE;
}

/* A dot-atom stays as it is; anything else becomes a quoted-string. */
static void spf_append_value(GString *out, const char *value) {
  static const char atext[] = "!#$%&'*+-/=?^_`{|}~.";
  gboolean atom = value[0] != '\0' && value[0] != '.';
  for (const char *p = value; atom && *p != '\0'; p++)
    atom = g_ascii_isalnum(*p) || strchr(atext, *p) != NULL;
  if (atom) {
    g_string_append(out, value);
    return;
  }
  g_string_append_c(out, '"');
  for (const guchar *p = (const guchar *)value; *p != '\0'; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_c(out, '\\');
    g_string_append_c(out, (*p < 0x20 || *p > 0x7e) ? '?' : (char)*p);
  }
  g_string_append_c(out, '"');
}

/* --- Comments ----------------------------------------------------------- */

/* The comment's text.  g_strconcat(), not a format: this is made for
 * every message. */
static char *spf_comment(const SpfOutcome *outcome, const SpfQuery *query) {
  const char *who = outcome->identity;
  const char *ip = query->ip;
  /* Only an outcome made to be taken apart has an error without one. */
  const char *problem = outcome->problem != NULL ? outcome->problem : "";
  switch (outcome->result) {
  case SPF_RES_PASS:
    return g_strconcat("domain of ", who, " designates ", ip,
                       " as permitted sender", NULL);
  case SPF_RES_FAIL:
    return g_strconcat("domain of ", who, " does not designate ", ip,
                       " as permitted sender", NULL);
  case SPF_RES_SOFTFAIL:
    return g_strconcat("domain of transitioning ", who, " does not designate ",
                       ip, " as permitted sender", NULL);
  case SPF_RES_NEUTRAL:
    return g_strconcat(ip, " is neither permitted nor denied by domain of ",
                       who, NULL);
  case SPF_RES_NONE:
    return outcome->domain == NULL
               ? g_strconcat(who, " has no domain to check", NULL)
               : g_strconcat("domain of ", who,
                             " does not designate permitted sender hosts",
                             NULL);
  case SPF_RES_TEMPERROR:
    return g_strconcat("temporary error checking domain of ", who, ": ",
                       problem, NULL);
  case SPF_RES_PERMERROR:
    return g_strconcat("permanent error in the SPF record of ", who, ": ",
                       problem, NULL);
  }
  return g_strdup("");
}

/* "RECEIVER: TEXT" with every character a comment may not hold cleaned. */
static char *spf_comment_clean(const char *receiver, const char *text) {
  GString *out = g_string_new(NULL);
  spf_append_clean(out, receiver, TRUE);
  g_string_append(out, ": ");
  spf_append_clean(out, text, TRUE);
  return g_string_free(out, FALSE);
}

/* --- libspf2 ------------------------------------------------------------ */

static void spf_log_error(const char *file, int line,
                          const char *message) G_GNUC_NORETURN;
static void spf_log_error(const char *file, int line, const char *message) {
  /* libspf2 calls this for broken invariants only; it must not return. */
  g_critical("libspf2: %s:%d: %s", file, line, message);
  abort();
}

static void spf_log_debug(const char *file, int line, const char *message) {
  /* Warnings are about records from the network: debug, not noise. */
  g_debug("libspf2: %s:%d: %s", file, line, message);
}

void spf_library_init(void) {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    SPF_error_handler = spf_log_error;
    SPF_warning_handler = spf_log_debug;
    SPF_info_handler = spf_log_debug;
    SPF_debug_handler = spf_log_debug;
    g_once_init_leave(&once, 1);
  }
}

/* The client address as libspf2 takes it; mapped IPv6 as IPv4.  FALSE
 * for something that is not an address. */
static gboolean spf_request_set_ip(SPF_request_t *request, const char *ip) {
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string(ip);
  if (address == NULL)
    return FALSE;
  const guint8 *bytes = g_inet_address_to_bytes(address);
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6 &&
      memcmp(bytes, mapped, sizeof mapped) == 0) {
    g_autoptr(GInetAddress) v4 =
        g_inet_address_new_from_bytes(bytes + 12, G_SOCKET_FAMILY_IPV4);
    g_autofree char *text = g_inet_address_to_string(v4);
    return SPF_request_set_ipv4_str(request, text) == SPF_E_SUCCESS;
  }
  g_autofree char *text = g_inet_address_to_string(address);
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV4)
    return SPF_request_set_ipv4_str(request, text) == SPF_E_SUCCESS;
  return SPF_request_set_ipv6_str(request, text) == SPF_E_SUCCESS;
}

static SpfResult spf_result_from_libspf2(SPF_result_t result,
                                         SPF_errcode_t error) {
  switch (result) {
  case SPF_RESULT_NEUTRAL:
    return SPF_RES_NEUTRAL;
  case SPF_RESULT_PASS:
    return SPF_RES_PASS;
  case SPF_RESULT_FAIL:
    return SPF_RES_FAIL;
  case SPF_RESULT_SOFTFAIL:
    return SPF_RES_SOFTFAIL;
  case SPF_RESULT_NONE:
    return SPF_RES_NONE;
  case SPF_RESULT_TEMPERROR:
    return SPF_RES_TEMPERROR;
  case SPF_RESULT_PERMERROR:
    return SPF_RES_PERMERROR;
  case SPF_RESULT_INVALID:
  default:
    /* libspf2's catch-all: a DNS failure or a syntax error. */
    return error == SPF_E_DNS_ERROR ? SPF_RES_TEMPERROR : SPF_RES_PERMERROR;
  }
}

/* SPF_request_query_mailfrom() without its "localhost always passes"
 * (RFC 7208 has no such rule: a 127.0.0.0/8 or ::1 client is checked
 * like any other): the current domain, the record, its evaluation. */
static SPF_errcode_t spf_query_check_host(SPF_request_t *request,
                                          SPF_response_t **response_r) {
  SPF_response_t *response = SPF_response_new(request);
  *response_r = response;
  if (response == NULL)
    return SPF_E_NO_MEMORY;
  request->cur_dom =
      request->use_helo ? request->helo_dom : request->env_from_dp;
  SPF_record_t *record = NULL;
  SPF_errcode_t error =
      SPF_server_get_record(request->spf_server, request, response, &record);
  if (error != SPF_E_SUCCESS) {
    if (record != NULL)
      SPF_record_free(record);
    SPF_i_done(response, response->result, response->reason, response->err);
    return error;
  }
  response->spf_record_exp = record;
  error = SPF_record_interpret(record, request, response, 0);
  SPF_record_free(record);
  response->spf_record_exp = NULL;
  return error;
}

/* The domain's explanation for a fail, when it is printable ASCII
 * (section 6.2: otherwise it is ignored). */
static char *spf_explanation(SPF_response_t *response) {
  const char *text = SPF_response_get_explanation(response);
  if (text == NULL || text[0] == '\0' || !spf_is_ascii_printable(text))
    return NULL;
  return g_strdup(text);
}

/* Runs libspf2 for `query` into `outcome` (result, problem,
 * explanation). */
static void spf_evaluate_libspf2(const SpfQuery *query, const char *domain,
                                 SpfOutcome *outcome) {
  g_autoptr(SpfDnsLayer) layer = spf_dns_layer_new(query);
  SPF_server_t *server = SPF_server_new_dns(spf_dns_layer_get_server(layer), 0);
  SPF_response_t *response = NULL;
  SPF_server_set_rec_dom(server, query->receiver);
  SPF_server_set_explanation(server, SPF_DEFAULT_EXPLANATION, &response);
  SPF_response_free(response);
  response = NULL;
  SPF_server_set_max_dns_mx(server, 10);
  SPF_server_set_max_dns_ptr(server, 10);
  SPF_request_t *request = SPF_request_new(server);
  spf_dns_layer_set_request(layer, request, SPF_DEFAULT_EXPLANATION);
  if (!spf_request_set_ip(request, query->ip)) {
    outcome->result = SPF_RES_PERMERROR;
    outcome->problem = g_strdup("the client address is not an IP address");
  } else {
    if (query->helo != NULL)
      SPF_request_set_helo_dom(request, query->helo);
    if (query->identity == SPF_IDENTITY_MAIL_FROM && query->sender != NULL &&
        query->sender[0] != '\0') {
      /* The local part as sent, the domain in its ASCII form. */
      const char *at = strrchr(query->sender, '@');
      g_autofree char *local = g_strndup(query->sender, at - query->sender);
      g_autofree char *from = g_strdup_printf("%s@%s", local, domain);
      SPF_request_set_env_from(request, from);
    } else {
      SPF_request_set_helo_dom(request, domain);
    }
    /* The INVALID result's cause is in the return value; the response's
     * error code says "no error" then. */
    SPF_errcode_t error = spf_query_check_host(request, &response);
    if (error == SPF_E_SUCCESS)
      error = SPF_response_errcode(response);
    outcome->result =
        spf_result_from_libspf2(SPF_response_result(response), error);
    const char *limit = spf_dns_layer_get_problem(layer);
    if (limit != NULL) {
      outcome->result = SPF_RES_PERMERROR;
      outcome->problem = g_strdup(limit);
    } else if (outcome->result == SPF_RES_TEMPERROR ||
               outcome->result == SPF_RES_PERMERROR) {
      outcome->problem = g_strdup(SPF_strerror(error));
    } else if (outcome->result == SPF_RES_FAIL) {
      outcome->explanation = spf_explanation(response);
    }
  }
  outcome->lookups = spf_dns_layer_get_lookups(layer);
  outcome->voids = spf_dns_layer_get_voids(layer);
  SPF_response_free(response);
  SPF_request_free(request);
  SPF_server_free(server);
}

SpfOutcome *spf_evaluate(const SpfQuery *query) {
  SpfOutcome *outcome = g_new0(SpfOutcome, 1);
  outcome->identity = spf_identity_mailbox(query);
  outcome->domain =
      spf_identity_domain(query->sender, query->helo, query->identity);
  if (outcome->domain == NULL)
    outcome->result = SPF_RES_NONE; /* section 2.3, 4.3: nothing to check */
  else
    spf_evaluate_libspf2(query, outcome->domain, outcome);
  g_autofree char *comment = spf_comment(outcome, query);
  outcome->comment = spf_comment_clean(query->receiver, comment);
  return outcome;
}

/* An outcome for `query` without evaluating it. */
static SpfOutcome *spf_outcome_new_result(const SpfQuery *query,
                                          SpfResult result,
                                          const char *problem) {
  SpfOutcome *outcome = g_new0(SpfOutcome, 1);
  outcome->identity = spf_identity_mailbox(query);
  outcome->domain =
      spf_identity_domain(query->sender, query->helo, query->identity);
  outcome->result = result;
  outcome->problem = g_strdup(problem);
  g_autofree char *comment = spf_comment(outcome, query);
  outcome->comment = spf_comment_clean(query->receiver, comment);
  return outcome;
}

SpfOutcome *spf_outcome_new_temperror(const SpfQuery *query,
                                      const char *problem) {
  return spf_outcome_new_result(query, SPF_RES_TEMPERROR, problem);
}

gboolean spf_answer_is_no_record(const SpfAnswer *answer) {
  return answer->records->len == 0 && (answer->status == PST_DNS_NXDOMAIN ||
                                       answer->status == PST_DNS_NODATA ||
                                       answer->status == PST_DNS_INVALID);
}

SpfOutcome *spf_outcome_new_none(const SpfQuery *query) {
  return spf_outcome_new_result(query, SPF_RES_NONE, NULL);
}

/* --- Records decided without an evaluator ------------------------------- */

/* The one SPF record of the checked domain's TXT answer, or NULL: none,
 * several, or a record that only looks like one ("v=spf10", which libspf2
 * may read otherwise). */
static const char *spf_answer_only_record(const SpfAnswer *answer) {
  const char *found = NULL;
  for (guint i = 0; i < answer->records->len; i++) {
    const char *text = answer->records->pdata[i];
    if (g_ascii_strncasecmp(text, "v=spf", 5) != 0)
      continue;
    if (found != NULL || !spf_record_text_is_spf(text))
      return NULL;
    found = text;
  }
  return found;
}

/* The client's address as libspf2 checks it (a mapped IPv6 address as
 * IPv4) into `bytes`: its length, or 0 when `ip` is no address. */
static gsize spf_client_bytes(const char *ip, guint8 bytes[16]) {
  if (inet_pton(AF_INET, ip, bytes) == 1)
    return 4;
  if (inet_pton(AF_INET6, ip, bytes) != 1)
    return 0;
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(bytes, mapped, sizeof mapped) != 0)
    return 16;
  memmove(bytes, bytes + 12, 4);
  return 4;
}

/* %{i} of the default explanation as libspf2 expands it: IPv4 dotted,
 * IPv6 as 32 dot-separated nibbles (section 7.3). */
static char *spf_client_macro_i(const guint8 *bytes, gsize length) {
  if (length == 4)
    return g_strdup_printf("%u.%u.%u.%u", bytes[0], bytes[1], bytes[2],
                           bytes[3]);
  GString *out = g_string_sized_new(64);
  for (gsize i = 0; i < length; i++)
    g_string_append_printf(out, "%s%x.%x", i > 0 ? "." : "", bytes[i] >> 4,
                           bytes[i] & 0xf);
  return g_string_free(out, FALSE);
}

typedef struct {
  const SpfQuery *query;
  const guint8 *address;
  gsize length;
  SpfPeekFunc peek;
  gpointer peek_data;
} SpfLocal;

/* The result of the one SPF record of `answer` for the client, or FALSE. */
static gboolean spf_local_decide(SpfLocal *local, const SpfAnswer *answer,
                                 guint *lookups, SpfResult *result_r);

/* SpfIncludeFunc over the peeked answers. */
static gboolean spf_local_include(const char *target, gpointer data,
                                  guint *lookups, SpfResult *result_r) {
  SpfLocal *local = data;
  if (local->peek == NULL || ++*lookups > local->query->max_lookups)
    return FALSE;
  g_autoptr(SpfAnswer) answer =
      local->peek(PST_DNS_TYPE_TXT, target, local->peek_data);
  return answer != NULL && spf_local_decide(local, answer, lookups, result_r);
}

void spf_parsed_records_clear(SpfParsedRecords *parsed) {
  for (guint i = 0; i < parsed->count; i++) {
    g_clear_pointer(&parsed->texts[i], g_free);
    g_clear_pointer(&parsed->records[i], spf_record_free);
  }
  parsed->count = 0;
}

/* `text`'s record, NULL when it does not parse: kept in the query's
 * parsed records when it has them and room, otherwise new in *owned_r. */
static const SpfRecord *spf_query_record(const SpfQuery *query,
                                         const char *text,
                                         SpfRecord **owned_r) {
  *owned_r = NULL;
  SpfParsedRecords *parsed = query->parsed;
  for (guint i = 0; parsed != NULL && i < parsed->count; i++)
    if (strcmp(parsed->texts[i], text) == 0)
      return parsed->records[i];
  g_autofree char *problem = NULL;
  SpfRecord *record = spf_record_parse(text, &problem);
  if (parsed == NULL || parsed->count == SPF_PARSED_MAX) {
    *owned_r = record;
    return record;
  }
  parsed->texts[parsed->count] = g_strdup(text);
  parsed->records[parsed->count++] = record;
  return record;
}

static gboolean spf_local_decide(SpfLocal *local, const SpfAnswer *answer,
                                 guint *lookups, SpfResult *result_r) {
  if (answer->status != PST_DNS_OK)
    return FALSE;
  const char *text = spf_answer_only_record(answer);
  if (text == NULL)
    return FALSE;
  g_autoptr(SpfRecord) owned = NULL;
  const SpfRecord *record = spf_query_record(local->query, text, &owned);
  return record != NULL &&
         spf_record_decide(record, local->address, local->length,
                           spf_local_include, local, lookups, result_r);
}

SpfOutcome *spf_outcome_new_local(const SpfQuery *query, SpfPeekFunc peek,
                                  gpointer peek_data) {
  guint8 bytes[16];
  gsize length = spf_client_bytes(query->ip, bytes);
  if (query->top == NULL || length == 0)
    return NULL;
  SpfLocal local = {query, bytes, length, peek, peek_data};
  guint lookups = 0;
  SpfResult result;
  if (!spf_local_decide(&local, query->top, &lookups, &result))
    return NULL;
  SpfOutcome *outcome = spf_outcome_new_result(query, result, NULL);
  outcome->lookups = lookups;
  if (outcome->domain == NULL ||
      g_ascii_strcasecmp(outcome->domain, query->top_name) != 0) {
    spf_outcome_free(outcome);
    return NULL;
  }
  if (result == SPF_RES_FAIL && (query->identity != SPF_IDENTITY_MAIL_FROM ||
                                 query->sender == NULL ||
                                 query->sender[0] == '\0')) {
    /* The explanation's %{d} for the HELO identity (and the null sender)
     * is the HELO name as libspf2 was given it, not the domain checked:
     * left to libspf2. */
    spf_outcome_free(outcome);
    return NULL;
  }
  if (result == SPF_RES_FAIL) {
    g_autofree char *client = spf_client_macro_i(bytes, length);
    outcome->explanation = g_strdup_printf(
        "%s does not designate %s as permitted sender", outcome->domain,
        client);
  }
  return outcome;
}

/* --- Answers at hand for the evaluator -------------------------------- */

typedef struct {
  const SpfQuery *query;
  SpfPeekFunc peek;
  gpointer peek_data;
  gboolean client_ipv6;
  GPtrArray *known; /* of SpfKnown */
  guint records;    /* records walked: the checked domain's and includes' */
} SpfCollect;

static gboolean spf_collect_has(const SpfCollect *collect, PstDnsType type,
                                const char *name) {
  for (guint i = 0; i < collect->known->len; i++) {
    const SpfKnown *entry = collect->known->pdata[i];
    if (entry->type == type && g_ascii_strcasecmp(entry->name, name) == 0)
      return TRUE;
  }
  return FALSE;
}

static void spf_collect_record(SpfCollect *collect, const SpfAnswer *answer,
                               const char *domain);

/* SpfQuestionFunc: the answer at hand, and what it leads to (the MX
 * hosts' addresses, an include's or redirect's record). */
static void spf_collect_question(PstDnsType type, const char *name,
                                 gpointer data) {
  SpfCollect *collect = data;
  if (collect->known->len >= SPF_KNOWN_MAX ||
      spf_collect_has(collect, type, name))
    return;
  SpfAnswer *answer = collect->peek(type, name, collect->peek_data);
  if (answer == NULL)
    return;
  SpfKnown *entry = g_new0(SpfKnown, 1);
  entry->type = type;
  entry->name = g_strdup(name);
  entry->answer = answer;
  g_ptr_array_add(collect->known, entry);
  if (answer->status != PST_DNS_OK)
    return;
  if (type == PST_DNS_TYPE_MX)
    for (guint i = 0; i < answer->records->len; i++)
      spf_collect_question(collect->client_ipv6 ? PST_DNS_TYPE_AAAA
                                                : PST_DNS_TYPE_A,
                           answer->records->pdata[i], collect);
  else if (type == PST_DNS_TYPE_TXT)
    spf_collect_record(collect, answer, name);
}

/* The questions the one SPF record of `answer` names, for `domain`; as
 * deep as libspf2 may go (the lookup limit). */
static void spf_collect_record(SpfCollect *collect, const SpfAnswer *answer,
                               const char *domain) {
  const char *text = spf_answer_only_record(answer);
  if (text == NULL || ++collect->records > 11)
    return;
  g_autoptr(SpfRecord) owned = NULL;
  const SpfRecord *record = spf_query_record(collect->query, text, &owned);
  if (record != NULL)
    spf_record_foreach_question(record, domain, collect->client_ipv6,
                                spf_collect_question, collect);
}

GPtrArray *spf_known_collect(const SpfQuery *query, SpfPeekFunc peek,
                             gpointer peek_data) {
  guint8 bytes[16];
  gsize length = spf_client_bytes(query->ip, bytes);
  if (query->top == NULL || query->top_name == NULL || length == 0 ||
      query->top->status != PST_DNS_OK)
    return NULL;
  SpfCollect collect = {query, peek, peek_data, length == 16,
                        g_ptr_array_new_with_free_func(
                            (GDestroyNotify)spf_known_free),
                        0};
  spf_collect_record(&collect, query->top, query->top_name);
  if (collect.known->len > 0)
    return collect.known;
  g_ptr_array_unref(collect.known);
  return NULL;
}

/* --- Received-SPF ------------------------------------------------------- */

char *spf_received_spf(const SpfOutcome *outcome, const SpfQuery *query) {
  GString *out = g_string_sized_new(256);
  g_string_append(out, spf_result_to_string(outcome->result));
  g_string_append(out, " (");
  g_string_append(out, outcome->comment);
  g_string_append(out, ")\r\n\tclient-ip=");
  spf_append_value(out, query->ip);
  g_string_append(out, "; envelope-from=");
  spf_append_value(out, outcome->identity);
  g_string_append(out, ";");
  if (query->helo != NULL) {
    g_string_append(out, " helo=");
    spf_append_value(out, query->helo);
    g_string_append(out, ";");
  }
  g_string_append(out, "\r\n\treceiver=");
  spf_append_value(out, query->receiver);
  g_string_append(out, query->identity == SPF_IDENTITY_HELO
                           ? "; identity=helo;"
                           : "; identity=mailfrom;");
  if (outcome->problem != NULL) {
    g_string_append(out, " problem=");
    spf_append_value(out, outcome->problem);
    g_string_append(out, ";");
  }
  return g_string_free(out, FALSE);
}

/* --- Replies ------------------------------------------------------------ */

static const char *spf_placeholder(const char *name, gsize length,
                                   const SpfOutcome *outcome,
                                   const SpfQuery *query, char **owned_r) {
  const struct {
    const char *name;
    const char *value;
  } table[] = {
      {"result", spf_result_to_string(outcome->result)},
      {"domain", outcome->domain != NULL ? outcome->domain : "(none)"},
      {"sender", outcome->identity},
      {"ip", query->ip},
      {"helo", query->helo != NULL ? query->helo : ""},
      {"identity", query->identity == SPF_IDENTITY_HELO ? "helo" : "mailfrom"},
      {"problem", outcome->problem != NULL ? outcome->problem : ""},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(table); i++)
    if (strlen(table[i].name) == length &&
        memcmp(table[i].name, name, length) == 0)
      return table[i].value;
  if (length == 11 && memcmp(name, "explanation", 11) == 0) {
    if (outcome->explanation != NULL)
      return outcome->explanation;
    *owned_r = g_strdup_printf("%s does not designate %s as permitted sender",
                               outcome->domain != NULL ? outcome->domain
                                                       : outcome->identity,
                               query->ip);
    return *owned_r;
  }
  return NULL;
}

char *spf_format_text(const char *template, const SpfOutcome *outcome,
                      const SpfQuery *query) {
  GString *out = g_string_new(NULL);
  const char *p = template;
  while (*p != '\0') {
    const char *close = p[0] == '{' ? strchr(p, '}') : NULL;
    g_autofree char *owned = NULL;
    const char *value = close != NULL
                            ? spf_placeholder(p + 1, (gsize)(close - p - 1),
                                              outcome, query, &owned)
                            : NULL;
    if (value == NULL) {
      g_string_append_c(out, *p++);
      continue;
    }
    spf_append_clean(out, value, FALSE);
    p = close + 1;
  }
  return g_string_free(out, FALSE);
}

static void spf_decide_action(const SpfAction *action, const char *text,
                              const char *enhanced, const SpfOutcome *outcome,
                              const SpfQuery *query, SpfDecision *decision) {
  if (action->code == 0)
    return;
  decision->verdict =
      action->code >= 500 ? PST_VERDICT_REJECT : PST_VERDICT_TEMPFAIL;
  decision->code = action->code;
  g_strlcpy(decision->enhanced,
            action->enhanced != NULL ? action->enhanced : enhanced,
            sizeof decision->enhanced);
  if (action->enhanced == NULL)
    decision->enhanced[0] = action->code >= 500 ? '5' : '4';
  decision->text = spf_format_text(action->text != NULL ? action->text : text,
                                   outcome, query);
}

void spf_decide(const SpfConfig *config, const SpfOutcome *outcome,
                const SpfQuery *query, SpfDecision *decision) {
  memset(decision, 0, sizeof *decision);
  decision->verdict = PST_VERDICT_CONTINUE;
  if (config->policy == SPF_POLICY_NONE)
    return;
  switch (outcome->result) {
  case SPF_RES_SOFTFAIL:
    if (config->policy != SPF_POLICY_STRICT)
      return;
    /* fall through */
  case SPF_RES_FAIL:
    decision->verdict = PST_VERDICT_REJECT;
    decision->code = 550;
    g_strlcpy(decision->enhanced, "5.7.23", sizeof decision->enhanced);
    decision->text = spf_format_text(config->reject_text, outcome, query);
    return;
  case SPF_RES_TEMPERROR:
    spf_decide_action(&config->temperror,
                      "SPF {result} for {domain}: {problem}; try again later",
                      "4.4.3", outcome, query, decision);
    return;
  case SPF_RES_PERMERROR:
    spf_decide_action(&config->permerror,
                      "SPF {result} for {domain}: {problem}", "5.7.24", outcome,
                      query, decision);
    return;
  default:
    return;
  }
}

void spf_decision_clear(SpfDecision *decision) {
  g_clear_pointer(&decision->text, g_free);
}
