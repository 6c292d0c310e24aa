/* dmarc-walk.c - the DNS Tree Walk (RFC 9989 "DNS Tree Walk") with the
 * Organizational Domain selection ("Organizational Domain Discovery") and
 * policy discovery ("DMARC Policy Discovery") that read its result.
 *
 * A DmarcWalk is a pure state machine: dmarc_walk_next() names the domain
 * whose _dmarc TXT records it needs, dmarc_walk_feed() takes the answer.
 * Targets: the start domain, then (a domain of 8 or more labels jumps to
 * its last 7 labels) one label fewer each time down to a single label, so
 * a walk makes at most DMARC_WALK_MAX_QUERIES queries.  At each target,
 * TXT records that are not DMARC records are discarded, and when more
 * than one DMARC record remains they are all discarded.  The walk stops
 * at a single record with psd=n at the start, psd=n or psd=y above it, or
 * when the labels run out.  A temporary DNS failure stops it too: a walk
 * with a gap says nothing (tempfail), because the missing answer could
 * have changed both the policy and the Organizational Domain.
 */
#include <string.h>

#include "dmarc.h"

static guint dmarc_label_count(const char *domain) {
  guint labels = 1;
  for (const char *p = domain; *p != '\0'; p++)
    if (*p == '.')
      labels++;
  return labels;
}

/* The last `labels` labels of `domain` (a pointer into it). */
static const char *dmarc_last_labels(const char *domain, guint labels) {
  guint count = dmarc_label_count(domain);
  const char *p = domain;
  for (; count > labels; count--)
    p = strchr(p, '.') + 1;
  return p;
}

gboolean dmarc_domain_is_within(const char *name, const char *ancestor) {
  gsize name_length = strlen(name), ancestor_length = strlen(ancestor);
  if (name_length < ancestor_length)
    return FALSE;
  const char *tail = name + name_length - ancestor_length;
  if (g_ascii_strcasecmp(tail, ancestor) != 0)
    return FALSE;
  return tail == name || tail[-1] == '.';
}

GPtrArray *dmarc_walk_targets(const char *domain) {
  GPtrArray *targets = g_ptr_array_new_with_free_func(g_free);
  guint labels = dmarc_label_count(domain);
  g_ptr_array_add(targets, g_strdup(domain));
  /* Step 5: x >= 8 jumps to 7 labels, otherwise one label goes. */
  guint next = labels >= DMARC_WALK_JUMP_LABELS + 1 ? DMARC_WALK_JUMP_LABELS
                                                    : labels - 1;
  for (; next >= 1; next--)
    g_ptr_array_add(targets, g_strdup(dmarc_last_labels(domain, next)));
  return targets;
}

static void dmarc_found_free(gpointer data) {
  DmarcFound *found = data;
  g_free(found->domain);
  dmarc_record_free(found->record);
  g_free(found);
}

DmarcWalk *dmarc_walk_new(const char *domain) {
  DmarcWalk *walk = g_new0(DmarcWalk, 1);
  walk->domain = g_strdup(domain);
  walk->targets = dmarc_walk_targets(domain);
  walk->found = g_ptr_array_new_with_free_func(dmarc_found_free);
  return walk;
}

void dmarc_walk_free(DmarcWalk *walk) {
  if (walk == NULL)
    return;
  g_free(walk->domain);
  g_ptr_array_unref(walk->targets);
  g_ptr_array_unref(walk->found);
  g_free(walk->problem);
  g_free(walk);
}

const char *dmarc_walk_next(const DmarcWalk *walk) {
  if (walk->done || walk->next >= walk->targets->len)
    return NULL;
  return walk->targets->pdata[walk->next];
}

/* The one DMARC record among `records`, or NULL (none, or several). */
static DmarcRecord *dmarc_walk_single_record(const char *const *records,
                                             const gsize *lengths,
                                             guint count) {
  DmarcRecord *single = NULL;
  for (guint i = 0; i < count; i++) {
    DmarcRecord *record = dmarc_record_parse(records[i], lengths[i]);
    if (record == NULL)
      continue;
    if (single != NULL) {
      dmarc_record_free(single);
      dmarc_record_free(record);
      return NULL; /* "If multiple DMARC records are returned ... all
                      discarded" */
    }
    single = record;
  }
  return single;
}

void dmarc_walk_feed(DmarcWalk *walk, PstDnsStatus status,
                     const char *const *records, const gsize *lengths,
                     guint count, const char *reason) {
  const char *target = dmarc_walk_next(walk);
  g_return_if_fail(target != NULL);
  gboolean at_start = walk->next == 0;
  walk->next++;
  if (status == PST_DNS_TEMPFAIL || status == PST_DNS_CANCELLED) {
    walk->tempfail = TRUE;
    walk->done = TRUE;
    walk->problem = g_strdup_printf("_dmarc.%s: %s", target,
                                    reason != NULL ? reason : "DNS failure");
    return;
  }
  DmarcRecord *record = status == PST_DNS_OK
                            ? dmarc_walk_single_record(records, lengths, count)
                            : NULL;
  if (record != NULL) {
    DmarcFound *found = g_new0(DmarcFound, 1);
    found->domain = g_strdup(target);
    found->record = record;
    g_ptr_array_add(walk->found, found);
    /* Steps 2 and 7: psd=n stops anywhere, psd=y only above the start. */
    if (record->psd == DMARC_PSD_N || (record->psd == DMARC_PSD_Y && !at_start))
      walk->done = TRUE;
  }
  if (walk->next >= walk->targets->len)
    walk->done = TRUE;
}

const char *dmarc_walk_organizational_domain(const DmarcWalk *walk) {
  /* Longest to shortest: psd=n is it; psd=y (not at the start) makes it
   * the domain one label below; otherwise the fewest labels. */
  for (guint i = 0; i < walk->found->len; i++) {
    const DmarcFound *found = walk->found->pdata[i];
    if (found->record->psd == DMARC_PSD_N)
      return found->domain;
    if (found->record->psd == DMARC_PSD_Y &&
        !g_str_equal(found->domain, walk->domain))
      return dmarc_last_labels(walk->domain,
                               dmarc_label_count(found->domain) + 1);
  }
  if (walk->found->len == 0)
    return walk->domain;
  const DmarcFound *shortest = walk->found->pdata[walk->found->len - 1];
  return shortest->domain;
}

static const DmarcFound *dmarc_walk_found_at(const DmarcWalk *walk,
                                             const char *domain) {
  for (guint i = 0; i < walk->found->len; i++) {
    const DmarcFound *found = walk->found->pdata[i];
    if (g_str_equal(found->domain, domain))
      return found;
  }
  return NULL;
}

const DmarcRecord *dmarc_walk_policy(const DmarcWalk *walk,
                                     const char **domain_r,
                                     gboolean *subdomain_r, gboolean *psd_r) {
  *domain_r = NULL;
  *subdomain_r = *psd_r = FALSE;
  if (walk->found->len == 0)
    return NULL;
  /* The RFC5322.From domain's own record: p applies. */
  const DmarcFound *own = dmarc_walk_found_at(walk, walk->domain);
  if (own != NULL) {
    *domain_r = own->domain;
    return own->record;
  }
  /* Its Organizational Domain's record, else its PSD's: sp or np. */
  const DmarcFound *org =
      dmarc_walk_found_at(walk, dmarc_walk_organizational_domain(walk));
  const DmarcFound *psd = NULL;
  for (guint i = 0; i < walk->found->len && org == NULL && psd == NULL; i++) {
    const DmarcFound *found = walk->found->pdata[i];
    if (found->record->psd == DMARC_PSD_Y)
      psd = found;
  }
  const DmarcFound *policy = org != NULL ? org : psd;
  if (policy == NULL)
    return NULL;
  *domain_r = policy->domain;
  *subdomain_r = TRUE;
  *psd_r = policy->record->psd == DMARC_PSD_Y;
  return policy->record;
}
