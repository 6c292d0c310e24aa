/* lookup.c - the DNS service: lookups, timeouts, cancellation, lifecycle.
 *
 * Entry points: pst_dns_start(), pst_dns_reconfigure(), pst_dns_stop(),
 * pst_dns_get_stats(), the resolvers' open/hold/release, the default and
 * the scope (the daemon, generations, the hooks module; main thread but
 * for hold/release), pst_dns_lookup_on() (sessions, routing), and the
 * SDK's pst_dns_lookup() and pst_dns_lookup_full() (main thread) and
 * pst_dns_lookup_sync() (worker threads); pst_dns_lookup_cached_on() (the
 * session's reverse name) only asks the cache, inside the call.
 *
 * Every lookup is a PstDnsRequest for one resolver: the one given, else
 * the scope's (the hook's generation, or the resolver whose answer is
 * being delivered), else the default.  When that resolver's answer cache
 * (cache.c) holds a fresh answer, the request is answered from it: an
 * async request from the main loop (on_ready(), which delivers every
 * answer known without a query in one batch per iteration), never inside
 * the call.  Otherwise it is sent with ub_resolve_async(); libunbound
 * answers through its fd, which the main loop watches (resolver.c), so
 * on_answer() always runs on the main thread, inside ub_process().  An
 * async request then calls its callback; a sync request stores the answer
 * and wakes its waiting worker.
 *
 * Invariants:
 *  - `service.lock` guards the resolver pointers, each resolver's
 *    `requests` set and answer cache, and every request's `in_unbound`, `finished` and sync
 *    fields.  Threads other than the main one touch a ub_ctx only under it,
 *    and the main thread deletes contexts only under it.
 *  - A request is in its resolver's `requests` set exactly while
 *    libunbound holds it (`in_unbound`): that holder owns one reference,
 *    dropped by on_answer(), by a successful ub_cancel() or by stop.
 *  - An async request finishes exactly once (request_finish_async()): by
 *    its answer, its timer, its cancellable or pst_dns_stop(); its
 *    callback runs then, on the main thread, never inside pst_dns_lookup()
 *    or g_cancellable_cancel().  A request cancelled before it finishes is
 *    reported as CANCELLED whatever else happened.
 *  - `service.resolvers` holds every resolver whose context is open.  One
 *    that nobody holds (`users` 0: its generations are gone) is closed from
 *    an idle callback once its last request has left libunbound: never
 *    inside ub_process().  The default resolver is held by the service.
 */
#define G_LOG_DOMAIN "postilion"

#include <string.h>

#include "dns/cache.h"
#include "dns/dns.h"
#include "dns/rdata-parse.h"
#include "dns/resolver.h"
#include "dns/result.h"

typedef struct {
  gint ref_count; /* atomic */
  PstDnsType type;
  char *name;               /* owned: as the caller gave it */
  char *query;              /* owned: as libunbound gets it (escaped) */
  GMainContext *context;    /* owned: where async callbacks run */
  PstDnsResolver *resolver; /* owned, nullable: set once sent */
  int async_id;             /* libunbound's id, valid while in_unbound */
  gboolean in_unbound;      /* locked */
  gboolean finished;        /* locked */
  gboolean sync;
  /* Async requests, main thread. */
  PstDnsCallback callback;
  gpointer user_data;
  GCancellable *cancellable; /* owned, nullable */
  gulong cancel_handler;
  GSource *timeout_source; /* owned, nullable */
  PstDnsResult *immediate; /* owned, nullable: known without a query */
  /* Sync requests, locked. */
  GCond cond;
  gboolean cancel_requested;
  PstDnsResult *result; /* owned, nullable: the answer for the waiter */
} PstDnsRequest;

static struct {
  GMutex lock;
  PstDnsResolver *current;   /* held, nullable: the default; NULL stopped */
  GPtrArray *resolvers;      /* owned, of owned PstDnsResolver*, nullable:
                              * every resolver with an open context */
  GMainContext *context;     /* owned, nullable: the main thread's */
  GThread *thread;           /* the main thread, NULL when stopped */
  GHashTable *async_pending; /* main thread: unfinished async requests */
  GQueue ready;              /* main thread: of referenced async requests
                              * whose `immediate` answer waits for
                              * on_ready() */
  GSource *ready_source;     /* owned, nullable: on_ready(), attached */
  PstDnsStats stats;         /* locked */
} service;

static PstDnsRequest *request_ref(PstDnsRequest *request) {
  g_atomic_int_inc(&request->ref_count);
  return request;
}

static void request_unref(gpointer data) {
  PstDnsRequest *request = data;
  if (!g_atomic_int_dec_and_test(&request->ref_count))
    return;
  g_free(request->name);
  g_free(request->query);
  g_main_context_unref(request->context);
  g_clear_pointer(&request->resolver, pst_dns_resolver_unref);
  g_clear_object(&request->cancellable);
  if (request->timeout_source != NULL) {
    g_source_destroy(request->timeout_source);
    g_source_unref(request->timeout_source);
  }
  pst_dns_result_free(request->immediate);
  pst_dns_result_free(request->result);
  g_cond_clear(&request->cond);
  g_free(request);
}

static PstDnsRequest *request_new(PstDnsType type, const char *name) {
  PstDnsRequest *request = g_new0(PstDnsRequest, 1);
  request->ref_count = 1;
  request->type = type;
  request->name = g_strdup(name);
  request->query = g_strdup(name);
  request->context = service.context != NULL
                         ? g_main_context_ref(service.context)
                         : g_main_context_ref_thread_default();
  g_cond_init(&request->cond);
  return request;
}

static gboolean resolver_is_idle_locked(PstDnsResolver *resolver) {
  return resolver->users == 0 && resolver->ctx != NULL &&
         g_hash_table_size(resolver->requests) == 0;
}

static gboolean on_close_retired(gpointer data) {
  PstDnsResolver *resolver = data;
  g_mutex_lock(&service.lock);
  if (resolver_is_idle_locked(resolver)) {
    pst_dns_resolver_close(resolver);
    if (service.resolvers != NULL)
      g_ptr_array_remove_fast(service.resolvers, resolver); /* unrefs */
  }
  g_mutex_unlock(&service.lock);
  return G_SOURCE_REMOVE;
}

/* Closes a resolver nobody holds soon, from the main loop. */
static void schedule_close_locked(PstDnsResolver *resolver) {
  if (service.context == NULL)
    return; /* stopped: every context is closed already */
  GSource *idle = g_idle_source_new();
  g_source_set_callback(idle, on_close_retired, pst_dns_resolver_ref(resolver),
                        (GDestroyNotify)pst_dns_resolver_unref);
  g_source_attach(idle, service.context);
  g_source_unref(idle);
}

/* The request left libunbound (answered or cancelled). */
static void unregister_locked(PstDnsRequest *request) {
  PstDnsResolver *resolver = request->resolver;
  request->in_unbound = FALSE;
  g_hash_table_remove(resolver->requests, request);
  if (resolver_is_idle_locked(resolver))
    schedule_close_locked(resolver);
}

/* Withdraws the query from libunbound.  TRUE when libunbound let go of
 * the request: the caller then drops libunbound's reference (after
 * unlocking).  FALSE when the answer is being delivered concurrently:
 * on_answer() will find the request finished and drop it. */
static gboolean cancel_in_unbound_locked(PstDnsRequest *request) {
  if (!request->in_unbound || request->resolver->ctx == NULL)
    return FALSE;
  if (ub_cancel(request->resolver->ctx, request->async_id) != 0)
    return FALSE;
  unregister_locked(request);
  return TRUE;
}

static void on_answer(void *data, int error, struct ub_result *ub);

/* The resolver a lookup on `resolver` goes to: itself while its context
 * is open, else the default one (nullable: stopped). */
static PstDnsResolver *target_locked(PstDnsResolver *resolver) {
  if (resolver == NULL || resolver->ctx == NULL)
    return service.current;
  return resolver;
}

/* The answer `resolver`'s cache holds for the request, or NULL.  On a hit
 * the request is taken as answered by `resolver`. */
static PstDnsResult *cache_hit_locked(PstDnsRequest *request,
                                      PstDnsResolver *resolver) {
  if (resolver == NULL || resolver->cache == NULL)
    return NULL;
  PstDnsResult *hit =
      pst_dns_cache_lookup(resolver->cache, request->type, request->query,
                           request->name, g_get_monotonic_time());
  if (hit == NULL)
    return NULL;
  request->resolver = pst_dns_resolver_ref(resolver);
  service.stats.cache_hits++;
  return hit;
}

/* Hands the query to libunbound, on `resolver` while its context is open,
 * else on the default one.  On failure `*reason` says why. */
static gboolean send_locked(PstDnsRequest *request, PstDnsResolver *resolver,
                            char **reason) {
  resolver = target_locked(resolver);
  if (resolver == NULL) {
    *reason = g_strdup("the DNS resolver is not running");
    return FALSE;
  }
  int status =
      ub_resolve_async(resolver->ctx, request->query, (int)request->type,
                       1 /* IN */, request, on_answer, &request->async_id);
  if (status != 0) {
    *reason = g_strdup_printf("resolver error: %s", ub_strerror(status));
    return FALSE;
  }
  request->resolver = pst_dns_resolver_ref(resolver);
  request->in_unbound = TRUE;
  /* libunbound's reference; the set itself holds none. */
  g_hash_table_add(resolver->requests, request_ref(request));
  service.stats.lookups++;
  return TRUE;
}

/* Ends an async request: exactly one callback, then its reference goes. */
static void request_finish_async(PstDnsRequest *request, PstDnsResult *result) {
  g_mutex_lock(&service.lock);
  gboolean already = request->finished;
  request->finished = TRUE;
  g_mutex_unlock(&service.lock);
  if (already) {
    pst_dns_result_free(result);
    return;
  }
  if (service.async_pending != NULL)
    g_hash_table_remove(service.async_pending, request);
  if (request->timeout_source != NULL) {
    g_source_destroy(request->timeout_source);
    g_clear_pointer(&request->timeout_source, g_source_unref);
  }
  if (request->cancel_handler != 0)
    g_cancellable_disconnect(request->cancellable, request->cancel_handler);
  request->cancel_handler = 0;
  if (request->cancellable != NULL &&
      g_cancellable_is_cancelled(request->cancellable) &&
      pst_dns_result_get_status(result) != PST_DNS_CANCELLED) {
    PstDnsResult *cancelled = pst_dns_result_new_cancelled(result);
    pst_dns_result_free(result);
    result = cancelled;
  }
  /* Lookups the callback starts go where this one went. */
  PstDnsResolver *previous = pst_dns_scope_enter(request->resolver);
  request->callback(result, request->user_data);
  pst_dns_scope_leave(previous);
  request_unref(request);
}

/* libunbound's callback, on the main thread inside ub_process(). */
static void on_answer(void *data, int error, struct ub_result *ub) {
  PstDnsRequest *request = data;
  PstDnsResult *result =
      pst_dns_result_new_from_unbound(request->type, request->name, error, ub);
  if (ub != NULL)
    ub_resolve_free(ub);

  g_mutex_lock(&service.lock);
  if (request->resolver->cache != NULL)
    pst_dns_cache_store(request->resolver->cache, request->query, result,
                        g_get_monotonic_time());
  if (request->in_unbound)
    unregister_locked(request);
  if (request->sync && !request->finished) {
    request->finished = TRUE;
    request->result = g_steal_pointer(&result);
    g_cond_broadcast(&request->cond);
  }
  g_mutex_unlock(&service.lock);

  if (!request->sync)
    request_finish_async(request, g_steal_pointer(&result));
  pst_dns_result_free(result); /* a sync request that gave up already */
  request_unref(request);      /* libunbound's reference */
}

/* Finishes the requests queued until now; those their callbacks queue
 * wait for the next main-loop iteration. */
static gboolean on_ready(gpointer data) {
  GQueue batch = service.ready;
  g_queue_init(&service.ready);
  g_clear_pointer(&service.ready_source, g_source_unref);
  PstDnsRequest *request;
  while ((request = g_queue_pop_head(&batch)) != NULL) {
    request_finish_async(request, g_steal_pointer(&request->immediate));
    request_unref(request);
  }
  return G_SOURCE_REMOVE;
}

/* Delivers an answer known without a query (a cache hit, an invalid name,
 * a resolver not running), from the main loop: one source per iteration
 * for every such answer, at the priority of socket I/O, so that hits are
 * not starved by busy sessions as idle-priority sources would be. */
static void deliver_later(PstDnsRequest *request, PstDnsResult *result) {
  request->immediate = result;
  g_queue_push_tail(&service.ready, request_ref(request));
  if (service.ready_source != NULL)
    return;
  service.ready_source = g_idle_source_new();
  g_source_set_priority(service.ready_source, G_PRIORITY_DEFAULT);
  g_source_set_callback(service.ready_source, on_ready, NULL, NULL);
  g_source_set_name(service.ready_source, "postilion dns answers");
  g_source_attach(service.ready_source, request->context);
}

/* Ends a request that libunbound still holds: timeout or cancellation. */
static void abandon_async(PstDnsRequest *request, PstDnsResult *result) {
  g_mutex_lock(&service.lock);
  gboolean finished = request->finished;
  gboolean released = !finished && cancel_in_unbound_locked(request);
  g_mutex_unlock(&service.lock);
  if (released)
    request_unref(request);
  request_finish_async(request, result);
}

static gboolean on_timeout(gpointer data) {
  PstDnsRequest *request = data;
  g_mutex_lock(&service.lock);
  service.stats.timeouts++;
  guint timeout_ms = request->resolver->timeout_ms;
  g_mutex_unlock(&service.lock);
  g_autofree char *reason = g_strdup_printf("timeout after %u ms", timeout_ms);
  abandon_async(request, pst_dns_result_new_status(request->type, request->name,
                                                   PST_DNS_TEMPFAIL, reason));
  return G_SOURCE_REMOVE;
}

static gboolean on_cancel_idle(gpointer data) {
  PstDnsRequest *request = data;
  g_mutex_lock(&service.lock);
  gboolean finished = request->finished;
  if (!finished)
    service.stats.cancelled++;
  g_mutex_unlock(&service.lock);
  if (!finished)
    abandon_async(request,
                  pst_dns_result_new_status(request->type, request->name,
                                            PST_DNS_CANCELLED, "cancelled"));
  return G_SOURCE_REMOVE;
}

/* Any thread (the one that cancelled): defer to the main loop. */
static void on_cancelled(GCancellable *cancellable, gpointer data) {
  PstDnsRequest *request = data;
  GSource *idle = g_idle_source_new();
  g_source_set_priority(idle, G_PRIORITY_DEFAULT);
  g_source_set_callback(idle, on_cancel_idle, request_ref(request),
                        request_unref);
  g_source_attach(idle, request->context);
  g_source_unref(idle);
}

/* The name libunbound gets for `name`, a new string, or NULL when it
 * cannot be a query: as it is, or escaped for a verbatim lookup. */
static char *query_for_name(const char *name, PstDnsLookupFlags flags) {
  if (flags & PST_DNS_LOOKUP_VERBATIM)
    return pst_dns_query_name_escape(name);
  return pst_dns_query_name_is_valid(name) ? g_strdup(name) : NULL;
}

void pst_dns_lookup(PstDnsType type, const char *name,
                    GCancellable *cancellable, PstDnsCallback callback,
                    gpointer user_data) {
  pst_dns_lookup_on(pst_dns_scope_get(), type, name, PST_DNS_LOOKUP_DEFAULT,
                    cancellable, callback, user_data);
}

void pst_dns_lookup_full(PstDnsType type, const char *name,
                         PstDnsLookupFlags flags, GCancellable *cancellable,
                         PstDnsCallback callback, gpointer user_data) {
  pst_dns_lookup_on(pst_dns_scope_get(), type, name, flags, cancellable,
                    callback, user_data);
}

void pst_dns_lookup_on(PstDnsResolver *resolver, PstDnsType type,
                       const char *name, PstDnsLookupFlags flags,
                       GCancellable *cancellable, PstDnsCallback callback,
                       gpointer user_data) {
  g_return_if_fail(name != NULL && callback != NULL);
  g_return_if_fail(cancellable == NULL || G_IS_CANCELLABLE(cancellable));
  g_return_if_fail(service.thread == NULL || service.thread == g_thread_self());

  PstDnsRequest *request = request_new(type, name);
  request->callback = callback;
  request->user_data = user_data;
  request->cancellable = cancellable != NULL ? g_object_ref(cancellable) : NULL;
  if (service.async_pending != NULL)
    g_hash_table_add(service.async_pending, request);

  g_free(request->query);
  request->query = query_for_name(name, flags);
  if (request->query == NULL || type == 0) {
    deliver_later(request,
                  pst_dns_result_new_status(type, name, PST_DNS_INVALID,
                                            "not a valid domain name or type"));
    return;
  }
  if (cancellable != NULL && g_cancellable_is_cancelled(cancellable)) {
    deliver_later(request, pst_dns_result_new_status(
                               type, name, PST_DNS_CANCELLED, "cancelled"));
    return;
  }
  g_autofree char *reason = NULL;
  g_mutex_lock(&service.lock);
  PstDnsResult *hit = cache_hit_locked(request, target_locked(resolver));
  gboolean sent = hit == NULL && send_locked(request, resolver, &reason);
  guint timeout_ms = sent ? request->resolver->timeout_ms : 0;
  g_mutex_unlock(&service.lock);
  if (hit != NULL) {
    deliver_later(request, hit);
    return;
  }
  if (!sent) {
    deliver_later(request, pst_dns_result_new_status(type, name,
                                                     PST_DNS_TEMPFAIL, reason));
    return;
  }
  request->timeout_source = g_timeout_source_new(timeout_ms);
  g_source_set_callback(request->timeout_source, on_timeout, request, NULL);
  g_source_attach(request->timeout_source, request->context);
  if (cancellable != NULL)
    request->cancel_handler = g_cancellable_connect(
        cancellable, G_CALLBACK(on_cancelled), request, NULL);
}

PstDnsResult *pst_dns_lookup_cached_on(PstDnsResolver *resolver,
                                       PstDnsType type, const char *name) {
  g_return_val_if_fail(name != NULL, NULL);
  g_autofree char *query = query_for_name(name, PST_DNS_LOOKUP_DEFAULT);
  if (query == NULL || type == 0)
    return NULL;
  g_mutex_lock(&service.lock);
  PstDnsResolver *target = target_locked(resolver);
  PstDnsResult *hit = NULL;
  if (target != NULL && target->cache != NULL)
    hit = pst_dns_cache_lookup(target->cache, type, query, name,
                               g_get_monotonic_time());
  if (hit != NULL)
    service.stats.cache_hits++;
  g_mutex_unlock(&service.lock);
  return hit;
}

/* Any thread: wakes the sync waiter. */
static void on_sync_cancelled(GCancellable *cancellable, gpointer data) {
  PstDnsRequest *request = data;
  g_mutex_lock(&service.lock);
  request->cancel_requested = TRUE;
  g_cond_broadcast(&request->cond);
  g_mutex_unlock(&service.lock);
}

/* Waits for the answer; on timeout or cancellation withdraws the query.
 * Called and returns with the lock held. */
static PstDnsResult *sync_wait_locked(PstDnsRequest *request,
                                      gboolean *released) {
  gint64 deadline = g_get_monotonic_time() +
                    request->resolver->timeout_ms * G_TIME_SPAN_MILLISECOND;
  while (!request->finished && !request->cancel_requested)
    if (!g_cond_wait_until(&request->cond, &service.lock, deadline))
      break;
  if (request->finished)
    return g_steal_pointer(&request->result);
  request->finished = TRUE;
  *released = cancel_in_unbound_locked(request);
  if (request->cancel_requested) {
    service.stats.cancelled++;
    return pst_dns_result_new_status(request->type, request->name,
                                     PST_DNS_CANCELLED, "cancelled");
  }
  service.stats.timeouts++;
  g_autofree char *reason =
      g_strdup_printf("timeout after %u ms", request->resolver->timeout_ms);
  return pst_dns_result_new_status(request->type, request->name,
                                   PST_DNS_TEMPFAIL, reason);
}

PstDnsResult *pst_dns_lookup_sync(PstDnsType type, const char *name,
                                  GCancellable *cancellable) {
  if (name == NULL || !pst_dns_query_name_is_valid(name) || type == 0)
    return pst_dns_result_new_status(type, name, PST_DNS_INVALID,
                                     "not a valid domain name or type");
  if (service.thread == g_thread_self()) {
    g_critical("pst_dns_lookup_sync(%s) called on the main thread; use "
               "pst_dns_lookup() there",
               name);
    return pst_dns_result_new_status(type, name, PST_DNS_TEMPFAIL,
                                     "blocking lookup on the main thread");
  }
  if (cancellable != NULL && g_cancellable_is_cancelled(cancellable))
    return pst_dns_result_new_status(type, name, PST_DNS_CANCELLED,
                                     "cancelled");

  PstDnsRequest *request = request_new(type, name);
  request->sync = TRUE;
  /* Connected before locking: a cancellable already cancelled calls the
   * handler at once, and the handler takes the lock. */
  gulong handler =
      cancellable != NULL
          ? g_cancellable_connect(cancellable, G_CALLBACK(on_sync_cancelled),
                                  request, NULL)
          : 0;
  g_autofree char *reason = NULL;
  PstDnsResult *result = NULL;
  gboolean released = FALSE;
  g_mutex_lock(&service.lock);
  result = cache_hit_locked(request, service.current);
  if (result == NULL && send_locked(request, NULL, &reason))
    result = sync_wait_locked(request, &released);
  g_mutex_unlock(&service.lock);

  if (handler != 0)
    g_cancellable_disconnect(cancellable, handler);
  if (released)
    request_unref(request); /* libunbound's reference */
  if (result == NULL)
    result =
        pst_dns_result_new_status(type, name, PST_DNS_TEMPFAIL,
                                  reason != NULL ? reason : "resolver stopped");
  request_unref(request);
  return result;
}

gboolean pst_dns_start(const PstDnsConfig *config, GError **error) {
  g_return_val_if_fail(config != NULL, FALSE);
  g_return_val_if_fail(service.current == NULL, FALSE);

  g_autoptr(GMainContext) context = g_main_context_ref_thread_default();
  PstDnsResolver *resolver = pst_dns_resolver_new(config, context, error);
  if (resolver == NULL)
    return FALSE;
  g_message("dns: %s", resolver->description);
  g_mutex_lock(&service.lock);
  service.context = g_steal_pointer(&context);
  service.thread = g_thread_self();
  resolver->users = 1; /* the service's, as the default */
  service.current = pst_dns_resolver_ref(resolver);
  service.resolvers =
      g_ptr_array_new_with_free_func((GDestroyNotify)pst_dns_resolver_unref);
  g_ptr_array_add(service.resolvers, resolver);
  service.async_pending = g_hash_table_new(NULL, NULL);
  memset(&service.stats, 0, sizeof service.stats);
  g_mutex_unlock(&service.lock);
  return TRUE;
}

PstDnsResolver *pst_dns_resolver_open(const PstDnsConfig *config,
                                      GError **error) {
  g_return_val_if_fail(config != NULL, NULL);
  if (service.context == NULL) {
    g_set_error(error, PST_DNS_ERROR, PST_DNS_ERROR_UNBOUND,
                "the DNS service is not started");
    return NULL;
  }
  g_return_val_if_fail(service.thread == g_thread_self(), NULL);
  PstDnsResolver *resolver =
      pst_dns_resolver_new(config, service.context, error);
  if (resolver == NULL)
    return NULL;
  g_mutex_lock(&service.lock);
  resolver->users = 1; /* the caller's */
  g_ptr_array_add(service.resolvers, pst_dns_resolver_ref(resolver));
  g_mutex_unlock(&service.lock);
  return resolver;
}

PstDnsResolver *pst_dns_resolver_hold(PstDnsResolver *resolver) {
  g_return_val_if_fail(resolver != NULL, NULL);
  g_mutex_lock(&service.lock);
  resolver->users++;
  g_mutex_unlock(&service.lock);
  return pst_dns_resolver_ref(resolver);
}

void pst_dns_resolver_release(PstDnsResolver *resolver) {
  if (resolver == NULL)
    return;
  g_mutex_lock(&service.lock);
  g_warn_if_fail(resolver->users > 0);
  if (resolver->users > 0)
    resolver->users--;
  if (resolver_is_idle_locked(resolver))
    schedule_close_locked(resolver);
  g_mutex_unlock(&service.lock);
  pst_dns_resolver_unref(resolver);
}

PstDnsResolver *pst_dns_get_default(void) {
  return service.current;
}

void pst_dns_set_default(PstDnsResolver *resolver) {
  g_return_if_fail(resolver != NULL);
  g_return_if_fail(service.thread == g_thread_self());
  if (resolver == service.current)
    return;
  pst_dns_resolver_hold(resolver);
  g_mutex_lock(&service.lock);
  PstDnsResolver *old = g_steal_pointer(&service.current);
  service.current = resolver;
  g_mutex_unlock(&service.lock);
  g_message("dns: reconfigured: %s", resolver->description);
  pst_dns_resolver_release(old);
}

gboolean pst_dns_reconfigure(const PstDnsConfig *config, GError **error) {
  g_return_val_if_fail(config != NULL, FALSE);
  if (service.current == NULL)
    return pst_dns_start(config, error);
  g_autoptr(PstDnsResolver) resolver = pst_dns_resolver_open(config, error);
  if (resolver == NULL) {
    g_prefix_error(error, "keeping the previous DNS configuration: ");
    return FALSE;
  }
  pst_dns_set_default(resolver);
  return TRUE;
}

/* Takes every request out of `resolver` and closes it; sync waiters are
 * woken with TEMPFAIL, async requests are appended to `async` and every
 * request to `held` (libunbound's references, dropped by the caller). */
static void drain_resolver_locked(PstDnsResolver *resolver, GPtrArray *async,
                                  GPtrArray *held) {
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init(&iter, resolver->requests);
  while (g_hash_table_iter_next(&iter, &key, NULL)) {
    PstDnsRequest *request = key;
    request->in_unbound = FALSE;
    g_ptr_array_add(held, request);
    if (!request->sync) {
      g_ptr_array_add(async, request_ref(request));
    } else if (!request->finished) {
      request->finished = TRUE;
      request->result = pst_dns_result_new_status(
          request->type, request->name, PST_DNS_TEMPFAIL, "resolver stopped");
      g_cond_broadcast(&request->cond);
    }
  }
  g_hash_table_remove_all(resolver->requests);
  pst_dns_resolver_close(resolver);
}

void pst_dns_stop(void) {
  if (service.current == NULL)
    return;
  g_return_if_fail(service.thread == g_thread_self());
  for (guint i = 0; i < service.resolvers->len; i++)
    g_return_if_fail(
        !((PstDnsResolver *)g_ptr_array_index(service.resolvers, i))
             ->dispatching);

  g_autoptr(GPtrArray) async = g_ptr_array_new_with_free_func(request_unref);
  g_autoptr(GPtrArray) held = g_ptr_array_new_with_free_func(request_unref);
  g_mutex_lock(&service.lock);
  for (guint i = 0; i < service.resolvers->len; i++)
    drain_resolver_locked(g_ptr_array_index(service.resolvers, i), async, held);
  /* Holders (generations) keep their references to the closed structs. */
  g_clear_pointer(&service.current, pst_dns_resolver_unref);
  g_clear_pointer(&service.resolvers, g_ptr_array_unref);
  g_mutex_unlock(&service.lock);

  /* Callbacks run without the lock: they may start lookups (which now
   * fail at once) or cancel others. */
  GHashTable *pending = g_steal_pointer(&service.async_pending);
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init(&iter, pending);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    if (!g_ptr_array_find(async, key, NULL))
      g_ptr_array_add(async, request_ref(key));
  g_hash_table_unref(pending);
  for (guint i = 0; i < async->len; i++) {
    PstDnsRequest *request = g_ptr_array_index(async, i);
    PstDnsResult *result = g_steal_pointer(&request->immediate);
    if (result == NULL)
      result = pst_dns_result_new_status(request->type, request->name,
                                         PST_DNS_TEMPFAIL, "resolver stopped");
    request_finish_async(request, result);
  }
  g_mutex_lock(&service.lock);
  service.thread = NULL;
  g_clear_pointer(&service.context, g_main_context_unref);
  g_mutex_unlock(&service.lock);
}

void pst_dns_get_stats(PstDnsStats *stats) {
  g_return_if_fail(stats != NULL);
  g_mutex_lock(&service.lock);
  *stats = service.stats;
  stats->in_flight = 0;
  stats->contexts = 0;
  for (guint i = 0; service.resolvers != NULL && i < service.resolvers->len;
       i++) {
    PstDnsResolver *resolver = g_ptr_array_index(service.resolvers, i);
    stats->in_flight += g_hash_table_size(resolver->requests);
    stats->contexts += resolver->ctx != NULL;
  }
  g_mutex_unlock(&service.lock);
}
