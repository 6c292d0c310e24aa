/* queue-id.h - queue ids: unique, roughly time-sorted names for messages.
 *
 * An id is 16 characters of Crockford's base-32 alphabet (0-9 and A-Z
 * without I, L, O, U), most significant first, so that sorting ids as
 * strings sorts them by time:
 *
 *   7 chars  seconds since the epoch (35 bits)
 *   4 chars  microseconds within the second (20 bits)
 *   5 chars  random (25 bits)
 *
 * Within a process the time part never repeats or goes back (a clock step
 * backwards, or two ids in one microsecond, advance a logical clock by one
 * microsecond); across restarts and processes the random part makes a
 * collision vanishingly unlikely, and the spool still refuses to overwrite
 * (O_EXCL, RENAME_NOREPLACE).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PST_QUEUE_ID_LENGTH 16

/* Writes a fresh id and its NUL into `id`.  Thread-safe. */
void pst_queue_id_new(char id[PST_QUEUE_ID_LENGTH + 1]);
/* The id for `time_us` (microseconds since the epoch) and `random` (only
 * the low 25 bits are used).  Pure, for tests. */
void pst_queue_id_format(gint64 time_us, guint32 random,
                         char id[PST_QUEUE_ID_LENGTH + 1]);
/* TRUE when `text` looks like a queue id: 12 to 32 characters of [0-9A-Z].
 * Checked before a name from outside is used as a file name. */
gboolean pst_queue_id_is_valid(const char *text);

G_END_DECLS
