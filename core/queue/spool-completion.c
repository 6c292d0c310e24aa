/* spool-completion.c - finished commits back to their main contexts (see
 * spool-completion.h).
 *
 * Each context has one CompletionSource: a mutex-guarded array of done
 * commits and an eventfd that the source polls (a descriptor source
 * without prepare and check functions, which GLib would call in every
 * iteration; it may recurse, so that its dispatch does not change the
 * poll list).  A push appends and, when the array was empty, writes the
 * eventfd: a burst of batches costs one wake-up.  The dispatch reads the
 * eventfd first, then takes the whole array (a push in between either
 * lands in what is taken or writes the eventfd again: never lost) and
 * returns each commit's task.  The sources hold a reference on their
 * context, so a push never reaches a freed one; freeing the set orphans
 * them: a source with commits still waiting stays attached until it has
 * completed them, then removes itself.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gio/gio.h>

#include "queue/spool-completion.h"
#include "queue/spool-syncer.h"

typedef struct {
  GSource source;
  GMainContext *context; /* owned ref: attached to it */
  int event_fd;          /* owned */
  GMutex lock;
  GPtrArray *done;   /* of PstSpoolCommit*, owned; under `lock` */
  gboolean orphaned; /* under `lock`: the set is gone, remove once done */
} CompletionSource;

struct _PstSpoolCompletions {
  GMutex lock;
  GPtrArray *sources; /* of CompletionSource*, owned refs; under `lock` */
};

static void completion_wake(CompletionSource *self) {
  guint64 one = 1;
  while (write(self->event_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}

static void completion_complete(GPtrArray *done) {
  for (guint i = 0; i < done->len; i++) {
    PstSpoolCommit *commit = done->pdata[i];
    if (commit->error != NULL)
      g_task_return_error(commit->task, g_steal_pointer(&commit->error));
    else
      g_task_return_boolean(commit->task, TRUE);
  }
}

static gboolean completion_dispatch(GSource *source, GSourceFunc callback,
                                    gpointer user_data) {
  CompletionSource *self = (CompletionSource *)source;
  guint64 count;
  while (read(self->event_fd, &count, sizeof count) < 0 && errno == EINTR)
    ;
  g_mutex_lock(&self->lock);
  g_autoptr(GPtrArray) done = g_steal_pointer(&self->done);
  self->done =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
  g_mutex_unlock(&self->lock);
  completion_complete(done);
  g_mutex_lock(&self->lock);
  gboolean remove = self->orphaned && self->done->len == 0;
  g_mutex_unlock(&self->lock);
  return remove ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static void completion_finalize(GSource *source) {
  CompletionSource *self = (CompletionSource *)source;
  g_ptr_array_unref(self->done);
  g_mutex_clear(&self->lock);
  close(self->event_fd);
  g_main_context_unref(self->context);
}

static GSourceFuncs completion_funcs = {
    .dispatch = completion_dispatch,
    .finalize = completion_finalize,
};

/* The source of `context`, made and attached at its first use (NULL when
 * no eventfd can be made); under the set's lock. */
static CompletionSource *completions_source(PstSpoolCompletions *completions,
                                            GMainContext *context) {
  for (guint i = 0; i < completions->sources->len; i++) {
    CompletionSource *source = completions->sources->pdata[i];
    if (source->context == context)
      return source;
  }
  int event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd < 0)
    return NULL;
  GSource *source = g_source_new(&completion_funcs, sizeof(CompletionSource));
  CompletionSource *self = (CompletionSource *)source;
  self->context = g_main_context_ref(context);
  self->event_fd = event_fd;
  g_mutex_init(&self->lock);
  self->done =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
  g_source_add_unix_fd(source, event_fd, G_IO_IN);
  g_source_set_can_recurse(source, TRUE);
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_static_name(source, "pst-spool-commit");
  g_source_attach(source, context);
  g_ptr_array_add(completions->sources, self);
  return self;
}

/* Without an eventfd (descriptors exhausted): an idle source for this
 * batch alone, as before the persistent sources. */
static gboolean completion_idle(gpointer data) {
  completion_complete(data);
  return G_SOURCE_REMOVE;
}

static void completion_push_idle(GMainContext *context, GPtrArray *done) {
  GSource *source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(source, completion_idle, done,
                        (GDestroyNotify)g_ptr_array_unref);
  g_source_set_static_name(source, "pst-spool-commit");
  g_source_attach(source, context);
  g_source_unref(source);
}

PstSpoolCompletions *pst_spool_completions_new(void) {
  PstSpoolCompletions *completions = g_new0(PstSpoolCompletions, 1);
  g_mutex_init(&completions->lock);
  completions->sources = g_ptr_array_new();
  return completions;
}

/* Moves the commits of `batch` whose task belongs to `context` to `to`. */
static void completions_take(GPtrArray *batch, GMainContext *context,
                             GPtrArray *to) {
  for (guint i = 0; i < batch->len;) {
    PstSpoolCommit *commit = batch->pdata[i];
    if (g_task_get_context(commit->task) == context)
      g_ptr_array_add(to, g_ptr_array_steal_index(batch, i));
    else
      i++;
  }
}

void pst_spool_completions_push(PstSpoolCompletions *completions,
                                GPtrArray *batch) {
  while (batch->len > 0) {
    PstSpoolCommit *first = batch->pdata[0];
    GMainContext *context = g_task_get_context(first->task);
    g_mutex_lock(&completions->lock);
    CompletionSource *source = completions_source(completions, context);
    g_mutex_unlock(&completions->lock);
    if (source == NULL) {
      GPtrArray *done =
          g_ptr_array_new_with_free_func((GDestroyNotify)pst_spool_commit_free);
      completions_take(batch, context, done);
      completion_push_idle(context, done);
      continue;
    }
    g_mutex_lock(&source->lock);
    gboolean wake = source->done->len == 0;
    completions_take(batch, context, source->done);
    g_mutex_unlock(&source->lock);
    if (wake)
      completion_wake(source);
  }
}

void pst_spool_completions_free(PstSpoolCompletions *completions) {
  if (completions == NULL)
    return;
  for (guint i = 0; i < completions->sources->len; i++) {
    CompletionSource *source = completions->sources->pdata[i];
    g_mutex_lock(&source->lock);
    source->orphaned = TRUE;
    gboolean idle = source->done->len == 0;
    g_mutex_unlock(&source->lock);
    if (idle)
      g_source_destroy((GSource *)source);
    g_source_unref((GSource *)source);
  }
  g_ptr_array_unref(completions->sources);
  g_mutex_clear(&completions->lock);
  g_free(completions);
}
