"""mta.py - the servers under test: a private Postfix, postiliond, smtp-sink.

Postfix(base, mode, port, sink_port)
    A private Postfix instance run with `postfix -c DIR`: its own
    config_directory, queue_directory and data_directory under `base`, one
    smtpd listener on 127.0.0.1:port and nothing else on the network
    (inet_interfaces = 127.0.0.1, no chroot, no pickup, no system files
    touched).  The system instance is never started or stopped: every
    postfix/postsuper command here carries `-c DIR`.  Modes:
      hold     accept mail for bench.test into the queue and HOLD it there
               (smtpd_end_of_data_restrictions = check_client_access
               static:HOLD): the receive path and the durable write, no
               delivery, the same work Postilion does without a delivery
               agent;
      discard  accept for bench.test and deliver to the discard transport
               (adds qmgr and discard(8) to the cost);
      relay    relay everything to smtp-sink at 127.0.0.1:sink_port.
Postilion(binary, base, port, ...)
    postiliond with a keyfile written here; its spool is under `base`, so
    on the same filesystem as Postfix's queue.
Dns(port, base, records)
    dnsmasq on 127.0.0.1:port, authoritative for the bench's names and
    127.0.0.0/8 reverse, forwarding nothing anywhere (no upstream).
Sink(port, base, counting)
    Postfix's smtp-sink on 127.0.0.1:port; with counting=True its running
    counters ("sess=N quit=N mesg=N") go to a file that received() reads.

Everything listens on 127.0.0.1 only, and every wait is bounded.
"""
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

import procstat

BENCH_DOMAIN = "bench.test"
RELAY_DOMAIN = "relay.test"
NOFILE = 65536


def raise_nofile():
    """Lets this process and its children hold thousands of sockets: the
    soft limit goes up to NOFILE or the hard limit, whichever is lower
    (raising the hard limit needs CAP_SYS_RESOURCE, which a container may
    not have)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def nofile_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_banner(port, timeout=15.0):
    """True once a server on the port answers with a 220 banner."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                data = s.recv(512)
                if data.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120, **kw)


# --- Postfix --------------------------------------------------------------

MAIN_CF = """\
# Private benchmark instance written by bench/mta.py.  Loopback only.
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
local_recipient_maps =
alias_maps =
alias_database =
biff = no
maillog_file = {base}/maillog
# room for the idle-session scenario (5,000 smtpd processes)
default_process_limit = 6000
smtpd_client_connection_count_limit = 0
smtpd_client_event_limit_exceptions = 127.0.0.0/8
"""

MAIN_CF_MODES = {
    "hold": """\
mydestination = {domain}
smtpd_end_of_data_restrictions = check_client_access static:HOLD
""",
    "discard": """\
mydestination = {domain}
local_transport = discard:bench
""",
    "relay": """\
mydestination =
relayhost = [127.0.0.1]:{sink_port}
""",
}

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n     -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    name = "postfix"

    def __init__(self, base, mode, port, sink_port=None, extra_main="",
                 extra_master="", wrapper=()):
        self.base = base
        self.extra_master = extra_master
        # a command prefix for `postfix start` (the plugin scenario runs
        # the master in a mount namespace with its own resolv.conf)
        self.wrapper = list(wrapper)
        self.mode = mode
        self.port = port
        self.sink_port = sink_port
        self.extra_main = extra_main
        self.etc = os.path.join(base, "etc")
        self.queue = os.path.join(base, "queue")
        self.data = os.path.join(base, "data")
        self.pid = None

    def setup(self):
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        main = MAIN_CF.format(etc=self.etc, queue=self.queue, data=self.data,
                              base=self.base)
        main += MAIN_CF_MODES[self.mode].format(domain=BENCH_DOMAIN,
                                                sink_port=self.sink_port)
        main += self.extra_main
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port) + self.extra_master)
        r = run(["postfix", "-c", self.etc, "check"])
        if r.returncode != 0:
            raise RuntimeError(f"postfix -c {self.etc} check failed:\n{r.stdout}")

    def start(self):
        if port_open(self.port):
            raise RuntimeError(f"port 127.0.0.1:{self.port} is already in use")
        r = run(self.wrapper + ["postfix", "-c", self.etc, "start"],
                preexec_fn=raise_nofile)
        if r.returncode != 0:
            raise RuntimeError(f"postfix -c {self.etc} start failed:\n{r.stdout}"
                               f"\nsee {self.base}/maillog")
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        procstat.wait_for(lambda: os.path.exists(pidfile), 10)
        with open(pidfile) as f:
            self.pid = int(f.read().strip())
        if not wait_banner(self.port):
            raise RuntimeError(f"Postfix does not answer on 127.0.0.1:{self.port}")

    def stop(self):
        if self.pid is None:
            return
        run(["postfix", "-c", self.etc, "stop"])
        if not procstat.wait_for(lambda: not os.path.exists(f"/proc/{self.pid}"), 15):
            run(["postfix", "-c", self.etc, "abort"])
        self.pid = None

    def clear_queue(self):
        """Empties the queue between runs.  The hold directory, which no
        Postfix daemon holds open, is renamed aside and made anew: deleting
        thousands of files would make ext4 scan past the recently freed
        inodes while the next run creates files (seen in perf as
        recently_deleted), a cost of the bench, not of the MTA.  Everything
        is deleted when the bench ends.  postsuper handles whatever is left
        in the other queues."""
        hold = os.path.join(self.queue, "hold")
        if os.listdir(hold):
            aside = os.path.join(self.base, "aside")
            os.makedirs(aside, exist_ok=True)
            st = os.stat(hold)
            os.rename(hold, os.path.join(aside, f"hold-{len(os.listdir(aside))}"))
            os.mkdir(hold, st.st_mode & 0o7777)
            os.chown(hold, st.st_uid, st.st_gid)
        if self.queued()[1]:
            run(["postsuper", "-c", self.etc, "-d", "ALL"])

    def queued(self):
        """Messages in the queue: (held, not yet delivered)."""
        def count(sub):
            n = 0
            for _, _, files in os.walk(os.path.join(self.queue, sub)):
                n += len(files)
            return n
        held = count("hold")
        pending = sum(count(s) for s in ("incoming", "active", "deferred", "maildrop"))
        return held, pending

    def version(self):
        return run(["postconf", "-c", self.etc, "-h", "mail_version"]).stdout.strip()


# --- Postilion ------------------------------------------------------------

POSTILION_CONF = """\
# Benchmark configuration written by bench/mta.py.  Loopback only.
[server]
hostname = postilion.bench.invalid
domains = {domain}
spool = {spool}
max_connections = 12000
max_connections_per_ip = 12000

[listener:smtp]
address = 127.0.0.1:{port}

# Lookups go to the bench's own DNS server on loopback, never to the
# system's resolvers.
[dns]
nameservers = 127.0.0.1@{dns_port}
dnssec = no
"""


class Postilion:
    name = "postilion"

    def __init__(self, binary, base, mode, port, dns_port, sink_port=None,
                 extra_conf=""):
        self.binary = binary
        self.dns_port = dns_port
        self.base = base
        self.mode = mode
        self.port = port
        self.sink_port = sink_port
        self.extra_conf = extra_conf
        self.conf = os.path.join(base, "postilion.conf")
        self.spool = os.path.join(base, "spool-0")
        self.starts = 0
        self.log = os.path.join(base, "postiliond.log")
        self.proc = None
        self.pid = None
        self.start_timeout = 15   # seconds to the banner (more under valgrind)

    def config_text(self):
        text = POSTILION_CONF.format(domain=BENCH_DOMAIN, spool=self.spool,
                                     port=self.port, dns_port=self.dns_port)
        if self.mode == "relay":
            # The core relays only for clients a plugin trusts: the relay
            # plugin (built next to postiliond) marks 127.0.0.1 internal;
            # relay.test is not in the bench's DNS, so no domain checks.
            plugin_dir = os.path.join(os.path.dirname(self.binary), "plugins",
                                      "relay")
            text += (f"\n[plugins]\npath = {plugin_dir}\nload = relay\n"
                     "\n[plugin:relay]\ninternal_networks = 127.0.0.1/32\n"
                     "reject_unknown_sender_domain = false\n"
                     "reject_unknown_recipient_domain = false\n"
                     f"\n[delivery]\nrelayhost = [127.0.0.1]:{self.sink_port}\n")
        return text + self.extra_conf

    def setup(self):
        os.makedirs(self.base, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def command(self):
        return [self.binary, "--foreground", "--config", self.conf]

    def start(self, fresh_spool=True):
        if port_open(self.port):
            raise RuntimeError(f"port 127.0.0.1:{self.port} is already in use")
        if fresh_spool:
            # a new directory rather than deleting the last one: mass
            # deletion makes ext4's inode allocator slow for a while
            # (see Postfix.clear_queue); the bench deletes all at the end
            self.starts += 1
            self.spool = os.path.join(self.base, f"spool-{self.starts}")
            self.setup()
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        logf.close()
        self.pid = self.proc.pid
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.proc = self.pid = None
                raise RuntimeError("postiliond exited at start:\n" + self.log_tail())
            if wait_banner(self.port, timeout=0.2):
                return
        self.stop()
        raise RuntimeError("postiliond does not answer on 127.0.0.1:"
                           f"{self.port}:\n" + self.log_tail())

    def log_tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = self.pid = None

    def clear_queue(self):
        """Nothing: every start gets a new, empty spool directory (see
        start()), and the bench counts what a run adds."""

    def queued(self):
        """Committed messages in the spool: (held or waiting, 0)."""
        n = 0
        for sub in ("queue", "hold"):
            for _, _, files in os.walk(os.path.join(self.spool, sub)):
                n += len(files)
        return n, 0

    def version(self):
        try:
            r = run([self.binary, "--version"])
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "?"
        except (OSError, subprocess.SubprocessError):
            return "?"


# --- smtp-sink ------------------------------------------------------------

_MESG = re.compile(rb"mesg=(\d+)")


class Sink:
    def __init__(self, port, base, counting=False):
        self.port = port
        self.counting = counting
        self.out = os.path.join(base, f"smtp-sink-{port}.out")
        self.proc = None

    def start(self):
        if port_open(self.port):
            raise RuntimeError(f"port 127.0.0.1:{self.port} is already in use")
        cmd = ["smtp-sink", "-u", "nobody"]
        if self.counting:
            cmd.append("-c")
        cmd += [f"127.0.0.1:{self.port}", "4096"]
        out = open(self.out, "wb")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        out.close()
        if not wait_banner(self.port, 10):
            self.stop()
            raise RuntimeError(f"smtp-sink does not answer on 127.0.0.1:{self.port}")

    def received(self):
        """Messages received so far (counting sinks only)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256))
                tail = f.read()
        except OSError:
            return 0
        found = _MESG.findall(tail)
        return int(found[-1]) if found else 0

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


# --- DNS ------------------------------------------------------------------

def resolv_namespace(resolv_conf):
    """A command prefix that runs a command in a private mount namespace in
    which /etc/resolv.conf is `resolv_conf` (the system's file is never
    touched).  Used for Postfix's policy server and milters, whose DNS
    lookups must go to the bench's DNS server on loopback."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "{resolv_conf}" /etc/resolv.conf && exec "$@"', "sh"]


class Dns:
    """dnsmasq serving only local data; unknown names get REFUSED at once."""

    def __init__(self, port, base, txt_records=(), address="127.0.0.1",
                 host_records=()):
        self.address = address
        self.host_records = list(host_records)
        self.port = port
        self.base = base
        self.txt_records = list(txt_records)
        self.proc = None

    def start(self):
        cmd = ["dnsmasq", "-k", f"--port={self.port}",
               f"--listen-address={self.address}",
               "--bind-interfaces", "--no-resolv", "--no-hosts",
               "--conf-file=/dev/null", "--pid-file=", "--user=nobody",
               "--local=/test/", "--local=/example/", "--local=/invalid/", "--local=/127.in-addr.arpa/",
               "--ptr-record=1.0.0.127.in-addr.arpa,localhost",
               "--host-record=localhost,127.0.0.1", "--local-ttl=300",
               "--cache-size=10000", "--log-facility=/dev/null"]
        for name, addr in self.host_records:
            cmd.append(f"--host-record={name},{addr}")
        for name, text in self.txt_records:
            cmd.append(f"--txt-record={name},{text}")
        out = open(os.path.join(self.base, f"dnsmasq-{self.address}-{self.port}.log"),
                   "w")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"dnsmasq did not start on {self.address}:{self.port}")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
