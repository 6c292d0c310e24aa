/* message.c - the message as plugins see it at EOM and QUEUED: the header
 * list with its edits, the envelope with its edits, the body on demand.
 *
 * The session builds it with pst_message_new() from the parsed header
 * fields and the spool's tmp file, runs the EOM chain, then asks for the
 * result: pst_message_headers_modified() / pst_message_render_headers()
 * (the header block the spool stores in place of the original) and
 * pst_message_apply_envelope().
 *
 * Edits follow the milter vocabulary: add, insert, change, delete a field;
 * set the sender; add, remove a recipient.  They take effect at once, so a
 * plugin later in the chain sees them.  Every function may run on a
 * plugin's worker thread while its call is pending, so the state is under
 * one mutex; and since plugins hold `const char *` results across calls,
 * nothing a getter returned is freed before the message: replaced fields
 * and addresses move to a graveyard freed with it.  The body file is opened
 * at creation (the spool renames it at commit) and mapped on first use by
 * pst_message_get_body(), or read in pieces with pread() by a
 * PstBodyReader (ABI 1.2), which holds a reference to the message so the
 * descriptor outlives the call that opened it.  A body replaced with
 * pst_message_replace_body() lives in memory from then on: getters and
 * readers opened later return it, and the session writes it to the spool
 * at commit (pst_message_get_body_replacement()).
 */
#define G_LOG_DOMAIN "postilion"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "hooks/hooks-private.h"

/* RFC 5322 2.1.1: at most 998 octets per line, without CRLF. */
#define PST_HEADER_LINE_MAX 998
#define PST_ADDRESS_MAX 256

struct _PstMessage {
  gint ref_count;
  char *queue_id; /* owned */
  guint64 size;
  char *path; /* owned, nullable: the body's file */
  int fd;     /* the body's file, -1 when not open */
  guint64 body_offset;

  GMutex lock;       /* guards everything below */
  GBytes *body;      /* owned, nullable: mapped on first use, or the
                      * replacement */
  gboolean body_replaced; /* pst_message_replace_body() was called */
  GPtrArray *fields; /* owned, of PstHeaderField* */
  gboolean headers_modified;
  char *sender; /* owned */
  gboolean sender_modified;
  GPtrArray *recipients; /* owned, of char* */
  gboolean recipients_modified;
  GPtrArray *graveyard; /* owned: what edits replaced, freed with us */
};

static PstHeaderField *field_new(const char *name, const char *value) {
  return pst_header_field_new(name, strlen(name), value, strlen(value));
}

PstMessage *pst_message_new(const char *queue_id, GPtrArray *fields,
                            const char *path, guint64 body_offset, guint64 size,
                            const PstEnvelope *envelope) {
  g_return_val_if_fail(queue_id != NULL && fields != NULL, NULL);
  PstMessage *message = g_new0(PstMessage, 1);
  message->ref_count = 1;
  message->queue_id = g_strdup(queue_id);
  message->size = size;
  message->path = g_strdup(path);
  message->body_offset = body_offset;
  message->fd = path ? g_open(path, O_RDONLY | O_CLOEXEC, 0) : -1;
  if (path != NULL && message->fd < 0)
    g_warning("%s: cannot open %s for plugins: %s", queue_id, path,
              g_strerror(errno));
  g_mutex_init(&message->lock);
  message->fields = fields;
  g_ptr_array_set_free_func(fields, (GDestroyNotify)pst_header_field_free);
  message->graveyard = g_ptr_array_new_with_free_func(g_free);
  message->recipients = g_ptr_array_new_with_free_func(g_free);
  message->sender = g_strdup(envelope ? envelope->sender : "");
  for (guint i = 0; envelope && i < envelope->recipients->len; i++) {
    const PstEnvelopeRecipient *recipient =
        g_ptr_array_index(envelope->recipients, i);
    g_ptr_array_add(message->recipients, g_strdup(recipient->address));
  }
  return message;
}

PstMessage *pst_message_ref(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  g_atomic_int_inc(&message->ref_count);
  return message;
}

void pst_message_unref(PstMessage *message) {
  if (message == NULL || !g_atomic_int_dec_and_test(&message->ref_count))
    return;
  if (message->fd >= 0)
    close(message->fd);
  g_clear_pointer(&message->body, g_bytes_unref);
  g_ptr_array_unref(message->fields);
  g_ptr_array_unref(message->recipients);
  g_ptr_array_unref(message->graveyard);
  g_mutex_clear(&message->lock);
  g_free(message->sender);
  g_free(message->path);
  g_free(message->queue_id);
  g_free(message);
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

static gboolean header_name_is_valid(const char *name) {
  gsize length = name ? strlen(name) : 0;
  if (length == 0 || length > 76)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++) {
    if ((guchar)*p < 33 || (guchar)*p > 126 || *p == ':')
      return FALSE;
  }
  return TRUE;
}

/* What one octet of a field value is to header_value_is_valid(). */
enum {
  HEADER_OCTET_TEXT = 0, /* printable, or 8-bit (the common case) */
  HEADER_OCTET_SPACE,    /* SP, HTAB */
  HEADER_OCTET_CR,
  HEADER_OCTET_END, /* the terminating NUL */
  HEADER_OCTET_BAD, /* any other control character, DEL */
};

static const guint8 header_octet_class[256] = {
    [0] = HEADER_OCTET_END,
    [1 ... 8] = HEADER_OCTET_BAD,
    ['\t'] = HEADER_OCTET_SPACE,
    [0x0a ... 0x0c] = HEADER_OCTET_BAD,
    ['\r'] = HEADER_OCTET_CR,
    [0x0e ... 0x1f] = HEADER_OCTET_BAD,
    [' '] = HEADER_OCTET_SPACE,
    [0x7f] = HEADER_OCTET_BAD,
};

/* Folding only as CRLF + WSP, no line of only white space, no other
 * control character, no line over 998 octets (the first one counts
 * "Name: ").  Runs of text are skipped by class, a line's length is
 * measured at its end: plugins add long values to every message. */
static gboolean header_value_is_valid(const char *name, const char *value) {
  if (value == NULL)
    return FALSE;
  const guchar *p = (const guchar *)value;
  const guchar *line = p;
  gsize line_prefix = strlen(name) + 2;
  gboolean line_has_text = TRUE; /* the first line may be empty */
  for (;;) {
    const guchar *run = p;
    while (header_octet_class[*p] == HEADER_OCTET_TEXT)
      p++;
    if (p != run)
      line_has_text = TRUE;
    switch (header_octet_class[*p]) {
    case HEADER_OCTET_SPACE:
      p++;
      break;
    case HEADER_OCTET_CR:
      if (line_prefix + (gsize)(p - line) > PST_HEADER_LINE_MAX ||
          p[1] != '\n' || (p[2] != ' ' && p[2] != '\t') || !line_has_text)
        return FALSE;
      p += 2;
      line = p;
      line_prefix = 0;
      line_has_text = FALSE;
      break;
    case HEADER_OCTET_END:
      return line_prefix + (gsize)(p - line) <= PST_HEADER_LINE_MAX &&
             line_has_text;
    default:
      return FALSE;
    }
  }
}

/* A mailbox as a plugin may hand it over: no brackets, no white space, no
 * controls; "" only where the null sender is allowed. */
static gboolean address_is_valid(const char *address, gboolean allow_null) {
  if (address == NULL)
    return FALSE;
  gsize length = strlen(address);
  if (length == 0)
    return allow_null;
  if (length > PST_ADDRESS_MAX || !g_utf8_validate(address, -1, NULL))
    return FALSE;
  for (const char *p = address; *p != '\0'; p++) {
    if ((guchar)*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
      return FALSE;
  }
  const char *at = strrchr(address, '@');
  return at != NULL && at != address && at[1] != '\0';
}

/* ------------------------------------------------------------------ */
/* Header fields                                                       */
/* ------------------------------------------------------------------ */

/* Index of the `occurrence`th field called `name`, or -1.  Locked. */
static gint header_find(PstMessage *message, const char *name,
                        guint occurrence) {
  for (guint i = 0; i < message->fields->len; i++) {
    const PstHeaderField *field = g_ptr_array_index(message->fields, i);
    if (g_ascii_strcasecmp(field->name, name) == 0 && occurrence-- == 0)
      return (gint)i;
  }
  return -1;
}

PST_API const char *pst_message_get_id(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  return message->queue_id;
}

PST_API guint64 pst_message_get_size(PstMessage *message) {
  g_return_val_if_fail(message != NULL, 0);
  return message->size;
}

PST_API guint pst_message_get_header_count(PstMessage *message) {
  g_return_val_if_fail(message != NULL, 0);
  g_mutex_lock(&message->lock);
  guint count = message->fields->len;
  g_mutex_unlock(&message->lock);
  return count;
}

static const PstHeaderField *header_at(PstMessage *message, guint index) {
  g_mutex_lock(&message->lock);
  const PstHeaderField *field = index < message->fields->len
                                    ? g_ptr_array_index(message->fields, index)
                                    : NULL;
  g_mutex_unlock(&message->lock);
  return field; /* fields are never freed before the message */
}

PST_API const char *pst_message_get_header_name(PstMessage *message,
                                                guint index) {
  g_return_val_if_fail(message != NULL, NULL);
  const PstHeaderField *field = header_at(message, index);
  return field ? field->name : NULL;
}

PST_API const char *pst_message_get_header_value(PstMessage *message,
                                                 guint index) {
  g_return_val_if_fail(message != NULL, NULL);
  const PstHeaderField *field = header_at(message, index);
  return field ? field->value : NULL;
}

PST_API const char *pst_message_get_header(PstMessage *message,
                                           const char *name, guint occurrence) {
  g_return_val_if_fail(message != NULL && name != NULL, NULL);
  g_mutex_lock(&message->lock);
  gint index = header_find(message, name, occurrence);
  const PstHeaderField *field =
      index >= 0 ? g_ptr_array_index(message->fields, index) : NULL;
  g_mutex_unlock(&message->lock);
  return field ? field->value : NULL;
}

PST_API gboolean pst_message_add_header(PstMessage *message, const char *name,
                                        const char *value) {
  return pst_message_insert_header(message, G_MAXUINT, name, value);
}

PST_API gboolean pst_message_insert_header(PstMessage *message, guint index,
                                           const char *name,
                                           const char *value) {
  g_return_val_if_fail(message != NULL, FALSE);
  if (!header_name_is_valid(name) || !header_value_is_valid(name, value))
    return FALSE;
  g_mutex_lock(&message->lock);
  g_ptr_array_insert(message->fields,
                     index >= message->fields->len ? -1 : (gint)index,
                     field_new(name, value));
  message->headers_modified = TRUE;
  g_mutex_unlock(&message->lock);
  return TRUE;
}

/* Moves the field at `index` to the graveyard.  Locked. */
static PstHeaderField *header_bury(PstMessage *message, guint index) {
  PstHeaderField *field = g_ptr_array_index(message->fields, index);
  g_ptr_array_add(message->graveyard, field); /* its strings are in it */
  return field;
}

PST_API gboolean pst_message_change_header(PstMessage *message,
                                           const char *name, guint occurrence,
                                           const char *value) {
  g_return_val_if_fail(message != NULL && name != NULL, FALSE);
  if (!header_value_is_valid(name, value))
    return FALSE;
  g_mutex_lock(&message->lock);
  gint index = header_find(message, name, occurrence);
  if (index >= 0) {
    PstHeaderField *old = header_bury(message, index);
    message->fields->pdata[index] = field_new(old->name, value);
    message->headers_modified = TRUE;
  }
  g_mutex_unlock(&message->lock);
  return index >= 0;
}

PST_API gboolean pst_message_delete_header(PstMessage *message,
                                           const char *name, guint occurrence) {
  g_return_val_if_fail(message != NULL && name != NULL, FALSE);
  g_mutex_lock(&message->lock);
  gint index = header_find(message, name, occurrence);
  if (index >= 0) {
    header_bury(message, index);
    g_ptr_array_steal_index(message->fields, index);
    message->headers_modified = TRUE;
  }
  g_mutex_unlock(&message->lock);
  return index >= 0;
}

gboolean pst_message_headers_modified(PstMessage *message) {
  g_return_val_if_fail(message != NULL, FALSE);
  g_mutex_lock(&message->lock);
  gboolean modified = message->headers_modified;
  g_mutex_unlock(&message->lock);
  return modified;
}

GBytes *pst_message_render_headers(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  GString *out = g_string_sized_new(1024);
  g_mutex_lock(&message->lock);
  for (guint i = 0; i < message->fields->len; i++) {
    const PstHeaderField *field = g_ptr_array_index(message->fields, i);
    g_string_append(out, field->name);
    g_string_append_len(out, ": ", 2);
    g_string_append(out, field->value);
    g_string_append_len(out, "\r\n", 2);
  }
  g_mutex_unlock(&message->lock);
  g_string_append(out, "\r\n");
  return g_string_free_to_bytes(out);
}

/* ------------------------------------------------------------------ */
/* The body                                                            */
/* ------------------------------------------------------------------ */

/* Maps the file and cuts the body out of it.  Locked. */
static GBytes *body_load(PstMessage *message) {
  if (message->path == NULL || message->body_offset >= message->size)
    return g_bytes_new(NULL, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(GMappedFile) file =
      message->fd >= 0 ? g_mapped_file_new_from_fd(message->fd, FALSE, &error)
                       : g_mapped_file_new(message->path, FALSE, &error);
  if (file == NULL) {
    g_warning("%s: cannot read the body from %s: %s", message->queue_id,
              message->path, error->message);
    return NULL;
  }
  g_autoptr(GBytes) content = g_mapped_file_get_bytes(file);
  gsize length = g_bytes_get_size(content);
  if (length < message->size) {
    g_warning("%s: %s has %" G_GSIZE_FORMAT
              " octets, expected %" G_GUINT64_FORMAT,
              message->queue_id, message->path, length, message->size);
    return NULL;
  }
  return g_bytes_new_from_bytes(content, message->body_offset,
                                message->size - message->body_offset);
}

PST_API GBytes *pst_message_get_body(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  g_mutex_lock(&message->lock);
  if (message->body == NULL)
    message->body = body_load(message);
  GBytes *body = message->body ? g_bytes_ref(message->body) : NULL;
  g_mutex_unlock(&message->lock);
  return body;
}

struct _PstBodyReader {
  PstMessage *message; /* owned reference */
  GBytes *replacement; /* owned, nullable: the body a plugin put in place
                        * before the reader was opened; offsets are in it */
  guint64 offset;      /* next octet to read, in the file */
  guint64 end;         /* the file's size as received: the body's end */
};

PST_API PstBodyReader *pst_message_open_body(PstMessage *message,
                                             GError **error) {
  g_return_val_if_fail(message != NULL, NULL);
  g_autoptr(GBytes) replacement = pst_message_get_body_replacement(message);
  if (replacement == NULL && message->path != NULL && message->fd < 0) {
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO,
                "%s: the spooled message %s cannot be read",
                message->queue_id, message->path);
    return NULL;
  }
  PstBodyReader *reader = g_new0(PstBodyReader, 1);
  reader->message = pst_message_ref(message);
  reader->replacement = g_steal_pointer(&replacement);
  if (reader->replacement != NULL) {
    reader->end = g_bytes_get_size(reader->replacement);
    return reader;
  }
  reader->offset = message->body_offset;
  reader->end = message->path != NULL ? message->size : message->body_offset;
  return reader;
}

PST_API gssize pst_body_reader_read(PstBodyReader *reader, void *buffer,
                                    gsize size, GError **error) {
  g_return_val_if_fail(reader != NULL && (buffer != NULL || size == 0), -1);
  if (reader->offset >= reader->end || size == 0)
    return 0;
  gsize wanted = (gsize)MIN((guint64)size, reader->end - reader->offset);
  wanted = MIN(wanted, (gsize)G_MAXSSIZE);
  if (reader->replacement != NULL) {
    const guint8 *data = g_bytes_get_data(reader->replacement, NULL);
    memcpy(buffer, data + reader->offset, wanted);
    reader->offset += wanted;
    return (gssize)wanted;
  }
  ssize_t got;
  do {
    got = pread(reader->message->fd, buffer, wanted, (off_t)reader->offset);
  } while (got < 0 && errno == EINTR);
  if (got < 0 || (got == 0 && wanted > 0)) {
    int saved = got < 0 ? errno : EIO;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "%s: cannot read the body from %s: %s",
                reader->message->queue_id, reader->message->path,
                got < 0 ? g_strerror(saved) : "the file is shorter than the message");
    return -1;
  }
  reader->offset += (guint64)got;
  return got;
}

PST_API void pst_body_reader_free(PstBodyReader *reader) {
  if (reader == NULL)
    return;
  pst_message_unref(reader->message);
  g_clear_pointer(&reader->replacement, g_bytes_unref);
  g_free(reader);
}

/* CRLF line endings only: no bare CR, no bare LF. */
static gboolean body_is_crlf(const guint8 *data, gsize length) {
  for (gsize i = 0; i < length; i++) {
    if (data[i] == '\r' && (i + 1 == length || data[i + 1] != '\n'))
      return FALSE;
    if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
      return FALSE;
  }
  return TRUE;
}

PST_API gboolean pst_message_replace_body(PstMessage *message, GBytes *body) {
  g_return_val_if_fail(message != NULL && body != NULL, FALSE);
  gsize length = 0;
  const guint8 *data = g_bytes_get_data(body, &length);
  if (!body_is_crlf(data, length))
    return FALSE;
  /* The stored message ends with a line break, as DATA requires. */
  GBytes *replacement;
  if (length > 0 && data[length - 1] != '\n') {
    GByteArray *fixed = g_byte_array_sized_new(length + 2);
    g_byte_array_append(fixed, data, length);
    g_byte_array_append(fixed, (const guint8 *)"\r\n", 2);
    replacement = g_byte_array_free_to_bytes(fixed);
  } else {
    replacement = g_bytes_ref(body);
  }
  g_mutex_lock(&message->lock);
  /* Readers of the old body keep their own reference. */
  g_clear_pointer(&message->body, g_bytes_unref);
  message->body = replacement;
  message->body_replaced = TRUE;
  g_mutex_unlock(&message->lock);
  return TRUE;
}

GBytes *pst_message_get_body_replacement(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  g_mutex_lock(&message->lock);
  GBytes *body = message->body_replaced ? g_bytes_ref(message->body) : NULL;
  g_mutex_unlock(&message->lock);
  return body;
}

/* ------------------------------------------------------------------ */
/* The envelope                                                        */
/* ------------------------------------------------------------------ */

static gint recipient_find(PstMessage *message, const char *address) {
  for (guint i = 0; i < message->recipients->len; i++) {
    if (g_ascii_strcasecmp(g_ptr_array_index(message->recipients, i),
                           address) == 0)
      return (gint)i;
  }
  return -1;
}

PST_API gboolean pst_message_set_sender(PstMessage *message,
                                        const char *address) {
  g_return_val_if_fail(message != NULL, FALSE);
  if (!address_is_valid(address, TRUE))
    return FALSE;
  g_mutex_lock(&message->lock);
  g_ptr_array_add(message->graveyard, message->sender);
  message->sender = g_strdup(address);
  message->sender_modified = TRUE;
  g_mutex_unlock(&message->lock);
  return TRUE;
}

PST_API gboolean pst_message_add_recipient(PstMessage *message,
                                           const char *address) {
  g_return_val_if_fail(message != NULL, FALSE);
  if (!address_is_valid(address, FALSE))
    return FALSE;
  g_mutex_lock(&message->lock);
  if (recipient_find(message, address) < 0) {
    g_ptr_array_add(message->recipients, g_strdup(address));
    message->recipients_modified = TRUE;
  }
  g_mutex_unlock(&message->lock);
  return TRUE;
}

PST_API gboolean pst_message_remove_recipient(PstMessage *message,
                                              const char *address) {
  g_return_val_if_fail(message != NULL && address != NULL, FALSE);
  g_mutex_lock(&message->lock);
  gint index = recipient_find(message, address);
  if (index >= 0) {
    g_ptr_array_add(message->graveyard,
                    g_ptr_array_steal_index(message->recipients, index));
    message->recipients_modified = TRUE;
  }
  g_mutex_unlock(&message->lock);
  return index >= 0;
}

PST_API const char *pst_message_get_sender(PstMessage *message) {
  g_return_val_if_fail(message != NULL, NULL);
  g_mutex_lock(&message->lock);
  const char *sender = message->sender;
  g_mutex_unlock(&message->lock);
  return sender;
}

PST_API guint pst_message_get_recipient_count(PstMessage *message) {
  g_return_val_if_fail(message != NULL, 0);
  g_mutex_lock(&message->lock);
  guint count = message->recipients->len;
  g_mutex_unlock(&message->lock);
  return count;
}

PST_API const char *pst_message_get_recipient(PstMessage *message,
                                              guint index) {
  g_return_val_if_fail(message != NULL, NULL);
  g_mutex_lock(&message->lock);
  const char *address = index < message->recipients->len
                            ? g_ptr_array_index(message->recipients, index)
                            : NULL;
  g_mutex_unlock(&message->lock);
  return address;
}

/* TRUE when `address` is in `list` (of char*), case-insensitively. */
static gboolean address_in(GPtrArray *list, const char *address) {
  for (guint i = 0; i < list->len; i++) {
    if (g_ascii_strcasecmp(g_ptr_array_index(list, i), address) == 0)
      return TRUE;
  }
  return FALSE;
}

void pst_message_apply_envelope(PstMessage *message, PstEnvelope *envelope) {
  g_return_if_fail(message != NULL && envelope != NULL);
  g_mutex_lock(&message->lock);
  if (message->sender_modified) {
    g_free(envelope->sender);
    envelope->sender = g_strdup(message->sender);
  }
  if (message->recipients_modified) {
    /* Kept recipients keep their DSN parameters and results. */
    g_autoptr(GPtrArray) kept = g_ptr_array_new();
    for (guint i = envelope->recipients->len; i > 0; i--) {
      PstEnvelopeRecipient *recipient =
          g_ptr_array_index(envelope->recipients, i - 1);
      if (address_in(message->recipients, recipient->address))
        g_ptr_array_add(kept, recipient->address);
      else
        g_ptr_array_remove_index(envelope->recipients, i - 1);
    }
    for (guint i = 0; i < message->recipients->len; i++) {
      const char *address = g_ptr_array_index(message->recipients, i);
      if (!address_in(kept, address))
        pst_envelope_add_recipient(envelope, address);
    }
  }
  g_mutex_unlock(&message->lock);
}
