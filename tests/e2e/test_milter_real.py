"""plugins/milter against the real milters Debian ships, each started
privately on loopback in a temporary directory by this module:

- rspamd (minimal config: the proxy worker in milter mode with self-scan,
  the test GTUBE patterns, milter_headers): GTUBE is rejected with
  rspamd's reply, the add-header GTUBE gets rspamd's X-Spam header, a
  clean message passes with rspamd's X-Spamd-Result header;
- clamav-milter with clamd and a one-signature database written here (no
  freshclam, no network): EICAR is rejected with the milter's reply, a
  clean message passes with its X-Virus-Scanned header;
- OpenDKIM in signing mode: the message it signs through us verifies with
  dkimpy, with the key given to dkimpy directly (no DNS).

Each peer is skipped when its package is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import BUILD, queue_id, transaction

PLUGIN_PATH = [str(BUILD / "plugins" / "milter")]

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# rspamd's test pattern for the "add header" action.
GTUBE_ADD_HEADER = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class Peer:
    """A peer process with its directory; stopped (SIGTERM, then SIGKILL)
    at the end of the module."""

    def __init__(self, name: str, directory: Path, argv: list[str]):
        self.name = name
        self.directory = directory
        self.log = open(directory / f"{name}.out", "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     cwd=directory, start_new_session=True)

    def wait_port(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + harness.scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited: "
                            f"{(self.directory / f'{self.name}.out').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"{self.name} did not listen on {port}")

    def wait_path(self, path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + harness.scaled(timeout)
        while time.monotonic() < deadline and not path.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited")
            time.sleep(0.1)
        if not path.exists():
            pytest.fail(f"{self.name} did not create {path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def needs(*programs: str):
    missing = [p for p in programs if shutil.which(p) is None
               and not Path(p).exists()]
    return pytest.mark.skipif(bool(missing),
                              reason=f"not installed: {', '.join(missing)}")


def milter_daemon(postiliond, socket_spec: str, **keys) -> harness.Daemon:
    return postiliond(config={
        "plugins": {"path": PLUGIN_PATH, "load": ["milter"]},
        "plugin:milter": {"milters": ["peer"], "timeout": "60s"},
        "plugin:milter:peer": {"socket": socket_spec, "eom_timeout": "30s",
                               "command_timeout": "30s", **keys},
    })


def message(body: str, sender: str = "alice@client.test.example") -> bytes:
    return (f"From: <{sender}>\r\nTo: <bob@example.org>\r\n"
            f"Subject: milter test\r\n"
            f"Message-ID: <{time.time_ns()}@client.test.example>\r\n"
            f"Date: Sun, 06 Dec 2026 06:00:00 +0000\r\n"
            f"\r\n{body}\r\n").encode()


def send(daemon: harness.Daemon, content: bytes,
         sender: str = "alice@client.test.example"):
    with daemon.connect(timeout=60) as client:
        client.ehlo()
        return transaction(client, sender=sender, message=content)


# --- rspamd --------------------------------------------------------------------

RSPAMD_CONF = """
options {{
  pidfile = "{dir}/rspamd.pid";
  dbdir = "{dir}";
  enable_test_patterns = true;
  url_tld = "{dir}/tld.dat";
  dns {{ nameserver = ["127.0.0.1:{dns}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{dir}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 120s;
  count = 1;
  upstream "local" {{ default = yes; self_scan = yes; }}
}}
milter_headers {{
  use = ["x-spamd-result", "x-spam-status"];
  skip_local = false;
  skip_authenticated = false;
}}
modules {{ path = "${{PLUGINSDIR}}"; }}
"""


def start_rspamd(directory: Path) -> tuple[Peer, int]:
    """rspamd with the proxy worker in milter mode on a free port.  A
    short public-suffix list keeps its start at about a second."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tld.dat").write_text("com\norg\nnet\nexample\ntest\n")
    port = harness.free_port()
    conf = directory / "rspamd.conf"
    conf.write_text(RSPAMD_CONF.format(dir=directory, port=port,
                                       dns=harness.loopback_dns_port()))
    # -i: the test runs as root in CI; rspamd refuses root without it.
    peer = Peer("rspamd", directory, ["rspamd", "-f", "-i", "-c", str(conf)])
    peer.wait_port(port)
    return peer, port


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    peer, port = start_rspamd(tmp_path_factory.mktemp("rspamd"))
    yield f"inet:127.0.0.1:{port}"
    peer.stop()


@needs("rspamd")
def test_rspamd_rejects_gtube(postiliond, rspamd):
    daemon = milter_daemon(postiliond, rspamd)
    reply = send(daemon, message(f"Spam!\r\n{GTUBE}"))
    assert reply.code == 554
    assert "Gtube pattern" in reply.last or "spam" in reply.last.lower()
    assert not daemon.spool_messages()


@needs("rspamd")
def test_rspamd_add_header_action(postiliond, rspamd):
    daemon = milter_daemon(postiliond, rspamd)
    qid = queue_id(send(daemon, message(f"Maybe spam\r\n{GTUBE_ADD_HEADER}")))
    fields, _ = harness.split_message(daemon.spool_messages(id=qid)[0]["content"])
    # The add_header action's own header (rspamd's spam_header); a GTUBE
    # result skips the other rules, milter_headers' included.
    assert ("X-Spam", "Yes") in fields


@needs("rspamd")
def test_rspamd_clean_message_passes_with_its_headers(postiliond, rspamd):
    daemon = milter_daemon(postiliond, rspamd)
    qid = queue_id(send(daemon, message("Hello, a perfectly normal letter.")))
    fields, body = harness.split_message(
        daemon.spool_messages(id=qid)[0]["content"])
    values = dict(fields)
    assert values["X-Spamd-Result"].startswith("default: False")
    assert values["X-Spam-Status"].startswith("No")
    assert body == b"Hello, a perfectly normal letter.\r\n"


# --- clamav-milter -------------------------------------------------------------


def clamav_signature() -> str:
    """An .ndb line matching the EICAR string anywhere."""
    return f"Eicar-Test-Signature:0:*:{EICAR.encode().hex()}\n"


@pytest.fixture(scope="module")
def clamav(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clamav")
    (directory / "db").mkdir()
    (directory / "db" / "test.ndb").write_text(clamav_signature())
    clamd_socket = directory / "clamd.sock"
    (directory / "clamd.conf").write_text(
        f"LocalSocket {clamd_socket}\nDatabaseDirectory {directory}/db\n"
        f"Foreground yes\nLogFile {directory}/clamd.log\n"
        f"PidFile {directory}/clamd.pid\nTemporaryDirectory {directory}\n")
    clamd = Peer("clamd", directory,
                 ["clamd", "-c", str(directory / "clamd.conf")])
    clamd.wait_path(clamd_socket)
    port = harness.free_port()
    (directory / "clamav-milter.conf").write_text(
        f"MilterSocket inet:{port}@127.0.0.1\n"
        f"ClamdSocket unix:{clamd_socket}\nForeground yes\n"
        f"PidFile {directory}/milter.pid\nLogFile {directory}/milter.log\n"
        f"OnInfected Reject\nRejectMsg Virus found: %v\n"
        f"AddHeader Replace\nTemporaryDirectory {directory}\n")
    milter = Peer("clamav-milter", directory,
                  ["clamav-milter", "-c",
                   str(directory / "clamav-milter.conf")])
    try:
        milter.wait_port(port)
        yield f"inet:127.0.0.1:{port}"
    finally:
        milter.stop()
        clamd.stop()


@needs("clamd", "clamav-milter")
def test_clamav_rejects_eicar_with_its_reply(postiliond, clamav):
    daemon = milter_daemon(postiliond, clamav)
    reply = send(daemon, message(f"Attached:\r\n{EICAR}"))
    assert reply.code == 550
    assert "Virus found: Eicar-Test-Signature" in reply.last
    assert not daemon.spool_messages()


@needs("clamd", "clamav-milter")
def test_clamav_clean_message_passes(postiliond, clamav):
    daemon = milter_daemon(postiliond, clamav)
    qid = queue_id(send(daemon, message("No virus here.")))
    fields, _ = harness.split_message(daemon.spool_messages(id=qid)[0]["content"])
    assert "X-Virus-Scanned" in dict(fields)
    assert dict(fields)["X-Virus-Status"] == "Clean"


# --- OpenDKIM -------------------------------------------------------------------


@pytest.fixture(scope="module")
def opendkim(tmp_path_factory):
    directory = tmp_path_factory.mktemp("opendkim")
    subprocess.run(["opendkim-genkey", "-b", "1024", "-d", "example.org",
                    "-s", "test", "-D", str(directory)], check=True,
                   timeout=60)
    port = harness.free_port()
    (directory / "opendkim.conf").write_text(
        f"Syslog no\nMode s\nDomain example.org\nSelector test\n"
        f"KeyFile {directory}/test.private\nSocket inet:{port}@127.0.0.1\n"
        f"Background no\nCanonicalization relaxed/simple\n"
        f"RequireSafeKeys false\nPidFile {directory}/opendkim.pid\n")
    peer = Peer("opendkim", directory,
                ["opendkim", "-f", "-x", str(directory / "opendkim.conf")])
    try:
        peer.wait_port(port)
        record = (directory / "test.txt").read_text()
        public = "".join(part for part in record.split('"')[1::2])
        yield f"inet:127.0.0.1:{port}", public.encode()
    finally:
        peer.stop()


@needs("opendkim", "opendkim-genkey")
def test_opendkim_signs_and_dkimpy_verifies(postiliond, opendkim):
    dkim = pytest.importorskip("dkim")
    socket_spec, record = opendkim
    daemon = milter_daemon(postiliond, socket_spec)
    content = message("Signed through Postilion.\r\n.Leading dot line.",
                      sender="alice@example.org").replace(
        b"From: <alice@client.test.example>", b"From: <alice@example.org>")
    qid = queue_id(send(daemon, content, sender="alice@example.org"))
    stored = daemon.spool_messages(id=qid)[0]["content"]
    assert b"DKIM-Signature:" in stored
    assert dkim.verify(stored, dnsfunc=lambda name, timeout=5: record)
