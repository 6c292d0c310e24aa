/* signer.c - the signer of the daemon's own mail (ABI 1.2,
 * pst_plugin_provide_signer()): delivery status notifications and delay
 * notices pass through it before they are queued, so a DKIM plugin signs
 * them like the mail of any user.
 *
 * One provider per daemon (the most recent plugin to provide one).  The
 * delivery workers call pst_signer_sign() from any thread, several at
 * once, under a reader lock; a plugin that is unloaded is forgotten under
 * the writer lock, which waits for the calls in progress, before its
 * shutdown() and before its data is freed.
 */
#include <string.h>

#include "hooks/hooks-private.h"

static GRWLock signer_lock;
static PstPlugin *signer_plugin; /* not owned, under signer_lock */
static PstSignerFunc signer_func;
static gpointer signer_data;

PST_API void pst_plugin_provide_signer(PstPlugin *plugin, PstSignerFunc func,
                                       gpointer user_data) {
  g_return_if_fail(plugin != NULL && func != NULL);
  if (!pst_plugin_is_registering(plugin)) {
    g_critical("plugin \"%s\" provided a signer outside init(): ignored",
               plugin->name);
    return;
  }
  g_rw_lock_writer_lock(&signer_lock);
  signer_plugin = plugin;
  signer_func = func;
  signer_data = user_data;
  g_rw_lock_writer_unlock(&signer_lock);
}

void pst_signer_forget(PstPlugin *plugin) {
  g_rw_lock_writer_lock(&signer_lock);
  if (signer_plugin == plugin) {
    signer_plugin = NULL;
    signer_func = NULL;
    signer_data = NULL;
  }
  g_rw_lock_writer_unlock(&signer_lock);
}

GBytes *pst_signer_sign(GBytes *message) {
  g_return_val_if_fail(message != NULL, NULL);
  g_rw_lock_reader_lock(&signer_lock);
  char *fields = signer_func != NULL ? signer_func(message, signer_data) : NULL;
  g_rw_lock_reader_unlock(&signer_lock);
  if (fields == NULL)
    return g_bytes_ref(message);
  gsize length = 0;
  const char *data = g_bytes_get_data(message, &length);
  GString *out = g_string_sized_new(strlen(fields) + length);
  g_string_append(out, fields);
  g_string_append_len(out, data, (gssize)length);
  g_free(fields);
  return g_string_free_to_bytes(out);
}
