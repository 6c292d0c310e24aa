"""Hostile and oversized input: line lengths, NUL octets, recipients, sizes,
header size, error counting, idle timeouts, connection limits and non-SMTP
traffic.  Each refusal is checked byte for byte against
doc/smtp-replies.md, and so is what the session does next (goes on, or
421 and close), and that nothing refused reaches the spool."""

import socket
import ssl
import time

import pytest

from harness import (HOSTNAME, ConnectionClosed, dot_stuff, queue_id, scaled,
                     simple_message, transaction)


def start_data(client, recipients=("bob@example.org",), params=""):
    client.ehlo()
    assert client.cmd(f"MAIL FROM:<alice@client.test.example>{params}").code == 250
    for rcpt in recipients:
        assert client.cmd(f"RCPT TO:<{rcpt}>").code == 250
    assert client.cmd("DATA").code == 354


def assert_session_alive(client):
    assert client.cmd("NOOP").last == "250 2.0.0 Ok"


# --- command lines --------------------------------------------------------


def test_command_line_of_512_octets_is_read(client):
    line = "XYZZY " + "a" * (510 - 6)
    assert len(line) + 2 == 512
    assert client.cmd(line).last == "500 5.5.2 Error: command not recognized"


def test_command_line_of_513_octets_is_too_long(client):
    line = "XYZZY " + "a" * (511 - 6)
    assert client.cmd(line).last == "500 5.5.2 Error: line too long"
    client.expect_silence()
    assert_session_alive(client)


@pytest.mark.parametrize("size", [600, 5000, 100_000, 1_000_000])
def test_long_command_line_answered_once_and_discarded(client, size):
    """The rest of the line is discarded: it is never read as commands,
    however it arrives, and there is exactly one reply."""
    chunk = b"NOOP " * (size // 5)
    client.send(b"MAIL FROM:<x@example.org> " + chunk + b"\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: line too long"
    client.expect_silence()
    assert_session_alive(client)


def test_long_command_line_in_pieces(client):
    for _ in range(20):
        client.send(b"RSET" * 100)
        time.sleep(0.01)
    client.send(b"\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: line too long"
    client.expect_silence()
    assert_session_alive(client)


@pytest.mark.parametrize("line", [b"NO\x00OP", b"\x00", b"EHLO a\x00b",
                                  b"MAIL FROM:<a\x00@example.org>"])
def test_nul_in_command(client, line):
    client.send(line + b"\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: NUL character in command"
    assert_session_alive(client)


def test_bare_cr_in_command_is_not_a_line_end(client):
    """A bare CR never ends a command line: one line, one reply."""
    client.send(b"NOOP\rRSET\r\n")
    reply = client.read_reply()
    assert reply.code == 500 and reply.enhanced == "5.5.2"
    client.expect_silence()
    assert_session_alive(client)


# --- text lines in DATA ---------------------------------------------------


def test_text_line_of_1000_octets_is_accepted(daemon, client):
    start_data(client)
    line = b"x" * 998
    client.send(b"Subject: long\r\n\r\n" + line + b"\r\n.\r\n")
    qid = queue_id(client.read_reply())
    assert line + b"\r\n" in daemon.spool_messages(id=qid)[0]["content"]


@pytest.mark.parametrize("length", [999, 5000, 200_000])
def test_text_line_too_long(daemon, client, length):
    start_data(client)
    client.send(b"Subject: long\r\n\r\n" + b"x" * length + b"\r\n.\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: message line too long"
    assert_session_alive(client)
    assert daemon.spool_messages() == []


def test_header_line_too_long(daemon, client):
    start_data(client)
    client.send(b"Subject: " + b"y" * 1200 + b"\r\n\r\nbody\r\n.\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: message line too long"
    assert daemon.spool_messages() == []


@pytest.mark.parametrize("where", ["header", "body", "last-line"])
def test_nul_in_message(daemon, client, where):
    message = {
        "header": b"Subject: a\x00b\r\n\r\nbody\r\n",
        "body": b"Subject: x\r\n\r\nbo\x00dy\r\n",
        "last-line": b"Subject: x\r\n\r\nbody\r\n\x00\r\n",
    }[where]
    start_data(client)
    client.send(message + b".\r\n")
    assert client.read_reply().last == "550 5.6.0 Error: NUL character in message text"
    assert_session_alive(client)
    assert daemon.spool_messages() == []


def test_session_goes_on_after_refused_message(daemon, client):
    start_data(client)
    client.send(b"Subject: x\r\n\r\n" + b"z" * 2000 + b"\r\n.\r\n")
    assert client.read_reply().code == 500
    qid = queue_id(transaction(client))
    assert [m["id"] for m in daemon.spool_messages()] == [qid]


# --- recipients -----------------------------------------------------------


def test_too_many_recipients(postiliond):
    d = postiliond(config={"server": {"max_recipients": 3}})
    with d.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@client.test.example>")
        for i in range(3):
            assert c.cmd(f"RCPT TO:<user{i}@example.org>").last == "250 2.1.5 Ok"
        for i in range(3, 6):
            assert c.cmd(f"RCPT TO:<user{i}@example.org>").last == \
                "452 4.5.3 Error: too many recipients"
        assert c.cmd("DATA").code == 354
        c.send(dot_stuff(simple_message()))
        qid = queue_id(c.read_reply())
    (message,) = d.spool_messages()
    assert message["id"] == qid
    assert [r["address"] for r in message["recipients"]] == \
        ["user0@example.org", "user1@example.org", "user2@example.org"]


def test_recipient_limit_is_per_transaction(postiliond):
    d = postiliond(config={"server": {"max_recipients": 2}})
    with d.connect() as c:
        c.ehlo()
        for _ in range(2):
            queue_id(transaction(c, recipients=["a@example.org", "b@example.org"]))
    assert len(d.spool_messages()) == 2


def test_refused_recipients_do_not_count(postiliond):
    d = postiliond(config={"server": {"max_recipients": 2}})
    with d.connect() as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@client.test.example>")
        assert c.cmd("RCPT TO:<x@elsewhere.test>").code == 554
        assert c.cmd("RCPT TO:<a@example.org>").code == 250
        assert c.cmd("RCPT TO:<b@example.org>").code == 250
        assert c.cmd("RCPT TO:<c@example.org>").code == 452


# --- sizes ----------------------------------------------------------------

LIMIT = 20_000


@pytest.fixture
def small(postiliond):
    return postiliond(config={"server": {"max_message_size": LIMIT}})


def test_size_over_limit_at_mail(small):
    with small.connect() as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<a@example.org> SIZE={LIMIT + 1}").last == \
            "552 5.3.4 Error: message size exceeds fixed limit"
        assert c.cmd(f"MAIL FROM:<a@example.org> SIZE={LIMIT}").last == "250 2.1.0 Ok"


def test_size_huge_number_at_mail(small):
    with small.connect() as c:
        c.ehlo()
        reply = c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999999")
        assert reply.code in (501, 552)  # either "bad value" or "too big"
        assert c.cmd("MAIL FROM:<a@example.org>").code == 250


def test_body_over_limit_after_dot(small):
    with small.connect() as c:
        start_data(c)
        body = (b"x" * 98 + b"\r\n") * (LIMIT // 100 + 10)
        c.send(b"Subject: big\r\n\r\n" + body + b".\r\n")
        assert c.read_reply().last == "552 5.3.4 Error: message file too big"
        assert_session_alive(c)
        # The next message, within the limit, goes through.
        queue_id(transaction(c))
    assert len(small.spool_messages()) == 1
    assert small.tmp_leftovers() == []


def test_body_over_declared_size_still_checked_against_limit(small):
    with small.connect() as c:
        start_data(c, params=" SIZE=100")
        c.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 300 + b".\r\n")
        assert c.read_reply().last == "552 5.3.4 Error: message file too big"
    assert small.spool_messages() == []


def test_message_just_under_limit_accepted(small):
    """The Received: header the server adds does not count against the
    client's size."""
    with small.connect() as c:
        start_data(c)
        head = b"Subject: fits\r\n\r\n"
        filler = LIMIT - len(head) - 200
        body = (b"z" * 98 + b"\r\n") * (filler // 100)
        c.send(head + body + b".\r\n")
        queue_id(c.read_reply())


def test_header_over_max_header_size(postiliond):
    d = postiliond(config={"server": {"max_header_size": 4096}})
    with d.connect() as c:
        start_data(c)
        header = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"h" * 80)
                          for i in range(60))
        c.send(header + b"\r\nbody\r\n.\r\n")
        assert c.read_reply().last == "552 5.3.4 Error: message header too big"
        assert_session_alive(c)
    assert d.spool_messages() == []


@pytest.mark.parametrize("max_hops", [None, "5"])
def test_mail_loop_refused_by_hop_count(postiliond, max_hops):
    limit = int(max_hops or 50)
    config = {"server": {"max_hops": max_hops}} if max_hops else None
    d = postiliond(config=config)

    def send(received_fields):
        with d.connect() as c:
            start_data(c)
            header = b"".join(b"Received: from hop%d.example by hop%d.example;"
                              b" Sun, 1 Nov 2026 10:00:00 +0000\r\n" % (i, i + 1)
                              for i in range(received_fields))
            c.send(header + b"Subject: loop\r\n\r\nbody\r\n.\r\n")
            reply = c.read_reply()
            assert_session_alive(c)
            return reply

    # Ours makes one more: limit - 1 earlier hops pass, limit do not.
    queue_id(send(limit - 1))
    assert send(limit).last == \
        "554 5.4.6 Error: too many hops (mail forwarding loop?)"
    assert len(d.spool_messages()) == 1


# --- errors ---------------------------------------------------------------


def test_too_many_errors(postiliond):
    d = postiliond(config={"server": {"max_errors": 3}})
    with d.connect() as c:
        for _ in range(3):
            assert c.cmd("BOGUS").last == "500 5.5.2 Error: command not recognized"
        # The next error goes over the limit: 421, possibly after its own reply.
        reply = c.cmd("BOGUS")
        if reply.code == 500:
            reply = c.read_reply()
        assert reply.last == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.wait_closed() == b""


def test_errors_of_every_kind_count(postiliond):
    d = postiliond(config={"server": {"max_errors": 4}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<bad address>").code in (501, 553)
        assert c.cmd("RCPT TO:<bob@example.org>").code == 503
        assert c.cmd("EHLO").code == 501
        c.send(b"NO\x00OP\r\n")
        assert c.read_reply().code == 500
        reply = c.cmd("DATA")
        if reply.code == 503:
            reply = c.read_reply()
        assert reply.last == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        c.wait_closed()


def test_successful_commands_do_not_count(postiliond):
    d = postiliond(config={"server": {"max_errors": 2}})
    with d.connect() as c:
        for _ in range(30):
            assert c.cmd("NOOP").code == 250
        assert c.cmd("BOGUS").code == 500
        assert c.cmd("NOOP").code == 250


# --- timeouts -------------------------------------------------------------


@pytest.fixture
def quick(postiliond):
    return postiliond(config={"server": {"timeout_command": "1s",
                                         "timeout_data": "1s"}})


TIMEOUT_REPLY = f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"


def test_idle_timeout_before_any_command(quick):
    with quick.connect(timeout=10) as c:
        started = time.monotonic()
        assert c.read_reply().last == TIMEOUT_REPLY
        assert c.wait_closed() == b""
        assert 0.8 <= time.monotonic() - started < scaled(5)


def test_idle_timeout_between_commands(quick):
    with quick.connect(timeout=10) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>")
        assert c.read_reply().last == TIMEOUT_REPLY
        assert c.wait_closed() == b""
    assert quick.spool_messages() == []


def test_activity_keeps_session_open(quick):
    with quick.connect(timeout=10) as c:
        for _ in range(4):
            time.sleep(0.5)
            assert c.cmd("NOOP").code == 250


def test_partial_command_line_times_out(quick):
    with quick.connect(timeout=10) as c:
        c.send(b"EHLO half-a-li")
        assert c.read_reply().last == TIMEOUT_REPLY
        assert c.wait_closed() == b""


def test_idle_timeout_in_data(quick):
    with quick.connect(timeout=10) as c:
        start_data(c)
        c.send(b"Subject: slow\r\n\r\nhalf a message\r\n")
        assert c.read_reply().last == TIMEOUT_REPLY
        assert c.wait_closed() == b""
    assert quick.spool_messages() == []
    assert quick.tmp_leftovers() == []


def test_idle_timeout_in_bdat(quick):
    with quick.connect(timeout=10) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>")
        c.cmd("RCPT TO:<bob@example.org>")
        c.send(b"BDAT 100 LAST\r\nonly forty octets of the hundred...\r\n")
        assert c.read_reply().last == TIMEOUT_REPLY
        assert c.wait_closed() == b""
    assert quick.spool_messages() == []


# --- non-SMTP traffic -----------------------------------------------------

NON_SMTP = {
    "http-get": b"GET / HTTP/1.1\r\nHost: mx.test.example\r\n\r\n",
    "http-post": b"POST /submit HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    "http-connect": b"CONNECT example.org:25 HTTP/1.1\r\n\r\n",
    "http-head": b"HEAD / HTTP/1.1\r\n\r\n",
    "tls-client-hello": None,  # made by tls_client_hello()
}


def tls_client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl module)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOSTNAME)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"
    return hello


@pytest.mark.parametrize("name", NON_SMTP, ids=list(NON_SMTP))
def test_non_smtp_traffic(daemon, name):
    with daemon.connect() as c:
        c.send(NON_SMTP[name] or tls_client_hello())
        assert c.read_reply().last == "554 5.7.0 Error: non-SMTP command"
        c.wait_closed()


def test_http_after_ehlo(client):
    client.ehlo()
    client.send(b"GET /index.html HTTP/1.1\r\n")
    assert client.read_reply().last == "554 5.7.0 Error: non-SMTP command"
    client.wait_closed()


def test_get_without_http_version_is_just_unknown(client):
    """Only an HTTP request line counts as non-SMTP; GET alone is an
    unrecognised command."""
    assert client.cmd("GETX").last == "500 5.5.2 Error: command not recognized"


# --- connection limits ----------------------------------------------------


def test_max_connections(postiliond):
    d = postiliond(config={"server": {"max_connections": 2}})
    first = d.connect(source="127.0.0.2")
    second = d.connect(source="127.0.0.3")
    with d.connect(source="127.0.0.4", greeting=False) as third:
        assert third.read_reply().last == \
            f"421 4.7.0 {HOSTNAME} Error: too many connections"
        third.wait_closed()
    # The two accepted sessions still work; closing one frees a slot.
    assert first.cmd("NOOP").code == 250
    assert second.cmd("NOOP").code == 250
    first.cmd("QUIT")
    first.wait_closed()
    first.close()
    deadline = time.monotonic() + scaled(5)
    while True:
        with d.connect(greeting=False) as again:
            reply = again.read_reply()
            if reply.code == 220 or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    assert reply.code == 220
    second.close()


def test_max_connections_per_ip(postiliond):
    d = postiliond(config={"server": {"max_connections_per_ip": 2}})
    a = d.connect(source="127.0.0.5")
    b = d.connect(source="127.0.0.5")
    with d.connect(source="127.0.0.5", greeting=False) as c:
        assert c.read_reply().last == \
            f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.5"
        c.wait_closed()
    with d.connect(source="127.0.0.6") as other:
        assert other.greeting.code == 220
    a.close()
    b.close()


def test_many_sessions_in_parallel(daemon):
    """40 concurrent sessions, each queueing a message, interleaved."""
    clients = [daemon.connect(timeout=20) for _ in range(40)]
    for c in clients:
        c.line("EHLO client.test.example")
    for c in clients:
        assert c.read_reply().code == 250
        c.line("MAIL FROM:<alice@client.test.example>")
    for c in clients:
        assert c.read_reply().code == 250
        c.line("RCPT TO:<bob@example.org>")
    for c in clients:
        assert c.read_reply().code == 250
        c.line("DATA")
    for c in clients:
        assert c.read_reply().code == 354
        c.send(dot_stuff(simple_message()))
    ids = [queue_id(c.read_reply()) for c in clients]
    for c in clients:
        c.close()
    assert sorted(m["id"] for m in daemon.spool_messages()) == sorted(ids)


def test_client_disconnect_mid_data_leaves_nothing(daemon):
    c = daemon.connect()
    start_data(c)
    c.send(b"Subject: gone\r\n\r\npart of a message\r\n")
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    daemon.wait_log(r"disconnect from")
    assert daemon.spool_messages() == []
    assert daemon.tmp_leftovers() == []
    # Still serving.
    with daemon.connect() as again:
        again.ehlo()
        queue_id(transaction(again))


def test_reset_mid_command_does_not_disturb(daemon):
    for _ in range(10):
        c = daemon.connect()
        c.send(b"MAIL FROM:<half")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    with daemon.connect() as c:
        assert c.ehlo().code == 250


def test_closed_without_quit_logged(daemon):
    with daemon.connect() as c:
        c.ehlo()
    daemon.wait_log(r"disconnect from \[127\.0\.0\.1\]:\d+ ehlo=1 commands=1$")


def test_pipelined_garbage_after_close_ignored(daemon):
    with daemon.connect() as c:
        c.send(b"QUIT\r\nNOOP\r\nNOOP\r\n")
        assert c.read_reply().last == "221 2.0.0 Bye"
        assert c.wait_closed() == b""


def test_connection_closed_before_greeting(daemon):
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        s.close()
    with daemon.connect() as c:
        assert c.greeting.code == 220


def test_no_reply_after_connection_closed(client):
    client.cmd("QUIT")
    with pytest.raises(ConnectionClosed):
        client.read_reply()
