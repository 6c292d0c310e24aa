/* queue-id.c - generating and checking queue ids (see queue-id.h).
 *
 * Entry points: pst_queue_id_new() for the spool writer,
 * pst_queue_id_format() (pure) and pst_queue_id_is_valid() for names read
 * from disk, the command line or a queue file.
 *
 * The last time part handed out is process state behind a mutex, so ids
 * from any thread are strictly increasing in their time part.
 */
#include "queue/queue-id.h"

/* Crockford's base 32: ascending in ASCII, so string order is value order. */
static const char id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Writes `count` base-32 digits of `value`, most significant first. */
static void id_put_digits(char *out, guint64 value, guint count) {
  for (guint i = count; i > 0; i--) {
    out[i - 1] = id_alphabet[value & 31];
    value >>= 5;
  }
}

void pst_queue_id_format(gint64 time_us, guint32 random,
                         char id[PST_QUEUE_ID_LENGTH + 1]) {
  guint64 now = time_us > 0 ? (guint64)time_us : 0;
  id_put_digits(id, now / G_USEC_PER_SEC, 7);
  id_put_digits(id + 7, now % G_USEC_PER_SEC, 4);
  id_put_digits(id + 11, random & 0x1ffffff, 5);
  id[PST_QUEUE_ID_LENGTH] = '\0';
}

void pst_queue_id_new(char id[PST_QUEUE_ID_LENGTH + 1]) {
  static GMutex lock;
  static gint64 last_us;
  gint64 now = g_get_real_time();
  g_mutex_lock(&lock);
  if (now <= last_us)
    now = last_us + 1;
  last_us = now;
  g_mutex_unlock(&lock);
  pst_queue_id_format(now, g_random_int(), id);
}

gboolean pst_queue_id_is_valid(const char *text) {
  if (text == NULL)
    return FALSE;
  gsize length = 0;
  for (; text[length] != '\0'; length++) {
    char c = text[length];
    if (!g_ascii_isdigit(c) && !g_ascii_isupper(c))
      return FALSE;
    if (length >= 32)
      return FALSE;
  }
  return length >= 12;
}
