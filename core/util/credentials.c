/* credentials.c - the relayhost credentials file (credentials.h).
 *
 * The parser is a pure function over the file's text (unit-tested in
 * test-credentials.c, fuzzed by fuzz/fuzz-credentials.c); the loader adds
 * the file's checks (regular file, mode).  Entries live in a hash table
 * keyed "host:port" (host lower case); passwords are wiped on free and
 * never appear in an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "util/credentials.h"

#define CREDENTIALS_MAX_SIZE (1024 * 1024)

typedef struct {
  char *user;     /* owned */
  char *password; /* owned, wiped */
} PstCredentialEntry;

struct _PstCredentials {
  GHashTable *entries; /* "host:port" -> PstCredentialEntry* */
};

static void entry_free(PstCredentialEntry *entry) {
  memset(entry->password, 0, strlen(entry->password));
  g_free(entry->password);
  g_free(entry->user);
  g_free(entry);
}

static char *entry_key(const char *host, guint16 port) {
  g_autofree char *lower = g_ascii_strdown(host, -1);
  return g_strdup_printf("%s:%u", lower, port);
}

/* "[HOST]:PORT" at the start of `line`; returns the key and the rest. */
static char *parse_destination(const char *line, const char **rest_r,
                               const char **problem_r) {
  if (line[0] != '[') {
    *problem_r = "expected [HOST]:PORT first, such as [smtp.example.net]:587";
    return NULL;
  }
  const char *close = strchr(line, ']');
  if (close == NULL || close == line + 1 || close[1] != ':') {
    *problem_r = "expected [HOST]:PORT first, such as [smtp.example.net]:587";
    return NULL;
  }
  g_autofree char *host = g_strndup(line + 1, close - line - 1);
  for (const char *p = host; *p != '\0'; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '[') {
      *problem_r = "the host has white space or other invalid characters";
      return NULL;
    }
  const char *port_start = close + 2;
  const char *port_end = port_start;
  while (g_ascii_isdigit(*port_end))
    port_end++;
  g_autofree char *port_text = g_strndup(port_start, port_end - port_start);
  guint64 port = 0;
  if (!g_ascii_string_to_unsigned(port_text, 10, 1, 65535, &port, NULL)) {
    *problem_r = "expected a port from 1 to 65535 after [HOST]:";
    return NULL;
  }
  *rest_r = port_end;
  return entry_key(host, (guint16)port);
}

/* "USER:PASSWORD" after white space, trailing white space dropped. */
static PstCredentialEntry *parse_login(const char *rest,
                                       const char **problem_r) {
  if (*rest != ' ' && *rest != '\t') {
    *problem_r = "expected white space, then USER:PASSWORD, after the port";
    return NULL;
  }
  while (*rest == ' ' || *rest == '\t')
    rest++;
  gsize length = strlen(rest);
  while (length > 0 && (rest[length - 1] == ' ' || rest[length - 1] == '\t' ||
                        rest[length - 1] == '\r'))
    length--;
  const char *colon = memchr(rest, ':', length);
  if (colon == NULL || colon == rest || colon + 1 == rest + length) {
    *problem_r = "expected USER:PASSWORD, both non-empty";
    return NULL;
  }
  for (const char *p = rest; p < rest + length; p++)
    if ((guchar)*p < 0x20 && *p != '\t') {
      *problem_r = "control characters in USER:PASSWORD";
      return NULL;
    }
  PstCredentialEntry *entry = g_new0(PstCredentialEntry, 1);
  entry->user = g_strndup(rest, colon - rest);
  entry->password = g_strndup(colon + 1, rest + length - colon - 1);
  return entry;
}

PstCredentials *pst_credentials_parse(const char *text, gsize length,
                                      const char *origin, GError **error) {
  g_autoptr(PstCredentials) credentials = g_new0(PstCredentials, 1);
  credentials->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                               (GDestroyNotify)entry_free);
  if (memchr(text, '\0', length) != NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: a NUL octet: not a text file", origin);
    return NULL;
  }
  g_autofree char *copy = g_strndup(text, length);
  g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
  memset(copy, 0, length);
  for (guint i = 0; lines[i] != NULL; i++) {
    const char *line = g_strchug(lines[i]);
    const char *problem = NULL;
    const char *rest = NULL;
    if (line[0] == '\0' || line[0] == '#' || strcmp(line, "\r") == 0)
      continue;
    g_autofree char *key = parse_destination(line, &rest, &problem);
    PstCredentialEntry *entry =
        key != NULL ? parse_login(rest, &problem) : NULL;
    if (entry != NULL && g_hash_table_contains(credentials->entries, key)) {
      entry_free(entry);
      entry = NULL;
      problem = "this [HOST]:PORT is listed twice";
    }
    if (entry == NULL) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "%s:%u: %s (lines are \"[HOST]:PORT USER:PASSWORD\")", origin,
                  i + 1, problem);
      for (guint j = i; lines[j] != NULL; j++)
        memset(lines[j], 0, strlen(lines[j]));
      return NULL;
    }
    g_hash_table_insert(credentials->entries, g_steal_pointer(&key), entry);
    memset(lines[i], 0, strlen(lines[i]));
  }
  return g_steal_pointer(&credentials);
}

/* Refuses what others may read: the file holds passwords. */
static gboolean check_mode(const char *path, int fd, GError **error) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path,
                g_strerror(errno));
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: not a regular file", path);
    return FALSE;
  }
  if ((st.st_mode & 0027) != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                "%s: mode %04o lets other users read or change the "
                "passwords in it; run \"chmod 600 %s\" (or 640 with the "
                "daemon's group)",
                path, (unsigned)(st.st_mode & 07777), path);
    return FALSE;
  }
  if (st.st_size > CREDENTIALS_MAX_SIZE) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s: larger than 1 MiB", path);
    return FALSE;
  }
  return TRUE;
}

PstCredentials *pst_credentials_load(const char *path, GError **error) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "%s: cannot open: %s", path, g_strerror(errno));
    return NULL;
  }
  if (!check_mode(path, fd, error)) {
    close(fd);
    return NULL;
  }
  g_autoptr(GString) text = g_string_sized_new(4096);
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                  "%s: cannot read: %s", path, g_strerror(errno));
      close(fd);
      return NULL;
    }
    if (n == 0)
      break;
    g_string_append_len(text, buffer, n);
    if (text->len > CREDENTIALS_MAX_SIZE)
      break;
  }
  close(fd);
  memset(buffer, 0, sizeof buffer);
  PstCredentials *credentials =
      pst_credentials_parse(text->str, text->len, path, error);
  memset(text->str, 0, text->len);
  return credentials;
}

gboolean pst_credentials_lookup(const PstCredentials *credentials,
                                const char *host, guint16 port,
                                const char **user_r, const char **password_r) {
  g_autofree char *key = entry_key(host, port);
  PstCredentialEntry *entry = g_hash_table_lookup(credentials->entries, key);
  if (entry == NULL)
    return FALSE;
  *user_r = entry->user;
  *password_r = entry->password;
  return TRUE;
}

guint pst_credentials_count(const PstCredentials *credentials) {
  return g_hash_table_size(credentials->entries);
}

void pst_credentials_free(PstCredentials *credentials) {
  if (credentials == NULL)
    return;
  g_hash_table_unref(credentials->entries);
  g_free(credentials);
}
