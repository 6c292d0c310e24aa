/* milter-run.h - a session's milters and the run of one stage over them.
 *
 * milter-session.c keeps, per SMTP session, one MilterPeer per configured
 * milter (its connection and where it stands); milter-run.c runs one
 * hook call over the peers in order; milter-eom.c is the end of message:
 * header, body, end of body, and the edits; milter-body.c reads the body
 * for it, a piece at a time, on the plugin's thread pool.
 */
#pragma once

#include "milter.h"

G_BEGIN_DECLS

typedef struct {
  PstPlugin *plugin;
  MilterConfig *config;  /* owned: for new sessions */
  GHashTable *sessions;  /* PstSession* -> MilterSession* (owned) */
  GThreadPool *body_pool; /* owned: reads body pieces (milter-body.c) */
} MilterPlugin;

typedef enum {
  MILTER_PEER_ACTIVE,
  MILTER_PEER_MESSAGE_DONE, /* accepted this message: skipped until MAIL */
  MILTER_PEER_SESSION_DONE, /* accepted the session, or failed with
                             * default_action=accept: skipped to the end */
  MILTER_PEER_FAILED,       /* failed: every stage gets default_action */
} MilterPeerState;

typedef struct _MilterRun MilterRun;

typedef struct {
  const MilterSpec *spec; /* the session's config keeps it */
  MilterConn *conn;       /* owned */
  MilterPeerState state;
  gboolean in_message; /* MAIL was sent and no end of message since */
  guint32 steps;       /* negotiated SMFIP_* */
  guint32 actions;     /* negotiated SMFIF_* */
} MilterPeer;

typedef struct {
  MilterConfig *config; /* owned */
  GThreadPool *body_pool; /* borrowed: the plugin's */
  PstSession *session;
  char *session_id;  /* owned */
  GPtrArray *peers;  /* owned, of MilterPeer* */
  gboolean discard;  /* a milter said DISCARD for this message */
  gboolean discard_session; /* ... at CONNECT or HELO: every message */
  MilterRun *run;    /* nullable: the call in progress */
} MilterSession;

MilterSession *milter_session_new(MilterConfig *config, GThreadPool *body_pool,
                                  PstSession *session);
/* Ends the session: a call in progress is completed, QUIT sent to every
 * milter still open, the connections closed. */
void milter_session_end(MilterSession *ms);
/* The frames of the stage's macros, for `command`, per the milter's own
 * list (SETSYMLIST) or ours. */
void milter_session_add_macros(MilterSession *ms, MilterPeer *peer,
                               PstCall *call, MilterMacroStage stage,
                               char command, GByteArray *out);
const char *milter_default_to_string(MilterDefault action);

/* Starts the stage of `call` over the session's milters; returns the
 * verdict at once when nobody needs asking, else PENDING. */
PstVerdict milter_run_start(MilterSession *ms, PstCall *call);

/* --- The body, a piece at a time (milter-body.c) ------------------------- */

/* Threads of the plugin's pool that read body pieces. */
#define MILTER_BODY_READERS 4

typedef struct _MilterBody MilterBody;
/* One piece, as a whole SMFIC_BODY frame (owned by the callee); NULL at
 * the end of the body, or with `error` set when the spool cannot be
 * read.  Main thread. */
typedef void (*MilterBodyFunc)(GByteArray *frame, const GError *error,
                               gpointer user_data);

GThreadPool *milter_body_pool_new(void);
/* The body as the plugins before (and the milters before) left it; NULL
 * with `error` set when the spooled message cannot be read. */
MilterBody *milter_body_open(PstMessage *message, GThreadPool *pool,
                             GError **error);
/* Reads the next piece (at most MILTER_BODY_CHUNK octets) on the pool and
 * calls `done` with it on the calling thread's main context; one read at
 * a time. */
void milter_body_read(MilterBody *body, MilterBodyFunc done,
                      gpointer user_data);
/* Frees the body; a read in flight is dropped and its `done` never
 * called. */
void milter_body_free(MilterBody *body);

/* --- For milter-eom.c ---------------------------------------------------- */

/* A refusal or disposition decided by a reply; `code` 0 = standard. */
typedef struct {
  PstVerdict verdict;
  guint code;
  char *enhanced; /* owned, nullable */
  char *text;     /* owned, nullable */
  gboolean disconnect;
} MilterDecision;

struct _MilterRun {
  MilterSession *ms;
  PstCall *call;
  PstStage stage;
  guint index;       /* the peer being asked */
  gulong cancel_id;  /* "cancelled" handler on the call's cancellable */
  MilterDecision decision;
  char *quarantine;  /* owned, nullable: the first quarantine reason */
  /* EOM: the current peer's progress and its edits. */
  MilterBody *body;       /* owned, nullable: the current peer's reader */
  guint header_index;
  GPtrArray *edits;       /* owned, of MilterReply*: until the final reply */
};

/* Ends the current peer with a failure (`error`): logs it once, applies
 * default_action. */
void milter_run_peer_failed(MilterRun *run, MilterPeer *peer,
                            const char *what, const GError *error);
/* Goes on with the next peer, or finishes. */
void milter_run_next_peer(MilterRun *run);
/* Finishes the call with the decision made so far. */
void milter_run_finish(MilterRun *run);
/* How long a wait at this point may take: `timeout_ms`, but never past
 * the call's deadline. */
guint milter_run_timeout(MilterRun *run, guint timeout_ms);
/* Handles a reply that ends a stage for the current peer (accept,
 * continue, reject, tempfail, code, discard ...); FALSE when the reply
 * makes no sense there (the caller fails the peer). */
gboolean milter_run_take_reply(MilterRun *run, MilterPeer *peer,
                               const MilterReply *reply);

/* EOM (milter-eom.c): starts the current peer's end of message. */
void milter_eom_start_peer(MilterRun *run, MilterPeer *peer);

G_END_DECLS
