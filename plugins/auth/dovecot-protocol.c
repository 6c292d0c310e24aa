/* dovecot-protocol.c - Dovecot's authentication client protocol as pure
 * functions (dovecot-protocol.h): the parser of what Dovecot sends and the
 * builders of what we send.
 *
 * Everything Dovecot sends is untrusted input (a socket an admin may point
 * anywhere): the parser checks lengths, numbers, names and encodings, and
 * hands back only values that are safe to log and to give the core (the
 * authenticated user is printable UTF-8 without control characters).
 */
#include <string.h>

#include "dovecot-protocol.h"

#define MAX_MECHANISM_NAME 20 /* RFC 4422 3.1 */
#define MAX_REASON 200        /* a FAIL reason, as logged */

G_DEFINE_QUARK(dovecot - protocol - error, dovecot_protocol_error)

void dovecot_reply_free(DovecotReply *reply) {
  if (reply == NULL)
    return;
  g_free(reply->command);
  g_free(reply->mechanism);
  if (reply->data != NULL)
    memset(reply->data, 0, reply->data_length);
  g_free(reply->data);
  g_free(reply->user);
  g_free(reply->reason);
  g_free(reply->code);
  g_free(reply);
}

/* --- Encodings ------------------------------------------------------------ */

void dovecot_tab_escape(GString *out, const char *text) {
  for (const char *p = text; *p != '\0'; p++) {
    switch (*p) {
    case '\001':
      g_string_append(out, "\0011");
      break;
    case '\t':
      g_string_append(out, "\001t");
      break;
    case '\r':
      g_string_append(out, "\001r");
      break;
    case '\n':
      g_string_append(out, "\001n");
      break;
    default:
      g_string_append_c(out, *p);
    }
  }
}

char *dovecot_tab_unescape(const char *text, gsize length, gsize *length_r) {
  GString *out = g_string_sized_new(length);
  for (gsize i = 0; i < length; i++) {
    if (text[i] != '\001' || i + 1 == length) {
      g_string_append_c(out, text[i]);
      continue;
    }
    char next = text[++i];
    switch (next) {
    case '0':
      g_string_append_c(out, '\0');
      break;
    case '1':
      g_string_append_c(out, '\001');
      break;
    case 't':
      g_string_append_c(out, '\t');
      break;
    case 'r':
      g_string_append_c(out, '\r');
      break;
    case 'n':
      g_string_append_c(out, '\n');
      break;
    default:
      g_string_append_c(out, next);
    }
  }
  *length_r = out->len;
  return g_string_free(out, FALSE);
}

static gboolean is_base64_char(char c) {
  return g_ascii_isalnum(c) || c == '+' || c == '/';
}

guint8 *dovecot_base64_decode(const char *text, gsize *length_r) {
  gsize length = strlen(text);
  if (length % 4 != 0)
    return NULL;
  for (gsize i = 0; i < length; i++) {
    if (is_base64_char(text[i]))
      continue;
    /* '=' only as the last one or two characters. */
    if (text[i] != '=' || i + 2 < length ||
        (i + 2 == length && text[i + 1] != '='))
      return NULL;
  }
  if (length == 0) {
    *length_r = 0;
    return g_malloc0(1);
  }
  return g_base64_decode(text, length_r);
}

/* --- Fields ----------------------------------------------------------------
 */

static gboolean reply_error(GError **error, const char *format, ...)
    G_GNUC_PRINTF(2, 3);

static gboolean reply_error(GError **error, const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *text = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error_literal(error, dovecot_protocol_error_quark(), 0, text);
  return FALSE;
}

/* A decimal number without sign or leading junk, up to `max`. */
static gboolean parse_number(const char *text, guint64 max, guint64 *value_r) {
  if (text == NULL || *text == '\0' || strlen(text) > 20)
    return FALSE;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isdigit(*p))
      return FALSE;
  guint64 value = g_ascii_strtoull(text, NULL, 10);
  if (value > max)
    return FALSE;
  *value_r = value;
  return TRUE;
}

static gboolean parse_id(const char *text, guint *id_r, GError **error) {
  guint64 value = 0;
  if (!parse_number(text, G_MAXUINT32, &value) || value == 0)
    return reply_error(error, "bad request id \"%s\"", text ? text : "");
  *id_r = (guint)value;
  return TRUE;
}

static gboolean mechanism_name_is_valid(const char *name) {
  gsize length = strlen(name);
  if (length == 0 || length > MAX_MECHANISM_NAME)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

/* The value of "name=value" among `params`, or NULL. */
static const char *param_value(char **params, const char *name) {
  gsize length = strlen(name);
  for (guint i = 0; params[i] != NULL; i++)
    if (strncmp(params[i], name, length) == 0 && params[i][length] == '=')
      return params[i] + length + 1;
  return NULL;
}

static gboolean param_flag(char **params, const char *name) {
  for (guint i = 0; params[i] != NULL; i++)
    if (strcmp(params[i], name) == 0)
      return TRUE;
  return FALSE;
}

/* A user name the core may take: printable UTF-8, no control characters. */
static gboolean user_is_valid(const char *user) {
  if (*user == '\0' || strlen(user) > 1024 || !g_utf8_validate(user, -1, NULL))
    return FALSE;
  for (const char *p = user; *p != '\0'; p = g_utf8_next_char(p))
    if (g_unichar_iscntrl(g_utf8_get_char(p)))
      return FALSE;
  return TRUE;
}

/* Dovecot's reason text made safe for one log line. */
static char *printable(const char *text) {
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  GString *out = g_string_new(NULL);
  for (const char *p = valid; *p != '\0' && out->len < MAX_REASON;
       p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (g_unichar_iscntrl(c))
      g_string_append_c(out, '?');
    else
      g_string_append_unichar(out, c);
  }
  return g_string_free(out, FALSE);
}

/* --- Commands --------------------------------------------------------------
 */

static gboolean parse_version(DovecotReply *reply, char **args,
                              GError **error) {
  guint64 major = 0, minor = 0;
  if (!parse_number(args[0], G_MAXUINT32, &major) ||
      !parse_number(args[1], G_MAXUINT32, &minor))
    return reply_error(error, "bad VERSION line");
  reply->major = (guint)major;
  reply->minor = (guint)minor;
  return TRUE;
}

static const struct {
  const char *name;
  DovecotMechFlags flag;
} mech_flags[] = {
    {"private", DOVECOT_MECH_PRIVATE},
    {"anonymous", DOVECOT_MECH_ANONYMOUS},
    {"plaintext", DOVECOT_MECH_PLAINTEXT},
    {"dictionary", DOVECOT_MECH_DICTIONARY},
    {"active", DOVECOT_MECH_ACTIVE},
    {"forward-secrecy", DOVECOT_MECH_FORWARD_SECRECY},
    {"mutual-auth", DOVECOT_MECH_MUTUAL_AUTH},
};

static gboolean parse_mech(DovecotReply *reply, char **args, GError **error) {
  if (args[0] == NULL || !mechanism_name_is_valid(args[0]))
    return reply_error(error, "bad MECH name \"%s\"", args[0] ? args[0] : "");
  reply->mechanism = g_ascii_strup(args[0], -1);
  for (guint i = 1; args[i] != NULL; i++)
    for (guint k = 0; k < G_N_ELEMENTS(mech_flags); k++)
      if (strcmp(args[i], mech_flags[k].name) == 0)
        reply->mech_flags |= mech_flags[k].flag;
  return TRUE;
}

static gboolean parse_cont(DovecotReply *reply, char **args, GError **error) {
  if (!parse_id(args[0], &reply->id, error))
    return FALSE;
  if (args[1] == NULL)
    return reply_error(error, "CONT without data");
  reply->data = dovecot_base64_decode(args[1], &reply->data_length);
  if (reply->data == NULL)
    return reply_error(error, "CONT data is not base64");
  return TRUE;
}

static gboolean parse_user(DovecotReply *reply, char **params, GError **error) {
  const char *user = param_value(params, "user");
  if (user == NULL)
    return TRUE;
  if (!user_is_valid(user))
    return reply_error(error, "user name is not printable UTF-8");
  reply->user = g_strdup(user);
  return TRUE;
}

static gboolean parse_ok(DovecotReply *reply, char **args, GError **error) {
  if (!parse_id(args[0], &reply->id, error) ||
      !parse_user(reply, args + 1, error))
    return FALSE;
  if (reply->user == NULL)
    return reply_error(error, "OK without user=");
  return TRUE;
}

static gboolean parse_fail(DovecotReply *reply, char **args, GError **error) {
  if (!parse_id(args[0], &reply->id, error) ||
      !parse_user(reply, args + 1, error))
    return FALSE;
  const char *reason = param_value(args + 1, "reason");
  const char *code = param_value(args + 1, "code");
  if (reason != NULL)
    reply->reason = printable(reason);
  if (code != NULL)
    reply->code = printable(code);
  reply->temporary =
      param_flag(args + 1, "temp") || g_strcmp0(code, "temp_fail") == 0;
  return TRUE;
}

static gboolean parse_number_line(DovecotReply *reply, char **args,
                                  GError **error) {
  if (!parse_number(args[0], G_MAXUINT64, &reply->number))
    return reply_error(error, "bad %s line", reply->command);
  return TRUE;
}

static const struct {
  const char *command;
  DovecotReplyKind kind;
  guint min_args; /* after the command */
  gboolean (*parse)(DovecotReply *reply, char **args, GError **error);
} commands[] = {
    {"VERSION", DOVECOT_REPLY_VERSION, 2, parse_version},
    {"MECH", DOVECOT_REPLY_MECH, 1, parse_mech},
    {"SPID", DOVECOT_REPLY_SPID, 1, parse_number_line},
    {"CUID", DOVECOT_REPLY_CUID, 1, parse_number_line},
    {"COOKIE", DOVECOT_REPLY_COOKIE, 1, NULL},
    {"DONE", DOVECOT_REPLY_DONE, 0, NULL},
    {"OK", DOVECOT_REPLY_OK, 1, parse_ok},
    {"CONT", DOVECOT_REPLY_CONT, 2, parse_cont},
    {"FAIL", DOVECOT_REPLY_FAIL, 1, parse_fail},
};

/* The line split at TABs, each field unescaped; NULL if one holds a NUL. */
static char **split_fields(const char *line, gsize length) {
  GPtrArray *fields = g_ptr_array_new_with_free_func(g_free);
  gsize start = 0;
  for (gsize i = 0; i <= length; i++) {
    if (i < length && line[i] != '\t')
      continue;
    gsize field_length = 0;
    char *field = dovecot_tab_unescape(line + start, i - start, &field_length);
    if (strlen(field) != field_length) {
      g_free(field);
      g_ptr_array_free(fields, TRUE);
      return NULL;
    }
    g_ptr_array_add(fields, field);
    start = i + 1;
  }
  g_ptr_array_add(fields, NULL);
  g_ptr_array_set_free_func(fields, NULL);
  return (char **)g_ptr_array_free(fields, FALSE);
}

DovecotReply *dovecot_reply_parse(const char *line, gsize length,
                                  GError **error) {
  if (length > DOVECOT_MAX_LINE) {
    reply_error(error, "line longer than %u octets", DOVECOT_MAX_LINE);
    return NULL;
  }
  if (memchr(line, '\0', length) != NULL) {
    reply_error(error, "NUL in a line");
    return NULL;
  }
  g_auto(GStrv) fields = split_fields(line, length);
  if (fields == NULL || fields[0][0] == '\0') {
    reply_error(error, "empty command");
    return NULL;
  }
  g_autoptr(DovecotReply) reply = g_new0(DovecotReply, 1);
  reply->command = printable(fields[0]);
  for (guint i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (strcmp(fields[0], commands[i].command) != 0)
      continue;
    reply->kind = commands[i].kind;
    if (g_strv_length(fields) - 1 < commands[i].min_args) {
      reply_error(error, "%s with too few fields", commands[i].command);
      return NULL;
    }
    if (commands[i].parse != NULL &&
        !commands[i].parse(reply, fields + 1, error))
      return NULL;
    break;
  }
  return g_steal_pointer(&reply);
}

/* --- Requests ---------------------------------------------------------------
 */

char *dovecot_request_handshake(guint pid) {
  return g_strdup_printf("VERSION\t%u\t%u\nCPID\t%u\n", DOVECOT_MAJOR_VERSION,
                         DOVECOT_MINOR_VERSION, pid);
}

static void append_param(GString *out, const char *name, const char *value) {
  if (value == NULL || *value == '\0')
    return;
  g_string_append_printf(out, "\t%s=", name);
  dovecot_tab_escape(out, value);
}

char *dovecot_request_auth(const DovecotAuthRequest *request) {
  GString *out = g_string_new(NULL);
  g_string_append_printf(out, "AUTH\t%u\t", request->id);
  dovecot_tab_escape(out, request->mechanism);
  append_param(out, "service", request->service);
  if (request->secured)
    g_string_append(out, "\tsecured");
  append_param(out, "session", request->session);
  append_param(out, "lip", request->local_ip);
  append_param(out, "rip", request->remote_ip);
  if (request->local_port != 0)
    g_string_append_printf(out, "\tlport=%u", request->local_port);
  if (request->remote_port != 0)
    g_string_append_printf(out, "\trport=%u", request->remote_port);
  if (request->has_response) {
    g_autofree char *encoded =
        request->length > 0
            ? g_base64_encode(request->response, request->length)
            : g_strdup("");
    g_string_append_printf(out, "\tresp=%s", encoded);
    memset(encoded, 0, strlen(encoded));
  }
  g_string_append_c(out, '\n');
  return g_string_free(out, FALSE);
}

char *dovecot_request_cont(guint id, const guint8 *data, gsize length) {
  g_autofree char *encoded =
      length > 0 ? g_base64_encode(data, length) : g_strdup("");
  char *line = g_strdup_printf("CONT\t%u\t%s\n", id, encoded);
  memset(encoded, 0, strlen(encoded));
  return line;
}

char *dovecot_request_cancel(guint id) {
  return g_strdup_printf("CANCEL\t%u\n", id);
}
