/* log.c - the daemon's log writer.
 *
 * One line per event, in the form mail admins grep:
 *   postiliond[PID]: warning: 4F2A1B: ...
 * Under systemd (stderr is a journal stream) the structured fields go to
 * the journal as they are; after detaching, lines go to syslog(3) with the
 * mail facility, like every other MTA.  Debug lines are dropped unless the
 * daemon runs verbose or G_MESSAGES_DEBUG asks for them.
 *
 * Cost: a mail transaction logs a few lines, so a stderr line is put
 * together by hand in one buffer and goes out in one write(2) (which also
 * keeps lines whole when threads log at once); the process id is read
 * once, and again in a forked child (pthread_atfork).  The lines logged
 * for every message and connection use pst_log_message() (log.h), which
 * formats without printf into a stack buffer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "util/log.h"
#include "util/vformat.h"

static PstLogTarget log_target = PST_LOG_STDERR;
static gboolean log_verbose = FALSE;
static gboolean log_to_journal = FALSE;
/* getpid() of the process that logs, 0 until read (and in a new child). */
static gint log_pid = 0;

static void log_pid_forget(void) {
  g_atomic_int_set(&log_pid, 0);
}

static long log_get_pid(void) {
  gint pid = g_atomic_int_get(&log_pid);
  if (pid == 0) {
    pid = (gint)getpid();
    g_atomic_int_set(&log_pid, pid);
  }
  return pid;
}

static const char *log_level_prefix(GLogLevelFlags level) {
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return "fatal: ";
  if (level & G_LOG_LEVEL_WARNING)
    return "warning: ";
  if (level & G_LOG_LEVEL_DEBUG)
    return "debug: ";
  return "";
}

static int log_syslog_priority(GLogLevelFlags level) {
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return LOG_CRIT;
  if (level & G_LOG_LEVEL_WARNING)
    return LOG_WARNING;
  if (level & G_LOG_LEVEL_DEBUG)
    return LOG_DEBUG;
  return LOG_INFO;
}

static const char *log_find_message(const GLogField *fields, gsize n_fields) {
  for (gsize i = 0; i < n_fields; i++) {
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
      return fields[i].value;
  }
  return "";
}

static GLogWriterOutput log_writer(GLogLevelFlags level,
                                   const GLogField *fields, gsize n_fields,
                                   gpointer user_data) {
  if ((level & G_LOG_LEVEL_DEBUG) && !log_verbose &&
      g_log_writer_default_would_drop(level, NULL))
    return G_LOG_WRITER_HANDLED;
  if (log_to_journal &&
      g_log_writer_journald(level, fields, n_fields, user_data) ==
          G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;

  const char *message = log_find_message(fields, n_fields);
  if (log_target == PST_LOG_SYSLOG) {
    syslog(log_syslog_priority(level), "%s%s", log_level_prefix(level),
           message);
    return G_LOG_WRITER_HANDLED;
  }
  pst_log_write_stderr(log_get_pid(), log_level_prefix(level), message);
  return G_LOG_WRITER_HANDLED;
}

gsize pst_log_format_line(char *buffer, gsize size, long pid,
                          const char *prefix, const char *message,
                          gsize message_length) {
  static const char name[] = "postiliond[";
  char digits[24];
  gsize n_digits = 0;
  gboolean negative = pid < 0;
  unsigned long value = negative ? 0UL - (unsigned long)pid : (unsigned long)pid;
  do {
    digits[n_digits++] = (char)('0' + value % 10);
    value /= 10;
  } while (value > 0);
  if (negative)
    digits[n_digits++] = '-';
  gsize prefix_length = strlen(prefix);
  gsize length = sizeof name - 1 + n_digits + 3 + prefix_length +
                 message_length + 1;
  if (length > size)
    return length;
  char *p = buffer;
  memcpy(p, name, sizeof name - 1);
  p += sizeof name - 1;
  while (n_digits > 0)
    *p++ = digits[--n_digits];
  memcpy(p, "]: ", 3);
  p += 3;
  memcpy(p, prefix, prefix_length);
  p += prefix_length;
  memcpy(p, message, message_length);
  p += message_length;
  *p = '\n';
  return length;
}

/* All of `data` to stderr, across short writes and signals. */
static void log_write_all(const char *data, gsize length) {
  while (length > 0) {
    ssize_t n = write(STDERR_FILENO, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    data += n;
    length -= (gsize)n;
  }
}

void pst_log_write_stderr(long pid, const char *prefix, const char *message) {
  char stack[1024];
  gsize message_length = strlen(message);
  gsize length = pst_log_format_line(stack, sizeof stack, pid, prefix,
                                     message, message_length);
  if (length <= sizeof stack) {
    log_write_all(stack, length);
    return;
  }
  g_autofree char *heap = g_malloc(length);
  pst_log_format_line(heap, length, pid, prefix, message, message_length);
  log_write_all(heap, length);
}

void pst_log_message_standard(const char *domain, const char *file,
                              const char *line, const char *func,
                              const char *format, ...) {
  /* GLib's g_log_structured_standard(), with the message in a stack
   * buffer (a longer one is made with printf, as there). */
  char stack[1024];
  g_autofree char *heap = NULL;
  va_list args;
  va_start(args, format);
  gsize length = pst_vformat_into(stack, sizeof stack, format, args);
  va_end(args);
  const char *message = stack;
  if (length >= sizeof stack) {
    va_start(args, format);
    message = heap = g_strdup_vprintf(format, args);
    va_end(args);
  }
  GLogField fields[] = {
      {"PRIORITY", "5", -1}, /* GLib's for G_LOG_LEVEL_MESSAGE: LOG_NOTICE */
      {"CODE_FILE", file, -1},     {"CODE_LINE", line, -1},
      {"CODE_FUNC", func, -1},     {"MESSAGE", message, -1},
      {"GLIB_DOMAIN", domain, -1}, /* left out when NULL, as GLib does */
  };
  g_log_structured_array(G_LOG_LEVEL_MESSAGE, fields,
                         G_N_ELEMENTS(fields) - (domain == NULL ? 1 : 0));
}

void pst_log_init(PstLogTarget target, gboolean verbose) {
  log_target = target;
  log_verbose = verbose;
  log_to_journal =
      target == PST_LOG_STDERR && g_log_writer_is_journald(fileno(stderr));
  /* Once: GLib aborts when a second writer is set, and the daemon comes
   * here again when it detaches (syslog from then on). */
  static gsize installed = 0;
  if (g_once_init_enter(&installed)) {
    pthread_atfork(NULL, NULL, log_pid_forget);
    g_log_set_writer_func(log_writer, NULL, NULL);
    g_once_init_leave(&installed, 1);
  }
  if (target == PST_LOG_SYSLOG)
    openlog("postiliond", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

gboolean pst_log_is_verbose(void) {
  return log_verbose;
}

gboolean pst_log_debug_enabled(void) {
  /* GLib reads G_MESSAGES_DEBUG from the environment on every call, and
   * this is asked several times per message: read once.  (Nothing here
   * calls g_log_set_debug_enabled(), the other thing GLib consults.) */
  static gsize debug_env = 0; /* 1: dropped, 2: written */
  if (g_once_init_enter(&debug_env)) {
    gboolean drop =
        g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);
    g_once_init_leave(&debug_env, drop ? 1 : 2);
  }
  return log_verbose || debug_env == 2;
}
