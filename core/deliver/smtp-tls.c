/* smtp-tls.c - the outbound SMTP client's TLS over the transport service
 * (see smtp-tls.h).
 *
 * Each transport call runs on the main context (main-call.h) while the
 * worker waits.  The handshake
 * is asynchronous on the main loop; its callback (always called once, the
 * transport's own timer bounding it) wakes the worker the same way.  The
 * TLS details (version, cipher, verification) are copied once after the
 * handshake, so reading them needs no main-thread call.
 *
 * Invariant: a PstSmtpTls is used by one worker at a time (the SMTP
 * connection that owns it), and the PstTransport inside is touched only
 * on the main thread.
 */
#include <postilion/transport.h>

#include "deliver/main-call.h"
#include "deliver/smtp-tls.h"

struct _PstSmtpTls {
  PstTransport *transport; /* owned; main thread only */
  char *version;           /* owned: "TLSv1.3" */
  char *cipher;            /* owned */
  guint bits;
  gboolean verified;
  char *verify_message; /* owned, nullable */
};

static gint tls_available; /* atomic */

void pst_smtp_tls_update_available(void) {
  g_atomic_int_set(&tls_available, pst_transport_tls_available());
}

gboolean pst_smtp_tls_available(void) {
  return g_atomic_int_get(&tls_available);
}

/* --- The handshake ---------------------------------------------------------
 */

typedef struct {
  PstMainCallWaiter waiter; /* finished by the handshake's callback */
  int fd;
  const char *server_name;
  gboolean verify;
  guint timeout_ms;
  PstSmtpTls *tls; /* out */
  GError *error;   /* out */
} Handshake;

static void copy_details(PstSmtpTls *tls) {
  const char *version = pst_transport_get_tls_version(tls->transport);
  /* "TLS1.3" -> "TLSv1.3", the name mail logs use. */
  tls->version = version != NULL && g_str_has_prefix(version, "TLS1")
                     ? g_strdup_printf("TLSv%s", version + 3)
                     : g_strdup(version != NULL ? version : "unknown");
  tls->cipher = g_strdup(pst_transport_get_tls_cipher(tls->transport));
  tls->bits = pst_transport_get_tls_cipher_bits(tls->transport);
  tls->verified = pst_transport_get_tls_verified(tls->transport);
  tls->verify_message =
      g_strdup(pst_transport_get_tls_verify_message(tls->transport));
}

static void handshake_done(GObject *source, GAsyncResult *result,
                           gpointer user_data) {
  Handshake *handshake = user_data;
  if (pst_transport_handshake_finish(handshake->tls->transport, result,
                                     &handshake->error))
    copy_details(handshake->tls);
  pst_main_call_finish(&handshake->waiter);
}

static void handshake_begin(gpointer data) {
  Handshake *handshake = data;
  PstTransport *transport = pst_transport_new_tls_client(
      handshake->fd, handshake->server_name,
      handshake->verify ? PST_TLS_VERIFY_PEER : PST_TLS_VERIFY_NONE,
      &handshake->error);
  if (transport == NULL) {
    pst_main_call_finish(&handshake->waiter);
    return;
  }
  handshake->tls = g_new0(PstSmtpTls, 1);
  handshake->tls->transport = transport;
  pst_transport_handshake_async(transport, handshake->timeout_ms, NULL,
                                handshake_done, handshake);
}

static void free_on_main(gpointer data) {
  PstSmtpTls *tls = data;
  if (tls->transport != NULL) {
    pst_transport_shutdown(tls->transport);
    pst_transport_unref(tls->transport);
  }
}

PstSmtpTls *pst_smtp_tls_start(int fd, const char *server_name, gboolean verify,
                               guint timeout_ms, GError **error) {
  Handshake handshake = {.fd = fd,
                         .server_name = server_name,
                         .verify = verify,
                         .timeout_ms = timeout_ms};
  pst_main_call_waiter_init(&handshake.waiter);
  /* The call finishes in handshake_done(), not when begin returns. */
  pst_main_call_run_async(&handshake.waiter, handshake_begin, &handshake);
  pst_main_call_waiter_clear(&handshake.waiter);
  if (handshake.error == NULL)
    return handshake.tls;
  g_propagate_error(error, handshake.error);
  if (handshake.tls != NULL)
    pst_smtp_tls_free(handshake.tls);
  return NULL;
}

/* --- Reading and writing ---------------------------------------------------
 */

typedef struct {
  PstSmtpTls *tls;
  gpointer buffer;
  gsize size;
  gboolean write;
  gssize result;
  GError *error;
} Transfer;

static void transfer_on_main(gpointer data) {
  Transfer *transfer = data;
  transfer->result =
      transfer->write
          ? pst_transport_write(transfer->tls->transport, transfer->buffer,
                                transfer->size, &transfer->error)
          : pst_transport_read(transfer->tls->transport, transfer->buffer,
                               transfer->size, &transfer->error);
}

static gssize transfer(PstSmtpTls *tls, gpointer buffer, gsize size,
                       gboolean write, GError **error) {
  Transfer transfer = {tls, buffer, size, write, -1, NULL};
  pst_main_call_run(transfer_on_main, &transfer);
  if (transfer.error != NULL)
    g_propagate_error(error, transfer.error);
  return transfer.result;
}

gssize pst_smtp_tls_read(PstSmtpTls *tls, void *buffer, gsize size,
                         GError **error) {
  return transfer(tls, buffer, size, FALSE, error);
}

gssize pst_smtp_tls_write(PstSmtpTls *tls, const void *buffer, gsize size,
                          GError **error) {
  return transfer(tls, (gpointer)buffer, size, TRUE, error);
}

typedef struct {
  PstSmtpTls *tls;
  GIOCondition condition;
  gboolean pending;
} State;

static void state_on_main(gpointer data) {
  State *state = data;
  state->condition = pst_transport_get_condition(state->tls->transport);
  state->pending = pst_transport_has_pending(state->tls->transport);
}

GIOCondition pst_smtp_tls_get_condition(PstSmtpTls *tls) {
  State state = {tls, 0, FALSE};
  pst_main_call_run(state_on_main, &state);
  return state.condition;
}

gboolean pst_smtp_tls_has_pending(PstSmtpTls *tls) {
  State state = {tls, 0, FALSE};
  pst_main_call_run(state_on_main, &state);
  return state.pending;
}

const char *pst_smtp_tls_get_version(PstSmtpTls *tls) {
  return tls->version;
}

const char *pst_smtp_tls_get_cipher(PstSmtpTls *tls) {
  return tls->cipher != NULL ? tls->cipher : "unknown";
}

guint pst_smtp_tls_get_bits(PstSmtpTls *tls) {
  return tls->bits;
}

gboolean pst_smtp_tls_get_verified(PstSmtpTls *tls) {
  return tls->verified;
}

const char *pst_smtp_tls_get_verify_message(PstSmtpTls *tls) {
  return tls->verify_message;
}

void pst_smtp_tls_free(PstSmtpTls *tls) {
  if (tls == NULL)
    return;
  pst_main_call_run(free_on_main, tls);
  g_free(tls->version);
  g_free(tls->cipher);
  g_free(tls->verify_message);
  g_free(tls);
}
