/* testedit.c - a test plugin that edits the message at EOM as its
 * `[plugin:testedit]` group says: header fields added, inserted, changed,
 * deleted; the envelope sender changed; recipients added and removed.
 * With `mode = thread` the edits are made from a worker thread while the
 * call is pending, as a content filter would.
 *
 * Every edit is logged with its result ("testedit: add X-A: 1 -> ok"), so
 * a test sees refusals (a bad field name) in the daemon's log.  Keys are
 * documented in README.md beside this file.  Uses the SDK only.
 */
#include <string.h>

#include <postilion/plugin.h>

typedef struct {
  char **add;       /* "Name: value" */
  char **insert;    /* "INDEX:Name: value" */
  char **change;    /* "Name: value" (first occurrence) */
  char **delete;    /* "Name" (first occurrence) */
  char *set_sender; /* nullable; "<>" is the null sender */
  char **add_rcpt;
  char **remove_rcpt;
  gboolean thread;
  GPtrArray *threads; /* of GThread*, joined at shutdown */
  GMutex lock;
} Edits;

static Edits *edits;

static void log_edit(PstMessage *message, const char *what, const char *arg,
                     gboolean ok) {
  g_message("testedit: %s: %s %s -> %s", pst_message_get_id(message), what, arg,
            ok ? "ok" : "refused");
}

/* Splits "Name: value"; FALSE when there is no ": ". */
static gboolean split_field(const char *text, char **name_r, char **value_r) {
  const char *colon = strstr(text, ": ");
  if (colon == NULL)
    return FALSE;
  *name_r = g_strndup(text, colon - text);
  *value_r = g_strcompress(colon + 2); /* "\r\n\t" folds can be written */
  return TRUE;
}

static void edit_headers(PstMessage *message) {
  for (guint i = 0; edits->add && edits->add[i]; i++) {
    g_autofree char *name = NULL, *value = NULL;
    gboolean ok = split_field(edits->add[i], &name, &value) &&
                  pst_message_add_header(message, name, value);
    log_edit(message, "add", edits->add[i], ok);
  }
  for (guint i = 0; edits->insert && edits->insert[i]; i++) {
    g_autofree char *name = NULL, *value = NULL;
    char *rest = NULL;
    guint64 index = g_ascii_strtoull(edits->insert[i], &rest, 10);
    gboolean ok = rest != edits->insert[i] && *rest == ':' &&
                  split_field(rest + 1, &name, &value) &&
                  pst_message_insert_header(message, (guint)index, name, value);
    log_edit(message, "insert", edits->insert[i], ok);
  }
  for (guint i = 0; edits->change && edits->change[i]; i++) {
    g_autofree char *name = NULL, *value = NULL;
    gboolean ok = split_field(edits->change[i], &name, &value) &&
                  pst_message_change_header(message, name, 0, value);
    log_edit(message, "change", edits->change[i], ok);
  }
  for (guint i = 0; edits->delete &&edits->delete[i]; i++)
    log_edit(message, "delete", edits->delete[i],
             pst_message_delete_header(message, edits->delete[i], 0));
}

static void edit_envelope(PstMessage *message) {
  if (edits->set_sender != NULL) {
    const char *sender =
        strcmp(edits->set_sender, "<>") == 0 ? "" : edits->set_sender;
    log_edit(message, "sender", edits->set_sender,
             pst_message_set_sender(message, sender));
  }
  for (guint i = 0; edits->add_rcpt && edits->add_rcpt[i]; i++)
    log_edit(message, "add-rcpt", edits->add_rcpt[i],
             pst_message_add_recipient(message, edits->add_rcpt[i]));
  for (guint i = 0; edits->remove_rcpt && edits->remove_rcpt[i]; i++)
    log_edit(message, "remove-rcpt", edits->remove_rcpt[i],
             pst_message_remove_recipient(message, edits->remove_rcpt[i]));
}

static gpointer edit_thread(gpointer data) {
  PstCall *call = data;
  PstMessage *message = pst_call_get_message(call);
  edit_headers(message);
  edit_envelope(message);
  pst_call_complete(call, PST_VERDICT_CONTINUE);
  return NULL;
}

static PstVerdict eom_hook(PstCall *call, gpointer user_data) {
  PstMessage *message = pst_call_get_message(call);
  if (!edits->thread) {
    edit_headers(message);
    edit_envelope(message);
    return PST_VERDICT_CONTINUE;
  }
  g_mutex_lock(&edits->lock);
  g_ptr_array_add(edits->threads, g_thread_new("testedit", edit_thread, call));
  g_mutex_unlock(&edits->lock);
  return PST_VERDICT_PENDING;
}

static void edits_free(Edits *e) {
  for (guint i = 0; i < e->threads->len; i++)
    g_thread_join(g_ptr_array_index(e->threads, i));
  g_ptr_array_unref(e->threads);
  g_strfreev(e->add);
  g_strfreev(e->insert);
  g_strfreev(e->change);
  g_strfreev(e->delete);
  g_strfreev(e->add_rcpt);
  g_strfreev(e->remove_rcpt);
  g_free(e->set_sender);
  g_mutex_clear(&e->lock);
  g_free(e);
}

static gboolean edits_load(Edits *e, GKeyFile *config, const char *group,
                           gint64 *priority_r, GError **error) {
  static const char *const keys[] = {"add_header",       "insert_header",
                                     "change_header",    "delete_header",
                                     "set_sender",       "add_recipient",
                                     "remove_recipient", "mode",
                                     "hook_priority",    NULL};
  g_autofree char *mode = NULL;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_list(config, group, "add_header", &e->add, error) ||
      !pst_config_get_list(config, group, "insert_header", &e->insert, error) ||
      !pst_config_get_list(config, group, "change_header", &e->change, error) ||
      !pst_config_get_list(config, group, "delete_header", &e->delete, error) ||
      !pst_config_get_string(config, group, "set_sender", NULL, &e->set_sender,
                             error) ||
      !pst_config_get_list(config, group, "add_recipient", &e->add_rcpt,
                           error) ||
      !pst_config_get_list(config, group, "remove_recipient", &e->remove_rcpt,
                           error) ||
      !pst_config_get_string(config, group, "mode", "sync", &mode, error) ||
      !pst_config_get_int(config, group, "hook_priority", 100, -10000, 10000,
                          priority_r, error))
    return FALSE;
  if (strcmp(mode, "sync") != 0 && strcmp(mode, "thread") != 0) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] mode = %s: expected sync or thread", group, mode);
    return FALSE;
  }
  e->thread = strcmp(mode, "thread") == 0;
  return TRUE;
}

static gboolean testedit_init(PstPlugin *plugin, GKeyFile *config,
                              const char *group, GError **error) {
  Edits *e = g_new0(Edits, 1);
  g_mutex_init(&e->lock);
  e->threads = g_ptr_array_new();
  gint64 priority = 0;
  if (!edits_load(e, config, group, &priority, error)) {
    edits_free(e);
    return FALSE;
  }
  edits = e;
  pst_plugin_register_hook(plugin, PST_STAGE_EOM, (int)priority, eom_hook, NULL,
                           NULL);
  return TRUE;
}

static void testedit_shutdown(PstPlugin *plugin) {
  g_clear_pointer(&edits, edits_free);
}

POSTILION_PLUGIN_DEFINE("testedit", "1.0",
                        "Test plugin: edits the message at EOM", testedit_init,
                        testedit_shutdown, NULL);
