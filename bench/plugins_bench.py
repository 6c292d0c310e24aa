"""plugins_bench.py - accept with policy chains: Postilion's plugins against
Postfix with its usual helpers (policyd-spf, OpenDKIM, OpenDMARC milters).

Traffic: accept, 1 KiB, 50 sessions, loadgen, one and many messages per
session, from an outside client (neither Postfix's mynetworks nor the relay
plugin's internal_networks holds 127.0.0.1, so every inbound check runs);
the sender is loadgen@sender.example, a domain with SPF and DMARC
records served by the bench's own DNS server (dnsmasq on loopback), and the
DKIM signers sign for it.  Chains, cumulative as in issue 4:

  relay             relay checks only
  spf               + SPF (MAIL FROM and HELO)
  spf-include       the same, for a sender whose record needs lookups
                    (a:, mx, include:), as most real records do: the
                    spf chain's record (ip4 and -all) is decided without
                    them, so spf alone would not measure that path
  dkim-rsa          + DKIM signing, RSA-2048
  dkim-ed25519      + DKIM signing, Ed25519 (instead of RSA)
  dkim-verify       + DKIM verification of a message dkimpy signed
                    (RSA-2048; the key is in the bench DNS)
  dmarc             + DMARC (SPF, DKIM verification of the dkimpy-signed
                    message, DMARC: the receiving side's full chain;
                    compared with dkim-verify it gives DMARC's share)

Postfix side: relay checks are the restrictions of the Postfix HOWTOs that
the relay plugin reproduces (sender/recipient domain checks, HELO checks,
permit_mynetworks, reject_unauth_destination);
SPF is policyd-spf (postfix-policyd-spf-python) as a check_policy_service;
DKIM is OpenDKIM and DMARC is OpenDMARC, as milters on 127.0.0.1.  Their DNS
lookups go to a second dnsmasq on 127.0.2.53:53 through a private mount
namespace whose /etc/resolv.conf names it (the system file is untouched).
A missing package stops the bench before it starts (bench.py's
preconditions, with the apt-get line; scripts/setup-debian.sh installs
them all).  Before a chain is measured, one message goes through it on
each side and what was queued must say spf=pass, dkim=pass, dmarc=pass
(MARKERS): a peer that cannot do the work (OpenDKIM not finding the key,
say) stops the bench with its logs named, instead of printing a row.

Postilion side: bench.py builds the whole tree (every plugin and every
program a plugin needs, such as plugins/spf's pst-spf-eval); a chain loads
[plugins] load = the chain, plus the settings in
bench/plugins/COMPONENT.conf when that file exists (placeholders {rsa_key},
{ed25519_key}, {sender_domain}, {workdir}).  A chain whose plugin is in
this tree but not built, or whose configuration postiliond refuses, stops
the bench with the reason (it cannot measure what it was asked to); only a
plugin that is not in this tree at all (plugins/NAME missing) makes its
chain "not available".  Nothing is estimated.
"""
import base64
import glob
import os
import pwd
import shutil
import subprocess
import time

import mta

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Not under test.: Debian's OpenDKIM resolves through libunbound, which
# answers every name under test. itself (NXDOMAIN, a built-in local zone)
# and so would never ask the bench DNS for the key.  OpenDKIM can lift
# that only through an unbound configuration file (ResolverConfiguration),
# which it parses again for every message, and libunbound's parser is not
# thread-safe: at 50 sessions OpenDKIM died ("fatal flex scanner internal
# error").  example. (RFC 2606) is no built-in zone; OpenDKIM's Nameservers
# forwards to the bench DNS without a file.
SENDER_DOMAIN = "sender.example"
SENDER = "loadgen@" + SENDER_DOMAIN
# The spf-include chain's sender: its record needs an A, an MX and an
# include's TXT lookup before it passes (through the include).
INCLUDE_DOMAIN = "spf-include.example"
CHAIN_SENDERS = {"spf-include": "loadgen@" + INCLUDE_DOMAIN}


def chain_sender(chain):
    return CHAIN_SENDERS.get(chain, SENDER)

MILTER_DNS_ADDRESS = "127.0.2.53"
PORT_OPENDKIM = 2891
PORT_OPENDMARC = 2892

# (chain name, Postilion plugins, Postfix components)
CHAINS = [
    ("relay", ["relay"], []),
    ("spf", ["relay", "spf"], ["spf"]),
    ("spf-include", ["relay", "spf"], ["spf"]),
    ("dkim-rsa", ["relay", "spf", "dkim-rsa"], ["spf", "dkim-rsa"]),
    ("dkim-ed25519", ["relay", "spf", "dkim-ed25519"], ["spf", "dkim-ed25519"]),
    ("dkim-verify", ["relay", "spf", "dkim-verify"], ["spf", "dkim-verify"]),
    ("dmarc", ["relay", "spf", "dkim-verify", "dmarc"],
     ["spf", "dkim-verify", "dmarc"]),
]

DNS_TXT = [
    (SENDER_DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all"),
    (INCLUDE_DOMAIN, f"v=spf1 a:mail.{INCLUDE_DOMAIN} mx include:_spf.{SENDER_DOMAIN} -all"),
    (f"_spf.{SENDER_DOMAIN}", "v=spf1 ip4:127.0.0.0/8 -all"),
    (f"_dmarc.{SENDER_DOMAIN}", "v=DMARC1; p=none"),
    # The DMARC tree walk asks the parent too (_dmarc.example).  A real
    # TLD answers NXDOMAIN with its SOA, whose negative TTL lets resolvers
    # keep the answer (.com: 900 s); dnsmasq's NXDOMAIN carries no SOA,
    # which RFC 2308 says not to keep, so every message would ask again.
    # A TXT record that is no DMARC record (the walk discards it, as it
    # would the NXDOMAIN) is kept for its TTL like the real answer.
    (f"_dmarc.{SENDER_DOMAIN.split('.', 1)[1]}",
     "bench: no DMARC record at the top-level domain"),
]

# What each component needs on this machine: (file, Debian package).
OPENSSL = ("/usr/bin/openssl", "openssl")
OPENDKIM = ("/usr/sbin/opendkim", "opendkim")
DKIMPY = ("/usr/lib/python3/dist-packages/dkim/__init__.py", "python3-dkim")
PACKAGES = {
    "spf": [("/usr/bin/policyd-spf", "postfix-policyd-spf-python")],
    "dkim-rsa": [OPENDKIM, OPENSSL],
    "dkim-ed25519": [OPENDKIM, OPENSSL],
    "dkim-verify": [OPENDKIM, OPENSSL, DKIMPY],
    "dmarc": [("/usr/sbin/opendmarc", "opendmarc"),
              ("/usr/share/publicsuffix/public_suffix_list.dat", "publicsuffix")],
}


# What a queued message must contain once a component has done its work:
# the bench's traffic passes SPF, its signature verifies and DMARC passes
# on both sides, so anything but "pass" means a peer could not do the work
# (a key not found, a policy not fetched) and the chain measures nothing.
MARKERS = {
    "spf": (b"Received-SPF: Pass", b"spf=pass"),
    "dkim-rsa": (b"DKIM-Signature:",),
    "dkim-ed25519": (b"DKIM-Signature:",),
    "dkim-verify": (b"dkim=pass",),
    "dmarc": (b"dmarc=pass",),
}

# Chains whose Postilion side is measured interleaved, the base first: the
# dmarc chain's CPU against dkim-verify's is DMARC's share (issue 15), and
# a ratio of runs taken minutes apart on a shared machine measures the
# machine's load as much as the plugin (bench/README.md).
PAIRED = ("dkim-verify", "dmarc")


def verify_queue_files(directories, components):
    """None when a queued message shows every component's work, else what
    is missing.  Reads one file: the bench checks that the chain ran, not
    each message."""
    for d in directories:
        for root, _, files in os.walk(d):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read(1 << 20)
                absent = [c for c in components
                          if not any(m in data for m in MARKERS.get(c, (b"",)))]
                if absent:
                    return ("queued message lacks the trace of " + ", ".join(absent)
                            + f" ({os.path.join(root, name)})")
                return None
    return "no queued message to check"


def missing_packages(chains):
    """["apt-get install -y PKG", ...] for Postfix's helpers that the
    named chains need and this machine lacks (scripts/setup-debian.sh
    installs them all)."""
    out = set()
    for chain, _, components in CHAINS:
        if chain not in chains:
            continue
        for c in components:
            for path, pkg in PACKAGES[c]:
                if not os.path.exists(path):
                    out.add((path, pkg))
    return sorted(out)


def check_chain(bench, server, chain, components, logs):
    """One message through the chain before it is measured: what the server
    queued must show every component's work (MARKERS), else the bench
    stops here, naming the peer and its logs.  A row for a chain whose
    peer cannot verify would compare work that was not done."""
    res = bench.send_one(server, "user@" + mta.BENCH_DOMAIN, sender=chain_sender(chain))
    problem = None
    if res["ok"] != 1:
        problem = ("the check message was not accepted"
                   + (f" ({res['stderr'].splitlines()[-1]})" if res["stderr"] else ""))
    else:
        problem = verify_queue_files(server.queue_directories(), components)
    if problem:
        raise SystemExit(f"bench: chain {chain}: {server.name} cannot do the "
                         f"chain's work: {problem}; its logs: {logs} "
                         "(bench/run --keep keeps them)")
    server.clear_queue()


def fail_unverified(row, chain):
    """A measured run whose messages were refused or lack the chain's work
    stops the bench: the check passed, so a peer broke under load (OpenDKIM
    dying, a milter timing out), and the row would measure failures."""
    if row.get("status") in ("unverified", "incomplete", "mismatch"):
        raise SystemExit(f"bench: chain {chain}: {row['mta']} failed during a "
                         f"measured run ({row['status']}): {row.get('note', '')}")


def plugin_name(component):
    return component.split("-")[0]


# The sender's domain must resolve: both sides refuse unknown sender
# domains (Postfix's reject_unknown_sender_domain, the relay plugin's
# default).
DNS_HOSTS = [(SENDER_DOMAIN, "127.0.0.1"), (INCLUDE_DOMAIN, "127.0.0.1"),
             (f"mail.{INCLUDE_DOMAIN}", "192.0.2.25")]

# Postfix's side of "relay checks": the restrictions the Postfix HOWTOs
# write and the relay plugin reproduces (plugins/relay/README.md).
POSTFIX_RELAY_CHECKS = [
    "reject_non_fqdn_sender", "reject_unknown_sender_domain",
    "reject_non_fqdn_recipient", "reject_unknown_recipient_domain",
    "permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination",
]


def dns_records(workdir):
    """The bench zone's TXT records: SPF, DMARC, and the DKIM keys of
    sender.example (made here, in workdir, on first use)."""
    _, rsa, ed = make_keys(workdir)
    records = list(DNS_TXT)
    for selector, path in (("rsa", rsa), ("ed", ed)):
        record = dkim_record(path)
        # dnsmasq: one string per comma-separated part, each <= 255 octets
        parts = [record[i:i + 255] for i in range(0, len(record), 255)]
        records.append((f"{selector}._domainkey.{SENDER_DOMAIN}", ",".join(parts)))
    return records


def dns_hosts():
    return list(DNS_HOSTS)


# --- keys -------------------------------------------------------------------

def make_keys(workdir):
    keydir = os.path.join(workdir, "dkim-keys")
    os.makedirs(keydir, exist_ok=True)
    rsa = os.path.join(keydir, "rsa.key")
    ed = os.path.join(keydir, "ed25519.key")
    for path, args in ((rsa, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       (ed, ["-algorithm", "ed25519"])):
        if not os.path.exists(path):
            r = subprocess.run(["openssl", "genpkey"] + args + ["-out", path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise RuntimeError("openssl genpkey failed: " + r.stdout[-300:])
        os.chmod(path, 0o600)
    # Postilion's layout: KEY_DIRECTORY/DOMAIN/SELECTOR.key, 0640
    pst = os.path.join(keydir, "postilion", SENDER_DOMAIN)
    os.makedirs(pst, exist_ok=True)
    for path, selector in ((rsa, "rsa"), (ed, "ed")):
        target = os.path.join(pst, selector + ".key")
        shutil.copy(path, target)
        os.chmod(target, 0o640)
    return keydir, rsa, ed


def dkim_record(key):
    """The v=DKIM1 record of a private key file (RSA or Ed25519)."""
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform",
                          "DER"], check=True, capture_output=True).stdout
    if key.endswith("ed25519.key"):
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:]).decode()
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def signed_message(workdir, rsa):
    """A 1 KiB message from sender.example signed by dkimpy (relaxed/simple,
    RSA-2048), for the verification chain; None without dkimpy."""
    path = os.path.join(workdir, "dkimpy-signed.eml")
    if os.path.exists(path):
        return path
    script = (
        "import sys, dkim\n"
        "key = open(sys.argv[1], 'rb').read()\n"
        "body = b''.join(b'%d' % (i % 10) + b'X' * 75 + b'\\r\\n' for i in range(13))\n"
        "msg = (b'From: <" + SENDER + ">\\r\\nTo: <user@" + mta.BENCH_DOMAIN + ">\\r\\n'\n"
        "       b'Subject: bench\\r\\nDate: Sun, 06 Dec 2026 06:00:00 +0000\\r\\n'\n"
        "       b'Message-Id: <dkimpy.bench@" + SENDER_DOMAIN + ">\\r\\n\\r\\n' + body)\n"
        "sig = dkim.sign(msg, b'rsa', b'" + SENDER_DOMAIN + "', key,\n"
        "                canonicalize=(b'relaxed', b'simple'))\n"
        "open(sys.argv[2], 'wb').write(sig + msg)\n")
    r = subprocess.run(["/usr/bin/python3", "-c", script, rsa, path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return path


# --- Postfix with policyd-spf and milters -----------------------------------

class MilterStack:
    """policyd-spf, OpenDKIM and OpenDMARC set up for one chain."""

    def __init__(self, workdir, components, rsa_key, ed_key, wrapper):
        self.dir = os.path.join(workdir, "milters-" + "-".join(components or ["none"]))
        self.components = components
        self.rsa_key, self.ed_key = rsa_key, ed_key
        self.wrapper = wrapper
        self.procs = []

    def postfix_settings(self):
        """(extra main.cf, extra master.cf) for this chain."""
        master, milters = "", []
        restrictions = list(POSTFIX_RELAY_CHECKS)
        # the bench client (127.0.0.1) is an outside client: inbound mail,
        # every check runs (bench/plugins/relay.conf does the same)
        main = ("mynetworks = 127.0.0.2/32\n"
                "smtpd_helo_required = yes\n"
                "smtpd_helo_restrictions = permit_mynetworks, "
                "permit_sasl_authenticated, reject_invalid_helo_hostname, "
                "reject_non_fqdn_helo_hostname\n")
        if "spf" in self.components:
            conf = os.path.join(self.dir, "policyd-spf.conf")
            restrictions.append("check_policy_service unix:private/policyd-spf")
            main += "policyd-spf_time_limit = 3600\n"
            master += ("policyd-spf unix -    n       n       -       0       spawn\n"
                       f"  user=policyd-spf argv=/usr/bin/policyd-spf {conf}\n")
        if any(c.startswith("dkim") for c in self.components):
            milters.append(f"inet:127.0.0.1:{PORT_OPENDKIM}")
        if "dmarc" in self.components:
            milters.append(f"inet:127.0.0.1:{PORT_OPENDMARC}")
        main += f"smtpd_recipient_restrictions = {', '.join(restrictions)}\n"
        if milters:
            main += (f"smtpd_milters = {', '.join(milters)}\n"
                     "milter_default_action = tempfail\nmilter_protocol = 6\n")
        return main, master

    def setup(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if "spf" in self.components:
            with open(os.path.join(self.dir, "policyd-spf.conf"), "w") as f:
                # Debian's default skips 127.0.0.0/8: the bench client is there
                f.write("debugLevel = 0\nTestOnly = 1\nHELO_reject = Fail\n"
                        "Mail_From_reject = Fail\nPermError_reject = False\n"
                        "TempError_Defer = False\nskip_addresses = 192.0.2.1/32\n")
        for c in self.components:
            if c.startswith("dkim"):
                self._setup_opendkim(c)
            if c == "dmarc":
                self._setup_opendmarc()

    def _setup_opendkim(self, component):
        if component == "dkim-verify":
            # verify only: the bench client is outside (not InternalHosts)
            with open(os.path.join(self.dir, "opendkim.conf"), "w") as f:
                f.write("Syslog no\nMode v\nCanonicalization relaxed/simple\n"
                        f"Socket inet:{PORT_OPENDKIM}@127.0.0.1\n"
                        f"PidFile {self.dir}/opendkim.pid\n"
                        "UserID opendkim:opendkim\nInternalHosts 127.0.0.2\n"
                        "AuthservID postfix.bench.invalid\nUMask 002\n"
                        f"Nameservers {MILTER_DNS_ADDRESS}\n")
            return
        ed = component == "dkim-ed25519"
        key = os.path.join(self.dir, "dkim.key")
        shutil.copy(self.ed_key if ed else self.rsa_key, key)
        pw = pwd.getpwnam("opendkim")
        os.chown(key, pw.pw_uid, pw.pw_gid)
        os.chmod(key, 0o600)
        with open(os.path.join(self.dir, "opendkim.conf"), "w") as f:
            f.write(f"Syslog no\nMode s\nDomain {SENDER_DOMAIN}\n"
                    f"Selector {'ed' if ed else 'rsa'}\nKeyFile {key}\n"
                    f"SignatureAlgorithm {'ed25519-sha256' if ed else 'rsa-sha256'}\n"
                    "Canonicalization relaxed/simple\n"
                    f"Socket inet:{PORT_OPENDKIM}@127.0.0.1\n"
                    f"PidFile {self.dir}/opendkim.pid\nUserID opendkim:opendkim\n"
                    "InternalHosts 127.0.0.1\nUMask 002\n")

    def _setup_opendmarc(self):
        ignore = os.path.join(self.dir, "dmarc-ignore-hosts")
        with open(ignore, "w") as f:
            # the default ignores 127.0.0.1, the bench client
            f.write("192.0.2.1\n")
        with open(os.path.join(self.dir, "opendmarc.conf"), "w") as f:
            f.write(f"Socket inet:{PORT_OPENDMARC}@127.0.0.1\n"
                    f"PidFile {self.dir}/opendmarc.pid\nUserID opendmarc:opendmarc\n"
                    "Syslog false\nAuthservID postfix.bench.invalid\n"
                    f"IgnoreHosts {ignore}\nIgnoreAuthenticatedClients false\n"
                    "SPFSelfValidate true\nSPFIgnoreResults false\n"
                    "RejectFailures false\n"
                    "PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat\n")

    def start(self):
        for c in self.components:
            if c.startswith("dkim"):
                self._spawn(["/usr/sbin/opendkim", "-f", "-x",
                             os.path.join(self.dir, "opendkim.conf")], PORT_OPENDKIM)
            if c == "dmarc":
                self._spawn(["/usr/sbin/opendmarc", "-f", "-c",
                             os.path.join(self.dir, "opendmarc.conf")], PORT_OPENDMARC)

    def _spawn(self, cmd, port):
        if mta.port_open(port):
            raise RuntimeError(f"port 127.0.0.1:{port} is already in use")
        log = open(os.path.join(self.dir, os.path.basename(cmd[0]) + ".log"), "w")
        proc = subprocess.Popen(self.wrapper + cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        end = time.monotonic() + 10
        while time.monotonic() < end and not mta.port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited at start, see {self.dir}")
            time.sleep(0.1)
        if not mta.port_open(port):
            raise RuntimeError(f"{cmd[0]} does not listen on 127.0.0.1:{port}")

    def pids(self):
        return [p.pid for p in self.procs if p.poll() is None]

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


class PostfixWithHelpers:
    """Postfix plus its milters, measured as one: CPU and memory are summed
    over the Postfix master's tree and the milter processes (policyd-spf is
    spawned by the master, so it is in the tree already)."""

    name = "postfix"

    def __init__(self, postfix, stack):
        self.postfix = postfix
        self.stack = stack
        self.port = postfix.port

    @property
    def pid(self):
        return self.postfix.pid

    def extra_roots(self):
        return self.stack.pids()

    def queued(self):
        return self.postfix.queued()

    def clear_queue(self):
        self.postfix.clear_queue()

    def queue_directories(self):
        return [os.path.join(self.postfix.queue, "hold")]

    def verify_chain(self):
        return verify_queue_files(self.queue_directories(), self.stack.components)


# --- Postilion ----------------------------------------------------------------

def postilion_plugin_files(builddir, plugins):
    """{plugin: path of its .so} for those built, under builddir/plugins."""
    found = {}
    for name in plugins:
        for pattern in (f"plugins/{name}/{name}.so", f"plugins/{name}/*{name}*.so",
                        f"plugins/**/{name}.so"):
            hits = glob.glob(os.path.join(builddir, pattern), recursive=True)
            if hits:
                found[name] = hits[0]
                break
    return found


def postilion_chain_conf(components, so_files, placeholders):
    names = [plugin_name(c) for c in components]
    dirs = sorted({os.path.dirname(so_files[n]) for n in names})
    text = f"\n[plugins]\npath = {';'.join(dirs)}\nload = {';'.join(names)}\n"
    for c in components:
        for candidate in (c, plugin_name(c)):
            path = os.path.join(HERE, "plugins", candidate + ".conf")
            if os.path.exists(path):
                with open(path) as f:
                    text += "\n" + f.read().format(**placeholders)
                break
    return text


# --- The scenario ---------------------------------------------------------------

def run(bench, postilion_bin, postilion_reason, builddir):
    workdir = bench.workdir
    keydir, rsa, ed = make_keys(workdir)
    placeholders = dict(rsa_key=rsa, ed25519_key=ed, sender_domain=SENDER_DOMAIN,
                        workdir=workdir,
                        dkim_key_directory=os.path.join(keydir, "postilion"))
    message = signed_message(workdir, rsa)
    resolv = os.path.join(workdir, "resolv.conf.milters")
    with open(resolv, "w") as f:
        f.write(f"nameserver {MILTER_DNS_ADDRESS}\n")
    os.chmod(resolv, 0o644)
    wrapper = mta.resolv_namespace(resolv)
    milter_dns = mta.Dns(53, workdir, dns_records(workdir), address=MILTER_DNS_ADDRESS,
                         host_records=dns_hosts())
    milter_dns.start()
    paired = [c for c in CHAINS if c[0] in PAIRED and c[0] in bench.args.chains]
    if len(paired) < len(PAIRED):
        paired = []
    try:
        for chain, plugins, components in CHAINS:
            if chain not in bench.args.chains:
                continue
            chain_message = message if "dkim-verify" in components else None
            if "dkim-verify" in components and message is None:
                raise SystemExit("bench: chain dkim-verify needs dkimpy "
                                 "(apt-get install -y python3-dkim)")
            run_chain_postfix(bench, chain, components, rsa, ed, wrapper,
                              bench.ports["postfix"], chain_message)
            if not any(chain == c[0] for c in paired):
                run_chain_postilion(bench, chain, plugins, postilion_bin, postilion_reason,
                                    builddir, placeholders, bench.ports["postilion"],
                                    bench.ports["dns"], chain_message)
        if paired:
            run_pair_postilion(bench, paired, postilion_bin, postilion_reason, builddir,
                               placeholders, [bench.ports["postilion"],
                                              bench.ports["postilion_b"]],
                               bench.ports["dns"], message)
    finally:
        milter_dns.stop()


def traffic(bench):
    for per_session in bench.p["per_session"]:
        yield 1024, 50, per_session, "loadgen"


def run_chain_postfix(bench, chain, components, rsa, ed, wrapper, port,
                      message=None):
    stack = MilterStack(bench.workdir, components, rsa, ed, wrapper)
    stack.setup()
    main, master = stack.postfix_settings()
    pf = mta.Postfix(os.path.join(bench.workdir, f"postfix-chain-{chain}"), "hold",
                     port, extra_main=main, extra_master=master, wrapper=wrapper)
    pf.setup()
    try:
        stack.start()
        pf.start()
        server = PostfixWithHelpers(pf, stack)
        server.message_file = message
        check_chain(bench, server, chain, components,
                    f"{stack.dir}, {pf.base}/maillog")
        bench.warm_up(server, "user@" + mta.BENCH_DOMAIN, sender=chain_sender(chain))
        for size, sessions, per, gen in traffic(bench):
            pf.clear_queue()
            fail_unverified(bench.measure("plugins", server, gen, size, sessions, per,
                                          "user@" + mta.BENCH_DOMAIN,
                                          sender=chain_sender(chain),
                                          chain=chain), chain)
    finally:
        pf.clear_queue()
        pf.stop()
        stack.stop()


def prepare_postilion(bench, chain, plugins, postilion_bin, postilion_reason,
                      builddir, placeholders, port, dns_port, message=None):
    """A postiliond set up for the chain (its configuration tried once),
    or None when the chain is not available (its rows are written)."""
    reason = None
    if postilion_bin is None:
        reason = postilion_reason
    else:
        names = sorted({plugin_name(c) for c in plugins})
        so_files = postilion_plugin_files(builddir, names)
        absent = [n for n in names if n not in so_files]
        unbuilt = [n for n in absent if os.path.exists(
            os.path.join(REPO, "plugins", n, "meson.build"))]
        if unbuilt:
            raise SystemExit(f"bench: chain {chain}: plugin "
                             f"{', '.join(unbuilt)} is in the tree but not "
                             f"built in {builddir}")
        if absent:
            reason = ("not available: no plugins/" + ", plugins/".join(absent) +
                      " in this tree")
    if reason is not None:
        for size, sessions, per, gen in traffic(bench):
            bench.unavailable("plugins", "postilion", gen, size, sessions, per,
                              reason, chain=chain)
        return None
    extra = postilion_chain_conf(plugins, so_files, placeholders)
    pst = mta.Postilion(postilion_bin, os.path.join(bench.workdir, f"postilion-chain-{chain}"),
                        "accept", port, dns_port, extra_conf=extra)
    pst.setup()
    try:
        pst.start()
        pst.stop()
    except RuntimeError as e:
        lines = [l for l in str(e).splitlines()[1:] if l.strip()]
        raise SystemExit(f"bench: chain {chain}: postiliond refused the "
                         "chain's configuration"
                         + (f" ({lines[-1].strip()}" + ")" if lines else ""))
    pst.message_file = message
    components = [c for c in plugins if c != "relay"]
    pst.queue_directories = lambda: [os.path.join(pst.spool, "queue"),
                                     os.path.join(pst.spool, "hold")]
    pst.verify_chain = lambda: verify_queue_files(pst.queue_directories(), components)
    pst.components = components
    return pst


def start_checked(bench, pst, chain):
    """Starts pst with a fresh spool, checks the chain with one message and
    warms it up."""
    pst.start()
    check_chain(bench, pst, chain, pst.components, pst.base)
    bench.warm_up(pst, "user@" + mta.BENCH_DOMAIN, sender=chain_sender(chain))


def run_chain_postilion(bench, chain, plugins, postilion_bin, postilion_reason,
                        builddir, placeholders, port, dns_port, message=None):
    pst = prepare_postilion(bench, chain, plugins, postilion_bin, postilion_reason,
                            builddir, placeholders, port, dns_port, message)
    if pst is None:
        return
    for size, sessions, per, gen in traffic(bench):
        try:
            start_checked(bench, pst, chain)
            fail_unverified(bench.measure("plugins", pst, gen, size, sessions, per,
                                          "user@" + mta.BENCH_DOMAIN,
                                          sender=chain_sender(chain),
                                          chain=chain), chain)
        finally:
            pst.stop()


def run_pair_postilion(bench, chains, postilion_bin, postilion_reason, builddir,
                       placeholders, ports, dns_port, message):
    """Two chains (the first is the base: dkim-verify, then dmarc) measured
    interleaved: both daemons run side by side, each on its own port, and
    the runs alternate (bench.measure_interleaved), so that the second
    chain's extra CPU is compared with the first's in the same minutes.
    Falls back to one chain at a time when either is not available."""
    servers = [prepare_postilion(bench, chain, plugins, postilion_bin,
                                 postilion_reason, builddir, placeholders, port,
                                 dns_port, message)
               for (chain, plugins, _), port in zip(chains, ports)]
    if None in servers:
        for (chain, plugins, _), pst in zip(chains, servers):
            if pst is not None:
                run_chain_postilion(bench, chain, plugins, postilion_bin,
                                    postilion_reason, builddir, placeholders,
                                    ports[0], dns_port, message)
        return
    entries = [(pst, chain) for pst, (chain, _, _) in zip(servers, chains)]
    for size, sessions, per, gen in traffic(bench):
        try:
            for pst, chain in entries:
                start_checked(bench, pst, chain)
            rows = bench.measure_interleaved("plugins", entries, gen, size, sessions,
                                             per, "user@" + mta.BENCH_DOMAIN,
                                             sender=SENDER)
            for row, (_, chain) in zip(rows, entries):
                fail_unverified(row, chain)
        finally:
            for pst, _ in entries:
                pst.stop()
