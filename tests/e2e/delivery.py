"""delivery.py - helpers for the delivery tests: [delivery] configs,
reading Maildirs, waiting for log lines and for the queue to drain, and a
small LMTP server (standard library only) whose replies a test scripts.

Every wait is bounded (scaled by POSTILION_TIME_SCALE via harness.scaled).
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from pathlib import Path

from harness import HarnessError, scaled


def delivery_config(root: Path, mailboxes=("bob@example.org",
                                           "alice@example.org"),
                    aliases: str | None = None, **keys) -> dict:
    """A [delivery] group delivering into Maildirs under root/maildir."""
    root.mkdir(parents=True, exist_ok=True)
    group = {"maildir_root": str(root / "maildir"),
             "retry_first": "200ms", "retry_max": "1s"}
    if mailboxes is not None:
        (root / "mailboxes").write_text("\n".join(mailboxes) + "\n")
        group["mailboxes"] = str(root / "mailboxes")
    if aliases is not None:
        (root / "aliases").write_text(aliases)
        group["aliases"] = str(root / "aliases")
    group.update(keys)
    return {"delivery": group}


def maildir_of(root: Path, address: str) -> Path:
    local, domain = address.lower().rsplit("@", 1)
    return root / "maildir" / domain / local


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise HarnessError(f"timed out waiting for {what}")


def maildir_messages(maildir: Path) -> list[bytes]:
    new = maildir / "new"
    if not new.is_dir():
        return []
    return [p.read_bytes() for p in sorted(new.iterdir())]


def wait_messages(maildir: Path, count: int = 1,
                  timeout: float = 10.0) -> list[bytes]:
    return wait_for(lambda: (m := maildir_messages(maildir)) and
                    len(m) >= count and m,
                    timeout, f"{count} message(s) in {maildir}")


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def wait_queue_empty(daemon, timeout: float = 10.0) -> None:
    wait_for(lambda: not list((daemon.spool / "queue").iterdir()),
             timeout, "the queue to drain")


class LMTPServer:
    """An LMTP server on 127.0.0.1 (a thread): records every transaction;
    `rcpt_replies` and `data_replies` map an address to the reply it gets
    (default 250), and `garbage` makes it greet with junk."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}
        self.garbage = False
        self.delivered: list[tuple[str, bytes]] = []
        self.sessions = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self._session, args=(conn,),
                             daemon=True).start()

    def _session(self, conn: socket.socket):
        conn.settimeout(10)
        f = conn.makefile("rwb")

        def say(line: str):
            f.write(line.encode() + b"\r\n")
            f.flush()
        try:
            if self.garbage:
                say("hello there, this is not LMTP")
                return
            say("220 lmtp.test ready")
            rcpts: list[str] = []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode().strip()
                upper = cmd.upper()
                if upper.startswith("LHLO"):
                    say("250-lmtp.test\r\n250 PIPELINING")
                elif upper.startswith("MAIL"):
                    rcpts = []
                    say("250 2.1.0 Ok")
                elif upper.startswith("RCPT"):
                    addr = cmd[cmd.index("<") + 1:cmd.rindex(">")]
                    reply = self.rcpt_replies.get(addr, "250 2.1.5 Ok")
                    if reply.startswith("2"):
                        rcpts.append(addr)
                    say(reply)
                elif upper == "DATA":
                    say("354 go ahead")
                    lines = []  # joined once: += on bytes is quadratic
                    while True:
                        chunk = f.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        lines.append(chunk[1:] if chunk.startswith(b"..")
                                     else chunk)
                    data = b"".join(lines)
                    for addr in rcpts:
                        reply = self.data_replies.get(addr, "250 2.0.0 Ok")
                        if reply.startswith("2"):
                            self.delivered.append((addr, data))
                        say(reply)
                elif upper == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("500 what")
        except OSError:
            return
        finally:
            conn.close()
