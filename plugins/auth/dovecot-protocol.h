/* dovecot-protocol.h - Dovecot's authentication client protocol (the
 * "auth-client" socket, protocol 1.x), as pure functions over strings:
 * what Dovecot sends is parsed here, what we send is built here.  No I/O,
 * no state: auth-dovecot.c drives the connection, test-dovecot-protocol.c
 * and fuzz/fuzz-dovecot-reply.c exercise the parser.
 *
 * A line is a command and TAB-separated parameters, ended by LF (not part
 * of the line given here).  Values use Dovecot's tab-escaping: \001
 * followed by 0 (NUL), 1 (\001), t (TAB), r (CR) or n (LF); any other
 * character after \001 stands for itself.  Unknown optional parameters
 * are ignored, as the protocol asks.
 *
 *   S: VERSION 1 2 / MECH NAME [flags] ... / SPID / CUID / COOKIE / DONE
 *   C: VERSION 1 2 / CPID pid
 *   C: AUTH id MECH service=smtp [secured] ... [resp=BASE64]
 *   S: CONT id BASE64 | OK id user=NAME ... | FAIL id [reason=..] [temp]
 *   C: CONT id BASE64 | CANCEL id
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The domain of the parser's errors (code 0: a line breaks the protocol). */
GQuark dovecot_protocol_error_quark(void);

/* Longest line either side sends (Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH). */
#define DOVECOT_MAX_LINE 16384
/* The protocol major version we speak, and the minor we announce. */
#define DOVECOT_MAJOR_VERSION 1
#define DOVECOT_MINOR_VERSION 2

typedef enum {
  DOVECOT_REPLY_UNKNOWN = 0, /* a command we do not know: ignore it */
  DOVECOT_REPLY_VERSION,
  DOVECOT_REPLY_MECH,
  DOVECOT_REPLY_SPID,
  DOVECOT_REPLY_CUID,
  DOVECOT_REPLY_COOKIE,
  DOVECOT_REPLY_DONE,
  DOVECOT_REPLY_OK,
  DOVECOT_REPLY_CONT,
  DOVECOT_REPLY_FAIL,
} DovecotReplyKind;

/* MECH flags (Dovecot's MECH_SEC_*). */
typedef enum {
  DOVECOT_MECH_PRIVATE = 1 << 0,   /* never to be offered to clients */
  DOVECOT_MECH_ANONYMOUS = 1 << 1, /* no credentials at all */
  DOVECOT_MECH_PLAINTEXT = 1 << 2, /* sends the password: TLS only */
  DOVECOT_MECH_DICTIONARY = 1 << 3,
  DOVECOT_MECH_ACTIVE = 1 << 4,
  DOVECOT_MECH_FORWARD_SECRECY = 1 << 5,
  DOVECOT_MECH_MUTUAL_AUTH = 1 << 6,
} DovecotMechFlags;

/* One line from Dovecot.  Fields not named for a kind are 0/NULL. */
typedef struct {
  DovecotReplyKind kind;
  char *command;      /* owned: the command word as sent */
  guint major, minor; /* VERSION */
  char *mechanism;    /* MECH: owned, a valid SASL name, upper case */
  guint mech_flags;   /* MECH: DovecotMechFlags */
  guint64 number;     /* SPID, CUID */
  guint id;           /* OK, CONT, FAIL: the request, never 0 */
  guint8 *data;       /* CONT: owned, the decoded challenge */
  gsize data_length;  /* CONT */
  char *user;         /* OK (required), FAIL (nullable): owned, printable
                       * UTF-8 without control characters */
  char *reason;       /* FAIL: owned, nullable, printable for a log */
  char *code;         /* FAIL: owned, nullable ("temp_fail", ...) */
  gboolean temporary; /* FAIL: "temp" or code=temp_fail */
} DovecotReply;

/* Parses one line (without its LF; `length` octets, NULs included).  NULL
 * with `error` when the line breaks the protocol: no command, a missing or
 * malformed id, version or mechanism, a CONT whose data is not base64, an
 * OK without a user, a user that is not printable UTF-8, a line longer
 * than DOVECOT_MAX_LINE or holding a NUL. */
DovecotReply *dovecot_reply_parse(const char *line, gsize length,
                                  GError **error);
void dovecot_reply_free(DovecotReply *reply);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DovecotReply, dovecot_reply_free)

/* What an AUTH line carries. */
typedef struct {
  guint id;               /* not 0 */
  const char *mechanism;  /* upper case */
  const char *service;    /* "smtp" */
  gboolean secured;       /* the client's connection is under TLS */
  const char *session;    /* nullable: our session id, for Dovecot's log */
  const char *local_ip;   /* nullable */
  guint16 local_port;     /* 0: not sent */
  const char *remote_ip;  /* nullable */
  guint16 remote_port;    /* 0: not sent */
  gboolean has_response;  /* send resp= (possibly empty) */
  const guint8 *response; /* the initial response, `length` octets */
  gsize length;
} DovecotAuthRequest;

/* "VERSION\t1\t2\nCPID\tPID\n". */
char *dovecot_request_handshake(guint pid);
/* "AUTH\tID\tMECH\tservice=...\n"; every value tab-escaped, the response
 * base64-encoded.  Holds the initial response: wipe it after sending. */
char *dovecot_request_auth(const DovecotAuthRequest *request);
/* "CONT\tID\tBASE64\n" (wipe after sending). */
char *dovecot_request_cont(guint id, const guint8 *data, gsize length);
/* "CANCEL\tID\n". */
char *dovecot_request_cancel(guint id);

/* Appends `text` tab-escaped. */
void dovecot_tab_escape(GString *out, const char *text);
/* Decodes `length` octets of tab-escaped text; the result may hold NULs,
 * its length in `*length_r`, and is NUL-terminated. */
char *dovecot_tab_unescape(const char *text, gsize length, gsize *length_r);
/* Strict base64 (RFC 4648, padded, no whitespace): NULL when `text` is
 * not; "" decodes to a zero-length, non-NULL buffer. */
guint8 *dovecot_base64_decode(const char *text, gsize *length_r);

G_END_DECLS
