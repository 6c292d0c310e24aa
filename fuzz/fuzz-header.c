/* fuzz-header.c - fuzzes the header field parser.
 *
 * Input: a max_fields octet, then a message.  Checks that the header ends
 * at a line boundary inside the input, that at most max_fields fields are
 * kept, that every name is valid and every value is a NUL-free slice of
 * the header, and that parsing the header alone gives the same fields.
 */
#include <stdint.h>
#include <string.h>

#include "smtp/smtp-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static GPtrArray *fields_new(void) {
  return g_ptr_array_new_with_free_func((GDestroyNotify)pst_header_field_free);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  guint max_fields = data[0];
  const guint8 *message = data + 1;
  gsize length = size - 1;

  g_autoptr(GPtrArray) fields = fields_new();
  gsize header_length = G_MAXSIZE;
  pst_header_parse(message, length, max_fields, fields, &header_length);
  g_assert_cmpuint(header_length, <=, length);
  g_assert_true(header_length == 0 || header_length == length ||
                message[header_length - 1] == '\n');
  g_assert_cmpuint(fields->len, <=, max_fields);
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *field = g_ptr_array_index(fields, i);
    g_assert_true(pst_header_name_is_valid(field->name));
    g_assert_cmpuint(strlen(field->value), <=, header_length);
    g_assert_nonnull(
        memmem(message, header_length, field->value, strlen(field->value)));
  }

  /* The header alone parses to the same fields. */
  g_autoptr(GPtrArray) again = fields_new();
  gsize again_length = 0;
  pst_header_parse(message, header_length, max_fields, again, &again_length);
  g_assert_cmpuint(again->len, ==, fields->len);
  g_assert_cmpuint(again_length, ==, header_length);
  for (guint i = 0; i < fields->len; i++) {
    const PstHeaderField *a = g_ptr_array_index(fields, i);
    const PstHeaderField *b = g_ptr_array_index(again, i);
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpstr(a->value, ==, b->value);
  }
  return 0;
}
