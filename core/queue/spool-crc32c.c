/* spool-crc32c.c - CRC32C (Castagnoli) for queue file checksums.
 *
 * Entry point: pst_spool_crc32c() (declared in spool-format.h), chainable
 * like zlib's crc32(): start with 0 and pass the previous result back in.
 * The writer checksums content as it streams through the main thread, so
 * the x86-64 SSE 4.2 instruction is used when the CPU has it (about ten
 * times faster than the table); the table is the portable fallback and the
 * reference the tests compare against.
 */
#include <string.h>

#include "queue/spool-format.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78u

static guint32 crc32c_table[256];

static void crc32c_table_init(void) {
  for (guint i = 0; i < 256; i++) {
    guint32 crc = i;
    for (guint bit = 0; bit < 8; bit++)
      crc = (crc >> 1) ^ ((crc & 1) ? CRC32C_POLY_REFLECTED : 0);
    crc32c_table[i] = crc;
  }
}

static guint32 crc32c_software(guint32 crc, const guint8 *p, gsize length) {
  while (length-- > 0)
    crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HAVE_SSE42 1
__attribute__((target("sse4.2"))) static guint32
crc32c_sse42(guint32 crc, const guint8 *p, gsize length) {
  guint64 wide = crc;
  for (; length >= 8; p += 8, length -= 8) {
    guint64 word;
    memcpy(&word, p, sizeof word);
    wide = __builtin_ia32_crc32di(wide, word);
  }
  crc = (guint32)wide;
  for (; length > 0; p++, length--)
    crc = __builtin_ia32_crc32qi(crc, *p);
  return crc;
}
#endif

/* 1 = table, 2 = SSE 4.2; chosen once. */
static gsize crc32c_implementation;

static gsize crc32c_choose(void) {
  if (g_once_init_enter(&crc32c_implementation)) {
    gsize chosen = 1;
    crc32c_table_init();
#ifdef CRC32C_HAVE_SSE42
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
      chosen = 2;
#endif
    g_once_init_leave(&crc32c_implementation, chosen);
  }
  return crc32c_implementation;
}

guint32 pst_spool_crc32c(guint32 crc, const void *data, gsize length) {
  g_return_val_if_fail(data != NULL || length == 0, crc);
  crc = ~crc;
#ifdef CRC32C_HAVE_SSE42
  if (crc32c_choose() == 2)
    return ~crc32c_sse42(crc, data, length);
#else
  crc32c_choose();
#endif
  return ~crc32c_software(crc, data, length);
}
