/* dmarc-config.c - [plugin:dmarc] read into an immutable, reference-counted
 * DmarcConfig.
 *
 * dmarc_config_load() checks every key and names group, key, value and the
 * expected form in its error, so the daemon (and `postilion check-config`)
 * refuses a typo.  The keys are the ones issue 15 fixes; their defaults
 * are in dmarc.conf, plugins/dmarc/README.md and postilion.conf(5).  Called
 * by dmarc.c (init and reload), by `postilion dmarc report` (tools/) and
 * by the unit tests.
 */
#include <string.h>

#include "dmarc.h"

static const char *const dmarc_keys[] = {
    "enforce",          "reject_reply",       "quarantine",
    "temperror_action", "malformed_from",     "skip_authenticated",
    "skip_internal",    "trusted_forwarders", "history",
    "history_keep",     "report_org_name",    "report_email",
    "reports",          "failure_reports",    "report_rate_limit",
    NULL,
};

#define DMARC_DEFAULT_REJECT                                                   \
  "550 5.7.1 Email rejected per DMARC policy for {domain}"
#define DMARC_DEFAULT_HISTORY "sqlite:/var/lib/postilion/dmarc.db"
#define DMARC_DAY_MS (G_GUINT64_CONSTANT(24) * 3600 * 1000)
/* history_keep: a month of days to re-run a report for; at least the
 * week failure reports wait in the history to be sent. */
#define DMARC_DEFAULT_HISTORY_KEEP_MS (31 * DMARC_DAY_MS)
#define DMARC_MIN_HISTORY_KEEP_MS (7 * DMARC_DAY_MS)

static void dmarc_config_free_contents(DmarcConfig *config) {
  g_free(config->reject.enhanced);
  g_free(config->reject.text);
  if (config->trusted_forwarders != NULL)
    g_ptr_array_unref(config->trusted_forwarders);
  g_free(config->history);
  g_free(config->report_org_name);
  g_free(config->report_email);
  g_free(config->hostname);
}

DmarcConfig *dmarc_config_ref(DmarcConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void dmarc_config_unref(DmarcConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)dmarc_config_free_contents);
}

/* "5XX X.Y.Z text" with the enhanced status starting with 5. */
static gboolean dmarc_reply_parse(const char *value, DmarcReply *reply) {
  g_auto(GStrv) words = g_strsplit(value, " ", 3);
  if (words[0] == NULL || words[1] == NULL || strlen(words[0]) != 3 ||
      words[0][0] != '5' || !g_ascii_isdigit(words[0][1]) ||
      !g_ascii_isdigit(words[0][2]))
    return FALSE;
  g_auto(GStrv) parts = g_strsplit(words[1], ".", -1);
  if (g_strv_length(parts) != 3 || !g_str_equal(parts[0], "5"))
    return FALSE;
  for (guint i = 1; i < 3; i++) {
    gsize length = strlen(parts[i]);
    if (length == 0 || length > 3 || strspn(parts[i], "0123456789") != length)
      return FALSE;
  }
  reply->code = (guint)g_ascii_strtoull(words[0], NULL, 10);
  reply->enhanced = g_strdup(words[1]);
  reply->text = g_strdup(words[2] != NULL ? g_strstrip(words[2]) : "");
  return reply->text[0] != '\0';
}

/* `key` must be one of two words; `second_r` is TRUE for the second. */
static gboolean dmarc_read_choice(GKeyFile *keyfile, const char *group,
                                  const char *key, const char *first,
                                  const char *second, gboolean *second_r,
                                  GError **error) {
  g_autofree char *value = NULL;
  if (!pst_config_get_string(keyfile, group, key, first, &value, error))
    return FALSE;
  if (g_str_equal(value, first) || g_str_equal(value, second)) {
    *second_r = g_str_equal(value, second);
    return TRUE;
  }
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] %s: \"%s\" is not %s or %s (default: %s)", group, key,
              value, first, second, first);
  return FALSE;
}

static gboolean dmarc_read_reply(GKeyFile *keyfile, const char *group,
                                 DmarcConfig *config, GError **error) {
  g_autofree char *value = NULL;
  if (!pst_config_get_string(keyfile, group, "reject_reply",
                             DMARC_DEFAULT_REJECT, &value, error))
    return FALSE;
  if (dmarc_reply_parse(g_strstrip(value), &config->reject))
    return TRUE;
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] reject_reply: \"%s\" is not \"5XX 5.X.Y text\" (default: "
              "%s; {domain} and {policy} are replaced)",
              group, value, DMARC_DEFAULT_REJECT);
  return FALSE;
}

static gboolean dmarc_read_networks(GKeyFile *keyfile, const char *group,
                                    DmarcConfig *config, GError **error) {
  g_auto(GStrv) networks = NULL;
  if (!pst_config_get_list(keyfile, group, "trusted_forwarders", &networks,
                           error))
    return FALSE;
  config->trusted_forwarders = g_ptr_array_new_with_free_func(g_object_unref);
  for (guint i = 0; networks != NULL && networks[i] != NULL; i++) {
    g_autoptr(GError) local = NULL;
    GInetAddressMask *mask =
        g_inet_address_mask_new_from_string(g_strstrip(networks[i]), &local);
    if (mask == NULL) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] trusted_forwarders: \"%s\" is not a network "
                  "(ADDRESS or ADDRESS/LENGTH, ';'-separated): %s",
                  group, networks[i], local->message);
      return FALSE;
    }
    g_ptr_array_add(config->trusted_forwarders, mask);
  }
  return TRUE;
}

/* history_keep: 0 (keep every row) or at least DMARC_MIN_HISTORY_KEEP_MS. */
static gboolean dmarc_read_history_keep(GKeyFile *keyfile, const char *group,
                                        DmarcConfig *config, GError **error) {
  guint64 keep_ms = 0;
  if (!pst_config_get_duration(keyfile, group, "history_keep",
                               DMARC_DEFAULT_HISTORY_KEEP_MS, &keep_ms, error))
    return FALSE;
  if (keep_ms != 0 && keep_ms < DMARC_MIN_HISTORY_KEEP_MS) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] history_keep: shorter than 7d (failure reports wait up "
                "to 7 days in the history to be sent): give 7d or more "
                "(default: 31d), or 0 to keep every row",
                group);
    return FALSE;
  }
  config->history_keep = keep_ms / 1000;
  return TRUE;
}

static gboolean dmarc_read_history(GKeyFile *keyfile, const char *group,
                                   DmarcConfig *config, GError **error) {
  if (!pst_config_get_string(keyfile, group, "history", DMARC_DEFAULT_HISTORY,
                             &config->history, error) ||
      !dmarc_read_history_keep(keyfile, group, config, error))
    return FALSE;
  const char *h = config->history;
  if (h[0] == '\0' || (g_str_has_prefix(h, "sqlite:") && h[7] == '/') ||
      g_str_has_prefix(h, "postgresql://") ||
      g_str_has_prefix(h, "postgres://"))
    return TRUE;
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] history: \"%s\" is neither sqlite:/ABSOLUTE/PATH nor a "
              "postgresql:// URI (empty: keep no history, send no reports; "
              "default: %s)",
              group, h, DMARC_DEFAULT_HISTORY);
  return FALSE;
}

static void dmarc_set_string(char **slot, const char *value) {
  g_free(*slot);
  *slot = g_strdup(value);
}

static gboolean dmarc_read_reporting(GKeyFile *keyfile, const char *group,
                                     DmarcConfig *config, GError **error) {
  g_autofree char *hostname =
      g_key_file_get_string(keyfile, "server", "hostname", NULL);
  if (hostname == NULL || hostname[0] == '\0') {
    g_free(hostname);
    hostname = g_strdup(g_get_host_name());
  }
  g_autofree char *email = g_strconcat("dmarc-noreply@", hostname, NULL);
  gint64 limit = 0;
  if (!pst_config_get_string(keyfile, group, "report_org_name", hostname,
                             &config->report_org_name, error) ||
      !pst_config_get_string(keyfile, group, "report_email", email,
                             &config->report_email, error) ||
      !pst_config_get_boolean(keyfile, group, "reports", TRUE, &config->reports,
                              error) ||
      !pst_config_get_boolean(keyfile, group, "failure_reports", FALSE,
                              &config->failure_reports, error) ||
      !pst_config_get_int(keyfile, group, "report_rate_limit", 20, 1, 100000,
                          &limit, error))
    return FALSE;
  config->report_rate_limit = (guint)limit;
  /* An empty value (as in a copied dmarc.conf) means the default. */
  if (config->report_org_name[0] == '\0')
    dmarc_set_string(&config->report_org_name, hostname);
  if (config->report_email[0] == '\0')
    dmarc_set_string(&config->report_email, email);
  config->hostname = g_strdup(hostname);
  const char *at = strchr(config->report_email, '@');
  if (at != NULL && at != config->report_email && strchr(at + 1, '@') == NULL &&
      at[1] != '\0' && strpbrk(config->report_email, " <>\"") == NULL)
    return TRUE;
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] report_email: \"%s\" is not an address local@domain "
              "(default: %s)",
              group, config->report_email, email);
  return FALSE;
}

static gboolean dmarc_read_keys(GKeyFile *keyfile, const char *group,
                                DmarcConfig *config, GError **error) {
  gboolean header = FALSE, tempfail = FALSE, accept = FALSE;
  if (!pst_config_check_keys(keyfile, group, dmarc_keys, error) ||
      !pst_config_get_boolean(keyfile, group, "enforce", TRUE, &config->enforce,
                              error) ||
      !dmarc_read_reply(keyfile, group, config, error) ||
      !dmarc_read_choice(keyfile, group, "quarantine", "hold", "header",
                         &header, error) ||
      !dmarc_read_choice(keyfile, group, "temperror_action", "accept",
                         "tempfail", &tempfail, error) ||
      !dmarc_read_choice(keyfile, group, "malformed_from", "reject", "accept",
                         &accept, error) ||
      !pst_config_get_boolean(keyfile, group, "skip_authenticated", TRUE,
                              &config->skip_authenticated, error) ||
      !pst_config_get_boolean(keyfile, group, "skip_internal", TRUE,
                              &config->skip_internal, error) ||
      !dmarc_read_networks(keyfile, group, config, error) ||
      !dmarc_read_history(keyfile, group, config, error) ||
      !dmarc_read_reporting(keyfile, group, config, error))
    return FALSE;
  config->quarantine = header ? DMARC_QUARANTINE_HEADER : DMARC_QUARANTINE_HOLD;
  config->temperror_tempfail = tempfail;
  config->malformed_reject = !accept;
  return TRUE;
}

DmarcConfig *dmarc_config_load(GKeyFile *keyfile, const char *group,
                               GError **error) {
  DmarcConfig *config = g_atomic_rc_box_new0(DmarcConfig);
  if (!dmarc_read_keys(keyfile, group, config, error)) {
    dmarc_config_unref(config);
    return NULL;
  }
  return config;
}

gboolean dmarc_config_is_trusted_forwarder(const DmarcConfig *config,
                                           GInetAddress *address) {
  for (guint i = 0; i < config->trusted_forwarders->len; i++) {
    GInetAddressMask *mask = config->trusted_forwarders->pdata[i];
    if (g_inet_address_get_family(address) ==
            g_inet_address_mask_get_family(mask) &&
        g_inet_address_mask_matches(mask, address))
      return TRUE;
  }
  return FALSE;
}

char *dmarc_reply_format(const char *text, const char *domain,
                         const char *policy) {
  GString *out = g_string_new(NULL);
  for (const char *p = text; *p != '\0'; p++) {
    if (g_str_has_prefix(p, "{domain}")) {
      g_string_append(out, domain);
      p += strlen("{domain}") - 1;
    } else if (g_str_has_prefix(p, "{policy}")) {
      g_string_append(out, policy);
      p += strlen("{policy}") - 1;
    } else {
      g_string_append_c(out, *p);
    }
  }
  return g_string_free(out, FALSE);
}
