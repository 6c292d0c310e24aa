/* spf-child.c - the plugin's side of one evaluator process (pst-spf-eval).
 *
 * libspf2 parses records and names that attackers publish (and 1.2.10 has
 * known memory bugs there, CVE-2023-42118), so the plugin never runs it in
 * the daemon: spf_child_spawn() starts pst-spf-eval with one end of a
 * socketpair as its stdin; spf_child_evaluate() sends it the query,
 * answers each DNS question it asks with query->resolve (the core
 * resolver, on the calling worker thread, honouring the call's
 * cancellable), and decodes its outcome (spf-wire.c).  Any failure (the
 * child died, wrote garbage, asked something odd, missed the deadline)
 * is an error, and the caller discards the child with spf_child_free(),
 * which ends it (killing it if need be) and reaps it: no zombie is left
 * behind.
 *
 * The child is spawned with posix_spawn() (vfork semantics, safe in a
 * threaded daemon), so it runs as the daemon's unprivileged user; its
 * PR_SET_PDEATHSIG (set by the child) follows the spawning thread, which
 * is why spf-pool.c spawns from a thread of its own that outlives every
 * child.  A child serves many queries, one after the other; it counts
 * them and knows its age, which the pool retires it by.  Callers:
 * spf-pool.c (worker threads), test-spf-wire.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spf.h"

extern char **environ;

/* DNS questions one evaluation may ask: libspf2 asks at most ~10 terms of
 * 10 names each plus the records; anything far beyond is a runaway. */
#define SPF_CHILD_MAX_QUESTIONS 256

struct SpfChild {
  GPid pid;
  int fd;          /* the socket to the child */
  gint64 started;  /* monotonic microseconds */
  guint checks;    /* queries sent to it */
  gboolean reaped; /* it ended and waitpid() collected `status` */
  int status;
};

char *spf_child_default_path(void) {
  Dl_info info;
  if (dladdr((void *)spf_child_default_path, &info) == 0 ||
      info.dli_fname == NULL)
    return NULL;
  g_autofree char *dir = g_path_get_dirname(info.dli_fname);
  return g_build_filename(dir, "pst-spf-eval", NULL);
}

SpfChild *spf_child_spawn(const char *path, GError **error) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "socketpair: %s", g_strerror(saved));
    return NULL;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  /* dup2 clears FD_CLOEXEC on the copy: only 0, 1, 2 reach the child. */
  posix_spawn_file_actions_adddup2(&actions, fds[1], 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  g_autofree char *parent = g_strdup_printf("%d", (int)getpid());
  char *argv[] = {(char *)path, parent, NULL};
  pid_t pid = -1;
  int status = posix_spawn(&pid, path, &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (status != 0) {
    close(fds[0]);
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(status),
                "cannot start the SPF evaluator %s: %s", path,
                g_strerror(status));
    return NULL;
  }
  SpfChild *child = g_new0(SpfChild, 1);
  child->pid = pid;
  child->fd = fds[0];
  child->started = g_get_monotonic_time();
  return child;
}

GPid spf_child_get_pid(const SpfChild *child) {
  return child->pid;
}

guint spf_child_get_checks(const SpfChild *child) {
  return child->checks;
}

gint64 spf_child_get_started(const SpfChild *child) {
  return child->started;
}

/* Answers one DNS question of the child. */
static gboolean spf_child_answer(SpfChild *child, const SpfQuery *query,
                                 GBytes *message, GError **error) {
  PstDnsType type = 0;
  g_autofree char *name = spf_wire_decode_question(message, &type);
  if (name == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "the SPF evaluator sent a malformed DNS question");
    return FALSE;
  }
  g_autoptr(SpfAnswer) answer = query->resolve(type, name, query->resolve_data);
  g_autoptr(GBytes) reply = spf_wire_encode_answer(answer);
  return spf_wire_send(child->fd, reply, error);
}

SpfOutcome *spf_child_evaluate(SpfChild *child, const SpfQuery *query,
                               gint64 deadline, GCancellable *cancellable,
                               GError **error) {
  g_autoptr(GBytes) request = spf_wire_encode_query(query);
  child->checks++;
  if (!spf_wire_send(child->fd, request, error))
    return NULL;
  for (guint questions = 0;; questions++) {
    g_autoptr(GBytes) message =
        spf_wire_recv(child->fd, deadline, cancellable, error);
    if (message == NULL)
      return NULL;
    if (spf_wire_type(message) == SPF_WIRE_OUTCOME) {
      SpfOutcome *outcome = spf_wire_decode_outcome(message);
      if (outcome == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "the SPF evaluator sent a malformed outcome");
        return NULL;
      }
      /* Who was checked is the plugin's business, not the child's. */
      g_autoptr(SpfOutcome) own = spf_outcome_new_temperror(query, NULL);
      outcome->identity = g_steal_pointer(&own->identity);
      outcome->domain = g_steal_pointer(&own->domain);
      return outcome;
    }
    if (questions >= SPF_CHILD_MAX_QUESTIONS) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "the SPF evaluator asked more than %u DNS questions",
                  SPF_CHILD_MAX_QUESTIONS);
      return NULL;
    }
    if (!spf_child_answer(child, query, message, error))
      return NULL;
  }
}

static pid_t spf_child_wait(pid_t pid, int *status, int flags) {
  pid_t done;
  do
    done = waitpid(pid, status, flags);
  while (done < 0 && errno == EINTR);
  return done;
}

gboolean spf_child_is_running(SpfChild *child) {
  if (!child->reaped &&
      spf_child_wait(child->pid, &child->status, WNOHANG) == child->pid)
    child->reaped = TRUE;
  return !child->reaped;
}

char *spf_child_free(SpfChild *child) {
  if (child == NULL)
    return NULL;
  close(child->fd);
  /* A healthy child exits at the end of its stream, and one that just
   * died closed its socket before it became a zombie: give either 100 ms
   * to end on its own, so its own end is what gets reported. */
  int status = child->status;
  pid_t done =
      child->reaped ? child->pid : spf_child_wait(child->pid, &status, WNOHANG);
  for (guint i = 0; done == 0 && i < 100; i++) {
    g_usleep(1000);
    done = spf_child_wait(child->pid, &status, WNOHANG);
  }
  char *how = NULL;
  if (done == 0) {
    kill(child->pid, SIGKILL);
    done = spf_child_wait(child->pid, &status, 0);
    how = g_strdup("killed");
  }
  if (how != NULL) {
    /* Ours. */
  } else if (done < 0) {
    how = g_strdup_printf("not reaped: %s", g_strerror(errno));
  } else if (WIFSIGNALED(status)) {
    const char *name = sigabbrev_np(WTERMSIG(status));
    how = name != NULL
              ? g_strdup_printf("killed by signal SIG%s", name)
              : g_strdup_printf("killed by signal %d", WTERMSIG(status));
  } else {
    how = g_strdup_printf("exited with status %d", WEXITSTATUS(status));
  }
  g_free(child);
  return how;
}
