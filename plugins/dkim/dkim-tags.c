/* dkim-tags.c - the DKIM tag-list (RFC 6376 section 3.2) and the
 * DKIM-Signature value (section 3.5) parsed: pure functions, no I/O, no
 * crypto.  Callers: dkim_record_parse() (key records, dkim-record.c), the
 * verifier (dkim-verifier.c); fuzzed by fuzz/fuzz-dkim-signature.c and
 * fuzz/fuzz-dkim-record.c.
 *
 * A tag-list is `tag = value` items separated by ';', a final ';'
 * allowed.  White space (SP, TAB, CR, LF: the value may still be folded)
 * around names and values is dropped, inside a value it is kept; empty
 * items (";;") are skipped.  A tag name is a letter then letters, digits
 * or '_'; a value holds no control octet.  A tag twice or an item without
 * '=' is an error: the whole list is refused (a signature permerror, an
 * unusable key).  Each tag is reported with its offsets in the text, so
 * that the verifier can blank b='s value where it stands.
 */
#include <string.h>

#include "dkim.h"

#define DKIM_TAGS_MAX 64 /* distinct names; more is no DKIM text */

static gboolean dkim_tag_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static gboolean dkim_tag_fail(GError **error, const char *what,
                              const char *text, gsize length) {
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: %.*s", what,
              (int)MIN(length, 40), text);
  return FALSE;
}

/* The name of one item: a letter, then letters, digits, '_'. */
static gboolean dkim_tag_name_is_valid(const char *name, gsize length) {
  if (length == 0 || !g_ascii_isalpha(name[0]))
    return FALSE;
  for (gsize i = 1; i < length; i++)
    if (!g_ascii_isalnum(name[i]) && name[i] != '_')
      return FALSE;
  return TRUE;
}

static gboolean dkim_tag_value_is_valid(const char *value, gsize length) {
  for (gsize i = 0; i < length; i++) {
    guchar c = (guchar)value[i];
    if ((c < 0x21 && !dkim_tag_is_space((char)c)) || c == 0x7f)
      return FALSE;
  }
  return TRUE;
}

/* One item [start, end) of `text`, not empty. */
static gboolean dkim_tag_item(const char *text, gsize start, gsize end,
                              GPtrArray *seen, DkimTagFunc func,
                              gpointer data, GError **error) {
  const char *item = text + start;
  const char *equals = memchr(item, '=', end - start);
  if (equals == NULL)
    return dkim_tag_fail(error, "tag without '='", item, end - start);
  gsize name_start = start, name_end = (gsize)(equals - text);
  while (name_start < name_end && dkim_tag_is_space(text[name_start]))
    name_start++;
  while (name_end > name_start && dkim_tag_is_space(text[name_end - 1]))
    name_end--;
  gsize value_start = (gsize)(equals - text) + 1, value_end = end;
  while (value_start < value_end && dkim_tag_is_space(text[value_start]))
    value_start++;
  while (value_end > value_start && dkim_tag_is_space(text[value_end - 1]))
    value_end--;
  DkimTag tag = {
      .name = text + name_start,
      .name_length = name_end - name_start,
      .value = text + value_start,
      .value_length = value_end - value_start,
      .value_offset = (gsize)(equals - text) + 1,
      .value_end = end,
  };
  if (!dkim_tag_name_is_valid(tag.name, tag.name_length))
    return dkim_tag_fail(error, "bad tag name", item, end - start);
  if (!dkim_tag_value_is_valid(tag.value, tag.value_length))
    return dkim_tag_fail(error, "control octet in the value of tag", tag.name,
                         tag.name_length);
  for (guint i = 0; i < seen->len; i++) {
    const DkimTag *other = seen->pdata[i];
    if (other->name_length == tag.name_length &&
        memcmp(other->name, tag.name, tag.name_length) == 0)
      return dkim_tag_fail(error, "tag twice", tag.name, tag.name_length);
  }
  if (seen->len >= DKIM_TAGS_MAX)
    return dkim_tag_fail(error, "too many tags", item, end - start);
  g_ptr_array_add(seen, g_memdup2(&tag, sizeof tag));
  return func(&tag, data, error);
}

gboolean dkim_tags_parse(const char *text, gsize length, DkimTagFunc func,
                         gpointer data, GError **error) {
  g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
  gsize start = 0;
  while (start <= length) {
    const char *semicolon = memchr(text + start, ';', length - start);
    gsize end = semicolon != NULL ? (gsize)(semicolon - text) : length;
    gsize first = start;
    while (first < end && dkim_tag_is_space(text[first]))
      first++;
    /* An empty item (";;", a final ';') is skipped, as libopendkim does. */
    if (first < end &&
        !dkim_tag_item(text, start, end, seen, func, data, error))
      return FALSE;
    if (semicolon == NULL)
      break;
    start = end + 1;
  }
  return TRUE;
}

gboolean dkim_tag_is(const DkimTag *tag, const char *name) {
  return tag->name_length == strlen(name) &&
         memcmp(tag->name, name, tag->name_length) == 0;
}

char *dkim_tag_value_strip(const DkimTag *tag) {
  GString *out = g_string_sized_new(tag->value_length);
  for (gsize i = 0; i < tag->value_length; i++)
    if (!dkim_tag_is_space(tag->value[i]))
      g_string_append_c(out, tag->value[i]);
  return g_string_free(out, FALSE);
}

gboolean dkim_base64_is_valid(const char *text) {
  gsize length = strlen(text), pad = 0;
  for (gsize i = 0; i < length; i++) {
    char c = text[i];
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad > 0 || !(g_ascii_isalnum(c) || c == '+' || c == '/'))
      return FALSE;
  }
  return pad <= 2 && length % 4 == 0;
}

/* --- The DKIM-Signature value --------------------------------------------- */

void dkim_signature_clear(DkimSignature *sig) {
  g_free(sig->domain);
  g_free(sig->selector);
  g_free(sig->identity);
  g_free(sig->b_text);
  g_strfreev(sig->headers);
  g_free(sig->body_hash);
  g_free(sig->signature);
  memset(sig, 0, sizeof *sig);
}

static gboolean dkim_sig_fail(GError **error, const char *format, ...)
    G_GNUC_PRINTF(2, 3);
static gboolean dkim_sig_fail(GError **error, const char *format, ...) {
  va_list args;
  va_start(args, format);
  g_autofree char *message = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, message);
  return FALSE;
}

static gboolean dkim_sig_algorithm(DkimSignature *sig, const char *value,
                                   GError **error) {
  static const char *const names[] = {"rsa-sha1", "rsa-sha256",
                                      "ed25519-sha256"};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++)
    if (g_ascii_strcasecmp(value, names[i]) == 0) {
      sig->algorithm = (DkimAlgorithm)i;
      sig->algorithm_known = TRUE;
      return TRUE;
    }
  return dkim_sig_fail(error, "unknown algorithm a=%.40s", value);
}

static gboolean dkim_canon_from_name(const char *name, gsize length,
                                     DkimCanon *canon) {
  if (length == 6 && g_ascii_strncasecmp(name, "simple", 6) == 0)
    *canon = DKIM_CANON_SIMPLE_;
  else if (length == 7 && g_ascii_strncasecmp(name, "relaxed", 7) == 0)
    *canon = DKIM_CANON_RELAXED_;
  else
    return FALSE;
  return TRUE;
}

/* c=: "header[/body]", the body simple when absent. */
static gboolean dkim_sig_canon(DkimSignature *sig, const char *value,
                               GError **error) {
  const char *slash = strchr(value, '/');
  gsize head = slash != NULL ? (gsize)(slash - value) : strlen(value);
  sig->body_canon = DKIM_CANON_SIMPLE_;
  if (!dkim_canon_from_name(value, head, &sig->header_canon) ||
      (slash != NULL &&
       !dkim_canon_from_name(slash + 1, strlen(slash + 1), &sig->body_canon)))
    return dkim_sig_fail(error, "unknown canonicalization c=%.40s", value);
  return TRUE;
}

/* h=: names separated by ':' (white space already dropped; empty names
 * skipped as libopendkim does); From must be among them. */
static gboolean dkim_sig_headers(DkimSignature *sig, const char *value,
                                 GError **error) {
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  gboolean from = FALSE;
  for (const char *p = value; *p != '\0';) {
    const char *end = strchr(p, ':');
    if (end == NULL)
      end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && dkim_tag_is_space(*a))
      a++;
    while (b > a && dkim_tag_is_space(b[-1]))
      b--;
    for (const char *c = a; c < b; c++)
      if ((guchar)*c <= 0x20 || (guchar)*c >= 0x7f)
        return dkim_sig_fail(error, "bad field name in h=");
    if (b > a) {
      from |= b - a == 4 && g_ascii_strncasecmp(a, "from", 4) == 0;
      g_ptr_array_add(names, g_strndup(a, (gsize)(b - a)));
    }
    p = *end == ':' ? end + 1 : end;
  }
  if (names->len == 0)
    return dkim_sig_fail(error, "empty h=");
  if (!from)
    return dkim_sig_fail(error, "h= does not sign From");
  g_ptr_array_add(names, NULL);
  sig->headers = (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
  return TRUE;
}

/* b= and bh=: base64 after white space is dropped. */
static gboolean dkim_sig_base64(const DkimTag *tag, guint8 **bytes_r,
                                gsize *length_r, char **text_r,
                                GError **error) {
  g_autofree char *text = dkim_tag_value_strip(tag);
  if (text[0] == '\0')
    return dkim_sig_fail(error, "empty %.*s=", (int)tag->name_length,
                         tag->name);
  if (!dkim_base64_is_valid(text))
    return dkim_sig_fail(error, "%.*s= is not base64", (int)tag->name_length,
                         tag->name);
  *bytes_r = g_base64_decode(text, length_r);
  if (text_r != NULL)
    *text_r = g_steal_pointer(&text);
  return TRUE;
}

/* A number of at most `digits` digits (l=, t=, x=). */
static gboolean dkim_sig_number(const char *value, guint digits,
                                gint64 *number_r, GError **error,
                                const char *name) {
  guint64 number = 0;
  gsize length = strlen(value);
  if (length == 0 || length > digits ||
      !g_ascii_string_to_unsigned(value, 10, 0, G_MAXINT64, &number, NULL))
    return dkim_sig_fail(error, "%s= is not a number", name);
  *number_r = (gint64)number;
  return TRUE;
}

/* i=: [local-part] "@" domain, the domain d= or a subdomain of it
 * (checked after every tag: d= may come later). */
static gboolean dkim_sig_identity_fits(const DkimSignature *sig,
                                       GError **error) {
  const char *at = strrchr(sig->identity, '@');
  if (at == NULL)
    return dkim_sig_fail(error, "i= has no '@'");
  const char *domain = at + 1;
  gsize length = strlen(domain), d = strlen(sig->domain);
  if (g_ascii_strcasecmp(domain, sig->domain) == 0)
    return TRUE;
  if (length > d && domain[length - d - 1] == '.' &&
      g_ascii_strcasecmp(domain + length - d, sig->domain) == 0)
    return TRUE;
  return dkim_sig_fail(error, "i= domain is not d= or under it");
}

typedef struct {
  DkimSignature *sig;
  gboolean version, hash, bits;
} DkimSigParse;

static gboolean dkim_sig_tag(const DkimTag *tag, gpointer data,
                             GError **error) {
  DkimSigParse *parse = data;
  DkimSignature *sig = parse->sig;
  /* White space inside a value is folding, wherever the signer's line
   * ended: dropped, as libopendkim does (h=fr<CRLF TAB>om is From). */
  g_autofree char *value = dkim_tag_value_strip(tag);
  if (dkim_tag_is(tag, "v")) {
    parse->version = TRUE;
    return g_str_equal(value, "1") || dkim_sig_fail(error, "v= is not 1");
  }
  if (dkim_tag_is(tag, "a"))
    return dkim_sig_algorithm(sig, value, error);
  if (dkim_tag_is(tag, "c"))
    return dkim_sig_canon(sig, value, error);
  if (dkim_tag_is(tag, "d")) {
    sig->domain = g_steal_pointer(&value);
    return sig->domain[0] != '\0' || dkim_sig_fail(error, "empty d=");
  }
  if (dkim_tag_is(tag, "s")) {
    sig->selector = g_steal_pointer(&value);
    return sig->selector[0] != '\0' || dkim_sig_fail(error, "empty s=");
  }
  if (dkim_tag_is(tag, "i")) {
    sig->identity = g_steal_pointer(&value);
    return TRUE;
  }
  if (dkim_tag_is(tag, "h"))
    return dkim_sig_headers(sig, value, error);
  if (dkim_tag_is(tag, "bh")) {
    parse->hash = TRUE;
    return dkim_sig_base64(tag, &sig->body_hash, &sig->body_hash_length, NULL,
                           error);
  }
  if (dkim_tag_is(tag, "b")) {
    parse->bits = TRUE;
    sig->b_start = tag->value_offset;
    sig->b_end = tag->value_end;
    return dkim_sig_base64(tag, &sig->signature, &sig->signature_length,
                           &sig->b_text, error);
  }
  if (dkim_tag_is(tag, "l"))
    return dkim_sig_number(value, 76, &sig->length, error, "l");
  if (dkim_tag_is(tag, "t"))
    return dkim_sig_number(value, 12, &sig->timestamp, error, "t");
  if (dkim_tag_is(tag, "x"))
    return dkim_sig_number(value, 12, &sig->expires, error, "x");
  if (dkim_tag_is(tag, "q")) {
    g_autofree char *methods = dkim_tag_value_strip(tag);
    g_auto(GStrv) list = g_strsplit(methods, ":", 16);
    for (guint i = 0; list[i] != NULL; i++)
      if (g_ascii_strcasecmp(list[i], "dns/txt") == 0)
        return TRUE;
    return dkim_sig_fail(error, "q= does not name dns/txt");
  }
  return TRUE; /* z= and tags unknown to us are ignored (3.2) */
}

/* What every signature must have (RFC 6376 3.5, "REQUIRED"). */
static gboolean dkim_sig_complete(const DkimSigParse *parse, GError **error) {
  const DkimSignature *sig = parse->sig;
  if (!parse->version)
    return dkim_sig_fail(error, "no v= tag");
  if (!sig->algorithm_known)
    return dkim_sig_fail(error, "no a= tag");
  if (!parse->bits)
    return dkim_sig_fail(error, "no b= tag");
  if (!parse->hash)
    return dkim_sig_fail(error, "no bh= tag");
  if (sig->domain == NULL)
    return dkim_sig_fail(error, "no d= tag");
  if (sig->selector == NULL)
    return dkim_sig_fail(error, "no s= tag");
  if (sig->headers == NULL)
    return dkim_sig_fail(error, "no h= tag");
  if (sig->identity != NULL && !dkim_sig_identity_fits(sig, error))
    return FALSE;
  if (sig->timestamp >= 0 && sig->expires >= 0 &&
      sig->expires < sig->timestamp)
    return dkim_sig_fail(error, "x= is before t=");
  return TRUE;
}

gboolean dkim_signature_parse(const char *value, gsize length,
                              DkimSignature *sig, GError **error) {
  memset(sig, 0, sizeof *sig);
  sig->length = sig->timestamp = sig->expires = -1;
  DkimSigParse parse = {.sig = sig};
  return dkim_tags_parse(value, length, dkim_sig_tag, &parse, error) &&
         dkim_sig_complete(&parse, error);
}

const char *dkim_algorithm_to_string(DkimAlgorithm algorithm) {
  switch (algorithm) {
  case DKIM_ALG_RSA_SHA1:
    return "rsa-sha1";
  case DKIM_ALG_RSA_SHA256:
    return "rsa-sha256";
  default:
    return "ed25519-sha256";
  }
}
