/* test-transport.c - the plain transport and the handshake driver, with a
 * fake provider over a socketpair (no TLS library).
 *
 * The fake provider's handshake waits until the peer has written one
 * octet "H" (so the driver must re-arm the socket watch), then succeeds;
 * a peer that writes nothing runs into the deadline timer.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"

/* What a service keeps alive (a plugin, in the daemon): counted here. */
static int kept;
static void fake_release(gpointer keep) {
  g_assert_true(keep == &kept);
  kept--;
}

typedef struct {
  int fd;
  int steps;
  gboolean freed;
} FakeConnection;

static FakeConnection *last_connection;

static gpointer fake_new(gpointer data, int fd, const char *name,
                         PstTlsVerify verify, GError **error) {
  FakeConnection *connection = g_new0(FakeConnection, 1);
  connection->fd = fd;
  last_connection = connection;
  return connection;
}

static guint fake_timeout(gpointer data) {
  return 200;
}

static PstTransportStep fake_handshake(gpointer data, GError **error) {
  FakeConnection *connection = data;
  connection->steps++;
  char byte;
  ssize_t n = recv(connection->fd, &byte, 1, MSG_DONTWAIT);
  if (n == 1 && byte == 'H')
    return PST_TRANSPORT_STEP_DONE;
  if (n == 1 || n == 0) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "garbage");
    return PST_TRANSPORT_STEP_FAILED;
  }
  return PST_TRANSPORT_STEP_AGAIN;
}

static GIOCondition fake_condition(gpointer data) {
  return G_IO_IN;
}
static gboolean fake_pending(gpointer data) {
  return FALSE;
}
static void fake_free(gpointer data) {
  g_free(data);
}
static const char *fake_version(gpointer data) {
  return "FAKE1.0";
}

static const PstTransportProvider fake_provider = {
    .struct_size = sizeof(PstTransportProvider),
    .client_new = fake_new,
    .handshake_timeout_ms = fake_timeout,
    .handshake = fake_handshake,
    .condition = fake_condition,
    .pending = fake_pending,
    .free = fake_free,
    .version = fake_version,
};

typedef struct {
  gboolean called;
  gboolean ok;
  GError *error;
} Outcome;

static void on_done(GObject *source, GAsyncResult *result, gpointer data) {
  Outcome *outcome = data;
  outcome->called = TRUE;
  outcome->ok = pst_transport_handshake_finish(NULL, result, &outcome->error);
}

static void wait_for(Outcome *outcome) {
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  while (!outcome->called && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  g_assert_true(outcome->called);
}

static void test_plain(void) {
  int pair[2];
  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), ==,
                  0);
  g_autoptr(PstTransport) transport = pst_transport_new_plain(pair[0]);
  g_autoptr(GError) error = NULL;
  char buffer[8];
  g_assert_cmpint(pst_transport_read(transport, buffer, sizeof buffer, &error),
                  ==, -1);
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_assert_cmpint(pst_transport_get_condition(transport), ==, G_IO_IN);
  g_clear_error(&error);
  g_assert_cmpint(pst_transport_write(transport, "hi", 2, &error), ==, 2);
  g_assert_cmpint(read(pair[1], buffer, sizeof buffer), ==, 2);
  g_assert_false(pst_transport_is_tls(transport));
  g_assert_null(pst_transport_get_tls_version(transport));

  /* A plain handshake succeeds, but never from inside the call. */
  Outcome outcome = {0};
  pst_transport_handshake_async(transport, 0, NULL, on_done, &outcome);
  g_assert_false(outcome.called);
  wait_for(&outcome);
  g_assert_true(outcome.ok);
  close(pair[1]);
  g_assert_cmpint(pst_transport_read(transport, buffer, sizeof buffer, &error),
                  ==, 0);
  close(pair[0]);
}

static void test_no_provider(void) {
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_transport_new_tls_client_with(NULL, 0, "x",
                                                  PST_TLS_VERIFY_NONE, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_clear_error(&error);
  g_assert_null(pst_transport_new_tls_server(NULL, 0, "smtp", &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
}

/* The fake provider needs "H"; `peer` is what the other side sends. */
static void run_handshake(const char *peer, guint timeout_ms, gboolean cancel,
                          Outcome *outcome, gboolean unref_early) {
  int pair[2];
  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair), ==,
                  0);
  g_autoptr(GError) error = NULL;
  kept = 1;
  PstTransportService *service = pst_transport_service_new(
      &fake_provider, NULL, "fake", &kept, fake_release);
  g_assert_cmpstr(pst_transport_service_get_name(service), ==, "fake");
  PstTransport *transport = pst_transport_new_tls_client_with(
      service, pair[0], "mx.example", PST_TLS_VERIFY_NONE, &error);
  g_assert_nonnull(transport);
  /* The transport keeps the service (and so the provider) alive. */
  pst_transport_service_unref(service);
  g_assert_cmpint(kept, ==, 1);
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  pst_transport_handshake_async(transport, timeout_ms, cancellable, on_done,
                                outcome);
  if (unref_early)
    g_clear_pointer(&transport, pst_transport_unref);
  /* Let the first step find nothing, then send. */
  g_main_context_iteration(NULL, FALSE);
  if (cancel)
    g_cancellable_cancel(cancellable);
  if (peer != NULL)
    g_assert_cmpint(write(pair[1], peer, strlen(peer)), ==, strlen(peer));
  wait_for(outcome);
  if (outcome->ok) {
    g_assert_true(pst_transport_is_tls(transport));
    g_assert_cmpstr(pst_transport_get_tls_version(transport), ==, "FAKE1.0");
  }
  g_clear_pointer(&transport, pst_transport_unref);
  /* Every source and reference is gone with the task. */
  for (int i = 0; i < 10; i++)
    g_main_context_iteration(NULL, FALSE);
  g_assert_cmpint(kept, ==, 0);
  close(pair[0]);
  close(pair[1]);
}

static void test_handshake_ok(void) {
  Outcome outcome = {0};
  run_handshake("H", 0, FALSE, &outcome, FALSE);
  g_assert_no_error(outcome.error);
  g_assert_true(outcome.ok);
}

static void test_handshake_garbage(void) {
  Outcome outcome = {0};
  run_handshake("RSET\r\n", 0, FALSE, &outcome, TRUE);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error(&outcome.error);
}

static void test_handshake_timeout(void) {
  Outcome outcome = {0};
  gint64 start = g_get_monotonic_time();
  run_handshake(NULL, 0, FALSE, &outcome, FALSE); /* the provider's 200 ms */
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 190 * 1000);
  g_clear_error(&outcome.error);
}

static void test_handshake_cancel(void) {
  Outcome outcome = {0};
  run_handshake(NULL, 5000, TRUE, &outcome, TRUE);
  g_assert_error(outcome.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error(&outcome.error);
}

static void test_provider_too_small(void) {
  PstTransportProvider old = fake_provider;
  old.struct_size = G_STRUCT_OFFSET(PstTransportProvider, verify_message);
  g_autoptr(GError) error = NULL;
  g_assert_false(pst_transport_provider_check(&old, &error));
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_true(pst_transport_provider_check(&fake_provider, NULL));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/transport/plain", test_plain);
  g_test_add_func("/transport/no-provider", test_no_provider);
  g_test_add_func("/transport/handshake/ok", test_handshake_ok);
  g_test_add_func("/transport/handshake/garbage", test_handshake_garbage);
  g_test_add_func("/transport/handshake/timeout", test_handshake_timeout);
  g_test_add_func("/transport/handshake/cancel", test_handshake_cancel);
  g_test_add_func("/transport/provider-too-small", test_provider_too_small);
  return g_test_run();
}
