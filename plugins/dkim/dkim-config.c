/* dkim-config.c - [plugin:dkim] and [plugin:dkim:DOMAIN] read into an
 * immutable, reference-counted DkimConfig, with every key loaded.
 *
 * dkim_config_load() checks every key and names group, key, value and the
 * fix in its error, so the daemon refuses to start (and a SIGHUP keeps the
 * old configuration) on a typo, a missing key file or one with unsafe
 * permissions.  Each configuration owns its own key cache (verified
 * signatures' key answers, dkim-verify.c): a reload starts with an empty
 * one, and a running job keeps the configuration it started with.  Called
 * by dkim.c (init and reload), `postilion dkim` and the unit tests.
 */
#include <string.h>

#include <openssl/evp.h>

#include "dkim.h"

static const char *const dkim_keys[] = {
    "key_directory", "sign",           "verify",       "canonicalization",
    "expire",        "headers",        "oversign",     "max_signatures",
    "min_key_bits",  "rsa_sha1",       NULL,
};
static const char *const dkim_domain_keys[] = {"selectors", "signing_domain",
                                               NULL};

#define DKIM_DEFAULT_KEY_DIRECTORY "/etc/postilion/dkim"
#define DKIM_DEFAULT_EXPIRE_MS (10ULL * 24 * 3600 * 1000)

static void dkim_domain_free(DkimDomain *domain) {
  g_free(domain->domain);
  g_free(domain->signing_domain);
  g_ptr_array_unref(domain->keys);
  g_free(domain);
}

static void dkim_config_free_contents(DkimConfig *config) {
  g_free(config->key_directory);
  g_strfreev(config->headers);
  g_strfreev(config->oversign);
  g_clear_pointer(&config->domains, g_hash_table_unref);
  g_free(config->hostname);
  dkim_key_cache_free(config->keys);
  EVP_MD_free(config->sha256);
}

DkimConfig *dkim_config_ref(DkimConfig *config) {
  return g_atomic_rc_box_acquire(config);
}

void dkim_config_unref(DkimConfig *config) {
  g_atomic_rc_box_release_full(config,
                               (GDestroyNotify)dkim_config_free_contents);
}

const DkimDomain *dkim_config_find_domain(const DkimConfig *config,
                                          const char *domain) {
  if (domain == NULL)
    return NULL;
  g_autofree char *lower = g_ascii_strdown(domain, -1);
  return g_hash_table_lookup(config->domains, lower);
}

const DkimDomain *dkim_config_find_local(const DkimConfig *config) {
  /* The host name itself, then its parents with at least two labels. */
  for (const char *name = config->hostname; name != NULL;) {
    const DkimDomain *domain = dkim_config_find_domain(config, name);
    if (domain != NULL)
      return domain;
    const char *dot = strchr(name, '.');
    name = dot != NULL && strchr(dot + 1, '.') != NULL ? dot + 1 : NULL;
  }
  return NULL;
}

/* --- [plugin:dkim] -------------------------------------------------------- */

static gboolean dkim_read_canon(GKeyFile *keyfile, const char *group,
                                DkimConfig *config, GError **error) {
  g_autofree char *value = NULL;
  if (!pst_config_get_string(keyfile, group, "canonicalization",
                             "relaxed/simple", &value, error))
    return FALSE;
  g_auto(GStrv) parts = g_strsplit(g_strstrip(value), "/", -1);
  guint count = g_strv_length(parts);
  DkimCanon canons[2] = {DKIM_CANON_SIMPLE_, DKIM_CANON_SIMPLE_};
  gboolean ok = count == 1 || count == 2;
  for (guint i = 0; ok && i < count; i++) {
    if (g_str_equal(parts[i], "relaxed"))
      canons[i] = DKIM_CANON_RELAXED_;
    else if (!g_str_equal(parts[i], "simple"))
      ok = FALSE;
  }
  if (!ok) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] canonicalization: \"%s\" is not HEADER/BODY with each "
                "simple or relaxed (default: relaxed/simple)",
                group, value);
    return FALSE;
  }
  /* RFC 6376 section 3.5: a single word is the header's; body simple. */
  config->header_canon = canons[0];
  config->body_canon = canons[1];
  return TRUE;
}

static gboolean dkim_read_list(GKeyFile *keyfile, const char *group,
                               const char *key, const char *fallback,
                               char ***list_r, GError **error) {
  if (!g_key_file_has_key(keyfile, group, key, NULL)) {
    *list_r = g_strsplit(fallback, ";", -1);
    return TRUE;
  }
  if (!pst_config_get_list(keyfile, group, key, list_r, error))
    return FALSE;
  for (guint i = 0; (*list_r)[i] != NULL; i++) {
    char *name = g_strstrip((*list_r)[i]);
    for (char *p = name; *p != '\0'; p++)
      *p = g_ascii_tolower(*p);
    gboolean ok = name[0] != '\0';
    for (const char *p = name; *p != '\0'; p++)
      ok = ok && g_ascii_isgraph(*p) && *p != ':';
    if (!ok) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] %s: \"%s\" is not a header field name", group, key,
                  name);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean dkim_read_rsa_sha1(GKeyFile *keyfile, const char *group,
                                   DkimConfig *config, GError **error) {
  g_autofree char *value = NULL;
  if (!pst_config_get_string(keyfile, group, "rsa_sha1", "fail", &value,
                             error))
    return FALSE;
  config->allow_rsa_sha1 = g_strcmp0(value, "allow") == 0;
  if (config->allow_rsa_sha1 || g_strcmp0(value, "fail") == 0)
    return TRUE;
  g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
              "[%s] rsa_sha1: \"%s\" is not fail or allow (default: fail, "
              "as RFC 8301 requires)",
              group, value);
  return FALSE;
}

static gboolean dkim_read_main(GKeyFile *keyfile, const char *group,
                               DkimConfig *config, GError **error) {
  gint64 max_signatures = 0, min_key_bits = 0;
  guint64 expire_ms = 0;
  if (!pst_config_check_keys(keyfile, group, dkim_keys, error) ||
      !pst_config_get_string(keyfile, group, "key_directory",
                             DKIM_DEFAULT_KEY_DIRECTORY,
                             &config->key_directory, error) ||
      !pst_config_get_boolean(keyfile, group, "sign", TRUE, &config->sign,
                              error) ||
      !pst_config_get_boolean(keyfile, group, "verify", TRUE, &config->verify,
                              error) ||
      !dkim_read_canon(keyfile, group, config, error) ||
      !pst_config_get_duration(keyfile, group, "expire",
                               DKIM_DEFAULT_EXPIRE_MS, &expire_ms, error) ||
      !dkim_read_list(keyfile, group, "headers", DKIM_DEFAULT_HEADERS,
                      &config->headers, error) ||
      !dkim_read_list(keyfile, group, "oversign", DKIM_DEFAULT_OVERSIGN,
                      &config->oversign, error) ||
      !pst_config_get_int(keyfile, group, "max_signatures", 10, 1, 1000,
                          &max_signatures, error) ||
      !pst_config_get_int(keyfile, group, "min_key_bits", 1024, 512, 16384,
                          &min_key_bits, error) ||
      !dkim_read_rsa_sha1(keyfile, group, config, error))
    return FALSE;
  if (!g_strv_contains((const char *const *)config->headers, "from")) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] headers: From must be signed (RFC 6376 section 5.4); "
                "add \"from\" to the list",
                group);
    return FALSE;
  }
  if (!g_path_is_absolute(config->key_directory)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] key_directory: \"%s\" must be an absolute path", group,
                config->key_directory);
    return FALSE;
  }
  config->expire_seconds = expire_ms / 1000;
  config->max_signatures = (guint)max_signatures;
  config->min_key_bits = (guint)min_key_bits;
  return TRUE;
}

/* --- [plugin:dkim:DOMAIN] ------------------------------------------------- */

static DkimDomain *dkim_read_domain(GKeyFile *keyfile, const char *group,
                                    const char *name, DkimConfig *config,
                                    const char *reader, GError **error) {
  g_auto(GStrv) selectors = NULL;
  g_autofree char *signing = NULL;
  if (!pst_config_check_keys(keyfile, group, dkim_domain_keys, error) ||
      !pst_config_get_list(keyfile, group, "selectors", &selectors, error) ||
      !pst_config_get_string(keyfile, group, "signing_domain", name, &signing,
                             error))
    return NULL;
  g_strstrip(signing);
  if (!dkim_domain_is_valid(signing)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "[%s] signing_domain: \"%s\" is not a domain name", group,
                signing);
    return NULL;
  }
  g_autoptr(GPtrArray) keys =
      g_ptr_array_new_with_free_func((GDestroyNotify)dkim_key_free);
  for (guint i = 0; selectors[i] != NULL; i++) {
    const char *selector = g_strstrip(selectors[i]);
    if (!dkim_selector_is_valid(selector)) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] selectors: \"%s\" is not a selector (letters, "
                  "digits, '-', '_', dots between)",
                  group, selector);
      return NULL;
    }
    g_autoptr(GError) local = NULL;
    DkimKey *key =
        dkim_key_load(config->key_directory, signing, selector, reader,
                      config->min_key_bits, &local);
    if (key == NULL) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s] selectors: %s", group, local->message);
      return NULL;
    }
    g_ptr_array_add(keys, key);
  }
  DkimDomain *domain = g_new0(DkimDomain, 1);
  domain->domain = g_ascii_strdown(name, -1);
  domain->signing_domain = g_ascii_strdown(signing, -1);
  domain->keys = g_steal_pointer(&keys);
  return domain;
}

static gboolean dkim_read_domains(GKeyFile *keyfile, const char *group,
                                  DkimConfig *config, const char *reader,
                                  GError **error) {
  g_autofree char *prefix = g_strconcat(group, ":", NULL);
  g_auto(GStrv) groups = g_key_file_get_groups(keyfile, NULL);
  for (guint i = 0; groups[i] != NULL; i++) {
    if (!g_str_has_prefix(groups[i], prefix))
      continue;
    const char *name = groups[i] + strlen(prefix);
    if (!dkim_domain_is_valid(name)) {
      g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                  "[%s]: \"%s\" is not a domain name", groups[i], name);
      return FALSE;
    }
    DkimDomain *domain =
        dkim_read_domain(keyfile, groups[i], name, config, reader, error);
    if (domain == NULL)
      return FALSE;
    g_hash_table_replace(config->domains, domain->domain, domain);
  }
  return TRUE;
}

DkimConfig *dkim_config_load(GKeyFile *keyfile, const char *group,
                             const char *reader, GError **error) {
  g_autoptr(DkimConfig) config = g_atomic_rc_box_new0(DkimConfig);
  config->domains = g_hash_table_new_full(
      g_str_hash, g_str_equal, NULL, (GDestroyNotify)dkim_domain_free);
  g_autofree char *hostname =
      g_key_file_get_string(keyfile, "server", "hostname", NULL);
  config->hostname = g_ascii_strdown(
      hostname != NULL && hostname[0] != '\0' ? hostname : g_get_host_name(),
      -1);
  if (!dkim_read_main(keyfile, group, config, error) ||
      !dkim_read_domains(keyfile, group, config, reader, error))
    return NULL;
  config->keys = dkim_key_cache_new();
  config->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (config->sha256 == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "[%s]: OpenSSL offers no SHA-256 (check its providers in "
                "openssl.cnf)",
                group);
    return NULL;
  }
  return g_steal_pointer(&config);
}
