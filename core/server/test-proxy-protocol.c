/* test-proxy-protocol.c - table-driven tests of the PROXY header parser:
 * v1 and v2, every family, LOCAL/UNKNOWN, IPv4-mapped addresses, partial
 * headers (NEED_MORE) and the malformed ones a listener must close on.
 */
#include <string.h>

#include "server/proxy-protocol.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

typedef struct {
  const char *name;
  const char *data;
  gsize length; /* 0: strlen(data) */
  PstProxyStatus status;
  guint version;
  gboolean local;
  const char *source;
  guint16 source_port;
  const char *destination;
  guint16 destination_port;
  gsize header_length; /* 0: the whole input */
} ProxyCase;

static const ProxyCase cases[] = {
    {"v1/tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 4711 25\r\n", 0,
     PST_PROXY_OK, 1, FALSE, "192.0.2.1", 4711, "198.51.100.2", 25, 0},
    {"v1/tcp6", "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n", 0, PST_PROXY_OK, 1,
     FALSE, "2001:db8::1", 65535, "::1", 0, 0},
    {"v1/tcp6-mapped", "PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n", 0,
     PST_PROXY_OK, 1, FALSE, "192.0.2.7", 1, "::1", 2, 0},
    {"v1/followed-by-smtp", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nEHLO x\r\n",
     0, PST_PROXY_OK, 1, FALSE, "192.0.2.1", 1, "192.0.2.2", 2, 36},
    {"v1/unknown", "PROXY UNKNOWN\r\n", 0, PST_PROXY_OK, 1, TRUE, "", 0, "", 0,
     0},
    {"v1/unknown-with-addresses", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 0,
     PST_PROXY_OK, 1, TRUE, "", 0, "", 0, 0},
    {"v1/partial", "PROXY TCP4 192.0.2.1", 0, PST_PROXY_NEED_MORE},
    {"v1/prefix", "PRO", 0, PST_PROXY_NEED_MORE},
    {"v1/empty", "", 0, PST_PROXY_NEED_MORE},
    {"v1/bare-lf", "PROXY TCP4 192.0.2.1 198.51.100.2 4711 25\n", 0,
     PST_PROXY_INVALID},
    {"v1/family-mismatch", "PROXY TCP4 2001:db8::1 ::1 1 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/tcp6-with-v4", "PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/port-range", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/port-leading-zero", "PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/port-sign", "PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/double-space", "PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/missing-field", "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/lower-case", "proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n", 0,
     PST_PROXY_INVALID},
    {"v1/too-long",
     "PROXY UNKNOWN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     0, PST_PROXY_INVALID},
    {"v1/smtp", "EHLO client.example\r\n", 0, PST_PROXY_INVALID},
    {"v2/tcp4",
     SIG "\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\x12\x67\x00\x19",
     28, PST_PROXY_OK, 2, FALSE, "192.0.2.1", 4711, "198.51.100.2", 25, 0},
    {"v2/tcp4-tlv",
     SIG "\x21\x11\x00\x12\xc0\x00\x02\x01\xc6\x33\x64\x02\x12\x67\x00\x19"
         "\x04\x00\x03" "abc",
     34, PST_PROXY_OK, 2, FALSE, "192.0.2.1", 4711, "198.51.100.2", 25, 0},
    {"v2/tcp6",
     SIG "\x21\x21\x00\x24"
         "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
         "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
         "\x00\x01\x00\x02",
     52, PST_PROXY_OK, 2, FALSE, "2001:db8::1", 1, "::1", 2, 0},
    {"v2/tcp6-mapped",
     SIG "\x21\x21\x00\x24"
         "\0\0\0\0\0\0\0\0\0\0\xff\xff\xc0\x00\x02\x09"
         "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
         "\x00\x01\x00\x02",
     52, PST_PROXY_OK, 2, FALSE, "192.0.2.9", 1, "::1", 2, 0},
    {"v2/local", SIG "\x20\x00\x00\x00", 16, PST_PROXY_OK, 2, TRUE, "", 0, "",
     0, 0},
    {"v2/unix", SIG "\x21\x31\x00\x04" "abcd", 20, PST_PROXY_OK, 2, TRUE, "",
     0, "", 0, 0},
    {"v2/udp", SIG "\x21\x12\x00\x0c" "abcdefghijkl", 28, PST_PROXY_OK, 2,
     TRUE, "", 0, "", 0, 0},
    {"v2/partial-signature", SIG, 8, PST_PROXY_NEED_MORE},
    {"v2/partial-body", SIG "\x21\x11\x00\x0c\xc0\x00", 18,
     PST_PROXY_NEED_MORE},
    {"v2/bad-signature", "\r\n\r\n\0\r\nQUIT\r", 12, PST_PROXY_INVALID},
    {"v2/version-1", SIG "\x11\x11\x00\x00", 16, PST_PROXY_INVALID},
    {"v2/command-2", SIG "\x22\x11\x00\x00", 16, PST_PROXY_INVALID},
    {"v2/short-addresses", SIG "\x21\x11\x00\x04" "abcd", 20,
     PST_PROXY_INVALID},
    {"v2/bad-family", SIG "\x21\x51\x00\x00", 16, PST_PROXY_INVALID},
};

static void test_case(gconstpointer data) {
  const ProxyCase *c = data;
  gsize length = c->length != 0 ? c->length : strlen(c->data);
  PstProxyHeader header;
  memset(&header, 0xAA, sizeof header);
  PstProxyStatus status =
      pst_proxy_parse((const guint8 *)c->data, length, &header);
  g_assert_cmpint(status, ==, c->status);
  if (status != PST_PROXY_OK)
    return;
  g_assert_cmpuint(header.version, ==, c->version);
  g_assert_cmpint(header.local, ==, c->local);
  g_assert_cmpuint(header.length, ==,
                   c->header_length != 0 ? c->header_length : length);
  if (c->local)
    return;
  g_assert_cmpstr(header.source, ==, c->source);
  g_assert_cmpuint(header.source_port, ==, c->source_port);
  g_assert_cmpstr(header.destination, ==, c->destination);
  g_assert_cmpuint(header.destination_port, ==, c->destination_port);
}

/* Every strict prefix of a valid header asks for more. */
static void test_prefixes(void) {
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    const ProxyCase *c = &cases[i];
    if (c->status != PST_PROXY_OK)
      continue;
    gsize length = c->length != 0 ? c->length : strlen(c->data);
    gsize header = c->header_length != 0 ? c->header_length : length;
    for (gsize cut = 0; cut < header; cut++) {
      PstProxyHeader partial;
      g_assert_cmpint(pst_proxy_parse((const guint8 *)c->data, cut, &partial),
                      ==, PST_PROXY_NEED_MORE);
    }
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = g_strdup_printf("/proxy/parse/%s", cases[i].name);
    g_test_add_data_func(path, &cases[i], test_case);
  }
  g_test_add_func("/proxy/parse/prefixes", test_prefixes);
  return g_test_run();
}
