"""plugins/relay end to end: the relay rules, the envelope checks and the
relay-trick matrix, through the real daemon with relay.so loaded and a
test DNS server (tests/dns/testdns.py) serving a zone written here.

Client kinds come from the source address: the daemon listens on
127.0.0.1 and internal_networks is 127.0.0.1/32, so a client bound to
127.0.0.1 is internal and one bound to 127.0.0.5 is outside; 127.0.0.2 is
listed in the test DNSBL.  Authenticated clients come through XCLIENT
LOGIN= here; tests/e2e/test_auth.py runs the same rules (and the
relay-trick matrix) with real SMTP AUTH through plugins/auth.  IPv6 clients use ::1.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

import harness
from harness import BUILD, scaled

RELAY_PATH = [str(BUILD / "plugins" / "relay")]

INTERNAL = "127.0.0.1"
OUTSIDE = "127.0.0.5"
LISTED = "127.0.0.2"
LISTED_OTHER_CODE = "127.0.0.3"

ZONE = """\
$TTL 300
$ORIGIN relay.test.
@          IN SOA ns.relay.test. hostmaster.relay.test. 1 3600 600 86400 60
@          IN NS  ns.relay.test.
ns         IN A   127.0.0.1
good       IN MX  10 mx.good.relay.test.
mx.good    IN A   192.0.2.1
aonly      IN A   192.0.2.2
v6only     IN AAAA 2001:db8::2
nullmx     IN MX  0 .
nodata     IN TXT "no address here"
2.0.0.127.bl IN A 127.0.0.2
2.0.0.127.bl IN TXT "listed: see https://bl.example/?127.0.0.2"
3.0.0.127.bl IN A 127.0.0.3
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl6 IN A 127.0.0.4
"""


class DnsServer(harness.TestDnsServer):
    """testdns.py serving ZONE."""

    def __init__(self, directory: Path):
        zone = directory / "relay.zone"
        zone.write_text(ZONE)
        super().__init__([zone])


@pytest.fixture(scope="module")
def relaydns(tmp_path_factory):
    server = DnsServer(tmp_path_factory.mktemp("relaydns"))
    yield server
    server.stop()


@pytest.fixture
def relay_daemon(postiliond, relaydns):
    """Factory: a daemon with relay.so; `relay` adds [plugin:relay] keys,
    `server` adds [server] keys (xclient_hosts by default: 127.0.0.0/8)."""

    def make(relay: dict | None = None, server: dict | None = None,
             listeners=("smtp",), extra: dict | None = None):
        config = {
            "server": {"xclient_hosts": "127.0.0.0/8", **(server or {})},
            "dns": {"nameservers": f"127.0.0.1@{relaydns.port}",
                    "timeout": "1s", "dnssec": "no"},
            "plugins": {"path": RELAY_PATH},
            "plugin:relay": {"internal_networks": f"{INTERNAL}/32",
                             **(relay or {})},
            **(extra or {}),
        }
        return postiliond(config=config, plugins=["relay"],
                          listeners=listeners)

    return make


def connect(daemon, source: str, listener: str | None = None):
    client = daemon.connect(listener=listener, source=source)
    assert client.greeting.code == 220
    return client


def connect6(daemon, listener: str | None = None) -> harness.SMTPRaw:
    """A raw client from ::1 to an IPv6 listener."""
    port = daemon.ports[listener] if listener else daemon.port
    client = harness.SMTPRaw.__new__(harness.SMTPRaw)
    client.timeout = scaled(5.0)
    client.greeting = None
    client.buffer = b""
    client.eof = False
    client.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    client.sock.settimeout(client.timeout)
    client.sock.connect(("::1", port))
    client.greeting = client.read_reply()
    assert client.greeting.code == 220
    return client


def mail_rcpt(client, sender: str, recipient: str | None = None):
    """MAIL (and RCPT when given); returns the last reply, RSET after."""
    reply = client.cmd(f"MAIL FROM:<{sender}>")
    if reply.code == 250 and recipient is not None:
        reply = client.cmd(f"RCPT TO:<{recipient}>")
    assert client.cmd("RSET").code == 250
    return reply


def expect(reply, code: int, enhanced: str | None = None,
           text: str | None = None):
    assert reply.code == code, reply
    if enhanced is not None:
        assert reply.enhanced == enhanced, reply
    if text is not None:
        assert text in reply.text, reply


# --------------------------------------------------------------------------
# The relay rule
# --------------------------------------------------------------------------


def test_outside_client_gets_mail_for_us_but_cannot_relay(relay_daemon):
    daemon = relay_daemon()
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        reply = harness.transaction(client, sender="alice@good.relay.test")
        harness.queue_id(reply)
        client.cmd("MAIL FROM:<alice@good.relay.test>")
        expect(client.cmd("RCPT TO:<bob@good.relay.test>"), 554, "5.7.1",
               "<bob@good.relay.test>: Relay access denied")
    assert len(daemon.spool_messages()) == 1


def test_internal_client_relays(relay_daemon):
    daemon = relay_daemon()
    with connect(daemon, INTERNAL) as client:
        client.ehlo()
        reply = harness.transaction(client, sender="app@example.org",
                                    recipients=["bob@good.relay.test"])
        harness.queue_id(reply)
    assert len(daemon.spool_messages()) == 1


def test_authenticated_client_relays_and_login_map(relay_daemon, tmp_path):
    login_map = tmp_path / "senders"
    login_map.write_text("# who may send as whom\n"
                         "alice@example.org  alice\n"
                         "@example.net       bob, carol\n")
    daemon = relay_daemon(relay={"sender_login_map": str(login_map)})
    with connect(daemon, OUTSIDE) as client:
        expect(client.cmd("XCLIENT LOGIN=alice"), 220)
        client.ehlo()
        expect(mail_rcpt(client, "alice@example.org", "x@good.relay.test"),
               250)
        expect(mail_rcpt(client, "bob@example.net"), 553, "5.7.1",
               "<bob@example.net>: Sender address rejected: not owned by "
               "user alice")
        expect(mail_rcpt(client, "alice@good.relay.test"), 553, "5.7.1")
        expect(mail_rcpt(client, ""), 250)
    with connect(daemon, OUTSIDE) as client:
        expect(client.cmd("XCLIENT LOGIN=carol"), 220)
        client.ehlo()
        expect(mail_rcpt(client, "anyone@example.net", "x@good.relay.test"),
               250)


def test_sender_login_required(relay_daemon):
    daemon = relay_daemon()
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "ceo@example.org"), 553, "5.7.1",
               "<ceo@example.org>: Sender address rejected: not logged in")
        expect(mail_rcpt(client, "ceo@EXAMPLE.NET"), 553, "5.7.1")
        expect(mail_rcpt(client, "", "bob@example.org"), 250)
    with connect(daemon, INTERNAL) as client:
        client.ehlo()
        expect(mail_rcpt(client, "ceo@example.org", "bob@example.org"), 250)
    off = relay_daemon(relay={"sender_login_required": "false"})
    with connect(off, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "ceo@example.org", "bob@example.org"), 250)


# --------------------------------------------------------------------------
# Envelope checks
# --------------------------------------------------------------------------


@pytest.mark.parametrize("helo,code,enhanced,text", [
    ("bad..name", 501, "5.5.2", "<bad..name>: Helo command rejected: "
     "Invalid name"),
    ("-dash.example", 501, "5.5.2", "Invalid name"),
    ("under_score!.example", 501, "5.5.2", "Invalid name"),
    ("[300.1.2.3]", 501, "5.5.2", "Invalid name"),
    ("localhost", 504, "5.5.2", "<localhost>: Helo command rejected: need "
     "fully-qualified hostname"),
    ("client.test.example", 250, None, None),
    ("[192.0.2.1]", 250, None, None),
    ("[IPv6:2001:db8::1]", 250, None, None),
])
def test_helo_checks(relay_daemon, helo, code, enhanced, text):
    daemon = relay_daemon()
    with connect(daemon, OUTSIDE) as client:
        assert client.cmd(f"EHLO {helo}").code == 250
        expect(mail_rcpt(client, "a@good.relay.test"), code, enhanced, text)
    with connect(daemon, INTERNAL) as client:
        assert client.cmd(f"EHLO {helo}").code == 250
        expect(mail_rcpt(client, "a@good.relay.test"), 250)


@pytest.mark.parametrize("source", [OUTSIDE, INTERNAL])
def test_helo_required(relay_daemon, source):
    """helo_required = true (the default, and explicit here): MAIL before
    HELO/EHLO is refused for every client kind."""
    daemon = relay_daemon(relay={"helo_required": "true"})
    with connect(daemon, source) as client:
        expect(client.cmd("MAIL FROM:<a@good.relay.test>"), 503, "5.5.1",
               "Error: send HELO/EHLO first")
        client.ehlo("mail.good.relay.test")
        expect(client.cmd("MAIL FROM:<a@good.relay.test>"), 250)


def test_helo_not_required(relay_daemon):
    """helo_required = false: MAIL without HELO/EHLO works (plain SMTP,
    unknown HELO name); the other checks still apply."""
    daemon = relay_daemon(relay={"helo_required": "false"})
    with connect(daemon, OUTSIDE) as client:
        expect(client.cmd("MAIL FROM:<a@good.relay.test>"), 250)
        expect(client.cmd("RCPT TO:<x@elsewhere.relay.test>"), 554, "5.7.1")
        expect(client.cmd("RCPT TO:<bob@example.org>"), 250)
        assert client.cmd("DATA").code == 354
        client.send(b"Subject: no hello\r\n\r\nbody\r\n.\r\n")
        reply = client.read_reply()
        assert reply.code == 250
        # A second transaction without HELO on the same connection.
        expect(client.cmd("MAIL FROM:<a@good.relay.test>"), 250)
    (m,) = daemon.spool_messages()
    assert b"Received: from unknown" in m["content"]
    assert b"with SMTP id" in m["content"]


def test_helo_checks_switch_off(relay_daemon):
    daemon = relay_daemon(relay={"reject_invalid_helo_hostname": "no",
                                 "reject_non_fqdn_helo_hostname": "no"})
    with connect(daemon, OUTSIDE) as client:
        assert client.cmd("EHLO bad..name").code == 250
        expect(mail_rcpt(client, "a@good.relay.test"), 250)
        assert client.cmd("EHLO localhost").code == 250
        expect(mail_rcpt(client, "a@good.relay.test"), 250)


SENDER_DOMAINS = [
    ("good.relay.test", 250, None, None),
    ("aonly.relay.test", 250, None, None),
    ("v6only.relay.test", 250, None, None),
    ("MX.Good.Relay.Test", 250, None, None),
    ("missing.relay.test", 550, "5.1.8",
     "<a@missing.relay.test>: Sender address rejected: Domain not found"),
    ("nodata.relay.test", 550, "5.1.8", "Domain not found"),
    ("nullmx.relay.test", 550, "5.7.27", "null MX"),
    ("x.servfail.test", 450, "4.1.8", "Domain not found"),
    ("x.timeout.test", 450, "4.1.8", "Domain not found"),
    ("[192.0.2.1]", 250, None, None),
]


@pytest.mark.parametrize("domain,code,enhanced,text", SENDER_DOMAINS)
def test_unknown_sender_domain(relay_daemon, domain, code, enhanced, text):
    daemon = relay_daemon()
    for source in (OUTSIDE, INTERNAL):
        with connect(daemon, source) as client:
            client.ehlo()
            expect(mail_rcpt(client, f"a@{domain}", "bob@example.org"), code,
                   enhanced, text)


def test_sender_checks_switch_off(relay_daemon):
    daemon = relay_daemon(relay={"reject_unknown_sender_domain": "false",
                                 "reject_non_fqdn_sender": "false"})
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@missing.relay.test", "bob@example.org"),
               250)
        expect(mail_rcpt(client, "a@localhost", "bob@example.org"), 250)


def test_non_fqdn_sender_and_recipient(relay_daemon):
    daemon = relay_daemon()
    with connect(daemon, INTERNAL) as client:
        client.ehlo()
        expect(mail_rcpt(client, "root@localhost"), 504, "5.5.2",
               "<root@localhost>: Sender address rejected: need "
               "fully-qualified address")
        expect(mail_rcpt(client, "a@good.relay.test", "root@host"), 504,
               "5.5.2", "<root@host>: Recipient address rejected: need "
               "fully-qualified address")
        expect(mail_rcpt(client, "", "postmaster"), 250)
    off = relay_daemon(relay={"reject_non_fqdn_recipient": "false",
                              "reject_unknown_recipient_domain": "false"})
    with connect(off, INTERNAL) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "root@host"), 250)


@pytest.mark.parametrize("domain,code,enhanced,text", [
    ("good.relay.test", 250, None, None),
    ("aonly.relay.test", 250, None, None),
    ("v6only.relay.test", 250, None, None),
    ("missing.relay.test", 550, "5.1.2",
     "<b@missing.relay.test>: Recipient address rejected: Domain not found"),
    ("nodata.relay.test", 550, "5.1.2", "Domain not found"),
    ("nullmx.relay.test", 556, "5.1.10", "null MX"),
    ("x.servfail.test", 450, "4.1.2", "Domain not found"),
    ("x.timeout.test", 450, "4.1.2", "Domain not found"),
])
def test_unknown_recipient_domain(relay_daemon, domain, code, enhanced, text):
    daemon = relay_daemon()
    with connect(daemon, INTERNAL) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", f"b@{domain}"), code,
               enhanced, text)


# --------------------------------------------------------------------------
# DNSBL
# --------------------------------------------------------------------------


def test_dnsbl_rejects_listed_outside_client(relay_daemon):
    daemon = relay_daemon(relay={"dnsbl": "bl.relay.test"})
    with connect(daemon, LISTED) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test"), 554, "5.7.1",
               "Service unavailable; Client host [127.0.0.2] blocked using "
               "bl.relay.test (127.0.0.2); listed: see "
               "https://bl.example/?127.0.0.2")
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "bob@example.org"), 250)
    assert "client 127.0.0.2 listed by bl.relay.test" in daemon.log_text()


def test_dnsbl_answer_filter_and_no_txt(relay_daemon):
    daemon = relay_daemon(relay={"dnsbl": "bl.relay.test=127.0.0.2"})
    with connect(daemon, LISTED_OTHER_CODE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "bob@example.org"), 250)
    daemon = relay_daemon(relay={"dnsbl": "bl.relay.test"})
    with connect(daemon, LISTED_OTHER_CODE) as client:
        client.ehlo()
        reply = mail_rcpt(client, "a@good.relay.test")
        expect(reply, 554, "5.7.1", "blocked using bl.relay.test (127.0.0.3)")
        assert reply.text.endswith("(127.0.0.3)"), reply


def test_dnsbl_timeout_never_rejects(relay_daemon):
    daemon = relay_daemon(relay={"dnsbl": "bl.timeout.test;bl.servfail.test;"
                                          "bl.relay.test"})
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "bob@example.org"), 250)
    with connect(daemon, LISTED) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test"), 554, "5.7.1")
    assert "did not answer" in daemon.log_text()


def test_dnsbl_skips_trusted_clients(relay_daemon):
    daemon = relay_daemon(relay={"dnsbl": "bl.relay.test",
                                 "internal_networks": f"{LISTED}/32"})
    with connect(daemon, LISTED) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               250)
    with connect(daemon, LISTED_OTHER_CODE) as client:
        expect(client.cmd("XCLIENT LOGIN=someone"), 220)
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               250)


# --------------------------------------------------------------------------
# IPv6 clients
# --------------------------------------------------------------------------


def ipv6_daemon(relay_daemon, internal: str, **relay):
    port = harness.free_port("::1")
    return relay_daemon(
        relay={"internal_networks": internal, **relay},
        extra={"listener:smtp": {"address": f"[::1]:{port}"}})


def test_ipv6_client_outside_and_internal(relay_daemon):
    daemon = ipv6_daemon(relay_daemon, "127.0.0.1/32;2001:db8::/32")
    client = connect6(daemon)
    client.ehlo()
    expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"), 554,
           "5.7.1", "Relay access denied")
    expect(mail_rcpt(client, "a@good.relay.test", "b@example.org"), 250)
    client.close()
    daemon = ipv6_daemon(relay_daemon, "[::1]/128")
    client = connect6(daemon)
    client.ehlo()
    expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"), 250)
    client.close()


def test_ipv6_dnsbl(relay_daemon):
    daemon = ipv6_daemon(relay_daemon, "10.0.0.0/8", dnsbl="bl6.relay.test")
    client = connect6(daemon)
    client.ehlo()
    expect(mail_rcpt(client, "a@good.relay.test"), 554, "5.7.1",
           "Client host [::1] blocked using bl6.relay.test (127.0.0.4)")
    client.close()


def test_ipv4_mapped_addresses(relay_daemon):
    """Listeners are IPV6_V6ONLY, so mapped addresses arrive through
    XCLIENT (and PROXY): the core unmaps them, and a mapped network in
    internal_networks counts as its IPv4 network."""
    daemon = relay_daemon(relay={"internal_networks": "::ffff:192.0.2.0/120"})
    with connect(daemon, OUTSIDE) as client:
        expect(client.cmd("XCLIENT ADDR=IPV6:::ffff:192.0.2.7"), 220)
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               250)
    with connect(daemon, OUTSIDE) as client:
        expect(client.cmd("XCLIENT ADDR=IPV6:::ffff:198.51.100.7"), 220)
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               554, "5.7.1")
    log = daemon.log_text()
    assert "is [192.0.2.7]:" in log and "is [198.51.100.7]:" in log, log


def test_reload_changes_rules_for_new_sessions(relay_daemon):
    """SIGHUP with new [plugin:relay] keys: new sessions get them, a
    session already open keeps the rules it began with."""
    daemon = relay_daemon()
    old = connect(daemon, OUTSIDE)
    old.ehlo()
    daemon.reload(config={"plugin:relay": {
        "internal_networks": f"{INTERNAL}/32;{OUTSIDE}/32"}})
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               250)
    expect(mail_rcpt(old, "a@good.relay.test", "b@good.relay.test"), 554,
           "5.7.1")
    old.close()


def test_bad_reload_keeps_old_rules(relay_daemon):
    daemon = relay_daemon()
    daemon.reload(config={"plugin:relay": {"internal_networks": "nonsense"}})
    with connect(daemon, INTERNAL) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               250)
    with connect(daemon, OUTSIDE) as client:
        client.ehlo()
        expect(mail_rcpt(client, "a@good.relay.test", "b@good.relay.test"),
               554, "5.7.1")
    assert "internal_networks" in daemon.log_text()


# --------------------------------------------------------------------------
# Configuration and the chain
# --------------------------------------------------------------------------


@pytest.mark.parametrize("key,value,message", [
    ("internal_networks", "10.0.0.0/33", "internal_networks: \"10.0.0.0/33\""),
    ("internal_networks", "10.1.2.3/8", "is not a network"),
    ("dnsbl", "zen", "dnsbl: \"zen\" is not a DNSBL"),
    ("dnsbl", "bl.example=nonsense", "is not a DNSBL"),
    ("sender_login_map", "/nonexistent/map", "cannot read it"),
    ("reject_relay_trick", "true", "reject_relay_trick"),
    ("sender_login_required", "maybe", "sender_login_required"),
    ("helo_required", "maybe", "helo_required"),
])
def test_bad_config_refused(postiliond, key, value, message):
    daemon = postiliond(config={"plugins": {"path": RELAY_PATH},
                                "plugin:relay": {key: value}},
                        plugins=["relay"], start=False)
    daemon.write_config()
    code, out, err = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert code != 0
    assert message in out + err, out + err


def test_check_shows_relay_in_chain(postiliond):
    daemon = postiliond(config={"plugins": {"path": RELAY_PATH}},
                        plugins=["relay"], start=False)
    daemon.write_config()
    code, out, err = harness.run_cli(
        ["--check", "-v", "-c", str(daemon.conf_path)])
    assert code == 0, out + err
    text = out + err
    for stage in ("connect", "auth", "mail", "rcpt"):
        assert re.search(rf"smtp\s+{stage}\s+0\s+relay", text), text
