/* dmarc-report.c - an aggregate report as RFC 9990 writes it: the XML
 * document, the Report-ID, the file name, the subject, the gzip file and
 * the message that carries it.
 *
 * Pure functions over what the history queries return (dmarc-report-db.c)
 * so that the unit tests check them without a database, and xmllint
 * checks the XML against plugins/dmarc/dmarc-aggregate.xsd.  Every text
 * that comes from mail (domains, selectors, results) is escaped; element
 * order is the RFC's ("MUST appear in the order listed").
 */
#include <string.h>

#include "dmarc-report.h"

/* RFC 9990 "DKIM Signatures in Aggregate Reports": at most 100 a row. */
#define DMARC_REPORT_MAX_SIGNATURES 100

void dmarc_report_record_free(DmarcReportRecord *record) {
  char **fields[] = {&record->source_ip,   &record->result,
                     &record->disposition, &record->override,
                     &record->header_from, &record->envelope_from,
                     &record->envelope_to, &record->spf_domain,
                     &record->spf_result,  &record->spf_human,
                     &record->dkim};
  for (guint i = 0; i < G_N_ELEMENTS(fields); i++)
    g_free(*fields[i]);
  g_free(record);
}

/* <name>text</name> with `text` escaped, at `indent`. */
static void xml_element(GString *out, guint indent, const char *name,
                        const char *text) {
  g_autofree char *escaped = g_markup_escape_text(text, -1);
  g_string_append_printf(out, "%*s<%s>%s</%s>\n", indent, "", name, escaped,
                         name);
}

static void xml_optional(GString *out, guint indent, const char *name,
                         const char *text) {
  if (text != NULL && text[0] != '\0')
    xml_element(out, indent, name, text);
}

char *dmarc_report_gap_error(const DmarcReportGap *gap) {
  g_autoptr(GDateTime) first = g_date_time_new_from_unix_utc(gap->first);
  g_autoptr(GDateTime) last = g_date_time_new_from_unix_utc(gap->last);
  g_autofree char *from =
      first != NULL ? g_date_time_format_iso8601(first) : g_strdup("?");
  g_autofree char *to =
      last != NULL ? g_date_time_format_iso8601(last) : g_strdup("?");
  return g_strdup_printf(
      "%" G_GUINT64_FORMAT " evaluated message%s between %s and %s could not "
      "be recorded (our history database was unavailable): the "
      "counts in this report are short by that many",
      gap->lost, gap->lost == 1 ? "" : "s", from, to);
}

static guint dmarc_report_signature_count(const DmarcReportRecord *r) {
  guint count = 0;
  for (const char *p = r->dkim; p != NULL && *p != '\0'; count++) {
    p = strchr(p, '\n');
    p = p != NULL ? p + 1 : NULL;
  }
  return count;
}

/* The "error" elements: the caller's, then records whose DKIM results
 * were cut to DMARC_REPORT_MAX_SIGNATURES. */
static void dmarc_report_errors(GString *out, const DmarcReportHeader *h,
                                const GPtrArray *records) {
  for (guint i = 0; h->errors != NULL && h->errors[i] != NULL; i++)
    xml_element(out, 4, "error", h->errors[i]);
  guint cut = 0;
  for (guint i = 0; i < records->len; i++)
    if (dmarc_report_signature_count(records->pdata[i]) >
        DMARC_REPORT_MAX_SIGNATURES)
      cut++;
  if (cut == 0)
    return;
  g_autofree char *text = g_strdup_printf(
      "%u record%s had more than %d DKIM signatures: only the first %d of "
      "each are listed",
      cut, cut == 1 ? "" : "s", DMARC_REPORT_MAX_SIGNATURES,
      DMARC_REPORT_MAX_SIGNATURES);
  xml_element(out, 4, "error", text);
}

static void dmarc_report_metadata(GString *out, const DmarcReportHeader *h,
                                  const GPtrArray *records) {
  g_string_append(out, "  <report_metadata>\n");
  xml_element(out, 4, "org_name", h->org_name);
  xml_element(out, 4, "email", h->email);
  xml_element(out, 4, "report_id", h->report_id);
  g_string_append_printf(out,
                         "    <date_range>\n"
                         "      <begin>%" G_GINT64_FORMAT "</begin>\n"
                         "      <end>%" G_GINT64_FORMAT "</end>\n"
                         "    </date_range>\n",
                         h->begin, h->end - 1);
  dmarc_report_errors(out, h, records);
  xml_optional(out, 4, "generator", h->generator);
  g_string_append(out, "  </report_metadata>\n");
}

static void dmarc_report_policy(GString *out, const DmarcReportHeader *h) {
  g_string_append(out, "  <policy_published>\n");
  xml_element(out, 4, "domain", h->domain);
  xml_element(out, 4, "discovery_method", "treewalk");
  xml_element(out, 4, "p", h->p != NULL && h->p[0] ? h->p : "none");
  xml_optional(out, 4, "sp", h->sp);
  xml_optional(out, 4, "np", h->np);
  xml_optional(out, 4, "fo", h->fo);
  xml_optional(out, 4, "adkim", h->adkim);
  xml_optional(out, 4, "aspf", h->aspf);
  xml_optional(out, 4, "testing", h->testing);
  g_string_append(out, "  </policy_published>\n");
}

static void dmarc_report_row(GString *out, const DmarcReportRecord *r) {
  gboolean passed = g_strcmp0(r->result, "pass") == 0;
  g_string_append(out, "    <row>\n");
  xml_element(out, 6, "source_ip", r->source_ip);
  g_string_append_printf(out, "      <count>%" G_GUINT64_FORMAT "</count>\n",
                         r->count);
  g_string_append(out, "      <policy_evaluated>\n");
  xml_element(out, 8, "disposition", passed ? "pass" : r->disposition);
  xml_element(out, 8, "dkim", r->dkim_aligned ? "pass" : "fail");
  xml_element(out, 8, "spf", r->spf_aligned ? "pass" : "fail");
  if (r->override != NULL && r->override[0] != '\0') {
    g_string_append(out, "        <reason>\n");
    xml_element(out, 10, "type", r->override);
    g_string_append(out, "        </reason>\n");
  }
  g_string_append(out, "      </policy_evaluated>\n    </row>\n");
}

static void dmarc_report_identifiers(GString *out, const DmarcReportRecord *r) {
  g_string_append(out, "    <identifiers>\n");
  xml_element(out, 6, "header_from", r->header_from);
  /* Present but empty for the null reverse-path (RFC 9990). */
  xml_element(out, 6, "envelope_from",
              r->envelope_from != NULL ? r->envelope_from : "");
  xml_optional(out, 6, "envelope_to", r->envelope_to);
  g_string_append(out, "    </identifiers>\n");
}

static void dmarc_report_auth_results(GString *out,
                                      const DmarcReportRecord *r) {
  g_string_append(out, "    <auth_results>\n");
  g_auto(GStrv) lines = g_strsplit(r->dkim != NULL ? r->dkim : "", "\n", -1);
  for (guint i = 0; lines[i] != NULL && i < DMARC_REPORT_MAX_SIGNATURES; i++) {
    /* DOMAIN SELECTOR RESULT[ HUMAN_RESULT] */
    g_auto(GStrv) words = g_strsplit(lines[i], " ", 4);
    if (g_strv_length(words) < 3)
      continue;
    g_string_append(out, "      <dkim>\n");
    xml_element(out, 8, "domain", words[0]);
    xml_element(out, 8, "selector", g_str_equal(words[1], "-") ? "" : words[1]);
    xml_element(out, 8, "result", words[2]);
    xml_optional(out, 8, "human_result", words[3]);
    g_string_append(out, "      </dkim>\n");
  }
  if (r->spf_domain != NULL && r->spf_domain[0] != '\0') {
    g_string_append(out, "      <spf>\n");
    xml_element(out, 8, "domain", r->spf_domain);
    /* Only the MAIL FROM identity is used in DMARC: scope "mfrom". */
    xml_element(out, 8, "scope", "mfrom");
    xml_element(out, 8, "result", r->spf_result);
    xml_optional(out, 8, "human_result", r->spf_human);
    g_string_append(out, "      </spf>\n");
  }
  g_string_append(out, "    </auth_results>\n");
}

char *dmarc_report_xml(const DmarcReportHeader *header,
                       const GPtrArray *records) {
  GString *out =
      g_string_new("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\n"
                   "  <version>1.0</version>\n");
  dmarc_report_metadata(out, header, records);
  dmarc_report_policy(out, header);
  for (guint i = 0; i < records->len; i++) {
    const DmarcReportRecord *record = records->pdata[i];
    g_string_append(out, "  <record>\n");
    dmarc_report_row(out, record);
    dmarc_report_identifiers(out, record);
    dmarc_report_auth_results(out, record);
    g_string_append(out, "  </record>\n");
  }
  g_string_append(out, "</feedback>\n");
  return g_string_free(out, FALSE);
}

char *dmarc_report_id(const char *domain, gint64 begin, const char *submitter) {
  return g_strdup_printf("%" G_GINT64_FORMAT ".%s@%s", begin, domain,
                         submitter);
}

char *dmarc_report_filename(const char *receiver, const char *domain,
                            gint64 begin, gint64 end, const char *report_id) {
  /* unique-id = 1*(ALPHA / DIGIT): derived from the Report-ID, so a
   * resent report keeps its name. */
  g_autofree char *digest =
      g_compute_checksum_for_string(G_CHECKSUM_SHA256, report_id, -1);
  digest[16] = '\0';
  return g_strdup_printf("%s!%s!%" G_GINT64_FORMAT "!%" G_GINT64_FORMAT
                         "!%s.xml.gz",
                         receiver, domain, begin, end - 1, digest);
}

char *dmarc_report_subject(const char *domain, const char *submitter,
                           const char *report_id) {
  return g_strdup_printf("Report Domain: %s Submitter: %s Report-ID: <%s>",
                         domain, submitter, report_id);
}

GBytes *dmarc_gzip(const char *data, gsize length, GError **error) {
  g_autoptr(GZlibCompressor) compressor =
      g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autoptr(GOutputStream) memory = g_memory_output_stream_new_resizable();
  g_autoptr(GOutputStream) gzip =
      g_converter_output_stream_new(memory, G_CONVERTER(compressor));
  if (!g_output_stream_write_all(gzip, data, length, NULL, NULL, error) ||
      !g_output_stream_close(gzip, NULL, error))
    return NULL;
  return g_memory_output_stream_steal_as_bytes(G_MEMORY_OUTPUT_STREAM(memory));
}

/* Base64 in lines of 76 characters (RFC 2045), CRLF. */
static void dmarc_append_base64(GString *out, GBytes *bytes) {
  gsize size = 0;
  const guchar *data = g_bytes_get_data(bytes, &size);
  g_autofree char *encoded = g_base64_encode(data, size);
  gsize length = strlen(encoded);
  for (gsize i = 0; i < length; i += 76) {
    g_string_append_len(out, encoded + i, MIN(76, length - i));
    g_string_append(out, "\r\n");
  }
}

char *dmarc_report_message(const char *from, const char *to,
                           const char *subject, const char *report_id,
                           const char *filename, GBytes *gzip,
                           GDateTime *date) {
  g_autofree char *when = g_date_time_format(date, "%a, %d %b %Y %H:%M:%S %z");
  g_autofree char *boundary =
      g_compute_checksum_for_string(G_CHECKSUM_SHA1, report_id, -1);
  GString *out = g_string_new(NULL);
  g_string_append_printf(
      out,
      "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
      "Message-ID: <%s>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
      "This is a DMARC aggregate report (RFC 9990).\r\n\r\n"
      "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
      "DMARC aggregate report from %s, attached as %s.\r\n\r\n"
      "--%s\r\nContent-Type: application/gzip; name=\"%s\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n",
      from, to, subject, when, report_id, boundary, boundary, from, filename,
      boundary, filename, filename);
  dmarc_append_base64(out, gzip);
  g_string_append_printf(out, "\r\n--%s--\r\n", boundary);
  return g_string_free(out, FALSE);
}
