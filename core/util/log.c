/* log.c - the daemon's log writer.
 *
 * One line per event, in the form mail admins grep:
 *   postiliond[PID]: warning: 4F2A1B: ...
 * Under systemd (stderr is a journal stream) the structured fields go to
 * the journal as they are; after detaching, lines go to syslog(3) with the
 * mail facility, like every other MTA.  Debug lines are dropped unless the
 * daemon runs verbose or G_MESSAGES_DEBUG asks for them.
 */
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

#include "util/log.h"

static PstLogTarget log_target = PST_LOG_STDERR;
static gboolean log_verbose = FALSE;
static gboolean log_to_journal = FALSE;

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
  /* One fprintf per line keeps lines whole when threads log at once. */
  fprintf(stderr, "postiliond[%d]: %s%s\n", (int)getpid(),
          log_level_prefix(level), message);
  fflush(stderr);
  return G_LOG_WRITER_HANDLED;
}

void pst_log_init(PstLogTarget target, gboolean verbose) {
  log_target = target;
  log_verbose = verbose;
  log_to_journal =
      target == PST_LOG_STDERR && g_log_writer_is_journald(fileno(stderr));
  if (target == PST_LOG_SYSLOG)
    openlog("postiliond", LOG_PID | LOG_NDELAY, LOG_MAIL);
  g_log_set_writer_func(log_writer, NULL, NULL);
}

gboolean pst_log_is_verbose(void) {
  return log_verbose;
}

gboolean pst_log_debug_enabled(void) {
  return log_verbose ||
         !g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN);
}
