/* spool-format.h - the queue file format: pure encode and decode.
 *
 * A queue file is
 *
 *   [content]  the message as received, [0, trailer_offset)
 *   [trailer]  length-prefixed records: the envelope, the header override,
 *              the content checksum, the queue id
 *   [gap]      version 2 only: zero octets, the rest of a pre-zeroed spare
 *              file the message did not need (at most PST_SPOOL_MAX_GAP)
 *   [footer]   32 octets: magic, version, trailer length and offset, and a
 *              CRC32C over the trailer and the footer's first 28 octets
 *
 * Version 1 has no gap (the footer follows the trailer); the writer still
 * writes it whenever there is none, so that older readers read those
 * files.  Every octet is checked: the content by its checksum, the trailer
 * and footer by theirs, the gap by being zero.
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

#define PST_SPOOL_FORMAT_VERSION 2 /* the newest; 1 is read too */
#define PST_SPOOL_FOOTER_SIZE 32

/* Hard limits, checked when writing and when reading. */
#define PST_SPOOL_MAX_STRING (64 * 1024)        /* any envelope string */
#define PST_SPOOL_MAX_RESULTS (4 * 1024 * 1024) /* one results a{sv} */
#define PST_SPOOL_MAX_RECIPIENTS 100000
#define PST_SPOOL_MAX_HEADER (32 * 1024 * 1024)   /* the header override */
#define PST_SPOOL_MAX_TRAILER (128 * 1024 * 1024) /* all records */
#define PST_SPOOL_MAX_GAP (1024 * 1024)           /* zeros before the footer */

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

/* Turns `tail` (`length` octets: a trailer and its footer, as
 * pst_spool_format_encode() returned them) into the trailer and footer of
 * a file in which `gap` zero octets separate them (a message written into
 * a pre-zeroed spare file): the footer says version 2 when `gap` > 0, and
 * its checksum is made again.  `gap` is at most PST_SPOOL_MAX_GAP. */
void pst_spool_format_set_gap(guint8 *tail, gsize length, guint64 gap);

/* Checks the PST_SPOOL_FOOTER_SIZE octets at the end of a file of
 * `file_size` octets and returns where the trailer is (and so how many
 * octets of gap follow it: file_size - 32 - offset - length, 0 in
 * version 1).  The trailer's checksum is verified by
 * pst_spool_format_decode_trailer(), the gap by _check_gap(). */
gboolean pst_spool_format_decode_footer(const guint8 *footer, guint64 file_size,
                                        guint64 *trailer_offset_r,
                                        gsize *trailer_length_r,
                                        GError **error);

/* Decodes the trailer (`trailer_length` octets found at `trailer_offset`)
 * of a file of `file_size` octets that ends with `footer`.  Verifies the
 * footer, the checksum over both, then every record. */
PstSpoolTrailer *
pst_spool_format_decode_trailer(const guint8 *trailer, gsize trailer_length,
                                guint64 trailer_offset, const guint8 *footer,
                                guint64 file_size, GError **error);

/* The same for a trailer followed at once by its footer (`length` = trailer
 * length + PST_SPOOL_FOOTER_SIZE), which must start at `trailer_offset`. */
PstSpoolTrailer *pst_spool_format_decode_tail(const guint8 *tail, gsize length,
                                              guint64 trailer_offset,
                                              GError **error);

/* Checks that the `length` octets of a gap are all zero. */
gboolean pst_spool_format_check_gap(const guint8 *gap, gsize length,
                                    GError **error);

/* Every step over a whole file held in memory; also checks the gap and
 * the content's checksum.  For tests, the fuzzer and small files. */
PstSpoolTrailer *pst_spool_format_decode_file(const guint8 *data, gsize length,
                                              GError **error);

G_END_DECLS
