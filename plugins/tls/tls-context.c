/* tls-context.c - the tls plugin's configuration, turned into GnuTLS
 * objects once per init() or reload().
 *
 * Keys of [plugin:tls] (postilion.conf(5), plugins/tls/README.md):
 * certificate and private_key (the default certificate: no SNI, or a name
 * no other certificate has), certificate_directory (NAME.pem + NAME.key
 * pairs, one per domain NAME), protocols, priority, handshake_timeout,
 * session_tickets, ticket_key_rotation, request_client_certificate,
 * ca_file (trust for the outbound client).  Each [plugin:tls:DOMAIN] group
 * has certificate and private_key for DOMAIN ("*.example.org" matches one
 * label below example.org).
 *
 * Every file is read here with g_file_get_contents(), so an unreadable
 * file fails with the OS's reason, and checked before GnuTLS gets it: a
 * certificate that is not PEM, has expired, or does not match its key
 * fails naming the file and what to do.  Key bytes are wiped after use.
 * init() runs before the daemon drops root, so root-only keys load; a
 * reload() runs as [server] user (see the README).
 */
#include <string.h>
#include <time.h>

#include <gnutls/x509.h>

#include "tls.h"

static const char *const server_keys[] = {
    "certificate",
    "private_key",
    "certificate_directory",
    "protocols",
    "priority",
    "handshake_timeout",
    "session_tickets",
    "ticket_key_rotation",
    "request_client_certificate",
    "ca_file",
    NULL,
};
static const char *const domain_keys[] = {"certificate", "private_key", NULL};

static void certificate_free(TlsCertificate *certificate) {
  gnutls_certificate_free_credentials(certificate->credentials);
  g_clear_pointer(&certificate->names, g_ptr_array_unref);
  g_free(certificate->name);
  g_free(certificate);
}

TlsContext *tls_context_ref(TlsContext *context) {
  g_atomic_int_inc(&context->ref_count);
  return context;
}

void tls_context_unref(TlsContext *context) {
  if (context == NULL || !g_atomic_int_dec_and_test(&context->ref_count))
    return;
  g_clear_pointer(&context->by_name, g_hash_table_unref);
  g_clear_pointer(&context->certificates, g_ptr_array_unref);
  if (context->server_priority != NULL)
    gnutls_priority_deinit(context->server_priority);
  if (context->client_priority != NULL)
    gnutls_priority_deinit(context->client_priority);
  if (context->client_credentials != NULL)
    gnutls_certificate_free_credentials(context->client_credentials);
  g_free(context);
}

TlsCertificate *tls_context_find(TlsContext *context, const char *name) {
  if (name == NULL || *name == '\0')
    return NULL;
  TlsCertificate *found = g_hash_table_lookup(context->by_name, name);
  const char *dot = strchr(name, '.');
  if (found == NULL && dot != NULL) {
    g_autofree char *wildcard = g_strconcat("*", dot, NULL);
    found = g_hash_table_lookup(context->by_name, wildcard);
  }
  return found;
}

/* --- Files ------------------------------------------------------------- */

/* Reads a file for `where` ("[plugin:tls] certificate"). */
static gboolean read_file(const char *where, const char *path,
                          gnutls_datum_t *datum, char **contents_r,
                          GError **error) {
  gsize length = 0;
  g_autoptr(GError) local_error = NULL;
  if (!g_file_get_contents(path, contents_r, &length, &local_error)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "%s = %s: cannot read the file (%s); check the path and that "
                "the daemon can read it (keys are read as root at start)",
                where, path, local_error->message);
    return FALSE;
  }
  datum->data = (unsigned char *)*contents_r;
  datum->size = (unsigned int)length;
  return TRUE;
}

static void wipe_free(char *contents, gsize length) {
  if (contents == NULL)
    return;
  memset(contents, 0, length);
  g_free(contents);
}

/* The DNS names of a certificate (subjectAltName), lower case. */
static GPtrArray *certificate_names(gnutls_x509_crt_t certificate) {
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  for (unsigned int i = 0; i < 100; i++) {
    char name[256];
    size_t length = sizeof name;
    unsigned int critical = 0;
    int type = gnutls_x509_crt_get_subject_alt_name(certificate, i, name,
                                                    &length, &critical);
    if (type < 0)
      break;
    if (type == GNUTLS_SAN_DNSNAME && length < sizeof name)
      g_ptr_array_add(names, g_ascii_strdown(name, (gssize)length));
  }
  return names;
}

/* The first certificate of the PEM chain must be valid now; its DNS
 * names go to `names_r`. */
static gboolean check_certificate(const char *where, const char *path,
                                  const gnutls_datum_t *pem,
                                  GPtrArray **names_r, GError **error) {
  gnutls_x509_crt_t *chain = NULL;
  unsigned int count = 0;
  int ret =
      gnutls_x509_crt_list_import2(&chain, &count, pem, GNUTLS_X509_FMT_PEM, 0);
  if (ret < 0 || count == 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s = %s: no PEM certificate in the file (%s); expected the "
                "certificate, then its chain (fullchain.pem)",
                where, path, ret < 0 ? gnutls_strerror(ret) : "empty");
    return FALSE;
  }
  time_t expires = gnutls_x509_crt_get_expiration_time(chain[0]);
  time_t starts = gnutls_x509_crt_get_activation_time(chain[0]);
  *names_r = certificate_names(chain[0]);
  for (unsigned int i = 0; i < count; i++)
    gnutls_x509_crt_deinit(chain[i]);
  gnutls_free(chain);
  time_t now = time(NULL);
  if (expires != (time_t)-1 && expires < now) {
    g_autoptr(GDateTime) when = g_date_time_new_from_unix_utc(expires);
    g_autofree char *text = g_date_time_format(when, "%Y-%m-%d %H:%M:%S UTC");
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s = %s: the certificate expired on %s; renew it", where, path,
                text);
    return FALSE;
  }
  if (starts != (time_t)-1 && starts > now)
    g_warning("tls: %s = %s: the certificate is not valid before %ld "
              "(seconds since 1970): check the clock",
              where, path, (long)starts);
  return TRUE;
}

/* Loads one certificate/key pair into new credentials. */
static TlsCertificate *load_pair(const char *group, const char *name,
                                 const char *certificate_path,
                                 const char *key_path, GError **error) {
  g_autofree char *cert_where = g_strdup_printf("[%s] certificate", group);
  g_autofree char *key_where = g_strdup_printf("[%s] private_key", group);
  gnutls_datum_t cert = {0}, key = {0};
  g_autofree char *cert_text = NULL;
  char *key_text = NULL;
  g_autoptr(GPtrArray) names = NULL;
  if (!read_file(cert_where, certificate_path, &cert, &cert_text, error) ||
      !check_certificate(cert_where, certificate_path, &cert, &names, error) ||
      !read_file(key_where, key_path, &key, &key_text, error))
    return NULL;
  gnutls_certificate_credentials_t credentials = NULL;
  gnutls_certificate_allocate_credentials(&credentials);
  int ret = gnutls_certificate_set_x509_key_mem2(credentials, &cert, &key,
                                                 GNUTLS_X509_FMT_PEM, NULL, 0);
  wipe_free(key_text, key.size);
  if (ret < 0) {
    gnutls_certificate_free_credentials(credentials);
    if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "%s = %s does not match %s = %s; give the key the "
                  "certificate was issued for",
                  key_where, key_path, cert_where, certificate_path);
    else
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                  "%s = %s, %s = %s: %s; expected a PEM certificate chain "
                  "and its unencrypted PEM private key (RSA or ECDSA)",
                  cert_where, certificate_path, key_where, key_path,
                  gnutls_strerror(ret));
    return NULL;
  }
  TlsCertificate *certificate = g_new0(TlsCertificate, 1);
  certificate->name = g_ascii_strdown(name, -1);
  certificate->credentials = credentials;
  certificate->names = g_steal_pointer(&names);
  return certificate;
}

/* --- Settings ---------------------------------------------------------- */

/* ":-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.3" from `protocols`. */
static char *protocols_priority(GKeyFile *config, const char *group,
                                GError **error) {
  g_auto(GStrv) names = NULL;
  if (!pst_config_get_list(config, group, "protocols", &names, error))
    return NULL;
  if (names == NULL || names[0] == NULL) {
    g_strfreev(names);
    names = g_strsplit("TLS1.2;TLS1.3", ";", -1);
  }
  static const char *const known[] = {"TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"};
  g_autoptr(GString) text = g_string_new(":-VERS-ALL");
  for (guint i = 0; names[i] != NULL; i++) {
    const char *name = names[i];
    if (g_ascii_strncasecmp(name, "TLSv", 4) == 0)
      name += 4;
    else if (g_ascii_strncasecmp(name, "TLS", 3) == 0)
      name += 3;
    gboolean found = FALSE;
    for (guint k = 0; k < G_N_ELEMENTS(known); k++)
      found = found || strcmp(name, known[k] + 3) == 0;
    if (!found) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "[%s] protocols: \"%s\" is not a protocol; expected "
                  "TLS1.0, TLS1.1, TLS1.2 or TLS1.3 separated by ';' "
                  "(default TLS1.2;TLS1.3)",
                  group, names[i]);
      return NULL;
    }
    g_string_append_printf(text, ":+VERS-TLS%s", name);
  }
  return g_string_free(g_steal_pointer(&text), FALSE);
}

static gboolean make_priority(const char *group, const char *text,
                              gnutls_priority_t *priority_r, GError **error) {
  const char *where = NULL;
  int ret = gnutls_priority_init2(priority_r, text, &where, 0);
  if (ret >= 0)
    return TRUE;
  *priority_r = NULL;
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
              "[%s] priority/protocols: the GnuTLS priority string \"%s\" is "
              "invalid at \"%s\" (%s); see gnutls-cli --priority and "
              "postilion.conf(5)",
              group, text, where != NULL ? where : "", gnutls_strerror(ret));
  return FALSE;
}

/* The server's default: NORMAL without CBC suites (LUCKY13 and its kin),
 * keeping the AEAD suites of TLS 1.2 and every TLS 1.3 suite. */
#define SERVER_DEFAULT_PRIORITY                                                \
  "NORMAL:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:"           \
  "+AES-256-CCM:+AES-128-CCM:-MAC-ALL:+AEAD"

/* TLS 1.0 and 1.1 have no AEAD suite: an admin who enables them for old
 * clients gets NORMAL's CBC suites on the server too. */
static const char *server_default_priority(const char *versions) {
  if (strstr(versions, "+VERS-TLS1.0") != NULL ||
      strstr(versions, "+VERS-TLS1.1") != NULL)
    return "NORMAL";
  return SERVER_DEFAULT_PRIORITY;
}

/* `priority` set: both sides use it.  Unset: the server drops CBC, the
 * outbound client keeps NORMAL (for opportunistic STARTTLS an old server's
 * CBC suite beats plain text). */
static gboolean read_priorities(TlsContext *context, GKeyFile *config,
                                const char *group, GError **error) {
  g_autofree char *base = NULL;
  g_autofree char *versions = protocols_priority(config, group, error);
  if (versions == NULL ||
      !pst_config_get_string(config, group, "priority", NULL, &base, error))
    return FALSE;
  const char *server_base =
      base != NULL ? base : server_default_priority(versions);
  const char *client_base = base != NULL ? base : "NORMAL";
  g_autofree char *server =
      g_strconcat(server_base, versions, ":%SERVER_PRECEDENCE", NULL);
  g_autofree char *client = g_strconcat(client_base, versions, NULL);
  return make_priority(group, server, &context->server_priority, error) &&
         make_priority(group, client, &context->client_priority, error);
}

static gboolean read_settings(TlsContext *context, GKeyFile *config,
                              const char *group, GError **error) {
  guint64 timeout_ms = 0;
  if (!pst_config_check_keys(config, group, server_keys, error) ||
      !pst_config_get_duration(config, group, "handshake_timeout", 30000,
                               &timeout_ms, error) ||
      !pst_config_get_boolean(config, group, "session_tickets", TRUE,
                              &context->session_tickets, error) ||
      !pst_config_get_duration(config, group, "ticket_key_rotation",
                               12 * 3600 * 1000, &context->ticket_rotation_ms,
                               error) ||
      !pst_config_get_boolean(config, group, "request_client_certificate",
                              FALSE, &context->request_client_certificate,
                              error))
    return FALSE;
  if (timeout_ms < 100 || timeout_ms > 3600 * 1000) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "[%s] handshake_timeout: expected from 100ms to 1h (default "
                "30s)",
                group);
    return FALSE;
  }
  if (context->ticket_rotation_ms < 60 * 1000) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "[%s] ticket_key_rotation: expected at least 1m (default 12h)",
                group);
    return FALSE;
  }
  context->handshake_timeout_ms = (guint)timeout_ms;
  return read_priorities(context, config, group, error);
}

/* --- Certificates ------------------------------------------------------ */

static gboolean add_certificate(TlsContext *context, const char *group,
                                TlsCertificate *certificate, GError **error) {
  if (certificate == NULL)
    return FALSE;
  g_ptr_array_add(context->certificates, certificate);
  if (*certificate->name == '\0')
    return TRUE;
  if (g_hash_table_contains(context->by_name, certificate->name)) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                "[%s]: a certificate for %s is configured twice (a "
                "[plugin:tls:%s] group and certificate_directory?); keep one",
                group, certificate->name, certificate->name);
    return FALSE;
  }
  g_hash_table_insert(context->by_name, certificate->name, certificate);
  return TRUE;
}

/* After the configured names: each certificate also answers for the DNS
 * names it carries, unless a configured name already does (first wins). */
static void index_certificate_names(TlsContext *context) {
  for (guint i = 0; i < context->certificates->len; i++) {
    TlsCertificate *certificate = context->certificates->pdata[i];
    for (guint k = 0; k < certificate->names->len; k++) {
      const char *name = certificate->names->pdata[k];
      if (!g_hash_table_contains(context->by_name, name))
        g_hash_table_insert(context->by_name, (gpointer)name, certificate);
    }
  }
}

/* The default pair: both keys or none. */
static gboolean read_default(TlsContext *context, GKeyFile *config,
                             const char *group, GError **error) {
  g_autofree char *certificate = NULL, *key = NULL;
  if (!pst_config_get_string(config, group, "certificate", NULL, &certificate,
                             error) ||
      !pst_config_get_string(config, group, "private_key", NULL, &key, error))
    return FALSE;
  if (certificate == NULL || key == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "[%s]: certificate and private_key are required (the default "
                "certificate, PEM); for Let's Encrypt: certificate = "
                ".../fullchain.pem and private_key = .../privkey.pem",
                group);
    return FALSE;
  }
  return add_certificate(context, group,
                         load_pair(group, "", certificate, key, error), error);
}

/* [plugin:tls:DOMAIN] groups. */
static gboolean read_domains(TlsContext *context, GKeyFile *config,
                             const char *group, GError **error) {
  g_auto(GStrv) groups = g_key_file_get_groups(config, NULL);
  g_autofree char *prefix = g_strconcat(group, ":", NULL);
  for (guint i = 0; groups[i] != NULL; i++) {
    if (!g_str_has_prefix(groups[i], prefix))
      continue;
    const char *domain = groups[i] + strlen(prefix);
    g_autofree char *certificate = NULL, *key = NULL;
    if (!pst_config_check_keys(config, groups[i], domain_keys, error) ||
        !pst_config_get_string(config, groups[i], "certificate", NULL,
                               &certificate, error) ||
        !pst_config_get_string(config, groups[i], "private_key", NULL, &key,
                               error))
      return FALSE;
    if (certificate == NULL || key == NULL) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                  "[%s]: certificate and private_key are both required",
                  groups[i]);
      return FALSE;
    }
    if (!add_certificate(context, groups[i],
                         load_pair(groups[i], domain, certificate, key, error),
                         error))
      return FALSE;
  }
  return TRUE;
}

/* certificate_directory: NAME.pem with NAME.key for each domain NAME. */
static gboolean read_directory(TlsContext *context, GKeyFile *config,
                               const char *group, GError **error) {
  g_autofree char *directory = NULL;
  if (!pst_config_get_string(config, group, "certificate_directory", NULL,
                             &directory, error))
    return FALSE;
  if (directory == NULL)
    return TRUE;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) dir = g_dir_open(directory, 0, &local_error);
  if (dir == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "[%s] certificate_directory = %s: %s", group, directory,
                local_error->message);
    return FALSE;
  }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  for (const char *entry; (entry = g_dir_read_name(dir)) != NULL;)
    if (g_str_has_suffix(entry, ".pem") && strlen(entry) > 4)
      g_ptr_array_add(names, g_strndup(entry, strlen(entry) - 4));
  g_autofree char *where =
      g_strdup_printf("%s (certificate_directory = %s)", group, directory);
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    g_autofree char *pem_name = g_strconcat(name, ".pem", NULL);
    g_autofree char *key_name = g_strconcat(name, ".key", NULL);
    g_autofree char *pem = g_build_filename(directory, pem_name, NULL);
    g_autofree char *key = g_build_filename(directory, key_name, NULL);
    if (!add_certificate(context, where,
                         load_pair(where, name, pem, key, error), error))
      return FALSE;
  }
  return TRUE;
}

static gboolean read_client_trust(TlsContext *context, GKeyFile *config,
                                  const char *group, GError **error) {
  g_autofree char *ca_file = NULL;
  if (!pst_config_get_string(config, group, "ca_file", NULL, &ca_file, error))
    return FALSE;
  gnutls_certificate_allocate_credentials(&context->client_credentials);
  if (ca_file == NULL) {
    /* No CA at all is not fatal: verification then always fails, which
     * opportunistic TLS only logs. */
    int count =
        gnutls_certificate_set_x509_system_trust(context->client_credentials);
    if (count <= 0)
      g_warning("tls: no system CA certificates found (%s): outbound "
                "verification will fail; install ca-certificates or set "
                "[%s] ca_file",
                count < 0 ? gnutls_strerror(count) : "0", group);
    return TRUE;
  }
  g_autofree char *contents = NULL;
  gnutls_datum_t datum;
  g_autofree char *where = g_strdup_printf("[%s] ca_file", group);
  if (!read_file(where, ca_file, &datum, &contents, error))
    return FALSE;
  int count = gnutls_certificate_set_x509_trust_mem(
      context->client_credentials, &datum, GNUTLS_X509_FMT_PEM);
  if (count <= 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                "%s = %s: no PEM CA certificate in the file (%s)", where,
                ca_file, count < 0 ? gnutls_strerror(count) : "empty");
    return FALSE;
  }
  return TRUE;
}

TlsContext *tls_context_new(GKeyFile *config, const char *group,
                            GError **error) {
  g_autoptr(TlsContext) context = g_new0(TlsContext, 1);
  context->ref_count = 1;
  context->certificates =
      g_ptr_array_new_with_free_func((GDestroyNotify)certificate_free);
  context->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  if (!read_settings(context, config, group, error) ||
      !read_default(context, config, group, error) ||
      !read_domains(context, config, group, error) ||
      !read_directory(context, config, group, error) ||
      !read_client_trust(context, config, group, error))
    return NULL;
  index_certificate_names(context);
  return g_steal_pointer(&context);
}
