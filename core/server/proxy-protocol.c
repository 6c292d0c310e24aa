/* proxy-protocol.c - a pure parser of HAProxy PROXY protocol headers.
 *
 * v1 is one text line: "PROXY TCP4 SRC DST SPORT DPORT\r\n" (TCP6 with
 * IPv6 addresses, or "PROXY UNKNOWN ...\r\n"), at most 107 octets, single
 * spaces, ports in decimal.  v2 is binary: a 12-octet signature, version
 * and command, family and protocol, a 16-bit length, then the addresses
 * and TLVs (which we skip).  Everything is checked strictly, because the
 * bytes come from the network: a listener that expects a header closes
 * any connection whose first bytes are not one.
 *
 * Entry point: pst_proxy_parse(), called by server.c on the bytes peeked
 * from a new connection, and by fuzz/fuzz-proxy.c.
 */
#include <arpa/inet.h>
#include <string.h>

#include "server/proxy-protocol.h"

static const guint8 v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_prefix[] = "PROXY ";

/* Text of a 4- or 16-octet address; IPv4-mapped IPv6 written as IPv4. */
static void proxy_address_text(const guint8 *bytes, gboolean v6, char *out,
                               gsize size) {
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && memcmp(bytes, mapped, 12) == 0) {
    bytes += 12;
    v6 = FALSE;
  }
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, out, size);
}

/* --- v1 ----------------------------------------------------------------- */

/* A decimal port, 1 to 5 digits, no sign, no leading zero but "0". */
static gboolean proxy_v1_port(const char *text, guint16 *port) {
  gsize length = strlen(text);
  if (length == 0 || length > 5 || (length > 1 && text[0] == '0'))
    return FALSE;
  guint value = 0;
  for (gsize i = 0; i < length; i++) {
    if (!g_ascii_isdigit(text[i]))
      return FALSE;
    value = value * 10 + (guint)(text[i] - '0');
  }
  if (value > 65535)
    return FALSE;
  *port = (guint16)value;
  return TRUE;
}

static gboolean proxy_v1_address(const char *text, gboolean v6, char *out,
                                 gsize size) {
  guint8 bytes[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, text, bytes) != 1)
    return FALSE;
  proxy_address_text(bytes, v6, out, size);
  return TRUE;
}

static PstProxyStatus proxy_parse_v1(const guint8 *data, gsize length,
                                     PstProxyHeader *header) {
  const guint8 *end = memchr(data, '\n', MIN(length, PST_PROXY_V1_MAX));
  if (end == NULL)
    return length < PST_PROXY_V1_MAX ? PST_PROXY_NEED_MORE
                                     : PST_PROXY_INVALID;
  gsize line_length = (gsize)(end - data);
  if (line_length == 0 || data[line_length - 1] != '\r' ||
      memchr(data, '\0', line_length) != NULL)
    return PST_PROXY_INVALID;
  g_autofree char *line = g_strndup((const char *)data, line_length - 1);
  g_auto(GStrv) fields = g_strsplit(line, " ", -1);
  guint count = g_strv_length(fields);
  PstProxyHeader result = {.version = 1, .length = line_length + 1};
  if (count >= 2 && strcmp(fields[1], "UNKNOWN") == 0) {
    /* The rest of the line may hold anything and is ignored. */
    result.local = TRUE;
    *header = result;
    return PST_PROXY_OK;
  }
  gboolean v6 = count == 6 && strcmp(fields[1], "TCP6") == 0;
  if (count != 6 || (!v6 && strcmp(fields[1], "TCP4") != 0) ||
      !proxy_v1_address(fields[2], v6, result.source, sizeof result.source) ||
      !proxy_v1_address(fields[3], v6, result.destination,
                        sizeof result.destination) ||
      !proxy_v1_port(fields[4], &result.source_port) ||
      !proxy_v1_port(fields[5], &result.destination_port))
    return PST_PROXY_INVALID;
  *header = result;
  return PST_PROXY_OK;
}

/* --- v2 ----------------------------------------------------------------- */

static PstProxyStatus proxy_parse_v2(const guint8 *data, gsize length,
                                     PstProxyHeader *header) {
  if (length < 16)
    return PST_PROXY_NEED_MORE;
  guint version = data[12] >> 4, command = data[12] & 0x0F;
  if (version != 2 || command > 1)
    return PST_PROXY_INVALID;
  gsize body = ((gsize)data[14] << 8) | data[15];
  if (length < 16 + body)
    return PST_PROXY_NEED_MORE;
  PstProxyHeader result = {.version = 2, .length = 16 + body};
  guint family = data[13] >> 4, protocol = data[13] & 0x0F;
  const guint8 *addresses = data + 16;
  if (command == 0 || protocol != 1 || (family != 1 && family != 2)) {
    /* LOCAL, or a family we do not serve (UDP, UNIX, UNSPEC): the
     * specification says to use the connection's own addresses. */
    if (family > 3 || protocol > 2)
      return PST_PROXY_INVALID;
    result.local = TRUE;
    *header = result;
    return PST_PROXY_OK;
  }
  gboolean v6 = family == 2;
  gsize size = v6 ? 16 : 4;
  if (body < 2 * size + 4)
    return PST_PROXY_INVALID;
  proxy_address_text(addresses, v6, result.source, sizeof result.source);
  proxy_address_text(addresses + size, v6, result.destination,
                     sizeof result.destination);
  const guint8 *ports = addresses + 2 * size;
  result.source_port = (guint16)((ports[0] << 8) | ports[1]);
  result.destination_port = (guint16)((ports[2] << 8) | ports[3]);
  *header = result;
  return PST_PROXY_OK;
}

PstProxyStatus pst_proxy_parse(const guint8 *data, gsize length,
                               PstProxyHeader *header) {
  g_return_val_if_fail(data != NULL || length == 0, PST_PROXY_INVALID);
  if (length == 0)
    return PST_PROXY_NEED_MORE;
  gsize v2_seen = MIN(length, sizeof v2_signature);
  if (data[0] == v2_signature[0]) {
    if (memcmp(data, v2_signature, v2_seen) != 0)
      return PST_PROXY_INVALID;
    return v2_seen < sizeof v2_signature
               ? PST_PROXY_NEED_MORE
               : proxy_parse_v2(data, length, header);
  }
  gsize v1_seen = MIN(length, sizeof v1_prefix - 1);
  if (memcmp(data, v1_prefix, v1_seen) != 0)
    return PST_PROXY_INVALID;
  return v1_seen < sizeof v1_prefix - 1 ? PST_PROXY_NEED_MORE
                                        : proxy_parse_v1(data, length, header);
}
