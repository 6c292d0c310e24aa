"""The transport service's TLS client (what the outbound SMTP client uses),
driven by BUILD/plugins/tls/pst-tls-probe against postiliond's own
listeners and against openssl s_server: opportunistic and verified
handshakes, SNI, the verdict for the logs, and a name mismatch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import BUILD, scaled
from test_tls import DEFAULT_NAME, pki, tls_config  # noqa: F401 (fixture)

PROBE = BUILD / "plugins" / "tls" / "pst-tls-probe"


def probe_config(tmp_path: Path, pki, ca_file: bool = True) -> Path:
    cert, key = pki.default
    groups = harness.merge_config(harness.default_config(tmp_path / "spool"), {
        "listener:unused": {"address": "127.0.0.1:1"},
        "plugins": {"path": str(BUILD / "plugins" / "tls"), "load": ["tls"]},
        "plugin:tls": {"certificate": str(cert), "private_key": str(key),
                       **({"ca_file": str(pki.ca_cert)} if ca_file else {})},
    })
    path = tmp_path / "probe.conf"
    path.write_text(harness.render_config(groups))
    return path


def probe(config: Path, port: int, name: str, verify: str,
          smtp: bool = False) -> tuple[int, dict]:
    args = [str(PROBE), str(config), "127.0.0.1", str(port), name, verify]
    if smtp:
        args.append("smtp")
    proc = subprocess.run(args, capture_output=True, timeout=scaled(30))
    values = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        values[key] = value
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.returncode, values


@pytest.fixture
def server(postiliond, pki):
    listeners = {"smtp": {"mode": "starttls"}, "smtps": {"mode": "tls"}}
    return postiliond(config=tls_config(pki, listeners),
                      listeners=list(listeners))


def test_client_starttls_verified(server, pki, tmp_path):
    code, out = probe(probe_config(tmp_path, pki), server.ports["smtp"],
                      "example.org", "peer", smtp=True)
    assert code == 0, out
    assert out["version"] == "TLS1.3"
    assert out["cipher"].startswith("TLS_") and int(out["bits"]) >= 128
    assert out["verified"] == "yes"
    assert out["server_name"] == "example.org"
    assert out["reply"] == "250 CHUNKING"
    assert out["quit"].startswith("221")
    server.wait_log(r"TLS established .* sni=example\.org")


def test_client_implicit_tls_reads_banner(server, pki, tmp_path):
    code, out = probe(probe_config(tmp_path, pki), server.ports["smtps"],
                      DEFAULT_NAME, "peer")
    assert code == 0, out
    assert out["reply"].startswith("220 " + harness.HOSTNAME)


def test_client_verify_peer_name_mismatch_fails(server, pki, tmp_path):
    code, out = probe(probe_config(tmp_path, pki), server.ports["smtps"],
                      "wrong.example.com", "peer")
    assert code == 1
    assert "not trusted" in out["error"]
    assert "does not match" in out["error"]


def test_client_opportunistic_records_verdict(server, pki, tmp_path):
    # No ca_file: the system store does not know the test CA.
    code, out = probe(probe_config(tmp_path, pki, ca_file=False),
                      server.ports["smtps"], DEFAULT_NAME, "none")
    assert code == 0, out
    assert out["verified"] == "no"
    assert "NOT trusted" in out["verify_message"]
    assert out["reply"].startswith("220 ")


@pytest.fixture
def s_server(pki, tmp_path):
    """openssl s_server on a free port with the example.net certificate,
    answering one line of text."""
    port = harness.free_port()
    cert, key = pki.net
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
         str(cert), "-key", str(key), "-naccept", "1", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    deadline = time.monotonic() + scaled(10)
    while port not in harness.listening_ports():
        assert time.monotonic() < deadline, "s_server did not start"
        time.sleep(0.05)
    yield proc, port
    proc.kill()
    proc.wait(timeout=10)


def test_client_against_openssl_s_server(s_server, pki, tmp_path):
    proc, port = s_server
    proc.stdin.write(b"220 hello from s_server\r\n")
    proc.stdin.flush()
    code, out = probe(probe_config(tmp_path, pki), port, "example.net",
                      "peer")
    assert code == 0, out
    assert out["verified"] == "yes"
    assert out["reply"] == "220 hello from s_server"
    assert out["version"] in ("TLS1.3", "TLS1.2")
