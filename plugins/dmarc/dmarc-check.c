/* dmarc-check.c - one message's DMARC evaluation (RFC 9989 "Determine
 * Handling Policy") as a pure state machine over DNS answers.
 *
 * A DmarcCheck asks questions (dmarc_check_questions()) and takes answers
 * (dmarc_check_answer()); it never does I/O itself, so the plugin drives
 * it with the core's asynchronous DNS service and the unit tests with a
 * zone in a table.  Steps:
 *   1. the tree walk for the RFC5322.From domain: its policy record and
 *      its Organizational Domain (a gap in it is temperror, no record is
 *      none, an unusable record is permerror);
 *   2. for relaxed alignment, a tree walk for each passing identifier (the
 *      SPF domain, each DKIM d=) that differs from the From domain and
 *      lies within the From domain's Organizational Domain (any other one
 *      cannot share it: an Organizational Domain is always one of the
 *      domain's own suffixes, so no query is spent on it); walks for the
 *      same domain are made once, and questions shared by walks are asked
 *      once; in parallel, when the policy comes from a parent record with
 *      np=, whether the From domain exists (RFC 9989 "Non-existent
 *      Domains": NXDOMAIN or NODATA for A, AAAA and MX);
 *   3. the result: pass when an aligned identifier passed; otherwise
 *      temperror when a temporary error kept one from passing ("cannot
 *      apply the advertised DMARC policy"), else fail.
 */
#include <string.h>

#include "dmarc.h"

typedef enum {
  CHECK_FROM_WALK,
  CHECK_ALIGNMENT,
  CHECK_DONE,
} CheckStage;

struct _DmarcCheck {
  CheckStage stage;
  char *from_domain;    /* owned */
  DmarcAuth *spf;       /* owned, nullable */
  GPtrArray *dkim;      /* owned, of DmarcAuth* */
  DmarcWalk *from_walk; /* owned */
  /* Made when first needed (the usual message, decided from kept answers
   * with no identifier walk, needs none of them): */
  GHashTable *walks;    /* owned: domain -> DmarcWalk*, identifiers' */
  GHashTable *asked;    /* owned: question keys awaiting an answer */
  GHashTable *answers;  /* owned: _dmarc name -> DmarcAnswer*, answered */
  DmarcKeptFunc kept;   /* nullable: answers taken without asking */
  gpointer kept_data;
  guint exist_answers;  /* of the 3 existence questions */
  gboolean exist_asked;
  gboolean exists; /* an A, AAAA or MX record answered */
  gboolean exist_tempfail;
  /* The outcome. */
  DmarcResult result;
  char *reason; /* owned, nullable */
  const DmarcRecord *record;
  const char *policy_domain;
  const char *org_domain;
  gboolean subdomain, psd, needs_existence;
  gboolean spf_aligned, dkim_aligned;
};

const char *dmarc_result_to_string(DmarcResult result) {
  static const char *const names[] = {"none", "pass", "fail", "temperror",
                                      "permerror"};
  return result <= DMARC_RESULT_PERMERROR ? names[result] : "permerror";
}

DmarcAuth *dmarc_auth_new(const char *domain, const char *selector,
                          const char *result, const char *scope) {
  DmarcAuth *auth = g_new0(DmarcAuth, 1);
  auth->domain = dmarc_domain_normalize(domain);
  auth->selector = g_strdup(selector);
  auth->result = g_ascii_strdown(result != NULL ? result : "none", -1);
  auth->scope = g_strdup(scope);
  return auth;
}

void dmarc_auth_free(DmarcAuth *auth) {
  if (auth == NULL)
    return;
  g_free(auth->domain);
  g_free(auth->selector);
  g_free(auth->result);
  g_free(auth->scope);
  g_free(auth->human);
  g_free(auth);
}

/* `text` as dmarc_auth_set_human() keeps it when it is printable ASCII
 * short enough (nothing to replace or cut, the usual reason): a copy
 * without the spaces around it.  FALSE for any other text. */
static gboolean dmarc_auth_set_human_ascii(DmarcAuth *auth, const char *text) {
  gsize length = 0;
  for (; text[length] != '\0'; length++)
    if ((guchar)text[length] < 0x20 || (guchar)text[length] >= 0x7f ||
        length >= DMARC_HUMAN_MAX)
      return FALSE;
  while (length > 0 && text[length - 1] == ' ')
    length--;
  while (length > 0 && text[0] == ' ') {
    text++;
    length--;
  }
  if (length > 0)
    auth->human = g_strndup(text, length);
  return TRUE;
}

void dmarc_auth_set_human(DmarcAuth *auth, const char *text) {
  g_clear_pointer(&auth->human, g_free);
  if (text == NULL || dmarc_auth_set_human_ascii(auth, text))
    return;
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  g_autoptr(GString) out = g_string_new(NULL);
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
    gsize length = g_utf8_next_char(p) - p;
    if (out->len + length > DMARC_HUMAN_MAX)
      break;
    if ((guchar)*p < 0x20 || *p == 0x7f)
      g_string_append_c(out, ' ');
    else
      g_string_append_len(out, p, length);
  }
  g_strstrip(out->str);
  if (out->str[0] != '\0')
    auth->human = g_strdup(out->str);
}

/* A TXT answer kept so that a later walk through the same name (the
 * From domain's walk and an identifier's share their upper part) needs no
 * second query. */
typedef struct {
  PstDnsStatus status;
  GStrv records; /* owned; NUL octets cut (such records are no DMARC) */
  char *reason;  /* owned, nullable */
} DmarcAnswer;

static void dmarc_answer_free(DmarcAnswer *answer) {
  g_strfreev(answer->records);
  g_free(answer->reason);
  g_free(answer);
}

void dmarc_question_free(DmarcQuestion *question) {
  g_free(question->name);
  g_free(question);
}

DmarcCheck *dmarc_check_new(const char *from_domain, DmarcAuth *spf,
                            GPtrArray *dkim) {
  DmarcCheck *check = g_new0(DmarcCheck, 1);
  check->from_domain = g_strdup(from_domain);
  check->spf = spf;
  check->dkim = dkim != NULL ? dkim : g_ptr_array_new();
  g_ptr_array_set_free_func(check->dkim, (GDestroyNotify)dmarc_auth_free);
  check->from_walk = dmarc_walk_new(from_domain);
  return check;
}

void dmarc_check_free(DmarcCheck *check) {
  if (check == NULL)
    return;
  g_free(check->from_domain);
  dmarc_auth_free(check->spf);
  g_ptr_array_unref(check->dkim);
  dmarc_walk_free(check->from_walk);
  g_clear_pointer(&check->walks, g_hash_table_unref);
  g_clear_pointer(&check->asked, g_hash_table_unref);
  g_clear_pointer(&check->answers, g_hash_table_unref);
  g_free(check->reason);
  g_free(check);
}

gboolean dmarc_check_is_done(const DmarcCheck *check) {
  return check->stage == CHECK_DONE;
}

char *dmarc_question_key(PstDnsType type, const char *name) {
  char digits[24];
  gsize n = 0;
  guint value = (guint)type;
  do
    digits[n++] = (char)('0' + value % 10);
  while ((value /= 10) != 0);
  gsize length = strlen(name);
  char *key = g_malloc(n + 1 + length + 1);
  for (gsize i = 0; i < n; i++)
    key[i] = digits[n - 1 - i];
  key[n] = ' ';
  memcpy(key + n + 1, name, length + 1);
  return key;
}

/* Adds the question unless it awaits its answer already. */
static void dmarc_check_ask(DmarcCheck *check, GPtrArray *questions,
                            PstDnsType type, const char *name) {
  char *key = dmarc_question_key(type, name);
  if (check->asked == NULL)
    check->asked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  if (!g_hash_table_add(check->asked, key))
    return;
  DmarcQuestion *question = g_new0(DmarcQuestion, 1);
  question->type = type;
  question->name = g_strdup(name);
  g_ptr_array_add(questions, question);
}

void dmarc_check_set_kept(DmarcCheck *check, DmarcKeptFunc kept,
                          gpointer data) {
  check->kept = kept;
  check->kept_data = data;
}

/* The kept answer to a question, or NULL. */
static const DmarcCachedAnswer *dmarc_check_kept(const DmarcCheck *check,
                                                 PstDnsType type,
                                                 const char *name) {
  return check->kept != NULL ? check->kept(type, name, check->kept_data)
                             : NULL;
}

/* Feeds `walk` what is known already, then asks for the rest. */
static void dmarc_check_ask_walk(DmarcCheck *check, GPtrArray *questions,
                                 DmarcWalk *walk) {
  const char *target;
  while ((target = dmarc_walk_next(walk)) != NULL) {
    g_autofree char *name = g_strconcat("_dmarc.", target, NULL);
    const DmarcAnswer *answer =
        check->answers != NULL ? g_hash_table_lookup(check->answers, name)
                               : NULL;
    const DmarcCachedAnswer *kept =
        answer == NULL ? dmarc_check_kept(check, PST_DNS_TYPE_TXT, name) : NULL;
    if (kept != NULL) {
      dmarc_walk_feed(walk, kept->status, (const char *const *)kept->records,
                      kept->lengths, kept->count, kept->reason);
      continue;
    }
    if (answer == NULL) {
      dmarc_check_ask(check, questions, PST_DNS_TYPE_TXT, name);
      return;
    }
    guint count = g_strv_length(answer->records);
    g_autofree gsize *lengths = g_new0(gsize, count + 1);
    for (guint i = 0; i < count; i++)
      lengths[i] = strlen(answer->records[i]);
    dmarc_walk_feed(walk, answer->status, (const char *const *)answer->records,
                    lengths, count, answer->reason);
  }
}

static void dmarc_check_keep_answer(DmarcCheck *check, const char *name,
                                    PstDnsStatus status,
                                    const char *const *records, guint count,
                                    const char *reason) {
  DmarcAnswer *answer = g_new0(DmarcAnswer, 1);
  answer->status = status;
  answer->records = g_new0(char *, count + 1);
  for (guint i = 0; i < count; i++)
    answer->records[i] = g_strdup(records[i]);
  answer->reason = g_strdup(reason);
  if (check->answers == NULL)
    check->answers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)dmarc_answer_free);
  g_hash_table_replace(check->answers, g_strdup(name), answer);
}

static gboolean dmarc_check_alignment_ready(const DmarcCheck *check);
static void dmarc_check_conclude(DmarcCheck *check);
static void dmarc_check_after_from_walk(DmarcCheck *check);
static void dmarc_check_feed_existence(DmarcCheck *check, PstDnsType type,
                                       const char *name, PstDnsStatus status);

static void dmarc_check_ask_alignment(DmarcCheck *check, GPtrArray *questions) {
  GHashTableIter iter;
  gpointer walk;
  if (check->walks != NULL) {
    g_hash_table_iter_init(&iter, check->walks);
    while (g_hash_table_iter_next(&iter, NULL, &walk))
      dmarc_check_ask_walk(check, questions, walk);
  }
  if (check->needs_existence && !check->exist_asked) {
    check->exist_asked = TRUE;
    static const PstDnsType types[] = {PST_DNS_TYPE_A, PST_DNS_TYPE_AAAA,
                                       PST_DNS_TYPE_MX};
    for (guint i = 0; i < G_N_ELEMENTS(types); i++) {
      const DmarcCachedAnswer *kept =
          dmarc_check_kept(check, types[i], check->from_domain);
      if (kept != NULL)
        dmarc_check_feed_existence(check, types[i], check->from_domain,
                                   kept->status);
      else
        dmarc_check_ask(check, questions, types[i], check->from_domain);
    }
  }
  /* Walks fed entirely from kept answers may have finished the check. */
  if (questions->len == 0 && dmarc_check_alignment_ready(check))
    dmarc_check_conclude(check);
}

GPtrArray *dmarc_check_questions(DmarcCheck *check) {
  GPtrArray *questions =
      g_ptr_array_new_with_free_func((GDestroyNotify)dmarc_question_free);
  if (check->stage == CHECK_FROM_WALK) {
    dmarc_check_ask_walk(check, questions, check->from_walk);
    /* Fed entirely from kept answers: on to the next step at once. */
    if (check->from_walk->done)
      dmarc_check_after_from_walk(check);
  }
  if (check->stage == CHECK_ALIGNMENT)
    dmarc_check_ask_alignment(check, questions);
  return questions;
}

/* --- Alignment -------------------------------------------------------------
 */

static gboolean dmarc_auth_passed(const DmarcAuth *auth) {
  return auth != NULL && auth->domain != NULL &&
         g_str_equal(auth->result, "pass");
}

/* Whether `auth` needs its own tree walk: it passed, alignment is relaxed,
 * it is not the From domain itself, and it lies within the From domain's
 * Organizational Domain (otherwise the answer is "not aligned" already). */
static gboolean dmarc_needs_walk(const DmarcCheck *check, const DmarcAuth *auth,
                                 gboolean strict) {
  return dmarc_auth_passed(auth) && !strict &&
         !g_str_equal(auth->domain, check->from_domain) &&
         dmarc_domain_is_within(auth->domain, check->org_domain);
}

static void dmarc_check_plan_walk(DmarcCheck *check, const DmarcAuth *auth,
                                  gboolean strict) {
  if (!dmarc_needs_walk(check, auth, strict))
    return;
  if (check->walks == NULL)
    check->walks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)dmarc_walk_free);
  if (!g_hash_table_contains(check->walks, auth->domain))
    g_hash_table_insert(check->walks, g_strdup(auth->domain),
                        dmarc_walk_new(auth->domain));
}

typedef enum { ALIGN_NO, ALIGN_YES, ALIGN_UNKNOWN } Alignment;

static Alignment dmarc_check_aligned(const DmarcCheck *check,
                                     const DmarcAuth *auth, gboolean strict) {
  if (!dmarc_auth_passed(auth))
    return ALIGN_NO;
  if (g_str_equal(auth->domain, check->from_domain))
    return ALIGN_YES;
  if (!dmarc_needs_walk(check, auth, strict))
    return ALIGN_NO;
  const DmarcWalk *walk = g_hash_table_lookup(check->walks, auth->domain);
  if (walk->tempfail)
    return ALIGN_UNKNOWN;
  return g_str_equal(dmarc_walk_organizational_domain(walk), check->org_domain)
             ? ALIGN_YES
             : ALIGN_NO;
}

static gboolean dmarc_auth_is_temperror(const DmarcAuth *auth) {
  return auth != NULL && g_str_equal(auth->result, "temperror");
}

static void dmarc_check_finish(DmarcCheck *check, DmarcResult result,
                               char *reason) {
  check->result = result;
  g_free(check->reason);
  check->reason = reason;
  check->stage = CHECK_DONE;
}

static void dmarc_check_conclude(DmarcCheck *check) {
  const DmarcRecord *record = check->record;
  gboolean unknown = dmarc_auth_is_temperror(check->spf);
  Alignment spf = dmarc_check_aligned(check, check->spf, record->aspf_strict);
  check->spf_aligned = spf == ALIGN_YES;
  unknown = unknown || spf == ALIGN_UNKNOWN;
  for (guint i = 0; i < check->dkim->len; i++) {
    const DmarcAuth *dkim = check->dkim->pdata[i];
    Alignment aligned = dmarc_check_aligned(check, dkim, record->adkim_strict);
    check->dkim_aligned = check->dkim_aligned || aligned == ALIGN_YES;
    unknown =
        unknown || aligned == ALIGN_UNKNOWN || dmarc_auth_is_temperror(dkim);
  }
  if (check->spf_aligned || check->dkim_aligned)
    dmarc_check_finish(check, DMARC_RESULT_PASS, NULL);
  else if (unknown)
    dmarc_check_finish(check, DMARC_RESULT_TEMPERROR,
                       g_strdup("temporary error in SPF, DKIM or DNS"));
  else
    dmarc_check_finish(check, DMARC_RESULT_FAIL,
                       g_strdup("no aligned identifier passed"));
}

/* --- Steps ------------------------------------------------------------------
 */

/* The From domain's walk is complete: policy, Organizational Domain, and
 * the walks alignment needs. */
static void dmarc_check_after_from_walk(DmarcCheck *check) {
  const DmarcWalk *walk = check->from_walk;
  if (walk->tempfail) {
    dmarc_check_finish(check, DMARC_RESULT_TEMPERROR, g_strdup(walk->problem));
    return;
  }
  check->record = dmarc_walk_policy(walk, &check->policy_domain,
                                    &check->subdomain, &check->psd);
  if (check->record == NULL) {
    dmarc_check_finish(check, DMARC_RESULT_NONE, g_strdup("no DMARC record"));
    return;
  }
  check->org_domain = dmarc_walk_organizational_domain(walk);
  if (!check->record->usable) {
    dmarc_check_finish(check, DMARC_RESULT_PERMERROR,
                       g_strdup_printf("unusable DMARC record at %s: %s",
                                       check->policy_domain,
                                       check->record->problem));
    return;
  }
  check->stage = CHECK_ALIGNMENT;
  check->needs_existence =
      check->subdomain && check->record->np != DMARC_POLICY_UNSET;
  dmarc_check_plan_walk(check, check->spf, check->record->aspf_strict);
  for (guint i = 0; i < check->dkim->len; i++)
    dmarc_check_plan_walk(check, check->dkim->pdata[i],
                          check->record->adkim_strict);
}

static gboolean dmarc_check_alignment_ready(const DmarcCheck *check) {
  if (check->needs_existence && check->exist_answers < 3)
    return FALSE;
  if (check->walks == NULL)
    return TRUE;
  GHashTableIter iter;
  gpointer walk;
  g_hash_table_iter_init(&iter, check->walks);
  while (g_hash_table_iter_next(&iter, NULL, &walk))
    if (!((DmarcWalk *)walk)->done)
      return FALSE;
  return TRUE;
}

/* Feeds `walk` the answer for `target` when that is what it waits for. */
static void dmarc_walk_feed_if_next(DmarcWalk *walk, const char *target,
                                    PstDnsStatus status,
                                    const char *const *records,
                                    const gsize *lengths, guint count,
                                    const char *reason) {
  const char *next = dmarc_walk_next(walk);
  if (next != NULL && g_str_equal(next, target))
    dmarc_walk_feed(walk, status, records, lengths, count, reason);
}

/* Feeds a _dmarc TXT answer to every walk waiting for that name. */
static void dmarc_check_feed_walks(DmarcCheck *check, const char *name,
                                   PstDnsStatus status,
                                   const char *const *records,
                                   const gsize *lengths, guint count,
                                   const char *reason) {
  if (!g_str_has_prefix(name, "_dmarc."))
    return;
  const char *target = name + strlen("_dmarc.");
  if (check->stage == CHECK_FROM_WALK)
    dmarc_walk_feed_if_next(check->from_walk, target, status, records, lengths,
                            count, reason);
  if (check->walks == NULL)
    return;
  GHashTableIter iter;
  gpointer walk;
  g_hash_table_iter_init(&iter, check->walks);
  while (g_hash_table_iter_next(&iter, NULL, &walk))
    dmarc_walk_feed_if_next(walk, target, status, records, lengths, count,
                            reason);
}

static void dmarc_check_feed_existence(DmarcCheck *check, PstDnsType type,
                                       const char *name, PstDnsStatus status) {
  if (!check->needs_existence || !g_str_equal(name, check->from_domain) ||
      type == PST_DNS_TYPE_TXT)
    return;
  check->exist_answers++;
  if (status == PST_DNS_OK)
    check->exists = TRUE;
  else if (status != PST_DNS_NXDOMAIN && status != PST_DNS_NODATA)
    check->exist_tempfail = TRUE;
}

void dmarc_check_answer(DmarcCheck *check, PstDnsType type, const char *name,
                        PstDnsStatus status, const char *const *records,
                        const gsize *lengths, guint count, const char *reason) {
  g_autofree char *key = dmarc_question_key(type, name);
  if (check->stage == CHECK_DONE || check->asked == NULL ||
      !g_hash_table_remove(check->asked, key))
    return;
  if (type == PST_DNS_TYPE_TXT) {
    dmarc_check_keep_answer(check, name, status, records, count, reason);
    dmarc_check_feed_walks(check, name, status, records, lengths, count,
                           reason);
  } else
    dmarc_check_feed_existence(check, type, name, status);
  if (check->stage == CHECK_FROM_WALK && check->from_walk->done)
    dmarc_check_after_from_walk(check);
  if (check->stage == CHECK_ALIGNMENT && dmarc_check_alignment_ready(check))
    dmarc_check_conclude(check);
}

/* --- The outcome ------------------------------------------------------------
 */

static DmarcPolicy dmarc_check_policy(const DmarcCheck *check,
                                      gboolean *nonexistent_r) {
  const DmarcRecord *record = check->record;
  *nonexistent_r = FALSE;
  if (record == NULL)
    return DMARC_POLICY_UNSET;
  if (!check->subdomain)
    return record->p;
  /* A temporary failure proves nothing: the domain counts as existing. */
  if (check->needs_existence && !check->exists && !check->exist_tempfail) {
    *nonexistent_r = TRUE;
    return record->np;
  }
  return record->sp != DMARC_POLICY_UNSET ? record->sp : record->p;
}

void dmarc_check_get_outcome(const DmarcCheck *check, DmarcOutcome *outcome) {
  memset(outcome, 0, sizeof *outcome);
  outcome->result = check->result;
  outcome->reason = check->reason;
  outcome->from_domain = check->from_domain;
  outcome->policy_domain = check->policy_domain;
  outcome->org_domain = check->org_domain;
  outcome->record = check->record;
  outcome->policy = dmarc_check_policy(check, &outcome->nonexistent);
  outcome->psd = check->psd;
  outcome->spf_aligned = check->spf_aligned;
  outcome->dkim_aligned = check->dkim_aligned;
  outcome->spf = check->spf;
  outcome->dkim = check->dkim;
}
