#!/usr/bin/python3
"""bench.py - Postilion and Postfix side by side, in one run (see README.md).

Started by bench/run.  Steps:
  1. check preconditions (root, Debian's postfix tools, a C compiler,
     gnuplot, free loopback ports) and say what is missing;
  2. build bench/loadgen with cc -O2, and postiliond (meson, release)
     unless --postiliond names a binary;
  3. measure each generator's own ceiling against smtp-sink;
  4. run the scenarios (accept, relay, idle, plugins) against a private
     Postfix instance and postiliond, each bounded in messages and time;
  5. write bench/results/: throughput.csv, idle.csv, summary.md,
     throughput.png, env.txt.
A side that cannot run (postiliond not built, no outbound relay yet, a
plugin not built) is reported as "not available" with the reason; nothing
is ever estimated in its place.  Every server listens on 127.0.0.1 only and
is stopped at the end, also on errors and Ctrl-C.
"""
import argparse
import datetime
import os
import platform
import resource
import select
import shutil
import signal
import subprocess
import sys
import time

import mta
import milter_bench
import plugins_bench
import procstat
import report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

PORT_POSTFIX = 2625
PORT_POSTILION = 2725
PORT_POSTILION_B = 2726   # the second of an interleaved pair (plugins)
PORT_RELAY_SINK = 2925
PORT_CEILING_SINK = 2926
PORT_DNS = 2953

# Opening 5,000 sessions on Postfix forks 5,000 smtpd processes: ~1-2 min.
IDLE_RAMP_CAP_S = 150

SENDER = "loadgen@bench.invalid"
# --rate: loadgen offers this many messages per second (an open loop) in
# every run instead of sending as fast as the server answers; None: closed.
PACED_RATE = None
RCPT_LOCAL = "user@" + mta.BENCH_DOMAIN
RCPT_RELAY = "user@" + mta.RELAY_DOMAIN

# Messages per run.  Postfix needs ~5-8 s for these at its usual rates; the
# time cap bounds every run whatever happens.
PROFILES = {
    "full": dict(sizes=[1024, 65536], sessions=[1, 10, 50],
                 per_session=["1", "many"], idle=[1000, 5000],
                 count={1024: 4000, 65536: 1500}, single_session_div=3,
                 ceiling_factor=3, relay_factor=0.5, time_cap=20.0, idle_hold=4.0, probes=20,
                 warm_up_per_session=4, plugin_count=2000),
    "quick": dict(sizes=[1024], sessions=[50], per_session=["1", "many"],
                  idle=[1000], count={1024: 2000, 65536: 600},
                  single_session_div=3, ceiling_factor=3, relay_factor=0.5,
                  time_cap=10.0, idle_hold=2.0,
                  probes=10, warm_up_per_session=4, plugin_count=600),
}

ALL_SCENARIOS = ["ceiling", "accept", "relay", "idle", "plugins", "milter"]
# run only when named: postiliond under callgrind (slow, not a throughput)
EXTRA_SCENARIOS = ["profile"]


def log(msg):
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", flush=True)


# --- Preconditions --------------------------------------------------------

def check_preconditions(args):
    """Returns a list of (what is missing, how to fix it); empty when fine."""
    missing = []
    if os.geteuid() != 0:
        missing.append(("root", "run as root: Postfix's master and smtp-sink "
                        "need it to drop to their users"))
    for tool, pkg in (("postfix", "postfix"), ("postconf", "postfix"),
                      ("postsuper", "postfix"), ("smtp-source", "postfix"),
                      ("smtp-sink", "postfix")):
        if not shutil.which(tool):
            missing.append((tool, f"apt-get install -y {pkg} (preseed "
                            "'postfix postfix/main_mailer_type select No "
                            "configuration' first: see README.md)"))
    if not shutil.which("cc"):
        missing.append(("cc", "apt-get install -y gcc"))
    try:
        import pwd
        pwd.getpwnam("postfix")
        pwd.getpwnam("nobody")
    except KeyError:
        missing.append(("user postfix", "the postfix package creates it"))
    if not shutil.which("dnsmasq"):
        missing.append(("dnsmasq", "apt-get install -y dnsmasq-base (postiliond's "
                        "lookups go to it on loopback, never to the system's "
                        "resolvers)"))
    if "plugins" in args.scenarios:
        for path, pkg in plugins_bench.missing_packages(args.chains):
            missing.append((path, "bash scripts/setup-debian.sh (installs every "
                            f"bench package), or apt-get install -y {pkg}"))
    if args.postiliond is None and not args.no_postilion:
        for tool in ("meson", "ninja"):
            if not shutil.which(tool):
                missing.append((tool, f"apt-get install -y {tool} (or pass "
                                "--postiliond PATH)"))
    return missing


def busy_ports():
    """Like check_preconditions(), for the bench's ports; asked once the
    lock is held (a run in progress holds them too, and is waited for)."""
    return [(f"127.0.0.1:{port} free", "another server listens there: stop "
             "it (an earlier bench run? see README.md)")
            for port in (PORT_POSTFIX, PORT_POSTILION, PORT_POSTILION_B,
                         PORT_RELAY_SINK, PORT_CEILING_SINK, PORT_DNS)
            if mta.port_open(port)]


def soft_warnings():
    notes = []
    if not shutil.which("gnuplot"):
        notes.append("gnuplot not found: no throughput.png (apt-get install -y "
                     "gnuplot-nox)")
    return notes


def check_filesystem(workdir):
    """The queues must be on a real disk: refuse tmpfs."""
    out = subprocess.run(["stat", "-f", "-c", "%T", workdir],
                         stdout=subprocess.PIPE, text=True).stdout.strip()
    if out in ("tmpfs", "ramfs"):
        sys.exit(f"bench: {workdir} is on {out}: the queues must be on disk; "
                 "pass --workdir on a disk filesystem")
    return out


# --- Builds ---------------------------------------------------------------

def build_tool(workdir, name):
    """Compiles bench/NAME.c (loadgen, wakecost) into the workdir."""
    out = os.path.join(workdir, name)
    src = os.path.join(HERE, name + ".c")
    r = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", out, src],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: building {name} failed:\n" + r.stdout)
    return out


def build_loadgen(workdir):
    return build_tool(workdir, "loadgen")


def wake_probe(wakecost):
    """CPU µs per sleep and wake-up on this machine (bench/wakecost.c):
    "same / cross / free" as printed in the report, "?" when it fails."""
    try:
        r = subprocess.run([wakecost], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=60)
        fields = dict(f.split("=", 1) for f in r.stdout.split()[1:])
        return " / ".join(fields.get(k, "-") for k in
                          ("same_us", "cross_us", "free_us"))
    except (OSError, subprocess.SubprocessError, ValueError):
        return "?"


def build_postiliond(builddir):
    """Returns (path, None) or (None, reason)."""
    logf = os.path.join(builddir + ".log")
    os.makedirs(os.path.dirname(builddir), exist_ok=True)
    with open(logf, "w") as f:
        if not os.path.exists(os.path.join(builddir, "build.ninja")):
            # a half-made build dir from a failed setup: start over
            shutil.rmtree(builddir, ignore_errors=True)
            r = subprocess.run(["meson", "setup", "--buildtype=release",
                                "-Dtests=false", builddir, REPO],
                               stdout=f, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                return None, f"meson setup failed (see {logf})"
        r = subprocess.run(["ninja", "-C", builddir, "postiliond"],
                           stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return None, f"building postiliond failed (see {logf})"
        # Everything else too: the plugins and every program a plugin
        # needs (plugins/spf's pst-spf-eval, ...).  A plugin that does not
        # build is a bench that cannot run its chain: stop here, loudly.
        r = subprocess.run(["ninja", "-C", builddir],
                           stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            sys.exit(f"bench: building the plugins in {builddir} failed "
                     f"(see {logf}); a chain that cannot run fails the bench")
    return os.path.join(builddir, "postiliond"), None


# --- Generators -----------------------------------------------------------

def generator_command(gen, loadgen, port, size, sessions, per_session, count,
                      cap, rcpt, sender=SENDER, message_file=None):
    if gen == "smtp-source":
        cmd = ["smtp-source", "-c", "-s", str(sessions), "-m", str(count),
               "-l", str(size), "-f", sender, "-t", rcpt,
               "-M", "smtp-source.bench.invalid"]
        if per_session == "many":
            cmd.append("-d")
        return cmd + [f"127.0.0.1:{port}"]
    # A server may ask for a message of its own (plugins_bench.py: the
    # DKIM verification chain sends a signed message).
    message = ["-M", message_file] if message_file else []
    paced = ["-R", f"{PACED_RATE:g}"] if PACED_RATE else []
    return [loadgen, "-q", "-c", str(sessions), "-n", str(count),
            "-m", "1" if per_session == "1" else "0", "-l", str(size),
            "-t", str(cap), "-f", sender, "-r", rcpt, *message, *paced,
            f"127.0.0.1:{port}"]


def parse_kv(line):
    out = {}
    for item in line.split()[1:]:
        if "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
    return out


def run_generator(cmd, gen, cap):
    """Runs one generator to completion (killed at cap + 15 s)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=mta.raise_nofile)
    killed = False
    try:
        out, err = proc.communicate(timeout=cap + 15)
    except subprocess.TimeoutExpired:
        killed = True
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    t1 = time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    res = dict(elapsed=t1 - t0, rc=proc.returncode, killed=killed,
               gen_cpu=(ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
               stderr=err.strip()[-500:])
    if gen == "smtp-source":
        counts = [int(x) for x in out.replace("\r", "\n").split() if x.isdigit()]
        res["ok"] = counts[-1] if counts else 0
        res["lat_p50"] = res["lat_p99"] = res["lat_write_p99"] = None
    else:
        line = next((l for l in out.splitlines() if l.startswith("RESULT ")), "")
        kv = parse_kv(line)
        res["ok"] = int(kv.get("ok", 0))
        res["failed"] = int(kv.get("failed", 0))
        res["lat_p50"] = float(kv["lat_p50_ms"]) if "lat_p50_ms" in kv else None
        res["lat_p99"] = float(kv["lat_p99_ms"]) if "lat_p99_ms" in kv else None
        res["lat_write_p99"] = (float(kv["lat_write_p99_ms"])
                                if "lat_write_p99_ms" in kv else None)
    return res


# --- One measured run -----------------------------------------------------

MEDIAN_FIELDS = ("msgs_per_s", "cpu_ms_per_msg", "mta_cpu_s", "gen_cpu_s",
                 "elapsed_s", "peak_rss_mib", "peak_pss_mib", "lat_p50_ms",
                 "lat_p99_ms", "lat_write_p99_ms")
SPREAD_FIELDS = ("msgs_per_s", "cpu_ms_per_msg", "lat_p99_ms")


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return None
    mid = n // 2
    return values[mid] if n % 2 else round((values[mid - 1] + values[mid]) / 2, 3)


def combine_runs(runs):
    """One row from repeated runs: the last run's identity and status (the
    worst status when a run failed), each figure's median, and the range of
    the rate, CPU cost and p99 latency.  spread_pct = (max - min) / median
    of the rate."""
    row = dict(runs[-1])
    row["runs"] = len(runs)
    bad = [r for r in runs if r["status"] not in ("ok", "time-capped")]
    if bad:
        row.update(status=bad[0]["status"], note=bad[0].get("note", ""))
    for field in MEDIAN_FIELDS:
        values = [r[field] for r in runs if r.get(field) is not None]
        row[field] = median(values) if values else None
    for field in SPREAD_FIELDS:
        values = [r[field] for r in runs if r.get(field) is not None]
        if values:
            row[field + "_min"], row[field + "_max"] = min(values), max(values)
    rate = row.get("msgs_per_s")
    if rate and "msgs_per_s_min" in row:
        row["spread_pct"] = round(100.0 * (row["msgs_per_s_max"] -
                                           row["msgs_per_s_min"]) / rate, 1)
    return row


class Bench:
    def __init__(self, args, profile, workdir, loadgen):
        self.args = args
        self.p = profile
        self.workdir = workdir
        self.loadgen = loadgen
        self.rows = []
        self.ports = dict(postfix=PORT_POSTFIX, postilion=PORT_POSTILION,
                          postilion_b=PORT_POSTILION_B, dns=PORT_DNS)
        self.idle_rows = []
        self.notes = []

    def count_for(self, size, sessions, scenario):
        n = self.p["count"].get(size, 1500 if size > 4096 else 4000)
        if scenario in ("plugins", "milter"):
            return self.p["plugin_count"]
        if scenario == "ceiling":
            n *= self.p["ceiling_factor"]
        if scenario == "relay":
            n = int(n * self.p["relay_factor"])
        return n // self.p["single_session_div"] if sessions == 1 else n

    def base_row(self, scenario, server_name, gen, size, sessions, per_session,
                 chain=""):
        if PACED_RATE and gen == "loadgen":
            gen = f"loadgen paced {PACED_RATE:g}/s"
        return dict(scenario=scenario, chain=chain, mta=server_name, generator=gen,
                    size=size, sessions=sessions, per_session=per_session)

    def unavailable(self, scenario, server_name, gen, size, sessions,
                    per_session, reason, chain=""):
        row = self.base_row(scenario, server_name, gen, size, sessions, per_session,
                            chain)
        row.update(status="not available", note=reason)
        self.rows.append(row)

    def measure(self, scenario, server, gen, size, sessions, per_session,
                rcpt, sink=None, sender=SENDER, chain=""):
        """Measures one combination --repeat times (default 3) and appends
        one row: the median of each figure, with the smallest and largest
        rate and CPU cost beside it (`*_min`, `*_max`, `spread_pct`), so a
        ratio that moves between runs shows as noise.  Each kept run lasts
        at least --min-seconds (default 10): when a run at the profile's
        message count is shorter, it is taken as a calibration (not kept)
        and the count is scaled up for the runs that are."""
        count = self.count_for(size, sessions, scenario)
        runs, calibrated = [], False
        while len(runs) < self.args.repeat:
            row = self.measure_once(scenario, server, gen, size, sessions,
                                    per_session, rcpt, sink, sender, chain, count)
            usable = row["status"] in ("ok", "time-capped")
            short = row["elapsed_s"] < self.args.min_seconds
            if usable and short and not calibrated and row["ok"] > 0:
                calibrated = True
                scale = self.args.min_seconds * 1.3 / max(row["elapsed_s"], 0.05)
                count = int(count * scale) + 1
                log(f"    calibration: {row['elapsed_s']} s, next runs send {count}")
                continue
            runs.append(row)
            if not usable:
                break
        row = combine_runs(runs)
        self.rows.append(row)
        log(f"  {scenario:7} {chain + ' ' if chain else ''}{server.name:9} {gen:11} {size:>6}B "
            f"{sessions:>2}x{per_session:4} median {row['msgs_per_s']} msg/s "
            f"({row.get('msgs_per_s_min')}-{row.get('msgs_per_s_max')}, "
            f"spread {row.get('spread_pct')}%) of {len(runs)} runs [{row['status']}]")
        return row

    def measure_interleaved(self, scenario, entries, gen, size, sessions,
                            per_session, rcpt, sender=SENDER):
        """Measures several servers (entries: [(server, chain)], all started
        and warmed up) in turns within one bench run, and appends one row
        per entry as measure() does.  Round i measures every entry once, in
        the order given for even i and reversed for odd i (A B, B A, A B:
        a load that drifts through the run weighs on both alike); each
        entry is calibrated (one unkept run) to last --min-seconds first.
        The first entry is the base: every later entry's row gets the ratio
        of its CPU per message to the base's of the same round
        (`cpu_vs`, `cpu_share_pct` = median - 1, `cpu_share_pct_min`/`_max`),
        which cancels whatever the machine's load did between rounds.  A
        run shorter than --min-seconds is taken again with a larger count."""
        counts = []
        for server, chain in entries:
            count = self.count_for(size, sessions, scenario)
            row = self.measure_once(scenario, server, gen, size, sessions,
                                    per_session, rcpt, None, sender, chain, count)
            if row["status"] in ("ok", "time-capped") and row["ok"] > 0 \
                    and row["elapsed_s"] < self.args.min_seconds:
                count = int(count * self.args.min_seconds * 1.3 /
                            max(row["elapsed_s"], 0.05)) + 1
                log(f"    calibration {chain}: {row['elapsed_s']} s, next runs send {count}")
            counts.append(count)
        runs = [[] for _ in entries]
        for i in range(self.args.repeat):
            order = list(range(len(entries)))
            if i % 2:
                order.reverse()
            for j in order:
                server, chain = entries[j]
                # A run cut short by a quieter minute is not kept: the
                # count grows and the run is taken again (twice at most).
                for attempt in range(3):
                    row = self.measure_once(scenario, server, gen, size, sessions,
                                            per_session, rcpt, None, sender, chain,
                                            counts[j])
                    if row["status"] not in ("ok", "time-capped") or row["ok"] == 0 \
                            or row["elapsed_s"] >= self.args.min_seconds or attempt == 2:
                        break
                    counts[j] = int(counts[j] * self.args.min_seconds * 1.3 /
                                    max(row["elapsed_s"], 0.05)) + 1
                    log(f"    {chain}: {row['elapsed_s']} s is short of "
                        f"{self.args.min_seconds} s, again with {counts[j]}")
                runs[j].append(row)
        rows = []
        for j, (server, chain) in enumerate(entries):
            row = combine_runs(runs[j])
            if j > 0:
                ratios = [r["cpu_ms_per_msg"] / b["cpu_ms_per_msg"]
                          for r, b in zip(runs[j], runs[0])
                          if r.get("cpu_ms_per_msg") and b.get("cpu_ms_per_msg")]
                if ratios:
                    row.update(cpu_vs=entries[0][1],
                               cpu_share_pct=round(100 * (median(ratios) - 1), 1),
                               cpu_share_pct_min=round(100 * (min(ratios) - 1), 1),
                               cpu_share_pct_max=round(100 * (max(ratios) - 1), 1))
                    log(f"  {chain} against {entries[0][1]}: CPU per message "
                        + ", ".join(f"{100 * (x - 1):+.1f}%" for x in ratios)
                        + f" (median {row['cpu_share_pct']:+.1f}%)")
            self.rows.append(row)
            rows.append(row)
            log(f"  {scenario:7} {chain} {server.name:9} {gen:11} {size:>6}B "
                f"{sessions:>2}x{per_session:4} median {row['msgs_per_s']} msg/s, "
                f"cpu {row['cpu_ms_per_msg']} ms/msg ({row.get('cpu_ms_per_msg_min')}-"
                f"{row.get('cpu_ms_per_msg_max')}) of {len(runs[j])} interleaved runs "
                f"[{row['status']}]")
        return rows

    def measure_once(self, scenario, server, gen, size, sessions, per_session,
                     rcpt, sink, sender, chain, count):
        """Drives `server` once and returns a row with the figures.  The
        MTA's CPU and memory are those of its process tree, plus the trees
        of server.extra_roots() (milters) when it has that."""
        cap = max(self.p["time_cap"], self.args.min_seconds * 3)
        row = self.base_row(scenario, server.name, gen, size, sessions, per_session,
                            chain)
        extra = getattr(server, "extra_roots", lambda: [])
        roots = [server.pid] + extra()
        cmd = generator_command(gen, self.loadgen, server.port, size, sessions,
                                per_session, count, cap, rcpt, sender,
                                getattr(server, "message_file", None))
        sink_base = sink.received() if sink else 0
        queued_before = server.queued()[0] if sink is None and hasattr(server, "queued") else 0
        cpu0 = procstat.cpu_seconds(roots)
        with procstat.PeakSampler(roots) as sampler:
            t0 = time.monotonic()
            res = run_generator(cmd, gen, cap)
            end = t0 + res["elapsed"]
            if sink is not None:
                # end to end: until the sink has every accepted message
                target = sink_base + res["ok"]
                procstat.wait_for(lambda: sink.received() >= target, cap + 30)
                end = time.monotonic()
                row["delivered"] = sink.received() - sink_base
        cpu1 = procstat.cpu_seconds(roots)
        elapsed = end - t0
        done = row.get("delivered", res["ok"]) if sink else res["ok"]
        row.update(messages=count, ok=res["ok"], elapsed_s=round(elapsed, 3),
                   msgs_per_s=round(done / elapsed, 1) if elapsed > 0 else 0,
                   mta_cpu_s=round(cpu1 - cpu0, 3),
                   cpu_ms_per_msg=round((cpu1 - cpu0) * 1000 / done, 3) if done else None,
                   gen_cpu_s=round(res["gen_cpu"], 3),
                   peak_rss_mib=round(sampler.peak_kib / 1024, 1),
                   peak_pss_mib=round(sampler.peak_pss_kib / 1024, 1),
                   lat_p50_ms=res["lat_p50"], lat_p99_ms=res["lat_p99"],
                   lat_write_p99_ms=res["lat_write_p99"])
        status = "ok"
        if res["ok"] < count:
            # stopped by the time cap with no failure: the rate stands
            if gen == "loadgen":
                failed = res.get("failed", 0) > 0
            else:
                failed = res["rc"] != 0 and not res["killed"]
            status = "incomplete" if failed else "time-capped"
        if sink is None and hasattr(server, "queued"):
            queued = server.queued()[0] - queued_before
            row["queued"] = queued
            if queued != res["ok"]:
                status = "mismatch"
                row["note"] = f"{queued} queued for {res['ok']} accepted"
        if sink is not None and row["delivered"] < res["ok"]:
            status = "incomplete"
            row["note"] = f"sink got {row['delivered']} of {res['ok']}"
        if res["ok"] < count and res["stderr"]:
            row["note"] = (row.get("note", "") + " " + res["stderr"].splitlines()[-1])[:200]
        check = getattr(server, "verify_chain", None)
        if check is not None and status in ("ok", "time-capped"):
            problem = check()
            if problem:
                status = "unverified"
                row["note"] = problem
        row["status"] = status
        log(f"    run {count} msgs in {row['elapsed_s']} s: {row['msgs_per_s']} msg/s "
            f"cpu {row['cpu_ms_per_msg']} ms/msg rss {row['peak_rss_mib']} MiB "
            f"p50/p99 {row['lat_p50_ms']}/{row['lat_p99_ms']} ms [{status}]")
        return row

    def send_one(self, server, rcpt, sender=SENDER):
        """One message in one session, not measured (a chain's check)."""
        cmd = generator_command("loadgen", self.loadgen, server.port, 1024, 1, "1",
                                1, 30, rcpt, sender,
                                getattr(server, "message_file", None))
        return run_generator(cmd, "loadgen", 30)

    def warm_up(self, server, rcpt, sender=SENDER, drain=False):
        """Unmeasured traffic at the highest concurrency right after a
        start, so that no measured run pays for process start-up (Postfix
        forks its smtpd and cleanup pool, policyd-spf's Python starts)."""
        sessions = max(self.p["sessions"])
        n = sessions * self.p["warm_up_per_session"]
        cmd = generator_command("loadgen", self.loadgen, server.port, 1024, sessions,
                                "1", n, 30, rcpt, sender,
                                getattr(server, "message_file", None))
        run_generator(cmd, "loadgen", 30)
        if drain:
            # relay: let every warm-up message reach the sink, so that none
            # is counted in the measured run
            procstat.wait_for(lambda: sum(server.queued()) == 0, 60, 0.1)
        else:
            server.clear_queue()

    def combos(self):
        for size in self.p["sizes"]:
            for sessions in self.p["sessions"]:
                for per_session in self.p["per_session"]:
                    for gen in self.args.generators:
                        yield size, sessions, per_session, gen

    # --- scenarios -------------------------------------------------------

    def ceiling(self):
        log("ceiling: each generator against smtp-sink")
        sink = mta.Sink(PORT_CEILING_SINK, self.workdir)
        sink.start()
        try:
            sink.name, sink.pid = "smtp-sink", sink.proc.pid
            for size, sessions, per_session, gen in self.combos():
                self.measure("ceiling", sink, gen, size, sessions, per_session,
                             RCPT_LOCAL)
                # the sink keeps nothing: no queue to check
        finally:
            sink.stop()

    def accept(self, postilion_bin, postilion_reason):
        log("accept: mail for a local domain, queued and not delivered")
        pf = mta.Postfix(os.path.join(self.workdir, "postfix-accept"),
                         self.args.postfix_accept, PORT_POSTFIX)
        pf.setup()
        pf.start()
        self.versions["postfix"] = pf.version()
        self.warm_up(pf, RCPT_LOCAL)
        try:
            for size, sessions, per_session, gen in self.combos():
                pf.clear_queue()
                self.measure("accept", pf, gen, size, sessions, per_session,
                             RCPT_LOCAL)
        finally:
            pf.clear_queue()
            pf.stop()
        if postilion_bin is None:
            for size, sessions, per_session, gen in self.combos():
                self.unavailable("accept", "postilion", gen, size, sessions,
                                 per_session, postilion_reason)
            return
        pst = mta.Postilion(postilion_bin, os.path.join(self.workdir, "postilion-accept"),
                            "accept", PORT_POSTILION, PORT_DNS)
        pst.setup()
        self.versions["postilion"] = pst.version()
        for size, sessions, per_session, gen in self.combos():
            pst.start()  # a fresh process and an empty spool for every run
            try:
                self.warm_up(pst, RCPT_LOCAL)
                self.measure("accept", pst, gen, size, sessions, per_session,
                             RCPT_LOCAL)
            finally:
                pst.stop()

    def relay(self, postilion_bin, postilion_reason):
        log("relay: routed onward to smtp-sink, end to end")
        sink = mta.Sink(PORT_RELAY_SINK, self.workdir, counting=True)
        sink.start()
        try:
            pf = mta.Postfix(os.path.join(self.workdir, "postfix-relay"), "relay",
                             PORT_POSTFIX, sink_port=PORT_RELAY_SINK)
            pf.setup()
            pf.start()
            try:
                self.warm_up(pf, RCPT_RELAY, drain=True)
                for size, sessions, per_session, gen in self.combos():
                    self.measure("relay", pf, gen, size, sessions, per_session,
                                 RCPT_RELAY, sink=sink)
            finally:
                pf.clear_queue()
                pf.stop()
            reason = postilion_reason
            if postilion_bin is not None:
                reason = self.postilion_relays(postilion_bin, sink)
            if reason is not None:
                for size, sessions, per_session, gen in self.combos():
                    self.unavailable("relay", "postilion", gen, size, sessions,
                                     per_session, reason)
                return
            pst = mta.Postilion(postilion_bin, os.path.join(self.workdir, "postilion-relay"),
                                "relay", PORT_POSTILION, PORT_DNS,
                                sink_port=PORT_RELAY_SINK)
            pst.setup()
            for size, sessions, per_session, gen in self.combos():
                pst.start()
                try:
                    self.warm_up(pst, RCPT_RELAY, drain=True)
                    self.measure("relay", pst, gen, size, sessions, per_session,
                                 RCPT_RELAY, sink=sink)
                finally:
                    pst.stop()
        finally:
            sink.stop()

    def postilion_relays(self, binary, sink):
        """None when postiliond relays to a relayhost, else why not.

        Detected, never assumed: postiliond must accept a [delivery]
        relayhost in its configuration and one test message must then
        reach the sink within 10 seconds."""
        pst = mta.Postilion(binary, os.path.join(self.workdir, "postilion-relay-probe"),
                            "relay", PORT_POSTILION, PORT_DNS,
                                sink_port=PORT_RELAY_SINK)
        pst.setup()
        try:
            pst.start()
        except RuntimeError as e:
            first = [l for l in str(e).splitlines()[1:] if l.strip()][:1]
            return ("not available yet: postiliond refuses a [delivery] "
                    "relayhost" + (f" ({first[0].strip()[:120]})" if first else ""))
        try:
            base = sink.received()
            res = run_generator(generator_command("loadgen", self.loadgen,
                                                  PORT_POSTILION, 1024, 1, "1", 1,
                                                  10, RCPT_RELAY), "loadgen", 10)
            if res["ok"] != 1:
                return "not available yet: postiliond did not accept relay mail"
            if not procstat.wait_for(lambda: sink.received() > base, 10, 0.1):
                return ("not available yet: postiliond queued the message but "
                        "did not deliver it to the relayhost within 10 s")
            return None
        finally:
            pst.stop()

    def idle(self, postilion_bin, postilion_reason):
        log("idle: sessions held open after EHLO")
        servers = []
        pf = mta.Postfix(os.path.join(self.workdir, "postfix-idle"), "hold",
                         PORT_POSTFIX)
        pf.setup()
        servers.append(pf)
        if postilion_bin is not None:
            pst = mta.Postilion(postilion_bin, os.path.join(self.workdir, "postilion-idle"),
                                "accept", PORT_POSTILION, PORT_DNS)
            pst.setup()
            servers.append(pst)
        for n in self.p["idle"]:
            for server in servers:
                server.start()  # fresh, so that the baseline is clean
                try:
                    self.idle_run(server, n)
                finally:
                    server.stop()
            if postilion_bin is None:
                self.idle_rows.append(dict(mta="postilion", idle=n,
                                           status="not available",
                                           note=postilion_reason))

    def idle_run(self, server, n):
        time.sleep(1.0)
        rss0, pss0, procs0 = procstat.memory_kib(server.pid, pss=True)
        avail0 = procstat.mem_available_kib()
        cpu0 = procstat.cpu_seconds(server.pid)
        hold = self.p["idle_hold"]
        cmd = [self.loadgen, "-q", "-I", str(n), "-w", str(hold),
               "-p", str(self.p["probes"]), "-t", str(IDLE_RAMP_CAP_S),
               f"127.0.0.1:{server.port}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=mta.raise_nofile)
        row = dict(mta=server.name, idle=n)
        ready = None
        end = time.monotonic() + IDLE_RAMP_CAP_S + 30
        while time.monotonic() < end:
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if r:
                line = proc.stdout.readline()
                if not line or line.startswith("READY"):
                    ready = parse_kv(line) if line else None
                    break
        if ready is not None:
            time.sleep(min(1.0, hold / 2))
            rss1, pss1, procs1 = procstat.memory_kib(server.pid, pss=True)
            avail1 = procstat.mem_available_kib()
        try:
            out, err = proc.communicate(timeout=hold + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        cpu1 = procstat.cpu_seconds(server.pid)
        result = next((parse_kv(l) for l in out.splitlines()
                       if l.startswith("RESULT ")), {})
        est = int(result.get("established", ready.get("established", 0) if ready else 0))
        if ready is None or est == 0:
            row.update(status="failed", note=(err.strip().splitlines() or ["no READY"])[-1][:200])
            self.idle_rows.append(row)
            log(f"  idle    {server.name:9} {n:>5} sessions: failed")
            return
        row.update(established=est, held=int(result.get("held", 0)),
                   ramp_s=float(ready.get("ramp_s", 0)),
                   processes=procs1 - procs0,
                   rss_kib_per_session=round((rss1 - rss0) / est, 1),
                   pss_kib_per_session=round((pss1 - pss0) / est, 1),
                   memavail_kib_per_session=round((avail0 - avail1) / est, 1),
                   rss_total_mib=round(rss1 / 1024, 1),
                   cpu_s=round(cpu1 - cpu0, 2),
                   banner_p50_ms=float(result.get("banner_p50_ms", "nan")),
                   banner_max_ms=float(result.get("banner_max_ms", "nan")),
                   probes=int(result.get("probes", 0)),
                   probe_failed=int(result.get("probe_failed", 0)))
        row["status"] = "ok" if (est == n and row["held"] == est and
                                 row["probe_failed"] == 0) else "incomplete"
        if est < n:
            row["note"] = (f"{est} of {n} sessions established within "
                           f"{IDLE_RAMP_CAP_S} s")
        elif row["held"] < est:
            row["note"] = f"the server dropped {est - row['held']} idle sessions"
        elif row["probe_failed"]:
            row["note"] = f"{row['probe_failed']} banner probes failed"
        self.idle_rows.append(row)
        log(f"  idle    {server.name:9} {n:>5} sessions: "
            f"{row['rss_kib_per_session']} KiB RSS/session "
            f"({row['pss_kib_per_session']} PSS, {row['memavail_kib_per_session']} "
            f"MemAvailable), banner p50/max {row['banner_p50_ms']}/"
            f"{row['banner_max_ms']} ms [{row['status']}]")

    def profile(self, postilion_bin, postilion_reason, results):
        """postiliond under callgrind while loadgen sends 1 KiB messages
        from 50 sessions, one per session: where the instructions go.
        Writes results/profile-postiliond.txt (callgrind_annotate)."""
        if postilion_bin is None:
            log(f"profile: {postilion_reason}")
            return
        if not shutil.which("valgrind"):
            log("profile: valgrind missing (apt-get install -y valgrind)")
            return
        log("profile: postiliond under callgrind, 1 KiB, 50 sessions")
        pst = mta.Postilion(postilion_bin, os.path.join(self.workdir, "postilion-profile"),
                            "accept", PORT_POSTILION, PORT_DNS)
        pst.setup()
        out = os.path.join(self.workdir, "callgrind.out")
        pst.command = lambda: ["valgrind", "--tool=callgrind",
                               f"--callgrind-out-file={out}",
                               postilion_bin, "--foreground", "--config", pst.conf]
        pst.start()
        try:
            count = 3000
            cmd = generator_command("loadgen", self.loadgen, pst.port, 1024, 50, "1",
                                    count, 120, RCPT_LOCAL)
            res = run_generator(cmd, "loadgen", 120)
        finally:
            pst.stop()
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", out],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        incl = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.makedirs(results, exist_ok=True)
        path = os.path.join(results, "profile-postiliond.txt")
        with open(path, "w") as f:
            f.write(f"# postiliond under valgrind --tool=callgrind, {res['ok']} messages "
                    f"of 1 KiB accepted from 50 sessions (1 per session), loadgen\n"
                    f"# instructions per message = total Ir / {res['ok']}\n\n")
            f.write("## exclusive (self) cost\n")
            f.write("\n".join(ann.stdout.splitlines()[:70]) + "\n\n")
            f.write("## inclusive cost\n")
            f.write("\n".join(incl.stdout.splitlines()[:70]) + "\n")
        log(f"profile: {path}")

    def plugins(self, postilion_bin, postilion_reason, builddir):
        """Plugin chains: measured where both sides can run them."""
        log("plugins: policy chains")
        plugins_bench.run(self, postilion_bin, postilion_reason, builddir)


# --- Main -----------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a short run: 1 KiB, 50 sessions, 1,000 idle (~2 min)")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma-separated subset of " + ",".join(ALL_SCENARIOS) +
                    " (default: all of those), plus profile (postiliond under "
                    "callgrind, only when named)")
    ap.add_argument("--generators", default="smtp-source,loadgen",
                    help="comma-separated: smtp-source, loadgen")
    ap.add_argument("--postiliond", help="use this postiliond binary instead of "
                    "building one")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measured runs per combination; the median is "
                    "reported with the range (default 3)")
    ap.add_argument("--min-seconds", type=float, default=10.0,
                    help="each kept run lasts at least this long: a shorter "
                    "first run only calibrates the message count (default 10)")
    ap.add_argument("--builddir", default=os.path.join(REPO, "build-bench"),
                    help="where bench/run builds postiliond (release build)")
    ap.add_argument("--no-postilion", action="store_true",
                    help="measure Postfix and the generators only")
    ap.add_argument("--workdir", default="/var/lib/postilion-bench",
                    help="queues, spools, configs and logs (on disk, not tmpfs; "
                    "no world-writable parent: OpenDKIM refuses those)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"),
                    help="where CSV, Markdown and PNG go")
    ap.add_argument("--postfix-accept", choices=["hold", "discard"], default="hold",
                    help="how Postfix keeps accepted mail from going anywhere")
    ap.add_argument("--queue-fs", choices=["dir", "loop", "loop-nojournal"],
                    default="loop",
                    help="dir: the queues in --workdir on its filesystem; loop: "
                    "on a fresh journaled ext4 image loop-mounted in --workdir "
                    "(isolates the run from other work's file churn); "
                    "loop-nojournal: the same image without a journal (like "
                    "this VM's root ext4: creating a file scans past the "
                    "inodes freed in the last minute)")
    ap.add_argument("--age-files", type=int, default=0, metavar="N",
                    help="age the queue filesystem first: create and unlink N "
                    "1 KiB files (rounds of 10,000, one file in 16 kept), "
                    "at most 2,000,000 (default 0: as made)")
    ap.add_argument("--chains", default=None,
                    help="comma-separated subset of the plugins scenario's "
                    "chains (default: all): " + ",".join(
                        c[0] for c in plugins_bench.CHAINS))
    ap.add_argument("--keep", action="store_true",
                    help="keep the workdir (configs, logs) afterwards")
    ap.add_argument("--sizes", default=None,
                    help="comma-separated message sizes in octets, replacing "
                    "the profile's (full: 1024,65536; --quick: 1024)")
    ap.add_argument("--sessions", default=None,
                    help="comma-separated concurrent sessions, replacing the "
                    "profile's (full: 1,10,50; --quick: 50)")
    ap.add_argument("--rate", type=float, default=None,
                    help="loadgen offers this many messages per second in all "
                    "(an open loop, the same load for every MTA) instead of "
                    "sending as fast as the server answers; latency then counts "
                    "from when each message was due.  Needs --generators loadgen; "
                    "the report's targets (ratios) do not apply to such rows")
    ap.add_argument("--per-session", default=None,
                    help="comma-separated: 1 (one message per session), many "
                    "(default: both)")
    args = ap.parse_args(argv)
    try:
        args.sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else None
        args.sessions = ([int(v) for v in args.sessions.split(",")]
                         if args.sessions else None)
    except ValueError:
        ap.error("--sizes and --sessions take comma-separated whole numbers")
    if args.per_session:
        args.per_session = [v for v in args.per_session.split(",") if v]
        if any(v not in ("1", "many") for v in args.per_session):
            ap.error("--per-session takes 1, many or 1,many")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.generators = [g for g in args.generators.split(",") if g]
    for s in args.scenarios:
        if s not in ALL_SCENARIOS + EXTRA_SCENARIOS:
            ap.error(f"unknown scenario {s}")
    for g in args.generators:
        if g not in ("smtp-source", "loadgen"):
            ap.error(f"unknown generator {g}")
    if args.rate is not None:
        if args.rate <= 0:
            ap.error("--rate takes a positive number of messages per second")
        if args.generators != ["loadgen"]:
            ap.error("--rate paces loadgen only: add --generators loadgen")
    known = [c[0] for c in plugins_bench.CHAINS]
    args.chains = [c for c in (args.chains or ",".join(known)).split(",") if c]
    for c in args.chains:
        if c not in known:
            ap.error(f"unknown chain {c}")
    return args


def main(argv):
    args = parse_args(argv)
    global PACED_RATE
    PACED_RATE = args.rate
    profile = dict(PROFILES["quick" if args.quick else "full"])
    for key in ("sizes", "sessions", "per_session"):
        if getattr(args, key):
            profile[key] = getattr(args, key)
    missing = check_preconditions(args)
    if missing:
        print("bench: cannot run, missing:", file=sys.stderr)
        for what, fix in missing:
            print(f"  - {what}: {fix}", file=sys.stderr)
        return 2
    lock = take_bench_lock()
    busy = busy_ports()
    if busy:
        print("bench: cannot run, missing:", file=sys.stderr)
        for what, fix in busy:
            print(f"  - {what}: {fix}", file=sys.stderr)
        return 2
    for note in soft_warnings():
        log("note: " + note)
    mta.raise_nofile()
    base_workdir = args.workdir
    loop_mount = os.path.join(base_workdir, "fs")
    unmount_loop(loop_mount)
    if os.path.isdir(base_workdir):
        shutil.rmtree(base_workdir)
    os.makedirs(base_workdir)
    os.chmod(base_workdir, 0o755)
    if args.queue_fs.startswith("loop"):
        make_loop_fs(base_workdir, loop_mount,
                     journal=args.queue_fs == "loop")
        args.workdir = loop_mount
    fstype = check_filesystem(args.workdir)
    if args.age_files > 0:
        aged = procstat.age_filesystem(args.workdir, args.age_files)
        log(f"filesystem aged: {aged[0]} files created and unlinked in "
            f"{aged[1]} s, {aged[2]} kept")
    loadgen = build_loadgen(args.workdir)
    wakecost = build_tool(args.workdir, "wakecost")
    probe_start = procstat.fs_probe(args.workdir)
    log(f"filesystem: {probe_start[0]} µs CPU to create a file, "
        f"{probe_start[1]} ms per fsync of a new file")
    wake_start = wake_probe(wakecost)
    log(f"a sleep and wake-up: {wake_start} µs CPU (same CPU / across "
        f"CPUs / placed by the scheduler)")

    postilion_bin, postilion_reason = None, "postiliond not measured (--no-postilion)"
    if not args.no_postilion:
        if args.postiliond:
            postilion_bin = os.path.abspath(args.postiliond)
            if not os.access(postilion_bin, os.X_OK):
                postilion_bin, postilion_reason = None, f"{args.postiliond} is not executable"
        else:
            log(f"building postiliond in {args.builddir}")
            postilion_bin, postilion_reason = build_postiliond(args.builddir)
        if postilion_bin is None:
            log(f"Postilion side not available: {postilion_reason}")

    bench = Bench(args, profile, args.workdir, loadgen)
    bench.versions = {}
    load_start = procstat.busy_cores(3.0)
    if load_start > 0.3:
        log(f"warning: {load_start:.1f} cores busy with other work before the run: "
            "the figures will be noisy")
    started = time.time()
    dns = mta.Dns(PORT_DNS, args.workdir, plugins_bench.dns_records(args.workdir),
                  host_records=plugins_bench.dns_hosts())
    # stop everything we started on Ctrl-C too
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        dns.start()
        for scenario in ALL_SCENARIOS + EXTRA_SCENARIOS:
            if scenario not in args.scenarios:
                continue
            try:
                if scenario == "ceiling":
                    bench.ceiling()
                elif scenario == "profile":
                    bench.profile(postilion_bin, postilion_reason, args.results)
                elif scenario == "plugins":
                    bench.plugins(postilion_bin, postilion_reason, args.builddir)
                elif scenario == "milter":
                    log("milter: through rspamd as a milter")
                    milter_bench.run(bench, postilion_bin, postilion_reason,
                                     args.builddir)
                else:
                    getattr(bench, scenario)(postilion_bin, postilion_reason)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                msg = f"scenario {scenario} stopped: {e}"
                log(msg)
                bench.notes.append(msg)
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        dns.stop()
        try:
            probe_end = procstat.fs_probe(args.workdir)
        except OSError as e:
            log(f"filesystem probe after the run failed: {e}")
            probe_end = ("?", "?", None)
        env = dict(date=datetime.datetime.now().isoformat(timespec="seconds"),
                   profile="quick" if args.quick else "full", repeat=args.repeat,
                   min_seconds=args.min_seconds,
                   kernel=platform.release(), cpus=os.cpu_count(),
                   cpu_model=cpu_model(), filesystem=fstype, workdir=args.workdir,
                   queue_fs=args.queue_fs, age_files=args.age_files,
                   file_create_us_start=probe_start[0], fsync_ms_start=probe_start[1],
                   file_create_us_end=probe_end[0], fsync_ms_end=probe_end[1],
                   wake_us_start=wake_start, wake_us_end=wake_probe(wakecost),
                   postfix=bench.versions.get("postfix", "?"),
                   postilion=bench.versions.get("postilion", postilion_reason),
                   postilion_commit=git_commit(),
                   postiliond_binary=postilion_bin or "-",
                   postfix_accept_mode=args.postfix_accept,
                   load_start=round(load_start, 2),
                   load_end=round(procstat.busy_cores(2.0), 2),
                   duration_s=round(time.time() - started))
        if bench.rows or bench.idle_rows:
            report.write_all(args.results, bench.rows, bench.idle_rows, env,
                             bench.notes)
        else:
            log("no throughput or idle figures: summary and CSV left as they were")
        if not args.keep:
            unmount_loop(loop_mount)
            for _ in range(10):  # the mount point can stay busy a moment
                shutil.rmtree(base_workdir, ignore_errors=True)
                if not os.path.exists(base_workdir):
                    break
                time.sleep(0.5)
    log(f"results in {args.results} ({round(time.time() - started)} s)")
    return 0


BENCH_LOCK = "/run/lock/postilion-bench.lock"


def take_bench_lock():
    """One bench at a time on a machine: runs share fixed loopback ports
    and the workdir, and two at once would measure each other.  Waits for
    a run in progress (from another checkout, say) instead of failing; the
    lock goes with the process."""
    import fcntl
    os.makedirs(os.path.dirname(BENCH_LOCK), exist_ok=True)
    handle = open(BENCH_LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another bench run holds {BENCH_LOCK}: waiting for it to end")
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def make_loop_fs(base, mount_point, size="12G", journal=True):
    """A fresh ext4 (with its journal, as on a mail server, unless not
    `journal`) in an image
    file under `base`, loop-mounted at mount_point: both MTAs' queues then
    live on one filesystem that nothing else on the machine touches.
    One inode per 4 KiB, as for a mail spool (mke2fs's "news" ratio): the
    bench keeps every spool until the end, and a plugins run leaves well
    over a million small files, more than the default ratio's 786,432
    inodes (the runs then ended in ENOSPC with most blocks free)."""
    image = os.path.join(base, "queues.img")
    subprocess.run(["truncate", "-s", size, image], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-i", "4096"]
                   + ([] if journal else ["-O", "^has_journal"]) + [image],
                   check=True)
    os.makedirs(mount_point)
    subprocess.run(["mount", "-o", "loop", image, mount_point], check=True)
    os.chmod(mount_point, 0o755)


def unmount_loop(mount_point):
    with open("/proc/mounts") as f:
        mounted = any(line.split()[1] == mount_point for line in f)
    if mounted:
        subprocess.run(["umount", mount_point], check=False)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_commit():
    r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
