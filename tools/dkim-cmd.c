/* dkim-cmd.c - `postilion dkim genkey|dns|testkey`: DKIM keys for admins.
 *
 *   genkey DOMAIN SELECTOR [--type rsa|ed25519] [--bits N]
 *       writes KEY_DIRECTORY/DOMAIN/SELECTOR.key (PKCS#8 PEM, mode 0640,
 *       group of the [server] user when run as root, never overwriting)
 *       and SELECTOR.txt (its zone-file record), and prints the record.
 *   dns DOMAIN [SELECTOR]
 *       prints the TXT record of each selector (those of
 *       [plugin:dkim:DOMAIN], else every *.key of the domain's directory)
 *       as zone-file lines, split into strings of at most 255 octets.
 *   testkey DOMAIN [SELECTOR]
 *       looks each record up through the configured resolver ([dns]) and
 *       says per selector: matches, differs, not published, malformed (or
 *       the lookup failed).  Exit 0 only when every one matches.
 *
 * KEY_DIRECTORY is [plugin:dkim] key_directory of the configuration file.
 * The key work (dkim-key.c, dkim-record.c) is the plugin's own code, so
 * the tool and the daemon agree on what a key and a record are.  Both
 * algorithms are compared by us (libopendkim's dkim_test_key() is
 * RSA-only).  Called by postilion.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "dkim.h"
#include "dns/dns.h"
#include "tools/postilion-tool.h"

#define DKIM_GROUP "plugin:dkim"
/* sysexits.h EX_CANTCREAT */
#define PST_EXIT_CANTCREAT_ 73

static int dkim_usage(void) {
  fputs("usage: postilion [-c FILE] dkim genkey DOMAIN SELECTOR "
        "[--type rsa|ed25519] [--bits 2048]\n"
        "       postilion [-c FILE] dkim dns DOMAIN [SELECTOR]\n"
        "       postilion [-c FILE] dkim testkey DOMAIN [SELECTOR]\n",
        stderr);
  return PST_EXIT_USAGE;
}

static char *dkim_key_directory(const PstConfig *config) {
  char *directory =
      g_key_file_get_string(config->keyfile, DKIM_GROUP, "key_directory", NULL);
  if (directory == NULL || directory[0] == '\0') {
    g_free(directory);
    return g_strdup("/etc/postilion/dkim");
  }
  return g_strstrip(directory);
}

/* --- genkey --------------------------------------------------------------- */

typedef struct {
  DkimKeyType type;
  guint bits;
} GenkeyOptions;

static gboolean genkey_options(int argc, char **argv, GenkeyOptions *o) {
  o->type = DKIM_KEY_RSA;
  o->bits = 2048;
  for (int i = 0; i < argc; i++) {
    if (g_str_equal(argv[i], "--type") && i + 1 < argc) {
      const char *type = argv[++i];
      if (g_str_equal(type, "ed25519"))
        o->type = DKIM_KEY_ED25519;
      else if (!g_str_equal(type, "rsa"))
        return FALSE;
    } else if (g_str_equal(argv[i], "--bits") && i + 1 < argc) {
      guint64 bits = 0;
      if (!g_ascii_string_to_unsigned(argv[++i], 10, 1024, 8192, &bits, NULL))
        return FALSE;
      o->bits = (guint)bits;
    } else {
      return FALSE;
    }
  }
  return TRUE;
}

/* Gives the file to the [server] user's group when run as root, so the
 * daemon can read it again after its privilege drop (root:GROUP 0640). */
static void genkey_set_group(const PstConfig *config, int fd, const char *path) {
  if (geteuid() != 0 || config->server.user == NULL ||
      config->server.user[0] == '\0')
    return;
  struct passwd *pw = getpwnam(config->server.user);
  if (pw == NULL || fchown(fd, 0, pw->pw_gid) != 0)
    fprintf(stderr,
            "postilion: warning: could not give %s to the group of %s; run: "
            "chown root:%s %s\n",
            path, config->server.user, config->server.user, path);
}

static gboolean genkey_write(const PstConfig *config, const char *path,
                             const char *text, mode_t mode, GError **error) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "%s: %s%s", path, g_strerror(saved),
                saved == EEXIST ? " (a new key needs a new selector: see "
                                  "\"Rotation\" in the dkim plugin's README)"
                                : "");
    return FALSE;
  }
  genkey_set_group(config, fd, path);
  gsize length = strlen(text);
  gboolean ok = fchmod(fd, mode) == 0 &&
                write(fd, text, length) == (gssize)length && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  if (!ok)
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "%s: %s", path, g_strerror(saved));
  return ok;
}

static int dkim_genkey(const PstConfig *config, int argc, char **argv) {
  GenkeyOptions options;
  if (argc < 2 || !genkey_options(argc - 2, argv + 2, &options))
    return dkim_usage();
  const char *domain = argv[0], *selector = argv[1];
  if (!dkim_domain_is_valid(domain) || !dkim_selector_is_valid(selector)) {
    fprintf(stderr, "postilion: \"%s\" or \"%s\" is not a domain and "
                    "selector\n", domain, selector);
    return PST_EXIT_USAGE;
  }
  g_autofree char *top = dkim_key_directory(config);
  g_autofree char *directory = g_build_filename(top, domain, NULL);
  g_autofree char *name = g_strconcat(selector, ".key", NULL);
  g_autofree char *path = g_build_filename(directory, name, NULL);
  g_autofree char *txt_name = g_strconcat(selector, ".txt", NULL);
  g_autofree char *txt_path = g_build_filename(directory, txt_name, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *pem = NULL;
  if (g_mkdir_with_parents(directory, 0755) != 0) {
    fprintf(stderr, "postilion: %s: %s\n", directory, g_strerror(errno));
    return PST_EXIT_OSERR;
  }
  pem = dkim_key_generate(options.type, options.bits, &error);
  DkimKeyType type = options.type;
  guint bits = 0;
  g_autofree char *public_key = NULL;
  if (pem == NULL ||
      !dkim_key_describe((const guint8 *)pem, strlen(pem), &type, &bits,
                         &public_key, NULL, &error) ||
      !genkey_write(config, path, pem, 0640, &error)) {
    fprintf(stderr, "postilion: %s\n", error->message);
    return PST_EXIT_CANTCREAT_;
  }
  memset(pem, 0, strlen(pem));
  g_autofree char *record = dkim_record_format(type, public_key);
  g_autofree char *line = dkim_record_zone_line(domain, selector, record);
  if (!g_file_set_contents(txt_path, line, -1, &error))
    fprintf(stderr, "postilion: warning: %s\n", error->message);
  g_autofree char *size =
      type == DKIM_KEY_RSA ? g_strdup_printf(" %u-bit", bits) : g_strdup("");
  printf("; %s: a new%s %s key; publish this record, then add the selector "
         "to [plugin:dkim:%s] selectors\n%s",
         path, size, dkim_key_type_to_string(type), domain, line);
  return PST_EXIT_OK;
}

/* --- The selectors of a domain -------------------------------------------- */

/* SELECTOR when given; else [plugin:dkim:DOMAIN] selectors; else every
 * SELECTOR.key in the domain's directory. */
static GPtrArray *dkim_selectors(const PstConfig *config, const char *domain,
                                 const char *selector) {
  GPtrArray *selectors = g_ptr_array_new_with_free_func(g_free);
  if (selector != NULL) {
    g_ptr_array_add(selectors, g_strdup(selector));
    return selectors;
  }
  g_autofree char *group = g_strconcat(DKIM_GROUP ":", domain, NULL);
  g_auto(GStrv) listed =
      g_key_file_get_string_list(config->keyfile, group, "selectors", NULL,
                                 NULL);
  for (guint i = 0; listed != NULL && listed[i] != NULL; i++)
    if (g_strstrip(listed[i])[0] != '\0')
      g_ptr_array_add(selectors, g_strdup(listed[i]));
  if (selectors->len > 0)
    return selectors;
  g_autofree char *top = dkim_key_directory(config);
  g_autofree char *directory = g_build_filename(top, domain, NULL);
  g_autoptr(GDir) dir = g_dir_open(directory, 0, NULL);
  for (const char *name; dir != NULL && (name = g_dir_read_name(dir));)
    if (g_str_has_suffix(name, ".key"))
      g_ptr_array_add(selectors, g_strndup(name, strlen(name) - 4));
  g_ptr_array_sort(selectors, (GCompareFunc)g_strcmp0);
  return selectors;
}

/* The key of a selector, read for its public half only. */
static DkimKey *dkim_tool_key(const PstConfig *config, const char *domain,
                              const char *selector, GError **error) {
  g_autofree char *top = dkim_key_directory(config);
  return dkim_key_load(top, domain, selector, NULL, 0, error);
}

/* --- dns ------------------------------------------------------------------ */

static int dkim_dns(const PstConfig *config, int argc, char **argv) {
  if (argc < 1 || argc > 2)
    return dkim_usage();
  const char *domain = argv[0];
  g_autoptr(GPtrArray) selectors =
      dkim_selectors(config, domain, argc == 2 ? argv[1] : NULL);
  if (selectors->len == 0) {
    fprintf(stderr, "postilion: no DKIM selectors for %s (create one with "
                    "postilion dkim genkey %s SELECTOR)\n", domain, domain);
    return PST_EXIT_NOINPUT;
  }
  int status = PST_EXIT_OK;
  for (guint i = 0; i < selectors->len; i++) {
    const char *selector = selectors->pdata[i];
    g_autoptr(GError) error = NULL;
    g_autoptr(DkimKey) key = dkim_tool_key(config, domain, selector, &error);
    if (key == NULL) {
      fprintf(stderr, "postilion: %s\n", error->message);
      status = PST_EXIT_DATAERR;
      continue;
    }
    g_autofree char *record = dkim_record_format(key->type, key->public_key);
    g_autofree char *line = dkim_record_zone_line(domain, selector, record);
    fputs(line, stdout);
  }
  return status;
}

/* --- testkey -------------------------------------------------------------- */

typedef struct {
  GMainLoop *loop;
  PstDnsResult *result; /* owned once answered */
} TestkeyLookup;

static void testkey_answered(PstDnsResult *result, gpointer user_data) {
  TestkeyLookup *lookup = user_data;
  lookup->result = result;
  g_main_loop_quit(lookup->loop);
}

static PstDnsResult *testkey_lookup(const char *name) {
  g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
  TestkeyLookup lookup = {loop, NULL};
  pst_dns_lookup(PST_DNS_TYPE_TXT, name, NULL, testkey_answered, &lookup);
  g_main_loop_run(loop);
  return lookup.result;
}

/* The verdict on one selector's published record; TRUE when it matches. */
static gboolean testkey_compare(const DkimKey *key, PstDnsResult *result,
                                GString *verdict) {
  switch (pst_dns_result_get_status(result)) {
  case PST_DNS_OK:
    break;
  case PST_DNS_NXDOMAIN:
  case PST_DNS_NODATA:
    g_string_append(verdict, "not published");
    return FALSE;
  default:
    g_string_append_printf(verdict, "lookup failed (%s)",
                           pst_dns_result_get_reason(result));
    return FALSE;
  }
  if (pst_dns_result_get_count(result) != 1) {
    g_string_append_printf(verdict, "malformed (%u TXT records, expected one)",
                           pst_dns_result_get_count(result));
    return FALSE;
  }
  g_auto(DkimRecord) record = {0};
  g_autoptr(GError) error = NULL;
  if (!dkim_record_parse(pst_dns_result_get_string(result, 0), &record,
                         &error)) {
    g_string_append_printf(verdict, "malformed (%s)", error->message);
    return FALSE;
  }
  if (record.type != key->type ||
      !g_str_equal(record.public_key, key->public_key)) {
    g_string_append_printf(
        verdict, "differs (published: k=%s, %s; the key is %s: run "
        "postilion dkim dns and publish that)",
        dkim_key_type_to_string(record.type),
        record.public_key[0] == '\0' ? "revoked (empty p=)"
                                      : "another public key",
        dkim_key_type_to_string(key->type));
    return FALSE;
  }
  g_string_append(verdict, "matches");
  return TRUE;
}

static int dkim_testkey(const PstConfig *config, int argc, char **argv) {
  if (argc < 1 || argc > 2)
    return dkim_usage();
  const char *domain = argv[0];
  g_autoptr(GPtrArray) selectors =
      dkim_selectors(config, domain, argc == 2 ? argv[1] : NULL);
  g_autoptr(GError) error = NULL;
  if (selectors->len == 0 || !pst_dns_start(&config->dns, &error)) {
    fprintf(stderr, "postilion: %s\n",
            error != NULL ? error->message : "no DKIM selectors for the domain");
    return selectors->len == 0 ? PST_EXIT_NOINPUT : PST_EXIT_CONFIG;
  }
  gboolean all = TRUE;
  for (guint i = 0; i < selectors->len; i++) {
    const char *selector = selectors->pdata[i];
    g_autoptr(GString) verdict = g_string_new(NULL);
    g_autoptr(DkimKey) key = dkim_tool_key(config, domain, selector, &error);
    if (key == NULL) {
      g_string_append_printf(verdict, "no usable key (%s)", error->message);
      g_clear_error(&error);
      all = FALSE;
    } else {
      g_autofree char *name =
          g_strconcat(selector, "._domainkey.", domain, NULL);
      g_autoptr(PstDnsResult) result = testkey_lookup(name);
      all = testkey_compare(key, result, verdict) && all;
    }
    printf("%s._domainkey.%s: %s\n", selector, domain, verdict->str);
  }
  pst_dns_stop();
  return all ? PST_EXIT_OK : PST_EXIT_DATAERR;
}

int pst_tool_dkim(const PstConfig *config, int argc, char **argv) {
  if (argc < 2)
    return dkim_usage();
  const char *command = argv[1];
  if (g_str_equal(command, "genkey"))
    return dkim_genkey(config, argc - 2, argv + 2);
  if (g_str_equal(command, "dns"))
    return dkim_dns(config, argc - 2, argv + 2);
  if (g_str_equal(command, "testkey"))
    return dkim_testkey(config, argc - 2, argv + 2);
  return dkim_usage();
}
