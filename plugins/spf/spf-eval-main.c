/* spf-eval-main.c - pst-spf-eval, the SPF plugin's evaluator process:
 * runs spf_evaluate() (libspf2) away from the daemon, so that a crash or
 * a memory corruption in libspf2 cannot reach postiliond.
 *
 * Started by spf-child.c as `pst-spf-eval PARENT-PID` with its socket to
 * the plugin on stdin.  It closes every other descriptor, dies with the
 * thread that started it (PR_SET_PDEATHSIG; the pool's spawner thread,
 * spf-pool.c) or when its socket ends, gains no privileges
 * (PR_SET_NO_NEW_PRIVS), and caps its CPU time, address space and
 * descriptors (RLIMIT_NOFILE 3).  After one warm-up evaluation (which
 * runs every lazy initialisation of GLib and libspf2) it installs a
 * seccomp filter that allows only what serving checks needs: reading and
 * writing its socket and stderr, memory, the clock, its own signals and
 * exit.  Any other system call (open, socket, execve, kill of another
 * process...) kills it with SIGSYS; the plugin then reports a temperror.
 * It never touches the network: each DNS question goes to the plugin as
 * a message and the answer comes back (spf-wire.c); the answer to the
 * checked domain's TXT question may come with the query, and so may the
 * answers the plugin had at hand to the questions its record names
 * (spf_known_collect()): those are answered without asking.  Queries are served
 * one after the other until the socket closes (the pool serves many
 * checks with one process).  Exit status: 0 at the end of the stream (or
 * when the plugin gave up on a check), 2 for a malformed message or a
 * lost socket.
 *
 * Built a second time for the tests only, as test-spf-eval-forbidden
 * (SPF_EVAL_FORBIDDEN_TEST): that one makes the system call a query's
 * local part names ("open@", "socket@", "execve@") after the filter is
 * in place, so the tests see the filter kill it; and after answering a
 * query from "unasked@" it waits 200 ms, then writes to the plugin
 * unasked, so the tests see an idle evaluator that speaks ended.
 */
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

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

/* The answer of the warm-up evaluation: nothing exists. */
static SpfAnswer *spf_eval_resolve_nothing(PstDnsType type, const char *name,
                                           gpointer user_data) {
  (void)type, (void)name, (void)user_data;
  return spf_answer_new(PST_DNS_NXDOMAIN);
}

/* One evaluation of each address family before the filter: GLib's type
 * system, GInetAddress and libspf2 initialise themselves on first use,
 * and may make calls the filter forbids then. */
static void spf_eval_warm_up(void) {
  static const char *const ips[] = {"192.0.2.1", "2001:db8::1",
                                    "::ffff:192.0.2.1"};
  for (gsize i = 0; i < G_N_ELEMENTS(ips); i++) {
    SpfQuery query = {
        .ip = ips[i],
        .helo = "warm.invalid",
        .sender = "warm@up.invalid",
        .identity = SPF_IDENTITY_MAIL_FROM,
        .receiver = "localhost",
        .max_lookups = 10,
        .max_void = 2,
        .resolve = spf_eval_resolve_nothing,
    };
    g_autoptr(SpfOutcome) outcome = spf_evaluate(&query);
    g_autoptr(GBytes) encoded = spf_wire_encode_outcome(outcome);
  }
}

/* Allows `name` (unknown names are skipped: not every architecture has
 * every call). */
static void spf_eval_allow(scmp_filter_ctx filter, const char *name) {
  int number = seccomp_syscall_resolve_name(name);
  if (number != __NR_SCMP_ERROR &&
      seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0) < 0)
    spf_eval_die("seccomp rule failed", NULL);
}

/* The calls serving checks needs, and nothing else: the socket (fd 0)
 * and stderr, memory, the clock, futexes (GLib), its own signals (abort)
 * and exit.  Everything else kills the process. */
static void spf_eval_seccomp(void) {
  static const char *const allowed[] = {
      "read",
      "write",
      "readv",
      "writev",
      "recvfrom",
      "sendto",
      "recvmsg",
      "sendmsg",
      "poll",
      "ppoll",
      "close",
      "fstat",
      "brk",
      "mmap",
      "munmap",
      "mremap",
      "madvise",
      "mprotect",
      "futex",
      "clock_gettime",
      "gettimeofday",
      "time",
      "getpid",
      "gettid",
      "uname",
      "getrandom",
      "rt_sigreturn",
      "rt_sigprocmask",
      "rt_sigaction",
      "sched_yield",
      "exit",
      "exit_group",
      "restart_syscall",
  };
  scmp_filter_ctx filter = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (filter == NULL)
    spf_eval_die("seccomp_init failed", NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(allowed); i++)
    spf_eval_allow(filter, allowed[i]);
  /* stdio's first write asks fstat of the descriptor (no path), a
   * message to stderr asks whether it is a terminal, and abort() signals
   * this process only. */
  pid_t self = getpid();
  if (seccomp_rule_add(
          filter, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
          SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)) < 0 ||
      seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                       SCMP_A1(SCMP_CMP_EQ, TCGETS)) < 0 ||
      seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self)) < 0 ||
      seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self)) < 0)
    spf_eval_die("seccomp rule failed", NULL);
#ifdef __SANITIZE_ADDRESS__
  /* LeakSanitizer's check at exit opens /proc files and traces threads:
   * run it now, while nothing is forbidden (it then skips the one at
   * exit).  AddressSanitizer's exit during a check (the plugin retired us
   * mid-conversation) removes its alternate signal stack. */
  __lsan_do_leak_check();
  spf_eval_allow(filter, "sigaltstack");
#endif
  if (seccomp_load(filter) < 0)
    spf_eval_die("seccomp_load failed", NULL);
  seccomp_release(filter);
}

#ifdef SPF_EVAL_FORBIDDEN_TEST
/* Test build only: the call a query's local part names. */
static void spf_eval_forbidden_call(const char *sender) {
  if (g_str_has_prefix(sender, "open@"))
    (void)!open("/etc/hostname", O_RDONLY);
  else if (g_str_has_prefix(sender, "socket@"))
    (void)!socket(AF_INET, SOCK_STREAM, 0);
  else if (g_str_has_prefix(sender, "execve@"))
    execve("/bin/true", (char *[]){"true", NULL}, (char *[]){NULL});
}

/* Test build only: after the reply to "unasked@", idle, it speaks. */
static void spf_eval_unasked_write(const char *sender) {
  if (!g_str_has_prefix(sender, "unasked@"))
    return;
  (void)!poll(NULL, 0, 200);
  (void)!write(SPF_EVAL_FD, "unasked", strlen("unasked"));
}
#endif

/* The plugin gave up on the check under way (cancelled) and closed our
 * socket: the end of our stream, as between checks: exit as main()
 * returns. */
static void spf_eval_retired(void) G_GNUC_NORETURN;
static void spf_eval_retired(void) {
  exit(0);
}

/* The SpfResolveFunc of the evaluator: the query's own answer for the
 * checked domain's TXT question (once), or one of the answers the plugin
 * had at hand and sent with the query, or else asks the plugin. */
static SpfAnswer *spf_eval_resolve(PstDnsType type, const char *name,
                                   gpointer user_data) {
  SpfAnswer *top = spf_wire_query_take_top(user_data, type, name);
  if (top != NULL)
    return top;
  SpfAnswer *known = spf_wire_query_find_known(user_data, type, name);
  if (known != NULL)
    return known;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) question = spf_wire_encode_question(type, name);
  if (!spf_wire_send(SPF_EVAL_FD, question, &error)) {
    /* The plugin gave up on this check (cancelled): nothing to say. */
    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
      spf_eval_retired();
    spf_eval_die("cannot ask", error);
  }
  g_autoptr(GBytes) reply = spf_wire_recv(SPF_EVAL_FD, 0, NULL, &error);
  if (reply == NULL && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED))
    spf_eval_retired();
  if (reply == NULL)
    spf_eval_die("no answer", error);
  SpfAnswer *answer = spf_wire_decode_answer(reply);
  if (answer == NULL)
    spf_eval_die("malformed answer", NULL);
  return answer;
}

int main(int argc, char **argv) {
  /* GLib converts its messages (g_strerror(), g_printerr()) from the
   * locale's charset unless it is UTF-8, and the conversion opens the
   * charset aliases and iconv's modules: after the filter, an error
   * message would be a SIGSYS instead of an exit with status 2.  Ours are
   * ASCII: GLib takes $CHARSET as the charset. */
  g_setenv("CHARSET", "UTF-8", TRUE);
  spf_eval_confine(argc == 2 ? argv[1] : NULL);
  spf_library_init();
  spf_eval_warm_up();
  spf_eval_seccomp();
  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) message = spf_wire_recv(SPF_EVAL_FD, 0, NULL, &error);
    if (message == NULL) {
      /* The end of the stream; a reset is one too: the plugin closed its
       * end with something of ours unread (we spoke unasked). */
      if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CLOSED) ||
          g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
        return 0;
      spf_eval_die("cannot read", error);
    }
    g_autoptr(SpfWireQuery) wire = spf_wire_decode_query(message);
    if (wire == NULL)
      spf_eval_die("malformed query", NULL);
#ifdef SPF_EVAL_FORBIDDEN_TEST
    spf_eval_forbidden_call(wire->sender);
#endif
    wire->query.resolve = spf_eval_resolve;
    wire->query.resolve_data = wire;
    g_autoptr(SpfOutcome) outcome = spf_evaluate(&wire->query);
    g_autoptr(GBytes) reply = spf_wire_encode_outcome(outcome);
    if (!spf_wire_send(SPF_EVAL_FD, reply, &error))
      spf_eval_die("cannot reply", error);
#ifdef SPF_EVAL_FORBIDDEN_TEST
    spf_eval_unasked_write(wire->sender);
#endif
  }
}
