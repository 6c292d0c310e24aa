/* config-private.h - what the files of core/config share, nothing else.
 *
 * The parts, by source file:
 * - origins (config-origin.c): where each group and key of a merged
 *   keyfile came from (file and line), and a registry from a GKeyFile to
 *   its origins so the SDK helpers can name the file and line too;
 * - values (config-values.c): the pure parsers of durations, sizes,
 *   booleans, numbers and lists, the message builder every value error
 *   goes through, and the typed readers the SDK helpers wrap;
 * - key names (config-sdk.c): unknown-key checks with suggestions, beside
 *   the exported SDK helpers themselves;
 * - schema (config-schema.c): the table of groups and keys;
 * - sections (config-server.c, config-listener.c): the rules a type cannot
 *   say, filling the PstConfig structs;
 * - loading (config-load.c): reading the main file and conf.d into one
 *   keyfile with its origins.
 * config.c runs these in order and owns the PstConfig's lifetime.
 */
#pragma once

#include <glib.h>

#include "config/config.h"

G_BEGIN_DECLS

/* ------------------------------------------------------------------ */
/* Origins                                                             */
/* ------------------------------------------------------------------ */

/* Reference counted (g_atomic_rc_box); immutable once registered. */
typedef struct _PstConfigOrigins PstConfigOrigins;

PstConfigOrigins *pst_config_origins_new(void);
PstConfigOrigins *pst_config_origins_ref(PstConfigOrigins *origins);
void pst_config_origins_unref(PstConfigOrigins *origins);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstConfigOrigins, pst_config_origins_unref)

/* Adds a file to the list; returns its index for the setters below. */
guint pst_config_origins_add_file(PstConfigOrigins *origins, const char *path);
/* The files added, in order (owned by `origins`). */
const char *const *
pst_config_origins_get_files(const PstConfigOrigins *origins);
/* A key's origin: a later call for the same key replaces it (override). */
void pst_config_origins_set_key(PstConfigOrigins *origins, guint file,
                                const char *group, const char *key, guint line);
/* A group's origin: the first header seen is kept. */
void pst_config_origins_set_group(PstConfigOrigins *origins, guint file,
                                  const char *group, guint line);
/* "file:line: " for the key (or the group when `key` is NULL or has no
 * origin), "file: " for the main file when neither is known, "" when
 * `origins` is NULL.  Newly allocated. */
/* The file index and line that set `key` of `group` last; FALSE when
 * nothing did (a default). */
gboolean pst_config_origins_locate(const PstConfigOrigins *origins,
                                   const char *group, const char *key,
                                   guint *file_r, guint *line_r);
char *pst_config_origins_describe(const PstConfigOrigins *origins,
                                  const char *group, const char *key);

/* Links `keyfile` to `origins` (a reference is taken) until
 * pst_config_origins_unregister(); thread-safe. */
void pst_config_origins_register(GKeyFile *keyfile, PstConfigOrigins *origins);
void pst_config_origins_unregister(GKeyFile *keyfile);
/* A new reference to the origins of `keyfile`, or NULL. */
PstConfigOrigins *pst_config_origins_lookup(GKeyFile *keyfile);

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

/* Pure parsers: leading and trailing whitespace is ignored; FALSE when the
 * text is not of the form (nothing is written then). */
gboolean pst_config_parse_boolean(const char *text, gboolean *value_r);
gboolean pst_config_parse_int(const char *text, gint64 *value_r);
gboolean pst_config_parse_duration(const char *text, guint64 *value_ms_r);
gboolean pst_config_parse_size(const char *text, guint64 *value_r);
/* Keyfile escapes (\s \n \t \r \\ \;) undone.  With `separator` ';' the
 * value is split on unescaped ';', each item trimmed, empty items dropped;
 * with '\0' the result has one item.  NULL on a bad escape, with the
 * offending escape in `*bad_escape_r` (two characters, owned by caller). */
char **pst_config_parse_list(const char *raw, char separator,
                             char **bad_escape_r);

/* "500ms", "30s", "5m", "2h", "1d": the largest unit that is exact. */
char *pst_config_format_duration(guint64 ms);
/* "1000", "10k", "35M", "1G": the largest power of 1024 that is exact. */
char *pst_config_format_size(guint64 size);

/* Sets the one message every bad value gets:
 * `LOCATION[GROUP] KEY = "RAW": EXPECTED; fix the value or remove the key to
 * use the default (SHOWN_DEFAULT)` (", fix the value" alone when
 * `shown_default` is NULL). */
void pst_config_set_value_error(GError **error, const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *raw, const char *expected,
                                const char *shown_default);

/* A key's raw text, or NULL (and TRUE) when the group or key is absent. */
gboolean pst_config_get_raw(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, const char *key, char **raw_r,
                            GError **error);

/* The typed readers behind the SDK helpers, with a range and the origins
 * for the message.  An absent key yields the fallback.  `shown_default`
 * (nullable) replaces the formatted fallback in messages. */
gboolean pst_config_read_string(GKeyFile *keyfile,
                                const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *fallback, const char *shown_default,
                                char **value_r, GError **error);
gboolean pst_config_read_boolean(GKeyFile *keyfile,
                                 const PstConfigOrigins *origins,
                                 const char *group, const char *key,
                                 gboolean fallback, gboolean *value_r,
                                 GError **error);
gboolean pst_config_read_int(GKeyFile *keyfile, const PstConfigOrigins *origins,
                             const char *group, const char *key,
                             gint64 fallback, gint64 min, gint64 max,
                             const char *shown_default, gint64 *value_r,
                             GError **error);
gboolean pst_config_read_duration(GKeyFile *keyfile,
                                  const PstConfigOrigins *origins,
                                  const char *group, const char *key,
                                  guint64 fallback_ms, guint64 min_ms,
                                  guint64 max_ms, guint64 *value_ms_r,
                                  GError **error);
gboolean pst_config_read_size(GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              guint64 fallback, guint64 min, guint64 max,
                              guint64 *value_r, GError **error);
/* One of `choices` (compared case-insensitively); the index. */
gboolean pst_config_read_choice(GKeyFile *keyfile,
                                const PstConfigOrigins *origins,
                                const char *group, const char *key,
                                const char *const *choices, guint fallback,
                                guint *value_r, GError **error);
/* NULL in `*value_r` when the key is absent. */
gboolean pst_config_read_list(GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              const char *shown_default, char ***value_r,
                              GError **error);

/* Fails on the first key of `group` that is not in `allowed` nor in
 * `also_allowed` (both NULL-terminated, nullable), suggesting the nearest
 * allowed name. */
gboolean
pst_config_check_group_keys(GKeyFile *keyfile, const PstConfigOrigins *origins,
                            const char *group, const char *const *allowed,
                            const char *const *also_allowed, GError **error);
/* The allowed name closest to `word` by edit distance (ignoring case), if
 * it is near enough to be a likely typo; NULL otherwise. */
const char *pst_config_suggest(const char *word, const char *const *allowed);

/* TRUE when `name` is a host name: dot-separated labels of letters, digits
 * and '-' (not first or last), 1-63 octets each, 253 in all; one trailing
 * dot allowed. */
gboolean pst_config_is_dns_name(const char *name);

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

typedef enum {
  PST_CONFIG_TYPE_STRING,
  PST_CONFIG_TYPE_BOOLEAN,
  PST_CONFIG_TYPE_INT,
  PST_CONFIG_TYPE_DURATION,
  PST_CONFIG_TYPE_SIZE,
  PST_CONFIG_TYPE_LIST,
  PST_CONFIG_TYPE_CHOICE,
} PstConfigType;

/* One row of the schema: a key of the groups matching `group`. */
typedef struct {
  const char *group; /* "server", or a pattern "listener:*" */
  const char *key;
  PstConfigType type;
  /* The default in the key's own syntax, parsed like a value; NULL when
   * there is none or it is computed (then `shown_default` says which). */
  const char *fallback;
  const char *shown_default;  /* nullable: for messages, instead of fallback */
  gint64 min, max;            /* INT, DURATION (ms) and SIZE ranges */
  const char *const *choices; /* CHOICE: the accepted words, in order */
  const char *doc;            /* one line */
} PstConfigKey;

/* One kind of group.  `pattern` is a name, or "prefix:*". */
typedef struct {
  const char *pattern;
  const char *shown; /* as written for people: "[listener:NAME]" */
  /* Keys outside the table are the plugin's business, not errors. */
  gboolean open;
  const char *doc;
} PstConfigGroup;

/* The tables, terminated by a row whose group (pattern) is NULL. */
extern const PstConfigGroup pst_config_groups[];
extern const PstConfigKey pst_config_keys[];

/* The schema row for a concrete group ("listener:smtp") and key. */
const PstConfigKey *pst_config_schema_find(const char *group, const char *key);
/* Fails on an unknown group, an unknown key of a closed group, or a value
 * not of its key's type. */
gboolean pst_config_schema_check(GKeyFile *keyfile,
                                 const PstConfigOrigins *origins,
                                 GError **error);

/* Readers driven by the row for (`group` pattern, `key`): the fallback and
 * range come from the table. */
gboolean pst_config_schema_get_string(GKeyFile *keyfile,
                                      const PstConfigOrigins *origins,
                                      const char *group, const char *key,
                                      char **value_r, GError **error);
gboolean pst_config_schema_get_boolean(GKeyFile *keyfile,
                                       const PstConfigOrigins *origins,
                                       const char *group, const char *key,
                                       gboolean *value_r, GError **error);
gboolean pst_config_schema_get_int(GKeyFile *keyfile,
                                   const PstConfigOrigins *origins,
                                   const char *group, const char *key,
                                   gint64 *value_r, GError **error);
gboolean pst_config_schema_get_ms(GKeyFile *keyfile,
                                  const PstConfigOrigins *origins,
                                  const char *group, const char *key,
                                  guint *value_ms_r, GError **error);
gboolean pst_config_schema_get_size(GKeyFile *keyfile,
                                    const PstConfigOrigins *origins,
                                    const char *group, const char *key,
                                    guint64 *value_r, GError **error);
gboolean pst_config_schema_get_choice(GKeyFile *keyfile,
                                      const PstConfigOrigins *origins,
                                      const char *group, const char *key,
                                      guint *value_r, GError **error);
gboolean pst_config_schema_get_list(GKeyFile *keyfile,
                                    const PstConfigOrigins *origins,
                                    const char *group, const char *key,
                                    char ***value_r, GError **error);

/* ------------------------------------------------------------------ */
/* Sections (config-server.c, config-plugins.c, config-listener.c) */
/* ------------------------------------------------------------------ */

/* A value error for a key that passed its type check but not a rule of
 * its section: the raw value and the default come from the keyfile and
 * the schema row. */
void pst_config_set_key_error(GError **error, GKeyFile *keyfile,
                              const PstConfigOrigins *origins,
                              const char *group, const char *key,
                              const char *expected);

/* Each fills its part of `config` from `config->keyfile`; [plugins]
 * before the listeners, whose `plugins` must name loaded ones. */
gboolean pst_config_build_server(PstConfig *config,
                                 const PstConfigOrigins *origins,
                                 GError **error);
gboolean pst_config_build_dns(PstConfig *config,
                              const PstConfigOrigins *origins, GError **error);
gboolean pst_config_build_plugins(PstConfig *config,
                                  const PstConfigOrigins *origins,
                                  GError **error);
gboolean pst_config_build_listeners(PstConfig *config,
                                    const PstConfigOrigins *origins,
                                    GError **error);
void pst_config_server_clear(PstServerConfig *server);
void pst_config_dns_clear(PstDnsConfig *dns);
/* [delivery] (config-delivery.c). */
gboolean pst_config_build_delivery(PstConfig *config,
                                   const PstConfigOrigins *origins,
                                   GError **error);
void pst_config_delivery_clear(PstDeliveryConfig *delivery);
void pst_config_listener_free(PstListenerConfig *listener);
/* A plugin or listener name: [a-z0-9_-]{1,64}, and A-Z when
 * `upper_allowed`. */
gboolean pst_config_is_name(const char *name, gboolean upper_allowed);
void pst_config_plugin_free(PstPluginConfig *plugin);

/* "0.0.0.0:25", "[::1]:2525": a literal IP address (IPv6 in brackets) and
 * a port from 1 to 65535.  The host is returned in canonical form.  On
 * failure, `*problem_r` says what is wrong, for a message. */
gboolean pst_config_parse_address(const char *text, char **host_r,
                                  guint16 *port_r, char **problem_r);
/* "192.0.2.53", "::1", "192.0.2.53@5353", "::1@5353". */
gboolean pst_config_parse_nameserver(const char *text, char **problem_r);

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

/* Reads `path`, then each `DIR/conf.d/NAME.conf` in name order, into one
 * keyfile (later keys replace earlier ones) and the origins of its groups and
 * keys.  Fails on the first file that cannot be read or parsed. */
gboolean pst_config_read_files(const char *path, GKeyFile **keyfile_r,
                               PstConfigOrigins **origins_r, GError **error);

G_END_DECLS
