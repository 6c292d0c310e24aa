/* config-schema.c - every group and key the core knows, as a table.
 *
 * pst_config_groups lists the kinds of group ("server", "listener:*" ...)
 * and pst_config_keys one row per key: its type, its default in the key's
 * own syntax, its range and a one-line description.  A later feature adds a
 * group or a key by adding rows here (and documents them in
 * doc/postilion.conf.5 and etc/postilion.conf; test-config checks that
 * every row appears in both).
 *
 * pst_config_schema_check() walks the merged keyfile: an unknown group, an
 * unknown key of a closed group, or a value not of its key's type fails
 * with one message naming the file, line, group, key and what is expected.
 * Open groups ([plugin:NAME]) belong to their plugin, which checks its keys
 * with pst_config_check_keys(); the core only checks the types of the keys
 * it reads itself in every [plugin:NAME] group (enable, priority, timeout,
 * on_timeout, on_error).  Groups [plugin:NAME:MORE] are the plugin's alone.
 *
 * The pst_config_schema_get_* readers give config.c a key's value with the
 * default and range taken from its row, so no default is written twice.
 */
#include <string.h>

#include "config/config-private.h"

static const char *const listener_modes[] = {"plain", "starttls", "tls", NULL};
/* In PstVerdict order: CONTINUE, ACCEPT, REJECT, TEMPFAIL. */
static const char *const plugin_verdicts[] = {"continue", "accept", "reject",
                                              "tempfail", NULL};
static const char *const dnssec_modes[] = {"auto", "yes", "no", NULL};
/* In PstDeliveryTls order. */
static const char *const tls_levels[] = {"may", "encrypt", "verify", NULL};

#define SECOND G_GINT64_CONSTANT(1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define KIB G_GINT64_CONSTANT(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

const PstConfigGroup pst_config_groups[] = {
    {"server", "[server]", FALSE, "the SMTP server: names, spool, limits"},
    {"listener:*", "[listener:NAME]", FALSE, "one listening socket"},
    {"plugins", "[plugins]", FALSE, "which plugins to load, from where"},
    {"plugin:*", "[plugin:NAME]", TRUE, "one plugin's settings"},
    {"dns", "[dns]", FALSE, "the resolver used by the core and plugins"},
    {"delivery", "[delivery]", FALSE,
     "delivery: mailboxes, aliases, Maildir, LMTP, SMTP out, retries"},
    {"delivery:*", "[delivery:DOMAIN]", FALSE,
     "outbound SMTP settings for one destination domain"},
    {NULL, NULL, FALSE, NULL},
};

const PstConfigKey pst_config_keys[] = {
    /* [server] */
    {"server", "hostname", PST_CONFIG_TYPE_STRING, NULL,
     "the system's host name", 0, 0, NULL,
     "this host's name, in the greeting and in Received: headers"},
    {"server", "domains", PST_CONFIG_TYPE_LIST, "", "none", 0, 0, NULL,
     "the domains we receive mail for, ';'-separated"},
    {"server", "spool", PST_CONFIG_TYPE_STRING, "/var/spool/postilion", NULL, 0,
     0, NULL, "the queue directory, an absolute path"},
    {"server", "user", PST_CONFIG_TYPE_STRING, NULL,
     "none: keep the user postiliond runs as", 0, 0, NULL,
     "when started as root, drop privileges to this user"},
    {"server", "max_message_size", PST_CONFIG_TYPE_SIZE, "35M", NULL, KIB,
     4 * GIB, NULL, "largest message accepted, in octets"},
    {"server", "max_recipients", PST_CONFIG_TYPE_INT, "1000", NULL, 1, 100000,
     NULL, "most recipients in one message"},
    {"server", "max_connections", PST_CONFIG_TYPE_INT, "1000", NULL, 1, 1000000,
     NULL, "most client connections at once"},
    {"server", "max_connections_per_ip", PST_CONFIG_TYPE_INT, "50", NULL, 1,
     1000000, NULL, "most connections at once from one client address"},
    {"server", "max_errors", PST_CONFIG_TYPE_INT, "10", NULL, 1, 1000, NULL,
     "errors in one session before it is closed with 421"},
    {"server", "max_hops", PST_CONFIG_TYPE_INT, "50", NULL, 1, 1000, NULL,
     "Received: fields a message may carry before it is refused as a loop"},
    {"server", "max_header_size", PST_CONFIG_TYPE_SIZE, "1M", NULL, KIB, GIB,
     NULL, "largest message header, in octets"},
    {"server", "timeout_command", PST_CONFIG_TYPE_DURATION, "5m", NULL, SECOND,
     DAY, NULL, "idle time allowed between commands"},
    {"server", "timeout_data", PST_CONFIG_TYPE_DURATION, "3m", NULL, SECOND,
     DAY, NULL, "idle time allowed inside DATA or BDAT"},
    {"server", "timeout_shutdown", PST_CONFIG_TYPE_DURATION, "30s", NULL, 0,
     HOUR, NULL, "on SIGTERM, how long sessions may finish"},
    {"server", "banner", PST_CONFIG_TYPE_STRING, "ESMTP Postilion", NULL, 0, 0,
     NULL, "the greeting's text after \"220 HOSTNAME \""},
    {"server", "xclient_hosts", PST_CONFIG_TYPE_LIST, "", "none", 0, 0, NULL,
     "networks (CIDR) allowed to send XCLIENT, such as a mail proxy"},
    {"server", "reverse_dns", PST_CONFIG_TYPE_BOOLEAN, "true", NULL, 0, 0,
     NULL,
     "look up the client's verified reverse name (PTR, then A/AAAA) before "
     "the greeting"},
    {"server", "auth_failure_delay", PST_CONFIG_TYPE_DURATION, "1s", NULL, 0,
     MINUTE, NULL, "a failed AUTH is answered after this times the failures"},
    {"server", "auth_max_failures", PST_CONFIG_TYPE_INT, "3", NULL, 1, 100,
     NULL, "failed AUTH attempts in one connection before 421 and close"},
    {"server", "auth_failures_per_minute", PST_CONFIG_TYPE_INT, "10", NULL, 1,
     1000000, NULL, "failed AUTHs per client address and minute before 454"},

    /* [listener:NAME] */
    {"listener:*", "address", PST_CONFIG_TYPE_STRING, NULL, NULL, 0, 0, NULL,
     "literal IP address and port: 0.0.0.0:25, [::1]:2525 (required)"},
    {"listener:*", "mode", PST_CONFIG_TYPE_CHOICE, "plain", NULL, 0, 0,
     listener_modes, "plain, starttls (offered) or tls (implicit)"},
    {"listener:*", "require_auth", PST_CONFIG_TYPE_BOOLEAN, "false", NULL, 0, 0,
     NULL, "refuse MAIL until the client has authenticated"},
    {"listener:*", "require_tls", PST_CONFIG_TYPE_BOOLEAN, "false", NULL, 0, 0,
     NULL, "refuse MAIL until the connection is encrypted"},
    {"listener:*", "plugins", PST_CONFIG_TYPE_LIST, NULL, "all loaded plugins",
     0, 0, NULL, "this listener's plugins, from [plugins] load"},
    {"listener:*", "proxy_protocol", PST_CONFIG_TYPE_BOOLEAN, "false", NULL, 0,
     0, NULL, "connections start with a HAProxy PROXY v1/v2 header"},
    {"listener:*", "allow_plaintext_auth", PST_CONFIG_TYPE_BOOLEAN, "false",
     NULL, 0, 0, NULL, "offer AUTH PLAIN/LOGIN without TLS (test networks)"},
    {"listener:*", "strict_envelopes", PST_CONFIG_TYPE_BOOLEAN, "true", NULL, 0,
     0, NULL,
     "MAIL FROM and RCPT TO need <>; false: a bare address is taken too"},

    /* [plugins] */
    {"plugins", "path", PST_CONFIG_TYPE_LIST, "",
     "none: only the built-in plugin directory", 0, 0, NULL,
     "directories searched for plugins before the built-in one"},
    {"plugins", "load", PST_CONFIG_TYPE_LIST, "", "none", 0, 0, NULL,
     "plugins to load, in order"},

    /* [plugin:NAME]: the keys the core reads for every plugin. */
    {"plugin:*", "enable", PST_CONFIG_TYPE_BOOLEAN, "false", NULL, 0, 0, NULL,
     "load the plugin when it is installed, after those in [plugins] load"},
    {"plugin:*", "priority", PST_CONFIG_TYPE_INT, NULL,
     "the priority the plugin registers", -1000000, 1000000, NULL,
     "overrides the priority of all the plugin's hooks"},
    {"plugin:*", "timeout", PST_CONFIG_TYPE_DURATION, "30s", NULL, 10, HOUR,
     NULL, "deadline of each hook call"},
    {"plugin:*", "on_timeout", PST_CONFIG_TYPE_CHOICE, "tempfail", NULL, 0, 0,
     plugin_verdicts, "verdict when a call misses its deadline"},
    {"plugin:*", "on_error", PST_CONFIG_TYPE_CHOICE, "tempfail", NULL, 0, 0,
     plugin_verdicts, "verdict when a call fails"},

    /* [dns] */
    {"dns", "nameservers", PST_CONFIG_TYPE_LIST, NULL,
     "the system's resolvers from /etc/resolv.conf", 0, 0, NULL,
     "forward queries to these: ADDR or ADDR@PORT"},
    {"dns", "timeout", PST_CONFIG_TYPE_DURATION, "5s", NULL, 100, 5 * MINUTE,
     NULL, "deadline of each lookup"},
    {"dns", "dnssec", PST_CONFIG_TYPE_CHOICE, "auto", NULL, 0, 0, dnssec_modes,
     "validate answers: auto, yes or no"},
    {"dns", "trust_anchor", PST_CONFIG_TYPE_STRING, "/usr/share/dns/root.key",
     NULL, 0, 0, NULL, "the DNSSEC root trust anchor file"},
    {"dns", "cache_size", PST_CONFIG_TYPE_INT, "10000", NULL, 0, 10000000, NULL,
     "answers kept in the cache; 0 disables it"},

    /* [delivery] */
    {"delivery", "mailboxes", PST_CONFIG_TYPE_STRING, NULL, "none", 0, 0, NULL,
     "file of virtual mailboxes: one address or *@domain per line"},
    {"delivery", "aliases", PST_CONFIG_TYPE_STRING, NULL, "none", 0, 0, NULL,
     "aliases file in the /etc/aliases format"},
    {"delivery", "maildir_root", PST_CONFIG_TYPE_STRING, NULL, "none", 0, 0,
     NULL, "virtual mailboxes are Maildirs DIR/DOMAIN/LOCALPART/"},
    {"delivery", "system_users", PST_CONFIG_TYPE_BOOLEAN, "false", NULL, 0, 0,
     NULL, "local parts naming system users are mailboxes (~/Maildir/)"},
    {"delivery", "lmtp", PST_CONFIG_TYPE_STRING, NULL, "none", 0, 0, NULL,
     "deliver over LMTP instead: unix:/PATH or ADDRESS:PORT"},
    {"delivery", "retry_first", PST_CONFIG_TYPE_DURATION, "5m", NULL, 100,
     DAY, NULL, "delay before the first retry; doubled after each"},
    {"delivery", "retry_max", PST_CONFIG_TYPE_DURATION, "4h", NULL, 100, DAY,
     NULL, "longest delay between two attempts"},
    {"delivery", "max_lifetime", PST_CONFIG_TYPE_DURATION, "5d", NULL, SECOND,
     30 * DAY, NULL, "how long a temporary failure is retried before bouncing"},
    {"delivery", "delay_warning", PST_CONFIG_TYPE_DURATION, "4h", NULL, 0,
     30 * DAY, NULL,
     "a \"delayed\" DSN after a recipient has waited this long; 0: never"},
    {"delivery", "bounce_size_limit", PST_CONFIG_TYPE_SIZE, "50k", NULL, KIB,
     4 * GIB, NULL,
     "a failure DSN returns a larger message as its header only"},
    {"delivery", "max_parallel", PST_CONFIG_TYPE_INT, "100", NULL, 1, 256, NULL,
     "deliveries run at once"},
    {"delivery", "smtp_port", PST_CONFIG_TYPE_INT, "25", NULL, 1, 65535, NULL,
     "port of the MX hosts that outbound SMTP connects to"},
    {"delivery", "relayhost", PST_CONFIG_TYPE_STRING, NULL,
     "none: deliver to each domain's MX hosts", 0, 0, NULL,
     "send all outbound mail via host (its MX) or [host]:port (no MX)"},
    {"delivery", "relayhost_credentials", PST_CONFIG_TYPE_STRING, NULL, "none",
     0, 0, NULL, "SASL logins for relayhosts: [host]:port user:password lines"},
    {"delivery", "tls", PST_CONFIG_TYPE_CHOICE, "may", NULL, 0, 0, tls_levels,
     "outbound STARTTLS: may (opportunistic), encrypt, verify"},
    {"delivery", "smtp_connect_timeout", PST_CONFIG_TYPE_DURATION, "30s", NULL,
     100, 10 * MINUTE, NULL, "deadline to connect to an SMTP server"},
    {"delivery", "smtp_timeout", PST_CONFIG_TYPE_DURATION, "5m", NULL, 100,
     HOUR, NULL, "deadline of each SMTP reply and each write"},
    {"delivery", "destination_concurrency", PST_CONFIG_TYPE_INT, "20", NULL, 1,
     1000, NULL, "connections at once to one destination (domain or relayhost)"},

    /* [delivery:DOMAIN] */
    {"delivery:*", "tls", PST_CONFIG_TYPE_CHOICE, "may", "the [delivery] tls",
     0, 0, tls_levels, "outbound STARTTLS level for this domain"},

    {NULL, NULL, 0, NULL, NULL, 0, 0, NULL, NULL},
};

/* TRUE when the concrete group name `group` is of kind `pattern`. */
static gboolean group_matches(const char *pattern, const char *group) {
  gsize length = strlen(pattern);
  if (length > 0 && pattern[length - 1] == '*')
    return strncmp(pattern, group, length - 1) == 0;
  return strcmp(pattern, group) == 0;
}

static const PstConfigGroup *find_group(const char *group) {
  for (const PstConfigGroup *kind = pst_config_groups; kind->pattern; kind++)
    if (group_matches(kind->pattern, group))
      return kind;
  return NULL;
}

const PstConfigKey *pst_config_schema_find(const char *group, const char *key) {
  const PstConfigGroup *kind = find_group(group);
  if (kind == NULL)
    return NULL;
  for (const PstConfigKey *row = pst_config_keys; row->group; row++)
    if (strcmp(row->group, kind->pattern) == 0 && strcmp(row->key, key) == 0)
      return row;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Readers                                                             */
/* ------------------------------------------------------------------ */

static const PstConfigKey *row_of(const char *group, const char *key,
                                  PstConfigType type) {
  const PstConfigKey *row = pst_config_schema_find(group, key);
  g_assert(row != NULL && row->type == type);
  return row;
}

gboolean pst_config_schema_get_string(GKeyFile *keyfile,
                                      const PstConfigOrigins *origins,
                                      const char *group, const char *key,
                                      char **value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_STRING);
  return pst_config_read_string(keyfile, origins, group, key, row->fallback,
                                row->shown_default, value_r, error);
}

gboolean pst_config_schema_get_boolean(GKeyFile *keyfile,
                                       const PstConfigOrigins *origins,
                                       const char *group, const char *key,
                                       gboolean *value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_BOOLEAN);
  gboolean fallback = FALSE;
  g_assert(pst_config_parse_boolean(row->fallback, &fallback));
  return pst_config_read_boolean(keyfile, origins, group, key, fallback,
                                 value_r, error);
}

gboolean pst_config_schema_get_int(GKeyFile *keyfile,
                                   const PstConfigOrigins *origins,
                                   const char *group, const char *key,
                                   gint64 *value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_INT);
  gint64 fallback = 0;
  if (row->fallback != NULL)
    g_assert(pst_config_parse_int(row->fallback, &fallback));
  return pst_config_read_int(keyfile, origins, group, key, fallback, row->min,
                             row->max, row->shown_default, value_r, error);
}

gboolean pst_config_schema_get_ms(GKeyFile *keyfile,
                                  const PstConfigOrigins *origins,
                                  const char *group, const char *key,
                                  guint *value_ms_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_DURATION);
  guint64 fallback = 0, value = 0;
  g_assert(pst_config_parse_duration(row->fallback, &fallback));
  /* Every duration row's maximum fits a guint (49 days). */
  g_assert(row->max <= G_MAXUINT);
  if (!pst_config_read_duration(keyfile, origins, group, key, fallback,
                                row->min, row->max, &value, error))
    return FALSE;
  *value_ms_r = (guint)value;
  return TRUE;
}

gboolean pst_config_schema_get_size(GKeyFile *keyfile,
                                    const PstConfigOrigins *origins,
                                    const char *group, const char *key,
                                    guint64 *value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_SIZE);
  guint64 fallback = 0;
  g_assert(pst_config_parse_size(row->fallback, &fallback));
  return pst_config_read_size(keyfile, origins, group, key, fallback, row->min,
                              row->max, value_r, error);
}

gboolean pst_config_schema_get_choice(GKeyFile *keyfile,
                                      const PstConfigOrigins *origins,
                                      const char *group, const char *key,
                                      guint *value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_CHOICE);
  guint fallback = 0;
  while (row->choices[fallback] != NULL &&
         g_strcmp0(row->choices[fallback], row->fallback) != 0)
    fallback++;
  g_assert(row->choices[fallback] != NULL);
  return pst_config_read_choice(keyfile, origins, group, key, row->choices,
                                fallback, value_r, error);
}

gboolean pst_config_schema_get_list(GKeyFile *keyfile,
                                    const PstConfigOrigins *origins,
                                    const char *group, const char *key,
                                    char ***value_r, GError **error) {
  const PstConfigKey *row = row_of(group, key, PST_CONFIG_TYPE_LIST);
  const char *shown = row->shown_default ? row->shown_default : row->fallback;
  if (!pst_config_read_list(keyfile, origins, group, key, shown, value_r,
                            error))
    return FALSE;
  if (*value_r == NULL && row->fallback != NULL) {
    g_autofree char *unused = NULL;
    *value_r = pst_config_parse_list(row->fallback, ';', &unused);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Checking a keyfile                                                  */
/* ------------------------------------------------------------------ */

/* Reads a present key with its row's reader, to check its type. */
static gboolean check_value(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, const PstConfigKey *row,
                            GError **error) {
  g_autofree char *text = NULL;
  g_auto(GStrv) list = NULL;
  gboolean flag = FALSE;
  gint64 number = 0;
  guint ms = 0, index = 0;
  guint64 size = 0;
  switch (row->type) {
  case PST_CONFIG_TYPE_STRING:
    return pst_config_schema_get_string(keyfile, origins, group, row->key,
                                        &text, error);
  case PST_CONFIG_TYPE_BOOLEAN:
    return pst_config_schema_get_boolean(keyfile, origins, group, row->key,
                                         &flag, error);
  case PST_CONFIG_TYPE_INT:
    return pst_config_schema_get_int(keyfile, origins, group, row->key, &number,
                                     error);
  case PST_CONFIG_TYPE_DURATION:
    return pst_config_schema_get_ms(keyfile, origins, group, row->key, &ms,
                                    error);
  case PST_CONFIG_TYPE_SIZE:
    return pst_config_schema_get_size(keyfile, origins, group, row->key, &size,
                                      error);
  case PST_CONFIG_TYPE_LIST:
    return pst_config_schema_get_list(keyfile, origins, group, row->key, &list,
                                      error);
  case PST_CONFIG_TYPE_CHOICE:
    return pst_config_schema_get_choice(keyfile, origins, group, row->key,
                                        &index, error);
  }
  g_assert_not_reached();
}

/* The names of `kind`'s keys, NULL-terminated (strings not owned). */
static GPtrArray *key_names(const PstConfigGroup *kind) {
  GPtrArray *names = g_ptr_array_new_null_terminated(16, NULL, TRUE);
  for (const PstConfigKey *row = pst_config_keys; row->group; row++)
    if (strcmp(row->group, kind->pattern) == 0)
      g_ptr_array_add(names, (gpointer)row->key);
  return names;
}

static void set_unknown_group_error(GError **error,
                                    const PstConfigOrigins *origins,
                                    const char *group) {
  g_autoptr(GPtrArray) candidates =
      g_ptr_array_new_null_terminated(8, g_free, TRUE);
  g_autoptr(GString) shown = g_string_new(NULL);
  const char *colon = strchr(group, ':');
  for (const PstConfigGroup *kind = pst_config_groups; kind->pattern; kind++) {
    gsize length = strlen(kind->pattern);
    g_string_append_printf(shown, "%s%s", shown->len ? ", " : "", kind->shown);
    /* "[listner:smtp]" is near "listener:smtp", not "listener:*". */
    if (kind->pattern[length - 1] == '*')
      g_ptr_array_add(candidates,
                      g_strdup_printf("%.*s%s", (int)(length - 2),
                                      kind->pattern, colon ? colon : ":NAME"));
    else
      g_ptr_array_add(candidates, g_strdup(kind->pattern));
  }
  const char *near =
      pst_config_suggest(group, (const char *const *)candidates->pdata);
  g_autofree char *hint =
      near ? g_strdup_printf(" (did you mean [%s]?)", near) : g_strdup("");
  g_autofree char *where = pst_config_origins_describe(origins, group, NULL);
  g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_UNKNOWN,
              "%s[%s]: unknown group%s; expected one of: %s; fix the name or "
              "remove the group",
              where, group, hint, shown->str);
}

/* A [plugin:NAME] group: only the core's four keys are typed here. */
static gboolean check_plugin_group(GKeyFile *keyfile,
                                   const PstConfigOrigins *origins,
                                   const char *group, GError **error) {
  if (strchr(group + strlen("plugin:"), ':') != NULL)
    return TRUE;
  for (const PstConfigKey *row = pst_config_keys; row->group; row++)
    if (strcmp(row->group, "plugin:*") == 0 &&
        !check_value(keyfile, origins, group, row, error))
      return FALSE;
  return TRUE;
}

static gboolean check_group(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, GError **error) {
  const PstConfigGroup *kind = find_group(group);
  if (kind == NULL) {
    set_unknown_group_error(error, origins, group);
    return FALSE;
  }
  if (kind->open)
    return check_plugin_group(keyfile, origins, group, error);
  g_autoptr(GPtrArray) names = key_names(kind);
  if (!pst_config_check_group_keys(keyfile, origins, group,
                                   (const char *const *)names->pdata, NULL,
                                   error))
    return FALSE;
  for (const PstConfigKey *row = pst_config_keys; row->group; row++)
    if (strcmp(row->group, kind->pattern) == 0 &&
        !check_value(keyfile, origins, group, row, error))
      return FALSE;
  return TRUE;
}

gboolean pst_config_schema_check(GKeyFile *keyfile,
                                 const PstConfigOrigins *origins,
                                 GError **error) {
  g_auto(GStrv) groups = g_key_file_get_groups(keyfile, NULL);
  for (guint i = 0; groups[i] != NULL; i++)
    if (!check_group(keyfile, origins, groups[i], error))
      return FALSE;
  return TRUE;
}
