"""SIGKILL at scale: many sessions send a fixed number of messages while
postiliond is killed with SIGKILL at random moments and restarted.  Every
tenth message also goes to a recipient the LMTP server refuses (550), so
the queue manager keeps making DSNs back to the sender while the kills
land.  At the end: every message answered 250 reached bob (duplicates
allowed, losses not), and every one with the refused recipient produced a
DSN to its sender naming it.

Every other kill waits (a few seconds at most) for a recipient to bounce
and lands at once, while the queue manager makes the DSN.  The daemon's
log, cut into one part per life, shows what each kill interrupted: a
bounce without its DSN in the same life is a kill during DSN creation, a
delivery among the last lines a kill during queue-manager work.

Default (bounded, seconds): 400 messages from 10 sessions, 6 kills.  The
issue's run: POSTILION_SIGKILL_SCALE=10000,50,20 (messages, sessions,
kills; give it POSTILION_TEST_TIMEOUT=1800), which also requires a kill
of each kind."""

import os
import random
import re
import sys
import threading
import time

from delivery import LMTPServer, delivery_config, wait_for
from harness import SMTPRaw, dot_stuff, scaled

MESSAGES, SESSIONS, KILLS = (int(n) for n in os.environ.get(
    "POSTILION_SIGKILL_SCALE", "400,10,6").split(","))
TOKEN = re.compile(rb"X-Token: (\S+)")
BOUNCER = "bouncer@example.org"
BOUNCED = re.compile(r"([0-9A-Z]{12,}): to=<bouncer@example\.org>.*"
                     r"status=bounced")
DSN_QUEUED = re.compile(r"([0-9A-Z]{12,}): sender delivery status "
                        r"notification: ")
DELIVERY = re.compile(r": to=<[^>]*>.*status=(sent|deferred|bounced)")


class LogTail:
    """What the daemon's log gained since the last read."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def read(self) -> str:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return ""
        self.offset += len(data)
        return data.decode(errors="replace")

    def wait_for(self, pattern: re.Pattern, seconds: float) -> str:
        """Reads until a new line matches (or `seconds` pass); returns
        what was read."""
        text = ""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            fresh = self.read()
            text += fresh
            if pattern.search(fresh):
                break
            time.sleep(0.002)
        return text


def interrupted(life: str) -> tuple[bool, bool]:
    """(during DSN creation, during queue-manager work) for one life of
    the daemon, ended by a kill: a recipient bounced and its DSN not yet
    queued; a delivery among the last lines."""
    dsn = bool(set(BOUNCED.findall(life)) - set(DSN_QUEUED.findall(life)))
    tail = "\n".join(life.splitlines()[-20:])
    return dsn, bool(DELIVERY.search(tail))


class Sender(threading.Thread):
    """Sends its share of the messages, reconnecting after kills; a
    message that got no 250 is sent again under a new token."""

    def __init__(self, port: int, name: str, quota: int):
        super().__init__(daemon=True)
        self.port = port
        self.prefix = name
        self.quota = quota
        self.acknowledged: dict[str, bool] = {}  # token -> has the bouncer
        self.sent = 0

    def run(self):
        deadline = time.monotonic() + scaled(600)
        while len(self.acknowledged) < self.quota and \
                time.monotonic() < deadline:
            try:
                with SMTPRaw("127.0.0.1", self.port, timeout=5) as c:
                    if c.read_reply().code != 220 or c.ehlo().code != 250:
                        raise ConnectionError("greeting")
                    while len(self.acknowledged) < self.quota:
                        self.one(c)
            except Exception:
                time.sleep(0.02)

    def one(self, c: SMTPRaw) -> None:
        self.sent += 1
        token = f"{self.prefix}{self.sent}"
        bounce = self.sent % 10 == 0
        recipients = ["bob@example.org"] + ([BOUNCER] if bounce else [])
        if c.cmd("MAIL FROM:<alice@example.org>").code != 250:
            raise ConnectionError("MAIL")
        for rcpt in recipients:
            if c.cmd(f"RCPT TO:<{rcpt}>").code != 250:
                raise ConnectionError("RCPT")
        if c.cmd("DATA").code != 354:
            raise ConnectionError("DATA")
        body = (f"Subject: {token}\r\nX-Token: {token}\r\n\r\n"
                + ("x" * 76 + "\r\n") * random.randint(0, 30)).encode()
        c.send(dot_stuff(body))
        reply = c.read_reply()
        if reply.code == 250:
            self.acknowledged[token] = bounce
        elif reply.code >= 400:
            raise ConnectionError(f"DATA {reply.code}")


def test_no_loss_and_dsns_across_sigkills_at_scale(postiliond, tmp_path):
    rng = random.Random()
    lmtp = LMTPServer()
    lmtp.rcpt_replies[BOUNCER] = "550 5.1.1 no such user"
    try:
        config = delivery_config(
            tmp_path, mailboxes=("alice@example.org", "bob@example.org",
                                 BOUNCER))
        config["delivery"]["lmtp"] = f"127.0.0.1:{lmtp.port}"
        config["server"] = {"max_connections_per_ip": SESSIONS + 20}
        d = postiliond(config=config)
        share = -(-MESSAGES // SESSIONS)
        senders = [Sender(d.port, f"s{i}-", share) for i in range(SESSIONS)]
        for s in senders:
            s.start()
        log = LogTail(d.log_path)
        lives = []
        expected_time = MESSAGES / 150  # seconds at a modest rate
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.2, max(0.5, 2 * expected_time / KILLS)))
            life = log.read()
            if kill % 2:
                life += log.wait_for(BOUNCED, scaled(5))
            d.kill()
            lives.append(life + log.read())
            d.start()
        for s in senders:
            s.join(timeout=scaled(600))
        assert not any(s.is_alive() for s in senders)
        wait_for(lambda: not list((d.spool / "queue").iterdir()),
                 scaled(max(120, MESSAGES / 20)), "the queue to drain")
        time.sleep(0.5)
    finally:
        lmtp.close()

    acknowledged = {}
    for s in senders:
        acknowledged.update(s.acknowledged)
    to_bob, dsns = [], []
    for address, data in list(lmtp.delivered):
        match = TOKEN.search(data)
        if address == "bob@example.org" and match:
            to_bob.append(match.group(1).decode())
        elif address == "alice@example.org":
            dsns.append(data)
    lost = set(acknowledged) - set(to_bob)
    bounced = {t for t, b in acknowledged.items() if b}
    dsn_tokens = {m.group(1).decode() for data in dsns
                  if (m := TOKEN.search(data))}
    during = [interrupted(life) for life in lives]
    during_dsn = sum(dsn for dsn, _ in during)
    during_work = sum(work for _, work in during)
    report = (f"sigkill-scale: {KILLS} kills ({during_dsn} during DSN "
              f"creation, {during_work} during queue-manager work), "
              f"{sum(s.sent for s in senders)} sent, "
              f"{len(acknowledged)} acknowledged, {len(set(to_bob))} "
              f"delivered ({len(to_bob) - len(set(to_bob))} duplicates), "
              f"{len(bounced)} with a refused recipient, {len(dsns)} DSNs")
    print(report, file=sys.stderr)
    assert len(acknowledged) >= MESSAGES, report
    assert not lost, f"{len(lost)} lost: {sorted(lost)[:10]}; {report}"
    missing = bounced - dsn_tokens
    assert not missing, f"{len(missing)} without a DSN: " \
        f"{sorted(missing)[:10]}; {report}"
    if KILLS >= 20:
        assert during_dsn and during_work, report
