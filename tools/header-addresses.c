/* header-addresses.c - the addresses of a To:, Cc: or Bcc: field, for
 * `sendmail -t` (PHP's mail(), scripts).
 *
 * A scanner over the field's value, as RFC 5322 3.4 writes an
 * address-list: each mailbox is what stands inside <> when it has them,
 * else its text; comments go, quoted strings stay whole (quotes
 * included: "john doe"@example.org is an address), white space and
 * folding outside quotes go (obsolete "bob @ example.org"), a group's
 * display name goes and its members are read.  An address in a display
 * name or a comment ("bob@example.org via list" <alice@example.org>) is
 * never taken, and an address is taken whole whatever its octets
 * (jörg@bücher.example, for SMTPUTF8).  Pure: sendmail.c calls it,
 * tools/test-header-addresses.c checks it.
 */
#include <string.h>

#include "tools/header-addresses.h"

typedef struct {
  GString *text;      /* this mailbox's text outside <> */
  GString *angle;     /* inside <> */
  gboolean in_angle;  /* between < and > */
  gboolean has_angle; /* this mailbox had a < */
  GPtrArray *out;
} Scan;

/* Ends the mailbox: its address, without an obsolete route
 * ("@a,@b:bob@example.org", which holds no quote), goes to the list
 * unless empty. */
static void scan_finish_mailbox(Scan *scan) {
  const char *address = scan->has_angle ? scan->angle->str : scan->text->str;
  if (scan->has_angle && address[0] == '@') {
    gsize route = strcspn(address, ":\"");
    address = address[route] == ':' ? address + route + 1 : "";
  }
  if (address[0] != '\0')
    g_ptr_array_add(scan->out, g_strdup(address));
  g_string_truncate(scan->text, 0);
  g_string_truncate(scan->angle, 0);
  scan->in_angle = FALSE;
  scan->has_angle = FALSE;
}

/* Past a comment that starts at value[i] == '(': the index after it. */
static gsize skip_comment(const char *value, gsize i) {
  guint depth = 0;
  for (; value[i] != '\0'; i++) {
    if (value[i] == '\\' && value[i + 1] != '\0')
      i++;
    else if (value[i] == '(')
      depth++;
    else if (value[i] == ')' && --depth == 0)
      return i + 1;
  }
  return i;
}

/* Copies the quoted string at value[i] == '"', quotes and escapes kept,
 * folding undone (its CR and LF dropped: an address never carries a line
 * break into a command); the index after it. */
static gsize copy_quoted(const char *value, gsize i, GString *out) {
  g_string_append_c(out, '"');
  for (i++; value[i] != '\0'; i++) {
    if (value[i] == '\r' || value[i] == '\n')
      continue;
    if (value[i] == '\\' && (value[i + 1] == '\r' || value[i + 1] == '\n'))
      continue;
    g_string_append_c(out, value[i]);
    if (value[i] == '\\' && value[i + 1] != '\0')
      g_string_append_c(out, value[++i]);
    else if (value[i] == '"')
      return i + 1;
  }
  return i;
}

/* One octet outside comments and quoted strings. */
static void scan_char(Scan *scan, char c) {
  if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
    return;
  if (c == '<' && !scan->in_angle) {
    g_string_truncate(scan->angle, 0);
    scan->in_angle = TRUE;
    scan->has_angle = TRUE;
  } else if (c == '>' && scan->in_angle) {
    scan->in_angle = FALSE;
  } else if (!scan->in_angle && (c == ',' || c == ';')) {
    scan_finish_mailbox(scan);
  } else if (!scan->in_angle && c == ':') {
    g_string_truncate(scan->text, 0); /* a group's name: members follow */
  } else {
    g_string_append_c(scan->in_angle ? scan->angle : scan->text, c);
  }
}

void pst_header_addresses_scan(const char *value, GPtrArray *out) {
  Scan scan = {g_string_new(NULL), g_string_new(NULL), FALSE, FALSE, out};
  gsize i = 0;
  while (value[i] != '\0') {
    if (value[i] == '(') {
      i = skip_comment(value, i);
    } else if (value[i] == '"') {
      i = copy_quoted(value, i, scan.in_angle ? scan.angle : scan.text);
    } else {
      scan_char(&scan, value[i]);
      i++;
    }
  }
  scan_finish_mailbox(&scan);
  g_string_free(scan.text, TRUE);
  g_string_free(scan.angle, TRUE);
}
