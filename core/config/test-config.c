/* test-config.c - pst_config_load() on real files: a table of bad
 * configurations, each checked for the exact location (file and line), the
 * group and key, and what was expected; good configurations checked field
 * by field; conf.d order; unreadable, missing and odd files; the example
 * configuration and its commented defaults; the SDK helpers' locations.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "pst-build-config.h"

#include "config/config-private.h"

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *name; /* under conf.d/ */
  const char *text;
} DropIn;

static void remove_tree(const char *path) {
  GDir *dir = g_dir_open(path, 0, NULL);
  if (dir != NULL) {
    const char *name;
    while ((name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *child = g_build_filename(path, name, NULL);
      remove_tree(child);
    }
    g_dir_close(dir);
    g_rmdir(path);
  } else {
    g_unlink(path);
  }
}

typedef struct {
  char *dir;  /* owned */
  char *path; /* owned: DIR/postilion.conf */
} TestTree;

static void write_file(const char *path, const char *text, gssize length) {
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_set_contents(path, text, length, &error));
  g_assert_no_error(error);
}

/* A fresh directory with postilion.conf and conf.d/ files. */
static TestTree *tree_new(const char *main_text, const DropIn *dropins,
                          guint n_dropins) {
  TestTree *tree = g_new0(TestTree, 1);
  tree->dir = g_dir_make_tmp("pst-config-XXXXXX", NULL);
  g_assert_nonnull(tree->dir);
  g_assert_cmpint(g_chmod(tree->dir, 0755), ==, 0);
  tree->path = g_build_filename(tree->dir, "postilion.conf", NULL);
  if (main_text != NULL)
    write_file(tree->path, main_text, -1);
  if (n_dropins > 0) {
    g_autofree char *confd = g_build_filename(tree->dir, "conf.d", NULL);
    g_assert_cmpint(g_mkdir(confd, 0755), ==, 0);
  }
  for (guint i = 0; i < n_dropins && dropins[i].name != NULL; i++) {
    g_autofree char *path =
        g_build_filename(tree->dir, "conf.d", dropins[i].name, NULL);
    write_file(path, dropins[i].text, -1);
  }
  return tree;
}

static void tree_free(TestTree *tree) {
  remove_tree(tree->dir);
  g_free(tree->dir);
  g_free(tree->path);
  g_free(tree);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestTree, tree_free)

static char *tree_file(const TestTree *tree, const char *relative) {
  return g_build_filename(tree->dir, relative, NULL);
}

/* Lines 1-5; a case's own text starts at line 6. */
#define BASE                                                                   \
  "[server]\n"                                                                 \
  "hostname = mx.example.org\n"                                                \
  "\n"                                                                         \
  "[listener:smtp]\n"                                                          \
  "address = 127.0.0.1:2525\n"

/* ------------------------------------------------------------------ */
/* Bad configurations                                                  */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *test; /* /config/bad/TEST */
  const char *main;
  DropIn dropins[3];
  PstConfigError code;
  const char *file; /* relative to the tree: where the error is */
  guint line;       /* 0: the message starts "FILE: " */
  const char *contains[3];
} BadCase;

/* clang-format off */
static const BadCase bad_cases[] = {
    /* Unknown groups and keys. */
    {"unknown-server-key", BASE "[server]\nmax_recipient = 5\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 7,
     {"[server] max_recipient: unknown key (did you mean max_recipients?)",
      "expected one of: hostname, domains, spool, user, max_message_size",
      "fix the name or remove the line"}},
    {"unknown-group", BASE "[srever]\n", {{0}}, PST_CONFIG_ERROR_UNKNOWN,
     "postilion.conf", 6,
     {"[srever]: unknown group (did you mean [server]?)",
      "expected one of: [server], [listener:NAME], [plugins], "
      "[plugin:NAME], [dns]"}},
    {"unknown-group-prefix", BASE "[listner:submission]\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 6,
     {"[listner:submission]: unknown group (did you mean "
      "[listener:submission]?)"}},
    {"unknown-listener-key", BASE "adress = 127.0.0.1:25\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 6,
     {"[listener:smtp] adress: unknown key (did you mean address?)"}},
    {"unknown-plugins-key", BASE "[plugins]\npaths = /x\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 7,
     {"[plugins] paths: unknown key (did you mean path?)"}},
    {"unknown-dns-key", BASE "[dns]\nresolver = 1.1.1.1\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 7,
     {"[dns] resolver: unknown key", "nameservers"}},
    {"unknown-key-in-dropin", BASE,
     {{"50-x.conf", "# a comment\n\n[server]\n  spoool = /x\n"}},
     PST_CONFIG_ERROR_UNKNOWN, "conf.d/50-x.conf", 4,
     {"[server] spoool: unknown key (did you mean spool?)"}},
    {"locale-key", BASE "[server]\nbanner[de] = Hallo\n", {{0}},
     PST_CONFIG_ERROR_UNKNOWN, "postilion.conf", 7,
     {"[server] banner[de]: unknown key"}},

    /* Types and ranges. */
    {"int-not-number", BASE,
     {{"10-x.conf", "# 1\n# 2\n# 3\n# 4\n# 5\n# 6\n# 7\n# 8\n# 9\n# 10\n"
                    "[server]\nmax_recipients = lots\n"}},
     PST_CONFIG_ERROR_VALUE, "conf.d/10-x.conf", 12,
     {"[server] max_recipients = \"lots\": expected a whole number from 1 "
      "to 100000; fix the value or remove the key to use the default "
      "(1000)"}},
    {"int-range", BASE "[server]\nmax_recipients = 0\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] max_recipients = \"0\": expected a whole number from 1 to "
      "100000"}},
    {"int-errors", BASE "[server]\nmax_errors = 1001\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] max_errors = \"1001\": expected a whole number from 1 to 1000",
      "default (10)"}},
    {"size-word", BASE "[server]\nmax_message_size = huge\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] max_message_size = \"huge\": expected a size in octets from "
      "1k to 4G",
      "default (35M)"}},
    {"size-range", BASE "[server]\nmax_header_size = 2G\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] max_header_size = \"2G\": expected a size in octets from 1k "
      "to 1G",
      "default (1M)"}},
    {"duration-word", BASE "[server]\ntimeout_command = 5 minutes\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] timeout_command = \"5 minutes\": expected a duration from 1s "
      "to 1d: a whole number with a unit ms, s, m, h or d",
      "default (5m)"}},
    {"duration-zero", BASE "[server]\ntimeout_data = 0\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] timeout_data = \"0\": expected a duration from 1s to 1d",
      "default (3m)"}},
    {"duration-shutdown", BASE "[server]\ntimeout_shutdown = 2h\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] timeout_shutdown = \"2h\": expected a duration of at most 1h",
      "default (30s)"}},
    {"boolean", BASE "require_auth = maybe\n", {{0}}, PST_CONFIG_ERROR_VALUE,
     "postilion.conf", 6,
     {"[listener:smtp] require_auth = \"maybe\": expected true or false "
      "(also yes/no, 1/0); fix the value or remove the key to use the "
      "default (false)"}},
    {"choice", BASE "mode = ssl\n", {{0}}, PST_CONFIG_ERROR_VALUE,
     "postilion.conf", 6,
     {"[listener:smtp] mode = \"ssl\": expected one of plain, starttls, tls; "
      "fix the value or remove the key to use the default (plain)"}},
    {"bad-escape", BASE "[server]\nbanner = ok \\q\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] banner = \"ok \\q\": expected text where a backslash starts "
      "one of the escapes",
      "\"\\q\" is not one", "default (ESMTP Postilion)"}},

    /* [server] rules. */
    {"hostname", "[server]\nhostname = mail_host\n[listener:a]\n"
                 "address = 127.0.0.1:25\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 2,
     {"[server] hostname = \"mail_host\": expected a host name such as "
      "mx.example.org",
      "default (the system's host name)"}},
    {"domains-comma", BASE "[server]\ndomains = example.org, example.net\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] domains = \"example.org, example.net\": expected domain names "
      "separated by ';'",
      "separate items with ';', not ','"}},
    {"domains-bad", BASE "[server]\ndomains = example.org; -bad-.net\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] domains = \"example.org; -bad-.net\"",
      "(\"-bad-.net\" is not a domain name)"}},
    {"spool-relative", BASE "[server]\nspool = var/spool/postilion\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] spool = \"var/spool/postilion\": expected an absolute path",
      "default (/var/spool/postilion)"}},
    {"user-unknown", BASE "[server]\nuser = no-such-user-pst-test\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] user = \"no-such-user-pst-test\": expected the name of an "
      "existing user",
      "default (none: keep the user postiliond runs as)"}},
    {"user-escape", BASE "[server]\nuser = a\\qb\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] user = \"a\\qb\": expected text where a backslash",
      "default (none: keep the user postiliond runs as)"}},
    {"banner-newline", BASE "[server]\nbanner = two\\nlines\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[server] banner = \"two\\nlines\": expected printable ASCII text of "
      "at most 400 characters"}},

    /* Listeners. */
    {"address-hostname", BASE "[listener:b]\naddress = localhost:25\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[listener:b] address = \"localhost:25\": expected a literal IP address "
      "and port",
      "host names are not resolved", "; fix the value"}},
    {"address-v6", BASE "[listener:b]\naddress = ::1:25\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[listener:b] address = \"::1:25\"", "in brackets, [::1]:25"}},
    {"address-port", BASE "[listener:b]\naddress = [::1]:99999\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[listener:b] address = \"[::1]:99999\"",
      "\"99999\" is not a port from 1 to 65535"}},
    {"address-missing", BASE "\n[listener:b]\nmode = plain\n", {{0}},
     PST_CONFIG_ERROR_MISSING, "postilion.conf", 7,
     {"[listener:b]: the key address is missing",
      "add for example address = 0.0.0.0:25"}},
    {"address-missing-dropin", BASE, {{"20-b.conf", "[listener:extra]\n"}},
     PST_CONFIG_ERROR_MISSING, "conf.d/20-b.conf", 1,
     {"[listener:extra]: the key address is missing"}},
    {"address-twice", BASE "[listener:again]\naddress = 127.0.0.1:2525\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[listener:again] address = \"127.0.0.1:2525\": expected an address no "
      "other listener uses ([listener:smtp] has it)"}},
    {"listener-name", BASE "[listener:my.smtp]\naddress = 127.0.0.1:25\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"[listener:my.smtp]: \"my.smtp\" is not a listener name; expected "
      "letters, digits, '_' and '-'"}},
    {"listener-empty-name", BASE "[listener:]\naddress = 127.0.0.1:25\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"[listener:]: \"\" is not a listener name"}},
    {"listener-same-name", BASE "[listener:SMTP]\naddress = 127.0.0.1:26\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"[listener:SMTP]: expected a listener name of its own, but "
      "[listener:smtp] has the same name"}},
    {"no-listener", "[server]\nhostname = mx.example.org\n", {{0}},
     PST_CONFIG_ERROR_MISSING, "postilion.conf", 0,
     {"no listener is configured; expected at least one [listener:NAME] "
      "group; add for example \"[listener:smtp]\" with \"address = "
      "0.0.0.0:25\""}},
    {"require-tls-plain", BASE "require_tls = yes\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"[listener:smtp] require_tls = \"yes\": expected false on a listener "
      "with mode = plain"}},
    {"listener-plugin-not-loaded",
     BASE "plugins = relay; spf\n[plugins]\nload = relay\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"[listener:smtp] plugins = \"relay; spf\": expected names of loaded "
      "plugins separated by ';', each once (\"spf\" is not in [plugins] "
      "load)",
      "default (all loaded plugins)"}},
    {"listener-plugin-twice",
     BASE "plugins = relay; relay\n[plugins]\nload = relay\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 6,
     {"(\"relay\" is listed twice)"}},

    /* [plugins] and [plugin:NAME]. */
    {"load-name", BASE "[plugins]\nload = Relay\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[plugins] load = \"Relay\": expected plugin names separated by ';'",
      "(\"Relay\" is not a plugin name)", "default (none)"}},
    {"load-twice", BASE "[plugins]\nload = relay;dkim; relay\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[plugins] load = \"relay;dkim; relay\"", "\"relay\" is listed twice"}},
    {"load-comma", BASE "[plugins]\nload = relay, dkim\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"(\"relay, dkim\" is not a plugin name; separate names with ';')"}},
    {"path-relative", BASE "[plugins]\npath = /usr/lib; build/plugins\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[plugins] path = \"/usr/lib; build/plugins\": expected absolute "
      "directory paths separated by ';' (\"build/plugins\" is relative)"}},
    {"plugin-on-timeout", BASE "[plugin:relay]\nfoo = 1\non_timeout = drop\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 8,
     {"[plugin:relay] on_timeout = \"drop\": expected one of continue, "
      "accept, reject, tempfail; fix the value or remove the key to use the "
      "default (tempfail)"}},
    {"plugin-priority", BASE "[plugin:dkim]\npriority = last\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[plugin:dkim] priority = \"last\": expected a whole number from "
      "-1000000 to 1000000",
      "default (the priority the plugin registers)"}},
    {"plugin-timeout", BASE "[plugin:dkim]\ntimeout = 0\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[plugin:dkim] timeout = \"0\": expected a duration from 10ms to 1h"}},
    {"plugin-on-error-dropin", BASE "[plugins]\nload = spf\n",
     {{"10-spf.conf", "[plugin:spf]\non_error = crash\n"},
      {"20-spf.conf", "[plugin:spf]\n\non_error = panic\n"}},
     PST_CONFIG_ERROR_VALUE, "conf.d/20-spf.conf", 3,
     {"[plugin:spf] on_error = \"panic\""}},
    {"plugin-enable-value", BASE,
     {{"40-spf.conf", "[plugin:spf]\nenable = maybe\n"}},
     PST_CONFIG_ERROR_VALUE, "conf.d/40-spf.conf", 2,
     {"[plugin:spf] enable = \"maybe\": expected"}},
    {"plugin-enable-name", BASE,
     {{"40-spf.conf", "# SPF\n[plugin:SPF]\nenable = true\n"}},
     PST_CONFIG_ERROR_VALUE, "conf.d/40-spf.conf", 3,
     {"[plugin:SPF] enable = \"true\"",
      "\"SPF\" is not: lower-case letters, digits"}},

    /* [dns]. */
    {"nameserver-name", BASE "[dns]\nnameservers = 127.0.0.1; ns1.example\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[dns] nameservers = \"127.0.0.1; ns1.example\": expected IP "
      "addresses, each optionally with @PORT",
      "\"ns1.example\" is not an IP address",
      "default (the system's resolvers from /etc/resolv.conf)"}},
    {"nameserver-port", BASE "[dns]\nnameservers = ::1@70000\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"\"::1@70000\" has no port from 1 to 65535 after '@'"}},
    {"dnssec", BASE "[dns]\ndnssec = maybe\n", {{0}}, PST_CONFIG_ERROR_VALUE,
     "postilion.conf", 7,
     {"[dns] dnssec = \"maybe\": expected one of auto, yes, no",
      "default (auto)"}},
    {"trust-anchor", BASE "[dns]\ndnssec = yes\ntrust_anchor = /nonexistent/k\n",
     {{0}}, PST_CONFIG_ERROR_VALUE, "postilion.conf", 8,
     {"[dns] trust_anchor = \"/nonexistent/k\": expected an existing file, "
      "since dnssec = yes"}},
    {"cache-size", BASE "[dns]\ncache_size = -1\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[dns] cache_size = \"-1\": expected a whole number from 0 to 10000000",
      "default (10000)"}},
    {"dns-timeout", BASE "[dns]\ntimeout = 10m\n", {{0}},
     PST_CONFIG_ERROR_VALUE, "postilion.conf", 7,
     {"[dns] timeout = \"10m\": expected a duration from 100ms to 5m",
      "default (5s)"}},

    /* Syntax, found by the line scan when GLib refuses the file. */
    {"syntax-line", BASE "this is not a key\n", {{0}}, PST_CONFIG_ERROR_READ,
     "postilion.conf", 6,
     {"\"this is not a key\" is not a [group] header, a KEY = VALUE line or "
      "a # comment; fix or remove the line"}},
    {"syntax-no-group", "hostname = x\n[server]\n", {{0}},
     PST_CONFIG_ERROR_READ, "postilion.conf", 1,
     {"\"hostname = x\" comes before any [group] header"}},
    {"syntax-empty-group", BASE "[]\n", {{0}}, PST_CONFIG_ERROR_READ,
     "postilion.conf", 6, {"\"[]\" is not a valid group header"}},
    {"syntax-open-group", BASE "[dns\n", {{0}}, PST_CONFIG_ERROR_READ,
     "postilion.conf", 6, {"\"[dns\" is not a [group] header"}},
    {"syntax-key-name", BASE "bad]key = 1\n", {{0}}, PST_CONFIG_ERROR_READ,
     "postilion.conf", 6, {"\"bad]key\" is not a valid key name"}},
    {"syntax-dropin", BASE, {{"30-c.conf", "[server]\n= value\n"}},
     PST_CONFIG_ERROR_READ, "conf.d/30-c.conf", 2,
     {"\"= value\" is not a [group] header"}},
    {"not-utf8", BASE "[server]\nbanner = caf\xe9\n", {{0}},
     PST_CONFIG_ERROR_READ, "postilion.conf", 7,
     {"the file is not UTF-8 (byte 0xE9 at column 13); expected UTF-8 text: "
      "save the file as UTF-8"}},
};
/* clang-format on */

static void test_bad(gconstpointer data) {
  const BadCase *bad = data;
  guint n_dropins = 0;
  while (n_dropins < G_N_ELEMENTS(bad->dropins) &&
         bad->dropins[n_dropins].name != NULL)
    n_dropins++;
  g_autoptr(TestTree) tree = tree_new(bad->main, bad->dropins, n_dropins);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(tree->path, &error);
  g_assert_null(config);
  g_assert_nonnull(error);
  g_test_message("%s", error->message);
  g_assert_error(error, PST_CONFIG_ERROR, (gint)bad->code);

  g_autofree char *file = tree_file(tree, bad->file);
  g_autofree char *location = bad->line
                                  ? g_strdup_printf("%s:%u: ", file, bad->line)
                                  : g_strdup_printf("%s: ", file);
  g_assert_true(g_str_has_prefix(error->message, location));
  for (guint i = 0; i < G_N_ELEMENTS(bad->contains) && bad->contains[i]; i++) {
    g_test_message("expecting \"%s\"", bad->contains[i]);
    g_assert_nonnull(strstr(error->message, bad->contains[i]));
  }
  /* One message on one line: no newline, no trailing blank. */
  g_assert_null(strchr(error->message, '\n'));
}

/* The exact message the issue gives as its example. */
static void test_bad_exact(void) {
  const BadCase *bad = &bad_cases[8];
  g_assert_cmpstr(bad->test, ==, "int-not-number");
  g_autoptr(TestTree) tree = tree_new(bad->main, bad->dropins, 1);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(tree->path, &error));
  g_autofree char *expected = g_strdup_printf(
      "%s/conf.d/10-x.conf:12: [server] max_recipients = \"lots\": expected "
      "a whole number from 1 to 100000; fix the value or remove the key to "
      "use the default (1000)",
      tree->dir);
  g_assert_cmpstr(error->message, ==, expected);
}

/* ------------------------------------------------------------------ */
/* Good configurations                                                 */
/* ------------------------------------------------------------------ */

static PstConfig *load_text(const char *text, TestTree **tree_r) {
  g_autoptr(TestTree) tree = tree_new(text, NULL, 0);
  g_autoptr(GError) error = NULL;
  PstConfig *config = pst_config_load(tree->path, &error);
  g_assert_no_error(error);
  g_assert_nonnull(config);
  if (tree_r != NULL)
    *tree_r = g_steal_pointer(&tree);
  return config;
}

static void assert_defaults(const PstConfig *config) {
  const PstServerConfig *server = &config->server;
  g_assert_cmpuint(g_strv_length(server->domains), ==, 0);
  g_assert_cmpstr(server->spool, ==, "/var/spool/postilion");
  g_assert_null(server->user);
  g_assert_cmpuint(server->max_message_size, ==, 35 * 1024 * 1024);
  g_assert_cmpuint(server->max_recipients, ==, 1000);
  g_assert_cmpuint(server->max_connections, ==, 1000);
  g_assert_cmpuint(server->max_connections_per_ip, ==, 50);
  g_assert_cmpuint(server->max_errors, ==, 10);
  g_assert_cmpuint(server->max_header_size, ==, 1024 * 1024);
  g_assert_cmpuint(server->timeout_command_ms, ==, 300000);
  g_assert_cmpuint(server->timeout_data_ms, ==, 180000);
  g_assert_cmpuint(server->timeout_shutdown_ms, ==, 30000);
  g_assert_cmpstr(server->banner, ==, "ESMTP Postilion");
  g_assert_cmpuint(g_strv_length(config->plugin_path), ==, 0);
  g_assert_cmpuint(config->plugins->len, ==, 0);
  g_assert_null(config->dns.nameservers);
  g_assert_cmpuint(config->dns.timeout_ms, ==, 5000);
  g_assert_cmpint(config->dns.dnssec, ==, PST_DNSSEC_AUTO);
  g_assert_cmpstr(config->dns.trust_anchor, ==, "/usr/share/dns/root.key");
  g_assert_cmpuint(config->dns.cache_size, ==, 10000);
}

static void test_defaults(void) {
  g_autoptr(PstConfig) config = load_text(BASE, NULL);
  g_assert_cmpstr(config->server.hostname, ==, "mx.example.org");
  assert_defaults(config);
  g_assert_cmpuint(config->listeners->len, ==, 1);
  const PstListenerConfig *smtp = config->listeners->pdata[0];
  g_assert_cmpstr(smtp->name, ==, "smtp");
  g_assert_cmpstr(smtp->address, ==, "127.0.0.1:2525");
  g_assert_cmpstr(smtp->host, ==, "127.0.0.1");
  g_assert_cmpuint(smtp->port, ==, 2525);
  g_assert_cmpint(smtp->mode, ==, PST_LISTENER_MODE_PLAIN);
  g_assert_false(smtp->require_auth);
  g_assert_false(smtp->require_tls);
  g_assert_null(smtp->plugins);
  g_assert_true(pst_config_find_listener(config, "smtp") == smtp);
  g_assert_null(pst_config_find_listener(config, "SMTP"));
  g_assert_cmpuint(g_strv_length(config->files), ==, 1);
}

static void test_default_hostname(void) {
  const char *system = g_get_host_name();
  g_autoptr(TestTree) tree =
      tree_new("[listener:smtp]\naddress = 127.0.0.1:2525\n", NULL, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(tree->path, &error);
  if (pst_config_is_dns_name(system)) {
    g_assert_no_error(error);
    g_assert_true(g_str_has_prefix(system, config->server.hostname));
  } else {
    g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_MISSING);
    g_assert_nonnull(strstr(error->message, "set hostname in [server]"));
  }
}

static const char full_text[] =
    "# Every key set.\n"
    "[server]\n"
    "hostname = MX.Example.ORG.\n"
    "domains = Example.ORG; example.net.;; b\xc3\xbc"
    "cher.example; "
    "example.org\n"
    "spool = /srv/spool\n"
    "user = root\n"
    "max_message_size = 10M\n"
    "max_recipients = 50\n"
    "max_connections = 200\n"
    "max_connections_per_ip = 5\n"
    "max_errors = 3\n"
    "max_header_size = 64k\n"
    "timeout_command = 1m\n"
    "timeout_data = 90s\n"
    "timeout_shutdown = 0\n"
    "banner = Postilion\\sready  \n"
    "\n"
    "[listener:submission]\n"
    "address = [::1]:587\n"
    "mode = STARTTLS\n"
    "require_auth = yes\n"
    "require_tls = 1\n"
    "plugins = auth ; relay\n"
    "\n"
    "[listener:smtp]\n"
    "address = 0.0.0.0:25\n"
    "plugins =\n"
    "\n"
    "[listener:Smtps_2]\n"
    "address = [::]:465\n"
    "mode = tls\n"
    "\n"
    "[plugins]\n"
    "path = /opt/postilion/plugins; /usr/lib/postilion/plugins\n"
    "load = relay; auth; dkim\n"
    "\n"
    "[plugin:relay]\n"
    "priority = -10\n"
    "networks = 10.0.0.0/8\n"
    "\n"
    "[plugin:auth]\n"
    "timeout = 1500ms\n"
    "on_timeout = continue\n"
    "on_error = REJECT\n"
    "\n"
    "[plugin:tls:example.org]\n"
    "timeout = whatever the plugin wants\n"
    "\n"
    "[plugin:unloaded]\n"
    "anything = goes\n"
    "\n"
    "[dns]\n"
    "nameservers = 127.0.0.1@5353; ::1@5353; 192.0.2.1\n"
    "timeout = 2s\n"
    "dnssec = no\n"
    "trust_anchor = /etc/unbound/root.key\n"
    "cache_size = 0\n";

static void test_full(void) {
  g_autoptr(PstConfig) config = load_text(full_text, NULL);
  const PstServerConfig *server = &config->server;
  g_assert_cmpstr(server->hostname, ==, "MX.Example.ORG");
  g_autofree char *domains = g_strjoinv(" ", server->domains);
  g_assert_cmpstr(domains, ==, "example.org example.net xn--bcher-kva.example");
  g_assert_cmpstr(server->spool, ==, "/srv/spool");
  g_assert_cmpstr(server->user, ==, "root");
  g_assert_cmpuint(server->max_message_size, ==, 10 * 1024 * 1024);
  g_assert_cmpuint(server->max_recipients, ==, 50);
  g_assert_cmpuint(server->max_connections, ==, 200);
  g_assert_cmpuint(server->max_connections_per_ip, ==, 5);
  g_assert_cmpuint(server->max_errors, ==, 3);
  g_assert_cmpuint(server->max_header_size, ==, 65536);
  g_assert_cmpuint(server->timeout_command_ms, ==, 60000);
  g_assert_cmpuint(server->timeout_data_ms, ==, 90000);
  g_assert_cmpuint(server->timeout_shutdown_ms, ==, 0);
  g_assert_cmpstr(server->banner, ==, "Postilion ready");

  /* Listeners keep the keyfile's order. */
  g_assert_cmpuint(config->listeners->len, ==, 3);
  const PstListenerConfig *submission = config->listeners->pdata[0];
  const PstListenerConfig *smtp = config->listeners->pdata[1];
  const PstListenerConfig *smtps = config->listeners->pdata[2];
  g_assert_cmpstr(submission->name, ==, "submission");
  g_assert_cmpstr(submission->host, ==, "::1");
  g_assert_cmpuint(submission->port, ==, 587);
  g_assert_cmpint(submission->mode, ==, PST_LISTENER_MODE_STARTTLS);
  g_assert_true(submission->require_auth);
  g_assert_true(submission->require_tls);
  g_autofree char *chain = g_strjoinv(",", submission->plugins);
  g_assert_cmpstr(chain, ==, "auth,relay");
  g_assert_cmpstr(smtp->host, ==, "0.0.0.0");
  g_assert_nonnull(smtp->plugins);
  g_assert_cmpuint(g_strv_length(smtp->plugins), ==, 0);
  g_assert_cmpstr(smtps->name, ==, "Smtps_2");
  g_assert_cmpstr(smtps->host, ==, "::");
  g_assert_cmpint(smtps->mode, ==, PST_LISTENER_MODE_TLS);

  g_assert_cmpuint(g_strv_length(config->plugin_path), ==, 2);
  g_assert_cmpstr(config->plugin_path[0], ==, "/opt/postilion/plugins");
  g_assert_cmpuint(config->plugins->len, ==, 3);
  const PstPluginConfig *relay = pst_config_find_plugin(config, "relay");
  const PstPluginConfig *auth = pst_config_find_plugin(config, "auth");
  const PstPluginConfig *dkim = config->plugins->pdata[2];
  g_assert_true(config->plugins->pdata[0] == relay);
  g_assert_cmpstr(relay->group, ==, "plugin:relay");
  g_assert_true(relay->has_priority);
  g_assert_cmpint(relay->priority, ==, -10);
  g_assert_cmpuint(relay->timeout_ms, ==, 30000);
  g_assert_cmpint(relay->on_timeout, ==, PST_VERDICT_TEMPFAIL);
  g_assert_cmpint(relay->on_error, ==, PST_VERDICT_TEMPFAIL);
  g_assert_false(auth->has_priority);
  g_assert_cmpuint(auth->timeout_ms, ==, 1500);
  g_assert_cmpint(auth->on_timeout, ==, PST_VERDICT_CONTINUE);
  g_assert_cmpint(auth->on_error, ==, PST_VERDICT_REJECT);
  g_assert_cmpstr(dkim->name, ==, "dkim");
  g_assert_false(dkim->has_priority);
  g_assert_null(pst_config_find_plugin(config, "unloaded"));

  g_autofree char *servers = g_strjoinv(",", config->dns.nameservers);
  g_assert_cmpstr(servers, ==, "127.0.0.1@5353,::1@5353,192.0.2.1");
  g_assert_cmpuint(config->dns.timeout_ms, ==, 2000);
  g_assert_cmpint(config->dns.dnssec, ==, PST_DNSSEC_NO);
  g_assert_cmpstr(config->dns.trust_anchor, ==, "/etc/unbound/root.key");
  g_assert_cmpuint(config->dns.cache_size, ==, 0);

  /* The plugins' own keys stay in the merged keyfile for them. */
  g_autofree char *networks =
      g_key_file_get_string(config->keyfile, "plugin:relay", "networks", NULL);
  g_assert_cmpstr(networks, ==, "10.0.0.0/8");
}

static void test_local_domain(void) {
  g_autoptr(PstConfig) config = load_text(full_text, NULL);
  g_assert_true(pst_config_is_local_domain(config, "example.org"));
  g_assert_true(pst_config_is_local_domain(config, "EXAMPLE.Org"));
  g_assert_true(pst_config_is_local_domain(config, "example.net."));
  g_assert_true(pst_config_is_local_domain(config, "xn--bcher-kva.example"));
  g_assert_false(pst_config_is_local_domain(config, "sub.example.org"));
  g_assert_false(pst_config_is_local_domain(config, "example.or"));
  g_assert_false(pst_config_is_local_domain(config, "example.orgx"));
  g_assert_false(pst_config_is_local_domain(config, ""));
  g_assert_false(pst_config_is_local_domain(config, "."));
  g_assert_false(pst_config_is_local_domain(config, NULL));
}

static void test_empty_values(void) {
  g_autoptr(PstConfig) config =
      load_text(BASE "[server]\nuser =\n[plugins]\npath =\nload =\n"
                     "[dns]\nnameservers = ;\n",
                NULL);
  g_assert_null(config->server.user);
  g_assert_cmpuint(g_strv_length(config->plugin_path), ==, 0);
  g_assert_cmpuint(config->plugins->len, ==, 0);
  g_assert_null(config->dns.nameservers);
}

static void test_crlf_and_bom(void) {
  g_autoptr(TestTree) tree = NULL;
  g_autoptr(PstConfig) config = load_text(
      "\xEF\xBB\xBF# BOM and CRLF\r\n[server]\r\nhostname = a.example\r\n"
      "\r\n  [listener:smtp]  \r\n\taddress = 127.0.0.1:25\r\n",
      &tree);
  g_assert_cmpstr(config->server.hostname, ==, "a.example");
  const PstListenerConfig *smtp = config->listeners->pdata[0];
  g_assert_cmpuint(smtp->port, ==, 25);
  g_autofree char *where =
      pst_config_describe_key(config, "listener:smtp", "address");
  g_autofree char *expected = g_strdup_printf("%s:6: ", tree->path);
  g_assert_cmpstr(where, ==, expected);

  /* CRLF also keeps the line numbers of errors right. */
  g_autoptr(TestTree) bad =
      tree_new("[server]\r\nhostname = a.example\r\n[listener:smtp]\r\n"
               "address = 127.0.0.1:25\r\nmode = bogus\r\n",
               NULL, 0);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(bad->path, &error));
  g_autofree char *location = g_strdup_printf("%s:5: ", bad->path);
  g_assert_true(g_str_has_prefix(error->message, location));
}

/* ------------------------------------------------------------------ */
/* conf.d                                                              */
/* ------------------------------------------------------------------ */

static void test_dropin_order(void) {
  static const DropIn dropins[] = {
      {"20-b.conf", "# b\n[server]\nmax_recipients = 30\n"},
      {"10-a.conf", "[server]\nmax_recipients = 20\nmax_errors = 4\n"
                    "[listener:extra]\naddress = [::1]:2526\n"},
      {"30-c.conf.bak", "[server]\nmax_recipients = 99\n"},
      {".40-hidden.conf", "[server]\nmax_recipients = 98\n"},
      {"50-d.conf.dpkg-old", "[server]\nmax_recipients = 97\n"},
      {"05-e.conf", "[listener:smtp]\nmode = tls\n"},
  };
  g_autoptr(TestTree) tree =
      tree_new(BASE "[server]\nmax_recipients = 10\nmax_connections = 7\n",
               dropins, G_N_ELEMENTS(dropins));
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(tree->path, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(config->server.max_recipients, ==, 30);
  g_assert_cmpuint(config->server.max_errors, ==, 4);
  g_assert_cmpuint(config->server.max_connections, ==, 7);

  /* The main file, then conf.d by name, backups and hidden files skipped. */
  g_assert_cmpuint(g_strv_length(config->files), ==, 4);
  g_assert_cmpstr(config->files[0], ==, tree->path);
  g_assert_true(g_str_has_suffix(config->files[1], "/conf.d/05-e.conf"));
  g_assert_true(g_str_has_suffix(config->files[2], "/conf.d/10-a.conf"));
  g_assert_true(g_str_has_suffix(config->files[3], "/conf.d/20-b.conf"));

  /* A drop-in replaces one key of a group, not the group. */
  const PstListenerConfig *smtp = pst_config_find_listener(config, "smtp");
  g_assert_cmpint(smtp->mode, ==, PST_LISTENER_MODE_TLS);
  g_assert_cmpuint(smtp->port, ==, 2525);
  g_assert_cmpuint(config->listeners->len, ==, 2);
  g_assert_cmpstr(((PstListenerConfig *)config->listeners->pdata[1])->name, ==,
                  "extra");

  /* Each key remembers the file and line its value came from. */
  g_autofree char *b = tree_file(tree, "conf.d/20-b.conf");
  g_autofree char *a = tree_file(tree, "conf.d/10-a.conf");
  g_autofree char *expect_recipients = g_strdup_printf("%s:3: ", b);
  g_autofree char *expect_errors = g_strdup_printf("%s:3: ", a);
  g_autofree char *expect_connections = g_strdup_printf("%s:8: ", tree->path);
  g_autofree char *expect_extra = g_strdup_printf("%s:4: ", a);
  g_autofree char *expect_group = g_strdup_printf("%s:4: ", tree->path);
  g_autofree char *expect_main = g_strdup_printf("%s: ", tree->path);
  g_autofree char *recipients =
      pst_config_describe_key(config, "server", "max_recipients");
  g_autofree char *errors =
      pst_config_describe_key(config, "server", "max_errors");
  g_autofree char *connections =
      pst_config_describe_key(config, "server", "max_connections");
  g_autofree char *extra =
      pst_config_describe_key(config, "listener:extra", NULL);
  g_autofree char *absent_key =
      pst_config_describe_key(config, "listener:smtp", "require_tls");
  g_autofree char *absent_group =
      pst_config_describe_key(config, "dns", "timeout");
  g_assert_cmpstr(recipients, ==, expect_recipients);
  g_assert_cmpstr(errors, ==, expect_errors);
  g_assert_cmpstr(connections, ==, expect_connections);
  g_assert_cmpstr(extra, ==, expect_extra);
  g_assert_cmpstr(absent_key, ==, expect_group);
  g_assert_cmpstr(absent_group, ==, expect_main);
}

static void test_dropin_only_listener(void) {
  static const DropIn dropins[] = {
      {"listener.conf", "[listener:smtp]\naddress = 127.0.0.1:2525\n"},
  };
  g_autoptr(TestTree) tree =
      tree_new("[server]\nhostname = mx.example.org\n", dropins, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(tree->path, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(config->listeners->len, ==, 1);
}

/* [plugin:NAME] enable: a drop-in adds its plugin to [plugins] load; one
 * that is not installed (a removed package's snippet) is left out with a
 * note; a later "enable = false" wins. */
static void test_dropin_enable(void) {
  static const DropIn dropins[] = {
      {"20-beta.conf", "[plugin:beta]\nenable = true\n"},
      {"10-gamma.conf", "[plugin:gamma]\nenable = true\n"
                        "[plugin:alpha]\nenable = yes\n"},
      {"30-gone.conf", "# a removed package's snippet\n[plugin:gone]\n"
                       "enable = true\ntimeout = 5s\n"},
      {"40-delta.conf", "[plugin:delta]\nenable = true\n"},
      {"50-local.conf", "[plugin:delta]\nenable = false\n"},
  };
  g_autoptr(TestTree) tree = tree_new(NULL, dropins, G_N_ELEMENTS(dropins));
  g_autofree char *plugins = tree_file(tree, "plugins");
  g_assert_cmpint(g_mkdir(plugins, 0755), ==, 0);
  const char *const installed[] = {"alpha.so", "libpostilion-beta.so",
                                   "gamma.so", "delta.so"};
  for (guint i = 0; i < G_N_ELEMENTS(installed); i++) {
    g_autofree char *path = g_build_filename(plugins, installed[i], NULL);
    write_file(path, "", 0);
  }
  g_autofree char *main_text =
      g_strdup_printf(BASE "[plugins]\npath = %s\nload = alpha\n", plugins);
  write_file(tree->path, main_text, -1);

  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(tree->path, &error);
  g_assert_no_error(error);
  /* load first, then by the enabling line's file and line. */
  g_assert_cmpuint(config->plugins->len, ==, 3);
  const char *const order[] = {"alpha", "gamma", "beta"};
  for (guint i = 0; i < G_N_ELEMENTS(order); i++)
    g_assert_cmpstr(((PstPluginConfig *)config->plugins->pdata[i])->name, ==,
                    order[i]);
  g_autofree char *gamma = tree_file(tree, "conf.d/10-gamma.conf");
  g_autofree char *gone = tree_file(tree, "conf.d/30-gone.conf");
  g_autofree char *expected = g_strdup_printf(
      "postiliond: plugin alpha: loaded by %s:8 [plugins] load\n"
      "postiliond: plugin gamma: loaded by %s:2 [plugin:gamma] enable\n"
      "postiliond: plugin beta: loaded by %s/conf.d/20-beta.conf:2 "
      "[plugin:beta] enable\n"
      "postiliond: %s:3 [plugin:gone] enable = true: plugin \"gone\" is not "
      "installed (tried %s/gone.so, %s/libpostilion-gone.so, ",
      tree->path, gamma, tree->dir, gone, plugins, plugins);
  g_autoptr(GString) described = g_string_new(NULL);
  pst_config_describe_plugins(config, "postiliond", described);
  g_assert_true(g_str_has_prefix(described->str, expected));
  g_assert_true(g_str_has_suffix(described->str,
                                 "), so it is not loaded; install it, or set "
                                 "enable = false\n"));
  g_assert_cmpuint(g_strv_length(config->plugin_notes), ==, 1);
}

/* ------------------------------------------------------------------ */
/* Files that cannot be read                                           */
/* ------------------------------------------------------------------ */

static void test_missing_file(void) {
  g_autoptr(TestTree) tree = tree_new(NULL, NULL, 0);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(tree->path, &error));
  g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ);
  g_autofree char *expected = g_strdup_printf(
      "%s: cannot read the configuration file: %s; create it (see "
      "postilion.conf(5)) or name another file with -c FILE",
      tree->path, g_strerror(ENOENT));
  g_assert_cmpstr(error->message, ==, expected);
}

static void test_directory(void) {
  g_autoptr(TestTree) tree = tree_new(NULL, NULL, 0);
  g_assert_cmpint(g_mkdir(tree->path, 0755), ==, 0);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(tree->path, &error));
  g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ);
  g_autofree char *expected =
      g_strdup_printf("%s: cannot read the configuration file: %s", tree->path,
                      g_strerror(EISDIR));
  g_assert_true(g_str_has_prefix(error->message, expected));
}

static void test_dropin_unreadable_kinds(void) {
  /* A directory named like a drop-in, and a dangling symlink. */
  static const char *const kinds[] = {"dir", "symlink", "fifo"};
  for (guint i = 0; i < G_N_ELEMENTS(kinds); i++) {
    static const DropIn placeholder[] = {{"00-ok.conf", "# fine\n"}};
    g_autoptr(TestTree) tree = tree_new(BASE, placeholder, 1);
    g_autofree char *bad = tree_file(tree, "conf.d/50-bad.conf");
    if (i == 0)
      g_assert_cmpint(g_mkdir(bad, 0755), ==, 0);
    else if (i == 1)
      g_assert_cmpint(symlink("/nonexistent/pst", bad), ==, 0);
    else
      g_assert_cmpint(mkfifo(bad, 0644), ==, 0);
    g_autoptr(GError) error = NULL;
    g_assert_null(pst_config_load(tree->path, &error));
    g_test_message("%s: %s", kinds[i], error->message);
    g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ);
    g_autofree char *prefix =
        g_strdup_printf("%s: cannot read the configuration file: ", bad);
    g_assert_true(g_str_has_prefix(error->message, prefix));
  }
}

static void test_confd_not_directory(void) {
  g_autoptr(TestTree) tree = tree_new(BASE, NULL, 0);
  g_autofree char *confd = tree_file(tree, "conf.d");
  write_file(confd, "not a directory", -1);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(tree->path, &error));
  g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ);
  g_autofree char *prefix =
      g_strdup_printf("%s: cannot read the drop-in directory: ", confd);
  g_assert_true(g_str_has_prefix(error->message, prefix));
}

static void test_nul_byte(void) {
  static const char text[] = BASE "[server]\nbanner = a\0b\n";
  g_autoptr(TestTree) tree = tree_new(NULL, NULL, 0);
  write_file(tree->path, text, sizeof text - 1);
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(tree->path, &error));
  g_assert_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ);
  g_autofree char *expected = g_strdup_printf(
      "%s:7: the file contains a NUL byte (column 11); expected text: remove "
      "the byte",
      tree->path);
  g_assert_cmpstr(error->message, ==, expected);
}

/* Run in a child: as root, permissions do not stop reads, so the child
 * becomes nobody first. */
static void unreadable_child(const char *path) {
  if (geteuid() == 0) {
    g_assert_cmpint(setgid(65534), ==, 0);
    g_assert_cmpint(setuid(65534), ==, 0);
  }
  g_autoptr(GError) error = NULL;
  g_assert_null(pst_config_load(path, &error));
  g_printerr("%s\n", error->message);
}

static void test_unreadable(void) {
  if (g_test_subprocess()) {
    unreadable_child(g_getenv("PST_TEST_CONFIG"));
    return;
  }
  static const DropIn dropins[] = {{"10-secret.conf", "[server]\n"}};
  g_autoptr(TestTree) tree = tree_new(BASE, dropins, 1);
  g_autofree char *secret = tree_file(tree, "conf.d/10-secret.conf");
  g_assert_cmpint(g_chmod(secret, 0), ==, 0);
  g_setenv("PST_TEST_CONFIG", tree->path, TRUE);
  g_test_trap_subprocess("/config/files/unreadable", 0,
                         G_TEST_SUBPROCESS_INHERIT_STDOUT);
  g_test_trap_assert_passed();
  g_autofree char *expected = g_strdup_printf(
      "%s: cannot read the configuration file: %s; check the path and its "
      "permissions\n",
      secret, g_strerror(EACCES));
  g_test_trap_assert_stderr(expected);
}

/* ------------------------------------------------------------------ */
/* The SDK helpers on a loaded configuration                           */
/* ------------------------------------------------------------------ */

static void test_sdk_locations(void) {
  static const DropIn dropins[] = {
      {"20-demo.conf", "[plugin:demo]\n# the demo plugin\ncount = 99\n"
                       "colour = blue\n"},
  };
  static const char *const allowed[] = {"count", NULL};
  g_autoptr(TestTree) tree =
      tree_new(BASE "[plugins]\nload = demo\n", dropins, 1);
  g_autoptr(GError) error = NULL;
  PstConfig *config = pst_config_load(tree->path, &error);
  g_assert_no_error(error);
  g_autoptr(GKeyFile) keyfile = g_key_file_ref(config->keyfile);
  g_autofree char *file = tree_file(tree, "conf.d/20-demo.conf");
  gint64 count = 0;

  g_assert_false(pst_config_get_int(keyfile, "plugin:demo", "count", 1, 1, 10,
                                    &count, &error));
  g_autofree char *expected = g_strdup_printf(
      "%s:3: [plugin:demo] count = \"99\": expected a whole number from 1 "
      "to 10; fix the value or remove the key to use the default (1)",
      file);
  g_assert_cmpstr(error->message, ==, expected);
  g_clear_error(&error);

  g_assert_false(
      pst_config_check_keys(keyfile, "plugin:demo", allowed, &error));
  g_autofree char *unknown = g_strdup_printf(
      "%s:4: [plugin:demo] colour: unknown key; expected one of: count, "
      "enable, priority, timeout, on_timeout, on_error; fix the name or "
      "remove the line",
      file);
  g_assert_cmpstr(error->message, ==, unknown);
  g_clear_error(&error);

  /* Once the configuration is gone, its keyfile has no locations. */
  pst_config_unref(config);
  g_assert_false(pst_config_get_int(keyfile, "plugin:demo", "count", 1, 1, 10,
                                    &count, &error));
  g_assert_true(g_str_has_prefix(error->message, "[plugin:demo] count"));
}

static void test_refcount(void) {
  PstConfig *config = load_text(BASE, NULL);
  g_assert_true(pst_config_ref(config) == config);
  g_assert_cmpint(config->ref_count, ==, 2);
  pst_config_unref(config);
  g_assert_cmpint(config->ref_count, ==, 1);
  pst_config_unref(config);
}

/* ------------------------------------------------------------------ */
/* The example configuration                                           */
/* ------------------------------------------------------------------ */

static char *example_text(void) {
  g_autofree char *path =
      g_build_filename(PST_TEST_SRCDIR, "etc", "postilion.conf", NULL);
  char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  return text;
}

static void test_example(void) {
  g_autofree char *text = example_text();
  g_autoptr(PstConfig) config = load_text(text, NULL);
  assert_defaults(config);
  g_assert_cmpuint(config->listeners->len, ==, 1);
}

/* Uncommenting every "#key = value" line (the commented defaults) and
 * "#[group]" header must change nothing. */
static void test_example_defaults(void) {
  g_autofree char *text = example_text();
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GString) uncommented = g_string_new(NULL);
  guint count = 0;
  for (guint i = 0; lines[i] != NULL; i++) {
    const char *line = lines[i];
    gboolean is_default =
        line[0] == '#' && (g_ascii_isalpha(line[1]) || line[1] == '[');
    if (is_default) {
      line++;
      count++;
    }
    /* The installed file names the build's plugin directory. */
    g_autofree char *fixed = NULL;
    if (strstr(line, "@PLUGINDIR@") != NULL) {
      g_auto(GStrv) parts = g_strsplit(line, "@PLUGINDIR@", -1);
      fixed = g_strjoinv(PST_PLUGINDIR, parts);
      line = fixed;
    }
    g_string_append_printf(uncommented, "%s\n", line);
  }
  g_assert_cmpuint(count, >=, 20);
  g_autoptr(PstConfig) config = load_text(uncommented->str, NULL);
  assert_defaults(config);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/config/bad/%s", bad_cases[i].test);
    g_test_add_data_func(path, &bad_cases[i], test_bad);
  }
  g_test_add_func("/config/bad/exact-message", test_bad_exact);
  g_test_add_func("/config/good/defaults", test_defaults);
  g_test_add_func("/config/good/default-hostname", test_default_hostname);
  g_test_add_func("/config/good/full", test_full);
  g_test_add_func("/config/good/local-domain", test_local_domain);
  g_test_add_func("/config/good/empty-values", test_empty_values);
  g_test_add_func("/config/good/crlf-and-bom", test_crlf_and_bom);
  g_test_add_func("/config/good/refcount", test_refcount);
  g_test_add_func("/config/dropin/order", test_dropin_order);
  g_test_add_func("/config/dropin/only-listener", test_dropin_only_listener);
  g_test_add_func("/config/dropin/enable", test_dropin_enable);
  g_test_add_func("/config/files/missing", test_missing_file);
  g_test_add_func("/config/files/directory", test_directory);
  g_test_add_func("/config/files/dropin-kinds", test_dropin_unreadable_kinds);
  g_test_add_func("/config/files/confd-not-directory",
                  test_confd_not_directory);
  g_test_add_func("/config/files/nul-byte", test_nul_byte);
  g_test_add_func("/config/files/unreadable", test_unreadable);
  g_test_add_func("/config/sdk/locations", test_sdk_locations);
  g_test_add_func("/config/example/loads", test_example);
  g_test_add_func("/config/example/defaults", test_example_defaults);
  return g_test_run();
}
