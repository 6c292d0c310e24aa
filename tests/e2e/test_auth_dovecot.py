"""plugins/auth with backend = dovecot (issue 17, item 8): SMTP AUTH
checked by a real Dovecot's auth service, as Postfix's
smtpd_sasl_type = dovecot does.

A private Dovecot (dovecot-core) runs from a temporary directory with only
its auth service: users in a passwd-file passdb, the auth-client socket
under BASE/run/ and a TCP listener on loopback, auth_failure_delay 0.
postiliond loads tls and auth; listeners submission (starttls) and
submissions (tls).  Clients: smtplib (PLAIN, LOGIN, CRAM-MD5), a raw
client for SCRAM-SHA-256 (a mechanism Cyrus is not asked about: Dovecot
offers it) and for the exchange edges.  Dovecot going away and coming
back, and a peer that breaks the protocol (a Python stand-in: no real
Dovecot misbehaves on purpose), end in 454 4.7.0, never in a hang.

Dovecot's master starts as root (it switches to its internal users):
skipped otherwise, and when dovecot-core is not installed
(scripts/setup-debian.sh installs it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import BUILD, HarnessError, free_port, scaled
from test_tls import check_config, client_context, pki, starttls  # noqa: F401

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="Dovecot's master must start as root"),
    pytest.mark.skipif(not os.path.exists(DOVECOT),
                       reason="dovecot-core is not installed "
                              "(scripts/setup-debian.sh installs it)"),
]

PATH = [str(BUILD / "plugins" / name) for name in ("auth", "tls")]
USERS = {"alice@example.org": "s3cret-Alice", "bob@example.org": "b0b pass"}
ALICE = "alice@example.org"

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login cram-md5 scram-sha-256
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


class Dovecot:
    """A private Dovecot auth service: BASE/run/auth-client and
    127.0.0.1:PORT.  BASE is short (/tmp): sun_path holds 108 octets."""

    def __init__(self, base: Path | None = None):
        self.base = base or Path(tempfile.mkdtemp(prefix="pst-dva-",
                                                  dir="/tmp"))
        self.base.chmod(0o755)
        self.port = free_port()
        (self.base / "users").write_text("".join(
            f"{user}:{{PLAIN}}{password}::::::\n"
            for user, password in USERS.items()))
        (self.base / "dovecot.conf").write_text(
            CONFIG.format(base=self.base, port=self.port))
        self.socket = self.base / "run" / "auth-client"
        self.proc = None

    def start(self) -> "Dovecot":
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.base / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + scaled(10)
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise HarnessError(f"dovecot did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc is not None:
            self.proc.stderr.close()
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot().start()
    yield server
    server.remove()


def auth_config(pki, socket_spec: str, **auth) -> dict:
    cert, key = pki.default
    return {
        "server": {"auth_failure_delay": "100ms", "max_errors": "100"},
        "plugins": {"path": PATH},
        "plugin:tls": {"certificate": str(cert), "private_key": str(key)},
        "plugin:auth": {"backend": "dovecot", "socket": socket_spec, **auth},
        "listener:submission": {"mode": "starttls"},
        "listener:submissions": {"mode": "tls"},
    }


@pytest.fixture
def make_daemon(postiliond, pki):
    def make(socket_spec: str, wait: bool = True, **auth):
        daemon = postiliond(config=auth_config(pki, socket_spec, **auth),
                            plugins=["tls", "auth"],
                            listeners=["submission", "submissions"])
        if wait:
            daemon.wait_log(r"auth: dovecot: connected to ")
        return daemon
    return make


def context(pki):
    ctx = client_context(pki)
    ctx.check_hostname = False
    return ctx


def auth_keywords(reply: harness.Reply) -> list[str]:
    for line in reply.lines[1:]:
        if line[4:].startswith("AUTH "):
            return line[4:].split()[1:]
    return []


def tls_client(daemon, pki) -> harness.SMTPRaw:
    client = daemon.connect("submission")
    client.ehlo()
    starttls(client, pki)
    return client


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


# --- Logging in ----------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_plain_and_login_over_starttls(dovecot, make_daemon, pki, mechanism):
    daemon = make_daemon(str(dovecot.socket))
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=scaled(20)) as smtp:
        smtp.starttls(context=context(pki))
        smtp.ehlo()
        assert smtp.esmtp_features["auth"].split() == [
            "PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
        smtp.user, smtp.password = ALICE, USERS[ALICE]
        code, _ = smtp.auth(mechanism, getattr(smtp, "auth_" +
                                                mechanism.lower()),
                            initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        # Authenticated: relaying to an outside domain is allowed.
        smtp.sendmail(ALICE, ["friend@far.example"],
                      b"Subject: hi\r\n\r\nfrom the phone\r\n")
    daemon.wait_log(rf"auth: user={ALICE} mechanism={mechanism} from")
    (message,) = daemon.spool_messages()
    assert f"(Authenticated sender: {ALICE})".encode() in message["content"]


def test_implicit_tls_and_the_wrong_password(dovecot, make_daemon, pki):
    daemon = make_daemon(str(dovecot.socket))
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["submissions"],
                          context=context(pki), timeout=scaled(20)) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = ALICE, "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as error:
            smtp.auth("PLAIN", smtp.auth_plain)
        assert error.value.smtp_code == 535
        smtp.user, smtp.password = "bob@example.org", USERS["bob@example.org"]
        assert smtp.auth("PLAIN", smtp.auth_plain)[0] == 235
    daemon.wait_log(r"auth failed: invalid credentials mechanism=PLAIN")
    daemon.wait_log(r"auth: user=bob@example\.org mechanism=PLAIN")


def test_without_tls_only_mechanisms_that_hide_the_password(dovecot,
                                                            make_daemon):
    daemon = make_daemon(str(dovecot.socket))
    with daemon.connect("submission") as client:
        assert auth_keywords(client.ehlo()) == ["CRAM-MD5", "SCRAM-SHA-256"]
        reply = client.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0x"))
        assert (reply.code, reply.enhanced) == (538, "5.7.11")
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"],
                      timeout=scaled(20)) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = ALICE, USERS[ALICE]
        assert smtp.auth("CRAM-MD5", smtp.auth_cram_md5)[0] == 235
    daemon.wait_log(rf"auth: user={ALICE} mechanism=CRAM-MD5")


def scram_sha256(client: harness.SMTPRaw, user: str, password: str):
    """SCRAM-SHA-256 (RFC 7677) by hand: three round trips, the last one
    carrying Dovecot's server signature, which is checked."""
    nonce = b64(os.urandom(18))
    first_bare = f"n={user},r={nonce}"
    reply = client.cmd("AUTH SCRAM-SHA-256 " + b64("n,," + first_bare))
    assert reply.code == 334, reply
    server_first = base64.b64decode(reply.text).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    assert fields["r"].startswith(nonce)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r={fields['r']}"
    message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), message,
                            "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    reply = client.cmd(b64(f"{without_proof},p={b64(proof)}"))
    assert reply.code == 334, reply
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    expected = "v=" + b64(hmac.digest(server_key, message, "sha256"))
    assert base64.b64decode(reply.text).decode() == expected
    return client.cmd("")


def test_scram_sha256_a_mechanism_dovecot_offers(dovecot, make_daemon):
    daemon = make_daemon(str(dovecot.socket))
    with daemon.connect("submission") as client:
        client.ehlo()
        reply = scram_sha256(client, ALICE, USERS[ALICE])
        assert (reply.code, reply.enhanced) == (235, "2.7.0"), reply
    daemon.wait_log(rf"auth: user={ALICE} mechanism=SCRAM-SHA-256")


def test_mechanisms_key_filters_and_orders(dovecot, make_daemon, pki):
    daemon = make_daemon(str(dovecot.socket), mechanisms="LOGIN; PLAIN")
    with tls_client(daemon, pki) as client:
        assert auth_keywords(client.ehlo()) == ["LOGIN", "PLAIN"]
        reply = client.cmd("AUTH CRAM-MD5")
        assert reply.code == 504, reply


def test_inet_socket(dovecot, make_daemon, pki):
    daemon = make_daemon(f"inet:127.0.0.1:{dovecot.port}")
    with tls_client(daemon, pki) as client:
        client.ehlo()
        reply = client.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{USERS[ALICE]}"))
        assert reply.code == 235, reply


def test_login_exchange_and_client_leaving_mid_exchange(dovecot, make_daemon,
                                                        pki):
    daemon = make_daemon(str(dovecot.socket))
    with tls_client(daemon, pki) as client:
        client.ehlo()
        assert client.cmd("AUTH LOGIN").code == 334
        assert client.cmd(b64(ALICE)).code == 334
    # Dovecot is told to forget the exchange; the next session logs in.
    with tls_client(daemon, pki) as client:
        client.ehlo()
        assert client.cmd("AUTH LOGIN").code == 334
        assert client.cmd(b64(ALICE)).code == 334
        reply = client.cmd(b64(USERS[ALICE]))
        assert reply.code == 235, reply
        # "*" aborts; a second AUTH after success is refused by the core.
        assert client.cmd("AUTH LOGIN").code == 503


def test_reload_moves_to_another_socket(dovecot, make_daemon, pki):
    """SIGHUP: an exchange in progress finishes on the old connection, new
    sessions use the new socket, and the old client goes with its last
    session."""
    daemon = make_daemon(str(dovecot.socket))
    with tls_client(daemon, pki) as old:
        old.ehlo()
        assert old.cmd("AUTH LOGIN").code == 334
        mark = daemon.log_mark()
        daemon.reload(config={"plugin:auth": {
            "socket": f"inet:127.0.0.1:{dovecot.port}"}}, wait=0)
        daemon.wait_log(r"auth: reloaded: backend dovecot, socket inet:",
                        since=mark)
        daemon.wait_log(r"auth: dovecot: connected to inet:", since=mark)
        assert old.cmd(b64(ALICE)).code == 334
        assert old.cmd(b64(USERS[ALICE])).code == 235
    with tls_client(daemon, pki) as new:
        new.ehlo()
        reply = new.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0{USERS[ALICE]}"))
        assert reply.code == 235, reply


# --- Dovecot away, and peers that break the protocol ----------------------------


def test_dovecot_down_then_up(make_daemon, pki):
    server = Dovecot()
    try:
        daemon = make_daemon(str(server.socket), wait=False)
        daemon.wait_log(r"auth: socket .* does not exist \(yet\)")
        with tls_client(daemon, pki) as client:
            # Before Dovecot ever answered: the configured mechanisms.
            assert auth_keywords(client.ehlo()) == ["PLAIN", "LOGIN"]
            reply = client.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0x"))
            assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
        daemon.wait_log(r"auth: dovecot: .*cannot connect.*454 4\.7\.0")
        server.start()
        time.sleep(1.1)  # one connection attempt a second at most
        with tls_client(daemon, pki) as client:
            client.ehlo()
            daemon.wait_log(r"auth: dovecot: connected to ")
            reply = client.cmd("AUTH PLAIN " +
                               b64(f"\0{ALICE}\0{USERS[ALICE]}"))
            assert reply.code == 235, reply
        # Dovecot stops: 454, and back again after it restarts.
        server.stop()
        with tls_client(daemon, pki) as client:
            client.ehlo()
            reply = client.cmd("AUTH PLAIN " +
                               b64(f"\0{ALICE}\0{USERS[ALICE]}"))
            assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
        server.start()
        time.sleep(1.1)
        with tls_client(daemon, pki) as client:
            client.ehlo()
            daemon.wait_log(r"auth: dovecot: connected to ", timeout=5)
            reply = client.cmd("AUTH PLAIN " +
                               b64(f"\0{ALICE}\0{USERS[ALICE]}"))
            assert reply.code == 235, reply
    finally:
        server.remove()


class FakeAuthServer:
    """A unix socket that answers each connection with `script(conn)`."""

    def __init__(self, directory: Path, script):
        self.path = directory / "fake-auth"
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.script = script
        self.running = True
        self.connections = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections.append(conn)
            try:
                self.script(conn)
            except OSError:
                pass

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self.listener.close()


HANDSHAKE = (b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\n"
             b"COOKIE\t00\nDONE\n")


def after_auth(answer: bytes):
    """A script: the handshake, then `answer` once an AUTH line came."""
    def script(conn):
        conn.sendall(HANDSHAKE)
        received = b""
        while b"\nAUTH\t" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                return
            received += chunk
        conn.sendall(answer)
    return script


@pytest.mark.parametrize("name,script,log", [
    ("not-dovecot", lambda conn: conn.sendall(b"220 an SMTP server\n"),
     r"not Dovecot's authentication protocol version 1"),
    ("garbage-answer", after_auth(b"OK\t1\tuser=\x02evil\n"),
     r"protocol error: user name is not printable UTF-8"),
    ("endless-line", after_auth(b"A" * 20000),
     r"a line longer than 16384 octets"),
    ("silent", lambda conn: conn.sendall(HANDSHAKE),
     r"no answer from .* within 1000 ms"),
])
def test_broken_peers_get_454(make_daemon, pki, tmp_path, name, script, log):
    directory = Path(tempfile.mkdtemp(prefix="pst-fa-", dir="/tmp"))
    fake = FakeAuthServer(directory, script)
    try:
        daemon = make_daemon(str(fake.path), wait=False, timeout="1s")
        with tls_client(daemon, pki) as client:
            client.ehlo()
            started = time.monotonic()
            reply = client.cmd("AUTH PLAIN " + b64(f"\0{ALICE}\0pw"),
                               timeout=scaled(10))
            assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
            assert time.monotonic() - started < scaled(5)
        daemon.wait_log(log)
    finally:
        fake.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- Configuration ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["relative/auth-client", "inet:127.0.0.1",
                                   "inet::12345", "inet:host:99999"])
def test_bad_socket_refuses_start(tmp_path, pki, value):
    config = auth_config(pki, value)
    config["plugins"]["load"] = ["tls", "auth"]
    config["listener:submission"]["address"] = "127.0.0.1:2525"
    del config["listener:submissions"]
    code, out, err = check_config(tmp_path, config)
    assert code != 0
    assert (f'[plugin:auth] socket = "{value}": expected the absolute path '
            "of Dovecot's auth-client socket") in err, err
