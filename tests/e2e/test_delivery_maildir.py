"""Local delivery into real Maildirs through the real daemon: the message
lands in DIR/DOMAIN/LOCALPART/new with Return-Path and Delivered-To, the
log line is greppable, the queue drains, unknown recipients are refused at
RCPT, aliases expand, temporary failures are retried and then bounce as an
RFC 3464 DSN (parsed back with Python's email module)."""

import os
import re

from delivery import (delivery_config, maildir_of, parse, wait_for,
                      wait_messages, wait_queue_empty)
from harness import queue_id, simple_message, transaction


def test_delivered_into_maildir(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, recipients=["Bob@example.org"],
                                   message=simple_message("hi", "line\r\n.dot")))
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    msg = parse(raw)
    assert msg["Return-Path"] == "<alice@client.test.example>"
    assert msg["Delivered-To"] == "bob@example.org"
    assert msg["Subject"] == "hi"
    assert b"\r\n" not in raw  # Maildir files use LF line ends
    assert raw.endswith(b"line\n.dot\n")
    line = d.wait_log(rf"{qid}: to=<bob@example.org>, orig_to=<Bob@example.org>"
                      r", relay=maildir, delay=\d+\.\d\d, status=sent "
                      r"\(250 2\.0\.0 delivered to mailbox\)")
    assert line
    wait_queue_empty(d)
    wait_for(lambda: not list((d.spool / "state").iterdir()), 5,
             "the state journal to go")
    mode = os.stat(maildir_of(tmp_path, "bob@example.org")).st_mode & 0o777
    assert mode == 0o700
    assert not list((maildir_of(tmp_path, "bob@example.org") / "tmp").iterdir())


def test_unknown_recipient_refused_at_rcpt(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        reply = c.cmd("RCPT TO:<carol@example.org>")
        assert (reply.code, reply.enhanced) == (550, "5.1.1")
        assert reply.last.endswith("<carol@example.org>: User unknown")
        assert c.cmd("RCPT TO:<BOB@EXAMPLE.ORG>").code == 250
    assert d.spool_messages() == []


def test_catch_all_and_no_mailbox_file(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path,
                                          mailboxes=["*@example.net"]))
    with d.connect() as c:
        c.ehlo()
        transaction(c, recipients=["anyone@example.net"])
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert c.cmd("RCPT TO:<x@example.org>").code == 550
    wait_messages(maildir_of(tmp_path, "anyone@example.net"))


ALIASES = """# the usual
postmaster: alice
team: alice,
  bob, friend@elsewhere.example   # one outside
Loop1: loop2
loop2: loop1
"""


def test_aliases_expand_and_loop_refused(postiliond, tmp_path):
    config = delivery_config(tmp_path, aliases=ALIASES)
    # Nobody answers DNS on port 9: the outside target's MX lookup fails.
    config["dns"] = {"nameservers": "127.0.0.1@9", "timeout": "300ms",
                     "dnssec": "no"}
    d = postiliond(config=config)
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, recipients=["TEAM@example.org",
                                                  "postmaster"]))
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        reply = c.cmd("RCPT TO:<loop1@example.org>")
        assert reply.code == 550 and reply.last.endswith("Alias loop")
    # alice through both team and postmaster: one copy.
    (alice,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    bob = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert parse(alice)["Delivered-To"] == "alice@example.org"
    assert parse(bob[0])["Delivered-To"] == "bob@example.org"
    for orig in ("TEAM@example.org", "postmaster"):
        d.wait_log(rf"{qid}: to=<alice@example.org>, orig_to=<{orig}[^>]*>, "
                   r"relay=maildir, .*status=sent")
    # The outside target goes by SMTP; its MX lookup fails: deferred.
    d.wait_log(rf"{qid}: to=<friend@elsewhere.example>, "
               r"orig_to=<TEAM@example.org>, relay=none, .*status=deferred "
               r"\(451 4\.4\.3 DNS lookup failed")
    assert [m["id"] for m in d.spool_messages()] == [qid]


def test_duplicate_recipients_get_one_copy(postiliond, tmp_path):
    """A recipient named twice (To: and Cc:, any case), and again through
    an alias, gets one copy, as Postfix, Exim and Sendmail deliver; each
    envelope recipient is delivered (logged, no bounce, the queue
    drains)."""
    d = postiliond(config=delivery_config(
        tmp_path, aliases="team: bob@example.org, alice@example.org\n"))
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, recipients=[
            "bob@example.org", "bob@example.org", "BOB@example.org",
            "team@example.org"]))
    wait_queue_empty(d)
    (bob,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    (alice,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    assert parse(bob)["Delivered-To"] == "bob@example.org"
    lines = [line for line in d.log_lines()
             if f"{qid}: to=<bob@example.org>" in line]
    assert len(lines) == 4 and all("status=sent" in x for x in lines)
    # Nothing came back to the sender: no recipient was left undelivered.
    assert not maildir_of(tmp_path, "alice@client.test.example").exists()


def test_bad_aliases_file_refused_at_start_and_kept_on_reload(postiliond,
                                                              tmp_path):
    d = postiliond(config=delivery_config(tmp_path, aliases="x: y\n"),
                   start=False)
    (tmp_path / "aliases").write_text("ok: bob\nnot an alias line\n")
    d.expect_exit = True
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert f"{tmp_path / 'aliases'}:2: expected" in d.log_text()
    (tmp_path / "aliases").write_text("ok: bob\n")
    d.expect_exit = False
    d.start()
    mark = d.log_mark()
    (tmp_path / "aliases").write_text("ok: bob\nbroken\n")
    d.reload()
    d.wait_log(r"the last good mailbox and alias tables stay", since=mark)
    with d.connect() as c:
        c.ehlo()
        transaction(c, recipients=["ok@example.org"])
    wait_messages(maildir_of(tmp_path, "bob@example.org"))


def test_temporary_failure_retried_then_delivered(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    blocked = maildir_of(tmp_path, "bob@example.org")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c))
    d.wait_log(rf"{qid}: to=<bob@example.org>, relay=maildir, .*"
               r"status=deferred \(451 4\.3\.0 cannot create")
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred", timeout=5,
               since=d.log_mark() - 1)
    blocked.unlink()
    wait_messages(blocked)
    wait_queue_empty(d)
    attempts = re.findall(rf"{qid}: to=<bob@example.org>", d.log_text())
    assert len(attempts) >= 2


def test_expired_message_bounces_with_a_dsn(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, max_lifetime="1s"))
    blocked = maildir_of(tmp_path, "bob@example.org")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(
            c, sender="alice@example.org", recipients=["bob@example.org"],
            mail_params="RET=HDRS ENVID=env-42",
            message=simple_message("lost", "secret body")))
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"),
                           timeout=15)
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=bounced \(421 4\.4\.7 "
               r"message expired after \d+ (second|minute|hour|day)s? in the "
               r"queue")
    dsn = parse(raw)
    assert dsn["Return-Path"] == "<>"
    assert dsn["To"].addresses[0].addr_spec == "alice@example.org"
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    human, status, original = dsn.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.test.example"
    assert per_message["Original-Envelope-Id"] == "env-42"
    assert per_rcpt["Final-Recipient"] == "rfc822; bob@example.org"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "4.4.7"
    assert original.get_content_type() == "text/rfc822-headers"
    assert "secret body" not in original.as_string()
    assert "Subject: lost" in original.get_payload()
    wait_queue_empty(d)


def test_no_bounce_to_null_sender(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, max_lifetime="1s"))
    blocked = maildir_of(tmp_path, "bob@example.org")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a directory")
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, sender=""))
    d.wait_log(rf"{qid}: no DSN: the sender is <>", timeout=15)
    wait_queue_empty(d)


def test_notify_success_and_never(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org> NOTIFY=SUCCESS "
                     "ORCPT=rfc822;Bob@example.org").code == 250
        assert c.cmd("DATA").code == 354
        c.send(simple_message("s", "b") + b".\r\n")
        queue_id(c.read_reply())
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    dsn = parse(raw)
    _, status, original = dsn.get_payload()
    per_rcpt = status.get_payload()[1]
    assert per_rcpt["Action"] == "delivered"
    assert per_rcpt["Original-Recipient"] == "rfc822; Bob@example.org"
    assert original.get_content_type() == "text/rfc822-headers"


def test_quarantined_message_held_not_delivered(postiliond, tmp_path):
    config = delivery_config(tmp_path)
    config["plugin:testpolicy"] = {"eom": "quarantine"}
    d = postiliond(config=config, plugins=["testpolicy"])
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c))
    assert [m["id"] for m in d.spool_messages("hold")] == [qid]
    assert not (maildir_of(tmp_path, "bob@example.org") / "new").exists()


def test_queued_before_delivery_configured_delivered_at_start(postiliond,
                                                              tmp_path):
    d = postiliond()
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c))
    d.stop()
    d.config.update(delivery_config(tmp_path))
    d.write_config()
    d.start()
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=sent")
    wait_queue_empty(d)
