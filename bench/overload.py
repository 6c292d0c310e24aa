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

    bench/overload.py --slow [--sessions S] [--size-mib M] [--spread SECONDS]
                      [--memory-limit-mib L] [--plugin none|dkim-verify|
                      dkim-sign|milter] [--deliver smtp|none] [--build DIR]

The other scenario (issue 21): S sessions (default 500) each send one
message of M MiB (default 30) slowly, paced evenly over SECONDS, while a
fresh client times its banner every 100 ms (bench/slowsend.c, built on
first use).  postiliond runs in a memory cgroup (v1, the test makes it)
limited to L MiB (default 256 + S/2), which counts its page cache too.
With --deliver smtp (the default) every message is delivered as it is
queued, by SMTP to Postfix's smtp-sink on 127.0.0.1 ([delivery]
relayhost), and the run waits (at most --cap seconds) until the sink has
them all: the memory figures then cover delivery too (each attempt reads
its message in pieces).  With --deliver none they are queued for a domain
whose DNS fails (so they stay in the spool; the figures of rounds before
the content reader).  The spool lives in a temporary directory under
/var/tmp, checked for room first and removed at the end.  --plugin adds a plugin that reads the
whole body at the end of data: DKIM verification of a dkimpy-signed
message, DKIM signing (RSA-2048), or a milter (a discarding peer from
tests/e2e/milter_peer.py that receives every body chunk).  Figures: banner
p50/p99/max (all probes, and "loaded" ones: taken while every session was
in the middle of its message), the daemon's VmHWM, its RssAnon peak, the
cgroup's peak usage and how often it hit the limit, messages accepted,
delivered (the sink's count) and left in the queue, seconds.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
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
    exe = build_tool("loadgen")
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


CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def build_tool(name: str) -> Path:
    """BUILD/bench-NAME from bench/NAME.c, built on first use."""
    exe = Path(os.environ["POSTILION_BUILD"]) / f"bench-{name}"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-o", str(exe),
                        str(REPO / "bench" / f"{name}.c")], check=True)
    return exe


class MemoryCgroup:
    """A cgroup v1 memory group limited to `limit_mib`; removed on close()
    (its processes go back to the root group first)."""

    def __init__(self, limit_mib: int):
        if os.geteuid() != 0 or not (CGROUP_V1 / "cgroup.procs").exists():
            raise SystemExit("--slow needs root and the cgroup v1 memory "
                             "controller (/sys/fs/cgroup/memory)")
        self.path = CGROUP_V1 / f"pst-overload-{os.getpid()}"
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(f"{limit_mib}M")

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def read(self, name: str) -> int:
        return int((self.path / f"memory.{name}").read_text())

    def oom_kills(self) -> int:
        """Processes the kernel killed for the limit (memory.oom_control)."""
        for line in (self.path / "memory.oom_control").read_text() \
                .splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (CGROUP_V1 / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # already gone
        self.path.rmdir()


def slow_message(work: Path, size_mib: int, plugin: str) -> Path:
    """The message every session sends: header and `size_mib` MiB of
    80-octet lines, signed by dkimpy for dkim-verify (with the key the
    zone in `work` publishes)."""
    sender = "alice@example.org" if plugin == "dkim-sign" \
        else "x@sender.test"
    line = b"%07d a line of a large message sent slowly" + b"." * 33 + b"\r\n"
    body = b"".join(line % i for i in range(size_mib * 1024 * 1024 // 80))
    content = (f"From: <{sender}>\r\nTo: <bob@example.org>\r\n"
               f"Subject: slow and large\r\n"
               f"Date: Sun, 06 Dec 2026 06:00:00 +0000\r\n"
               f"Message-ID: <slow.{os.getpid()}@example.org>\r\n\r\n"
               ).encode() + body
    if plugin == "dkim-verify":
        import dkim
        key = (work / "sender.pem").read_bytes()
        content = dkim.sign(content, b"py", b"sender.test", key,
                            include_headers=[b"from", b"to", b"subject",
                                             b"date"]) + content
    path = work / "message.eml"
    path.write_bytes(content)
    return path


def dkim_setup(work: Path, plugin: str) -> tuple[list, dict]:
    """(zones, config groups) for the dkim plugins: our signing key under
    work/keys (made with openssl), the outside sender's key in a zone."""
    def openssl(*args, data=None):
        return subprocess.run(["openssl", *args], input=data, check=True,
                              capture_output=True).stdout
    pem = openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                  "rsa_keygen_bits:2048")
    public = base64.b64encode(openssl("pkey", "-pubout", "-outform", "DER",
                                      data=pem)).decode()
    (work / "sender.pem").write_bytes(pem)
    (work / "keys" / "example.org").mkdir(parents=True)
    (work / "keys" / "example.org" / "s.key").write_bytes(pem)
    (work / "keys" / "example.org" / "s.key").chmod(0o600)
    record = " ".join(f'"{part}"' for part in
                      (f"v=DKIM1; k=rsa; p={public}"[i:i + 255]
                       for i in range(0, len(public) + 20, 255)))
    zone = work / "dkim.zone"
    zone.write_text("$TTL 300\n$ORIGIN sender.test.\n"
                    "@ IN SOA ns.test. h.test. 1 3600 600 86400 60\n"
                    f"py._domainkey IN TXT {record}\n")
    return [zone], {
        "plugins": {"load": ["relay", "dkim"]},
        "plugin:relay": {"reject_unknown_sender_domain": "no",
                         "reject_unknown_recipient_domain": "no"},
        "plugin:dkim": {"key_directory": str(work / "keys"),
                        "timeout": "10m",
                        "sign": str(plugin == "dkim-sign").lower(),
                        "verify": str(plugin == "dkim-verify").lower()},
        "plugin:dkim:example.org": {"selectors": "s"}}


def milter_setup(idle_seconds: float):
    """(peer, config groups): a milter that answers "continue" to
    everything and keeps no body chunk (500 x 30 MB would not fit); its
    connections wait `idle_seconds` through the slow DATA phase."""
    from milter_peer import TestMilter

    class DiscardingMilter(TestMilter):
        def _answer(self, conn, session, command, payload):
            if command == "B":
                session.commands.pop()
            return super()._answer(conn, session, command, payload)

    peer = DiscardingMilter({"idle_timeout": idle_seconds})
    return peer, {
        "plugins": {"load": ["milter"]},
        "plugin:milter": {"milters": "discard", "timeout": "10m"},
        "plugin:milter:discard": {"socket": peer.socket_spec,
                                  "eom_timeout": "10m",
                                  "command_timeout": "5m"}}


def sink_start(work: Path):
    """Postfix's smtp-sink on a free loopback port, counting messages."""
    import socket
    from mta import Sink
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink(port, str(work), counting=True)
    sink.start()
    return sink


def slow_main(args) -> None:
    from harness import Daemon, TestDnsServer
    limit_mib = args.memory_limit_mib or 256 + args.sessions // 2
    need = args.sessions * args.size_mib * 1.1 * 2**20 + 2 * 2**30
    if shutil.disk_usage("/var/tmp").free < need:
        raise SystemExit(f"/var/tmp has less than {need / 2**30:.1f} GiB "
                         f"free for the spool")
    exe = build_tool("slowsend")
    work = Path(tempfile.mkdtemp(prefix="pst-overload-", dir="/var/tmp"))
    cgroup = MemoryCgroup(limit_mib)
    peer = dns = d = sink = None
    try:
        zones, plugin_config = [], {}
        if args.plugin.startswith("dkim"):
            zones, plugin_config = dkim_setup(work, args.plugin)
        elif args.plugin == "milter":
            peer, plugin_config = milter_setup(args.spread * 4 + 600)
        if plugin_config:
            plugin_config["plugins"]["path"] = [
                str(Path(args.build) / "plugins" / name)
                for name in plugin_config["plugins"]["load"]]
        message = slow_message(work, args.size_mib, args.plugin)
        dns = TestDnsServer([REPO / "tests" / "dns" / "loopback.zone",
                             *zones])
        delivery = {}
        if args.deliver == "smtp":
            sink = sink_start(work)
            delivery = {"relayhost": f"[127.0.0.1]:{sink.port}"}
            (work / "aliases").write_text("bob: someone@sink.test\n")
        else:
            (work / "aliases").write_text("bob: someone@far.servfail.test\n")
        d = Daemon(work / "daemon", config={
            "server": {"max_connections_per_ip": args.sessions + 100,
                       "max_connections": args.sessions + 200,
                       "max_message_size": f"{args.size_mib * 2 + 1}M"},
            "dns": {"nameservers": f"127.0.0.1@{dns.port}"},
            "delivery": {"maildir_root": str(work / "maildir"),
                         "aliases": str(work / "aliases"),
                         "retry_first": "1h", "retry_max": "4h",
                         **delivery},
            **plugin_config})
        d.start()
        cgroup.add(d.pid)
        start_rss = memory(d.pid)["VmRSS"]
        print(f"{args.sessions} sessions x {message.stat().st_size >> 20} "
              f"MiB over {args.spread:.0f} s, plugin {args.plugin}, "
              f"memory cgroup limit {limit_mib} MiB", flush=True)
        peaks = {"RssAnon": 0, "RssFile": 0}
        sampling = threading.Event()

        def sample():
            while not sampling.wait(0.25):
                for line in Path(f"/proc/{d.pid}/status").read_text() \
                        .splitlines():
                    key, _, value = line.partition(":")
                    if key in peaks:
                        peaks[key] = max(peaks[key],
                                         int(value.split()[0]) * 1024)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = subprocess.run(
            [str(exe), "-c", str(args.sessions), "-M", str(message),
             "-d", str(args.spread), "-p", "100",
             "-t", str(args.spread * 4 + 600), f"127.0.0.1:{d.port}"],
            capture_output=True, text=True)
        delivery_seconds = 0.0
        if sink is not None:
            began = time.monotonic()
            while time.monotonic() - began < args.cap and d.running() and \
                    sink.received() < args.sessions:
                time.sleep(0.5)
            delivery_seconds = time.monotonic() - began
        sampling.set()
        sampler.join()
        sys.stderr.write(out.stderr[-3000:])
        figures = dict(item.split("=", 1) for item in
                       out.stdout.split("RESULT", 1)[-1].split())
        alive = d.running()
        mem = memory(d.pid) if alive else {"VmHWM": 0, "VmRSS": 0}
        figures.update({
            "plugin": args.plugin, "limit_mib": limit_mib,
            "rss_start_mib": start_rss >> 20, "hwm_mib": mem["VmHWM"] >> 20,
            "anon_peak_mib": peaks["RssAnon"] >> 20,
            "file_peak_mib": peaks["RssFile"] >> 20,
            "cgroup_peak_mib": cgroup.read("max_usage_in_bytes") >> 20,
            "cgroup_failcnt": cgroup.read("failcnt"),
            "oom_kills": cgroup.oom_kills(),
            "queued": count_files(d.spool / "queue"),
            "delivered": sink.received() if sink is not None else 0,
            "delivery_wait_s": round(delivery_seconds, 1),
            "running": int(alive)})
        if args.plugin == "dkim-verify":
            figures["dkim_pass"] = d.log_text().count("dkim=pass")
        if args.plugin == "dkim-sign":
            figures["dkim_signed"] = d.log_text().count("signed d=example.org")
        print(f"banner: p50 {figures.get('banner_p50_ms')} ms, p99 "
              f"{figures.get('banner_p99_ms')} ms, max "
              f"{figures.get('banner_max_ms')} ms; VmHWM "
              f"{figures['hwm_mib']} MiB (anonymous at most "
              f"{figures['anon_peak_mib']} MiB, file pages "
              f"{figures['file_peak_mib']} MiB); cgroup peak "
              f"{figures['cgroup_peak_mib']} of {limit_mib} MiB, limit hit "
              f"{figures['cgroup_failcnt']} times; {figures.get('ok')} "
              f"accepted, {figures['delivered']} delivered, "
              f"{figures['queued']} left in the queue",
              flush=True)
        print("RESULT " + " ".join(f"{k}={v}" for k, v in figures.items()))
        if not alive:
            raise SystemExit("postiliond died during the run (oom_kills="
                             f"{figures['oom_kills']})")
        if out.returncode != 0:
            warnings = [line for line in d.log_text().splitlines()
                        if ": warning: " in line or ": fatal: " in line]
            sys.stderr.write("".join(f"postiliond: {line}\n"
                                     for line in warnings[-20:]))
            raise SystemExit("not every message was accepted")
    finally:
        if d is not None and d.running():
            d.stop(timeout=120)
        cgroup.close()
        if dns is not None:
            dns.stop()
        if peer is not None:
            peer.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", action="store_true",
                        help="slow large senders instead of the backlog")
    parser.add_argument("--deferred", type=int, default=100000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int,
                        help="default 20 (backlog) or 500 (--slow)")
    parser.add_argument("--dns-down", choices=("drop", "servfail"),
                        default="drop")
    parser.add_argument("--cap", type=float, default=600,
                        help="seconds to wait for the local messages")
    parser.add_argument("--size-mib", type=int, default=30)
    parser.add_argument("--spread", type=float, default=300)
    parser.add_argument("--memory-limit-mib", type=int)
    parser.add_argument("--plugin", default="none",
                        choices=("none", "dkim-verify", "dkim-sign",
                                 "milter"))
    parser.add_argument("--deliver", default="smtp", choices=("smtp", "none"),
                        help="--slow: deliver every message to smtp-sink "
                        "(default), or leave them queued (DNS fails)")
    parser.add_argument("--build", default=str(REPO / "build"))
    args = parser.parse_args()
    os.environ["POSTILION_BUILD"] = args.build
    if args.slow:
        args.sessions = args.sessions or 500
        slow_main(args)
        return
    args.sessions = args.sessions or 20
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
