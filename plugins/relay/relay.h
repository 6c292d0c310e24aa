/* relay.h - what the relay plugin's two files share.
 *
 * relay-config.c reads [plugin:relay] into a RelayConfig and holds the pure
 * checks (host names, the sender login map); relay.c is the policy: the
 * hooks, the DNS checks and the replies.
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

typedef struct {
  char *zone;         /* owned: "zen.spamhaus.org" */
  GInetAddress *code; /* owned, nullable: only this answer counts */
} RelayDnsbl;

/* Immutable after relay_config_load(); reference counted (g_atomic_rc_box):
 * every hook holds a reference. */
typedef struct {
  GPtrArray *networks;    /* owned, of GInetAddressMask* */
  GHashTable *login_map;  /* owned, nullable: lower-case address or
                           * "@domain" -> GPtrArray of owner names */
  char *login_map_path;   /* owned, nullable */
  GPtrArray *dnsbl;       /* owned, of RelayDnsbl* */
  gboolean helo_required;
  gboolean sender_login_required;
  gboolean reject_invalid_helo;
  gboolean reject_non_fqdn_helo;
  gboolean reject_non_fqdn_sender;
  gboolean reject_unknown_sender;
  gboolean reject_non_fqdn_recipient;
  gboolean reject_unknown_recipient;
  gboolean reject_relay_tricks;
} RelayConfig;

/* Reads and checks `group` of `keyfile`; NULL with `error` set. */
RelayConfig *relay_config_load(GKeyFile *keyfile, const char *group,
                               GError **error);
RelayConfig *relay_config_ref(RelayConfig *config);
void relay_config_unref(RelayConfig *config);

/* TRUE when `address` is in internal_networks. */
gboolean relay_config_is_internal(const RelayConfig *config,
                                  GInetAddress *address);
/* TRUE when `user` owns `sender` in the login map (exact address first,
 * then "@domain").  The map must be loaded. */
gboolean relay_login_owns(const RelayConfig *config, const char *sender,
                          const char *user);

/* RFC 1035 host name syntax (letters, digits, '-', '_'), not all numeric. */
gboolean relay_hostname_is_valid(const char *name);
/* A HELO argument Postfix's reject_invalid_helo_hostname accepts: a host
 * name, an address, or an address literal "[192.0.2.1]", "[IPv6:::1]". */
gboolean relay_helo_is_valid(const char *helo);
/* A HELO with a dot inside, or an address (literal). */
gboolean relay_helo_is_fqdn(const char *helo);

G_END_DECLS
