"""The Received: header prepended to every accepted message: on top, once,
with the client, our hostname, the listener, the protocol and the queue
id, and a valid date; the client's own header block below it untouched."""

import email.utils
import re

import pytest

from harness import CLIENT_NAME, HOSTNAME, dot_stuff, queue_id, split_message


def unfold(value: str) -> str:
    return re.sub(r"\r\n[ \t]+", " ", value)


def accept(client, helo_verb="EHLO", helo=CLIENT_NAME, message=None, bdat=False):
    assert client.cmd(f"{helo_verb} {helo}").code == 250
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert client.cmd("RCPT TO:<bob@example.org>").code == 250
    message = message or (b"Received: from earlier.hop (earlier.hop [192.0.2.1])\r\n"
                          b"\tby client.test.example; Sun, 1 Nov 2026 10:00:00 +0000\r\n"
                          b"Subject: received test\r\n\r\nbody\r\n")
    if bdat:
        client.send(b"BDAT %d LAST\r\n" % len(message) + message)
    else:
        assert client.cmd("DATA").code == 354
        client.send(dot_stuff(message))
    return queue_id(client.read_reply()), message


@pytest.mark.parametrize("bdat", [False, True], ids=["data", "bdat"])
def test_received_on_top(daemon, client, bdat):
    qid, sent = accept(client, bdat=bdat)
    (m,) = daemon.spool_messages(id=qid)
    headers, _ = split_message(m["content"])
    name, value = headers[0]
    assert name == "Received"
    # Exactly one field was added, and the client's block follows unchanged.
    assert m["content"].index(b"\r\n" + sent[:9]) > 0
    assert m["content"].endswith(sent)
    assert m["content"][: -len(sent)].count(b"Received:") == 1
    text = unfold(value)
    assert re.search(rf"\bfrom {re.escape(CLIENT_NAME)}\b", text)
    assert "[127.0.0.1]" in text
    assert re.search(rf"\bby {re.escape(HOSTNAME)}\b", text)
    assert re.search(r"\bwith ESMTP\b", text)
    assert re.search(rf"\bid {qid}\b", text)
    assert re.search(r"\bsmtp\b", text.split(f"by {HOSTNAME}", 1)[1]), \
        "the listener's name is in the header"
    date = text.rsplit(";", 1)[1].strip()
    assert email.utils.parsedate_to_datetime(date) is not None
    # Folded lines stay well under the 998 limit.
    assert all(len(line) <= 998 for line in value.split("\r\n"))


def test_received_names_listener(postiliond):
    d = postiliond(listeners=("smtp", "submission"))
    with d.connect("submission") as c:
        qid, _ = accept(c)
    (m,) = d.spool_messages(id=qid)
    name, value = split_message(m["content"])[0][0]
    assert name == "Received" and re.search(r"\bsubmission\b", unfold(value))
    assert m["listener"] == "submission"


def test_received_for_helo_client(daemon, client):
    qid, _ = accept(client, helo_verb="HELO", helo="old.client.test")
    (m,) = daemon.spool_messages(id=qid)
    value = unfold(split_message(m["content"])[0][0][1])
    assert "from old.client.test" in value
    assert re.search(rf"\bid {qid}\b", value)


@pytest.mark.parametrize("helo", ["weird;name", "(comment)", "x" * 200, "[127.0.0.1]",
                                  "for <mallory@elsewhere.test>; by"])
def test_received_with_odd_helo_stays_one_field(daemon, client, helo):
    """Client text in the header never starts a field of its own.  (A
    server may refuse such names with 501 instead.)"""
    if client.cmd(f"EHLO {helo}").code == 501:
        return
    qid, sent = accept(client, helo=helo)
    (m,) = daemon.spool_messages(id=qid)
    headers, _ = split_message(m["content"])
    assert headers[0][0] == "Received"
    assert m["content"].endswith(sent)
    added = m["content"][: -len(sent)]
    # Only the one field was added: no line in it starts a new field.
    lines = added.split(b"\r\n")[:-1]
    assert lines[0].startswith(b"Received: ")
    assert all(line[:1] in (b" ", b"\t") for line in lines[1:])


def test_received_in_every_message(daemon, client):
    ids = [accept(client, message=b"Subject: %d\r\n\r\nx\r\n" % i)[0] for i in range(3)]
    for qid in ids:
        content = daemon.spool_messages(id=qid)[0]["content"]
        assert content.startswith(b"Received: ")
        assert qid.encode() in content.split(b"\r\nSubject:")[0]
