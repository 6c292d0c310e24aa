"""AUTH over TLS: plugins/auth with plugins/tls, as users' mail programs
use it: STARTTLS on submission (587) and implicit TLS (465), with swaks
(--tls, --tlsc) and smtplib (starttls, SMTP_SSL), PLAIN and LOGIN.

Listeners (no allow_plaintext_auth anywhere unless said):
  smtp         mode starttls
  submission   mode starttls, require_tls, require_auth
  submissions  mode tls, require_auth
  lab          mode starttls, allow_plaintext_auth (AUTH before STARTTLS)

Certificates come from test_tls.py's module fixture (tlscerts.TestPKI);
the sasldb from test_auth.make_sasldb.  relay.so is loaded: 127.0.0.5 is
an outside client.
"""

from __future__ import annotations

import smtplib
import subprocess

import pytest

import harness
from harness import BUILD, CLIENT_NAME, scaled
from test_auth import OUTSIDE, REALM, USERS, make_sasldb, plain
from test_tls import DEFAULT_NAME, client_context, pki, starttls  # noqa: F401

PATH = [str(BUILD / "plugins" / name) for name in ("auth", "tls", "relay")]
MESSAGE = (b"From: alice@example.org\r\nTo: friend@far.example\r\n"
           b"Subject: from the phone\r\n\r\nHello.\r\n")


@pytest.fixture
def daemon(postiliond, pki, tmp_path):
    sasldb = make_sasldb(tmp_path)
    cert, key = pki.default
    listeners = {
        "smtp": {"mode": "starttls"},
        "submission": {"mode": "starttls", "require_tls": "true",
                       "require_auth": "true"},
        "submissions": {"mode": "tls", "require_auth": "true"},
        "lab": {"mode": "starttls", "allow_plaintext_auth": "true"},
    }
    config = {
        "server": {"auth_failure_delay": "100ms", "max_errors": "100"},
        "plugins": {"path": PATH},
        "plugin:tls": {"certificate": str(cert), "private_key": str(key)},
        "plugin:auth": {"sasldb_path": str(sasldb), "realm": REALM},
        "plugin:relay": {"internal_networks": "127.0.0.1/32",
                         "reject_unknown_sender_domain": "false",
                         "reject_unknown_recipient_domain": "false"},
        **{f"listener:{name}": keys for name, keys in listeners.items()},
    }
    return postiliond(config=config, plugins=["tls", "auth", "relay"],
                      listeners=list(listeners))


def context(pki):
    """Verifies the chain; smtplib names the server 127.0.0.1, which the
    certificate (mail.example.org) does not list."""
    ctx = client_context(pki)
    ctx.check_hostname = False
    return ctx


def keywords(reply: harness.Reply) -> list[str]:
    return [line[4:] for line in reply.lines[1:]]


def swaks(daemon, listener: str, *args):
    proc = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{daemon.ports[listener]}",
         "--helo", CLIENT_NAME, "--timeout", "20", *args],
        capture_output=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def received(daemon) -> str:
    (message,) = daemon.spool_messages()
    return message["content"].split(b"\r\n\r\n")[0].decode()


def test_offered_only_after_starttls(daemon, pki):
    with daemon.connect("smtp", source=OUTSIDE) as client:
        before = keywords(client.ehlo())
        assert "STARTTLS" in before
        assert not any(k.startswith("AUTH") for k in before), before
        reply = client.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'])}")
        assert (reply.code, reply.enhanced) == (538, "5.7.11"), reply
        starttls(client, pki)
        after = keywords(client.ehlo())
        assert "AUTH PLAIN LOGIN" in after, after
        reply = client.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'])}")
        assert reply.code == 235, reply
        reply = harness.transaction(client, sender="alice@example.org",
                                    recipients=["friend@far.example"])
        assert reply.code == 250
    head = received(daemon)
    assert "with ESMTPSA id" in head
    assert "(Authenticated sender: alice@example.org)" in head
    assert USERS["alice"] not in daemon.log_text()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_submission(daemon, pki, mechanism):
    smtp = smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                        local_hostname=CLIENT_NAME, timeout=scaled(10))
    try:
        smtp.ehlo()
        code, _ = smtp.docmd("MAIL FROM:<alice@example.org>")
        assert code == 530  # TLS first
        smtp.starttls(context=context(pki))
        smtp.ehlo()
        smtp.user, smtp.password = "alice", USERS["alice"]
        method = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}
        assert smtp.auth(mechanism, method[mechanism])[0] == 235
        smtp.sendmail("alice@example.org", ["friend@far.example"], MESSAGE)
    finally:
        smtp.quit()
    assert "with ESMTPSA id" in received(daemon)
    daemon.wait_log(rf"auth: user=alice@example\.org mechanism={mechanism}")


def test_submission_without_auth_over_tls(daemon, pki):
    with daemon.connect("submission") as client:
        client.ehlo()
        starttls(client, pki)
        client.ehlo()
        reply = client.cmd("MAIL FROM:<alice@example.org>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), reply
        assert "Authentication required" in reply.text


def test_smtplib_implicit_tls(daemon, pki):
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          local_hostname=CLIENT_NAME,
                          context=context(pki),
                          timeout=scaled(10)) as smtp:
        smtp.ehlo()
        assert "PLAIN" in smtp.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            smtp.login("alice", "wrong")
        assert failure.value.smtp_code == 535
        smtp.login("alice", USERS["alice"])
        smtp.sendmail("alice@example.org", ["friend@far.example"], MESSAGE)
    assert "with ESMTPSA id" in received(daemon)


@pytest.mark.parametrize("listener,tls_option", [("submission", "--tls"),
                                                 ("submissions", "--tlsc")])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_over_tls(daemon, listener, tls_option, mechanism):
    code, out = swaks(daemon, listener, tls_option, "--auth", mechanism,
                      "--auth-user", "alice@example.org", "--auth-password",
                      USERS["alice"], "--from", "alice@example.org", "--to",
                      "friend@far.example")
    assert code == 0, out
    assert "235 2.7.0 Authentication successful" in out
    assert "with ESMTPSA id" in received(daemon)


def test_swaks_wrong_password_over_tls(daemon):
    code, out = swaks(daemon, "submissions", "--tlsc", "--auth", "PLAIN",
                      "--auth-user", "alice", "--auth-password", "nope",
                      "--to", "friend@far.example")
    assert code != 0
    assert "535 5.7.8 Authentication credentials invalid" in out


def test_unauthenticated_over_tls_cannot_relay(daemon, pki):
    with daemon.connect("smtp", source=OUTSIDE) as client:
        client.ehlo()
        starttls(client, pki)
        client.ehlo()
        assert client.cmd("MAIL FROM:<someone@far.example>").code == 250
        reply = client.cmd("RCPT TO:<friend@far.example>")
        assert (reply.code, reply.enhanced) == (554, "5.7.1"), reply


def test_starttls_forgets_plaintext_auth(daemon, pki):
    """AUTH before STARTTLS (allowed on `lab`), then STARTTLS: the client
    starts over (RFC 3207 section 4.2), unauthenticated."""
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        assert client.cmd(
            f"AUTH PLAIN {plain('alice', USERS['alice'])}").code == 235
        starttls(client, pki)
        client.ehlo()
        assert client.cmd("MAIL FROM:<someone@far.example>").code == 250
        reply = client.cmd("RCPT TO:<friend@far.example>")
        assert (reply.code, reply.enhanced) == (554, "5.7.1"), reply
        assert client.cmd("RSET").code == 250
        assert client.cmd(
            f"AUTH PLAIN {plain('alice', USERS['alice'])}").code == 235
        assert client.cmd("MAIL FROM:<alice@example.org>").code == 250
        assert client.cmd("RCPT TO:<friend@far.example>").code == 250


def test_relay_trick_matrix_after_starttls_and_auth(daemon, pki):
    """Issue 6: the relay-trick matrix as an outside client that used
    STARTTLS and AUTH: everything but the syntax errors may relay."""
    from test_relay_tricks import TRICKS, attempt
    with daemon.connect("smtp", source=OUTSIDE) as client:
        client.ehlo()
        starttls(client, pki)
        client.ehlo()
        assert client.cmd(
            f"AUTH PLAIN {plain('alice', USERS['alice'])}").code == 235
        for sender, recipient, outcome in TRICKS:
            reply = attempt(client, sender, recipient)
            if outcome == "syntax":
                assert (reply.code, reply.enhanced) == (553, "5.1.3"), reply
            else:
                assert reply.code == 250, (recipient, reply)
    expected = sum(1 for trick in TRICKS if trick[2] != "syntax")
    assert len(daemon.spool_messages()) == expected
