/* state-journal.h - the per-recipient delivery state of a queued message.
 *
 * One append-only file per message, SPOOL/state/ID (doc/queue-format.md,
 * "Per-recipient delivery state").  The queue file stays immutable; each
 * delivery result is one record appended here and made durable before the
 * queue manager acts on it.  A recipient's state is its last record; a torn
 * record at the end (a crash while appending) fails its length or CRC check
 * and is ignored with everything after it, so a recipient is at worst
 * tried again, never lost.
 *
 * Record: length u32 LE | CRC32C of payload u32 LE | payload, where payload
 * is: version u8 (1) | status u8 | recipient index u32 | time i64 (µs) |
 * attempts u32 | three strings (u32 length + octets): the reply or
 * diagnostic, the relay, and the target (an alias expansion's mailbox, for
 * PST_RECIPIENT_TARGET_DONE).
 *
 * The codec is pure (encode/decode over buffers, fuzzable); the file
 * functions do blocking I/O and run on the queue manager's worker threads.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  PST_RECIPIENT_PENDING = 0,     /* never tried (no record) */
  PST_RECIPIENT_DELIVERED = 1,   /* final */
  PST_RECIPIENT_DEFERRED = 2,    /* temporary failure, retried */
  PST_RECIPIENT_BOUNCED = 3,     /* final: permanent failure or expired */
  PST_RECIPIENT_TARGET_DONE = 4, /* one alias target delivered */
  /* Not states but notes; a recipient's state is unchanged by them. */
  PST_RECIPIENT_DELAY_NOTIFIED = 5, /* a "delayed" DSN was queued for it */
  PST_RECIPIENT_DSN_QUEUED = 6,     /* message level (index 0): the final
                                     * DSN, queue id in `target`, is being
                                     * committed (written before it) */
  PST_RECIPIENT_DSN_PASSED = 7,     /* handed to a DSN-capable server with
                                     * the NOTIFY/ORCPT parameters: success
                                     * notices are that server's job now
                                     * (RFC 3461 6.2.1) */
} PstRecipientStatus;

typedef struct {
  PstRecipientStatus status;
  guint32 index;    /* the recipient's trailer index */
  gint64 time;      /* µs since the epoch */
  guint32 attempts; /* attempts so far, this one included */
  char *reply;      /* owned, nullable: diagnostic ("550 5.1.1 ...") */
  char *relay;      /* owned, nullable: "maildir", "lmtp", ... */
  char *target;     /* owned, nullable: the mailbox of a TARGET_DONE */
} PstStateRecord;

void pst_state_record_free(PstStateRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstStateRecord, pst_state_record_free)

/* The folded state of one recipient. */
typedef struct {
  PstRecipientStatus status; /* last status record, PENDING when none */
  guint32 attempts;
  gint64 time;      /* of the last record, 0 when none */
  char *reply;      /* owned, nullable: of the last status record */
  char *relay;      /* owned, nullable */
  GHashTable *done; /* owned: targets already delivered (set of char*) */
  gboolean delay_notified; /* a "delayed" DSN covered it already */
  gboolean dsn_passed;     /* the next server took over its DSN */
} PstRecipientState;

/* Appends the encoding of `record` to `buffer`. */
void pst_state_record_encode(const PstStateRecord *record, GByteArray *buffer);
/* Decodes the valid records at the start of `data`, in order, into
 * `records_r` (of PstStateRecord*); returns how many octets they span.
 * Stops at the first record that is short, too long or fails its CRC. */
gsize pst_state_records_decode(const guint8 *data, gsize length,
                               GPtrArray *records_r);
/* Folds records into one state per recipient (array of `n_recipients`
 * PstRecipientState, freed with pst_recipient_states_free()).  Records
 * naming an index >= n_recipients are ignored. */
PstRecipientState *pst_recipient_states_fold(GPtrArray *records,
                                             guint n_recipients);
void pst_recipient_states_free(PstRecipientState *states, guint n_recipients);
/* The queue id of the last PST_RECIPIENT_DSN_QUEUED record, or NULL
 * (borrowed from `records`). */
const char *pst_state_records_dsn_id(GPtrArray *records);
/* TRUE for DELIVERED and BOUNCED. */
gboolean pst_recipient_status_is_final(PstRecipientStatus status);
const char *pst_recipient_status_name(PstRecipientStatus status);

/* --- Files: SPOOL/state/ID ---------------------------------------------- */

/* Creates SPOOL/state (0700) when missing. */
gboolean pst_state_journal_prepare(const char *spool_directory, GError **error);
/* Appends the records and fdatasyncs the file (and fsyncs state/ when the
 * file was created).  Blocking. */
gboolean pst_state_journal_append(const char *spool_directory, const char *id,
                                  GPtrArray *records, GError **error);
/* Reads the journal's valid records (none when the file is missing).  When
 * `repair` is TRUE, a torn tail is truncated away.  Blocking. */
GPtrArray *pst_state_journal_read(const char *spool_directory, const char *id,
                                  gboolean repair, GError **error);
/* The same, and whether the file was there (`*exists_r`). */
GPtrArray *pst_state_journal_read_at(const char *spool_directory,
                                     const char *id, gboolean repair,
                                     gboolean *exists_r, GError **error);
/* Removes the journal (a missing one is fine).  Blocking. */
gboolean pst_state_journal_remove(const char *spool_directory, const char *id,
                                  GError **error);
/* Removes journals whose message is in neither queue/ nor hold/; returns
 * how many.  Called on start, after the spool's recovery. */
guint pst_state_journal_remove_orphans(const char *spool_directory);

G_END_DECLS
