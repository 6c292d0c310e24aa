"""A delivered message's file is recycled as a spare (doc/queue-format.md,
"Recycling"): it waits in tmp/ as used.* until a directory sync has made
that name durable, then becomes a spare of zeros.  After a crash, the
files still waiting are removed unread: never delivered again, never
moved to corrupt/, and the messages sent afterwards are delivered
whole."""

import re
import threading

from delivery import delivery_config, maildir_of, wait_for, wait_queue_empty
from harness import dot_stuff

TOKEN = re.compile(rb"X-Token: (r\d+)")


def send(daemon, tokens):
    with daemon.connect() as c:
        c.ehlo()
        for token in tokens:
            assert c.cmd("MAIL FROM:<s@client.test.example>").code == 250
            assert c.cmd("RCPT TO:<bob@example.org>").code == 250
            assert c.cmd("DATA").code == 354
            body = (f"Subject: {token}\r\nX-Token: {token}\r\n\r\n"
                    + "recycled?\r\n" * 100).encode()
            c.send(dot_stuff(body))
            assert c.read_reply().code == 250


def delivered(maildir):
    found = []
    for directory in ("new", "cur"):
        path = maildir / directory
        for f in path.iterdir() if path.is_dir() else []:
            match = TOKEN.search(f.read_bytes())
            if match:
                found.append(match.group(1).decode())
    return sorted(found)


def used_files(daemon):
    return [n for n in daemon.spool_files("tmp") if n.startswith("used.")]


def test_used_files_removed_unread_after_sigkill(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    maildir = maildir_of(tmp_path, "bob@example.org")
    first = [f"r{i}" for i in range(20)]
    send(d, first)
    wait_queue_empty(d, timeout=30)
    wait_for(lambda: len(delivered(maildir)) == len(first), 30,
             "the first messages delivered")
    wait_for(lambda: used_files(d), 10, "delivered files waiting in tmp/")
    assert d.tmp_leftovers() == []
    d.kill()
    d.start()
    assert used_files(d) == []
    assert d.spool_files("corrupt") == []
    wait_queue_empty(d, timeout=30)
    # Messages sent after the restart go into spares (some recycled) and
    # arrive whole, once each; the first ones are not delivered again.
    second = [f"r{i}" for i in range(20, 60)]
    send(d, second)
    wait_queue_empty(d, timeout=30)
    wait_for(lambda: len(delivered(maildir)) == len(first) + len(second), 30,
             "every message delivered")
    assert delivered(maildir) == sorted(first + second)
    assert d.spool_files("corrupt") == []


def send_concurrently(daemon, tokens, sessions):
    """One message per connection, `sessions` connections at a time: the
    spool commits them in batches (group commit) and in batches of one
    in between, so delivered files are recycled or unlinked by turns
    (doc/queue-format.md, "Recycling")."""
    chunks = [tokens[i::sessions] for i in range(sessions)]
    errors = []

    def sender(chunk):
        try:
            for token in chunk:
                send(daemon, [token])
        except Exception as e:  # reported below, with the others
            errors.append(e)

    threads = [threading.Thread(target=sender, args=(chunk,))
               for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert not any(t.is_alive() for t in threads)


def test_recycling_under_concurrency_survives_sigkill(postiliond, tmp_path):
    """Sessions at once, in several waves with a SIGKILL between two:
    every message delivered whole and once, whatever the spool recycled
    meanwhile; nothing in corrupt/, no used.* left after the restart."""
    d = postiliond(config=delivery_config(tmp_path))
    maildir = maildir_of(tmp_path, "bob@example.org")
    sent = []
    for wave in range(3):
        tokens = [f"r{1000 * (wave + 1) + i}" for i in range(60)]
        send_concurrently(d, tokens, 12)
        sent += tokens
        wait_queue_empty(d, timeout=60)
        wait_for(lambda: len(delivered(maildir)) == len(sent), 60,
                 "the wave delivered")
        assert d.tmp_leftovers() == []
    d.kill()
    d.start()
    assert used_files(d) == []
    assert d.spool_files("corrupt") == []
    tokens = [f"r{4000 + i}" for i in range(60)]
    send_concurrently(d, tokens, 12)
    sent += tokens
    wait_queue_empty(d, timeout=60)
    wait_for(lambda: len(delivered(maildir)) == len(sent), 60,
             "every message delivered")
    assert delivered(maildir) == sorted(sent)
    assert d.spool_files("corrupt") == []
