/* vformat.c - printf-style text without printf when there is nothing to
 * format.
 *
 * Replies and log lines are written with printf-style functions, and most
 * of them per message are a fixed text or "%s" of one already made:
 * vasprintf() then cost more than the rest of the reply.  Pure; its unit
 * test checks it against g_strdup_vprintf().  Callers: the session's
 * replies (core/session/session.c).
 */
#include <string.h>

#include "util/vformat.h"

const char *pst_vformat_text(const char *format, va_list args,
                             char **owned_r) {
  *owned_r = NULL;
  if (strchr(format, '%') == NULL)
    return format;
  if (strcmp(format, "%s") == 0) {
    va_list copy;
    va_copy(copy, args);
    const char *text = va_arg(copy, const char *);
    va_end(copy);
    if (text != NULL)
      return text;
  }
  *owned_r = g_strdup_vprintf(format, args);
  return *owned_r;
}
