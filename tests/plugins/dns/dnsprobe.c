/* dnsprobe.c - a test plugin that looks names up through the core's
 * resolver (<postilion/dns.h>) and reports the answers in SMTP replies and
 * log lines, so end-to-end tests can check every DNS result class through
 * the real daemon (tests/e2e/test_dns.py).
 *
 * MAIL FROM:<PROBE@DOMAIN> chooses the lookup by its local part:
 *   TYPE           async lookup of TYPE DOMAIN (a, aaaa, mx, txt, ptr,
 *                  cname, ns, tlsa)
 *   sync-TYPE      pst_dns_lookup_sync() from a worker thread
 *   burstN-TYPE    N async lookups at once of TYPE iK.DOMAIN, K < N
 *   anything else  no lookup, CONTINUE
 * and answers 250 (ok, nxdomain, nodata), 451 (tempfail, cancelled) or 550
 * (invalid) with the text "dnsprobe TYPE NAME: STATUS ...".
 *
 * [plugin:dnsprobe] connect_lookup = TYPE NAME looks NAME up at CONNECT
 * (the banner waits); NAME "%client" means the client address's PTR name.
 * Every lookup uses the call's cancellable, so a client that disconnects
 * cancels it: the log then says "-> cancelled".  Log lines:
 * "plugin dnsprobe: STAGE TYPE NAME -> STATUS secure=N bogus=N ttl=N
 * [RECORDS] (REASON)".
 */
#include <string.h>

#include <postilion/plugin.h>

#define REPLY_RECORDS_MAX 200 /* octets of records in a reply line */

static const struct {
  const char *name;
  PstDnsType type;
} type_names[] = {
    {"a", PST_DNS_TYPE_A},     {"aaaa", PST_DNS_TYPE_AAAA},
    {"mx", PST_DNS_TYPE_MX},   {"txt", PST_DNS_TYPE_TXT},
    {"ptr", PST_DNS_TYPE_PTR}, {"cname", PST_DNS_TYPE_CNAME},
    {"ns", PST_DNS_TYPE_NS},   {"tlsa", PST_DNS_TYPE_TLSA},
};

typedef struct {
  char *connect_lookup; /* owned, nullable: "TYPE NAME" */
  GThreadPool *pool;    /* owned: sync lookups */
} Probe;

static Probe *probe_state;

/* One lookup (or one burst) for one call. */
typedef struct {
  PstCall *call;
  PstStage stage;
  PstDnsType type;
  char *name;      /* owned */
  guint remaining; /* burst: answers still expected */
  guint total;
  guint counts[PST_DNS_CANCELLED + 1];
  gint64 started;
} Lookup;

static gboolean parse_type(const char *text, PstDnsType *type) {
  for (guint i = 0; i < G_N_ELEMENTS(type_names); i++) {
    if (g_ascii_strcasecmp(text, type_names[i].name) == 0) {
      *type = type_names[i].type;
      return TRUE;
    }
  }
  return FALSE;
}

static void lookup_free(Lookup *lookup) {
  g_free(lookup->name);
  g_free(lookup);
}

static gint compare_strings(gconstpointer a, gconstpointer b) {
  return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* The records as "r1,r2": sorted, TXT as "LEN:TEXT", TLSA as hex. */
static char *records_text(const PstDnsResult *result) {
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < pst_dns_result_get_count(result); i++) {
    PstDnsType type = pst_dns_result_get_type(result);
    gsize length = 0;
    if (type == PST_DNS_TYPE_MX) {
      g_ptr_array_add(
          items,
          g_strdup_printf("%u %s", pst_dns_result_get_mx_preference(result, i),
                          pst_dns_result_get_string(result, i)));
    } else if (type == PST_DNS_TYPE_TXT) {
      const char *text = pst_dns_result_get_txt(result, i, &length);
      g_ptr_array_add(items,
                      g_strdup_printf("%" G_GSIZE_FORMAT ":%s", length, text));
    } else if (pst_dns_result_get_string(result, i) != NULL) {
      g_ptr_array_add(items, g_strdup(pst_dns_result_get_string(result, i)));
    } else {
      const guint8 *data = pst_dns_result_get_rdata(result, i, &length);
      GString *hex = g_string_new(NULL);
      for (gsize j = 0; j < length; j++)
        g_string_append_printf(hex, "%02x", data[j]);
      g_ptr_array_add(items, g_string_free(hex, FALSE));
    }
  }
  g_ptr_array_sort(items, compare_strings);
  g_ptr_array_add(items, NULL);
  return g_strjoinv(",", (char **)items->pdata);
}

/* One line about a result; `max_records` (0: no limit) shortens the
 * records to fit an SMTP reply line. */
static char *describe(const PstDnsResult *result, gsize max_records) {
  g_autofree char *records = records_text(result);
  if (max_records > 0 && strlen(records) > max_records)
    strcpy(records + max_records - 3, "...");
  return g_strdup_printf(
      "%s %s: %s secure=%d bogus=%d ttl=%u canonical=%s [%s] (%s)",
      pst_dns_type_to_string(pst_dns_result_get_type(result)),
      pst_dns_result_get_name(result),
      pst_dns_status_to_string(pst_dns_result_get_status(result)),
      pst_dns_result_is_secure(result), pst_dns_result_is_bogus(result),
      pst_dns_result_get_ttl(result), pst_dns_result_get_canonical_name(result),
      records, pst_dns_result_get_reason(result));
}

/* Sets the MAIL reply from a result; returns the verdict.  Any thread. */
static PstVerdict reply_for(PstCall *call, const PstDnsResult *result) {
  g_autofree char *text = describe(result, REPLY_RECORDS_MAX);
  switch (pst_dns_result_get_status(result)) {
  case PST_DNS_OK:
  case PST_DNS_NXDOMAIN:
  case PST_DNS_NODATA:
    pst_call_set_reply(call, 250, "2.1.0", text);
    return PST_VERDICT_ACCEPT;
  case PST_DNS_INVALID:
    pst_call_set_reply(call, 550, "5.1.8", text);
    return PST_VERDICT_REJECT;
  default:
    pst_call_set_reply(call, 451, "4.4.3", text);
    return PST_VERDICT_TEMPFAIL;
  }
}

/* An async answer, on the main thread. */
static void on_answer(PstDnsResult *result, gpointer user_data) {
  Lookup *lookup = user_data;
  g_autofree char *text = describe(result, 0);
  pst_call_log(lookup->call, G_LOG_LEVEL_MESSAGE, "%s %s",
               pst_stage_to_string(lookup->stage), text);
  PstVerdict verdict = lookup->stage == PST_STAGE_MAIL
                           ? reply_for(lookup->call, result)
                           : PST_VERDICT_CONTINUE;
  pst_call_complete(lookup->call, verdict);
  pst_dns_result_free(result);
  lookup_free(lookup);
}

static void on_burst_answer(PstDnsResult *result, gpointer user_data) {
  Lookup *lookup = user_data;
  lookup->counts[pst_dns_result_get_status(result)]++;
  pst_dns_result_free(result);
  if (--lookup->remaining > 0)
    return;
  gint64 elapsed_ms = (g_get_monotonic_time() - lookup->started) / 1000;
  g_autofree char *text = g_strdup_printf(
      "burst %u %s %s: ok=%u nxdomain=%u nodata=%u tempfail=%u invalid=%u "
      "cancelled=%u in %" G_GINT64_FORMAT " ms",
      lookup->total, pst_dns_type_to_string(lookup->type), lookup->name,
      lookup->counts[PST_DNS_OK], lookup->counts[PST_DNS_NXDOMAIN],
      lookup->counts[PST_DNS_NODATA], lookup->counts[PST_DNS_TEMPFAIL],
      lookup->counts[PST_DNS_INVALID], lookup->counts[PST_DNS_CANCELLED],
      elapsed_ms);
  pst_call_log(lookup->call, G_LOG_LEVEL_MESSAGE, "mail %s", text);
  pst_call_set_reply(lookup->call, 250, "2.1.0", text);
  pst_call_complete(lookup->call, PST_VERDICT_ACCEPT);
  lookup_free(lookup);
}

/* A worker thread: the blocking variant, then completion from here. */
static void sync_worker(gpointer data, gpointer pool_data) {
  Lookup *lookup = data;
  g_autoptr(PstDnsResult) result = pst_dns_lookup_sync(
      lookup->type, lookup->name, pst_call_get_cancellable(lookup->call));
  g_autofree char *text = describe(result, 0);
  pst_call_log(lookup->call, G_LOG_LEVEL_MESSAGE, "%s sync %s",
               pst_stage_to_string(lookup->stage), text);
  pst_call_complete(lookup->call, reply_for(lookup->call, result));
  lookup_free(lookup);
}

static Lookup *lookup_new(PstCall *call, PstDnsType type, const char *name) {
  Lookup *lookup = g_new0(Lookup, 1);
  lookup->call = call;
  lookup->stage = pst_call_get_stage(call);
  lookup->type = type;
  lookup->name = g_strdup(name);
  lookup->started = g_get_monotonic_time();
  return lookup;
}

static PstVerdict start_burst(PstCall *call, const char *count, PstDnsType type,
                              const char *domain) {
  guint64 total = g_ascii_strtoull(count, NULL, 10);
  if (total == 0 || total > 5000)
    return PST_VERDICT_CONTINUE;
  Lookup *lookup = lookup_new(call, type, domain);
  lookup->total = lookup->remaining = (guint)total;
  for (guint i = 0; i < total; i++) {
    g_autofree char *name = g_strdup_printf("i%u.%s", i, domain);
    pst_dns_lookup(type, name, pst_call_get_cancellable(call), on_burst_answer,
                   lookup);
  }
  return PST_VERDICT_PENDING;
}

static PstVerdict on_mail(PstCall *call, gpointer user_data) {
  const char *sender = pst_call_get_argument(call);
  const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
  if (at == NULL)
    return PST_VERDICT_CONTINUE;
  g_autofree char *local = g_strndup(sender, (gsize)(at - sender));
  const char *domain = at + 1;
  PstDnsType type;
  if (g_str_has_prefix(local, "sync-") && parse_type(local + 5, &type)) {
    g_thread_pool_push(probe_state->pool, lookup_new(call, type, domain), NULL);
    return PST_VERDICT_PENDING;
  }
  if (g_str_has_prefix(local, "burst")) {
    char *dash = strchr(local, '-');
    if (dash == NULL || !parse_type(dash + 1, &type))
      return PST_VERDICT_CONTINUE;
    *dash = '\0';
    return start_burst(call, local + 5, type, domain);
  }
  if (!parse_type(local, &type))
    return PST_VERDICT_CONTINUE;
  pst_dns_lookup(type, domain, pst_call_get_cancellable(call), on_answer,
                 lookup_new(call, type, domain));
  return PST_VERDICT_PENDING;
}

static PstVerdict on_connect(PstCall *call, gpointer user_data) {
  g_auto(GStrv) words = g_strsplit(probe_state->connect_lookup, " ", 2);
  PstDnsType type;
  if (g_strv_length(words) != 2 || !parse_type(words[0], &type))
    return PST_VERDICT_CONTINUE;
  g_autofree char *name = NULL;
  if (strcmp(words[1], "%client") == 0) {
    g_autoptr(GInetAddress) address =
        pst_session_get_client_inet_address(pst_call_get_session(call));
    name = pst_dns_reverse_name(address, NULL);
  } else {
    name = g_strdup(words[1]);
  }
  pst_dns_lookup(type, name, pst_call_get_cancellable(call), on_answer,
                 lookup_new(call, type, name));
  return PST_VERDICT_PENDING;
}

static void probe_free(Probe *probe) {
  /* Waits for the worker threads' lookups to finish. */
  g_thread_pool_free(probe->pool, FALSE, TRUE);
  g_free(probe->connect_lookup);
  g_free(probe);
}

static gboolean probe_init(PstPlugin *plugin, GKeyFile *config,
                           const char *group, GError **error) {
  static const char *const keys[] = {"connect_lookup", NULL};
  g_autofree char *connect_lookup = NULL;
  if (!pst_config_check_keys(config, group, keys, error) ||
      !pst_config_get_string(config, group, "connect_lookup", NULL,
                             &connect_lookup, error))
    return FALSE;
  Probe *probe = g_new0(Probe, 1);
  probe->connect_lookup = g_steal_pointer(&connect_lookup);
  probe->pool = g_thread_pool_new(sync_worker, NULL, 8, FALSE, NULL);
  probe_state = probe;
  if (probe->connect_lookup != NULL)
    pst_plugin_register_hook(plugin, PST_STAGE_CONNECT, -600, on_connect, NULL,
                             NULL);
  pst_plugin_register_hook(plugin, PST_STAGE_MAIL, -600, on_mail, NULL, NULL);
  pst_plugin_log(plugin, G_LOG_LEVEL_MESSAGE, "started");
  return TRUE;
}

static void probe_shutdown(PstPlugin *plugin) {
  g_clear_pointer(&probe_state, probe_free);
}

POSTILION_PLUGIN_DEFINE("dnsprobe", "1.0",
                        "Looks names up through the core's DNS (tests)",
                        probe_init, probe_shutdown, NULL);
