/* loadgen.c - an event-driven SMTP load generator for Postilion's benchmarks.
 *
 * One thread, one epoll set, many SMTP client sessions.  Unlike Postfix's
 * smtp-source it pipelines (RFC 2920) when the server offers PIPELINING:
 * MAIL, RCPT and DATA go out in one write, and the message content goes out
 * together with the next transaction's MAIL/RCPT/DATA (or QUIT).  So its own
 * ceiling is far above smtp-source's, and bench/run reports that ceiling
 * against smtp-sink so that no MTA figure is secretly the generator's limit.
 *
 * Modes:
 *   send (default)  keep -c sessions busy until -n messages were sent or -t
 *                   seconds passed; -m messages per connection (0: as many
 *                   as remain).  Every message's latency is recorded, to
 *                   the 250 after its final dot, from when the server could
 *                   begin it: connect() for a connection's first message;
 *                   for later ones the moment its MAIL was written, or the
 *                   previous message's 250 if that came later.  A pipelined
 *                   MAIL goes out with the previous message's content, so
 *                   counting from its write would count the previous
 *                   message's commit in both messages' latencies; that
 *                   figure is reported too, as lat_write_p99_ms.
 *   paced (-R RATE) an open loop at RATE messages per second in all:
 *                   message k is due at start + k / RATE and goes to a
 *                   session that is free then (with -m 1, a connection
 *                   is opened for it).  Its latency counts from the
 *                   moment it was due, not from when a session was free
 *                   to send it, so a server that falls behind shows its
 *                   backlog in the figures (no coordinated omission).
 *                   At a rate the server sustains this is the latency a
 *                   client sees at that load; the closed loop's latency at
 *                   saturation is about sessions / rate instead.
 *   idle (-I N)     open N sessions, EHLO each, then hold them idle; print a
 *                   READY line, wait -w seconds, then time -p fresh sessions
 *                   from connect() to their 220 banner, and exit.
 *
 * -M FILE sends the message in FILE (header and body, LF or CRLF lines;
 * dot-stuffed here) instead of the generated one: the DKIM verification
 * bench sends a message dkimpy signed.
 *
 * Output: progress and errors on stderr; one machine-readable line on
 * stdout starting with "RESULT " and made of key=value pairs.  The exit
 * status is 0 when every message (or session) succeeded, 1 otherwise,
 * 2 on a usage error.
 *
 * Every loop is bounded: by the message count, the time cap (-t, default
 * 60 s) and a hard stop 10 s after it.  Build: cc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define INBUF_SIZE 8192
#define CMDBUF_SIZE 1024
#define MAX_EXPECT 16
#define HARD_STOP_GRACE_S 10.0
#define IDLE_MAX_CONNECTING 200

/* What the next reply answers. */
typedef enum {
  EXPECT_BANNER,
  EXPECT_EHLO,
  EXPECT_MAIL,
  EXPECT_RCPT,
  EXPECT_DATA,
  EXPECT_EOM,
  EXPECT_QUIT,
} Expect;

typedef enum {
  STATE_CONNECTING,
  STATE_ACTIVE,
  STATE_IDLE,   /* idle mode: after EHLO, holding */
  STATE_CLOSING, /* after 221, waiting for the server's EOF */
} SessionState;

typedef struct {
  int fd;
  int index;
  int in_use;
  SessionState state;
  int pipelining;        /* server offered PIPELINING */
  double connect_time;
  /* replies we are waiting for, oldest first */
  Expect expect[MAX_EXPECT];
  int expect_head, expect_count;
  /* message starts of the transactions in flight, oldest first */
  double txn_start[4];   /* latency counts from: see the top of the file */
  double txn_written[4]; /* when its MAIL was written (or its start) */
  int txn_head, txn_count;
  int msgs_started;      /* on this connection */
  int msgs_limit;        /* for this connection */
  int waiting;           /* paced: ready for a message that is not due yet */
  int next_queued;       /* pipelined: the next step went out with the content */
  double phase_at;       /* -S: when the phase being timed began */
  /* input */
  char in[INBUF_SIZE];
  size_t in_len;
  /* output: body bytes first, then commands */
  const char *body;      /* shared message content, nullable */
  size_t body_left;
  char cmd[CMDBUF_SIZE];
  size_t cmd_off, cmd_len;
  int want_write;
} Session;

/* Latency samples in microseconds, in the order recorded. */
typedef struct {
  uint32_t *us;
  long count, cap;
} LatSamples;

typedef struct {
  /* options */
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int sessions;
  long total;
  int per_conn;
  size_t size;
  double time_cap;
  int no_pipelining;
  double rate;          /* -R: offered messages per second; 0 = closed loop */
  const char *from, *rcpt, *helo;
  const char *message_file; /* -M, nullable */
  int idle;
  double hold;
  int probes;
  int quiet;
  /* state */
  int epfd;
  Session *sess;
  int nsess;
  char *message;        /* content with the final ".\r\n" */
  size_t message_len;
  double start;
  long started, ok, failed;
  long conns, conn_failed;
  long idle_ready, idle_dropped;
  int connecting;
  int stopping;         /* time cap reached: start nothing new */
  LatSamples lat;       /* from when the server could begin the message */
  LatSamples lat_write; /* from when its MAIL was written */
  /* -S: where the latency goes, phase by phase (see usage()) */
  int phases;
  LatSamples ph_banner, ph_ehlo, ph_envelope, ph_content;
} Gen;

static volatile sig_atomic_t interrupted;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* --- Message content -------------------------------------------------- */

/* The same header fields smtp-source sends (From, To, Date, Message-Id),
 * then lines of 78 characters up to `size` octets of body, then the dot.
 * No body line starts with '.', so no dot-stuffing is needed. */
static void build_message(Gen *g) {
  char date[64];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000 (UTC)", &tm);
  char header[1024];
  int hl = snprintf(header, sizeof header,
                    "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
                    "Message-Id: <%ld.loadgen@%s>\r\n\r\n",
                    g->from, g->rcpt, date, (long)getpid(), g->helo);
  g->message = malloc((size_t)hl + g->size + 128);
  if (!g->message)
    die("out of memory");
  memcpy(g->message, header, (size_t)hl);
  size_t len = (size_t)hl, body = 0;
  int line = 0;
  while (body < g->size) {
    size_t n = g->size - body < 80 ? g->size - body : 80;
    char *p = g->message + len;
    if (n < 3)
      n = 3;
    p[0] = (char)('0' + line % 10);
    memset(p + 1, 'X', n - 3);
    p[n - 2] = '\r';
    p[n - 1] = '\n';
    len += n;
    body += n;
    line++;
  }
  memcpy(g->message + len, ".\r\n", 3);
  g->message_len = len + 3;
}

/* The message of -M FILE: CRLF lines, dot-stuffed, then the final dot. */
static void load_message(Gen *g) {
  FILE *f = fopen(g->message_file, "rb");
  if (!f)
    die("%s: %s", g->message_file, strerror(errno));
  char *data = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len + 4096 + 4 > cap) {
      cap = (cap + 4096) * 2;
      data = realloc(data, cap);
      if (!data)
        die("out of memory");
    }
    size_t n = fread(data + len, 1, 4096, f);
    if (n == 0)
      break;
    len += n;
  }
  fclose(f);
  g->message = malloc(len * 2 + 8);
  if (!g->message)
    die("out of memory");
  size_t out = 0;
  int line_start = 1;
  for (size_t i = 0; i < len; i++) {
    char c = data[i];
    if (line_start && c == '.')
      g->message[out++] = '.';
    if (c == '\n' && (i == 0 || data[i - 1] != '\r'))
      g->message[out++] = '\r';
    g->message[out++] = c;
    line_start = c == '\n';
  }
  if (!line_start) {
    g->message[out++] = '\r';
    g->message[out++] = '\n';
  }
  memcpy(g->message + out, ".\r\n", 3);
  g->message_len = out + 3;
  free(data);
}

/* --- Latency samples -------------------------------------------------- */

static void lat_record(LatSamples *l, double seconds) {
  if (l->count == l->cap) {
    long cap = l->cap ? l->cap * 2 : 65536;
    uint32_t *p = realloc(l->us, (size_t)cap * sizeof *p);
    if (!p)
      die("out of memory");
    l->us = p;
    l->cap = cap;
  }
  double us = seconds * 1e6;
  l->us[l->count++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentile in milliseconds of the sorted samples (nearest rank). */
static double percentile_ms(const uint32_t *v, long n, double p) {
  if (n == 0)
    return 0.0;
  long rank = (long)(p / 100.0 * (double)n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double)v[rank - 1] / 1000.0;
}

/* --- Session plumbing ------------------------------------------------- */

static void expect_push(Session *s, Expect e) {
  if (s->expect_count == MAX_EXPECT)
    die("internal: expect queue overflow");
  s->expect[(s->expect_head + s->expect_count) % MAX_EXPECT] = e;
  s->expect_count++;
}

static int expect_pop(Session *s, Expect *e) {
  if (s->expect_count == 0)
    return 0;
  *e = s->expect[s->expect_head];
  s->expect_head = (s->expect_head + 1) % MAX_EXPECT;
  s->expect_count--;
  return 1;
}

static void txn_push(Session *s, double t) {
  if (s->txn_count == 4)
    die("internal: transaction queue overflow");
  s->txn_start[(s->txn_head + s->txn_count) % 4] = t;
  s->txn_written[(s->txn_head + s->txn_count) % 4] = t;
  s->txn_count++;
}

/* Removes the oldest transaction; sets `written` to when its MAIL was
 * written and returns when its latency counts from. */
static double txn_pop(Session *s, double *written) {
  double t = s->txn_start[s->txn_head];
  *written = s->txn_written[s->txn_head];
  s->txn_head = (s->txn_head + 1) % 4;
  s->txn_count--;
  return t;
}

/* The first waiting transaction cannot begin at the server before `t`, the
 * moment the one before it was answered. */
static void txn_begin_not_before(Session *s, double t) {
  double *start = &s->txn_start[s->txn_head];
  if (s->txn_count > 0 && *start < t)
    *start = t;
}

static void cmd_append(Session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = CMDBUF_SIZE - s->cmd_len;
  int n = vsnprintf(s->cmd + s->cmd_len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room)
    die("internal: command buffer overflow");
  s->cmd_len += (size_t)n;
}

static void set_events(Gen *g, Session *s, int want_write) {
  if (s->want_write == want_write)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0),
                           .data.u32 = (uint32_t)s->index};
  if (epoll_ctl(g->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
    die("epoll_ctl: %s", strerror(errno));
  s->want_write = want_write;
}

static void session_close(Gen *g, Session *s);

/* Writes what is pending: the body remainder, then the commands. */
static int session_flush(Gen *g, Session *s) {
  while (s->body_left > 0 || s->cmd_off < s->cmd_len) {
    struct iovec iov[2];
    int n = 0;
    if (s->body_left > 0)
      iov[n++] = (struct iovec){(void *)s->body, s->body_left};
    if (s->cmd_off < s->cmd_len)
      iov[n++] = (struct iovec){s->cmd + s->cmd_off, s->cmd_len - s->cmd_off};
    ssize_t w = writev(s->fd, iov, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(g, s, 1);
        return 0;
      }
      if (errno == EINTR)
        continue;
      return -1;
    }
    size_t done = (size_t)w;
    size_t b = done < s->body_left ? done : s->body_left;
    s->body += b;
    s->body_left -= b;
    s->cmd_off += done - b;
  }
  s->cmd_off = s->cmd_len = 0;
  s->body = NULL;
  set_events(g, s, 0);
  return 0;
}

/* Paced mode: when message k is due, and how many are due by time t. */
static double slot_due(const Gen *g, long k) {
  return g->start + (double)k / g->rate;
}

static long slots_due(const Gen *g, double t) {
  if (g->rate <= 0 || t < g->start)
    return g->rate <= 0 ? g->total : 0;
  double n = (t - g->start) * g->rate + 1.0;
  return n >= (double)g->total ? g->total : (long)n;
}

/* May this connection start one more transaction (now or when due)? */
static int session_has_more(const Gen *g, const Session *s) {
  if (g->stopping || g->started >= g->total)
    return 0;
  return s->msgs_limit == 0 || s->msgs_started < s->msgs_limit;
}

/* Claims the next message for `s`; returns the moment its latency counts
 * from: when it was due (paced), the connect (a connection's first
 * message, closed loop) or now. */
static double claim_message(Gen *g, Session *s) {
  double start = g->rate > 0       ? slot_due(g, g->started)
                 : s->msgs_started ? now()
                                   : s->connect_time;
  g->started++;
  s->msgs_started++;
  return start;
}

static void queue_envelope(Gen *g, Session *s, double start) {
  txn_push(s, start);
  if (s->pipelining && !g->no_pipelining) {
    cmd_append(s, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", g->from,
               g->rcpt);
    expect_push(s, EXPECT_MAIL);
    expect_push(s, EXPECT_RCPT);
    expect_push(s, EXPECT_DATA);
  } else {
    cmd_append(s, "MAIL FROM:<%s>\r\n", g->from);
    expect_push(s, EXPECT_MAIL);
  }
}

static void queue_quit(Session *s) {
  cmd_append(s, "QUIT\r\n");
  expect_push(s, EXPECT_QUIT);
}

/* The next step of a connection with nothing in flight: a transaction,
 * QUIT when there is nothing left, or (paced, no message due yet) waiting
 * until run_send() hands it one. */
static void session_next(Gen *g, Session *s) {
  if (!session_has_more(g, s)) {
    queue_quit(s);
    return;
  }
  if (g->rate > 0 && slot_due(g, g->started) > now()) {
    s->waiting = 1;
    return;
  }
  queue_envelope(g, s, claim_message(g, s));
}

/* After EHLO: the first transaction, or QUIT when there is nothing left. */
static void session_begin(Gen *g, Session *s) {
  if (g->idle) {
    s->state = STATE_IDLE;
    g->idle_ready++;
    return;
  }
  session_next(g, s);
}

/* After 354: the content, pipelined with what comes next when allowed
 * (paced: only when the next message is already due). */
static void session_send_content(Gen *g, Session *s) {
  s->body = g->message;
  s->body_left = g->message_len;
  expect_push(s, EXPECT_EOM);
  s->next_queued = 0;
  if (!s->pipelining || g->no_pipelining)
    return;
  if (session_has_more(g, s) && g->rate > 0 && slot_due(g, g->started) > now())
    return; /* decided after the 250 */
  session_next(g, s);
  s->next_queued = 1;
}

/* After the 250 for a message: the next step, unless it went out with
 * the content. */
static void session_after_eom(Gen *g, Session *s) {
  if (s->next_queued) {
    s->next_queued = 0;
    return;
  }
  session_next(g, s);
}

static void fail_session(Gen *g, Session *s, const char *why) {
  /* every transaction in flight on it is lost */
  g->failed += s->txn_count;
  if (!g->quiet)
    fprintf(stderr, "loadgen: session %d: %s\n", s->index, why);
  if (s->state == STATE_IDLE)
    g->idle_dropped++;
  session_close(g, s);
}

/* One complete reply line (the last of a multi-line reply). */
static int handle_reply(Gen *g, Session *s, int code, const char *line) {
  Expect e;
  if (!expect_pop(s, &e)) {
    if (s->state == STATE_IDLE && code == 421)
      return -1; /* timeout or shutdown of an idle session */
    return -1;
  }
  switch (e) {
  case EXPECT_BANNER:
    if (code != 220)
      return -1;
    s->state = STATE_ACTIVE;
    if (g->phases) {
      lat_record(&g->ph_banner, now() - s->connect_time);
      s->phase_at = now();
    }
    cmd_append(s, "EHLO %s\r\n", g->helo);
    expect_push(s, EXPECT_EHLO);
    break;
  case EXPECT_EHLO:
    if (code != 250)
      return -1;
    if (g->phases)
      lat_record(&g->ph_ehlo, now() - s->phase_at);
    session_begin(g, s);
    break;
  case EXPECT_MAIL:
    if (code != 250)
      return -1;
    if (!s->pipelining || g->no_pipelining) {
      cmd_append(s, "RCPT TO:<%s>\r\n", g->rcpt);
      expect_push(s, EXPECT_RCPT);
    }
    break;
  case EXPECT_RCPT:
    if (code != 250)
      return -1;
    if (!s->pipelining || g->no_pipelining) {
      cmd_append(s, "DATA\r\n");
      expect_push(s, EXPECT_DATA);
    }
    break;
  case EXPECT_DATA:
    if (code != 354)
      return -1;
    if (g->phases) {
      s->phase_at = now();
      lat_record(&g->ph_envelope, s->phase_at - s->txn_start[s->txn_head]);
    }
    session_send_content(g, s);
    break;
  case EXPECT_EOM: {
    if (code != 250)
      return -1;
    double written, t = now(), start = txn_pop(s, &written);
    lat_record(&g->lat, t - start);
    lat_record(&g->lat_write, t - written);
    if (g->phases)
      lat_record(&g->ph_content, t - s->phase_at);
    if (g->rate <= 0) /* paced: counted from when it was due, backlog and all */
      txn_begin_not_before(s, t);
    g->ok++;
    session_after_eom(g, s);
    break;
  }
  case EXPECT_QUIT:
    s->state = STATE_CLOSING;
    break;
  }
  (void)line;
  return 0;
}

/* Parses complete lines from the input buffer. */
static int session_parse(Gen *g, Session *s) {
  size_t pos = 0;
  for (;;) {
    char *nl = memchr(s->in + pos, '\n', s->in_len - pos);
    if (!nl)
      break;
    char *line = s->in + pos;
    size_t len = (size_t)(nl - line);
    pos += len + 1;
    if (len < 3)
      return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (len > 4 && code == 250 && strncasecmp(line + 4, "PIPELINING", 10) == 0)
      s->pipelining = 1;
    if (len > 3 && line[3] == '-')
      continue; /* more lines of this reply follow */
    if (handle_reply(g, s, code, line) < 0) {
      char buf[128];
      snprintf(buf, sizeof buf, "unexpected reply: %.*s", (int)(len < 100 ? len : 100),
               line);
      fail_session(g, s, buf);
      return -2;
    }
  }
  memmove(s->in, s->in + pos, s->in_len - pos);
  s->in_len -= pos;
  if (s->in_len == sizeof s->in)
    return -1;
  return 0;
}

static void session_readable(Gen *g, Session *s) {
  for (;;) {
    ssize_t r = read(s->fd, s->in + s->in_len, sizeof s->in - s->in_len);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno == EINTR)
        continue;
      fail_session(g, s, strerror(errno));
      return;
    }
    if (r == 0) {
      if (s->state == STATE_CLOSING && s->txn_count == 0)
        session_close(g, s);
      else
        fail_session(g, s, "connection closed by server");
      return;
    }
    s->in_len += (size_t)r;
    int rc = session_parse(g, s);
    if (rc == -2)
      return;
    if (rc < 0) {
      fail_session(g, s, "protocol error");
      return;
    }
  }
  if (session_flush(g, s) < 0)
    fail_session(g, s, "write failed");
}

/* --- Connections ------------------------------------------------------ */

static Session *session_slot(Gen *g) {
  for (int i = 0; i < g->nsess; i++)
    if (!g->sess[i].in_use)
      return &g->sess[i];
  return NULL;
}

static int session_open(Gen *g) {
  Session *s = session_slot(g);
  if (!s)
    return -1;
  int fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) {
    fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
    g->conn_failed++;
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int index = s->index;
  memset(s, 0, sizeof *s);
  s->index = index;
  s->fd = fd;
  s->in_use = 1;
  s->state = STATE_CONNECTING;
  s->connect_time = now();
  s->msgs_limit = g->per_conn;
  if (connect(fd, (struct sockaddr *)&g->addr, g->addr_len) < 0 &&
      errno != EINPROGRESS) {
    fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
    close(fd);
    s->in_use = 0;
    g->conn_failed++;
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                           .data.u32 = (uint32_t)s->index};
  s->want_write = 1;
  if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    die("epoll_ctl: %s", strerror(errno));
  expect_push(s, EXPECT_BANNER);
  g->conns++;
  g->connecting++;
  return 0;
}

static void session_close(Gen *g, Session *s) {
  if (!s->in_use)
    return;
  if (s->state == STATE_CONNECTING)
    g->connecting--;
  epoll_ctl(g->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->in_use = 0;
}

static void session_event(Gen *g, Session *s, uint32_t events) {
  if (s->state == STATE_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      g->conn_failed++;
      fail_session(g, s, err ? strerror(err) : "connect failed");
      return;
    }
    g->connecting--;
    s->state = STATE_ACTIVE;
    set_events(g, s, 0);
  }
  if (events & EPOLLOUT) {
    if (session_flush(g, s) < 0) {
      fail_session(g, s, "write failed");
      return;
    }
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    session_readable(g, s);
}

static int active_sessions(Gen *g) {
  int n = 0;
  for (int i = 0; i < g->nsess; i++)
    n += g->sess[i].in_use;
  return n;
}

static void run_loop_once_ts(Gen *g, const struct timespec *timeout) {
  struct epoll_event evs[256];
  int n = epoll_pwait2(g->epfd, evs, 256, timeout, NULL);
  if (n < 0 && errno != EINTR)
    die("epoll_wait: %s", strerror(errno));
  for (int i = 0; i < n; i++) {
    Session *s = &g->sess[evs[i].data.u32];
    if (s->in_use)
      session_event(g, s, evs[i].events);
  }
}

static void run_loop_once(Gen *g, int timeout_ms) {
  struct timespec ts = {.tv_sec = timeout_ms / 1000,
                        .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
  run_loop_once_ts(g, &ts);
}

/* --- Send mode -------------------------------------------------------- */

/* Paced: hands each due message to a waiting session; a waiting session
 * quits once nothing is left for it (all sent, or the time cap). */
static void hand_out_due(Gen *g) {
  for (int i = 0; i < g->nsess; i++) {
    Session *s = &g->sess[i];
    if (!s->in_use || !s->waiting)
      continue;
    if (session_has_more(g, s) && slot_due(g, g->started) > now())
      continue;
    s->waiting = 0;
    session_next(g, s);
    if (session_flush(g, s) < 0)
      fail_session(g, s, "write failed");
  }
}

/* Waits for events, in paced mode at most until the next message is due. */
static void run_send_wait(Gen *g) {
  if (g->rate <= 0 || g->started >= g->total) {
    run_loop_once(g, 50);
    return;
  }
  double wait = slot_due(g, g->started) - now();
  if (wait > 0.05)
    wait = 0.05;
  if (wait < 0)
    wait = 0;
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
  run_loop_once_ts(g, &ts);
}

/* -S: one line on stderr, p50 / p99 / max of each phase in ms. */
static void print_phases(Gen *g) {
  const struct {
    const char *name;
    LatSamples *l;
  } phases[] = {{"banner", &g->ph_banner},
                {"ehlo", &g->ph_ehlo},
                {"envelope", &g->ph_envelope},
                {"content", &g->ph_content}};
  fprintf(stderr, "PHASES");
  for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
    LatSamples *l = phases[i].l;
    qsort(l->us, (size_t)l->count, sizeof *l->us, cmp_u32);
    fprintf(stderr, " %s_n=%ld %s_p50_ms=%.3f %s_p99_ms=%.3f %s_max_ms=%.3f",
            phases[i].name, l->count, phases[i].name,
            percentile_ms(l->us, l->count, 50), phases[i].name,
            percentile_ms(l->us, l->count, 99), phases[i].name,
            percentile_ms(l->us, l->count, 100));
  }
  fprintf(stderr, "\n");
}

static int run_send(Gen *g) {
  g->start = now();
  double last_report = g->start;
  for (;;) {
    double t = now();
    if (t - g->start >= g->time_cap || interrupted)
      g->stopping = 1;
    if (t - g->start >= g->time_cap + HARD_STOP_GRACE_S) {
      fprintf(stderr, "loadgen: hard stop, abandoning in-flight sessions\n");
      break;
    }
    /* keep `sessions` connections open while unclaimed messages remain;
     * a session that has not yet claimed its first message will take one */
    int open = active_sessions(g);
    int unclaimed_open = 0;
    for (int i = 0; i < g->nsess; i++)
      if (g->sess[i].in_use && g->sess[i].msgs_started == 0 &&
          g->sess[i].state != STATE_CLOSING)
        unclaimed_open++;
    /* paced, one message per connection: a connection per due message */
    long wanted = g->rate > 0 && g->per_conn == 1 ? slots_due(g, t) : g->total;
    while (!g->stopping && open < g->sessions &&
           g->started + unclaimed_open < wanted) {
      if (session_open(g) < 0)
        break;
      open++;
      unclaimed_open++;
    }
    if (open == 0 && (g->stopping || g->started >= g->total))
      break;
    if (g->rate > 0)
      hand_out_due(g);
    run_send_wait(g);
    if (!g->quiet && t - last_report >= 5.0) {
      fprintf(stderr, "loadgen: %.0fs ok=%ld failed=%ld open=%d\n", t - g->start,
              g->ok, g->failed, open);
      last_report = t;
    }
  }
  double elapsed = now() - g->start;
  for (int i = 0; i < g->nsess; i++)
    if (g->sess[i].in_use) {
      g->failed += g->sess[i].txn_count;
      session_close(g, &g->sess[i]);
    }
  qsort(g->lat.us, (size_t)g->lat.count, sizeof *g->lat.us, cmp_u32);
  qsort(g->lat_write.us, (size_t)g->lat_write.count, sizeof *g->lat_write.us, cmp_u32);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu_ms = (double)ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
                  (double)ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
  double mean = 0;
  for (long i = 0; i < g->lat.count; i++)
    mean += g->lat.us[i];
  mean = g->lat.count ? mean / (double)g->lat.count / 1000.0 : 0;
  printf("RESULT mode=%s sessions=%d per_conn=%d size=%zu pipelining=%d "
         "offered_rate=%.1f ok=%ld failed=%ld conns=%ld conn_failed=%ld elapsed_s=%.3f "
         "rate=%.1f lat_mean_ms=%.3f lat_p50_ms=%.3f lat_p90_ms=%.3f "
         "lat_p99_ms=%.3f lat_max_ms=%.3f lat_write_p50_ms=%.3f lat_write_p99_ms=%.3f "
         "cpu_ms=%.0f capped=%d\n",
         g->rate > 0 ? "paced" : "send", g->sessions, g->per_conn, g->size,
         !g->no_pipelining, g->rate, g->ok, g->failed,
         g->conns, g->conn_failed, elapsed,
         elapsed > 0 ? (double)g->ok / elapsed : 0.0, mean,
         percentile_ms(g->lat.us, g->lat.count, 50),
         percentile_ms(g->lat.us, g->lat.count, 90),
         percentile_ms(g->lat.us, g->lat.count, 99),
         percentile_ms(g->lat.us, g->lat.count, 100),
         percentile_ms(g->lat_write.us, g->lat_write.count, 50),
         percentile_ms(g->lat_write.us, g->lat_write.count, 99), cpu_ms,
         g->ok + g->failed < g->total);
  fflush(stdout);
  if (g->phases)
    print_phases(g);
  return g->failed == 0 && g->conn_failed == 0 && g->ok == g->total ? 0 : 1;
}

/* --- Idle mode -------------------------------------------------------- */

/* Times one fresh session from connect() to its 220 banner, in seconds;
 * negative on failure.  Blocking, with a 5 s receive timeout. */
static double probe_banner(Gen *g) {
  int fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  double t0 = now();
  double result = -1;
  if (connect(fd, (struct sockaddr *)&g->addr, g->addr_len) == 0) {
    char buf[512];
    size_t len = 0;
    while (len < sizeof buf - 1) {
      ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
      if (r <= 0)
        break;
      len += (size_t)r;
      if (memchr(buf, '\n', len))
        break;
    }
    if (len >= 4 && memcmp(buf, "220", 3) == 0 && memchr(buf, '\n', len))
      result = now() - t0;
    if (write(fd, "QUIT\r\n", 6) < 0) {
      /* the probe already has its figure */
    }
  }
  close(fd);
  return result;
}

static int run_idle(Gen *g) {
  g->start = now();
  /* ramp up: at most IDLE_MAX_CONNECTING handshakes at once */
  long opened = 0;
  while (!interrupted && now() - g->start < g->time_cap) {
    int in_handshake = 0;
    for (int i = 0; i < g->nsess; i++)
      if (g->sess[i].in_use && g->sess[i].state != STATE_IDLE)
        in_handshake++;
    while (opened < g->idle && in_handshake < IDLE_MAX_CONNECTING) {
      if (session_open(g) < 0)
        break;
      opened++;
      in_handshake++;
    }
    if (opened >= g->idle && in_handshake == 0)
      break;
    run_loop_once(g, 50);
  }
  double ramp = now() - g->start;
  long held = active_sessions(g);
  printf("READY idle=%d established=%ld failed=%ld ramp_s=%.3f\n", g->idle, held,
         (long)g->idle - held, ramp);
  fflush(stdout);
  /* hold, noticing sessions the server drops */
  double hold_end = now() + g->hold;
  while (!interrupted && now() < hold_end)
    run_loop_once(g, 100);
  long still = active_sessions(g);
  /* probe while the idle sessions are still held */
  double *probe = calloc((size_t)g->probes + 1, sizeof *probe);
  int probe_ok = 0, probe_failed = 0;
  for (int i = 0; i < g->probes && !interrupted; i++) {
    double p = probe_banner(g);
    if (p < 0)
      probe_failed++;
    else
      probe[probe_ok++] = p;
    run_loop_once(g, 20);
  }
  uint32_t *us = calloc((size_t)probe_ok + 1, sizeof *us);
  for (int i = 0; i < probe_ok; i++)
    us[i] = (uint32_t)(probe[i] * 1e6);
  qsort(us, (size_t)probe_ok, sizeof *us, cmp_u32);
  printf("RESULT mode=idle idle=%d established=%ld held=%ld ramp_s=%.3f "
         "probes=%d probe_failed=%d banner_p50_ms=%.3f banner_max_ms=%.3f\n",
         g->idle, held, still, ramp, probe_ok, probe_failed,
         percentile_ms(us, probe_ok, 50), percentile_ms(us, probe_ok, 100));
  fflush(stdout);
  free(probe);
  free(us);
  for (int i = 0; i < g->nsess; i++)
    session_close(g, &g->sess[i]);
  return held == g->idle && still == held && probe_failed == 0 ? 0 : 1;
}

/* --- Options ---------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [options] HOST:PORT\n"
          "  -c N     concurrent sessions (default 1)\n"
          "  -n N     messages in total (default 100)\n"
          "  -m N     messages per connection, 0 = unlimited (default 1)\n"
          "  -l N     body size in octets (default 1024)\n"
          "  -t S     time cap in seconds (default 60)\n"
          "  -P       do not pipeline even when PIPELINING is offered\n"
          "  -R RATE  paced: offer RATE messages per second in all (open loop;\n"
          "           latency counts from when each message was due)\n"
          "  -f ADDR  envelope sender (default loadgen@bench.invalid)\n"
          "  -r ADDR  recipient (default user@bench.test)\n"
          "  -H NAME  EHLO name (default loadgen.bench.invalid)\n"
          "  -I N     idle mode: hold N sessions after EHLO\n"
          "  -w S     idle mode: seconds to hold before probing (default 5)\n"
          "  -p N     idle mode: banner probes (default 20)\n"
          "  -M FILE  send the message in FILE instead of a generated one\n"
          "  -q       quiet: no per-session error lines\n"
          "  -S       also print where the latency goes, on stderr: a PHASES\n"
          "           line with p50/p99/max of connect to 220 (banner), 220 to\n"
          "           the EHLO reply (ehlo), a transaction's start to its 354\n"
          "           (envelope) and 354 to the 250 after the dot (content)\n");
  exit(2);
}

static void parse_address(Gen *g, const char *arg) {
  char host[256];
  const char *colon = strrchr(arg, ':');
  if (!colon || (size_t)(colon - arg) >= sizeof host)
    die("address must be HOST:PORT: %s", arg);
  memcpy(host, arg, (size_t)(colon - arg));
  host[colon - arg] = '\0';
  char *h = host;
  if (h[0] == '[' && h[strlen(h) - 1] == ']') {
    h[strlen(h) - 1] = '\0';
    h++;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  struct addrinfo *ai;
  if (getaddrinfo(h, colon + 1, &hints, &ai) != 0)
    die("not a numeric address: %s", arg);
  memcpy(&g->addr, ai->ai_addr, ai->ai_addrlen);
  g->addr_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  /* benchmarks stay on this machine */
  int loopback = 0;
  if (g->addr.ss_family == AF_INET) {
    uint32_t a = ntohl(((struct sockaddr_in *)&g->addr)->sin_addr.s_addr);
    loopback = (a >> 24) == 127;
  } else if (g->addr.ss_family == AF_INET6) {
    loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&g->addr)->sin6_addr);
  }
  if (!loopback)
    die("refusing a non-loopback target: %s", arg);
}

int main(int argc, char **argv) {
  Gen g = {.sessions = 1, .total = 100, .per_conn = 1, .size = 1024,
           .time_cap = 60, .from = "loadgen@bench.invalid",
           .rcpt = "user@bench.test", .helo = "loadgen.bench.invalid",
           .hold = 5, .probes = 20};
  int opt;
  while ((opt = getopt(argc, argv, "c:n:m:l:t:PR:f:r:H:I:w:p:qM:S")) != -1) {
    switch (opt) {
    case 'c': g.sessions = atoi(optarg); break;
    case 'n': g.total = atol(optarg); break;
    case 'm': g.per_conn = atoi(optarg); break;
    case 'l': g.size = (size_t)atol(optarg); break;
    case 't': g.time_cap = atof(optarg); break;
    case 'P': g.no_pipelining = 1; break;
    case 'R': g.rate = atof(optarg); break;
    case 'f': g.from = optarg; break;
    case 'r': g.rcpt = optarg; break;
    case 'H': g.helo = optarg; break;
    case 'I': g.idle = atoi(optarg); break;
    case 'w': g.hold = atof(optarg); break;
    case 'p': g.probes = atoi(optarg); break;
    case 'q': g.quiet = 1; break;
    case 'M': g.message_file = optarg; break;
    case 'S': g.phases = 1; break;
    default: usage();
    }
  }
  if (optind + 1 != argc)
    usage();
  if (g.sessions < 1 || g.sessions > 100000 || g.total < 0 || g.per_conn < 0 ||
      g.time_cap <= 0 || g.rate < 0 || g.rate > 1e6 || g.idle < 0 || g.idle > 100000 || g.probes < 0 ||
      g.size > 64 * 1024 * 1024)
    die("option out of range");
  parse_address(&g, argv[optind]);

  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  g.nsess = g.idle ? g.idle : g.sessions;
  g.sess = calloc((size_t)g.nsess, sizeof *g.sess);
  if (!g.sess)
    die("out of memory");
  for (int i = 0; i < g.nsess; i++)
    g.sess[i].index = i;
  g.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g.epfd < 0)
    die("epoll_create1: %s", strerror(errno));
  if (g.message_file)
    load_message(&g);
  else
    build_message(&g);
  return g.idle ? run_idle(&g) : run_send(&g);
}
