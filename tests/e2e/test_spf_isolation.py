"""plugins/spf isolation: libspf2 runs in pst-spf-eval, a small pool of
long-lived processes, never in postiliond.  The test DNS server never
answers *.timeout.test; while a check waits for such an answer (the daemon
asks for the evaluator, [dns] timeout 3s: aslow.spf.test's record names
host.timeout.test), the test kills the check's
evaluator with SIGKILL, as a crash in libspf2 would.  The session must get
451 4.4.3 (temperror), the daemon must log the evaluator's death by
SIGKILL (not a DNS failure) and keep serving, the next check must run in
a fresh process and pass, and no zombie may be left behind; one killed
between checks is reaped and replaced at once; when the
daemon stops, in the middle of a check or not, no evaluator is left.  The
pool serves check after check with one process and retires it after
evaluator_max_checks, reaping it.  The checks that must reach an
evaluator use evaluated.spf.test, whose record has an "a": the plugin
decides a record of ip4, ip6, all and cached includes without one.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import harness
from harness import BUILD, REPO

ZONE = REPO / "tests" / "dns" / "spf-e2e.zone"
PLUGIN_PATH = [str(BUILD / "plugins" / "relay"), str(BUILD / "plugins" / "spf")]
GOOD = "192.0.2.10"
DNS_TIMEOUT = 3

pytestmark = pytest.mark.skipif(
    not (BUILD / "plugins" / "spf" / "spf.so").exists(),
    reason="spf.so not built (libspf2-dev missing)")


def config(dns_port: int, **spf) -> dict:
    return {
        "server": {"xclient_hosts": "127.0.0.0/8"},
        "dns": {"nameservers": f"127.0.0.1@{dns_port}",
                "timeout": f"{DNS_TIMEOUT}s",
                "dnssec": "no"},
        "plugins": {"path": PLUGIN_PATH, "load": ["relay", "spf"]},
        "plugin:relay": {"internal_networks": "127.0.0.1/32",
                         "reject_unknown_sender_domain": "no",
                         "reject_unknown_recipient_domain": "no"},
        "plugin:spf": {"identities": "mail_from", "evaluators": "1", **spf},
    }


def children(pid: int) -> dict[int, tuple[str, str]]:
    """The processes whose parent is `pid`: {pid: (name, state)}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2:].split()[:2]
        if int(ppid) == pid:
            found[int(entry)] = (name, state)
    return found


def evaluators(pid: int) -> dict[int, str]:
    return {child: state for child, (name, state) in children(pid).items()
            if name == "pst-spf-eval"}


def wait_evaluator(pid: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + harness.scaled(timeout)
    while time.monotonic() < deadline:
        found = evaluators(pid)
        if found:
            (child,) = found
            return child
        time.sleep(0.05)
    raise AssertionError("no pst-spf-eval process appeared")


# A live evaluator sleeps (S) or runs (R).  In a sanitizer build, a new
# one also runs LeakSanitizer's check before it loads its seccomp filter
# (spf-eval-main.c): LSan ptrace-stops its threads meanwhile, so it shows
# "t" (tracing stop) for a moment.
LIVE_STATES = ("S", "R", "t") if harness.SANITIZED else ("S", "R")


def wait_no_zombies(pid: int, timeout: float = 5.0) -> None:
    """Every child left is a live pst-spf-eval of the pool: no zombie."""
    def others():
        return {child: entry for child, entry in children(pid).items()
                if entry[0] != "pst-spf-eval" or entry[1] not in LIVE_STATES}
    deadline = time.monotonic() + harness.scaled(timeout)
    while others() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert others() == {}, children(pid)


def wait_gone(pids, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + harness.scaled(timeout)
    while any(os.path.exists(f"/proc/{p}") for p in pids) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


@pytest.fixture(scope="module")
def dns():
    server = harness.TestDnsServer([ZONE])
    yield server
    server.stop()


def start(directory, dns, **spf) -> harness.Daemon:
    daemon = harness.Daemon(directory / "postiliond",
                            config=config(dns.port, **spf))
    daemon.start()
    return daemon


def test_killed_evaluator_is_a_temperror_and_the_next_check_works(
        tmp_path, dns):
    daemon = start(tmp_path, dns)
    try:
        with daemon.connect() as client:
            client.ehlo()
            assert client.cmd(f"XCLIENT ADDR={GOOD}").code == 220
            mark = daemon.log_mark()
            client.send("MAIL FROM:<a@aslow.spf.test>\r\n")
            victim = wait_evaluator(daemon.pid)
            # It is waiting for an answer that never comes.
            time.sleep(harness.scaled(0.5))
            os.kill(victim, signal.SIGKILL)
            reply = client.read_reply(timeout=harness.scaled(DNS_TIMEOUT + 10))
            assert (reply.code, reply.enhanced) == (451, "4.4.3"), reply
            assert "temperror" in reply.text, reply
            daemon.wait_log(r"SPF evaluator failed: .*process killed by "
                            r"signal SIGKILL; result temperror", since=mark)
            assert victim not in children(daemon.pid)
            # The daemon goes on; the next check, in a fresh evaluator,
            # passes.
            mark = daemon.log_mark()
            reply = client.cmd("MAIL FROM:<a@evaluated.spf.test>")
            assert (reply.code, reply.enhanced) == (250, "2.1.0"), reply
            daemon.wait_log(r"mailfrom a@evaluated\.spf\.test: pass",
                            since=mark)
            assert client.cmd("RSET").code == 250
            assert victim not in evaluators(daemon.pid)
            assert len(evaluators(daemon.pid)) == 1
        wait_no_zombies(daemon.pid)
        assert daemon.running
        pool = list(evaluators(daemon.pid))
    finally:
        status = daemon.stop()
    wait_gone(pool)
    assert status == 0, daemon.log_text()
    report = daemon.sanitizer_report()
    assert report is None, report


def test_idle_evaluator_that_dies_is_reaped_and_replaced_at_once(
        tmp_path, dns):
    """An evaluator killed between checks is reaped from the main loop
    and replaced before any check asks for one: no zombie waits for the
    next check, and the next check does not pay for a start."""
    daemon = start(tmp_path, dns)
    try:
        victim = wait_evaluator(daemon.pid)
        mark = daemon.log_mark()
        os.kill(victim, signal.SIGKILL)
        daemon.wait_log(rf"SPF evaluator {victim} killed by signal SIGKILL",
                        since=mark)
        deadline = time.monotonic() + harness.scaled(5)
        while (list(evaluators(daemon.pid)) in ([], [victim])
               and time.monotonic() < deadline):
            time.sleep(0.02)
        (replacement,) = evaluators(daemon.pid)
        assert replacement != victim
        wait_no_zombies(daemon.pid)
        with daemon.connect() as client:
            client.ehlo()
            reply = client.cmd(f"XCLIENT ADDR={GOOD}")
            assert reply.code == 220, reply
            reply = client.cmd("MAIL FROM:<a@evaluated.spf.test>")
            assert (reply.code, reply.enhanced) == (250, "2.1.0"), reply
        assert list(evaluators(daemon.pid)) == [replacement]
    finally:
        status = daemon.stop()
    assert status == 0, daemon.log_text()
    report = daemon.sanitizer_report()
    assert report is None, report


def test_stop_during_a_check_leaves_no_evaluator(tmp_path, dns):
    daemon = start(tmp_path, dns)
    with daemon.connect() as client:
        client.ehlo()
        assert client.cmd(f"XCLIENT ADDR={GOOD}").code == 220
        client.send("MAIL FROM:<b@aslow.spf.test>\r\n")
        evaluator = wait_evaluator(daemon.pid)
        time.sleep(harness.scaled(0.3))
        status = daemon.stop()
    assert status == 0, daemon.log_text()
    # Reaped by the plugin (or killed with its parent thread): gone.
    wait_gone([evaluator])
    report = daemon.sanitizer_report()
    assert report is None, report


def test_pool_serves_many_checks_and_recycles(tmp_path, dns):
    """Two evaluators at most, each retired after 3 checks: 7 checks in a
    row use a process three times, then a new one; a retired one is
    reaped (no zombie), and none is left after the daemon stops."""
    daemon = start(tmp_path, dns, evaluators="2", evaluator_max_checks="3")
    seen = set()
    try:
        with daemon.connect() as client:
            client.ehlo()
            assert client.cmd(f"XCLIENT ADDR={GOOD}").code == 220
            for _ in range(7):
                reply = client.cmd("MAIL FROM:<a@evaluated.spf.test>")
                assert (reply.code, reply.enhanced) == (250, "2.1.0"), reply
                assert client.cmd("RSET").code == 250
                alive = evaluators(daemon.pid)
                assert len(alive) <= 2, alive
                seen.update(alive)
        wait_no_zombies(daemon.pid)
        assert len(seen) == 3, seen
        pool = list(evaluators(daemon.pid))
    finally:
        status = daemon.stop()
    assert status == 0, daemon.log_text()
    wait_gone(pool)
    report = daemon.sanitizer_report()
    assert report is None, report
