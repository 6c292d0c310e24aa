/* xclient-parse.c - the XCLIENT argument, parsed without side effects.
 *
 * "NAME=VALUE ..." with the attribute names of Postfix's XCLIENT_README
 * (case-insensitive), xtext values (RFC 3461), "[UNAVAILABLE]" and
 * "[TEMPUNAVAIL]" for unknown values, "IPV6:" before an IPv6 ADDR or
 * DESTADDR.  Every value is checked (addresses with GInetAddress, ports
 * 0-65535, names printable ASCII without spaces, LOGIN valid UTF-8), and
 * the first bad one yields the text of the 501 5.5.4 reply.  Called by
 * session-xclient.c and fuzz/fuzz-xclient.c.
 */
#include <string.h>

#include <gio/gio.h>

#include "session/xclient-parse.h"
#include "smtp/smtp-parse.h"

static void xclient_attrs_clear(PstXclientAttrs *attrs) {
  g_free(attrs->name);
  g_free(attrs->addr);
  g_free(attrs->helo);
  g_free(attrs->login);
  g_free(attrs->destaddr);
  memset(attrs, 0, sizeof *attrs);
}

/* Text form of an address value ("192.0.2.1", "IPV6:2001:db8::1"), IPv4
 * mapped addresses unmapped as everywhere else; NULL when malformed. */
static char *xclient_address(const char *value) {
  const char *text = value;
  gboolean v6 = g_ascii_strncasecmp(value, "IPV6:", 5) == 0;
  if (v6)
    text = value + 5;
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string(text);
  if (address == NULL ||
      v6 != (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6))
    return NULL;
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6) {
    const guint8 *bytes = g_inet_address_to_bytes(address);
    static const guint8 prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(bytes, prefix, 12) == 0)
      return g_strdup_printf("%u.%u.%u.%u", bytes[12], bytes[13], bytes[14],
                             bytes[15]);
  }
  return g_inet_address_to_string(address);
}

static gboolean xclient_port(const char *value, guint16 *port_r) {
  guint64 port = 0;
  if (value[0] == '\0' || strlen(value) > 5 ||
      !g_ascii_string_to_unsigned(value, 10, 0, 65535, &port, NULL))
    return FALSE;
  *port_r = (guint16)port;
  return TRUE;
}

/* A name or HELO value: printable ASCII without spaces, at most 255. */
static gboolean xclient_name(const char *value) {
  gsize length = strlen(value);
  if (length == 0 || length > 255)
    return FALSE;
  for (gsize i = 0; i < length; i++)
    if (value[i] <= 0x20 || value[i] >= 0x7f)
      return FALSE;
  return TRUE;
}

/* Stores one decoded attribute; FALSE when its value is malformed. */
static gboolean xclient_set(PstXclientAttrs *attrs, const char *name,
                            const char *value, gboolean unknown) {
  if (g_ascii_strcasecmp(name, "NAME") == 0) {
    attrs->set |= PST_XCLIENT_NAME;
    g_free(attrs->name); /* a repeated attribute: the last wins */
    attrs->name = unknown ? NULL : g_strdup(value);
    return unknown || xclient_name(value);
  }
  if (g_ascii_strcasecmp(name, "REVERSE_NAME") == 0)
    return TRUE; /* unverified; the verified NAME is what we keep */
  if (g_ascii_strcasecmp(name, "ADDR") == 0) {
    attrs->set |= PST_XCLIENT_ADDR;
    g_free(attrs->addr); /* a repeated attribute: the last wins */
    attrs->addr = unknown ? NULL : xclient_address(value);
    return unknown || attrs->addr != NULL;
  }
  if (g_ascii_strcasecmp(name, "PORT") == 0) {
    attrs->set |= PST_XCLIENT_PORT;
    return unknown || xclient_port(value, &attrs->port);
  }
  if (g_ascii_strcasecmp(name, "PROTO") == 0) {
    if (unknown)
      return TRUE;
    attrs->set |= PST_XCLIENT_PROTO;
    attrs->esmtp = g_ascii_strcasecmp(value, "ESMTP") == 0;
    return attrs->esmtp || g_ascii_strcasecmp(value, "SMTP") == 0;
  }
  if (g_ascii_strcasecmp(name, "HELO") == 0) {
    attrs->set |= PST_XCLIENT_HELO;
    g_free(attrs->helo); /* a repeated attribute: the last wins */
    attrs->helo = unknown ? NULL : g_strdup(value);
    return unknown || xclient_name(value);
  }
  if (g_ascii_strcasecmp(name, "LOGIN") == 0) {
    attrs->set |= PST_XCLIENT_LOGIN;
    g_free(attrs->login); /* a repeated attribute: the last wins */
    attrs->login = unknown ? NULL : g_strdup(value);
    return unknown || (value[0] != '\0' && g_utf8_validate(value, -1, NULL) &&
                       strpbrk(value, "\r\n") == NULL);
  }
  if (g_ascii_strcasecmp(name, "DESTADDR") == 0) {
    attrs->set |= PST_XCLIENT_DESTADDR;
    g_free(attrs->destaddr); /* a repeated attribute: the last wins */
    attrs->destaddr = unknown ? NULL : xclient_address(value);
    return unknown || attrs->destaddr != NULL;
  }
  if (g_ascii_strcasecmp(name, "DESTPORT") == 0) {
    attrs->set |= PST_XCLIENT_DESTPORT;
    return unknown || xclient_port(value, &attrs->destport);
  }
  return FALSE;
}

static gboolean xclient_known_name(const char *name) {
  static const char *const names[] = {"NAME",  "REVERSE_NAME", "ADDR",
                                      "PORT",  "PROTO",        "HELO",
                                      "LOGIN", "DESTADDR",     "DESTPORT"};
  for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
    if (g_ascii_strcasecmp(name, names[i]) == 0)
      return TRUE;
  return FALSE;
}

char *pst_xclient_parse(const char *argument, gsize length,
                        PstXclientAttrs *attrs) {
  memset(attrs, 0, sizeof *attrs);
  g_autofree char *copy = g_strndup(argument, length);
  if (strlen(copy) != length || copy[0] == '\0')
    return g_strdup("Syntax: XCLIENT attribute=value...");
  g_auto(GStrv) words = g_strsplit(copy, " ", -1);
  for (guint i = 0; words[i] != NULL; i++) {
    if (words[i][0] == '\0')
      continue;
    char *equals = strchr(words[i], '=');
    if (equals == NULL) {
      xclient_attrs_clear(attrs);
      return g_strdup_printf("Bad XCLIENT attribute syntax: %s", words[i]);
    }
    *equals = '\0';
    if (!xclient_known_name(words[i])) {
      g_autofree char *name = g_strdup(words[i]);
      xclient_attrs_clear(attrs);
      return g_strdup_printf("Bad XCLIENT attribute name: %s", name);
    }
    g_autofree char *value = NULL;
    const char *raw = equals + 1;
    gboolean unknown = g_ascii_strcasecmp(raw, "[UNAVAILABLE]") == 0 ||
                       g_ascii_strcasecmp(raw, "[TEMPUNAVAIL]") == 0;
    if (!pst_xtext_decode(raw, strlen(raw), &value) ||
        !xclient_set(attrs, words[i], value, unknown)) {
      g_autofree char *message = g_strdup_printf(
          "Bad %s syntax: %s", words[i], raw);
      xclient_attrs_clear(attrs);
      g_strcanon(message, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", '?');
      return g_steal_pointer(&message);
    }
  }
  return NULL;
}

void pst_xclient_attrs_clear(PstXclientAttrs *attrs) {
  xclient_attrs_clear(attrs);
}

