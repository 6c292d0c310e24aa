/* spf-child.c - the plugin's side of one evaluator process (pst-spf-eval),
 * driven from the main loop.
 *
 * libspf2 parses records and names that attackers publish (and 1.2.10 has
 * known memory bugs there, CVE-2023-42118), so the plugin never runs it in
 * the daemon: spf_child_spawn() starts pst-spf-eval with one end of a
 * socketpair as its stdin.  The plugin's end is non-blocking and watched
 * by one GSource per child on the main context, which also carries the
 * check's deadline (its ready time).  spf_child_evaluate() queues the
 * query and returns; as the child's messages arrive they are unframed by
 * spf_wire_frame_take() and decoded by spf-wire.c's pure decoders; each
 * DNS question is handed to the check's SpfLookupFunc (the core's async
 * resolver: spf_lookup_core()) and its answer written back when it comes;
 * the outcome ends the check.  No thread is on the path: an answer goes
 * resolver -> main loop -> socket -> evaluator.
 *
 * Any failure (the child died, wrote garbage, asked something odd, asked
 * a second question before its answer, missed the deadline) ends the
 * check with an error, and the caller must end the child with
 * spf_child_end() (main loop: 100 ms to exit, then SIGKILL, then reaped,
 * polled by a timer) or spf_child_free() (blocking, for shutdown): no
 * zombie is left behind.  A cancelled check (the client left) is noticed
 * at the child's next message or DNS answer.  Between checks the socket
 * stays watched: an idle child that dies (its socket hangs up) or writes
 * unasked is reported at once (spf_child_watch_idle()), so the pool ends
 * and replaces it before a check would find it gone.
 *
 * The child is spawned with posix_spawn() (vfork semantics) from the main
 * thread, so it runs as the daemon's unprivileged user and its
 * PR_SET_PDEATHSIG (set by the child) follows a thread that lives as long
 * as the daemon.  A child serves many queries, one after the other; it
 * counts them and knows its age, which the pool retires it by.
 *
 * Invariants: one check at a time per child; at most one DNS lookup out
 * per check (libspf2 asks one question at a time), identified by the
 * check's serial so a late answer to a failed check is dropped; a child is
 * reference counted only so that such a late answer finds it.  Callers:
 * spf-pool.c, test-spf-wire.c.
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

#include <glib-unix.h>

#include "spf.h"

extern char **environ;

/* DNS questions one evaluation may ask: libspf2 asks at most ~10 terms of
 * 10 names each plus the records; anything far beyond is a runaway. */
#define SPF_CHILD_MAX_QUESTIONS 256
/* How long an ended child has to exit on its own, and how often the
 * main loop looks. */
#define SPF_CHILD_GRACE_US (100 * 1000)
#define SPF_CHILD_POLL_MS 5

typedef struct {
  const SpfQuery *query;     /* borrowed: the caller's, until `done` */
  GCancellable *cancellable; /* owned, nullable */
  SpfLookupFunc lookup;
  gpointer lookup_data;
  SpfChildDone done;
  gpointer data;
  guint questions;
  gboolean asking; /* a DNS lookup is out */
} SpfCheck;

typedef struct {
  GSource base;
  SpfChild *child; /* borrowed: the child owns the source */
} SpfChildSource;

struct SpfChild {
  gint ref_count;
  GPid pid;
  int fd;          /* the socket to the child; -1 once closed */
  gint64 started;  /* monotonic microseconds */
  guint checks;    /* queries sent to it */
  gboolean reaped; /* it ended and waitpid() collected `status` */
  int status;
  GSource *source; /* owned: the socket and the deadline */
  gpointer fd_tag;
  GByteArray *in, *out; /* bytes read not yet unframed; not yet written */
  SpfCheck *check;      /* owned, nullable: the check under way */
  guint serial;         /* of the current check */
  SpfChildHangup hangup; /* nullable: it died or spoke while idle */
  gpointer hangup_data;
  /* Ending (spf_child_end()). */
  GSource *end_timer; /* owned, nullable */
  gint64 end_by;
  SpfChildEnded ended;
  gpointer ended_data;
};

static void spf_check_free(SpfCheck *check) {
  g_clear_object(&check->cancellable);
  g_free(check);
}

static SpfChild *spf_child_ref(SpfChild *child) {
  child->ref_count++;
  return child;
}

static void spf_child_close_socket(SpfChild *child) {
  if (child->source != NULL) {
    g_source_destroy(child->source);
    g_clear_pointer(&child->source, g_source_unref);
  }
  if (child->fd >= 0)
    close(child->fd);
  child->fd = -1;
}

static void spf_child_unref(SpfChild *child) {
  if (--child->ref_count > 0)
    return;
  spf_child_close_socket(child);
  g_byte_array_unref(child->in);
  g_byte_array_unref(child->out);
  g_free(child);
}

char *spf_child_default_path(void) {
  Dl_info info;
  if (dladdr((void *)spf_child_default_path, &info) == 0 ||
      info.dli_fname == NULL)
    return NULL;
  g_autofree char *dir = g_path_get_dirname(info.dli_fname);
  return g_build_filename(dir, "pst-spf-eval", NULL);
}

/* --- The core resolver -------------------------------------------------- */

typedef struct {
  PstDnsType type;
  char *name;            /* owned */
  SpfAnswerCache *cache; /* owned reference, nullable */
  SpfAnswer *hit;        /* owned, nullable: the cache's answer */
  SpfAnswerFunc done;
  gpointer done_data;
} SpfCoreLookup;

static void spf_core_lookup_free(SpfCoreLookup *lookup) {
  g_free(lookup->name);
  spf_answer_cache_unref(lookup->cache);
  spf_answer_unref(lookup->hit);
  g_free(lookup);
}

static void spf_lookup_core_done(PstDnsResult *result, gpointer data) {
  SpfCoreLookup *lookup = data;
  SpfAnswer *answer = spf_answer_from_dns_result(lookup->type, result);
  if (lookup->cache != NULL)
    spf_answer_cache_store(lookup->cache, lookup->type, lookup->name, answer,
                           pst_dns_result_get_ttl(result),
                           g_get_monotonic_time());
  pst_dns_result_free(result);
  lookup->done(answer, lookup->done_data);
  spf_core_lookup_free(lookup);
}

/* A question the cache answered: delivered from the main loop, as the
 * resolver's answers are. */
static gboolean spf_lookup_core_deliver(gpointer data) {
  SpfCoreLookup *lookup = data;
  lookup->done(g_steal_pointer(&lookup->hit), lookup->done_data);
  spf_core_lookup_free(lookup);
  return G_SOURCE_REMOVE;
}

void spf_lookup_core(PstDnsType type, const char *name,
                     GCancellable *cancellable, SpfAnswerFunc done,
                     gpointer done_data, gpointer user_data) {
  SpfAnswerCache *cache = user_data;
  SpfCoreLookup *lookup = g_new0(SpfCoreLookup, 1);
  lookup->type = type;
  lookup->name = g_strdup(name);
  lookup->done = done;
  lookup->done_data = done_data;
  if (cache != NULL) {
    lookup->cache = spf_answer_cache_ref(cache);
    lookup->hit =
        spf_answer_cache_lookup(cache, type, name, g_get_monotonic_time());
  }
  if (lookup->hit != NULL) {
    GSource *idle = g_idle_source_new();
    g_source_set_callback(idle, spf_lookup_core_deliver, lookup, NULL);
    g_source_attach(idle, g_main_context_get_thread_default());
    g_source_unref(idle);
    return;
  }
  /* Names built by macros are looked up as they are (RFC 7208 7.3). */
  pst_dns_lookup_full(type, name, PST_DNS_LOOKUP_VERBATIM, cancellable,
                      spf_lookup_core_done, lookup);
}

/* --- One check ---------------------------------------------------------- */

/* Ends the check: `done` gets the outcome, or NULL and `error`. */
static void spf_child_finish(SpfChild *child, SpfOutcome *outcome,
                             GError *error) {
  SpfCheck *check = g_steal_pointer(&child->check);
  g_source_set_ready_time(child->source, -1);
  g_source_modify_unix_fd(child->source, child->fd_tag, G_IO_IN);
  g_byte_array_set_size(child->out, 0);
  if (outcome == NULL) /* mid-conversation: of no use any more */
    spf_child_close_socket(child);
  check->done(child, outcome, error, check->data);
  g_clear_error(&error);
  spf_check_free(check);
}

static void spf_child_fail(SpfChild *child, GQuark domain, gint code,
                           const char *format, ...) G_GNUC_PRINTF(4, 5);
static void spf_child_fail(SpfChild *child, GQuark domain, gint code,
                           const char *format, ...) {
  va_list args;
  va_start(args, format);
  GError *error = g_error_new_valist(domain, code, format, args);
  va_end(args);
  spf_child_finish(child, NULL, error);
}

/* Queues `payload` for the child and watches for room to write it. */
static void spf_child_send(SpfChild *child, GBytes *payload) {
  g_autoptr(GError) error = NULL;
  if (!spf_wire_frame_append(child->out, payload, &error)) {
    spf_child_finish(child, NULL, g_steal_pointer(&error));
    return;
  }
  g_source_modify_unix_fd(child->source, child->fd_tag, G_IO_IN | G_IO_OUT);
}

typedef struct {
  SpfChild *child; /* owned reference */
  guint serial;    /* the check that asked */
} SpfQuestion;

static void spf_child_on_answer(SpfAnswer *answer, gpointer data) {
  SpfQuestion *question = data;
  SpfChild *child = question->child;
  g_autoptr(SpfAnswer) owned = answer;
  if (child->check != NULL && child->serial == question->serial) {
    child->check->asking = FALSE;
    if (g_cancellable_is_cancelled(child->check->cancellable)) {
      spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                     "check cancelled");
    } else {
      g_autoptr(GBytes) reply = spf_wire_encode_answer(answer);
      spf_child_send(child, reply);
    }
  }
  spf_child_unref(child);
  g_free(question);
}

/* One DNS question of the child: asked of the check's lookup. */
static void spf_child_ask(SpfChild *child, GBytes *message) {
  SpfCheck *check = child->check;
  PstDnsType type = 0;
  g_autofree char *name = spf_wire_decode_question(message, &type);
  if (name == NULL) {
    spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the SPF evaluator sent a malformed DNS question");
  } else if (check->asking) {
    spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the SPF evaluator asked before it had its answer");
  } else if (++check->questions > SPF_CHILD_MAX_QUESTIONS) {
    spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the SPF evaluator asked more than %u DNS questions",
                   SPF_CHILD_MAX_QUESTIONS);
  } else {
    check->asking = TRUE;
    SpfQuestion *question = g_new0(SpfQuestion, 1);
    question->child = spf_child_ref(child);
    question->serial = child->serial;
    check->lookup(type, name, check->cancellable, spf_child_on_answer, question,
                  check->lookup_data);
  }
}

/* The outcome: the check's end. */
static void spf_child_conclude(SpfChild *child, GBytes *message) {
  SpfOutcome *outcome = spf_wire_decode_outcome(message);
  if (outcome == NULL || child->in->len > 0 || child->check->asking) {
    spf_outcome_free(outcome);
    spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the SPF evaluator sent a malformed outcome");
    return;
  }
  /* Who was checked is the plugin's business, not the child's. */
  g_autoptr(SpfOutcome) own =
      spf_outcome_new_temperror(child->check->query, NULL);
  outcome->identity = g_steal_pointer(&own->identity);
  outcome->domain = g_steal_pointer(&own->domain);
  spf_child_finish(child, outcome, NULL);
}

/* Handles every whole message read so far, while the check lasts. */
static void spf_child_handle_input(SpfChild *child) {
  guint serial = child->serial;
  while (child->check != NULL && child->serial == serial) {
    g_autoptr(GBytes) message = NULL;
    g_autoptr(GError) error = NULL;
    if (!spf_wire_frame_take(child->in, &message, &error)) {
      spf_child_finish(child, NULL, g_steal_pointer(&error));
      return;
    }
    if (message == NULL)
      return;
    if (g_cancellable_is_cancelled(child->check->cancellable))
      spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                     "check cancelled");
    else if (spf_wire_type(message) == SPF_WIRE_OUTCOME)
      spf_child_conclude(child, message);
    else
      spf_child_ask(child, message);
  }
}

/* Reads what the child wrote; FALSE when the check failed. */
static gboolean spf_child_read(SpfChild *child) {
  for (;;) {
    guint8 buffer[4096];
    ssize_t n = recv(child->fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return TRUE;
    if (n < 0) {
      int saved = errno;
      spf_child_fail(child, G_IO_ERROR, g_io_error_from_errno(saved),
                     "cannot read from the SPF evaluator: %s",
                     g_strerror(saved));
      return FALSE;
    }
    if (n == 0) {
      spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_CLOSED,
                     "the SPF evaluator closed its socket");
      return FALSE;
    }
    /* One message at most is buffered whole: more is garbage. */
    if (child->in->len + (gsize)n > 2 * (SPF_WIRE_MAX_MESSAGE + 4)) {
      spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                     "the SPF evaluator wrote too much");
      return FALSE;
    }
    g_byte_array_append(child->in, buffer, (guint)n);
    if ((gsize)n < sizeof buffer)
      return TRUE;
  }
}

/* Writes what is queued; FALSE when the check failed. */
static gboolean spf_child_write(SpfChild *child) {
  while (child->out->len > 0) {
    ssize_t n = send(child->fd, child->out->data, child->out->len,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return TRUE;
    if (n < 0) {
      int saved = errno;
      spf_child_fail(child, G_IO_ERROR, g_io_error_from_errno(saved),
                     "cannot write to the SPF evaluator: %s",
                     g_strerror(saved));
      return FALSE;
    }
    g_byte_array_remove_range(child->out, 0, (guint)n);
  }
  g_source_modify_unix_fd(child->source, child->fd_tag, G_IO_IN);
  return TRUE;
}

static gboolean spf_child_dispatch(GSource *source, GSourceFunc callback,
                                   gpointer user_data) {
  (void)callback, (void)user_data;
  SpfChild *child = ((SpfChildSource *)source)->child;
  GIOCondition condition = g_source_query_unix_fd(source, child->fd_tag);
  if (child->check == NULL) {
    /* Idle: a hang-up or an error (it died, or closed its end), or
     * anything it wrote unasked.  Of no use any more: the pool (the
     * hangup callback) ends it and starts another now, not at the next
     * check; without a callback, the pool finds it not running. */
    if (condition & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL)) {
      char octet;
      if ((condition & G_IO_IN) &&
          recv(child->fd, &octet, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
        g_warning("plugin spf: SPF evaluator %d wrote unasked while idle: "
                  "ended",
                  (int)child->pid);
      spf_child_ref(child);
      spf_child_close_socket(child);
      if (child->hangup != NULL)
        child->hangup(child, child->hangup_data);
      spf_child_unref(child);
    }
    return G_SOURCE_CONTINUE;
  }
  spf_child_ref(child);
  gint64 ready = g_source_get_ready_time(source);
  gboolean ok = TRUE;
  if (ready >= 0 && g_source_get_time(source) >= ready) {
    spf_child_fail(child, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "the SPF evaluator did not answer in time");
    ok = FALSE;
  }
  if (ok && (condition & G_IO_OUT))
    ok = spf_child_write(child);
  if (ok && (condition & (G_IO_IN | G_IO_HUP | G_IO_ERR)) &&
      spf_child_read(child))
    spf_child_handle_input(child);
  spf_child_unref(child);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs spf_child_source_funcs = {
    .dispatch = spf_child_dispatch,
};

void spf_child_evaluate(SpfChild *child, const SpfQuery *query, gint64 deadline,
                        GCancellable *cancellable, SpfLookupFunc lookup,
                        gpointer lookup_data, SpfChildDone done,
                        gpointer data) {
  g_return_if_fail(child->check == NULL && child->fd >= 0);
  SpfCheck *check = g_new0(SpfCheck, 1);
  check->query = query;
  check->cancellable = cancellable != NULL ? g_object_ref(cancellable) : NULL;
  check->lookup = lookup;
  check->lookup_data = lookup_data;
  check->done = done;
  check->data = data;
  child->check = check;
  child->serial++;
  child->checks++;
  g_byte_array_set_size(child->in, 0);
  g_source_set_ready_time(child->source, deadline);
  g_autoptr(GBytes) request = spf_wire_encode_query(query);
  spf_child_send(child, request);
}

/* --- Start and end ------------------------------------------------------ */

static gboolean spf_child_spawn_process(SpfChild *child, const char *path,
                                        int child_fd, GError **error) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  /* dup2 clears FD_CLOEXEC on the copy: only 0, 1, 2 reach the child. */
  posix_spawn_file_actions_adddup2(&actions, child_fd, 0);
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
  if (status != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(status),
                "cannot start the SPF evaluator %s: %s", path,
                g_strerror(status));
    return FALSE;
  }
  child->pid = pid;
  return TRUE;
}

SpfChild *spf_child_spawn(const char *path, GError **error) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "socketpair: %s", g_strerror(saved));
    return NULL;
  }
  SpfChild *child = g_new0(SpfChild, 1);
  child->ref_count = 1;
  child->fd = fds[0];
  child->in = g_byte_array_new();
  child->out = g_byte_array_new();
  gboolean spawned = spf_child_spawn_process(child, path, fds[1], error);
  close(fds[1]);
  if (!spawned) {
    spf_child_unref(child);
    return NULL;
  }
  g_unix_set_fd_nonblocking(child->fd, TRUE, NULL);
  child->started = g_get_monotonic_time();
  child->source = g_source_new(&spf_child_source_funcs, sizeof(SpfChildSource));
  ((SpfChildSource *)child->source)->child = child;
  g_source_set_name(child->source, "spf evaluator");
  child->fd_tag = g_source_add_unix_fd(child->source, child->fd, G_IO_IN);
  g_source_attach(child->source, g_main_context_get_thread_default());
  return child;
}

void spf_child_watch_idle(SpfChild *child, SpfChildHangup hangup,
                          gpointer data) {
  child->hangup = hangup;
  child->hangup_data = data;
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

static pid_t spf_child_wait(pid_t pid, int *status, int flags) {
  pid_t done;
  do
    done = waitpid(pid, status, flags);
  while (done < 0 && errno == EINTR);
  return done;
}

gboolean spf_child_is_running(SpfChild *child) {
  if (child->fd < 0)
    return FALSE; /* its socket closed: of no use, whatever its state */
  if (!child->reaped &&
      spf_child_wait(child->pid, &child->status, WNOHANG) == child->pid)
    child->reaped = TRUE;
  return !child->reaped;
}

/* How a reaped child ended, a new string. */
static char *spf_child_describe(int status) {
  if (WIFSIGNALED(status)) {
    const char *name = sigabbrev_np(WTERMSIG(status));
    return name != NULL
               ? g_strdup_printf("killed by signal SIG%s", name)
               : g_strdup_printf("killed by signal %d", WTERMSIG(status));
  }
  return g_strdup_printf("exited with status %d", WEXITSTATUS(status));
}

/* Reaps the child if it ended (killing it first with `kill_now`); how it
 * ended, or NULL while it runs.  Never signals a pid already reaped. */
static char *spf_child_reap(SpfChild *child, gboolean kill_now) {
  if (!child->reaped &&
      spf_child_wait(child->pid, &child->status, WNOHANG) == child->pid)
    child->reaped = TRUE;
  if (child->reaped)
    return spf_child_describe(child->status);
  if (!kill_now)
    return NULL;
  kill(child->pid, SIGKILL);
  pid_t done = spf_child_wait(child->pid, &child->status, 0);
  child->reaped = TRUE;
  if (done < 0)
    return g_strdup_printf("not reaped: %s", g_strerror(errno));
  return g_strdup("killed");
}

char *spf_child_free(SpfChild *child) {
  if (child == NULL)
    return NULL;
  g_return_val_if_fail(child->check == NULL, NULL);
  spf_child_close_socket(child);
  /* A healthy child exits at the end of its stream, and one that just
   * died closed its socket before it became a zombie: give either 100 ms
   * to end on its own, so its own end is what gets reported. */
  char *how = NULL;
  for (guint i = 0; how == NULL && i < 100; i++) {
    how = spf_child_reap(child, FALSE);
    if (how == NULL)
      g_usleep(1000);
  }
  if (how == NULL)
    how = spf_child_reap(child, TRUE);
  spf_child_unref(child);
  return how;
}

/* Reports how an ending child ended and lets it go. */
static void spf_child_ended(SpfChild *child, char *how) {
  if (child->end_timer != NULL) {
    g_source_destroy(child->end_timer);
    g_clear_pointer(&child->end_timer, g_source_unref);
  }
  if (child->ended != NULL)
    child->ended(child->pid, how, child->ended_data);
  g_free(how);
  spf_child_unref(child);
}

static gboolean spf_child_end_poll(gpointer data) {
  SpfChild *child = data;
  gboolean late = g_get_monotonic_time() >= child->end_by;
  char *how = spf_child_reap(child, late);
  if (how == NULL)
    return G_SOURCE_CONTINUE;
  spf_child_ended(child, how);
  return G_SOURCE_CONTINUE; /* destroyed by spf_child_ended() */
}

SpfChild *spf_child_end(SpfChild *child, SpfChildEnded ended, gpointer data) {
  g_return_val_if_fail(child->check == NULL, NULL);
  spf_child_close_socket(child);
  child->ended = ended;
  child->ended_data = data;
  child->end_by = g_get_monotonic_time() + SPF_CHILD_GRACE_US;
  char *how = spf_child_reap(child, FALSE);
  if (how != NULL) {
    /* Already gone: reported from the main loop all the same. */
    child->end_by = 0;
    g_free(how);
  }
  child->end_timer = g_timeout_source_new(SPF_CHILD_POLL_MS);
  g_source_set_callback(child->end_timer, spf_child_end_poll, child, NULL);
  g_source_attach(child->end_timer, g_main_context_get_thread_default());
  return child;
}

void spf_child_end_now(SpfChild *child) {
  char *how = NULL;
  for (guint i = 0; how == NULL && g_get_monotonic_time() < child->end_by;
       i++) {
    how = spf_child_reap(child, FALSE);
    if (how == NULL)
      g_usleep(1000);
  }
  if (how == NULL)
    how = spf_child_reap(child, TRUE);
  spf_child_ended(child, how);
}
