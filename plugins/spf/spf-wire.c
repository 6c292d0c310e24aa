/* spf-wire.c - the messages between the SPF plugin and its evaluator
 * process (pst-spf-eval), and their framing.
 *
 * Both ends treat the other as hostile: the evaluator parses DNS data with
 * libspf2 and may be corrupted, so the plugin decodes what it sends with
 * bounds on every length and count, and accepts only what spf_evaluate()
 * can produce.  The codecs are pure functions over whole payloads (unit
 * tests: test-spf-wire.c; fuzzed: fuzz/fuzz-spf-wire.c); spf_wire_send()
 * and spf_wire_recv() move one length-prefixed payload over a socket with
 * a deadline (the evaluator's blocking side), and spf_wire_frame_append()
 * and spf_wire_frame_take() frame and unframe them in memory (the
 * plugin's non-blocking side, pure).  SpfAnswer and SpfOutcome are allocated
 * and freed here too, so the codecs stand alone (the fuzz target links only
 * this file). Callers: spf-child.c (plugin), spf-eval-main.c (evaluator).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "spf.h"

#define SPF_WIRE_NULL 0xffffffffu

/* --- The types that travel ----------------------------------------------- */

SpfAnswer *spf_answer_new(PstDnsStatus status) {
  SpfAnswer *answer = g_new0(SpfAnswer, 1);
  answer->status = status;
  answer->records = g_ptr_array_new_with_free_func(g_free);
  answer->ref_count = 1;
  return answer;
}

SpfAnswer *spf_answer_ref(SpfAnswer *answer) {
  g_atomic_int_inc(&answer->ref_count);
  return answer;
}

void spf_answer_unref(SpfAnswer *answer) {
  if (answer == NULL || !g_atomic_int_dec_and_test(&answer->ref_count))
    return;
  g_ptr_array_unref(answer->records);
  g_free(answer);
}

void spf_known_free(SpfKnown *known) {
  if (known == NULL)
    return;
  g_free(known->name);
  spf_answer_unref(known->answer);
  g_free(known);
}

void spf_outcome_free(SpfOutcome *outcome) {
  if (outcome == NULL)
    return;
  g_free(outcome->domain);
  g_free(outcome->identity);
  g_free(outcome->comment);
  g_free(outcome->problem);
  g_free(outcome->explanation);
  g_free(outcome);
}

/* --- Encoding ----------------------------------------------------------- */

static void spf_put_u32(GByteArray *out, guint32 value) {
  guint8 bytes[4] = {value >> 24, value >> 16, value >> 8, value};
  g_byte_array_append(out, bytes, 4);
}

static void spf_put_str(GByteArray *out, const char *text) {
  if (text == NULL) {
    spf_put_u32(out, SPF_WIRE_NULL);
    return;
  }
  gsize length = strlen(text);
  spf_put_u32(out, (guint32)length);
  g_byte_array_append(out, (const guint8 *)text, (guint)length);
}

static GByteArray *spf_message_new(SpfWireType type) {
  GByteArray *out = g_byte_array_new();
  guint8 byte = (guint8)type;
  g_byte_array_append(out, &byte, 1);
  return out;
}

/* An answer's status, count and records.  The message stays under the
 * limit: records that do not fit are left off (a DNS message holds 64 KiB
 * at most, so none are in practice). */
static void spf_put_answer(GByteArray *out, const SpfAnswer *answer) {
  guint count = MIN(answer->records->len, SPF_WIRE_MAX_RECORDS);
  spf_put_u32(out, answer->status);
  guint at = out->len;
  guint written = 0;
  spf_put_u32(out, 0); /* the count, set below */
  for (guint i = 0; i < count; i++) {
    const char *record = g_ptr_array_index(answer->records, i);
    if (out->len + 4 + strlen(record) > SPF_WIRE_MAX_MESSAGE)
      break;
    spf_put_str(out, record);
    written++;
  }
  guint8 *counted = out->data + at;
  counted[0] = written >> 24, counted[1] = written >> 16;
  counted[2] = written >> 8, counted[3] = written;
}

/* A count, then type, name and answer of each known answer that fits. */
static void spf_put_known(GByteArray *out, const GPtrArray *known) {
  guint at = out->len;
  guint written = 0;
  spf_put_u32(out, 0); /* the count, set below */
  for (guint i = 0; i < MIN(known->len, SPF_KNOWN_MAX); i++) {
    const SpfKnown *entry = known->pdata[i];
    guint before = out->len;
    spf_put_u32(out, entry->type);
    spf_put_str(out, entry->name);
    spf_put_answer(out, entry->answer);
    if (out->len > SPF_WIRE_MAX_MESSAGE / 2) {
      g_byte_array_set_size(out, before);
      break;
    }
    written++;
  }
  if (written == 0) {
    g_byte_array_set_size(out, at); /* none fit: no part at all */
    return;
  }
  guint8 *counted = out->data + at;
  counted[0] = written >> 24, counted[1] = written >> 16;
  counted[2] = written >> 8, counted[3] = written;
}

GBytes *spf_wire_encode_query(const SpfQuery *query) {
  GByteArray *out = spf_message_new(SPF_WIRE_QUERY);
  spf_put_str(out, query->ip);
  spf_put_str(out, query->helo);
  spf_put_str(out, query->sender);
  spf_put_u32(out, query->identity);
  spf_put_str(out, query->receiver);
  spf_put_u32(out, query->max_lookups);
  spf_put_u32(out, query->max_void);
  /* Optional, last: the checked domain's TXT answer, then the answers at
   * hand (only with it), as many as fit in half a message. */
  if (query->top != NULL && query->top_name != NULL) {
    spf_put_str(out, query->top_name);
    spf_put_answer(out, query->top);
    if (query->known != NULL && query->known->len > 0)
      spf_put_known(out, query->known);
  }
  return g_byte_array_free_to_bytes(out);
}

GBytes *spf_wire_encode_question(PstDnsType type, const char *name) {
  GByteArray *out = spf_message_new(SPF_WIRE_QUESTION);
  spf_put_u32(out, type);
  spf_put_str(out, name);
  return g_byte_array_free_to_bytes(out);
}

GBytes *spf_wire_encode_answer(const SpfAnswer *answer) {
  GByteArray *out = spf_message_new(SPF_WIRE_ANSWER);
  spf_put_answer(out, answer);
  return g_byte_array_free_to_bytes(out);
}

GBytes *spf_wire_encode_outcome(const SpfOutcome *outcome) {
  GByteArray *out = spf_message_new(SPF_WIRE_OUTCOME);
  spf_put_u32(out, outcome->result);
  spf_put_str(out, outcome->comment);
  spf_put_str(out, outcome->problem);
  spf_put_str(out, outcome->explanation);
  spf_put_u32(out, outcome->lookups);
  spf_put_u32(out, outcome->voids);
  return g_byte_array_free_to_bytes(out);
}

/* --- Decoding ----------------------------------------------------------- */

typedef struct {
  const guint8 *p;
  gsize left;
  gboolean ok; /* FALSE after the first error: later reads give 0/NULL */
} SpfReader;

static gboolean spf_reader_init(SpfReader *reader, GBytes *payload,
                                SpfWireType type) {
  gsize size = 0;
  reader->p = g_bytes_get_data(payload, &size);
  reader->left = size;
  reader->ok =
      size >= 1 && size <= SPF_WIRE_MAX_MESSAGE && reader->p[0] == (guint8)type;
  if (reader->ok)
    reader->p++, reader->left--;
  return reader->ok;
}

static guint32 spf_get_u32(SpfReader *reader) {
  if (!reader->ok || reader->left < 4) {
    reader->ok = FALSE;
    return 0;
  }
  const guint8 *p = reader->p;
  reader->p += 4, reader->left -= 4;
  return (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 |
         (guint32)p[3];
}

/* A new string; NULL for the NULL marker (an error unless `nullable`). */
static char *spf_get_str(SpfReader *reader, gboolean nullable) {
  guint32 length = spf_get_u32(reader);
  if (!reader->ok)
    return NULL;
  if (length == SPF_WIRE_NULL) {
    reader->ok = nullable;
    return NULL;
  }
  if (length > reader->left || memchr(reader->p, '\0', length) != NULL) {
    reader->ok = FALSE;
    return NULL;
  }
  char *text = g_strndup((const char *)reader->p, length);
  reader->p += length, reader->left -= length;
  return text;
}

/* Everything read, nothing left over. */
static gboolean spf_reader_done(const SpfReader *reader) {
  return reader->ok && reader->left == 0;
}

guint8 spf_wire_type(GBytes *payload) {
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(payload, &size);
  return size > 0 ? data[0] : 0;
}

void spf_wire_query_free(SpfWireQuery *wire) {
  if (wire == NULL)
    return;
  g_free(wire->ip);
  g_free(wire->helo);
  g_free(wire->sender);
  g_free(wire->receiver);
  g_free(wire->top_name);
  spf_answer_unref(wire->top);
  if (wire->known != NULL)
    g_ptr_array_unref(wire->known);
  g_free(wire);
}

/* An answer's status, count and records (spf_put_answer()); NULL when
 * malformed. */
static SpfAnswer *spf_get_answer(SpfReader *reader) {
  guint32 status = spf_get_u32(reader);
  guint32 count = spf_get_u32(reader);
  if (!reader->ok || status > PST_DNS_CANCELLED ||
      count > SPF_WIRE_MAX_RECORDS) {
    reader->ok = FALSE;
    return NULL;
  }
  g_autoptr(SpfAnswer) answer = spf_answer_new(status);
  for (guint32 i = 0; i < count && reader->ok; i++) {
    char *record = spf_get_str(reader, FALSE);
    if (record != NULL)
      g_ptr_array_add(answer->records, record);
  }
  return reader->ok ? g_steal_pointer(&answer) : NULL;
}

/* What libspf2 asks (spf-dns.c), nothing else. */
static gboolean spf_question_type_is_known(guint32 type) {
  return type == PST_DNS_TYPE_A || type == PST_DNS_TYPE_AAAA ||
         type == PST_DNS_TYPE_MX || type == PST_DNS_TYPE_PTR ||
         type == PST_DNS_TYPE_TXT;
}

/* The known answers (spf_put_known()); NULL when malformed. */
static GPtrArray *spf_get_known(SpfReader *reader) {
  guint32 count = spf_get_u32(reader);
  /* 0 is not written (the encoding stays canonical). */
  if (!reader->ok || count == 0 || count > SPF_KNOWN_MAX) {
    reader->ok = FALSE;
    return NULL;
  }
  g_autoptr(GPtrArray) known =
      g_ptr_array_new_with_free_func((GDestroyNotify)spf_known_free);
  for (guint32 i = 0; i < count && reader->ok; i++) {
    SpfKnown *entry = g_new0(SpfKnown, 1);
    guint32 type = spf_get_u32(reader);
    entry->type = type;
    entry->name = spf_get_str(reader, FALSE);
    entry->answer = spf_get_answer(reader);
    g_ptr_array_add(known, entry);
    if (reader->ok && (!spf_question_type_is_known(type) ||
                       strlen(entry->name) > SPF_WIRE_MAX_NAME))
      reader->ok = FALSE;
  }
  return reader->ok ? g_steal_pointer(&known) : NULL;
}

SpfWireQuery *spf_wire_decode_query(GBytes *payload) {
  SpfReader reader;
  if (!spf_reader_init(&reader, payload, SPF_WIRE_QUERY))
    return NULL;
  g_autoptr(SpfWireQuery) wire = g_new0(SpfWireQuery, 1);
  wire->ip = spf_get_str(&reader, FALSE);
  wire->helo = spf_get_str(&reader, TRUE);
  wire->sender = spf_get_str(&reader, FALSE);
  guint32 identity = spf_get_u32(&reader);
  wire->receiver = spf_get_str(&reader, FALSE);
  wire->query.max_lookups = spf_get_u32(&reader);
  wire->query.max_void = spf_get_u32(&reader);
  if (reader.ok && reader.left > 0) {
    wire->top_name = spf_get_str(&reader, FALSE);
    wire->top = spf_get_answer(&reader);
  }
  if (reader.ok && reader.left > 0)
    wire->known = spf_get_known(&reader);
  if (!spf_reader_done(&reader) ||
      (identity != SPF_IDENTITY_MAIL_FROM && identity != SPF_IDENTITY_HELO))
    return NULL;
  wire->query.ip = wire->ip;
  wire->query.helo = wire->helo;
  wire->query.sender = wire->sender;
  wire->query.identity = identity;
  wire->query.receiver = wire->receiver;
  wire->query.top_name = wire->top_name;
  wire->query.top = wire->top;
  wire->query.known = wire->known;
  return g_steal_pointer(&wire);
}

SpfAnswer *spf_wire_query_take_top(SpfWireQuery *wire, PstDnsType type,
                                   const char *name) {
  if (wire->top == NULL || type != PST_DNS_TYPE_TXT ||
      strcmp(name, wire->top_name) != 0)
    return NULL;
  wire->query.top = NULL;
  return g_steal_pointer(&wire->top);
}

SpfAnswer *spf_wire_query_find_known(const SpfWireQuery *wire,
                                     PstDnsType type, const char *name) {
  for (guint i = 0; wire->known != NULL && i < wire->known->len; i++) {
    const SpfKnown *entry = wire->known->pdata[i];
    if (entry->type != type || g_ascii_strcasecmp(entry->name, name) != 0)
      continue;
    SpfAnswer *copy = spf_answer_new(entry->answer->status);
    for (guint j = 0; j < entry->answer->records->len; j++)
      g_ptr_array_add(copy->records,
                      g_strdup(entry->answer->records->pdata[j]));
    return copy;
  }
  return NULL;
}

char *spf_wire_decode_question(GBytes *payload, PstDnsType *type_r) {
  SpfReader reader;
  if (!spf_reader_init(&reader, payload, SPF_WIRE_QUESTION))
    return NULL;
  guint32 type = spf_get_u32(&reader);
  g_autofree char *name = spf_get_str(&reader, FALSE);
  if (!spf_reader_done(&reader) || strlen(name) > SPF_WIRE_MAX_NAME)
    return NULL;
  if (!spf_question_type_is_known(type))
    return NULL;
  *type_r = type;
  return g_steal_pointer(&name);
}

SpfAnswer *spf_wire_decode_answer(GBytes *payload) {
  SpfReader reader;
  if (!spf_reader_init(&reader, payload, SPF_WIRE_ANSWER))
    return NULL;
  g_autoptr(SpfAnswer) answer = spf_get_answer(&reader);
  return spf_reader_done(&reader) ? g_steal_pointer(&answer) : NULL;
}

/* Printable ASCII (as spf-eval.c makes every text), none of `forbidden`. */
static gboolean spf_text_is_clean(const char *text, const char *forbidden) {
  if (text == NULL)
    return TRUE;
  for (const guchar *p = (const guchar *)text; *p != '\0'; p++)
    if (*p < 0x20 || *p > 0x7e || strchr(forbidden, *p) != NULL)
      return FALSE;
  return TRUE;
}

SpfOutcome *spf_wire_decode_outcome(GBytes *payload) {
  SpfReader reader;
  if (!spf_reader_init(&reader, payload, SPF_WIRE_OUTCOME))
    return NULL;
  g_autoptr(SpfOutcome) outcome = g_new0(SpfOutcome, 1);
  outcome->result = spf_get_u32(&reader);
  outcome->comment = spf_get_str(&reader, FALSE);
  outcome->problem = spf_get_str(&reader, TRUE);
  outcome->explanation = spf_get_str(&reader, TRUE);
  outcome->lookups = spf_get_u32(&reader);
  outcome->voids = spf_get_u32(&reader);
  if (!spf_reader_done(&reader) || outcome->result > SPF_RES_PERMERROR ||
      !spf_text_is_clean(outcome->comment, "()\\") ||
      !spf_text_is_clean(outcome->problem, "") ||
      !spf_text_is_clean(outcome->explanation, ""))
    return NULL;
  return g_steal_pointer(&outcome);
}

/* --- Framing ------------------------------------------------------------ */

gboolean spf_wire_send(int fd, GBytes *payload, GError **error) {
  g_autoptr(GByteArray) frame = g_byte_array_new();
  if (!spf_wire_frame_append(frame, payload, error))
    return FALSE;
  gsize sent = 0;
  while (sent < frame->len) {
    ssize_t n = send(fd, frame->data + sent, frame->len - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int saved = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                  "cannot write to the SPF evaluator: %s", g_strerror(saved));
      return FALSE;
    }
    sent += (gsize)n;
  }
  return TRUE;
}

gboolean spf_wire_frame_append(GByteArray *out, GBytes *payload,
                               GError **error) {
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(payload, &size);
  if (size == 0 || size > SPF_WIRE_MAX_MESSAGE) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                "SPF evaluator message of %" G_GSIZE_FORMAT " bytes refused",
                size);
    return FALSE;
  }
  guint8 header[4] = {size >> 24, size >> 16, size >> 8, size};
  g_byte_array_append(out, header, 4);
  g_byte_array_append(out, data, (guint)size);
  return TRUE;
}

/* The payload size a frame's 4-byte header announces; 0 with `error`
 * for 0 or more than SPF_WIRE_MAX_MESSAGE. */
static guint32 spf_wire_frame_size(const guint8 *header, GError **error) {
  guint32 size = (guint32)header[0] << 24 | (guint32)header[1] << 16 |
                 (guint32)header[2] << 8 | (guint32)header[3];
  if (size > 0 && size <= SPF_WIRE_MAX_MESSAGE)
    return size;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
              "SPF evaluator message of %u bytes refused", size);
  return 0;
}

gboolean spf_wire_frame_take(GByteArray *in, GBytes **payload_r,
                             GError **error) {
  *payload_r = NULL;
  if (in->len < 4)
    return TRUE;
  guint32 size = spf_wire_frame_size(in->data, error);
  if (size == 0)
    return FALSE;
  if (in->len - 4 < size)
    return TRUE;
  *payload_r = g_bytes_new(in->data + 4, size);
  g_byte_array_remove_range(in, 0, 4 + size);
  return TRUE;
}

/* Reads exactly `size` bytes.  `*eof_r` when the stream ended before the
 * first one. */
static gboolean spf_read_full(int fd, guint8 *buffer, gsize size,
                              gint64 deadline, GCancellable *cancellable,
                              gboolean *eof_r, GError **error) {
  GPollFD fds[2] = {{.fd = fd, .events = G_IO_IN}};
  guint nfds = 1;
  if (cancellable != NULL && g_cancellable_make_pollfd(cancellable, &fds[1]))
    nfds = 2;
  gboolean ok = FALSE;
  gsize got = 0;
  *eof_r = FALSE;
  for (;;) {
    if (g_cancellable_set_error_if_cancelled(cancellable, error))
      break;
    gint timeout = -1;
    if (deadline > 0) {
      gint64 left = deadline - g_get_monotonic_time();
      if (left <= 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                    "the SPF evaluator did not answer in time");
        break;
      }
      timeout = (gint)MIN(left / 1000 + 1, G_MAXINT);
    }
    /* Without a deadline or a cancellable (the evaluator's side) a
     * blocking read waits by itself: one call per read, no poll. */
    gboolean wait_in_recv = deadline == 0 && nfds == 1;
    if (wait_in_recv)
      fds[0].revents = G_IO_IN;
    else if (g_poll(fds, nfds, timeout) < 0 && errno != EINTR) {
      int saved = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "poll: %s",
                  g_strerror(saved));
      break;
    }
    if (fds[0].revents == 0)
      continue;
    ssize_t n =
        recv(fd, buffer + got, size - got, wait_in_recv ? 0 : MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN && wait_in_recv) {
      /* A non-blocking descriptor: wait in poll after all. */
      struct pollfd one = {.fd = fd, .events = POLLIN};
      (void)poll(&one, 1, -1);
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      int saved = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                  "cannot read from the SPF evaluator: %s", g_strerror(saved));
      break;
    }
    if (n == 0) {
      *eof_r = got == 0;
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                  "the SPF evaluator closed its socket");
      break;
    }
    got += (gsize)n;
    if (got == size) {
      ok = TRUE;
      break;
    }
  }
  if (nfds == 2)
    g_cancellable_release_fd(cancellable);
  return ok;
}

GBytes *spf_wire_recv(int fd, gint64 deadline, GCancellable *cancellable,
                      GError **error) {
  guint8 header[4];
  gboolean eof = FALSE;
  if (!spf_read_full(fd, header, 4, deadline, cancellable, &eof, error))
    return NULL;
  guint32 size = spf_wire_frame_size(header, error);
  if (size == 0)
    return NULL;
  guint8 *data = g_malloc(size);
  if (!spf_read_full(fd, data, size, deadline, cancellable, &eof, error)) {
    g_free(data);
    return NULL;
  }
  return g_bytes_new_take(data, size);
}
