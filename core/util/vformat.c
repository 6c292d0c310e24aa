/* vformat.c - printf-style text without printf when there is nothing to
 * format.
 *
 * Replies and log lines are written with printf-style functions, and most
 * of them per message are a fixed text or "%s" of one already made:
 * vasprintf() then cost more than the rest of the reply.
 * pst_vformat_append() formats the conversions plugins' log lines use
 * (%s, %d, %i, %u, %c, %lu, %ld, %% without flags, width or precision)
 * by hand and leaves anything else to printf.  Pure; the unit test checks both
 * against g_strdup_vprintf().  Callers: the session's replies
 * (core/session/session.c), plugins' log lines (core/hooks/call.c), the
 * log lines written per message or connection (pst_log_message(),
 * core/util/log.c: into a stack buffer, pst_vformat_into()).
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

/* TRUE when every conversion in `format` is a bare %s, %d, %i, %u, %c,
 * %lu, %ld or %%: what pst_vformat_append() formats itself. */
static gboolean vformat_is_simple(const char *format) {
  for (const char *p = strchr(format, '%'); p != NULL; p = strchr(p, '%')) {
    switch (p[1]) {
    case 's':
    case 'd':
    case 'i':
    case 'u':
    case 'c':
    case '%':
      p += 2;
      break;
    case 'l': /* %lu and %ld: G_GUINT64_FORMAT and G_GINT64_FORMAT here */
      if (p[2] != 'u' && p[2] != 'd')
        return FALSE;
      p += 3;
      break;
    default:
      return FALSE;
    }
  }
  return TRUE;
}

/* The text being made, gathered in a small buffer so that the GString
 * grows once or twice per line, not once per piece. */
typedef struct {
  GString *out; /* nullable: then the text goes to `fixed` */
  gsize len;
  char buffer[256];
  char *fixed; /* pst_vformat_into()'s buffer, `fixed_size` octets */
  gsize fixed_size;
  gsize total; /* octets of text so far, written or not */
} VformatOut;

static void vformat_flush(VformatOut *out) {
  if (out->out != NULL)
    g_string_append_len(out->out, out->buffer, (gssize)out->len);
  out->len = 0;
}

static void vformat_put(VformatOut *out, const char *text, gsize length) {
  if (out->out == NULL) {
    /* Into the caller's buffer, as much as fits before its NUL. */
    if (out->total + 1 < out->fixed_size) {
      gsize room = out->fixed_size - 1 - out->total;
      memcpy(out->fixed + out->total, text, MIN(length, room));
    }
    out->total += length;
    return;
  }
  if (out->len + length > sizeof out->buffer) {
    vformat_flush(out);
    if (length > sizeof out->buffer) {
      g_string_append_len(out->out, text, (gssize)length);
      return;
    }
  }
  memcpy(out->buffer + out->len, text, length);
  out->len += length;
}

static void vformat_put_unsigned(VformatOut *out, unsigned long value) {
  char digits[PST_DECIMAL_MAX];
  vformat_put(out, digits, pst_format_decimal(digits, value));
}

static void vformat_put_int(VformatOut *out, int value) {
  if (value < 0)
    vformat_put(out, "-", 1);
  vformat_put_unsigned(out, value < 0 ? 0UL - (unsigned long)(long)value
                                      : (unsigned long)value);
}

/* The conversions of a simple format (vformat_is_simple()) into `text`. */
static void vformat_run(VformatOut *text, const char *format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  const char *p = format;
  for (const char *percent; (percent = strchr(p, '%')) != NULL;
       p = percent + 2) {
    vformat_put(text, p, (gsize)(percent - p));
    if (percent[1] == 'l') {
      /* %lu or %ld (vformat_is_simple() let no other 'l' through). */
      if (percent[2] == 'u') {
        vformat_put_unsigned(text, va_arg(copy, unsigned long));
      } else {
        long value = va_arg(copy, long);
        if (value < 0)
          vformat_put(text, "-", 1);
        vformat_put_unsigned(text, value < 0 ? 0UL - (unsigned long)value
                                             : (unsigned long)value);
      }
      percent++;
      continue;
    }
    switch (percent[1]) {
    case 's': {
      const char *string = va_arg(copy, const char *);
      if (string == NULL)
        string = "(null)";
      vformat_put(text, string, strlen(string));
      break;
    }
    case 'd':
    case 'i':
      vformat_put_int(text, va_arg(copy, int));
      break;
    case 'u':
      vformat_put_unsigned(text, va_arg(copy, unsigned int));
      break;
    case 'c': {
      char c = (char)va_arg(copy, int);
      vformat_put(text, &c, 1);
      break;
    }
    default: /* '%' */
      vformat_put(text, "%", 1);
      break;
    }
  }
  vformat_put(text, p, strlen(p));
  vformat_flush(text);
  va_end(copy);
}

void pst_vformat_append(GString *out, const char *format, va_list args) {
  if (!vformat_is_simple(format)) {
    g_string_append_vprintf(out, format, args);
    return;
  }
  VformatOut text = {.out = out, .len = 0};
  vformat_run(&text, format, args);
}

gsize pst_vformat_into(char *buffer, gsize size, const char *format,
                       va_list args) {
  g_return_val_if_fail(size > 0, 0);
  if (!vformat_is_simple(format)) {
    va_list copy;
    va_copy(copy, args);
    int length = g_vsnprintf(buffer, size, format, copy);
    va_end(copy);
    return length < 0 ? 0 : (gsize)length;
  }
  VformatOut text = {.out = NULL, .fixed = buffer, .fixed_size = size};
  vformat_run(&text, format, args);
  buffer[MIN(text.total, size - 1)] = '\0';
  return text.total;
}
