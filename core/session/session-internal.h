/* session-internal.h - what the rest of the core may ask of a session.
 *
 * The SDK's pst_session_* accessors (declared in <postilion/plugin.h>) are
 * implemented by the session module; this header adds what the hooks
 * module needs beyond them.  Main thread only.
 */
#pragma once

#include <postilion/plugin.h>

#include "hooks/hooks.h"

G_BEGIN_DECLS

/* The results store for `scope`.  PST_SCOPE_RECIPIENT needs the index of
 * an accepted (or being accepted) recipient; NULL when there is no such
 * scope now (no transaction, index out of range). */
PstResults *pst_session_get_results(PstSession *session, PstScope scope,
                                    guint recipient_index);

G_END_DECLS
