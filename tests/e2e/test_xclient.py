"""Postfix's XCLIENT command (XCLIENT_README): allowed only from
[server] xclient_hosts (others get the unknown-command reply and no EHLO
keyword), attributes ADDR PORT NAME HELO LOGIN PROTO DESTADDR DESTPORT in
xtext, [UNAVAILABLE]/[TEMPUNAVAIL], IPv6 addresses with the IPV6: prefix,
the 220 greeting after it, the new address in the logs, the Received:
header and the plugins (relay permission decided anew), and the 501/503
refusals.
"""

from __future__ import annotations

import pytest

import harness
from harness import BUILD

RELAY_PATH = [str(BUILD / "plugins" / "relay")]


@pytest.fixture
def xdaemon(postiliond):
    def make(hosts: str = "127.0.0.1/32", relay: bool = False):
        config = {"server": {"xclient_hosts": hosts}}
        plugins = None
        if relay:
            config["plugins"] = {"path": RELAY_PATH}
            config["plugin:relay"] = {
                "reject_unknown_sender_domain": "no",
                "reject_unknown_recipient_domain": "no"}
            plugins = ["relay"]
        return postiliond(config=config, plugins=plugins)
    return make


def received(daemon) -> str:
    (message,) = daemon.spool_messages()
    headers, _ = harness.split_message(message["content"])
    return next(value for name, value in headers if name == "Received")


def test_refused_like_unknown_command_from_other_hosts(xdaemon):
    daemon = xdaemon(hosts="127.0.0.2/32; 2001:db8::/32")
    with daemon.connect() as client:
        assert not any("XCLIENT" in line for line in client.ehlo().lines)
        reply = client.cmd("XCLIENT ADDR=192.0.2.1")
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), reply
        assert reply.text == "5.5.2 Error: command not recognized"
    daemon = xdaemon(hosts="")
    with daemon.connect() as client:
        assert client.cmd("XCLIENT ADDR=192.0.2.1").code == 500


def test_all_attributes(xdaemon):
    daemon = xdaemon()
    with daemon.connect() as client:
        ehlo = client.ehlo()
        assert ("250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR "
                "DESTPORT") in ehlo.lines
        reply = client.cmd("XCLIENT ADDR=192.0.2.1 PORT=4711 "
                           "NAME=host.example.com HELO=helo.example.com")
        assert reply.code == 220 and "mx.test.example" in reply.text, reply
        reply = client.cmd("XCLIENT LOGIN=al+2Bice PROTO=ESMTP "
                           "DESTADDR=198.51.100.25 DESTPORT=25")
        assert reply.code == 220
        # HELO= stands for the client's HELO: MAIL may follow at once.
        harness.queue_id(harness.transaction(client))
    header = received(daemon)
    assert header.startswith("from helo.example.com (host.example.com "
                             "[192.0.2.1])"), header
    assert "with ESMTPA" in header, header
    log = daemon.log_text()
    assert "is [192.0.2.1]:4711 name=host.example.com helo=helo.example.com" \
        in log, log
    assert "login=al+ice" in log


def test_ipv6_and_unavailable(xdaemon):
    daemon = xdaemon()
    with daemon.connect() as client:
        assert client.cmd("XCLIENT ADDR=IPV6:2001:db8::5 NAME=[UNAVAILABLE] "
                          "PORT=[TEMPUNAVAIL]").code == 220
        client.ehlo()
        harness.queue_id(harness.transaction(client))
    header = received(daemon)
    assert "(unknown [IPv6:2001:db8::5])" in header, header


def test_helo_needed_unless_known(xdaemon):
    """XCLIENT before any HELO and without HELO=: EHLO is still needed.
    Attributes not sent keep their values, so an EHLO before XCLIENT
    counts."""
    daemon = xdaemon()
    with daemon.connect() as client:
        assert client.cmd("XCLIENT ADDR=192.0.2.2").code == 220
        reply = client.cmd("MAIL FROM:<a@example.com>")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), reply
        client.ehlo()
        assert client.cmd("XCLIENT ADDR=192.0.2.3").code == 220
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250


@pytest.mark.parametrize("argument,text", [
    ("", "Syntax: XCLIENT attribute=value..."),
    ("FOO=bar", "Bad XCLIENT attribute name: FOO"),
    ("ADDR", "Bad XCLIENT attribute syntax: ADDR"),
    ("ADDR=999.0.0.1", "Bad ADDR syntax: 999.0.0.1"),
    ("ADDR=2001:db8::1", "Bad ADDR syntax: 2001:db8::1"),
    ("ADDR=IPV6:192.0.2.1", "Bad ADDR syntax"),
    ("PORT=70000", "Bad PORT syntax: 70000"),
    ("PROTO=HTTP", "Bad PROTO syntax: HTTP"),
    ("NAME=a+ZZb", "Bad NAME syntax"),
    ("HELO=a+20b", "Bad HELO syntax"),
])
def test_bad_attributes(xdaemon, argument, text):
    daemon = xdaemon()
    with daemon.connect() as client:
        reply = client.cmd(f"XCLIENT {argument}".rstrip())
        assert (reply.code, reply.enhanced) == (501, "5.5.4"), reply
        assert text in reply.text, reply
        # Nothing changed: the session goes on as before.
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
    assert "xclient:" not in daemon.log_text()


def test_refused_inside_a_transaction(xdaemon):
    daemon = xdaemon()
    with daemon.connect() as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        reply = client.cmd("XCLIENT ADDR=192.0.2.1")
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), reply
        assert "MAIL transaction in progress" in reply.text
        assert client.cmd("RCPT TO:<bob@example.org>").code == 250


def test_relay_permission_follows_the_new_address(xdaemon):
    """127.0.0.1 is internal by default; after XCLIENT the client is
    198.51.100.1 and may no longer relay, and a LOGIN makes it
    authenticated again."""
    daemon = xdaemon(relay=True)
    with daemon.connect() as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        assert client.cmd("RCPT TO:<b@elsewhere.example>").code == 250
        assert client.cmd("RSET").code == 250
        assert client.cmd("XCLIENT ADDR=198.51.100.1").code == 220
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        reply = client.cmd("RCPT TO:<b@elsewhere.example>")
        assert (reply.code, reply.enhanced) == (554, "5.7.1"), reply
        assert client.cmd("RSET").code == 250
        assert client.cmd("XCLIENT LOGIN=bob").code == 220
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        assert client.cmd("RCPT TO:<b@elsewhere.example>").code == 250
    log = daemon.log_text()
    assert "from [198.51.100.1]:" in log, log


def test_bad_xclient_hosts_refused(postiliond):
    daemon = postiliond(config={"server": {"xclient_hosts": "10.1.2.3/8"}},
                        start=False)
    daemon.write_config()
    code, out, err = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert code != 0
    assert "xclient_hosts" in out + err and "10.1.2.3/8" in out + err
