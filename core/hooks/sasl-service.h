/* sasl-service.h - the core's side of the SASL service (<postilion/sasl.h>).
 *
 * The session finds the providing plugin for its listener with
 * pst_plugin_set_find_sasl() and drives the exchange through the
 * pst_sasl_server_* wrappers; each start()/step() takes a PstSaslStep made
 * by pst_sasl_step_new(), whose `done` callback runs later on the main
 * context, exactly once, unless the step was cancelled first.
 *
 * Main thread only.
 */
#pragma once

#include <postilion/sasl.h>

#include "config/config.h"
#include "hooks/hooks.h"

G_BEGIN_DECLS

/* The first plugin of the listener's chain (load order) that provides
 * SASL, or NULL.  Borrowed: valid while `set` lives. */
PstPlugin *pst_plugin_set_find_sasl(PstPluginSet *set,
                                    const PstListenerConfig *listener);

/* Runs on the main context when the plugin completed the step.
 * `challenge` (CONTINUE) and `user` (OK) are nullable otherwise; they are
 * valid during the call. */
typedef void (*PstSaslStepDoneFunc)(PstSaslStatus status, GBytes *challenge,
                                    const char *user, gpointer user_data);

/* A step for one start()/step() call.  The core keeps one reference until
 * `done` ran or pst_sasl_step_cancel(); the plugin's completion releases
 * the other. */
PstSaslStep *pst_sasl_step_new(PstSaslStepDoneFunc done, gpointer user_data);
/* `done` will not be called; the completion is ignored when it comes. */
void pst_sasl_step_cancel(PstSaslStep *step);

/* The plugin's functions, checked to be non-NULL at provide time. */
gpointer pst_sasl_server_open(PstPlugin *plugin, PstSession *session,
                              GError **error);
char *pst_sasl_server_list(PstPlugin *plugin, gpointer connection,
                           gboolean plaintext_allowed);
void pst_sasl_server_start(PstPlugin *plugin, gpointer connection,
                           const char *mechanism, const guint8 *response,
                           gsize length, gboolean has_response,
                           PstSaslStep *step);
void pst_sasl_server_step(PstPlugin *plugin, gpointer connection,
                          const guint8 *response, gsize length,
                          PstSaslStep *step);
void pst_sasl_server_close(PstPlugin *plugin, gpointer connection);

/* A client exchange (<postilion/sasl.h>) through `provider`, the
 * generation's SASL client plugin (pst_plugin_set_get_sasl_client());
 * NULL with G_IO_ERROR_NOT_SUPPORTED when `provider` is NULL.  The client
 * holds a reference to the plugin. */
PstSaslClient *pst_sasl_client_open(PstPlugin *provider,
                                    const char *server_name, const char *user,
                                    const char *password, gboolean encrypted,
                                    GError **error);

/* TRUE when `mechanism` is a word of the space-separated `list`. */
gboolean pst_sasl_list_contains(const char *list, const char *mechanism);

G_END_DECLS
