/* result.c - PstDnsResult: one classified DNS answer and its records.
 *
 * Entry points: pst_dns_result_new_from_unbound() (lookup.c, on the main
 * thread, for every libunbound answer), pst_dns_result_new_status() and
 * pst_dns_result_new_cancelled() (answers that never reached libunbound),
 * and the SDK accessors of <postilion/dns.h>.
 *
 * Classification, in this order: a libunbound error is TEMPFAIL; a bogus
 * DNSSEC answer is TEMPFAIL with the bogus flag whatever its rcode (it
 * may be forged); NXDOMAIN; NOERROR with data is OK, without data NODATA;
 * every other rcode (SERVFAIL, REFUSED, FORMERR, ...) is TEMPFAIL, with
 * one exception.  libunbound 1.17 cannot hand over a record whose RDATA
 * is empty (a TXT record of no strings): its fill_res() copies each RDATA
 * with memdup(), which returns NULL for zero octets, takes that for "out
 * of memory" and leaves the result at SERVFAIL, with the answer it did
 * get, NOERROR, in answer_packet.  So a SERVFAIL whose answer_packet says
 * NOERROR takes its records from that packet (types whose RDATA holds no
 * compressed names only: for the others an empty RDATA is malformed).  The
 * records are parsed once, here, by rdata-parse.c; a record that does not
 * parse is dropped (logged at info level).
 *
 * A result is immutable after construction, so it can be passed between
 * threads and its accessors need no lock; it owns its strings and shares
 * its records array and answer packet (both never changed after
 * construction, their reference counts atomic) with the cache's copies.
 */
#define G_LOG_DOMAIN "postilion"

#include <string.h>
#include <unbound.h>

#include <gio/gio.h>

#include "dns/rdata-parse.h"
#include "dns/result.h"

typedef struct {
  char *text;         /* owned, nullable: see pst_dns_result_get_string() */
  gsize text_length;  /* octets of text (TXT may hold NUL octets) */
  guint16 preference; /* MX only */
  GBytes *rdata;      /* owned: the raw RDATA */
} PstDnsRecord;

struct _PstDnsResult {
  PstDnsType type;
  char *name;           /* owned: as asked */
  char *canonical_name; /* owned: end of the CNAME chain, no final dot */
  PstDnsStatus status;
  int rcode; /* -1 without a response */
  gboolean secure;
  gboolean bogus;
  guint32 ttl;
  char *reason;          /* owned */
  GArray *records;       /* owned, of PstDnsRecord */
  GBytes *answer_packet; /* owned, nullable */
};

static void record_clear(gpointer data) {
  PstDnsRecord *record = data;
  g_free(record->text);
  g_bytes_unref(record->rdata);
}

static char *name_without_final_dot(const char *name) {
  gsize length = strlen(name);
  if (length > 1 && name[length - 1] == '.')
    length--;
  return g_strndup(name, length);
}

static PstDnsResult *result_new(PstDnsType type, const char *name) {
  PstDnsResult *result = g_new0(PstDnsResult, 1);
  result->type = type;
  result->name = g_strdup(name != NULL ? name : "");
  result->canonical_name = name_without_final_dot(result->name);
  result->rcode = -1;
  result->records = g_array_new(FALSE, TRUE, sizeof(PstDnsRecord));
  g_array_set_clear_func(result->records, record_clear);
  return result;
}

PstDnsResult *pst_dns_result_new_status(PstDnsType type, const char *name,
                                        PstDnsStatus status,
                                        const char *reason) {
  g_return_val_if_fail(status == PST_DNS_TEMPFAIL ||
                           status == PST_DNS_INVALID ||
                           status == PST_DNS_CANCELLED,
                       NULL);
  PstDnsResult *result = result_new(type, name);
  result->status = status;
  result->reason = g_strdup(reason);
  return result;
}

PstDnsResult *pst_dns_result_new_cancelled(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, NULL);
  return pst_dns_result_new_status(result->type, result->name,
                                   PST_DNS_CANCELLED, "cancelled");
}

PstDnsResult *pst_dns_result_copy_as(const PstDnsResult *result,
                                     const char *name, guint32 ttl) {
  g_return_val_if_fail(result != NULL && name != NULL, NULL);
  PstDnsResult *copy = g_new0(PstDnsResult, 1);
  copy->type = result->type;
  copy->name = g_strdup(name);
  /* No CNAME: the canonical name is the asked one, in the asker's form. */
  g_autofree char *asked = name_without_final_dot(result->name);
  copy->canonical_name = g_strcmp0(asked, result->canonical_name) == 0
                             ? name_without_final_dot(name)
                             : g_strdup(result->canonical_name);
  copy->status = result->status;
  copy->rcode = result->rcode;
  copy->secure = result->secure;
  copy->bogus = result->bogus;
  copy->ttl = ttl;
  copy->reason = g_strdup(result->reason);
  copy->records = g_array_ref(result->records);
  if (result->answer_packet != NULL)
    copy->answer_packet = g_bytes_ref(result->answer_packet);
  return copy;
}

gsize pst_dns_result_get_size(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, 0);
  gsize size = sizeof *result + strlen(result->name) +
               strlen(result->canonical_name) +
               (result->reason != NULL ? strlen(result->reason) : 0);
  for (guint i = 0; i < result->records->len; i++) {
    const PstDnsRecord *record =
        &g_array_index(result->records, PstDnsRecord, i);
    size += sizeof *record + record->text_length + 1 +
            g_bytes_get_size(record->rdata);
  }
  if (result->answer_packet != NULL)
    size += g_bytes_get_size(result->answer_packet);
  return size;
}

static const char *rcode_to_string(int rcode) {
  static const char *const names[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                      "NXDOMAIN", "NOTIMP",  "REFUSED"};
  if (rcode >= 0 && rcode < (int)G_N_ELEMENTS(names))
    return names[rcode];
  return NULL;
}

/* Parses one RDATA into `record` according to the answer's type. */
static gboolean record_parse(PstDnsType type, const guint8 *data, gsize length,
                             PstDnsRecord *record, GError **error) {
  record->rdata = g_bytes_new(data, length);
  switch ((int)type) {
  case PST_DNS_TYPE_A:
  case PST_DNS_TYPE_AAAA:
    record->text =
        pst_dns_address_rdata_parse((guint16)type, data, length, error);
    break;
  case PST_DNS_TYPE_PTR:
  case PST_DNS_TYPE_CNAME:
  case PST_DNS_TYPE_NS:
    record->text = pst_dns_name_rdata_parse(data, length, error);
    break;
  case PST_DNS_TYPE_TXT:
    record->text =
        pst_dns_txt_rdata_parse(data, length, &record->text_length, error);
    break;
  case PST_DNS_TYPE_MX:
    if (!pst_dns_mx_rdata_parse(data, length, &record->preference,
                                &record->text, error))
      return FALSE;
    break;
  case PST_DNS_TYPE_TLSA:
    return pst_dns_tlsa_rdata_parse(data, length, NULL, NULL, NULL, NULL, NULL,
                                    error);
  default:
    return TRUE; /* raw RDATA only */
  }
  if (record->text == NULL)
    return FALSE;
  if (type != PST_DNS_TYPE_TXT)
    record->text_length = strlen(record->text);
  return TRUE;
}

static void result_add_records(PstDnsResult *result,
                               const struct ub_result *ub) {
  for (guint i = 0; ub->data != NULL && ub->data[i] != NULL; i++) {
    PstDnsRecord record = {0};
    g_autoptr(GError) error = NULL;
    if (ub->len[i] < 0 ||
        !record_parse(result->type, (const guint8 *)ub->data[i],
                      (gsize)ub->len[i], &record, &error)) {
      /* Info, not warning: a hostile zone must not fill the logs. */
      g_info("dns: %s/%s: record %u dropped: %s", result->name,
             pst_dns_type_to_string(result->type), i,
             error != NULL ? error->message : "negative length");
      record_clear(&record);
      continue;
    }
    g_array_append_val(result->records, record);
  }
}

/* Types whose RDATA may hold compressed names (RFC 3597 section 4): NS,
 * MD, MF, CNAME, SOA, MB, MG, MR, PTR, MINFO, MX. */
static gboolean type_has_compressed_names(PstDnsType type) {
  static const int types[] = {2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15};
  for (gsize i = 0; i < G_N_ELEMENTS(types); i++)
    if ((int)type == types[i])
      return TRUE;
  return FALSE;
}

/* libunbound's SERVFAIL over an answer with an empty RDATA (see above):
 * the records of the NOERROR packet it got.  FALSE when that is not what
 * happened. */
static gboolean result_add_packet_records(PstDnsResult *result,
                                          const struct ub_result *ub) {
  if (ub->answer_packet == NULL || ub->answer_len <= 0 ||
      type_has_compressed_names(result->type))
    return FALSE;
  guint32 ttl = 0;
  g_autoptr(GPtrArray) rdatas =
      pst_dns_message_answer_rdata(ub->answer_packet, (gsize)ub->answer_len,
                                   (guint16)result->type, &ttl, NULL);
  if (rdatas == NULL || rdatas->len == 0)
    return FALSE;
  for (guint i = 0; i < rdatas->len; i++) {
    PstDnsRecord record = {0};
    gsize length = 0;
    const guint8 *data = g_bytes_get_data(rdatas->pdata[i], &length);
    if (record_parse(result->type, data != NULL ? data : (const guint8 *)"",
                     length, &record, NULL))
      g_array_append_val(result->records, record);
    else
      record_clear(&record);
  }
  if (result->records->len == 0)
    return FALSE;
  result->rcode = 0;
  result->ttl = ttl;
  return TRUE;
}

/* Sets status and reason from the rcode, the flags and the records. */
static void result_classify(PstDnsResult *result, const struct ub_result *ub) {
  const char *rcode_name = rcode_to_string(ub->rcode);
  if (ub->bogus) {
    result->status = PST_DNS_TEMPFAIL;
    result->bogus = TRUE;
    result->reason =
        g_strdup_printf("DNSSEC validation failed: %s",
                        ub->why_bogus != NULL ? ub->why_bogus : "bogus answer");
  } else if (ub->rcode == 3) {
    result->status = PST_DNS_NXDOMAIN;
    result->reason = g_strdup("NXDOMAIN");
  } else if (ub->rcode == 0 && ub->havedata) {
    result_add_records(result, ub);
    result->status = result->records->len > 0 ? PST_DNS_OK : PST_DNS_TEMPFAIL;
    result->reason = g_strdup(
        result->records->len > 0 ? "NOERROR" : "every record was malformed");
  } else if (ub->rcode == 0) {
    result->status = PST_DNS_NODATA;
    result->reason = g_strdup("NODATA");
  } else if (ub->rcode == 2 && result_add_packet_records(result, ub)) {
    result->status = PST_DNS_OK;
    result->reason = g_strdup("NOERROR");
  } else {
    result->status = PST_DNS_TEMPFAIL;
    result->reason = rcode_name != NULL
                         ? g_strdup(rcode_name)
                         : g_strdup_printf("rcode %d", ub->rcode);
  }
}

PstDnsResult *pst_dns_result_new_from_unbound(PstDnsType type, const char *name,
                                              int ub_error,
                                              const struct ub_result *ub) {
  PstDnsResult *result = result_new(type, name);
  if (ub_error != 0 || ub == NULL) {
    result->status = PST_DNS_TEMPFAIL;
    result->reason =
        g_strdup_printf("resolver error: %s", ub_strerror(ub_error));
    return result;
  }
  result->rcode = ub->rcode;
  result->secure = ub->secure && !ub->bogus;
  if (ub->canonname != NULL) {
    g_free(result->canonical_name);
    result->canonical_name = name_without_final_dot(ub->canonname);
  }
  if (ub->answer_packet != NULL && ub->answer_len > 0)
    result->answer_packet =
        g_bytes_new(ub->answer_packet, (gsize)ub->answer_len);
  result_classify(result, ub);
  if (result->status != PST_DNS_TEMPFAIL && ub->ttl > 0)
    result->ttl = (guint32)ub->ttl;
  if (result->status != PST_DNS_OK)
    g_array_set_size(result->records, 0);
  return result;
}

void pst_dns_result_free(PstDnsResult *result) {
  if (result == NULL)
    return;
  g_free(result->name);
  g_free(result->canonical_name);
  g_free(result->reason);
  g_array_unref(result->records);
  g_clear_pointer(&result->answer_packet, g_bytes_unref);
  g_free(result);
}

PstDnsStatus pst_dns_result_get_status(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, PST_DNS_TEMPFAIL);
  return result->status;
}

PstDnsType pst_dns_result_get_type(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, 0);
  return result->type;
}

const char *pst_dns_result_get_name(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, NULL);
  return result->name;
}

const char *pst_dns_result_get_canonical_name(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, NULL);
  return result->canonical_name;
}

int pst_dns_result_get_rcode(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, -1);
  return result->rcode;
}

const char *pst_dns_result_get_reason(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, NULL);
  return result->reason != NULL ? result->reason
                                : pst_dns_status_to_string(result->status);
}

gboolean pst_dns_result_is_secure(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, FALSE);
  return result->secure;
}

gboolean pst_dns_result_is_bogus(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, FALSE);
  return result->bogus;
}

guint32 pst_dns_result_get_ttl(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, 0);
  return result->ttl;
}

guint pst_dns_result_get_count(const PstDnsResult *result) {
  g_return_val_if_fail(result != NULL, 0);
  return result->records->len;
}

static const PstDnsRecord *record_at(const PstDnsResult *result, guint index) {
  if (result == NULL || index >= result->records->len)
    return NULL;
  return &g_array_index(result->records, PstDnsRecord, index);
}

const char *pst_dns_result_get_string(const PstDnsResult *result, guint index) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, NULL);
  return record->text;
}

const char *pst_dns_result_get_txt(const PstDnsResult *result, guint index,
                                   gsize *length) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, NULL);
  if (result->type != PST_DNS_TYPE_TXT)
    return NULL;
  if (length != NULL)
    *length = record->text_length;
  return record->text;
}

guint16 pst_dns_result_get_mx_preference(const PstDnsResult *result,
                                         guint index) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, 0);
  return result->type == PST_DNS_TYPE_MX ? record->preference : 0;
}

GInetAddress *pst_dns_result_get_address(const PstDnsResult *result,
                                         guint index) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, NULL);
  if (result->type != PST_DNS_TYPE_A && result->type != PST_DNS_TYPE_AAAA)
    return NULL;
  return g_inet_address_new_from_bytes(g_bytes_get_data(record->rdata, NULL),
                                       result->type == PST_DNS_TYPE_A
                                           ? G_SOCKET_FAMILY_IPV4
                                           : G_SOCKET_FAMILY_IPV6);
}

gboolean pst_dns_result_get_tlsa(const PstDnsResult *result, guint index,
                                 guint8 *usage, guint8 *selector,
                                 guint8 *matching_type, const guint8 **data,
                                 gsize *length) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, FALSE);
  if (result->type != PST_DNS_TYPE_TLSA)
    return FALSE;
  gsize size = 0;
  const guint8 *rdata = g_bytes_get_data(record->rdata, &size);
  return pst_dns_tlsa_rdata_parse(rdata, size, usage, selector, matching_type,
                                  data, length, NULL);
}

const guint8 *pst_dns_result_get_rdata(const PstDnsResult *result, guint index,
                                       gsize *length) {
  const PstDnsRecord *record = record_at(result, index);
  g_return_val_if_fail(record != NULL, NULL);
  /* GBytes gives NULL for zero octets; callers get a valid pointer. */
  const guint8 *data = g_bytes_get_data(record->rdata, length);
  return data != NULL ? data : (const guint8 *)"";
}

const guint8 *pst_dns_result_get_answer_packet(const PstDnsResult *result,
                                               gsize *length) {
  g_return_val_if_fail(result != NULL, NULL);
  if (result->answer_packet == NULL) {
    if (length != NULL)
      *length = 0;
    return NULL;
  }
  return g_bytes_get_data(result->answer_packet, length);
}

const char *pst_dns_status_to_string(PstDnsStatus status) {
  switch (status) {
  case PST_DNS_OK:
    return "ok";
  case PST_DNS_NXDOMAIN:
    return "nxdomain";
  case PST_DNS_NODATA:
    return "nodata";
  case PST_DNS_TEMPFAIL:
    return "tempfail";
  case PST_DNS_INVALID:
    return "invalid";
  case PST_DNS_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

const char *pst_dns_type_to_string(PstDnsType type) {
  static __thread char other[16];
  switch ((int)type) {
  case PST_DNS_TYPE_A:
    return "A";
  case PST_DNS_TYPE_NS:
    return "NS";
  case PST_DNS_TYPE_CNAME:
    return "CNAME";
  case PST_DNS_TYPE_PTR:
    return "PTR";
  case PST_DNS_TYPE_MX:
    return "MX";
  case PST_DNS_TYPE_TXT:
    return "TXT";
  case PST_DNS_TYPE_AAAA:
    return "AAAA";
  case PST_DNS_TYPE_TLSA:
    return "TLSA";
  default:
    g_snprintf(other, sizeof other, "TYPE%u", (unsigned)type);
    return other;
  }
}

char *pst_dns_reverse_name(GInetAddress *address, const char *zone) {
  g_return_val_if_fail(G_IS_INET_ADDRESS(address), NULL);
  static const guint8 mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};
  const guint8 *bytes = g_inet_address_to_bytes(address);
  gsize size = g_inet_address_get_native_size(address);
  if (size == 16 && memcmp(bytes, mapped_prefix, sizeof mapped_prefix) == 0)
    return pst_dns_reverse_name_build(bytes + 12, 4, zone);
  return pst_dns_reverse_name_build(bytes, size, zone);
}
