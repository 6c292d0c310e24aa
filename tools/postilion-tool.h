/* postilion-tool.h - what the parts of the `postilion` command share. */
#pragma once

#include <glib.h>
#include <gio/gio.h>

#include "config/config.h"

G_BEGIN_DECLS

/* sysexits.h values, as sendmail uses them. */
enum {
  PST_EXIT_OK = 0,
  PST_EXIT_USAGE = 64,
  PST_EXIT_DATAERR = 65,
  PST_EXIT_NOINPUT = 66,
  PST_EXIT_NOUSER = 67,
  PST_EXIT_UNAVAILABLE = 69,
  PST_EXIT_SOFTWARE = 70,
  PST_EXIT_OSERR = 71,
  PST_EXIT_TEMPFAIL = 75,
  PST_EXIT_CONFIG = 78,
};

/* The daemon's control socket, SPOOL/control (control-client.c). */
char *pst_tool_control_path(const PstConfig *config);
/* Connects and sends `request` (one line, without its newline); the
 * connection to read the answer from, or NULL with `error` set and
 * `*unreachable_r` TRUE when nothing listens there (or it may not be
 * used), FALSE when the request could not be sent. */
GSocketConnection *pst_tool_control_send(const PstConfig *config,
                                         const char *request,
                                         gboolean *unreachable_r,
                                         GError **error);

/* `postilion queue ...` (queue-cmd.c); argv[0] is "queue". */
int pst_tool_queue(PstConfig *config, int argc, char **argv);
/* `postilion check-config` (queue-cmd.c). */
int pst_tool_check_config(const char *path);
/* `postilion plugins [--config-only]` (plugins-cmd.c); argv[0] is
 * "plugins". */
int pst_tool_plugins(const char *config_path, int argc, char **argv);
/* `postilion sendmail ...` and the sendmail link (sendmail.c); argv
 * starts with the program name. */
int pst_tool_sendmail(const char *config_path, int argc, char **argv);

/* A connection to the listener `sendmail` submits to (sendmail.c), or
 * NULL after saying why on stderr. */
GSocketConnection *pst_tool_smtp_connect(const PstConfig *config);
/* `sendmail -bs`: standard input and output spoken to that listener, both
 * ways, until either side ends (sendmail-stdio.c); an exit status. */
int pst_tool_sendmail_stdio(const PstConfig *config);

/* Submits `message` (CRLF lines, not dot-stuffed) from `sender` to
 * `recipients` (NULL-terminated) like `sendmail` does (sendmail.c); an
 * exit status, problems printed on stderr. */
int pst_tool_submit(const PstConfig *config, const char *sender,
                    const char *const *recipients, const char *message);
/* `postilion dmarc report ...` (dmarc-cmd.c); argv[0] is "dmarc". */
int pst_tool_dmarc(const PstConfig *config, int argc, char **argv);
/* `postilion dkim genkey|dns|testkey` (dkim-cmd.c, built with OpenSSL);
 * argv[0] is "dkim". */
int pst_tool_dkim(const PstConfig *config, int argc, char **argv);

G_END_DECLS
