/* tables.c - the mailboxes and aliases files, and resolving a recipient.
 *
 * Entry points: pst_mailboxes_parse(), pst_aliases_parse() (pure, over a
 * buffer), pst_deliver_tables_load() (reads the files [delivery] names),
 * pst_deliver_tables_resolve() (alias expansion: delivery jobs, and the
 * SMTP session's RCPT through its generation, generation.h).
 *
 * Resolution of local@domain (both lower-cased): an alias keyed by the
 * full address, else by the local part, expands to its targets, each
 * resolved again (a target naming the alias itself is its own mailbox, the
 * classic "alice: alice, backup"); the chain of names being expanded is
 * the loop check, and 20 levels the depth limit.  A name that is no alias
 * is a mailbox when the mailboxes file lists it (or has *@domain), or when
 * system_users is on and a user of that name passes pst_system_user_check()
 * (system-user.h); without a mailboxes file and without system_users, every
 * local part is a virtual mailbox.  A target outside our domains is remote.
 */
#include <string.h>

#include "tables/tables.h"

G_DEFINE_QUARK(pst - deliver - error - quark, pst_deliver_error)

struct _PstMailboxes {
  GHashTable *addresses; /* owned: lower-case address set */
  GHashTable *catchall;  /* owned: lower-case domain set */
};

struct _PstAliases {
  GHashTable *names; /* owned: lower-case name -> GPtrArray of char* */
};

/* --- Lines ---------------------------------------------------------------- */

static gboolean syntax_error(GError **error, const char *filename, guint line,
                             const char *what) {
  g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_SYNTAX, "%s:%u: %s",
              filename, line, what);
  return FALSE;
}

/* The line without its comment and surrounding blanks, newly allocated. */
static char *line_content(const char *line) {
  char *copy = g_strdup(line);
  char *hash = strchr(copy, '#');
  if (hash != NULL)
    *hash = '\0';
  return g_strstrip(copy);
}

/* A plausible address or local part: printable ASCII or UTF-8, no blanks,
 * no angle brackets, at most one '@' with text on both sides. */
static gboolean address_is_plausible(const char *text, gboolean need_domain) {
  if (*text == '\0' || strlen(text) > 320 || !g_utf8_validate(text, -1, NULL))
    return FALSE;
  for (const char *p = text; *p; p++)
    if ((guchar)*p <= ' ' || strchr("<>()[]\\,;:\"", *p) != NULL)
      return FALSE;
  const char *at = strchr(text, '@');
  if (at == NULL)
    return !need_domain;
  return at != text && at[1] != '\0' && strchr(at + 1, '@') == NULL;
}

/* --- Mailboxes ------------------------------------------------------------ */

PstMailboxes *pst_mailboxes_parse(const char *text, gsize length,
                                  const char *filename, GError **error) {
  g_autofree char *copy = g_strndup(text, length);
  g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
  PstMailboxes *mailboxes = g_new0(PstMailboxes, 1);
  mailboxes->addresses =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  mailboxes->catchall =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; lines[i] != NULL; i++) {
    g_autofree char *entry = line_content(lines[i]);
    if (*entry == '\0')
      continue;
    if (!address_is_plausible(entry, TRUE)) {
      g_autofree char *what = g_strdup_printf(
          "\"%s\" is not an address: write one address (user@example.org) "
          "or a catch-all (*@example.org) per line",
          entry);
      syntax_error(error, filename, i + 1, what);
      pst_mailboxes_free(mailboxes);
      return NULL;
    }
    char *lower = g_utf8_strdown(entry, -1);
    if (g_str_has_prefix(lower, "*@")) {
      g_hash_table_add(mailboxes->catchall, g_strdup(lower + 2));
      g_free(lower);
    } else {
      g_hash_table_add(mailboxes->addresses, lower);
    }
  }
  return mailboxes;
}

gboolean pst_mailboxes_contains(const PstMailboxes *mailboxes,
                                const char *address) {
  g_autofree char *lower = g_utf8_strdown(address, -1);
  if (g_hash_table_contains(mailboxes->addresses, lower))
    return TRUE;
  const char *at = strrchr(lower, '@');
  return at != NULL && g_hash_table_contains(mailboxes->catchall, at + 1);
}

guint pst_mailboxes_count(const PstMailboxes *mailboxes) {
  return g_hash_table_size(mailboxes->addresses) +
         g_hash_table_size(mailboxes->catchall);
}

void pst_mailboxes_free(PstMailboxes *mailboxes) {
  if (mailboxes == NULL)
    return;
  g_hash_table_unref(mailboxes->addresses);
  g_hash_table_unref(mailboxes->catchall);
  g_free(mailboxes);
}

/* --- Aliases -------------------------------------------------------------- */

/* Splits "t1, t2,t3" into targets, refusing what we do not deliver to. */
static gboolean aliases_add_targets(GPtrArray *targets, const char *list,
                                    const char *filename, guint line,
                                    GError **error) {
  g_auto(GStrv) parts = g_strsplit(list, ",", -1);
  for (guint i = 0; parts[i] != NULL; i++) {
    char *target = g_strstrip(parts[i]);
    if (*target == '\0')
      continue;
    if (target[0] == '|' || target[0] == '/' ||
        g_ascii_strncasecmp(target, ":include:", 9) == 0) {
      g_autofree char *what = g_strdup_printf(
          "\"%s\": only local names and addresses are supported as alias "
          "targets (no :include:, |command or /file)",
          target);
      return syntax_error(error, filename, line, what);
    }
    if (!address_is_plausible(target, FALSE)) {
      g_autofree char *what =
          g_strdup_printf("\"%s\" is not a local name or an address", target);
      return syntax_error(error, filename, line, what);
    }
    g_ptr_array_add(targets, g_utf8_strdown(target, -1));
  }
  return TRUE;
}

/* One logical entry "name: targets" starting at line `line`. */
static gboolean aliases_add_entry(PstAliases *aliases, const char *entry,
                                  const char *filename, guint line,
                                  GError **error) {
  const char *colon = strchr(entry, ':');
  if (colon == NULL || colon == entry)
    return syntax_error(error, filename, line,
                        "expected \"name: target, target, ...\"");
  g_autofree char *raw_name = g_strndup(entry, colon - entry);
  g_autofree char *name = g_utf8_strdown(g_strstrip(raw_name), -1);
  if (!address_is_plausible(name, FALSE)) {
    g_autofree char *what =
        g_strdup_printf("\"%s\" is not a valid alias name", name);
    return syntax_error(error, filename, line, what);
  }
  if (g_hash_table_contains(aliases->names, name)) {
    g_autofree char *what = g_strdup_printf(
        "alias \"%s\" is defined twice; merge its targets into one line", name);
    return syntax_error(error, filename, line, what);
  }
  GPtrArray *targets = g_ptr_array_new_with_free_func(g_free);
  if (!aliases_add_targets(targets, colon + 1, filename, line, error)) {
    g_ptr_array_unref(targets);
    return FALSE;
  }
  if (targets->len == 0) {
    g_ptr_array_unref(targets);
    return syntax_error(error, filename, line, "alias has no target");
  }
  g_hash_table_insert(aliases->names, g_steal_pointer(&name), targets);
  return TRUE;
}

PstAliases *pst_aliases_parse(const char *text, gsize length,
                              const char *filename, GError **error) {
  g_autofree char *copy = g_strndup(text, length);
  g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
  PstAliases *aliases = g_new0(PstAliases, 1);
  aliases->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)g_ptr_array_unref);
  g_autoptr(GString) entry = g_string_new(NULL);
  guint entry_line = 0;
  gboolean ok = TRUE;
  for (guint i = 0; ok && lines[i] != NULL; i++) {
    gboolean continuation = lines[i][0] == ' ' || lines[i][0] == '\t';
    g_autofree char *content = line_content(lines[i]);
    if (*content == '\0')
      continue;
    if (continuation && entry_line > 0) {
      g_string_append_printf(entry, ",%s", content);
      continue;
    }
    if (continuation) {
      ok = syntax_error(error, filename, i + 1,
                        "a continuation line (starting with a blank) with "
                        "no alias before it");
      break;
    }
    if (entry_line > 0)
      ok = aliases_add_entry(aliases, entry->str, filename, entry_line, error);
    g_string_assign(entry, content);
    entry_line = i + 1;
  }
  if (ok && entry_line > 0)
    ok = aliases_add_entry(aliases, entry->str, filename, entry_line, error);
  if (!ok) {
    pst_aliases_free(aliases);
    return NULL;
  }
  return aliases;
}

const GPtrArray *pst_aliases_lookup(const PstAliases *aliases,
                                    const char *name) {
  return g_hash_table_lookup(aliases->names, name);
}

guint pst_aliases_count(const PstAliases *aliases) {
  return g_hash_table_size(aliases->names);
}

void pst_aliases_free(PstAliases *aliases) {
  if (aliases == NULL)
    return;
  g_hash_table_unref(aliases->names);
  g_free(aliases);
}
