/* slowsend.c - many SMTP sessions sending one large message slowly, while
 * fresh clients time their banners.
 *
 *   slowsend [-c SESSIONS] [-s OCTETS] [-d SECONDS] [-M FILE] [-p MS]
 *            [-t CAP] [-f FROM] [-r RCPT] HOST:PORT
 *
 * Each of SESSIONS connections says EHLO, MAIL, RCPT and DATA, then sends
 * its message paced evenly over SECONDS (the body becomes due at a steady
 * rate from the 354 on), then the dot, waits for the reply and quits.  The
 * message is FILE (header and body, CRLF lines, no line starting with a
 * dot), or a generated one of OCTETS octets of 80-octet lines.  Every MS
 * milliseconds a probe connects and times connect() to its 220 banner; a
 * probe that starts while every session is in the middle of its message
 * counts as "loaded".
 *
 * One thread, one epoll set; every loop is bounded by the time cap (-t).
 * Output: progress on stderr, one "RESULT key=value ..." line on stdout
 * (banner figures in milliseconds).  Exit status 0 when every message got
 * a 250, 1 otherwise, 2 on a usage error.  Used by bench/overload.py
 * --slow; build: cc -O2 -o slowsend slowsend.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROBES 100000
#define CHUNK (64 * 1024)
#define MAX_CONNECTING 100

typedef enum {
  S_CONNECTING, S_BANNER, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_BODY, S_EOM,
  S_QUIT, S_DONE,
} Step;

typedef struct {
  int fd;
  int probe;      /* a banner probe, not a sender */
  Step step;
  double started; /* connect() for probes, the 354 for senders */
  size_t sent;    /* message octets written */
  int blocked;    /* waiting for EPOLLOUT */
  char in[4096];
  size_t in_len;
  int ok;
} Conn;

static struct {
  struct addrinfo *addr;
  int sessions;
  size_t size;
  double spread, cap, probe_every;
  const char *from, *rcpt, *file;
  char *message;
  size_t message_len;
  int epfd;
  int connecting, in_body, done, ok;
  double probes[MAX_PROBES], loaded[MAX_PROBES];
  int nprobes, nloaded;
} g = {.sessions = 100, .size = 4 << 20, .spread = 30, .cap = 600,
       .probe_every = 200, .from = "slow@client.test.example",
       .rcpt = "bob@example.org"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("slowsend: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(2);
}

static void build_message(void) {
  if (g.file != NULL) {
    int fd = open(g.file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
      die("%s: %s", g.file, strerror(errno));
    g.message = malloc(st.st_size);
    if (g.message == NULL || read(fd, g.message, st.st_size) != st.st_size)
      die("%s: cannot read", g.file);
    g.message_len = st.st_size;
    close(fd);
    return;
  }
  static const char header[] = "Subject: slow and large\r\n\r\n";
  size_t lines = g.size / 80;
  g.message_len = sizeof header - 1 + lines * 80;
  g.message = malloc(g.message_len);
  if (g.message == NULL)
    die("out of memory");
  memcpy(g.message, header, sizeof header - 1);
  for (size_t i = 0; i < lines; i++) {
    char *line = g.message + sizeof header - 1 + i * 80;
    memset(line, 'y', 78);
    line[0] = 'a' + i % 26;
    memcpy(line + 78, "\r\n", 2);
  }
}

static void watch(Conn *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                           .data.ptr = c};
  epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void finish(Conn *c, int ok) {
  if (c->step == S_BODY || c->step == S_EOM)
    g.in_body--;
  if (!c->probe) {
    g.done++;
    g.ok += ok;
    if (!ok)
      fprintf(stderr, "slowsend: a session failed at step %d\n", c->step);
  }
  c->step = S_DONE;
  epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->probe)
    free(c); /* senders are freed by the main loop's walk */
}

static Conn *connect_one(int probe) {
  int fd = socket(g.addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0)
    die("socket: %s", strerror(errno));
  Conn *c = calloc(1, sizeof *c);
  c->fd = fd;
  c->probe = probe;
  c->started = now();
  if (connect(fd, g.addr->ai_addr, g.addr->ai_addrlen) < 0 &&
      errno != EINPROGRESS)
    die("connect: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev);
  if (!probe)
    g.connecting++;
  return c;
}

static int send_text(Conn *c, const char *format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line, format, args);
  va_end(args);
  return send(c->fd, line, n, MSG_NOSIGNAL) == n;
}

/* Writes what is due of the message (all of it at once for a probe's
 * nothing); then the dot. */
static void pump(Conn *c, double t) {
  double share = g.spread > 0 ? (t - c->started) / g.spread : 1;
  size_t due = share >= 1 ? g.message_len : (size_t)(share * g.message_len);
  while (!c->blocked && c->sent < due) {
    size_t n = due - c->sent < CHUNK ? due - c->sent : CHUNK;
    ssize_t w = send(c->fd, g.message + c->sent, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      c->blocked = 1;
      watch(c, 1);
    } else if (w <= 0) {
      finish(c, 0);
      return;
    } else {
      c->sent += w;
    }
  }
  if (c->sent == g.message_len && c->step == S_BODY) {
    if (!send_text(c, ".\r\n")) {
      finish(c, 0);
      return;
    }
    c->step = S_EOM;
  }
}

/* One complete reply line arrived (the last line of a reply). */
static void on_reply(Conn *c, int code, double t) {
  if (c->probe) {
    if (code == 220 && g.nprobes < MAX_PROBES) {
      g.probes[g.nprobes++] = t - c->started;
      if (c->ok && g.nloaded < MAX_PROBES)
        g.loaded[g.nloaded++] = t - c->started;
    }
    send_text(c, "QUIT\r\n");
    finish(c, 1);
    return;
  }
  static const int wanted[] = {
      [S_BANNER] = 220, [S_EHLO] = 250, [S_MAIL] = 250, [S_RCPT] = 250,
      [S_DATA] = 354, [S_EOM] = 250, [S_QUIT] = 221};
  if (c->step > S_QUIT || code != wanted[c->step]) {
    fprintf(stderr, "slowsend: reply %d at step %d\n", code, c->step);
    finish(c, 0);
    return;
  }
  switch (c->step) {
  case S_BANNER: c->step = S_EHLO; send_text(c, "EHLO slow.client.test.example\r\n"); break;
  case S_EHLO: c->step = S_MAIL; send_text(c, "MAIL FROM:<%s>\r\n", g.from); break;
  case S_MAIL: c->step = S_RCPT; send_text(c, "RCPT TO:<%s>\r\n", g.rcpt); break;
  case S_RCPT: c->step = S_DATA; send_text(c, "DATA\r\n"); break;
  case S_DATA:
    c->step = S_BODY;
    c->started = t;
    g.in_body++;
    break;
  case S_EOM:
    g.in_body--;
    c->ok = 1;
    c->step = S_QUIT;
    send_text(c, "QUIT\r\n");
    break;
  case S_QUIT: finish(c, 1); break;
  default: break;
  }
}

static void on_readable(Conn *c, double t) {
  ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n <= 0) {
    finish(c, c->ok);
    return;
  }
  c->in_len += n;
  char *line = c->in, *end;
  while ((end = memchr(line, '\n', c->in + c->in_len - line)) != NULL) {
    int last = end - line >= 4 && line[3] == ' ';
    int code = atoi(line);
    line = end + 1;
    if (last) {
      int probe = c->probe;
      on_reply(c, code, t);
      if (probe || c->step == S_DONE)
        return; /* a probe is freed; a finished sender reads no more */
    }
  }
  c->in_len = c->in + c->in_len - line;
  memmove(c->in, line, c->in_len);
  if (c->in_len == sizeof c->in)
    finish(c, 0);
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *name, double *v, int n) {
  if (n == 0) {
    printf(" %s_probes=0", name);
    return;
  }
  qsort(v, n, sizeof *v, compare);
  printf(" %s_probes=%d %s_p50_ms=%.1f %s_p99_ms=%.1f %s_max_ms=%.1f", name,
         n, name, v[n / 2] * 1000, name, v[(int)(n * 0.99)] * 1000, name,
         v[n - 1] * 1000);
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "c:s:d:M:p:t:f:r:")) != -1) {
    switch (opt) {
    case 'c': g.sessions = atoi(optarg); break;
    case 's': g.size = strtoull(optarg, NULL, 10); break;
    case 'd': g.spread = atof(optarg); break;
    case 'M': g.file = optarg; break;
    case 'p': g.probe_every = atof(optarg); break;
    case 't': g.cap = atof(optarg); break;
    case 'f': g.from = optarg; break;
    case 'r': g.rcpt = optarg; break;
    default: die("usage: see the comment at the top of slowsend.c");
    }
  }
  if (optind != argc - 1 || g.sessions < 1)
    die("usage: slowsend [options] HOST:PORT");
  char *host = strdup(argv[optind]), *port = strrchr(host, ':');
  if (port == NULL)
    die("HOST:PORT expected");
  *port++ = '\0';
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  if (getaddrinfo(host, port, &hints, &g.addr) != 0)
    die("cannot resolve %s", host);
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  build_message();
  g.epfd = epoll_create1(0);

  Conn **senders = calloc(g.sessions, sizeof *senders);
  int opened = 0;
  double start = now(), next_probe = start;
  struct epoll_event events[256];
  while (g.done < g.sessions && now() - start < g.cap) {
    while (opened < g.sessions && g.connecting < MAX_CONNECTING)
      senders[opened++] = connect_one(0);
    int n = epoll_wait(g.epfd, events, 256, 10);
    double t = now();
    for (int i = 0; i < n; i++) {
      Conn *c = events[i].data.ptr;
      if (c->step == S_CONNECTING) {
        if (!c->probe)
          g.connecting--;
        c->step = S_BANNER;
        watch(c, 0);
      }
      if ((events[i].events & EPOLLOUT) && c->blocked) {
        c->blocked = 0;
        watch(c, 0);
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c, t);
    }
    /* Senders in the body: walk them (they stay allocated until done). */
    for (int i = 0; i < opened; i++) {
      Conn *c = senders[i];
      if (c == NULL)
        continue;
      if (c->step == S_DONE) {
        free(c);
        senders[i] = NULL;
        continue;
      }
      if (c->step == S_BODY)
        pump(c, t);
    }
    if (t >= next_probe) {
      Conn *probe = connect_one(1);
      probe->ok = g.in_body == g.sessions; /* "loaded" */
      next_probe = t + g.probe_every / 1000;
    }
  }
  printf("RESULT sessions=%d ok=%d failed=%d seconds=%.1f octets=%zu",
         g.sessions, g.ok, g.sessions - g.ok, now() - start, g.message_len);
  report("banner", g.probes, g.nprobes);
  report("loaded", g.loaded, g.nloaded);
  printf("\n");
  return g.ok == g.sessions ? 0 : 1;
}
