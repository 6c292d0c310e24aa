"""A spool written before the explicit DSN link (queue-format.md, record
0x95) is read and delivered after the upgrade.  Until then a DSN said
which message it reports on with listener "bounce" and that message's
queue id as its session id; this version writes listener "dsn", its own id
as session id and the link in record 0x95.  Each test makes its DSN with
the daemon, stops it, rewrites the DSN's trailer the old way (byte for byte
what the older version wrote: the same records, those two values changed,
no 0x95), and starts the daemon again on that spool.

- a final DSN queued just before a crash, its original still in queue/
  with a journal naming it: the original goes first, exactly one DSN
  reaches the sender, never a second;
- a "delayed" notice whose original is still being retried: the notice is
  delivered once and the original stays queued until it is delivered.
"""

import re
import struct
import time

from delivery import (delivery_config, maildir_messages, maildir_of,
                      wait_messages, wait_queue_empty)
from harness import scaled
from test_delivery_dsn import MAILBOXES, block, crashed_after_dsn, send
from test_queue_corrupt import split, with_trailer

TAG_LISTENER, TAG_SESSION_ID, TAG_DSN_ORIGINAL = 0x0B, 0x0E, 0x95


def records(trailer: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(trailer):
        tag, length = trailer[at], struct.unpack_from("<I", trailer, at + 1)[0]
        out.append((tag, trailer[at + 5:at + 5 + length]))
        at += 5 + length
    return out


def encode(fields: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([tag]) + struct.pack("<I", len(value)) + value
                    for tag, value in fields)


def rewrite_the_old_way(path, original: str) -> None:
    """The DSN at `path` as the previous version queued it."""
    content, trailer, _ = split(path.read_bytes())
    fields = records(trailer)
    tags = [tag for tag, _ in fields]
    assert dict(fields)[TAG_LISTENER] == b"dsn", tags
    old = []
    for tag, value in fields:
        if tag == TAG_DSN_ORIGINAL:
            assert value == original.encode()
            continue
        if tag == TAG_LISTENER:
            value = b"bounce"
        elif tag == TAG_SESSION_ID:
            value = original.encode()
        old.append((tag, value))
    path.write_bytes(with_trailer(content, encode(old)))


def test_old_final_dsn_after_a_crash(postiliond, tmp_path):
    d, qid, dsn_id, alice = crashed_after_dsn(postiliond, tmp_path)
    rewrite_the_old_way(d.spool / "queue" / dsn_id, qid)
    # The DSN must not expire (1 s) before the test unblocks its Maildir.
    d.config["delivery"]["max_lifetime"] = "1h"
    d.write_config()
    mark = d.log_mark()
    d.start()
    alice.unlink()
    (raw,) = wait_messages(alice)
    wait_queue_empty(d)
    d.wait_log(rf"{dsn_id}: to=<alice@example.org>.*status=sent", since=mark)
    assert len(maildir_messages(alice)) == 1
    log = d.log_text()[mark:]
    # Whether the DSN had to wait (and logged "waits for") depends on
    # which of the two the restarted queue manager took up first; what
    # must hold either way: no second DSN, and the original went first.
    assert f"{qid}: sender delivery status notification" not in log
    # The original went before its DSN was delivered.
    removed = log.index(f"{qid}: removed")
    assert removed < re.search(rf"{dsn_id}: to=<alice@example.org>", log).start()
    assert not (d.spool / "queue" / qid).exists()
    assert not (d.spool / "state" / qid).exists()
    assert b"Action: failed" in raw


def test_old_delay_notice_while_its_original_waits(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          delay_warning="1s"))
    bob = block(tmp_path, "bob@example.org")
    alice = block(tmp_path, "alice@example.org")
    qid = send(d, "alice@example.org", ["bob@example.org"])
    notice = d.wait_log(rf"{qid}: sender \"delayed\" delivery status "
                        r"notification: (\w+)", timeout=15).group(1)
    assert d.stop() == 0
    rewrite_the_old_way(d.spool / "queue" / notice, qid)
    mark = d.log_mark()
    d.start()
    alice.unlink()
    wait_messages(alice)
    d.wait_log(rf"{notice}: removed", since=mark)
    # The original is untouched by its notice: still queued, retried.
    assert (d.spool / "queue" / qid).exists()
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred", since=mark)
    bob.unlink()
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_queue_empty(d)
    time.sleep(scaled(0.5))
    assert len(maildir_messages(alice)) == 1
    log = d.log_text()[mark:]
    assert f"{notice}: waits for {qid}, the message it reports on" in log
    assert log.count(f"{qid}: delay notice") == 0
