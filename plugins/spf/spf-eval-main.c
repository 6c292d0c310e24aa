/* spf-eval-main.c - pst-spf-eval, the SPF plugin's evaluator process:
 * runs spf_evaluate() (libspf2) away from the daemon, so that a crash or
 * a memory corruption in libspf2 cannot reach postiliond.
 *
 * Started by spf-child.c as `pst-spf-eval PARENT-PID` with its socket to
 * the plugin on stdin.  It closes every other descriptor, dies with the
 * thread that started it (PR_SET_PDEATHSIG) or when its socket ends,
 * gains no privileges (PR_SET_NO_NEW_PRIVS), and caps its CPU time,
 * address space and descriptors (RLIMIT_NOFILE 3: it cannot open a file or
 * a socket).  It never touches the network: each DNS question goes to the
 * plugin as a message and the answer comes back (spf-wire.c).  Queries
 * are served one after the other until the socket closes.  Exit status: 0
 * at the end of the stream (or when the plugin gave up on a check), 2 for
 * a malformed message or a lost socket.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "spf.h"

#define SPF_EVAL_FD 0
#define SPF_EVAL_CPU_SECONDS 30
#define SPF_EVAL_ADDRESS_SPACE (1024ul * 1024 * 1024)

static void spf_eval_die(const char *what, GError *error) {
  g_printerr("pst-spf-eval: %s%s%s\n", what, error != NULL ? ": " : "",
             error != NULL ? error->message : "");
  _exit(2);
}

static void spf_eval_limit(int resource, rlim_t value) {
  struct rlimit limit = {value, value};
  if (setrlimit(resource, &limit) < 0)
    spf_eval_die("setrlimit failed", NULL);
}

static void spf_eval_confine(const char *parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
      prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    spf_eval_die("prctl failed", NULL);
  /* The parent may have gone before PDEATHSIG was set. */
  if (parent == NULL || getppid() != (pid_t)atoi(parent))
    spf_eval_die("not started by postiliond (usage: pst-spf-eval PID)", NULL);
  close_range(3, ~0u, 0);
  spf_eval_limit(RLIMIT_CPU, SPF_EVAL_CPU_SECONDS);
  spf_eval_limit(RLIMIT_CORE, 0);
#ifndef __SANITIZE_ADDRESS__
  /* AddressSanitizer maps terabytes of shadow and opens files to report:
   * these two only without it. */
  spf_eval_limit(RLIMIT_AS, SPF_EVAL_ADDRESS_SPACE);
  spf_eval_limit(RLIMIT_NOFILE, 3);
#endif
}

/* The SpfResolveFunc of the evaluator: asks the plugin. */
static SpfAnswer *spf_eval_resolve(PstDnsType type, const char *name,
                                   gpointer user_data) {
  (void)user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) question = spf_wire_encode_question(type, name);
  if (!spf_wire_send(SPF_EVAL_FD, question, &error)) {
    /* The plugin gave up on this check (cancelled): nothing to say. */
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
      _exit(0);
    spf_eval_die("cannot ask", error);
  }
  g_autoptr(GBytes) reply = spf_wire_recv(SPF_EVAL_FD, 0, NULL, &error);
  if (reply == NULL)
    spf_eval_die("no answer", error);
  SpfAnswer *answer = spf_wire_decode_answer(reply);
  if (answer == NULL)
    spf_eval_die("malformed answer", NULL);
  return answer;
}

int main(int argc, char **argv) {
  spf_eval_confine(argc == 2 ? argv[1] : NULL);
  spf_library_init();
  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) message = spf_wire_recv(SPF_EVAL_FD, 0, NULL, &error);
    if (message == NULL) {
      if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED))
        return 0;
      spf_eval_die("cannot read", error);
    }
    g_autoptr(SpfWireQuery) wire = spf_wire_decode_query(message);
    if (wire == NULL)
      spf_eval_die("malformed query", NULL);
    wire->query.resolve = spf_eval_resolve;
    g_autoptr(SpfOutcome) outcome = spf_evaluate(&wire->query);
    g_autoptr(GBytes) reply = spf_wire_encode_outcome(outcome);
    if (!spf_wire_send(SPF_EVAL_FD, reply, &error))
      spf_eval_die("cannot reply", error);
  }
}
