"""The open-relay trick matrix: every classic relay test, on every
listener, as an unauthenticated outside client (all refused, nothing
queued), as an internal client and as an authenticated one (XCLIENT
LOGIN=; both may relay, so nothing is "Relay access denied").

The list follows nmap's smtp-open-relay script (its 16 MAIL/RCPT pairs,
with [ip] our address literal, OURS our domain and TARGET a domain
elsewhere) and the old mail-abuse.org / ORBS relay tests (trailing dots,
mixed case, quoted local parts, IP literals, double @).
"""

from __future__ import annotations

import pytest

import harness
from test_relay_policy import (INTERNAL, OUTSIDE, connect,  # noqa: F401
                               relay_daemon, relaydns)

OURS = "example.org"
TARGET = "good.relay.test"  # exists in the test zone: trusted clients pass
IP = "[127.0.0.1]"

# (sender, recipient, what an outside client gets): "relay" is
# 554 5.7.1 <ADDR>: Relay access denied (the core's rule, or the plugin's
# routing-character check on our domain); "syntax" is the core's 553 5.1.3
# for an address that is not local@domain; "sender" is
# sender_login_required at MAIL.
NMAP = [
    ("", f"relaytest@{TARGET}", "relay"),
    (f"antispam@{TARGET}", f"relaytest@{TARGET}", "relay"),
    (f"antispam@{OURS}", f"relaytest@{TARGET}", "sender"),
    (f"antispam@{IP}", f"relaytest@{TARGET}", "relay"),
    (f"antispam@{IP}", f"relaytest%{TARGET}@{IP}", "relay"),
    (f"antispam@{IP}", f"relaytest%{TARGET}@{OURS}", "relay"),
    (f"antispam@{IP}", f'"relaytest@{TARGET}"', "syntax"),
    (f"antispam@{IP}", f'"relaytest%{TARGET}"', "syntax"),
    (f"antispam@{IP}", f"relaytest@{TARGET}@{IP}", "syntax"),
    (f"antispam@{IP}", f'"relaytest@{TARGET}"@{IP}', "relay"),
    (f"antispam@{IP}", f"relaytest@{TARGET}@{OURS}", "syntax"),
    (f"antispam@{IP}", f"@{IP}:relaytest@{TARGET}", "syntax"),
    (f"antispam@{IP}", f"@{OURS}:relaytest@{TARGET}", "relay"),
    (f"antispam@{IP}", f"{TARGET}!relaytest", "syntax"),
    (f"antispam@{IP}", f"{TARGET}!relaytest@{IP}", "relay"),
    (f"antispam@{IP}", f"{TARGET}!relaytest@{OURS}", "relay"),
]
MAIL_ABUSE = [
    ("", f'"relaytest@{TARGET}"@{OURS}', "relay"),
    ("", f'"relaytest%{TARGET}"@{OURS}', "relay"),
    ("", f"relaytest%{TARGET}@{OURS}.", "syntax"),
    ("", f"relaytest@{TARGET}.", "syntax"),
    ("", "RelayTest@GOOD.Relay.TEST", "relay"),
    ("", "relaytest%GOOD.relay.test@EXAMPLE.ORG", "relay"),
    ("", "GOOD.relay.test!relaytest@Example.Org", "relay"),
    ("", "relaytest@[192.0.2.1]", "relay"),
    ("", "relaytest@[IPv6:2001:db8::1]", "relay"),
    ("", f"relaytest@@{OURS}", "syntax"),
    ("", f"relaytest%{TARGET}%{OURS}@{OURS}", "relay"),
    ("", f"@{OURS},@{TARGET}:relaytest@{TARGET}", "relay"),
    ("", f"relaytest%{TARGET}@{OURS}@{OURS}", "syntax"),
]
TRICKS = NMAP + MAIL_ABUSE
LISTENERS = ("smtp", "submission")
OUTSIDE_REPLY = {"relay": (554, "5.7.1", "Relay access denied"),
                 "syntax": (553, "5.1.3", "bad address syntax"),
                 "sender": (553, "5.7.1", "not logged in")}


def attempt(client, sender: str, recipient: str) -> harness.Reply:
    """MAIL, RCPT and, if RCPT was accepted, a whole message; returns the
    RCPT reply (or the MAIL reply when MAIL was refused)."""
    reply = client.cmd(f"MAIL FROM:<{sender}>")
    if reply.code != 250:
        return reply
    rcpt = client.cmd(f"RCPT TO:<{recipient}>")
    if rcpt.code == 250:
        assert client.cmd("DATA").code == 354
        client.send(harness.dot_stuff(harness.simple_message()))
        client.read_reply()
    else:
        assert client.cmd("RSET").code == 250
    return rcpt


@pytest.mark.parametrize("listener", LISTENERS)
def test_outside_client_relays_nothing(relay_daemon, listener):
    daemon = relay_daemon(listeners=LISTENERS, server={"max_errors": "100"})
    with connect(daemon, OUTSIDE, listener) as client:
        client.ehlo()
        for sender, recipient, outcome in TRICKS:
            reply = attempt(client, sender, recipient)
            code, enhanced, text = OUTSIDE_REPLY[outcome]
            assert (reply.code, reply.enhanced) == (code, enhanced), \
                (recipient, reply)
            assert text in reply.text, (recipient, reply)
    assert daemon.spool_messages() == []
    assert daemon.tmp_leftovers() == []


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("kind", ["internal", "authenticated"])
def test_trusted_client_may_relay(relay_daemon, listener, kind):
    daemon = relay_daemon(listeners=LISTENERS, server={"max_errors": "100"})
    source = INTERNAL if kind == "internal" else OUTSIDE
    with connect(daemon, source, listener) as client:
        if kind == "authenticated":
            assert client.cmd("XCLIENT LOGIN=alice").code == 220
        client.ehlo()
        for sender, recipient, outcome in TRICKS:
            reply = attempt(client, sender, recipient)
            if outcome == "syntax":
                assert (reply.code, reply.enhanced) == (553, "5.1.3"), reply
            else:
                assert reply.code == 250, (recipient, reply)
    expected = sum(1 for trick in TRICKS if trick[2] != "syntax")
    assert len(daemon.spool_messages()) == expected
