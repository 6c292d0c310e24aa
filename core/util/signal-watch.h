/* signal-watch.h - POSIX signals handled on a main loop, several through
 * one source.  See signal-watch.c.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Called on the main loop once for one or more deliveries of `signum`
 * since the last call (deliveries in between are merged, as GLib's
 * g_unix_signal_add() merges them). */
typedef void (*PstSignalFunc)(int signum, gpointer user_data);

/* Handles each of `signals` (n_signals of them, at most 8, none handled
 * before by this module) from now on: the default action no longer
 * applies, and `func` runs on the thread-default main context (one
 * source, a descriptor watch).  FALSE with an error when the signals
 * cannot be caught; none is caught then.  For the life of the process:
 * there is no way back. */
gboolean pst_signal_watch_add(const int *signals, guint n_signals,
                              PstSignalFunc func, gpointer user_data,
                              GError **error);

G_END_DECLS
