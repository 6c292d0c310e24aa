/* config.h - the daemon's configuration, parsed once into structs.
 *
 * pst_config_load() reads the main keyfile and then every `conf.d/NAME.conf`
 * in the main file's directory, in name order; a later file's key replaces
 * an earlier one's.  The merged keyfile is kept (plugins read their own
 * `[plugin:NAME]` group from it).  Every key the core knows is validated
 * against a schema table: an unknown group or key, a value of the wrong
 * form, an unreadable file all fail with one message naming the file, the
 * line where it is known, the group and key, what was expected, and how to
 * fix it.  Nothing else in the daemon looks keys up by string.
 *
 * A PstConfig is immutable after loading and reference counted: a SIGHUP
 * loads a new one, new sessions take it, and sessions in progress keep a
 * reference to the one they started with.
 */
#pragma once

#include <gio/gio.h>

#include <postilion/plugin.h>

G_BEGIN_DECLS

#define PST_CONFIG_ERROR (pst_config_error_quark())
GQuark pst_config_error_quark(void);
typedef enum {
  PST_CONFIG_ERROR_READ,    /* file unreadable or not a keyfile */
  PST_CONFIG_ERROR_UNKNOWN, /* unknown group or key */
  PST_CONFIG_ERROR_VALUE,   /* a value of the wrong form or range */
  PST_CONFIG_ERROR_MISSING, /* a required key is absent */
} PstConfigError;

#define PST_CONFIG_DEFAULT_PATH "/etc/postilion/postilion.conf"

typedef enum {
  PST_LISTENER_MODE_PLAIN = 0,
  PST_LISTENER_MODE_STARTTLS,
  PST_LISTENER_MODE_TLS,
} PstListenerMode;

typedef struct {
  char *name;    /* owned: NAME of [listener:NAME] */
  char *address; /* owned: as written, "127.0.0.1:2525", "[::1]:25" */
  char *host;    /* owned: "127.0.0.1", "::1", "0.0.0.0", "::" */
  guint16 port;
  PstListenerMode mode;
  gboolean require_auth;
  gboolean require_tls;
  gboolean proxy_protocol; /* a HAProxy PROXY v1/v2 header comes first */
  /* AUTH PLAIN/LOGIN without TLS (an internal test network only) */
  gboolean allow_plaintext_auth;
  /* MAIL and RCPT need their angle brackets (FALSE: a bare address is
   * taken too, as Postfix's strict_rfc821_envelopes = no) */
  gboolean strict_envelopes;
  char **plugins; /* owned, nullable: this listener's chain; NULL = all */
} PstListenerConfig;

typedef struct {
  char *name;  /* owned: plugin name as listed in [plugins] load */
  char *group; /* owned: "plugin:NAME" */
  /* owned: what loaded it, "FILE:LINE [plugins] load" or
   * "FILE:LINE [plugin:NAME] enable" */
  char *origin;
  gboolean has_priority;
  gint priority;    /* [plugin:NAME] priority, when has_priority */
  guint timeout_ms; /* [plugin:NAME] timeout, default 30 s */
  /* CONTINUE, ACCEPT, REJECT or TEMPFAIL; default TEMPFAIL. */
  PstVerdict on_timeout;
  PstVerdict on_error; /* the same set and default */
} PstPluginConfig;

typedef struct {
  char *hostname;               /* owned: default g_get_host_name() */
  char **domains;               /* owned: lower case, may be empty */
  char *spool;                  /* owned: default /var/spool/postilion */
  char *user;                   /* owned, nullable: drop privileges to it */
  guint64 max_message_size;     /* octets, default 35 MiB (35*1024*1024) */
  guint max_recipients;         /* default 1000 */
  guint max_connections;        /* default 1000 */
  guint max_connections_per_ip; /* default 50 */
  guint max_errors;             /* default 10, then 421 and close */
  guint max_header_size;        /* octets, default 1 MiB */
  guint max_hops;               /* Received: fields, default 50 */
  guint timeout_command_ms;     /* idle between commands, default 300 s */
  guint timeout_data_ms;        /* idle inside DATA/BDAT, default 180 s */
  guint timeout_shutdown_ms;    /* SIGTERM grace for sessions, default 30 s */
  /* owned: text after "220 HOSTNAME ", default "ESMTP Postilion" */
  char *banner;
  /* owned, of GInetAddressMask*: clients allowed XCLIENT; empty = none */
  GPtrArray *xclient_hosts;
  /* look up the client's forward-confirmed reverse name, default TRUE */
  gboolean reverse_dns;
  /* AUTH failures (session-auth.c): the 535 waits failures x delay */
  guint auth_failure_delay_ms;   /* default 1 s */
  guint auth_max_failures;       /* per connection, then 421; default 3 */
  guint auth_failures_per_minute; /* per client address, then 454; 10 */
} PstServerConfig;

typedef enum {
  PST_DNSSEC_AUTO = 0, /* validate when the trust anchor file exists */
  PST_DNSSEC_YES,      /* validate; a missing trust anchor is an error */
  PST_DNSSEC_NO,
} PstDnssecMode;

typedef struct {
  char **nameservers;   /* owned, nullable: "ADDR" or "ADDR@PORT" forwarders;
                         * NULL = the system's /etc/resolv.conf */
  guint timeout_ms;     /* per lookup, default 5 s */
  PstDnssecMode dnssec; /* [dns] dnssec = auto|yes|no, default auto */
  char *trust_anchor;   /* owned: default /usr/share/dns/root.key */
  guint cache_size;     /* entries, default 10000; 0 disables the cache */
} PstDnsConfig;

/* [delivery] tls: how the SMTP client uses STARTTLS. */
typedef enum {
  PST_DELIVERY_TLS_MAY = 0, /* when offered; any certificate (default) */
  PST_DELIVERY_TLS_ENCRYPT, /* never in clear; any certificate */
  PST_DELIVERY_TLS_VERIFY,  /* never in clear; chain and name verified */
} PstDeliveryTls;

typedef struct {
  char *mailboxes;      /* owned, nullable: virtual mailboxes file */
  char *aliases;        /* owned, nullable: aliases file */
  char *maildir_root;   /* owned, nullable: DIR/DOMAIN/LOCALPART/ */
  gboolean system_users;
  char *lmtp;           /* owned, nullable: "unix:/path" or "host:port" */
  guint retry_first_ms; /* default 5 min */
  guint retry_max_ms;   /* default 4 h */
  guint max_lifetime_ms; /* default 5 days */
  guint delay_warning_ms; /* default 4 h; 0: no "delayed" DSNs */
  guint64 bounce_size_limit; /* octets, default 50k: larger messages come
                              * back in a DSN as their header only */
  guint max_parallel;   /* default 8 */
  /* Outbound SMTP. */
  guint smtp_port;             /* MX delivery's port, default 25 */
  char *relayhost;             /* owned, nullable: as written */
  char *relayhost_host;        /* owned, nullable: its host name or address */
  guint16 relayhost_port;      /* its port (smtp_port when not given) */
  gboolean relayhost_mx;       /* TRUE: MX of the name; FALSE: [host] */
  char *relayhost_credentials; /* owned, nullable: "[host]:port user:pass" file */
  PstDeliveryTls tls;          /* default may */
  GHashTable *tls_domains;     /* owned: lower-case domain -> PstDeliveryTls
                                * + 1, from [delivery:DOMAIN] tls */
  guint smtp_connect_timeout_ms; /* default 30 s */
  guint smtp_timeout_ms;         /* per reply and per write, default 5 min */
  guint destination_concurrency; /* connections per destination, default 20 */
} PstDeliveryConfig;

/* Parses a relayhost: "host" or "host:port" (MX of host), "[host]" or
 * "[host]:port" (that host, no MX lookup); host is a DNS name or a literal
 * address.  `port_r` is 0 when none is given.  Pure. */
gboolean pst_config_parse_relayhost(const char *text, char **host_r,
                                    guint16 *port_r, gboolean *mx_r);
/* The tls level for `domain` ([delivery:DOMAIN] tls, else [delivery]). */
PstDeliveryTls pst_config_delivery_tls(const PstDeliveryConfig *delivery,
                                       const char *domain);
/* TRUE when some setting requires TLS (encrypt or verify). */
gboolean pst_config_delivery_requires_tls(const PstDeliveryConfig *delivery);

/* TRUE when [delivery] names a way to deliver (a Maildir root, system
 * users or LMTP); without one, accepted mail stays queued. */
gboolean pst_config_delivery_enabled(const PstDeliveryConfig *delivery);

typedef struct {
  volatile gint ref_count;
  char *path;        /* owned: the main file */
  char **files;      /* owned: every file read, in order */
  GKeyFile *keyfile; /* owned: the merged keyfile */
  PstServerConfig server;
  GPtrArray *listeners; /* owned, of PstListenerConfig*, keyfile order */
  char **plugin_path;   /* owned: [plugins] path, may be empty */
  GPtrArray *plugins;   /* owned, of PstPluginConfig*, load order */
  /* owned: one message per plugin with enable = true that is not
   * installed, and so not loaded (a removed package's snippet) */
  char **plugin_notes;
  PstDnsConfig dns;
  PstDeliveryConfig delivery;
} PstConfig;

/* Loads and validates `path` and its conf.d drop-ins (DIR/conf.d/NAME.conf,
 * in byte order of NAME; names starting with '.' are skipped).  On failure
 * returns NULL and sets one PST_CONFIG_ERROR message, on one line:
 * "FILE:LINE: [GROUP] KEY = "VALUE": expected ...; fix ...".  The merged
 * keyfile is registered so that plugins' pst_config_get_* messages name
 * the file and line too, until the last unref. */
PstConfig *pst_config_load(const char *path, GError **error);
PstConfig *pst_config_ref(PstConfig *config);
void pst_config_unref(PstConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstConfig, pst_config_unref)

const PstListenerConfig *pst_config_find_listener(const PstConfig *config,
                                                  const char *name);
const PstPluginConfig *pst_config_find_plugin(const PstConfig *config,
                                              const char *name);
/* The shared object of plugin `name`: NAME.so, then libpostilion-NAME.so,
 * in each [plugins] path directory, then in the built-in plugin directory.
 * NULL when there is none; then `*tried_r` (nullable) lists the paths
 * tried.  Newly allocated. */
char *pst_config_find_plugin_file(const PstConfig *config, const char *name,
                                  char **tried_r);
/* Appends one line per plugin, "PROGRAM: plugin NAME: loaded by FILE:LINE
 * [GROUP] KEY", then the plugin notes: which file loaded what. */
void pst_config_describe_plugins(const PstConfig *config, const char *program,
                                 GString *out);
/* TRUE when `domain` (any case, trailing dot ignored) is in domains. */
gboolean pst_config_is_local_domain(const PstConfig *config,
                                    const char *domain);
/* TRUE when `address` (text, unmapped) is in [server] xclient_hosts. */
gboolean pst_config_is_xclient_host(const PstConfig *config,
                                    const char *address);
/* "file:line: " for a key, or "file: " when the line is unknown, for
 * error messages about a value found valid by the schema but refused
 * later (a port in use, a plugin not found).  Newly allocated. */
char *pst_config_describe_key(const PstConfig *config, const char *group,
                              const char *key);

G_END_DECLS
