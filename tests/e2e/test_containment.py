"""Containment (doc/security.md): after start-up the daemon holds no root
privilege and no capability, on every thread (read from /proc/PID/status),
and its control socket is its own, mode 0600; the privileged delivery
helper refuses whatever lies outside system users' own Maildirs (a uid
below 1000, a home directory with `..`, a symlinked Maildir), asked
directly (the test tool pst-local-helper-probe talks to the real helper,
bypassing the daemon's checks) and through the daemon.

Needs root (it starts the daemon as root and creates throwaway users)."""

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import BUILD, transaction

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="starts the daemon as root, creates users")

PROBE = BUILD / "tests" / "pst-local-helper-probe"


def status_fields(path: Path) -> dict:
    fields = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


@pytest.fixture
def base():
    directory = Path(tempfile.mkdtemp(prefix="pst-e2e-", dir="/tmp"))
    directory.chmod(0o755)
    users = []
    try:
        yield directory, users
    finally:
        for name in users:
            subprocess.run(["userdel", name], check=False,
                           capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


def add_user(users: list, home: str, uid: int | None = None) -> str:
    name = "pst" + secrets.token_hex(4)
    args = ["useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin"]
    if uid is not None:
        args += ["-u", str(uid), "-o"]
    subprocess.run(args + [name], check=True, capture_output=True)
    users.append(name)
    return name


def free_system_uid() -> int:
    for uid in range(990, 900, -1):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    pytest.skip("no free uid below 1000")


def test_daemon_runs_without_privileges(postiliond, base):
    directory, _ = base
    d = postiliond(config={
        "server": {"user": "nobody", "spool": str(directory / "spool")},
        "delivery": {"system_users": True},
    })
    d.wait_log(r"running as user nobody")
    nobody = pwd.getpwnam("nobody")
    tasks = list(Path(f"/proc/{d.pid}/task").iterdir())
    assert tasks
    for task in tasks:
        fields = status_fields(task / "status")
        assert fields["Uid"] == [str(nobody.pw_uid)] * 4, (task, fields["Uid"])
        assert fields["Gid"] == [str(nobody.pw_gid)] * 4, (task, fields["Gid"])
        groups = {int(g) for g in fields.get("Groups", [])}
        assert 0 not in groups
        assert groups <= {nobody.pw_gid} | {
            g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem}
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(fields[cap][0], 16) == 0, (task, cap, fields[cap])
        assert fields["NoNewPrivs"] == ["1"], task
    control = d.spool / "control"
    st = control.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == nobody.pw_uid
    # The helper is the one process that keeps root, by design: it is the
    # daemon's child, and its own children switch to the recipient.
    d.wait_log(r"delivery helper for system users started \(pid \d+\)")


def test_helper_refuses_outside_user_maildirs(base):
    directory, users = base
    if not PROBE.exists():
        pytest.skip(f"{PROBE} not built")
    victim = directory / "victim"
    victim.mkdir()
    # A proper user: delivered (the probe proves the helper works).
    good_home = directory / "good"
    good = add_user(users, str(good_home))
    good_home.mkdir()
    entry = pwd.getpwnam(good)
    os.chown(good_home, entry.pw_uid, entry.pw_gid)
    # A uid below 1000.
    low = add_user(users, str(directory / "low"), uid=free_system_uid())
    (directory / "low").mkdir()
    os.chown(directory / "low", pwd.getpwnam(low).pw_uid, 0)
    # A home with `..` that would land in the victim's directory.
    (directory / "x").mkdir()
    climber = add_user(users, str(directory / "x" / ".." / "victim"))
    # A Maildir that is a symlink into the victim's directory, and one
    # whose new/ is.
    linked_home = directory / "linked"
    linked = add_user(users, str(linked_home))
    linked_home.mkdir()
    (linked_home / "Maildir").symlink_to(victim)
    sub_home = directory / "sub"
    sub = add_user(users, str(sub_home))
    (sub_home / "Maildir").mkdir(parents=True)
    (sub_home / "Maildir" / "new").symlink_to(victim)
    for home, name in ((linked_home, linked), (sub_home, sub)):
        e = pwd.getpwnam(name)
        for path in (home, home / "Maildir"):
            os.lchown(path, e.pw_uid, e.pw_gid)
    victim.chmod(0o777)  # writable by anyone: only the helper's rule stops it

    out = subprocess.run(
        [str(PROBE), good, low, climber, linked, sub, "root", "nobody",
         "../etc"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    results = {}
    for line in out.stdout.splitlines():
        user, verdict, text = line.split(" ", 2)
        results[user] = (verdict, text)
    assert results[good][0] == "delivered", results[good]
    assert results[low] == ("refused", results[low][1])
    assert "system account" in results[low][1]
    assert results[climber][0] == "refused" and "“..”" in results[climber][1]
    assert results[linked][0] == "refused"
    assert "symbolic link" in results[linked][1]
    assert results[sub][0] == "refused" and "symbolic link" in results[sub][1]
    for name in ("root", "nobody"):
        assert results[name][0] == "refused", results[name]
    assert results["../etc"][0] == "refused"
    assert list(victim.iterdir()) == [], "the helper wrote through a link"


def test_daemon_defers_symlinked_maildir(postiliond, base):
    """Through the daemon: a symlinked Maildir is never written (the
    recipient stays deferred); a uid below 1000 is no mailbox (550)."""
    directory, users = base
    victim = directory / "victim"
    victim.mkdir(mode=0o777)
    victim.chmod(0o777)
    home = directory / "linked"
    linked = add_user(users, str(home))
    home.mkdir()
    (home / "Maildir").symlink_to(victim)
    low = add_user(users, str(directory / "low"), uid=free_system_uid())
    d = postiliond(config={
        "server": {"user": "nobody", "spool": str(directory / "spool")},
        "delivery": {"system_users": True, "retry_first": "200ms",
                     "retry_max": "1s"},
    })
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@client.test.example>").code == 250
        assert c.cmd(f"RCPT TO:<{low}@example.org>").code == 550
        assert c.cmd("RSET").code == 250
        transaction(c, recipients=[f"{linked}@example.org"])
    d.wait_log(rf"to=<{linked}@example.org>, relay=maildir, .*"
               r"status=deferred .*symbolic link")
    assert list(victim.iterdir()) == []
