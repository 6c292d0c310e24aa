/* resolve.c - PstDeliverTables: loading, reference counting, and resolving
 * a recipient into the mailboxes it reaches (rules in tables.c's header).
 *
 * Loading reads the files (blocking, small) on the main thread at start and
 * on SIGHUP.  Resolution is pure over the tables except for getpwnam_r() of
 * system users (reentrant: several threads resolve at once).  Tables are shared read-only by every thread that holds
 * a reference (sessions through their generation, delivery jobs).
 */
#include <errno.h>
#include <pwd.h>
#include <string.h>

#include "tables/system-user.h"
#include "tables/tables.h"

#define ALIAS_DEPTH_MAX 20

struct _PstDeliverTables {
  gint ref_count;
  PstConfig *config;           /* owned (a reference) */
  PstMailboxes *mailboxes;     /* owned, nullable */
  PstAliases *aliases;         /* owned, nullable */
  PstCredentials *credentials; /* owned, nullable: relayhost logins */
};

void pst_target_free(PstTarget *target) {
  if (target == NULL)
    return;
  g_free(target->address);
  g_free(target->user);
  g_free(target);
}

/* --- Loading -------------------------------------------------------------- */

static gboolean read_file(const char *path, char **text_r, gsize *length_r,
                          const char *key, GError **error) {
  g_autoptr(GError) local = NULL;
  if (g_file_get_contents(path, text_r, length_r, &local))
    return TRUE;
  g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_SYNTAX,
              "[delivery] %s = %s: %s", key, path, local->message);
  return FALSE;
}

PstDeliverTables *pst_deliver_tables_new(const PstConfig *config,
                                         PstMailboxes *mailboxes,
                                         PstAliases *aliases) {
  PstDeliverTables *tables = g_new0(PstDeliverTables, 1);
  tables->ref_count = 1;
  tables->config = pst_config_ref((PstConfig *)config);
  tables->mailboxes = mailboxes;
  tables->aliases = aliases;
  return tables;
}

PstDeliverTables *pst_deliver_tables_load(const PstConfig *config,
                                          GError **error) {
  const PstDeliveryConfig *delivery = &config->delivery;
  g_autoptr(PstMailboxes) mailboxes = NULL;
  g_autoptr(PstAliases) aliases = NULL;
  g_autofree char *text = NULL;
  gsize length = 0;
  if (delivery->mailboxes != NULL) {
    if (!read_file(delivery->mailboxes, &text, &length, "mailboxes", error))
      return NULL;
    mailboxes = pst_mailboxes_parse(text, length, delivery->mailboxes, error);
    if (mailboxes == NULL)
      return NULL;
    g_clear_pointer(&text, g_free);
  }
  if (delivery->aliases != NULL) {
    if (!read_file(delivery->aliases, &text, &length, "aliases", error))
      return NULL;
    aliases = pst_aliases_parse(text, length, delivery->aliases, error);
    if (aliases == NULL)
      return NULL;
  }
  g_autoptr(PstCredentials) credentials = NULL;
  if (delivery->relayhost_credentials != NULL) {
    credentials = pst_credentials_load(delivery->relayhost_credentials, error);
    if (credentials == NULL) {
      g_prefix_error(error, "[delivery] relayhost_credentials: ");
      return NULL;
    }
  }
  PstDeliverTables *tables = pst_deliver_tables_new(
      config, g_steal_pointer(&mailboxes), g_steal_pointer(&aliases));
  tables->credentials = g_steal_pointer(&credentials);
  return tables;
}

PstDeliverTables *pst_deliver_tables_ref(PstDeliverTables *tables) {
  g_atomic_int_inc(&tables->ref_count);
  return tables;
}

void pst_deliver_tables_unref(PstDeliverTables *tables) {
  if (tables == NULL || !g_atomic_int_dec_and_test(&tables->ref_count))
    return;
  pst_config_unref(tables->config);
  pst_mailboxes_free(tables->mailboxes);
  pst_aliases_free(tables->aliases);
  pst_credentials_free(tables->credentials);
  g_free(tables);
}

const PstConfig *pst_deliver_tables_get_config(PstDeliverTables *tables) {
  return tables->config;
}

const PstCredentials *
pst_deliver_tables_get_credentials(PstDeliverTables *tables) {
  return tables->credentials;
}

/* --- Resolving ------------------------------------------------------------ */

typedef struct {
  PstDeliverTables *tables;
  GPtrArray *targets; /* of PstTarget* */
  GPtrArray *chain;   /* names being expanded, for the loop check */
} Resolver;

static void add_target(Resolver *resolver, PstTargetKind kind,
                       const char *address, const char *user) {
  for (guint i = 0; i < resolver->targets->len; i++) {
    PstTarget *known = resolver->targets->pdata[i];
    if (g_str_equal(known->address, address))
      return;
  }
  PstTarget *target = g_new0(PstTarget, 1);
  target->kind = kind;
  target->address = g_strdup(address);
  target->user = g_strdup(user);
  g_ptr_array_add(resolver->targets, target);
}

/* A mailbox (no alias expansion); FALSE when there is none. */
static gboolean resolve_mailbox(Resolver *resolver, const char *address,
                                const char *local) {
  const PstConfig *config = resolver->tables->config;
  PstMailboxes *mailboxes = resolver->tables->mailboxes;
  if (mailboxes != NULL && pst_mailboxes_contains(mailboxes, address)) {
    add_target(resolver, PST_TARGET_VIRTUAL, address, NULL);
    return TRUE;
  }
  if (config->delivery.system_users) {
    /* getpwnam_r(), not getpwnam(): sessions (RCPT, main thread) and
     * delivery jobs (worker threads) resolve at once, and getpwnam()'s
     * entry is one static buffer that another thread's lookup overwrites
     * (a system user's mail bounced as "User unknown" when a RCPT for
     * root@ came in meanwhile). */
    struct passwd entry_buffer, *entry = NULL;
    gsize size = 16384;
    g_autofree char *buffer = g_malloc(size);
    /* ERANGE: a longer entry; getpwnam() grows its buffer too. */
    while (getpwnam_r(local, &entry_buffer, buffer, size, &entry) == ERANGE &&
           size < 1024 * 1024) {
      size *= 2;
      buffer = g_realloc(buffer, size);
    }
    if (entry != NULL && pst_system_user_check(entry, NULL)) {
      add_target(resolver, PST_TARGET_SYSTEM, address, local);
      return TRUE;
    }
    return FALSE;
  }
  if (mailboxes == NULL) {
    add_target(resolver, PST_TARGET_VIRTUAL, address, NULL);
    return TRUE;
  }
  return FALSE;
}

static gboolean resolve_address(Resolver *resolver, const char *address,
                                GError **error);

static gboolean resolve_alias(Resolver *resolver, const char *address,
                              const char *name, const char *domain,
                              const GPtrArray *targets, GError **error) {
  for (guint i = 0; i < resolver->chain->len; i++)
    if (g_str_equal(resolver->chain->pdata[i], address)) {
      g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_LOOP,
                  "alias loop: %s reaches itself", address);
      return FALSE;
    }
  if (resolver->chain->len >= ALIAS_DEPTH_MAX) {
    g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_LOOP,
                "aliases nested more than %d deep at %s", ALIAS_DEPTH_MAX,
                address);
    return FALSE;
  }
  g_ptr_array_add(resolver->chain, g_strdup(address));
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < targets->len; i++) {
    const char *target = targets->pdata[i];
    g_autofree char *full = strchr(target, '@') != NULL
                                ? g_strdup(target)
                                : g_strdup_printf("%s@%s", target, domain);
    if (g_str_equal(full, address) || g_str_equal(target, name)) {
      /* "alice: alice, backup": the name's own mailbox. */
      g_autofree char *local = g_strndup(full, strchr(full, '@') - full);
      if (!resolve_mailbox(resolver, full, local)) {
        g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_UNKNOWN,
                    "%s: User unknown", full);
        ok = FALSE;
      }
      continue;
    }
    ok = resolve_address(resolver, full, error);
  }
  g_free(g_ptr_array_steal_index(resolver->chain, resolver->chain->len - 1));
  return ok;
}

static gboolean resolve_address(Resolver *resolver, const char *address,
                                GError **error) {
  const PstConfig *config = resolver->tables->config;
  g_autofree char *lower = g_utf8_strdown(address, -1);
  const char *at = strrchr(lower, '@');
  g_autofree char *local = NULL;
  g_autofree char *full = NULL;
  const char *domain;
  if (at == NULL) {
    /* RCPT TO:<postmaster>: our first domain. */
    domain = config->server.domains[0] != NULL ? config->server.domains[0]
                                               : config->server.hostname;
    local = g_strdup(lower);
    full = g_strdup_printf("%s@%s", lower, domain);
  } else {
    domain = at + 1;
    local = g_strndup(lower, at - lower);
    full = g_strdup(lower);
  }
  if (!pst_config_is_local_domain(config, domain)) {
    add_target(resolver, PST_TARGET_REMOTE, full, NULL);
    return TRUE;
  }
  if (resolver->tables->aliases != NULL) {
    const GPtrArray *targets =
        pst_aliases_lookup(resolver->tables->aliases, full);
    if (targets == NULL)
      targets = pst_aliases_lookup(resolver->tables->aliases, local);
    if (targets != NULL)
      return resolve_alias(resolver, full, local, domain, targets, error);
  }
  if (resolve_mailbox(resolver, full, local))
    return TRUE;
  g_set_error(error, PST_DELIVER_ERROR, PST_DELIVER_ERROR_UNKNOWN,
              "%s: User unknown", full);
  return FALSE;
}

GPtrArray *pst_deliver_tables_resolve(PstDeliverTables *tables,
                                      const char *address, GError **error) {
  g_autoptr(GPtrArray) targets =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_target_free);
  g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func(g_free);
  Resolver resolver = {tables, targets, chain};
  if (!resolve_address(&resolver, address, error))
    return NULL;
  return g_steal_pointer(&targets);
}
