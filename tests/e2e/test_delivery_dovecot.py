"""LMTP delivery to a real Dovecot (dovecot-lmtpd): a private instance with
its own configuration, base directory and log under a temporary directory
(no /etc edits, no TCP port: LMTP on a unix socket), virtual users from a
passwd-file, Maildirs written by Dovecot as `nobody`.  postiliond delivers
with `[delivery] lmtp = unix:PATH`; Dovecot's per-recipient replies are
honoured: the known user's copy is saved, the unknown one bounces with
Dovecot's own 550 5.1.1, and the DSN to the (local) sender goes through
Dovecot too.

Dovecot's master must start as root (it switches to the mail users), so
this needs root, as CI runs the suite; it is skipped otherwise, and when
dovecot-lmtpd is not installed (scripts/setup-debian.sh installs it)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from delivery import maildir_messages, parse, wait_for, wait_queue_empty
from harness import HarnessError, queue_id, scaled, simple_message

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
LMTPD = Path("/usr/lib/dovecot/lmtp")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="Dovecot's master must start as root"),
    pytest.mark.skipif(not LMTPD.exists() or not os.path.exists(DOVECOT),
                       reason="dovecot-lmtpd is not installed "
                              "(scripts/setup-debian.sh installs it)"),
]

NOBODY = 65534

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = passwd-file
  args = {base}/users
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""


class Dovecot:
    """A private Dovecot serving LMTP on BASE/run/lmtp.  Unix socket paths
    are short (BASE is under /tmp), as sun_path allows 108 octets."""

    def __init__(self, users):
        self.base = Path(tempfile.mkdtemp(prefix="pst-dv-", dir="/tmp"))
        self.base.chmod(0o755)
        (self.base / "mail").mkdir()
        os.chown(self.base / "mail", NOBODY, NOBODY)
        (self.base / "users").write_text("".join(
            f"{user}::{NOBODY}:{NOBODY}::{self.home(user)}::\n"
            for user in users))
        self.conf = self.base / "dovecot.conf"
        self.conf.write_text(CONFIG.format(base=self.base))
        self.socket = self.base / "run" / "lmtp"
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.monotonic() + scaled(10)
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") \
                    if self.proc.poll() is not None else ""
                self.stop()
                raise HarnessError(f"dovecot did not start: {err}"
                                   f"{self.log()}")
            time.sleep(0.05)

    def home(self, user):
        return self.base / "mail" / user.split("@")[0]

    def maildir(self, user):
        return self.home(user) / "Maildir"

    def log(self):
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc.stderr.close()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def dovecot():
    server = Dovecot(["bob@example.org", "carol@example.org"])
    try:
        yield server
    finally:
        server.stop()


def messages(maildir):
    """Dovecot may move a message from new/ to cur/ once it indexed it."""
    found = []
    for sub in ("new", "cur"):
        directory = maildir / sub
        if directory.is_dir():
            found += [p.read_bytes() for p in sorted(directory.iterdir())]
    return found


def test_dovecot_lmtp_per_recipient_replies(postiliond, tmp_path, dovecot):
    (tmp_path / "mailboxes").write_text(
        "bob@example.org\ncarol@example.org\nalice@example.org\n")
    d = postiliond(config={"delivery": {
        "lmtp": f"unix:{dovecot.socket}",
        "mailboxes": str(tmp_path / "mailboxes"),
        "retry_first": "200ms", "retry_max": "1s"}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@example.org>").code == 250
        # alice passes our RCPT check but Dovecot does not know her.
        for rcpt in ("bob@example.org", "alice@example.org"):
            assert c.cmd(f"RCPT TO:<{rcpt}>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(simple_message("via dovecot", "..dotted\r\nline") + b".\r\n")
        qid = queue_id(c.read_reply())
    d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*status=sent "
               r"\(250 2\.0\.0 <bob@example.org> \S+ Saved\)")
    d.wait_log(rf"{qid}: to=<alice@example.org>, relay=lmtp, .*"
               r"status=bounced \(550 5\.1\.1 <alice@example.org> User "
               r"doesn't exist")
    (raw,) = wait_for(lambda: messages(dovecot.maildir("bob@example.org")),
                      what="bob's message in Dovecot's Maildir")
    message = parse(raw)
    assert message["Subject"] == "via dovecot"
    assert message["Return-Path"] == "<carol@example.org>"
    assert raw.endswith(b"\r\n\r\n.dotted\r\nline\r\n") or \
        raw.endswith(b"\n\n.dotted\nline\n")
    # The DSN for alice goes to carol, through Dovecot as well.
    (dsn_raw,) = wait_for(
        lambda: messages(dovecot.maildir("carol@example.org")),
        what="the DSN in carol's Maildir")
    dsn = parse(dsn_raw)
    assert dsn.get_content_type() == "multipart/report"
    per_rcpt = dsn.get_payload()[1].get_payload()[1]
    assert per_rcpt["Final-Recipient"] == "rfc822; alice@example.org"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    wait_queue_empty(d)
    files = list((dovecot.maildir("bob@example.org") / "new").iterdir()) + \
        list((dovecot.maildir("bob@example.org") / "cur").iterdir())
    assert all(f.stat().st_uid == NOBODY for f in files)
    assert "saved mail to INBOX" in dovecot.log()


def test_dovecot_down_then_up_is_retried(postiliond, tmp_path, dovecot):
    """Dovecot stopped: the attempt is deferred (451 4.4.1); once a new
    Dovecot listens on the same socket, the message is delivered."""
    socket_path = dovecot.socket
    (tmp_path / "mailboxes").write_text("bob@example.org\n")
    os.killpg(dovecot.proc.pid, signal.SIGTERM)
    dovecot.proc.wait(timeout=scaled(10))
    dovecot.proc.stderr.close()
    d = postiliond(config={"delivery": {
        "lmtp": f"unix:{socket_path}",
        "mailboxes": str(tmp_path / "mailboxes"),
        "retry_first": "200ms", "retry_max": "1s"}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(simple_message("later", "x") + b".\r\n")
        qid = queue_id(c.read_reply())
    d.wait_log(rf"{qid}: to=<bob@example.org>, relay=lmtp, .*"
               r"status=deferred \(451 4\.4\.1 LMTP server \(unix socket\): ")
    # The reason may reach a DSN: it names no file of this host.
    assert str(socket_path) not in d.log_text().split(f"{qid}: to=<bob")[1]
    dovecot.proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(dovecot.conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    (raw,) = wait_for(lambda: messages(dovecot.maildir("bob@example.org")),
                      timeout=15, what="bob's message after the restart")
    assert parse(raw)["Subject"] == "later"
    wait_queue_empty(d)


def test_dovecot_lhlo_keywords_are_honoured(postiliond, tmp_path, dovecot):
    """Dovecot's LHLO offers 8BITMIME and PIPELINING but not SMTPUTF8: an
    SMTPUTF8 message bounces with the reason an SMTP peer would give (not
    Dovecot's syntax error on a UTF-8 RCPT), while 8-bit content goes
    with BODY=8BITMIME."""
    (tmp_path / "mailboxes").write_text(
        "bob@example.org\ncarol@example.org\nbøb@example.org\n")
    d = postiliond(config={"delivery": {
        "lmtp": f"unix:{dovecot.socket}",
        "mailboxes": str(tmp_path / "mailboxes"),
        "retry_first": "200ms", "retry_max": "1s"}})
    with d.connect() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@example.org> SMTPUTF8").code == 250
        assert c.cmd("RCPT TO:<bøb@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send("Subject: grüße\r\n\r\nHallo\r\n.\r\n".encode())
        utf8_qid = queue_id(c.read_reply())
        assert c.cmd("MAIL FROM:<carol@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send("Subject: 8bit\r\n\r\nGrüße\r\n.\r\n".encode())
        eight_qid = queue_id(c.read_reply())
    d.wait_log(rf"{utf8_qid}: to=<bøb@example.org>, relay=lmtp, .*"
               r"status=bounced \(550 5\.6\.7 SMTPUTF8 is required, but was "
               r"not offered by the LMTP server\)")
    d.wait_log(rf"{eight_qid}: to=<bob@example.org>, relay=lmtp, .*"
               r"status=sent \(250 2\.0\.0 <bob@example.org> \S+ Saved\)")
    (raw,) = wait_for(lambda: messages(dovecot.maildir("bob@example.org")),
                      what="bob's 8-bit message in Dovecot's Maildir")
    assert "Grüße".encode() in raw
    (dsn_raw,) = wait_for(
        lambda: messages(dovecot.maildir("carol@example.org")),
        what="the DSN in carol's Maildir")
    assert b"SMTPUTF8 is required, but was not offered by the LMTP server" \
        in dsn_raw
    assert "syntax" not in dovecot.log().lower()
    wait_queue_empty(d)
