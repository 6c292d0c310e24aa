"""Reload and shutdown.

SIGHUP: new sessions get the new configuration, sessions in progress keep
the one they started with, a bad new file is refused (logged, naming the
file) and the old configuration keeps serving.
SIGTERM: the listeners close at once, sessions in progress get a bounded
grace to finish (then 421 4.3.2), the daemon exits 0, and every message
that was answered 250 is in the spool.
"""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness

from harness import (HOSTNAME, ConnectionClosed, HarnessError, dot_stuff, queue_id,
                     render_config, merge_config, scaled, simple_message,
                     transaction)


def wait_for_banner(daemon, expected: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        with daemon.connect() as c:
            if c.greeting.last == expected:
                return
            last = c.greeting.last
        if time.monotonic() > deadline:
            raise AssertionError(f"banner still {last!r}, wanted {expected!r}")
        time.sleep(0.05)


# --- SIGHUP ---------------------------------------------------------------


def test_reload_applies_to_new_sessions(daemon):
    daemon.reload(config={"server": {"banner": "ESMTP reloaded"}})
    wait_for_banner(daemon, f"220 {HOSTNAME} ESMTP reloaded")
    assert daemon.running()


def test_session_in_progress_keeps_old_config(daemon):
    old = daemon.connect()
    old.ehlo()
    assert old.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    daemon.reload(config={"server": {"domains": ["example.com"],
                                     "banner": "ESMTP new"}})
    wait_for_banner(daemon, f"220 {HOSTNAME} ESMTP new")
    # The old session still has the old domains...
    assert old.cmd("RCPT TO:<bob@example.org>").last == "250 2.1.5 Ok"
    assert old.cmd("RCPT TO:<bob@example.com>").code == 554
    assert old.cmd("DATA").code == 354
    old.send(dot_stuff(simple_message()))
    qid = queue_id(old.read_reply())
    # ... also for its next transaction.
    assert old.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert old.cmd("RCPT TO:<carol@example.net>").code == 250
    old.close()
    # A new session has the new ones.
    with daemon.connect() as new:
        new.ehlo()
        new.cmd("MAIL FROM:<alice@client.test.example>")
        assert new.cmd("RCPT TO:<bob@example.org>").code == 554
        assert new.cmd("RCPT TO:<bob@example.com>").last == "250 2.1.5 Ok"
    assert [m["id"] for m in daemon.spool_messages()] == [qid]


def test_reload_limits(daemon):
    daemon.reload(config={"server": {"max_recipients": 1}})
    deadline = time.monotonic() + scaled(5)
    while True:
        with daemon.connect() as c:
            c.ehlo()
            c.cmd("MAIL FROM:<alice@client.test.example>")
            c.cmd("RCPT TO:<a@example.org>")
            if c.cmd("RCPT TO:<b@example.org>").code == 452:
                break
        assert time.monotonic() < deadline, "max_recipients not reloaded"
        time.sleep(0.05)


BAD_FILES = {
    "wrong-value": lambda cfg: render_config(
        merge_config(cfg, {"server": {"max_recipients": "lots", "banner": "ESMTP bad"}})),
    "unknown-key": lambda cfg: render_config(
        merge_config(cfg, {"server": {"colour": "blue", "banner": "ESMTP bad"}})),
    "not-a-keyfile": lambda cfg: "this is not a keyfile\n",
    "plugin-not-found": lambda cfg: render_config(
        merge_config(cfg, {"plugins": {"load": ["nosuchplugin"]},
                           "server": {"banner": "ESMTP bad"}})),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_reload_keeps_old_config(daemon, case):
    good = dict(daemon.config)
    mark = daemon.log_mark()
    daemon.reload(text=BAD_FILES[case](daemon.config), wait=0)
    daemon.wait_log(rf"{daemon.conf_path}", since=mark)
    assert daemon.running()
    # Still the old configuration.
    with daemon.connect() as c:
        assert c.greeting.last == f"220 {HOSTNAME} ESMTP Postilion"
        c.ehlo()
        assert transaction(c).code == 250
    # And a good file after the bad one is taken.
    daemon.reload(text=render_config(merge_config(
        good, {"server": {"banner": "ESMTP fixed"}})))
    wait_for_banner(daemon, f"220 {HOSTNAME} ESMTP fixed")


def test_reload_missing_file(daemon):
    mark = daemon.log_mark()
    daemon.conf_path.unlink()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(rf"{daemon.conf_path}", since=mark)
    time.sleep(0.2)
    assert daemon.running()
    with daemon.connect() as c:
        assert c.greeting.code == 220


def test_many_reloads_under_traffic(daemon):
    stop = threading.Event()
    errors = []

    def traffic():
        try:
            while not stop.is_set():
                with daemon.connect() as c:
                    c.ehlo()
                    queue_id(transaction(c))
                    c.cmd("QUIT")
        except Exception as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        for i in range(20):
            daemon.reload(config={"server": {"banner": f"ESMTP gen {i}"}}, wait=0.05)
    finally:
        stop.set()
        thread.join(timeout=scaled(20))
    assert not errors, errors
    wait_for_banner(daemon, f"220 {HOSTNAME} ESMTP gen 19")


# --- SIGTERM --------------------------------------------------------------


def test_sigterm_idle_exits_zero(daemon):
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < scaled(5)


def test_sigint_exits_zero(daemon):
    daemon.signal(signal.SIGINT)
    assert daemon.wait_exit(10) == 0


def connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_open_session_finish(postiliond):
    d = postiliond(config={"server": {"timeout_shutdown": "10s"}})
    c = d.connect(timeout=15)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@client.test.example>")
    c.cmd("RCPT TO:<bob@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    d.signal(signal.SIGTERM)
    # Stops accepting at once.
    deadline = time.monotonic() + scaled(3)
    while not connect_refused(d.port):
        assert time.monotonic() < deadline, "still accepting after SIGTERM"
        time.sleep(0.05)
    assert d.running()
    # The session in progress finishes its message.
    c.send(b"second half\r\n.\r\n")
    qid = queue_id(c.read_reply())
    # Its transaction done, the session may be closed with 421 right away.
    assert c.cmd("QUIT").last in (
        "221 2.0.0 Bye", f"421 4.3.2 {HOSTNAME} Service shutting down")
    c.close()
    assert d.wait_exit(10) == 0
    (m,) = d.spool_messages()
    assert m["id"] == qid
    assert m["content"].endswith(b"first half\r\nsecond half\r\n")


def test_sigterm_closes_idle_session(postiliond):
    """A session with no transaction in progress has nothing to finish."""
    d = postiliond(config={"server": {"timeout_shutdown": "10s"}})
    c = d.connect(timeout=15)
    c.ehlo()
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert c.read_reply(timeout=10).last == f"421 4.3.2 {HOSTNAME} Service shutting down"
    assert c.wait_closed() == b""
    assert d.wait_exit(10) == 0
    assert time.monotonic() - started < scaled(5)


def test_sigterm_grace_is_bounded(postiliond):
    """A transaction that does not finish within timeout_shutdown is cut."""
    d = postiliond(config={"server": {"timeout_shutdown": "1s"}})
    c = d.connect(timeout=15)
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert c.read_reply(timeout=10).last == f"421 4.3.2 {HOSTNAME} Service shutting down"
    assert c.wait_closed() == b""
    assert d.wait_exit(10) == 0
    assert 0.8 <= time.monotonic() - started < scaled(6)


def test_sigterm_grace_over_in_data_queues_nothing(postiliond):
    d = postiliond(config={"server": {"timeout_shutdown": "1s"}})
    c = d.connect(timeout=15)
    c.ehlo()
    c.cmd("MAIL FROM:<alice@client.test.example>")
    c.cmd("RCPT TO:<bob@example.org>")
    c.cmd("DATA")
    c.send(b"Subject: too slow\r\n\r\n")
    d.signal(signal.SIGTERM)
    assert c.read_reply(timeout=10).last == f"421 4.3.2 {HOSTNAME} Service shutting down"
    assert d.wait_exit(10) == 0
    assert d.spool_messages() == []
    assert d.tmp_leftovers() == []


def test_nothing_accepted_is_lost(postiliond):
    """Clients send as fast as they can while SIGTERM arrives; every message
    answered 250 is in the spool afterwards."""
    d = postiliond(config={"server": {"timeout_shutdown": "5s"}})
    accepted: list[str] = []
    lock = threading.Lock()

    def sender():
        while True:
            try:
                with d.connect(timeout=10) as c:
                    c.ehlo()
                    for _ in range(20):
                        reply = transaction(c)
                        with lock:
                            accepted.append(queue_id(reply))
            except (OSError, ConnectionClosed, HarnessError):
                return

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + scaled(10)
    while len(accepted) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    d.signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=scaled(30))
    assert d.wait_exit(15) == 0
    assert len(accepted) >= 30
    stored = {m["id"] for m in d.spool_messages()}
    assert set(accepted) <= stored, sorted(set(accepted) - stored)


def test_restart_after_sigterm(postiliond):
    first = postiliond(name="first")
    with first.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c))
    assert first.stop() == 0
    second = postiliond(name="second", config={"server": {"spool": str(first.spool)}})
    assert [m["id"] for m in second.spool_messages()] == [qid]


# --- plugin chains across reloads ------------------------------------------

POLICY_REJECT = "550 5.7.1 Error: recipient rejected by policy"


def test_reload_changes_plugin_settings(postiliond):
    d = postiliond(plugins=["testpolicy"], config={"plugin:testpolicy": {
        "rcpt": "reject", "rcpt_match": "blocked@*"}})
    old = d.connect()
    old.ehlo()
    old.cmd("MAIL FROM:<alice@client.test.example>")
    d.reload(config={"plugin:testpolicy": {"rcpt_match": "other@*"},
                     "server": {"banner": "ESMTP gen 2"}})
    wait_for_banner(d, f"220 {HOSTNAME} ESMTP gen 2")
    # The session that began before the reload keeps its chain...
    assert old.cmd("RCPT TO:<blocked@example.org>").last == POLICY_REJECT
    assert old.cmd("RCPT TO:<other@example.org>").last == "250 2.1.5 Ok"
    old.close()
    # ... new sessions get the new one.
    with d.connect() as new:
        new.ehlo()
        new.cmd("MAIL FROM:<alice@client.test.example>")
        assert new.cmd("RCPT TO:<blocked@example.org>").last == "250 2.1.5 Ok"
        assert new.cmd("RCPT TO:<other@example.org>").last == POLICY_REJECT


def test_reload_loads_and_unloads_plugins(postiliond):
    d = postiliond()
    old = d.connect()
    old.ehlo()
    d.reload(config={"plugins": {"path": str(harness.PLUGIN_DIR), "load": ["testpolicy"]},
                     "plugin:testpolicy": {"mail": "reject"},
                     "server": {"banner": "ESMTP with plugin"}})
    wait_for_banner(d, f"220 {HOSTNAME} ESMTP with plugin")
    assert old.cmd("MAIL FROM:<alice@client.test.example>").last == "250 2.1.0 Ok"
    with d.connect() as new:
        new.ehlo()
        assert new.cmd("MAIL FROM:<alice@client.test.example>").last == \
            "550 5.7.1 Error: sender rejected by policy"
        d.wait_log(r": reject: MAIL from \[127\.0\.0\.1\]:\d+: 550 5\.7\.1 Error: sender "
                   r"rejected by policy; from=<alice@client\.test\.example> .*"
                   r"plugin=testpolicy$")
    # Unload it again; the session that had it keeps it.
    with d.connect() as mid:
        mid.ehlo()
        d.reload(config={"plugins": None, "plugin:testpolicy": None,
                         "server": {"banner": "ESMTP without"}})
        wait_for_banner(d, f"220 {HOSTNAME} ESMTP without")
        assert mid.cmd("MAIL FROM:<alice@client.test.example>").code == 550
    with d.connect() as last:
        last.ehlo()
        assert last.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    old.close()


def test_reload_refused_by_plugin_keeps_old(postiliond):
    """A new file whose plugin settings the plugin refuses (an unknown key
    makes testpolicy's reload fail) is refused as a whole."""
    d = postiliond(plugins=["testpolicy"], config={"plugin:testpolicy": {"mail": "reject"}})
    mark = d.log_mark()
    d.reload(config={"plugin:testpolicy": {"colour": "blue"},
                     "server": {"banner": "ESMTP refused"}}, wait=0)
    d.wait_log(r"colour", since=mark)
    with d.connect() as c:
        assert c.greeting.last == f"220 {HOSTNAME} ESMTP Postilion"
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@client.test.example>").code == 550


def test_sighup_as_soon_as_the_port_listens(postiliond):
    # A supervisor may signal the daemon the moment its port accepts: the
    # signal must wait for the loop, never take its default action (exit).
    d = postiliond(start=False)
    for _ in range(5):
        d.start(wait=False)
        deadline = time.monotonic() + harness.scaled(10)
        while d.port not in harness.listening_ports():
            assert d.running(), d.log_text()
            assert time.monotonic() < deadline, "never listened"
            time.sleep(0.001)
        mark = d.log_mark()
        d.signal(signal.SIGHUP)
        d.wait_log(r"reload: reading", since=mark)
        assert d.running()
        with d.connect() as c:
            assert c.greeting.code == 220
        d.signal(signal.SIGTERM)
        assert d.wait_exit() == 0


# --- Without -f -------------------------------------------------------------


def detached_pids(conf_path) -> list[int]:
    """The processes running `postiliond ... -c CONF` (the detached one)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if (argv and argv[0].endswith(b"postiliond")
                and str(conf_path).encode() in argv):
            pids.append(int(entry))
    return pids


def test_detached_start_serves_and_stops(postiliond):
    """Without -f the daemon detaches (logging to syslog from then on), and
    its parent exits 0 once it serves.  The log set-up ran twice then, and
    GLib aborted the daemon at the second one."""
    d = postiliond(start=False)
    d.write_config()
    started = subprocess.run([str(harness.POSTILIOND), "-c", str(d.conf_path)],
                             cwd=d.directory, env=d.env,
                             stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=scaled(30))
    assert started.returncode == 0, started.stderr.decode(errors="replace")
    pids = detached_pids(d.conf_path)
    try:
        assert len(pids) == 1, pids
        with d.connect() as c:
            assert c.greeting.code == 220
            c.ehlo()
            queue_id(transaction(c, "a@client.example", ["b@example.org"],
                                 simple_message("detached")))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + scaled(15)
    while detached_pids(d.conf_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not detached_pids(d.conf_path)
