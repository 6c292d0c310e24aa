"""Power loss: the spool and the Maildirs live on powercutfs.py, a FUSE
file system that keeps every unsynced write, create, rename, link and
unlink only until the cut, as a power cut would.  Clients send a steady
stream of messages (two recipients each) while the power is cut at random
moments, across accepting, queue-manager work and Maildir delivery; after
each cut the daemon restarts on what survived.  At the end every message
that got a 250 must be delivered to each recipient (duplicates allowed,
losses not), and every file in a Maildir's new/ must be a whole message
(its last line and its line count are checked).

Every other cut falls right after a 250: the spool answers after the
message's fdatasync and rename, and fsyncs queue/ later (deferred, see
core/queue/spool-syncer.c), so such a cut finds the message only under its
durable name in spool/tmp, and the restart must recover it from there.  Each
run reports the cuts in that window that lost a name in spool/queue, and
requires a recovery from tmp/ in the daemon's log.

The default run makes 4 cuts (a few seconds each); set
POSTILION_POWERCUT_CUTS=50 (or more) for the long run, which also checks
that cuts fell during accepting (unsynced names in spool/tmp or a commit
into spool/queue), queue-manager work (a delivered message's removal or a
state journal not yet synced) and Maildir delivery (a new file not yet
synced into its Maildir).  Needs root and
/dev/fuse (skipped otherwise)."""

import os
import random
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from delivery import wait_for
from harness import SMTPRaw, dot_stuff, scaled
from powercut import PowerCutFS, fuse_usable

CUTS = int(os.environ.get("POSTILION_POWERCUT_CUTS", "4"))
RECIPIENTS = ("bob@example.org", "alice@example.org")
# Unsynced names at a cut that show what it interrupted ("+DIR": names a
# cut loses, "-DIR": names it brings back; powercutfs.py's summary).
PHASES = {
    "accepting": ("+/spool/tmp", "+/spool/queue"),
    "queue-manager work": ("-/spool/queue", "+/spool/state", "-/spool/state"),
    "Maildir delivery": ("+/maildir/example.org",),
}

pytestmark = pytest.mark.skipif(
    not fuse_usable(), reason="needs root, /dev/fuse and python3-pyfuse3")


class Sender(threading.Thread):
    """Sends one message after the other (reconnecting after failures);
    remembers the tokens that got 250."""

    def __init__(self, port: int, name: str):
        super().__init__(daemon=True)
        self.port = port
        self.name_prefix = name
        self.stop = threading.Event()
        self.acknowledged: set[str] = set()
        self.acked = threading.Event()  # set at each 250
        self.sent = 0
        self.count = 0

    def run(self):
        while not self.stop.is_set():
            try:
                with SMTPRaw("127.0.0.1", self.port, timeout=3) as c:
                    if c.read_reply().code != 220 or c.ehlo().code != 250:
                        raise ConnectionError("greeting")
                    while not self.stop.is_set():
                        self.count += 1
                        token = f"{self.name_prefix}{self.count}"
                        if self.one(c, token):
                            self.acknowledged.add(token)
                            self.acked.set()
            except Exception:
                time.sleep(0.02)

    def one(self, c: SMTPRaw, token: str) -> bool:
        self.sent += 1
        if c.cmd("MAIL FROM:<s@client.test.example>").code != 250:
            raise ConnectionError("MAIL")
        for rcpt in RECIPIENTS:
            if c.cmd(f"RCPT TO:<{rcpt}>").code != 250:
                raise ConnectionError("RCPT")
        if c.cmd("DATA").code != 354:
            raise ConnectionError("DATA")
        lines = random.randint(1, 200)
        body = "".join(f"{token} line {i} {'x' * random.randint(0, 70)}\r\n"
                       for i in range(lines))
        message = (f"Subject: {token}\r\nX-Token: {token}\r\n"
                   f"X-Lines: {lines}\r\n\r\n{body}END {token}\r\n").encode()
        c.send(dot_stuff(message))
        reply = c.read_reply()
        if reply.code >= 400:
            raise ConnectionError(f"DATA: {reply.code}")
        return reply.code == 250


TOKEN = re.compile(rb"X-Token: (\S+)\nX-Lines: (\d+)\n")


def read_maildir(maildir: Path) -> list[str]:
    """The tokens in new/ and cur/; asserts each file is whole."""
    tokens = []
    for sub in ("new", "cur"):
        directory = maildir / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            data = path.read_bytes()
            match = TOKEN.search(data)
            assert match, f"{path}: no token: a half-written file? {data[-200:]!r}"
            token, lines = match.group(1).decode(), int(match.group(2))
            body = data.split(b"\n\n", 1)[1]
            assert body.endswith(f"END {token}\n".encode()), \
                f"{path}: truncated message {token}"
            assert body.count(b"\n") == lines + 1, f"{path}: lines missing"
            tokens.append(token)
    return tokens


def spares_ready(tmp: Path, timeout: float) -> None:
    """Waits (at most `timeout`) until the spool keeps many empty spare
    files in tmp/ (core/queue/spool-syncer.c)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len([p for p in tmp.iterdir()
                    if p.name.startswith("spare.")]) >= 40:
                return
        except OSError:
            pass
        time.sleep(0.02)


def daemon_config(disk: Path, work: Path) -> dict:
    (work / "mailboxes").write_text("\n".join(RECIPIENTS) + "\n")
    return {
        "server": {"spool": str(disk / "spool")},
        "delivery": {"maildir_root": str(disk / "maildir"),
                     "mailboxes": str(work / "mailboxes"),
                     "retry_first": "200ms", "retry_max": "1s"},
    }


def test_no_acknowledged_message_lost_across_power_cuts(postiliond, tmp_path):
    rng = random.Random()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    disks = [tmp_path / "disk0"]
    disks[0].mkdir()
    d = postiliond(config=daemon_config(mountpoint, tmp_path), start=False)
    senders: list[Sender] = []
    in_flight: dict[str, int] = {}
    after_250 = 0  # cuts right after a 250 that lost names in spool/queue
    fs = None
    try:
        for cut in range(CUTS):
            disks.append(tmp_path / f"disk{cut + 1}")
            fs = PowerCutFS(disks[-2], mountpoint, disks[-1])
            d.start()
            if not senders:
                senders = [Sender(d.port, f"s{i}-") for i in range(2)]
                for s in senders:
                    s.start()
            time.sleep(rng.uniform(0.3, 1.0))
            if cut % 2:
                # Right after a 250: before the deferred fsync of queue/.
                # Once spares are ready (right after a start, files made
                # without one still wait for queue/'s fsync).
                spares_ready(mountpoint / "spool" / "tmp", scaled(1))
                senders[0].acked.clear()
                senders[0].acked.wait(timeout=scaled(2))
            summary = fs.cut()
            for top, count in summary["unsynced_names"].items():
                in_flight[top] = in_flight.get(top, 0) + (count > 0)
                if cut % 2 and top == "+/spool/queue" and count > 0:
                    after_250 += 1
            d.kill()
            fs.unmount()
            fs = None
            shutil.rmtree(disks[-2])
        for s in senders:
            s.stop.set()
        for s in senders:
            s.join(timeout=10)
    finally:
        for s in senders:
            s.stop.set()
        if d.running:
            d.kill()
        if fs is not None:
            fs.unmount()

    # Power back for good: the last disk, without the cutting layer.
    for group, keys in daemon_config(disks[-1], tmp_path).items():
        d.config[group].update(keys)
    d.write_config()
    d.start()
    wait_for(lambda: not list((disks[-1] / "spool" / "queue").iterdir()),
             scaled(60), "the queue to drain")
    acknowledged = set().union(*(s.acknowledged for s in senders))
    sent = sum(s.sent for s in senders)
    corrupt = list((disks[-1] / "spool" / "corrupt").iterdir())
    recovered = len(re.findall(r"recovered into (?:queue|hold)/",
                               d.log_text()))
    report = (f"powercut: {CUTS} cuts, {sent} sent, {len(acknowledged)} "
              f"acknowledged, cuts with unsynced names per directory: "
              f"{in_flight}, {after_250} cuts right after a 250 before "
              f"queue/ was synced, {recovered} messages recovered from "
              f"tmp/, {len(corrupt)} queue files moved to corrupt/")
    for rcpt in RECIPIENTS:
        local, domain = rcpt.split("@")
        tokens = read_maildir(disks[-1] / "maildir" / domain / local)
        lost = acknowledged - set(tokens)
        assert not lost, f"{rcpt}: {len(lost)} acknowledged messages " \
            f"lost: {sorted(lost)[:10]}; {report}"
        report += f"; {rcpt}: {len(set(tokens))} delivered, " \
            f"{len(tokens) - len(set(tokens))} duplicates"
    print(report, file=sys.stderr)
    assert len(acknowledged) >= CUTS * 2, report
    # The window between a file's fdatasync and the deferred directory
    # sync was cut into, and what it held came back from tmp/.
    assert recovered >= 1, report
    # A file enters queue/ only whole and synced: none may be torn.
    assert not corrupt, report
    # The run must have cut into each kind of work (the default
    # run is too short to be sure of it).
    if CUTS >= 50:
        missed = [phase for phase, keys in PHASES.items()
                  if not any(in_flight.get(key) for key in keys)]
        assert not missed, f"no cut during {missed}; {report}"
