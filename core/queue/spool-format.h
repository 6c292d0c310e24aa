/* spool-format.h - the queue file format: pure encode and decode.
 *
 * A queue file is
 *
 *   [content]  the message as received, [0, trailer_offset)
 *   [trailer]  length-prefixed records: the envelope, the header override,
 *              the content checksum, the queue id
 *   [footer]   32 octets: magic, version, trailer length and offset, and a
 *              CRC32C over the trailer and the footer's first 28 octets
 *
 * The footer is found from the end of the file, so nothing a client sends
 * in the content can be taken for a record; every record is tag + length +
 * value, so no client text needs escaping.  doc/queue-format.md is the
 * full description.
 *
 * Decoding never trusts a length: each is checked against the bytes that
 * are really there and against the hard limits below before anything is
 * allocated, so a hostile file is reported corrupt (PST_SPOOL_ERROR_CORRUPT)
 * and never crashes the reader or makes it allocate more than the file's
 * own size.  These functions touch no files; they are fuzzed
 * (fuzz/fuzz-queue-file.c).
 */
#pragma once

#include <glib.h>

#include "queue/envelope.h"

G_BEGIN_DECLS

#define PST_SPOOL_FORMAT_VERSION 1
#define PST_SPOOL_FOOTER_SIZE 32

/* Hard limits, checked when writing and when reading. */
#define PST_SPOOL_MAX_STRING (64 * 1024)        /* any envelope string */
#define PST_SPOOL_MAX_RESULTS (4 * 1024 * 1024) /* one results a{sv} */
#define PST_SPOOL_MAX_RECIPIENTS 100000
#define PST_SPOOL_MAX_HEADER (32 * 1024 * 1024)   /* the header override */
#define PST_SPOOL_MAX_TRAILER (128 * 1024 * 1024) /* all records */

/* What a queue file's trailer says. */
typedef struct {
  char *queue_id;          /* owned */
  PstEnvelope *envelope;   /* owned */
  GBytes *header_override; /* owned, nullable */
  guint64 header_length;   /* octets of content it replaces; 0 without */
  guint64 content_length;  /* = the trailer's offset in the file */
  guint32 content_crc;     /* CRC32C of [0, content_length) */
} PstSpoolTrailer;

void pst_spool_trailer_free(PstSpoolTrailer *trailer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSpoolTrailer, pst_spool_trailer_free)

/* CRC32C (Castagnoli), chainable: start with 0, feed the previous result.
 * Uses the SSE 4.2 instruction when the CPU has it. */
guint32 pst_spool_crc32c(guint32 crc, const void *data, gsize length);

/* Encodes the trailer and the footer that follow `content_length` octets of
 * content whose CRC32C is `content_crc`.  `header_override`, when not NULL,
 * replaces the first `header_length` octets of the content on delivery.
 * Fails (PST_SPOOL_ERROR_LIMIT) when a required field is unset, a results
 * value is not a{sv}, or a value exceeds the limits above. */
GBytes *pst_spool_format_encode(const char *queue_id,
                                const PstEnvelope *envelope,
                                GBytes *header_override, guint64 header_length,
                                guint64 content_length, guint32 content_crc,
                                GError **error);

/* Checks the PST_SPOOL_FOOTER_SIZE octets at the end of a file of
 * `file_size` octets and returns where the trailer is.  The trailer's
 * checksum is verified by pst_spool_format_decode_tail(). */
gboolean pst_spool_format_decode_footer(const guint8 *footer, guint64 file_size,
                                        guint64 *trailer_offset_r,
                                        gsize *trailer_length_r,
                                        GError **error);

/* Decodes the tail of a file: the trailer followed by the footer
 * (`length` = trailer length + PST_SPOOL_FOOTER_SIZE), which must start at
 * `trailer_offset`.  Verifies the checksum, then every record. */
PstSpoolTrailer *pst_spool_format_decode_tail(const guint8 *tail, gsize length,
                                              guint64 trailer_offset,
                                              GError **error);

/* Both steps over a whole file held in memory; also checks the content's
 * checksum.  For tests, the fuzzer and small files. */
PstSpoolTrailer *pst_spool_format_decode_file(const guint8 *data, gsize length,
                                              GError **error);

G_END_DECLS
