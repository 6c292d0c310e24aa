/* fuzz-xclient.c - fuzzes the XCLIENT argument parser.
 *
 * Input: the argument after "XCLIENT ".  Beyond "no crash, no leak" it
 * checks what a successful parse promises: every address set parses back
 * and is never IPv4-mapped, names and HELO are printable ASCII without
 * spaces, a login is valid UTF-8; a refusal leaves nothing to free.
 */
#include <stdint.h>
#include <string.h>

#include <gio/gio.h>

#include "session/xclient-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void address_check(const char *text) {
  if (text == NULL)
    return;
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string(text);
  g_assert_nonnull(address);
  static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (g_inet_address_get_family(address) == G_SOCKET_FAMILY_IPV6)
    g_assert_true(memcmp(g_inet_address_to_bytes(address), mapped, 12) != 0);
}

static void name_check(const char *text) {
  for (const char *p = text; p != NULL && *p != '\0'; p++)
    g_assert_true(*p > 0x20 && *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  PstXclientAttrs attrs;
  g_autofree char *problem =
      pst_xclient_parse((const char *)data, size, &attrs);
  if (problem != NULL) {
    g_assert_cmpuint(attrs.set, ==, 0);
    g_assert_null(attrs.addr);
    return 0;
  }
  address_check(attrs.addr);
  address_check(attrs.destaddr);
  name_check(attrs.name);
  name_check(attrs.helo);
  if (attrs.login != NULL)
    g_assert_true(g_utf8_validate(attrs.login, -1, NULL));
  pst_xclient_attrs_clear(&attrs);
  return 0;
}
