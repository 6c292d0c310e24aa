/* milter-conn.c - one connection to one milter, on the main loop.
 *
 * milter_conn_open() connects (GSocketClient, asynchronously), sends the
 * option negotiation and checks the answer; then the owner sends frames
 * with milter_conn_send() and waits for each reply with
 * milter_conn_expect().  Writes are queued and drained by one
 * asynchronous write at a time; milter_conn_drain() waits until all is
 * written (flow control for frames that get no reply: a milter that reads
 * slowly holds the sender back instead of the queue growing).  One
 * asynchronous read is always in flight, so a milter that closes or talks
 * out of turn is noticed at once.  Frames are cut by milter_frame_parse() (at most
 * MILTER_MAX_PAYLOAD octets) and decoded by milter_reply_decode().
 *
 * Failures (refused connection, timeout, a frame that does not parse, a
 * reply nobody asked for, end of stream) are sticky: the connection
 * closes, the wait in progress (or the next one) gets the error, and the
 * owner applies the milter's default_action.  Nothing here blocks and
 * nothing logs: the owner logs once per event with the milter's name.
 *
 * Lifetime: the owner frees the conn with milter_conn_free(); async
 * operations in flight hold their own reference and find it closed.
 */
#include <string.h>

#include "milter.h"

/* The largest reply payload we take: four times libmilter's largest
 * (MILTER_MAX_DATA_SIZE can be raised to 1 MiB by smfi_setmaxdatasize). */
#define MILTER_MAX_PAYLOAD (1024 * 1024 + 64)

struct _MilterConn {
  gint ref_count;
  const MilterSpec *spec; /* the owner's config keeps it alive */
  char *session_id;       /* owned */
  GCancellable *cancellable;     /* owned: cancels all I/O at close */
  GSocketConnection *connection; /* owned, nullable until connected */
  GByteArray *output;            /* owned: queued, not yet written */
  GByteArray *writing;           /* owned, nullable: in the write */
  GByteArray *input;             /* owned: read, not yet parsed */
  guint8 buffer[16384];
  gboolean open;
  gboolean closing; /* close after the queued output is written */
  GError *failure;  /* owned, nullable: sticky */

  gboolean negotiating;
  MilterNegotiation negotiation;
  gboolean parsing; /* in conn_parse_input: a nested expect waits for it */

  MilterReplyFunc wait_func; /* nullable: nobody waits */
  gpointer wait_data;
  guint wait_ms;
  GSource *timer; /* owned, nullable */

  MilterReplyFunc drain_func; /* nullable: nobody waits for the output */
  gpointer drain_data;
  guint drain_ms;
  GSource *drain_timer; /* owned, nullable */
};

static void conn_read(MilterConn *conn);
static void conn_write(MilterConn *conn);

static MilterConn *conn_ref(MilterConn *conn) {
  g_atomic_int_inc(&conn->ref_count);
  return conn;
}

static void conn_unref(MilterConn *conn) {
  if (!g_atomic_int_dec_and_test(&conn->ref_count))
    return;
  g_assert(conn->timer == NULL && conn->drain_timer == NULL);
  g_clear_object(&conn->connection);
  g_object_unref(conn->cancellable);
  g_byte_array_unref(conn->output);
  g_clear_pointer(&conn->writing, g_byte_array_unref);
  g_byte_array_unref(conn->input);
  g_clear_error(&conn->failure);
  milter_negotiation_clear(&conn->negotiation);
  g_free(conn->session_id);
  g_free(conn);
}

MilterConn *milter_conn_new(const MilterSpec *spec, const char *session_id) {
  MilterConn *conn = g_new0(MilterConn, 1);
  conn->ref_count = 1;
  conn->spec = spec;
  conn->session_id = g_strdup(session_id);
  conn->cancellable = g_cancellable_new();
  conn->output = g_byte_array_new();
  conn->input = g_byte_array_new();
  return conn;
}

const MilterSpec *milter_conn_get_spec(MilterConn *conn) { return conn->spec; }

const MilterNegotiation *milter_conn_get_negotiation(MilterConn *conn) {
  return &conn->negotiation;
}

gboolean milter_conn_is_open(MilterConn *conn) {
  return conn->open && conn->failure == NULL && !conn->closing;
}

/* --- Waits and failures ---------------------------------------------------- */

/* Destroys a timer and drops our reference; nothing when NULL. */
static void conn_clear_timer(GSource **timer) {
  if (*timer == NULL)
    return;
  g_source_destroy(*timer);
  g_clear_pointer(timer, g_source_unref);
}

static void conn_stop_timer(MilterConn *conn) {
  conn_clear_timer(&conn->timer);
}

/* Ends the wait in progress with `reply` or `error`. */
static void conn_deliver(MilterConn *conn, const MilterReply *reply,
                         const GError *error) {
  MilterReplyFunc func = conn->wait_func;
  if (func == NULL)
    return;
  conn_stop_timer(conn);
  conn->wait_func = NULL;
  func(conn, reply, error, conn->wait_data);
}

/* Ends the wait for the output to drain, with `error` or without. */
static void conn_drained(MilterConn *conn, const GError *error) {
  MilterReplyFunc func = conn->drain_func;
  if (func == NULL)
    return;
  conn_clear_timer(&conn->drain_timer);
  conn->drain_func = NULL;
  func(conn, NULL, error, conn->drain_data);
}

/* Records the first failure, drops the socket and tells the waiters. */
static void conn_fail(MilterConn *conn, GError *error) {
  if (conn->failure == NULL)
    conn->failure = error;
  else
    g_error_free(error);
  conn->open = FALSE;
  g_cancellable_cancel(conn->cancellable);
  if (conn->connection != NULL)
    g_io_stream_close(G_IO_STREAM(conn->connection), NULL, NULL);
  conn_ref(conn);
  conn_deliver(conn, NULL, conn->failure);
  conn_drained(conn, conn->failure);
  conn_unref(conn);
}

static gboolean conn_timeout_cb(gpointer data) {
  MilterConn *conn = data;
  g_clear_pointer(&conn->timer, g_source_unref);
  conn_fail(conn, g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                              "no answer within %u ms", conn->wait_ms));
  return G_SOURCE_REMOVE;
}

static gboolean conn_drain_timeout_cb(gpointer data) {
  MilterConn *conn = data;
  g_clear_pointer(&conn->drain_timer, g_source_unref);
  conn_fail(conn, g_error_new(G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                              "did not read what was sent within %u ms",
                              conn->drain_ms));
  return G_SOURCE_REMOVE;
}

static void conn_start_timer(MilterConn *conn) {
  conn_stop_timer(conn);
  conn->timer = g_timeout_source_new(conn->wait_ms);
  g_source_set_callback(conn->timer, conn_timeout_cb, conn, NULL);
  g_source_attach(conn->timer, NULL);
}

static void conn_wait(MilterConn *conn, guint timeout_ms, MilterReplyFunc func,
                      gpointer user_data) {
  g_return_if_fail(conn->wait_func == NULL);
  conn->wait_func = func;
  conn->wait_data = user_data;
  conn->wait_ms = timeout_ms;
  conn_start_timer(conn);
}

/* --- Reading --------------------------------------------------------------- */

/* The negotiation answer: checked here, so the owner sees a working
 * connection or an error. */
static void conn_negotiated(MilterConn *conn, const MilterFrame *frame) {
  GError *error = NULL;
  conn->negotiating = FALSE;
  if (!milter_negotiation_decode(frame, MILTER_ACTIONS_ALL,
                                 MILTER_STEPS_OFFERED, &conn->negotiation,
                                 &error)) {
    g_prefix_error(&error, "option negotiation refused: ");
    conn_fail(conn, error);
    return;
  }
  conn->open = TRUE;
  conn_deliver(conn, NULL, NULL);
}

/* One frame from the milter; FALSE when the connection failed. */
static gboolean conn_dispatch(MilterConn *conn, const MilterFrame *frame) {
  if (conn->wait_func == NULL) {
    conn_fail(conn, g_error_new(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                "sent a reply (0x%02x) nobody asked for",
                                (guchar)frame->command));
    return FALSE;
  }
  if (conn->negotiating) {
    conn_negotiated(conn, frame);
    return conn->failure == NULL;
  }
  MilterReply reply;
  GError *error = NULL;
  if (!milter_reply_decode(frame, &reply, &error)) {
    conn_fail(conn, error);
    return FALSE;
  }
  if (reply.type == MILTER_REPLY_PROGRESS)
    conn_start_timer(conn);
  else
    conn_deliver(conn, &reply, NULL);
  milter_reply_clear(&reply);
  return conn->failure == NULL;
}

/* Cuts and dispatches every complete frame in the input. */
static void conn_parse_input(MilterConn *conn) {
  if (conn->parsing)
    return;
  conn->parsing = TRUE;
  gsize offset = 0;
  while (conn->failure == NULL && conn->wait_func != NULL) {
    MilterFrame frame;
    GError *error = NULL;
    MilterFrameStatus status =
        milter_frame_parse(conn->input->data + offset, conn->input->len - offset,
                           MILTER_MAX_PAYLOAD, &frame, &error);
    if (status == MILTER_FRAME_INCOMPLETE)
      break;
    if (status == MILTER_FRAME_ERROR) {
      conn_fail(conn, error);
      break;
    }
    offset += frame.consumed;
    if (!conn_dispatch(conn, &frame))
      break;
  }
  conn->parsing = FALSE;
  if (conn->failure == NULL)
    g_byte_array_remove_range(conn->input, 0, offset);
  /* Octets nobody waits for are a protocol error, but only once a whole
   * frame is there (checked when the next wait starts). */
}

static void conn_read_cb(GObject *source, GAsyncResult *result,
                         gpointer user_data) {
  MilterConn *conn = user_data;
  GError *error = NULL;
  gssize count =
      g_input_stream_read_finish(G_INPUT_STREAM(source), result, &error);
  if (conn->failure != NULL || g_cancellable_is_cancelled(conn->cancellable)) {
    g_clear_error(&error);
  } else if (count < 0) {
    conn_fail(conn, error);
  } else if (count == 0) {
    conn_fail(conn, g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                        "closed the connection"));
  } else {
    g_byte_array_append(conn->input, conn->buffer, (guint)count);
    if (conn->input->len > MILTER_MAX_PAYLOAD + 5 && conn->wait_func == NULL)
      conn_fail(conn, g_error_new_literal(G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                          "sent data nobody asked for"));
    else
      conn_parse_input(conn);
    if (conn->failure == NULL)
      conn_read(conn);
  }
  conn_unref(conn);
}

static void conn_read(MilterConn *conn) {
  GInputStream *input =
      g_io_stream_get_input_stream(G_IO_STREAM(conn->connection));
  g_input_stream_read_async(input, conn->buffer, sizeof conn->buffer,
                            G_PRIORITY_DEFAULT, conn->cancellable,
                            conn_read_cb, conn_ref(conn));
}

/* --- Writing --------------------------------------------------------------- */

static void conn_write_cb(GObject *source, GAsyncResult *result,
                          gpointer user_data) {
  MilterConn *conn = user_data;
  GError *error = NULL;
  gboolean written = g_output_stream_write_all_finish(
      G_OUTPUT_STREAM(source), result, NULL, &error);
  g_clear_pointer(&conn->writing, g_byte_array_unref);
  if (conn->failure != NULL || g_cancellable_is_cancelled(conn->cancellable))
    g_clear_error(&error);
  else if (!written)
    conn_fail(conn, error);
  else
    conn_write(conn);
  conn_unref(conn);
}

/* Starts writing the queued output unless a write is in flight; closes
 * when asked to and everything is out. */
static void conn_write(MilterConn *conn) {
  if (conn->writing != NULL || conn->connection == NULL ||
      conn->failure != NULL)
    return;
  if (conn->output->len == 0) {
    if (conn->closing) {
      g_cancellable_cancel(conn->cancellable);
      g_io_stream_close(G_IO_STREAM(conn->connection), NULL, NULL);
    } else {
      conn_drained(conn, NULL);
    }
    return;
  }
  conn->writing = conn->output;
  conn->output = g_byte_array_new();
  GOutputStream *output =
      g_io_stream_get_output_stream(G_IO_STREAM(conn->connection));
  g_output_stream_write_all_async(output, conn->writing->data,
                                  conn->writing->len, G_PRIORITY_DEFAULT,
                                  conn->cancellable, conn_write_cb,
                                  conn_ref(conn));
}

void milter_conn_send(MilterConn *conn, GByteArray *frames) {
  if (conn->failure != NULL || conn->closing)
    return;
  g_byte_array_append(conn->output, frames->data, frames->len);
  conn_write(conn);
}

void milter_conn_send_take(MilterConn *conn, GByteArray *frames) {
  if (conn->failure != NULL || conn->closing || conn->output->len > 0) {
    milter_conn_send(conn, frames);
    g_byte_array_unref(frames);
    return;
  }
  g_byte_array_unref(conn->output);
  conn->output = frames;
  conn_write(conn);
}

void milter_conn_drain(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                       gpointer user_data) {
  g_return_if_fail(conn->drain_func == NULL);
  if (conn->failure != NULL || conn->closing) {
    g_autoptr(GError) closed =
        conn->failure != NULL
            ? g_error_copy(conn->failure)
            : g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CLOSED, "closed");
    done(conn, NULL, closed, user_data);
    return;
  }
  if (conn->writing == NULL && conn->output->len == 0) {
    done(conn, NULL, NULL, user_data);
    return;
  }
  conn->drain_func = done;
  conn->drain_data = user_data;
  conn->drain_ms = timeout_ms;
  conn->drain_timer = g_timeout_source_new(timeout_ms);
  g_source_set_callback(conn->drain_timer, conn_drain_timeout_cb, conn, NULL);
  g_source_attach(conn->drain_timer, NULL);
}

void milter_conn_expect(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                        gpointer user_data) {
  if (conn->failure != NULL) {
    done(conn, NULL, conn->failure, user_data);
    return;
  }
  conn_wait(conn, timeout_ms, done, user_data);
  /* A reply may already be buffered. */
  conn_ref(conn);
  conn_parse_input(conn);
  conn_unref(conn);
}

/* --- Opening and closing --------------------------------------------------- */

static void conn_connected_cb(GObject *source, GAsyncResult *result,
                              gpointer user_data) {
  MilterConn *conn = user_data;
  GError *error = NULL;
  GSocketConnection *connection = g_socket_client_connect_finish(
      G_SOCKET_CLIENT(source), result, &error);
  if (conn->failure != NULL || g_cancellable_is_cancelled(conn->cancellable)) {
    g_clear_error(&error);
    g_clear_object(&connection);
  } else if (connection == NULL) {
    g_prefix_error(&error, "cannot connect: ");
    conn_fail(conn, error);
  } else {
    conn->connection = connection;
    conn->negotiating = TRUE;
    g_autoptr(GByteArray) frame = g_byte_array_new();
    milter_encode_negotiate(frame, MILTER_ACTIONS_ALL, MILTER_STEPS_OFFERED);
    milter_conn_send(conn, frame);
    conn_read(conn);
  }
  conn_unref(conn);
}

void milter_conn_open(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                      gpointer user_data) {
  conn_wait(conn, timeout_ms, done, user_data);
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_connect_async(client, conn->spec->address,
                                conn->cancellable, conn_connected_cb,
                                conn_ref(conn));
}

void milter_conn_close(MilterConn *conn, gboolean quit) {
  conn_stop_timer(conn);
  conn->wait_func = NULL;
  conn_clear_timer(&conn->drain_timer);
  conn->drain_func = NULL;
  if (conn->closing)
    return;
  if (quit && milter_conn_is_open(conn)) {
    g_autoptr(GByteArray) frame = g_byte_array_new();
    milter_encode_frame(frame, MILTER_CMD_QUIT, NULL, 0);
    milter_conn_send(conn, frame);
  }
  conn->closing = TRUE;
  conn->open = FALSE;
  if (conn->connection == NULL || conn->failure != NULL) {
    g_cancellable_cancel(conn->cancellable);
    return;
  }
  conn_write(conn);
}

void milter_conn_free(MilterConn *conn) {
  if (conn == NULL)
    return;
  milter_conn_close(conn, FALSE);
  conn_unref(conn);
}
