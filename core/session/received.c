/* received.c - the Received: header the core prepends to every message.
 *
 *   Received: from HELO (HOSTNAME [ADDRESS])
 *   	(using TLS1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))
 *   	(Authenticated sender: USER)             after AUTH only
 *   	by OURHOST (Postilion listener=NAME) with ESMTPSA id QUEUEID
 *   	for <RECIPIENT>; Sun, 22 Nov 2026 03:00:00 +0000
 *
 * As RFC 5321 section 4.4 and Postfix write it: the client's own HELO name,
 * its reverse DNS name ("unknown" without one) and address, our name, the
 * protocol of RFC 3848/6531, the queue id, and the recipient only when
 * there is exactly one (more would tell each recipient about the others).
 * Over TLS the protocol says ESMTPS and a comment records the TLS version
 * and cipher, as Postfix's smtpd_tls_received_header does.
 * Text from the client is reduced to safe characters, so nothing it sends
 * can break the header's structure.
 */
#include <string.h>

#include "smtp/message-date.h"
#include "session/session-private.h"
#include "util/vformat.h"

const char *pst_session_protocol(PstSession *session) {
  static const char *const names[2][2][2] = {
      /* [utf8][tls][auth] */
      {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}},
      {{"UTF8SMTP", "UTF8SMTPA"}, {"UTF8SMTPS", "UTF8SMTPSA"}},
  };
  if (!session->esmtp)
    return "SMTP";
  gboolean utf8 = session->envelope != NULL && session->envelope->smtputf8;
  return names[utf8][session->tls != FALSE][session->auth_user != NULL];
}

/* Appends `text` with printable ASCII kept, except what could end a
 * clause or a comment ("()<>;\\"); those and controls become '?'.
 * UTF-8 is kept only in a message that declared SMTPUTF8.  Safe octets go
 * out in runs: this runs for every message. */
static gboolean received_octet_is_safe(guchar c, gboolean utf8) {
  switch (c) {
  case '(':
  case ')':
  case '<':
  case '>':
  case ';':
  case '\\':
    return FALSE;
  default:
    return (c > 0x20 && c < 0x7f) || (c >= 0x80 && utf8);
  }
}

static void received_append_safe(GString *out, const char *text,
                                 gboolean utf8) {
  const guchar *run = (const guchar *)text;
  for (const guchar *p = run;; p++) {
    if (*p != '\0' && received_octet_is_safe(*p, utf8))
      continue;
    g_string_append_len(out, (const char *)run, p - run);
    if (*p == '\0')
      return;
    g_string_append_c(out, '?');
    run = p + 1;
  }
}

static void received_append_uint(GString *out, guint value) {
  char digits[PST_DECIMAL_MAX];
  g_string_append_len(out, digits, (gssize)pst_format_decimal(digits, value));
}

void pst_received_format(PstSession *session, const char *queue_id,
                         GString *out) {
  gboolean utf8 = session->envelope->smtputf8;
  g_string_append(out, "Received: from ");
  received_append_safe(out, session->helo != NULL ? session->helo : "unknown",
                       FALSE);
  g_string_append(out, " (");
  received_append_safe(out,
                       session->client_hostname != NULL
                           ? session->client_hostname
                           : "unknown",
                       FALSE);
  g_string_append(out, strchr(session->client_address, ':') ? " [IPv6:"
                                                              : " [");
  g_string_append(out, session->client_address);
  g_string_append(out, "])\r\n");
  if (session->tls) {
    g_string_append(out, "\t(using ");
    received_append_safe(
        out, pst_session_get_tls_version(session) ?: "unknown", FALSE);
    g_string_append(out, " with cipher ");
    received_append_safe(
        out, pst_session_get_tls_cipher(session) ?: "unknown", FALSE);
    g_string_append(out, " (");
    received_append_uint(out, pst_session_get_tls_cipher_bits(session));
    g_string_append(out, " bits))\r\n");
  }
  /* The authenticated identity, as Postfix's
   * smtpd_sasl_authenticated_header writes it; never a password. */
  if (session->auth_user != NULL) {
    g_string_append(out, "\t(Authenticated sender: ");
    received_append_safe(out, session->auth_user, utf8);
    g_string_append(out, ")\r\n");
  }
  /* Appends, not a format: this is every message's. */
  g_string_append(out, "\tby ");
  g_string_append(out, session->config->server.hostname);
  g_string_append(out, " (Postilion listener=");
  g_string_append(out, session->listener->name);
  g_string_append(out, ") with ");
  g_string_append(out, pst_session_protocol(session));
  g_string_append(out, " id ");
  g_string_append(out, queue_id);
  PstEnvelope *envelope = session->envelope;
  if (envelope->recipients->len == 1) {
    PstEnvelopeRecipient *recipient = envelope->recipients->pdata[0];
    g_string_append(out, "\r\n\tfor <");
    received_append_safe(out, recipient->address, utf8);
    g_string_append_c(out, '>');
  }
  g_string_append(out, ";\r\n\t");
  g_autofree char *date = pst_message_date_format(g_get_real_time());
  g_string_append(out, date);
  g_string_append(out, "\r\n");
}
