"""The spool as the queue module reads it (pst-spool-dump): what the client
sent is what is stored, 250 means the message is already there, nothing
refused leaves a file, and client text cannot forge envelope records."""

import signal

import pytest

from harness import (dot_stuff, queue_id, simple_message, split_message,
                     transaction)


def test_stored_message_matches_what_was_sent(daemon, client):
    client.ehlo()
    message = simple_message("exact", "line one\r\n.line two\r\n\r\nlast")
    qid = queue_id(transaction(client, recipients=["bob@example.org",
                                                   "carol@example.net"],
                               message=message, mail_params="SIZE=500"))
    (m,) = daemon.spool_messages()
    assert m["id"] == qid
    assert m["sender"] == "alice@client.test.example"
    assert [r["address"] for r in m["recipients"]] == \
        ["bob@example.org", "carol@example.net"]
    assert m["size_declared"] == 500
    assert m["content"].endswith(message)
    assert split_message(m["content"])[0][0][0] == "Received"


def test_queued_before_the_reply(daemon, client):
    """The message is in queue/ the moment 250 arrives: no polling."""
    client.ehlo()
    qid = queue_id(transaction(client))
    assert [m["id"] for m in daemon.spool_messages()] == [qid]
    assert daemon.tmp_leftovers() == []


def test_survives_sigkill_right_after_250(postiliond, tmp_path):
    first = postiliond(name="first")
    with first.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c))
        first.kill()
    second = postiliond(name="second",
                        config={"server": {"spool": str(first.spool)}})
    assert [m["id"] for m in second.spool_messages()] == [qid]
    # The restarted daemon takes new mail into the same spool, new ids.
    with second.connect() as c:
        c.ehlo()
        other = queue_id(transaction(c))
    assert other != qid
    assert sorted(m["id"] for m in second.spool_messages()) == sorted([qid, other])


def test_refused_messages_leave_no_file(postiliond):
    d = postiliond(config={"server": {"max_message_size": 5000}})
    with d.connect() as c:
        c.ehlo()
        for payload in (b"Subject: x\r\n\r\n" + b"a" * 6000 + b"\r\n",
                        b"Subject: x\r\n\r\nbare\nlf\r\n",
                        b"Subject: x\r\n\r\nnul\x00\r\n"):
            c.cmd("MAIL FROM:<alice@client.test.example>")
            c.cmd("RCPT TO:<bob@example.org>")
            c.cmd("DATA")
            c.send(payload + b".\r\n")
            assert c.read_reply().code in (500, 550, 552)
    assert d.spool_messages() == []
    assert d.tmp_leftovers() == []
    assert d.spool_files("queue") == []


FORGERY = (b"Subject: forgery\r\n\r\n"
           b"R:mallory@elsewhere.test\r\nRCPT mallory@elsewhere.test\r\n"
           b"recipient=mallory@elsewhere.test\r\n"
           b"{\"recipients\": [{\"address\": \"mallory@elsewhere.test\"}]}\r\n"
           b"12:mallory@evil\r\nS:admin@example.org\r\nsender=admin@example.org\r\n"
           b"\r\n\r\nEND\r\nTRAILER\r\n" + bytes(range(0x80, 0x100)) + b"\r\n")


def test_body_cannot_forge_envelope(daemon, client):
    client.ehlo()
    qid = queue_id(transaction(client, sender="alice@client.test.example",
                               recipients=["bob@example.org"], message=FORGERY))
    (m,) = daemon.spool_messages()
    assert m["id"] == qid
    assert m["sender"] == "alice@client.test.example"
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]
    assert m["content"].endswith(FORGERY)


@pytest.mark.parametrize("param, decoded", [
    ("ENVID=abc+0D+0AR+3Amallory@elsewhere.test", "abc\r\nR:mallory@elsewhere.test"),
    ("ENVID=x+00y", "x\x00y"),
])
def test_envid_with_line_ends_cannot_forge(daemon, client, param, decoded):
    """xtext can encode any octet.  Either the value is refused, or it is
    stored exactly and forges nothing."""
    client.ehlo()
    reply = client.cmd(f"MAIL FROM:<alice@client.test.example> {param}")
    if reply.code == 501:
        assert reply.last == "501 5.5.4 Error: bad parameter value"
        return
    assert reply.code == 250
    client.cmd("RCPT TO:<bob@example.org>")
    client.cmd("DATA")
    client.send(dot_stuff(simple_message()))
    qid = queue_id(client.read_reply())
    (m,) = daemon.spool_messages()
    assert m["id"] == qid and m["envid"] == decoded
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]


def test_orcpt_with_line_ends_cannot_forge(daemon, client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    reply = client.cmd("RCPT TO:<bob@example.org> "
                       "ORCPT=rfc822;bob+0D+0AR+3Amallory@elsewhere.test")
    if reply.code == 501:
        assert reply.last == "501 5.5.4 Error: bad parameter value"
        return
    assert reply.code == 250
    client.cmd("DATA")
    client.send(dot_stuff(simple_message()))
    queue_id(client.read_reply())
    (m,) = daemon.spool_messages()
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]
    assert m["recipients"][0]["orcpt"] == "rfc822;bob\r\nR:mallory@elsewhere.test"


def test_quoted_local_part_with_specials(daemon, client):
    sender = '"R:mallory@elsewhere.test; x"@example.org'
    client.ehlo()
    qid = queue_id(transaction(client, sender=sender,
                               recipients=['"a\\"b"@example.org']))
    (m,) = daemon.spool_messages(id=qid)
    assert m["sender"] == sender
    assert [r["address"] for r in m["recipients"]] == ['"a\\"b"@example.org']


def test_spool_dump_by_queue(daemon, client):
    client.ehlo()
    qid = queue_id(transaction(client))
    assert daemon.spool_messages(queue="hold") == []
    assert [m["id"] for m in daemon.spool_messages(queue="active", id=qid)] == [qid]


def test_restart_keeps_queue_and_tmp_is_cleaned(postiliond):
    first = postiliond(name="first")
    ids = []
    with first.connect() as c:
        c.ehlo()
        ids = [queue_id(transaction(c)) for _ in range(3)]
        c.cmd("MAIL FROM:<alice@client.test.example>")
        c.cmd("RCPT TO:<bob@example.org>")
        c.cmd("DATA")
        c.send(b"Subject: half\r\n\r\nnever finished\r\n")
        first.wait_log(r"connect from")
        first.signal(signal.SIGKILL)
        first.wait_exit()
    second = postiliond(name="second", config={"server": {"spool": str(first.spool)}})
    assert sorted(m["id"] for m in second.spool_messages()) == sorted(ids)
    assert second.tmp_leftovers() == []
