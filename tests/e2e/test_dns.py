"""The core's DNS service through the real daemon, against a real DNS
server on loopback (tests/dns/testdns.py serving tests/dns/*.zone).

The test plugin `dnsprobe` (tests/plugins/dns) looks names up when told
to by MAIL FROM:<PROBE@DOMAIN> (`a@mx1.example.test`, `sync-txt@...`,
`burst300-a@slow.test`) or at CONNECT, and answers with the result in the
reply text: "250 2.1.0 A mx2.example.test: ok secure=0 bogus=0 ttl=300
canonical=... [192.0.2.26,192.0.2.27] (NOERROR)"; 451 for tempfail and
cancelled.  Covered: every result class and the record types, CNAME
chains, long TXT (UDP and TCP), SERVFAIL and timeouts, the blocking
variant from worker threads, DNSSEC's secure and bogus flags, hundreds of
lookups in flight while other sessions go on, cancellation when the client
disconnects, TTL caching, and SIGHUP with a new [dns] group.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import PLUGIN_DIR, scaled

ZONES = [harness.REPO / "tests" / "dns" / "basic.zone",
         harness.REPO / "tests" / "dns" / "secure.zone"]
# Meson builds dnsprobe.so in its own subdirectory of tests/plugins.
PROBE_PATH = [str(PLUGIN_DIR / "dns"), str(PLUGIN_DIR)]


class DnsServer(harness.TestDnsServer):
    """testdns.py with the basic and signed zones: .port, .trust_anchor,
    .queries(name, type)."""

    def __init__(self, directory: Path):
        self.trust_anchor = directory / "secure.key"
        self.query_log = directory / "queries.log"
        # *.slow.test answers after 100 ms: well below the resolver's
        # smallest retransmit timeout (MIN_RTT_MS, 400 ms, core/dns/
        # resolver.c).  At testdns.py's default 300 ms, a loaded machine
        # pushed hundreds of concurrent answers past 400 ms: retransmits,
        # backed-off RTT, and the bursts timed out (tempfail).
        super().__init__(ZONES, ["--sign", "secure.test", "--trust-anchor",
                                 str(self.trust_anchor), "--query-log",
                                 str(self.query_log),
                                 "--delay", "slow.test=100"])

    def queries(self, name: str, rtype: str) -> int:
        try:
            lines = self.query_log.read_text().splitlines()
        except OSError:
            return 0
        return sum(1 for line in lines
                   if line.lower() == f"{name} {rtype}".lower())


@pytest.fixture(scope="module")
def testdns(tmp_path_factory):
    server = DnsServer(tmp_path_factory.mktemp("testdns"))
    yield server
    server.stop()


@pytest.fixture
def dns_daemon(postiliond, testdns):
    """Factory: a daemon forwarding to testdns with dnsprobe loaded.
    `dns` and `probe` add keys to [dns] and [plugin:dnsprobe]."""

    def make(dns: dict | None = None, probe: dict | None = None, **kwargs):
        config = {
            "dns": {"nameservers": f"127.0.0.1@{testdns.port}",
                    "timeout": "1s", "dnssec": "no", **(dns or {})},
            "plugins": {"path": PROBE_PATH},
        }
        if probe:
            config["plugin:dnsprobe"] = probe
        return postiliond(config=config, plugins=["dnsprobe"], **kwargs)

    return make


def probe(client: harness.SMTPRaw, sender: str,
          timeout: float | None = None) -> harness.Reply:
    """MAIL FROM:<sender>, then RSET so the session can probe again."""
    reply = client.cmd(f"MAIL FROM:<{sender}>", timeout=timeout)
    assert client.cmd("RSET").code == 250
    return reply


def records(reply: harness.Reply) -> str:
    match = re.search(r"\[(.*)\]", reply.text)
    assert match, reply
    return match.group(1)


# --------------------------------------------------------------------------
# Result classes
# --------------------------------------------------------------------------

RESULT_CASES = [
    # (probe, code, status, records or None)
    ("a@mx2.example.test", 250, "ok", "192.0.2.26,192.0.2.27"),
    ("aaaa@mx1.example.test", 250, "ok", "2001:db8::25"),
    ("mx@example.test", 250, "ok", "10 mx1.example.test,20 mx2.example.test"),
    ("mx@nullmx.example.test", 250, "ok", "0 ."),
    ("txt@multi.example.test", 250, "ok", "12:first record,13:second record"),
    ("ptr@25.2.0.192.in-addr.arpa", 250, "ok", "mx1.example.test"),
    ("ptr@1.0.0.127.in-addr.arpa", 250, "ok", "client.example.test"),
    ("a@2.0.0.127.zen.dnsbl.test", 250, "ok", "127.0.0.2"),
    ("a@3.0.0.127.zen.dnsbl.test", 250, "nxdomain", ""),
    ("a@anything.wild.example.test", 250, "ok", "192.0.2.99"),
    ("cname@c1.example.test", 250, "ok", "c2.example.test"),
    ("a@nx.example.test", 250, "nxdomain", ""),
    ("mx@mx1.example.test", 250, "nodata", ""),
    ("a@b.ent.example.test", 250, "nodata", ""),
    ("a@x.servfail.test", 451, "tempfail", ""),
    ("txt@x.refused.test", 451, "tempfail", ""),
]


def test_result_classes(dns_daemon):
    daemon = dns_daemon()
    with daemon.connect() as client:
        client.ehlo()
        for sender, code, status, expected in RESULT_CASES:
            reply = probe(client, sender)
            assert reply.code == code, (sender, reply)
            assert f": {status} " in reply.text, (sender, reply)
            if expected is not None:
                assert records(reply) == expected, (sender, reply)


def test_cname_chain_reports_the_canonical_name(dns_daemon):
    daemon = dns_daemon()
    with daemon.connect() as client:
        client.ehlo()
        reply = probe(client, "a@c1.example.test")
        assert reply.code == 250
        assert "canonical=c3.example.test" in reply.text
        assert records(reply) == "192.0.2.3"
        dangling = probe(client, "a@dangling.example.test")
        assert ": nxdomain " in dangling.text
        assert "canonical=nowhere.example.test" in dangling.text


def test_long_txt_over_udp_and_tcp(dns_daemon):
    daemon = dns_daemon()
    with daemon.connect() as client:
        client.ehlo()
        # 549 octets in three strings, in one UDP answer.
        reply = probe(client, "txt@long.example.test")
        assert reply.code == 250 and records(reply).startswith("549:v=long1; a")
        # 3000 octets: truncated over UDP, fetched over TCP.
        reply = probe(client, "txt@huge.example.test")
        assert reply.code == 250 and records(reply).startswith("3000:ddd")
    match = daemon.wait_log(r"mail TXT long\.example\.test: ok .*\[549:(.*)\]")
    assert match.group(1) == "v=long1; " + "a" * 240 + "b" * 200 + "c" * 100


def test_timeout_is_a_tempfail_after_the_configured_time(dns_daemon):
    daemon = dns_daemon(dns={"timeout": "1s"})
    with daemon.connect() as client:
        client.ehlo()
        start = time.monotonic()
        reply = probe(client, "a@silent.timeout.test", timeout=scaled(5))
        elapsed = time.monotonic() - start
    assert reply.code == 451
    assert "(timeout after 1000 ms)" in reply.text
    assert 0.9 <= elapsed < scaled(5.0)  # our 1 s timer, not libunbound's 17 s


# --------------------------------------------------------------------------
# The blocking variant, from the plugin's worker threads
# --------------------------------------------------------------------------


def test_sync_lookups_from_worker_threads(dns_daemon):
    daemon = dns_daemon()
    with daemon.connect() as client:
        client.ehlo()
        reply = probe(client, "sync-mx@example.test")
        assert reply.code == 250
        assert records(reply) == "10 mx1.example.test,20 mx2.example.test"
        reply = probe(client, "sync-txt@long.example.test")
        assert records(reply).startswith("549:")
        assert ": nxdomain " in probe(client, "sync-a@nx.example.test").text
        reply = probe(client, "sync-a@silent2.timeout.test", timeout=scaled(5))
        assert reply.code == 451 and "timeout after 1000 ms" in reply.text
    daemon.wait_log(r"mail sync MX example\.test: ok")


def test_sync_lookups_in_parallel_sessions(dns_daemon):
    """Eight sessions, each with blocking lookups in the plugin's pool."""
    daemon = dns_daemon()
    failures = []

    def session(index: int) -> None:
        try:
            with daemon.connect() as client:
                client.ehlo()
                for round_ in range(10):
                    name = f"s{index}-{round_}.wild.example.test"
                    reply = probe(client, f"sync-a@{name}")
                    if reply.code != 250 or records(reply) != "192.0.2.99":
                        failures.append((name, reply))
        except Exception as error:  # reported below, in the main thread
            failures.append((index, error))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=scaled(30))
    assert not failures


# --------------------------------------------------------------------------
# DNSSEC
# --------------------------------------------------------------------------


def test_dnssec_secure_and_bogus(dns_daemon, testdns):
    daemon = dns_daemon(dns={"dnssec": "yes",
                             "trust_anchor": str(testdns.trust_anchor)})
    with daemon.connect() as client:
        client.ehlo()
        secure = probe(client, "a@www.secure.test")
        assert secure.code == 250 and "secure=1 bogus=0" in secure.text
        assert records(secure) == "192.0.2.31"
        denied = probe(client, "a@nx.secure.test")
        assert ": nxdomain secure=1" in denied.text
        bogus = probe(client, "a@bogus.secure.test")
        assert bogus.code == 451 and "secure=0 bogus=1" in bogus.text
        assert "DNSSEC validation failed" in bogus.text
        insecure = probe(client, "a@mx1.example.test")
        assert insecure.code == 250 and "secure=0 bogus=0" in insecure.text
    daemon.wait_log(r"dns: forwarding to 127\.0\.0\.1@\d+, DNSSEC validation with")


# --------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------


def test_hundreds_of_lookups_in_flight_while_sessions_go_on(dns_daemon):
    """300 lookups answered after 100 ms each are in flight in one session;
    other sessions meanwhile connect, look names up and finish quickly."""
    daemon = dns_daemon(dns={"timeout": "10s"})
    with daemon.connect() as busy:
        busy.ehlo()
        busy.cmd("NOOP")
        busy.line("MAIL FROM:<burst300-a@slow.test>")
        time.sleep(0.05)
        durations = []
        for round_ in range(5):
            start = time.monotonic()
            with daemon.connect() as other:
                other.ehlo()
                reply = probe(other, f"a@quick{round_}.wild.example.test")
                assert reply.code == 250 and records(reply) == "192.0.2.99"
                assert other.cmd("RCPT TO:<postmaster@example.org>").code == 503
                assert other.cmd("QUIT").code == 221
            durations.append(time.monotonic() - start)
        burst = busy.read_reply(timeout=scaled(10))
    assert burst.code == 250, burst
    assert "burst 300 A slow.test: ok=300 nxdomain=0 nodata=0 tempfail=0" \
        in burst.text
    # Not a speed test (machines are shared, sanitizers slow): sessions
    # queued behind the burst's lookups (300 x 100 ms, one at a time) would
    # take 30 s; they ran beside it.
    assert max(durations) < scaled(5), durations


def test_five_hundred_lookups_from_twenty_sessions(dns_daemon):
    daemon = dns_daemon(dns={"timeout": "10s"})
    clients = [daemon.connect() for _ in range(20)]
    try:
        for index, client in enumerate(clients):
            client.ehlo()
            client.line(f"MAIL FROM:<burst25-a@c{index}.slow.test>")
        for index, client in enumerate(clients):
            reply = client.read_reply(timeout=scaled(10))
            assert reply.code == 250, reply
            assert f"burst 25 A c{index}.slow.test: ok=25 " in reply.text
    finally:
        for client in clients:
            client.close()


# --------------------------------------------------------------------------
# Cancellation when the client leaves
# --------------------------------------------------------------------------


def test_connect_lookup_times_out_then_the_banner_comes(dns_daemon):
    """A lookup at CONNECT that never gets an answer: the banner waits for
    [dns] timeout, then the plugin (CONTINUE on a tempfail) lets it go."""
    daemon = dns_daemon(dns={"timeout": "2s"},
                        probe={"connect_lookup": "A hang.timeout.test"})
    start = time.monotonic()
    with daemon.connect(timeout=5) as client:
        assert client.greeting.code == 220
        elapsed = time.monotonic() - start
        client.ehlo()
        assert probe(client, "a@mx1.example.test").code == 250
    assert 1.9 <= elapsed < scaled(6.0)
    daemon.wait_log(r"connect A hang\.timeout\.test: tempfail .*"
                    r"\(timeout after 2000 ms\)")


def test_mail_lookups_cancelled_on_disconnect(dns_daemon):
    daemon = dns_daemon(dns={"timeout": "5s"})
    mark = daemon.log_mark()
    with daemon.connect() as client:
        client.ehlo()
        client.line("MAIL FROM:<a@gone.timeout.test>")
        time.sleep(0.1)
    daemon.wait_log(r"mail A gone\.timeout\.test: cancelled", since=mark,
                    timeout=2)
    with daemon.connect() as client:
        client.ehlo()
        client.line("MAIL FROM:<burst200-txt@timeout.test>")
        time.sleep(0.1)
    match = daemon.wait_log(r"mail burst 200 TXT timeout\.test: .*"
                            r"cancelled=(\d+)", since=mark, timeout=2)
    assert match.group(1) == "200"
    # The daemon still answers, and the cancelled lookups left nothing
    # behind (under ASan, a use after free would show in the log).
    with daemon.connect() as client:
        client.ehlo()
        assert probe(client, "a@mx1.example.test").code == 250


def test_connect_ptr_of_the_client(dns_daemon):
    daemon = dns_daemon(probe={"connect_lookup": "PTR %client"})
    with daemon.connect() as client:
        assert client.greeting.code == 220
    daemon.wait_log(r"connect PTR 1\.0\.0\.127\.in-addr\.arpa: ok .*"
                    r"\[client\.example\.test\]")


# --------------------------------------------------------------------------
# Cache and reload
# --------------------------------------------------------------------------


def test_answers_are_cached_for_their_ttl(dns_daemon, testdns):
    daemon = dns_daemon()
    name = f"cached{time.monotonic_ns()}.wild.example.test"
    with daemon.connect() as client:
        client.ehlo()
        first = probe(client, f"a@{name}")
        second = probe(client, f"a@{name}")
    assert first.code == second.code == 250
    assert testdns.queries(name, "A") == 1
    ttl = int(re.search(r"ttl=(\d+)", second.text).group(1))
    assert 295 <= ttl <= 300


def test_reload_with_a_new_dns_group(dns_daemon):
    daemon = dns_daemon(dns={"timeout": "1s"})
    mark = daemon.log_mark()
    daemon.reload(config={"dns": {"timeout": "2s"}}, wait=0)
    daemon.wait_log(r"dns: reconfigured: .*timeout 2000 ms", since=mark)
    with daemon.connect() as client:
        client.ehlo()
        assert probe(client, "mx@example.test").code == 250
        reply = probe(client, "a@after-reload.timeout.test", timeout=scaled(5))
        assert "(timeout after 2000 ms)" in reply.text


def test_check_config_names_a_bad_nameserver(postiliond):
    daemon = postiliond(config={"dns": {"nameservers": "not-an-address"}},
                        start=False)
    daemon.write_config()
    status, _, stderr = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert status != 0
    assert "nameservers" in stderr and "not-an-address" in stderr


def test_sigterm_with_lookups_in_flight(dns_daemon, testdns):
    """Async and blocking lookups still waiting when the daemon stops end
    with a callback each (cancelled, or "resolver stopped"), and the
    daemon exits cleanly.  This needs the daemon to call pst_dns_stop()
    while the plugins are still loaded (before it drops its plugin set):
    the last callbacks run inside pst_dns_stop(), in plugin code.  The
    blocking lookup's worker thread logs its line after the session's
    close cancelled it: the daemon waits for the worker's call before it
    unloads dnsprobe and exits (it once exited first, now and then)."""
    daemon = dns_daemon(dns={"timeout": "5s"})
    with daemon.connect() as burst, daemon.connect() as sync:
        burst.ehlo()
        burst.line("MAIL FROM:<burst50-a@timeout.test>")
        sync.ehlo()
        sync.line("MAIL FROM:<sync-a@stop.timeout.test>")
        # Both are in flight once the DNS server got their queries (the
        # burst sends its 50 in one go; timeout.test never answers).
        deadline = time.monotonic() + scaled(5)
        while not (testdns.queries("stop.timeout.test", "A") and
                   testdns.queries("i49.timeout.test", "A")):
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.02)
        assert daemon.stop() == 0
    log = daemon.log_text()
    assert re.search(r"mail burst 50 A timeout\.test: .*cancelled=50", log)
    # The session's close cancels the blocking lookup, unless the
    # resolver's stop gets there first.
    assert re.search(r"mail sync A stop\.timeout\.test: (cancelled|tempfail)",
                     log)


def write_zone(path: Path, origin: str, records: str) -> Path:
    path.write_text(f"$TTL 300\n$ORIGIN {origin}.\n"
                    f"@ IN SOA ns.{origin}. hostmaster.{origin}. "
                    "1 3600 600 86400 60\n" + records)
    return path


def test_sighup_switches_the_resolver_of_new_sessions(postiliond, tmp_path):
    """The resolver belongs to the configuration generation: after a SIGHUP
    that points [dns] at another server, a new session asks the new one,
    while a session of the old generation finishes the check it had in
    flight (1.5 s, across the reload) and goes on with the old resolver."""
    old_server = harness.TestDnsServer(
        [harness.REPO / "tests" / "dns" / "basic.zone",
         write_zone(tmp_path / "old.zone", "switch.test",
                    "which IN A 192.0.2.100\nother IN A 192.0.2.101\n")],
        ["--delay", "slow.test=1500"])
    new_server = harness.TestDnsServer(
        [write_zone(tmp_path / "new.zone", "switch.test",
                    "which IN A 192.0.2.200\nother IN A 192.0.2.201\n")])
    try:
        daemon = postiliond(
            config={"dns": {"nameservers": f"127.0.0.1@{old_server.port}",
                            "timeout": "5s", "dnssec": "no"},
                    "plugins": {"path": PROBE_PATH}},
            plugins=["dnsprobe"])
        with daemon.connect(timeout=10) as old:
            old.ehlo()
            assert "[192.0.2.100]" in probe(old, "a@which.switch.test").text
            old.line("MAIL FROM:<a@inflight.slow.test>")
            time.sleep(scaled(0.2))
            mark = daemon.log_mark()
            daemon.reload(config={"dns": {
                "nameservers": f"127.0.0.1@{new_server.port}"}}, wait=0)
            daemon.wait_log(r"dns: reconfigured: forwarding to "
                            rf"127\.0\.0\.1@{new_server.port}\b", since=mark)
            with daemon.connect() as new:
                new.ehlo()
                reply = probe(new, "a@which.switch.test")
                assert reply.code == 250 and "[192.0.2.200]" in reply.text
            in_flight = old.read_reply(timeout=scaled(5))
            assert in_flight.code == 250, in_flight
            assert "ok" in in_flight.text and "[192.0.2.1]" in in_flight.text
            assert old.cmd("RSET").code == 250
            # The old session keeps its generation's resolver.
            reply = probe(old, "a@other.switch.test")
            assert reply.code == 250 and "[192.0.2.101]" in reply.text
        assert daemon.stop() == 0
    finally:
        old_server.stop()
        new_server.stop()
