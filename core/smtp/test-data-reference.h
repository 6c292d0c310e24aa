/* test-data-reference.h - a slow, obviously correct DATA/BDAT reader.
 *
 * For tests and fuzzing only (not in the core): the unit tests and
 * fuzz/fuzz-data.c compare PstDataReader, fed in any split, against this
 * byte-at-a-time model of RFC 5321 4.1.1.4 / 4.5.2 and RFC 3030.
 */
#pragma once

#include <glib.h>

#include "smtp/smtp-parse.h"

typedef struct {
  PstDataStatus status;
  gsize consumed; /* DOT mode: octets up to the end of data; else all */
  guint faults;
  guint64 size;
  GByteArray *out; /* owned: the message, valid when faults == 0 */
} PstDataReference;

/* Reads all of `data` at once; in CHUNK mode also does the finish step. */
void pst_data_reference_run(PstDataReaderMode mode, guint64 max_size,
                            const guint8 *data, gsize length,
                            PstDataReference *result);
void pst_data_reference_clear(PstDataReference *result);
