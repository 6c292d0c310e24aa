/* test-deliver-client-io.c - an outbound connection's byte stream
 * (client-io.c) against a real peer: the other end of a socketpair, or a
 * TCP listener on 127.0.0.1, and for TLS the tls plugin (GnuTLS, linked
 * in, as in pst-tls-probe) on both ends with a certificate made by
 * openssl(1) for the test.
 *
 * Covered: writes and reads, replies arriving in pieces, a write much
 * larger than the socket buffer against a slow reader, end of stream
 * (with and without octets before it), timeouts of reads and writes,
 * write errors, is_quiet(), connecting (accepted and refused), a callback
 * that frees the connection, and the same byte I/O through TLS after
 * STARTTLS (records larger than one read, decrypted octets pending,
 * close_notify).  Built by plugins/tls/meson.build, which has the TLS
 * sources.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "config/config.h"
#include "deliver/client-io.h"
#include "hooks/hooks.h"

extern const PstPluginDescriptor postilion_plugin; /* plugins/tls */

#define WAIT_MS 5000

typedef struct {
  gboolean done;
  GError *error;
} Outcome;

static void on_done(PstClientIo *io, const GError *error, gpointer data) {
  Outcome *outcome = data;
  g_assert_false(outcome->done);
  outcome->done = TRUE;
  outcome->error = error != NULL ? g_error_copy(error) : NULL;
}

static void outcome_wait(Outcome *outcome) {
  while (!outcome->done)
    g_main_context_iteration(NULL, TRUE);
}

static void outcome_clear(Outcome *outcome) {
  g_clear_error(&outcome->error);
  outcome->done = FALSE;
}

/* Runs the main loop for `ms` milliseconds. */
static gboolean set_flag(gpointer data) {
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

static void run_for(guint ms) {
  gboolean done = FALSE;
  g_timeout_add(ms, set_flag, &done);
  while (!done)
    g_main_context_iteration(NULL, TRUE);
}

/* A connected pair: the client's GSocket and the peer's (non-blocking)
 * descriptor. */
typedef struct {
  PstClientIo *io;
  int peer;
} Pair;

static void pair_open(Pair *pair) {
  int fds[2];
  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new_from_fd(fds[0], &error);
  g_assert_no_error(error);
  pair->io = pst_client_io_new_connected(socket);
  pair->peer = fds[1];
  g_assert_true(g_unix_set_fd_nonblocking(pair->peer, TRUE, NULL));
}

static void pair_close(Pair *pair) {
  g_clear_pointer(&pair->io, pst_client_io_free);
  if (pair->peer >= 0)
    close(pair->peer);
  pair->peer = -1;
}

static void peer_send(Pair *pair, const char *text) {
  g_assert_cmpint(send(pair->peer, text, strlen(text), MSG_NOSIGNAL), ==,
                  (gssize)strlen(text));
}

static char *peer_receive(Pair *pair, gsize length) {
  g_autoptr(GString) got = g_string_new(NULL);
  gint64 deadline = g_get_monotonic_time() + WAIT_MS * 1000;
  while (got->len < length && g_get_monotonic_time() < deadline) {
    char buffer[4096];
    gssize n =
        recv(pair->peer, buffer, MIN(sizeof buffer, length - got->len), 0);
    if (n > 0)
      g_string_append_len(got, buffer, n);
    else
      g_main_context_iteration(NULL, FALSE);
  }
  return g_string_free(g_steal_pointer(&got), FALSE);
}

static gint64 in(guint ms) {
  return g_get_monotonic_time() + (gint64)ms * 1000;
}

static gboolean input_equals(PstClientIo *io, const char *text) {
  GByteArray *input = pst_client_io_get_input(io);
  return input->len == strlen(text) &&
         memcmp(input->data, text, input->len) == 0;
}

/* --- Plain --------------------------------------------------------------- */

static void test_write_then_read(void) {
  Pair pair;
  pair_open(&pair);
  Outcome outcome = {0};
  pst_client_io_write(pair.io, "EHLO x\r\n", 8, WAIT_MS, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  g_autofree char *got = peer_receive(&pair, 8);
  g_assert_cmpstr(got, ==, "EHLO x\r\n");
  peer_send(&pair, "250 ok\r\n");
  outcome_clear(&outcome);
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  g_assert_true(input_equals(pair.io, "250 ok\r\n"));
  pair_close(&pair);
}

static gboolean send_later(gpointer data) {
  Pair *pair = data;
  peer_send(pair, "0 ok\r\n");
  return G_SOURCE_REMOVE;
}

/* A reply in two pieces: each read ends with what came, the input
 * collects; a read with nothing there waits for the socket. */
static void test_partial_reads(void) {
  Pair pair;
  pair_open(&pair);
  peer_send(&pair, "25");
  Outcome outcome = {0};
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  g_assert_true(outcome.done); /* the octets were there */
  g_assert_no_error(outcome.error);
  g_assert_true(input_equals(pair.io, "25"));
  outcome_clear(&outcome);
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  g_assert_false(outcome.done);
  g_timeout_add(30, send_later, &pair);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  g_assert_true(input_equals(pair.io, "250 ok\r\n"));
  pair_close(&pair);
}

typedef struct {
  int fd;
  GChecksum *checksum;
  gsize received;
} Drain;

/* A slow reader: 4 KiB per turn of the loop. */
static gboolean drain_some(gint fd, GIOCondition condition, gpointer data) {
  Drain *drain = data;
  guint8 buffer[4096];
  gssize n = recv(fd, buffer, sizeof buffer, 0);
  if (n > 0) {
    g_checksum_update(drain->checksum, buffer, n);
    drain->received += (gsize)n;
  }
  return G_SOURCE_CONTINUE;
}

/* Far more than the socket takes at once: written in many steps, each
 * wait bounded by the timeout, complete and in order. */
static void test_partial_writes(void) {
  Pair pair;
  pair_open(&pair);
  int small = 4096;
  setsockopt(pair.peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  gsize length = 4 * 1024 * 1024;
  g_autofree guint8 *data = g_malloc(length);
  for (gsize i = 0; i < length; i++)
    data[i] = (guint8)(i * 131 + i / 4096);
  g_autofree char *expected =
      g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, length);
  Drain drain = {pair.peer, g_checksum_new(G_CHECKSUM_SHA256), 0};
  guint source = g_unix_fd_add(pair.peer, G_IO_IN, drain_some, &drain);
  Outcome outcome = {0};
  pst_client_io_write(pair.io, data, length, WAIT_MS, on_done, &outcome);
  g_assert_false(outcome.done);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  while (drain.received < length)
    g_main_context_iteration(NULL, TRUE);
  g_source_remove(source);
  g_assert_cmpuint(drain.received, ==, length);
  g_assert_cmpstr(g_checksum_get_string(drain.checksum), ==, expected);
  g_checksum_free(drain.checksum);
  pair_close(&pair);
}

static void test_end_of_stream(void) {
  Pair pair;
  pair_open(&pair);
  peer_send(&pair, "221 bye\r\n");
  close(pair.peer);
  pair.peer = -1;
  Outcome outcome = {0};
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  g_assert_true(input_equals(pair.io, "221 bye\r\n"));
  outcome_clear(&outcome);
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_true(input_equals(pair.io, "221 bye\r\n")); /* kept */
  outcome_clear(&outcome);
  /* Writing to a closed peer fails too (no SIGPIPE). */
  pst_client_io_write(pair.io, "QUIT\r\n", 6, WAIT_MS, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_nonnull(outcome.error);
  outcome_clear(&outcome);
  pair_close(&pair);
}

static void test_timeouts(void) {
  Pair pair;
  pair_open(&pair);
  Outcome outcome = {0};
  gint64 start = g_get_monotonic_time();
  pst_client_io_read(pair.io, in(80), on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 80 * 1000);
  outcome_clear(&outcome);
  /* A peer that reads nothing: the write stalls once the buffers are
   * full, and the timeout (per wait without progress) ends it. */
  gsize length = 8 * 1024 * 1024;
  g_autofree guint8 *data = g_malloc0(length);
  pst_client_io_write(pair.io, data, length, 100, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  outcome_clear(&outcome);
  pair_close(&pair);
}

static void test_quiet(void) {
  Pair pair;
  pair_open(&pair);
  g_assert_true(pst_client_io_is_quiet(pair.io));
  peer_send(&pair, "x");
  run_for(10);
  g_assert_false(pst_client_io_is_quiet(pair.io));
  Outcome outcome = {0};
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  /* Buffered, not consumed: not quiet. */
  g_assert_false(pst_client_io_is_quiet(pair.io));
  g_byte_array_set_size(pst_client_io_get_input(pair.io), 0);
  g_assert_true(pst_client_io_is_quiet(pair.io));
  /* A peer that hung up is not quiet. */
  close(pair.peer);
  pair.peer = -1;
  g_assert_false(pst_client_io_is_quiet(pair.io));
  outcome_clear(&outcome);
  pair_close(&pair);
}

static void free_in_callback(PstClientIo *io, const GError *error,
                             gpointer data) {
  *(gboolean *)data = TRUE;
  pst_client_io_free(io);
}

static void test_free_in_callback(void) {
  Pair pair;
  pair_open(&pair);
  gboolean called = FALSE;
  pst_client_io_read(pair.io, in(WAIT_MS), free_in_callback, &called);
  peer_send(&pair, "250 ok\r\n");
  while (!called)
    g_main_context_iteration(NULL, TRUE);
  pair.io = NULL; /* freed by the callback */
  pair_close(&pair);
}

static void test_connect(void) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) listener =
      g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                   G_SOCKET_PROTOCOL_DEFAULT, &error);
  g_assert_no_error(error);
  g_autoptr(GInetAddress) loopback =
      g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new(loopback, 0);
  g_assert_true(g_socket_bind(listener, any, TRUE, &error));
  g_assert_true(g_socket_listen(listener, &error));
  g_autoptr(GSocketAddress) address =
      g_socket_get_local_address(listener, &error);
  g_assert_no_error(error);

  g_autoptr(PstClientIo) io = pst_client_io_new(address, &error);
  g_assert_no_error(error);
  Outcome outcome = {0};
  pst_client_io_connect(io, address, WAIT_MS, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  outcome_clear(&outcome);

  /* Nobody listens there any more: refused. */
  g_socket_close(listener, NULL);
  g_autoptr(PstClientIo) refused = pst_client_io_new(address, &error);
  pst_client_io_connect(refused, address, WAIT_MS, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  outcome_clear(&outcome);
}

/* --- TLS ----------------------------------------------------------------- */

typedef struct {
  char *dir;
  PstPluginSet *plugins;
  PstTransportService *service;
} Tls;

static Tls tls;

static void tls_setup(void) {
  g_autoptr(GError) error = NULL;
  tls.dir = g_dir_make_tmp("pst-client-io-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *cert = g_build_filename(tls.dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename(tls.dir, "key.pem", NULL);
  const char *argv[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        key,
                        "-out",
                        cert,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=mx.test",
                        "-addext",
                        "subjectAltName=DNS:mx.test",
                        NULL};
  gint status = 0;
  g_spawn_sync(NULL, (char **)argv, NULL,
               G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                   G_SPAWN_STDERR_TO_DEV_NULL,
               NULL, NULL, NULL, NULL, &status, &error);
  g_assert_no_error(error);
  g_assert_true(g_spawn_check_wait_status(status, NULL));
  /* A configuration the loader accepts; nothing is bound or written. */
  g_autofree char *spool = g_build_filename(tls.dir, "spool", NULL);
  g_autofree char *text = g_strdup_printf(
      "[server]\nspool = %s\n[listener:smtp]\naddress = 127.0.0.1:2525\n"
      "[plugins]\nload = tls\n"
      "[plugin:tls]\ncertificate = %s\nprivate_key = %s\n",
      spool, cert, key);
  g_autofree char *path = g_build_filename(tls.dir, "postilion.conf", NULL);
  g_assert_true(g_file_set_contents(path, text, -1, &error));
  g_autoptr(PstConfig) config = pst_config_load(path, &error);
  g_assert_no_error(error);
  const PstPluginDescriptor *builtin[] = {&postilion_plugin, NULL};
  tls.plugins = pst_plugin_set_load_builtin(config, builtin, &error);
  g_assert_no_error(error);
  tls.service = pst_plugin_set_get_transport(tls.plugins);
  g_assert_nonnull(tls.service);
  g_unlink(path);
  g_unlink(cert);
  g_unlink(key);
}

static void tls_teardown(void) {
  pst_transport_service_unref(tls.service);
  pst_plugin_set_unref(tls.plugins);
  g_rmdir(tls.dir);
  g_free(tls.dir);
}

static void server_handshaken(GObject *source, GAsyncResult *result,
                              gpointer data) {
  Outcome *outcome = data;
  outcome->done = TRUE;
  pst_transport_handshake_finish(NULL, result, &outcome->error);
}

/* The server's side of the TLS pair: writes all of `data`, waiting on
 * its socket, from the main loop. */
typedef struct {
  PstTransport *transport;
  int fd;
  const guint8 *data;
  gsize length, done;
} Sender;

static gboolean sender_step(gint fd, GIOCondition condition, gpointer data) {
  Sender *sender = data;
  while (sender->done < sender->length) {
    g_autoptr(GError) error = NULL;
    gssize n =
        pst_transport_write(sender->transport, sender->data + sender->done,
                            sender->length - sender->done, &error);
    if (n <= 0) {
      g_assert_error(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      return G_SOURCE_CONTINUE;
    }
    sender->done += (gsize)n;
  }
  return G_SOURCE_REMOVE;
}

static char *server_receive(PstTransport *server, gsize length) {
  g_autoptr(GString) got = g_string_new(NULL);
  gint64 deadline = in(WAIT_MS);
  while (got->len < length && g_get_monotonic_time() < deadline) {
    char buffer[1024];
    gssize n = pst_transport_read(server, buffer, sizeof buffer, NULL);
    if (n > 0)
      g_string_append_len(got, buffer, n);
    else
      g_main_context_iteration(NULL, FALSE);
  }
  return g_string_free(g_steal_pointer(&got), FALSE);
}

static void test_tls(void) {
  tls_setup();
  Pair pair;
  pair_open(&pair);
  /* Plaintext first, as before STARTTLS; the input is emptied then. */
  peer_send(&pair, "220 go ahead\r\n");
  Outcome outcome = {0};
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  outcome_clear(&outcome);
  g_assert_null(pst_client_io_get_tls(pair.io));

  g_autoptr(GError) error = NULL;
  PstTransport *server =
      pst_transport_new_tls_server(tls.service, pair.peer, NULL, &error);
  g_assert_no_error(error);
  Outcome server_done = {0};
  pst_transport_handshake_async(server, WAIT_MS, NULL, server_handshaken,
                                &server_done);
  pst_client_io_start_tls(pair.io, tls.service, "mx.test", PST_TLS_VERIFY_NONE,
                          WAIT_MS, on_done, &outcome);
  g_assert_cmpuint(pst_client_io_get_input(pair.io)->len, ==, 0);
  outcome_wait(&outcome);
  outcome_wait(&server_done);
  g_assert_no_error(outcome.error);
  g_assert_no_error(server_done.error);
  outcome_clear(&outcome);
  g_assert_nonnull(pst_client_io_get_tls(pair.io));
  g_assert_true(pst_transport_is_tls(pst_client_io_get_tls(pair.io)));

  /* Client to server. */
  pst_client_io_write(pair.io, "EHLO x\r\n", 8, WAIT_MS, on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_no_error(outcome.error);
  outcome_clear(&outcome);
  g_autofree char *got = server_receive(server, 8);
  g_assert_cmpstr(got, ==, "EHLO x\r\n");

  /* Server to client: 300 KiB in 16 KiB records, read a piece at a time
   * (a record is larger than what one read may return), all in order. */
  gsize length = 300 * 1024;
  g_autofree guint8 *data = g_malloc(length);
  for (gsize i = 0; i < length; i++)
    data[i] = (guint8)(i % 251);
  Sender sender = {server, pair.peer, data, length, 0};
  g_unix_fd_add(pair.peer, G_IO_OUT, sender_step, &sender);
  GByteArray *input = pst_client_io_get_input(pair.io);
  guint reads = 0;
  while (input->len < length) {
    pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
    outcome_wait(&outcome);
    g_assert_no_error(outcome.error);
    outcome_clear(&outcome);
    reads++;
  }
  g_assert_cmpuint(input->len, ==, length);
  g_assert_cmpint(memcmp(input->data, data, length), ==, 0);
  g_assert_cmpuint(reads, >, 1);
  g_byte_array_set_size(input, 0);
  g_assert_true(pst_client_io_is_quiet(pair.io));

  /* close_notify, then the socket closes: the read ends with an error. */
  pst_transport_shutdown(server);
  pst_transport_unref(server);
  close(pair.peer);
  pair.peer = -1;
  pst_client_io_read(pair.io, in(WAIT_MS), on_done, &outcome);
  outcome_wait(&outcome);
  g_assert_nonnull(outcome.error);
  outcome_clear(&outcome);
  pair_close(&pair);
  tls_teardown();
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  alarm(120); /* a hung test fails instead of blocking the suite */
  g_test_add_func("/deliver/client-io/write-then-read", test_write_then_read);
  g_test_add_func("/deliver/client-io/partial-reads", test_partial_reads);
  g_test_add_func("/deliver/client-io/partial-writes", test_partial_writes);
  g_test_add_func("/deliver/client-io/end-of-stream", test_end_of_stream);
  g_test_add_func("/deliver/client-io/timeouts", test_timeouts);
  g_test_add_func("/deliver/client-io/quiet", test_quiet);
  g_test_add_func("/deliver/client-io/free-in-callback", test_free_in_callback);
  g_test_add_func("/deliver/client-io/connect", test_connect);
  g_test_add_func("/deliver/client-io/tls", test_tls);
  return g_test_run();
}
