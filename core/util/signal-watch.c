/* signal-watch.c - POSIX signals handled on a main loop (see
 * signal-watch.h).
 *
 * Why not g_unix_signal_add(): GLib makes one source per signal, each
 * with prepare and check functions, and the main loop walks every
 * attached source twice in every iteration (a few hundred instructions
 * a source, several iterations per relayed message): the daemon's three
 * signals cost it about 600 instructions per iteration, for events that
 * come a few times a day.  Here one descriptor source serves them all,
 * and a descriptor source has neither function.
 *
 * The handler (any thread, async-signal-safe) marks its signal pending
 * and writes the process's eventfd; the source, woken by it, drains the
 * eventfd and then runs the callback of every signal it finds pending,
 * clearing the mark first.  A signal delivered while the callback runs
 * marks it again and is seen at the next wake-up.  The marks live in
 * this process's memory: a forked child that gets a signal before exec
 * writes the shared eventfd, but marks nothing here, so the daemon sees
 * a wake-up with nothing pending, never a signal it was not sent.
 *
 * Invariants: `pending[s]` is 0 or 1, set by the handler, cleared only by
 * the source; the eventfd is made once and never closed.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "util/signal-watch.h"

#define WATCH_SIGNALS_MAX 8

typedef struct {
  int signals[WATCH_SIGNALS_MAX];
  guint n_signals;
  PstSignalFunc func;
  gpointer user_data;
} SignalWatch;

static gint pending[NSIG];
static int wake_fd = -1; /* eventfd, set once before any handler */

static void signal_handler(int signum) {
  int saved = errno;
  g_atomic_int_set(&pending[signum], 1);
  uint64_t one = 1;
  /* EAGAIN only when the counter is full: then the source is due anyway. */
  ssize_t ignored = write(wake_fd, &one, sizeof one);
  (void)ignored;
  errno = saved;
}

static gboolean signal_watch_dispatch(gint fd, GIOCondition condition,
                                      gpointer user_data) {
  SignalWatch *watch = user_data;
  uint64_t count;
  while (read(fd, &count, sizeof count) < 0 && errno == EINTR)
    ;
  for (guint i = 0; i < watch->n_signals; i++) {
    int signum = watch->signals[i];
    if (g_atomic_int_compare_and_exchange(&pending[signum], 1, 0))
      watch->func(signum, watch->user_data);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean signal_watch_wake_fd(GError **error) {
  if (wake_fd >= 0)
    return TRUE;
  wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd >= 0)
    return TRUE;
  int saved = errno;
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
              "cannot make an eventfd for signals: %s", g_strerror(saved));
  return FALSE;
}

gboolean pst_signal_watch_add(const int *signals, guint n_signals,
                              PstSignalFunc func, gpointer user_data,
                              GError **error) {
  g_return_val_if_fail(n_signals > 0 && n_signals <= WATCH_SIGNALS_MAX, FALSE);
  if (!signal_watch_wake_fd(error))
    return FALSE;
  SignalWatch *watch = g_new0(SignalWatch, 1);
  memcpy(watch->signals, signals, n_signals * sizeof *signals);
  watch->n_signals = n_signals;
  watch->func = func;
  watch->user_data = user_data;
  /* The source first: a signal caught before it is attached is seen as
   * soon as the loop runs (the eventfd stays readable). */
  GSource *source = g_unix_fd_source_new(wake_fd, G_IO_IN);
  g_source_set_callback(source, G_SOURCE_FUNC(signal_watch_dispatch), watch,
                        g_free);
  g_source_set_static_name(source, "postilion signals");
  g_source_attach(source, g_main_context_get_thread_default());

  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = signal_handler;
  sigfillset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (guint i = 0; i < n_signals; i++) {
    g_assert(signals[i] > 0 && signals[i] < NSIG);
    if (sigaction(signals[i], &action, NULL) < 0) {
      int saved = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                  "cannot catch signal %d: %s", signals[i], g_strerror(saved));
      for (guint k = 0; k < i; k++)
        signal(signals[k], SIG_DFL);
      g_source_destroy(source);
      g_source_unref(source);
      return FALSE;
    }
  }
  g_source_unref(source);
  return TRUE;
}
