"""`postilion dmarc report` end to end (RFC 9990): a day of test traffic
through the real daemon (relay, spf, the DKIM test plugin, dmarc) is kept
in the history, once in SQLite and once in a private PostgreSQL instance
the test starts (initdb + pg_ctl on a Unix socket in a temporary
directory); then the reports are checked for content (the counts add up
to the messages sent), validated with xmllint against
plugins/dmarc/dmarc-aggregate.xsd, sent through our own queue to a local
receiver (the MX of the rua domains is 127.0.0.2), never twice, never to a
rua whose destination does not authorize it, and held back by the
per-destination rate limit.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from pathlib import Path

import pytest

import harness
from delivery import delivery_config
from harness import BUILD, REPO
from receivers import Receiver, shared_port, unstuff
from test_dmarc import PLUGIN_PATH, base_config

ZONE = REPO / "tests" / "dns" / "dmarc-e2e.zone"
XSD = REPO / "plugins" / "dmarc" / "dmarc-aggregate.xsd"
POSTILION = BUILD / "tools" / "postilion"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
NS = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
GOOD = "192.0.2.10"
STRANGER = "198.51.100.10"

pytestmark = pytest.mark.skipif(
    not (BUILD / "plugins" / "dmarc" / "dmarc.so").exists()
    or not (BUILD / "plugins" / "spf" / "spf.so").exists()
    or shutil.which("xmllint") is None,
    reason="dmarc.so, spf.so or xmllint missing")


# --------------------------------------------------------------------------
# History backends
# --------------------------------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL instance of our own on a Unix socket in a temporary
    directory (run as the unprivileged `postgres` user when the test runs
    as root: pytest's own temporary directories are private to root, so
    this one is made apart and removed by stop())."""

    def __init__(self):
        directory = Path(tempfile.mkdtemp(prefix="pst-dmarc-pg-"))
        self.dir = directory
        self.data = directory / "data"
        self.socket = directory / "socket"
        self.socket.mkdir(parents=True)
        self.prefix = []
        if os.getuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (directory, self.socket):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run(PG_BIN / "initdb", "-D", self.data, "-A", "trust",
                  "-U", "postilion", "--no-sync")
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-w", "-t", "30",
                  "-l", directory / "postgres.log", "-o",
                  f"-k {self.socket} -c listen_addresses='' -c fsync=off",
                  "start")
        self.databases = 0

    def new_database(self) -> str:
        """A fresh database; its URI."""
        self.databases += 1
        name = f"dmarc{self.databases}"
        self._run(PG_BIN / "createdb", "-h", self.socket, "-U", "postilion",
                  name)
        return f"postgresql:///{name}?host={self.socket}&user=postilion"

    def _run(self, *args):
        proc = subprocess.run([*self.prefix, *map(str, args)],
                              capture_output=True, text=True,
                              timeout=harness.scaled(60), cwd=self.dir)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)

    def stop(self):
        try:
            self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    """One private instance for the module (each test gets a database)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL (Debian's postgresql) is not installed")
    pg = PrivatePostgres()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def history(request, tmp_path_factory):
    if request.param == "sqlite":
        return f"sqlite:{tmp_path_factory.mktemp('history') / 'dmarc.db'}"
    return request.getfixturevalue("postgres").new_database()


# --------------------------------------------------------------------------
# The daemon, its receiver and the tool
# --------------------------------------------------------------------------

@pytest.fixture
def site(history, tmp_path):
    dns = harness.TestDnsServer([ZONE])
    port = shared_port(["127.0.0.2"])
    receiver = Receiver("127.0.0.2", port, "mx.reports.test")
    config = base_config(dns.port, history)
    config.update(delivery_config(tmp_path / "mail", smtp_port=port,
                                  smtp_timeout="1500ms"))
    # The report command submits from 127.0.0.1: allowed to relay.
    config["plugin:relay"]["internal_networks"] = "127.0.0.1/32"
    config["plugin:dmarc"].update({
        "trusted_forwarders": "203.0.113.0/24",
        "report_org_name": "Postilion Test",
        "report_email": "dmarc-reports@mx.test.example"})
    daemon = harness.Daemon(tmp_path / "postiliond", config=config)
    daemon.start()
    yield daemon, receiver
    status = daemon.stop()
    receiver.close()
    dns.stop()
    assert daemon.sanitizer_report() is None, daemon.sanitizer_report()
    assert status == 0, daemon.log_text()


def report_cmd(daemon, *args, timeout=30):
    proc = subprocess.run(
        [str(POSTILION), "-c", str(daemon.conf_path), "dmarc", "report",
         *args], capture_output=True, text=True,
        timeout=harness.scaled(timeout), stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout + proc.stderr


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def send(daemon, ip: str, sender: str, from_domain: str,
         dkim: str | None = None) -> int:
    content = (f"From: a@{from_domain}\r\nTo: bob@example.org\r\n"
               f"Subject: report test\r\n"
               + (f"X-Test-DKIM: {dkim}\r\n" if dkim else "")
               + "\r\nHello.\r\n").encode()
    with daemon.connect() as client:
        client.ehlo()
        assert client.cmd(f"XCLIENT ADDR={ip} HELO=client.test").code == 220
        return harness.transaction(client, sender=sender,
                                   message=content).code


# A day of traffic: (client, sender, From domain, DKIM, expected reply)
TRAFFIC = [
    (GOOD, "a@reject.test", "reject.test", None, 250),
    (GOOD, "a@reject.test", "reject.test", None, 250),
    (GOOD, "a@reject.test", "reject.test", "pass d=reject.test s=sel", 250),
    (STRANGER, "a@reject.test", "reject.test", None, 550),
    (STRANGER, "a@reject.test", "reject.test", "fail d=reject.test s=sel", 550),
    ("203.0.113.5", "a@reject.test", "reject.test", None, 250),
    (GOOD, "a@quarantine.test", "quarantine.test", None, 250),
    (STRANGER, "a@quarantine.test", "quarantine.test", None, 250),
    (STRANGER, "b@none.test", "none.test", None, 250),
]
COUNTS = {"reject.test": 6, "quarantine.test": 2, "none.test": 1}


def send_traffic(daemon):
    for ip, sender, domain, dkim, code in TRAFFIC:
        assert send(daemon, ip, sender, domain, dkim) == code


def dry_run(daemon, directory: Path) -> dict[str, Path]:
    """Runs --dry-run until the history holds the whole day (it is written
    in batches, at most a second late); the files by policy domain."""
    deadline = time.monotonic() + harness.scaled(10)
    while True:
        for old in directory.glob("*"):
            old.unlink()
        status, output = report_cmd(daemon, "--day", today(),
                                    "--dry-run", str(directory))
        files = {p.name.split("!")[1]: p for p in directory.glob("*.xml.gz")}
        total = {d: sum(int(c.text) for c in ET.fromstring(
                    gzip.decompress(p.read_bytes())).iterfind(
                    "d:record/d:row/d:count", NS)) for d, p in files.items()}
        if total == COUNTS or time.monotonic() > deadline:
            return status, output, files, total
        time.sleep(0.3)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_reports_of_a_day(site, tmp_path):
    daemon, receiver = site
    send_traffic(daemon)
    status, output, files, total = dry_run(daemon, tmp_path / "dry")
    assert total == COUNTS, output
    assert status == 0, output
    assert "not sent to dmarc@unauthorized.test" in output
    assert not receiver.messages  # a dry run sends nothing
    for domain, path in files.items():
        # The RFC's file name: receiver!domain!begin!end!unique.xml.gz
        assert re.fullmatch(rf"mx\.test\.example!{re.escape(domain)}!\d+!\d+"
                            rf"![A-Za-z0-9]+\.xml\.gz", path.name), path.name
        xml = tmp_path / (path.name[:-3])
        xml.write_bytes(gzip.decompress(path.read_bytes()))
        check = subprocess.run(["xmllint", "--noout", "--schema", str(XSD),
                                str(xml)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr + xml.read_text()
    root = ET.fromstring(gzip.decompress(files["reject.test"].read_bytes()))
    # Nothing went wrong and no result needed words: the optional "error"
    # and "human_result" elements are left out.
    assert root.find("d:report_metadata/d:error", NS) is None
    assert root.find(".//d:human_result", NS) is None
    published = root.find("d:policy_published", NS)
    assert published.findtext("d:p", namespaces=NS) == "reject"
    assert published.findtext("d:discovery_method", namespaces=NS) == "treewalk"
    assert published.findtext("d:testing", namespaces=NS) == "n"
    rows: dict = {}
    for r in root.iterfind("d:record", NS):
        key = (r.findtext("d:row/d:source_ip", namespaces=NS),
               r.findtext("d:row/d:policy_evaluated/d:disposition",
                          namespaces=NS),
               r.findtext("d:row/d:policy_evaluated/d:reason/d:type",
                          namespaces=NS))
        rows[key] = rows.get(key, 0) + int(r.findtext("d:row/d:count",
                                                      namespaces=NS))
    assert rows[(STRANGER, "reject", None)] == 2
    assert rows[("203.0.113.5", "none", "trusted_forwarder")] == 1
    assert sum(v for (ip, disp, _), v in rows.items()
               if ip == GOOD and disp == "pass") == 3

    # Sent through our queue to the rua's MX (the local receiver), once.
    status, output = report_cmd(daemon, "--day", today())
    assert status == 0, output
    deadline = time.monotonic() + harness.scaled(15)
    while len(receiver.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    by_rcpt = {}
    for m in receiver.messages:
        mail = message_from_bytes(unstuff(m.raw), policy=policy.default)
        by_rcpt.setdefault(tuple(m.recipients), []).append(mail)
    assert sorted(by_rcpt) == [("dmarc@quarantine.test",),
                               ("dmarc@reports.test",)], by_rcpt
    subjects = sorted(str(mail["Subject"]) for mails in by_rcpt.values()
                      for mail in mails)
    assert len(subjects) == 3
    for subject in subjects:
        assert re.fullmatch(r"Report Domain: \S+ Submitter: mx\.test\.example "
                            r"Report-ID: <\S+>", subject), subject
    mail = next(m for m in by_rcpt[("dmarc@quarantine.test",)])
    (attachment,) = [p for p in mail.iter_attachments()]
    assert attachment.get_content_type() == "application/gzip"
    assert attachment.get_filename().startswith(
        "mx.test.example!quarantine.test!")
    root = ET.fromstring(gzip.decompress(attachment.get_content()))
    assert sum(int(c.text) for c in root.iterfind(
        "d:record/d:row/d:count", NS)) == 2

    # Never twice: a second run sends nothing new.
    status, output = report_cmd(daemon, "--day", today())
    assert status == 0, output
    assert output.count("already sent") == 3, output
    time.sleep(harness.scaled(1))
    assert len(receiver.messages) == 3


def test_rate_limit_per_destination(site, tmp_path):
    """reject.test and none.test both report to dmarc@reports.test: with
    report_rate_limit = 1, the second waits for a later run (75)."""
    daemon, receiver = site
    send_traffic(daemon)
    dry_run(daemon, tmp_path / "dry")
    daemon.config["plugin:dmarc"]["report_rate_limit"] = "1"
    daemon.write_config()
    status, output = report_cmd(daemon, "--day", today())
    assert status == 75, output
    assert "held back: 1 reports in 24 hours" in output, output
    deadline = time.monotonic() + harness.scaled(15)
    while len(receiver.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(m.recipients[0] for m in receiver.messages) == [
        "dmarc@quarantine.test", "dmarc@reports.test"]


def test_usage_and_empty_day(site):
    daemon, _ = site
    status, output = report_cmd(daemon, "--day", "2026-13-01")
    assert status == 64 and "usage:" in output
    status, output = report_cmd(daemon, "--day", "2001-01-01")
    assert status == 0 and "no DMARC history" in output, output


def test_failure_reports(site, tmp_path):
    """failure_reports = true: a message from forensic.test (fo=1) that
    fails is reported to its ruf= address (authorized external host) as
    an ARF auth-failure report with the header only; once."""
    daemon, receiver = site
    daemon.config["plugin:dmarc"]["failure_reports"] = "true"
    mark = daemon.log_mark()
    daemon.reload(text=harness.render_config(daemon.config), wait=0)
    daemon.wait_log(r"plugin dmarc: enforce", since=mark)
    assert send(daemon, STRANGER, "a@forensic.test", "forensic.test") == 550
    deadline = time.monotonic() + harness.scaled(10)
    output = ""
    while "failure report" not in output and time.monotonic() < deadline:
        time.sleep(0.3)
        status, output = report_cmd(daemon, "--day", today(),
                                    "--dry-run", str(tmp_path / "dry"))
    assert "failure report" in output, output
    status, output = report_cmd(daemon, "--day", today())
    assert status == 0, output
    assert "failure report" in output and "sent to ruf@reports.test" in output
    deadline = time.monotonic() + harness.scaled(15)
    while not any(m.recipients == ["ruf@reports.test"]
                  for m in receiver.messages) and time.monotonic() < deadline:
        time.sleep(0.2)
    (arf,) = [message_from_bytes(unstuff(m.raw), policy=policy.default)
              for m in receiver.messages if m.recipients == ["ruf@reports.test"]]
    assert arf.get_content_type() == "multipart/report"
    assert arf["Content-Type"].params["report-type"] == "feedback-report"
    parts = list(arf.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/feedback-report", "text/rfc822-headers"]
    feedback = parts[1].get_payload()
    feedback = (feedback[0].as_string() if isinstance(feedback, list)
                else str(feedback))
    for field in ("Feedback-Type: auth-failure", "Auth-Failure: dmarc",
                  "Identity-Alignment: dkim, spf", "Delivery-Result: reject",
                  "Reported-Domain: forensic.test",
                  f"Source-IP: {STRANGER}"):
        assert field in feedback, feedback
    headers = parts[2].get_payload(decode=True).decode()
    assert "Subject: report test" in headers and "Hello." not in headers
    status, output = report_cmd(daemon, "--day", today())
    assert "sent to ruf@reports.test" not in output, output


def test_database_down_loses_no_mail(tmp_path):
    """The history's database is unreachable: mail flows on, the rows lost
    are logged and counted."""
    dns = harness.TestDnsServer([ZONE])
    try:
        daemon = harness.Daemon(tmp_path / "postiliond", config=base_config(
            dns.port, f"postgresql:///dmarc?host={tmp_path}/no-such-socket"))
        daemon.start()
        assert send(daemon, GOOD, "a@reject.test", "reject.test") == 250
        assert send(daemon, STRANGER, "a@reject.test", "reject.test") == 550
        daemon.wait_log(r"history: \d+ rows lost \(2 so far; mail is not "
                        r"affected\)|history: 1 rows lost \(1 so far",
                        timeout=harness.scaled(5))
        assert len(daemon.spool_messages()) == 1
        assert daemon.stop() == 0
    finally:
        dns.stop()


def test_report_says_what_it_lost_and_why(tmp_path):
    """RFC 9990 "error" and "human_result": the history's database cannot
    be opened for the first message (its directory appears only later), so
    the day's report says how many evaluations it lacks; a DKIM
    signature's failure reason and an SPF permerror's become the records'
    human_result; the report still validates."""
    dns = harness.TestDnsServer([ZONE])
    late = tmp_path / "late"
    try:
        daemon = harness.Daemon(tmp_path / "postiliond", config=base_config(
            dns.port, f"sqlite:{late}/dmarc.db"))
        daemon.start()
        assert send(daemon, GOOD, "a@none.test", "none.test") == 250
        daemon.wait_log(r"history: 1 rows lost \(1 so far",
                        timeout=harness.scaled(5))
        late.mkdir()
        time.sleep(1.2)  # the writer opens the database again after 1 s
        dkim = "fail d=none.test s=sel reason=body hash mismatch (body changed)"
        assert send(daemon, GOOD, "a@broken.none.test", "none.test",
                    dkim) == 250
        daemon.wait_log(r"history: writing to sqlite:\S+ again",
                        timeout=harness.scaled(5))
        directory = tmp_path / "dry"
        status, output = report_cmd(daemon, "--day", today(),
                                    "--dry-run", str(directory))
        assert status == 0, output
        (path,) = directory.glob("*!none.test!*.xml.gz")
        xml = tmp_path / "report.xml"
        xml.write_bytes(gzip.decompress(path.read_bytes()))
        check = subprocess.run(["xmllint", "--noout", "--schema", str(XSD),
                                str(xml)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr + xml.read_text()
        root = ET.parse(xml).getroot()
        (error,) = [e.text for e in root.iterfind("d:report_metadata/d:error",
                                                   NS)]
        assert re.fullmatch(r"1 evaluated message between \S+Z and \S+Z could"
                            r" not be recorded \(our history database was "
                            r"unavailable\): the counts in this report are "
                            r"short by that many", error), error
        assert sum(int(c.text) for c in root.iterfind(
            "d:record/d:row/d:count", NS)) == 1
        assert root.findtext("d:record/d:auth_results/d:dkim/d:human_result",
                             namespaces=NS) == "body hash mismatch (body changed)"
        spf = root.find("d:record/d:auth_results/d:spf", NS)
        assert spf.findtext("d:result", namespaces=NS) == "permerror"
        assert spf.findtext("d:human_result", namespaces=NS), xml.read_text()
        assert daemon.stop() == 0
    finally:
        dns.stop()


# The first release's table, before spf_human.
OLD_SCHEMA = (
    "CREATE TABLE dmarc_messages (received BIGINT NOT NULL, policy_domain"
    " TEXT NOT NULL, source_ip TEXT NOT NULL, header_from TEXT NOT NULL,"
    " envelope_from TEXT NOT NULL, envelope_to TEXT NOT NULL, result TEXT NOT"
    " NULL, spf_aligned TEXT NOT NULL, dkim_aligned TEXT NOT NULL, spf_domain"
    " TEXT NOT NULL, spf_scope TEXT NOT NULL, spf_result TEXT NOT NULL, dkim"
    " TEXT NOT NULL, disposition TEXT NOT NULL, override TEXT NOT NULL, p TEXT"
    " NOT NULL, sp TEXT NOT NULL, np TEXT NOT NULL, adkim TEXT NOT NULL, aspf"
    " TEXT NOT NULL, testing TEXT NOT NULL, psd TEXT NOT NULL, fo TEXT NOT"
    " NULL, rua TEXT NOT NULL)")


def test_older_history_is_upgraded(tmp_path):
    """A history written by the first release (no spf_human column) is
    upgraded when opened: its old rows and the new ones are reported."""
    import sqlite3
    path = tmp_path / "dmarc.db"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO dmarc_messages VALUES (?, 'none.test', ?,"
                   " 'none.test', 'none.test', 'example.org', 'pass', 'y', 'n',"
                   " 'none.test', 'mfrom', 'pass', '', 'none', '', 'none', '',"
                   " '', 'r', 'r', 'n', 'u', '0', 'mailto:dmarc@reports.test')",
                   (int(time.time()), GOOD))
    dns = harness.TestDnsServer([ZONE])
    try:
        daemon = harness.Daemon(tmp_path / "postiliond", config=base_config(
            dns.port, f"sqlite:{path}"))
        daemon.start()
        assert send(daemon, GOOD, "a@none.test", "none.test") == 250
        deadline = time.monotonic() + harness.scaled(10)
        total = 0
        while total != 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            directory = tmp_path / "dry"
            shutil.rmtree(directory, ignore_errors=True)
            status, output = report_cmd(daemon, "--day", today(),
                                        "--dry-run", str(directory))
            assert status == 0, output
            total = sum(int(c.text) for p in directory.glob("*.xml.gz")
                        for c in ET.fromstring(gzip.decompress(
                            p.read_bytes())).iterfind(
                                "d:record/d:row/d:count", NS))
        assert total == 2, output
        assert daemon.stop() == 0
    finally:
        dns.stop()


def test_equal_evaluations_share_a_row(tmp_path):
    """Equal evaluations of one second are one row of dmarc_messages whose
    `messages` counts them: the history sums to what was sent, and so
    does the report."""
    import sqlite3
    path = tmp_path / "dmarc.db"
    dns = harness.TestDnsServer([ZONE])
    try:
        daemon = harness.Daemon(tmp_path / "postiliond", config=base_config(
            dns.port, f"sqlite:{path}"))
        daemon.start()
        started = time.monotonic()
        for _ in range(8):
            assert send(daemon, GOOD, "a@none.test", "none.test") == 250
        within_a_second = time.monotonic() - started < 1.0
        deadline = time.monotonic() + harness.scaled(10)
        counts: list = []
        while sum(counts) != 8 and time.monotonic() < deadline:
            time.sleep(0.3)
            if path.exists():
                # The file appears when the writer opens it, its tables
                # when the writer's schema transaction commits.
                with contextlib.suppress(sqlite3.OperationalError), \
                        sqlite3.connect(path) as db:
                    counts = [n for (n,) in db.execute(
                        "SELECT messages FROM dmarc_messages")]
        assert sum(counts) == 8, counts
        # Eight messages within a second fall into at most two seconds and
        # two of the writer's batches: at least two of them share a row.
        if within_a_second:
            assert len(counts) < 8, counts
        status, output = report_cmd(daemon, "--day", today(),
                                    "--dry-run", str(tmp_path / "dry"))
        assert status == 0, output
        total = sum(int(c.text) for p in (tmp_path / "dry").glob("*.xml.gz")
                    for c in ET.fromstring(gzip.decompress(
                        p.read_bytes())).iterfind("d:record/d:row/d:count",
                                                  NS))
        assert total == 8, output
        assert daemon.stop() == 0
    finally:
        dns.stop()
