"""conftest.py - fixtures for Postilion's end-to-end tests.

Run:  POSTILION_BUILD=/path/to/build /usr/bin/python3 -m pytest tests/e2e
(POSTILION_BUILD defaults to <repo>/build.)  The toolbox lives in
harness.py; import from it in tests (`from harness import ...`).

Fixtures
    postiliond      factory: postiliond(config=None, listeners=("smtp",),
                    plugins=None, start=True) -> harness.Daemon.
                    `config` overrides harness.default_config() group by
                    group ({"server": {"max_recipients": 3}}; None removes a
                    key or group); `plugins` is `[plugins] load` with the
                    path set to BUILD/tests/plugins.  Each daemon gets its
                    own directory under tmp_path (config, spool/, log).
    daemon          a started daemon with the defaults: listener "smtp" on
                    a free 127.0.0.1 port, hostname mx.test.example,
                    domains example.org;example.net, no plugin.
    client          a harness.SMTPRaw connected to `daemon`, greeting read.

Guarantees
    - At teardown every daemon still running gets SIGTERM, then SIGKILL
      after a bounded wait: nothing outlives its test.  A daemon that did
      not exit 0 on that SIGTERM, or whose log holds a sanitizer report,
      fails the test (as a teardown error), so ASan/UBSan/LSan findings
      surface as failures.
    - When a test fails, each of its daemons' logs is attached to the
      report ("postiliond log" sections).
    - Every test runs under a wall-clock limit (POSTILION_TEST_TIMEOUT
      seconds, default 90, scaled for sanitizer builds) enforced with
      SIGALRM, on top of the per-read deadlines of SMTPRaw.

Running in parallel (pytest-xdist, as scripts/test.sh does)
    -n N --dist loadfile -m "not serial", then -m "serial" alone.
    loadfile keeps each file's tests in one worker, in file order (module
    fixtures are not duplicated; a file's tests may share state).  Across
    files, every test has its own directory, ports and peers: free_port()
    claims each port in a directory every worker of the run shares
    (POSTILION_PORT_CLAIMS, made here), so no two workers hand out the
    same one.  Tests marked `serial` measure the daemon's timing or
    memory, or load the machine on purpose: they must not share it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest

import harness
from harness import Daemon, HarnessError

_DAEMONS = pytest.StashKey[list]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: measures timing or memory, or loads the machine on "
        "purpose: never run beside other tests (scripts/test.sh runs these "
        "in a pass of their own, after the parallel one)")
    # The controller (or a plain run) makes the run's port-claim directory;
    # xdist's workers inherit it through the environment.
    if (not hasattr(config, "workerinput")
            and harness.PORT_CLAIMS_ENV not in os.environ):
        claims = tempfile.mkdtemp(prefix="pst-e2e-ports-")
        os.environ[harness.PORT_CLAIMS_ENV] = claims
        config.add_cleanup(lambda: (
            os.environ.pop(harness.PORT_CLAIMS_ENV, None),
            shutil.rmtree(claims, ignore_errors=True)))


def pytest_report_header(config):
    return [f"postilion build: {harness.BUILD} "
            f"(sanitized: {harness.SANITIZED}, time scale: {harness.TIME_SCALE})"]


def pytest_sessionstart(session):
    if not harness.POSTILIOND.exists():
        raise pytest.UsageError(
            f"{harness.POSTILIOND} does not exist: build first "
            f"(meson setup build && ninja -C build) or set POSTILION_BUILD")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for daemon in item.stash.get(_DAEMONS, []):
            report.sections.append(
                (f"{daemon.name} log ({daemon.log_path})",
                 daemon.log_text() or "(empty)"))


class WallClockExceeded(Exception):
    """A test ran longer than POSTILION_TEST_TIMEOUT."""


@pytest.fixture(autouse=True)
def _wall_clock_limit():
    limit = int(harness.scaled(float(os.environ.get("POSTILION_TEST_TIMEOUT", "90"))))

    def expired(signum, frame):
        raise WallClockExceeded(f"test exceeded {limit}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _finish(daemon: Daemon) -> list[str]:
    """Stops a daemon at teardown; returns the problems found."""
    problems = []
    if not daemon.running() and daemon.proc is not None \
            and not daemon.expect_exit:
        problems.append(f"{daemon.name} exited on its own during the test "
                        f"with status {daemon.returncode}")
    if daemon.running():
        daemon.expect_exit = False
        daemon.signal(signal.SIGTERM)
        try:
            status = daemon.proc.wait(timeout=harness.scaled(10))
        except Exception:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
            problems.append(f"{daemon.name} did not exit within "
                            f"{harness.scaled(10)}s of SIGTERM")
        else:
            if status != 0:
                problems.append(f"{daemon.name} exited with {status} on SIGTERM")
    report = daemon.sanitizer_report()
    if report:
        problems.append(f"sanitizer report in {daemon.name}'s log:\n{report}")
    return problems


@pytest.fixture
def postiliond(request, tmp_path):
    """Factory for daemons; see the module docstring."""
    daemons: list[Daemon] = []
    request.node.stash[_DAEMONS] = daemons

    def make(config: dict | None = None, listeners=("smtp",), plugins=None,
             start: bool = True, name: str | None = None) -> Daemon:
        name = name or f"postiliond-{len(daemons) + 1}"
        daemon = Daemon(tmp_path / name, config=config, listeners=listeners,
                        plugins=plugins, name=name)
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    problems = []
    for daemon in daemons:
        problems += _finish(daemon)
    if problems:
        raise HarnessError("\n".join(problems))


@pytest.fixture
def daemon(postiliond) -> Daemon:
    return postiliond()


@pytest.fixture
def client(daemon):
    with daemon.connect() as c:
        yield c
