/* delivery-transport.h - how a message reaches its targets: the delivery
 * transports behind one vtable, and the choice of one by the route.
 *
 * A PstDeliveryTransport delivers a batch (one message, the targets that
 * go the same way: one Maildir transport run, one LMTP session, one SMTP
 * destination) and fills each item's result.  Transports that block on
 * the disk (maildir, system-user) say so and run on a delivery worker
 * thread; the network ones (lmtp, smtp) are non-blocking state machines
 * on the main loop.  Either way `deliver` calls `done` exactly once
 * (blocking ones before they return).  A transport reads the content a
 * piece at a time (delivery-content.h) and makes a delivery final only
 * after the reader's end said it was intact; when it was not, the
 * targets are deferred and `content_error` says why.
 *
 * pst_delivery_transport_choose() is the one place that maps a target and
 * its route (the DELIVERY stage's choice, or the default) to a transport
 * and a batch key; delivery-job.c groups targets by that key.
 */
#pragma once

#include <gio/gio.h>

#include "config/config.h"
#include "deliver/delivery-content.h"
#include "deliver/route-stage.h"
#include "tables/tables.h"
#include "generation/generation.h"
#include "queue/envelope.h"
#include "queue/state-journal.h"

G_BEGIN_DECLS

/* One target's result, as the journal and the log keep it. */
typedef struct {
  PstRecipientStatus status; /* DELIVERED, DEFERRED or BOUNCED */
  char *reply;               /* owned: "250 2.0.0 ...", "451 4.3.0 ..." */
  char *relay; /* owned: "maildir", "lmtp", "none", "mx[192.0.2.1]:25" */
  char *tls;   /* owned, nullable: SMTP only, "none" or the version */
  gboolean dsn_passed; /* a DSN-capable server took the DSN request */
} PstDeliveryResult;

void pst_delivery_result_set(PstDeliveryResult *result,
                             PstRecipientStatus status, const char *relay,
                             char *reply);
/* The status a server's reply means: 2xx delivered, 5xx bounced, else
 * deferred. */
void pst_delivery_result_set_reply(PstDeliveryResult *result, const char *relay,
                                   char *reply);
void pst_delivery_result_clear(PstDeliveryResult *result);

typedef struct {
  const PstTarget *target; /* borrowed */
  /* borrowed, nullable: the envelope recipient whose DSN parameters go
   * with this target (not for alias expansions, RFC 3461 6.2.7) */
  const PstEnvelopeRecipient *dsn_origin;
  PstDeliveryResult *result; /* borrowed: the transport fills it */
} PstDeliveryItem;

typedef struct _PstDeliveryTransport PstDeliveryTransport;

/* One message to the targets of one transport and destination. */
typedef struct {
  const PstDeliveryTransport *transport;
  const char *queue_id;        /* borrowed */
  PstDeliverTables *tables;    /* borrowed: the configuration, credentials */
  PstGeneration *generation;   /* borrowed: the job's (TLS, SASL client) */
  const PstEnvelope *envelope; /* borrowed */
  const PstDeliveryContent *content; /* borrowed: read it in pieces */
  /* owned, nullable: set by the transport when the content turned out
   * not to be as stored while it was read (no target got it) */
  GError *content_error;
  char *domain;  /* owned, nullable: SMTP to this domain's MX hosts */
  char *nexthop; /* owned, nullable: SMTP via this host (a route) */
  GArray *items; /* owned, of PstDeliveryItem */
} PstDeliveryBatch;

void pst_delivery_batch_free(PstDeliveryBatch *batch);

typedef void (*PstDeliveryBatchFunc)(PstDeliveryBatch *batch,
                                     gpointer user_data);

struct _PstDeliveryTransport {
  const char *name;
  /* TRUE: deliver() blocks on the disk (worker threads only); FALSE: it
   * starts non-blocking work on the main loop (main thread only). */
  gboolean blocking;
  void (*deliver)(PstDeliveryBatch *batch, PstDeliveryBatchFunc done,
                  gpointer user_data);
};

extern const PstDeliveryTransport pst_delivery_transport_maildir;
extern const PstDeliveryTransport pst_delivery_transport_system_user;
extern const PstDeliveryTransport pst_delivery_transport_lmtp;
extern const PstDeliveryTransport pst_delivery_transport_smtp;

/* The transport for `target` by `route`, and the key of its batch
 * (targets with the same key share one batch); NULL when no delivery
 * method fits (a virtual mailbox without maildir_root or lmtp). */
const PstDeliveryTransport *
pst_delivery_transport_choose(const PstConfig *config, const PstTarget *target,
                              const PstRouteChoice *route, char **key_r);

/* The state SMTP deliveries share (smtp-deliver.c): idle connections by
 * host, connections and waiting deliveries per destination.  Made once by
 * the daemon, carried by every generation; main thread only. */
PstSmtpCache *pst_smtp_cache_new(void);
/* Closes every idle connection; no delivery may be under way. */
void pst_smtp_cache_free(PstSmtpCache *cache);
/* Closes cached outbound SMTP connections idle for too long (a main-loop
 * timer of the queue manager), or all of them (at shutdown). */
void pst_smtp_cache_expire(PstSmtpCache *cache, gboolean all);

G_END_DECLS
