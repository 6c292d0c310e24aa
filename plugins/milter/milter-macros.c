/* milter-macros.c - the values of the Sendmail macros Postfix sends to
 * milters, computed from the session and the call.
 *
 * Names and values follow Postfix's smtpd_milter.c, so a milter
 * configured for Postfix reads the same things: j and {daemon_name} are
 * our host name, _ is "NAME [ADDRESS]" ("unknown" without a verified
 * name), {client_*}, {daemon_addr}/{daemon_port}, the TLS facts, the SASL
 * identity and mechanism, {mail_addr}, {rcpt_addr} and their host/mailer companions, i
 * the queue id.  A name whose value is not known at this point (i before
 * the message exists: our queue id is made at DATA) is left out, as
 * Postfix leaves out unknown names.  Called by milter.c only.
 */
#include <string.h>

#include "milter.h"

#ifndef MILTER_MTA_VERSION
#define MILTER_MTA_VERSION "Postilion"
#endif

typedef char *(*MacroFunc)(const MilterMacroContext *context,
                           PstSession *session);

static char *macro_hostname(const MilterMacroContext *context,
                            PstSession *session) {
  return g_strdup(context->hostname);
}

static char *macro_version(const MilterMacroContext *context,
                           PstSession *session) {
  return g_strdup(MILTER_MTA_VERSION);
}

static char *macro_client_and_address(const MilterMacroContext *context,
                                      PstSession *session) {
  const char *name = pst_session_get_client_hostname(session);
  return g_strdup_printf("%s [%s]", name != NULL ? name : "unknown",
                         pst_session_get_client_address(session));
}

static char *macro_client_addr(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup(pst_session_get_client_address(session));
}

static char *macro_client_name(const MilterMacroContext *context,
                               PstSession *session) {
  const char *name = pst_session_get_client_hostname(session);
  return g_strdup(name != NULL ? name : "unknown");
}

static char *macro_client_port(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup_printf("%u", pst_session_get_client_port(session));
}

static char *macro_daemon_addr(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup(pst_session_get_local_address(session));
}

static char *macro_daemon_port(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup_printf("%u", pst_session_get_local_port(session));
}

static char *macro_tls_version(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup(pst_session_get_tls_version(session));
}

static char *macro_cipher(const MilterMacroContext *context,
                          PstSession *session) {
  return g_strdup(pst_session_get_tls_cipher(session));
}

static char *macro_cipher_bits(const MilterMacroContext *context,
                               PstSession *session) {
  if (!pst_session_is_tls(session))
    return NULL;
  return g_strdup_printf("%u", pst_session_get_tls_cipher_bits(session));
}

static char *macro_auth_authen(const MilterMacroContext *context,
                               PstSession *session) {
  return g_strdup(pst_session_get_auth_user(session));
}

/* The SASL mechanism, from the core's record of SMTP AUTH
 * ("auth.mechanism", session scope), as Postfix's {auth_type}. */
static char *macro_auth_type(const MilterMacroContext *context,
                             PstSession *session) {
  if (pst_session_get_auth_user(session) == NULL)
    return NULL;
  g_autoptr(GVariant) mechanism =
      pst_result_get(context->call, PST_SCOPE_SESSION, "auth.mechanism");
  if (mechanism == NULL ||
      !g_variant_is_of_type(mechanism, G_VARIANT_TYPE_STRING))
    return NULL;
  return g_variant_dup_string(mechanism, NULL);
}

/* The sender as the message has it at EOM, else as MAIL gave it. */
static const char *current_sender(const MilterMacroContext *context,
                                  PstSession *session) {
  PstMessage *message = pst_call_get_message(context->call);
  if (message != NULL)
    return pst_message_get_sender(message);
  if (pst_call_get_stage(context->call) == PST_STAGE_MAIL)
    return pst_call_get_argument(context->call);
  return pst_session_get_sender(session);
}

static char *macro_mail_addr(const MilterMacroContext *context,
                             PstSession *session) {
  return g_strdup(current_sender(context, session));
}

/* The domain of `address`, or NULL. */
static const char *address_domain(const char *address) {
  const char *at = address != NULL ? strrchr(address, '@') : NULL;
  return at != NULL ? at + 1 : NULL;
}

static char *macro_mail_host(const MilterMacroContext *context,
                             PstSession *session) {
  return g_strdup(address_domain(current_sender(context, session)));
}

/* Postfix's mailer: "local" for our domains, "smtp" for the rest. */
static char *mailer_of(PstSession *session, const char *address) {
  const char *domain = address_domain(address);
  if (address == NULL)
    return NULL;
  if (domain == NULL || pst_session_is_local_domain(session, domain))
    return g_strdup("local");
  return g_strdup("smtp");
}

static char *macro_mail_mailer(const MilterMacroContext *context,
                               PstSession *session) {
  return mailer_of(session, current_sender(context, session));
}

static const char *current_recipient(const MilterMacroContext *context) {
  if (pst_call_get_stage(context->call) != PST_STAGE_RCPT)
    return NULL;
  return pst_call_get_argument(context->call);
}

static char *macro_rcpt_addr(const MilterMacroContext *context,
                             PstSession *session) {
  return g_strdup(current_recipient(context));
}

static char *macro_rcpt_host(const MilterMacroContext *context,
                             PstSession *session) {
  return g_strdup(address_domain(current_recipient(context)));
}

static char *macro_rcpt_mailer(const MilterMacroContext *context,
                               PstSession *session) {
  return mailer_of(session, current_recipient(context));
}

static char *macro_queue_id(const MilterMacroContext *context,
                            PstSession *session) {
  PstMessage *message = pst_call_get_message(context->call);
  return message != NULL ? g_strdup(pst_message_get_id(message)) : NULL;
}

static const struct {
  const char *name;
  MacroFunc func;
} macro_table[] = {
    {"j", macro_hostname},
    {"{daemon_name}", macro_hostname},
    {"v", macro_version},
    {"_", macro_client_and_address},
    {"{client_addr}", macro_client_addr},
    {"{client_name}", macro_client_name},
    {"{client_ptr}", macro_client_name},
    {"{client_port}", macro_client_port},
    {"{daemon_addr}", macro_daemon_addr},
    {"{daemon_port}", macro_daemon_port},
    {"{if_addr}", macro_daemon_addr},
    {"{tls_version}", macro_tls_version},
    {"{cipher}", macro_cipher},
    {"{cipher_bits}", macro_cipher_bits},
    {"{auth_type}", macro_auth_type},
    {"{auth_authen}", macro_auth_authen},
    {"{mail_addr}", macro_mail_addr},
    {"{mail_host}", macro_mail_host},
    {"{mail_mailer}", macro_mail_mailer},
    {"{rcpt_addr}", macro_rcpt_addr},
    {"{rcpt_host}", macro_rcpt_host},
    {"{rcpt_mailer}", macro_rcpt_mailer},
    {"i", macro_queue_id},
};

static char *macro_value(const MilterMacroContext *context, const char *name) {
  PstSession *session = pst_call_get_session(context->call);
  if (session == NULL)
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS(macro_table); i++) {
    if (strcmp(macro_table[i].name, name) == 0)
      return macro_table[i].func(context, session);
  }
  /* A single letter may be written in braces too: {j} = j. */
  gsize length = strlen(name);
  if (length == 3 && name[0] == '{' && name[2] == '}') {
    char letter[2] = {name[1], '\0'};
    return macro_value(context, letter);
  }
  return NULL;
}

void milter_macros_collect(const MilterMacroContext *context,
                           const char *const *names, GPtrArray *pairs) {
  for (guint i = 0; names != NULL && names[i] != NULL; i++) {
    char *value = macro_value(context, names[i]);
    if (value == NULL)
      continue;
    g_ptr_array_add(pairs, g_strdup(names[i]));
    g_ptr_array_add(pairs, value);
  }
}
