"""System users' Maildirs ([delivery] system_users = true): postiliond
starts as root, forks its delivery helper, drops to [server] user, and the
helper writes ~user/Maildir/ as that user.  Needs root, like the daemon in
production (the test suite runs as root: it creates a throwaway user with
useradd and removes it)."""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from delivery import parse, wait_messages, wait_queue_empty
from harness import queue_id, transaction


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
