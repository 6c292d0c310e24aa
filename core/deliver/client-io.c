/* client-io.c - an outbound connection's byte stream on the main loop
 * (see client-io.h).
 *
 * One GSource per connection watches the socket and carries the
 * operation's deadline (its ready time): it dispatches when the socket is
 * ready for what the transport waits on, or when the deadline passed.
 * Every operation first tries at once and only waits on WOULD_BLOCK, so a
 * ready socket costs no main-loop round trip.  While no operation runs
 * the socket is not watched for writing, and a wake-up without an
 * operation (a peer that hangs up an idle, cached connection, or sends
 * unasked) stops the watch until the next operation, which finds out.
 *
 * The watch and the deadline change lazily: in GLib 2.74 each change of a
 * source's events or ready time writes the context's wake-up eventfd and
 * costs a main-loop iteration, even on the loop's own thread, and a
 * transaction waited and completed twice (four changes each).  So a
 * read's watch stays when it completes (an SMTP or LMTP peer sends
 * nothing unasked), and the ready time is armed only when it is unset or
 * later than the new deadline: an earlier one that fires re-arms itself
 * for the operation's deadline, and one that fires with no operation is
 * cleared.  Invariant: `callback` is set exactly while an operation
 * runs, and cleared before it is called.
 *
 * A read is the exception to trying at once while other connections
 * wait for their peers' replies too (`reads_waiting`): the loop is busy
 * then, the peer has rarely answered the command just sent, and the
 * attempt would be a recv() that finds nothing (with 50 clients, 1.3 of
 * them per relayed message); the poll reports the reply, in an iteration
 * those connections share.  A lone connection still tries at once: there
 * the reply is mostly there already, and waiting would cost a poll.
 */
#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#include "deliver/client-io.h"

#define READ_CHUNK 16384

/* Main thread: the connections whose read runs (operation OP_READ). */
static guint reads_waiting;

typedef enum {
  OP_NONE = 0,
  OP_CONNECT,
  OP_WRITE,
  OP_READ,
  OP_HANDSHAKE, /* the transport watches the socket itself */
} Operation;

typedef struct {
  GSource source;
  PstClientIo *io;
  gpointer fd_tag;       /* nullable: not watched */
  GIOCondition watching; /* the events `fd_tag` watches */
} IoSource;

struct _PstClientIo {
  GSocket *socket;         /* owned */
  PstTransport *transport; /* owned: plain, or TLS after start_tls */
  gboolean tls;
  GByteArray *input; /* owned */
  IoSource *source;  /* owned */
  Operation operation;
  const guint8 *data; /* borrowed: what OP_WRITE sends */
  gsize length, done;
  guint timeout_ms;
  gint64 deadline; /* monotonic µs */
  PstClientIoFunc callback;
  gpointer user_data;
};

static void io_continue(PstClientIo *io);

/* --- Waiting and completing ---------------------------------------------- */

static void io_watch(IoSource *self, int fd, GIOCondition condition) {
  if (self->fd_tag == NULL)
    self->fd_tag = g_source_add_unix_fd(&self->source, fd, condition);
  else if (self->watching != condition)
    g_source_modify_unix_fd(&self->source, self->fd_tag, condition);
  self->watching = condition;
}

static void io_unwatch(IoSource *self) {
  if (self->fd_tag != NULL)
    g_source_remove_unix_fd(&self->source, self->fd_tag);
  self->fd_tag = NULL;
  self->watching = 0;
}

static void io_wait(PstClientIo *io, GIOCondition condition) {
  GSource *source = &io->source->source;
  io_watch(io->source, g_socket_get_fd(io->socket), condition);
  gint64 armed = g_source_get_ready_time(source);
  if (armed == -1 || armed > io->deadline)
    g_source_set_ready_time(source, io->deadline);
}

/* Ends the operation; `io` may be gone after this.  A watch for writing
 * goes (a writable socket would wake the loop at once); a read's stays. */
static void io_complete(PstClientIo *io, const GError *error) {
  PstClientIoFunc callback = io->callback;
  gpointer user_data = io->user_data;
  if (io->operation == OP_READ)
    reads_waiting--;
  io->operation = OP_NONE;
  io->callback = NULL;
  io->data = NULL;
  if ((io->source->watching & G_IO_OUT) != 0)
    io_watch(io->source, g_socket_get_fd(io->socket), 0);
  callback(io, error, user_data);
}

static void io_fail(PstClientIo *io, GIOErrorEnum code, const char *text) {
  g_autoptr(GError) error = g_error_new_literal(G_IO_ERROR, code, text);
  io_complete(io, error);
}

static gboolean io_source_dispatch(GSource *source, GSourceFunc unused,
                                   gpointer unused_data) {
  IoSource *self = (IoSource *)source;
  PstClientIo *io = self->io;
  GIOCondition events =
      self->fd_tag != NULL ? g_source_query_unix_fd(source, self->fd_tag) : 0;
  if (io->operation == OP_NONE) {
    /* Idle, and the peer hung up or spoke, or an old deadline: stop
     * watching until the next use. */
    if (events != 0)
      io_unwatch(self);
    if (g_source_get_ready_time(source) != -1)
      g_source_set_ready_time(source, -1);
    return G_SOURCE_CONTINUE;
  }
  if (events == 0) {
    /* The ready time: an earlier operation's deadline, or this one's. */
    if (g_source_get_time(source) < io->deadline) {
      g_source_set_ready_time(source, io->deadline);
      return G_SOURCE_CONTINUE;
    }
    g_source_set_ready_time(source, -1);
    io_fail(io, G_IO_ERROR_TIMED_OUT, "timeout");
    return G_SOURCE_CONTINUE;
  }
  io_continue(io);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs io_source_funcs = {.dispatch = io_source_dispatch};

static PstClientIo *io_new(GSocket *socket) {
  PstClientIo *io = g_new0(PstClientIo, 1);
  io->socket = socket;
  g_socket_set_blocking(socket, FALSE);
  /* Every write is a whole command group or a whole piece of content:
   * Nagle's algorithm would only hold a short last write (DATA's final
   * dot after a small message) until the peer's delayed ACK.  A socket
   * that is no TCP one refuses the option: nothing to do then. */
  if (g_socket_get_family(socket) != G_SOCKET_FAMILY_UNIX)
    g_socket_set_option(socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  io->transport = pst_transport_new_plain(g_socket_get_fd(socket));
  io->input = g_byte_array_new();
  io->source = (IoSource *)g_source_new(&io_source_funcs, sizeof(IoSource));
  io->source->io = io;
  /* May recurse: GLib takes a source that may not out of the poll list
   * for its dispatch and puts it back after, two writes of the context's
   * wake-up eventfd and one more poll per dispatch (nothing runs a nested
   * main loop inside a connection's callbacks). */
  g_source_set_can_recurse(&io->source->source, TRUE);
  g_source_set_priority(&io->source->source, PST_DELIVERY_PRIORITY);
  g_source_attach(&io->source->source, NULL);
  return io;
}

PstClientIo *pst_client_io_new(GSocketAddress *address, GError **error) {
  GSocket *socket =
      g_socket_new(g_socket_address_get_family(address), G_SOCKET_TYPE_STREAM,
                   G_SOCKET_PROTOCOL_DEFAULT, error);
  return socket != NULL ? io_new(socket) : NULL;
}

PstClientIo *pst_client_io_new_connected(GSocket *socket) {
  return io_new(g_object_ref(socket));
}

static void io_begin(PstClientIo *io, Operation operation, guint timeout_ms,
                     PstClientIoFunc callback, gpointer user_data) {
  g_assert(io->operation == OP_NONE);
  io->operation = operation;
  io->timeout_ms = timeout_ms;
  io->deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  io->callback = callback;
  io->user_data = user_data;
}

/* --- Connecting ---------------------------------------------------------- */

static void connect_continue(PstClientIo *io) {
  g_autoptr(GError) error = NULL;
  if (g_socket_check_connect_result(io->socket, &error))
    io_complete(io, NULL);
  else
    io_complete(io, error);
}

void pst_client_io_connect(PstClientIo *io, GSocketAddress *address,
                           guint timeout_ms, PstClientIoFunc callback,
                           gpointer user_data) {
  io_begin(io, OP_CONNECT, timeout_ms, callback, user_data);
  g_autoptr(GError) error = NULL;
  if (g_socket_connect(io->socket, address, NULL, &error)) {
    io_complete(io, NULL);
    return;
  }
  if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_PENDING)) {
    io_complete(io, error);
    return;
  }
  io_wait(io, G_IO_OUT);
}

/* --- Writing and reading ------------------------------------------------- */

static void write_continue(PstClientIo *io) {
  while (io->done < io->length) {
    g_autoptr(GError) error = NULL;
    gssize sent = pst_transport_write(io->transport, io->data + io->done,
                                      io->length - io->done, &error);
    if (sent > 0) {
      io->done += (gsize)sent;
      /* The timeout bounds each wait without progress. */
      io->deadline = g_get_monotonic_time() + (gint64)io->timeout_ms * 1000;
      continue;
    }
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      io_wait(io, pst_transport_get_condition(io->transport));
      return;
    }
    io_complete(io, error);
    return;
  }
  io_complete(io, NULL);
}

void pst_client_io_write(PstClientIo *io, const void *data, gsize length,
                         guint timeout_ms, PstClientIoFunc callback,
                         gpointer user_data) {
  io_begin(io, OP_WRITE, timeout_ms, callback, user_data);
  io->data = data;
  io->length = length;
  io->done = 0;
  write_continue(io);
}

static void read_continue(PstClientIo *io) {
  for (;;) {
    g_autoptr(GError) error = NULL;
    /* Straight into the input buffer: no copy, nothing big on the stack
     * (completions may chain while the peer keeps the socket ready). */
    guint have = io->input->len;
    g_byte_array_set_size(io->input, have + READ_CHUNK);
    gssize got = pst_transport_read(io->transport, io->input->data + have,
                                    READ_CHUNK, &error);
    g_byte_array_set_size(io->input, have + (guint)MAX(got, 0));
    if (got > 0) {
      io_complete(io, NULL);
      return;
    }
    if (got == 0) {
      io_fail(io, G_IO_ERROR_CONNECTION_CLOSED,
              "the peer closed the connection");
      return;
    }
    if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      io_complete(io, error);
      return;
    }
    /* Decrypted octets inside TLS do not make the socket readable. */
    if (pst_transport_has_pending(io->transport))
      continue;
    io_wait(io, pst_transport_get_condition(io->transport));
    return;
  }
}

void pst_client_io_read(PstClientIo *io, gint64 deadline,
                        PstClientIoFunc callback, gpointer user_data) {
  gboolean others_wait = reads_waiting > 0;
  io_begin(io, OP_READ, 0, callback, user_data);
  reads_waiting++;
  io->deadline = deadline;
  if (others_wait && !io->tls && io->input->len == 0) {
    io_wait(io, G_IO_IN); /* see the top */
    return;
  }
  read_continue(io);
}

GByteArray *pst_client_io_get_input(PstClientIo *io) {
  return io->input;
}

gboolean pst_client_io_is_quiet(PstClientIo *io) {
  g_return_val_if_fail(io->operation == OP_NONE, FALSE);
  if (io->input->len > 0 || pst_transport_has_pending(io->transport))
    return FALSE;
  struct pollfd pfd = {.fd = g_socket_get_fd(io->socket),
                       .events = POLLIN | POLLRDHUP};
  return poll(&pfd, 1, 0) == 0;
}

static void io_continue(PstClientIo *io) {
  switch (io->operation) {
  case OP_CONNECT:
    connect_continue(io);
    break;
  case OP_WRITE:
    write_continue(io);
    break;
  case OP_READ:
    read_continue(io);
    break;
  case OP_NONE:
  case OP_HANDSHAKE:
  default:
    break;
  }
}

/* --- TLS ----------------------------------------------------------------- */

static void handshake_done(GObject *source, GAsyncResult *result,
                           gpointer user_data) {
  PstClientIo *io = user_data;
  g_autoptr(GError) error = NULL;
  if (!pst_transport_handshake_finish(io->transport, result, &error)) {
    io_complete(io, error);
    return;
  }
  io_complete(io, NULL);
}

void pst_client_io_start_tls(PstClientIo *io, PstTransportService *service,
                             const char *server_name, PstTlsVerify verify,
                             guint timeout_ms, PstClientIoFunc callback,
                             gpointer user_data) {
  io_begin(io, OP_HANDSHAKE, timeout_ms, callback, user_data);
  g_byte_array_set_size(io->input, 0);
  g_autoptr(GError) error = NULL;
  PstTransport *tls = pst_transport_new_tls_client_with(
      service, g_socket_get_fd(io->socket), server_name, verify, &error);
  if (tls == NULL) {
    io_complete(io, error);
    return;
  }
  pst_transport_unref(io->transport);
  io->transport = tls;
  io->tls = TRUE;
  /* The handshake watches the socket itself: ours stays quiet. */
  io_unwatch(io->source);
  g_source_set_ready_time(&io->source->source, -1);
  pst_transport_handshake_async(tls, timeout_ms, NULL, handshake_done, io);
}

PstTransport *pst_client_io_get_tls(PstClientIo *io) {
  return io->tls ? io->transport : NULL;
}

void pst_client_io_write_now(PstClientIo *io, const void *data, gsize length) {
  pst_transport_write(io->transport, data, length, NULL);
}

void pst_client_io_free(PstClientIo *io) {
  if (io == NULL)
    return;
  g_assert(io->operation == OP_NONE);
  pst_transport_shutdown(io->transport);
  pst_transport_unref(io->transport);
  g_source_destroy(&io->source->source);
  g_source_unref(&io->source->source);
  g_socket_close(io->socket, NULL);
  g_object_unref(io->socket);
  g_byte_array_unref(io->input);
  g_free(io);
}
