#!/usr/bin/python3
"""bench/overload.py - a deferred backlog with the destination's DNS down.

    bench/overload.py [--deferred N] [--messages M] [--sessions S]
                      [--dns-down drop|servfail] [--cap SECONDS] [--build DIR]

Measures, on one postiliond (as root, loopback only, spool in a temporary
directory under /var/tmp):

1. the local delivery rate of M messages (to a Maildir) with an empty
   queue: from the first connect until the last file is in new/;
2. N messages queued for a remote domain whose DNS is down (`drop`: the
   test DNS server never answers, each lookup waits for the resolver's
   timeout; `servfail`: SERVFAIL at once), sent through an alias so that no
   relay permission is involved; all of them deferred;
3. the same local delivery rate with that backlog in the queue, and the
   ratio to (1);
4. the daemon's memory (VmRSS, VmHWM from /proc) before the backlog, with
   it, and after (3), and the bytes of memory per deferred message;
5. how long `postilion queue list` takes with the backlog.

Messages are sent by bench/loadgen (built on first use).  Prints one line
per figure and a RESULT line with key=value pairs.  Bounded: every wait has
a time cap.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))


def memory(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def loadgen(port: int, count: int, sessions: int, rcpt: str,
            cap: float) -> None:
    exe = Path(os.environ["POSTILION_BUILD"]) / "bench-loadgen"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-o", str(exe),
                        str(REPO / "bench" / "loadgen.c")], check=True)
    out = subprocess.run(
        [str(exe), "-c", str(sessions), "-n", str(count), "-l", "1024",
         "-r", rcpt, "-f", "sender@example.org", "-t", str(cap), "-q",
         f"127.0.0.1:{port}"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"loadgen failed: {out.stderr[-2000:]}")


def count_files(directory: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(directory))
    except FileNotFoundError:
        return 0


def wait_count(directory: Path, count: int, cap: float) -> float:
    """Seconds until `directory` holds `count` entries."""
    start = time.monotonic()
    while count_files(directory) < count:
        if time.monotonic() - start > cap:
            raise SystemExit(f"timed out: {count_files(directory)} of "
                             f"{count} in {directory}")
        time.sleep(0.05)
    return time.monotonic() - start


def local_rate(d, maildir: Path, messages: int, sessions: int,
               cap: float = 600) -> float:
    """Messages per second delivered into `maildir`; when not all arrive
    within `cap` seconds, those that did over the cap (said on stdout)."""
    before = count_files(maildir / "new")
    start = time.monotonic()
    loadgen(d.port, messages, sessions, "bob@example.org", cap)
    try:
        wait_count(maildir / "new", before + messages,
                   max(1.0, cap - (time.monotonic() - start)))
    except SystemExit as timeout:
        done = count_files(maildir / "new") - before
        print(f"{timeout}: {done} of {messages} delivered in {cap:.0f} s",
              flush=True)
        return done / cap
    return messages / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deferred", type=int, default=100000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--dns-down", choices=("drop", "servfail"),
                        default="drop")
    parser.add_argument("--cap", type=float, default=600,
                        help="seconds to wait for the local messages")
    parser.add_argument("--build", default=str(REPO / "build"))
    args = parser.parse_args()
    os.environ["POSTILION_BUILD"] = args.build
    from harness import POSTILIOND, Daemon, TestDnsServer

    work = Path(tempfile.mkdtemp(prefix="pst-overload-", dir="/var/tmp"))
    dns = TestDnsServer([REPO / "tests" / "dns" / "loopback.zone"])
    remote = "far.timeout.test" if args.dns_down == "drop" \
        else "far.servfail.test"
    (work / "mailboxes").write_text("bob@example.org\n")
    (work / "aliases").write_text(f"away: someone@{remote}\n")
    d = Daemon(work / "daemon", config={
        "server": {"max_connections_per_ip": args.sessions + 50},
        "dns": {"nameservers": f"127.0.0.1@{dns.port}"},
        "delivery": {"maildir_root": str(work / "maildir"),
                     "mailboxes": str(work / "mailboxes"),
                     "aliases": str(work / "aliases")}})
    maildir = work / "maildir" / "example.org" / "bob"
    results = {}
    try:
        d.start()
        results["rss_start"] = memory(d.pid)["VmRSS"]
        results["rate_empty"] = local_rate(d, maildir, args.messages,
                                           args.sessions)
        results["rss_empty_after"] = memory(d.pid)["VmRSS"]
        print(f"empty queue: {results['rate_empty']:.0f} msg/s delivered "
              f"locally", flush=True)

        start = time.monotonic()
        loadgen(d.port, args.deferred, args.sessions, "away@example.org",
                3600)
        results["fill_seconds"] = time.monotonic() - start
        queued = count_files(d.spool / "queue")
        results["queued"] = queued
        mem = memory(d.pid)
        results["rss_backlog"] = mem["VmRSS"]
        print(f"backlog: {queued} messages queued for {remote} in "
              f"{results['fill_seconds']:.0f} s; VmRSS "
              f"{mem['VmRSS'] >> 20} MiB", flush=True)

        t0 = time.monotonic()
        listing = subprocess.run(
            [str(POSTILIOND.parent / "tools" / "postilion"), "-c",
             str(d.conf_path), "queue", "list"], capture_output=True,
            timeout=120)
        results["queue_list_seconds"] = time.monotonic() - t0
        results["queue_list_lines"] = listing.stdout.count(b"\n")
        print(f"postilion queue list: {results['queue_list_lines']} lines "
              f"in {results['queue_list_seconds']:.2f} s", flush=True)

        results["rate_backlog"] = local_rate(d, maildir, args.messages,
                                             args.sessions, args.cap)
        mem = memory(d.pid)
        results["rss_backlog_after"] = mem["VmRSS"]
        results["hwm"] = mem["VmHWM"]
        results["ratio"] = results["rate_backlog"] / results["rate_empty"]
        results["deferred_logged"] = len(re.findall(
            r"status=deferred", d.log_text()))
        results["bytes_per_deferred"] = (
            (results["rss_backlog_after"] - results["rss_empty_after"])
            / max(1, queued))
        print(f"with the backlog: {results['rate_backlog']:.0f} msg/s "
              f"({results['ratio']:.0%} of the empty queue's); VmRSS "
              f"{results['rss_backlog_after'] >> 20} MiB, VmHWM "
              f"{results['hwm'] >> 20} MiB, "
              f"{results['bytes_per_deferred']:.0f} B per queued message; "
              f"{results['deferred_logged']} deferrals logged", flush=True)
        print("RESULT " + " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in results.items()))
    finally:
        if d.running:
            d.stop(timeout=60)
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
