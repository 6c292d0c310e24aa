/* milter-body.c - the message body for one milter, read from the spool in
 * pieces of at most MILTER_BODY_CHUNK octets off the main thread.
 *
 * milter-eom.c asks for one piece at a time and sends it before asking
 * for the next, so a session holds one piece whatever the message's size
 * (no mapping of the whole spool file) and the main loop never waits for
 * the disk: each pst_body_reader_read() runs on the plugin's thread pool
 * and the piece comes back to the main context through an idle source.
 * The piece is read straight into a SMFIC_BODY frame, which the
 * connection then writes as it is: one buffer per piece, allocated when
 * the read starts and freed when the write ends.
 *
 * Lifetime: a read in flight holds its own reference to the MilterBody's
 * shared state.  milter_body_free() on the main thread detaches it: the
 * piece is then dropped, and its callback never runs (the run that asked
 * may be gone).  The state's lock orders the worker attaching the idle
 * source against the main thread detaching and destroying it.
 */
#include "milter-run.h"

typedef struct {
  gint ref_count;
  GMutex lock;
  gboolean detached;   /* under lock: nobody wants the piece any more */
  GSource *source;     /* under lock, owned, nullable: the piece's way back */
  GMainContext *context; /* owned: where the caller runs */
  PstBodyReader *reader; /* owned; used by one read at a time */
  guint8 *frame;       /* owned, nullable: the read in flight's buffer, a
                        * frame head and room for a piece */
  gssize size;         /* the last read's count, -1 on error */
  GError *error;       /* owned, nullable: the last read's */
  MilterBodyFunc done; /* main thread only */
  gpointer user_data;
} BodyState;

struct _MilterBody {
  BodyState *state; /* owned reference */
  GThreadPool *pool; /* borrowed: the plugin's */
};

static BodyState *state_ref(BodyState *state) {
  g_atomic_int_inc(&state->ref_count);
  return state;
}

static void state_unref(BodyState *state) {
  if (!g_atomic_int_dec_and_test(&state->ref_count))
    return;
  g_assert(state->source == NULL);
  pst_body_reader_free(state->reader);
  g_free(state->frame);
  g_clear_error(&state->error);
  g_main_context_unref(state->context);
  g_mutex_clear(&state->lock);
  g_free(state);
}

/* Main thread: hands the piece to the caller unless detached meanwhile. */
static gboolean body_piece_cb(gpointer data) {
  BodyState *state = data;
  g_mutex_lock(&state->lock);
  g_clear_pointer(&state->source, g_source_unref);
  gboolean wanted = !state->detached;
  g_mutex_unlock(&state->lock);
  if (!wanted)
    return G_SOURCE_REMOVE;
  GByteArray *frame = NULL;
  if (state->size > 0) {
    milter_frame_head(state->frame, MILTER_CMD_BODY, (gsize)state->size);
    frame = g_byte_array_new_take(g_steal_pointer(&state->frame),
                                  MILTER_FRAME_HEAD + (gsize)state->size);
  }
  g_clear_pointer(&state->frame, g_free);
  MilterBodyFunc done = state->done;
  state->done = NULL;
  done(frame, state->error, state->user_data);
  return G_SOURCE_REMOVE;
}

/* A pool thread: reads the next piece and sends it back. */
static void body_read_job(gpointer data, gpointer pool_data) {
  BodyState *state = data;
  g_clear_error(&state->error);
  state->size = pst_body_reader_read(state->reader,
                                     state->frame + MILTER_FRAME_HEAD,
                                     MILTER_BODY_CHUNK, &state->error);
  g_mutex_lock(&state->lock);
  if (!state->detached) {
    state->source = g_idle_source_new();
    g_source_set_priority(state->source, G_PRIORITY_DEFAULT);
    g_source_set_callback(state->source, body_piece_cb, state_ref(state),
                          (GDestroyNotify)state_unref);
    g_source_attach(state->source, state->context);
  }
  g_mutex_unlock(&state->lock);
  state_unref(state);
}

MilterBody *milter_body_open(PstMessage *message, GThreadPool *pool,
                             GError **error) {
  PstBodyReader *reader = pst_message_open_body(message, error);
  if (reader == NULL)
    return NULL;
  BodyState *state = g_new0(BodyState, 1);
  state->ref_count = 1;
  g_mutex_init(&state->lock);
  state->context = g_main_context_ref_thread_default();
  state->reader = reader;
  MilterBody *body = g_new0(MilterBody, 1);
  body->state = state;
  body->pool = pool;
  return body;
}

void milter_body_read(MilterBody *body, MilterBodyFunc done,
                      gpointer user_data) {
  BodyState *state = body->state;
  g_return_if_fail(state->done == NULL);
  state->frame = g_malloc(MILTER_FRAME_HEAD + MILTER_BODY_CHUNK);
  state->done = done;
  state->user_data = user_data;
  g_thread_pool_push(body->pool, state_ref(state), NULL);
}

void milter_body_free(MilterBody *body) {
  if (body == NULL)
    return;
  BodyState *state = body->state;
  g_mutex_lock(&state->lock);
  state->detached = TRUE;
  GSource *source = g_steal_pointer(&state->source);
  g_mutex_unlock(&state->lock);
  if (source != NULL) {
    g_source_destroy(source); /* unrefs the state: its destroy notify */
    g_source_unref(source);
  }
  state_unref(state);
  g_free(body);
}

GThreadPool *milter_body_pool_new(void) {
  return g_thread_pool_new(body_read_job, NULL, MILTER_BODY_READERS, FALSE,
                           NULL);
}
