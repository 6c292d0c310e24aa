/* noentry.c - a shared object that is not a plugin: it exports no
 * `postilion_plugin` descriptor, so the loader must refuse it naming the
 * file and the missing symbol.
 */
#include <postilion/plugin.h>

PST_API int noentry_something(void);

PST_API int noentry_something(void) {
  return 42;
}
