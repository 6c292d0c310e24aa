/* tables.h - who our local recipients are: virtual mailboxes, aliases and
 * system users, and how an address resolves to the mailboxes it reaches.
 *
 * Two pure parsers (unit-tested, fuzzable):
 *   - the mailboxes file: one address per line ("alice@example.org"), or a
 *     catch-all "*@example.org"; '#' starts a comment; blank lines ignored;
 *   - the aliases file, /etc/aliases format: "name: target, target, ...",
 *     continuation lines start with a blank, '#' comments, names and local
 *     parts case-insensitive, targets are local names (resolved in the
 *     recipient's domain) or full addresses; ":include:", "|command" and
 *     "/file" targets are refused with the file and line.
 *
 * PstDeliverTables bundles the parsed files with the [delivery] settings;
 * it is immutable once loaded and reference counted: each configuration
 * generation (generation.h) carries its own, so a SIGHUP gives new
 * sessions and jobs new tables while sessions and jobs in flight keep
 * theirs.  A reload whose files fail keeps the last good tables.
 */
#pragma once

#include <glib.h>

#include "config/config.h"
#include "util/credentials.h"

G_BEGIN_DECLS

#define PST_DELIVER_ERROR (pst_deliver_error_quark())
GQuark pst_deliver_error_quark(void);
typedef enum {
  PST_DELIVER_ERROR_SYNTAX,  /* a bad line in a mailboxes or aliases file */
  PST_DELIVER_ERROR_LOOP,    /* an alias loop or too deep an expansion */
  PST_DELIVER_ERROR_UNKNOWN, /* no such mailbox */
} PstDeliverError;

/* --- Pure parsers -------------------------------------------------------- */

typedef struct _PstMailboxes PstMailboxes;
/* Parses a mailboxes file's text; `filename` names it in errors. */
PstMailboxes *pst_mailboxes_parse(const char *text, gsize length,
                                  const char *filename, GError **error);
/* TRUE when `address` (any case) is listed or its domain has a catch-all. */
gboolean pst_mailboxes_contains(const PstMailboxes *mailboxes,
                                const char *address);
guint pst_mailboxes_count(const PstMailboxes *mailboxes);
void pst_mailboxes_free(PstMailboxes *mailboxes);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstMailboxes, pst_mailboxes_free)

typedef struct _PstAliases PstAliases;
PstAliases *pst_aliases_parse(const char *text, gsize length,
                              const char *filename, GError **error);
/* The targets of `name` (a lower-case local part, or a full address), as
 * written; NULL when it is not an alias. */
const GPtrArray *pst_aliases_lookup(const PstAliases *aliases,
                                    const char *name);
guint pst_aliases_count(const PstAliases *aliases);
void pst_aliases_free(PstAliases *aliases);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstAliases, pst_aliases_free)

/* --- Resolution ---------------------------------------------------------- */

typedef enum {
  PST_TARGET_VIRTUAL = 0, /* a virtual mailbox: maildir_root/DOMAIN/LOCAL */
  PST_TARGET_SYSTEM,      /* a system user's ~/Maildir/ */
  PST_TARGET_REMOTE,      /* outside our domains: needs outbound SMTP */
} PstTargetKind;

typedef struct {
  PstTargetKind kind;
  char *address; /* owned: lower-case local part @ domain */
  char *user;    /* owned, nullable: the system user, for PST_TARGET_SYSTEM */
} PstTarget;

void pst_target_free(PstTarget *target);

typedef struct _PstDeliverTables PstDeliverTables;

/* Reads the files named by `config->delivery`. */
PstDeliverTables *pst_deliver_tables_load(const PstConfig *config,
                                          GError **error);
/* Tables from already parsed parts (tests); takes ownership of both. */
PstDeliverTables *pst_deliver_tables_new(const PstConfig *config,
                                         PstMailboxes *mailboxes,
                                         PstAliases *aliases);
PstDeliverTables *pst_deliver_tables_ref(PstDeliverTables *tables);
void pst_deliver_tables_unref(PstDeliverTables *tables);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstDeliverTables, pst_deliver_tables_unref)
const PstConfig *pst_deliver_tables_get_config(PstDeliverTables *tables);
/* [delivery] relayhost_credentials, loaded with the tables; nullable. */
const PstCredentials *
pst_deliver_tables_get_credentials(PstDeliverTables *tables);

/* Expands `address` through the aliases (recursively, with loop detection)
 * into the mailboxes it reaches: an array of PstTarget*.  Fails with
 * PST_DELIVER_ERROR_UNKNOWN when a local address reaches no mailbox, and
 * PST_DELIVER_ERROR_LOOP for a loop.  An alias target that is not local
 * becomes a PST_TARGET_REMOTE. */
GPtrArray *pst_deliver_tables_resolve(PstDeliverTables *tables,
                                      const char *address, GError **error);

G_END_DECLS
