"""A failing disk: the spool and the Maildirs live on powercutfs.py, which
makes chosen operations fail with EIO.  EIO from write, fdatasync or the
rename during DATA answers 451 4.3.0, never 250, and leaves nothing that a
restart would deliver (a failed sync is not retried and trusted).  The
queue directory's fsync comes after the 250 (deferred, see
core/queue/spool-syncer.c): when it fails, the message, complete and
synced under its durable name in tmp/, is still delivered, the daemon logs
the failure and keeps accepting.  EIO during Maildir delivery defers the
recipient, who gets the message on a later try; other sessions are served
all along.
Needs root and /dev/fuse (skipped otherwise)."""

import re
import time

import pytest

from delivery import maildir_messages, wait_for, wait_queue_empty
from harness import simple_message, transaction
from powercut import PowerCutFS, fuse_usable

pytestmark = pytest.mark.skipif(
    not fuse_usable(), reason="needs root, /dev/fuse and python3-pyfuse3")

SPOOL_FAULTS = ("write spool/tmp", "fsync spool/tmp", "rename spool/tmp")
MAILDIR_FAULTS = ("write maildir/", "fsync maildir/", "fsyncdir bob/new")


@pytest.fixture
def disk(tmp_path):
    backing = tmp_path / "backing"
    backing.mkdir()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    fs = PowerCutFS(backing, mountpoint, tmp_path / "unused")
    try:
        yield fs
    finally:
        fs.unmount()


def subjects(maildir) -> list[str]:
    return [m.group(1).decode() for raw in maildir_messages(maildir)
            if (m := re.search(rb"Subject: (\S+)", raw))]


def spares_settled(tmp_dir) -> bool:
    """The spool's spare files in tmp/ are made (their zeros written and
    synced by a thread of the spool's own, doc/queue-format.md): the
    listing and the sizes hold still for a moment.  A file renamed between
    the listing and its stat (a delivered message's used.* becoming a
    spare.*) is listed without a size: the listing moved, not settled."""
    def listing():
        entries = []
        for p in tmp_dir.iterdir():
            try:
                entries.append((p.name, p.stat().st_size))
            except FileNotFoundError:
                entries.append((p.name, -1))
        return sorted(entries)
    before = listing()
    time.sleep(0.5)
    return bool(before) and listing() == before


def test_eio_during_data_and_delivery(disk, postiliond, tmp_path):
    # `disk` first: it is unmounted after the daemon is gone.
    mnt = disk.mountpoint
    (tmp_path / "mailboxes").write_text("bob@example.org\n")
    d = postiliond(config={
        "server": {"spool": str(mnt / "spool")},
        "delivery": {"maildir_root": str(mnt / "maildir"),
                     "mailboxes": str(tmp_path / "mailboxes"),
                     "retry_first": "200ms", "retry_max": "1s"}})
    bob = mnt / "maildir" / "example.org" / "bob"
    accepted, refused = [], []
    with d.connect() as bystander, d.connect() as c:
        bystander.ehlo()
        c.ehlo()
        # The first message has the spool make its spare files; the faults
        # below must meet the messages' own writes and syncs, not those.
        reply = transaction(bystander, message=simple_message("warm-up"))
        assert reply.code == 250, reply
        accepted.append("warm-up")
        wait_for(lambda: spares_settled(d.spool / "tmp"), 20,
                 "the spare files to be made")
        # DATA on a failing disk: 451 4.3.0 each time, nothing queued.
        for n, rule in enumerate(SPOOL_FAULTS):
            # The last bystander delivered and removed first: its removal
            # syncs spool/queue too and would take the injected fault.
            wait_queue_empty(d)
            queued_before = set(p.name for p in (d.spool / "queue").iterdir())
            disk.faults(f"{rule} 1\n")
            reply = transaction(c, message=simple_message(f"refused{n}"))
            assert (reply.code, reply.enhanced) == (451, "4.3.0"), (rule, reply)
            refused.append(f"refused{n}")
            assert set(p.name for p in (d.spool / "queue").iterdir()) <= \
                queued_before, rule
            # Another session is served meanwhile.
            reply = transaction(bystander,
                                message=simple_message(f"bystander{n}"))
            assert reply.code == 250, (rule, reply)
            accepted.append(f"bystander{n}")
        # The deferred fsync of spool/queue fails after a 250: delivered
        # all the same, logged, and the next messages are accepted.
        wait_queue_empty(d)
        mark = d.log_mark()
        disk.faults("fsyncdir spool/queue 1\n")
        reply = transaction(c, message=simple_message("deferred-dir"))
        assert reply.code == 250, reply
        accepted.append("deferred-dir")
        d.wait_log(r"cannot sync directory queue/: Input/output error; "
                   r"messages already acknowledged are safe", since=mark)
        for n, client in enumerate((c, bystander)):
            reply = transaction(client,
                                message=simple_message(f"after-dir{n}"))
            assert reply.code == 250, reply
            accepted.append(f"after-dir{n}")
        # Delivery on a failing disk: the recipient is deferred, then
        # delivered once the disk answers again.
        for n, rule in enumerate(MAILDIR_FAULTS):
            wait_for(lambda: not list((d.spool / "queue").iterdir()), 10,
                     "the queue to drain")
            mark = d.log_mark()
            disk.faults(f"{rule} 1\n")
            assert transaction(
                c, message=simple_message(f"deferred{n}")).code == 250
            accepted.append(f"deferred{n}")
            d.wait_log(r"to=<bob@example.org>, relay=maildir, .*"
                       r"status=deferred", since=mark)
            wait_for(lambda: f"deferred{n}" in subjects(bob), 10,
                     f"deferred{n} delivered after the fault")
    disk.faults("")
    # A restart delivers nothing of what was refused.
    d.stop()
    d.start()
    wait_for(lambda: not list((d.spool / "queue").iterdir()), 10,
             "the queue to drain")
    time.sleep(0.5)
    delivered = subjects(bob)
    assert set(accepted) <= set(delivered), set(accepted) - set(delivered)
    assert not set(refused) & set(delivered), set(refused) & set(delivered)
    assert not list((d.spool / "corrupt").iterdir())
