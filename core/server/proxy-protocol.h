/* proxy-protocol.h - the HAProxy PROXY protocol header, versions 1 and 2
 * (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
 *
 * A load balancer in front of a listener with `proxy_protocol = true`
 * sends one header as the first bytes of each connection, carrying the
 * real client's address.  pst_proxy_parse() is a pure function over the
 * bytes received so far: it says whether they hold a whole valid header
 * (and how long it is), could still become one, or never will.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The longest header accepted: v2's 16 octets plus its 16-bit length. */
#define PST_PROXY_MAX_HEADER (16 + 65535)
/* v1: "PROXY ... \r\n" is at most 107 octets. */
#define PST_PROXY_V1_MAX 107

typedef enum {
  PST_PROXY_NEED_MORE = 0, /* a prefix of a valid header: read more */
  PST_PROXY_OK,            /* a whole header: see PstProxyHeader */
  PST_PROXY_INVALID,       /* not a header, or a malformed one */
} PstProxyStatus;

typedef struct {
  guint version; /* 1 or 2 */
  /* TRUE for v2 LOCAL, v1 UNKNOWN and v2 families other than TCP over
   * IPv4/IPv6: the connection's own addresses stay (health checks). */
  gboolean local;
  char source[48];      /* text, IPv4-mapped IPv6 unmapped; "" when local */
  guint16 source_port;
  char destination[48]; /* text; "" when local */
  guint16 destination_port;
  gsize length;         /* octets of the header, to be consumed */
} PstProxyHeader;

/* Parses the start of a connection's bytes.  `header` is written only
 * with PST_PROXY_OK. */
PstProxyStatus pst_proxy_parse(const guint8 *data, gsize length,
                               PstProxyHeader *header);

G_END_DECLS
