/* fuzz-dovecot-reply.c - fuzzes dovecot_reply_parse() (plugins/auth), the
 * parser of every line Dovecot's auth service sends.
 *
 * Input: one line (without LF).  Beyond "no crash, no leak" it checks the
 * contract: exactly one of the reply and the error is set; an OK has a
 * user; a user is valid UTF-8 without control characters; a MECH name is
 * non-empty upper case; OK/CONT/FAIL ids are never 0; CONT data is there.
 */
#include <stdint.h>
#include <string.h>

#include "../plugins/auth/dovecot-protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_user(const char *user) {
  if (user == NULL)
    return;
  g_assert_true(g_utf8_validate(user, -1, NULL));
  for (const char *p = user; *p != '\0'; p = g_utf8_next_char(p))
    g_assert_false(g_unichar_iscntrl(g_utf8_get_char(p)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  g_autoptr(GError) error = NULL;
  g_autoptr(DovecotReply) reply =
      dovecot_reply_parse((const char *)data, size, &error);
  g_assert_true((reply == NULL) != (error == NULL));
  if (reply == NULL)
    return 0;
  check_user(reply->user);
  switch (reply->kind) {
  case DOVECOT_REPLY_OK:
    g_assert_nonnull(reply->user);
    g_assert_cmpuint(reply->id, !=, 0);
    break;
  case DOVECOT_REPLY_CONT:
    g_assert_nonnull(reply->data);
    g_assert_cmpuint(reply->id, !=, 0);
    break;
  case DOVECOT_REPLY_FAIL:
    g_assert_cmpuint(reply->id, !=, 0);
    break;
  case DOVECOT_REPLY_MECH:
    g_assert_nonnull(reply->mechanism);
    g_assert_cmpuint(strlen(reply->mechanism), >, 0);
    for (const char *p = reply->mechanism; *p != '\0'; p++)
      g_assert_false(g_ascii_islower(*p));
    break;
  default:
    break;
  }
  return 0;
}
