/* log.h - where the daemon's log lines go.
 *
 * Every module logs with GLib's g_message/g_warning/g_info/g_debug and starts
 * the text with the session or queue id ("4F2A1B: ..."), so one grep finds a
 * message's whole story.  pst_log_init() installs the writer: the systemd
 * journal when stderr is connected to it, stderr otherwise, and syslog when
 * the daemon detached from its terminal.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  PST_LOG_STDERR = 0, /* stderr, or the journal when stderr is a journal stream */
  PST_LOG_SYSLOG,     /* syslog(3), facility mail */
} PstLogTarget;

/* Installs the log writer.  `verbose` enables debug messages. */
void pst_log_init(PstLogTarget target, gboolean verbose);
gboolean pst_log_is_verbose(void);
/* TRUE when a g_debug() line would be written (verbose, or
 * G_MESSAGES_DEBUG asks for it): lines on hot paths check it first, as
 * GLib formats a message before the writer drops it. */
gboolean pst_log_debug_enabled(void);

/* "postiliond[PID]: PREFIXMESSAGE\n", the form of a line on stderr, put
 * into `buffer` when it fits `size` octets (no NUL is added).  Returns
 * the line's length either way. */
gsize pst_log_format_line(char *buffer, gsize size, long pid,
                          const char *prefix, const char *message,
                          gsize message_length);
/* Writes that line to stderr in one write(2). */
void pst_log_write_stderr(long pid, const char *prefix, const char *message);

/* g_message() for the lines written for every message or connection: the
 * same fields (PRIORITY, CODE_FILE, CODE_LINE, CODE_FUNC, MESSAGE,
 * GLIB_DOMAIN) through g_log_structured_array(), so the writer, the
 * journal and fatal masks see no difference, but the text is formatted
 * into a stack buffer by pst_vformat_into() (%s, %d, %i, %u, %c, %% by
 * hand) instead of g_strdup_vprintf(): a third of a line's cost. */
#define pst_log_message(...)                                                   \
  pst_log_message_standard(G_LOG_DOMAIN, __FILE__, G_STRINGIFY(__LINE__),      \
                           G_STRFUNC, __VA_ARGS__)
void pst_log_message_standard(const char *domain, const char *file,
                              const char *line, const char *func,
                              const char *format, ...) G_GNUC_PRINTF(5, 6);

G_END_DECLS
