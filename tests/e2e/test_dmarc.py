"""plugins/dmarc end to end: policy and alignment cases written section by
section from RFC 9989, through one real daemon with relay.so, the real
spf.so and dmarc.so, and the test DNS server (tests/dns/testdns.py)
serving tests/dns/dmarc-e2e.zone.

DKIM results come from tests/plugins/fakedkim (a test plugin named "dkim"
that stores one auth.dkim entry per X-Test-DKIM: field), so any
combination of signatures is one header away; test_dmarc_dkim.py runs the
real dkim plugin.  The client address comes from XCLIENT ADDR= (the daemon
trusts 127.0.0.0/8 for XCLIENT).  The daemon is started once for the
module; a test that needs other [plugin:dmarc] keys reloads it.
"""

from __future__ import annotations

import re

import pytest

import harness
from harness import BUILD, REPO

ZONE = REPO / "tests" / "dns" / "dmarc-e2e.zone"
PLUGIN_PATH = [str(BUILD / "plugins" / "relay"), str(BUILD / "plugins" / "spf"),
               str(BUILD / "plugins" / "dmarc"),
               str(BUILD / "tests" / "plugins" / "fakedkim")]

GOOD = "192.0.2.10"         # in every sender's SPF record
STRANGER = "198.51.100.10"  # in none
FORWARDER = "203.0.113.7"   # trusted_forwarders
INTERNAL = "10.1.2.3"       # relay's internal_networks
REJECT_TEXT = "Email rejected per DMARC policy for {}"

pytestmark = pytest.mark.skipif(
    not (BUILD / "plugins" / "dmarc" / "dmarc.so").exists()
    or not (BUILD / "plugins" / "spf" / "spf.so").exists(),
    reason="dmarc.so or spf.so not built")


def base_config(dns_port: int, history: str) -> dict:
    """relay, spf (annotating only), the DKIM test plugin and dmarc, with
    DNS from the test server; shared with test_dmarc_report.py."""
    return {
        "server": {"xclient_hosts": "127.0.0.0/8"},
        "dns": {"nameservers": f"127.0.0.1@{dns_port}", "timeout": "1s",
                "dnssec": "no"},
        "plugins": {"path": PLUGIN_PATH,
                    "load": ["relay", "spf", "dkim", "dmarc"]},
        "plugin:relay": {"internal_networks": "10.0.0.0/8",
                         "reject_unknown_sender_domain": "no",
                         "reject_unknown_recipient_domain": "no"},
        # SPF only annotates: DMARC decides.
        "plugin:spf": {"policy": "none", "identities": "mail_from"},
        "plugin:dmarc": {"history": history,
                         "trusted_forwarders": FORWARDER + "/32"},
    }


class DmarcDaemon:
    """The module's daemon and its current extra [plugin:dmarc] keys."""

    def __init__(self, daemon: harness.Daemon, base: dict, query_log):
        self.daemon = daemon
        self.base = base
        self.keys: dict = {}
        self.query_log = query_log  # "NAME TYPE" per query the DNS got

    def configure(self, **keys) -> harness.Daemon:
        """Reloads with the base keys plus exactly these (if they differ)."""
        if keys != self.keys:
            mark = self.daemon.log_mark()
            self.daemon.config["plugin:dmarc"] = {**self.base, **keys}
            self.daemon.reload(text=harness.render_config(self.daemon.config),
                               wait=0)
            self.daemon.wait_log(r"plugin dmarc: enforce", since=mark)
            self.keys = dict(keys)
        return self.daemon


@pytest.fixture(scope="module")
def dmarc(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dmarc")
    dns = harness.TestDnsServer([ZONE], args=["--query-log",
                                              str(directory / "queries")])
    config = base_config(dns.port, f"sqlite:{directory / 'dmarc.db'}")
    daemon = harness.Daemon(directory / "postiliond", config=config)
    daemon.start()
    yield DmarcDaemon(daemon, dict(config["plugin:dmarc"]),
                      directory / "queries")
    status = daemon.stop()
    dns.stop()
    report = daemon.sanitizer_report()
    assert report is None, report
    assert status == 0, daemon.log_text()


def message(from_field: str, dkim: list[str] = (), extra: str = "") -> bytes:
    headers = "".join(f"X-Test-DKIM: {d}\r\n" for d in dkim)
    return (f"From: {from_field}\r\nTo: bob@example.org\r\n"
            f"Subject: dmarc test\r\n{headers}{extra}\r\nHello.\r\n").encode()


def send(daemon, ip: str, sender: str, content: bytes,
         helo: str = "client.test") -> harness.Reply:
    """One transaction from `ip`; the reply after the final dot."""
    with daemon.connect() as client:
        client.ehlo()
        reply = client.cmd(f"XCLIENT ADDR={ip} HELO={helo}")
        assert reply.code == 220, reply
        return harness.transaction(client, sender=sender, message=content)


def queued(daemon, reply: harness.Reply, queue: str = "active") -> dict:
    (found,) = daemon.spool_messages(queue, id=harness.queue_id(reply))
    return found


def authres(found: dict) -> str:
    headers, _ = harness.split_message(found["content"])
    values = [re.sub(r"\r\n\s+", " ", v) for n, v in headers
              if n.lower() == "authentication-results"]
    assert len(values) == 1, values
    return values[0]


def dmarc_resinfo(found: dict) -> str:
    match = re.search(r"dmarc=[^;]*", authres(found))
    assert match, authres(found)
    return match.group(0).strip()


def header(found: dict, name: str) -> list[str]:
    headers, _ = harness.split_message(found["content"])
    return [v for n, v in headers if n.lower() == name.lower()]


# --------------------------------------------------------------------------
# "Determine Handling Policy" and "Identifier Alignment Explained"
# --------------------------------------------------------------------------

def test_reject_when_nothing_aligned_passes(dmarc):
    """p=reject, SPF fails and there is no signature: the configured
    reply, naming the domain."""
    d = dmarc.configure()
    reply = send(d, STRANGER, "a@reject.test", message("a@reject.test"))
    assert reply.code == 550 and reply.enhanced == "5.7.1", reply
    assert REJECT_TEXT.format("reject.test") in reply.last


def test_spf_aligned_pass(dmarc):
    d = dmarc.configure()
    found = queued(d, send(d, GOOD, "a@reject.test",
                           message("Alice <a@reject.test>")))
    info = dmarc_resinfo(found)
    assert info.startswith("dmarc=pass"), info
    assert "header.from=reject.test" in info
    assert "policy.dmarc=reject" in info


def test_dkim_aligned_pass_despite_spf_fail(dmarc):
    """A passing signature of the From domain is enough (RFC 9989: "any
    DKIM signature is aligned and verified")."""
    d = dmarc.configure()
    found = queued(d, send(d, STRANGER, "a@reject.test", message(
        "a@reject.test", ["fail d=reject.test s=old",
                          "pass d=mailer.example s=x",
                          "pass d=reject.test s=sel"])))
    assert dmarc_resinfo(found).startswith("dmarc=pass")


def test_unaligned_signature_does_not_pass(dmarc):
    d = dmarc.configure()
    reply = send(d, STRANGER, "bounce@nodmarc.test", message(
        "a@reject.test", ["pass d=mailer.example s=x"]))
    assert reply.code == 550, reply


def test_relaxed_alignment_through_a_subdomain(dmarc):
    """Relaxed: the SPF domain bounce.relaxed.test shares the
    Organizational Domain relaxed.test."""
    d = dmarc.configure()
    found = queued(d, send(d, GOOD, "b@bounce.relaxed.test",
                           message("a@relaxed.test")))
    assert dmarc_resinfo(found).startswith("dmarc=pass")


def test_strict_alignment_refuses_a_subdomain(dmarc):
    d = dmarc.configure()
    reply = send(d, GOOD, "b@mail.strict.test", message(
        "a@strict.test", ["pass d=mail.strict.test s=x"]))
    assert reply.code == 550, reply
    found = queued(d, send(d, GOOD, "b@strict.test", message("a@strict.test")))
    assert dmarc_resinfo(found).startswith("dmarc=pass")


def test_spf_on_helo_for_the_null_sender(dmarc):
    """MAIL FROM:<> is checked as postmaster@HELO (RFC 7208 section 2.4),
    and that identity aligns."""
    d = dmarc.configure()
    found = queued(d, send(d, GOOD, "", message("a@reject.test"),
                           helo="helo.reject.test"))
    assert dmarc_resinfo(found).startswith("dmarc=pass")


# --------------------------------------------------------------------------
# "DMARC Policy Discovery": sp, np, psd, test mode, no record
# --------------------------------------------------------------------------

def test_np_for_a_nonexistent_subdomain(dmarc):
    d = dmarc.configure(quarantine="header")
    reply = send(d, STRANGER, "a@ghost.parent.test",
                 message("a@ghost.parent.test"))
    assert reply.code == 550 and "ghost.parent.test" in reply.last, reply
    found = queued(d, send(d, STRANGER, "a@exists.parent.test",
                           message("a@exists.parent.test")))
    assert "policy.dmarc=quarantine" in dmarc_resinfo(found)
    assert header(found, "X-Postilion-DMARC") == [
        "quarantine (DMARC policy of parent.test)"]


def test_psd_policy(dmarc):
    """shop.psdtld.test has no record; psdtld.test says psd=y and p=reject:
    the PSD's policy applies, and bounce.shop.psdtld.test aligns with
    shop.psdtld.test (one label below the PSD)."""
    d = dmarc.configure()
    reply = send(d, STRANGER, "a@shop.psdtld.test",
                 message("a@shop.psdtld.test"))
    assert reply.code == 550, reply
    found = queued(d, send(d, GOOD, "b@bounce.shop.psdtld.test",
                           message("a@shop.psdtld.test")))
    assert dmarc_resinfo(found).startswith("dmarc=pass")


def test_tree_walk_of_a_deep_name(dmarc):
    """A From domain of 11 labels: the walk queries it, jumps to its last 7
    labels, then drops one label at a time: 8 queries at most ("DNS Tree
    Walk"), and finds reject.test's policy (p, as sp is absent)."""
    d = dmarc.configure()
    deep = "a.b.c.d.e.f.g.h.reject.test"
    before = len(dmarc.query_log.read_text().splitlines())
    reply = send(d, STRANGER, f"x@{deep}", message(f"x@{deep}"))
    assert reply.code == 550 and deep in reply.last, reply
    lines = dmarc.query_log.read_text().splitlines()[before:]
    names = [line.split()[0].rstrip(".").lower() for line in lines
             if line.startswith("_dmarc.") and " TXT" in line]
    walk = [name for name in names if deep.endswith(name[len("_dmarc."):])]
    # (the resolver's cache may answer the upper names of earlier tests)
    assert walk[:2] == [f"_dmarc.{deep}", "_dmarc.d.e.f.g.h.reject.test"]
    assert len(walk) <= 8


def test_test_mode_is_not_enforced(dmarc):
    d = dmarc.configure()
    found = queued(d, send(d, STRANGER, "a@testmode.test",
                           message("a@testmode.test")))
    assert dmarc_resinfo(found).startswith("dmarc=fail")


@pytest.mark.parametrize("domain", ["nodmarc.test", "twice.test"])
def test_no_usable_record_is_none(dmarc, domain):
    d = dmarc.configure()
    found = queued(d, send(d, STRANGER, f"a@{domain}",
                           message(f"a@{domain}")))
    assert dmarc_resinfo(found).startswith("dmarc=none")


# --------------------------------------------------------------------------
# Quarantine, enforcement switches, forwarders, skipped sessions
# --------------------------------------------------------------------------

def test_quarantine_hold(dmarc):
    d = dmarc.configure()
    reply = send(d, STRANGER, "a@quarantine.test",
                 message("a@quarantine.test"))
    assert reply.code == 250, reply
    found = queued(d, reply, queue="hold")
    assert dmarc_resinfo(found).startswith("dmarc=fail")


def test_quarantine_header_replaces_a_forged_one(dmarc):
    d = dmarc.configure(quarantine="header")
    found = queued(d, send(d, GOOD, "a@quarantine.test", message(
        "a@quarantine.test", extra="X-Postilion-DMARC: forged\r\n")))
    assert dmarc_resinfo(found).startswith("dmarc=pass")
    assert header(found, "X-Postilion-DMARC") == []


def test_enforce_false_only_reports(dmarc):
    d = dmarc.configure(enforce="false")
    found = queued(d, send(d, STRANGER, "a@reject.test",
                           message("a@reject.test")))
    assert dmarc_resinfo(found).startswith("dmarc=fail")


def test_trusted_forwarder_is_not_enforced(dmarc):
    d = dmarc.configure()
    found = queued(d, send(d, FORWARDER, "a@reject.test",
                           message("a@reject.test")))
    assert dmarc_resinfo(found).startswith("dmarc=fail")


def test_internal_clients_are_not_checked(dmarc):
    d = dmarc.configure()
    found = queued(d, send(d, INTERNAL, "a@reject.test",
                           message("a@reject.test")))
    headers, _ = harness.split_message(found["content"])
    assert not any("dmarc=" in v for _, v in headers)


def test_custom_reject_reply(dmarc):
    d = dmarc.configure(reject_reply="554 5.7.9 DMARC says no to {domain}")
    reply = send(d, STRANGER, "a@reject.test", message("a@reject.test"))
    assert reply.code == 554 and reply.enhanced == "5.7.9", reply
    assert "DMARC says no to reject.test" in reply.last


# --------------------------------------------------------------------------
# "Extract Author Domain" and DNS trouble
# --------------------------------------------------------------------------

def test_malformed_from(dmarc):
    d = dmarc.configure()
    two_fields = message("a@reject.test", extra="From: b@other.test\r\n")
    reply = send(d, STRANGER, "a@reject.test", two_fields)
    assert reply.code == 550 and reply.enhanced == "5.7.1", reply
    assert "exactly one author domain" in reply.last
    reply = send(d, STRANGER, "a@reject.test",
                 message("a@reject.test, b@other.test"))
    assert reply.code == 550, reply
    d = dmarc.configure(malformed_from="accept")
    found = queued(d, send(d, STRANGER, "a@reject.test", two_fields))
    assert dmarc_resinfo(found).startswith("dmarc=none")


def test_temperror_accept_and_tempfail(dmarc):
    d = dmarc.configure()
    found = queued(d, send(d, STRANGER, "a@x.servfail.test",
                           message("a@x.servfail.test")))
    assert dmarc_resinfo(found).startswith("dmarc=temperror")
    d = dmarc.configure(temperror_action="tempfail")
    reply = send(d, STRANGER, "a@x.servfail.test",
                 message("a@x.servfail.test"))
    assert reply.code == 451 and reply.enhanced == "4.4.3", reply


def test_bad_configuration_is_refused(tmp_path):
    daemon = harness.Daemon(tmp_path, config={
        "plugins": {"path": PLUGIN_PATH, "load": ["dmarc"]},
        "plugin:dmarc": {"quarantine": "junk"}})
    daemon.expect_exit = True
    daemon.start(wait=False)
    assert daemon.wait_exit() != 0
    assert "quarantine: \"junk\" is not hold or header" in daemon.log_text()


def test_no_answer_kept_when_the_resolver_keeps_none(tmp_path):
    """The plugin keeps DNS answers for their TTL (dmarc-cache.c); with
    `[dns] cache_size = 0` every TTL reads 0, so nothing is kept and each
    message asks the DNS again: the server sees the question again for the
    second message.  Made for a busy machine (the ASan build once failed
    here): counted per message, not in total, as libunbound resends a
    question the server was slow to answer (after its 400 ms minimum RTT)
    and the log then holds it twice for one lookup; and a lookup timeout
    far above any delay, as a first lookup that timed out while its query
    was still in flight would answer the second message's identical
    question from that query (libunbound joins them), not from a cache."""
    queries = tmp_path / "queries"
    dns = harness.TestDnsServer([ZONE], args=["--query-log", str(queries)])

    def asked() -> int:
        return sum(1 for line in queries.read_text().splitlines()
                   if line.lower().startswith("_dmarc.none.test")
                   and " TXT" in line)

    try:
        config = base_config(dns.port, f"sqlite:{tmp_path / 'dmarc.db'}")
        config["dns"]["cache_size"] = "0"
        config["dns"]["timeout"] = "30s"
        daemon = harness.Daemon(tmp_path / "postiliond", config=config)
        daemon.start()
        counts = []
        for _ in range(2):
            reply = send(daemon, GOOD, "a@none.test", message("a@none.test"))
            assert reply.code == 250, reply
            counts.append(asked())
        assert counts[0] >= 1 and counts[1] > counts[0], queries.read_text()
        assert daemon.stop() == 0
    finally:
        dns.stop()
