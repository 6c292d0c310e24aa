#!/usr/bin/python3
"""chain_ab.py - two plugin chains of one postiliond build, side by side,
measured in turns (A B, B A, A B, ...), with an optional perf profile.

For working on a plugin's CPU cost without the whole bench: no Postfix, no
bench lock, its own ports (2736, 2737, DNS 2963), so it can run while
bench/run does.  The chains and their settings are bench/run's
(plugins_bench.py); the CPU counted is what bench/run counts: each
postiliond's process tree (its threads and its children, such as spf's
evaluators), not the load generator, not dnsmasq.

  bench/chain_ab.py --build build                      # dkim-verify vs dmarc
  bench/chain_ab.py --build build --rounds 5 --seconds 10
  bench/chain_ab.py --build build --perf /tmp/dmarc.perf.data   # profile B
  bench/chain_ab.py --build build --chains relay,spf --idle 1000,5000
                  # idle-session memory of each chain (bench.py's measure)

Prints each round's CPU per message and p99 latency, the ratio B/A and
what B adds (CPU ms per message, p99 ms), then the medians and ranges.  Run as root (like bench/run); loopback only.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import mta  # noqa: E402
import plugins_bench  # noqa: E402
import procstat  # noqa: E402

PORTS = (2736, 2737)
DNS_PORT = 2963


def start_chain(args, workdir, chain, port, message):
    plugins = next(c[1] for c in plugins_bench.CHAINS if c[0] == chain)
    names = sorted({plugins_bench.plugin_name(c) for c in plugins})
    so_files = plugins_bench.postilion_plugin_files(args.build, names)
    keydir, rsa, ed = plugins_bench.make_keys(workdir)
    placeholders = dict(rsa_key=rsa, ed25519_key=ed,
                        sender_domain=plugins_bench.SENDER_DOMAIN, workdir=workdir,
                        dkim_key_directory=os.path.join(keydir, "postilion"))
    extra = plugins_bench.postilion_chain_conf(plugins, so_files, placeholders)
    pst = mta.Postilion(os.path.join(args.build, "postiliond"),
                        os.path.join(workdir, "chain-" + chain), "accept", port,
                        DNS_PORT, extra_conf=extra)
    if args.callgrind:
        out = os.path.join(args.callgrind, "callgrind." + chain)
        pst.command = lambda: ["valgrind", "--tool=callgrind", "-q",
                               f"--callgrind-out-file={out}", pst.binary,
                               "--foreground", "--config", pst.conf]
        pst.start_timeout = 120
    pst.setup()
    pst.start()
    pst.message_file = message
    pst.sender = plugins_bench.chain_sender(chain)
    return pst


def drive(loadgen, pst, count, sessions, per_session, cap=120):
    """(messages accepted, seconds, CPU ms per message, p99 ms) of one run."""
    cmd = bench.generator_command("loadgen", loadgen, pst.port, 1024, sessions,
                                  per_session, count, cap,
                                  "user@" + mta.BENCH_DOMAIN,
                                  pst.sender, pst.message_file)
    cpu0 = procstat.cpu_seconds(pst.pid)
    res = bench.run_generator(cmd, "loadgen", cap)
    cpu1 = procstat.cpu_seconds(pst.pid)
    ok = res["ok"]
    return (ok, res["elapsed"], (cpu1 - cpu0) * 1000 / ok if ok else None,
            res.get("lat_p99"))


def callgrind_total(path):
    """Instructions (Ir) in a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    return None


def print_instructions(directory, chains, sent):
    """Instructions per message of both chains (since the counters were
    zeroed after the warm-up) and B's against A's."""
    per = []
    for chain, n in zip(chains, sent):
        total = callgrind_total(os.path.join(directory, "callgrind." + chain))
        per.append(total / n if total and n else None)
        print(f"{chain}: {per[-1]:,.0f} instructions per message ({n} messages)"
              if per[-1] else f"{chain}: no callgrind totals")
    if None not in per:
        print(f"{chains[1]} against {chains[0]}: {100 * (per[1] / per[0] - 1):+.1f}% "
              "instructions per message")


def measure_idle(args, workdir, chains, message, loadgen):
    """bench.py's idle measurement (sessions held after EHLO, RSS and PSS
    growth per session) for each chain, interleaved."""
    holder = argparse.Namespace(loadgen=loadgen, idle_rows=[],
                                p=dict(idle_hold=4.0, probes=20))
    for i in range(args.rounds):
        for n in [int(x) for x in args.idle.split(",")]:
            for chain in chains if i % 2 == 0 else chains[::-1]:
                pst = start_chain(args, workdir, chain, PORTS[0], message)
                pst.name = chain
                try:
                    drive(loadgen, pst, 200, args.sessions, "1")
                    bench.Bench.idle_run(holder, pst, n)
                finally:
                    pst.stop()
                row = holder.idle_rows[-1]
                print(f"round {i + 1} {chain:12} {n:5} idle sessions: RSS "
                      f"{row.get('rss_kib_per_session')} KiB/session, PSS "
                      f"{row.get('pss_kib_per_session')}, total RSS "
                      f"{row.get('rss_total_mib')} MiB [{row.get('status')}] "
                      f"{row.get('note', '')}", flush=True)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--chains", default="dkim-verify,dmarc", help="A,B")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="each run lasts about this long (default 10)")
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--per-session", choices=["1", "many"], default="1")
    ap.add_argument("--perf", help="record B's postiliond with perf during "
                    "the rounds into this file")
    ap.add_argument("--callgrind", metavar="DIR",
                    help="run both under callgrind (DIR/callgrind.CHAIN): "
                    "instructions, whatever else the machine does; use "
                    "--count, one round")
    ap.add_argument("--count", type=int, help="messages per run (no calibration)")
    ap.add_argument("--idle", metavar="N,N",
                    help="instead of traffic: hold N sessions open after EHLO "
                    "on each chain in turn (--rounds times, after a 200-message "
                    "warm-up) and print the memory per session")
    args = ap.parse_args(argv)
    args.build = os.path.abspath(args.build)
    chains = args.chains.split(",")
    workdir = tempfile.mkdtemp(prefix="chain-ab-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    loadgen = bench.build_loadgen(workdir)
    message = plugins_bench.signed_message(workdir, plugins_bench.make_keys(workdir)[1])
    dns = mta.Dns(DNS_PORT, workdir, plugins_bench.dns_records(workdir),
                  host_records=plugins_bench.dns_hosts())
    dns.start()
    if args.idle:
        try:
            measure_idle(args, workdir, chains, message, loadgen)
        finally:
            dns.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    servers, perf, sent = [], [], [0, 0]
    try:
        for chain, port in zip(chains, PORTS):
            pst = start_chain(args, workdir, chain, port, message)
            servers.append(pst)
            drive(loadgen, pst, args.sessions * 4, args.sessions, "1")  # warm-up
        counts = [args.count] * 2 if args.count else []
        for pst in servers if not args.count else []:
            ok, elapsed, _, _ = drive(loadgen, pst, 500, args.sessions,
                                      args.per_session)
            counts.append(max(500, int(ok * args.seconds / max(elapsed, 0.05))))
        if args.perf:
            perf.append(subprocess.Popen(
                ["perf", "record", "-q", "-o", args.perf, "-p", str(servers[1].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            time.sleep(0.5)
        if args.callgrind:
            # count the measured rounds only, not start-up and warm-up
            for pst in servers:
                subprocess.run(["callgrind_control", "-z", str(pst.pid)],
                               stdout=subprocess.DEVNULL, check=True)
        ratios, added, p99_added = [], [], []
        for i in range(args.rounds):
            order = [0, 1] if i % 2 == 0 else [1, 0]
            cpu, p99 = [None, None], [None, None]
            for j in order:
                # under callgrind a run is not cut short: a cut leaves
                # messages half done, counted in the instructions only
                ok, elapsed, cpu[j], p99[j] = drive(loadgen, servers[j], counts[j],
                                                    args.sessions, args.per_session,
                                                    900 if args.callgrind else 120)
                sent[j] += ok
                print(f"round {i + 1} {chains[j]:12} {ok} msgs in {elapsed:.1f} s: "
                      f"{cpu[j]:.3f} ms CPU/msg, p99 {p99[j]:.1f} ms", flush=True)
            ratios.append(cpu[1] / cpu[0])
            added.append(cpu[1] - cpu[0])
            p99_added.append(p99[1] - p99[0])
            print(f"round {i + 1} {chains[1]} / {chains[0]}: {100 * (ratios[-1] - 1):+.1f}% "
                  f"({added[-1]:+.3f} ms CPU/msg), p99 {p99_added[-1]:+.1f} ms",
                  flush=True)
        for values in (ratios, added, p99_added):
            values.sort()
        print(f"{chains[1]} against {chains[0]}: median "
              f"{100 * (bench.median(ratios) - 1):+.1f}% (range "
              f"{100 * (ratios[0] - 1):+.1f}% to {100 * (ratios[-1] - 1):+.1f}%, "
              f"{args.rounds} rounds of {args.sessions}x{args.per_session}); "
              f"messages measured: {sent[0]} and {sent[1]}")
        print(f"{chains[1]} adds {bench.median(added):+.3f} ms CPU/msg (range "
              f"{added[0]:+.3f} to {added[-1]:+.3f}) and {bench.median(p99_added):+.1f} ms "
              f"p99 (range {p99_added[0]:+.1f} to {p99_added[-1]:+.1f})")
    finally:
        for p in perf:
            p.send_signal(2)
            p.wait()
        for pst in servers:
            pst.stop()
        dns.stop()
        if args.callgrind and len(servers) == 2:
            print_instructions(args.callgrind, chains, sent)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
