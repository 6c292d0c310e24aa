"""A scriptable milter (Sendmail milter protocol 6) for the milter plugin's
end-to-end tests: it listens on a loopback port, records every command
and macro it gets, and answers as its script says, including the corners
real milters rarely hit (each reply at each stage, edits, refusals in
option negotiation, silence, oversized frames, closing mid-body).

Script keys (all optional):
  version, actions, steps   the option negotiation answer (defaults: 6,
                            every action, no steps)
  symlist                   {stage number: "macro names"} (SETSYMLIST)
  negotiation               raw bytes to send instead of the answer
  replies                   {command letter: action}: what to answer to
                            that command ('C', 'H', 'M', 'R', 'T', 'L',
                            'N', 'B', 'E'); an action is a reply letter
                            ("c", "a", "r", "t", "d", "s"), ("y", TEXT),
                            ("sleep", SECONDS), "close", ("raw", BYTES)
                            or "oversize"; default "c"
  edits                     [(letter, payload bytes)] sent before the
                            final reply to 'E'
  idle_timeout              seconds a connection may stay silent before
                            the milter drops it (default 30)
  body_read_delay           seconds to wait after each body piece before
                            reading on (a slow milter: the MTA's writes
                            back up)
Each connection is recorded as a list of (command letter, payload) in
`sessions`.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

ACTIONS_ALL = 0x1FF

NR_ALL = (0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x40000 | 0x80000
          | 0x80)


def frame(command: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload) + 1) + command + payload


def strings(*values: str) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


class MilterSession:
    def __init__(self):
        self.commands: list[tuple[str, bytes]] = []
        self.macros: dict[str, dict[str, str]] = {}
        self.closed = threading.Event()

    def letters(self) -> str:
        """The commands in order, macros ('D') left out."""
        return "".join(c for c, _ in self.commands if c != "D")

    def payloads(self, letter: str) -> list[bytes]:
        return [p for c, p in self.commands if c == letter]

    def headers(self) -> list[tuple[str, str]]:
        out = []
        for payload in self.payloads("L"):
            name, value, _ = payload.split(b"\0", 2)
            out.append((name.decode(), value.decode()))
        return out

    def body(self) -> bytes:
        return b"".join(self.payloads("B"))


class TestMilter:
    __test__ = False  # not a pytest class

    """A milter on 127.0.0.1:`port`, one thread per connection."""

    def __init__(self, script: dict | None = None):
        self.script = dict(script or {})
        self.sessions: list[MilterSession] = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def socket_spec(self) -> str:
        return f"inet:127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stops listening and drops every connection.  shutdown() first:
        a bare close() leaves the accept() blocked in the other thread
        holding the socket, which then may serve the next test's daemon
        with this test's script."""
        self.stopping = True
        for sock in [self.listener] + self.connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.thread.join(timeout=5)

    def last(self, timeout: float = 5.0) -> MilterSession:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.sessions:
                    return self.sessions[-1]
            time.sleep(0.02)
        raise AssertionError("the test milter got no connection")

    # --- serving ------------------------------------------------------

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            session = MilterSession()
            with self.lock:
                self.sessions.append(session)
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn, session),
                             daemon=True).start()

    @staticmethod
    def _read_exact(conn: socket.socket, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, conn: socket.socket, session: MilterSession) -> None:
        conn.settimeout(self.script.get("idle_timeout", 30))
        try:
            while True:
                head = self._read_exact(conn, 4)
                if head is None:
                    return
                (length,) = struct.unpack(">I", head)
                data = self._read_exact(conn, length)
                if data is None:
                    return
                command, payload = chr(data[0]), data[1:]
                session.commands.append((command, payload))
                if not self._answer(conn, session, command, payload):
                    return
                if command == "B":
                    time.sleep(self.script.get("body_read_delay", 0))
        except OSError:
            return
        finally:
            conn.close()
            session.closed.set()

    def _negotiate(self, conn: socket.socket) -> None:
        s = self.script
        if "negotiation" in s:
            conn.sendall(s["negotiation"])
            return
        payload = struct.pack(">III", s.get("version", 6),
                              s.get("actions", ACTIONS_ALL),
                              s.get("steps", 0))
        for stage, names in s.get("symlist", {}).items():
            payload += struct.pack(">I", stage) + names.encode() + b"\0"
        conn.sendall(frame(b"O", payload))

    def _answer(self, conn, session, command, payload) -> bool:
        if command == "O":
            self._negotiate(conn)
            return True
        if command == "D":
            fields = payload[1:].split(b"\0")
            pairs = dict(zip(fields[0::2], fields[1::2]))
            session.macros[chr(payload[0])] = {
                k.decode(): v.decode() for k, v in pairs.items()}
            return True
        if command in ("A", "Q"):
            return command != "Q"
        steps = self.script.get("steps", 0)
        no_reply = {"C": 0x1000, "H": 0x2000, "M": 0x4000, "R": 0x8000,
                    "T": 0x10000, "N": 0x40000, "B": 0x80000, "L": 0x80}
        if steps & no_reply.get(command, 0):
            return True
        if command == "E":
            for letter, edit in self.script.get("edits", []):
                conn.sendall(frame(letter.encode(), edit))
        action = self.script.get("replies", {}).get(command, "c")
        return self._act(conn, action)

    @staticmethod
    def _act(conn: socket.socket, action) -> bool:
        if action == "close":
            return False
        if action == "oversize":
            conn.sendall(struct.pack(">I", 64 * 1024 * 1024) + b"h")
            return True
        if isinstance(action, tuple):
            kind, value = action
            if kind == "y":
                conn.sendall(frame(b"y", value.encode() + b"\0"))
            elif kind == "sleep":
                time.sleep(value)
                conn.sendall(frame(b"c"))
            elif kind == "raw":
                conn.sendall(value)
            return True
        conn.sendall(frame(action.encode()))
        return True
