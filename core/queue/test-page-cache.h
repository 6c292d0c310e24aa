/* test-page-cache.h - for unit tests only: drops a file's pages from the
 * page cache, as memory pressure does, to test readers that must not wait
 * for the disk (RWF_NOWAIT).  Included by test-queue-spool.c,
 * test-queue-content.c and core/deliver/test-deliver-content.c. */
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

/* Syncs `path` (so its pages are clean), drops its pages and checks with
 * mincore(2) that none stayed: FALSE when some did (tmpfs keeps them). */
static inline gboolean pst_test_evict_pages(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint(fd, >=, 0);
  struct stat st;
  g_assert_cmpint(fstat(fd, &st), ==, 0);
  g_assert_cmpint(fdatasync(fd), ==, 0);
  g_assert_cmpint(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), ==, 0);
  gsize pages = ((gsize)st.st_size + 4095) / 4096;
  void *map = mmap(NULL, (gsize)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  g_assert_true(map != MAP_FAILED);
  g_autofree unsigned char *resident = g_malloc0(pages + 16);
  g_assert_cmpint(mincore(map, (gsize)st.st_size, resident), ==, 0);
  gboolean evicted = TRUE;
  for (gsize i = 0; i < pages; i++)
    evicted = evicted && !(resident[i] & 1);
  munmap(map, (gsize)st.st_size);
  close(fd);
  return evicted;
}
