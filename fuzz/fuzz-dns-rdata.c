/* fuzz-dns-rdata.c - fuzzes the DNS record parsers (core/dns/rdata-parse.c)
 * and the classification of libunbound answers (core/dns/result.c).
 *
 * Input: one selector octet, then data.  The selector's low 3 bits pick
 * the parser (name, TXT, MX, TLSA, A, AAAA, a whole answer, query name);
 * "a whole answer" splits the rest into records, each prefixed by one
 * length octet, and classifies them as the type chosen by the selector's
 * high bits, the way libunbound's data[]/len[] arrive (with high bits 10,
 * a SERVFAIL whose answer_packet is the whole input: the records are then
 * read from that packet).  Any crash, leak or
 * out-of-bounds read is a bug; results are only checked for consistency.
 */
#include <stdint.h>
#include <string.h>
#include <unbound.h>

#include <glib.h>

#include "dns/rdata-parse.h"
#include "dns/result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_answer(guint8 selector, const guint8 *data, gsize size) {
  static const PstDnsType types[] = {
      PST_DNS_TYPE_A,   PST_DNS_TYPE_AAAA, PST_DNS_TYPE_MX,    PST_DNS_TYPE_TXT,
      PST_DNS_TYPE_PTR, PST_DNS_TYPE_TLSA, PST_DNS_TYPE_CNAME, (PstDnsType)99};
  char *records[33] = {0};
  int lengths[33] = {0};
  guint count = 0;
  gsize position = 0;
  while (position < size && count < 32) {
    gsize length = MIN((gsize)data[position], size - position - 1);
    records[count] = g_malloc0(length + 1); /* never NULL, even empty */
    memcpy(records[count], data + position + 1, length);
    lengths[count] = (int)length;
    count++;
    position += 1 + length;
  }
  struct ub_result ub = {0};
  ub.rcode = (selector >> 6) == 3 ? 3 : 0;
  if ((selector >> 6) == 2) {
    /* libunbound's SERVFAIL with a packet: the input is that packet. */
    ub.rcode = 2;
    ub.answer_packet = (void *)data;
    ub.answer_len = (int)size;
  }
  ub.havedata = count > 0;
  ub.data = records;
  ub.len = lengths;
  ub.ttl = 60;
  PstDnsResult *result = pst_dns_result_new_from_unbound(
      types[(selector >> 3) & 7], "fuzz.test", 0, &ub);
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    const char *text = pst_dns_result_get_string(result, i);
    if (text != NULL)
      g_assert(strlen(text) <= 65535);
    gsize length = 0;
    g_assert(pst_dns_result_get_rdata(result, i, &length) != NULL);
  }
  pst_dns_result_free(result);
  for (guint i = 0; i < count; i++)
    g_free(records[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  guint8 selector = data[0];
  const guint8 *rest = data + 1;
  gsize length = size - 1;
  g_autofree char *text = NULL;
  guint16 preference = 0;
  switch (selector & 7) {
  case 0:
    text = pst_dns_name_rdata_parse(rest, length, NULL);
    if (text != NULL) /* a returned name is printable ASCII */
      for (const char *p = text; *p != '\0'; p++)
        g_assert(*p >= 0x21 && *p <= 0x7e);
    break;
  case 1: {
    gsize text_length = 0;
    text = pst_dns_txt_rdata_parse(rest, length, &text_length, NULL);
    g_assert(text == NULL || text_length < length || length == 0);
    break;
  }
  case 2:
    if (pst_dns_mx_rdata_parse(rest, length, &preference, &text, NULL))
      g_assert(text != NULL);
    break;
  case 3: {
    const guint8 *association = NULL;
    gsize association_length = 0;
    if (pst_dns_tlsa_rdata_parse(rest, length, NULL, NULL, NULL, &association,
                                 &association_length, NULL))
      g_assert(association + association_length == rest + length);
    break;
  }
  case 4:
    text = pst_dns_address_rdata_parse(1, rest, length, NULL);
    break;
  case 5:
    text = pst_dns_address_rdata_parse(28, rest, length, NULL);
    break;
  case 6:
    fuzz_answer(selector, rest, length);
    break;
  default: {
    g_autofree char *name = g_strndup((const char *)rest, length);
    if (pst_dns_query_name_is_valid(name))
      g_assert(strlen(name) <= 254 && strchr(name, '\\') == NULL);
    text = pst_dns_reverse_name_build(rest, MIN(length, 16), name);
    break;
  }
  }
  return 0;
}
