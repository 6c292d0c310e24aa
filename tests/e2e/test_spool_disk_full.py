"""The spool's file system fills up: the spool lives on a small tmpfs the
test mounts (4 MiB), filled with a filler file.  A message that does not
fit gets `452 4.3.1 Error: insufficient system storage` after its final
dot, nothing of it stays in the spool, the daemon keeps serving, and once
space is freed mail flows again; every message that got a 250 (including
one queued before the disk filled, whose delivery state could not be
journaled while full) is delivered.

Mounting needs root (CI runs the suite as root); skipped otherwise."""

import errno
import os
import subprocess
import time

import pytest

from delivery import (delivery_config, maildir_of, parse, wait_messages,
                      wait_queue_empty)
from harness import queue_id, simple_message, transaction

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting the small spool file system needs "
    "root")


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs.  Tests take it before `postiliond`, so it is
    unmounted after the daemon is gone."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755",
                    "pst-e2e-full", str(mount)], check=True)
    try:
        yield mount
    finally:
        for _ in range(50):  # the daemon may still hold it for a moment
            if subprocess.run(["umount", str(mount)]).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path, reserve=0):
    """Writes `path` until the file system is full; then gives back
    `reserve` octets.  Returns the file's size.

    Unbuffered on purpose: a buffered file keeps the tail of a short last
    write and raises ENOSPC again from close(), which depends on how much
    space the daemon happens to use at that moment."""
    chunk = b"x" * 65536
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                written = os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                break
            if written == 0:
                break
            size += written
            assert size < 64 * 1024 * 1024, "the file system does not fill"
    finally:
        os.close(fd)
    if reserve:
        os.truncate(path, max(0, os.path.getsize(path) - reserve))
    return size


def big_message(kib):
    line = "y" * 76 + "\r\n"
    return simple_message("big", line * (kib * 1024 // len(line)))


def test_disk_full_refuses_then_recovers(small_fs, postiliond, tmp_path):
    config = delivery_config(tmp_path)
    config["server"] = {"spool": str(small_fs / "spool")}
    d = postiliond(config=config)
    bob = maildir_of(tmp_path, "bob@example.org")
    # One message queued while bob's Maildir cannot be made (a file there):
    # it stays queued across the full disk.
    bob.parent.mkdir(parents=True)
    bob.write_text("not a directory")
    with d.connect() as c:
        c.ehlo()
        early = queue_id(transaction(c, message=simple_message("early")))
    d.wait_log(rf"{early}: to=<bob@example.org>.*status=deferred")

    filler = small_fs / "filler"
    fill(filler, reserve=32 * 1024)
    mark = d.log_mark()
    with d.connect() as c:
        c.ehlo()
        reply = transaction(c, message=big_message(512))
        assert reply.code == 452, reply
        assert reply.enhanced == "4.3.1", reply
        assert "insufficient system storage" in reply.text
        # The session goes on: a small one may fit or get 452 as well,
        # never anything else; the connection stays usable.
        assert c.cmd("NOOP").code == 250
    assert d.running
    d.wait_log(r"No space left on device", since=mark)
    assert d.tmp_leftovers() == []
    queued = set(d.spool_files("queue"))
    assert queued <= {early}, queued  # nothing of the refused message
    # Still serving: a new connection is greeted and answered.
    with d.connect() as c:
        assert c.ehlo().code == 250
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert c.cmd("RSET").code == 250

    # Space again: the refused message now goes through, the early one is
    # delivered once bob's Maildir can be made.
    filler.unlink()
    bob.unlink()
    with d.connect() as c:
        c.ehlo()
        late = queue_id(transaction(c, message=big_message(512)))
    messages = wait_messages(bob, count=2, timeout=20)
    subjects = sorted(parse(m)["Subject"] for m in messages)
    assert subjects == ["big", "early"], subjects
    wait_queue_empty(d, timeout=20)
    d.wait_log(rf"{early}: to=<bob@example.org>.*status=sent")
    d.wait_log(rf"{late}: to=<bob@example.org>.*status=sent")
    assert d.tmp_leftovers() == []
    assert d.stop() == 0


def test_bdat_disk_full(small_fs, postiliond, tmp_path):
    config = delivery_config(tmp_path)
    config["server"] = {"spool": str(small_fs / "spool")}
    d = postiliond(config=config)
    fill(small_fs / "filler", reserve=16 * 1024)
    body = big_message(256)
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        c.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
        reply = c.read_reply()
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
        assert c.cmd("NOOP").code == 250
    assert d.tmp_leftovers() == []
    assert d.spool_files("queue") == []
    (small_fs / "filler").unlink()
    with d.connect() as c:
        c.ehlo()
        queue_id(transaction(c))
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
