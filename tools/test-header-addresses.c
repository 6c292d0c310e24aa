/* test-header-addresses.c - the addresses `sendmail -t` takes from a
 * field, row by row (/sendmail/addresses/...): each row is a field value
 * and the addresses expected, in order.  The rows cover display names
 * and comments that hold an address (never taken), quoted local parts,
 * groups, obsolete routes and spacing, folding, non-ASCII addresses and
 * what is left unclosed.
 */
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

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(address_cases); i++) {
    g_autofree char *path =
        g_strdup_printf("/sendmail/addresses/%s", address_cases[i].name);
    g_test_add_data_func(path, &address_cases[i], test_address_case);
  }
  return g_test_run();
}
