"""Postilion between two real Postfix 3.7 instances (tests/e2e/postfix_peer.py),
as issue 17 found it failing:

- Postfix relays SMTPUTF8 mail to us with its DSN parameters:
  `ORCPT=rfc822;j+C3+BCrgen@...` (UTF-8 in xtext).  We accept it, keep
  it, and pass it on to the next Postfix, which records it (postcat's
  dsn_orig_rcpt); a `utf-8;` ORCPT (RFC 6533) is passed on as well.
- A RCPT parameter we refuse is logged.
- Our client's QUIT on a cached STARTTLS connection goes inside TLS, with
  a close_notify: the receiving Postfix logs a clean `quit=1` and no TLS
  error.

Each test runs one or two private Postfix instances on loopback ports and
takes a few seconds.
"""

import smtplib

import pytest

from harness import BUILD, PLUGIN_DIR, free_port
from postfix_peer import AVAILABLE, DOMAIN, WHY_NOT, PostfixPeer
from tlscerts import TestPKI

pytestmark = pytest.mark.skipif(not AVAILABLE, reason=WHY_NOT)

RELAY_PATH = [str(BUILD / "plugins" / "relay"), str(PLUGIN_DIR)]
TLS_SO = BUILD / "plugins" / "tls" / "tls.so"


def relaying_daemon(postiliond, downstream_port, plugins=None, tls=None):
    """Relays for 127.0.0.1 to the downstream Postfix, as a smarthost."""
    config = {
        "delivery": {"relayhost": f"[127.0.0.1]:{downstream_port}",
                     "retry_first": "1s", "smtp_timeout": "5s"},
        "plugins": {"path": RELAY_PATH + [str(BUILD / "plugins" / "tls")]},
        "plugin:relay": {"internal_networks": "127.0.0.1/32",
                         "reject_unknown_sender_domain": "false",
                         "reject_unknown_recipient_domain": "false"},
    }
    if tls is not None:
        config["plugin:tls"] = tls
    return postiliond(config=config, plugins=["relay", *(plugins or [])])


def submit_utf8(port, recipient, notify="SUCCESS,FAILURE", orcpt=None):
    message = (f"From: <alice@client.example>\r\nTo: <{recipient}>\r\n"
               "Subject: grüße\r\nMessage-ID: <1@client.example>\r\n"
               "\r\nHallo Jürgen\r\n").encode()
    rcpt_options = [f"NOTIFY={notify}"]
    if orcpt is not None:
        rcpt_options.append(f"ORCPT={orcpt}")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example")
        client.sendmail("alice@client.example", [recipient], message,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
                        rcpt_options=rcpt_options)


def test_postfix_relays_a_utf8_orcpt_through_us(postiliond, tmp_path):
    down_port, up_port = free_port(), free_port()
    recipient = f"jürgen@{DOMAIN}"
    with PostfixPeer("hold", down_port) as downstream:
        d = relaying_daemon(postiliond, down_port)
        with PostfixPeer("relay", up_port,
                         next_port=d.port) as upstream:
            submit_utf8(up_port, recipient)
            # Postfix sent us its ORCPT (UTF-8 in xtext) and we took it.
            upstream.wait_log(r"status=sent .*queued as ")
            (envelope,) = downstream.held()
    assert f"dsn_orig_rcpt=rfc822;{recipient}\n" in envelope, envelope
    assert "notify_flags=6\n" in envelope, envelope  # SUCCESS,FAILURE
    assert "bad parameter" not in d.log_text()
    d.wait_log(rf"to=<{recipient}>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
               rf"{down_port}, .*status=sent")


def test_a_utf8_type_orcpt_is_passed_on(postiliond, tmp_path):
    down_port = free_port()
    recipient = f"jürgen@{DOMAIN}"
    with PostfixPeer("hold", down_port) as downstream:
        d = relaying_daemon(postiliond, down_port)
        submit_utf8(d.port, recipient,
                    orcpt=f"utf-8;J\\x{{FC}}rgen\\x{{2B}}list@{DOMAIN}")
        (envelope,) = downstream.held()
    assert f"dsn_orig_rcpt=utf-8;Jürgen+list@{DOMAIN}\n" in envelope, envelope


def test_a_refused_rcpt_parameter_is_logged(postiliond):
    d = postiliond(config={})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.example>").code == 250
        reply = c.cmd("RCPT TO:<bob@example.org> ORCPT=x400;abc")
        assert (reply.code, reply.enhanced) == (501, "5.5.4")
        assert c.cmd("RCPT TO:<bob@example.org> NOTIFY=ALWAYS").code == 501
        assert c.cmd("QUIT").code == 221
    d.wait_log(r"reject: RCPT from \[127\.0\.0\.1\]:\d+: 501 5\.5\.4 Error: "
               r"bad parameter value \(ORCPT=x400;abc\); from=<a@client\."
               r"example> to=<bob@example\.org> .*plugin=core")
    d.wait_log(r"reject: RCPT .*\(NOTIFY=ALWAYS\)")
    # The disconnect line counts the refused RCPTs apart (Postfix style).
    d.wait_log(r"disconnect from \[127\.0\.0\.1\]:\d+ ehlo=1 mail=1 "
               r"rcpt=0/2 quit=1 commands=3/5$")


@pytest.mark.skipif(not TLS_SO.exists(), reason="the tls plugin is not built")
def test_quit_on_a_cached_tls_connection_goes_inside_tls(postiliond,
                                                         tmp_path):
    down_port = free_port()
    downstream = PostfixPeer("hold", down_port)
    # In the peer's own directory: Postfix's smtpd must read its key.
    pki = TestPKI(downstream.base / "pki")
    server_cert, server_key = pki.issue("postfix.bench.invalid")
    our_cert, our_key = pki.issue("mx.test.example")
    downstream.enable_tls(server_cert, server_key)
    with downstream:
        d = relaying_daemon(postiliond, down_port, plugins=["tls"],
                            tls={"certificate": str(our_cert),
                                 "private_key": str(our_key)})
        with d.connect() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<alice@client.example>").code == 250
            assert c.cmd(f"RCPT TO:<bob@{DOMAIN}>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(b"Subject: tls\r\n\r\nbody\r\n.\r\n")
            assert c.read_reply().code == 250
        downstream.held()
        d.wait_log(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*tls=TLSv1\.3"
                   r".*status=sent")
        # The idle connection is closed from the cache after 5 s.
        line = downstream.wait_log(r"disconnect from localhost\[127\.0\.0\.1\]"
                                   r" .*starttls=1.*", timeout=15)
    assert "quit=1" in line, line
    log = downstream.log_text()
    assert "wrong version number" not in log, log
    assert "lost connection after" not in log, log
