/* durable.c - durable directory creation (see durable.h).
 *
 * Entry points: pst_durable_sync_directory(), pst_durable_mkdir_with_parents()
 * (the spool at start, its state/ directory, Maildirs at delivery).
 * Directories that already exist cost one stat() each and no sync.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/durable.h"

gboolean pst_durable_sync_directory(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc == 0;
}

int pst_durable_mkdir_with_parents(const char *path, int mode) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return 0;
    errno = ENOTDIR;
    return -1;
  }
  if (errno != ENOENT)
    return -1;
  g_autofree char *parent = g_path_get_dirname(path);
  if (!g_str_equal(parent, path) &&
      pst_durable_mkdir_with_parents(parent, mode) < 0)
    return -1;
  /* Made meanwhile by another thread (EEXIST): that thread's sync may not
   * be done yet, so this one syncs too. */
  if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
    return -1;
  return pst_durable_sync_directory(parent) ? 0 : -1;
}
