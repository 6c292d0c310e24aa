/* smtp-deliver.h - delivering one message to the recipients of one
 * destination by SMTP: routing, the hosts in turn, per-recipient results,
 * connection reuse and the per-destination concurrency limit.
 *
 * Called by delivery-job.c on a worker thread, once per destination (a
 * recipient domain, or every remote recipient when a relayhost is set).
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "queue/envelope.h"
#include "util/credentials.h"

G_BEGIN_DECLS

typedef struct {
  const char *address; /* in: the recipient, borrowed */
  guint notify;        /* in: RFC 3461 NOTIFY bits to pass on, 0 = none */
  const char *orcpt;   /* in, nullable: "rfc822;a@b" to pass on, borrowed */
  gboolean dsn_passed; /* out: accepted by a server that offered DSN */
  char *reply;         /* out, owned: "250 2.0.0 ...", "550 5.1.1 ..." */
  char *relay;         /* out, owned: "mx.example[192.0.2.1]:25" or "none" */
  char *tls;           /* out, owned, nullable: "none", "TLSv1.3" */
} PstSmtpDelivery;

void pst_smtp_delivery_clear(PstSmtpDelivery *delivery);

/* Delivers `content` to `recipients` (all of domain `domain`; or, with
 * `nexthop` (nullable, relayhost syntax: a DELIVERY route), via that host
 * whatever their domain), logging
 * in with `credentials` (nullable) where they name the host.  Every
 * recipient gets a reply: 2xx delivered, 4xx try later, 5xx bounce.
 * Blocking; worker threads only. */
void pst_smtp_deliver(const PstConfig *config,
                      const PstCredentials *credentials, const char *queue_id,
                      const PstEnvelope *envelope, GBytes *content,
                      const char *domain, const char *nexthop,
                      PstSmtpDelivery *recipients, guint count);

/* Closes cached connections idle for too long (a main-loop timer of the
 * queue manager), or all of them (at shutdown). */
void pst_smtp_cache_expire(gboolean all);

G_END_DECLS
