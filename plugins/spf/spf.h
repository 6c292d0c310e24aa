/* spf.h - what the SPF plugin's files share.
 *
 *   spf-config.c  [plugin:spf] read into an immutable SpfConfig
 *   spf-dns.c     libspf2's DNS layer over the core resolver, with the
 *                 RFC 7208 section 4.6.4 limits libspf2 does not enforce
 *   spf-record.c  records rewritten where libspf2 departs from the RFC
 *   spf-eval.c    one check_host() through libspf2 -> SpfOutcome; the
 *                 Received-SPF header; the policy decision (pure)
 *   spf.c         the hooks, the worker threads, the results store
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* --- Results ------------------------------------------------------------ */

typedef enum {
  SPF_RES_NONE = 0,
  SPF_RES_NEUTRAL,
  SPF_RES_PASS,
  SPF_RES_FAIL,
  SPF_RES_SOFTFAIL,
  SPF_RES_TEMPERROR,
  SPF_RES_PERMERROR,
} SpfResult;

/* "none", "neutral", "pass", ... (RFC 7208 section 2.6). */
const char *spf_result_to_string(SpfResult result);

typedef enum {
  SPF_IDENTITY_MAIL_FROM = 1,
  SPF_IDENTITY_HELO = 2,
} SpfIdentity;

/* --- Configuration ------------------------------------------------------ */

typedef enum {
  SPF_POLICY_NONE = 0, /* annotate only */
  SPF_POLICY_SOFT,     /* reject fail */
  SPF_POLICY_STRICT,   /* reject fail and softfail */
} SpfPolicy;

/* What to do with a temperror or permerror: continue (code 0), or refuse
 * with this reply. */
typedef struct {
  guint code;     /* 0: continue */
  char *enhanced; /* owned, nullable */
  char *text;     /* owned, nullable: the default text then */
} SpfAction;

/* Immutable after spf_config_load(); reference counted: every hook and
 * every job holds a reference, so a SIGHUP never changes a running check. */
typedef struct {
  guint identities; /* SpfIdentity bits */
  SpfPolicy policy;
  char *reject_text; /* owned: template, see spf_format_text() */
  SpfAction temperror;
  SpfAction permerror;
  gboolean skip_authenticated;
  gboolean skip_internal;
  char *receiver;    /* owned: [server] hostname, for headers */
  guint max_lookups; /* RFC 7208 section 4.6.4: 10 */
  guint max_void;    /* RFC 7208 section 4.6.4: 2 */
} SpfConfig;

SpfConfig *spf_config_load(GKeyFile *keyfile, const char *group,
                           GError **error);
SpfConfig *spf_config_ref(SpfConfig *config);
void spf_config_unref(SpfConfig *config);

/* --- DNS ---------------------------------------------------------------- */

/* One answer in text form: A/AAAA addresses, MX exchanges, PTR names, TXT
 * strings concatenated.  The status is the core's classification. */
typedef struct {
  PstDnsStatus status;
  GPtrArray *records; /* owned, of char* */
} SpfAnswer;

SpfAnswer *spf_answer_new(PstDnsStatus status);
void spf_answer_free(SpfAnswer *answer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfAnswer, spf_answer_free)

/* Answers one query; called on the evaluating thread, may block. */
typedef SpfAnswer *(*SpfResolveFunc)(PstDnsType type, const char *name,
                                     gpointer user_data);

/* The production resolver: pst_dns_lookup_sync() with `user_data` as the
 * GCancellable (nullable).  Worker threads only. */
SpfAnswer *spf_resolve_core(PstDnsType type, const char *name,
                            gpointer user_data);

/* --- Evaluation --------------------------------------------------------- */

typedef struct {
  const char *ip;       /* "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" */
  const char *helo;     /* nullable */
  const char *sender;   /* MAIL FROM identity: the address ("" = <>) */
  SpfIdentity identity; /* HELO: check the HELO name, sender unused */
  const char *receiver; /* our host name, for comments */
  guint max_lookups;
  guint max_void;
  SpfResolveFunc resolve;
  gpointer resolve_data;
} SpfQuery;

typedef struct {
  SpfResult result;
  char *domain;      /* owned, nullable: the domain checked */
  char *identity;    /* owned: the identity checked ("user@dom", "helo") */
  char *comment;     /* owned: the Received-SPF comment, safe to embed */
  char *problem;     /* owned, nullable: why temperror/permerror */
  char *explanation; /* owned, nullable: fail only, printable ASCII */
  guint lookups;     /* DNS-querying terms counted */
  guint voids;       /* void lookups counted */
} SpfOutcome;

/* Evaluates one identity.  Blocks on DNS: worker threads (or tests). */
SpfOutcome *spf_evaluate(const SpfQuery *query);
void spf_outcome_free(SpfOutcome *outcome);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfOutcome, spf_outcome_free)

/* The domain an identity is about: the part after the last '@' of the
 * sender, or the HELO name; NULL when it cannot be checked (an address
 * literal, a name without a dot, no HELO).  A new string. */
char *spf_identity_domain(const char *sender, const char *helo,
                          SpfIdentity identity);

/* The value of a Received-SPF field (RFC 7208 section 9.1), folded, with
 * every client-supplied part quoted or cleaned. */
char *spf_received_spf(const SpfOutcome *outcome, const SpfQuery *query);

/* The plugin's decision for one outcome. */
typedef struct {
  PstVerdict verdict; /* CONTINUE, REJECT or TEMPFAIL */
  guint code;
  char enhanced[16];
  char *text; /* owned, nullable */
} SpfDecision;

void spf_decide(const SpfConfig *config, const SpfOutcome *outcome,
                const SpfQuery *query, SpfDecision *decision_r);
void spf_decision_clear(SpfDecision *decision);

/* Expands {result} {domain} {sender} {ip} {helo} {identity}
 * {explanation} {problem} in `template`; unknown names stay as they are. */
char *spf_format_text(const char *template, const SpfOutcome *outcome,
                      const SpfQuery *query);

/* An SPF record ("v=spf1 ...") rewritten into what libspf2 evaluates the
 * RFC 7208 way (spf-record.c): redirect= moved last, "ip4:X/0" split.
 * NULL, with `problem_r` set to a new string, when the record is a
 * permerror that libspf2 would not call one. */
char *spf_record_prepare(const char *record, char **problem_r);
/* TRUE when every '%' in `text` starts a macro of RFC 7208 section 7.1
 * (c, r and t only in `explanation` text). */
gboolean spf_macro_string_is_valid(const char *text, gboolean explanation);

/* Routes libspf2's process-global log hooks to GLib (once). */
void spf_library_init(void);

G_END_DECLS
