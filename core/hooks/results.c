/* results.c - the typed store plugins share their findings through.
 *
 * A PstResults is a thread-safe map key -> GVariant for one scope
 * instance.  The server scope is one process-wide store
 * (pst_results_get_server()); session, transaction and recipient stores
 * belong to the session, which hands them to each stage run
 * (PstResultsStores in the PstHookArgs; the call keeps the pointer).
 *
 * The SDK's pst_result_* functions add the rules:
 *   - a plugin writes only its own namespace, "NAME.word[.word...]", or
 *     exactly "auth.NAME", the core-defined RFC 8601 result, which must be
 *     an a{sv} holding at least "result" as a string (the core renders the
 *     Authentication-Results header from these);
 *   - writes are buffered in the call and reach the stores when the call
 *     ends with a verdict of its own (pst_call_apply_results(), on the main
 *     thread), so a timed-out or cancelled call writes nothing and writes
 *     from a worker never touch a session store;
 *   - reads see the stores plus the call's own buffered writes;
 *   - pst_result_append() (ABI 1.2) keeps several results under one key,
 *     stored as an "aa{sv}" in append order (one per DKIM signature); a
 *     single a{sv} already there becomes the list's first element, and a
 *     later pst_result_set() replaces the whole list.
 * pst_results_to_variant() hands a store to the spool as one a{sv}
 * written directly in serialised form (util/vardict.c): per message, the
 * tree GLib's constructors made, and serialised again, cost more than the
 * rest of the results' way.
 * Floating references are always sunk, also when a write is refused.
 */
#define G_LOG_DOMAIN "postilion"

#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "hooks/hooks-private.h"
#include "smtp/smtp-parse.h"
#include "util/vardict.h"

#define PST_RESULT_KEY_MAX 128

/* `values` is made by the first write: a message makes a transaction
 * and a recipient store (a connection a session store too), and unless a
 * plugin records something (SPF, DKIM, AUTH) nothing is ever written in
 * them; a table cost four allocations and about 1.5K instructions to make
 * and free. */
struct _PstResults {
  GMutex lock;
  GHashTable *values; /* owned, nullable: char* -> GVariant* */
};

/* ------------------------------------------------------------------ */
/* Stores                                                              */
/* ------------------------------------------------------------------ */

PstResults *pst_results_new(void) {
  PstResults *results = g_new0(PstResults, 1);
  g_mutex_init(&results->lock);
  return results;
}

void pst_results_free(PstResults *results) {
  if (results == NULL)
    return;
  g_clear_pointer(&results->values, g_hash_table_unref);
  g_mutex_clear(&results->lock);
  g_free(results);
}

void pst_results_set(PstResults *results, const char *key, GVariant *value) {
  g_return_if_fail(results != NULL && key != NULL && value != NULL);
  g_variant_ref_sink(value);
  g_mutex_lock(&results->lock);
  if (results->values == NULL)
    results->values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)g_variant_unref);
  g_hash_table_replace(results->values, g_strdup(key), value);
  g_mutex_unlock(&results->lock);
}

void pst_results_remove(PstResults *results, const char *key) {
  g_return_if_fail(results != NULL && key != NULL);
  g_mutex_lock(&results->lock);
  if (results->values != NULL)
    g_hash_table_remove(results->values, key);
  g_mutex_unlock(&results->lock);
}

GVariant *pst_results_get(PstResults *results, const char *key) {
  g_return_val_if_fail(results != NULL && key != NULL, NULL);
  g_mutex_lock(&results->lock);
  GVariant *value = results->values != NULL
                        ? g_hash_table_lookup(results->values, key)
                        : NULL;
  if (value != NULL)
    g_variant_ref(value);
  g_mutex_unlock(&results->lock);
  return value;
}

static gint key_compare(gconstpointer a, gconstpointer b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static gboolean keys_are_utf8(char *const *keys, guint count) {
  for (guint i = 0; i < count; i++)
    if (!g_utf8_validate(keys[i], -1, NULL))
      return FALSE;
  return TRUE;
}

/* GLib's constructors: what the store made before pst_vardict_new(), for
 * a key that is no valid GVariant string (not one a plugin may write). */
static GVariant *results_to_variant_tree(PstResults *results, char **keys,
                                         guint count) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE_VARDICT);
  for (guint i = 0; i < count; i++)
    g_variant_builder_add_value(
        &builder,
        g_variant_new_dict_entry(
            g_variant_new_string(keys[i]),
            g_variant_new_variant(
                g_hash_table_lookup(results->values, keys[i]))));
  return g_variant_ref_sink(g_variant_builder_end(&builder));
}

/* The same in the serialised form the spool stores, written at once. */
static GVariant *results_to_vardict(PstResults *results, char **keys,
                                    guint count) {
  g_autofree GVariant **values = g_new(GVariant *, count);
  for (guint i = 0; i < count; i++)
    values[i] = g_variant_get_normal_form(
        g_hash_table_lookup(results->values, keys[i]));
  GVariant *dict = pst_vardict_new((const char *const *)keys, values, count);
  for (guint i = 0; i < count; i++)
    g_variant_unref(values[i]);
  return dict;
}

GVariant *pst_results_to_variant(PstResults *results) {
  g_return_val_if_fail(results != NULL, NULL);
  g_mutex_lock(&results->lock);
  guint count = 0;
  g_autofree char **keys =
      results->values != NULL
          ? (char **)g_hash_table_get_keys_as_array(results->values, &count)
          : NULL;
  GVariant *dict = NULL;
  if (count > 0) {
    /* Sorted, so equal stores give equal queue files. */
    qsort(keys, count, sizeof(gpointer), key_compare);
    dict = keys_are_utf8(keys, count)
               ? results_to_vardict(results, keys, count)
               : results_to_variant_tree(results, keys, count);
  }
  g_mutex_unlock(&results->lock);
  return dict;
}

void pst_results_foreach(PstResults *results, GHFunc func, gpointer data) {
  g_return_if_fail(results != NULL && func != NULL);
  g_mutex_lock(&results->lock);
  if (results->values != NULL)
    g_hash_table_foreach(results->values, func, data);
  g_mutex_unlock(&results->lock);
}

void pst_results_clear(PstResults *results) {
  g_return_if_fail(results != NULL);
  g_mutex_lock(&results->lock);
  if (results->values != NULL)
    g_hash_table_remove_all(results->values);
  g_mutex_unlock(&results->lock);
}

static PstResults *server_results;

PstResults *pst_results_get_server(void) {
  if (g_once_init_enter(&server_results)) {
    PstResults *results = pst_results_new();
    g_once_init_leave(&server_results, results);
  }
  return server_results;
}

/* ------------------------------------------------------------------ */
/* The rules                                                           */
/* ------------------------------------------------------------------ */

static gboolean key_words_are_valid(const char *p) {
  gboolean word = FALSE;
  for (; *p != '\0'; p++) {
    if (g_ascii_isalnum(*p) || *p == '_' || *p == '-') {
      word = TRUE;
    } else if (*p == '.' && word) {
      word = FALSE;
    } else {
      return FALSE;
    }
  }
  return word;
}

gboolean pst_results_key_is_writable(const char *plugin_name, const char *key) {
  g_return_val_if_fail(plugin_name != NULL && key != NULL, FALSE);
  if (strlen(key) > PST_RESULT_KEY_MAX)
    return FALSE;
  /* "auth." belongs to the core, even for a plugin called "auth": each
   * plugin owns exactly one key there. */
  /* auth.user and auth.mechanism are the core's (SMTP AUTH), even for
   * plugins called "user" or "mechanism". */
  if (g_str_has_prefix(key, "auth."))
    return strcmp(key + 5, plugin_name) == 0 &&
           strcmp(plugin_name, "user") != 0 &&
           strcmp(plugin_name, "mechanism") != 0;
  gsize length = strlen(plugin_name);
  return strncmp(key, plugin_name, length) == 0 && key[length] == '.' &&
         key_words_are_valid(key + length + 1);
}

static const char *scope_to_string(PstScope scope) {
  static const char *const names[] = {"server", "session", "transaction",
                                      "recipient"};
  return (guint)scope < G_N_ELEMENTS(names) ? names[scope] : "invalid";
}

PstResults *pst_results_stores_lookup(const PstResultsStores *stores,
                                      PstScope scope, guint recipient_index) {
  if (scope == PST_SCOPE_SERVER)
    return pst_results_get_server();
  if (stores == NULL)
    return NULL;
  switch (scope) {
  case PST_SCOPE_SESSION:
    return stores->session;
  case PST_SCOPE_TRANSACTION:
    return stores->transaction;
  case PST_SCOPE_RECIPIENT:
    if (stores->recipients == NULL ||
        recipient_index >= stores->recipients->len)
      return NULL;
    return stores->recipients->pdata[recipient_index];
  default:
    return NULL;
  }
}

static PstResults *scope_store(PstCall *call, PstScope scope, guint index) {
  return pst_results_stores_lookup(call->stores, scope, index);
}

static void result_warn(PstCall *call, const char *key, const char *why) {
  g_autofree char *message =
      g_strdup_printf("result \"%s\" not written: %s", key, why);
  pst_hooks_log(G_LOG_LEVEL_WARNING, call->session_id, call->plugin->name,
                message);
}

void pst_pending_result_free(PstPendingResult *result) {
  g_free(result->key);
  g_variant_unref(result->value);
  g_free(result);
}

/* Buffers one checked write in the call. */
static gboolean result_buffer(PstCall *call, PstScope scope, guint index,
                              const char *key, GVariant *value,
                              gboolean append) {
  if (g_thread_self() == call->owner_thread &&
      scope_store(call, scope, index) == NULL) {
    result_warn(call, key, "there is no such scope now");
    return FALSE;
  }
  PstPendingResult *result = g_new0(PstPendingResult, 1);
  result->scope = scope;
  result->recipient_index = index;
  result->key = g_strdup(key);
  result->value = g_variant_ref(value);
  result->append = append;
  g_mutex_lock(&call->lock);
  gboolean open =
      call->state == PST_CALL_IN_HOOK || call->state == PST_CALL_PENDING;
  if (open) {
    if (call->results == NULL)
      call->results = g_ptr_array_new_with_free_func(
          (GDestroyNotify)pst_pending_result_free);
    g_ptr_array_add(call->results, g_steal_pointer(&result));
  }
  g_mutex_unlock(&call->lock);
  if (!open) {
    pst_pending_result_free(result);
    result_warn(call, key, "the call has ended");
  }
  return open;
}

static gboolean result_set(PstCall *call, PstScope scope, guint index,
                           const char *key, GVariant *floating,
                           gboolean append) {
  g_autoptr(GVariant) value = g_variant_ref_sink(floating);
  if ((guint)scope > PST_SCOPE_RECIPIENT) {
    result_warn(call, key, "invalid scope");
    return FALSE;
  }
  if (!pst_results_key_is_writable(call->plugin->name, key)) {
    result_warn(call, key,
                "a plugin writes only its own keys, \"NAME.word\", and "
                "\"auth.NAME\"");
    return FALSE;
  }
  /* RFC 8601 results: {"result": s, "reason": s (optional), ...}. */
  if (g_str_has_prefix(key, "auth.") &&
      !pst_auth_results_value_has_result(value)) {
    result_warn(call, key,
                "an auth.* result is an a{sv} with at least \"result\" (s)");
    return FALSE;
  }
  return result_buffer(call, scope, index, key, value, append);
}

/* `base` (nullable) with `element` appended, as a new floating "aa{sv}":
 * a list's elements are kept, a single a{sv} becomes the first one, any
 * other value is dropped. */
static GVariant *result_list_append(GVariant *base, GVariant *element) {
  GVariantBuilder builder;
  g_variant_builder_init(&builder, G_VARIANT_TYPE("aa{sv}"));
  if (base != NULL && g_variant_is_of_type(base, G_VARIANT_TYPE("aa{sv}"))) {
    GVariantIter iter;
    GVariant *child;
    g_variant_iter_init(&iter, base);
    while ((child = g_variant_iter_next_value(&iter)) != NULL) {
      g_variant_builder_add_value(&builder, child);
      g_variant_unref(child);
    }
  } else if (base != NULL && g_variant_is_of_type(base, G_VARIANT_TYPE_VARDICT)) {
    g_variant_builder_add_value(&builder, base);
  }
  g_variant_builder_add_value(&builder, element);
  return g_variant_builder_end(&builder);
}

/* Applies one write to what is stored under its key: a new reference. */
static GVariant *result_apply(GVariant *stored, const PstPendingResult *write) {
  if (!write->append)
    return g_variant_ref(write->value);
  return g_variant_ref_sink(result_list_append(stored, write->value));
}

/* The stored value with the call's buffered writes of `key` applied in
 * order, or NULL.  New ref. */
static GVariant *result_get(PstCall *call, PstScope scope, guint index,
                            const char *key) {
  /* Under the call's lock: a cancel (which unlinks the session's stores
   * before the session may free them) waits for this read. */
  g_mutex_lock(&call->lock);
  PstResults *store = scope_store(call, scope, index);
  GVariant *value = store ? pst_results_get(store, key) : NULL;
  for (guint i = 0; call->results != NULL && i < call->results->len; i++) {
    const PstPendingResult *write = g_ptr_array_index(call->results, i);
    if (write->scope != scope || strcmp(write->key, key) != 0 ||
        (scope == PST_SCOPE_RECIPIENT && write->recipient_index != index))
      continue;
    GVariant *next = result_apply(value, write);
    g_clear_pointer(&value, g_variant_unref);
    value = next;
  }
  g_mutex_unlock(&call->lock);
  return value;
}

void pst_call_apply_results(PstCall *call) {
  g_mutex_lock(&call->lock);
  g_autoptr(GPtrArray) results = g_steal_pointer(&call->results);
  g_mutex_unlock(&call->lock);
  for (guint i = 0; results && i < results->len; i++) {
    PstPendingResult *result = g_ptr_array_index(results, i);
    PstResults *store =
        scope_store(call, result->scope, result->recipient_index);
    if (store == NULL) {
      g_autofree char *why = g_strdup_printf("there is no %s scope now",
                                             scope_to_string(result->scope));
      result_warn(call, result->key, why);
      continue;
    }
    g_autoptr(GVariant) stored =
        result->append ? pst_results_get(store, result->key) : NULL;
    /* result_apply() gives a full reference, which pst_results_set()'s
     * ref_sink does not take over: drop ours after the store took its. */
    g_autoptr(GVariant) applied = result_apply(stored, result);
    pst_results_set(store, result->key, applied);
  }
}

/* ------------------------------------------------------------------ */
/* The SDK side                                                        */
/* ------------------------------------------------------------------ */

PST_API gboolean pst_result_set(PstCall *call, PstScope scope, const char *key,
                                GVariant *value) {
  g_return_val_if_fail(call != NULL && key != NULL && value != NULL, FALSE);
  if (scope == PST_SCOPE_RECIPIENT && call->stage != PST_STAGE_RCPT) {
    g_variant_unref(g_variant_ref_sink(value));
    result_warn(call, key,
                "PST_SCOPE_RECIPIENT names a recipient only at RCPT: use "
                "pst_result_set_recipient()");
    return FALSE;
  }
  return result_set(call, scope, call->recipient_index, key, value, FALSE);
}

PST_API GVariant *pst_result_get(PstCall *call, PstScope scope,
                                 const char *key) {
  g_return_val_if_fail(call != NULL && key != NULL, NULL);
  if ((guint)scope > PST_SCOPE_RECIPIENT ||
      (scope == PST_SCOPE_RECIPIENT && call->stage != PST_STAGE_RCPT))
    return NULL;
  return result_get(call, scope, call->recipient_index, key);
}

PST_API gboolean pst_result_set_recipient(PstCall *call, guint index,
                                          const char *key, GVariant *value) {
  g_return_val_if_fail(call != NULL && key != NULL && value != NULL, FALSE);
  return result_set(call, PST_SCOPE_RECIPIENT, index, key, value, FALSE);
}

PST_API GVariant *pst_result_get_recipient(PstCall *call, guint index,
                                           const char *key) {
  g_return_val_if_fail(call != NULL && key != NULL, NULL);
  return result_get(call, PST_SCOPE_RECIPIENT, index, key);
}

PST_API gboolean pst_result_append(PstCall *call, PstScope scope,
                                   const char *key, GVariant *value) {
  g_return_val_if_fail(call != NULL && key != NULL && value != NULL, FALSE);
  if (scope == PST_SCOPE_RECIPIENT && call->stage != PST_STAGE_RCPT) {
    g_variant_unref(g_variant_ref_sink(value));
    result_warn(call, key,
                "PST_SCOPE_RECIPIENT names a recipient only at RCPT");
    return FALSE;
  }
  g_autoptr(GVariant) element = g_variant_ref_sink(value);
  if (!g_variant_is_of_type(element, G_VARIANT_TYPE_VARDICT)) {
    result_warn(call, key, "pst_result_append() takes an a{sv}");
    return FALSE;
  }
  return result_set(call, scope, call->recipient_index, key, element, TRUE);
}

PST_API GVariant *pst_result_get_all(PstCall *call, PstScope scope,
                                     const char *key) {
  g_autoptr(GVariant) value = pst_result_get(call, scope, key);
  if (value == NULL)
    return NULL;
  if (g_variant_is_of_type(value, G_VARIANT_TYPE("aa{sv}")))
    return g_steal_pointer(&value);
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT))
    return g_variant_ref_sink(result_list_append(NULL, value));
  return NULL;
}
