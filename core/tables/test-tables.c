/* test-tables.c - the mailboxes and aliases parsers (table-driven,
 * good and bad lines) and recipient resolution: aliases, recursion, loops,
 * catch-alls, remote targets. */
#include <string.h>

#include <glib/gstdio.h>

#include "tables/tables.h"

typedef struct {
  const char *text;
  const char *error; /* NULL: parses; else a substring of the message */
} ParseCase;

static const ParseCase mailbox_cases[] = {
    {"alice@example.org\n# comment\n\n*@example.net\n", NULL},
    {"  Bob@Example.ORG  # trailing comment\r\n", NULL},
    {"alice\n", "f:1: \"alice\" is not an address"},
    {"ok@example.org\nbad address@example.org\n", "f:2:"},
    {"a@@example.org\n", "f:1:"},
};

static const ParseCase alias_cases[] = {
    {"postmaster: root\nroot: alice, bob@example.net\n", NULL},
    {"team: alice,\n  bob,\n\tcarol # the rest\n", NULL},
    {"Alice: alice, backup\n", NULL},
    {"nocolon alice\n", "f:1: expected \"name: target"},
    {"  alice\n", "f:1: a continuation line"},
    {"x: |/bin/prog\n", "f:1: \"|/bin/prog\": only local names"},
    {"x: :include:/etc/list\n", "f:1:"},
    {"x: /var/mail/x\n", "f:1:"},
    {"x:\n", "f:1: alias has no target"},
    {"a: b\nA: c\n", "f:2: alias \"a\" is defined twice"},
};

static void test_mailboxes_parse(void) {
  for (guint i = 0; i < G_N_ELEMENTS(mailbox_cases); i++) {
    const ParseCase *c = &mailbox_cases[i];
    g_autoptr(GError) error = NULL;
    g_autoptr(PstMailboxes) m =
        pst_mailboxes_parse(c->text, strlen(c->text), "f", &error);
    if (c->error == NULL) {
      g_assert_no_error(error);
      g_assert_nonnull(m);
    } else {
      g_assert_null(m);
      g_assert_nonnull(strstr(error->message, c->error));
    }
  }
  const char *text = mailbox_cases[0].text;
  g_autoptr(PstMailboxes) m =
      pst_mailboxes_parse(text, strlen(text), "f", NULL);
  g_assert_true(pst_mailboxes_contains(m, "ALICE@example.org"));
  g_assert_true(pst_mailboxes_contains(m, "anyone@example.net"));
  g_assert_false(pst_mailboxes_contains(m, "bob@example.org"));
  g_assert_cmpuint(pst_mailboxes_count(m), ==, 2);
}

static void test_aliases_parse(void) {
  for (guint i = 0; i < G_N_ELEMENTS(alias_cases); i++) {
    const ParseCase *c = &alias_cases[i];
    g_autoptr(GError) error = NULL;
    g_autoptr(PstAliases) a =
        pst_aliases_parse(c->text, strlen(c->text), "f", &error);
    if (c->error == NULL) {
      g_assert_no_error(error);
      g_assert_nonnull(a);
    } else {
      g_assert_null(a);
      if (strstr(error->message, c->error) == NULL)
        g_error("case %u: %s", i, error->message);
    }
  }
  const char *text = alias_cases[1].text;
  g_autoptr(PstAliases) a = pst_aliases_parse(text, strlen(text), "f", NULL);
  const GPtrArray *team = pst_aliases_lookup(a, "team");
  g_assert_cmpuint(team->len, ==, 3);
  g_assert_cmpstr(team->pdata[2], ==, "carol");
}

static PstDeliverTables *make_tables(const char *mailboxes,
                                     const char *aliases) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_autofree char *dir = g_dir_make_tmp("test-deliver-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "p.conf", NULL);
  g_autofree char *text = g_strdup_printf(
      "[server]\nhostname = mx.example.org\ndomains = example.org;example.net\n"
      "spool = %s\n[listener:smtp]\naddress = "
      "127.0.0.1:2525\n[delivery]\nmaildir_root = %s\n",
      dir, dir);
  g_assert_true(g_file_set_contents(path, text, -1, NULL));
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(path, &error);
  g_assert_no_error(error);
  g_unlink(path);
  g_rmdir(dir);
  return pst_deliver_tables_new(
      config, pst_mailboxes_parse(mailboxes, strlen(mailboxes), "m", NULL),
      pst_aliases_parse(aliases, strlen(aliases), "a", NULL));
}

static char *resolve_text(PstDeliverTables *tables, const char *address) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) targets =
      pst_deliver_tables_resolve(tables, address, &error);
  if (targets == NULL)
    return g_strdup_printf("error: %s", error->message);
  GString *out = g_string_new(NULL);
  for (guint i = 0; i < targets->len; i++) {
    const PstTarget *t = targets->pdata[i];
    g_string_append_printf(out, "%s%c:%s", i ? " " : "", "vsr"[t->kind],
                           t -> address);
  }
  return g_string_free(out, FALSE);
}

static void test_resolve(void) {
  g_autoptr(PstDeliverTables) tables = make_tables(
      "alice@example.org\nbob@example.org\n*@example.net\n",
      "postmaster: alice\nteam: alice, Bob, friend@elsewhere.example\n"
      "loop1: loop2\nloop2: loop1\nself: self, bob\nghost: nobody\n"
      "alice@example.net: bob@example.org\n");
  static const struct {
    const char *address, *expected;
  } cases[] = {
      {"Alice@Example.org", "v:alice@example.org"},
      {"postmaster", "v:alice@example.org"},
      {"team@example.org",
       "v:alice@example.org v:bob@example.org r:friend@elsewhere.example"},
      {"loop1@example.org", "error: alias loop: loop1@example.org reaches "
                            "itself"},
      {"ghost@example.org", "error: nobody@example.org: User unknown"},
      {"carol@example.org", "error: carol@example.org: User unknown"},
      {"anyone@example.net", "v:anyone@example.net"},
      {"alice@example.net", "v:bob@example.org"},
      {"x@elsewhere.example", "r:x@elsewhere.example"},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *got = resolve_text(tables, cases[i].address);
    g_assert_cmpstr(got, ==, cases[i].expected);
  }
  /* "self: self, bob": the name's own mailbox must exist. */
  g_autofree char *self = resolve_text(tables, "self@example.org");
  g_assert_cmpstr(self, ==, "error: self@example.org: User unknown");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/mailboxes/parse", test_mailboxes_parse);
  g_test_add_func("/deliver/aliases/parse", test_aliases_parse);
  g_test_add_func("/deliver/tables/resolve", test_resolve);
  return g_test_run();
}
