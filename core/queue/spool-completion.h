/* spool-completion.h - hands finished commits back to the main contexts
 * their tasks belong to (step 5 of spool-syncer.c).
 *
 * One source per main context, made when the first commit of that
 * context finishes and kept until the syncer stops: a batch costs a
 * push under a mutex and, unless one is pending already, an eventfd
 * write that the context polls, instead of an idle source made,
 * attached (under the context's lock, waking it) and destroyed per
 * batch.  The source completes every commit pushed to it in one
 * dispatch, in push order.
 *
 * Internal to core/queue: the syncer threads push, the contexts'
 * threads dispatch.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PstSpoolCompletions PstSpoolCompletions;

PstSpoolCompletions *pst_spool_completions_new(void);
/* Moves every commit of `batch` (PstSpoolCommit*, emptied) to the
 * source of its task's context, and wakes those contexts.  Any thread. */
void pst_spool_completions_push(PstSpoolCompletions *completions,
                                GPtrArray *batch);
/* Lets the sources go: each is destroyed once it has completed what was
 * pushed to it (at once when nothing is waiting).  After the last push. */
void pst_spool_completions_free(PstSpoolCompletions *completions);

G_END_DECLS
