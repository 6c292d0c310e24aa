"""receivers.py - SMTP servers for the outbound delivery tests (standard
library only), and the zone file that points MX records at them.

A Receiver listens on one loopback address (127.0.0.2, 127.0.0.3, ... or
::1) and a port shared by all of them ([delivery] smtp_port), records
every session and message, and can be told to misbehave:

    r.rcpt_replies["b@x"] = "550 5.1.1 No such user"
    r.mail_reply = "451 4.3.0 try later"      r.data_reply = "554 no"
    r.greeting = "554 go away"                r.drop_at = "rcpt" / "dot"
    r.stall_at = "mail"                       r.oversized = True
    r.garbage = True                          r.keywords = [...]
    r.tls_context = ssl.SSLContext(...)       (offers STARTTLS)
    r.tls_broken = True  (220 to STARTTLS, then garbage instead of TLS)
    r.tls_inject = b"250 injected\r\n"       (sent in clear after the 220)
    r.auth_users = {"alice": "secret"}        (offers AUTH PLAIN LOGIN over
    r.auth_in_clear = True                     TLS, or also in clear)

Replies are sent per command in order, so PIPELINING works as the RFC
says.  Every socket wait is bounded.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from pathlib import Path

from harness import claim_port

DEFAULT_KEYWORDS = ["PIPELINING", "SIZE 10240000", "8BITMIME",
                    "ENHANCEDSTATUSCODES"]


class Message:
    def __init__(self, sender, recipients, raw, params):
        self.sender = sender
        self.recipients = recipients
        self.raw = raw            # as on the wire, dot-stuffed, with final dot
        self.params = params      # MAIL FROM parameters
        self.rcpt_params = {}     # recipient -> its RCPT TO parameters
        self.data = unstuff(raw)


def unstuff(raw: bytes) -> bytes:
    body = raw[:-3] if raw.endswith(b".\r\n") else raw
    lines = body.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class Receiver:
    def __init__(self, host: str, port: int, name: str | None = None):
        self.host = host
        self.port = port
        self.name = name or f"mx-{host}"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(32)
        self.sock.settimeout(0.2)
        self.greeting = f"220 {self.name} ESMTP test receiver"
        self.keywords = list(DEFAULT_KEYWORDS)
        self.ehlo_reply = None
        self.mail_reply = None
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply = None
        self.dot_reply = None
        self.drop_at = None
        # Close without a reply at the MAIL after this many messages on
        # one connection (a server whose idle timeout struck just then).
        self.drop_mail_after: int | None = None
        self.stall_at = None
        self.oversized = False
        self.garbage = False
        self.tls_context: ssl.SSLContext | None = None
        self.tls_broken = False
        self.tls_inject = b""
        self.tls_sessions: list[str] = []   # TLS version of each STARTTLS
        self.auth_users: dict[str, str] = {}
        self.auth_in_clear = False
        self.logins: list[tuple[str, str, bool]] = []  # user, mech, ok
        self.messages: list[Message] = []
        self.commands: list[bytes] = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()

    # --- serving -------------------------------------------------------

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            threading.Thread(target=self._session_guarded, args=(conn,),
                             daemon=True).start()

    def _session_guarded(self, conn):
        try:
            conn.settimeout(10)
            self._session(conn)
        except (OSError, ConnectionError):
            pass
        finally:
            with self.lock:
                self.active -= 1
            conn.close()

    def _stall(self, stage, conn) -> bool:
        if self.stall_at == stage:
            end = time.monotonic() + 8
            while time.monotonic() < end and not self.stopping:
                time.sleep(0.05)
            return True
        return False

    def _session(self, conn):
        buf = bytearray()
        state = {"conn": conn}

        def say(text: str):
            state["conn"].sendall(text.encode() + b"\r\n")

        def line():
            while b"\r\n" not in buf:
                data = state["conn"].recv(65536)
                if not data:
                    raise ConnectionError("closed")
                buf.extend(data)
            head, _, rest = bytes(buf).partition(b"\r\n")
            buf[:] = rest
            self.commands.append(head)
            return head

        if self._stall("greeting", conn):
            return
        if self.drop_at == "greeting":
            return
        if self.garbage:
            conn.sendall(b"hello there, no code here\r\n")
            return
        if self.oversized:
            conn.sendall(b"220-" + b"x" * 5000 + b"\r\n220 ok\r\n")
            return
        say(self.greeting)
        if not self.greeting.startswith("2"):
            return
        sender, recipients, params = None, [], ""
        rcpt_params = {}
        while True:
            cmd = line().decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if self.ehlo_reply:
                    say(self.ehlo_reply)
                    continue
                lines = [self.name] + self.keywords
                if self.tls_context is not None and "tls" not in state:
                    lines.append("STARTTLS")
                if self.auth_users and ("tls" in state or self.auth_in_clear):
                    lines.append("AUTH PLAIN LOGIN")
                for i, text in enumerate(lines):
                    say(("250 " if i == len(lines) - 1 else "250-") + text)
            elif verb == "STARTTLS" and self.tls_context is not None:
                state["conn"].sendall(b"220 2.0.0 Ready to start TLS\r\n"
                                      + self.tls_inject)
                if self.tls_broken:
                    state["conn"].sendall(b"this is not a TLS handshake\r\n")
                    return
                buf.clear()
                state["conn"] = self.tls_context.wrap_socket(
                    state["conn"], server_side=True)
                state["tls"] = state["conn"].version()
                self.tls_sessions.append(state["tls"])
                sender, recipients = None, []
            elif verb == "AUTH" and self.auth_users:
                self._auth(cmd, say, line)
            elif verb == "HELO":
                say(f"250 {self.name}")
            elif verb == "MAIL":
                if (self.drop_mail_after is not None
                        and state.get("taken", 0) >= self.drop_mail_after):
                    return
                if self.drop_at == "mail" or self._stall("mail", conn):
                    return
                addr, _, params = cmd[10:].partition(">")
                sender, recipients = addr.lstrip("<"), []
                say(self.mail_reply or "250 2.1.0 Ok")
                if self.mail_reply and not self.mail_reply.startswith("2"):
                    sender = None
            elif verb == "RCPT":
                if self.drop_at == "rcpt":
                    return
                addr, _, rparams = cmd[8:].strip().partition(">")
                addr = addr.lstrip("<")
                rcpt_params[addr] = rparams.strip()
                if sender is None:
                    say("503 5.5.1 need MAIL")
                    continue
                reply = self.rcpt_replies.get(addr, "250 2.1.5 Ok")
                if reply.startswith("2"):
                    recipients.append(addr)
                say(reply)
            elif verb == "DATA":
                if not recipients:
                    say("554 5.5.1 no valid recipients")
                    continue
                if self.data_reply:
                    say(self.data_reply)
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                raw = self._read_data(state["conn"], buf)
                if self.drop_at == "dot" or self._stall("dot", conn):
                    return
                if self.dot_reply:
                    say(self.dot_reply)
                else:
                    with self.lock:
                        message = Message(sender, recipients, raw,
                                          params.strip())
                        message.rcpt_params = {a: rcpt_params.get(a, "")
                                               for a in recipients}
                        self.messages.append(message)
                        state["taken"] = state.get("taken", 0) + 1
                        n = len(self.messages)
                    say(f"250 2.0.0 Ok: queued as {self.name}-{n}")
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 unknown command")

    def _auth(self, cmd, say, line):
        words = cmd.split()
        mech = words[1].upper() if len(words) > 1 else ""

        def b64(text):
            try:
                return base64.b64decode(text, validate=True).decode()
            except ValueError:
                return None
        if mech == "PLAIN":
            if len(words) > 2:
                answer = words[2]
            else:
                say("334 ")
                answer = line().decode()
            parts = (b64(answer) or "").split("\0")
            user, password = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
        elif mech == "LOGIN":
            say("334 VXNlcm5hbWU6")
            user = b64(line().decode()) or ""
            say("334 UGFzc3dvcmQ6")
            password = b64(line().decode()) or ""
        else:
            say("504 5.5.4 mechanism not supported")
            return
        ok = self.auth_users.get(user) == password
        self.logins.append((user, mech, ok))
        say("235 2.7.0 Authentication successful" if ok else
            "535 5.7.8 Authentication credentials invalid")

    def _read_data(self, conn, buf) -> bytes:
        # The end is looked for only in what arrived since the last look
        # (and the 4 octets before it): linear in the message's size.
        looked = 0
        while not buf.startswith(b".\r\n"):
            end = buf.find(b"\r\n.\r\n", max(0, looked - 4))
            if end >= 0:
                raw, rest = bytes(buf[:end + 5]), bytes(buf[end + 5:])
                buf[:] = rest
                return raw
            looked = len(buf)
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("closed in DATA")
            buf.extend(data)
        del buf[:3]
        return b".\r\n"


def shared_port(hosts, attempts: int = 50) -> int:
    """A TCP port free on every address in `hosts`, claimed for this run
    like free_port()'s, so that no other test of the run (another pytest
    worker) is handed it while the receivers listen."""
    for _ in range(attempts):
        probe = socket.socket()
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
        probe.close()
        ok = True
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok and claim_port(port):
            return port
    raise RuntimeError("no port free on every receiver address")


ZONE = """\
$TTL 60
$ORIGIN test.
@            IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@            IN NS  ns.test.
ns           IN A   127.0.0.1
; MX order: mx1 (10) first, then mx2 and mx3 (20, random between them)
other        IN MX  10 mx1.other.test.
other        IN MX  20 mx2.other.test.
other        IN MX  20 mx3.other.test.
mx1.other    IN A   127.0.0.2
mx2.other    IN A   127.0.0.3
mx3.other    IN A   127.0.0.4
; no MX: the domain's own address (implicit MX)
implicit     IN A   127.0.0.5
; RFC 7505 null MX
nullmx       IN MX  0 .
; an MX host with IPv6 (::1) and IPv4 addresses
dual         IN MX  10 mx.dual.test.
mx.dual      IN AAAA ::1
mx.dual      IN A   127.0.0.6
; the relayhost, by MX and by name
relay        IN MX  10 smtp.relay.test.
smtp.relay   IN A   127.0.0.7
"""


def write_zone(directory: Path) -> Path:
    path = directory / "outbound.zone"
    path.write_text(ZONE)
    return path
