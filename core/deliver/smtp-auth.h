/* smtp-auth.h - the outbound SMTP client's SASL side (AUTH to a
 * relayhost), over the SASL service's client (<postilion/sasl.h>).
 *
 * The SASL client API is main-thread only: each function here runs it on
 * the main context (main-call.h) for the calling worker.  The lines
 * returned hold the password in base64: never log them.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PstSmtpAuth PstSmtpAuth;

/* Whether a loaded plugin provides the SASL client, as seen from the main
 * thread when the configuration was (re)loaded. */
void pst_smtp_auth_update_available(void);
gboolean pst_smtp_auth_available(void);

PstSmtpAuth *pst_smtp_auth_new(const char *server_name, const char *user,
                               const char *password, gboolean encrypted,
                               GError **error);
/* "AUTH PLAIN ..." for the server's AUTH keyword, or NULL with `error`. */
char *pst_smtp_auth_start(PstSmtpAuth *auth, const char *mechanisms,
                          GError **error);
/* The answer to a 334's text, or NULL with `error` (then send "*"). */
char *pst_smtp_auth_step(PstSmtpAuth *auth, const char *challenge,
                         GError **error);
/* The chosen mechanism ("PLAIN"), for the log. */
const char *pst_smtp_auth_get_mechanism(PstSmtpAuth *auth);
void pst_smtp_auth_free(PstSmtpAuth *auth);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstSmtpAuth, pst_smtp_auth_free)

G_END_DECLS
