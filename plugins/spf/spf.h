/* spf.h - what the SPF plugin's files share.
 *
 *   spf-config.c  [plugin:spf] read into an immutable SpfConfig
 *   spf-dns.c     libspf2's DNS layer over the core resolver, with the
 *                 RFC 7208 section 4.6.4 limits libspf2 does not enforce
 *   spf-record.c  the strict RFC 7208 record parser, and the record
 *                 libspf2 is handed (only ones the parser accepted)
 *   spf-eval.c    one check_host() through libspf2 -> SpfOutcome; the
 *                 Received-SPF header; the policy decision (pure)
 *   spf-wire.c    the messages between the plugin and pst-spf-eval (pure
 *                 codecs) and their length-prefixed framing
 *   spf-child.c   the plugin's side of one pst-spf-eval process, driven
 *                 from the main loop (non-blocking socket, a GSource)
 *   spf-pool.c    the pool of long-lived pst-spf-eval processes
 *   spf-cache.c   DNS answers kept for their TTL (main thread)
 *   spf-eval-main.c  pst-spf-eval: spf_evaluate() in its own process
 *   spf.c         the hooks, the jobs, the results store
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
  guint evaluators;  /* the pool's limit (and its worker threads) */
  guint evaluator_max_checks;
  guint64 evaluator_max_age_ms;
} SpfConfig;

SpfConfig *spf_config_load(GKeyFile *keyfile, const char *group,
                           GError **error);
SpfConfig *spf_config_ref(SpfConfig *config);
void spf_config_unref(SpfConfig *config);

/* --- DNS ---------------------------------------------------------------- */

/* One answer in text form: A/AAAA addresses, MX exchanges, PTR names, TXT
 * strings concatenated.  The status is the core's classification.
 * Reference counted: the plugin's cache hands out its answers, not copies,
 * so an answer with more than one reference is read only (the evaluator's
 * DNS layer, which rewrites answers, works on its own, spf-wire.c). */
typedef struct {
  PstDnsStatus status;
  GPtrArray *records; /* owned, of char* */
  gint ref_count;
} SpfAnswer;

/* A new answer with one reference and no records. */
SpfAnswer *spf_answer_new(PstDnsStatus status);
SpfAnswer *spf_answer_ref(SpfAnswer *answer);
/* Drops a reference (nullable); the last frees the answer. */
void spf_answer_unref(SpfAnswer *answer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfAnswer, spf_answer_unref)

/* Answers one query for spf_evaluate(); may block (in pst-spf-eval it
 * asks the plugin over the socket). */
typedef SpfAnswer *(*SpfResolveFunc)(PstDnsType type, const char *name,
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
  /* The answer to the TXT question for `top_name`, the checked domain,
   * when the plugin looked it up before it handed the check over (the
   * evaluator then answers its first such question with it); both
   * nullable, both or neither. */
  const char *top_name;
  const SpfAnswer *top;
  /* Nullable, of SpfKnown: answers the plugin had at hand (its cache) to
   * questions the evaluation may ask after that one (spf_known_collect());
   * the evaluator answers those questions with them, without asking. */
  const GPtrArray *known;
  /* Nullable: the records this check parsed, kept for it (in the plugin:
   * the local decision and the collection of known answers read the same
   * records; see SpfParsedRecords). */
  struct SpfParsedRecords *parsed;
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

/* Evaluates one identity.  Blocks on DNS: pst-spf-eval (or tests). */
SpfOutcome *spf_evaluate(const SpfQuery *query);
void spf_outcome_free(SpfOutcome *outcome);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfOutcome, spf_outcome_free)

/* A temperror outcome for `query` without evaluating it (the evaluator
 * process failed): identity, domain and comment as spf_evaluate() makes
 * them, `problem` copied. */
SpfOutcome *spf_outcome_new_temperror(const SpfQuery *query,
                                      const char *problem);
/* TRUE when `answer` to the checked domain's TXT question holds no record
 * at all (NXDOMAIN, NODATA, a name that cannot exist): the domain
 * publishes no SPF record, and spf_evaluate() would say `none` (RFC 7208
 * 4.5) without another question. */
gboolean spf_answer_is_no_record(const SpfAnswer *answer);
/* That `none` outcome, as spf_evaluate() makes it, without libspf2: the
 * plugin's answer when its own TXT lookup found nothing. */
SpfOutcome *spf_outcome_new_none(const SpfQuery *query);

/* An answer at hand without waiting (the plugin's cache), a reference
 * (read only), or NULL. */
typedef SpfAnswer *(*SpfPeekFunc)(PstDnsType type, const char *name,
                                  gpointer data);
/* One answer at hand, for the evaluator. */
typedef struct {
  PstDnsType type;
  char *name;        /* owned */
  SpfAnswer *answer; /* owned */
} SpfKnown;
void spf_known_free(SpfKnown *known);
/* At most this many travel with a query. */
#define SPF_KNOWN_MAX 64u
/* The answers `peek` has at hand to the questions the evaluation of
 * `query` (its `top` answer set) may ask next: the names the domain's
 * record names without a macro (a, mx and the MX hosts' addresses of the
 * client's family, include, exists, redirect), and so on through the
 * records of includes and redirects at hand, at most SPF_KNOWN_MAX.
 * NULL when there are none.  Pure besides `peek`. */
GPtrArray *spf_known_collect(const SpfQuery *query, SpfPeekFunc peek,
                             gpointer peek_data);
/* The outcome spf_evaluate() would give for `query`, whose `top` holds
 * the checked domain's TXT answer, made without libspf2 and without
 * waiting when that answer decides it, with the answers of its includes
 * that `peek` (nullable) has at hand: one SPF record, which the strict
 * parser accepts and spf_record_decide() decides, and so on for each
 * include evaluated, within max_lookups.  NULL for anything else (an
 * evaluator decides it).  Tested against libspf2 (test-spf.c). */
SpfOutcome *spf_outcome_new_local(const SpfQuery *query, SpfPeekFunc peek,
                                  gpointer peek_data);
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

/* A "v=spf1" record parsed by RFC 7208's grammar (spf-record.c). */
typedef struct SpfRecord SpfRecord;

/* TRUE when a TXT record is an SPF record: "v=spf1", then a space or
 * nothing (section 4.5). */
gboolean spf_record_text_is_spf(const char *text);
/* NULL, with `problem_r` set to a new string naming the error, when
 * `text` is not a valid record (a permerror). */
SpfRecord *spf_record_parse(const char *text, char **problem_r);
void spf_record_free(SpfRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfRecord, spf_record_free)

/* Records parsed during one identity's check, by their text: each is
 * parsed once per check, however often it is read (spf-eval.c).  The
 * first SPF_PARSED_MAX are kept; later ones are parsed each time. */
#define SPF_PARSED_MAX 4
typedef struct SpfParsedRecords {
  guint count;
  char *texts[SPF_PARSED_MAX];         /* owned */
  SpfRecord *records[SPF_PARSED_MAX]; /* owned, NULL: did not parse */
} SpfParsedRecords;
void spf_parsed_records_clear(SpfParsedRecords *parsed);
/* The record as libspf2 evaluates it the RFC 7208 way for a client of
 * this family: redirect= last, unknown modifiers dropped, a zero prefix
 * rewritten (see spf-record.c).  A new string. */
char *spf_record_render(const SpfRecord *record, gboolean client_ipv6);
/* The result of the record of include `target` (a plain name: no macro,
 * no final dot) for the same client, counting its lookup and those of
 * its own includes in `*lookups`; FALSE when it cannot be known without
 * libspf2 (an answer not at hand, a lookup past the limit, a record
 * spf_record_decide() does not decide). */
typedef gboolean (*SpfIncludeFunc)(const char *target, gpointer data,
                                   guint *lookups, SpfResult *result_r);
/* The result of `record` for a client at `address` (4 octets for IPv4,
 * a mapped IPv6 client included; 16 for IPv6) when it is decided without
 * libspf2: only ip4, ip6 and all mechanisms, and include of a plain name
 * when `include` (nullable) decides the included record; no redirect= or
 * exp=.  FALSE for any other record (an evaluator decides it). */
gboolean spf_record_decide(const SpfRecord *record, const guint8 *address,
                           gsize length, SpfIncludeFunc include,
                           gpointer include_data, guint *lookups,
                           SpfResult *result_r);
/* Called with each DNS question `record` names without a macro: A or
 * AAAA (the client's family) for a (and the domain for a bare one) and
 * exists (A), MX for mx, TXT for include and redirect; `domain` is the
 * record's own domain. */
typedef void (*SpfQuestionFunc)(PstDnsType type, const char *name,
                                gpointer data);
void spf_record_foreach_question(const SpfRecord *record, const char *domain,
                                 gboolean client_ipv6, SpfQuestionFunc func,
                                 gpointer data);
/* Parse, then render; NULL with `problem_r` set for a permerror. */
char *spf_record_prepare(const char *text, gboolean client_ipv6,
                         char **problem_r);
/* Appended to the name of an "a" or "mx" whose prefix length is 0 for the
 * client's family: the DNS layer strips it and answers any address of the
 * name with the client's own (section 5.3: "a/0" matches any address).
 * Under .invalid (RFC 6761), so it never names a real host. */
#define SPF_ZERO_PREFIX_SUFFIX ".zero-prefix.spf.invalid"
/* TRUE when every '%' in `text` starts a macro of RFC 7208 section 7.1
 * (c, r and t only in `explanation` text). */
gboolean spf_macro_string_is_valid(const char *text, gboolean explanation);

/* --- The evaluator process (spf-wire.c, spf-child.c) -------------------- */

/* Every message is a 4-byte big-endian length, then that many bytes: a
 * type byte and fields (u32 big-endian; strings as a u32 length, or
 * 0xffffffff for NULL, and bytes without NUL).  Decoders take a whole
 * payload, refuse anything malformed or left over, and return NULL. */
#define SPF_WIRE_MAX_MESSAGE (256u * 1024u)
#define SPF_WIRE_MAX_RECORDS 1024u
#define SPF_WIRE_MAX_NAME 1024u

typedef enum {
  SPF_WIRE_QUERY = 'Q',    /* plugin -> evaluator: one SpfQuery */
  SPF_WIRE_QUESTION = 'D', /* evaluator -> plugin: one DNS question */
  SPF_WIRE_ANSWER = 'A',   /* plugin -> evaluator: its SpfAnswer */
  SPF_WIRE_OUTCOME = 'O',  /* evaluator -> plugin: the SpfOutcome */
} SpfWireType;

/* A decoded query: `query` points into the strings and the answer it
 * owns; resolve and resolve_data are unset. */
typedef struct {
  SpfQuery query;
  char *ip, *helo, *sender, *receiver; /* owned; helo nullable */
  char *top_name;                      /* owned, nullable */
  SpfAnswer *top;                      /* owned, nullable */
  GPtrArray *known;                    /* owned, nullable: of SpfKnown */
} SpfWireQuery;

void spf_wire_query_free(SpfWireQuery *wire);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SpfWireQuery, spf_wire_query_free)

/* The type of a payload, or 0 when it is empty. */
guint8 spf_wire_type(GBytes *payload);
GBytes *spf_wire_encode_query(const SpfQuery *query);
SpfWireQuery *spf_wire_decode_query(GBytes *payload);
/* The query's own answer to the TXT question for `name` when that is its
 * `top_name`, once (then NULL: a later question is asked); NULL for any
 * other question. */
SpfAnswer *spf_wire_query_take_top(SpfWireQuery *wire, PstDnsType type,
                                   const char *name);
/* A copy of the query's known answer to `type` `name` (names compared
 * without case), or NULL. */
SpfAnswer *spf_wire_query_find_known(const SpfWireQuery *wire,
                                     PstDnsType type, const char *name);
GBytes *spf_wire_encode_question(PstDnsType type, const char *name);
/* The name, a new string, with its type in `type_r`. */
char *spf_wire_decode_question(GBytes *payload, PstDnsType *type_r);
GBytes *spf_wire_encode_answer(const SpfAnswer *answer);
SpfAnswer *spf_wire_decode_answer(GBytes *payload);
/* Only result, comment, problem, explanation, lookups and voids travel;
 * the plugin sets identity and domain from the query itself. */
GBytes *spf_wire_encode_outcome(const SpfOutcome *outcome);
/* Also refuses what spf_evaluate() never makes: a result out of range,
 * text that is not printable ASCII, a comment with ( ) or \. */
SpfOutcome *spf_wire_decode_outcome(GBytes *payload);

/* Writes one framed message to `fd` (a socket; no SIGPIPE).  The
 * evaluator's side (blocking). */
gboolean spf_wire_send(int fd, GBytes *payload, GError **error);
/* Reads one framed message from `fd`, waiting until `deadline` (monotonic
 * microseconds; 0: forever) or until `cancellable` fires.  NULL and
 * G_IO_ERROR_CLOSED at a clean end of stream.  The evaluator's side. */
GBytes *spf_wire_recv(int fd, gint64 deadline, GCancellable *cancellable,
                      GError **error);
/* Appends `payload` framed (its 4-byte length first) to `out`; FALSE for
 * an empty or oversized payload. */
gboolean spf_wire_frame_append(GByteArray *out, GBytes *payload,
                               GError **error);
/* The first whole framed message at the start of `in` (bytes as they
 * arrived), removed from it: TRUE with `*payload_r` set, TRUE with NULL
 * when the message is not all there yet, FALSE when its length is 0 or
 * over SPF_WIRE_MAX_MESSAGE (nothing is allocated for it).  Pure: the
 * plugin's side parses what it reads from a non-blocking socket with it. */
gboolean spf_wire_frame_take(GByteArray *in, GBytes **payload_r,
                             GError **error);

/* --- The evaluator processes, driven from the main loop ----------------- */

/* Receives one DNS answer (owned by the callee). */
typedef void (*SpfAnswerFunc)(SpfAnswer *answer, gpointer data);
/* Looks `name` up and calls `done` exactly once with the answer, later,
 * on the main thread. */
typedef void (*SpfLookupFunc)(PstDnsType type, const char *name,
                              GCancellable *cancellable, SpfAnswerFunc done,
                              gpointer done_data, gpointer user_data);
/* DNS answers kept for their TTL (spf-cache.c).  Main thread only. */
typedef struct SpfAnswerCache SpfAnswerCache;

/* At most `max_entries` answers. */
SpfAnswerCache *spf_answer_cache_new(guint max_entries);
SpfAnswerCache *spf_answer_cache_ref(SpfAnswerCache *cache);
void spf_answer_cache_unref(SpfAnswerCache *cache);
void spf_answer_cache_clear(SpfAnswerCache *cache);
guint spf_answer_cache_get_size(SpfAnswerCache *cache);
/* A reference to the answer kept for `type` and `name` (case-insensitive)
 * and not expired at `now` (monotonic microseconds), or NULL: read only,
 * the cache keeps it too. */
SpfAnswer *spf_answer_cache_lookup(SpfAnswerCache *cache, PstDnsType type,
                                   const char *name, gint64 now);
/* Keeps a copy of `answer` for `ttl` seconds (at most an hour) from `now`:
 * only records, NXDOMAIN or NODATA with a TTL above 0, and small ones. */
void spf_answer_cache_store(SpfAnswerCache *cache, PstDnsType type,
                            const char *name, const SpfAnswer *answer,
                            guint32 ttl, gint64 now);

/* The production lookup: the core's asynchronous resolver
 * (pst_dns_lookup_full(), names looked up verbatim, RFC 7208 7.3), with
 * `user_data` an SpfAnswerCache (nullable) that answers a question asked
 * before, within its TTL, without a lookup (still later, from the main
 * loop) and keeps what the resolver answers. */
void spf_lookup_core(PstDnsType type, const char *name,
                     GCancellable *cancellable, SpfAnswerFunc done,
                     gpointer done_data, gpointer user_data);
/* A core resolver answer as the evaluator gets it (a NUL octet inside a
 * TXT record becomes DEL: it can then never pass for a shorter record). */
SpfAnswer *spf_answer_from_dns_result(PstDnsType type,
                                      const PstDnsResult *result);

/* One pst-spf-eval process and its socket (spf-child.c).  Main thread. */
typedef struct SpfChild SpfChild;

/* The evaluator next to the module holding this code: DIR/pst-spf-eval. */
char *spf_child_default_path(void);
SpfChild *spf_child_spawn(const char *path, GError **error);
GPid spf_child_get_pid(const SpfChild *child);
/* Queries sent to it so far, and when it was started (monotonic
 * microseconds): what the pool recycles it by. */
guint spf_child_get_checks(const SpfChild *child);
gint64 spf_child_get_started(const SpfChild *child);
/* FALSE once it has ended (then it is reaped at once). */
gboolean spf_child_is_running(SpfChild *child);
/* Called from the main loop when an idle child (no check under way)
 * hangs up (it died) or writes anything (unasked: garbage); its socket is
 * closed by then, and the callee ends it. */
typedef void (*SpfChildHangup)(SpfChild *child, gpointer data);
void spf_child_watch_idle(SpfChild *child, SpfChildHangup hangup,
                          gpointer data);

/* The end of one check: the outcome (owned by the callee), or NULL with
 * `error` (G_IO_ERROR_CANCELLED when `cancellable` fired) when the child
 * failed, died, misbehaved or missed the deadline: then it is of no
 * further use. */
typedef void (*SpfChildDone)(SpfChild *child, SpfOutcome *outcome,
                             const GError *error, gpointer data);
/* Sends `query` to the child and returns; the child's socket is watched
 * by the thread-default main context, each DNS question is answered with
 * `lookup`, and `done` runs once, from the main loop.  `query` must live
 * until then.  `deadline`: monotonic microseconds. */
void spf_child_evaluate(SpfChild *child, const SpfQuery *query, gint64 deadline,
                        GCancellable *cancellable, SpfLookupFunc lookup,
                        gpointer lookup_data, SpfChildDone done, gpointer data);
/* Closes the socket, gives the child 100 ms to end (it exits at the end
 * of its stream), kills it (SIGKILL) if it has not, and reaps it; returns
 * how it ended ("killed by signal SIGSEGV", "exited with status 0",
 * "killed" when it had to be), a new string.  Blocks up to 100 ms: for
 * shutdown and tests; the pool uses spf_child_end(). */
char *spf_child_free(SpfChild *child);
/* Receives how an ended child ended (see spf_child_free()). */
typedef void (*SpfChildEnded)(GPid pid, const char *how, gpointer data);
/* spf_child_free() without blocking: the socket closed now, the 100 ms
 * and the reaping on the main loop, then `ended` (nullable).  Returns the
 * ending child's handle for spf_child_end_now() (at shutdown). */
SpfChild *spf_child_end(SpfChild *child, SpfChildEnded ended, gpointer data);
/* Finishes an ending child at once (blocking as spf_child_free()), with
 * its `ended` callback. */
void spf_child_end_now(SpfChild *child);

/* A pool of long-lived evaluators (spf-pool.c).  Main thread only. */
typedef struct SpfPool SpfPool;

/* A pool of `path` processes; `start` of them are started from the main
 * loop's first iteration (after the daemon dropped its privileges).  NULL
 * when `path` is not an executable. */
SpfPool *spf_pool_new(const char *path, guint start, GError **error);
/* At most `limit` evaluators; each retired after `max_checks` checks or
 * `max_age_us` microseconds. */
void spf_pool_set_limits(SpfPool *pool, guint limit, guint max_checks,
                         gint64 max_age_us);
/* The end of one check: never NULL (owned by the callee).  When the
 * evaluator failed, it was killed and reaped, the outcome is a
 * temperror, "SPF evaluator failure" with the reason in `failure`, or
 * "check cancelled" (failure NULL). */
typedef void (*SpfPoolDone)(SpfOutcome *outcome, const char *failure,
                            gpointer data);
/* Evaluates `query` in an idle evaluator, a new one while fewer than the
 * limit run, or the first to come back; DNS questions are answered with
 * `lookup`.  `done` runs once, from the main loop, never inside this
 * call; `query` must live until then. */
void spf_pool_evaluate(SpfPool *pool, const SpfQuery *query, gint64 deadline,
                       GCancellable *cancellable, SpfLookupFunc lookup,
                       gpointer lookup_data, SpfPoolDone done, gpointer data);
/* Evaluators alive, idle or in use. */
guint spf_pool_get_running(SpfPool *pool);
/* Ends and reaps every evaluator; no check may be under way. */
void spf_pool_free(SpfPool *pool);

/* Routes libspf2's process-global log hooks to GLib (once). */
void spf_library_init(void);

G_END_DECLS
