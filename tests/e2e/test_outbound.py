"""Outbound SMTP delivery: MX routing (order, fallback, implicit MX, null
MX, IPv6 and IPv4), per-recipient results, retries and expiry, the SMTP
client's care with hostile servers, connection reuse and the
per-destination limit.  Receivers are Python SMTP servers (receivers.py)
on 127.0.0.2 ... 127.0.0.7 and ::1, found through MX records served by
tests/dns/testdns.py; the client connects from 127.0.0.1, which the
relay plugin lets relay."""

import socket
import time

import pytest

from delivery import (delivery_config, maildir_of, parse, wait_for,
                      wait_messages, wait_queue_empty)
from harness import BUILD, PLUGIN_DIR, TestDnsServer, run_cli, queue_id, simple_message, transaction
from receivers import Receiver, shared_port, write_zone

RELAY_PATH = [str(BUILD / "plugins" / "relay")]
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6",
         "127.0.0.7"]


def ipv6_available() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    server = TestDnsServer([write_zone(tmp_path_factory.mktemp("zone"))])
    yield server
    server.stop()


class Net:
    """The receivers of one test and the port they share."""

    def __init__(self):
        self.port = shared_port(HOSTS + (["::1"] if ipv6_available() else []))
        self.receivers: list[Receiver] = []

    def receiver(self, host: str, name: str | None = None) -> Receiver:
        r = Receiver(host, self.port, name)
        self.receivers.append(r)
        return r

    def close(self):
        for r in self.receivers:
            r.close()


@pytest.fixture
def net():
    n = Net()
    yield n
    n.close()


@pytest.fixture
def outbound(postiliond, tmp_path, dns, net):
    """Factory: a daemon that relays for 127.0.0.1 and delivers remote
    mail by SMTP to port net.port; `delivery` adds [delivery] keys."""

    def make(start=True, extra: dict | None = None,
             plugins: dict | None = None, **delivery):
        """`plugins`: {name: [plugin:name] keys} loaded after relay, from
        BUILD/plugins/NAME, or BUILD/tests/plugins for test plugins."""
        config = delivery_config(tmp_path, **{
            "smtp_port": net.port, "smtp_timeout": "1500ms",
            "smtp_connect_timeout": "1500ms", **delivery})
        more = plugins or {}
        config.update({
            "dns": {"nameservers": f"127.0.0.1@{dns.port}", "timeout": "1s",
                    "dnssec": "no"},
            "plugins": {"path": RELAY_PATH + [str(BUILD / "plugins" / name)
                                              for name in more] +
                        [str(PLUGIN_DIR)]},
            "plugin:relay": {"internal_networks": "127.0.0.1/32"},
            **{f"plugin:{name}": keys for name, keys in more.items()},
            **(extra or {}),
        })
        return postiliond(config=config, plugins=["relay", *more],
                          start=start)

    return make


def send(d, recipients, sender="bob@example.org", message=None,
         mail_params=""):
    with d.connect(source="127.0.0.1") as c:
        c.ehlo()
        return queue_id(transaction(c, sender=sender, recipients=recipients,
                                    message=message, mail_params=mail_params))


def relay(host, port):
    return rf"{host}\[{host_address(host)}\]:{port}"


def host_address(host):
    return {"mx1.other.test": "127\\.0\\.0\\.2",
            "mx2.other.test": "127\\.0\\.0\\.3",
            "mx3.other.test": "127\\.0\\.0\\.4",
            "implicit.test": "127\\.0\\.0\\.5"}[host]


def test_mx_preference_and_log_line(outbound, net):
    mx1 = net.receiver("127.0.0.2", "mx1")
    mx2 = net.receiver("127.0.0.3", "mx2")
    d = outbound()
    qid = send(d, ["Carol@Other.test"],
               message=simple_message("out", ".dot line\r\nend"))
    d.wait_log(rf"{qid}: to=<carol@other\.test>, orig_to=<Carol@Other\.test>, "
               rf"relay={relay('mx1.other.test', net.port)}, "
               r"delay=\d+\.\d+, tls=none, status=sent "
               r"\(250 2\.0\.0 Ok: queued as mx1-1\)")
    wait_queue_empty(d)
    assert not mx2.messages
    (message,) = mx1.messages
    assert message.sender == "bob@example.org"
    assert message.recipients == ["carol@other.test"]
    assert b"\r\n..dot line\r\n" in message.raw  # dot-stuffed on the wire
    assert b"\r\n.dot line\r\nend\r\n" in message.data
    assert b"\n" not in message.raw.replace(b"\r\n", b"")  # CRLF only
    assert "Subject: out" in message.data.decode()


def test_duplicate_remote_recipient_sent_once(outbound, net):
    """The same outside address twice (any case) goes out in one RCPT;
    with other DSN parameters it is another delivery (the next hop gets
    each recipient's NOTIFY and ORCPT)."""
    mx1 = net.receiver("127.0.0.2", "mx1")
    d = outbound()
    qid = send(d, ["carol@other.test", "Carol@Other.test", "dave@other.test"])
    wait_queue_empty(d)
    (message,) = mx1.messages
    assert message.recipients == ["carol@other.test", "dave@other.test"]
    lines = [line for line in d.log_lines()
             if f"{qid}: to=<carol@other.test>" in line]
    assert len(lines) == 2 and all("status=sent" in x for x in lines)
    with d.connect(source="127.0.0.1") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@example.org>").code == 250
        assert c.cmd("RCPT TO:<erin@other.test>").code == 250
        assert c.cmd("RCPT TO:<erin@other.test> NOTIFY=NEVER").code == 250
        assert c.cmd("DATA").code == 354
        c.send(simple_message("dsn", "b") + b".\r\n")
        queue_id(c.read_reply())
    wait_for(lambda: len(mx1.messages) >= 2, 10, "the second message")
    wait_queue_empty(d)
    assert mx1.messages[1].recipients == ["erin@other.test"] * 2


@pytest.mark.parametrize("kib", [1, 100, 129, 300])
def test_content_that_needs_no_stuffing_goes_out_as_queued(outbound, net,
                                                          kib):
    """Content with CRLF lines only and no leading dot goes out without
    the encoder (sent from the first pass's copy up to 128 KiB, from the
    reader's pieces above): the wire carries exactly the queued octets
    and the final dot; a message with a dot line takes the encoder."""
    mx1 = net.receiver("127.0.0.2", "mx1")
    d = outbound()
    line = b"the quick brown fox jumps over the lazy dog, line %06d\r\n"
    body = b"".join(line % i for i in range(kib * 1024 // len(line % 0)))
    message = b"Subject: verbatim\r\nFrom: bob@example.org\r\n\r\n" + body
    dotted = message + b".dot\r\nend\r\n"
    send(d, ["carol@other.test"], message=message)
    send(d, ["carol@other.test"], message=dotted)
    wait_for(lambda: len(mx1.messages) >= 2, 10, "both messages")
    wait_queue_empty(d)
    plain, stuffed = sorted(mx1.messages, key=lambda m: len(m.raw))
    assert plain.raw.endswith(b"\r\n\r\n" + body + b".\r\n")
    assert plain.data.endswith(b"\r\n\r\n" + body)
    assert stuffed.raw.endswith(b"\r\n\r\n" + body + b"..dot\r\nend\r\n.\r\n")
    assert b"\n" not in plain.raw.replace(b"\r\n", b"")


def test_mx_fallback_when_the_first_is_down(outbound, net):
    mx2 = net.receiver("127.0.0.3", "mx2")
    mx3 = net.receiver("127.0.0.4", "mx3")
    d = outbound()
    qid = send(d, ["carol@other.test"])
    # mx1 (preference 10) refuses connections; mx2 or mx3 (20) takes it.
    d.wait_log(rf"{qid}: to=<carol@other\.test>, relay=mx[23]\.other\.test"
               rf"\[127\.0\.0\.[34]\]:{net.port}, .*status=sent")
    wait_queue_empty(d)
    assert len(mx2.messages) + len(mx3.messages) == 1


def test_mx_fallback_on_greeting_refusal_and_mail_4xx(outbound, net):
    mx1 = net.receiver("127.0.0.2", "mx1")
    mx1.mail_reply = "451 4.3.2 system busy"
    mx2 = net.receiver("127.0.0.3", "mx2")
    mx2.greeting = "554 5.3.2 no service here"
    mx3 = net.receiver("127.0.0.4", "mx3")
    d = outbound()
    send(d, ["carol@other.test"])
    wait_queue_empty(d)
    assert len(mx3.messages) == 1 and not mx1.messages and not mx2.messages


def test_implicit_mx_and_connection_reuse(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound()
    first = send(d, ["a@implicit.test"])
    d.wait_log(rf"{first}: to=<a@implicit\.test>, "
               rf"relay={relay('implicit.test', net.port)}, .*status=sent")
    second = send(d, ["b@implicit.test"])
    d.wait_log(rf"{second}: to=<b@implicit\.test>, .*status=sent")
    assert len(r.messages) == 2
    assert r.connections == 1  # the second message reused the connection
    # at once, without RSET: it was fresh, and the server had said nothing
    assert b"RSET" not in r.commands


def test_cached_connection_idle_for_seconds_is_probed(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound()
    first = send(d, ["a@implicit.test"])
    d.wait_log(rf"{first}: to=<a@implicit\.test>, .*status=sent")
    time.sleep(2.5)  # PST_SMTP_REUSE_FRESH_US
    second = send(d, ["b@implicit.test"])
    d.wait_log(rf"{second}: to=<b@implicit\.test>, .*status=sent")
    assert r.connections == 1
    assert b"RSET" in r.commands


def test_cached_connection_closed_at_mail_is_replaced_at_once(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    r.drop_mail_after = 1  # each connection takes one message, then drops
    d = outbound()
    first = send(d, ["a@implicit.test"])
    d.wait_log(rf"{first}: to=<a@implicit\.test>, .*status=sent")
    second = send(d, ["b@implicit.test"])
    # delivered in the same attempt, on a new connection: nothing deferred
    d.wait_log(rf"{second}: to=<b@implicit\.test>, .*status=sent")
    assert "status=deferred" not in d.log_text()
    assert len(r.messages) == 2
    assert r.connections == 2


# The relay plugin already refuses such recipients at RCPT; through an
# alias they reach the queue, and delivery must refuse them itself.
OUTSIDE = "nullmx: nobody@nullmx.test\nnowhere: x@nowhere.test\n"


def test_null_mx_bounces_at_once(outbound, net, tmp_path):
    d = outbound(aliases=OUTSIDE)
    qid = send(d, ["nullmx@example.org"])
    d.wait_log(rf"{qid}: to=<nobody@nullmx\.test>, orig_to=<nullmx@example"
               r"\.org>, relay=none, .*"
               r"status=bounced \(556 5\.1\.10 the domain nullmx\.test does "
               r"not accept mail \(null MX\)\)")
    (dsn,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert b"Status: 5.1.10" in dsn
    assert b"Diagnostic-Code: smtp; 556 5.1.10" in dsn


def test_unknown_domain_bounces(outbound, net):
    d = outbound(aliases=OUTSIDE)
    qid = send(d, ["nowhere@example.org"], sender="")
    d.wait_log(rf"{qid}: to=<x@nowhere\.test>, .*relay=none, .*status=bounced "
               r"\(550 5\.4\.4 Host or domain name not found")


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_ipv6_then_ipv4(outbound, net):
    v4 = net.receiver("127.0.0.6", "dual4")
    d = outbound()
    qid = send(d, ["a@dual.test"])
    # ::1 first (connection refused), then 127.0.0.6.
    d.wait_log(rf"{qid}: to=<a@dual\.test>, relay=mx\.dual\.test"
               rf"\[127\.0\.0\.6\]:{net.port}, .*status=sent")
    v6 = net.receiver("::1", "dual6")
    qid = send(d, ["b@dual.test"])
    d.wait_log(rf"{qid}: to=<b@dual\.test>, relay=mx\.dual\.test"
               rf"\[::1\]:{net.port}, .*status=sent")
    assert len(v4.messages) == 1 and len(v6.messages) == 1


def test_mixed_results_three_recipients(outbound, net, tmp_path):
    mx1 = net.receiver("127.0.0.2", "mx1")
    mx1.rcpt_replies["later@other.test"] = "450 4.2.1 Mailbox busy"
    mx1.rcpt_replies["gone@other.test"] = "550 5.1.1 No such user here"
    d = outbound()
    qid = send(d, ["ok@other.test", "later@other.test", "gone@other.test"])
    d.wait_log(rf"{qid}: to=<ok@other\.test>, .*status=sent \(250 2\.0\.0 Ok")
    d.wait_log(rf"{qid}: to=<later@other\.test>, .*status=deferred \(450 "
               rf"4\.2\.1 host {relay('mx1.other.test', net.port)} said: "
               r"Mailbox busy \(in reply to RCPT TO\)\)")
    d.wait_log(rf"{qid}: to=<gone@other\.test>, .*status=bounced \(550 "
               rf"5\.1\.1 host {relay('mx1.other.test', net.port)} said: "
               r"No such user here \(in reply to RCPT TO\)\)")
    del mx1.rcpt_replies["later@other.test"]
    d.wait_log(rf"{qid}: to=<later@other\.test>, .*status=sent", timeout=10)
    wait_queue_empty(d)
    assert [m.recipients for m in mx1.messages] == [["ok@other.test"],
                                                    ["later@other.test"]]
    # The DSN quotes the remote server's reply.
    (dsn,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert parse(dsn)["Subject"] == "Undelivered Mail Returned to Sender"
    text = dsn.decode()
    assert "Final-Recipient: rfc822; gone@other.test" in text
    assert "Status: 5.1.1" in text
    assert ("Diagnostic-Code: smtp; 550 5.1.1 host mx1.other.test[127.0.0.2]:"
            f"{net.port} said: No such user here" in text)
    assert "Final-Recipient: rfc822; ok@other.test" not in text


def test_retry_then_success(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    r.data_reply = "451 4.3.0 Temporary local problem"
    d = outbound()
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=deferred \(451 "
               r"4\.3\.0 host .* said: Temporary local problem \(in reply to "
               r"DATA\)\)")
    r.data_reply = None
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=sent", timeout=10)
    wait_queue_empty(d)
    assert len(r.messages) == 1


def test_retry_then_bounce_after_lifetime(outbound, net, tmp_path):
    r = net.receiver("127.0.0.5", "implicit")
    r.rcpt_replies["a@implicit.test"] = "452 4.2.2 Over quota"
    d = outbound(max_lifetime="2s")
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=deferred \(452 ")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=bounced \(421 "
               r"4\.4\.7 message expired.*Over quota", timeout=15)
    (dsn,) = wait_messages(maildir_of(tmp_path, "bob@example.org"),
                           timeout=10)
    assert b"Over quota" in dsn
    assert not r.messages


@pytest.mark.parametrize("misbehaviour,reason", [
    ("garbage", r"451 4\.5\.0 .*a reply without a valid code"),
    ("oversized", r"451 4\.5\.0 .*a reply line longer than 2048 octets"),
    ("drop_rcpt", r"451 4\.4\.2 .*the server closed the connection"),
    ("stall_mail", r"451 4\.4\.2 .*timeout waiting for the server's reply"),
])
def test_hostile_server_is_a_temporary_failure(outbound, net, misbehaviour,
                                               reason):
    r = net.receiver("127.0.0.5", "implicit")
    if misbehaviour == "garbage":
        r.garbage = True
    elif misbehaviour == "oversized":
        r.oversized = True
    elif misbehaviour == "drop_rcpt":
        r.drop_at = "rcpt"
    else:
        r.stall_at = "mail"
    d = outbound()
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=deferred \({reason}")
    assert [m["id"] for m in d.spool_messages()] == [qid]


def test_8bit_without_8bitmime_bounces(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    r.keywords = ["PIPELINING"]
    d = outbound()
    message = b"Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
    qid = send(d, ["a@implicit.test"], sender="", message=message,
               mail_params="BODY=8BITMIME")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=bounced \(554 "
               r"5\.6\.3 the message has 8-bit content, host implicit\.test"
               r".* does not offer 8BITMIME")
    assert not r.messages


def test_8bitmime_and_smtputf8_passed_on_when_offered(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    r.keywords = ["8BITMIME", "SMTPUTF8", "SIZE 100000"]  # no PIPELINING
    d = outbound()
    message = b"Subject: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
    qid = send(d, ["a@implicit.test"], message=message,
               mail_params="BODY=8BITMIME SMTPUTF8")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=sent")
    (m,) = r.messages
    assert "BODY=8BITMIME" in m.params and "SMTPUTF8" in m.params
    assert "SIZE=" in m.params
    assert b"caf\xc3\xa9" in m.data


def test_smtputf8_not_offered_bounces(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound()
    message = "Subject: grüße\r\n\r\nbody\r\n".encode()
    qid = send(d, ["a@implicit.test"], sender="", message=message,
               mail_params="SMTPUTF8 BODY=8BITMIME")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=bounced \(550 "
               r"5\.6\.7 SMTPUTF8 is required, but was not offered by host "
               r"implicit\.test")
    assert not r.messages


def test_smtputf8_not_needed_goes_without_it(outbound, net):
    """SMTPUTF8 asked for, but every address and header field is ASCII:
    the message goes as it is to a peer without SMTPUTF8 (as Postfix
    does; our own DSNs of SMTPUTF8 mail are such messages)."""
    r = net.receiver("127.0.0.5", "implicit")
    r.keywords = ["8BITMIME"]
    d = outbound()
    message = "Subject: plain\r\n\r\ngrüße\r\n".encode()
    qid = send(d, ["a@implicit.test"], sender="", message=message,
               mail_params="SMTPUTF8 BODY=8BITMIME")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=sent")
    (m,) = r.messages
    assert "SMTPUTF8" not in m.params and "BODY=8BITMIME" in m.params


def test_alias_pointing_outside_is_delivered(outbound, net, tmp_path):
    mx1 = net.receiver("127.0.0.2", "mx1")
    d = outbound(aliases="team: bob, friend@other.test\n")
    qid = send(d, ["team@example.org"], sender="alice@example.org")
    d.wait_log(rf"{qid}: to=<friend@other\.test>, orig_to=<team@example\.org>, "
               r"relay=mx1\.other\.test.*status=sent")
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_queue_empty(d)
    assert mx1.messages[0].recipients == ["friend@other.test"]


def test_destination_concurrency_limit(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound(destination_concurrency=1)
    # Four messages at once; the receiver is slow to take the data.
    slow = r._read_data

    def slow_read(conn, buf):
        time.sleep(0.3)
        return slow(conn, buf)
    r._read_data = slow_read
    for i in range(4):
        send(d, [f"u{i}@implicit.test"])
    wait_for(lambda: len(r.messages) == 4, 15, "four deliveries")
    assert r.max_active == 1


def test_relayhost_bracketed_skips_mx(outbound, net):
    smarthost = net.receiver("127.0.0.7", "smarthost")
    mx1 = net.receiver("127.0.0.2", "mx1")
    d = outbound(relayhost=f"[127.0.0.7]:{net.port}")
    qid = send(d, ["a@other.test", "b@implicit.test"])
    d.wait_log(rf"{qid}: to=<b@implicit\.test>, relay=127\.0\.0\.7"
               rf"\[127\.0\.0\.7\]:{net.port}, .*status=sent")
    wait_queue_empty(d)
    (m,) = smarthost.messages  # one transaction for both
    assert sorted(m.recipients) == ["a@other.test", "b@implicit.test"]
    assert not mx1.messages


def test_relayhost_by_mx(outbound, net):
    smarthost = net.receiver("127.0.0.7", "smarthost")
    d = outbound(relayhost="relay.test")
    qid = send(d, ["a@other.test"])
    d.wait_log(rf"{qid}: to=<a@other\.test>, relay=smtp\.relay\.test"
               rf"\[127\.0\.0\.7\]:{net.port}, .*status=sent")
    assert len(smarthost.messages) == 1


def test_bad_relayhost_refused_at_start(outbound):
    d = outbound(start=False, relayhost="[smtp.example.net:587")
    d.expect_exit = True
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "relayhost" in d.log_text() and "[host]:port" in d.log_text()


@pytest.mark.parametrize("where", ["delivery", "delivery:example.net"])
def test_required_tls_without_provider_refuses_start(outbound, where):
    extra = {where: {"tls": "verify"}} if ":" in where else None
    d = outbound(start=False, extra=extra,
                 **({} if extra else {"tls": "encrypt"}))
    d.expect_exit = True
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "no TLS provider plugin is loaded" in d.log_text()
    # postiliond --check says the same.
    code, _, err = run_cli(["--check", "-c", str(d.conf_path)])
    assert code == 1 and "no TLS provider plugin is loaded" in err


def test_more_than_100_recipients_take_several_transactions(outbound, net):
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound()
    recipients = [f"u{i}@implicit.test" for i in range(150)]
    qid = send(d, recipients)
    d.wait_log(rf"{qid}: removed", timeout=15)
    assert [len(m.recipients) for m in r.messages] == [100, 50]
    assert r.connections == 1
    assert sorted(sum((m.recipients for m in r.messages), [])) == \
        sorted(recipients)


def test_mail_looping_back_to_us_bounces(outbound, net):
    # implicit.test's host greets with our own [server] hostname.
    r = net.receiver("127.0.0.5", "implicit")
    r.greeting = "220 mx.test.example ESMTP Postilion"
    d = outbound()
    qid = send(d, ["a@implicit.test"], sender="")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=bounced \(554 5\.4\.6 "
               r"implicit\.test\[127\.0\.0\.5\]:\d+: mail loops back to myself")
    assert not r.messages


def test_dsn_parameters_passed_on_to_a_dsn_server(outbound, net, tmp_path):
    # RFC 3461 6.2: a next hop that offers DSN gets RET, ENVID, NOTIFY and
    # ORCPT, and then sends the success notice itself: none from us.
    r = net.receiver("127.0.0.5", "implicit")
    r.keywords = ["PIPELINING", "DSN", "8BITMIME"]
    d = outbound()
    qid = send(d, ["a@implicit.test", "b@implicit.test"],
               mail_params="RET=HDRS ENVID=env+2B1")
    wait_queue_empty(d)
    (m,) = r.messages
    assert "RET=HDRS" in m.params and "ENVID=env+2B1" in m.params
    assert m.rcpt_params == {"a@implicit.test": "", "b@implicit.test": ""}
    d2 = outbound()
    with d2.connect(source="127.0.0.1") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@example.org>").code == 250
        assert c.cmd("RCPT TO:<c@implicit.test> NOTIFY=SUCCESS,FAILURE "
                     "ORCPT=rfc822;Carol+2Bx@implicit.test").code == 250
        assert c.cmd("RCPT TO:<n@implicit.test> NOTIFY=NEVER").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: dsn\r\n\r\nbody\r\n.\r\n")
        qid = queue_id(c.read_reply())
    d2.wait_log(rf"{qid}: to=<c@implicit\.test>, .*status=sent")
    wait_queue_empty(d2)
    m = r.messages[-1]
    assert m.rcpt_params == {
        "c@implicit.test": "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Carol+2Bx@implicit.test",
        "n@implicit.test": "NOTIFY=NEVER"}
    time.sleep(0.5)
    assert not list(maildir_of(tmp_path, "bob@example.org").glob("new/*"))


def test_success_notice_relayed_to_a_server_without_dsn(outbound, net, tmp_path):
    # Without DSN at the next hop, NOTIFY=SUCCESS gets our notice, with the
    # action "relayed" (RFC 3464 2.3.3), and no DSN parameters go out.
    r = net.receiver("127.0.0.5", "implicit")
    d = outbound()
    with d.connect(source="127.0.0.1") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@example.org> RET=HDRS").code == 250
        assert c.cmd("RCPT TO:<c@implicit.test> NOTIFY=SUCCESS").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: dsn\r\n\r\nbody\r\n.\r\n")
        queue_id(c.read_reply())
    wait_queue_empty(d)
    (m,) = r.messages
    assert "RET=" not in m.params and m.rcpt_params == {"c@implicit.test": ""}
    (dsn,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    text = dsn.decode()
    assert "Final-Recipient: rfc822; c@implicit.test" in text
    assert "Action: relayed" in text
