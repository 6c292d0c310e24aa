/* generation.h - one configuration generation and the services it carries.
 *
 * A PstGeneration is what a SIGHUP swaps: the configuration, the plugins
 * loaded for it (their hook chains and the service providers they
 * registered), the recipient tables, and the daemon's services the
 * session, the queue manager and delivery jobs use (the DNS resolver built
 * from its [dns] group, the connection cache, the commit callback that
 * tells the queue manager about a new message).  The providers are
 * taken from the plugin set once, when the generation is made: the TLS
 * transport, the SASL client (the SASL server side is per listener:
 * pst_plugin_set_find_sasl()) and the signer of the daemon's own mail.  It is
 * immutable once built and reference counted: whoever starts work on a
 * generation keeps a reference until the work ends, so a reload never changes
 * the rules, tables or providers under a session or a delivery in progress. A
 * component gets its generation as an argument or a field set at construction;
 * nothing looks services up in process globals.
 *
 * Built by the daemon (core/server/daemon.c) at start and on each
 * successful reload.  Main thread, except the getters, which any thread
 * holding a reference may call.  The last unref must happen on the main
 * thread (it may unload plugins).
 */
#pragma once

#include <postilion/plugin.h>
#include <postilion/sasl.h>

#include "config/config.h"

G_BEGIN_DECLS

typedef struct _PstGeneration PstGeneration;
typedef struct _PstPluginSet PstPluginSet;         /* hooks/hooks.h */
typedef struct _PstDeliverTables PstDeliverTables; /* tables/tables.h */
typedef struct _PstTransportService PstTransportService; /* transport.h */
typedef struct _PstSmtpCache PstSmtpCache; /* deliver/delivery-transport.h */
typedef struct _PstDnsResolver PstDnsResolver; /* dns/dns.h */

/* Told on the main thread when a session committed message `id`: into
 * hold/ when `held`, else into queue/.  (A flag, not the spool's queue
 * enum: the queue manager includes the generation, not the other way.) */
typedef void (*PstCommittedFunc)(const char *id, gboolean held,
                                 gpointer user_data);

typedef struct {
  PstConfig *config;        /* a reference is taken */
  PstPluginSet *plugins;    /* nullable; a reference is taken */
  PstDeliverTables *tables; /* nullable; a reference is taken */
  /* The resolver of this configuration's [dns] group (nullable: lookups
   * go to the default resolver); a hold is taken. */
  PstDnsResolver *dns;
  /* The outbound connection cache (nullable: no outbound SMTP), shared by
   * every generation and freed by its maker after the last delivery. */
  PstSmtpCache *connection_cache;
  /* The commit callback (nullable); `committed_data` must outlive every
   * generation made with it (the daemon's queue manager). */
  PstCommittedFunc committed;
  gpointer committed_data;
} PstGenerationSetup;

PstGeneration *pst_generation_new(const PstGenerationSetup *setup);
PstGeneration *pst_generation_ref(PstGeneration *generation);
void pst_generation_unref(PstGeneration *generation);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstGeneration, pst_generation_unref)

/* Borrowed: valid while the caller holds its reference. */
PstConfig *pst_generation_get_config(PstGeneration *generation);
/* Nullable (a generation without plugins: tests). */
PstPluginSet *pst_generation_get_plugins(PstGeneration *generation);
/* The recipient tables (mailboxes, aliases, relayhost credentials),
 * nullable when none were loaded. */
PstDeliverTables *pst_generation_get_tables(PstGeneration *generation);

/* The TLS provider of this generation's plugins, nullable.  Borrowed. */
PstTransportService *pst_generation_get_transport(PstGeneration *generation);
/* The plugin that provides the SASL client side (pst_sasl_client_open()),
 * nullable.  Borrowed. */
PstPlugin *pst_generation_get_sasl_client(PstGeneration *generation);
/* A SASL client exchange (<postilion/sasl.h>) through this generation's
 * provider; NULL with G_IO_ERROR_NOT_SUPPORTED when there is none. */
PstSaslClient *pst_generation_open_sasl_client(
    PstGeneration *generation, const char *server_name, const char *user,
    const char *password, gboolean encrypted, GError **error);
/* A DSN or delay notice with the header fields this generation's signer
 * adds (pst_signer_sign()); `message` itself without a signer.  Any
 * thread holding a reference. */
GBytes *pst_generation_sign(PstGeneration *generation, GBytes *message);

/* The DNS resolver sessions and jobs of this generation look names up on
 * (pst_dns_lookup_on()), nullable: the default one.  Borrowed. */
PstDnsResolver *pst_generation_get_dns(PstGeneration *generation);

/* The outbound SMTP connection cache, nullable.  Borrowed. */
PstSmtpCache *pst_generation_get_connection_cache(PstGeneration *generation);

/* For RCPT: TRUE when `address` (in one of our domains) resolves to a
 * mailbox in this generation's tables, or when delivery is not configured
 * (then every local part is accepted and kept queued).  On FALSE,
 * `reason_r` is "User unknown" or "Alias loop". */
gboolean pst_generation_recipient_exists(PstGeneration *generation,
                                         const char *address, char **reason_r);

/* Calls the commit callback, if any.  Main thread. */
void pst_generation_notify_committed(PstGeneration *generation, const char *id,
                                     gboolean held);

G_END_DECLS
