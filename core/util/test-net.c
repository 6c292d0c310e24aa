/* test-net.c - listening sockets: what accepted connections inherit and
 * the local address a listener knows for them (pst_net_listen,
 * pst_net_listener_local_address), over real loopback sockets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "util/net.h"

/* The port the kernel chose for a socket bound to port 0. */
static guint16 bound_port(int fd) {
  struct sockaddr_storage storage;
  socklen_t length = sizeof storage;
  g_assert_cmpint(getsockname(fd, (struct sockaddr *)&storage, &length), ==, 0);
  char *text = NULL;
  guint16 port = 0;
  g_assert_true(pst_net_sockaddr_to_string((struct sockaddr *)&storage, length,
                                           &text, &port));
  g_free(text);
  return port;
}

/* Connects to 127.0.0.1:port and accepts it on `listener`; returns the
 * accepted socket (the client's in `*client_r`). */
static int connect_and_accept(int listener, guint16 port, int *client_r) {
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(client, >=, 0);
  g_assert_cmpint(connect(client, (struct sockaddr *)&address, sizeof address),
                  ==, 0);
  int accepted = -1;
  for (int tries = 0; tries < 1000 && accepted < 0; tries++) {
    accepted = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (accepted < 0)
      g_usleep(1000);
  }
  g_assert_cmpint(accepted, >=, 0);
  *client_r = client;
  return accepted;
}

/* A connection accepted on a pst_net_listen() socket has TCP_NODELAY
 * without setting it: the server relies on that. */
static void test_accepted_nodelay(void) {
  g_autoptr(GError) error = NULL;
  int listener = pst_net_listen("127.0.0.1", 0, &error);
  g_assert_no_error(error);
  int client = -1;
  int accepted = connect_and_accept(listener, bound_port(listener), &client);
  int value = 0;
  socklen_t length = sizeof value;
  g_assert_cmpint(
      getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &value, &length), ==, 0);
  g_assert_cmpint(value, !=, 0);
  close(accepted);
  close(client);
  close(listener);
}

/* A listener bound to one address reports what getsockname() gives for
 * each connection it accepts. */
static void test_local_address_fixed(void) {
  g_autoptr(GError) error = NULL;
  int listener = pst_net_listen("127.0.0.1", 0, &error);
  g_assert_no_error(error);
  g_autofree char *local = NULL;
  guint16 local_port = 0;
  g_assert_true(pst_net_listener_local_address(listener, &local, &local_port));
  g_assert_cmpstr(local, ==, "127.0.0.1");
  g_assert_cmpuint(local_port, ==, bound_port(listener));

  int client = -1;
  int accepted = connect_and_accept(listener, local_port, &client);
  struct sockaddr_storage storage;
  socklen_t length = sizeof storage;
  g_assert_cmpint(getsockname(accepted, (struct sockaddr *)&storage, &length),
                  ==, 0);
  g_autofree char *seen = NULL;
  guint16 seen_port = 0;
  g_assert_true(pst_net_sockaddr_to_string((struct sockaddr *)&storage, length,
                                           &seen, &seen_port));
  g_assert_cmpstr(seen, ==, local);
  g_assert_cmpuint(seen_port, ==, local_port);
  close(accepted);
  close(client);
  close(listener);
}

/* A wildcard listener has no single local address. */
static void test_local_address_wildcard(void) {
  g_autoptr(GError) error = NULL;
  int listener = pst_net_listen("0.0.0.0", 0, &error);
  g_assert_no_error(error);
  char *local = NULL;
  guint16 local_port = 0;
  g_assert_false(pst_net_listener_local_address(listener, &local, &local_port));
  g_assert_null(local);
  close(listener);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/net/listen/accepted-nodelay", test_accepted_nodelay);
  g_test_add_func("/net/listener-local/fixed", test_local_address_fixed);
  g_test_add_func("/net/listener-local/wildcard", test_local_address_wildcard);
  return g_test_run();
}
