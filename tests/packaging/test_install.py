"""test_install.py - the Debian packages, installed on this machine as an
admin would: build them (packaging/build-debs.sh: dpkg-buildpackage -us
-uc -b in a private copy, no network), lintian, `apt-get install
./*.deb`, start the installed daemon the way postiliond.service does
(ExecStartPre, then ExecStart with NOTIFY_SOCKET, waiting for READY=1;
no systemd as PID 1 needed), send mail with swaks into a Maildir,
`apt-get remove` one plugin and restart without it, purge everything
and check that no file of ours is left outside the spool.  Leaves
nothing behind: the test removes the spool, the system user and the
self-signed certificate it caused, and any policy-rc.d it added.

Runs as root only (CI does), and only on a machine where Postilion was
never installed (no package, no user, no spool): it never touches an
admin's installation.  scripts/test.sh runs it as its own step after the
two builds' tests (PACKAGE_TEST=0 skips it).  The tests run in file
order and share one installation (the module fixture).

    /usr/bin/python3 -m pytest tests/packaging -q -p no:cacheprovider

POSTILION_DEBS=DIR installs the .deb files of DIR instead of building
(packaging/build-debs.sh DIR makes them).
"""

from __future__ import annotations

import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = Path("/lib/systemd/system/postiliond.service")
CONF_D = Path("/etc/postilion/conf.d")
SPOOL = Path("/var/spool/postilion")
SNAKEOIL = (Path("/etc/ssl/certs/ssl-cert-snakeoil.pem"),
            Path("/etc/ssl/private/ssl-cert-snakeoil.key"))
PLUGINS = ("relay", "tls", "auth", "spf", "dkim", "dmarc", "milter")
PACKAGES = ("postilion", "libpostilion1", "libpostilion-dev",
            *(f"postilion-plugin-{name}" for name in PLUGINS))
# Where the snapshot looks for files (dpkg's status is compared by package
# state: it changes for reasons of its own).
SCANNED = ("/etc", "/usr", "/var/lib", "/var/spool", "/var/mail")
APT = ["apt-get", "-y", "-q", "--no-install-recommends",
       "-o", "DPkg::Lock::Timeout=900"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
READY_TIMEOUT = 60.0


def run(argv, timeout=120.0, check=True, **kwargs):
    """Runs `argv`; its CompletedProcess with text output."""
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def known_packages() -> list[str]:
    """Our packages dpkg knows in any state (installed, config-files)."""
    proc = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n",
                *PACKAGES], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines()
            if len(line.split()) > 1 and line.split()[1] != "un"]


def snapshot() -> set[str]:
    """Every path under SCANNED."""
    proc = run(["find", *[p for p in SCANNED if os.path.exists(p)], "-xdev"],
               timeout=300, check=False)
    return set(proc.stdout.splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unit_commands() -> dict[str, list[list[str]]]:
    """ExecStartPre and ExecStart of the installed unit, as argv lists."""
    commands: dict[str, list[list[str]]] = {"ExecStartPre": [], "ExecStart": []}
    for line in UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in commands:
            commands[key].append(shlex.split(value))
    assert len(commands["ExecStart"]) == 1, commands
    return commands


class Installation:
    """What the tests share: the packages, the daemon, what to undo."""

    def __init__(self, work: Path):
        self.work = work
        self.debs = work / "debs"
        self.maildirs = work / "maildirs"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.notify: socket.socket | None = None
        self.log = work / "postiliond.log"
        self.before: set[str] = set()
        self.sendmail_before = os.path.realpath("/usr/sbin/sendmail") \
            if os.path.lexists("/usr/sbin/sendmail") else None
        self.snakeoil_before = [p.exists() for p in SNAKEOIL]
        self.policy_added = False

    # --- the daemon, the way the unit runs it ------------------------------

    def start(self) -> str:
        """ExecStartPre, then ExecStart with NOTIFY_SOCKET and the unit's
        LimitNOFILE; returns the READY=1 datagram."""
        commands = unit_commands()
        for argv in commands["ExecStartPre"]:
            run(argv, timeout=60)
        path = self.work / "notify"
        path.unlink(missing_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(path))
        path.chmod(0o777)  # as systemd's: the daemon sends after its drop
        self.notify.settimeout(READY_TIMEOUT)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "NOTIFY_SOCKET": str(path)}

        def limits():  # LimitNOFILE=65536, as far as this machine allows
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if hard != resource.RLIM_INFINITY:
                hard = min(hard, 65536)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                commands["ExecStart"][0], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, env=env, cwd="/", preexec_fn=limits)
        return self.wait_notify("READY=1")

    def wait_notify(self, state: str) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                message = self.notify.recv(4096).decode()
            except socket.timeout:
                break
            if message.startswith(state):
                return message
        raise AssertionError(f"no {state} from postiliond within "
                             f"{READY_TIMEOUT}s; log:\n{self.log_text()}")

    def stop(self) -> int:
        """SIGTERM, as systemctl stop sends it; the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        self.wait_notify("STOPPING=1")
        status = self.proc.wait(timeout=60)
        self.notify.close()
        return status

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.notify is not None:
            self.notify.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def swaks(self, subject: str) -> subprocess.CompletedProcess:
        return run(["swaks", "--server", f"127.0.0.1:{self.port}",
                    "--from", "sender@example.org",
                    "--to", "postmaster@example.org",
                    "--helo", "client.install-test.example",
                    "--header", f"Subject: {subject}",
                    "--body", "Sent by tests/packaging/test_install.py"],
                   timeout=60)

    def delivered(self, subject: str, timeout: float = 60.0) -> Path:
        """The Maildir file whose Subject is `subject`, once delivered."""
        new = self.maildirs / "example.org" / "postmaster" / "new"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in new.glob("*") if new.is_dir() else []:
                if f"Subject: {subject}" in path.read_text(errors="replace"):
                    return path
            time.sleep(0.2)
        raise AssertionError(f"nothing with Subject: {subject} in {new}; "
                             f"log:\n{self.log_text()}")

    # --- undoing everything ------------------------------------------------

    def cleanup(self) -> list[str]:
        """Undoes what the test caused; the problems met on the way."""
        problems = []
        self.kill()
        (CONF_D / "90-install-test.conf").unlink(missing_ok=True)
        left = known_packages()
        if left:
            proc = run(APT + ["purge", *left], env=APT_ENV, timeout=600,
                       check=False)
            if proc.returncode != 0:
                problems.append(f"purge failed: {proc.stderr}")
        shutil.rmtree(SPOOL, ignore_errors=True)
        for command in (["userdel", "postilion"], ["groupdel", "postilion"]):
            run(command, check=False)
        for path, existed in zip(SNAKEOIL, self.snakeoil_before):
            if not existed:
                path.unlink(missing_ok=True)
        for path in Path("/etc/ssl/certs").glob("*.0"):
            if (path.is_symlink() and not path.exists()
                    and "ssl-cert-snakeoil" in os.readlink(path)):
                path.unlink()
        if self.policy_added:
            Path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
        return problems


def precondition_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (apt-get install)"
    for program in ("dpkg-buildpackage", "apt-get", "swaks", "dh"):
        if shutil.which(program) is None:
            return f"{program} is not installed (scripts/setup-debian.sh)"
    if known_packages():
        return "Postilion packages are installed here: not touching them"
    try:
        pwd.getpwnam("postilion")
        return "a user postilion exists here: not touching it"
    except KeyError:
        pass
    if SPOOL.exists():
        return f"{SPOOL} exists here: not touching it"
    return None


@pytest.fixture(scope="module")
def installed():
    problem = precondition_problem()
    if problem:
        pytest.skip(problem)
    work = Path(tempfile.mkdtemp(prefix="pst-install-"))
    work.chmod(0o755)  # the daemon's user reaches the Maildirs inside
    inst = Installation(work)
    try:
        inst.before = snapshot()
        # Packages must not start services on their own (no systemd here,
        # or CI's systemd): the usual policy-rc.d, if none is in place.
        policy = Path("/usr/sbin/policy-rc.d")
        if not policy.exists():
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            inst.policy_added = True
        prebuilt = os.environ.get("POSTILION_DEBS")
        if prebuilt:
            shutil.copytree(prebuilt, inst.debs)
        else:
            env = dict(os.environ, DEB_BUILD_OPTIONS="noautodbgsym nocheck")
            run(["bash", str(REPO / "packaging" / "build-debs.sh"),
                 str(inst.debs)], env=env, timeout=1800)
        debs = sorted(str(p) for p in inst.debs.glob("*.deb"))
        run(APT + ["install", *debs], env=APT_ENV, timeout=600)
        yield inst
    finally:
        problems = inst.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        assert not problems, problems


def test_lintian_reports_no_errors(installed):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    debs = sorted(str(p) for p in installed.debs.glob("*.deb"))
    proc = run(["lintian", "--tag-display-limit", "0", *debs], timeout=600,
               check=False)
    errors = [line for line in proc.stdout.splitlines()
              if line.startswith("E:")]
    assert not errors, proc.stdout


def test_packages_install_what_they_should(installed):
    files = {name: run(["dpkg", "-L", name]).stdout.splitlines()
             for name in PACKAGES}
    for name in PLUGINS:
        package = files[f"postilion-plugin-{name}"]
        assert any(path.endswith(f"/postilion/plugins/{name}.so")
                   for path in package), package
        assert any(re.search(rf"/etc/postilion/conf.d/\d\d-{name}.conf$", p)
                   for p in package), package
        assert f"/usr/share/doc/postilion-plugin-{name}/README.md.gz" in package
    assert any(p.endswith("/pst-spf-eval")
               for p in files["postilion-plugin-spf"])
    assert "/usr/include/postilion/plugin.h" in files["libpostilion-dev"]
    assert any(p.endswith("/pkgconfig/postilion-plugin.pc")
               for p in files["libpostilion-dev"])
    assert ("/usr/share/doc/libpostilion-dev/examples/hello/hello.c"
            in files["libpostilion-dev"])
    # The daemon's user, the spool, and sendmail as an alternative that
    # never replaces an installed Postfix's /usr/sbin/sendmail.
    assert pwd.getpwnam("postilion").pw_dir == str(SPOOL)
    assert SPOOL.is_dir()
    if installed.sendmail_before is not None:
        assert os.path.realpath("/usr/sbin/sendmail") == \
            installed.sendmail_before
    else:
        assert os.path.realpath("/usr/sbin/sendmail") == "/usr/sbin/postilion"
    # Enabled (the policy kept them from starting), not started.
    assert Path("/etc/systemd/system/multi-user.target.wants/"
                "postiliond.service").is_symlink()
    assert Path("/etc/systemd/system/timers.target.wants/"
                "postilion-dmarc-report.timer").is_symlink()


def test_installed_daemon_starts_like_the_unit_and_delivers(installed):
    installed.maildirs.mkdir()
    shutil.chown(installed.maildirs, "postilion", "postilion")
    (CONF_D / "90-install-test.conf").write_text(f"""\
# tests/packaging/test_install.py: loopback only, no DNS, a Maildir.
[server]
hostname = mx.install-test.example
domains = example.org
reverse_dns = false
[listener:smtp]
address = 127.0.0.1:{installed.port}
[dns]
nameservers = 127.0.0.1@{free_port()}
dnssec = no
[delivery]
maildir_root = {installed.maildirs}
[plugin:relay]
reject_unknown_sender_domain = false
""")
    check = run(["/usr/sbin/postiliond", "--check"]).stdout
    for name in PLUGINS:
        assert re.search(rf"plugin {name}: loaded by /etc/postilion/conf.d/"
                         rf"\d\d-{name}.conf:\d+ \[plugin:{name}\] enable",
                         check), check
    ready = installed.start()
    assert "STATUS=" in ready
    listed = run(["postilion", "plugins"]).stdout
    for name in PLUGINS:
        assert re.search(rf"^{name}\s", listed, re.M), listed
    assert installed.swaks("first").returncode == 0
    text = installed.delivered("first").read_text()
    assert "Delivered-To: postmaster@example.org" in text
    assert "running as user postilion" in installed.log_text()


def test_removed_plugin_restarts_without_it(installed):
    run(APT + ["remove", "postilion-plugin-spf"], env=APT_ENV, timeout=600)
    snippet = CONF_D / "40-spf.conf"
    assert snippet.exists(), "a removed package keeps its conffile"
    assert installed.stop() == 0
    installed.start()
    assert 'plugin "spf" is not installed' in installed.log_text()
    listed = run(["postilion", "plugins"]).stdout
    assert not re.search(r"^spf\s", listed, re.M), listed
    assert re.search(r"^relay\s", listed, re.M), listed
    assert installed.swaks("second").returncode == 0
    installed.delivered("second")


def test_purge_leaves_nothing_outside_the_spool(installed):
    assert installed.stop() == 0
    (CONF_D / "90-install-test.conf").unlink()
    run(APT + ["purge", *known_packages()], env=APT_ENV, timeout=600)
    assert known_packages() == []
    after = snapshot()
    new = sorted(after - installed.before)
    ours = [p for p in new
            if "postilion" in p and not p.startswith(str(SPOOL))]
    assert not ours, ours
    assert not Path("/etc/postilion").exists()
    assert not Path("/etc/alternatives/sendmail").exists() or \
        os.path.realpath("/etc/alternatives/sendmail") != \
        "/usr/lib/postilion/sendmail"
    if installed.sendmail_before is not None:
        assert os.path.realpath("/usr/sbin/sendmail") == \
            installed.sendmail_before
    # What remains by design: the spool (queued mail) and its user.
    assert SPOOL.is_dir()
