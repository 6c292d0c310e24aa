"""milter_bench.py - accept through rspamd as a milter: Postilion's milter
plugin against Postfix's smtpd_milters, with one rspamd instance and the
same settings for both, in the same run.

Traffic: accept, 1 KiB, 50 sessions, loadgen, one and many messages per
session.  rspamd (Debian's) runs once for the scenario on 127.0.0.1:2893:
the proxy worker in milter mode with self-scan, no Redis, a short public
suffix list (its start then takes a second), milter_headers adding
X-Spamd-Result and X-Spam-Status (skip_local off: the bench client is
127.0.0.1).  Its DNS goes to the bench's dnsmasq.

What is measured: each MTA's own CPU per message (Postfix: master, smtpd,
cleanup, ... as in every scenario; Postilion: its one process), NOT
rspamd's, which both pay alike and which dominates; rspamd's CPU per
message is printed beside them for scale.  The target (issue 20):
Postilion's own CPU per message at most a third of Postfix's.  Every run
checks that a queued message carries rspamd's X-Spamd-Result header.
"""
import os
import shutil
import subprocess
import time

import mta
import procstat

PORT_RSPAMD = 2893
MARKER = b"X-Spamd-Result"

RSPAMD_CONF = """
options {{
  pidfile = "{dir}/rspamd.pid";
  dbdir = "{dir}";
  url_tld = "{dir}/tld.dat";
  dns {{ nameserver = ["127.0.0.1:{dns}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{dir}/rspamd.log"; level = "warning"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 120s;
  count = 2;
  upstream "local" {{ default = yes; self_scan = yes; }}
}}
milter_headers {{
  use = ["x-spamd-result", "x-spam-status"];
  skip_local = false;
  skip_authenticated = false;
}}
modules {{ path = "${{PLUGINSDIR}}"; }}
"""


def log(msg):
    print(f"[bench] {msg}", flush=True)


class Rspamd:
    def __init__(self, workdir, dns_port):
        self.dir = os.path.join(workdir, "rspamd")
        self.dns_port = dns_port
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\norg\nnet\ntest\n")
        conf = os.path.join(self.dir, "rspamd.conf")
        with open(conf, "w") as f:
            f.write(RSPAMD_CONF.format(dir=self.dir, port=PORT_RSPAMD,
                                       dns=self.dns_port))
        if mta.port_open(PORT_RSPAMD):
            raise RuntimeError(f"port 127.0.0.1:{PORT_RSPAMD} is already in use")
        out = open(os.path.join(self.dir, "rspamd.out"), "w")
        # -i: the bench runs as root; rspamd refuses root without it
        self.proc = subprocess.Popen(["rspamd", "-f", "-i", "-c", conf],
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()
        end = time.monotonic() + 120
        while time.monotonic() < end and not mta.port_open(PORT_RSPAMD):
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited at start, see {self.dir}")
            time.sleep(0.2)
        if not mta.port_open(PORT_RSPAMD):
            raise RuntimeError(f"rspamd does not listen on {PORT_RSPAMD}")

    def cpu_seconds(self):
        return procstat.cpu_seconds([self.proc.pid])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def marker_check(directories):
    """None when a queued message has rspamd's header, else the problem."""
    for d in directories:
        for root, _, files in os.walk(d):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    if MARKER in f.read(1 << 20):
                        return None
                return f"queued message without {MARKER.decode()} ({root}/{name})"
    return "no queued message to check"


def traffic(bench):
    for per_session in bench.p["per_session"]:
        yield 1024, 50, per_session, "loadgen"


def measure_with_rspamd_cpu(bench, rspamd, server, size, sessions, per, gen):
    """bench.measure, plus rspamd's CPU per message over the same runs."""
    cpu0 = rspamd.cpu_seconds()
    before = len(bench.rows)
    row = bench.measure("milter", server, gen, size, sessions, per,
                        "user@" + mta.BENCH_DOMAIN, chain="rspamd")
    spent = rspamd.cpu_seconds() - cpu0
    ok = row.get("ok") or 0
    if len(bench.rows) > before and ok:
        # every kept run and the calibration one went through rspamd
        row["note"] = (row.get("note", "") +
                       f" rspamd CPU over all runs: {spent:.1f} s").strip()
    log(f"    rspamd used {spent:.2f} s CPU during these runs")
    return row


def run_postfix(bench, rspamd):
    main = (f"smtpd_milters = inet:127.0.0.1:{PORT_RSPAMD}\n"
            "milter_default_action = tempfail\nmilter_protocol = 6\n")
    pf = mta.Postfix(os.path.join(bench.workdir, "postfix-milter"), "hold",
                     bench.ports["postfix"], extra_main=main)
    pf.setup()
    pf.verify_chain = lambda: marker_check([os.path.join(pf.queue, "hold")])
    try:
        pf.start()
        bench.warm_up(pf, "user@" + mta.BENCH_DOMAIN)
        for size, sessions, per, gen in traffic(bench):
            pf.clear_queue()
            measure_with_rspamd_cpu(bench, rspamd, pf, size, sessions, per, gen)
    finally:
        pf.clear_queue()
        pf.stop()


def postilion_conf(builddir):
    plugin_dir = os.path.join(builddir, "plugins", "milter")
    return (f"\n[plugins]\npath = {plugin_dir}\nload = milter\n"
            "\n[plugin:milter]\nmilters = rspamd\ntimeout = 60s\n"
            f"\n[plugin:milter:rspamd]\nsocket = inet:127.0.0.1:{PORT_RSPAMD}\n"
            "default_action = tempfail\n")


def run_postilion(bench, rspamd, postilion_bin, postilion_reason, builddir):
    reason = postilion_reason if postilion_bin is None else None
    if reason is None and not os.path.exists(
            os.path.join(builddir, "plugins", "milter", "milter.so")):
        reason = "not available: plugins/milter/milter.so not built"
    if reason is not None:
        for size, sessions, per, gen in traffic(bench):
            bench.unavailable("milter", "postilion", gen, size, sessions, per,
                              reason, chain="rspamd")
        return
    for size, sessions, per, gen in traffic(bench):
        pst = mta.Postilion(postilion_bin,
                            os.path.join(bench.workdir, "postilion-milter"),
                            "accept", bench.ports["postilion"],
                            bench.ports["dns"], extra_conf=postilion_conf(builddir))
        pst.setup()
        pst.verify_chain = lambda pst=pst: marker_check(
            [os.path.join(pst.spool, "queue"), os.path.join(pst.spool, "hold")])
        pst.start()
        try:
            bench.warm_up(pst, "user@" + mta.BENCH_DOMAIN)
            measure_with_rspamd_cpu(bench, rspamd, pst, size, sessions, per, gen)
        finally:
            pst.stop()


def run(bench, postilion_bin, postilion_reason, builddir):
    if shutil.which("rspamd") is None:
        for mta_name in ("postfix", "postilion"):
            for size, sessions, per, gen in traffic(bench):
                bench.unavailable("milter", mta_name, gen, size, sessions, per,
                                  "not available: apt-get install -y rspamd",
                                  chain="rspamd")
        return
    rspamd = Rspamd(bench.workdir, bench.ports["dns"])
    rspamd.start()
    try:
        run_postfix(bench, rspamd)
        run_postilion(bench, rspamd, postilion_bin, postilion_reason, builddir)
    finally:
        rspamd.stop()
