"""Crash safety of the whole path: a client sends a stream of messages
while postiliond is killed with SIGKILL at random moments and restarted;
every message that got a 250 must end up in the Maildir (duplicates are
allowed, losses are not).  Bounded: a fixed number of kill cycles, each a
random fraction of a second of traffic."""

import random
import re
import threading
import time

from delivery import delivery_config, maildir_of, wait_for, wait_queue_empty
from harness import SMTPRaw, dot_stuff

CYCLES = 8
TOKEN = re.compile(rb"X-Token: (t\d+)")


class Sender(threading.Thread):
    """Sends messages one after the other, reconnecting after a kill;
    remembers the tokens whose message got 250."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acknowledged: set[str] = set()
        self.sent = 0
        self.errors = 0

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                with SMTPRaw("127.0.0.1", self.port, timeout=2) as c:
                    if c.read_reply().code != 220 or c.ehlo().code != 250:
                        continue
                    while not self.stop.is_set():
                        n += 1
                        token = f"t{n}"
                        if self._one(c, token):
                            self.acknowledged.add(token)
            except Exception:
                self.errors += 1
                time.sleep(0.01)

    def _one(self, c: SMTPRaw, token: str) -> bool:
        self.sent += 1
        if c.cmd("MAIL FROM:<s@client.test.example>").code != 250:
            raise ConnectionError("MAIL")
        if c.cmd("RCPT TO:<bob@example.org>").code != 250:
            raise ConnectionError("RCPT")
        if c.cmd("DATA").code != 354:
            raise ConnectionError("DATA")
        body = (f"Subject: {token}\r\nX-Token: {token}\r\n\r\n"
                + "x" * random.randint(0, 3000) + "\r\n").encode()
        c.send(dot_stuff(body))
        return c.read_reply().code == 250


def delivered_tokens(maildir) -> list[str]:
    tokens = []
    for directory in ("new", "cur"):
        path = maildir / directory
        if path.is_dir():
            for f in path.iterdir():
                match = TOKEN.search(f.read_bytes())
                if match:
                    tokens.append(match.group(1).decode())
    return tokens


def test_no_acknowledged_message_lost_across_sigkill(postiliond, tmp_path):
    rng = random.Random()
    d = postiliond(config=delivery_config(tmp_path))
    sender = Sender(d.port)
    sender.start()
    try:
        for _ in range(CYCLES):
            time.sleep(rng.uniform(0.05, 0.6))
            d.kill()
            d.start()
    finally:
        time.sleep(0.3)
        sender.stop.set()
        sender.join(timeout=10)
    assert not sender.is_alive()
    acknowledged = sender.acknowledged
    assert len(acknowledged) >= 20, (sender.sent, sender.errors)
    maildir = maildir_of(tmp_path, "bob@example.org")
    wait_queue_empty(d, timeout=60)
    delivered = delivered_tokens(maildir)
    lost = acknowledged - set(delivered)
    assert not lost, f"{len(lost)} acknowledged messages lost: {sorted(lost)[:10]}"
    duplicates = len(delivered) - len(set(delivered))
    print(f"sigkill: {CYCLES} kills, {sender.sent} sent, {len(acknowledged)} "
          f"acknowledged, {len(set(delivered))} delivered, {duplicates} "
          f"duplicates")
    # Nothing half-written is visible: every file in new/ is complete.
    for f in (maildir / "new").iterdir():
        assert f.read_bytes().endswith(b"\n")
