/* test-dkim-gen.h - generated messages and keys shared by the DKIM
 * plugin's differential tests (test-dkim-gen.c). */
#pragma once

#include <opendkim/dkim.h>

#include "dkim.h"

typedef struct {
  GPtrArray *fields; /* owned, of char* */
  GByteArray *body;  /* owned */
} TestMessage;

void test_message_clear(TestMessage *message);
/* Header fields ("Name: value", no CRLF; one From). */
GPtrArray *generate_fields(GRand *rand);
/* A body of CRLF lines. */
GByteArray *generate_body(GRand *rand);
/* A fresh key: selector "sel-rsa" (2048 bits) or "sel-ed". */
DkimKey *test_key(DkimKeyType type);
/* Feeds `body` to `feed` in random pieces (some a single octet). */
void feed_cut(const GByteArray *body, GRand *rand,
              void (*feed)(gpointer, const guint8 *, gsize), gpointer target);
/* A whole message (CRLF lines) split into fields and body. */
TestMessage test_message_parse(const guint8 *data, gsize length);
/* Feeds `message` to libopendkim's signing handle `dkim` (its header
 * fields, then its body in random pieces from `rand`), and returns the
 * DKIM-Signature value it makes (without "DKIM-Signature: "), a new
 * string; `dkim` is freed. */
char *test_opendkim_sign(DKIM *dkim, const TestMessage *message, GRand *rand);
