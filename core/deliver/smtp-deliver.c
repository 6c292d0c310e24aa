/* smtp-deliver.c - the `smtp` delivery transport: one message to the
 * recipients of one destination, on the main loop.  A batch's destination
 * is a recipient domain (batch->domain), every remote recipient when a
 * relayhost is set, or a DELIVERY route's next hop (batch->nexthop,
 * relayhost syntax); every item gets a reply: 2xx delivered, 4xx try
 * later, 5xx bounce.  Logging in uses [delivery] relayhost_credentials
 * where they name the host.
 *
 * Steps, each ending in a callback: route (route.c, asynchronous DNS);
 * take a slot of the destination's concurrency limit ([delivery]
 * destination_concurrency, waiting at most smtp_timeout); then for each
 * host in order while recipients are left: a cached connection to it
 * (used at once when fresh and quiet, else RSET proves it alive; one
 * that turns out closed before answering anything is replaced by a new
 * connection to the same host, once) or a new one, the message checks that the
 * peer's keywords decide (SMTPUTF8, 8BITMIME, SIZE: refused at once with
 * the reason), transactions of at most RCPT_MAX recipients, and each
 * recipient's result.  A failure of the connection or a 4xx to MAIL
 * leaves the recipients for the next host; any other reply is final for
 * this attempt.  The content goes a piece at a time (PstDataStream),
 * read from the queue file as the socket drains; content found corrupt
 * on the way ends the connection before the final dot and is tried on no
 * other host.  Remote refusals are quoted in the reply kept for the log
 * and the DSN: "550 5.1.1 host mx[192.0.2.1]:25 said: No such user (in
 * reply to RCPT TO)".  The state of one message's delivery lives in a
 * Delivery until the batch's callback.
 *
 * The state deliveries share (the cache of idle connections, the count of
 * connections and the deliveries waiting per destination) is a
 * PstSmtpCache, made once by the daemon and carried by every generation
 * (pst_generation_get_connection_cache()), so a delivery finds it through
 * its batch's generation; it is used on the main thread only.  A
 * connection belongs to one delivery at a time, and idle ones are closed
 * after CACHE_IDLE_MAX.
 */
#include <string.h>

#include "deliver/delivery-transport.h"
#include "deliver/route.h"
#include "deliver/smtp-client.h"
#include "smtp/smtp-parse.h"

#define CACHE_IDLE_MAX (5 * G_USEC_PER_SEC)
/* Recipients in one transaction: every server must take 100 (RFC 5321
 * 4.5.3.1.8); more are sent in further transactions. */
#define RCPT_MAX 100

typedef struct {
  PstSmtpConnection *connection; /* owned */
  gint64 since;                  /* monotonic µs: idle since */
} CachedConnection;

typedef struct _Delivery Delivery;

typedef struct {
  Delivery *delivery; /* waiting for a slot */
  char *destination;  /* owned */
  guint timer;        /* gives up after smtp_timeout */
} Waiter;

struct _PstSmtpCache {
  GHashTable *active_by_destination;  /* char* -> count */
  GHashTable *waiting_by_destination; /* char* -> GQueue* of Waiter* */
  GHashTable *idle_by_relay; /* char* -> GQueue* of CachedConnection* */
};

struct _Delivery {
  PstDeliveryBatch *batch; /* borrowed until done */
  const PstConfig *config;
  const PstEnvelope *envelope;
  const PstDeliveryContent *content; /* borrowed: the batch's */
  guint count;
  PstDeliveryConfig settings; /* [delivery], or a route's copy */
  char *nexthop_host;         /* owned, nullable */
  char *destination;          /* owned: the relayhost or the domain */
  PstDeliveryTls tls;
  PstDataStream data; /* the DATA of the transaction under way */
  GPtrArray *hosts;   /* owned, nullable: of PstRouteHost* */
  guint next_host;    /* the host after the one being tried */
  gboolean *pending;  /* owned: per recipient, not yet tried on this host */
  char *cache_key;    /* owned, nullable: of the host being tried */
  PstSmtpConnection *connection; /* owned, nullable */
  PstSmtpLogin login;
  GArray *indexes;                 /* owned, nullable: of the transaction */
  PstSmtpTransaction *transaction; /* owned, nullable */
  gboolean acquired;               /* holds a slot of the destination */
  gboolean reopened;  /* a stale cached connection was replaced already */
  char *last_failure; /* owned, nullable: for recipients left at the end */
  char *last_relay;   /* owned, nullable */
  PstDeliveryBatchFunc done;
  gpointer user_data;
};

static void host_next(Delivery *delivery);
static void host_loop(Delivery *delivery);

static PstDeliveryItem *delivery_item(const Delivery *delivery, guint index) {
  return &g_array_index(delivery->batch->items, PstDeliveryItem, index);
}

static void recipient_finish(Delivery *delivery, guint index, char *reply,
                             const char *relay, const char *tls) {
  PstDeliveryResult *result = delivery_item(delivery, index)->result;
  pst_delivery_result_set_reply(result, relay, reply);
  result->dsn_passed = FALSE;
  g_free(result->tls);
  result->tls = g_strdup(tls);
}

static void failure_note(Delivery *delivery, char *reply, const char *relay) {
  g_free(delivery->last_failure);
  g_free(delivery->last_relay);
  delivery->last_failure = reply;
  delivery->last_relay = g_strdup(relay);
}

/* --- Concurrency per destination ----------------------------------------- */

PstSmtpCache *pst_smtp_cache_new(void) {
  PstSmtpCache *cache = g_new0(PstSmtpCache, 1);
  cache->active_by_destination =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  cache->waiting_by_destination = g_hash_table_new_full(
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_queue_free);
  cache->idle_by_relay =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  return cache;
}

void pst_smtp_cache_free(PstSmtpCache *cache) {
  if (cache == NULL)
    return;
  pst_smtp_cache_expire(cache, TRUE);
  g_hash_table_unref(cache->active_by_destination);
  g_hash_table_unref(cache->waiting_by_destination);
  g_hash_table_unref(cache->idle_by_relay);
  g_free(cache);
}

static PstSmtpCache *delivery_cache(const Delivery *delivery) {
  return pst_generation_get_connection_cache(delivery->batch->generation);
}

static void active_add(PstSmtpCache *cache, const char *destination,
                       gint change) {
  guint active = GPOINTER_TO_UINT(
      g_hash_table_lookup(cache->active_by_destination, destination));
  if (active + change == 0)
    g_hash_table_remove(cache->active_by_destination, destination);
  else
    g_hash_table_replace(cache->active_by_destination, g_strdup(destination),
                         GUINT_TO_POINTER(active + change));
}

static void delivery_acquired(Delivery *delivery, gboolean acquired);

static void waiter_free(Waiter *waiter) {
  g_free(waiter->destination);
  g_free(waiter);
}

static gboolean waiter_timed_out(gpointer data) {
  Waiter *waiter = data;
  PstSmtpCache *cache = delivery_cache(waiter->delivery);
  GQueue *queue =
      g_hash_table_lookup(cache->waiting_by_destination, waiter->destination);
  g_queue_remove(queue, waiter);
  if (g_queue_is_empty(queue))
    g_hash_table_remove(cache->waiting_by_destination, waiter->destination);
  Delivery *delivery = waiter->delivery;
  waiter->timer = 0;
  waiter_free(waiter);
  delivery_acquired(delivery, FALSE);
  return G_SOURCE_REMOVE;
}

static void destination_acquire(Delivery *delivery) {
  PstSmtpCache *cache = delivery_cache(delivery);
  guint active = GPOINTER_TO_UINT(
      g_hash_table_lookup(cache->active_by_destination, delivery->destination));
  if (active < delivery->settings.destination_concurrency) {
    active_add(cache, delivery->destination, 1);
    delivery_acquired(delivery, TRUE);
    return;
  }
  GQueue *queue =
      g_hash_table_lookup(cache->waiting_by_destination, delivery->destination);
  if (queue == NULL) {
    queue = g_queue_new();
    g_hash_table_insert(cache->waiting_by_destination,
                        g_strdup(delivery->destination), queue);
  }
  Waiter *waiter = g_new0(Waiter, 1);
  waiter->delivery = delivery;
  waiter->destination = g_strdup(delivery->destination);
  waiter->timer = g_timeout_add(delivery->settings.smtp_timeout_ms,
                                waiter_timed_out, waiter);
  g_queue_push_tail(queue, waiter);
}

/* Hands the slot to the first delivery waiting for it, if any. */
static void destination_release(PstSmtpCache *cache, const char *destination) {
  GQueue *queue =
      g_hash_table_lookup(cache->waiting_by_destination, destination);
  Waiter *waiter = queue != NULL ? g_queue_pop_head(queue) : NULL;
  if (waiter == NULL) {
    active_add(cache, destination, -1);
    return;
  }
  if (g_queue_is_empty(queue))
    g_hash_table_remove(cache->waiting_by_destination, destination);
  Delivery *delivery = waiter->delivery;
  g_source_remove(waiter->timer);
  waiter_free(waiter);
  delivery_acquired(delivery, TRUE);
}

/* --- The connection cache --------------------------------------------------
 */

static char *cache_key(const PstRouteHost *host, PstDeliveryTls tls) {
  g_autofree char *relay = pst_route_host_describe(host);
  /* Made for every message: no printf for "RELAY tls=N". */
  g_assert((guint)tls <= 9);
  char mode[2] = {(char)('0' + (int)tls), '\0'};
  return g_strconcat(relay, " tls=", mode, NULL);
}

/* The connection idle for the shortest time (`idle_us`), NULL if none. */
static PstSmtpConnection *cache_take(PstSmtpCache *cache, const char *key,
                                     gint64 *idle_us) {
  GQueue *queue = g_hash_table_lookup(cache->idle_by_relay, key);
  CachedConnection *cached = queue != NULL ? g_queue_pop_tail(queue) : NULL;
  if (cached == NULL)
    return NULL;
  *idle_us = g_get_monotonic_time() - cached->since;
  PstSmtpConnection *connection = cached->connection;
  g_free(cached);
  return connection;
}

static void cache_put(PstSmtpCache *cache, const char *key,
                      PstSmtpConnection *connection) {
  CachedConnection *cached = g_new0(CachedConnection, 1);
  cached->connection = connection;
  cached->since = g_get_monotonic_time();
  GQueue *queue = g_hash_table_lookup(cache->idle_by_relay, key);
  if (queue == NULL) {
    queue = g_queue_new();
    g_hash_table_insert(cache->idle_by_relay, g_strdup(key), queue);
  }
  g_queue_push_tail(queue, cached);
}

void pst_smtp_cache_expire(PstSmtpCache *cache, gboolean all) {
  gint64 now = g_get_monotonic_time();
  GHashTableIter iter;
  GQueue *queue;
  g_hash_table_iter_init(&iter, cache->idle_by_relay);
  while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&queue)) {
    while (!g_queue_is_empty(queue)) {
      CachedConnection *cached = g_queue_peek_head(queue);
      if (!all && now - cached->since < CACHE_IDLE_MAX)
        break;
      g_queue_pop_head(queue);
      pst_smtp_connection_close(cached->connection);
      g_free(cached);
    }
    if (g_queue_is_empty(queue)) {
      g_queue_free(queue);
      g_hash_table_iter_remove(&iter);
    }
  }
}

/* --- One message ------------------------------------------------------------
 */

/* SMTPUTF8 was asked for and is needed: a non-ASCII sender, recipient or
 * header field (pst_smtp_header_is_8bit()). */
static gboolean needs_smtputf8(const Delivery *delivery) {
  if (!delivery->envelope->smtputf8)
    return FALSE;
  if (!g_str_is_ascii(delivery->envelope->sender))
    return TRUE;
  for (guint i = 0; i < delivery->count; i++)
    if (!g_str_is_ascii(delivery_item(delivery, i)->target->address))
      return TRUE;
  return delivery->content->header_8bit;
}

/* BODY=8BITMIME was given, or the content needs it (the job's first pass
 * over the content looked). */
static gboolean delivery_is_8bit(Delivery *delivery) {
  return delivery->envelope->body == PST_BODY_8BITMIME ||
         delivery->content->eight_bit;
}

/* A refusal decided by the peer's keywords, or NULL. */
static char *message_check(Delivery *delivery, PstSmtpConnection *connection) {
  gsize size = (gsize)delivery->content->size;
  gboolean eight_bit = delivery_is_8bit(delivery);
  g_autofree char *peer =
      g_strconcat("host ", pst_smtp_connection_get_relay(connection), NULL);
  return pst_smtp_extensions_refusal(
      pst_smtp_connection_get_extensions(connection), needs_smtputf8(delivery),
      eight_bit, size, peer);
}

static char *mail_command(Delivery *delivery, PstSmtpConnection *connection) {
  const PstSmtpExtensions *extensions =
      pst_smtp_connection_get_extensions(connection);
  gsize size = (gsize)delivery->content->size;
  GString *mail = pst_smtp_mail_command_new(
      extensions, delivery->envelope->sender, size, delivery_is_8bit(delivery),
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
  g_autofree char *address = g_ascii_strncasecmp(orcpt, "utf-8;", 6) == 0
                                 ? pst_utf8_addr_xtext_encode(semicolon + 1)
                                 : pst_xtext_encode(semicolon + 1);
  return g_strdup_printf("%.*s;%s", (int)(semicolon - orcpt), orcpt, address);
}

/* "RCPT TO:<a@b>", with NOTIFY and ORCPT for a DSN-capable next hop. */
static char *rcpt_command(const PstDeliveryItem *item, gboolean dsn) {
  guint notify = item->dsn_origin != NULL ? item->dsn_origin->notify : 0;
  const char *orcpt = item->dsn_origin != NULL ? item->dsn_origin->orcpt : NULL;
  GString *rcpt = g_string_sized_new(64);
  g_string_append_len(rcpt, "RCPT TO:<", 9);
  g_string_append(rcpt, item->target->address);
  g_string_append_c(rcpt, '>');
  if (dsn && notify != 0) {
    static const struct {
      guint bit;
      const char *name;
    } names[] = {{PST_DSN_NOTIFY_SUCCESS, "SUCCESS"},
                 {PST_DSN_NOTIFY_FAILURE, "FAILURE"},
                 {PST_DSN_NOTIFY_DELAY, "DELAY"}};
    if (notify & PST_DSN_NOTIFY_NEVER) {
      g_string_append(rcpt, " NOTIFY=NEVER");
    } else {
      char separator = '=';
      g_string_append(rcpt, " NOTIFY");
      for (guint i = 0; i < G_N_ELEMENTS(names); i++)
        if (notify & names[i].bit) {
          g_string_append_printf(rcpt, "%c%s", separator, names[i].name);
          separator = ',';
        }
    }
  }
  if (dsn && orcpt != NULL) {
    g_autofree char *encoded = orcpt_encode(orcpt);
    if (encoded != NULL)
      g_string_append_printf(rcpt, " ORCPT=%s", encoded);
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

/* The relayhost's login: by the relayhost as configured, else by the
 * host connected to. */
static gboolean delivery_login(Delivery *delivery, const PstRouteHost *host) {
  const PstDeliveryConfig *settings = &delivery->settings;
  const PstCredentials *credentials =
      pst_deliver_tables_get_credentials(delivery->batch->tables);
  PstSmtpLogin *login = &delivery->login;
  if (credentials == NULL)
    return FALSE;
  return (settings->relayhost_host != NULL &&
          pst_credentials_lookup(credentials, settings->relayhost_host,
                                 settings->relayhost_port, &login->user,
                                 &login->password)) ||
         pst_credentials_lookup(credentials, host->name, host->port,
                                &login->user, &login->password);
}

static guint delivery_left(Delivery *delivery) {
  guint left = 0;
  for (guint i = 0; i < delivery->count; i++)
    left += delivery->pending[i];
  return left;
}

static void transaction_reset(PstSmtpConnection *connection,
                              gpointer user_data) {
  host_loop(user_data);
}

/* Each recipient's reply to the transaction just run. */
static void transaction_done(PstSmtpConnection *connection,
                             gpointer user_data) {
  Delivery *delivery = user_data;
  const char *relay = pst_smtp_connection_get_relay(connection);
  const char *tls = pst_smtp_connection_get_tls(connection);
  gboolean dsn = (pst_smtp_connection_get_extensions(connection)->flags &
                  PST_SMTP_EXT_DSN) != 0;
  g_autoptr(PstSmtpTransaction) transaction =
      g_steal_pointer(&delivery->transaction);
  g_autoptr(GArray) indexes = g_steal_pointer(&delivery->indexes);
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
      /* Only the envelope recipient itself passes its DSN request on. */
      PstDeliveryItem *item = delivery_item(delivery, i);
      item->result->dsn_passed =
          dsn && reply->code / 100 == 2 && item->dsn_origin != NULL;
    }
  }
  if (pst_smtp_transaction_needs_reset(transaction))
    pst_smtp_connection_reset(connection, transaction_reset, delivery);
  else
    host_loop(delivery);
}

/* The DATA stream's next piece (a PstSmtpContentFunc).  Content found
 * not as stored is the batch's content_error: no other host gets it. */
static gboolean data_next(gpointer user_data, const guint8 **data_r,
                          gsize *length_r, gboolean *last_r, GError **error) {
  Delivery *delivery = user_data;
  GError *local = NULL;
  if (!pst_data_stream_next(&delivery->data, data_r, length_r, last_r,
                            &local)) {
    if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_propagate_error(error, local); /* data_ready() goes on */
      return FALSE;
    }
    if (delivery->batch->content_error == NULL)
      delivery->batch->content_error = g_error_copy(local);
    g_propagate_error(error, local);
    return FALSE;
  }
  return TRUE;
}

/* The DATA stream's next piece is in the page cache (a PstDataStreamReadyFunc).
 */
static void data_ready(gpointer user_data) {
  Delivery *delivery = user_data;
  if (delivery->connection != NULL)
    pst_smtp_connection_content_ready(delivery->connection);
}

/* One transaction for the recipients still pending on the connection. */
static void deliver_on(Delivery *delivery) {
  PstSmtpConnection *connection = delivery->connection;
  const char *relay = pst_smtp_connection_get_relay(connection);
  const char *tls = pst_smtp_connection_get_tls(connection);
  g_autofree char *refusal = message_check(delivery, connection);
  gboolean dsn = (pst_smtp_connection_get_extensions(connection)->flags &
                  PST_SMTP_EXT_DSN) != 0;
  g_autoptr(GArray) indexes = g_array_new(FALSE, FALSE, sizeof(guint));
  g_autoptr(GPtrArray) rcpts = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < delivery->count && indexes->len < RCPT_MAX; i++) {
    if (!delivery->pending[i])
      continue;
    delivery->pending[i] = FALSE; /* tried on this connection */
    if (refusal != NULL) {
      recipient_finish(delivery, i, g_strdup(refusal), relay, tls);
      continue;
    }
    g_array_append_val(indexes, i);
    g_ptr_array_add(rcpts, rcpt_command(delivery_item(delivery, i), dsn));
  }
  if (refusal != NULL) {
    host_loop(delivery);
    return;
  }
  g_ptr_array_add(rcpts, NULL);
  g_autofree char *mail = mail_command(delivery, connection);
  delivery->transaction = pst_smtp_transaction_new(
      mail, (const char *const *)rcpts->pdata,
      (pst_smtp_connection_get_extensions(connection)->flags &
       PST_SMTP_EXT_PIPELINING) != 0);
  delivery->indexes = g_steal_pointer(&indexes);
  pst_data_stream_clear(&delivery->data);
  pst_data_stream_init(&delivery->data, delivery->content, data_ready,
                       delivery);
  pst_smtp_connection_run(connection, delivery->transaction, data_next,
                          delivery, transaction_done, delivery);
}

/* At most RCPT_MAX recipients a transaction, as many as it takes; then
 * the connection goes back to the cache (or is closed) and the next host
 * gets what is left. */
static void host_loop(Delivery *delivery) {
  PstSmtpConnection *connection = delivery->connection;
  if (delivery_left(delivery) > 0 &&
      pst_smtp_connection_is_usable(connection)) {
    deliver_on(delivery);
    return;
  }
  delivery->connection = NULL;
  if (pst_smtp_connection_is_usable(connection)) {
    cache_put(delivery_cache(delivery), delivery->cache_key, connection);
  } else {
    /* Closed by the server before it read a command of ours: the same
     * host again, on a probed or new connection. */
    if (pst_smtp_connection_lost_unprobed(connection) && !delivery->reopened) {
      delivery->reopened = TRUE;
      delivery->next_host--;
    }
    pst_smtp_connection_close(connection);
  }
  host_next(delivery);
}

static void opened(PstSmtpConnection *connection, PstSmtpResponse *failure,
                   gpointer user_data) {
  Delivery *delivery = user_data;
  if (connection == NULL) {
    const PstRouteHost *host = delivery->hosts->pdata[delivery->next_host - 1];
    g_autofree char *relay = pst_route_host_describe(host);
    failure_note(delivery, pst_smtp_response_to_string(failure), relay);
    pst_smtp_response_free(failure);
    host_next(delivery);
    return;
  }
  delivery->connection = connection;
  host_loop(delivery);
}

static void host_open(Delivery *delivery) {
  const PstRouteHost *host = delivery->hosts->pdata[delivery->next_host - 1];
  gboolean login = delivery_login(delivery, host);
  pst_smtp_connection_open(delivery->batch->generation, &delivery->settings,
                           delivery->config->server.hostname, host,
                           delivery->tls, login ? &delivery->login : NULL,
                           delivery->batch->queue_id, opened, delivery);
}

/* A cached connection after RSET (or none): alive, or closed and a new
 * one. */
static void cached_reset(PstSmtpConnection *connection, gpointer user_data) {
  Delivery *delivery = user_data;
  if (!pst_smtp_connection_is_usable(connection)) {
    pst_smtp_connection_close(connection);
    host_open(delivery);
    return;
  }
  delivery->connection = connection;
  host_loop(delivery);
}

static void delivery_finish(Delivery *delivery);

/* Tries the next host for the recipients without a result. */
static void host_next(Delivery *delivery) {
  if (delivery->next_host >= delivery->hosts->len ||
      delivery->batch->content_error != NULL) {
    delivery_finish(delivery);
    return;
  }
  const PstRouteHost *host = delivery->hosts->pdata[delivery->next_host++];
  for (guint i = 0; i < delivery->count; i++)
    delivery->pending[i] = delivery_item(delivery, i)->result->reply == NULL;
  if (delivery_left(delivery) == 0) {
    delivery_finish(delivery);
    return;
  }
  g_free(delivery->cache_key);
  delivery->cache_key = cache_key(host, delivery->tls);
  gint64 idle_us = 0;
  PstSmtpConnection *connection =
      cache_take(delivery_cache(delivery), delivery->cache_key, &idle_us);
  /* The server may have closed it meanwhile: RSET proves it alive, unless
   * it is fresh and quiet; after a stale one, always probe. */
  if (connection != NULL)
    pst_smtp_connection_reuse(connection,
                              delivery->reopened ? G_MAXINT64 : idle_us,
                              cached_reset, delivery);
  else
    host_open(delivery);
}

static void delivery_acquired(Delivery *delivery, gboolean acquired) {
  if (!acquired) {
    failure_note(delivery,
                 g_strdup_printf("451 4.4.5 too many connections to %s "
                                 "already ([delivery] "
                                 "destination_concurrency)",
                                 delivery->destination),
                 "none");
    delivery_finish(delivery);
    return;
  }
  delivery->acquired = TRUE;
  host_next(delivery);
}

static void routed(GPtrArray *hosts, char *failure, gpointer user_data) {
  Delivery *delivery = user_data;
  if (hosts == NULL) {
    failure_note(delivery, failure, "none");
    delivery_finish(delivery);
    return;
  }
  delivery->hosts = hosts;
  destination_acquire(delivery);
}

/* Recipients left get the last failure, temporary or not. */
static void delivery_finish(Delivery *delivery) {
  for (guint i = 0; i < delivery->count; i++)
    if (delivery_item(delivery, i)->result->reply == NULL)
      recipient_finish(
          delivery, i,
          g_strdup(delivery->last_failure != NULL
                       ? delivery->last_failure
                       : "451 4.4.0 no mail host was tried"),
          delivery->last_relay != NULL ? delivery->last_relay : "none", NULL);
  g_autofree char *release =
      delivery->acquired ? g_strdup(delivery->destination) : NULL;
  PstSmtpCache *cache = delivery_cache(delivery);
  delivery->done(delivery->batch, delivery->user_data);
  g_free(delivery->last_failure);
  g_free(delivery->last_relay);
  pst_data_stream_clear(&delivery->data);
  g_clear_pointer(&delivery->hosts, g_ptr_array_unref);
  g_free(delivery->pending);
  g_free(delivery->cache_key);
  g_free(delivery->nexthop_host);
  g_free(delivery->destination);
  g_free(delivery);
  /* Last: the slot may start another delivery at once. */
  if (release != NULL)
    destination_release(cache, release);
}

static void smtp_deliver(PstDeliveryBatch *batch, PstDeliveryBatchFunc done,
                         gpointer user_data) {
  Delivery *delivery = g_new0(Delivery, 1);
  delivery->batch = batch;
  delivery->config = pst_deliver_tables_get_config(batch->tables);
  delivery->envelope = batch->envelope;
  delivery->content = batch->content;
  delivery->count = batch->items->len;
  delivery->pending = g_new0(gboolean, delivery->count);
  delivery->done = done;
  delivery->user_data = user_data;
  /* A route's NEXTHOP stands in for the relayhost ([delivery] is copied
   * shallowly: the strings stay the configuration's or the batch's). */
  delivery->settings = delivery->config->delivery;
  PstDeliveryConfig *settings = &delivery->settings;
  if (batch->nexthop != NULL &&
      pst_config_parse_relayhost(batch->nexthop, &delivery->nexthop_host,
                                 &settings->relayhost_port,
                                 &settings->relayhost_mx)) {
    settings->relayhost = batch->nexthop;
    settings->relayhost_host = delivery->nexthop_host;
    if (settings->relayhost_port == 0)
      settings->relayhost_port = (guint16)settings->smtp_port;
  }
  delivery->destination =
      g_strdup(settings->relayhost_host != NULL ? settings->relayhost_host
                                                : batch->domain);
  delivery->tls = pst_config_delivery_tls(settings, delivery->destination);
  pst_route_lookup(pst_generation_get_dns(batch->generation), settings,
                   batch->domain, routed, delivery);
}

const PstDeliveryTransport pst_delivery_transport_smtp = {
    .name = "smtp", .blocking = FALSE, .deliver = smtp_deliver};
