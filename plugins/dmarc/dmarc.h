/* dmarc.h - the DMARC plugin's parts (RFC 9989, RFC 9990, RFC 9991).
 *
 * Pure parts, unit-tested beside the code and fuzzed where they read the
 * network:
 *   dmarc-record.c  the policy record parser (RFC 9989 "General Record
 *                   Format", "Formal Definition");
 *   dmarc-from.c    the RFC5322.From domain ("Extract Author Domain");
 *   dmarc-walk.c    the DNS Tree Walk, Organizational Domain selection
 *                   and policy discovery ("DNS Tree Walk", "DMARC Policy
 *                   Discovery", "Organizational Domain Discovery");
 *   dmarc-check.c   one message's evaluation as a state machine that asks
 *                   DNS questions and takes answers ("Determine Handling
 *                   Policy", "Identifier Alignment Explained");
 *   dmarc-config.c  [plugin:dmarc] read into a DmarcConfig.
 * The plugin (dmarc.c) drives a DmarcCheck with the core's asynchronous
 * DNS service and never blocks the main loop; dmarc-history.c keeps what
 * was evaluated for the aggregate reports (dmarc-report.c).
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* --- Policy records ------------------------------------------------------ */

typedef enum {
  DMARC_POLICY_UNSET = 0, /* the tag is absent */
  DMARC_POLICY_NONE,
  DMARC_POLICY_QUARANTINE,
  DMARC_POLICY_REJECT,
} DmarcPolicy;

typedef enum {
  DMARC_PSD_U = 0, /* the default: not a PSD */
  DMARC_PSD_Y,
  DMARC_PSD_N,
} DmarcPsd;

/* fo= options (RFC 9989 "General Record Format"), as bits. */
enum {
  DMARC_FO_0 = 1 << 0,
  DMARC_FO_1 = 1 << 1,
  DMARC_FO_D = 1 << 2,
  DMARC_FO_S = 1 << 3,
};

typedef struct {
  DmarcPolicy p, sp, np; /* p is never UNSET in a usable record */
  gboolean adkim_strict, aspf_strict;
  DmarcPsd psd;
  gboolean testing; /* t=y */
  guint fo;         /* DMARC_FO_* bits; DMARC_FO_0 by default */
  GPtrArray *rua;   /* owned, of char*: the syntactically valid URIs */
  GPtrArray *ruf;   /* owned, of char* */
  /* FALSE when p, sp or np is invalid and there is no valid rua URI: the
   * receiver then applies no DMARC processing (RFC 9989 "DMARC Policy
   * Discovery"); the result is permerror. */
  gboolean usable;
  char *problem; /* owned, nullable: the first syntax error met */
} DmarcRecord;

/* Parses a TXT record of `length` octets.  NULL when it is not a DMARC
 * record at all (the first tag is not exactly "v=DMARC1", or it holds a
 * NUL octet): such records are discarded by the tree walk.  Otherwise a
 * record in which unknown tags were ignored and invalid values replaced
 * by their defaults (`problem` says which). */
DmarcRecord *dmarc_record_parse(const char *text, gsize length);
void dmarc_record_free(DmarcRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DmarcRecord, dmarc_record_free)

const char *dmarc_policy_to_string(DmarcPolicy policy);

/* The address of a "mailto:" URI (without "mailto:", any "?headers" or a
 * legacy "!size" suffix, %-escapes decoded), or NULL when `uri` is not a
 * usable mailto: URI. */
char *dmarc_uri_mailto_address(const char *uri);

/* --- The author domain ---------------------------------------------------- */

/* The RFC5322.From domain of a message whose header has `count` From:
 * fields with the values `values` (as the core gives them: folded, no
 * final CRLF): lower-case A-labels.  NULL, with `problem_r` set to a
 * static text, when there is not exactly one field, when it holds no
 * address, an address without a usable domain, or addresses with
 * different domains (RFC 9989 "Extract Author Domain"). */
char *dmarc_from_domain(const char *const *values, guint count,
                        const char **problem_r);

/* A domain name as DMARC compares it: lower-case A-labels without a
 * final dot; NULL when `name` is no usable domain name. */
char *dmarc_domain_normalize(const char *name);

/* --- The DNS Tree Walk ---------------------------------------------------- */

/* A walk never makes more queries than this; a domain of 8 or more labels
 * jumps to its last 7 labels after the first query. */
#define DMARC_WALK_MAX_QUERIES 8
#define DMARC_WALK_JUMP_LABELS 7

/* A record found on the walk, longest domain first. */
typedef struct {
  char *domain;        /* owned */
  DmarcRecord *record; /* owned */
} DmarcFound;

typedef struct {
  char *domain;       /* owned: where the walk starts */
  GPtrArray *targets; /* owned, of char*: every domain it may query */
  guint next;         /* index into targets of the next query */
  GPtrArray *found;   /* owned, of DmarcFound* */
  gboolean done;
  gboolean tempfail; /* a query failed: the walk says nothing */
  char *problem;     /* owned, nullable: why it failed */
} DmarcWalk;

/* The domains a walk from `domain` queries (at _dmarc.DOMAIN), in order,
 * at most DMARC_WALK_MAX_QUERIES.  For tests and the planner. */
GPtrArray *dmarc_walk_targets(const char *domain);

DmarcWalk *dmarc_walk_new(const char *domain);
void dmarc_walk_free(DmarcWalk *walk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DmarcWalk, dmarc_walk_free)
/* The domain to query next (the TXT name is "_dmarc." + it), or NULL
 * when the walk is done. */
const char *dmarc_walk_next(const DmarcWalk *walk);
/* The answer for the target dmarc_walk_next() named: its status and TXT
 * records (`records` of `count` strings with their `lengths`). */
void dmarc_walk_feed(DmarcWalk *walk, PstDnsStatus status,
                     const char *const *records, const gsize *lengths,
                     guint count, const char *reason);
/* The Organizational Domain of a finished walk's start domain (RFC 9989
 * "Organizational Domain Discovery"); the start domain itself when no
 * record was found. */
const char *dmarc_walk_organizational_domain(const DmarcWalk *walk);

/* The policy record that applies to the walk's start domain (RFC 9989
 * "DMARC Policy Discovery"): the record of the domain itself, of its
 * Organizational Domain, or of its PSD; NULL when there is none.
 * `domain_r` gets the policy domain, `subdomain_r` TRUE when the record
 * is not the start domain's own (sp/np apply), `psd_r` TRUE when it is a
 * PSD's. */
const DmarcRecord *dmarc_walk_policy(const DmarcWalk *walk,
                                     const char **domain_r,
                                     gboolean *subdomain_r, gboolean *psd_r);

/* TRUE when `name` is `ancestor` or a subdomain of it (both normalized). */
gboolean dmarc_domain_is_within(const char *name, const char *ancestor);

/* --- One message's evaluation -----------------------------------------------
 */

typedef enum {
  DMARC_RESULT_NONE = 0,
  DMARC_RESULT_PASS,
  DMARC_RESULT_FAIL,
  DMARC_RESULT_TEMPERROR,
  DMARC_RESULT_PERMERROR,
} DmarcResult;

const char *dmarc_result_to_string(DmarcResult result);

/* An authentication result DMARC reads: SPF's (domain = the MAIL FROM
 * domain, or the HELO name for the null sender) or one DKIM signature's
 * (domain = d=, selector = s=).  `result` as RFC 8601 names it. */
typedef struct {
  char *domain;   /* owned, normalized; nullable when unusable */
  char *selector; /* owned, nullable */
  char *result;   /* owned: "pass", "fail", "temperror", ... */
  char *scope;    /* owned, nullable: SPF "mfrom" or "helo" */
  /* owned, nullable: why, in words, for the aggregate report's
   * human_result (dmarc_auth_set_human()) */
  char *human;
} DmarcAuth;

DmarcAuth *dmarc_auth_new(const char *domain, const char *selector,
                          const char *result, const char *scope);
void dmarc_auth_free(DmarcAuth *auth);
/* Sets `human` from a plugin's reason text: control characters become
 * spaces, at most DMARC_HUMAN_MAX octets are kept (cut at a character
 * boundary), and an empty text leaves it NULL. */
#define DMARC_HUMAN_MAX 200
void dmarc_auth_set_human(DmarcAuth *auth, const char *text);

/* A DNS question a check needs answered. */
typedef struct {
  PstDnsType type;
  char *name; /* owned */
} DmarcQuestion;

void dmarc_question_free(DmarcQuestion *question);

/* "TYPE NAME": the key of a question in the check's and the cache's
 * tables (newly allocated; no printf, it is made several times a
 * message). */
char *dmarc_question_key(PstDnsType type, const char *name);

typedef struct _DmarcCheck DmarcCheck;

/* A check of the message whose author domain is `from_domain`
 * (normalized), with SPF's result (nullable: not checked) and the DKIM
 * results (of DmarcAuth*; both are taken over). */
DmarcCheck *dmarc_check_new(const char *from_domain, DmarcAuth *spf,
                            GPtrArray *dkim);
void dmarc_check_free(DmarcCheck *check);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DmarcCheck, dmarc_check_free)

/* The questions to ask now (of DmarcQuestion*, possibly empty while
 * answers are awaited).  Each question is returned once; answer each with
 * dmarc_check_answer().  When the check is done, nothing more is asked. */
GPtrArray *dmarc_check_questions(DmarcCheck *check);
/* One answer: its TXT records (for TXT questions) or none. */
void dmarc_check_answer(DmarcCheck *check, PstDnsType type, const char *name,
                        PstDnsStatus status, const char *const *records,
                        const gsize *lengths, guint count, const char *reason);
gboolean dmarc_check_is_done(const DmarcCheck *check);

/* What a finished check concluded. */
typedef struct {
  DmarcResult result;
  const char *reason; /* nullable: for Authentication-Results */
  const char *from_domain;
  const char *policy_domain; /* nullable: no policy record */
  const char *org_domain;    /* nullable */
  const DmarcRecord *record; /* nullable: the policy record */
  DmarcPolicy policy;        /* the one that applies (p, sp or np) */
  gboolean psd;              /* the policy is a PSD's */
  gboolean nonexistent;      /* np applied: the From domain does not exist */
  gboolean spf_aligned;      /* SPF passed for an aligned domain */
  gboolean dkim_aligned;     /* a DKIM signature passed, aligned */
  const DmarcAuth *spf;      /* nullable */
  const GPtrArray *dkim;     /* of DmarcAuth* */
} DmarcOutcome;

/* The outcome of a finished check; valid as long as the check. */
void dmarc_check_get_outcome(const DmarcCheck *check, DmarcOutcome *outcome);

/* --- Answers kept for their TTL (dmarc-cache.c) ----------------------------
 */

#define DMARC_CACHE_MAX_TTL 3600
#define DMARC_CACHE_MAX_ENTRIES 10000

typedef struct _DmarcCache DmarcCache;

/* One kept answer: as pst_dns_lookup() gave it. */
typedef struct {
  PstDnsStatus status;
  guint count;
  char **records;  /* owned, `count` of them, each NUL-terminated too */
  gsize *lengths;  /* owned */
  char *reason;    /* owned, nullable */
  gint64 expires;  /* monotonic seconds */
} DmarcCachedAnswer;

/* An empty cache of at most `max_entries` answers (0: keeps nothing). */
DmarcCache *dmarc_cache_new(guint max_entries);
DmarcCache *dmarc_cache_ref(DmarcCache *cache);
void dmarc_cache_unref(DmarcCache *cache);
guint dmarc_cache_size(const DmarcCache *cache);
/* Keeps an answer received at `now` (monotonic seconds) for MIN(ttl,
 * DMARC_CACHE_MAX_TTL) seconds; only OK, NXDOMAIN and NODATA answers with
 * a TTL are kept. */
void dmarc_cache_put(DmarcCache *cache, PstDnsType type, const char *name,
                     PstDnsStatus status, const char *const *records,
                     const gsize *lengths, guint count, const char *reason,
                     guint32 ttl, gint64 now);
/* The answer kept for (type, name) that has not expired at `now`, or NULL;
 * valid until the next dmarc_cache_put(). */
const DmarcCachedAnswer *dmarc_cache_get(DmarcCache *cache, PstDnsType type,
                                         const char *name, gint64 now);

/* Answers kept elsewhere (the plugin's cache): the answer to a question,
 * or NULL when nothing is kept for it; valid until the next call. */
typedef const DmarcCachedAnswer *(*DmarcKeptFunc)(PstDnsType type,
                                                  const char *name,
                                                  gpointer data);
/* From now on the check takes what `kept` holds without asking for it:
 * dmarc_check_questions() returns only questions whose answer is not
 * kept, and may finish the check itself. */
void dmarc_check_set_kept(DmarcCheck *check, DmarcKeptFunc kept,
                          gpointer data);

/* --- Configuration ([plugin:dmarc], dmarc-config.c) -------------------------
 */

typedef enum {
  DMARC_QUARANTINE_HOLD = 0, /* the QUARANTINE verdict: our held queue */
  DMARC_QUARANTINE_HEADER,   /* deliver with DMARC_QUARANTINE_HEADER */
} DmarcQuarantine;

/* The header quarantine=header adds (and removes from what clients send). */
#define DMARC_QUARANTINE_HEADER_NAME "X-Postilion-DMARC"

/* A reply: code, enhanced status, text (with {domain} {policy}). */
typedef struct {
  guint code;
  char *enhanced; /* owned */
  char *text;     /* owned */
} DmarcReply;

/* Immutable after dmarc_config_load(); reference counted, so a SIGHUP
 * never changes a running check. */
typedef struct {
  gboolean enforce;
  DmarcReply reject;
  DmarcQuarantine quarantine;
  gboolean temperror_tempfail; /* temperror_action = tempfail */
  gboolean malformed_reject;   /* malformed_from = reject */
  gboolean skip_authenticated;
  gboolean skip_internal;
  GPtrArray *trusted_forwarders; /* owned, of GInetAddressMask* */
  char *history;         /* owned: "sqlite:PATH", "postgresql://...", "" */
  guint64 history_keep;  /* seconds a history row is kept; 0: for ever */
  char *report_org_name; /* owned */
  char *report_email;    /* owned */
  char *hostname;        /* owned: [server] hostname, the receiver */
  gboolean reports;
  gboolean failure_reports;
  guint report_rate_limit; /* reports per destination per day */
} DmarcConfig;

DmarcConfig *dmarc_config_load(GKeyFile *keyfile, const char *group,
                               GError **error);
DmarcConfig *dmarc_config_ref(DmarcConfig *config);
void dmarc_config_unref(DmarcConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DmarcConfig, dmarc_config_unref)
/* TRUE when `address` is in one of the trusted_forwarders networks. */
gboolean dmarc_config_is_trusted_forwarder(const DmarcConfig *config,
                                           GInetAddress *address);
/* The reply text with {domain} and {policy} expanded (a new string). */
char *dmarc_reply_format(const char *text, const char *domain,
                         const char *policy);

G_END_DECLS
