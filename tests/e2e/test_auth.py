"""plugins/auth end to end: SMTP AUTH (RFC 4954) with Cyrus SASL against
the real daemon, with swaks and smtplib as clients.

Every test makes its own sasldb with saslpasswd2 (users alice and bob in
realm example.org) and points [plugin:auth] at it; nothing under /etc is
used.  Listeners:

  smtp        plain, no plaintext AUTH: PLAIN/LOGIN are neither offered
              nor accepted (538)
  lab         allow_plaintext_auth = true: the "internal test network"
              listener, on which the exchange itself is tested (the TLS
              tests, over STARTTLS and implicit TLS, come with the TLS
              plugin)
  submission  allow_plaintext_auth and require_auth

The relay tests load relay.so too; a client from 127.0.0.5 is an outside
client (internal_networks is 127.0.0.1/32).  The saslauthd test runs a
private saslauthd (-a shadow, its own socket directory) with a throwaway
system user; it needs root and is skipped otherwise.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import BUILD, CLIENT_NAME, scaled

PLUGIN_PATH = [str(BUILD / "plugins" / "auth"), str(BUILD / "plugins" / "relay")]
REALM = "example.org"
USERS = {"alice": "s3cret-Alice", "bob": "b0b-pass word"}
OUTSIDE = "127.0.0.5"
DELAY_MS = 150

if shutil.which("saslpasswd2") is None:
    raise RuntimeError("saslpasswd2 is not installed: run scripts/setup-debian.sh")


def make_sasldb(directory: Path, users=USERS, mechanisms=None) -> Path:
    """A sasldb made with saslpasswd2 -c -p -f PATH -u REALM USER."""
    path = directory / "sasldb2"
    for user, password in users.items():
        args = ["saslpasswd2", "-c", "-p", "-f", str(path), "-u", REALM]
        if mechanisms is not None:
            args += ["-a", "smtp"]
        subprocess.run(args + [user], input=password.encode(), check=True,
                       timeout=scaled(10), capture_output=True)
    return path


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def sasldb(tmp_path):
    return make_sasldb(tmp_path)


@pytest.fixture
def auth_daemon(postiliond, sasldb):
    """Factory: a daemon with auth.so (and relay.so with `relay`)."""

    def make(auth: dict | None = None, server: dict | None = None,
             relay: bool | dict = False, listeners=("smtp", "lab", "submission"),
             extra: dict | None = None, start: bool = True):
        plugins = ["auth", "relay"] if relay else ["auth"]
        config = {
            "server": {"auth_failure_delay": f"{DELAY_MS}ms",
                       "max_errors": "50", **(server or {})},
            "plugins": {"path": PLUGIN_PATH},
            "plugin:auth": {"sasldb_path": str(sasldb), "realm": REALM,
                            **(auth or {})},
            "listener:lab": {"allow_plaintext_auth": "true"},
            "listener:submission": {"allow_plaintext_auth": "true",
                                    "require_auth": "true"},
            **(extra or {}),
        }
        if relay:
            config["plugin:relay"] = {
                "internal_networks": "127.0.0.1/32",
                "reject_unknown_sender_domain": "false",
                "reject_unknown_recipient_domain": "false",
                **(relay if isinstance(relay, dict) else {})}
        for name in ("lab", "submission"):
            if name not in listeners:
                config.pop(f"listener:{name}")
        return postiliond(config=config, plugins=plugins, listeners=listeners,
                          start=start)

    return make


def ehlo_keywords(reply: harness.Reply) -> list[str]:
    return [line[4:] for line in reply.lines[1:]]


def auth_plain(client, user="alice", password=USERS["alice"]):
    return client.cmd(f"AUTH PLAIN {plain(user, password)}")


def swaks(daemon, listener: str, *args):
    proc = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{daemon.ports[listener]}",
         "--helo", CLIENT_NAME, "--timeout", "20", *args],
        capture_output=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Offering AUTH
# --------------------------------------------------------------------------


def test_not_offered_without_tls(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("smtp") as client:
        keywords = ehlo_keywords(client.ehlo())
        assert not any(k.startswith("AUTH") for k in keywords), keywords
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (538, "5.7.11"), reply
        assert "Encryption required" in reply.text
        assert client.cmd("AUTH LOGIN").code == 538
        assert client.cmd("AUTH CRAM-MD5").code == 504
    assert "s3cret" not in daemon.log_text()


def test_offered_where_allowed(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        assert "AUTH PLAIN LOGIN" in ehlo_keywords(client.ehlo())


def test_not_offered_without_the_plugin(postiliond):
    daemon = postiliond(config={"listener:smtp": {"allow_plaintext_auth":
                                                  "true"}})
    with daemon.connect() as client:
        keywords = ehlo_keywords(client.ehlo())
        assert not any(k.startswith("AUTH") for k in keywords)
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (502, "5.5.1"), reply


def test_listener_chain_without_auth_offers_nothing(auth_daemon):
    daemon = auth_daemon(extra={"listener:lab": {"allow_plaintext_auth":
                                                 "true", "plugins": ""}})
    with daemon.connect("lab") as client:
        assert not any(k.startswith("AUTH")
                       for k in ehlo_keywords(client.ehlo()))


# --------------------------------------------------------------------------
# Successful exchanges
# --------------------------------------------------------------------------


def test_plain_initial_response(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), reply
        reply = harness.transaction(client, sender="alice@example.org")
        assert reply.code == 250
    daemon.wait_log(r"auth: user=alice@example\.org mechanism=PLAIN "
                    r"from \[127\.0\.0\.1\]")
    (message,) = daemon.spool_messages()
    head = message["content"].split(b"\r\n\r\n")[0].decode()
    assert "(Authenticated sender: alice@example.org)" in head
    assert " with ESMTPA id " in head
    assert "s3cret" not in head
    assert USERS["alice"] not in daemon.log_text()


def test_plain_with_334_and_bare_user(auth_daemon):
    """AUTH PLAIN without initial response; the user without realm gets
    the configured realm (Cyrus's user_realm)."""
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd("AUTH PLAIN")
        assert reply.code == 334 and reply.last == "334 ", reply
        reply = client.cmd(plain("bob@example.org", USERS["bob"]))
        assert reply.code == 235, reply


def test_login_exchange(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd("AUTH LOGIN")
        assert reply.code == 334
        assert base64.b64decode(reply.text) == b"Username:"
        reply = client.cmd(b64("alice"))
        assert base64.b64decode(reply.text) == b"Password:"
        assert client.cmd(b64(USERS["alice"])).code == 235
    daemon.wait_log(r"mechanism=LOGIN")


def test_login_with_initial_response(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd(f"AUTH LOGIN {b64('alice')}")
        assert reply.code == 334
        assert base64.b64decode(reply.text) == b"Password:"
        assert client.cmd(b64(USERS["alice"])).code == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks(auth_daemon, mechanism):
    daemon = auth_daemon()
    code, out = swaks(daemon, "lab", "--auth", mechanism, "--auth-user",
                      "alice", "--auth-password", USERS["alice"],
                      "--from", "alice@example.org", "--to",
                      "someone@far.example")
    assert code == 0, out
    assert "235 2.7.0" in out
    assert len(daemon.spool_messages()) == 1
    assert USERS["alice"] not in daemon.log_text()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib(auth_daemon, mechanism):
    daemon = auth_daemon()
    smtp = daemon.smtp("lab")
    try:
        smtp.ehlo()
        assert smtp.has_extn("auth")
        method = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}
        smtp.user, smtp.password = "alice", USERS["alice"]
        code, _ = smtp.auth(mechanism, method[mechanism])
        assert code == 235
        smtp.sendmail("alice@example.org", ["x@far.example"],
                      harness.simple_message())
    finally:
        smtp.quit()
    assert len(daemon.spool_messages()) == 1


def test_cram_md5_and_scram(tmp_path, auth_daemon):
    """Mechanisms with secrets in the sasldb are offered even without TLS
    (they never send the password) and work."""
    daemon = auth_daemon(auth={"mechanisms": "SCRAM-SHA-256; CRAM-MD5; "
                                             "PLAIN"})
    with daemon.connect("smtp") as client:
        keywords = ehlo_keywords(client.ehlo())
        assert "AUTH SCRAM-SHA-256 CRAM-MD5" in keywords, keywords
    smtp = daemon.smtp("smtp")
    try:
        smtp.ehlo()
        smtp.user, smtp.password = "alice", USERS["alice"]
        code, _ = smtp.auth("CRAM-MD5", smtp.auth_cram_md5)
        assert code == 235
    finally:
        smtp.quit()


# --------------------------------------------------------------------------
# RFC 4954 errors
# --------------------------------------------------------------------------


def test_sequence_errors(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), reply
        assert client.cmd("HELO client.test.example").code == 250
        assert auth_plain(client).code == 503  # AUTH needs EHLO
        client.ehlo()
        assert client.cmd("MAIL FROM:<x@example.org>").code == 250
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), reply
        assert "transaction" in reply.text
        assert client.cmd("RSET").code == 250
        assert auth_plain(client).code == 235
        reply = auth_plain(client)
        assert (reply.code, reply.enhanced) == (503, "5.5.1"), reply
        assert "already authenticated" in reply.text


@pytest.mark.parametrize("command,code,enhanced", [
    ("AUTH", 501, "5.5.4"),
    ("AUTH FOO-BAR", 504, "5.5.4"),
    ("AUTH ANONYMOUS", 504, "5.5.4"),
    ("AUTH PLA!N", 501, "5.5.4"),
    ("AUTH PLAIN not-base64", 501, "5.5.2"),
    ("AUTH PLAIN AAA", 501, "5.5.2"),
    ("AUTH PLAIN AAAA BBBB", 501, "5.5.4"),
    ("AUTH PLAIN " + "A" * 20000, 500, "5.5.6"),
])
def test_command_errors(auth_daemon, command, code, enhanced):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd(command)
        assert (reply.code, reply.enhanced) == (code, enhanced), reply
        # The session goes on and can still authenticate.
        assert client.cmd("NOOP").code == 250
        assert auth_plain(client).code == 235


@pytest.mark.parametrize("line,code,enhanced", [
    ("*", 501, "5.7.0"),
    ("%%%%", 501, "5.5.2"),
    ("A" * 20000, 500, "5.5.6"),
    (b64("\0alice"), 501, "5.5.2"),  # PLAIN without password: malformed
])
def test_exchange_errors(auth_daemon, line, code, enhanced):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        assert client.cmd("AUTH PLAIN").code == 334
        reply = client.cmd(line)
        assert (reply.code, reply.enhanced) == (code, enhanced), reply
        assert client.cmd("NOOP").code == 250
        assert auth_plain(client).code == 235


def test_empty_initial_response(auth_daemon):
    """"AUTH PLAIN =" is an empty initial response: PLAIN refuses it."""
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd("AUTH PLAIN =")
        assert reply.code in (501, 535), reply


def test_pipelined_after_auth(auth_daemon):
    """Commands sent right behind the AUTH line wait for its reply."""
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        client.send(f"AUTH PLAIN {plain('alice', USERS['alice'])}\r\n"
                    "MAIL FROM:<alice@example.org>\r\nNOOP\r\n")
        codes = [r.code for r in client.read_replies(3)]
        assert codes == [235, 250, 250]


# --------------------------------------------------------------------------
# Wrong passwords and brute force
# --------------------------------------------------------------------------


def test_wrong_password_is_delayed(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("lab") as client:
        client.ehlo()
        start = time.monotonic()
        reply = auth_plain(client, password="wrong-guess-1")
        first = time.monotonic() - start
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), reply
        assert "Authentication credentials invalid" in reply.text
        start = time.monotonic()
        assert auth_plain(client, "nobody", "x").code == 535
        second = time.monotonic() - start
        assert first >= DELAY_MS / 1000 * 0.9
        assert second >= 2 * DELAY_MS / 1000 * 0.9
        assert auth_plain(client).code == 235
    log = daemon.log_text()
    assert "auth failed: invalid credentials mechanism=PLAIN" in log
    assert "wrong-guess-1" not in log


def test_connection_closed_after_max_failures(auth_daemon):
    daemon = auth_daemon(server={"auth_max_failures": "3"})
    with daemon.connect("lab") as client:
        client.ehlo()
        for n in range(2):
            assert auth_plain(client, password=f"bad{n}").code == 535
        reply = auth_plain(client, password="bad2")
        assert (reply.code, reply.enhanced) == (421, "4.7.0"), reply
        client.wait_closed()
    daemon.wait_log(r"too many failed authentications")


def test_address_rate_limit(auth_daemon):
    daemon = auth_daemon(server={"auth_max_failures": "2",
                                 "auth_failures_per_minute": "3"})
    failures = 0
    for _ in range(2):
        with daemon.connect("lab") as client:
            client.ehlo()
            for n in range(2):
                if failures == 3:
                    break
                assert auth_plain(client, password="bad").code in (535, 421)
                failures += 1
    with daemon.connect("lab") as client:
        client.ehlo()
        reply = auth_plain(client)  # even the right password
        assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
    # Another address is not affected.
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        assert auth_plain(client).code == 235
    daemon.wait_log(r"auth refused: too many failures from \[127\.0\.0\.1\]")


def test_client_leaving_during_delay(auth_daemon):
    daemon = auth_daemon(server={"auth_failure_delay": "2s"})
    client = daemon.connect("lab")
    client.ehlo()
    client.send(f"AUTH PLAIN {plain('alice', 'bad')}\r\n")
    time.sleep(0.2)
    client.close()
    daemon.wait_log(r"disconnect from .* auth=1", timeout=scaled(5))
    with daemon.connect("lab") as other:
        other.ehlo()
        assert auth_plain(other).code == 235


# --------------------------------------------------------------------------
# Submission: require_auth
# --------------------------------------------------------------------------


def test_submission_requires_auth(auth_daemon):
    daemon = auth_daemon()
    with daemon.connect("submission") as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<alice@example.org>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0"), reply
        assert "Authentication required" in reply.text
        assert auth_plain(client).code == 235
        reply = harness.transaction(client, sender="alice@example.org",
                                    recipients=["friend@far.example"])
        assert reply.code == 250


def test_submission_swaks_without_auth_refused(auth_daemon):
    daemon = auth_daemon()
    code, out = swaks(daemon, "submission", "--to", "bob@example.org")
    assert code != 0
    assert "530 5.7.0 Authentication required" in out
    assert daemon.spool_messages() == []


# --------------------------------------------------------------------------
# With the relay plugin
# --------------------------------------------------------------------------


def test_authenticated_relay_vs_unauthenticated(auth_daemon):
    daemon = auth_daemon(relay=True)
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<someone@far.example>").code == 250
        reply = client.cmd("RCPT TO:<friend@far.example>")
        assert (reply.code, reply.enhanced) == (554, "5.7.1"), reply
        assert "Relay access denied" in reply.text
        assert client.cmd("RSET").code == 250
        assert auth_plain(client).code == 235
        reply = harness.transaction(client, sender="alice@example.org",
                                    recipients=["friend@far.example"])
        assert reply.code == 250
    assert len(daemon.spool_messages()) == 1


def test_sender_login_required_with_auth(auth_daemon):
    daemon = auth_daemon(relay=True)
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<alice@example.org>")
        assert (reply.code, reply.enhanced) == (553, "5.7.1"), reply
        assert "not logged in" in reply.text
        assert auth_plain(client).code == 235
        assert client.cmd("MAIL FROM:<alice@example.org>").code == 250


def test_sender_login_map_with_auth(tmp_path, auth_daemon):
    login_map = tmp_path / "logins"
    login_map.write_text("alice@example.org alice@example.org\n"
                         "@example.net bob@example.org\n")
    daemon = auth_daemon(relay={"sender_login_map": str(login_map)})
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        assert auth_plain(client).code == 235
        assert client.cmd("MAIL FROM:<alice@example.org>").code == 250
        assert client.cmd("RSET").code == 250
        reply = client.cmd("MAIL FROM:<bob@example.org>")
        assert (reply.code, reply.enhanced) == (553, "5.7.1"), reply
        assert "not owned by user alice@example.org" in reply.text
    with daemon.connect("lab", source=OUTSIDE) as client:
        client.ehlo()
        assert auth_plain(client, "bob", USERS["bob"]).code == 235
        assert client.cmd("MAIL FROM:<anyone@example.net>").code == 250


def test_relay_trick_matrix_authenticated(auth_daemon):
    """Issue 6: the relay-trick matrix of test_relay_tricks.py as a client
    that authenticated with AUTH: everything but the syntax errors may
    relay (its own sender domain included)."""
    from test_relay_tricks import TRICKS, attempt
    daemon = auth_daemon(relay=True, server={"max_errors": "100"},
                         auth={}, listeners=("smtp", "lab", "submission"))
    for listener in ("lab", "submission"):
        with daemon.connect(listener, source=OUTSIDE) as client:
            client.ehlo()
            assert auth_plain(client).code == 235
            for sender, recipient, outcome in TRICKS:
                reply = attempt(client, sender, recipient)
                if outcome == "syntax":
                    assert (reply.code, reply.enhanced) == (553, "5.1.3"), \
                        reply
                else:
                    assert reply.code == 250, (recipient, reply)
    expected = sum(1 for trick in TRICKS if trick[2] != "syntax")
    assert len(daemon.spool_messages()) == 2 * expected


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("auth,message", [
    ({"mechanisms": "PLAIN; ANONYMOUS"}, "ANONYMOUS and EXTERNAL are not"),
    ({"mechanisms": "PLAIN; PLAIN"}, "each mechanism once"),
    ({"mechanisms": "PLAIN, LOGIN"}, "mechanisms"),
    ({"backend": "ldap"}, "sasldb, saslauthd or dovecot"),
    ({"backend": "saslauthd", "mechanisms": "CRAM-MD5"},
     "only PLAIN and LOGIN with backend = saslauthd"),
    ({"sasldb_path": "/nonexistent/sasldb2"}, "create it with"),
    ({"colour": "blue"}, "colour"),
    ({"mechanisms": "NOSUCH-MECH"}, "Cyrus SASL does not offer NOSUCH-MECH"),
])
def test_config_errors(auth_daemon, auth, message):
    daemon = auth_daemon(auth=auth, start=False)
    daemon.write_config()
    code, out, err = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert code != 0
    assert message in err, err
    assert "plugin:auth" in err or "auth" in err


def test_reload_keeps_working(auth_daemon, tmp_path):
    daemon = auth_daemon()
    (tmp_path / "new").mkdir()
    newdb = make_sasldb(tmp_path / "new", users={"carol": "c4rol"})
    daemon.config["plugin:auth"]["sasldb_path"] = str(newdb)
    daemon.reload()
    daemon.wait_log(r"plugin auth: reloaded")
    with daemon.connect("lab") as client:
        client.ehlo()
        assert auth_plain(client).code == 535
        assert auth_plain(client, "carol", "c4rol").code == 235


# --------------------------------------------------------------------------
# saslauthd
# --------------------------------------------------------------------------

SASLAUTHD_USER = "pstauthtest"


@pytest.fixture
def saslauthd(tmp_path):
    """A private saslauthd (-a shadow) on its own socket, with a throwaway
    system user; root only."""
    if os.geteuid() != 0:
        pytest.skip("saslauthd -a shadow needs root (it reads /etc/shadow)")
    for tool in ("saslauthd", "useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        pwd.getpwnam(SASLAUTHD_USER)
        subprocess.run(["userdel", SASLAUTHD_USER], check=False,
                       capture_output=True, timeout=30)
    except KeyError:
        pass
    subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
                    SASLAUTHD_USER], check=True, capture_output=True,
                   timeout=30)
    directory = tmp_path / "saslauthd"
    directory.mkdir()
    proc = None
    try:
        subprocess.run(["chpasswd"], input=f"{SASLAUTHD_USER}:Sh4dow-pw\n"
                       .encode(), check=True, capture_output=True, timeout=30)
        proc = subprocess.Popen(["saslauthd", "-d", "-a", "shadow", "-m",
                                 str(directory), "-n", "1"],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                # On SIGTERM saslauthd signals its whole
                                # process group: keep pytest out of it.
                                start_new_session=True)
        mux = directory / "mux"
        deadline = time.monotonic() + scaled(10)
        while not mux.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mux.exists(), "saslauthd did not create its socket"
        yield mux
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        subprocess.run(["userdel", SASLAUTHD_USER], check=False,
                       capture_output=True, timeout=30)


def test_saslauthd_backend(auth_daemon, saslauthd):
    daemon = auth_daemon(auth={"backend": "saslauthd",
                               "saslauthd_path": str(saslauthd),
                               "realm": ""})
    with daemon.connect("lab") as client:
        assert "AUTH PLAIN LOGIN" in ehlo_keywords(client.ehlo())
        assert auth_plain(client, SASLAUTHD_USER, "wrong").code == 535
        assert auth_plain(client, SASLAUTHD_USER, "Sh4dow-pw").code == 235
    code, out = swaks(daemon, "lab", "--auth", "LOGIN", "--auth-user",
                      SASLAUTHD_USER, "--auth-password", "Sh4dow-pw",
                      "--quit-after", "AUTH")
    assert code == 0, out
    assert "Sh4dow-pw" not in daemon.log_text()


# --------------------------------------------------------------------------
# The results store and the client side (tests/plugins/testsaslclient.c)
# --------------------------------------------------------------------------


@pytest.fixture
def client_daemon(postiliond, sasldb):
    config = {
        "server": {"auth_failure_delay": f"{DELAY_MS}ms"},
        "plugins": {"path": PLUGIN_PATH + [str(harness.PLUGIN_DIR)]},
        "plugin:auth": {"sasldb_path": str(sasldb), "realm": REALM},
        "plugin:testsaslclient": {"user": "alice@example.org",
                                  "password": "pa:ss word"},
        "listener:lab": {"allow_plaintext_auth": "true"},
    }
    return postiliond(config=config, plugins=["auth", "testsaslclient"],
                      listeners=("lab",))


def client_lines(daemon, mode: str) -> list[str]:
    with daemon.connect("lab") as client:
        reply = client.cmd(f"EHLO saslclient-{mode}")
        assert (reply.code, reply.enhanced) == (550, "5.7.1"), reply
        text = reply.text.split(" ", 1)[1]
        assert text.startswith("saslclient:"), reply
        return [part.strip() for part in text[len("saslclient:"):].split("|")]


def test_results_store(client_daemon):
    with client_daemon.connect("lab") as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<whoami@example.org>")
        assert "auth.user=- auth.mechanism=-" in reply.text, reply
        assert client.cmd("AUTH LOGIN").code == 334
        assert client.cmd(b64("alice")).code == 334
        assert client.cmd(b64(USERS["alice"])).code == 235
        reply = client.cmd("MAIL FROM:<whoami@example.org>")
        assert "auth.user=alice@example.org auth.mechanism=LOGIN" in \
            reply.text, reply


def test_client_plain(client_daemon):
    (line,) = client_lines(client_daemon, "plain")
    verb, mechanism, response = line.split(" ")
    assert (verb, mechanism) == ("AUTH", "PLAIN")
    assert base64.b64decode(response) == b"\0alice@example.org\0pa:ss word"


@pytest.mark.parametrize("mode", ["login", "choose"])
def test_client_login(client_daemon, mode):
    lines = client_lines(client_daemon, mode)
    if mode == "choose" and lines[0].startswith("AUTH PLAIN"):
        return  # Cyrus prefers PLAIN when both are offered: also fine
    assert lines[0] == "AUTH LOGIN"
    assert [base64.b64decode(x) for x in lines[1:]] == [
        b"alice@example.org", b"pa:ss word"]


@pytest.mark.parametrize("mode,message", [
    ("notls", "refusing to send a password without TLS"),
    ("cram", "offers no PLAIN or LOGIN"),
    ("badchallenge", "not base64"),
])
def test_client_refusals(client_daemon, mode, message):
    with client_daemon.connect("lab") as client:
        reply = client.cmd(f"EHLO saslclient-{mode}")
        assert message in reply.text, reply


def test_client_against_our_server(client_daemon, tmp_path):
    """The client's PLAIN line, sent to our own server, authenticates."""
    (tmp_path / "other").mkdir()
    other = make_sasldb(tmp_path / "other", users={"alice": "pa:ss word"})
    (line,) = client_lines(client_daemon, "plain")
    client_daemon.config["plugin:auth"]["sasldb_path"] = str(other)
    client_daemon.reload()
    client_daemon.wait_log(r"plugin auth: reloaded")
    with client_daemon.connect("lab") as client:
        client.ehlo()
        assert client.cmd(line).code == 235


# --------------------------------------------------------------------------
# A backend that never answers
# --------------------------------------------------------------------------


@pytest.fixture
def silent_saslauthd(tmp_path):
    """A unix socket that accepts saslauthd requests and never answers
    (until the test ends: then every connection is closed)."""
    import socket
    import threading
    path = tmp_path / "mux"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    held, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                held.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    server.close()


def test_backend_deadline(postiliond, silent_saslauthd):
    daemon = postiliond(
        config={"plugins": {"path": PLUGIN_PATH},
                "plugin:auth": {"backend": "saslauthd", "timeout": "1s",
                                "saslauthd_path": str(silent_saslauthd)},
                "listener:smtp": {"allow_plaintext_auth": "true"}},
        plugins=["auth"])
    with daemon.connect() as client:
        client.ehlo()
        start = time.monotonic()
        reply = auth_plain(client, "someone", "pw")
        assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
        assert 0.9 <= time.monotonic() - start < scaled(10)
        assert client.cmd("NOOP").code == 250
    daemon.wait_log(r"the SASL plugin did not answer in time")


def test_reload_unloads_and_loads_again(auth_daemon):
    """A SIGHUP that drops auth from [plugins] load shuts Cyrus down; one
    that brings it back starts it again, and AUTH works."""
    daemon = auth_daemon(listeners=("smtp", "lab"))
    mark = daemon.log_mark()
    daemon.reload(config={"plugins": {"load": []}})
    daemon.wait_log(r"reload: new sessions use", timeout=scaled(5),
                    since=mark)
    with daemon.connect("lab") as client:
        client.ehlo()
        assert auth_plain(client).code == 502
    mark = daemon.log_mark()
    daemon.reload(config={"plugins": {"load": ["auth"]}})
    daemon.wait_log(r"reload: new sessions use", timeout=scaled(5),
                    since=mark)
    with daemon.connect("lab") as client:
        client.ehlo()
        assert auth_plain(client).code == 235
