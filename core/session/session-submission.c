/* session-submission.c - Date: and Message-ID: for submitted mail.
 *
 * A message from a client that may relay (an authenticated user, an
 * internal network, our own sendmail) that lacks Date: or Message-ID:
 * gets them, as Postfix's cleanup does for local clients: RFC 5322 makes
 * Date: mandatory, and large receivers penalise mail without a
 * Message-ID.  Mail from the outside is left as it came (adding fields to
 * other people's mail only hides their mistakes and can break their
 * signatures).
 *
 * Called by session-data.c at the end of data, before the EOM chain, so a
 * DKIM signing plugin signs the fields; the edits go through the SDK's
 * message edit functions like every other header edit.
 */
#include "smtp/message-date.h"
#include "session/session-private.h"

/* A client whose mail we complete: authenticated or allowed to relay. */
static gboolean submission_is_ours(PstSession *session) {
  return session->auth_user != NULL || session->relay_allowed;
}

static gboolean fields_have(GPtrArray *fields, const char *name) {
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = fields->pdata[i];
    if (g_ascii_strcasecmp(field->name, name) == 0)
      return TRUE;
  }
  return FALSE;
}

gboolean pst_session_submission_needed(PstSession *session, GPtrArray *fields) {
  return submission_is_ours(session) &&
         (!fields_have(fields, "Date") || !fields_have(fields, "Message-ID"));
}

void pst_session_submission_complete(PstSession *session, PstMessage *message) {
  if (!submission_is_ours(session))
    return;
  gint64 now = g_get_real_time();
  if (pst_message_get_header(message, "Date", 0) == NULL) {
    g_autofree char *date = pst_message_date_format(now);
    pst_message_add_header(message, "Date", date);
  }
  if (pst_message_get_header(message, "Message-ID", 0) == NULL) {
    /* Postfix's form: <YYYYMMDDhhmmss.QUEUEID@HOSTNAME>, unique by the
     * queue id. */
    g_autoptr(GDateTime) utc =
        g_date_time_new_from_unix_utc(now / G_USEC_PER_SEC);
    g_autofree char *stamp = g_date_time_format(utc, "%Y%m%d%H%M%S");
    g_autofree char *id =
        g_strdup_printf("<%s.%s@%s>", stamp, pst_message_get_id(message),
                        session->config->server.hostname);
    pst_message_add_header(message, "Message-ID", id);
  }
}
