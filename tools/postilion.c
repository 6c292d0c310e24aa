/* postilion.c - the admin command: queue, check-config, sendmail.
 *
 *   postilion [-c FILE] queue list|show ID|flush [ID]|delete ID|hold ID|
 *                             release ID
 *   postilion [-c FILE] plugins [--config-only]
 *   postilion [-c FILE] check-config
 *   postilion [-c FILE] dmarc report [--day YYYY-MM-DD] [--dry-run DIR]|
 *                             expire
 *   postilion [-c FILE] dkim genkey DOMAIN SELECTOR [--type T] [--bits N]|
 *                            dns DOMAIN [SELECTOR]|testkey DOMAIN [SELECTOR]
 *   postilion [-c FILE] sendmail [sendmail options] [recipient ...]
 *   sendmail ...            (a link to postilion: the same as above)
 *
 * Reading commands (list, show) read the spool directly, so they work with
 * the daemon down; changing commands go through the daemon's control
 * socket (SPOOL/control), whose file permissions decide who may use them,
 * and so does `plugins` (the chains in effect are the daemon's).
 * See postilion(8).  Exit status: 0 on success, sysexits(3) codes else.
 */
#include <stdio.h>
#include <string.h>

#include "tools/postilion-tool.h"

static int usage(void) {
  fputs("usage: postilion [-c FILE] queue list|show ID|flush [ID]|delete ID|"
        "hold ID|release ID\n"
        "       postilion [-c FILE] plugins [--config-only]\n"
        "       postilion [-c FILE] check-config\n"
#ifdef PST_TOOL_DMARC
        "       postilion [-c FILE] dmarc report [--day YYYY-MM-DD] "
        "[--dry-run DIR]\n"
        "       postilion [-c FILE] dmarc expire\n"
#endif
        "       postilion [-c FILE] dkim genkey DOMAIN SELECTOR "
        "[--type rsa|ed25519] [--bits 2048]\n"
        "       postilion [-c FILE] dkim dns|testkey DOMAIN [SELECTOR]\n"
        "       postilion [-c FILE] sendmail [options] [recipient ...]\n"
        "(see postilion(8))\n",
        stderr);
  return PST_EXIT_USAGE;
}

int main(int argc, char **argv) {
  g_autofree char *program = g_path_get_basename(argv[0]);
  if (g_str_equal(program, "sendmail"))
    return pst_tool_sendmail(PST_CONFIG_DEFAULT_PATH, argc, argv);
  const char *config_path = PST_CONFIG_DEFAULT_PATH;
  int i = 1;
  while (i < argc && argv[i][0] == '-') {
    if ((g_str_equal(argv[i], "-c") || g_str_equal(argv[i], "--config")) &&
        i + 1 < argc) {
      config_path = argv[i + 1];
      i += 2;
    } else if (g_str_equal(argv[i], "--help") || g_str_equal(argv[i], "-h")) {
      usage();
      return 0;
    } else {
      return usage();
    }
  }
  if (i >= argc)
    return usage();
  const char *command = argv[i];
  if (g_str_equal(command, "sendmail"))
    return pst_tool_sendmail(config_path, argc - i, argv + i);
  if (g_str_equal(command, "plugins")) {
    int status = pst_tool_plugins(config_path, argc - i, argv + i);
    return status == PST_EXIT_USAGE ? usage() : status;
  }
  if (g_str_equal(command, "check-config"))
    return i + 1 == argc ? pst_tool_check_config(config_path) : usage();
#ifdef PST_TOOL_DMARC
  gboolean dmarc = g_str_equal(command, "dmarc");
#else
  gboolean dmarc = FALSE;
#endif
  if (!g_str_equal(command, "queue") && !g_str_equal(command, "dkim") &&
      !dmarc)
    return usage();
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = pst_config_load(config_path, &error);
  if (config == NULL) {
    fprintf(stderr, "postilion: %s\n", error->message);
    return PST_EXIT_CONFIG;
  }
#ifdef PST_TOOL_DMARC
  if (dmarc)
    return pst_tool_dmarc(config, argc - i, argv + i);
#endif
#ifdef PST_TOOL_DKIM
  if (g_str_equal(command, "dkim"))
    return pst_tool_dkim(config, argc - i, argv + i);
#endif
  return pst_tool_queue(config, argc - i, argv + i);
}
