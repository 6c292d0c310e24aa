/* sendmail.c - the sendmail-compatible entry point (`postilion sendmail`
 * and the `sendmail` link), for mailx, cron and scripts.
 *
 * Reads the message from standard input and submits it over SMTP to the
 * daemon's first plain listener that requires neither AUTH nor TLS (else
 * its first listener; 0.0.0.0 and :: become the loopback address), so
 * it passes the same checks as any message.  It says EHLO with [server]
 * hostname (a fully-qualified name, so the relay plugin's HELO checks pass
 * whether or not loopback is an internal network) and always ends with
 * QUIT.  Options, as sendmail's:
 *   -f SENDER   envelope sender (default: the invoking user @ hostname)
 *   -F NAME     full name for a From: header we add when there is none
 *   -t          recipients from To:, Cc: and Bcc: (Bcc: is removed)
 *   -i, -oi     a line with a single "." does not end the message
 *   -C FILE     the configuration (also $POSTILION_CONFIG), as Postfix's -C
 *   -N DSN      NOTIFY for every recipient: never, or success,delay,failure
 *   -R RET      RET for the message: full or hdrs
 *   -V ENVID    ENVID for the message (RFC 3461)
 *   -bs         SMTP on standard input and output (sendmail-stdio.c)
 *   -bp, -q     the queue listed, flushed (`postilion queue list|flush`)
 *   -bi, -I     nothing to build: the aliases file is read as text
 *   -bd, -bv... refused (64), standard input never read
 *   -o..., -B..., -bm, -v, -m and other common options are accepted and
 *               ignored (cron: -FCronDaemon -i -B8BITMIME -oem)
 * Recipients on the command line add to those.  A bare local name
 * ("root") gets @ the first of [server] domains (hostname when there are
 * none), as Postfix's append_at_myorigin, so the daemon's aliases apply; a
 * bare sender gets @ hostname.  Date:, Message-ID: and From: are added
 * when missing.  What a program printed is mended into text SMTP carries
 * (sendmail-text.c: bare CRs, NULs, lines over 998 octets), so its mail is
 * not refused for them; MAIL declares SIZE, so a message over the daemon's
 * limit is refused before it is sent.  Exit status: sysexits(3), as
 * sendmail: 0 queued, 64 bad usage, 65 message refused, 67 a recipient
 * refused (the others still get the message), 69 daemon unreachable, 75
 * temporary failure (nothing sent).
 * pst_tool_submit() is the same submission for other commands (`postilion
 * dmarc report` sends its reports through it).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "smtp/message-date.h"
#include "tools/header-addresses.h"
#include "tools/postilion-tool.h"
#include "tools/sendmail-text.h"

#define INPUT_MAX (1024 * 1024 * 1024)

/* What sendmail was asked to do: -bm (the default), -bs, -bp, -bi ... */
typedef enum {
  MODE_MAIL,        /* read a message and submit it */
  MODE_SMTP,        /* -bs: SMTP on standard input and output */
  MODE_LIST,        /* -bp, mailq: the queue */
  MODE_FLUSH,       /* -q: deliver the queue now */
  MODE_ALIASES,     /* -bi, -I, newaliases: nothing to build */
  MODE_UNSUPPORTED, /* -bd, -bh, -bv ...: refused, not read as mail */
} SendmailMode;

typedef struct {
  SendmailMode mode;
  const char *mode_flag; /* borrowed: the argument that chose an odd mode */
  char *sender;          /* owned, nullable */
  char *full_name;       /* owned, nullable */
  char *config_path;     /* owned, nullable: -C FILE */
  char *notify;          /* owned, nullable: -N, as RCPT's NOTIFY= value */
  char *ret;             /* owned, nullable: -R, as MAIL's RET= value */
  char *envid;           /* owned, nullable: -V, as MAIL's ENVID= (xtext) */
  gboolean from_headers; /* -t */
  gboolean dot_ends;     /* without -i */
  GPtrArray *recipients; /* owned, of char* */
} SendmailOptions;

/* --- Options ------------------------------------------------------------ */

/* The mode an -b, -I or -q argument asks for, as Postfix's sendmail reads
 * them: -q alone (or -qR, -qS) flushes, -q with a time is the daemon's
 * interval (nothing to do here: the mail mode, as before). */
static SendmailMode mode_of(const char *arg) {
  if (g_str_equal(arg, "-bm") || g_str_equal(arg, "-bl"))
    return MODE_MAIL;
  if (g_str_equal(arg, "-bs"))
    return MODE_SMTP;
  if (g_str_equal(arg, "-bp"))
    return MODE_LIST;
  if (g_str_equal(arg, "-bi") || g_str_equal(arg, "-I"))
    return MODE_ALIASES;
  if (arg[1] == 'q')
    return g_ascii_isdigit(arg[2]) ? MODE_MAIL : MODE_FLUSH;
  return MODE_UNSUPPORTED;
}

/* -N's value as NOTIFY= wants it ("never", or some of "success",
 * "delay", "failure", comma-separated, any case); NULL when it is not. */
static char *notify_of(const char *value) {
  g_auto(GStrv) words = g_strsplit(value, ",", -1);
  guint seen = 0;
  for (guint i = 0; words[i] != NULL; i++) {
    static const char *const names[] = {"never", "success", "delay", "failure"};
    guint bit = 0;
    for (guint n = 0; n < G_N_ELEMENTS(names); n++)
      if (g_ascii_strcasecmp(g_strstrip(words[i]), names[n]) == 0)
        bit = 1u << n;
    if (bit == 0 || (seen & bit) != 0)
      return NULL;
    seen |= bit;
  }
  if (seen == 0 || ((seen & 1u) != 0 && seen != 1u))
    return NULL; /* nothing, or NEVER with others (RFC 3461 4.1) */
  g_autofree char *joined = g_strjoinv(",", words);
  return g_ascii_strup(joined, -1);
}

/* -V's envelope id as ENVID= carries it (RFC 3461 4.4: xtext, at most
 * 100 octets of printable ASCII before encoding); NULL when it is not. */
static char *envid_of(const char *value) {
  gsize length = strlen(value);
  if (length == 0 || length > 100)
    return NULL;
  GString *xtext = g_string_new(NULL);
  for (gsize i = 0; i < length; i++) {
    guchar c = (guchar)value[i];
    if (c < 0x20 || c > 0x7e) {
      g_string_free(xtext, TRUE);
      return NULL;
    }
    if (c == ' ' || c == '+' || c == '=')
      g_string_append_printf(xtext, "+%02X", c);
    else
      g_string_append_c(xtext, (char)c);
  }
  return g_string_free(xtext, FALSE);
}

/* An option's value into its slot; FALSE when it is not valid. */
static gboolean take_value(SendmailOptions *o, char flag, const char *value) {
  char *taken = g_strdup(value);
  char **slot = &o->sender; /* -f, -r */
  if (flag == 'F') {
    slot = &o->full_name;
  } else if (flag == 'C') {
    slot = &o->config_path;
  } else if (flag == 'N') {
    g_free(taken);
    taken = notify_of(value);
    slot = &o->notify;
  } else if (flag == 'R') {
    g_free(taken);
    gboolean full = g_ascii_strcasecmp(value, "full") == 0;
    taken = full || g_ascii_strcasecmp(value, "hdrs") == 0
                ? g_strdup(full ? "FULL" : "HDRS")
                : NULL;
    slot = &o->ret;
  } else if (flag == 'V') {
    g_free(taken);
    taken = envid_of(value);
    slot = &o->envid;
  }
  if (taken == NULL) {
    fprintf(stderr, "sendmail: -%c %s: not a valid value\n", flag, value);
    return FALSE;
  }
  g_free(*slot);
  *slot = taken;
  return TRUE;
}

static gboolean parse_options(int argc, char **argv, SendmailOptions *o) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-') {
      g_ptr_array_add(o->recipients, g_strdup(arg));
      continue;
    }
    if (g_str_equal(arg, "--")) {
      for (i++; i < argc; i++)
        g_ptr_array_add(o->recipients, g_strdup(argv[i]));
      break;
    }
    char flag = arg[1];
    if (flag != '\0' && strchr("fFrCNRV", flag) != NULL) {
      const char *value = arg[2] ? arg + 2 : (i + 1 < argc ? argv[++i] : NULL);
      if (value == NULL || !take_value(o, flag, value))
        return FALSE;
    } else if (flag == 't' && arg[2] == '\0') {
      o->from_headers = TRUE;
    } else if (g_str_equal(arg, "-i") || g_str_equal(arg, "-oi")) {
      o->dot_ends = FALSE;
    } else if (flag == 'b' || flag == 'I' || flag == 'q') {
      o->mode = mode_of(arg);
      o->mode_flag = arg;
    } else if (flag != '\0' && strchr("oBvXLhdmnU", flag) != NULL) {
      /* Accepted for compatibility; -X/-L/-h take a value. */
      if (strchr("XLh", flag) != NULL && arg[2] == '\0' && i + 1 < argc)
        i++;
    } else {
      return FALSE;
    }
  }
  return TRUE;
}

/* --- The message -------------------------------------------------------- */

/* Standard input, up to a line holding a single "." unless -i, made into
 * message text (sendmail-text.c); NULL when it is over INPUT_MAX. */
static GString *read_message(gboolean dot_ends) {
  g_autoptr(GString) input = g_string_new(NULL);
  char *line = NULL;
  size_t capacity = 0;
  ssize_t n;
  while ((n = getline(&line, &capacity, stdin)) > 0) {
    gsize length = (gsize)n;
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
      length--;
    if (dot_ends && length == 1 && line[0] == '.')
      break;
    g_string_append_len(input, line, n);
    if (input->len > INPUT_MAX)
      break;
  }
  free(line);
  if (input->len > INPUT_MAX)
    return NULL;
  return pst_sendmail_text_from_input(input->str, input->len);
}

/* The header block's length, including the blank line (or 0). */
static gsize header_end(const GString *message) {
  if (g_str_has_prefix(message->str, "\r\n"))
    return 2;
  const char *end = strstr(message->str, "\r\n\r\n");
  return end != NULL ? (gsize)(end - message->str) + 4 : message->len;
}

/* TRUE when the header block has field `name`. */
static gboolean has_field(const char *header, gsize length, const char *name) {
  gsize name_length = strlen(name);
  for (gsize i = 0; i < length; i++) {
    if ((i == 0 || header[i - 1] == '\n') && i + name_length < length &&
        g_ascii_strncasecmp(header + i, name, name_length) == 0 &&
        header[i + name_length] == ':')
      return TRUE;
  }
  return FALSE;
}

/* -t: the addresses of To:, Cc:, Bcc: (with their folded lines; read by
 * header-addresses.c, so an address in a display name or a comment is not
 * taken); Bcc: fields are cut out of the message. */
static void take_header_recipients(GString *message, GPtrArray *recipients) {
  gsize end = header_end(message);
  gsize i = 0;
  while (i < end) {
    gsize line_end = i;
    do {
      const char *nl = strstr(message->str + line_end, "\r\n");
      line_end = nl != NULL ? (gsize)(nl - message->str) + 2 : end;
    } while (line_end < end &&
             (message->str[line_end] == ' ' || message->str[line_end] == '\t'));
    g_autofree char *field = g_strndup(message->str + i, line_end - i);
    gboolean bcc = g_ascii_strncasecmp(field, "bcc:", 4) == 0;
    if (bcc || g_ascii_strncasecmp(field, "to:", 3) == 0 ||
        g_ascii_strncasecmp(field, "cc:", 3) == 0)
      pst_header_addresses_scan(strchr(field, ':') + 1, recipients);
    if (bcc) {
      g_string_erase(message, (gssize)i, (gssize)(line_end - i));
      end -= line_end - i;
    } else {
      i = line_end;
    }
  }
}

static void add_missing_fields(GString *message, const SendmailOptions *o,
                               const char *hostname) {
  gsize end = header_end(message);
  GString *added = g_string_new(NULL);
  if (!has_field(message->str, end, "From")) {
    if (o->full_name != NULL)
      g_string_append_printf(added, "From: \"%s\" <%s>\r\n", o->full_name,
                             o->sender);
    else
      g_string_append_printf(added, "From: <%s>\r\n", o->sender);
  }
  if (!has_field(message->str, end, "Date")) {
    g_autofree char *date = pst_message_date_format(g_get_real_time());
    g_string_append_printf(added, "Date: %s\r\n", date);
  }
  if (!has_field(message->str, end, "Message-ID")) {
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *stamp = g_date_time_format(now, "%Y%m%d%H%M%S");
    g_string_append_printf(added, "Message-ID: <%s.%08X%08X@%s>\r\n", stamp,
                           g_random_int(), g_random_int(), hostname);
  }
  /* No header at all (the first line is no field): all of it is body. */
  if (!pst_sendmail_text_has_header(message->str, message->len))
    g_string_prepend(message, "\r\n");
  g_string_prepend(message, added->str);
  g_string_free(added, TRUE);
}

/* --- SMTP submission ---------------------------------------------------- */

typedef struct {
  GSocketConnection *connection; /* owned */
  GDataInputStream *input;       /* owned */
  GOutputStream *output;         /* borrowed */
} Submission;

/* A whole reply; its code, or 0 on a broken connection. */
static int smtp_reply(Submission *s, char **text_r) {
  for (int lines = 0; lines < 100; lines++) {
    g_autofree char *line =
        g_data_input_stream_read_line(s->input, NULL, NULL, NULL);
    if (line == NULL || strlen(line) < 3)
      return 0;
    g_strchomp(line);
    if (line[3] != '-') {
      if (text_r != NULL)
        *text_r = g_strdup(line);
      return atoi(line);
    }
  }
  return 0;
}

static int smtp_command(Submission *s, char **text_r, const char *format, ...)
    G_GNUC_PRINTF(3, 4);
static int smtp_command(Submission *s, char **text_r, const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *line = g_strdup_vprintf(format, args);
  va_end(args);
  /* An address with a line break (from -f, the arguments or a header)
   * would be a second command: it is refused here, never sent. */
  if (strpbrk(line, "\r\n") != NULL) {
    if (text_r != NULL)
      *text_r = g_strdup("501 5.1.3 address with a line break, not sent");
    return 501;
  }
  g_autofree char *wire = g_strconcat(line, "\r\n", NULL);
  if (!g_output_stream_write_all(s->output, wire, strlen(wire), NULL, NULL,
                                 NULL))
    return 0;
  return smtp_reply(s, text_r);
}

/* The first listener a local program can use as it is (plain, no AUTH or
 * TLS required, no PROXY header), else the first one. */
static const PstListenerConfig *submission_listener(const PstConfig *config) {
  for (guint i = 0; i < config->listeners->len; i++) {
    const PstListenerConfig *listener = config->listeners->pdata[i];
    if (listener->mode == PST_LISTENER_MODE_PLAIN && !listener->require_auth &&
        !listener->require_tls && !listener->proxy_protocol)
      return listener;
  }
  return config->listeners->pdata[0];
}

/* That listener's address, loopback for a wildcard. */
static char *listener_address(const PstConfig *config) {
  const PstListenerConfig *listener = submission_listener(config);
  const char *host = listener->host;
  if (g_str_equal(host, "0.0.0.0"))
    host = "127.0.0.1";
  else if (g_str_equal(host, "::"))
    host = "::1";
  return strchr(host, ':') != NULL
             ? g_strdup_printf("[%s]:%u", host, listener->port)
             : g_strdup_printf("%s:%u", host, listener->port);
}

static int exit_for(int code) {
  if (code == 0 || code == 421)
    return PST_EXIT_TEMPFAIL;
  return code >= 500 ? PST_EXIT_UNAVAILABLE : PST_EXIT_TEMPFAIL;
}

static GString *dot_stuffed(const GString *message) {
  GString *out = g_string_sized_new(message->len + 16);
  gboolean line_start = TRUE;
  for (gsize i = 0; i < message->len; i++) {
    if (line_start && message->str[i] == '.')
      g_string_append_c(out, '.');
    g_string_append_c(out, message->str[i]);
    line_start = message->str[i] == '\n';
  }
  g_string_append(out, ".\r\n");
  return out;
}

/* SIZE (so that a message over the daemon's limit is refused before it is
 * sent), BODY=8BITMIME for 8-bit content, SMTPUTF8 for a non-ASCII
 * address, RET and ENVID from -R and -V. */
static char *mail_params(const SendmailOptions *o, const GString *message) {
  GString *params = g_string_new(NULL);
  g_string_append_printf(params, " SIZE=%" G_GSIZE_FORMAT, message->len);
  if (!g_str_is_ascii(message->str))
    g_string_append(params, " BODY=8BITMIME");
  gboolean utf8 = !g_str_is_ascii(o->sender);
  for (guint i = 0; i < o->recipients->len; i++)
    utf8 |= !g_str_is_ascii(o->recipients->pdata[i]);
  if (utf8)
    g_string_append(params, " SMTPUTF8");
  if (o->ret != NULL)
    g_string_append_printf(params, " RET=%s", o->ret);
  if (o->envid != NULL)
    g_string_append_printf(params, " ENVID=%s", o->envid);
  return g_string_free(params, FALSE);
}

/* The transaction after the greeting; an exit status. */
static int submit_transaction(Submission *s, const char *hostname,
                              const SendmailOptions *o,
                              const GString *message) {
  g_autofree char *text = NULL;
  int code = smtp_reply(s, &text);
  if (code != 220)
    return exit_for(code);
  g_clear_pointer(&text, g_free);
  g_autofree char *params = mail_params(o, message);
  if (smtp_command(s, NULL, "EHLO %s", hostname) != 250 ||
      (code = smtp_command(s, &text, "MAIL FROM:<%s>%s", o->sender, params)) !=
          250) {
    /* MAIL carries SIZE too: 552 is the message, not the sender. */
    fprintf(stderr, "sendmail: %s refused: %s\n",
            code == 552 ? "message" : "sender", text ? text : "");
    return code >= 500 ? PST_EXIT_DATAERR : exit_for(code);
  }
  /* A recipient refused for good (unknown, relaying denied) is reported
   * and left out, and the others still get the message, as with
   * Postfix's sendmail (where it would bounce): one typo in cron's MAILTO
   * does not cost root its mail.  The exit status still says so (67).  A
   * temporary refusal sends nothing, so that a retry reaches everyone
   * once. */
  guint accepted = 0;
  for (guint i = 0; i < o->recipients->len; i++) {
    g_clear_pointer(&text, g_free);
    code = smtp_command(s, &text, "RCPT TO:<%s>%s%s",
                        (char *)o->recipients->pdata[i],
                        o->notify != NULL ? " NOTIFY=" : "",
                        o->notify != NULL ? o->notify : "");
    if (code / 100 == 2) {
      accepted++;
      continue;
    }
    fprintf(stderr, "sendmail: <%s>: %s\n", (char *)o->recipients->pdata[i],
            text ? text : "no answer");
    if (code < 500)
      return exit_for(code);
  }
  if (accepted == 0)
    return PST_EXIT_NOUSER;
  if (smtp_command(s, NULL, "DATA") != 354)
    return PST_EXIT_TEMPFAIL;
  g_autoptr(GString) wire = dot_stuffed(message);
  g_clear_pointer(&text, g_free);
  if (!g_output_stream_write_all(s->output, wire->str, wire->len, NULL, NULL,
                                 NULL) ||
      (code = smtp_reply(s, &text)) != 250) {
    fprintf(stderr, "sendmail: message refused: %s\n", text ? text : "");
    return code >= 500 ? PST_EXIT_DATAERR : exit_for(code);
  }
  return accepted < o->recipients->len ? PST_EXIT_NOUSER : PST_EXIT_OK;
}

GSocketConnection *pst_tool_smtp_connect(const PstConfig *config) {
  g_autofree char *where = listener_address(config);
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, 300);
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection =
      g_socket_client_connect_to_host(client, where, 25, NULL, &error);
  if (connection == NULL)
    fprintf(stderr, "sendmail: cannot reach postiliond at %s: %s\n", where,
            error->message);
  return connection;
}

static int submit(const PstConfig *config, const SendmailOptions *o,
                  const GString *message) {
  Submission s = {0};
  s.connection = pst_tool_smtp_connect(config);
  if (s.connection == NULL)
    return PST_EXIT_UNAVAILABLE;
  s.input = g_data_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(s.connection)));
  s.output = g_io_stream_get_output_stream(G_IO_STREAM(s.connection));
  int status = submit_transaction(&s, config->server.hostname, o, message);
  /* QUIT before hanging up, whatever happened (the server logs a lost
   * connection otherwise); its reply does not matter. */
  smtp_command(&s, NULL, "QUIT");
  g_object_unref(s.input);
  g_object_unref(s.connection);
  return status;
}

int pst_tool_submit(const PstConfig *config, const char *sender,
                    const char *const *recipients, const char *message) {
  SendmailOptions o = {.sender = (char *)sender};
  o.recipients = g_ptr_array_new();
  for (guint i = 0; recipients[i] != NULL; i++)
    g_ptr_array_add(o.recipients, (gpointer)recipients[i]);
  g_autoptr(GString) content = g_string_new(message);
  int status = submit(config, &o, content);
  g_ptr_array_unref(o.recipients);
  return status;
}

static char *default_sender(const PstConfig *config) {
  struct passwd *entry = getpwuid(getuid());
  const char *user = entry != NULL ? entry->pw_name : "nobody";
  return g_strdup_printf("%s@%s", user, config->server.hostname);
}

/* "name" -> "name@DOMAIN" (Postfix's append_at_myorigin); an address
 * with a domain, and the null sender, stay as they are. */
static void qualify(char **address, const char *domain) {
  if (strchr(*address, '@') != NULL || (*address)[0] == '\0')
    return;
  char *qualified = g_strdup_printf("%s@%s", *address, domain);
  g_free(*address);
  *address = qualified;
}

/* Recipients get our first mail domain, so the daemon's aliases and
 * mailboxes apply ("root", "alice"); the sender gets the host name, as
 * the default sender does ("-f <>" is the null sender). */
static void qualify_addresses(const PstConfig *config, SendmailOptions *o) {
  const char *domain =
      config->server.domains != NULL && config->server.domains[0] != NULL
          ? config->server.domains[0]
          : config->server.hostname;
  for (guint i = 0; i < o->recipients->len; i++)
    qualify((char **)&o->recipients->pdata[i], domain);
  if (g_str_equal(o->sender, "<>"))
    o->sender[0] = '\0';
  qualify(&o->sender, config->server.hostname);
}

/* -C FILE, else $POSTILION_CONFIG, else what the caller was given. */
static const char *config_choice(const SendmailOptions *o,
                                 const char *config_path) {
  const char *from_environment = g_getenv("POSTILION_CONFIG");
  if (o->config_path != NULL)
    return o->config_path;
  if (from_environment != NULL && from_environment[0] != '\0')
    return from_environment;
  return config_path;
}

/* The modes other than mail; an exit status. */
static int sendmail_other_mode(PstConfig *config, const SendmailOptions *o) {
  char *list[] = {"queue", "list", NULL};
  char *flush[] = {"queue", "flush", NULL};
  switch (o->mode) {
  case MODE_SMTP:
    return pst_tool_sendmail_stdio(config);
  case MODE_LIST:
    return pst_tool_queue(config, 2, list);
  case MODE_FLUSH:
    return pst_tool_queue(config, 2, flush);
  case MODE_ALIASES:
    fprintf(stderr,
            "sendmail: nothing to build: postiliond reads %s as "
            "text, again on reload (systemctl reload postiliond)\n",
            config->delivery.aliases != NULL ? config->delivery.aliases
                                             : "the aliases file");
    return PST_EXIT_OK;
  case MODE_UNSUPPORTED:
  case MODE_MAIL:
    break;
  }
  fprintf(stderr,
          "sendmail: %s is not supported (supported: -bm, -bs, -bp, "
          "-bi, -q)\n",
          o->mode_flag);
  return PST_EXIT_USAGE;
}

/* Reads, completes and submits the message; an exit status. */
static int sendmail_run(PstConfig *config, SendmailOptions *o) {
  if (o->mode != MODE_MAIL)
    return sendmail_other_mode(config, o);
  if (o->sender == NULL)
    o->sender = default_sender(config);
  g_autoptr(GString) message = read_message(o->dot_ends);
  if (message == NULL) {
    fputs("sendmail: message larger than 1 GiB, not sent\n", stderr);
    return PST_EXIT_DATAERR;
  }
  if (o->from_headers)
    take_header_recipients(message, o->recipients);
  qualify_addresses(config, o);
  add_missing_fields(message, o, config->server.hostname);
  if (o->recipients->len == 0) {
    fputs("sendmail: no recipients (give them as arguments, or -t)\n", stderr);
    return PST_EXIT_USAGE;
  }
  return submit(config, o, message);
}

int pst_tool_sendmail(const char *config_path, int argc, char **argv) {
  SendmailOptions o = {.dot_ends = TRUE};
  o.recipients = g_ptr_array_new_with_free_func(g_free);
  int status = PST_EXIT_USAGE;
  g_autoptr(GError) error = NULL;
  g_autoptr(PstConfig) config = NULL;
  if (!parse_options(argc, argv, &o)) {
    fputs("usage: sendmail [-t] [-i] [-C file] [-f sender] [-F name] "
          "[recipient ...]\n"
          "       sendmail -bs|-bp|-bi|-q [-C file]\n",
          stderr);
  } else if ((config = pst_config_load(config_choice(&o, config_path),
                                       &error)) == NULL) {
    fprintf(stderr, "sendmail: %s\n", error->message);
    status = PST_EXIT_CONFIG;
  } else {
    status = sendmail_run(config, &o);
  }
  g_free(o.sender);
  g_free(o.full_name);
  g_free(o.config_path);
  g_free(o.notify);
  g_free(o.ret);
  g_free(o.envid);
  g_ptr_array_unref(o.recipients);
  return status;
}
