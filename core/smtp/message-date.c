/* message-date.c - RFC 5322 date-time formatting (see message-date.h).
 *
 * English names are spelled out here rather than taken from strftime's
 * %a/%b, which follow the locale: a header must read "Mon", not "lun.".
 * The local time comes from localtime_r(), which reads the time zone once
 * per process (GLib's local GTimeZone looks at /etc/localtime again for
 * every message: three file-system calls per Received: field).  Each
 * thread keeps the last second it formatted: a busy server writes many
 * Received: fields in the same second.
 */
#include <time.h>

#include "smtp/message-date.h"

/* The last date this thread formatted: messages come many per second. */
static __thread struct {
  gint64 second;
  char text[48];
} last_date = {G_MININT64, ""};

char *pst_message_date_format(gint64 time) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  time_t seconds = (time_t)(time / G_USEC_PER_SEC);
  if ((gint64)seconds == last_date.second)
    return g_strdup(last_date.text);
  struct tm tm;
  if (localtime_r(&seconds, &tm) == NULL)
    gmtime_r(&seconds, &tm); /* out of range: never for a real clock */
  long offset = tm.tm_gmtoff / 60;
  char sign = offset < 0 ? '-' : '+';
  offset = ABS(offset);
  g_snprintf(last_date.text, sizeof last_date.text,
             "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
             tm.tm_min, tm.tm_sec, sign, offset / 60, offset % 60);
  last_date.second = (gint64)seconds;
  return g_strdup(last_date.text);
}
