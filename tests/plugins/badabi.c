/* badabi.c - a plugin the loader must refuse before running any of its
 * code: built as `badabi` (ABI major 99) and `badminor` (ABI 1.99, newer
 * than any daemon).  Its init() would print a line the tests look for, to
 * prove it never runs.
 */
#include <stdio.h>

#include <postilion/plugin.h>

#ifndef BAD_NAME
#define BAD_NAME "badabi"
#endif
#ifndef BAD_MAJOR
#define BAD_MAJOR 99
#endif
#ifndef BAD_MINOR
#define BAD_MINOR 0
#endif

static gboolean bad_init(PstPlugin *plugin, GKeyFile *config, const char *group,
                         GError **error) {
  fprintf(stderr, "%s: init ran (it must not)\n", BAD_NAME);
  return TRUE;
}

/* Spelled out rather than POSTILION_PLUGIN_DEFINE(), to lie about the ABI. */
PST_API const PstPluginDescriptor postilion_plugin = {
    .struct_size = sizeof(PstPluginDescriptor),
    .abi_major = BAD_MAJOR,
    .abi_minor = BAD_MINOR,
    .name = BAD_NAME,
    .version = "1.0",
    .description = "Test plugin built for another ABI",
    .init = bad_init,
};
