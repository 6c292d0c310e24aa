"""harness.py - run the real postiliond and talk SMTP to it, byte for byte.

The end-to-end tests import from here; conftest.py wraps it in fixtures.
Nothing here knows a test: it is the toolbox.

Where things come from
    POSTILION_BUILD      the meson build directory (default <repo>/build):
                         BUILD/postiliond, BUILD/tests/plugins/*.so,
                         BUILD/tests/pst-spool-dump
    POSTILION_TIME_SCALE multiplies every timeout (default 1, or 3 when the
                         build has -Db_sanitize set)

Pieces
    Config          a keyfile as a dict of groups: defaults + overrides,
                    rendered to GLib keyfile text (lists joined with ';').
    Daemon          one postiliond process: writes its config into its own
                    directory, picks free loopback ports, starts
                    `postiliond -f -c FILE`, waits until every listener is
                    in LISTEN state (read from /proc/net/tcp, so waiting opens
                    no SMTP session), and exposes .port, .ports[name],
                    .spool, .conf_path, .log_text(), .wait_log(),
                    .reload(), .stop(), .kill(), .spool_messages().
    SMTPRaw         a raw socket client for byte-exact dialogs: every read
                    has a deadline, replies are parsed into Reply objects.
    run_cli()       runs postiliond with arguments (--check, --version) and
                    returns (exit code, stdout, stderr).

Every wait in this file is bounded: a test fails, it never hangs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("POSTILION_BUILD", REPO / "build")).resolve()
POSTILIOND = BUILD / "postiliond"
PLUGIN_DIR = BUILD / "tests" / "plugins"
SPOOL_DUMP = BUILD / "tests" / "pst-spool-dump"

# The identity every test daemon runs with.
HOSTNAME = "mx.test.example"
LOCAL_DOMAINS = ("example.org", "example.net")
CLIENT_NAME = "client.test.example"

# The daemon's last line of a SIGHUP's reload (core/server/daemon.c,
# daemon_reload()): the new configuration taken, or refused.
RELOAD_DONE = (r"reload: new sessions use the configuration of "
               r"|reload refused, the running configuration stays")

# Sanitizer reports the daemon may print; any of them fails the test.
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)"
    r"|runtime error: |SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer"
)


def _build_is_sanitized() -> bool:
    info = BUILD / "meson-info" / "intro-buildoptions.json"
    try:
        for option in json.loads(info.read_text()):
            if option.get("name") == "b_sanitize":
                return option.get("value") not in ("none", "", None)
    except (OSError, ValueError):
        pass
    return False


SANITIZED = _build_is_sanitized()
TIME_SCALE = float(os.environ.get("POSTILION_TIME_SCALE", "3" if SANITIZED else "1"))


def scaled(seconds: float) -> float:
    """A timeout stretched for slow (sanitizer) builds."""
    return seconds * TIME_SCALE


class HarnessError(AssertionError):
    """The daemon or a peer did something the harness did not expect."""


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def render_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(render_value(v) for v in value)
    return str(value)


def render_config(groups: dict) -> str:
    """GLib keyfile text from {group: {key: value}}.  Values: str, int,
    bool, or a list (joined with ';').  A key whose value is None and a
    group whose value is None are left out."""
    out = []
    for group, keys in groups.items():
        if keys is None:
            continue
        out.append(f"[{group}]")
        for key, value in keys.items():
            if value is not None:
                out.append(f"{key} = {render_value(value)}")
        out.append("")
    return "\n".join(out)


def merge_config(base: dict, overrides: dict | None) -> dict:
    """A copy of `base` with `overrides` applied group by group.  A group
    set to None is removed; a key set to None is removed."""
    merged = {group: dict(keys) for group, keys in base.items()}
    for group, keys in (overrides or {}).items():
        if keys is None:
            merged.pop(group, None)
            continue
        target = merged.setdefault(group, {})
        for key, value in keys.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return merged


_loopback_dns = None


def loopback_dns_port() -> int:
    """The port of one test DNS server (tests/dns/loopback.zone) shared by
    every daemon of the run whose test brings no zones of its own: the
    daemon's lookups (the client's reverse name, plugins' checks) stay on
    loopback and never reach the machine's resolver."""
    global _loopback_dns
    if _loopback_dns is None:
        _loopback_dns = TestDnsServer([REPO / "tests" / "dns" / "loopback.zone"])
    return _loopback_dns.port


def default_config(spool: Path) -> dict:
    """What every test daemon starts from.  Short timeouts so tests about
    them run fast; the shutdown grace is short so teardown is quick; DNS
    goes to the loopback test server (a test's own [dns] overrides it)."""
    return {
        "server": {
            "hostname": HOSTNAME,
            "domains": list(LOCAL_DOMAINS),
            "spool": str(spool),
            "timeout_shutdown": "3s",
        },
        "dns": {"nameservers": f"127.0.0.1@{loopback_dns_port()}",
                "dnssec": "no"},
    }


_handed_out: set[int] = set()

# A directory shared by every process of one test run (pytest-xdist's
# workers; conftest.py makes it and exports it): free_port() claims each
# port there too, so that two workers never hand out the same port.
PORT_CLAIMS_ENV = "POSTILION_PORT_CLAIMS"


def claim_port(port: int) -> bool:
    """True when no process of this run handed `port` out before; it is
    handed out from now on (free_port(), receivers.shared_port())."""
    if port in _handed_out:
        return False
    _handed_out.add(port)
    claims = os.environ.get(PORT_CLAIMS_ENV)
    if claims:
        try:
            os.close(os.open(os.path.join(claims, str(port)),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, and not one this process
    (or another worker of this run) handed out before: the kernel may give
    a just-released port again, and two listeners on the same port fail."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if claim_port(port):
            return port
    raise HarnessError("no fresh free port after 100 tries")


def listening_ports() -> set[int]:
    """Local ports in LISTEN state, IPv4 and IPv6, from /proc/net/tcp*."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# --------------------------------------------------------------------------
# Running postiliond once (CLI checks)
# --------------------------------------------------------------------------


def run_cli(args: Iterable[str], timeout: float = 10.0, env=None):
    """Runs BUILD/postiliond with `args`; returns (returncode, stdout,
    stderr) as text.  Never waits longer than `timeout` (scaled)."""
    proc = subprocess.run(
        [str(POSTILIOND), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=scaled(timeout),
        env=env,
    )
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------


class Daemon:
    """One postiliond process with its own directory, config, spool and log.

    `config` are overrides on top of default_config(); `listeners` names the
    [listener:NAME] groups to create, each on a free 127.0.0.1 port unless
    the overrides give that group an `address`; `plugins` fills
    `[plugins] load` (and sets `path` to BUILD/tests/plugins unless given).
    """

    def __init__(self, directory: Path, config: dict | None = None,
                 listeners: Iterable[str] = ("smtp",),
                 plugins: Iterable[str] | None = None,
                 name: str = "postiliond", env: dict | None = None):
        self.name = name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.directory / "postilion.conf"
        self.log_path = self.directory / "postiliond.log"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.expect_exit = False  # set when a test stops or kills it
        self.ports: dict[str, int] = {}
        self.config = self._build_config(config, listeners, plugins)

    # --- configuration ------------------------------------------------

    def _build_config(self, overrides, listeners, plugins) -> dict:
        base = default_config(self.directory / "spool")
        for listener in listeners:
            base[f"listener:{listener}"] = {
                "address": f"127.0.0.1:{free_port()}"}
        self._auto_addresses = {
            f"listener:{name}": base[f"listener:{name}"]["address"]
            for name in listeners}
        if plugins is not None:
            base["plugins"] = {"path": str(PLUGIN_DIR), "load": list(plugins)}
        merged = merge_config(base, overrides)
        self._note_ports(merged)
        return merged

    def _note_ports(self, config: dict) -> None:
        self.ports = {}
        for group, keys in config.items():
            if group.startswith("listener:") and keys and "address" in keys:
                port = str(keys["address"]).rsplit(":", 1)[1]
                self.ports[group.split(":", 1)[1]] = int(port)

    @property
    def spool(self) -> Path:
        """The spool directory: [server] spool of the current config."""
        return Path(self.config["server"]["spool"])

    @property
    def port(self) -> int:
        """The port of the first listener."""
        return next(iter(self.ports.values()))

    def write_config(self, text: str | None = None) -> None:
        self.conf_path.write_text(
            text if text is not None else render_config(self.config))

    # --- process ------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = 10.0) -> "Daemon":
        """Starts `postiliond -f -c FILE` (the config is written first) and,
        with `wait`, returns once every listener port is in LISTEN state.
        Raises HarnessError, with the log, when the daemon exits first."""
        assert self.proc is None or self.proc.poll() is not None
        if not self.conf_path.exists():
            self.write_config()
        self.expect_exit = False
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(POSTILIOND), "-f", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.directory, env=self.env)
        finally:
            log.close()
        if wait:
            try:
                self.wait_listening(timeout)
            except HarnessError:
                if not self._repick_taken_ports():
                    raise
                return self.start(wait, timeout)
        return self

    def _repick_taken_ports(self) -> bool:
        """After a start that failed because a port the harness picked was
        taken meanwhile (free_port() cannot reserve it: another process may
        bind it first), picks new ones; FALSE when that was not the cause
        or after three tries."""
        self._port_retries = getattr(self, "_port_retries", 0) + 1
        if (self._port_retries > 3 or self.running()
                or "Address already in use" not in self.log_text()):
            return False
        changed = False
        for group, address in self._auto_addresses.items():
            keys = self.config.get(group) or {}
            if keys.get("address") == address:
                keys["address"] = address = f"127.0.0.1:{free_port()}"
                self._auto_addresses[group] = address
                changed = True
        if changed:
            self._note_ports(self.config)
            self.write_config()
        return changed

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + scaled(timeout)
        wanted = set(self.ports.values())
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"postiliond exited with {self.proc.returncode} before "
                    f"listening; log:\n{self.log_text()}")
            if wanted <= listening_ports():
                return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"postiliond not listening on {sorted(wanted)} after "
                    f"{scaled(timeout)}s; log:\n{self.log_text()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Waits for the process to exit; returns its status (negative:
        killed by that signal).  Fails after `timeout` (scaled).  The
        exit counts as expected: teardown does not complain about it."""
        self.expect_exit = True
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"postiliond still running after {scaled(timeout)}s; log:\n"
                f"{self.log_text()}") from None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then waits for the exit; returns the exit status."""
        self.expect_exit = True
        if self.running():
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL: nothing gets a chance to finish."""
        self.expect_exit = True
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def reload(self, text: str | None = None, config: dict | None = None,
               wait: float | None = None) -> None:
        """Rewrites the config file (raw `text`, or the current config merged
        with the overrides `config`) and sends SIGHUP.  By default returns
        once the daemon has logged the reload's end, taken or refused
        (RELOAD_DONE; at most 10 s, scaled): sessions opened after that see
        the outcome.  `wait=0` returns at once (the test waits for its own
        log line); another `wait` sleeps that long (scaled), for tests that
        send SIGHUPs in quick succession on purpose."""
        if text is None:
            self.config = merge_config(self.config, config)
            self._note_ports(self.config)
            text = render_config(self.config)
        self.conf_path.write_text(text)
        mark = self.log_mark()
        self.signal(signal.SIGHUP)
        if wait is None:
            self.wait_log(RELOAD_DONE, timeout=10, since=mark)
        elif wait:
            time.sleep(scaled(wait))

    # --- log ----------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_mark(self) -> int:
        """The log's current length: pass it as `since` to wait_log() to
        look only at what comes after now."""
        return len(self.log_text())

    def log_lines(self, since: int = 0) -> list[str]:
        return self.log_text()[since:].splitlines()

    def wait_log(self, regex: str, timeout: float = 5.0,
                 since: int = 0) -> re.Match:
        """Waits until a log line (after offset `since`) matches `regex`
        (re.search, per line); returns the match.  Fails with the log."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            for line in self.log_lines(since):
                match = pattern.search(line)
                if match:
                    return match
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"no log line matching {regex!r} within "
                    f"{scaled(timeout)}s; log:\n{self.log_text()[since:]}")
            time.sleep(0.02)

    def sanitizer_report(self) -> str | None:
        """The log from the first sanitizer report on, or None."""
        text = self.log_text()
        match = SANITIZER_REPORT.search(text)
        if not match:
            return None
        start = text.rfind("\n", 0, match.start()) + 1
        return text[start:]

    # --- clients ------------------------------------------------------

    def connect(self, listener: str | None = None, timeout: float = 5.0,
                source: str | None = None, greeting: bool = True) -> "SMTPRaw":
        """A raw client on `listener` (default: the first).  With
        `greeting`, the 220 banner is read and kept in .greeting."""
        port = self.ports[listener] if listener else self.port
        client = SMTPRaw("127.0.0.1", port, timeout=timeout, source=source)
        if greeting:
            client.greeting = client.read_reply()
        return client

    def smtp(self, listener: str | None = None,
             timeout: float = 10.0) -> smtplib.SMTP:
        """An smtplib client, connected (greeting read), not yet EHLO'd."""
        port = self.ports[listener] if listener else self.port
        return smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_NAME,
                            timeout=scaled(timeout))

    # --- spool --------------------------------------------------------

    def spool_messages(self, queue: str = "active",
                       id: str | None = None) -> list[dict]:
        """The queued messages, read through the queue module's own API
        (BUILD/tests/pst-spool-dump).  Each dict has the tool's fields plus
        `content`: the message bytes decoded from content_b64."""
        args = [str(SPOOL_DUMP), str(self.spool), "--queue", queue]
        if id is not None:
            args += ["--id", id]
        proc = subprocess.run(args, capture_output=True,
                              timeout=scaled(15), stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise HarnessError(
                f"pst-spool-dump failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace')}")
        messages = json.loads(proc.stdout)
        for message in messages:
            if "error" in message:
                raise HarnessError(f"queue file {message['id']} does not load: "
                                   f"{message['error']}")
            message["content"] = base64.b64decode(message.get("content_b64", ""))
        return messages

    def spool_files(self, subdir: str) -> list[str]:
        """File names in a spool sub-directory (tmp, queue, hold, corrupt)."""
        path = self.spool / subdir
        return sorted(os.listdir(path)) if path.is_dir() else []

    def tmp_leftovers(self) -> list[str]:
        """Files in tmp/ that hold message data.  The spool keeps spare
        files there (empty or all zeros: doc/queue-format.md), made ahead
        for the next messages, and delivered messages' files waiting to
        become spares (used.*, overwritten before reuse, removed unread
        after a crash); those are not leftovers of a refused or aborted
        message."""
        path = self.spool / "tmp"
        leftovers = []
        for name in self.spool_files("tmp"):
            if name.startswith("used."):
                continue
            try:
                data = (path / name).read_bytes()
            except FileNotFoundError:  # taken and renamed meanwhile
                continue
            if data.strip(b"\0"):
                leftovers.append(name)
        return leftovers


# --------------------------------------------------------------------------
# Raw SMTP client
# --------------------------------------------------------------------------


class Reply:
    """One SMTP reply: .code (int), .lines (each without CRLF, code
    included), .last (the last line, "250 2.1.0 Ok"), .text (the last
    line after "NNN "), .raw (the bytes as received)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.lines = raw.decode("utf-8", "replace").split("\r\n")[:-1]
        self.code = int(self.lines[-1][:3])
        self.last = self.lines[-1]
        self.text = self.last[4:]

    @property
    def enhanced(self) -> str | None:
        match = re.match(r"[245]\.\d{1,3}\.\d{1,3}\b", self.text)
        return match.group(0) if match else None

    def __repr__(self) -> str:
        return f"Reply({self.lines!r})"


class ConnectionClosed(HarnessError):
    pass


_REPLY_LINE = re.compile(rb"([2-5]\d\d)([ -])[^\r\n]*\r\n")


class SMTPRaw:
    """A byte-exact SMTP client.  send()/line() write; read_reply() parses
    one (possibly multi-line) reply.  Every read has a deadline (default
    the constructor's `timeout`, scaled): a missing reply raises
    HarnessError instead of hanging."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 source: str | None = None):
        self.timeout = scaled(timeout)
        self.greeting: Reply | None = None
        self.buffer = b""
        self.eof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(self.timeout)
        self.sock.connect((host, port))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # --- writing ------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        """Sends bytes as they are (str is UTF-8 encoded; no CRLF added)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def line(self, text: bytes | str) -> None:
        """Sends one line followed by CRLF."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(text + b"\r\n")

    # --- reading ------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Reads more into the buffer; False at EOF.  Raises on timeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HarnessError(f"timed out; unparsed input: {self.buffer!r}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise HarnessError(
                f"no reply within the deadline; unparsed input: "
                f"{self.buffer!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_reply(self, timeout: float | None = None) -> Reply:
        """Reads one complete reply.  Raises ConnectionClosed when the
        server closes first, HarnessError on a timeout or a line that is
        not a reply."""
        deadline = time.monotonic() + (scaled(timeout) if timeout is not None
                                       else self.timeout)
        pos = 0
        while True:
            while True:
                match = _REPLY_LINE.match(self.buffer, pos)
                if not match:
                    break
                pos = match.end()
                if match.group(2) == b" ":
                    raw, self.buffer = self.buffer[:pos], self.buffer[pos:]
                    return Reply(raw)
            if b"\r\n" in self.buffer[pos:]:
                raise HarnessError(f"not an SMTP reply: {self.buffer!r}")
            if not self._fill(deadline):
                raise ConnectionClosed(
                    f"connection closed; unparsed input: {self.buffer!r}")

    def read_replies(self, count: int, timeout: float | None = None) -> list[Reply]:
        return [self.read_reply(timeout) for _ in range(count)]

    def cmd(self, text: bytes | str, timeout: float | None = None) -> Reply:
        """Sends a command line and returns its reply."""
        self.line(text)
        return self.read_reply(timeout)

    def ehlo(self, name: str = CLIENT_NAME) -> Reply:
        return self.cmd(f"EHLO {name}")

    def wait_closed(self, timeout: float | None = None) -> bytes:
        """Waits for the server to close; returns what it sent meanwhile
        (with anything not yet parsed).  Fails if it stays open."""
        deadline = time.monotonic() + (scaled(timeout) if timeout is not None
                                       else self.timeout)
        while self._fill(deadline):
            pass
        data, self.buffer = self.buffer, b""
        return data

    def is_closed(self, timeout: float = 0.5) -> bool:
        """True when the server has closed (or closes within `timeout`);
        False when the connection is still open.  Fails if data arrives."""
        if self.eof:
            return not self.buffer
        self.sock.settimeout(scaled(timeout))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if data:
            raise HarnessError(f"unexpected data from the server: {data!r}")
        self.eof = True
        return True

    def expect_silence(self, seconds: float = 0.3) -> None:
        """Asserts that the server sends nothing for `seconds` (unscaled:
        this is about extra replies, not slowness)."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        raise HarnessError(f"unexpected data from the server: "
                           f"{self.buffer + data!r}")


# --------------------------------------------------------------------------
# Dialog helpers
# --------------------------------------------------------------------------

QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]{12,})")


def dot_stuff(body: bytes) -> bytes:
    """DATA encoding: leading dots doubled, terminated by CRLF.CRLF.
    `body` must use CRLF and should end with CRLF."""
    lines = body.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def simple_message(subject: str = "test", body: str = "Hello.") -> bytes:
    return (f"From: <alice@client.test.example>\r\n"
            f"To: <bob@example.org>\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@client.test.example>\r\n"
            f"\r\n{body}\r\n").encode()


def queue_id(reply: Reply) -> str:
    """The queue id of a `250 2.0.0 Ok: queued as ID` reply; fails on any
    other reply."""
    match = QUEUED.fullmatch(reply.last)
    if not match:
        raise HarnessError(f"expected a queued reply, got {reply.lines!r}")
    return match.group(1)


def transaction(client: SMTPRaw, sender: str = "alice@client.test.example",
                recipients: Iterable[str] = ("bob@example.org",),
                message: bytes | None = None, mail_params: str = "") -> Reply:
    """MAIL, RCPTs (each must be accepted), DATA and the message; returns
    the reply after the final dot.  Expects EHLO/HELO already done."""
    params = f" {mail_params}" if mail_params else ""
    reply = client.cmd(f"MAIL FROM:<{sender}>{params}")
    if reply.code != 250:
        raise HarnessError(f"MAIL refused: {reply.lines!r}")
    for rcpt in recipients:
        reply = client.cmd(f"RCPT TO:<{rcpt}>")
        if reply.code != 250:
            raise HarnessError(f"RCPT {rcpt} refused: {reply.lines!r}")
    reply = client.cmd("DATA")
    if reply.code != 354:
        raise HarnessError(f"DATA refused: {reply.lines!r}")
    client.send(dot_stuff(message if message is not None else simple_message()))
    return client.read_reply()


def split_message(content: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """(headers as (name, raw value with folding), body) of CRLF content."""
    head, _, body = content.partition(b"\r\n\r\n")
    fields: list[list[str]] = []
    for line in head.decode("utf-8", "replace").split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += "\r\n" + line
        else:
            name, _, value = line.partition(":")
            fields.append([name, value.lstrip(" ")])
    return [(n, v) for n, v in fields], body


class TestDnsServer:
    """One tests/dns/testdns.py process serving `zones` on a free loopback
    port (.port); `args` adds options.  It exits with the test run (it
    watches its stdin) and on stop()."""

    __test__ = False  # not a pytest test class

    def __init__(self, zones, args=()):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(REPO / "tests" / "dns" / "testdns.py"),
             *map(str, zones), *args, "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        match = re.search(r"port=(\d+)", line)
        if not match:
            self.stop()
            raise HarnessError(f"testdns.py did not start: {line!r}")
        self.port = int(match.group(1))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
