"""Delivery status notifications beyond the plain bounce: "delayed" notices
([delivery] delay_warning, RFC 3464 Action: delayed, honouring NOTIFY, once
per recipient), RFC 6533 DSNs for messages accepted with SMTPUTF8, and no
second final DSN after a crash between queuing the DSN and removing the
original (the DSN's queue id is journaled first).  Every DSN is delivered
to the sender's own Maildir and parsed back with Python's email module."""

import email
import email.policy
import re
import struct
import time

from delivery import (delivery_config, maildir_messages, maildir_of, parse,
                      wait_for, wait_messages, wait_queue_empty)
from harness import queue_id, scaled, simple_message, transaction

MAILBOXES = ("alice@example.org", "bob@example.org", "carol@example.org",
             "dave@example.org", "erin@example.org")


def block(tmp_path, address):
    """Makes the recipient's Maildir a file: every attempt is deferred
    (451 4.3.0) until unblock()."""
    path = maildir_of(tmp_path, address)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a directory")
    return path


def status_blocks(part):
    """The header blocks of a (global-)delivery-status part."""
    if part.get_content_type() == "message/delivery-status":
        return [dict(block.items()) for block in part.get_payload()]
    # message/global-delivery-status: the email module knows it not; read
    # the part's body as UTF-8 text.
    raw = part.as_bytes().replace(b"\r\n", b"\n")
    text = raw.split(b"\n\n", 1)[1].decode("utf-8").strip("\n")
    return [dict(email.message_from_string(
        chunk + "\n", policy=email.policy.default).items())
        for chunk in text.split("\n\n")]


def send(d, sender, recipients, message=None, params=None, mail_params=""):
    with d.connect() as c:
        c.ehlo()
        suffix = f" {mail_params}" if mail_params else ""
        assert c.cmd(f"MAIL FROM:<{sender}>{suffix}").code == 250
        for rcpt in recipients:
            extra = (params or {}).get(rcpt, "")
            assert c.cmd(f"RCPT TO:<{rcpt}>{extra}").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message or simple_message("delayed", "the body"))
        c.send(b".\r\n")
        return queue_id(c.read_reply())


# --------------------------------------------------------------------------
# "delayed" notices
# --------------------------------------------------------------------------


def test_delay_notice_sent_once_then_delivered(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          delay_warning="1s"))
    blocked = block(tmp_path, "bob@example.org")
    qid = send(d, "alice@example.org", ["bob@example.org"],
               mail_params="ENVID=env-7")
    alice = maildir_of(tmp_path, "alice@example.org")
    (raw,) = wait_messages(alice, timeout=10)
    d.wait_log(rf"{qid}: delay notice for 1 recipient")
    dsn = parse(raw)
    assert dsn["Return-Path"] == "<>"
    assert dsn["Subject"] == "Delayed Mail (still being retried)"
    assert dsn.get_param("report-type") == "delivery-status"
    human, status, original = dsn.get_payload()
    assert "keep trying" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = status_blocks(status)
    assert per_message["Original-Envelope-Id"] == "env-7"
    assert per_rcpt["Final-Recipient"] == "rfc822; bob@example.org"
    assert per_rcpt["Action"] == "delayed"
    assert per_rcpt["Status"] == "4.3.0"
    # The Maildir's failure names no file of ours (the DSN goes outside);
    # the log keeps the whole reason for the postmaster.
    assert per_rcpt["Diagnostic-Code"].startswith(
        "smtp; 451 4.3.0 the mailbox could not be written")
    assert str(tmp_path).encode() not in raw
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred "
               rf"\(451 4\.3\.0 cannot .*{re.escape(str(blocked))}")
    assert "Will-Retry-Until" in per_rcpt
    assert original.get_content_type() == "text/rfc822-headers"
    assert "the body" not in original.as_string()
    # More attempts (retry_max = 1s), no second notice.
    mark = d.log_mark()
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred", since=mark)
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred",
               since=d.log_mark())
    assert len(maildir_messages(alice)) == 1
    blocked.unlink()
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_queue_empty(d)
    assert len(maildir_messages(alice)) == 1
    assert d.log_text().count(f"{qid}: delay notice") == 1


def test_delay_notice_honours_notify(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          delay_warning="1s"))
    for rcpt in ("bob", "carol", "dave", "erin"):
        block(tmp_path, f"{rcpt}@example.org")
    qid = send(d, "alice@example.org",
               ["bob@example.org", "carol@example.org", "dave@example.org",
                "erin@example.org"],
               params={"bob@example.org": " NOTIFY=DELAY,FAILURE",
                       "carol@example.org": " NOTIFY=NEVER",
                       "dave@example.org": " NOTIFY=FAILURE"})
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    d.wait_log(rf"{qid}: delay notice for 2 recipients")
    _, status, _ = parse(raw).get_payload()
    recipients = [b["Final-Recipient"] for b in status_blocks(status)[1:]]
    # NOTIFY=DELAY and no NOTIFY get one; NEVER and FAILURE-only do not.
    assert recipients == ["rfc822; bob@example.org",
                          "rfc822; erin@example.org"]
    d.wait_log(rf"{qid}: to=<dave@example.org>.*status=deferred",
               since=d.log_mark())
    assert len(maildir_messages(maildir_of(tmp_path, "alice@example.org"))) == 1


def test_delay_warning_zero_and_null_sender_send_nothing(postiliond,
                                                         tmp_path):
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          delay_warning="0"))
    block(tmp_path, "bob@example.org")
    qid = send(d, "alice@example.org", ["bob@example.org"],
               params={"bob@example.org": " NOTIFY=DELAY"})
    d2 = postiliond(config=delivery_config(tmp_path / "two",
                                           mailboxes=MAILBOXES,
                                           delay_warning="1s"))
    block(tmp_path / "two", "bob@example.org")
    qid2 = send(d2, "", ["bob@example.org"])
    time.sleep(scaled(2.5))
    for daemon, q in ((d, qid), (d2, qid2)):
        daemon.wait_log(rf"{q}: to=<bob@example.org>.*status=deferred")
        assert "delay notice" not in daemon.log_text()
    assert maildir_messages(maildir_of(tmp_path, "alice@example.org")) == []


# --------------------------------------------------------------------------
# SMTPUTF8: RFC 6533 DSNs
# --------------------------------------------------------------------------

def utf8_maildir(root, address):
    """The Maildir of a UTF-8 address: octets outside the safe set become
    %XX in the path (delivery-job.c, safe_component)."""
    local, domain = address.rsplit("@", 1)
    safe = "".join(chr(b) if chr(b).isalnum() and b < 0x80 else f"%{b:02X}"
                   for b in local.encode())
    return root / "maildir" / domain / safe


def test_smtputf8_bounce_is_an_rfc6533_dsn(postiliond, tmp_path):
    sender, rcpt = "jösé@example.org", "bøb@example.org"
    d = postiliond(config=delivery_config(
        tmp_path, mailboxes=(sender, rcpt), max_lifetime="1s"))
    blocked = utf8_maildir(tmp_path, rcpt)
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    message = ("From: <jösé@example.org>\r\nTo: <bøb@example.org>\r\n"
               "Subject: grüße\r\n\r\nBody\r\n").encode()
    with d.connect() as c:
        c.ehlo()
        assert c.cmd(f"MAIL FROM:<{sender}> SMTPUTF8").code == 250
        assert c.cmd(f"RCPT TO:<{rcpt}> ORCPT=utf-8;b\\x{{F8}}b@example.org"
                     ).code == 250
        assert c.cmd("DATA").code == 354
        c.send(message + b".\r\n")
        qid = queue_id(c.read_reply())
    (raw,) = wait_messages(utf8_maildir(tmp_path, sender), timeout=15)
    d.wait_log(rf"{qid}: sender delivery status notification")
    # RFC 6532: UTF-8 header fields, as is (the email module reads them
    # from a str; the 8bit parts from bytes).
    head = email.message_from_string(raw.decode("utf-8"),
                                     policy=email.policy.default)
    assert head["Return-Path"] == "<>"
    assert head["To"].addresses[0].addr_spec == sender
    dsn = parse(raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "global-delivery-status"
    human, status, original = dsn.get_payload()
    assert human.get_content_charset() == "utf-8"
    assert rcpt in human.get_content()
    assert status.get_content_type() == "message/global-delivery-status"
    per_message, per_rcpt = status_blocks(status)
    assert per_message["Reporting-MTA"] == "dns; mx.test.example"
    assert per_rcpt["Final-Recipient"] == f"utf-8; {rcpt}"
    assert per_rcpt["Original-Recipient"] == f"utf-8; {rcpt}"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "4.4.7"
    assert original.get_content_type() == "message/global"
    assert "grüße".encode() in raw
    wait_queue_empty(d)


def test_ascii_bounce_stays_rfc3464(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          max_lifetime="1s"))
    block(tmp_path, "bob@example.org")
    qid = send(d, "alice@example.org", ["bob@example.org"])
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"),
                           timeout=15)
    dsn = parse(raw)
    assert dsn.get_param("report-type") == "delivery-status"
    _, status, original = dsn.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    assert original.get_content_type() == "message/rfc822"
    # The original is removed once, by whichever job came first (issue 17:
    # it was logged twice, by the DSN's job and by its own).
    wait_queue_empty(d)
    time.sleep(scaled(0.3))
    assert len(re.findall(rf"^\S+ {qid}: removed", d.log_text(), re.M)) == 1, \
        d.log_text()


def test_large_message_bounces_as_its_header(postiliond, tmp_path):
    """[delivery] bounce_size_limit: a failure notice returns a message
    within the limit whole and a larger one (here 300 KB, read from the
    queue file in pieces) as its header only, saying so."""
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          max_lifetime="1s",
                                          bounce_size_limit="10k"))
    block(tmp_path, "bob@example.org")
    line = "x" * 78 + "\r\n"
    send(d, "alice@example.org", ["bob@example.org"],
         message=simple_message("small one", line * 50))
    send(d, "alice@example.org", ["bob@example.org"],
         message=simple_message("large one", line * 3750))
    raws = wait_messages(maildir_of(tmp_path, "alice@example.org"), count=2,
                         timeout=15)
    by_subject = {}
    for raw in raws:
        human, _, original = parse(raw).get_payload()
        subject = re.search(rb"Subject: (small|large) one", raw).group(1)
        by_subject[subject.decode()] = (raw, human, original)
    raw, human, original = by_subject["small"]
    assert original.get_content_type() == "message/rfc822"
    assert raw.count(b"x" * 78) == 50
    assert "too large" not in human.get_content()
    raw, human, original = by_subject["large"]
    assert original.get_content_type() == "text/rfc822-headers"
    assert "too large to be returned in full" in human.get_content()
    assert b"x" * 78 not in raw
    assert len(raw) < 10_000
    wait_queue_empty(d)


def test_success_dsn_names_no_file(postiliond, tmp_path):
    """A success notice may go to an outside sender: it says "delivered to
    mailbox", never the Maildir file's path (issue 17, item 7)."""
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES))
    send(d, "alice@example.org", ["bob@example.org"],
         params={"bob@example.org": " NOTIFY=SUCCESS"})
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    dsn = parse(raw)
    human, status, _ = dsn.get_payload()
    _, per_rcpt = status_blocks(status)
    assert per_rcpt["Action"] == "delivered"
    assert per_rcpt["Diagnostic-Code"] == \
        "smtp; 250 2.0.0 delivered to mailbox"
    assert str(tmp_path) not in raw.decode(errors="replace")
    assert "/new/" not in raw.decode(errors="replace")


# --------------------------------------------------------------------------
# No second DSN after a crash
# --------------------------------------------------------------------------

def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def journal_record(status: int, index: int, reply: str = "",
                   relay: str = "", target: str = "") -> bytes:
    """One state journal record (doc/queue-format.md)."""
    payload = struct.pack("<BBIqI", 1, status, index,
                          int(time.time() * 1e6), 1)
    for text in (reply, relay, target):
        octets = text.encode()
        payload += struct.pack("<I", len(octets)) + octets
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


BOUNCED, DSN_QUEUED = 3, 6


def crashed_after_dsn(postiliond, tmp_path):
    """Runs a bounce to the end with the sender's Maildir blocked (so the
    DSN stays queued), then puts back the original as a crash between the
    DSN's commit and the original's removal would leave it: its queue
    file, and a journal saying "bounced" and "DSN queued as X".  Returns
    (daemon stopped, original id, DSN id, alice's blocked Maildir).

    The DSN lives by the same 1 s max_lifetime as the original: it must
    still be queued when the daemon stops.  With a retry every 3 s the
    original bounces at its second try (3 s) and the DSN could only
    expire at its own second try, 3 s after it was queued: the stop has
    that long (with 200 ms retries it had 1.4 s, and a loaded machine
    took longer).  restart_config() gives the restart retries that wait
    for no one and a lifetime the DSN outlives."""
    d = postiliond(config=delivery_config(tmp_path, mailboxes=MAILBOXES,
                                          max_lifetime="1s",
                                          retry_first="3s", retry_max="3s"))
    block(tmp_path, "bob@example.org")
    alice = block(tmp_path, "alice@example.org")
    qid = send(d, "alice@example.org", ["bob@example.org"])
    queued = (d.spool / "queue" / qid).read_bytes()
    dsn_id = d.wait_log(rf"{qid}: sender delivery status notification: "
                        r"(\w+)", timeout=15).group(1)
    d.wait_log(rf"{qid}: removed")
    assert d.stop() == 0
    (d.spool / "queue" / qid).write_bytes(queued)
    (d.spool / "state" / qid).write_bytes(
        journal_record(BOUNCED, 0, "550 5.1.1 test: User unknown", "none")
        + journal_record(DSN_QUEUED, 0, target=dsn_id))
    return d, qid, dsn_id, alice


def restart_config(d) -> None:
    """The DSN must not expire (1 s) before the test unblocks its Maildir
    after the restart: on a loaded machine it did."""
    d.config["delivery"].update(max_lifetime="1h", retry_first="200ms",
                                retry_max="1s")
    d.write_config()


def test_no_second_dsn_when_the_dsn_was_queued(postiliond, tmp_path):
    d, qid, dsn_id, alice = crashed_after_dsn(postiliond, tmp_path)
    assert (d.spool / "queue" / dsn_id).exists()
    restart_config(d)
    mark = d.log_mark()
    d.start()
    alice.unlink()
    (raw,) = wait_messages(alice)
    wait_queue_empty(d)
    time.sleep(scaled(0.5))
    assert len(maildir_messages(alice)) == 1
    assert f"{qid}: sender delivery status notification" not in \
        d.log_text()[mark:]
    assert not (d.spool / "queue" / qid).exists()
    assert not (d.spool / "state" / qid).exists()


def test_dsn_sent_when_its_commit_never_happened(postiliond, tmp_path):
    d, qid, dsn_id, alice = crashed_after_dsn(postiliond, tmp_path)
    # The crash came before the DSN's commit: it is not in the queue.
    (d.spool / "queue" / dsn_id).unlink()
    (d.spool / "state" / dsn_id).unlink(missing_ok=True)
    restart_config(d)
    mark = d.log_mark()
    d.start()
    d.wait_log(rf"{qid}: sender delivery status notification", since=mark)
    alice.unlink()
    (raw,) = wait_messages(alice)
    wait_queue_empty(d)
    time.sleep(scaled(0.5))
    assert len(maildir_messages(alice)) == 1
    _, status, _ = parse(raw).get_payload()
    assert status_blocks(status)[1]["Action"] == "failed"
