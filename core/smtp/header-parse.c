/* header-parse.c - the header fields at the start of a message (RFC 5322).
 *
 * Entry points: pst_header_parse(), pst_header_name_is_valid(),
 * pst_header_field_new() and _free() (a field is one allocation with its
 * strings).  The session calls it on the received message
 * at EOM (for plugins, Received: and the header size limit), the queue on
 * a spooled message.
 *
 * A field is "name:" then a value that goes on over continuation lines
 * (starting with SP or HTAB, including obs-fold lines of only white
 * space).  The header ends at the blank line (CRLF, or a bare LF), or
 * before the first line that is not a field: no colon, an invalid name (so
 * an mbox "From sender date" line), a continuation with no field before
 * it, or a NUL octet.  Everything from there is body.  The value keeps its
 * folding as sent, so a field's value is one contiguous range of the
 * input; it is copied once, when the field is complete.
 *
 * obs-optional: white space between the name and the colon ("Subject :")
 * is dropped from the name, so a "From :" field is still seen as From by
 * the plugins (a reader that missed it would let a second From through).
 */
#include <string.h>

#include "smtp/smtp-parse.h"

#define MAX_FIELD_NAME 76

/* The field whose value is still growing over continuation lines. */
typedef struct {
  gboolean open; /* a field line was seen and not yet closed */
  gboolean kept; /* it goes into the array (max_fields not reached) */
  gsize name_start, name_end;
  gsize value_start, value_end;
} OpenField;

PstHeaderField *pst_header_field_new(const char *name, gsize name_length,
                                     const char *value, gsize value_length) {
  PstHeaderField *field =
      g_malloc(sizeof *field + name_length + 1 + value_length + 1);
  char *strings = (char *)(field + 1);
  field->name = memcpy(strings, name, name_length);
  field->name[name_length] = '\0';
  field->value = memcpy(strings + name_length + 1, value, value_length);
  field->value[value_length] = '\0';
  return field;
}

void pst_header_field_free(PstHeaderField *field) {
  g_free(field);
}

static gboolean name_octets_are_valid(const guint8 *name, gsize length) {
  if (length == 0 || length > MAX_FIELD_NAME)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (name[i] < 33 || name[i] > 126 || name[i] == ':')
      return FALSE;
  return TRUE;
}

gboolean pst_header_name_is_valid(const char *name) {
  g_return_val_if_fail(name != NULL, FALSE);
  return name_octets_are_valid((const guint8 *)name, strlen(name));
}

static void field_close(const guint8 *data, OpenField *field,
                        GPtrArray *fields) {
  if (field->open && field->kept) {
    g_ptr_array_add(fields, pst_header_field_new(
                                (const char *)data + field->name_start,
                                field->name_end - field->name_start,
                                (const char *)data + field->value_start,
                                field->value_end - field->value_start));
  }
  field->open = FALSE;
}

/* Opens the field on line [start, end), closing the previous one.  FALSE
 * when the line is not a field. */
static gboolean field_open(const guint8 *data, gsize start, gsize end,
                           guint max_fields, GPtrArray *fields,
                           OpenField *field) {
  const guint8 *colon = memchr(data + start, ':', end - start);
  if (colon == NULL)
    return FALSE;
  gsize name_end = (gsize)(colon - data);
  while (name_end > start &&
         (data[name_end - 1] == ' ' || data[name_end - 1] == '\t'))
    name_end--;
  if (!name_octets_are_valid(data + start, name_end - start))
    return FALSE;
  field_close(data, field, fields);
  gsize value_start = (gsize)(colon - data) + 1;
  if (value_start < end && data[value_start] == ' ')
    value_start++;
  *field = (OpenField){
      TRUE, fields->len < max_fields, start, name_end, value_start, end};
  return TRUE;
}

void pst_header_parse(const guint8 *data, gsize length, guint max_fields,
                      GPtrArray *fields, gsize *header_length_r) {
  g_return_if_fail(data != NULL || length == 0);
  g_return_if_fail(fields != NULL && header_length_r != NULL);
  OpenField field = {FALSE};
  gsize pos = 0;
  while (pos < length) {
    const guint8 *lf = memchr(data + pos, '\n', length - pos);
    gsize next = lf != NULL ? (gsize)(lf - data) + 1 : length;
    gsize end = lf != NULL ? next - 1 : length;
    if (end > pos && lf != NULL && data[end - 1] == '\r')
      end--;

    if (end == pos && lf != NULL) { /* the blank line */
      pos = next;
      break;
    }
    if (memchr(data + pos, '\0', next - pos) != NULL)
      break;
    if (data[pos] == ' ' || data[pos] == '\t') {
      if (!field.open)
        break;
      field.value_end = end; /* the value takes in the line break */
    } else if (!field_open(data, pos, end, max_fields, fields, &field)) {
      break;
    }
    pos = next;
  }
  field_close(data, &field, fields);
  *header_length_r = pos;
}
