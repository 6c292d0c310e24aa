"""PIPELINING (RFC 2920): replies come in order, one per command, however
the commands are split into packets; DATA ends a group."""

import time

from harness import dot_stuff, queue_id, simple_message


def test_whole_envelope_in_one_packet(daemon, client):
    client.send(b"EHLO client.test.example\r\n"
                b"MAIL FROM:<alice@client.test.example>\r\n"
                b"RCPT TO:<bob@example.org>\r\n"
                b"RCPT TO:<mallory@elsewhere.test>\r\n"
                b"RCPT TO:<carol@example.net>\r\n"
                b"DATA\r\n")
    replies = client.read_replies(6)
    assert replies[0].code == 250 and len(replies[0].lines) > 1
    assert [r.last for r in replies[1:]] == [
        "250 2.1.0 Ok", "250 2.1.5 Ok",
        "554 5.7.1 <mallory@elsewhere.test>: Relay access denied",
        "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
    client.send(dot_stuff(simple_message()) + b"QUIT\r\n")
    qid = queue_id(client.read_reply())
    assert client.read_reply().last == "221 2.0.0 Bye"
    (message,) = daemon.spool_messages()
    assert message["id"] == qid
    assert [r["address"] for r in message["recipients"]] == \
        ["bob@example.org", "carol@example.net"]


def test_several_transactions_pipelined(daemon, client):
    client.ehlo()
    for _ in range(5):
        client.send(b"MAIL FROM:<alice@client.test.example>\r\n"
                    b"RCPT TO:<bob@example.org>\r\nDATA\r\n")
        assert [r.code for r in client.read_replies(3)] == [250, 250, 354]
        client.send(dot_stuff(simple_message()) + b"RSET\r\nNOOP\r\n")
        queue_id(client.read_reply())
        assert [r.code for r in client.read_replies(2)] == [250, 250]
    assert len(daemon.spool_messages()) == 5


def test_commands_split_at_every_octet(client):
    data = (b"EHLO client.test.example\r\nMAIL FROM:<alice@client.test.example>\r\n"
            b"RCPT TO:<bob@example.org>\r\nRSET\r\n")
    for octet in data:
        client.send(bytes([octet]))
    replies = client.read_replies(4)
    assert [r.code for r in replies] == [250, 250, 250, 250]


def test_many_commands_in_one_packet(client):
    """A large pipelined group: the server must not lose or reorder any
    reply, nor stall when its own send buffer fills."""
    client.ehlo()
    count = 2000
    client.send(b"NOOP\r\n" * count)
    for _ in range(count):
        assert client.read_reply().last == "250 2.0.0 Ok"
    client.expect_silence()


def test_errors_in_a_pipelined_group_keep_order(client):
    client.send(b"EHLO c\r\nRCPT TO:<bob@example.org>\r\nMAIL FROM:<a@example.org>\r\n"
                b"MAIL FROM:<b@example.org>\r\nRCPT TO:<bad@@example.org>\r\n"
                b"RCPT TO:<bob@example.org>\r\nBOGUS\r\nRSET\r\n")
    replies = client.read_replies(8)
    assert [r.last for r in replies[1:]] == [
        "503 5.5.1 Error: need MAIL command", "250 2.1.0 Ok",
        "503 5.5.1 Error: nested MAIL command", "553 5.1.3 Error: bad address syntax",
        "250 2.1.5 Ok", "500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"]


def test_slow_reader(daemon):
    """The client sends a big group and only then starts reading."""
    with daemon.connect(timeout=20) as c:
        c.ehlo()
        c.send(b"HELP\r\n" * 3000)
        time.sleep(0.5)
        for _ in range(3000):
            assert c.read_reply().code == 214
