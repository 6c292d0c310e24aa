/* credentials.h - the relayhost credentials file of
 * `[delivery] relayhost_credentials` (issue 8), with no SMTP knowledge.
 *
 *   # comment
 *   [smtp.example.net]:587   alice@example.org:pass word
 *   [2001:db8::25]:25        relay-user:s3cret
 *
 * One entry per line: `[HOST]:PORT`, white space, then `USER:PASSWORD`
 * up to the end of the line (the password may hold spaces and colons;
 * trailing white space is dropped; the user may not hold a colon).  Hosts
 * compare ignoring case.  Blank lines and lines starting with '#' are
 * skipped.  A malformed line, a host listed twice or an empty user or
 * password fails, naming the file and line but never the password.
 *
 * The outbound SMTP client (core/deliver) loads the file once per
 * configuration and looks the relayhost up before AUTH; the SASL client
 * of <postilion/sasl.h> then takes the user and password.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PstCredentials PstCredentials;

/* Parses a file's text; `origin` names it in errors. */
PstCredentials *pst_credentials_parse(const char *text, gsize length,
                                      const char *origin, GError **error);
/* Reads and parses `path`.  Refuses a file that is not a regular file, or
 * that users other than its owner and group may read or write, or that
 * its group may write (mode & 0027): "chmod 600 FILE" (or 640 for a
 * group of the daemon's) is the fix the error names. */
PstCredentials *pst_credentials_load(const char *path, GError **error);
/* The user and password for `host` (without brackets, any case) and
 * `port`; FALSE when there is no entry.  The strings belong to
 * `credentials`. */
gboolean pst_credentials_lookup(const PstCredentials *credentials,
                                const char *host, guint16 port,
                                const char **user_r, const char **password_r);
/* The number of entries. */
guint pst_credentials_count(const PstCredentials *credentials);
/* Wipes the passwords and frees.  NULL is ignored. */
void pst_credentials_free(PstCredentials *credentials);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PstCredentials, pst_credentials_free)

G_END_DECLS
