"""The DMARC history's expiry ([plugin:dmarc] history_keep): `postilion
dmarc expire`, and the daily `postilion dmarc report` run that ends the
same way, remove what is older than history_keep from every table of the
history (evaluations, failure reports and the notes of what was sent,
gaps), in SQLite and in a private PostgreSQL instance; a backlog of
months goes an hour of arrivals per statement; 0 keeps everything; a
value under 7 days is refused with a message naming the key.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time

import pytest

import harness
from test_dmarc import base_config
# The history backends (SQLite, a private PostgreSQL) as the report tests
# have them: pytest takes fixtures from this module's names.
from test_dmarc_report import (PG_BIN, POSTILION, ZONE,  # noqa: F401
                               history, postgres)

pytestmark = pytest.mark.skipif(
    not (harness.BUILD / "plugins" / "dmarc" / "dmarc.so").exists(),
    reason="dmarc.so missing")

DAY = 86400
COLUMNS = ("received, policy_domain, source_ip, header_from, envelope_from,"
           " envelope_to, result, spf_aligned, dkim_aligned, spf_domain,"
           " spf_scope, spf_result, spf_human, dkim, disposition, override,"
           " p, sp, np, adkim, aspf, testing, psd, fo, rua, messages")


class Site:
    """A configuration file for the tool (the daemon is not needed) and
    SQL on its history."""

    def __init__(self, directory, history: str, dns_port: int = 9,
                 **keys):
        self.history = history
        config = base_config(dns_port, history)
        config["plugin:dmarc"].update(keys)
        self.daemon = harness.Daemon(directory, config=config)
        self.daemon.write_config()

    def tool(self, *args) -> tuple[int, str]:
        proc = subprocess.run(
            [str(POSTILION), "-c", str(self.daemon.conf_path), "dmarc",
             *args], capture_output=True, text=True,
            timeout=harness.scaled(60), stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout + proc.stderr

    def sql(self, statement: str) -> list[tuple]:
        if self.history.startswith("sqlite:"):
            with sqlite3.connect(self.history[len("sqlite:"):]) as db:
                return [tuple(map(str, row))
                        for row in db.execute(statement).fetchall()]
        uri = self.history.replace("postgresql:///", "")
        name, _, query = uri.partition("?")
        options = dict(item.split("=", 1) for item in query.split("&"))
        proc = subprocess.run(
            [str(PG_BIN / "psql"), "-h", options["host"], "-U",
             options["user"], "-d", name, "-At", "-F", "\t", "-v",
             "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True, text=True, timeout=harness.scaled(30))
        assert proc.returncode == 0, proc.stderr
        return [tuple(line.split("\t")) for line in proc.stdout.splitlines()]

    def insert_messages(self, ages_and_counts) -> None:
        now = int(time.time())
        values = ", ".join(
            f"({now - age}, 'old.test', '192.0.2.1', 'old.test', 'old.test',"
            f" 'example.org', 'pass', 'y', 'n', 'old.test', 'mfrom', 'pass',"
            f" '', '', 'none', '', 'none', '', '', 'r', 'r', 'n', 'u', '0',"
            f" 'mailto:d@old.test', {count})"
            for age, count in ages_and_counts)
        self.sql(f"INSERT INTO dmarc_messages ({COLUMNS}) VALUES {values}")

    def ages(self) -> list[int]:
        now = int(time.time())
        return sorted(round((now - int(r)) / DAY) for (r,) in self.sql(
            "SELECT received FROM dmarc_messages"))


def midnight(days_ago: int) -> int:
    return (int(time.time()) // DAY - days_ago) * DAY


def fill_other_tables(site: Site) -> None:
    now = int(time.time())
    for age in (40, 1):
        site.sql("INSERT INTO dmarc_failures VALUES"
                 f" ('f{age}', {now - age * DAY}, 'old.test',"
                 " 'mailto:f@old.test', 's', 'feedback', 'headers')")
        site.sql("INSERT INTO dmarc_failures_sent VALUES"
                 f" ('f{age}', 'f@old.test', {now - age * DAY})")
        site.sql("INSERT INTO dmarc_reports VALUES ('old.test',"
                 f" {midnight(age)}, 'd@old.test', 'id{age}',"
                 f" {now - age * DAY + 3600})")
        site.sql("INSERT INTO dmarc_gaps VALUES ('old.test',"
                 f" {now - age * DAY - 60}, {now - age * DAY}, 3)")


def test_expire_removes_what_is_older_than_history_keep(history, tmp_path):
    site = Site(tmp_path / "site", history)  # history_keep: 31d
    status, output = site.tool("expire")  # creates the tables
    assert status == 0, output
    assert "history: 0 rows (0 messages) from before" in output, output
    site.insert_messages([(400 * DAY, 2), (40 * DAY, 2), (32 * DAY, 2),
                          (30 * DAY, 2), (8 * DAY, 2), (DAY, 2), (60, 1)])
    fill_other_tables(site)
    status, output = site.tool("expire")
    assert status == 0, output
    assert "history: 3 rows (6 messages) from before" in output, output
    assert "history_keep" in output, output
    assert site.ages() == [0, 1, 8, 30]
    for table, column in (("dmarc_failures", "id"),
                          ("dmarc_failures_sent", "id"),
                          ("dmarc_reports", "report_id"),
                          ("dmarc_gaps", "lost")):
        rows = site.sql(f"SELECT {column} FROM {table}")
        assert len(rows) == 1, (table, rows)
    assert site.sql("SELECT report_id FROM dmarc_reports") == [("id1",)]
    # Again: nothing left to remove.
    status, output = site.tool("expire")
    assert "history: 0 rows (0 messages)" in output, output


def test_a_backlog_of_months_goes_by_the_hour(tmp_path):
    """3,000 rows spread over 200 days: each DELETE covers one hour of
    arrivals, and all those older than history_keep go, none other."""
    site = Site(tmp_path / "site", f"sqlite:{tmp_path / 'dmarc.db'}",
                history_keep="10d")
    assert site.tool("expire")[0] == 0
    rng = random.Random(7)
    ages = [rng.randrange(60, 200 * DAY) for _ in range(3000)]
    for i in range(0, len(ages), 500):
        site.insert_messages([(age, 1) for age in ages[i:i + 500]])
    old = sum(1 for age in ages if age > 10 * DAY + 60)
    status, output = site.tool("expire")
    assert status == 0, output
    removed = int(output.split("history: ")[1].split(" row")[0])
    # Rows within a minute of the limit may fall either side of it.
    assert abs(removed - old) <= sum(
        1 for age in ages if abs(age - 10 * DAY) <= 60), output
    left = site.sql("SELECT COUNT(*), MIN(received) FROM dmarc_messages")
    assert int(left[0][0]) == len(ages) - removed
    assert int(left[0][1]) >= int(time.time()) - 10 * DAY - 60


def test_zero_keeps_everything(tmp_path):
    site = Site(tmp_path / "site", f"sqlite:{tmp_path / 'dmarc.db'}",
                history_keep="0")
    assert site.tool("expire")[0] == 0
    site.insert_messages([(4000 * DAY, 1), (40 * DAY, 1)])
    status, output = site.tool("expire")
    assert status == 0, output
    assert "every row is kept" in output, output
    assert site.ages() == [40, 4000]


@pytest.mark.parametrize("keep", ["3d", "6d", "1h"])
def test_too_short_is_refused(tmp_path, keep):
    site = Site(tmp_path / "site", f"sqlite:{tmp_path / 'dmarc.db'}",
                history_keep=keep)
    status, output = site.tool("expire")
    assert status == 78, output
    assert "history_keep" in output and "7d" in output, output
    # `postiliond --check` loads the plugins (`postilion check-config`
    # checks the core's configuration only).
    check = subprocess.run(
        [str(harness.POSTILIOND), "--check", "-c",
         str(site.daemon.conf_path)],
        capture_output=True, text=True, timeout=harness.scaled(30),
        stdin=subprocess.DEVNULL)
    assert check.returncode != 0
    assert "history_keep" in check.stdout + check.stderr
    with pytest.raises(harness.HarnessError, match="history_keep"):
        site.daemon.start()


def test_the_report_run_expires_and_a_dry_run_does_not(tmp_path):
    dns = harness.TestDnsServer([ZONE])
    try:
        site = Site(tmp_path / "site", f"sqlite:{tmp_path / 'dmarc.db'}",
                    dns_port=dns.port)
        assert site.tool("expire")[0] == 0
        site.insert_messages([(40 * DAY, 5), (60, 1)])
        status, output = site.tool("report", "--day", "2000-01-01",
                                   "--dry-run", str(tmp_path / "dry"))
        assert status == 0, output
        assert "removed" not in output, output
        assert site.ages() == [0, 40]
        status, output = site.tool("report", "--day", "2000-01-01")
        assert status == 0, output
        assert "no DMARC history for that day" in output, output
        assert "history: 1 row (5 messages) from before" in output, output
        assert site.ages() == [0]
    finally:
        dns.stop()
