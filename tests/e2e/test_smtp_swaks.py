"""swaks, the SMTP test client admins use, against the real daemon: plain
and pipelined transactions, attachments, refusals and their exit codes
(swaks(1): 24 no RCPT accepted, 26 message refused after DATA)."""

import os
import shutil
import subprocess

import pytest

from harness import CLIENT_NAME, HOSTNAME, scaled

if shutil.which("swaks") is None:
    raise RuntimeError("swaks is not installed: run scripts/setup-debian.sh")


def swaks(daemon, *args, tmp_path=None):
    env = dict(os.environ, HOME=str(tmp_path or daemon.directory))
    proc = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{daemon.port}", "--helo", CLIENT_NAME,
         "--from", "alice@client.test.example", "--timeout", "10", *args],
        capture_output=True, timeout=scaled(30), env=env, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode(errors="replace") + \
        proc.stderr.decode(errors="replace")


def test_swaks_basic(daemon):
    code, out = swaks(daemon, "--to", "bob@example.org")
    assert code == 0, out
    assert f"<-  220 {HOSTNAME} ESMTP Postilion" in out
    assert "<-  250 2.0.0 Ok: queued as " in out
    (m,) = daemon.spool_messages()
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]
    assert b"X-Mailer: swaks" in m["content"]
    assert m["content"].startswith(b"Received: ")


def test_swaks_pipeline(daemon):
    code, out = swaks(daemon, "--pipeline", "--to", "bob@example.org,carol@example.net")
    assert code == 0, out
    (m,) = daemon.spool_messages()
    assert [r["address"] for r in m["recipients"]] == \
        ["bob@example.org", "carol@example.net"]


def test_swaks_relay_denied(daemon):
    code, out = swaks(daemon, "--to", "mallory@elsewhere.test")
    assert code == 24, out
    assert "554 5.7.1 <mallory@elsewhere.test>: Relay access denied" in out
    assert daemon.spool_messages() == []


def test_swaks_partly_denied(daemon):
    code, out = swaks(daemon, "--to", "mallory@elsewhere.test,bob@example.org")
    assert code == 0, out
    (m,) = daemon.spool_messages()
    assert [r["address"] for r in m["recipients"]] == ["bob@example.org"]


def test_swaks_attachment(daemon, tmp_path):
    attachment = tmp_path / "blob.bin"
    attachment.write_bytes(os.urandom(200_000))
    code, out = swaks(daemon, "--to", "bob@example.org", "--attach", f"@{attachment}",
                      "--body", "See the attachment.\n", "--suppress-data")
    assert code == 0, out
    (m,) = daemon.spool_messages()
    assert len(m["content"]) > 270_000
    assert b"See the attachment." in m["content"]


def test_swaks_too_big(postiliond, tmp_path):
    d = postiliond(config={"server": {"max_message_size": 10000}})
    attachment = tmp_path / "big.bin"
    attachment.write_bytes(os.urandom(20_000))
    code, out = swaks(d, "--to", "bob@example.org", "--attach", f"@{attachment}",
                      "--suppress-data")
    assert code == 26, out
    assert "552 5.3.4 Error: message file too big" in out
    assert d.spool_messages() == []


def test_swaks_quit_after_rcpt(daemon):
    code, out = swaks(daemon, "--to", "bob@example.org", "--quit-after", "RCPT")
    assert code == 0, out
    assert "221 2.0.0 Bye" in out
    assert daemon.spool_messages() == []


@pytest.mark.parametrize("count", [1, 5])
def test_swaks_several_runs(daemon, count):
    for _ in range(count):
        code, out = swaks(daemon, "--to", "bob@example.org")
        assert code == 0, out
    assert len(daemon.spool_messages()) == count
