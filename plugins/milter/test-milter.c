/* test-milter.c - unit tests of the milter plugin's pure parts: frames,
 * replies, negotiation, encoders, text conversions (milter-protocol.c)
 * and the configuration (milter-config.c).
 */
#include <string.h>

#include "milter.h"

/* A frame built from a command and a payload of `length` octets. */
static GByteArray *frame_new(char command, const char *payload, gsize length) {
  GByteArray *out = g_byte_array_new();
  milter_encode_frame(out, command, payload, length);
  return out;
}

static gboolean decode(char command, const char *payload, gsize length,
                       MilterReply *reply) {
  g_autoptr(GByteArray) bytes = frame_new(command, payload, length);
  MilterFrame frame;
  g_assert_cmpint(milter_frame_parse(bytes->data, bytes->len, 1024, &frame,
                                     NULL),
                  ==, MILTER_FRAME_OK);
  g_assert_cmpuint(frame.consumed, ==, bytes->len);
  return milter_reply_decode(&frame, reply, NULL);
}

static void test_frame_bounds(void) {
  guint8 partial[] = {0, 0, 0, 5, 'c'};
  MilterFrame frame;
  g_assert_cmpint(milter_frame_parse(partial, 3, 1024, &frame, NULL), ==,
                  MILTER_FRAME_INCOMPLETE);
  g_assert_cmpint(milter_frame_parse(partial, 5, 1024, &frame, NULL), ==,
                  MILTER_FRAME_INCOMPLETE);
  guint8 zero[] = {0, 0, 0, 0};
  g_assert_cmpint(milter_frame_parse(zero, 4, 1024, &frame, NULL), ==,
                  MILTER_FRAME_ERROR);
  /* Too big is refused from the length alone. */
  guint8 huge[] = {0x7f, 0, 0, 0};
  g_autoptr(GError) error = NULL;
  g_assert_cmpint(milter_frame_parse(huge, 4, 1024, &frame, &error), ==,
                  MILTER_FRAME_ERROR);
  g_assert_nonnull(strstr(error->message, "at most"));
}

static void test_reply_simple(void) {
  static const struct {
    char command;
    MilterReplyType type;
  } cases[] = {{'a', MILTER_REPLY_ACCEPT},   {'c', MILTER_REPLY_CONTINUE},
               {'d', MILTER_REPLY_DISCARD},  {'r', MILTER_REPLY_REJECT},
               {'t', MILTER_REPLY_TEMPFAIL}, {'s', MILTER_REPLY_SKIP},
               {'p', MILTER_REPLY_PROGRESS}, {'4', MILTER_REPLY_SHUTDOWN}};
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    MilterReply reply;
    g_assert_true(decode(cases[i].command, NULL, 0, &reply));
    g_assert_cmpint(reply.type, ==, cases[i].type);
    milter_reply_clear(&reply);
    /* Stray octets after a one-octet reply are garbage. */
    g_assert_false(decode(cases[i].command, "x", 1, &reply));
  }
  MilterReply reply;
  g_assert_false(decode('Z', NULL, 0, &reply));
}

static void test_reply_code(void) {
  static const struct {
    const char *line;
    gboolean valid;
    guint code;
    const char *enhanced;
    const char *text;
  } cases[] = {
      {"550 5.7.1 Rejected by milter", TRUE, 550, "5.7.1",
       "Rejected by milter"},
      {"451 4.7.1", TRUE, 451, "4.7.1", NULL},
      {"554 no enhanced code", TRUE, 554, NULL, "no enhanced code"},
      {"550-5.7.1 one\r\n550 5.7.1 two", TRUE, 550, "5.7.1", "one two"},
      {"550 4.7.1 wrong class", TRUE, 550, NULL, "4.7.1 wrong class"},
      {"250 2.0.0 ok", FALSE, 0, NULL, NULL},
      {"550-x\r\n451 y", FALSE, 0, NULL, NULL},
      {"5x0 bad", FALSE, 0, NULL, NULL},
      {"", FALSE, 0, NULL, NULL},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    MilterReply reply;
    gboolean valid =
        decode('y', cases[i].line, strlen(cases[i].line) + 1, &reply);
    if (valid != cases[i].valid)
      g_error("case %zu (%s): valid=%d", i, cases[i].line, valid);
    if (!valid)
      continue;
    g_assert_cmpuint(reply.code, ==, cases[i].code);
    g_assert_cmpstr(reply.enhanced, ==, cases[i].enhanced);
    g_assert_cmpstr(reply.text, ==, cases[i].text);
    milter_reply_clear(&reply);
  }
}

static void test_reply_edits(void) {
  MilterReply reply;
  g_assert_true(decode('h', "X-Spam\0yes", 11, &reply));
  g_assert_cmpint(reply.type, ==, MILTER_REPLY_ADD_HEADER);
  g_assert_cmpstr(reply.name, ==, "X-Spam");
  g_assert_cmpstr(reply.value, ==, "yes");
  milter_reply_clear(&reply);
  g_assert_false(decode('h', "X-Spam\0yes", 10, &reply)); /* no NUL */

  g_assert_true(decode('m', "\0\0\0\2Subject\0", 13, &reply));
  g_assert_cmpint(reply.type, ==, MILTER_REPLY_CHANGE_HEADER);
  g_assert_cmpuint(reply.index, ==, 2);
  g_assert_cmpstr(reply.value, ==, "");
  milter_reply_clear(&reply);
  g_assert_false(decode('i', "\0\0", 2, &reply)); /* truncated index */

  g_assert_true(decode('2', "<a@b>\0NOTIFY=NEVER", 19, &reply));
  g_assert_cmpint(reply.type, ==, MILTER_REPLY_ADD_RCPT);
  g_assert_cmpstr(reply.name, ==, "<a@b>");
  g_assert_cmpstr(reply.value, ==, "NOTIFY=NEVER");
  milter_reply_clear(&reply);
  g_assert_true(decode('e', "<s@d>", 6, &reply));
  g_assert_cmpint(reply.type, ==, MILTER_REPLY_CHANGE_FROM);
  g_assert_null(reply.value);
  milter_reply_clear(&reply);

  g_assert_true(decode('b', "body\r\n", 6, &reply));
  g_assert_cmpuint(g_bytes_get_size(reply.body), ==, 6);
  milter_reply_clear(&reply);
  g_assert_true(decode('q', "virus", 6, &reply));
  g_assert_cmpstr(reply.text, ==, "virus");
  milter_reply_clear(&reply);
}

static void encode_negotiation(GByteArray *out, guint32 version,
                               guint32 actions, guint32 steps) {
  guint8 payload[12];
  guint32 values[3] = {GUINT32_TO_BE(version), GUINT32_TO_BE(actions),
                       GUINT32_TO_BE(steps)};
  memcpy(payload, values, 12);
  g_byte_array_append(out, payload, 12);
}

static gboolean negotiate(GByteArray *payload, MilterNegotiation *result,
                          GError **error) {
  MilterFrame frame = {'O', payload->data, payload->len, 0};
  return milter_negotiation_decode(&frame, MILTER_ACTIONS_ALL,
                                   MILTER_STEPS_OFFERED, result, error);
}

static void test_negotiation(void) {
  MilterNegotiation result;
  g_autoptr(GByteArray) good = g_byte_array_new();
  encode_negotiation(good, 6, 0x3f, MILTER_STEP_NR_HEADER);
  g_byte_array_append(good, (const guint8 *)"\0\0\0\5i {auth_type}", 18);
  g_assert_true(negotiate(good, &result, NULL));
  g_assert_cmpuint(result.actions, ==, 0x3f);
  g_assert_cmpstr(result.macros[MILTER_MACROS_EOM], ==, "i {auth_type}");
  g_assert_null(result.macros[MILTER_MACROS_CONNECT]);
  milter_negotiation_clear(&result);

  struct {
    guint32 version, actions, steps;
    const char *error;
  } refusals[] = {
      {7, 0, 0, "version 7"},
      {1, 0, 0, "version 1"},
      {6, 0x400, 0, "actions 0x400"},
      {6, 0, MILTER_STEP_RCPT_REJ, "steps 0x800"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(refusals); i++) {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_autoptr(GError) error = NULL;
    encode_negotiation(bad, refusals[i].version, refusals[i].actions,
                       refusals[i].steps);
    g_assert_false(negotiate(bad, &result, &error));
    g_assert_nonnull(strstr(error->message, refusals[i].error));
  }
  g_autoptr(GByteArray) short_payload = g_byte_array_new();
  g_byte_array_append(short_payload, (const guint8 *)"\0\0\0\6", 4);
  g_assert_false(negotiate(short_payload, &result, NULL));
}

static void test_encode(void) {
  g_autoptr(GByteArray) out = g_byte_array_new();
  milter_encode_connect(out, "mx.example", '4', 25, "192.0.2.1");
  static const char connect[] = "\0\0\0\x19"
                                "Cmx.example\0"
                                "4\0\x19"
                                "192.0.2.1";
  g_assert_cmpmem(out->data, out->len, connect, sizeof connect);
  g_byte_array_set_size(out, 0);
  const char *pairs[] = {"j", "mx", "{daemon_name}", "mx", NULL};
  milter_encode_macros(out, 'C', pairs);
  static const char macros[] = "\0\0\0\x18"
                               "DCj\0mx\0{daemon_name}\0mx";
  g_assert_cmpmem(out->data, out->len, macros, sizeof macros);
  const char *none[] = {NULL};
  milter_encode_macros(out, 'C', none);
  g_assert_cmpuint(out->len, ==, sizeof macros);
  /* A body piece's frame head, as the body reader writes it in place. */
  guint8 head[MILTER_FRAME_HEAD];
  milter_frame_head(head, MILTER_CMD_BODY, MILTER_BODY_CHUNK);
  g_assert_cmpmem(head, sizeof head, "\0\1\0\0B", 5);
  g_byte_array_set_size(out, 0);
  milter_encode_frame(out, MILTER_CMD_BODY, "xy", 2);
  milter_frame_head(head, MILTER_CMD_BODY, 2);
  g_assert_cmpmem(out->data, MILTER_FRAME_HEAD, head, sizeof head);
}

static void test_header_values(void) {
  static const struct {
    const char *from;
    gboolean leading;
    const char *to;
  } from_milter[] = {
      {"yes", FALSE, "yes"},
      {" yes", TRUE, "yes"},
      {"a\n\tb", FALSE, "a\r\n\tb"},
      {"a\r\n b", FALSE, "a\r\n b"},
      {"a\nb", FALSE, "a\r\n\tb"},
      {"a\r\n", FALSE, "a"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(from_milter); i++) {
    g_autofree char *value = milter_header_value_from_milter(
        from_milter[i].from, from_milter[i].leading);
    g_assert_cmpstr(value, ==, from_milter[i].to);
  }
  g_autofree char *to = milter_header_value_to_milter("a\r\n\tb", TRUE);
  g_assert_cmpstr(to, ==, " a\n\tb");
}

static void test_body_crlf(void) {
  g_autoptr(GByteArray) out = g_byte_array_new();
  gboolean last_cr = FALSE;
  milter_body_append_crlf(out, (const guint8 *)"a\nb\r", 4, &last_cr);
  milter_body_append_crlf(out, (const guint8 *)"\nc\n", 3, &last_cr);
  g_assert_cmpmem(out->data, out->len, "a\r\nb\r\nc\r\n", 9);
}

/* --- Configuration --------------------------------------------------------- */

static MilterConfig *config_from(const char *text, GError **error) {
  g_autoptr(GKeyFile) keyfile = g_key_file_new();
  g_assert_true(
      g_key_file_load_from_data(keyfile, text, -1, G_KEY_FILE_NONE, NULL));
  return milter_config_load(keyfile, "plugin:milter", error);
}

static void test_config(void) {
  g_autoptr(MilterConfig) config = config_from(
      "[server]\nhostname = mx.example\n"
      "[plugin:milter]\nmilters = rspamd;clamav\n"
      "[plugin:milter:rspamd]\nsocket = inet:127.0.0.1:11332\n"
      "eom_timeout = 2m\ndefault_action = accept\n"
      "macros = connect=j {client_addr};eom=i {mail_addr}\n"
      "[plugin:milter:clamav]\nsocket = unix:/run/clamav/milter.sock\n",
      NULL);
  g_assert_nonnull(config);
  g_assert_cmpstr(config->hostname, ==, "mx.example");
  g_assert_cmpuint(config->milters->len, ==, 2);
  const MilterSpec *rspamd = g_ptr_array_index(config->milters, 0);
  g_assert_cmpuint(rspamd->eom_timeout_ms, ==, 120000);
  g_assert_cmpuint(rspamd->command_timeout_ms, ==, 30000);
  g_assert_cmpint(rspamd->default_action, ==, MILTER_DEFAULT_ACCEPT);
  g_assert_cmpstr(rspamd->macros[MILTER_MACROS_CONNECT][1], ==,
                  "{client_addr}");
  g_assert_cmpstr(rspamd->macros[MILTER_MACROS_RCPT][1], ==, "{rcpt_addr}");
  const MilterSpec *clamav = g_ptr_array_index(config->milters, 1);
  g_assert_cmpint(clamav->default_action, ==, MILTER_DEFAULT_TEMPFAIL);
  g_assert_true(G_IS_UNIX_SOCKET_ADDRESS(clamav->address) ||
                G_IS_SOCKET_CONNECTABLE(clamav->address));
}

static void test_config_errors(void) {
  static const struct {
    const char *text;
    const char *error;
  } cases[] = {
      {"[plugin:milter]\nmilters = x\n", "no [plugin:milter:x] group"},
      {"[plugin:milter]\nmilters = x\n[plugin:milter:x]\nsocket = tcp:1\n",
       "socket = tcp:1"},
      {"[plugin:milter]\nmilters = x\n[plugin:milter:x]\n"
       "socket = inet:h:99999\n",
       "inet:HOST:PORT"},
      {"[plugin:milter]\nmilters = x\n[plugin:milter:x]\n"
       "socket = inet:h:1\ndefault_action = bounce\n",
       "default_action = bounce"},
      {"[plugin:milter]\nmilters = x\n[plugin:milter:x]\n"
       "socket = inet:h:1\nmacros = body=i\n",
       "STAGE=NAMES"},
      {"[plugin:milter]\nmilters = x;x\n[plugin:milter:x]\nsocket = "
       "inet:h:1\n",
       "repeated"},
      {"[plugin:milter]\nmilters = x\n[plugin:milter:x]\nsocket = "
       "inet:h:1\nsokket = 2\n",
       "sokket"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(MilterConfig) config = config_from(cases[i].text, &error);
    g_assert_null(config);
    if (strstr(error->message, cases[i].error) == NULL)
      g_error("case %zu: \"%s\" lacks \"%s\"", i, error->message,
              cases[i].error);
  }
}

static void test_config_sockets(void) {
  static const struct {
    const char *socket;
    gboolean valid;
  } cases[] = {
      {"inet:127.0.0.1:11332", TRUE}, {"inet:[::1]:8891", TRUE},
      {"inet:localhost:1", TRUE},     {"unix:/run/x.sock", TRUE},
      {"inet:::1:8891", FALSE},       {"inet:host:", FALSE},
      {"inet:host:0", FALSE},         {"unix:relative", FALSE},
      {"local:/x", FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GSocketConnectable) address =
        milter_config_parse_socket(cases[i].socket);
    g_assert_cmpint(address != NULL, ==, cases[i].valid);
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/milter/frame/bounds", test_frame_bounds);
  g_test_add_func("/milter/reply/simple", test_reply_simple);
  g_test_add_func("/milter/reply/code", test_reply_code);
  g_test_add_func("/milter/reply/edits", test_reply_edits);
  g_test_add_func("/milter/negotiation", test_negotiation);
  g_test_add_func("/milter/encode", test_encode);
  g_test_add_func("/milter/header-values", test_header_values);
  g_test_add_func("/milter/body-crlf", test_body_crlf);
  g_test_add_func("/milter/config/good", test_config);
  g_test_add_func("/milter/config/errors", test_config_errors);
  g_test_add_func("/milter/config/sockets", test_config_sockets);
  return g_test_run();
}
