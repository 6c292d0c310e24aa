/* test-deliver-route.c - the pure parts of outbound routing: MX order
 * (preference, random among equals), the relayhost syntax, and routing to
 * an address literal (no DNS). */
#include <string.h>

#include "config/config.h"
#include "deliver/route.h"

static GArray *records_of(const char *const *names, const guint16 *prefs,
                          guint count) {
  GArray *records = g_array_new(FALSE, FALSE, sizeof(PstMxRecord));
  for (guint i = 0; i < count; i++) {
    PstMxRecord record = {prefs[i], (char *)names[i]};
    g_array_append_val(records, record);
  }
  return records;
}

static void test_mx_order(void) {
  static const char *const names[] = {"c20", "a10", "d30", "b20", "e20"};
  static const guint16 prefs[] = {20, 10, 30, 20, 20};
  gboolean seen_first[3] = {FALSE, FALSE, FALSE};
  g_autoptr(GRand) rand = g_rand_new_with_seed(42);
  for (int round = 0; round < 200; round++) {
    g_autoptr(GArray) records = records_of(names, prefs, 5);
    pst_route_order_mx(records, rand);
    g_assert_cmpstr(g_array_index(records, PstMxRecord, 0).name, ==, "a10");
    g_assert_cmpstr(g_array_index(records, PstMxRecord, 4).name, ==, "d30");
    for (guint i = 1; i < 4; i++)
      g_assert_cmpuint(g_array_index(records, PstMxRecord, i).preference, ==,
                       20);
    const char *second = g_array_index(records, PstMxRecord, 1).name;
    seen_first[second[0] == 'b' ? 0 : second[0] == 'c' ? 1 : 2] = TRUE;
  }
  /* Every host of preference 20 came first among them some time. */
  g_assert_true(seen_first[0] && seen_first[1] && seen_first[2]);
}

typedef struct {
  const char *text;
  gboolean ok;
  const char *host;
  guint16 port;
  gboolean mx;
} RelayhostCase;

static void test_relayhost(void) {
  static const RelayhostCase cases[] = {
      {"smtp.example.net", TRUE, "smtp.example.net", 0, TRUE},
      {"SMTP.Example.NET:2525", TRUE, "smtp.example.net", 2525, TRUE},
      {"[smtp.example.net]", TRUE, "smtp.example.net", 0, FALSE},
      {"[smtp.example.net]:587", TRUE, "smtp.example.net", 587, FALSE},
      {"[192.0.2.1]:587", TRUE, "192.0.2.1", 587, FALSE},
      {"[2001:db8::1]:25", TRUE, "2001:db8::1", 25, FALSE},
      {"192.0.2.1", FALSE, NULL, 0, FALSE},
      {"[smtp.example.net:587", FALSE, NULL, 0, FALSE},
      {"[smtp.example.net]587", FALSE, NULL, 0, FALSE},
      {"[smtp.example.net]:0", FALSE, NULL, 0, FALSE},
      {"[smtp.example.net]:65536", FALSE, NULL, 0, FALSE},
      {"smtp example", FALSE, NULL, 0, FALSE},
      {"", FALSE, NULL, 0, FALSE},
      {"[]", FALSE, NULL, 0, FALSE},
      {"-bad.example", FALSE, NULL, 0, FALSE},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    const RelayhostCase *c = &cases[i];
    g_autofree char *host = NULL;
    guint16 port = 0;
    gboolean mx = FALSE;
    g_test_message("relayhost %s", c->text);
    g_assert_cmpint(pst_config_parse_relayhost(c->text, &host, &port, &mx), ==,
                    c->ok);
    if (!c->ok)
      continue;
    g_assert_cmpstr(host, ==, c->host);
    g_assert_cmpuint(port, ==, c->port);
    g_assert_cmpint(mx, ==, c->mx);
  }
}

static void literal_routed(GPtrArray *hosts, char *failure,
                           gpointer user_data) {
  char **description = user_data;
  g_assert_null(failure);
  g_assert_nonnull(hosts);
  g_assert_cmpuint(hosts->len, ==, 1);
  *description = pst_route_host_describe(hosts->pdata[0]);
  g_ptr_array_unref(hosts);
}

/* A relayhost given as an address literal is routed without DNS, at once,
 * to itself; the address and description kept from one message to the
 * next follow a change of literal or port. */
static void test_literal_relayhost(void) {
  static const struct {
    const char *host;
    guint16 port;
    const char *description;
  } cases[] = {
      {"192.0.2.1", 587, "192.0.2.1[192.0.2.1]:587"},
      {"192.0.2.1", 587, "192.0.2.1[192.0.2.1]:587"},
      {"192.0.2.1", 2525, "192.0.2.1[192.0.2.1]:2525"},
      {"2001:db8::1", 25, "2001:db8::1[2001:db8::1]:25"},
      {"192.0.2.1", 587, "192.0.2.1[192.0.2.1]:587"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    PstDeliveryConfig delivery = {0};
    delivery.relayhost_host = (char *)cases[i].host;
    delivery.relayhost_port = cases[i].port;
    g_autofree char *description = NULL;
    pst_route_lookup(NULL, &delivery, "example.org", literal_routed,
                     &description);
    g_assert_cmpstr(description, ==, cases[i].description);
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/deliver/route/mx-order", test_mx_order);
  g_test_add_func("/deliver/route/relayhost", test_relayhost);
  g_test_add_func("/deliver/route/literal-relayhost", test_literal_relayhost);
  return g_test_run();
}
