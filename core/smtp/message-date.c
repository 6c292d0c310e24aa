/* message-date.c - RFC 5322 date-time formatting (see message-date.h).
 *
 * English names are spelled out here rather than taken from strftime's
 * %a/%b, which follow the locale: a header must read "Mon", not "lun.".
 */
#include "smtp/message-date.h"

char *pst_message_date_format(gint64 time) {
  static const char *const days[] = {"Mon", "Tue", "Wed", "Thu",
                                     "Fri", "Sat", "Sun"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  g_autoptr(GDateTime) date =
      g_date_time_new_from_unix_local(time / G_USEC_PER_SEC);
  gint64 offset = g_date_time_get_utc_offset(date) / G_TIME_SPAN_MINUTE;
  char sign = offset < 0 ? '-' : '+';
  offset = ABS(offset);
  return g_strdup_printf("%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
                         days[g_date_time_get_day_of_week(date) - 1],
                         g_date_time_get_day_of_month(date),
                         months[g_date_time_get_month(date) - 1],
                         g_date_time_get_year(date), g_date_time_get_hour(date),
                         g_date_time_get_minute(date),
                         g_date_time_get_second(date), sign, (int)(offset / 60),
                         (int)(offset % 60));
}
