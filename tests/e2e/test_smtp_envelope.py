"""What the envelope stores: DSN parameters (RFC 3461), SMTPUTF8 (RFC 6531),
8BITMIME (RFC 6152), SIZE, and the session facts, read back from the spool
through the queue module's own API (pst-spool-dump)."""

import pytest

from harness import CLIENT_NAME, dot_stuff, queue_id, simple_message


def send(client, mail, rcpts, message=None):
    client.ehlo()
    assert client.cmd(mail).last == "250 2.1.0 Ok"
    for rcpt in rcpts:
        assert client.cmd(rcpt).last == "250 2.1.5 Ok"
    assert client.cmd("DATA").code == 354
    client.send(dot_stuff(message or simple_message()))
    return queue_id(client.read_reply())


def test_dsn_parameters_stored(daemon, client):
    qid = send(client,
               "MAIL FROM:<alice@client.test.example> RET=HDRS ENVID=QQ+2B314+3DAB",
               ["RCPT TO:<bob@example.org> NOTIFY=SUCCESS,DELAY "
                "ORCPT=rfc822;bob+2Bold@example.org",
                "RCPT TO:<carol@example.net> NOTIFY=NEVER",
                "RCPT TO:<dave@example.org>"])
    (m,) = daemon.spool_messages(id=qid)
    assert m["envid"] == "QQ+314=AB"
    assert m["ret"] == "HDRS"
    bob, carol, dave = m["recipients"]
    assert bob["address"] == "bob@example.org"
    assert bob["orcpt"] == "rfc822;bob+old@example.org"
    assert sorted(bob["notify"]) == ["DELAY", "SUCCESS"]
    assert carol["notify"] == ["NEVER"]
    assert carol["orcpt"] is None
    assert dave["notify"] == [] and dave["orcpt"] is None


def test_ret_full(daemon, client):
    qid = send(client, "MAIL FROM:<alice@client.test.example> RET=FULL",
               ["RCPT TO:<bob@example.org> NOTIFY=FAILURE"])
    (m,) = daemon.spool_messages(id=qid)
    assert m["ret"] == "FULL"
    assert m["recipients"][0]["notify"] == ["FAILURE"]
    assert m["envid"] is None


def test_no_dsn_parameters(daemon, client):
    qid = send(client, "MAIL FROM:<alice@client.test.example>",
               ["RCPT TO:<bob@example.org>"])
    (m,) = daemon.spool_messages(id=qid)
    assert m["ret"] is None
    assert m["envid"] is None
    assert m["size_declared"] == 0
    assert m["smtputf8"] is False
    assert m["body"] is None


def test_size_declared(daemon, client):
    qid = send(client, "MAIL FROM:<alice@client.test.example> SIZE=1234",
               ["RCPT TO:<bob@example.org>"])
    assert daemon.spool_messages(id=qid)[0]["size_declared"] == 1234


@pytest.mark.parametrize("body, stored", [("8BITMIME", "8BITMIME"), ("7BIT", "7BIT")])
def test_body_parameter(daemon, client, body, stored):
    message = b"Subject: 8bit\r\n\r\nK\xc3\xa4se und \xe9t\xe9\r\n"
    qid = send(client, f"MAIL FROM:<alice@client.test.example> BODY={body}",
               ["RCPT TO:<bob@example.org>"], message)
    (m,) = daemon.spool_messages(id=qid)
    assert m["body"] == stored
    assert m["content"].endswith(message)


def test_8bit_body_kept_byte_exact(daemon, client):
    message = (b"Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; "
               b"charset=latin1\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n")
    qid = send(client, "MAIL FROM:<alice@client.test.example> BODY=8BITMIME",
               ["RCPT TO:<bob@example.org>"], message)
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(message)


def test_smtputf8_envelope(daemon, client):
    message = "From: jörg@client.test.example\r\nSubject: grüße\r\n\r\nÜ\r\n".encode()
    qid = send(client, "MAIL FROM:<jörg@client.test.example> SMTPUTF8 BODY=8BITMIME",
               ["RCPT TO:<zoë@example.org>", "RCPT TO:<δοκιμή@example.net>"], message)
    (m,) = daemon.spool_messages(id=qid)
    assert m["smtputf8"] is True
    assert m["sender"] == "jörg@client.test.example"
    assert [r["address"] for r in m["recipients"]] == \
        ["zoë@example.org", "δοκιμή@example.net"]
    assert m["content"].endswith(message)


def test_smtputf8_orcpt_utf8_type(daemon, client):
    qid = send(client, "MAIL FROM:<alice@client.test.example> SMTPUTF8",
               ["RCPT TO:<zoë@example.org> ORCPT=utf-8;zo\\x{EB}@example.org"])
    (m,) = daemon.spool_messages(id=qid)
    assert m["recipients"][0]["orcpt"] == "utf-8;zoë@example.org"


def test_invalid_utf8_refused_even_with_smtputf8(client):
    client.ehlo()
    client.send(b"MAIL FROM:<j\xc3(rg@example.org> SMTPUTF8\r\n")
    assert client.read_reply().last == "553 5.1.3 Error: bad address syntax"


def test_session_facts_in_envelope(daemon, client):
    qid = send(client, "MAIL FROM:<alice@client.test.example>",
               ["RCPT TO:<bob@example.org>"])
    (m,) = daemon.spool_messages(id=qid)
    sid = daemon.wait_log(r"(?:^|\s)(\S+): connect from").group(1)
    assert m["client_address"] == "127.0.0.1"
    assert m["helo"] == CLIENT_NAME
    assert m["listener"] == "smtp"
    assert m["protocol"] == "ESMTP"
    assert m["auth_user"] is None
    assert m["session_id"] == sid
    assert isinstance(m["arrival_time"], (int, float)) and m["arrival_time"] > 0


def test_helo_protocol_is_smtp(daemon, client):
    assert client.cmd("HELO old.client.test").code == 250
    client.cmd("MAIL FROM:<alice@client.test.example>")
    client.cmd("RCPT TO:<bob@example.org>")
    client.cmd("DATA")
    client.send(dot_stuff(simple_message()))
    qid = queue_id(client.read_reply())
    (m,) = daemon.spool_messages(id=qid)
    assert m["helo"] == "old.client.test"
    assert m["protocol"] == "SMTP"


def test_address_case_kept_as_sent(daemon, client):
    qid = send(client, "MAIL FROM:<Alice@Client.Test.Example>",
               ["RCPT TO:<Bob@EXAMPLE.org>"])
    (m,) = daemon.spool_messages(id=qid)
    assert m["sender"] == "Alice@Client.Test.Example"
    assert m["recipients"][0]["address"] == "Bob@EXAMPLE.org"


def test_strict_envelopes_per_listener(postiliond):
    """A listener with strict_envelopes = false takes MAIL and RCPT
    without angle brackets (old scanners and printers), as Postfix's
    default does; the other listener, by default, still answers 501."""
    d = postiliond(listeners=("smtp", "devices"),
                   config={"listener:devices": {"strict_envelopes": "false"}})
    with d.connect("devices") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:scan@client.test.example SIZE=100").code == 250
        assert c.cmd("RCPT TO:bob@example.org").code == 250
        assert c.cmd("RCPT TO: <carol@example.org>").code == 250
        reply = c.cmd("RCPT TO:bob@example.org>")
        assert (reply.code, reply.enhanced) == (501, "5.5.4")
        reply = c.cmd("RCPT TO:no-domain")
        assert (reply.code, reply.enhanced) == (553, "5.1.3")
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(simple_message("scan", "page 1")) + b".\r\n")
        queue_id(c.read_reply())
    (m,) = d.spool_messages()
    assert m["sender"] == "scan@client.test.example"
    assert [r["address"] for r in m["recipients"]] == [
        "bob@example.org", "carol@example.org"]
    with d.connect("smtp") as c:
        c.ehlo()
        reply = c.cmd("MAIL FROM:scan@client.test.example")
        assert (reply.code, reply.enhanced) == (501, "5.5.4")
