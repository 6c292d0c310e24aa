/* config-load.c - reading the configuration files into one keyfile.
 *
 * pst_config_read_files() reads the main file, then every `*.conf` in the
 * `conf.d` directory beside it, sorted by name (byte order, so "10-a.conf"
 * before "20-b.conf"; names starting with '.' are skipped, as are names not
 * ending in ".conf", such as editor backups and "x.conf.dpkg-old").  Each
 * file is parsed on its own by GLib, then merged key by key into one
 * keyfile, so a drop-in replaces single keys and never a whole group.
 *
 * GLib keeps no line numbers, so each file's text is also scanned here the
 * way GLib parses it (leading blanks ignored, '#' comments, "[group]"
 * headers, "key = value" lines, a CR before LF dropped) to record where
 * every group and key came from.  When GLib refuses a file, the same scan
 * names the first line it would refuse and why.
 *
 * Files must be regular, at most PST_CONFIG_MAX_FILE_SIZE octets and
 * UTF-8 (a leading byte order mark is ignored); conf.d holds at most
 * PST_CONFIG_MAX_DROPINS files.  Every failure names the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config-private.h"

#define PST_CONFIG_MAX_FILE_SIZE (16 * 1024 * 1024)
#define PST_CONFIG_MAX_DROPINS 1000

/* ------------------------------------------------------------------ */
/* Reading a file                                                      */
/* ------------------------------------------------------------------ */

static void set_read_error(GError **error, const char *path, int errsv) {
  const char *fix = errsv == ENOENT
                        ? "create it (see postilion.conf(5)) or name another "
                          "file with -c FILE"
                        : "check the path and its permissions";
  g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
              "%s: cannot read the configuration file: %s; %s", path,
              g_strerror(errsv), fix);
}

/* Refuses what is not a regular file of bounded size. */
static gboolean check_file_type(const char *path, int fd, GError **error) {
  struct stat st;
  if (fstat(fd, &st) < 0) {
    set_read_error(error, path, errno);
    return FALSE;
  }
  if (S_ISDIR(st.st_mode)) {
    set_read_error(error, path, EISDIR);
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                "%s: cannot read the configuration file: not a regular "
                "file; name a file",
                path);
    return FALSE;
  }
  if (st.st_size > PST_CONFIG_MAX_FILE_SIZE) {
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                "%s: the configuration file is larger than %d MiB; name "
                "the right file",
                path, PST_CONFIG_MAX_FILE_SIZE / (1024 * 1024));
    return FALSE;
  }
  return TRUE;
}

/* Reads the whole of a regular file of bounded size. */
static gboolean read_text(const char *path, char **text_r, gsize *length_r,
                          GError **error) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    set_read_error(error, path, errno);
    return FALSE;
  }
  if (!check_file_type(path, fd, error)) {
    close(fd);
    return FALSE;
  }
  g_autoptr(GString) text = g_string_sized_new(4096);
  char buffer[8192];
  ssize_t got;
  /* The file may grow after fstat(): stop at the limit all the same. */
  while ((got = read(fd, buffer, sizeof buffer)) != 0) {
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 || text->len + got > PST_CONFIG_MAX_FILE_SIZE) {
      int errsv = got < 0 ? errno : EFBIG;
      close(fd);
      set_read_error(error, path, errsv);
      return FALSE;
    }
    g_string_append_len(text, buffer, got);
  }
  close(fd);
  *length_r = text->len;
  *text_r = g_string_free(g_steal_pointer(&text), FALSE);
  return TRUE;
}

/* 1-based line number of `position` in `text`. */
static guint line_of(const char *text, const char *position) {
  guint line = 1;
  for (const char *p = text; p < position; p++)
    line += *p == '\n';
  return line;
}

/* The file must be UTF-8 without NUL bytes. */
static gboolean check_encoding(const char *path, const char *text, gsize length,
                               GError **error) {
  const char *end = NULL;
  if (g_utf8_validate_len(text, length, &end))
    return TRUE;
  const char *line_start = end;
  while (line_start > text && line_start[-1] != '\n')
    line_start--;
  guint line = line_of(text, end);
  if (*end == '\0')
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                "%s:%u: the file contains a NUL byte (column %u); expected "
                "text: remove the byte",
                path, line, (guint)(end - line_start) + 1);
  else
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                "%s:%u: the file is not UTF-8 (byte 0x%02X at column %u); "
                "expected UTF-8 text: save the file as UTF-8",
                path, line, (guchar)*end, (guint)(end - line_start) + 1);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* Scanning lines                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
  PstConfigOrigins *origins; /* not owned */
  guint file;
  char *group;    /* owned, nullable: the current group */
  guint bad_line; /* 0 until a line GLib would refuse is seen */
  char *problem;  /* owned, nullable: why that line is refused */
} PstConfigScan;

static void scan_refuse(PstConfigScan *scan, guint line, char *problem) {
  if (scan->bad_line == 0) {
    scan->bad_line = line;
    scan->problem = problem;
  } else {
    g_free(problem);
  }
}

/* GLib's group name rule: non-empty, no brackets, no control characters. */
static gboolean is_group_name(const char *name) {
  if (*name == '\0')
    return FALSE;
  for (const char *p = name; *p; p++)
    if (*p == '[' || *p == ']' || g_ascii_iscntrl(*p))
      return FALSE;
  return TRUE;
}

/* GLib's key name rule: no '=', '[' or ']' except one "[locale]" suffix,
 * no blank at either end. */
static gboolean is_key_name(const char *name) {
  gsize span = strcspn(name, "=[]");
  if (span == 0 || name[0] == ' ' || name[span - 1] == ' ')
    return FALSE;
  if (name[span] == '\0')
    return TRUE;
  if (name[span] != '[')
    return FALSE;
  const char *p = name + span + 1;
  while (g_ascii_isalnum(*p) || strchr("-_.@", *p) != NULL || (*p & 0x80))
    p++;
  return *p == ']' && p[1] == '\0';
}

/* "[name]" with only blanks after the first ']'. */
static gboolean scan_group(PstConfigScan *scan, const char *line,
                           guint number) {
  const char *close = strchr(line, ']');
  if (line[0] != '[' || close == NULL ||
      close[1 + strspn(close + 1, " \t")] != '\0')
    return FALSE;
  g_autofree char *name = g_strndup(line + 1, close - line - 1);
  if (!is_group_name(name))
    scan_refuse(scan, number,
                g_strdup_printf("\"%s\" is not a valid group header; "
                                "expected [NAME] with a non-empty NAME "
                                "without brackets or control characters",
                                line));
  pst_config_origins_set_group(scan->origins, scan->file, name, number);
  g_free(scan->group);
  scan->group = g_steal_pointer(&name);
  return TRUE;
}

/* "key = value": the key is what precedes '=', less trailing blanks. */
static gboolean scan_key(PstConfigScan *scan, const char *line, guint number) {
  const char *equals = strchr(line, '=');
  if (equals == NULL || equals == line)
    return FALSE;
  gsize length = equals - line;
  while (length > 0 && g_ascii_isspace(line[length - 1]))
    length--;
  g_autofree char *key = g_strndup(line, length);
  if (scan->group == NULL)
    scan_refuse(scan, number,
                g_strdup_printf("\"%s\" comes before any [group] header; "
                                "expected a [group] line first",
                                line));
  else if (!is_key_name(key))
    scan_refuse(scan, number,
                g_strdup_printf("\"%s\" is not a valid key name; expected "
                                "letters, digits, '_' or '-'",
                                key));
  else
    pst_config_origins_set_key(scan->origins, scan->file, scan->group, key,
                               number);
  return TRUE;
}

static void scan_line(PstConfigScan *scan, char *line, guint number) {
  gsize length = strlen(line);
  if (length > 0 && line[length - 1] == '\r')
    line[length - 1] = '\0';
  while (g_ascii_isspace(*line))
    line++;
  if (*line == '\0' || *line == '#')
    return;
  if (scan_group(scan, line, number) || scan_key(scan, line, number))
    return;
  scan_refuse(scan, number,
              g_strdup_printf("\"%s\" is not a [group] header, a KEY = VALUE "
                              "line or a # comment",
                              line));
}

/* Records the origins of the file's groups and keys; returns the first
 * line GLib would refuse (0 for none) and why. */
static guint scan_text(PstConfigOrigins *origins, guint file, const char *text,
                       char **problem_r) {
  PstConfigScan scan = {origins, file, NULL, 0, NULL};
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    scan_line(&scan, lines[i], i + 1);
  g_free(scan.group);
  *problem_r = scan.problem;
  return scan.bad_line;
}

/* ------------------------------------------------------------------ */
/* Parsing and merging                                                 */
/* ------------------------------------------------------------------ */

/* Copies every group and key of `from` into `into`, replacing keys. */
static void merge_keyfile(GKeyFile *into, GKeyFile *from) {
  g_auto(GStrv) groups = g_key_file_get_groups(from, NULL);
  for (guint i = 0; groups[i] != NULL; i++) {
    /* GLib has no "add group": an added-then-removed key leaves it, so
     * an empty [listener:x] still counts as a group. */
    if (!g_key_file_has_group(into, groups[i])) {
      g_key_file_set_value(into, groups[i], "placeholder", "");
      g_key_file_remove_key(into, groups[i], "placeholder", NULL);
    }
    g_auto(GStrv) keys = g_key_file_get_keys(from, groups[i], NULL, NULL);
    for (guint j = 0; keys != NULL && keys[j] != NULL; j++) {
      g_autofree char *value =
          g_key_file_get_value(from, groups[i], keys[j], NULL);
      g_key_file_set_value(into, groups[i], keys[j], value);
    }
  }
}

/* Reads, checks and parses one file, then merges it into `merged`. */
static gboolean load_one(const char *path, GKeyFile *merged,
                         PstConfigOrigins *origins, GError **error) {
  g_autofree char *text = NULL;
  gsize length = 0;
  if (!read_text(path, &text, &length, error) ||
      !check_encoding(path, text, length, error))
    return FALSE;
  /* Some editors start UTF-8 files with a byte order mark. */
  const char *body = g_str_has_prefix(text, "\xEF\xBB\xBF") ? text + 3 : text;
  guint file = pst_config_origins_add_file(origins, path);
  g_autofree char *problem = NULL;
  guint bad_line = scan_text(origins, file, body, &problem);

  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_autoptr(GError) local = NULL;
  /* Without KEEP_TRANSLATIONS GLib silently drops "key[de]" lines; kept,
   * they are reported as the unknown keys they are. */
  if (!g_key_file_load_from_data(keyfile, body, -1,
                                 G_KEY_FILE_KEEP_TRANSLATIONS, &local)) {
    if (bad_line > 0)
      g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                  "%s:%u: %s; fix or remove the line", path, bad_line, problem);
    else
      g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                  "%s: not a valid keyfile: %s", path, local->message);
    return FALSE;
  }
  merge_keyfile(merged, keyfile);
  return TRUE;
}

static int compare_names(gconstpointer a, gconstpointer b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The drop-in paths of `directory`, sorted; an absent directory has none. */
static GPtrArray *list_dropins(const char *directory, GError **error) {
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local = NULL;
  g_autoptr(GDir) dir = g_dir_open(directory, 0, &local);
  if (dir == NULL) {
    if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_steal_pointer(&paths);
    g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                "%s: cannot read the drop-in directory: %s; check its "
                "permissions, or remove it",
                directory, local->message);
    return NULL;
  }
  const char *name;
  while ((name = g_dir_read_name(dir)) != NULL) {
    if (name[0] == '.' || !g_str_has_suffix(name, ".conf"))
      continue;
    if (paths->len == PST_CONFIG_MAX_DROPINS) {
      g_set_error(error, PST_CONFIG_ERROR, PST_CONFIG_ERROR_READ,
                  "%s: more than %d drop-in files; merge some of them",
                  directory, PST_CONFIG_MAX_DROPINS);
      return NULL;
    }
    g_ptr_array_add(paths, g_build_filename(directory, name, NULL));
  }
  g_ptr_array_sort(paths, compare_names);
  return g_steal_pointer(&paths);
}

gboolean pst_config_read_files(const char *path, GKeyFile **keyfile_r,
                               PstConfigOrigins **origins_r, GError **error) {
  g_autoptr(GKeyFile) merged = g_key_file_new();
  g_autoptr(PstConfigOrigins) origins = pst_config_origins_new();
  if (!load_one(path, merged, origins, error))
    return FALSE;
  g_autofree char *directory = g_path_get_dirname(path);
  g_autofree char *dropin_dir = g_build_filename(directory, "conf.d", NULL);
  g_autoptr(GPtrArray) dropins = list_dropins(dropin_dir, error);
  if (dropins == NULL)
    return FALSE;
  for (guint i = 0; i < dropins->len; i++)
    if (!load_one(dropins->pdata[i], merged, origins, error))
      return FALSE;
  *keyfile_r = g_steal_pointer(&merged);
  *origins_r = g_steal_pointer(&origins);
  return TRUE;
}
