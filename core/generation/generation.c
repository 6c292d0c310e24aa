/* generation.c - PstGeneration: the configuration, plugins, tables and
 * services one generation carries (see generation.h).
 *
 * The struct is immutable after pst_generation_new(), which also picks
 * the service providers from the plugin set; its reference count is
 * atomic so delivery workers may hold one.  Dropping the last
 * reference unrefs the plugin set, which may shut plugins down: the
 * owners drop theirs on the main thread.
 */
#include "tables/tables.h"
#include "dns/dns.h"
#include "generation/generation.h"
#include "hooks/hooks.h"
#include "hooks/sasl-service.h"
#include "transport/transport.h"

struct _PstGeneration {
  gint ref_count;             /* atomic */
  PstConfig *config;          /* owned reference */
  PstPluginSet *plugins;      /* owned reference, nullable */
  PstDeliverTables *tables;   /* owned reference, nullable */
  PstDnsResolver *dns;        /* held, nullable */
  PstTransportService *transport; /* owned reference, nullable */
  PstPlugin *sasl_client;         /* in plugins, nullable */
  PstPlugin *signer;              /* in plugins, nullable */
  PstSmtpCache *connection_cache; /* not owned: outlives the generation */
  PstCommittedFunc committed; /* nullable */
  gpointer committed_data;    /* not owned: outlives the generation */
};

PstGeneration *pst_generation_new(const PstGenerationSetup *setup) {
  g_return_val_if_fail(setup != NULL && setup->config != NULL, NULL);
  PstGeneration *generation = g_new0(PstGeneration, 1);
  generation->ref_count = 1;
  generation->config = pst_config_ref(setup->config);
  if (setup->plugins != NULL) {
    generation->plugins = pst_plugin_set_ref(setup->plugins);
    generation->transport = pst_plugin_set_get_transport(setup->plugins);
    generation->sasl_client = pst_plugin_set_get_sasl_client(setup->plugins);
    generation->signer = pst_plugin_set_get_signer(setup->plugins);
  }
  if (setup->tables != NULL)
    generation->tables = pst_deliver_tables_ref(setup->tables);
  if (setup->dns != NULL)
    generation->dns = pst_dns_resolver_hold(setup->dns);
  generation->connection_cache = setup->connection_cache;
  generation->committed = setup->committed;
  generation->committed_data = setup->committed_data;
  return generation;
}

PstGeneration *pst_generation_ref(PstGeneration *generation) {
  g_return_val_if_fail(generation != NULL, NULL);
  g_atomic_int_inc(&generation->ref_count);
  return generation;
}

void pst_generation_unref(PstGeneration *generation) {
  if (generation == NULL || !g_atomic_int_dec_and_test(&generation->ref_count))
    return;
  pst_deliver_tables_unref(generation->tables);
  pst_dns_resolver_release(generation->dns);
  pst_transport_service_unref(generation->transport);
  if (generation->plugins != NULL)
    pst_plugin_set_unref(generation->plugins);
  pst_config_unref(generation->config);
  g_free(generation);
}

PstConfig *pst_generation_get_config(PstGeneration *generation) {
  return generation->config;
}

PstPluginSet *pst_generation_get_plugins(PstGeneration *generation) {
  return generation->plugins;
}

PstDeliverTables *pst_generation_get_tables(PstGeneration *generation) {
  return generation->tables;
}

PstTransportService *pst_generation_get_transport(PstGeneration *generation) {
  return generation->transport;
}

PstDnsResolver *pst_generation_get_dns(PstGeneration *generation) {
  return generation->dns;
}

PstSmtpCache *pst_generation_get_connection_cache(PstGeneration *generation) {
  return generation->connection_cache;
}

PstPlugin *pst_generation_get_sasl_client(PstGeneration *generation) {
  return generation->sasl_client;
}

PstSaslClient *pst_generation_open_sasl_client(
    PstGeneration *generation, const char *server_name, const char *user,
    const char *password, gboolean encrypted, GError **error) {
  return pst_sasl_client_open(generation->sasl_client, server_name, user,
                              password, encrypted, error);
}

GBytes *pst_generation_sign(PstGeneration *generation, GBytes *message) {
  return pst_signer_sign(generation->signer, message);
}

gboolean pst_generation_recipient_exists(PstGeneration *generation,
                                         const char *address, char **reason_r) {
  /* Without a delivery method the tables decide nothing: mail for any
   * local part is accepted and stays queued. */
  if (generation->tables == NULL ||
      !pst_config_delivery_enabled(&generation->config->delivery))
    return TRUE;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) targets =
      pst_deliver_tables_resolve(generation->tables, address, &error);
  if (targets != NULL)
    return TRUE;
  if (reason_r != NULL)
    *reason_r = g_strdup(
        g_error_matches(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_LOOP)
            ? "Alias loop"
            : "User unknown");
  return FALSE;
}

void pst_generation_notify_committed(PstGeneration *generation, const char *id,
                                     gboolean held) {
  if (generation->committed != NULL)
    generation->committed(id, held, generation->committed_data);
}
