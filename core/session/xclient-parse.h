/* xclient-parse.h - the pure parser of the XCLIENT command's argument
 * (Postfix's XCLIENT_README); session-xclient.c applies the result.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Which attributes an XCLIENT command set. */
typedef enum {
  PST_XCLIENT_NAME = 1 << 0,
  PST_XCLIENT_ADDR = 1 << 1,
  PST_XCLIENT_PORT = 1 << 2,
  PST_XCLIENT_PROTO = 1 << 3,
  PST_XCLIENT_HELO = 1 << 4,
  PST_XCLIENT_LOGIN = 1 << 5,
  PST_XCLIENT_DESTADDR = 1 << 6,
  PST_XCLIENT_DESTPORT = 1 << 7,
} PstXclientFlags;

/* A parsed XCLIENT argument.  A flag set with a NULL string (or port 0)
 * means the value was [UNAVAILABLE] or [TEMPUNAVAIL]. */
typedef struct {
  guint set;          /* PstXclientFlags */
  char *name;         /* owned, nullable */
  char *addr;         /* owned, nullable: text, IPv4-mapped unmapped */
  guint16 port;
  gboolean esmtp;     /* PROTO=ESMTP */
  char *helo;         /* owned, nullable */
  char *login;        /* owned, nullable */
  char *destaddr;     /* owned, nullable */
  guint16 destport;
} PstXclientAttrs;

/* Parses "NAME=VALUE ..." (xtext values).  Returns NULL on success, else
 * the text of the 501 5.5.4 reply (newly allocated; `attrs` then holds
 * nothing).  Pure. */
char *pst_xclient_parse(const char *argument, gsize length,
                        PstXclientAttrs *attrs);
void pst_xclient_attrs_clear(PstXclientAttrs *attrs);
G_END_DECLS
