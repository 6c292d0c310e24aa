/* test-header-addresses.c - the addresses `sendmail -t` takes from a
 * field, row by row (/sendmail/addresses/...): each row is a field value
 * and the addresses expected, in order.  The rows cover display names
 * and comments that hold an address (never taken), quoted local parts,
 * groups, obsolete routes and spacing, folding, non-ASCII addresses and
 * what is left unclosed.
 */
#include <string.h>

#include "tools/header-addresses.h"

typedef struct {
  const char *name;
  const char *value;
  const char *expected[4]; /* NULL-terminated */
} AddressCase;

/* clang-format off */
static const AddressCase address_cases[] = {
    {"plain", " bob@example.org", {"bob@example.org"}},
    {"list", " bob@example.org, alice@example.org",
     {"bob@example.org", "alice@example.org"}},
    {"display-name", " Bob Smith <bob@example.org>", {"bob@example.org"}},
    {"address-in-display-name",
     " \"bob@example.org via list\" <alice@example.org>",
     {"alice@example.org"}},
    {"address-in-comment",
     " alice@example.org (formerly bob@example.org)", {"alice@example.org"}},
    {"nested-comment", " (a (b@c) d) alice@example.org", {"alice@example.org"}},
    {"comma-in-display-name", " \"Smith, Bob\" <bob@example.org>, x@y.org",
     {"bob@example.org", "x@y.org"}},
    {"quoted-local-part", " \"john doe\"@example.org",
     {"\"john doe\"@example.org"}},
    {"escaped-quote", " \"a\\\"b\"@example.org", {"\"a\\\"b\"@example.org"}},
    {"group", " friends: bob@example.org, alice@example.org;",
     {"bob@example.org", "alice@example.org"}},
    {"empty-group", " undisclosed-recipients:;", {NULL}},
    {"route", " <@relay.example:bob@example.org>", {"bob@example.org"}},
    {"obsolete-spacing", " bob @ example.org", {"bob@example.org"}},
    {"folded", " Bob\r\n <bob@example.org>,\r\n\talice@example.org",
     {"bob@example.org", "alice@example.org"}},
    {"utf8", " J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.example>",
     {"j\xc3\xb6rg@b\xc3\xbc" "cher.example"}},
    {"empty", "", {NULL}},
    {"empty-angle", " <>, bob@example.org", {"bob@example.org"}},
    {"unclosed-angle", " <bob@example.org", {"bob@example.org"}},
    {"unclosed-comment", " bob@example.org (oops", {"bob@example.org"}},
    {"folded-quoted-string", " \"john\r\n doe\"@example.org",
     {"\"john doe\"@example.org"}},
    {"escaped-line-break", " \"a\\\r\n b\"@example.org",
     {"\"a b\"@example.org"}},
    {"colon-in-quoted-local-part-after-at", " <@\"x:y\"@example.org>", {NULL}},
    {"unclosed-quote", " \"oops <bob@example.org>", {"\"oops <bob@example.org>"}},
};
/* clang-format on */

static void test_address_case(gconstpointer data) {
  const AddressCase *c = data;
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
  pst_header_addresses_scan(c->value, found);
  guint expected = g_strv_length((char **)c->expected);
  for (guint i = 0; i < MIN(found->len, expected); i++)
    g_assert_cmpstr(found->pdata[i], ==, c->expected[i]);
  g_assert_cmpuint(found->len, ==, expected);
}

/* TRUE when `address` has white space, CR or LF outside quotes. */
static gboolean has_bare_blank(const char *address) {
  gboolean quoted = FALSE;
  for (const char *p = address; *p != '\0'; p++) {
    if (quoted && *p == '\\' && p[1] != '\0')
      p++;
    else if (*p == '"')
      quoted = !quoted;
    else if (!quoted && strchr(" \t\r\n", *p) != NULL)
      return TRUE;
  }
  return FALSE;
}

/* Any value (a fixed seed, a bounded count): the scan ends, and every
 * address it gives is non-empty, has no CR or LF at all and no blank
 * outside quotes (RCPT gets it as it is). */
static void test_generated(void) {
  static const char alphabet[] = "ab@.,;:<>()\"\\ \t\r\n\xc3\xa9";
  g_autoptr(GRand) rand = g_rand_new_with_seed(4242);
  for (guint round = 0; round < 5000; round++) {
    char value[64];
    guint length = (guint)g_rand_int_range(rand, 0, sizeof value);
    for (guint i = 0; i < length; i++)
      value[i] = alphabet[g_rand_int_range(rand, 0, sizeof alphabet - 1)];
    value[length] = '\0';
    g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
    pst_header_addresses_scan(value, found);
    for (guint i = 0; i < found->len; i++) {
      const char *address = found->pdata[i];
      g_assert_cmpuint(strlen(address), >, 0);
      g_assert_null(strpbrk(address, "\r\n"));
      g_assert_false(has_bare_blank(address));
    }
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(address_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/sendmail/addresses/%s", address_cases[i].name);
    g_test_add_data_func(path, &address_cases[i], test_address_case);
  }
  g_test_add_func("/sendmail/addresses/generated", test_generated);
  return g_test_run();
}
