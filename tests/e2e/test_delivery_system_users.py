"""System users' Maildirs ([delivery] system_users = true): postiliond
starts as root, forks its delivery helper, drops to [server] user, and the
helper writes ~user/Maildir/ as that user.  Needs root, like the daemon in
production (the test suite runs as root: it creates a throwaway user with
useradd and removes it)."""

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from delivery import parse, wait_messages, wait_queue_empty
from harness import Daemon, queue_id, transaction


@pytest.fixture
def system_user():
    assert os.geteuid() == 0, "this test creates a system user: run as root"
    base = Path(tempfile.mkdtemp(prefix="pst-e2e-", dir="/tmp"))
    base.chmod(0o755)
    name = "pst" + secrets.token_hex(4)
    home = base / "home"
    subprocess.run(["useradd", "-M", "-d", str(home), "-s",
                    "/usr/sbin/nologin", name], check=True)
    home.mkdir()
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    try:
        yield name, home, base
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_delivered_as_the_user_by_the_helper(postiliond, system_user):
    name, home, base = system_user
    d = postiliond(config={
        "server": {"user": "nobody", "spool": str(base / "spool")},
        "delivery": {"system_users": True, "retry_first": "200ms",
                     "retry_max": "1s"},
    })
    d.wait_log(r"delivery helper for system users started")
    d.wait_log(r"running as user nobody")
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, recipients=[f"{name}@example.org"]))
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert c.cmd("RCPT TO:<nosuchuser-xyz@example.org>").code == 550
        # root is never a mailbox
        assert c.cmd("RCPT TO:<root@example.org>").code == 550
    (raw,) = wait_messages(home / "Maildir")
    assert parse(raw)["Delivered-To"] == f"{name}@example.org"
    files = list((home / "Maildir" / "new").iterdir())
    owner = pwd.getpwnam(name).pw_uid
    assert files[0].stat().st_uid == owner
    assert (home / "Maildir").stat().st_uid == owner
    d.wait_log(rf"{qid}: to=<{name}@example.org>, relay=maildir, .*"
               r"status=sent")
    wait_queue_empty(d)


@contextlib.contextmanager
def readable_daemon(base: Path, config: dict):
    """A daemon whose directory and config file [server] user can read (a
    reload after the privilege drop rereads the file; pytest's tmp_path is
    root-only)."""
    d = Daemon(base / "daemon", config=config)
    try:
        d.start()
        yield d
    finally:
        if d.running:
            assert d.stop() == 0, d.log_text()


def test_reload_turning_system_users_on_is_refused(system_user):
    """The helper is forked as root before the privilege drop: a SIGHUP
    cannot start it, so turning system_users on is refused (restart
    needed) and the running configuration stays."""
    name, home, base = system_user
    (base / "mailboxes").write_text("bob@example.org\n")
    with readable_daemon(base, {
        "server": {"user": "nobody", "spool": str(base / "spool")},
        "delivery": {"maildir_root": str(base / "maildir"),
                     "mailboxes": str(base / "mailboxes"),
                     "retry_first": "200ms", "retry_max": "1s"},
    }) as d:
        d.wait_log(r"running as user nobody")
        assert "delivery helper" not in d.log_text()
        mark = d.log_mark()
        d.reload(config={"delivery": {"system_users": True}}, wait=0)
        d.wait_log(r"reload refused, the running configuration stays: "
                   r"\[delivery\] system_users = true needs a restart",
                   since=mark)
        with d.connect() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
            # The old configuration: system users are not mailboxes.
            assert c.cmd(f"RCPT TO:<{name}@example.org>").code == 550
        assert d.running


def test_reload_keeping_system_users_on_works(system_user):
    name, home, base = system_user
    with readable_daemon(base, {
        "server": {"user": "nobody", "spool": str(base / "spool")},
        "delivery": {"system_users": True, "retry_first": "200ms",
                     "retry_max": "1s"},
    }) as d:
        d.wait_log(r"running as user nobody")
        mark = d.log_mark()
        d.reload(config={"server": {"max_recipients": 50}}, wait=0)
        d.wait_log(r"reload: new sessions use the configuration", since=mark)
        with d.connect() as c:
            c.ehlo()
            qid = queue_id(transaction(c, recipients=[f"{name}@example.org"]))
        d.wait_log(rf"{qid}: to=<{name}@example.org>, relay=maildir, .*"
                   r"status=sent")
        (raw,) = wait_messages(home / "Maildir")
        assert parse(raw)["Delivered-To"] == f"{name}@example.org"
