/* session-private.h - the session struct, shared by the session's files.
 *
 * session.c          lifecycle, socket I/O, reply buffer, timers
 * session-commands.c the command table and the non-transaction commands
 * session-mail.c     MAIL and RCPT: the envelope
 * session-data.c     DATA, BDAT, end of message and the spool commit
 * session-stage.c    running a hook stage and turning its verdict into a reply
 * session-sdk.c      the SDK's pst_session_* accessors
 * session-xclient.c  XCLIENT: a trusted proxy passes the client's attributes
 * session-rdns.c     the client's verified reverse name, before CONNECT
 * session-authres.c  the Authentication-Results field (RFC 8601)
 * session-submission.c Date: and Message-ID: for submitted mail
 * session-tls.c      STARTTLS and implicit TLS: the core's side of TLS
 * session-auth.c     AUTH: the SASL exchange's framing, limits, outcome
 * xclient-parse.c    the pure parser of XCLIENT's argument (fuzzed)
 * received.c         the Received: header
 *
 * Ownership: the session owns its socket, buffers, envelope, spool writer
 * and results stores.  It is reference counted because pending hook runs
 * and spool commits can outlive the connection: each holds a reference.
 */
#pragma once

#include "hooks/hooks.h"
#include "queue/spool.h"
#include "session/session.h"
#include "session/xclient-parse.h"
#include "smtp/smtp-parse.h"

G_BEGIN_DECLS

/* Where the SMTP dialogue is.  Every change goes through
 * pst_session_set_state(), which logs it at debug level. */
typedef enum {
  PST_SESSION_STATE_CONNECT = 0, /* CONNECT hooks running, no banner yet */
  PST_SESSION_STATE_GREETED,     /* banner sent, no HELO/EHLO yet */
  PST_SESSION_STATE_READY,       /* HELO/EHLO done, no transaction */
  PST_SESSION_STATE_MAIL,        /* MAIL accepted, no recipient yet */
  PST_SESSION_STATE_RCPT,        /* at least one recipient */
  PST_SESSION_STATE_DATA,        /* reading DATA up to CRLF.CRLF */
  PST_SESSION_STATE_BDAT,        /* reading a BDAT chunk */
  PST_SESSION_STATE_REFUSED,     /* CONNECT refused: only QUIT is served */
  PST_SESSION_STATE_CLOSING,     /* flushing the last reply, then close */
  PST_SESSION_STATE_CLOSED,      /* socket closed, waiting for references */
  PST_SESSION_STATE_AUTH,        /* after a 334: the next line is SASL data */
} PstSessionState;

/* What the session waits for before it reads the next command. */
typedef enum {
  PST_SESSION_WAIT_NONE = 0,
  PST_SESSION_WAIT_HOOK,   /* a pending plugin call */
  PST_SESSION_WAIT_COMMIT, /* the spool commit of a message */
  PST_SESSION_WAIT_DNS,    /* the client's reverse name (session-rdns.c) */
  PST_SESSION_WAIT_TLS,    /* STARTTLS's 220 going out, or the handshake */
  PST_SESSION_WAIT_AUTH,   /* a SASL step, or the delay after a failure */
} PstSessionWait;

/* How the current transaction ends when it ends well. */
typedef enum {
  PST_DISPOSITION_QUEUE = 0,
  PST_DISPOSITION_HOLD,    /* QUARANTINE: the hold queue */
  PST_DISPOSITION_DISCARD, /* DISCARD: say 250, keep nothing */
} PstDisposition;

typedef void (*PstStageNextFunc)(PstSession *session,
                                 const PstHookOutcome *outcome);

typedef struct _PstSessionSource PstSessionSource;
typedef struct _PstSessionAuth PstSessionAuth;

/* What runs when the client's name is known (session-rdns.c). */
typedef void (*PstSessionRdnsDone)(PstSession *session);

struct _PstSession {
  volatile gint ref_count;
  char id[16];                       /* "s" + base32, for the logs */
  PstSessionState state;
  gsize content_read;                /* octets read in this DATA or BDAT
                                      * state (session.c: bulk priority) */
  PstSessionWait waiting;
  gboolean processing;               /* inside the input loop */
  gboolean shutting_down;            /* the daemon is stopping */

  PstGeneration *generation;         /* owned reference */
  const PstConfig *config;           /* generation->config */
  const PstListenerConfig *listener; /* in config */
  PstSpool *spool;                   /* not owned */
  PstSessionClosedFunc closed;
  gpointer closed_data;

  /* The connection. */
  int fd;                            /* -1 once closed */
  PstTransport *transport;           /* owned: plain, then maybe TLS */
  GCancellable *handshake;           /* owned, nullable: TLS handshake */
  gboolean starttls_pending;         /* 220 queued, handshake not begun */
  gboolean read_pending;             /* TLS holds decrypted input */
  PstSessionSource *source;          /* owned: fd watch and idle timer */
  char *client_address;              /* owned */
  /* owned, nullable: client_address parsed, made on first use by
   * pst_session_get_client_inet_address() (any thread: set once by
   * compare-and-exchange); kept until the session ends, or XCLIENT
   * changes the address (as client_address: no hook runs then).  Not
   * dropped with a transaction: a plugin's worker may still be reading it
   * when a disconnect resets one.  A session that never reached MAIL
   * has none. */
  GInetAddress *client_inet;
  guint16 client_port;
  char *client_hostname;             /* owned, nullable: verified name */
  GCancellable *rdns_cancellable;    /* owned, nullable: name lookup */
  char *local_address;               /* owned */
  guint16 local_port;
  GByteArray *input;                 /* owned, nullable: unread bytes */
  gsize input_offset;                /* first unread byte in input */
  gboolean discarding_line;          /* skipping the rest of a long line */
  gboolean peer_closed;              /* read() returned 0 */
  GString *output;                   /* owned: replies not yet written */
  gsize output_offset;

  /* Dialogue state. */
  char *helo;                        /* owned, nullable */
  gboolean esmtp;
  gboolean tls;
  char *auth_user;                   /* owned, nullable */
  PstSessionAuth *auth;              /* owned, nullable: session-auth.c */
  gboolean relay_allowed;
  gboolean helo_optional;            /* a plugin let MAIL come before HELO */
  gboolean xclient_allowed;          /* connected from [server] xclient_hosts */
  PstDisposition session_disposition;/* a CONNECT/HELO DISCARD or QUARANTINE */
  guint errors;
  guint command_counts[PST_SMTP_VERB_COUNT];
  guint command_total;
  /* Commands answered with 4xx/5xx, per verb (the disconnect line's
   * "rcpt=0/1"): the verb being answered, and whether it already failed */
  guint command_failures[PST_SMTP_VERB_COUNT];
  guint command_failures_total;
  PstSmtpVerb answering;             /* PST_SMTP_VERB_COUNT: none */
  gboolean answering_failed;
  /* The timeout (session.c, pst_session_touch): the deadline, and the
   * command count and state it was set for. */
  gint64 command_deadline;
  guint command_deadline_total;
  PstSessionState command_deadline_state;

  /* The current transaction; NULL outside one. */
  PstEnvelope *envelope;             /* owned, nullable */
  PstDisposition disposition;
  guint discarded_recipients;        /* RCPTs a plugin DISCARDed */
  PstSpoolWriter *writer;            /* owned, nullable: DATA/BDAT */
  PstDataReader *reader;             /* owned, nullable */
  GByteArray *header;                /* owned, nullable: the header block so far */
  gboolean header_complete;          /* the blank line was seen */
  gboolean header_overflow;          /* no blank line within max_header_size */
  guint64 header_length;             /* octets of the header block, at EOM */
  gboolean write_failed;             /* the spool refused a write */
  gboolean bdat_used;                /* this transaction used BDAT */
  guint64 bdat_remaining;            /* octets left in the current chunk */
  gboolean bdat_last;                /* the current chunk is LAST */
  gboolean bdat_discard;             /* the chunk is read and dropped */
  PstMessage *message;               /* owned, nullable: at EOM */
  PstSmtpPath *command_path;         /* owned, nullable: MAIL/RCPT in flight */
  PstRcptParams rcpt_params;         /* the RCPT in flight (owned strings) */

  /* Plugins. */
  /* Owned (session; transaction and recipients nullable); handed to every
   * stage run. */
  PstResultsStores results;
  PstChainRun *run;                  /* nullable: a pending hook run */
  PstStageNextFunc stage_next;       /* what to do when `run` ends */
  PstStage stage;                    /* the stage being run */
};

/* session.c */
PstSession *pst_session_ref(PstSession *session);
void pst_session_unref(PstSession *session);
void pst_session_set_state(PstSession *session, PstSessionState state);
/* Queues a reply line; `text` gets no CR/LF.  A 4xx/5xx counts as an
 * error, and past max_errors the session answers 421 and closes. */
void pst_session_reply(PstSession *session, guint code, const char *enhanced,
                       const char *format, ...) G_GNUC_PRINTF(4, 5);
void pst_session_reply_static(PstSession *session, const PstSmtpReply *reply);
/* Queues one line of a multi-line reply: "250-..." unless `last`. */
void pst_session_reply_line(PstSession *session, guint code, gboolean last,
                            const char *text);
/* Sends what is queued and closes the connection. */
void pst_session_close_after_reply(PstSession *session);
/* Counts a command received (for the disconnect line); the replies until
 * the next one answer it. */
void pst_session_count_command(PstSession *session, PstSmtpVerb verb);
/* Reads pipelined input again after an asynchronous step finished. */
void pst_session_resume(PstSession *session);
/* Idle timeout for the state: data or command. */
void pst_session_touch(PstSession *session);
/* Drops the transaction (RSET, end of message, refusal). */
void pst_session_reset_transaction(PstSession *session);

/* session-authres.c */
/* Our field's value from the session's auth.* results, read from the
 * stores as they are (no a{sv} of every result is built for it), or NULL
 * when none renders.  Rendered once per message, when the results are
 * final (no EOM hook runs after it). */
char *pst_session_authres_render(PstSession *session);
/* TRUE when the message needs header edits for Authentication-Results:
 * our field has a `value` (pst_session_authres_render()), or a client
 * field carries our authserv-id. */
gboolean pst_session_authres_needed(PstSession *session, GPtrArray *fields,
                                    const char *value);
/* Deletes the client's fields that carry our authserv-id (before EOM). */
void pst_session_authres_strip(PstSession *session, PstMessage *message);
/* Inserts our field on top (after EOM); nothing when `value` is NULL. */
void pst_session_authres_add(PstMessage *message, const char *value);

/* session-submission.c */
/* TRUE when a client we complete mail for (authenticated, allowed to
 * relay) sent a header block without Date: or Message-ID:. */
gboolean pst_session_submission_needed(PstSession *session, GPtrArray *fields);
/* Adds the missing Date: and Message-ID: for such a client (before EOM). */
void pst_session_submission_complete(PstSession *session, PstMessage *message);

/* session-rdns.c */
/* Looks up the client's forward-confirmed reverse name (unless disabled or
 * already known), then calls `done`, at once or later from the loop. */
void pst_session_lookup_client_name(PstSession *session,
                                    PstSessionRdnsDone done);

/* session-commands.c */
/* Replies more than one command sends: 503 before HELO/EHLO, 503 before
 * MAIL, 502 for a command this session does not offer (STARTTLS, AUTH). */
extern const PstSmtpReply pst_session_reply_need_helo;
extern const PstSmtpReply pst_session_reply_need_mail;
extern const PstSmtpReply pst_session_reply_not_offered;
/* Runs the CONNECT stage, then greets (or refuses) the client. */
void pst_session_start_connect(PstSession *session);
/* Runs one command line (without its line ending). */
void pst_session_dispatch_line(PstSession *session, const char *line,
                               gsize length);

/* session-mail.c */
void pst_session_command_mail(PstSession *session, const PstSmtpCommand *cmd);
void pst_session_command_rcpt(PstSession *session, const PstSmtpCommand *cmd);

/* session-data.c */
void pst_session_command_data(PstSession *session, const PstSmtpCommand *cmd);
void pst_session_command_bdat(PstSession *session, const PstSmtpCommand *cmd);
/* Consumes message bytes in DATA/BDAT; returns how many were used. */
gsize pst_session_feed_message(PstSession *session, const guint8 *data,
                               gsize length);

/* session-stage.c */
/* Replies for a stage that went well: the plugin's 2xx reply when an
 * ACCEPT carried one, the standard one otherwise. */
void pst_session_reply_success(PstSession *session,
                               const PstHookOutcome *outcome, guint code,
                               const char *enhanced, const char *text);
/* Runs `stage`; `next` gets the outcome (maybe before this returns). */
void pst_session_run_stage(PstSession *session, PstStage stage,
                           const PstHookArgs *args, PstStageNextFunc next);
/* Fires an event stage (QUEUED, DISCONNECT); nobody waits for it. */
void pst_session_fire_event(PstSession *session, PstStage stage,
                            PstMessage *message);
/* For a refusing outcome (REJECT, TEMPFAIL): sends the reply (the
 * plugin's or the standard one for the stage), logs the rejection, and
 * closes when asked.  Returns TRUE when the outcome refused. */
gboolean pst_session_outcome_refuses(PstSession *session, PstStage stage,
                                     const PstHookOutcome *outcome,
                                     const char *detail);
/* Logs "ID: reject: STAGE from [ADDR]:PORT: REPLY; from=<> to=<> ..." */
void pst_session_log_reject(PstSession *session, const char *stage,
                            guint code, const char *enhanced,
                            const char *text, const char *recipient,
                            const char *plugin);
/* Applies DISCARD/QUARANTINE of a non-refusing outcome to the
 * transaction (or to the whole session at CONNECT/HELO). */
void pst_session_apply_disposition(PstSession *session, PstStage stage,
                                   const PstHookOutcome *outcome);

/* Closes the connection at once, without a reply (a failed handshake). */
void pst_session_drop(PstSession *session);

/* session-tls.c */
/* TRUE when EHLO offers STARTTLS: a starttls listener, a TLS provider
 * loaded, and no TLS yet. */
gboolean pst_session_offers_starttls(PstSession *session);
/* The STARTTLS row of the command table. */
const PstSmtpReply *pst_session_check_starttls(PstSession *session);
void pst_session_command_starttls(PstSession *session,
                                  const PstSmtpCommand *cmd);
/* Starts the server handshake on the socket (implicit TLS at accept, or
 * once STARTTLS's 220 is written and the plaintext after it dropped). */
void pst_session_tls_begin(PstSession *session);

/* session-xclient.c (the parser: xclient-parse.h) */
/* Applies XCLIENT and restarts the session with CONNECT and a 220. */
void pst_session_command_xclient(PstSession *session,
                                 const PstSmtpCommand *cmd);

/* session-auth.c */
/* The EHLO keyword "AUTH MECH ..." or NULL when AUTH is not offered. */
char *pst_session_auth_ehlo_keyword(PstSession *session);
/* The command table's check and proceed for AUTH. */
const PstSmtpReply *pst_session_check_auth(PstSession *session);
void pst_session_command_auth(PstSession *session, const PstSmtpCommand *cmd);
/* One client line in PST_SESSION_STATE_AUTH (without its line ending). */
void pst_session_auth_line(PstSession *session, const char *line,
                           gsize length);
/* A line over PST_SMTP_MAX_AUTH_LINE: 500 5.5.6, the exchange ends. */
void pst_session_auth_line_too_long(PstSession *session);
/* STARTTLS forgets the client (RFC 3207 section 4.2): undoes a
 * successful AUTH's relay permission and results.  Call before clearing
 * auth_user. */
void pst_session_auth_forget(PstSession *session);
/* The connection ended: cancels a pending step or delay, closes the
 * plugin's side.  Idempotent. */
void pst_session_auth_finish(PstSession *session);

/* received.c */
/* Appends the Received: header for the current transaction. */
void pst_received_format(PstSession *session, const char *queue_id,
                         GString *out);
/* "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "SMTP", "UTF8SMTPS", ... */
const char *pst_session_protocol(PstSession *session);

G_END_DECLS
