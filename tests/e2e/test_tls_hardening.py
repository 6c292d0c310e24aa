"""plugins/tls against what a TLS scanner probes (issue 17, item 5): a
client-initiated renegotiation is refused with a no_renegotiation alert on
STARTTLS and implicit-TLS listeners alike (openssl s_client's `R` command,
gnutls-cli --rehandshake), the default server priority has no CBC suite
while TLS 1.2 AEAD suites and TLS 1.3 work (test_tls.py's
test_old_protocols_allowed_when_configured shows that enabling TLS 1.1
keeps the CBC suites it needs), and testssl.sh (Debian's
package, when installed) reports neither renegotiation nor LUCKY13.  Also
the start line that names the default certificate (item 9).

The daemon, certificates and listeners come from test_tls.py's fixtures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from harness import scaled
from test_tls import DEFAULT_NAME, pki, read_until, tls_daemon  # noqa: F401

LISTENERS = [("smtp", True), ("smtps", False)]


def s_client(port: int, starttls: bool, *extra: str) -> subprocess.Popen:
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
            "-servername", DEFAULT_NAME, *extra]
    if starttls:
        args[2:2] = ["-starttls", "smtp"]
    return subprocess.Popen(args, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, timeout: float,
           data: bytes | None = None) -> bytes:
    """What proc prints until it exits (killed past `timeout`), after
    `data` on its standard input (then closed)."""
    try:
        out, _ = proc.communicate(data, timeout=scaled(timeout))
        return out
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the client hung: {out.decode(errors='replace')}")


@pytest.mark.parametrize("listener,starttls", LISTENERS)
def test_openssl_renegotiation_is_refused(tls_daemon, listener, starttls):
    daemon = tls_daemon()
    proc = s_client(daemon.ports[listener], starttls, "-tls1_2")
    text = read_until(proc, b"220 " if not starttls else b"250 ", 20)
    if not starttls:
        assert b"220 " in text, text
    else:
        assert b"Verify return code" in text, text
    # `R` (s_client without -ign_eof) asks for a renegotiation: the server
    # answers no_renegotiation and OpenSSL gives up at once, no hang.
    proc.stdin.write(b"R\n")
    proc.stdin.flush()
    started = time.monotonic()
    out = text + finish(proc, 15)
    assert b"RENEGOTIATING" in out, out
    assert re.search(rb"no.renegotiation", out, re.I), out
    assert time.monotonic() - started < scaled(10)
    # The daemon keeps serving.
    with daemon.connect("smtp") as client:
        assert client.ehlo().code == 250


def test_gnutls_rehandshake_is_refused(tls_daemon, pki):
    """gnutls-cli --rehandshake retries after each warning alert: it gets
    no_renegotiation every time, and the connection is closed after the
    fourth try instead of looping.  STARTTLS only: gnutls-cli renegotiates
    right after the handshake, and on the implicit-TLS listener our banner
    may cross its new hello, which makes the client give up by itself (the
    openssl test above covers that listener after the banner)."""
    daemon = tls_daemon()
    listener, starttls = "smtp", True
    args = ["gnutls-cli", "--rehandshake", "--priority",
            "NORMAL:-VERS-ALL:+VERS-TLS1.2", "--x509cafile",
            str(pki.ca_cert), "--sni-hostname", DEFAULT_NAME,
            "--verify-hostname", DEFAULT_NAME, "-p",
            str(daemon.ports[listener]), "127.0.0.1"]
    if starttls:
        args.insert(1, "--starttls-proto=smtp")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = read_until(proc, b"ReHandshake has failed", 20)
    assert b"ReHandshake has failed" in text, text
    text += finish(proc, 10)  # gnutls-cli leaves by itself
    assert b"No renegotiation is allowed" in text, text
    assert b"Rehandshake was completed" not in text, text
    with daemon.connect("smtp") as client:
        assert client.ehlo().code == 250


@pytest.mark.parametrize("cipher", ["AES128-SHA", "ECDHE-ECDSA-AES128-SHA",
                                    "ECDHE-ECDSA-AES256-SHA384"])
def test_cbc_suites_are_not_offered(tls_daemon, cipher):
    daemon = tls_daemon()
    proc = s_client(daemon.ports["smtps"], False, "-tls1_2", "-cipher",
                    cipher)
    out = finish(proc, 15, b"")
    assert b"Cipher is (NONE)" in out, out
    assert b"Cipher is " + cipher.encode() not in out


@pytest.mark.parametrize("args,cipher", [
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
     b"ECDHE-ECDSA-AES256-GCM-SHA384"),
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
     b"ECDHE-ECDSA-CHACHA20-POLY1305"),
    (["-tls1_3"], b"TLS_AES_256_GCM_SHA384"),
])
def test_aead_suites_and_tls13_work(tls_daemon, args, cipher):
    daemon = tls_daemon()
    proc = s_client(daemon.ports["smtps"], False, "-ign_eof", *args)
    out = read_until(proc, b"220 ", 15)
    out += finish(proc, 15, b"QUIT\r\n")
    assert b"Cipher is " + cipher in out, out
    assert b"221 " in out, out


def test_start_line_names_the_default_certificate(tls_daemon, pki):
    daemon = tls_daemon()
    line = daemon.wait_log(r"tls: loaded \d+ certificates.*").group(0)
    assert f"default {DEFAULT_NAME};" in line, line
    assert re.search(r"by SNI .*example\.net", line), line
    assert "default example.net" not in line


TESTSSL = shutil.which("testssl.sh") or shutil.which("testssl")


@pytest.mark.skipif(TESTSSL is None,
                    reason="testssl.sh is not installed "
                           "(scripts/setup-debian.sh installs it)")
def test_testssl_renegotiation_and_lucky13(tls_daemon, tmp_path):
    """STARTTLS, where the hang was seen (about 15 s: the implicit-TLS
    listener runs the same code and the clients above cover it)."""
    daemon = tls_daemon()
    listener, starttls = "smtp", True
    report = tmp_path / "testssl.json"
    args = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off",
            "--sneaky", "--fast", "-R", "-L", "--jsonfile", str(report),
            f"127.0.0.1:{daemon.ports[listener]}"]
    if starttls:
        args[1:1] = ["--starttls", "smtp"]
    proc = subprocess.run(args, capture_output=True, timeout=scaled(120),
                          stdin=subprocess.DEVNULL)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    findings = {item["id"]: item for item in json.loads(report.read_text())}
    for key in ("secure_renego", "secure_client_renego", "LUCKY13"):
        assert key in findings, text
        assert findings[key]["severity"] in ("OK", "INFO"), (key, text)
    assert "VULNERABLE" not in text, text
