/* rdata-parse.h - pure parsers of DNS record data and names.
 *
 * libunbound hands every record of an answer as raw RDATA (ub_result's
 * data[i] / len[i]): names in it are uncompressed wire names, TXT is a
 * list of length-prefixed strings.  The data come from whoever runs the
 * zone, so every function here treats its input as hostile: lengths are
 * checked before every read, nothing is trusted to be NUL-terminated, and
 * a malformed input fails with PST_DNS_PARSE_ERROR instead of reading past
 * the buffer.  No function here does I/O or keeps state; all are
 * unit-tested (test-dns-rdata.c) and fuzzed (fuzz/fuzz-dns-rdata.c).
 *
 * Text forms: names are returned in presentation format without the final
 * dot ("mx1.example.test"; the root is "."), with "\." for a dot inside a
 * label, "\\" for a backslash and "\DDD" for any octet outside 0x21..0x7e,
 * so a returned name is always printable ASCII and never contains a NUL.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PST_DNS_PARSE_ERROR (pst_dns_parse_error_quark())
GQuark pst_dns_parse_error_quark(void);

/* Longest name in wire form (RFC 1035 2.3.4) and longest label. */
#define PST_DNS_NAME_MAX_WIRE 255
#define PST_DNS_LABEL_MAX 63

/* Reads the uncompressed wire name that starts at `*offset` in `data`,
 * advancing `*offset` past it.  Compression pointers are refused (RDATA
 * from libunbound is always decompressed).  Returns the presentation form
 * or NULL with `error`. */
char *pst_dns_name_from_wire(const guint8 *data, gsize length, gsize *offset,
                             GError **error);

/* A name-only RDATA (PTR, CNAME, NS): the whole buffer is one name. */
char *pst_dns_name_rdata_parse(const guint8 *data, gsize length,
                               GError **error);

/* TXT RDATA: the concatenation of its character-strings (RFC 7208 3.3,
 * RFC 6376 3.6.2.2), NUL-terminated; `*text_length` (nullable) receives its
 * length, which matters when a string holds a NUL octet.  An RDATA of zero
 * octets (a record of no strings) is the empty text; one whose last string
 * runs past the end is malformed. */
char *pst_dns_txt_rdata_parse(const guint8 *data, gsize length,
                              gsize *text_length, GError **error);

/* MX RDATA: 16-bit preference and exchange name.  The null MX (RFC 7505)
 * parses as preference 0 and exchange ".". */
gboolean pst_dns_mx_rdata_parse(const guint8 *data, gsize length,
                                guint16 *preference, char **exchange,
                                GError **error);

/* TLSA RDATA (RFC 6698): three octets and the association data (which may
 * be empty; DANE callers check matching-type lengths themselves).
 * `*association` points into `data`. */
gboolean pst_dns_tlsa_rdata_parse(const guint8 *data, gsize length,
                                  guint8 *usage, guint8 *selector,
                                  guint8 *matching_type,
                                  const guint8 **association,
                                  gsize *association_length, GError **error);

/* A (4 octets) or AAAA (16 octets) RDATA as text ("192.0.2.1",
 * "2001:db8::1").  `rrtype` is 1 or 28. */
char *pst_dns_address_rdata_parse(guint16 rrtype, const guint8 *data,
                                  gsize length, GError **error);

/* The RDATA of every answer-section record of type `rrtype` (class IN)
 * in a whole DNS `message` (libunbound's answer_packet, names possibly
 * compressed), as GBytes in answer order, and their smallest TTL in
 * `*ttl_r` (nullable; 0 without records).  NULL with `error` when the
 * message is malformed or its rcode is not NOERROR.  RDATA holding
 * compressed names (MX, PTR, NS, CNAME, SOA) is returned as it is. */
GPtrArray *pst_dns_message_answer_rdata(const guint8 *message, gsize length,
                                        guint16 rrtype, guint32 *ttl_r,
                                        GError **error);
/* TRUE when `name` may be sent as a query: ASCII 0x21..0x7e without a
 * backslash (no escapes: names reach us from SMTP clients), non-empty
 * labels of at most 63 octets, at most 253 characters without the
 * optional final dot; "." is the root.  Internationalised names must be
 * converted to A-labels first (g_hostname_to_ascii()). */
gboolean pst_dns_query_name_is_valid(const char *name);

/* `name` as the resolver must get it to look it up exactly as it is
 * (PST_DNS_LOOKUP_VERBATIM): every octet outside [A-Za-z0-9_-] of a label
 * written "\DDD", the dots between labels kept.  NULL when it cannot be
 * a query: empty, an empty label, a label over 63 octets, over 253
 * octets without the optional final dot.  "." is the root. */
char *pst_dns_query_name_escape(const char *name);
/* The reverse-lookup name of an address given as 4 or 16 octets:
 * "4.3.2.1" + "." + `zone`, or the nibble form for IPv6.  `zone` NULL
 * means "in-addr.arpa" / "ip6.arpa"; a DNSBL zone such as
 * "zen.dnsbl.test" gives "4.3.2.1.zen.dnsbl.test".  A trailing dot on
 * `zone` is dropped.  Returns NULL for another length. */
char *pst_dns_reverse_name_build(const guint8 *address, gsize length,
                                 const char *zone);

G_END_DECLS
