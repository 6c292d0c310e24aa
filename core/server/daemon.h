/* daemon.h - the daemon's entry point, behind postiliond's main().
 *
 * Exported from libpostilion.so.1 (not part of the plugin SDK: no SDK header
 * declares it) so that postiliond itself is a one-page main() and the whole
 * core, with the state plugins call into, lives in one shared object.
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* Parses the command line, loads the configuration, starts the listeners
 * and runs the main loop until SIGTERM/SIGINT.  Returns the exit status. */
PST_API int pst_daemon_main(int argc, char **argv);

G_END_DECLS
