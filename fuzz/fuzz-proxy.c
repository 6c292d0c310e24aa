/* fuzz-proxy.c - fuzzes the HAProxy PROXY protocol header parser.
 *
 * Input: the first bytes of a connection.  Beyond "no crash, no leak" it
 * checks what a successful parse promises: the header fits in the input,
 * its version is 1 or 2, a non-local header's addresses parse back with
 * inet_pton() and are never IPv4-mapped, and every shorter prefix of a
 * valid header is NEED_MORE (so the server never consumes too little or
 * closes a connection that was still sending its header).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "server/proxy-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void address_check(const char *text) {
  guint8 bytes[16];
  gboolean v6 = strchr(text, ':') != NULL;
  g_assert_cmpint(inet_pton(v6 ? AF_INET6 : AF_INET, text, bytes), ==, 1);
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  g_assert_false(v6 && memcmp(bytes, mapped, 12) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  PstProxyHeader header;
  PstProxyStatus status = pst_proxy_parse(data, size, &header);
  if (status != PST_PROXY_OK)
    return 0;
  g_assert_cmpuint(header.length, <=, size);
  g_assert_cmpuint(header.length, >, 0);
  g_assert_true(header.version == 1 || header.version == 2);
  if (!header.local) {
    address_check(header.source);
    address_check(header.destination);
  }
  /* Prefixes: a few, so large inputs stay fast. */
  for (gsize cut = 0; cut < header.length; cut += 1 + header.length / 16) {
    PstProxyHeader partial;
    g_assert_cmpint(pst_proxy_parse(data, cut, &partial), ==,
                    PST_PROXY_NEED_MORE);
  }
  return 0;
}
