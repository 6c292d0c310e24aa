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
 * functions, which keep the edits for the spool's header rewrite.
 */
#include <string.h>

#include "session/session-private.h"

#define AUTHRES_FIELD "Authentication-Results"

/* Session results, then transaction results over them, as one a{sv}. */
static GVariant *authres_collect(PstSession *session) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  g_autoptr(GVariant) transaction =
      session->results.transaction != NULL
          ? pst_results_to_variant(session->results.transaction)
          : NULL;
  g_autoptr(GVariant) connection =
      pst_results_to_variant(session->results.session);
  GVariant *scopes[] = {transaction, connection};
  /* Entries by index, not through "{&sv}": any '&' format serializes the
   * tree-form results it reads anew (auth-results.c). */
  for (guint i = 0; i < G_N_ELEMENTS(scopes); i++) {
    gsize count = scopes[i] != NULL ? g_variant_n_children(scopes[i]) : 0;
    for (gsize j = 0; j < count; j++) {
      g_autoptr(GVariant) entry = g_variant_get_child_value(scopes[i], j);
      g_autoptr(GVariant) name = g_variant_get_child_value(entry, 0);
      const char *key = g_variant_get_string(name, NULL);
      if (g_str_has_prefix(key, "auth.") &&
          g_hash_table_add(seen, (gpointer)key))
        g_variant_builder_add_value(&builder, entry);
    }
  }
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

static gboolean authres_is_forged(PstSession *session, const char *name,
                                  const char *value) {
  return g_ascii_strcasecmp(name, AUTHRES_FIELD) == 0 &&
         pst_auth_results_is_from(value, session->config->server.hostname);
}

gboolean pst_session_authres_needed(PstSession *session, GPtrArray *fields) {
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = fields->pdata[i];
    if (authres_is_forged(session, field->name, field->value))
      return TRUE;
  }
  /* Only results that render: auth.user and auth.mechanism (strings, the
   * core's record of SMTP AUTH) alone need no field. */
  g_autoptr(GVariant) results = authres_collect(session);
  g_autofree char *value =
      pst_auth_results_format(session->config->server.hostname, results);
  return value != NULL;
}

void pst_session_authres_strip(PstSession *session, PstMessage *message) {
  guint occurrence = 0;
  const char *value;
  while ((value = pst_message_get_header(message, AUTHRES_FIELD,
                                         occurrence)) != NULL) {
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

void pst_session_authres_add(PstSession *session, PstMessage *message) {
  g_autoptr(GVariant) results = authres_collect(session);
  g_autofree char *value = pst_auth_results_format(
      session->config->server.hostname, results);
  if (value != NULL && !pst_message_insert_header(message, 0, AUTHRES_FIELD,
                                                  value))
    g_warning("%s: Authentication-Results not added (a value the message "
              "edit refused)",
              pst_message_get_id(message));
}
