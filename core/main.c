/* main.c - postiliond: everything happens in pst_daemon_main()
 * (core/server/daemon.c). */
#include "server/daemon.h"

int main(int argc, char **argv) {
  return pst_daemon_main(argc, argv);
}
