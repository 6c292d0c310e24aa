"""The relay invariant, enforced by the core with no plugin loaded: mail
for our domains is accepted, every other recipient gets 554 5.7.1 and
nothing is queued for it."""

import pytest

from harness import dot_stuff, queue_id, simple_message


def denied(address):
    return f"554 5.7.1 <{address}>: Relay access denied"


LOCAL = ["bob@example.org", "bob@EXAMPLE.ORG", "Bob@Example.Net",
         "\"a@elsewhere.test\"@example.org", "@elsewhere.test:bob@example.org",
         "postmaster", "postmaster@example.org", "Postmaster"]

FOREIGN = ["bob@elsewhere.test", "bob@sub.example.org", "bob@evilexample.org",
           "bob@example.org.evil.test", "bob@example.com", "bob@[127.0.0.1]",
           "bob@[IPv6:::1]", "\"bob@example.org\"@elsewhere.test",
           "@example.org:bob@elsewhere.test", "postmaster@elsewhere.test",
           "bob@xn--exmple-cua.org"]


@pytest.mark.parametrize("address", LOCAL)
def test_local_recipient_accepted(client, address):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    assert client.cmd(f"RCPT TO:<{address}>").last == "250 2.1.5 Ok"


@pytest.mark.parametrize("address", FOREIGN)
def test_foreign_recipient_denied(daemon, client, address):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    # A source route is dropped: the reply names the mailbox alone.
    mailbox = address.split(":", 1)[1] if address.startswith("@") else address
    assert client.cmd(f"RCPT TO:<{address}>").last == denied(mailbox)
    assert client.cmd("DATA").last == "503 5.5.1 Error: need RCPT command"
    assert daemon.spool_messages() == []


def test_foreign_with_smtputf8_denied(client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example> SMTPUTF8")
    assert client.cmd("RCPT TO:<bob@bücher.example>").last == \
        denied("bob@bücher.example")


def test_local_sender_does_not_open_relay(client):
    client.ehlo()
    client.cmd("MAIL FROM:<postmaster@example.org>")
    assert client.cmd("RCPT TO:<x@elsewhere.test>").last == denied("x@elsewhere.test")


def test_mixed_recipients_only_local_queued(daemon, client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    assert client.cmd("RCPT TO:<x@elsewhere.test>").code == 554
    assert client.cmd("RCPT TO:<bob@example.org>").code == 250
    assert client.cmd("RCPT TO:<y@elsewhere.test>").code == 554
    assert client.cmd("DATA").code == 354
    client.send(dot_stuff(simple_message()))
    qid = queue_id(client.read_reply())
    (m,) = daemon.spool_messages()
    assert m["id"] == qid
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]


def test_no_domains_means_no_recipient_but_postmaster(postiliond):
    d = postiliond(config={"server": {"domains": None}})
    with d.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@client.test.example>")
        assert c.cmd("RCPT TO:<bob@example.org>").last == denied("bob@example.org")
        assert c.cmd("RCPT TO:<postmaster>").last == "250 2.1.5 Ok"


def test_relay_denial_logged_with_core_plugin(daemon, client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    client.cmd("RCPT TO:<x@elsewhere.test>")
    daemon.wait_log(r": reject: RCPT from \[127\.0\.0\.1\]:\d+: 554 5\.7\.1 "
                    r"<x@elsewhere\.test>: Relay access denied; .* plugin=core$")


def test_many_denials_queue_nothing(postiliond):
    d = postiliond(config={"server": {"max_errors": 1000}})
    with d.connect() as c:
        c.ehlo()
        for i in range(50):
            c.cmd("MAIL FROM:<alice@client.test.example>")
            assert c.cmd(f"RCPT TO:<u{i}@elsewhere.test>").code == 554
            c.cmd("RSET")
    assert d.spool_messages() == []
    assert d.tmp_leftovers() == []


def test_plugin_accept_does_not_bypass_relay_rule(postiliond):
    """A plugin saying ACCEPT at RCPT (and at CONNECT and MAIL) decides its
    stage, but the core still refuses a foreign recipient."""
    d = postiliond(plugins=["testpolicy"], config={"plugin:testpolicy": {
        "connect": "accept", "mail": "accept", "rcpt": "accept"}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@client.test.example>").code == 250
        assert c.cmd("RCPT TO:<x@elsewhere.test>").last == denied("x@elsewhere.test")
        assert c.cmd("RCPT TO:<bob@example.org>").last == "250 2.1.5 Ok"
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(simple_message()))
        queue_id(c.read_reply())
    (m,) = d.spool_messages()
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]

