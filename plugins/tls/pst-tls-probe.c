/* pst-tls-probe.c - drives the transport service's TLS client API the way
 * the outbound SMTP client does, for tests/e2e/test_tls_client.py.
 *
 *   pst-tls-probe CONFIG HOST PORT SERVER_NAME none|peer [smtp]
 *
 * Loads the tls plugin (linked in) with CONFIG's [plugin:tls], connects to
 * HOST:PORT, with `smtp` first speaks plaintext SMTP up to STARTTLS's 220,
 * wraps the socket with pst_transport_new_tls_client(), runs the handshake
 * on a GMainLoop, then sends "EHLO"/"QUIT" (with `smtp`) or reads one line
 * through the transport, waiting on the socket for
 * pst_transport_get_condition().  Prints key=value lines (version, cipher,
 * bits, verified, verify_message, server_name, reply) and exits 0; a
 * failed handshake prints error=... and exits 1; usage or setup errors
 * exit 2.  Every wait is bounded (10 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "hooks/hooks.h"

extern const PstPluginDescriptor postilion_plugin;

typedef struct {
  GMainLoop *loop;
  gboolean ok;
  GError *error;
} Handshake;

static int connect_to(const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list = NULL;
  if (getaddrinfo(host, port, &hints, &list) != 0)
    return -1;
  int fd = socket(list->ai_family, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, list->ai_addr, list->ai_addrlen) < 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(list);
  return fd;
}

/* Plaintext SMTP on the blocking socket: one reply (its last line). */
static gboolean read_reply(int fd, char *line, gsize size) {
  gsize used = 0;
  for (;;) {
    if (used + 1 >= size || recv(fd, line + used, 1, 0) != 1)
      return FALSE;
    if (line[used++] != '\n')
      continue;
    line[used] = '\0';
    if (used >= 4 && line[3] == ' ')
      return TRUE;
    used = 0;
  }
}

static gboolean smtp_starttls(int fd) {
  char line[1024];
  const char ehlo[] = "EHLO probe.test\r\n", starttls[] = "STARTTLS\r\n";
  return read_reply(fd, line, sizeof line) &&
         send(fd, ehlo, strlen(ehlo), 0) > 0 &&
         read_reply(fd, line, sizeof line) &&
         send(fd, starttls, strlen(starttls), 0) > 0 &&
         read_reply(fd, line, sizeof line) && strncmp(line, "220", 3) == 0;
}

static void handshake_done(GObject *source, GAsyncResult *result,
                           gpointer data) {
  Handshake *handshake = data;
  handshake->ok = pst_transport_handshake_finish(NULL, result,
                                                 &handshake->error);
  g_main_loop_quit(handshake->loop);
}

static gboolean wait_for(PstTransport *transport, int fd) {
  struct pollfd pfd = {
      .fd = fd,
      .events = pst_transport_get_condition(transport) == G_IO_OUT ? POLLOUT
                                                                   : POLLIN};
  return poll(&pfd, 1, 10000) > 0;
}

/* Writes all of `text` through the transport. */
static gboolean transport_send(PstTransport *transport, int fd,
                               const char *text) {
  gsize done = 0, length = strlen(text);
  while (done < length) {
    g_autoptr(GError) error = NULL;
    gssize n = pst_transport_write(transport, text + done, length - done,
                                   &error);
    if (n > 0)
      done += n;
    else if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK) ||
             !wait_for(transport, fd))
      return FALSE;
  }
  return TRUE;
}

/* Reads one reply's last line through the transport. */
static char *transport_reply(PstTransport *transport, int fd) {
  g_autoptr(GString) text = g_string_new(NULL);
  for (int rounds = 0; rounds < 1000; rounds++) {
    const char *last = g_strrstr(text->str, "\r\n");
    if (last != NULL) {
      const char *start = text->str;
      for (const char *p = text->str; p < last; p++)
        if (p[0] == '\n')
          start = p + 1;
      if (last - start >= 4 && start[3] == ' ')
        return g_strndup(start, last - start);
    }
    char buffer[4096];
    g_autoptr(GError) error = NULL;
    gssize n = pst_transport_read(transport, buffer, sizeof buffer, &error);
    if (n > 0)
      g_string_append_len(text, buffer, n);
    else if (n == 0 ||
             !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK) ||
             (!pst_transport_has_pending(transport) &&
              !wait_for(transport, fd)))
      break;
  }
  return g_strdup("(no reply)");
}

static void print_state(PstTransport *transport) {
  printf("version=%s\ncipher=%s\nbits=%u\nverified=%s\nserver_name=%s\n",
         pst_transport_get_tls_version(transport),
         pst_transport_get_tls_cipher(transport),
         pst_transport_get_tls_cipher_bits(transport),
         pst_transport_get_tls_verified(transport) ? "yes" : "no",
         pst_transport_get_tls_server_name(transport));
  const char *message = pst_transport_get_tls_verify_message(transport);
  printf("verify_message=%s\n", message != NULL ? message : "");
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: pst-tls-probe CONFIG HOST PORT SERVER_NAME "
                    "none|peer [smtp]\n");
    return 2;
  }
  gboolean smtp = argc > 6 && strcmp(argv[6], "smtp") == 0;
  PstTlsVerify verify =
      strcmp(argv[5], "peer") == 0 ? PST_TLS_VERIFY_PEER : PST_TLS_VERIFY_NONE;
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(argv[1], &error);
  const PstPluginDescriptor *builtin[] = {&postilion_plugin, NULL};
  g_autoptr(PstPluginSet) plugins =
      config != NULL ? pst_plugin_set_load_builtin(config, builtin, &error)
                     : NULL;
  if (plugins == NULL) {
    fprintf(stderr, "pst-tls-probe: %s\n", error->message);
    return 2;
  }
  int fd = connect_to(argv[2], argv[3]);
  if (fd < 0 || (smtp && !smtp_starttls(fd))) {
    fprintf(stderr, "pst-tls-probe: cannot connect or STARTTLS: %s\n",
            g_strerror(errno));
    return 2;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const char *name = *argv[4] != '\0' ? argv[4] : NULL;
  g_autoptr(PstTransport) transport =
      pst_transport_new_tls_client(fd, name, verify, &error);
  if (transport == NULL) {
    printf("error=%s\n", error->message);
    return 1;
  }
  Handshake handshake = {.loop = g_main_loop_new(NULL, FALSE)};
  pst_transport_handshake_async(transport, 10000, NULL, handshake_done,
                                &handshake);
  g_main_loop_run(handshake.loop);
  g_main_loop_unref(handshake.loop);
  if (!handshake.ok) {
    printf("error=%s\n", handshake.error->message);
    g_error_free(handshake.error);
    close(fd);
    return 1;
  }
  print_state(transport);
  if (smtp && !transport_send(transport, fd, "EHLO probe.test\r\n")) {
    printf("error=write failed\n");
    return 1;
  }
  g_autofree char *reply = transport_reply(transport, fd);
  printf("reply=%s\n", reply);
  if (smtp && transport_send(transport, fd, "QUIT\r\n")) {
    g_autofree char *bye = transport_reply(transport, fd);
    printf("quit=%s\n", bye);
  }
  pst_transport_shutdown(transport);
  g_clear_pointer(&transport, pst_transport_unref);
  close(fd);
  return 0;
}
