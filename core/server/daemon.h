/* daemon.h - the daemon's entry point, behind postiliond's main().
 *
 * Not part of the plugin SDK, and not exported: postiliond is built from
 * core/main.c and core/server/ with the whole core archive, and exports
 * the SDK's functions itself (the version script of libpostilion.so.1)
 * under that library's soname, so the plugins it loads bind to the core
 * in the daemon (meson.build says why; scripts/abi-exports.py checks both
 * export lists).
 */
#pragma once

#include <postilion/plugin.h>

G_BEGIN_DECLS

/* Parses the command line, loads the configuration, starts the listeners
 * and runs the main loop until SIGTERM/SIGINT.  Returns the exit status. */
int pst_daemon_main(int argc, char **argv);

G_END_DECLS
