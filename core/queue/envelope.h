/* envelope.h - the envelope of one message, as the SMTP session builds it and
 * the spool stores it.
 *
 * Plain data with one owner: every string is owned by the envelope and freed
 * by pst_envelope_free().  The SMTP session fills it during the transaction,
 * hands it to pst_spool_writer_commit_async(), and the spool reader builds
 * one from a queue file.  Addresses carry no angle brackets; the null
 * sender is "".
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* RFC 3461 NOTIFY, a bit set; 0 means the parameter was not given. */
typedef enum {
  PST_DSN_NOTIFY_NEVER = 1 << 0,
  PST_DSN_NOTIFY_SUCCESS = 1 << 1,
  PST_DSN_NOTIFY_FAILURE = 1 << 2,
  PST_DSN_NOTIFY_DELAY = 1 << 3,
} PstDsnNotify;

typedef enum {
  PST_DSN_RET_DEFAULT = 0,
  PST_DSN_RET_FULL,
  PST_DSN_RET_HDRS,
} PstDsnRet;

typedef enum {
  PST_BODY_DEFAULT = 0, /* no BODY= given */
  PST_BODY_7BIT,
  PST_BODY_8BITMIME,
} PstBodyType;

typedef struct {
  char *address;     /* owned */
  char *orcpt;       /* owned, nullable: "rfc822;user@example.org", decoded */
  guint notify;      /* PstDsnNotify bits, 0 = not given */
  GVariant *results; /* owned, nullable: recipient-scope results, a{sv} */
} PstEnvelopeRecipient;

typedef struct {
  char *sender;          /* owned, "" for <> */
  char *envid;           /* owned, nullable: RFC 3461 ENVID, xtext-decoded */
  PstDsnRet ret;         /* RFC 3461 RET */
  PstBodyType body;      /* RFC 6152 BODY */
  gboolean smtputf8;     /* RFC 6531 SMTPUTF8 given */
  guint64 size_declared; /* SIZE= from MAIL, 0 when absent */
  GPtrArray *recipients; /* owned, of PstEnvelopeRecipient* (freed with it) */

  /* Where the message came from, for Received:, logs and bounces. */
  char *client_address;  /* owned */
  char *client_hostname; /* owned, nullable */
  char *helo;            /* owned, nullable */
  char *listener;        /* owned */
  char *protocol;        /* owned: "ESMTP", "ESMTPSA", ... */
  char *auth_user;       /* owned, nullable */
  char *session_id;      /* owned */
  gint64 arrival_time;   /* g_get_real_time() when the DATA ended */

  GVariant *results; /* owned, nullable: transaction-scope results a{sv} */
  /* Why the message is in the hold queue: the text of the QUARANTINE
   * verdict that put it there ("Eicar-Test-Signature (milter clamav)"). */
  char *hold_reason; /* owned, nullable */
  /* A final DSN's link to the message it reports on: that message's
   * queue id (it is removed before the DSN is delivered).  Older spools
   * said it with listener "bounce" and this id as session_id
   * (pst_envelope_get_dsn_original() reads both). */
  char *dsn_original; /* owned, nullable */
} PstEnvelope;

/* An empty envelope: every string NULL (the session sets them), no
 * recipients, defaults for the rest. */
PstEnvelope *pst_envelope_new(void);
void pst_envelope_free(PstEnvelope *envelope);
/* Appends a recipient and returns it (owned by the envelope). */
PstEnvelopeRecipient *pst_envelope_add_recipient(PstEnvelope *envelope,
                                                 const char *address);
/* Deep copy. */
PstEnvelope *pst_envelope_copy(const PstEnvelope *envelope);
/* The queue id of the message a DSN reports on: `dsn_original`, or for a
 * DSN queued by an older version (listener "bounce"), its session_id;
 * NULL for any other message.  Borrowed. */
const char *pst_envelope_get_dsn_original(const PstEnvelope *envelope);
/* TRUE when every field is equal (strings by content, results by value). */
gboolean pst_envelope_equal(const PstEnvelope *a, const PstEnvelope *b);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstEnvelope, pst_envelope_free)

G_END_DECLS
