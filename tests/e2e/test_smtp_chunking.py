"""CHUNKING (RFC 3030): BDAT with and without LAST, sizes, order rules,
the chunk of a refused BDAT being read and dropped, and limits."""

import pytest

from harness import HOSTNAME, queue_id


def ready(client, recipients=("bob@example.org",)):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    for rcpt in recipients:
        assert client.cmd(f"RCPT TO:<{rcpt}>").code == 250


def bdat(client, data: bytes, last: bool = False):
    client.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return client.read_reply()


MESSAGE = b"From: alice@client.test.example\r\nSubject: chunks\r\n\r\nbody line\r\n"


def test_single_chunk_last(daemon, client):
    ready(client)
    qid = queue_id(bdat(client, MESSAGE, last=True))
    (message,) = daemon.spool_messages()
    assert message["id"] == qid
    assert message["content"].endswith(MESSAGE)


def test_several_chunks(daemon, client):
    ready(client)
    pieces = [MESSAGE[:10], MESSAGE[10:11], MESSAGE[11:40], MESSAGE[40:]]
    received = 0
    for piece in pieces[:-1]:
        # The count is of the message so far, as Postfix reports it.
        received += len(piece)
        assert bdat(client, piece).last == \
            f"250 2.0.0 Ok: {received} octets received"
    qid = queue_id(bdat(client, pieces[-1], last=True))
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(MESSAGE)


def test_empty_last_chunk(daemon, client):
    ready(client)
    assert bdat(client, MESSAGE).code == 250
    qid = queue_id(bdat(client, b"", last=True))
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(MESSAGE)


def test_zero_length_chunks_in_between(daemon, client):
    ready(client)
    assert bdat(client, b"").last == "250 2.0.0 Ok: 0 octets received"
    assert bdat(client, MESSAGE).code == 250
    queue_id(bdat(client, b"", last=True))


def test_chunk_content_is_raw(daemon, client):
    """No dot-stuffing in BDAT: leading dots and lone dots are kept."""
    ready(client)
    data = b"Subject: raw\r\n\r\n.\r\n..leading\r\n.\r\n"
    qid = queue_id(bdat(client, data, last=True))
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(
        b"\r\n\r\n.\r\n..leading\r\n.\r\n")


def test_message_not_ending_in_crlf_gets_one(daemon, client):
    ready(client)
    qid = queue_id(bdat(client, b"Subject: x\r\n\r\nno final line end", last=True))
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(
        b"\r\n\r\nno final line end\r\n")


def test_8bit_and_binary_like_content(daemon, client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example> BODY=8BITMIME")
    client.cmd("RCPT TO:<bob@example.org>")
    data = b"Subject: 8bit\r\n\r\n" + bytes(range(1, 256)).replace(
        b"\r", b"").replace(b"\n", b"") + b"\r\n"
    qid = queue_id(bdat(client, data, last=True))
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(data)


def test_large_chunks(daemon, client):
    ready(client)
    line = b"L" * 990 + b"\r\n"
    chunk = line * 1024  # ~1 MB per chunk
    for _ in range(3):
        assert bdat(client, chunk).code == 250
    qid = queue_id(bdat(client, b"Subject: none\r\n", last=True))
    (message,) = daemon.spool_messages(id=qid)
    assert message["content"].count(line) == 3 * 1024


def test_pipelined_bdat(daemon, client):
    client.ehlo()
    client.send(b"MAIL FROM:<alice@client.test.example>\r\n"
                b"RCPT TO:<bob@example.org>\r\n"
                b"BDAT 5\r\nSubje"
                b"BDAT 15\r\nct: pipelined\r\n"
                b"BDAT 8 LAST\r\n\r\nbody\r\n"
                b"NOOP\r\n")
    replies = client.read_replies(6)
    assert [r.code for r in replies] == [250, 250, 250, 250, 250, 250]
    qid = queue_id(replies[4])
    assert replies[5].last == "250 2.0.0 Ok"
    assert daemon.spool_messages(id=qid)[0]["content"].endswith(
        b"Subject: pipelined\r\n\r\nbody\r\n")


def test_two_messages_by_bdat(daemon, client):
    ready(client)
    a = queue_id(bdat(client, MESSAGE, last=True))
    client.cmd("MAIL FROM:<alice@client.test.example>")
    client.cmd("RCPT TO:<carol@example.net>")
    b = queue_id(bdat(client, MESSAGE, last=True))
    assert a != b
    assert len(daemon.spool_messages()) == 2


# --- order and syntax -----------------------------------------------------


def test_bdat_before_mail_drops_the_chunk(client):
    client.ehlo()
    chunk = b"NOOP\r\nNOOP\r\n"
    client.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert client.read_reply().last == "503 5.5.1 Error: need MAIL command"
    client.expect_silence()
    assert client.cmd("RSET").last == "250 2.0.0 Ok"


def test_bdat_without_recipient_drops_the_chunk(client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    assert client.cmd("RCPT TO:<x@elsewhere.test>").code == 554
    chunk = b"QUIT\r\n"
    client.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert client.read_reply().last == "503 5.5.1 Error: need RCPT command"
    client.expect_silence()
    assert client.cmd("NOOP").last == "250 2.0.0 Ok"


def test_data_after_bdat(daemon, client):
    ready(client)
    assert bdat(client, MESSAGE[:20]).code == 250
    assert client.cmd("DATA").last == "503 5.5.1 Error: DATA after BDAT"
    queue_id(bdat(client, MESSAGE[20:], last=True))


def test_rset_discards_chunks(daemon, client):
    ready(client)
    assert bdat(client, b"Subject: dropped\r\n").code == 250
    assert client.cmd("RSET").last == "250 2.0.0 Ok"
    ready_again = client.cmd("MAIL FROM:<alice@client.test.example>")
    assert ready_again.code == 250
    client.cmd("RCPT TO:<bob@example.org>")
    qid = queue_id(bdat(client, MESSAGE, last=True))
    content = daemon.spool_messages(id=qid)[0]["content"]
    assert b"dropped" not in content


@pytest.mark.parametrize("command", [b"BDAT", b"BDAT abc", b"BDAT -1",
                                     b"BDAT 10 NOTLAST", b"BDAT 1e3",
                                     b"BDAT 99999999999999999999999",
                                     b"BDAT 10 LAST extra"])
def test_bdat_bad_size_closes(client, command):
    ready(client)
    client.send(command + b"\r\n")
    assert client.read_reply().last == "501 5.5.4 Syntax: BDAT count [LAST]"
    assert client.wait_closed() == b""


def test_bdat_over_message_size(postiliond):
    d = postiliond(config={"server": {"max_message_size": 10000}})
    with d.connect() as c:
        ready(c)
        data = b"Subject: big\r\n\r\n" + (b"b" * 98 + b"\r\n") * 110
        reply = bdat(c, data, last=True)
        assert reply.last == "552 5.3.4 Error: message file too big"
        assert c.cmd("NOOP").code == 250
    assert d.spool_messages() == []


def test_bdat_over_size_across_chunks(postiliond):
    d = postiliond(config={"server": {"max_message_size": 10000}})
    with d.connect() as c:
        ready(c)
        chunk = (b"c" * 98 + b"\r\n") * 40  # 4000 octets
        replies = [bdat(c, chunk) for _ in range(2)]
        assert [r.code for r in replies] == [250, 250]
        # The third chunk crosses the limit: refused now or at LAST, but
        # the message never makes it.
        third = bdat(c, chunk)
        if third.code == 250:
            third = bdat(c, b"", last=True)
        assert third.last == "552 5.3.4 Error: message file too big"
    assert d.spool_messages() == []


def test_bdat_size_declared_over_limit_at_mail(postiliond):
    d = postiliond(config={"server": {"max_message_size": 10000}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=10001").code == 552


def test_bdat_nul_refused(daemon, client):
    ready(client)
    data = b"Subject: nul\r\n\r\na\x00b\r\n"
    assert bdat(client, data, last=True).last == \
        "550 5.6.0 Error: NUL character in message text"
    assert daemon.spool_messages() == []


def test_bdat_long_line_refused(daemon, client):
    ready(client)
    data = b"Subject: long\r\n\r\n" + b"q" * 1200 + b"\r\n"
    assert bdat(client, data, last=True).last == \
        "500 5.5.2 Error: message line too long"
    assert daemon.spool_messages() == []


def test_bdat_timeout_reply(postiliond):
    d = postiliond(config={"server": {"timeout_data": "1s"}})
    with d.connect(timeout=10) as c:
        ready(c)
        c.send(b"BDAT 50\r\nshort")
        assert c.read_reply().last == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        c.wait_closed()
