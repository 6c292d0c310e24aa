/* wakecost.c - what one sleep and wake-up costs on this machine, in CPU.
 *
 * An MTA at one session is round-trip bound: for each message its main
 * loop sleeps in poll() and is woken about ten times (each client command,
 * each reply of the next hop, each hand-over to and from a disk thread).
 * How much CPU that costs depends on the machine far more than on the
 * code: on bare metal typically a few microseconds, in a virtual machine
 * whose wake-ups go through the hypervisor (inter-processor interrupts,
 * idle exits, timer reprogramming) several times that.  bench/run prints this
 * probe's figures beside its CPU-per-message figures so that they can be
 * read against the machine.
 *
 * Method: a parent and a child process play ping-pong over a socketpair,
 * each waiting in poll() as an event loop does; the parent's CPU time
 * (getrusage) per round trip is one sleep, one wake-up of the peer and
 * one send and receive.  Three placements: both on CPU 0 ("same"), on
 * CPUs 0 and 1 ("cross", needs two CPUs), and wherever the scheduler puts
 * them ("free").  Bounded: -n round trips per placement (default 20,000),
 * each placement stops after 10 s.
 *
 * Output: one line on stdout, "WAKECOST same_us=.. cross_us=.. free_us=..
 * free_wall_us=..", microseconds of CPU per round trip (wall time per
 * round trip for the free placement); a placement that cannot run (one
 * CPU, affinity refused) prints "-".  Exit status 0, or 2 on a usage
 * error.  Build: cc -O2 -o wakecost wakecost.c
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PLACEMENT_TIME_CAP_S 10.0
#define POLL_TIMEOUT_MS 1000

typedef struct {
  double cpu_us;  /* the parent's CPU per round trip */
  double wall_us; /* wall time per round trip */
  int ok;
} WakeCost;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The CPUs the process may use at start: "free" placements get them. */
static cpu_set_t wakecost_allowed;

/* Pins the calling process to `cpu`; -1 gives it back every CPU it was
 * allowed at start.  0 on success. */
static int wakecost_pin(int cpu) {
  if (cpu < 0)
    return sched_setaffinity(0, sizeof wakecost_allowed, &wakecost_allowed);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set);
}

/* Waits for the peer's byte and reads it, as an event loop would.
 * 0 on success, -1 when the peer is gone or silent for a second. */
static int wakecost_receive(int fd) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  char byte;
  if (poll(&pfd, 1, POLL_TIMEOUT_MS) != 1)
    return -1;
  return read(fd, &byte, 1) == 1 ? 0 : -1;
}

static int wakecost_send(int fd) {
  char byte = 'x';
  return write(fd, &byte, 1) == 1 ? 0 : -1;
}

/* The child answers every byte until the parent closes its end. */
static void wakecost_echo(int fd, int cpu) {
  if (wakecost_pin(cpu) != 0)
    _exit(1);
  while (wakecost_receive(fd) == 0 && wakecost_send(fd) == 0)
    ;
  _exit(0);
}

static WakeCost wakecost_measure(long rounds, int parent_cpu, int child_cpu) {
  WakeCost cost = {0};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return cost;
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    wakecost_echo(sv[1], child_cpu);
  }
  close(sv[1]);
  if (child < 0 || wakecost_pin(parent_cpu) != 0) {
    close(sv[0]);
    if (child > 0)
      waitpid(child, NULL, 0);
    return cost;
  }
  /* A few round trips first: the child may still be moving to its CPU. */
  long warm = rounds / 20 + 1, done = 0;
  for (long i = 0; i < warm; i++)
    if (wakecost_send(sv[0]) != 0 || wakecost_receive(sv[0]) != 0)
      goto out;
  double start = now_s(), cpu_start = cpu_s();
  for (; done < rounds; done++) {
    if (wakecost_send(sv[0]) != 0 || wakecost_receive(sv[0]) != 0)
      break;
    if ((done & 255) == 255 && now_s() - start > PLACEMENT_TIME_CAP_S)
      break;
  }
  double wall = now_s() - start, cpu = cpu_s() - cpu_start;
  if (done > 0) {
    cost.cpu_us = cpu / (double)done * 1e6;
    cost.wall_us = wall / (double)done * 1e6;
    cost.ok = 1;
  }
out:
  close(sv[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    cost.ok = 0;
  wakecost_pin(-1);
  return cost;
}

static void wakecost_print(const char *key, const WakeCost *cost, int wall) {
  if (!cost->ok)
    printf(" %s=-", key);
  else
    printf(" %s=%.1f", key, wall ? cost->wall_us : cost->cpu_us);
}

int main(int argc, char **argv) {
  long rounds = 20000;
  int opt;
  while ((opt = getopt(argc, argv, "n:")) != -1) {
    if (opt != 'n')
      goto usage;
    rounds = atol(optarg);
  }
  if (optind != argc || rounds < 1 || rounds > 10000000)
    goto usage;
  signal(SIGPIPE, SIG_IGN);
  if (sched_getaffinity(0, sizeof wakecost_allowed, &wakecost_allowed) != 0)
    CPU_ZERO(&wakecost_allowed);
  int two = CPU_ISSET(0, &wakecost_allowed) && CPU_ISSET(1, &wakecost_allowed);
  WakeCost same = {0}, cross = {0};
  if (CPU_ISSET(0, &wakecost_allowed))
    same = wakecost_measure(rounds, 0, 0);
  if (two)
    cross = wakecost_measure(rounds, 0, 1);
  WakeCost free_ = wakecost_measure(rounds, -1, -1);
  printf("WAKECOST");
  wakecost_print("same_us", &same, 0);
  wakecost_print("cross_us", &cross, 0);
  wakecost_print("free_us", &free_, 0);
  wakecost_print("free_wall_us", &free_, 1);
  printf("\n");
  return 0;
usage:
  fprintf(stderr, "usage: wakecost [-n ROUND_TRIPS]\n");
  return 2;
}
