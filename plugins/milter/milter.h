/* milter.h - what the milter plugin's files share.
 *
 * milter-config.c reads [plugin:milter] and [plugin:milter:NAME] into an
 * immutable, reference-counted MilterConfig (each session holds the one it
 * started on, so a SIGHUP never changes a session in progress);
 * milter-macros.c computes Postfix's macro values for a call;
 * milter-conn.c is one connection to one milter on the main loop;
 * milter.c is the plugin: hooks, the per-session sequence over the
 * milters, and the end-of-message actions.
 */
#pragma once

#include <gio/gio.h>
#include <postilion/plugin.h>

#include "milter-protocol.h"

G_BEGIN_DECLS

/* What a milter that is down, slow or garbled gets (Postfix's
 * milter_default_action). */
typedef enum {
  MILTER_DEFAULT_ACCEPT,
  MILTER_DEFAULT_TEMPFAIL,
  MILTER_DEFAULT_REJECT,
} MilterDefault;

typedef struct {
  char *name;                     /* owned: [plugin:milter:NAME] */
  char *socket;                   /* owned: as written, for logs */
  GSocketConnectable *address;    /* owned */
  guint connect_timeout_ms;       /* default 30 s */
  guint command_timeout_ms;       /* default 30 s */
  guint eom_timeout_ms;           /* default 5 min */
  MilterDefault default_action;   /* default tempfail */
  /* Macro names sent per stage (Postfix's milter_*_macros defaults). */
  GStrv macros[MILTER_MACROS_COUNT]; /* owned */
} MilterSpec;

typedef struct {
  GPtrArray *milters; /* owned, of MilterSpec*, in the order of `milters` */
  char *hostname;     /* owned: [server] hostname, for j and {daemon_name} */
} MilterConfig;

/* Reads and checks the plugin's groups; NULL with `error` naming the
 * group, key, value and what is expected. */
MilterConfig *milter_config_load(GKeyFile *keyfile, const char *group,
                                 GError **error);
MilterConfig *milter_config_ref(MilterConfig *config);
void milter_config_unref(MilterConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MilterConfig, milter_config_unref)

/* Parses one stage's `macros` list item "stage=name name ..." into `spec`;
 * pure, for milter-config.c and its tests. */
gboolean milter_config_parse_macros(const char *item, MilterSpec *spec,
                                    GError **error);
/* "inet:HOST:PORT", "inet:[V6]:PORT", "unix:PATH"; NULL when malformed. */
GSocketConnectable *milter_config_parse_socket(const char *socket);

/* --- Macros ------------------------------------------------------------ */

/* The session facts macros are made of, taken on the main thread. */
typedef struct {
  const char *hostname; /* our [server] hostname */
  PstCall *call;        /* the call the macros are sent for */
} MilterMacroContext;

/* Appends the values of `names` that are known now, as name/value pairs
 * (both owned by `pairs`).  Names without a value are left out, as Postfix
 * does. */
void milter_macros_collect(const MilterMacroContext *context,
                           const char *const *names, GPtrArray *pairs);

/* --- One connection to one milter -------------------------------------- */

typedef struct _MilterConn MilterConn;

/* What a reply wait ends with: a reply (`reply` set) or a failure of the
 * connection (`error` set: down, timed out, garbage), each exactly once
 * per wait. */
typedef void (*MilterReplyFunc)(MilterConn *conn, const MilterReply *reply,
                                const GError *error, gpointer user_data);

/* Connects, negotiates, and then calls `done` with reply NULL and error
 * NULL on success (or with the error).  `timeout_ms` bounds it all. */
MilterConn *milter_conn_new(const MilterSpec *spec, const char *session_id);
void milter_conn_open(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                      gpointer user_data);
/* Queues a frame (already encoded) for writing. */
void milter_conn_send(MilterConn *conn, GByteArray *frames);
/* The same, taking `frames`: with nothing queued it is written as it is,
 * without a copy (a body piece's buffer). */
void milter_conn_send_take(MilterConn *conn, GByteArray *frames);
/* Calls `done` (reply and error NULL) once everything queued has been
 * written to the socket, or with the error when the connection fails or
 * is not written within `timeout_ms` (the milter does not read): flow
 * control for frames that get no reply.  At once when nothing is
 * queued. */
void milter_conn_drain(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                       gpointer user_data);
/* Waits for the next reply frame, at most `timeout_ms` (PROGRESS replies
 * restart the clock and are not passed on). */
void milter_conn_expect(MilterConn *conn, guint timeout_ms, MilterReplyFunc done,
                        gpointer user_data);
/* Stops any wait (reply or drain) without calling its function, and closes the socket
 * after sending what is queued (QUIT when `quit`). */
void milter_conn_close(MilterConn *conn, gboolean quit);
gboolean milter_conn_is_open(MilterConn *conn);
const MilterNegotiation *milter_conn_get_negotiation(MilterConn *conn);
const MilterSpec *milter_conn_get_spec(MilterConn *conn);
void milter_conn_free(MilterConn *conn);

G_END_DECLS
