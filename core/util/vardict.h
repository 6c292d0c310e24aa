/* vardict.h - an a{sv} written straight in GVariant's serialised normal
 * form (see vardict.c).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A new (non-floating) a{sv} of `count` entries in this order: the same
 * value, octet for octet, as GLib's serialisation of the dictionary built
 * from them.  Each key is valid UTF-8; each value is in normal form
 * (g_variant_get_normal_form()), so the result is too. */
GVariant *pst_vardict_new(const char *const *keys, GVariant *const *values,
                          gsize count);

G_END_DECLS
