/* test-data-reference.c - the byte-at-a-time model of the data reader.
 *
 * Deliberately naive: one switch per octet, no lookahead, no runs, so that
 * it can be checked against the RFC by reading it.  Used by
 * test-smtp-data.c and fuzz/fuzz-data.c to cross-check data-reader.c.
 * Only CR LF "." CR LF ends the data; a line starts only after CR LF.
 */
#include <string.h>

#include "smtp/test-data-reference.h"

enum { LINE_START, IN_LINE, AFTER_CR, DOT, DOT_CR, DONE };

typedef struct {
  PstDataReference *result;
  guint64 max_size;
  guint64 line;
} Model;

static void model_emit(Model *model, guint8 c) {
  PstDataReference *result = model->result;
  result->size++;
  if (model->max_size != 0 && result->size > model->max_size)
    result->faults |= PST_DATA_FAULT_TOO_BIG;
  if (result->faults == 0)
    g_byte_array_append(result->out, &c, 1);
  model->line++;
  if (model->line > PST_SMTP_MAX_TEXT_LINE)
    result->faults |= PST_DATA_FAULT_LINE_TOO_LONG;
}

/* Processes one octet in `*state`; FALSE when it must be seen again. */
static gboolean model_step(Model *model, int *state, guint8 c,
                           PstDataReaderMode mode) {
  PstDataReference *result = model->result;
  switch (*state) {
  case LINE_START:
    *state = mode == PST_DATA_READER_DOT && c == '.' ? DOT : IN_LINE;
    return *state == DOT;
  case IN_LINE:
    if (c == '\0')
      result->faults |= PST_DATA_FAULT_NUL;
    if (c == '\n')
      result->faults |= PST_DATA_FAULT_BARE_LF;
    model_emit(model, c);
    if (c == '\n')
      model->line = 0;
    if (c == '\r')
      *state = AFTER_CR;
    return TRUE;
  case AFTER_CR:
    if (c != '\n') {
      result->faults |= PST_DATA_FAULT_BARE_CR;
      *state = IN_LINE;
      return FALSE;
    }
    model_emit(model, c);
    model->line = 0;
    *state = LINE_START;
    return TRUE;
  case DOT:
    *state = c == '\r' ? DOT_CR : IN_LINE;
    return c == '\r';
  case DOT_CR:
    if (c == '\n') {
      *state = DONE;
      return TRUE;
    }
    result->faults |= PST_DATA_FAULT_BARE_CR;
    model_emit(model, '\r');
    *state = IN_LINE;
    return FALSE;
  default:
    g_assert_not_reached();
  }
  return TRUE;
}

void pst_data_reference_run(PstDataReaderMode mode, guint64 max_size,
                            const guint8 *data, gsize length,
                            PstDataReference *result) {
  memset(result, 0, sizeof(*result));
  result->out = g_byte_array_new();
  result->status = PST_DATA_MORE;
  result->consumed = length;
  Model model = {result, max_size, 0};
  int state = LINE_START;
  for (gsize i = 0; i < length; i++) {
    while (!model_step(&model, &state, data[i], mode))
      ;
    if (state == DONE) {
      result->status = PST_DATA_DONE;
      result->consumed = i + 1;
      return;
    }
  }
  if (mode != PST_DATA_READER_CHUNK)
    return;
  if (state == AFTER_CR) {
    result->faults |= PST_DATA_FAULT_BARE_CR;
  } else if (state == IN_LINE && result->size > 0) {
    model_emit(&model, '\r');
    model_emit(&model, '\n');
  }
}

void pst_data_reference_clear(PstDataReference *result) {
  if (result->out != NULL)
    g_byte_array_unref(result->out);
  memset(result, 0, sizeof(*result));
}
