/* transport-local.c - the delivery transports that write mailboxes on
 * this host: `maildir` (virtual mailboxes under [delivery] maildir_root)
 * and `system-user` (a system user's ~/Maildir, directly when we run as
 * that user, else through the privileged helper, local-helper.h).
 *
 * Both block on the disk (write, fsync, rename, fsync: maildir.c) and run
 * on a delivery worker thread, one target after another, each reading
 * the content anew a piece at a time (delivery-content.h).  Content found
 * corrupt on the way delivers nothing and is the batch's content_error.  A
 * failure to write defers the target ("451 4.3.0 why", the reason naming the
 * file; delivery-job.c keeps file names out of DSNs); an unknown system user
 * bounces.  A success reply never names a file (it may reach an outside
 * sender in a success DSN); the file is in the debug log.
 */
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "deliver/delivery-transport.h"
#include "deliver/local-helper.h"
#include "deliver/maildir.h"
#include "queue/content-reader.h"

#define REPLY_DELIVERED "250 2.0.0 delivered to mailbox"

/* A local part as one safe path component: bytes outside a conservative
 * set, and a leading dot, become %XX, so "../x" or "a/b" stay inside. */
static char *safe_component(const char *text) {
  GString *out = g_string_new(NULL);
  for (const char *p = text; *p; p++) {
    guchar c = (guchar)*p;
    if (g_ascii_isalnum(c) || (strchr("!#$&'*+-=?^_`{|}~", c) && c) ||
        (c == '.' && p != text))
      g_string_append_c(out, (char)c);
    else
      g_string_append_printf(out, "%%%02X", c);
  }
  return g_string_free(out, FALSE);
}

static char *virtual_maildir(const PstConfig *config, const char *address) {
  const char *at = strrchr(address, '@');
  g_autofree char *local = g_strndup(address, at - address);
  g_autofree char *safe_local = safe_component(local);
  g_autofree char *safe_domain = safe_component(at + 1);
  return g_build_filename(config->delivery.maildir_root, safe_domain,
                          safe_local, NULL);
}

static char *prelude_of(const PstDeliveryBatch *batch,
                        const PstTarget *target) {
  return g_strdup_printf("Return-Path: <%s>\r\nDelivered-To: %s\r\n",
                         batch->envelope->sender, target->address);
}

/* A Maildir write's result: delivered (the file in the debug log only),
 * or deferred with the reason; content that was not as stored is noted
 * for the job (it moves the message to corrupt/). */
static void result_of_write(PstDeliveryBatch *batch, const PstTarget *target,
                            gboolean written, const char *path,
                            const GError *error, PstDeliveryResult *result) {
  if (!written) {
    pst_delivery_result_set(result, PST_RECIPIENT_DEFERRED, "maildir",
                            g_strdup_printf("451 4.3.0 %s", error->message));
    if (error->domain == PST_SPOOL_ERROR && batch->content_error == NULL)
      batch->content_error = g_error_copy(error);
    return;
  }
  pst_delivery_result_set(result, PST_RECIPIENT_DELIVERED, "maildir",
                          g_strdup(REPLY_DELIVERED));
  g_debug("%s: to=<%s>: written to %s", batch->queue_id, target->address, path);
}

/* The content reader as a PstMaildirReadFunc. */
static gboolean content_read(gpointer reader, const guint8 **data_r,
                             gsize *length_r, GError **error) {
  return pst_content_reader_next(reader, data_r, length_r, error);
}

static void deliver_maildir(PstDeliveryBatch *batch, const char *maildir,
                            const PstTarget *target,
                            PstDeliveryResult *result) {
  g_autofree char *prelude = prelude_of(batch, target);
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autoptr(PstContentReader) reader =
      pst_delivery_content_open(batch->content);
  gboolean written = pst_maildir_deliver(maildir, prelude, content_read, reader,
                                         &path, &error);
  result_of_write(batch, target, written, path, error, result);
}

/* Another user's ~/Maildir: written by the privileged helper, as them. */
static void deliver_through_helper(PstDeliveryBatch *batch,
                                   const PstTarget *target,
                                   PstDeliveryResult *result) {
  if (!pst_local_helper_available()) {
    pst_delivery_result_set(
        result, PST_RECIPIENT_DEFERRED, "maildir",
        g_strdup_printf("451 4.3.0 delivery as user %s needs the "
                        "privileged delivery helper (postiliond "
                        "started as root with system_users = true)",
                        target->user));
    return;
  }
  g_autofree char *prelude = prelude_of(batch, target);
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autoptr(PstContentReader) reader =
      pst_delivery_content_open(batch->content);
  gboolean written = pst_local_helper_deliver(
      target->user, prelude, content_read, reader, &path, &error);
  result_of_write(batch, target, written, path, error, result);
}

static void deliver_system(PstDeliveryBatch *batch, const PstTarget *target,
                           PstDeliveryResult *result) {
  struct passwd entry, *found = NULL;
  char buffer[4096];
  if (getpwnam_r(target->user, &entry, buffer, sizeof buffer, &found) != 0 ||
      found == NULL) {
    pst_delivery_result_set(
        result, PST_RECIPIENT_BOUNCED, "maildir",
        g_strdup_printf("550 5.1.1 %s: User unknown", target->address));
    return;
  }
  if (geteuid() != found->pw_uid) {
    deliver_through_helper(batch, target, result);
    return;
  }
  g_autofree char *maildir = g_build_filename(found->pw_dir, "Maildir", NULL);
  deliver_maildir(batch, maildir, target, result);
}

static void maildir_deliver(PstDeliveryBatch *batch, PstDeliveryBatchFunc done,
                            gpointer user_data) {
  const PstConfig *config = pst_deliver_tables_get_config(batch->tables);
  for (guint i = 0; i < batch->items->len; i++) {
    PstDeliveryItem *item = &g_array_index(batch->items, PstDeliveryItem, i);
    g_autofree char *maildir = virtual_maildir(config, item->target->address);
    deliver_maildir(batch, maildir, item->target, item->result);
  }
  done(batch, user_data);
}

static void system_user_deliver(PstDeliveryBatch *batch,
                                PstDeliveryBatchFunc done, gpointer user_data) {
  for (guint i = 0; i < batch->items->len; i++) {
    PstDeliveryItem *item = &g_array_index(batch->items, PstDeliveryItem, i);
    deliver_system(batch, item->target, item->result);
  }
  done(batch, user_data);
}

const PstDeliveryTransport pst_delivery_transport_maildir = {
    .name = "maildir", .blocking = TRUE, .deliver = maildir_deliver};

const PstDeliveryTransport pst_delivery_transport_system_user = {
    .name = "system-user", .blocking = TRUE, .deliver = system_user_deliver};
