/* hooks-names.c - names of stages and verdicts, and which verdict fits
 * which stage.
 *
 * pst_stage_to_string() and pst_verdict_to_string() are SDK functions
 * (plugins log with them); the parsers serve the configuration module
 * (on_timeout = tempfail) and `postilion plugins`.  Values outside the
 * enums come from plugins and are never trusted: they name themselves
 * "invalid" rather than index past a table.
 */
#define G_LOG_DOMAIN "postilion"

#include <glib.h>

#include "hooks/hooks.h"

static const char *const stage_names[PST_STAGE_COUNT] = {
    [PST_STAGE_CONNECT] = "connect",
    [PST_STAGE_HELO] = "helo",
    [PST_STAGE_AUTH] = "auth",
    [PST_STAGE_MAIL] = "mail",
    [PST_STAGE_RCPT] = "rcpt",
    [PST_STAGE_DATA] = "data",
    [PST_STAGE_EOM] = "eom",
    [PST_STAGE_QUEUED] = "queued",
    [PST_STAGE_DISCONNECT] = "disconnect",
    [PST_STAGE_DELIVERY] = "delivery",
};

static const char *const verdict_names[] = {
    [PST_VERDICT_CONTINUE] = "continue",
    [PST_VERDICT_ACCEPT] = "accept",
    [PST_VERDICT_REJECT] = "reject",
    [PST_VERDICT_TEMPFAIL] = "tempfail",
    [PST_VERDICT_DISCARD] = "discard",
    [PST_VERDICT_QUARANTINE] = "quarantine",
    [PST_VERDICT_PENDING] = "pending",
};

PST_API const char *pst_stage_to_string(PstStage stage) {
  if ((guint)stage >= PST_STAGE_COUNT)
    return "invalid";
  return stage_names[stage];
}

PST_API const char *pst_verdict_to_string(PstVerdict verdict) {
  if ((guint)verdict >= G_N_ELEMENTS(verdict_names))
    return "invalid";
  return verdict_names[verdict];
}

gboolean pst_stage_is_event(PstStage stage) {
  return stage == PST_STAGE_QUEUED || stage == PST_STAGE_DISCONNECT;
}

gboolean pst_stage_from_string(const char *name, PstStage *stage_r) {
  g_return_val_if_fail(name != NULL, FALSE);
  for (guint i = 0; i < PST_STAGE_COUNT; i++) {
    if (g_ascii_strcasecmp(name, stage_names[i]) == 0) {
      *stage_r = (PstStage)i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean pst_verdict_from_string(const char *name, PstVerdict *verdict_r) {
  g_return_val_if_fail(name != NULL, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS(verdict_names); i++) {
    if (g_ascii_strcasecmp(name, verdict_names[i]) == 0) {
      *verdict_r = (PstVerdict)i;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean pst_verdict_is_valid_at(PstVerdict verdict, PstStage stage) {
  switch (verdict) {
  case PST_VERDICT_CONTINUE:
  case PST_VERDICT_ACCEPT:
  case PST_VERDICT_REJECT:
  case PST_VERDICT_TEMPFAIL:
    return TRUE;
  case PST_VERDICT_DISCARD:
    /* Dropping silently needs something to drop: a recipient or the
     * message. */
    return stage == PST_STAGE_RCPT || stage == PST_STAGE_EOM;
  case PST_VERDICT_QUARANTINE:
    return stage == PST_STAGE_EOM;
  case PST_VERDICT_PENDING:
  default:
    return FALSE;
  }
}

G_DEFINE_QUARK(pst - plugin - error - quark, pst_plugin_error)
