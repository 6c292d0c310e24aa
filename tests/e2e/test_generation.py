"""A session keeps the configuration generation it started on: recipient
tables, plugins and services.  A SIGHUP that changes the mailboxes file
leaves a session opened before it answering RCPT from the old tables, while
a session opened after it uses the new ones (the real daemon, two SMTP
connections interleaved around the reload)."""

from delivery import delivery_config, maildir_of, wait_messages
from harness import transaction


def _rcpt(client, address):
    return client.cmd(f"RCPT TO:<{address}>")


def test_session_keeps_its_generations_tables_across_reload(postiliond,
                                                            tmp_path):
    d = postiliond(config=delivery_config(tmp_path,
                                          mailboxes=["bob@example.org"]))
    with d.connect() as old:
        old.ehlo()
        assert old.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert _rcpt(old, "bob@example.org").code == 250
        mark = d.log_mark()
        (tmp_path / "mailboxes").write_text("carol@example.org\n")
        d.reload(wait=0)
        d.wait_log(r"reload: new sessions use the configuration", since=mark)

        # The session opened before the reload: its own generation's tables.
        reply = _rcpt(old, "carol@example.org")
        assert (reply.code, reply.enhanced) == (550, "5.1.1")
        assert reply.last.endswith("<carol@example.org>: User unknown")
        assert _rcpt(old, "bob@example.org").code == 250
        assert old.cmd("RSET").code == 250

        # A new session: the new tables.
        with d.connect() as new:
            new.ehlo()
            assert new.cmd("MAIL FROM:<a@client.test.example>").code == 250
            assert _rcpt(new, "carol@example.org").code == 250
            reply = _rcpt(new, "bob@example.org")
            assert (reply.code, reply.enhanced) == (550, "5.1.1")
            assert new.cmd("RSET").code == 250
            transaction(new, recipients=["carol@example.org"])

        # Still the old tables in the old session, after the new one ended.
        assert old.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert _rcpt(old, "carol@example.org").code == 550
    wait_messages(maildir_of(tmp_path, "carol@example.org"))


def test_failed_tables_reload_keeps_last_good_tables_for_new_sessions(
        postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path, aliases="ok: bob\n"))
    mark = d.log_mark()
    (tmp_path / "aliases").write_text("ok: bob\nbroken\n")
    (tmp_path / "mailboxes").write_text("carol@example.org\n")
    d.reload(wait=0)
    d.wait_log(r"the last good mailbox and alias tables stay", since=mark)
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert _rcpt(c, "ok@example.org").code == 250
        assert _rcpt(c, "carol@example.org").code == 550
