/* test-signal-watch.c - pst_signal_watch_add(): signals raised in the
 * process reach the callback on the main loop, once per signal whatever
 * the number of deliveries in between, and each callback its own. */
#include <signal.h>

#include "util/signal-watch.h"

typedef struct {
  guint usr1;
  guint usr2;
  guint winch;
} Seen;

static void count_signal(int signum, gpointer user_data) {
  Seen *seen = user_data;
  if (signum == SIGUSR1)
    seen->usr1++;
  else if (signum == SIGUSR2)
    seen->usr2++;
}

static void count_winch(int signum, gpointer user_data) {
  g_assert_cmpint(signum, ==, SIGWINCH);
  ((Seen *)user_data)->winch++;
}

/* Runs the default context until nothing is ready. */
static void drain(void) {
  while (g_main_context_iteration(NULL, FALSE))
    ;
}

static void test_signals(void) {
  static Seen seen;
  static const int two[] = {SIGUSR1, SIGUSR2};
  static const int one[] = {SIGWINCH};
  g_autoptr(GError) error = NULL;
  g_assert_true(pst_signal_watch_add(two, G_N_ELEMENTS(two), count_signal,
                                     &seen, &error));
  g_assert_no_error(error);
  g_assert_true(
      pst_signal_watch_add(one, G_N_ELEMENTS(one), count_winch, &seen, &error));

  /* Nothing runs inside the handler: only the loop calls back. */
  raise(SIGUSR1);
  g_assert_cmpuint(seen.usr1, ==, 0);
  drain();
  g_assert_cmpuint(seen.usr1, ==, 1);
  g_assert_cmpuint(seen.usr2, ==, 0);
  g_assert_cmpuint(seen.winch, ==, 0);

  /* Two deliveries before the loop runs: one call, like GLib's. */
  raise(SIGUSR2);
  raise(SIGUSR2);
  drain();
  g_assert_cmpuint(seen.usr2, ==, 1);

  /* Signals of both watches at once: each callback gets its own. */
  raise(SIGWINCH);
  raise(SIGUSR1);
  drain();
  g_assert_cmpuint(seen.usr1, ==, 2);
  g_assert_cmpuint(seen.usr2, ==, 1);
  g_assert_cmpuint(seen.winch, ==, 1);

  /* Nothing pending: a wake-up alone calls nobody. */
  drain();
  g_assert_cmpuint(seen.usr1 + seen.usr2 + seen.winch, ==, 4);
}

int main(int argc, char *argv[]) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/util/signal-watch/merged-and-separate", test_signals);
  return g_test_run();
}
