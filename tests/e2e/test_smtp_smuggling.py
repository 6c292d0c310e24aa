"""SMTP smuggling (CVE-2023-51764 and kin): only CRLF.CRLF ends DATA.

Every lax end-of-data sequence an MTA has been caught accepting is sent with
a complete second transaction after it, then the real CRLF.CRLF.  The server
must answer exactly once (550 5.6.0, the bare CR/LF refusal), never answer
the smuggled commands, and queue nothing: neither the carrier message nor
the smuggled one.  The control case shows the same payload with a real end
of data does queue two messages, so the matrix tests the terminator and not
the payload.
"""

import time

import pytest

from harness import queue_id

BARE = "550 5.6.0 Error: bare CR or LF in message text (see RFC 5321 section 2.3.8)"

SMUGGLED = (b"MAIL FROM:<admin@example.org>\r\n"
            b"RCPT TO:<victim@example.org>\r\n"
            b"DATA\r\n"
            b"From: admin@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n")

CARRIER = b"From: alice@client.test.example\r\nSubject: carrier\r\n\r\nhello"

# Fake end-of-data sequences: name -> bytes placed after the carrier text.
FAKE_ENDS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-cr": b"\r.\r",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "lf-dot-cr": b"\n.\r",
    "cr-dot-lf": b"\r.\n",
    "crlf-dot-cr-crlf": b"\r\n.\r\r\n",
    "crlf-dot-lf-crlf": b"\r\n.\n\r\n",
    "lf-dot-lf-crlf": b"\n.\n\r\n",
    "crlf-dot-nul-crlf": b"\r\n.\x00\r\n",
}


def open_data(client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert client.cmd("RCPT TO:<bob@example.org>").code == 250
    assert client.cmd("DATA").code == 354


@pytest.mark.parametrize("name", FAKE_ENDS, ids=list(FAKE_ENDS))
def test_fake_end_of_data_never_splits_messages(daemon, client, name):
    open_data(client)
    client.send(CARRIER + FAKE_ENDS[name] + SMUGGLED + b"\r\n.\r\n")
    reply = client.read_reply()
    if name == "crlf-dot-nul-crlf":
        assert reply.last == "550 5.6.0 Error: NUL character in message text"
    else:
        assert reply.last == BARE
    # Exactly one reply: the smuggled MAIL/RCPT/DATA were never commands.
    client.expect_silence()
    assert client.cmd("NOOP").last == "250 2.0.0 Ok"
    assert daemon.spool_messages() == []
    assert daemon.spool_messages(queue="hold") == []


@pytest.mark.parametrize("name", FAKE_ENDS, ids=list(FAKE_ENDS))
def test_fake_end_alone_does_not_end_data(client, name):
    """A client that sends a fake end and waits gets no reply: the server
    is still reading the message."""
    open_data(client)
    client.send(CARRIER + FAKE_ENDS[name])
    client.expect_silence(0.5)
    client.send(b"\r\n.\r\n")
    assert client.read_reply().code == 550


def test_control_real_end_then_pipelined_transaction(daemon, client):
    """The same payload after a real CRLF.CRLF is two messages."""
    open_data(client)
    client.send(CARRIER + b"\r\n.\r\n" + SMUGGLED + b".\r\n")
    first = queue_id(client.read_reply())
    assert [r.code for r in client.read_replies(3)] == [250, 250, 354]
    second = queue_id(client.read_reply())
    assert sorted(m["id"] for m in daemon.spool_messages()) == sorted([first, second])


INLINE = {
    "bare-lf-in-body": b"Subject: x\r\n\r\nline one\nline two\r\n",
    "bare-cr-in-body": b"Subject: x\r\n\r\nline one\rline two\r\n",
    "cr-before-crlf": b"Subject: x\r\n\r\nline one\r\r\n",
    "bare-lf-in-header": b"Subject: x\nX-Evil: y\r\n\r\nbody\r\n",
    "bare-cr-in-header": b"Subject: x\rX-Evil: y\r\n\r\nbody\r\n",
    "lf-first-octet": b"\nSubject: x\r\n\r\nbody\r\n",
    "dot-lf-first-line": b".\nMAIL FROM:<a@example.org>\r\n",
    "lf-lf": b"Subject: x\r\n\r\nbody\n\n",
}


@pytest.mark.parametrize("name", INLINE, ids=list(INLINE))
def test_bare_line_ends_in_message_refused(daemon, client, name):
    open_data(client)
    client.send(INLINE[name] + b".\r\n" if INLINE[name].endswith(b"\r\n")
                else INLINE[name] + b"\r\n.\r\n")
    assert client.read_reply().last == BARE
    client.expect_silence()
    assert daemon.spool_messages() == []


def test_end_of_data_split_across_packets(daemon, client):
    open_data(client)
    for piece in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
        client.send(piece)
        time.sleep(0.05)
    qid = queue_id(client.read_reply())
    content = daemon.spool_messages(id=qid)[0]["content"]
    assert content.endswith(b"\r\n\r\nbody\r\n")


def test_message_sent_octet_by_octet(daemon, client):
    open_data(client)
    message = b"Subject: slow\r\n\r\n..dot\r\nline\r\n.\r\n"
    for octet in message:
        client.send(bytes([octet]))
    qid = queue_id(client.read_reply())
    content = daemon.spool_messages(id=qid)[0]["content"]
    assert content.endswith(b"\r\n\r\n.dot\r\nline\r\n")


def test_dot_stuffing_undone(daemon, client):
    open_data(client)
    client.send(b"Subject: dots\r\n\r\n..\r\n...\r\n.x\r\n..\r\n.\r\n")
    qid = queue_id(client.read_reply())
    body = daemon.spool_messages(id=qid)[0]["content"].split(b"\r\n\r\n", 1)[1]
    assert body == b".\r\n..\r\nx\r\n.\r\n"


def test_empty_message(daemon, client):
    open_data(client)
    client.send(b".\r\n")
    reply = client.read_reply()
    # An empty message is legal SMTP; it is queued with our Received: only.
    qid = queue_id(reply)
    content = daemon.spool_messages(id=qid)[0]["content"]
    assert content.startswith(b"Received: ")


# --- BDAT ------------------------------------------------------------------


def bdat_ready(client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert client.cmd("RCPT TO:<bob@example.org>").code == 250


@pytest.mark.parametrize("chunk", [b"Subject: x\r\n\r\nbare\nLF\r\n",
                                   b"Subject: x\r\n\r\nbare\rCR\r\n",
                                   b"Subject: x\r\n\r\nends with CR\r"])
def test_bdat_bare_line_ends_refused(daemon, client, chunk):
    bdat_ready(client)
    client.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert client.read_reply().last == BARE
    assert daemon.spool_messages() == []


def test_bdat_cr_and_lf_split_across_chunks_is_crlf(daemon, client):
    bdat_ready(client)
    first, second = b"Subject: x\r\n\r\nline\r", b"\nnext\r\n"
    client.send(b"BDAT %d\r\n" % len(first) + first)
    assert client.read_reply().last == f"250 2.0.0 Ok: {len(first)} octets received"
    client.send(b"BDAT %d LAST\r\n" % len(second) + second)
    qid = queue_id(client.read_reply())
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(b"line\r\nnext\r\n")


def test_bdat_dot_line_is_content(daemon, client):
    """In BDAT a line holding one dot is text, and what follows is text."""
    bdat_ready(client)
    chunk = b"Subject: x\r\n\r\nbefore\r\n.\r\n" + SMUGGLED + b".\r\n"
    client.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    qid = queue_id(client.read_reply())
    client.expect_silence()
    (message,) = daemon.spool_messages()
    assert message["id"] == qid
    assert message["content"].endswith(chunk.split(b"\r\n\r\n", 1)[1])
    assert [r["address"] for r in message["recipients"]] == ["bob@example.org"]
