"""plugins/tls end to end: STARTTLS, implicit TLS, SNI certificates, the
core's STARTTLS framing, timeouts and reload, against real TLS clients
(Python's ssl/smtplib, openssl s_client, gnutls-cli).

Every certificate is made by the test (tlscerts.TestPKI, certtool): a CA,
mail.example.org (ECDSA, the default), example.net (RSA, by SNI through
certificate_directory) and example.org (ECDSA, by SNI through a
[plugin:tls:example.org] group).
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import BUILD, scaled
from tlscerts import TestPKI

TLS_PATH = [str(BUILD / "plugins" / "tls")]
DEFAULT_NAME = "mail.example.org"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    pki = TestPKI(directory)
    pki.default = pki.issue(DEFAULT_NAME)
    pki.org = pki.issue("example.org", ["example.org", "*.example.org"],
                        basename="org")
    sni_dir = directory / "sni"
    pki.net = pki.issue("example.net", key_type="rsa", directory=sni_dir)
    pki.sni_dir = sni_dir
    pki.other = pki.issue("renewed.example.org", basename="renewed")
    pki.expired = pki.issue("old.example.org", expired=True, basename="old")
    return pki


def tls_config(pki, listeners: dict, tls: dict | None = None,
               sni: bool = True) -> dict:
    cert, key = pki.default
    config = {
        "plugins": {"path": TLS_PATH, "load": ["tls"]},
        "plugin:tls": {"certificate": str(cert), "private_key": str(key),
                       **(tls or {})},
    }
    if sni:
        config["plugin:tls"]["certificate_directory"] = str(pki.sni_dir)
        config["plugin:tls:example.org"] = {
            "certificate": str(pki.org[0]), "private_key": str(pki.org[1])}
    for name, keys in listeners.items():
        config[f"listener:{name}"] = keys
    return config


@pytest.fixture
def tls_daemon(postiliond, pki):
    """Factory: a daemon with tls.so and listeners smtp (starttls),
    submission (starttls, require_tls) and smtps (tls)."""

    def make(tls: dict | None = None, sni: bool = True, **kwargs):
        listeners = {"smtp": {"mode": "starttls"},
                     "submission": {"mode": "starttls", "require_tls": True},
                     "smtps": {"mode": "tls"}}
        return postiliond(config=tls_config(pki, listeners, tls, sni),
                          listeners=list(listeners), **kwargs)

    return make


def client_context(pki, verify: bool = True) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        context.load_verify_locations(cafile=str(pki.ca_cert))
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def starttls(client: harness.SMTPRaw, pki, name: str | None = DEFAULT_NAME,
             verify: bool = True) -> ssl.SSLSocket:
    """STARTTLS on a raw client (EHLO already done); the client's socket
    becomes the TLS one."""
    reply = client.cmd("STARTTLS")
    assert reply.code == 220, reply
    assert client.buffer == b""
    context = client_context(pki, verify)
    if not verify or name is None:
        context.check_hostname = False
    client.sock = context.wrap_socket(client.sock, server_hostname=name)
    return client.sock


def subject_cn(sock: ssl.SSLSocket) -> str:
    der = sock.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout",
                           "-subject"], input=der, capture_output=True,
                          check=True).stdout.decode()
    return re.search(r"CN\s*=\s*([^,\n]+)", text).group(1).strip()


MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\n"
           b"Subject: over TLS\r\n\r\nSecret body.\r\n")


# --- STARTTLS ---------------------------------------------------------------


def test_starttls_full_message_with_smtplib(tls_daemon, pki):
    daemon = tls_daemon()
    with daemon.smtp("smtp") as smtp:
        code, text = smtp.ehlo()
        assert code == 250 and smtp.has_extn("starttls")
        assert b"STARTTLS" in text
        smtp._host = DEFAULT_NAME  # the name smtplib verifies
        code, _ = smtp.starttls(context=client_context(pki))
        assert code == 220
        smtp.ehlo()
        assert not smtp.has_extn("starttls")  # not offered inside TLS
        smtp.sendmail("a@example.com", ["b@example.org"], MESSAGE)
    messages = daemon.spool_messages()
    assert len(messages) == 1
    content = messages[0]["content"]
    assert b"Secret body." in content
    header = content.split(b"\r\n\r\n", 1)[0].decode()
    assert re.search(r"with ESMTPS id", header), header
    assert re.search(r"\(using TLS1\.3 with cipher TLS_[A-Z0-9_]+ "
                     r"\(\d+ bits\)\)", header), header
    daemon.wait_log(r"TLS established from \[127\.0\.0\.1\]:\d+: TLS1\.3 "
                    r"with cipher TLS_\w+ \(\d+ bits\) sni=mail\.example\.org")


def test_large_pipelined_message_over_tls(tls_daemon, pki):
    """A pipelined group and a 2 MB message through TLS records: partial
    reads, decrypted input held by TLS, and partial writes."""
    daemon = tls_daemon()
    with daemon.connect("smtp", timeout=20) as client:
        client.ehlo()
        starttls(client, pki)
        client.ehlo()
        line = b"x" * 998 + b"\r\n"
        body = line * 2100
        client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>"
                    b"\r\nDATA\r\n")
        replies = client.read_replies(3)
        assert [r.code for r in replies] == [250, 250, 354], replies
        client.send(b"Subject: big\r\n\r\n" + body + b".\r\nNOOP\r\n")
        assert client.read_reply(timeout=30).code == 250
        assert client.read_reply().code == 250
        assert client.cmd("QUIT").code == 221
    content = daemon.spool_messages()[0]["content"]
    assert content.endswith(body)


def test_session_resumption(tls_daemon, pki):
    daemon = tls_daemon()
    context = client_context(pki)
    session = None
    for attempt in range(2):
        sock = socket.create_connection(
            ("127.0.0.1", daemon.ports["smtps"]), timeout=scaled(5))
        tls = context.wrap_socket(sock, server_hostname=DEFAULT_NAME,
                                  session=session)
        assert tls.recv(100).startswith(b"220 ")  # TLS 1.3 tickets arrive
        tls.sendall(b"QUIT\r\n")
        tls.recv(100)
        if attempt == 1:
            assert tls.session_reused
        session = tls.session
        tls.close()


def test_starttls_resets_the_session(tls_daemon, pki):
    daemon = tls_daemon()
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        starttls(client, pki)
        # The EHLO and the MAIL from before TLS are forgotten.
        assert client.cmd("MAIL FROM:<a@example.com>").code == 503
        reply = client.ehlo()
        assert reply.code == 250 and "250-STARTTLS" not in reply.lines
        assert client.cmd("RCPT TO:<b@example.org>").code == 503
        reply = client.cmd("STARTTLS")
        assert (reply.code, reply.enhanced) == (503, "5.5.1")
        assert "TLS already active" in reply.text
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        assert client.cmd("QUIT").code == 221


def test_client_leaving_inside_tls_is_logged(tls_daemon, pki):
    daemon = tls_daemon()
    client = daemon.connect("smtp")
    client.ehlo()
    starttls(client, pki)
    client.ehlo()
    assert client.cmd("MAIL FROM:<a@example.com>").code == 250
    client.sock.close()  # no close_notify, no QUIT
    daemon.wait_log(r"lost connection from \[127\.0\.0\.1\]:\d+ in state "
                    r"mail")


def test_starttls_refusals(tls_daemon, pki):
    daemon = tls_daemon()
    with daemon.connect("smtp") as client:
        reply = client.cmd("STARTTLS")
        assert (reply.code, reply.enhanced) == (503, "5.5.1")  # before EHLO
        client.ehlo()
        reply = client.cmd("STARTTLS now")
        assert (reply.code, reply.enhanced) == (501, "5.5.4")
        assert client.cmd("NOOP").code == 250  # still plaintext, still fine
        assert client.cmd("HELP").last.endswith(" HELP STARTTLS")


def test_plain_listener_does_not_offer_starttls(postiliond, pki):
    config = tls_config(pki, {"smtp": {}}, sni=False)
    daemon = postiliond(config=config)
    with daemon.connect() as client:
        assert "250-STARTTLS" not in client.ehlo().lines
        assert "STARTTLS" not in client.cmd("HELP").last
        reply = client.cmd("STARTTLS")
        assert (reply.code, reply.enhanced) == (502, "5.5.1")


def test_no_tls_plugin_no_starttls(postiliond):
    daemon = postiliond(config={"listener:smtp": {"mode": "starttls"}})
    with daemon.connect() as client:
        assert "250-STARTTLS" not in client.ehlo().lines
        assert client.cmd("STARTTLS").code == 502


def test_injection_after_starttls_is_discarded(tls_daemon, pki):
    """CVE-2011-0411: commands pipelined with STARTTLS must not run inside
    TLS."""
    daemon = tls_daemon()
    with daemon.connect("smtp") as client:
        client.ehlo()
        client.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.com>\r\n")
        reply = client.read_reply()
        assert reply.code == 220
        client.expect_silence(0.3)
        assert client.buffer == b""
        client.sock = client_context(pki).wrap_socket(
            client.sock, server_hostname=DEFAULT_NAME)
        # Had RSET or MAIL run, their replies would come first.
        reply = client.ehlo()
        assert reply.code == 250
        assert reply.lines[0] == f"250-{harness.HOSTNAME}", reply
        client.expect_silence(0.3)
        assert client.cmd("RCPT TO:<b@example.org>").code == 503
        assert client.cmd("QUIT").code == 221
    line = daemon.wait_log(r"disconnect from .* commands=\d+")
    assert "rset=" not in line.group(0) and "mail=" not in line.group(0)


def test_require_tls(tls_daemon, pki):
    daemon = tls_daemon()
    with daemon.connect("submission") as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<a@example.com>")
        assert (reply.code, reply.enhanced) == (530, "5.7.0")
        assert reply.last == "530 5.7.0 Must issue a STARTTLS command first"
        starttls(client, pki)
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250


# --- Implicit TLS -------------------------------------------------------------


def test_implicit_tls_with_smtplib(tls_daemon, pki):
    daemon = tls_daemon()
    with smtplib.SMTP_SSL("127.0.0.1", daemon.ports["smtps"],
                          local_hostname=harness.CLIENT_NAME,
                          context=client_context(pki, verify=False),
                          timeout=scaled(10)) as smtp:
        code, text = smtp.ehlo()
        assert code == 250 and not smtp.has_extn("starttls")
        smtp.sendmail("a@example.com", ["b@example.org"], MESSAGE)
    content = daemon.spool_messages()[0]["content"]
    assert b"with ESMTPS id" in content


def test_implicit_tls_banner_comes_after_handshake(tls_daemon, pki):
    daemon = tls_daemon()
    sock = socket.create_connection(("127.0.0.1", daemon.ports["smtps"]),
                                    timeout=scaled(5))
    # Nothing in plaintext: the server waits for a ClientHello.
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(10)
    sock.settimeout(scaled(5))
    tls = client_context(pki).wrap_socket(sock, server_hostname=DEFAULT_NAME)
    assert tls.recv(100).startswith(b"220 " + harness.HOSTNAME.encode())
    assert subject_cn(tls) == DEFAULT_NAME
    tls.close()


# --- SNI ----------------------------------------------------------------------


@pytest.mark.parametrize("sni,expected", [
    ("example.org", "example.org"),         # [plugin:tls:example.org]
    ("www.example.org", "example.org"),     # its *.example.org DNS name
    ("example.net", "example.net"),         # certificate_directory
    ("unknown.example.com", DEFAULT_NAME),  # unknown name: the default
    (None, DEFAULT_NAME),                   # no SNI: the default
])
def test_sni_selects_certificate(tls_daemon, pki, sni, expected):
    daemon = tls_daemon()
    with daemon.connect("smtp") as client:
        client.ehlo()
        sock = starttls(client, pki, name=sni, verify=False)
        assert subject_cn(sock) == expected
        if sni is not None and expected != DEFAULT_NAME:
            daemon.wait_log(rf"sni={re.escape(sni)}$")


def test_sni_with_openssl_s_client(tls_daemon, pki):
    daemon = tls_daemon()
    proc = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         f"127.0.0.1:{daemon.ports['smtp']}", "-servername", "example.net",
         "-CAfile", str(pki.ca_cert), "-verify_return_error", "-brief",
         "-ign_eof"],
        input=b"QUIT\r\n", capture_output=True, timeout=scaled(20))
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    assert "Verification: OK" in output, output
    assert re.search(r"Peer certificate: CN\s*=\s*example\.net", output), output
    assert "221" in output


def read_until(proc, pattern: bytes, timeout: float) -> bytes:
    """Reads proc's stdout until `pattern` shows up (or EOF / deadline)."""
    data = b""
    deadline = time.monotonic() + scaled(timeout)
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while pattern not in data and time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            data += chunk
    return data


def test_gnutls_cli_starttls_full_message(tls_daemon, pki):
    daemon = tls_daemon()
    proc = subprocess.Popen(
        ["gnutls-cli", "--starttls-proto=smtp", "--x509cafile",
         str(pki.ca_cert), "--sni-hostname", "example.org",
         "--verify-hostname", "example.org", "-p",
         str(daemon.ports["smtp"]), "127.0.0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        text = read_until(proc, b"- Handshake was completed", 20)
        assert b"- Handshake was completed" in text, text
        proc.stdin.write(b"EHLO gnutls.test\r\nMAIL FROM:<a@example.com>\r\n"
                         b"RCPT TO:<b@example.org>\r\nDATA\r\n" + MESSAGE +
                         b".\r\n")
        proc.stdin.flush()
        text = read_until(proc, b"queued as", 20)
        assert b"250 2.0.0 Ok: queued as" in text, text
        proc.stdin.write(b"QUIT\r\n")
        proc.stdin.close()
        assert b"221" in read_until(proc, b"221", 10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert len(daemon.spool_messages()) == 1


# --- Protocols, timeouts, garbage ---------------------------------------------


def gnutls_cli(port: int, priority: str, pki, starttls: bool = True):
    args = ["gnutls-cli", "--priority", priority, "--x509cafile",
            str(pki.ca_cert), "--no-ca-verification", "-p", str(port),
            "127.0.0.1"]
    if starttls:
        args.insert(1, "--starttls-proto=smtp")
    return subprocess.run(args, input=b"", capture_output=True,
                          timeout=scaled(20))


@pytest.mark.parametrize("version", ["TLS1.0", "TLS1.1"])
def test_old_protocols_refused(tls_daemon, pki, version):
    daemon = tls_daemon()
    proc = gnutls_cli(daemon.ports["smtps"],
                      f"NORMAL:-VERS-ALL:+VERS-{version}", pki,
                      starttls=False)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode != 0 and "Handshake was completed" not in text
    daemon.wait_log(r"TLS handshake failed with \[127\.0\.0\.1\]")
    proc = gnutls_cli(daemon.ports["smtps"],
                      "NORMAL:-VERS-ALL:+VERS-TLS1.2", pki, starttls=False)
    assert b"Handshake was completed" in proc.stdout + proc.stderr


def test_old_protocols_allowed_when_configured(tls_daemon, pki):
    daemon = tls_daemon(tls={"protocols": "TLS1.1;TLS1.2;TLS1.3"})
    proc = gnutls_cli(daemon.ports["smtp"], "NORMAL:-VERS-ALL:+VERS-TLS1.1",
                      pki)
    assert b"Handshake was completed" in proc.stdout + proc.stderr


def test_handshake_timeout(tls_daemon, pki):
    daemon = tls_daemon(tls={"handshake_timeout": "1s"})
    with daemon.connect("smtps", greeting=False) as client:
        start = time.monotonic()
        client.wait_closed(timeout=5)
        assert time.monotonic() - start < scaled(3)
    daemon.wait_log(r"TLS handshake failed with .*timed out after 1000 ms")
    # Silent after STARTTLS too.
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert client.cmd("STARTTLS").code == 220
        client.wait_closed(timeout=5)


def test_garbage_instead_of_client_hello(tls_daemon, pki):
    daemon = tls_daemon()
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert client.cmd("STARTTLS").code == 220
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        data = client.wait_closed(timeout=5)
        assert b"250" not in data and b"500" not in data
    daemon.wait_log(r"TLS handshake failed with \[127\.0\.0\.1\]:\d+: ")
    with daemon.connect("smtps", greeting=False) as client:
        client.send(b"EHLO garbage\r\n")
        client.wait_closed(timeout=5)


# --- Reload -------------------------------------------------------------------


def test_reload_new_certificate_keeps_connections(tls_daemon, pki, tmp_path):
    live_cert = tmp_path / "live.pem"
    live_key = tmp_path / "live.key"
    shutil.copy(pki.default[0], live_cert)
    shutil.copy(pki.default[1], live_key)
    daemon = tls_daemon(tls={"certificate": str(live_cert),
                             "private_key": str(live_key)}, sni=False)
    old = daemon.connect("smtp")
    old.ehlo()
    assert subject_cn(starttls(old, pki, verify=False)) == DEFAULT_NAME
    old.ehlo()

    # Let's Encrypt renews in place: the same paths, new files.
    shutil.copy(pki.other[0], live_cert)
    shutil.copy(pki.other[1], live_key)
    mark = daemon.log_mark()
    daemon.reload(wait=0)
    daemon.wait_log(r"tls: reloaded 1 certificate", since=mark)
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert subject_cn(starttls(client, pki, name=None, verify=False)) \
            == "renewed.example.org"
    # The connection from before the reload goes on.
    assert old.cmd("MAIL FROM:<a@example.com>").code == 250
    assert old.cmd("QUIT").code == 221
    old.close()

    # A renewal whose key does not match is refused; the old stays.
    shutil.copy(pki.default[1], live_key)
    mark = daemon.log_mark()
    daemon.reload(wait=0)
    daemon.wait_log(r"reload refused.*private_key = .*live\.key does not "
                    r"match", since=mark)
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert subject_cn(starttls(client, pki, name=None, verify=False)) \
            == "renewed.example.org"


def test_reload_without_the_plugin_is_refused(tls_daemon, pki):
    daemon = tls_daemon()
    mark = daemon.log_mark()
    daemon.reload(config={"plugins": {"load": []}}, wait=0)
    daemon.wait_log(r"reload refused.*\[listener:submission\] "
                    r"require_tls = true needs TLS", since=mark)
    with daemon.connect("smtp") as client:
        assert "250-STARTTLS" in client.ehlo().lines


# --- What plugins see --------------------------------------------------------


def test_plugin_reads_tls_state(postiliond, pki):
    """A policy plugin (tests/plugins/testtls) reads version, cipher, SNI
    and the client's certificate, and denies unencrypted mail."""
    config = tls_config(pki, {"smtp": {"mode": "starttls"}},
                        tls={"request_client_certificate": True})
    config["plugins"] = {"path": TLS_PATH + [str(harness.PLUGIN_DIR)],
                         "load": ["tls", "testtls"]}
    config["plugin:testtls"] = {"deny_unencrypted": True}
    daemon = postiliond(config=config)
    with daemon.connect() as client:
        client.ehlo()
        reply = client.cmd("MAIL FROM:<a@example.com>")
        assert reply.last == "530 5.7.0 Encryption required"
        daemon.wait_log(r"testtls: tls=no version=- cipher=- bits=0 sni=- "
                        r"peer_certificate=0 octets")
        reply = client.cmd("STARTTLS")
        context = client_context(pki)
        context.load_cert_chain(str(pki.net[0]), str(pki.net[1]))
        client.sock = context.wrap_socket(client.sock,
                                          server_hostname="example.org")
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@example.com>").code == 250
        assert client.cmd("QUIT").code == 221
    match = daemon.wait_log(r"testtls: tls=yes version=TLS1\.3 "
                            r"cipher=TLS_\w+ bits=(\d+) sni=example\.org "
                            r"peer_certificate=(\d+) octets")
    assert int(match.group(1)) >= 128 and int(match.group(2)) > 300
    daemon.wait_log(r"testtls: disconnect version=TLS1\.3")


# --- Start-up checks ------------------------------------------------------------


def check_config(tmp_path, config: dict):
    groups = harness.merge_config(
        harness.default_config(tmp_path / "spool"), config)
    path = tmp_path / "check.conf"
    path.write_text(harness.render_config(groups))
    return harness.run_cli(["--check", "-c", str(path)])


@pytest.mark.parametrize("case", ["mismatch", "expired", "unreadable",
                                  "missing", "bad-protocol"])
def test_bad_certificates_refuse_start(tmp_path, pki, case):
    cert, key = pki.default
    tls = {"certificate": str(cert), "private_key": str(key)}
    expect = None
    if case == "mismatch":
        tls["private_key"] = str(pki.net[1])
        expect = rf"private_key = {re.escape(str(pki.net[1]))} does not match"
    elif case == "expired":
        tls["certificate"], tls["private_key"] = map(str, pki.expired)
        expect = (rf"certificate = {re.escape(str(pki.expired[0]))}: the "
                  r"certificate expired on 2020-02-01")
    elif case == "unreadable":
        tls["private_key"] = str(tmp_path / "nothere.key")
        expect = r"private_key = .*nothere\.key: cannot read the file"
    elif case == "missing":
        del tls["certificate"]
        expect = r"certificate and private_key are required"
    elif case == "bad-protocol":
        tls["protocols"] = "SSL3"
        expect = r"protocols: \"SSL3\" is not a protocol"
    config = {"listener:smtp": {"address": "127.0.0.1:2525",
                                "mode": "starttls"},
              "plugins": {"path": TLS_PATH, "load": ["tls"]},
              "plugin:tls": tls}
    code, out, err = check_config(tmp_path, config)
    assert code != 0
    assert re.search(expect, err), err


def test_tls_listener_needs_the_plugin(tmp_path):
    code, out, err = check_config(tmp_path, {
        "listener:smtps": {"address": "127.0.0.1:4650", "mode": "tls"}})
    assert code != 0
    assert "[listener:smtps] mode = tls needs TLS" in err
    assert "add tls to [plugins] load" in err
