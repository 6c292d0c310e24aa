/* pst-local-helper-probe - a test tool: starts the real privileged
 * delivery helper (local-helper.c) as root, drops to `nobody` as the
 * daemon does, and sends it one request per user named on the command
 * line, bypassing the daemon's own recipient checks, so that the tests see
 * what the helper itself refuses (tests/e2e/test_containment.py).
 *
 * Usage: pst-local-helper-probe USER...; prints one line per user,
 * "USER delivered PATH" or "USER refused MESSAGE"; exit 0 unless the
 * helper could not start.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "deliver/local-helper.h"

static gboolean probe_drop_privileges(void) {
  struct passwd *nobody = getpwnam("nobody");
  return nobody != NULL && setgroups(0, NULL) == 0 &&
         setgid(nobody->pw_gid) == 0 && setuid(nobody->pw_uid) == 0;
}

/* The probe's message, in one piece (a PstMaildirReadFunc). */
static gboolean probe_read(gpointer source, const guint8 **data_r,
                           gsize *length_r, GError **error) {
  const char **text = source;
  *data_r = (const guint8 *)*text;
  *length_r = strlen(*text);
  *text += *length_r;
  return TRUE;
}

int main(int argc, char **argv) {
  g_autoptr(GError) error = NULL;
  if (geteuid() != 0) {
    g_printerr("pst-local-helper-probe: must start as root\n");
    return 2;
  }
  if (!pst_local_helper_start(&error) || !probe_drop_privileges()) {
    g_printerr("pst-local-helper-probe: %s\n",
               error != NULL ? error->message : "cannot drop privileges");
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    const char *text = "Subject: probe\r\n\r\nprobe\r\n";
    g_autofree char *path = NULL;
    g_autoptr(GError) refused = NULL;
    if (pst_local_helper_deliver(argv[i], "", probe_read, &text, &path,
                                 &refused))
      printf("%s delivered %s\n", argv[i], path);
    else
      printf("%s refused %s\n", argv[i], refused->message);
  }
  pst_local_helper_stop();
  return 0;
}
