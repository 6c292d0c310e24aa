/* tls.h - what the tls plugin's files share.
 *
 * tls.c          the descriptor, init/reload/shutdown, ticket key rotation
 * tls-context.c  a configuration turned into GnuTLS objects: settings,
 *                certificates (checked: readable, PEM, not expired, key
 *                matching), SNI table, priorities, client trust
 * tls-connection.c  one connection: the PstTransportProvider functions
 *
 * Ownership: the plugin holds the current TlsContext; each connection
 * holds a reference to the context it started with, so a reload (new
 * certificates) never changes a connection in progress.
 */
#pragma once

#include <gnutls/gnutls.h>

#include <postilion/plugin.h>

G_BEGIN_DECLS

typedef struct {
  char *name;                                   /* owned: lower case, or "" */
  gnutls_certificate_credentials_t credentials; /* owned */
  GPtrArray *names; /* owned, of char*: the leaf's DNS names */
} TlsCertificate;

typedef struct {
  gint ref_count;
  /* Server side. */
  GPtrArray *certificates; /* owned, of TlsCertificate*; [0] default */
  GHashTable *by_name;     /* name -> TlsCertificate* (in certificates):
                            * configured names, then DNS names */
  gnutls_priority_t server_priority; /* owned */
  guint handshake_timeout_ms;
  gboolean session_tickets;
  guint64 ticket_rotation_ms;
  gboolean request_client_certificate;
  /* Client side (outbound). */
  gnutls_certificate_credentials_t client_credentials; /* owned */
  gnutls_priority_t client_priority;                   /* owned */
} TlsContext;

/* The plugin instance (pst_plugin_set_data). */
typedef struct {
  PstPlugin *plugin;         /* not owned */
  TlsContext *context;       /* owned reference: what new connections use */
  gnutls_datum_t ticket_key; /* owned (gnutls_free): the current key */
  guint rotation_source;     /* the key rotation timer */
  guint64 rotation_ms;       /* its period */
} TlsPlugin;

/* tls-context.c */
/* Reads `group` and its [GROUP:DOMAIN] groups and loads every file named
 * there.  NULL with an error naming the key and the file on any problem. */
TlsContext *tls_context_new(GKeyFile *config, const char *group,
                            GError **error);
TlsContext *tls_context_ref(TlsContext *context);
void tls_context_unref(TlsContext *context);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TlsContext, tls_context_unref)
/* The certificate for an SNI name (lower case), or NULL: exact match,
 * then a "*.parent" wildcard entry; configured names first, then the
 * certificates' own DNS names. */
TlsCertificate *tls_context_find(TlsContext *context, const char *name);

/* tls-connection.c */
extern const PstTransportProvider tls_provider;

G_END_DECLS
