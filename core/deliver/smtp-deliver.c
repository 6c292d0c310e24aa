/* smtp-deliver.c - one message to one destination by SMTP (see
 * smtp-deliver.h).
 *
 * Steps: route (route.c); take a slot of the destination's concurrency
 * limit ([delivery] destination_concurrency, waiting at most
 * smtp_timeout); then for each host in order while recipients are left:
 * a cached connection to it or a new one, the message checks that the
 * peer's keywords decide (SMTPUTF8, 8BITMIME, SIZE: refused at once with
 * the reason), transactions of at most RCPT_MAX recipients, and each
 * recipient's result.  A failure
 * of the connection or a 4xx to MAIL leaves the recipients for the next
 * host; any other reply is final for this attempt.  Remote refusals are
 * quoted in the reply kept for the log and the DSN:
 * "550 5.1.1 host mx[192.0.2.1]:25 said: No such user (in reply to RCPT TO)".
 *
 * Shared state (the cache of idle connections, the count of connections
 * per destination) is guarded by one mutex; a connection belongs to one
 * worker at a time, and idle ones are closed after CACHE_IDLE_MAX.
 */
#include <string.h>

#include "deliver/route.h"
#include "deliver/smtp-client.h"
#include "deliver/smtp-deliver.h"
#include "smtp/smtp-parse.h"

#define CACHE_IDLE_MAX (5 * G_USEC_PER_SEC)
/* Recipients in one transaction: every server must take 100 (RFC 5321
 * 4.5.3.1.8); more are sent in further transactions. */
#define RCPT_MAX 100

typedef struct {
  PstSmtpConnection *connection; /* owned */
  gint64 since;                  /* monotonic µs: idle since */
} CachedConnection;

static GMutex shared_lock;
static GCond shared_released;
static GHashTable *active_by_destination; /* char* -> count */
static GHashTable *idle_by_relay;         /* char* -> GQueue* of Cached */

void pst_smtp_delivery_clear(PstSmtpDelivery *delivery) {
  g_clear_pointer(&delivery->reply, g_free);
  g_clear_pointer(&delivery->relay, g_free);
  g_clear_pointer(&delivery->tls, g_free);
}

/* --- Concurrency per destination ----------------------------------------- */

static void shared_init_locked(void) {
  if (active_by_destination != NULL)
    return;
  active_by_destination =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  idle_by_relay = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
}

static gboolean destination_acquire(const char *destination, guint limit,
                                    guint timeout_ms) {
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  g_mutex_lock(&shared_lock);
  shared_init_locked();
  guint active;
  while ((active = GPOINTER_TO_UINT(g_hash_table_lookup(
              active_by_destination, destination))) >= limit) {
    if (!g_cond_wait_until(&shared_released, &shared_lock, deadline)) {
      g_mutex_unlock(&shared_lock);
      return FALSE;
    }
  }
  g_hash_table_replace(active_by_destination, g_strdup(destination),
                       GUINT_TO_POINTER(active + 1));
  g_mutex_unlock(&shared_lock);
  return TRUE;
}

static void destination_release(const char *destination) {
  g_mutex_lock(&shared_lock);
  guint active =
      GPOINTER_TO_UINT(g_hash_table_lookup(active_by_destination, destination));
  if (active <= 1)
    g_hash_table_remove(active_by_destination, destination);
  else
    g_hash_table_replace(active_by_destination, g_strdup(destination),
                         GUINT_TO_POINTER(active - 1));
  g_cond_broadcast(&shared_released);
  g_mutex_unlock(&shared_lock);
}

/* --- The connection cache --------------------------------------------------
 */

static char *cache_key(const PstRouteHost *host, PstDeliveryTls tls) {
  g_autofree char *relay = pst_route_host_describe(host);
  return g_strdup_printf("%s tls=%d", relay, (int)tls);
}

static PstSmtpConnection *cache_take(const char *key) {
  PstSmtpConnection *connection = NULL;
  g_mutex_lock(&shared_lock);
  shared_init_locked();
  GQueue *queue = g_hash_table_lookup(idle_by_relay, key);
  CachedConnection *cached = queue != NULL ? g_queue_pop_head(queue) : NULL;
  if (cached != NULL) {
    connection = cached->connection;
    g_free(cached);
  }
  g_mutex_unlock(&shared_lock);
  /* The server may have closed it meanwhile: RSET proves it alive. */
  if (connection != NULL && !pst_smtp_connection_reset(connection))
    g_clear_pointer(&connection, pst_smtp_connection_close);
  return connection;
}

static void cache_put(const char *key, PstSmtpConnection *connection) {
  CachedConnection *cached = g_new0(CachedConnection, 1);
  cached->connection = connection;
  cached->since = g_get_monotonic_time();
  g_mutex_lock(&shared_lock);
  shared_init_locked();
  GQueue *queue = g_hash_table_lookup(idle_by_relay, key);
  if (queue == NULL) {
    queue = g_queue_new();
    g_hash_table_insert(idle_by_relay, g_strdup(key), queue);
  }
  g_queue_push_tail(queue, cached);
  g_mutex_unlock(&shared_lock);
}

void pst_smtp_cache_expire(gboolean all) {
  g_autoptr(GPtrArray) closing =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_smtp_connection_close);
  gint64 now = g_get_monotonic_time();
  g_mutex_lock(&shared_lock);
  shared_init_locked();
  GHashTableIter iter;
  GQueue *queue;
  g_hash_table_iter_init(&iter, idle_by_relay);
  while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&queue)) {
    while (!g_queue_is_empty(queue)) {
      CachedConnection *cached = g_queue_peek_head(queue);
      if (!all && now - cached->since < CACHE_IDLE_MAX)
        break;
      g_queue_pop_head(queue);
      g_ptr_array_add(closing, cached->connection);
      g_free(cached);
    }
    if (g_queue_is_empty(queue)) {
      g_queue_free(queue);
      g_hash_table_iter_remove(&iter);
    }
  }
  g_mutex_unlock(&shared_lock);
  /* Closed (QUIT sent) outside the lock, when `closing` goes. */
}

/* --- One message ------------------------------------------------------------
 */

typedef struct {
  const PstConfig *config;
  const char *queue_id;
  const PstCredentials *credentials; /* nullable */
  const PstDeliveryConfig *settings; /* [delivery], or a route's copy */
  const PstEnvelope *envelope;
  GBytes *content;             /* borrowed */
  GBytes *encoded;             /* owned, nullable: made on first use */
  PstSmtpDelivery *recipients; /* borrowed */
  guint count;
  PstDeliveryTls tls;
  char *last_failure; /* owned, nullable: for recipients left at the end */
  char *last_relay;   /* owned, nullable */
} Delivery;

static void recipient_finish(Delivery *delivery, guint index, char *reply,
                             const char *relay, const char *tls) {
  PstSmtpDelivery *recipient = &delivery->recipients[index];
  pst_smtp_delivery_clear(recipient);
  recipient->reply = reply;
  recipient->dsn_passed = FALSE;
  recipient->relay = g_strdup(relay);
  recipient->tls = g_strdup(tls);
}

static void failure_note(Delivery *delivery, char *reply, const char *relay) {
  g_free(delivery->last_failure);
  g_free(delivery->last_relay);
  delivery->last_failure = reply;
  delivery->last_relay = g_strdup(relay);
}

/* SMTPUTF8 was asked for and is needed: a non-ASCII sender, recipient or
 * header field (pst_smtp_header_is_8bit()). */
static gboolean needs_smtputf8(const Delivery *delivery) {
  if (!delivery->envelope->smtputf8)
    return FALSE;
  if (!g_str_is_ascii(delivery->envelope->sender))
    return TRUE;
  for (guint i = 0; i < delivery->count; i++)
    if (!g_str_is_ascii(delivery->recipients[i].address))
      return TRUE;
  return pst_smtp_header_is_8bit(g_bytes_get_data(delivery->content, NULL),
                                 g_bytes_get_size(delivery->content));
}

/* A refusal decided by the peer's keywords, or NULL. */
static char *message_check(Delivery *delivery, PstSmtpConnection *connection) {
  gsize size = g_bytes_get_size(delivery->content);
  gboolean eight_bit =
      delivery->envelope->body == PST_BODY_8BITMIME ||
      pst_smtp_content_is_8bit(g_bytes_get_data(delivery->content, NULL), size);
  g_autofree char *peer = g_strdup_printf(
      "host %s", pst_smtp_connection_get_relay(connection));
  return pst_smtp_extensions_refusal(
      pst_smtp_connection_get_extensions(connection), needs_smtputf8(delivery),
      eight_bit, size, peer);
}

static char *mail_command(Delivery *delivery, PstSmtpConnection *connection) {
  const PstSmtpExtensions *extensions =
      pst_smtp_connection_get_extensions(connection);
  gsize size = g_bytes_get_size(delivery->content);
  GString *mail = pst_smtp_mail_command_new(
      extensions, delivery->envelope->sender, size,
      delivery->envelope->body == PST_BODY_8BITMIME ||
          pst_smtp_content_is_8bit(g_bytes_get_data(delivery->content, NULL),
                                   size),
      delivery->envelope->smtputf8);
  /* RFC 3461 6.2: a DSN-capable next hop gets the DSN parameters, and the
   * notices are then its job. */
  if (extensions->flags & PST_SMTP_EXT_DSN) {
    if (delivery->envelope->ret != PST_DSN_RET_DEFAULT)
      g_string_append(mail, delivery->envelope->ret == PST_DSN_RET_FULL
                                ? " RET=FULL"
                                : " RET=HDRS");
    if (delivery->envelope->envid != NULL) {
      g_autofree char *envid = pst_xtext_encode(delivery->envelope->envid);
      g_string_append_printf(mail, " ENVID=%s", envid);
    }
  }
  return g_string_free(mail, FALSE);
}

/* The ORCPT value to pass on, in the type it came with: "rfc822;" and
 * xtext (UTF-8 octets too, as Postfix sends them), or "utf-8;" and RFC
 * 6533's utf-8-addr-xtext (ASCII, so any DSN peer may get it).  NULL for
 * a value without a type. */
static char *orcpt_encode(const char *orcpt) {
  const char *semicolon = strchr(orcpt, ';');
  if (semicolon == NULL)
    return NULL;
  g_autofree char *address =
      g_ascii_strncasecmp(orcpt, "utf-8;", 6) == 0
          ? pst_utf8_addr_xtext_encode(semicolon + 1)
          : pst_xtext_encode(semicolon + 1);
  return g_strdup_printf("%.*s;%s", (int)(semicolon - orcpt), orcpt, address);
}

/* "RCPT TO:<a@b>", with NOTIFY and ORCPT for a DSN-capable next hop. */
static char *rcpt_command(const PstSmtpDelivery *recipient, gboolean dsn) {
  GString *rcpt = g_string_new(NULL);
  g_string_printf(rcpt, "RCPT TO:<%s>", recipient->address);
  if (dsn && recipient->notify != 0) {
    static const struct {
      guint bit;
      const char *name;
    } names[] = {{PST_DSN_NOTIFY_SUCCESS, "SUCCESS"},
                 {PST_DSN_NOTIFY_FAILURE, "FAILURE"},
                 {PST_DSN_NOTIFY_DELAY, "DELAY"}};
    if (recipient->notify & PST_DSN_NOTIFY_NEVER) {
      g_string_append(rcpt, " NOTIFY=NEVER");
    } else {
      char separator = '=';
      g_string_append(rcpt, " NOTIFY");
      for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        if (recipient->notify & names[i].bit) {
          g_string_append_printf(rcpt, "%c%s", separator, names[i].name);
          separator = ',';
        }
    }
  }
  if (dsn && recipient->orcpt != NULL) {
    g_autofree char *orcpt = orcpt_encode(recipient->orcpt);
    if (orcpt != NULL)
      g_string_append_printf(rcpt, " ORCPT=%s", orcpt);
  }
  return g_string_free(rcpt, FALSE);
}

/* The text kept for the log and the DSN. */
static char *result_text(const PstSmtpResponse *reply, PstSmtpStage stage,
                         const char *relay) {
  if (stage == PST_SMTP_STAGE_SESSION ||
      (stage == PST_SMTP_STAGE_DOT && reply->code / 100 == 2))
    return pst_smtp_response_to_string(reply);
  return g_strdup_printf("%u %s host %s said: %s (in reply to %s)", reply->code,
                         reply->enhanced, relay, reply->text,
                         pst_smtp_stage_to_string(stage));
}

/* One transaction for the recipients still pending on `connection`. */
static void deliver_on(Delivery *delivery, PstSmtpConnection *connection,
                       gboolean *pending) {
  const char *relay = pst_smtp_connection_get_relay(connection);
  const char *tls = pst_smtp_connection_get_tls(connection);
  g_autofree char *refusal = message_check(delivery, connection);
  gboolean dsn = (pst_smtp_connection_get_extensions(connection)->flags &
                  PST_SMTP_EXT_DSN) != 0;
  g_autoptr(GArray) indexes = g_array_new(FALSE, FALSE, sizeof(guint));
  g_autoptr(GPtrArray) rcpts = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < delivery->count && indexes->len < RCPT_MAX; i++) {
    if (!pending[i])
      continue;
    pending[i] = FALSE; /* tried on this connection */
    if (refusal != NULL) {
      recipient_finish(delivery, i, g_strdup(refusal), relay, tls);
      continue;
    }
    g_array_append_val(indexes, i);
    g_ptr_array_add(rcpts, rcpt_command(&delivery->recipients[i], dsn));
  }
  if (refusal != NULL)
    return;
  g_ptr_array_add(rcpts, NULL);
  g_autofree char *mail = mail_command(delivery, connection);
  g_autoptr(PstSmtpTransaction) transaction = pst_smtp_transaction_new(
      mail, (const char *const *)rcpts->pdata,
      (pst_smtp_connection_get_extensions(connection)->flags &
       PST_SMTP_EXT_PIPELINING) != 0);
  if (delivery->encoded == NULL)
    delivery->encoded =
        pst_smtp_encode_content(g_bytes_get_data(delivery->content, NULL),
                                g_bytes_get_size(delivery->content));
  pst_smtp_connection_run(connection, transaction, delivery->encoded);
  for (guint k = 0; k < indexes->len; k++) {
    guint i = g_array_index(indexes, guint, k);
    PstSmtpStage stage = PST_SMTP_STAGE_NONE;
    const PstSmtpResponse *reply =
        pst_smtp_transaction_get_result(transaction, k, &stage);
    char *text = result_text(reply, stage, relay);
    gboolean next_host =
        stage == PST_SMTP_STAGE_SESSION ||
        (stage == PST_SMTP_STAGE_MAIL && reply->code / 100 == 4);
    if (next_host) {
      failure_note(delivery, text, relay);
    } else {
      recipient_finish(delivery, i, text, relay, tls);
      delivery->recipients[i].dsn_passed = dsn && reply->code / 100 == 2;
    }
  }
  if (pst_smtp_transaction_needs_reset(transaction))
    pst_smtp_connection_reset(connection);
}

/* The relayhost's login: by the relayhost as configured, else by the
 * host connected to. */
static gboolean delivery_login(Delivery *delivery, const PstRouteHost *host,
                               PstSmtpLogin *login) {
  const PstDeliveryConfig *settings = delivery->settings;
  if (delivery->credentials == NULL)
    return FALSE;
  return (settings->relayhost_host != NULL &&
          pst_credentials_lookup(
              delivery->credentials, settings->relayhost_host,
              settings->relayhost_port, &login->user, &login->password)) ||
         pst_credentials_lookup(delivery->credentials, host->name, host->port,
                                &login->user, &login->password);
}

/* Tries `host` for the recipients without a result. */
static void deliver_to_host(Delivery *delivery, const PstRouteHost *host) {
  g_autofree gboolean *pending = g_new0(gboolean, delivery->count);
  guint left = 0;
  for (guint i = 0; i < delivery->count; i++)
    left += pending[i] = delivery->recipients[i].reply == NULL;
  if (left == 0)
    return;
  g_autofree char *key = cache_key(host, delivery->tls);
  PstSmtpConnection *connection = cache_take(key);
  if (connection == NULL) {
    g_autoptr(PstSmtpResponse) failure = NULL;
    PstSmtpLogin login = {NULL, NULL};
    connection = pst_smtp_connection_open(
        delivery->settings, delivery->config->server.hostname, host,
        delivery->tls, delivery_login(delivery, host, &login) ? &login : NULL,
        delivery->queue_id, &failure);
    if (connection == NULL) {
      g_autofree char *relay = pst_route_host_describe(host);
      failure_note(delivery, pst_smtp_response_to_string(failure), relay);
      return;
    }
  }
  /* At most RCPT_MAX recipients a transaction, as many as it takes. */
  while (left > 0 && pst_smtp_connection_is_usable(connection)) {
    deliver_on(delivery, connection, pending);
    left = 0;
    for (guint i = 0; i < delivery->count; i++)
      left += pending[i];
  }
  if (pst_smtp_connection_is_usable(connection))
    cache_put(key, connection);
  else
    pst_smtp_connection_close(connection);
}

void pst_smtp_deliver(const PstConfig *config,
                      const PstCredentials *credentials, const char *queue_id,
                      const PstEnvelope *envelope, GBytes *content,
                      const char *domain, const char *nexthop,
                      PstSmtpDelivery *recipients, guint count) {
  /* A route's NEXTHOP stands in for the relayhost ([delivery] is
   * copied shallowly: the strings stay the configuration's or ours). */
  PstDeliveryConfig routed = config->delivery;
  g_autofree char *nexthop_host = NULL;
  if (nexthop != NULL &&
      pst_config_parse_relayhost(nexthop, &nexthop_host, &routed.relayhost_port,
                                 &routed.relayhost_mx)) {
    routed.relayhost = (char *)nexthop;
    routed.relayhost_host = nexthop_host;
    if (routed.relayhost_port == 0)
      routed.relayhost_port = (guint16)routed.smtp_port;
  }
  const PstDeliveryConfig *settings = &routed;
  const char *destination =
      settings->relayhost_host != NULL ? settings->relayhost_host : domain;
  Delivery delivery = {.config = config,
                       .queue_id = queue_id,
                       .credentials = credentials,
                       .settings = settings,
                       .envelope = envelope,
                       .content = content,
                       .recipients = recipients,
                       .count = count,
                       .tls = pst_config_delivery_tls(settings, destination)};
  g_autofree char *routing_failure = NULL;
  g_autoptr(GPtrArray) hosts =
      pst_route_lookup(settings, domain, &routing_failure);
  if (hosts == NULL) {
    failure_note(&delivery, g_steal_pointer(&routing_failure), "none");
  } else if (!destination_acquire(destination,
                                  settings->destination_concurrency,
                                  settings->smtp_timeout_ms)) {
    failure_note(&delivery,
                 g_strdup_printf("451 4.4.5 too many connections to %s "
                                 "already ([delivery] "
                                 "destination_concurrency)",
                                 destination),
                 "none");
  } else {
    for (guint h = 0; h < hosts->len; h++)
      deliver_to_host(&delivery, hosts->pdata[h]);
    destination_release(destination);
  }
  /* Recipients left: the last failure, temporary or not. */
  for (guint i = 0; i < count; i++)
    if (recipients[i].reply == NULL)
      recipient_finish(
          &delivery, i,
          g_strdup(delivery.last_failure != NULL
                       ? delivery.last_failure
                       : "451 4.4.0 no mail host was tried"),
          delivery.last_relay != NULL ? delivery.last_relay : "none", NULL);
  g_free(delivery.last_failure);
  g_free(delivery.last_relay);
  g_clear_pointer(&delivery.encoded, g_bytes_unref);
}
