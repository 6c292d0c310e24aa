/* replay.c - runs a fuzz target over its seed corpus without libFuzzer.
 *
 * Linked into every fuzz target in normal builds: each file in the corpus
 * directory given as argv[1] (or each file argument) is fed once to
 * LLVMFuzzerTestOneInput().  Under ASan+UBSan this turns the corpus into a
 * regression test.  Exits 0 when every input ran, 1 on an unreadable path.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  if (!g_file_get_contents(path, &contents, &length, &error)) {
    fprintf(stderr, "replay: %s\n", error->message);
    return 1;
  }
  LLVMFuzzerTestOneInput((const uint8_t *)contents, length);
  return 0;
}

int main(int argc, char **argv) {
  int failed = 0;
  guint count = 0;
  for (int i = 1; i < argc; i++) {
    if (!g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
      failed |= replay_file(argv[i]);
      count++;
      continue;
    }
    g_autoptr(GDir) dir = g_dir_open(argv[i], 0, NULL);
    const char *name;
    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *path = g_build_filename(argv[i], name, NULL);
      failed |= replay_file(path);
      count++;
    }
  }
  printf("replayed %u inputs\n", count);
  return failed;
}
