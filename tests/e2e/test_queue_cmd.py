"""The `postilion` admin command against the real daemon: queue list and
show read the spool (also with the daemon down), flush/hold/release/delete
go over the control socket, check-config names a bad aliases line."""

import subprocess

from delivery import (delivery_config, maildir_of, wait_for, wait_messages,
                      wait_queue_empty)
from harness import BUILD, queue_id, simple_message, transaction

POSTILION = BUILD / "tools" / "postilion"


def postilion(daemon, *args, timeout=20):
    proc = subprocess.run([str(POSTILION), "-c", str(daemon.conf_path),
                           *args], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def send(daemon, **kwargs):
    with daemon.connect() as c:
        c.ehlo()
        return queue_id(transaction(c, **kwargs))


def test_list_and_show_with_state_and_error(postiliond, tmp_path):
    config = delivery_config(tmp_path, retry_first="1h", retry_max="1h")
    d = postiliond(config=config)
    blocked = maildir_of(tmp_path, "bob@example.org")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("x")
    qid = send(d, recipients=["bob@example.org"],
               message=simple_message("listed", "b"))
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred")
    rc, out, err = postilion(d, "queue", "list")
    assert rc == 0, err
    assert qid in out and "<alice@client.test.example>" in out
    assert "<bob@example.org>  deferred  attempts=1  (451 4.3.0 cannot " \
           "create" in out
    assert out.rstrip().endswith("-- 1 message")
    rc, out, err = postilion(d, "queue", "show", qid)
    assert rc == 0, err
    assert f"id: {qid}" in out and "Subject: listed" in out
    # With the daemon down, listing still works.
    d.stop()
    rc, out, _ = postilion(d, "queue", "list")
    assert rc == 0 and qid in out
    rc, _, err = postilion(d, "queue", "flush")
    assert rc == 69 and "cannot reach the daemon" in err


def test_flush_hold_release_delete(postiliond, tmp_path):
    config = delivery_config(tmp_path, retry_first="1h", retry_max="1h")
    d = postiliond(config=config)
    blocked = maildir_of(tmp_path, "bob@example.org")
    blocked.parent.mkdir(parents=True)
    blocked.write_text("x")
    qid = send(d)
    d.wait_log(rf"{qid}: to=<bob@example.org>.*status=deferred")
    assert postilion(d, "queue", "hold", qid)[0] == 0
    assert [m["id"] for m in d.spool_messages("hold")] == [qid]
    rc, out, _ = postilion(d, "queue", "list")
    assert f"{qid}  hold" in out
    blocked.unlink()
    assert postilion(d, "queue", "release", qid)[0] == 0
    wait_messages(blocked)
    wait_queue_empty(d)
    # flush of one message retries it at once, despite retry_first=1h.
    blocked2 = maildir_of(tmp_path, "alice@example.org")
    blocked2.parent.mkdir(parents=True, exist_ok=True)
    blocked2.write_text("x")
    qid2 = send(d, recipients=["alice@example.org"])
    d.wait_log(rf"{qid2}: to=<alice@example.org>.*status=deferred")
    blocked2.unlink()
    assert postilion(d, "queue", "flush", qid2)[0] == 0
    wait_messages(blocked2)
    # delete
    blocked2_again = maildir_of(tmp_path, "bob@example.org")
    blocked2_again.rename(tmp_path / "moved")
    blocked2_again.write_text("x")
    qid3 = send(d)
    d.wait_log(rf"{qid3}: to=<bob@example.org>.*status=deferred")
    assert postilion(d, "queue", "delete", qid3)[0] == 0
    d.wait_log(rf"{qid3}: deleted by the operator")
    assert d.spool_messages() == []
    assert not list((d.spool / "state").iterdir())
    rc, _, err = postilion(d, "queue", "delete", qid3)
    assert rc != 0 and "cannot remove" in err
    rc, _, err = postilion(d, "queue", "hold", "../../etc")
    assert rc != 0 and "is not a queue id" in err


def test_release_quarantined(postiliond, tmp_path):
    config = delivery_config(tmp_path)
    config["plugin:testpolicy"] = {"eom": "quarantine"}
    d = postiliond(config=config, plugins=["testpolicy"])
    qid = send(d)
    assert postilion(d, "queue", "release", qid)[0] == 0
    wait_messages(maildir_of(tmp_path, "bob@example.org"))


def test_check_config(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, aliases="a: bob\n"),
                   start=False)
    d.write_config()
    rc, out, err = postilion(d, "check-config")
    assert rc == 0 and "configuration OK" in out, err
    (tmp_path / "aliases").write_text("a: bob\nb: |/bin/sh\n")
    rc, out, err = postilion(d, "check-config")
    assert rc == 78
    assert f"{tmp_path / 'aliases'}:2: \"|/bin/sh\": only local names" in err
