/* session-authres.c - the session's Authentication-Results header field.
 *
 * RFC 8601 and ARCHITECTURE.md ("Results shared between plugins"): plugins
 * store their verdicts under "auth.METHOD" (auth.spf, auth.dkim,
 * auth.dmarc) and the core renders them as one Authentication-Results
 * field, authserv-id = [server] hostname, on top of the client's header
 * block (below our Received:).  The field is added after the EOM chain, so
 * results stored at EOM (DKIM verification, DMARC) are in it.
 *
 * Fields the client sent that carry our authserv-id are forgeries (a
 * message cannot have been checked by us before it reached us): they are
 * deleted before the EOM chain runs, so no plugin and no later reader
 * trusts them (RFC 8601 section 5).  Fields of other authserv-ids stay.
 *
 * Called by session-data.c at the end of data; uses the SDK's message edit
 * functions, which keep the edits for the spool's header rewrite.  The
 * auth.* results are read from the stores as they are (results.c's
 * pst_results_foreach()), not through an a{sv} of every result.
 */
#include <string.h>

#include "session/session-private.h"

#define AUTHRES_FIELD "Authentication-Results"

/* GHFunc over a store: keeps an "auth.METHOD" entry in `data` (a GArray
 * of PstAuthResult, each result a new reference) unless a method of that
 * name is kept already (transaction results are read first, so they are
 * over session ones).  The name is the store's key: the stores do not
 * change while the field is made (main thread, within one call). */
static void authres_methods_add(gpointer key, gpointer value, gpointer data) {
  GArray *methods = data;
  if (!g_str_has_prefix(key, "auth."))
    return;
  const char *method = (const char *)key + 5;
  for (guint i = 0; i < methods->len; i++)
    if (strcmp(g_array_index(methods, PstAuthResult, i).method, method) == 0)
      return;
  PstAuthResult entry = {method, g_variant_ref(value)};
  g_array_append_val(methods, entry);
}

static void authres_method_clear(gpointer data) {
  g_variant_unref(((PstAuthResult *)data)->result);
}

char *pst_session_authres_render(PstSession *session) {
  g_autoptr(GArray) methods =
      g_array_sized_new(FALSE, FALSE, sizeof(PstAuthResult), 4);
  g_array_set_clear_func(methods, authres_method_clear);
  if (session->results.transaction != NULL)
    pst_results_foreach(session->results.transaction, authres_methods_add,
                        methods);
  pst_results_foreach(session->results.session, authres_methods_add, methods);
  return pst_auth_results_format_methods(session->config->server.hostname,
                                         (PstAuthResult *)(void *)methods->data,
                                         methods->len);
}

static gboolean authres_is_forged(PstSession *session, const char *name,
                                  const char *value) {
  return g_ascii_strcasecmp(name, AUTHRES_FIELD) == 0 &&
         pst_auth_results_is_from(value, session->config->server.hostname);
}

gboolean pst_session_authres_needed(PstSession *session, GPtrArray *fields,
                                    const char *value) {
  /* Only results that render: auth.user and auth.mechanism (strings, the
   * core's record of SMTP AUTH) alone need no field. */
  if (value != NULL)
    return TRUE;
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = fields->pdata[i];
    if (authres_is_forged(session, field->name, field->value))
      return TRUE;
  }
  return FALSE;
}

void pst_session_authres_strip(PstSession *session, PstMessage *message) {
  guint occurrence = 0;
  const char *value;
  while ((value = pst_message_get_header(message, AUTHRES_FIELD, occurrence)) !=
         NULL) {
    if (!authres_is_forged(session, AUTHRES_FIELD, value)) {
      occurrence++;
      continue;
    }
    g_message("%s: removed a forged Authentication-Results field with our "
              "authserv-id %s",
              pst_message_get_id(message), session->config->server.hostname);
    pst_message_delete_header(message, AUTHRES_FIELD, occurrence);
  }
}

void pst_session_authres_add(PstMessage *message, const char *value) {
  if (value != NULL &&
      !pst_message_insert_header(message, 0, AUTHRES_FIELD, value))
    g_warning("%s: Authentication-Results not added (a value the message "
              "edit refused)",
              pst_message_get_id(message));
}
