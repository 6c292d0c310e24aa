"""LMTP delivery to a real LMTP server (a Python one from delivery.py):
per-recipient replies are honoured (250 for one and 452 for another: only
the second is retried), a 5xx bounces, a server that is down or replies
garbage is a temporary failure."""

from delivery import LMTPServer, delivery_config, wait_for, wait_queue_empty
from harness import free_port, queue_id, simple_message, transaction


def lmtp_config(tmp_path, server, **keys):
    config = delivery_config(tmp_path, **keys)
    del config["delivery"]["maildir_root"]
    config["delivery"]["lmtp"] = f"127.0.0.1:{server.port}"
    return config


def send(d, **kwargs):
    with d.connect() as c:
        c.ehlo()
        return queue_id(transaction(c, **kwargs))


def test_per_recipient_replies(postiliond, tmp_path):
    server = LMTPServer()
    server.data_replies["alice@example.org"] = "452 4.2.2 Mailbox full"
    try:
        d = postiliond(config=lmtp_config(tmp_path, server))
        qid = send(d, recipients=["bob@example.org", "alice@example.org"],
                   message=simple_message("lmtp", "..dots\r\nend"))
        d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*status=sent "
                   r"\(250 2\.0\.0 Ok\)")
        d.wait_log(rf"{qid}: to=<alice@example.org>, relay=lmtp, .*"
                   r"status=deferred \(452 4\.2\.2 Mailbox full\)")
        server.data_replies.clear()
        wait_queue_empty(d)
        delivered = [addr for addr, _ in server.delivered]
        assert delivered.count("bob@example.org") == 1  # never retried
        assert delivered.count("alice@example.org") == 1
        data = dict(server.delivered)["bob@example.org"]
        # Dot-stuffed on the wire, unstuffed by the server: as queued.
        assert b"Subject: lmtp" in data
        assert data.endswith(b"\r\n\r\n..dots\r\nend\r\n")
    finally:
        server.close()


def test_rcpt_refused_permanently_bounces(postiliond, tmp_path):
    server = LMTPServer()
    server.rcpt_replies["bob@example.org"] = "550 5.1.1 No such user"
    try:
        d = postiliond(config=lmtp_config(tmp_path, server))
        qid = send(d, sender="")
        d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*"
                   r"status=bounced \(550 5\.1\.1 No such user\)")
        d.wait_log(rf"{qid}: no DSN: the sender is <>")
        wait_queue_empty(d)
    finally:
        server.close()


def test_server_down_is_temporary(postiliond, tmp_path):
    server = LMTPServer()
    config = lmtp_config(tmp_path, server)
    server.close()
    # Nothing listens on this port: connection refused.
    config["delivery"]["lmtp"] = f"127.0.0.1:{free_port()}"
    d = postiliond(config=config)
    qid = send(d)
    d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*status=deferred "
               r"\(451 4\.4\.1 LMTP server 127\.0\.0\.1:\d+: ")
    assert [m["id"] for m in d.spool_messages()] == [qid]


def test_garbage_is_temporary(postiliond, tmp_path):
    server = LMTPServer()
    server.garbage = True
    try:
        d = postiliond(config=lmtp_config(tmp_path, server))
        qid = send(d)
        d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*"
                   r"status=deferred \(451 4\.4\.1 the LMTP server replied "
                   r"garbage")
        server.garbage = False
        wait_queue_empty(d)
        assert [a for a, _ in server.delivered] == ["bob@example.org"]
    finally:
        server.close()
