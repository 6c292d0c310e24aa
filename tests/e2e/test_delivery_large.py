"""Large messages in delivery: an attempt reads its message in pieces
(core/queue/content-reader.c), so the daemon's memory does not grow with
the size of the messages it delivers.

Several 30 MiB messages are sent at once, each to a Maildir recipient
and to a remote one whose MX is a receiver on 127.0.0.2 (receivers.py).  The daemon's anonymous memory (RssAnon in
/proc/PID/status, sampled every 10 ms from before the first message to
the last delivery) may grow by at most GROWTH_MIB, whatever the size of
the messages: 3 MiB measured; before the content reader every attempt
held its message, and SMTP an encoded copy (243 MiB for 4 x 30 MiB).  Both copies arrive intact: the
Maildir file with LF line ends, the SMTP stream dot-stuffed across the
reader's 64 KiB pieces.  POSTILION_LARGE_MIB and POSTILION_LARGE_COUNT
change the size and the number."""

import os
import threading
import time
from pathlib import Path

import pytest

from delivery import delivery_config, maildir_of, wait_for
from harness import (BUILD, PLUGIN_DIR, SANITIZED, TestDnsServer, scaled,
                     transaction)
from receivers import Receiver, shared_port, write_zone

MESSAGE_MIB = int(os.environ.get("POSTILION_LARGE_MIB", "30"))
COUNT = int(os.environ.get("POSTILION_LARGE_COUNT", "4"))
# Sessions' receive buffers, the attempts' pieces (reader, encoder,
# Maildir), worker threads' stacks and arenas: none of it scales with the
# message.
GROWTH_MIB = 24


def big_body(mib: int, tag: int) -> bytes:
    """CRLF lines, some starting with a dot, `mib` MiB in all."""
    block = b"".join(
        (b"." if i % 7 == 0 else b"") +
        b"line %d of message %d: the quick brown fox jumps over the dog\r\n"
        % (i, tag) for i in range(1000))
    repeat = mib * 1024 * 1024 // len(block) + 1
    return (block * repeat)[:mib * 1024 * 1024 - 2] + b"\r\n"


def rss_anon_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """The peak of the daemon's RssAnon while it runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_anon_kib(pid)
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, rss_anon_kib(self.pid))


@pytest.fixture
def dns(tmp_path_factory):
    server = TestDnsServer([write_zone(tmp_path_factory.mktemp("zone"))])
    yield server
    server.stop()


def test_large_messages_delivered_in_bounded_memory(postiliond, tmp_path,
                                                    dns):
    port = shared_port(["127.0.0.2"])
    mx = Receiver("127.0.0.2", port, "mx1")
    mx.keywords = ["PIPELINING", "SIZE 200000000", "8BITMIME"]
    try:
        config = delivery_config(tmp_path, smtp_port=port,
                                 smtp_timeout="30s")
        config.update({
            "server": {"max_message_size": f"{MESSAGE_MIB + 2}M"},
            "dns": {"nameservers": f"127.0.0.1@{dns.port}", "timeout": "1s",
                    "dnssec": "no"},
            "plugins": {"path": [str(BUILD / "plugins" / "relay"),
                                 str(PLUGIN_DIR)]},
            "plugin:relay": {"internal_networks": "127.0.0.1/32"},
        })
        d = postiliond(config=config, plugins=["relay"])
        bodies = [big_body(MESSAGE_MIB, n) for n in range(COUNT)]
        baseline = rss_anon_kib(d.pid)
        sampler = Sampler(d.pid)
        sampler.start()
        start = time.monotonic()

        def send(n):
            message = (b"Subject: large %d\r\nFrom: bob@example.org\r\n\r\n"
                       % n) + bodies[n]
            with d.connect(source="127.0.0.1", timeout=scaled(60)) as c:
                c.ehlo()
                reply = transaction(c, sender="bob@example.org",
                                    recipients=["bob@example.org",
                                                "carol@other.test"],
                                    message=message)
                assert reply.code == 250, reply

        senders = [threading.Thread(target=send, args=(n,))
                   for n in range(COUNT)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=scaled(120))
        bob = maildir_of(tmp_path, "bob@example.org")
        wait_for(lambda: len(mx.messages) >= COUNT and
                 (bob / "new").is_dir() and
                 len(list((bob / "new").iterdir())) >= COUNT,
                 120, "every copy delivered")
        seconds = time.monotonic() - start
        sampler.done.set()
        sampler.join()
        growth_mib = (sampler.peak - baseline) / 1024
        print(f"large: {COUNT} x {MESSAGE_MIB} MiB to a Maildir and by "
              f"SMTP in {seconds:.1f} s; RssAnon {baseline / 1024:.1f} MiB "
              f"at rest, peak {sampler.peak / 1024:.1f} MiB "
              f"(+{growth_mib:.1f} MiB)")

        wanted = {body[-200:]: body for body in bodies}
        for message in mx.messages:
            body = wanted[message.data[-200:]]
            assert message.data.endswith(b"\r\n\r\n" + body)
        lf_bodies = [body.replace(b"\r\n", b"\n") for body in bodies]
        lf_wanted = {body[-200:]: body for body in lf_bodies}
        for path in (bob / "new").iterdir():
            stored = path.read_bytes()
            assert stored.endswith(b"\n\n" + lf_wanted[stored[-200:]])
        d.wait_log(r"status=sent", timeout=5)
        # ASan's quarantine keeps freed memory: RSS says nothing there.
        assert SANITIZED or growth_mib < GROWTH_MIB, growth_mib
    finally:
        mx.close()


def test_lmtp_streams_a_message_of_many_pieces(postiliond, tmp_path):
    """LMTP's DATA goes piece by piece too: a message of 1.5 MiB (some 24
    pieces of the reader), long lines, some starting with a dot, arrives
    as queued (the Python LMTP server unstuffs)."""
    from delivery import LMTPServer
    server = LMTPServer()
    try:
        config = delivery_config(tmp_path)
        del config["delivery"]["maildir_root"]
        config["delivery"]["lmtp"] = f"127.0.0.1:{server.port}"
        d = postiliond(config=config)
        line = b"x" * 997 + b"\r\n"
        body = b"".join((b"." if i % 3 == 0 else b"") + line
                        for i in range(1536))
        message = b"Subject: lmtp large\r\n\r\n" + body
        with d.connect() as c:
            c.ehlo()
            assert transaction(c, message=message).code == 250
        wait_for(lambda: server.delivered, 30, "the LMTP delivery")
        address, data = server.delivered[0]
        assert address == "bob@example.org"
        assert data.endswith(b"\r\n\r\n" + body)
    finally:
        server.close()


def evict_queue_files(spool: Path, stop: threading.Event) -> int:
    """Drops the pages of every file in the spool's queue/ from the page
    cache, over and over (what memory pressure does), until `stop`;
    returns the rounds."""
    rounds = 0
    while not stop.is_set() and rounds < 200000:
        for path in (spool / "queue").iterdir():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        rounds += 1
        time.sleep(0.001)
    return rounds


def test_data_read_from_the_disk_off_the_main_loop(postiliond, tmp_path, dns):
    """DATA of a large message whose pages leave the page cache while it
    is sent (a thread of the test drops them over and over, as memory
    pressure would): the main loop reads only what the page cache holds
    and has a thread read in the rest ("DATA waits for the disk" in the
    debug log), the message arrives intact, and other clients are served
    meanwhile."""
    port = shared_port(["127.0.0.2"])
    mx = Receiver("127.0.0.2", port, "mx1")
    mx.keywords = ["PIPELINING", "SIZE 200000000", "8BITMIME"]
    stop = threading.Event()
    evictor = None
    try:
        config = delivery_config(tmp_path, smtp_port=port,
                                 smtp_timeout="30s")
        config.update({
            "server": {"max_message_size": "20M"},
            "dns": {"nameservers": f"127.0.0.1@{dns.port}", "timeout": "1s",
                    "dnssec": "no"},
            "plugins": {"path": [str(BUILD / "plugins" / "relay"),
                                 str(PLUGIN_DIR)]},
            "plugin:relay": {"internal_networks": "127.0.0.1/32"},
        })
        d = postiliond(config=config, plugins=["relay"], start=False)
        d.env = dict(os.environ, G_MESSAGES_DEBUG="all")
        d.start()
        body = big_body(16, 7)
        message = b"Subject: evicted\r\nFrom: bob@example.org\r\n\r\n" + body
        evictor = threading.Thread(
            target=evict_queue_files, args=(d.spool, stop), daemon=True)
        evictor.start()
        with d.connect(source="127.0.0.1", timeout=scaled(60)) as c:
            c.ehlo()
            reply = transaction(c, sender="bob@example.org",
                                recipients=["carol@other.test"],
                                message=message)
            assert reply.code == 250, reply
        served = 0
        deadline = time.monotonic() + scaled(60)
        while not mx.messages and time.monotonic() < deadline:
            with d.connect(timeout=scaled(10)) as other:
                assert other.greeting.code == 220
                assert other.cmd("NOOP").code == 250
            served += 1
            time.sleep(0.05)
        wait_for(lambda: mx.messages, 60, "the SMTP delivery")
        stop.set()
        assert mx.messages[0].data.endswith(b"\r\n\r\n" + body)
        d.wait_log(r"status=sent", timeout=5)
        d.wait_log(r"DATA waits for the disk", timeout=5)
        print(f"evicted: {served} other sessions served during the delivery")
    finally:
        stop.set()
        if evictor is not None:
            evictor.join(timeout=5)
        mx.close()


def test_lmtp_data_read_from_the_disk_off_the_main_loop(postiliond,
                                                        tmp_path):
    """The same for LMTP's DATA: pages dropped while it streams, read in
    by a thread, the message delivered whole."""
    from delivery import LMTPServer
    server = LMTPServer()
    stop = threading.Event()
    evictor = None
    try:
        config = delivery_config(tmp_path)
        del config["delivery"]["maildir_root"]
        config["delivery"]["lmtp"] = f"127.0.0.1:{server.port}"
        d = postiliond(config=config, start=False)
        d.env = dict(os.environ, G_MESSAGES_DEBUG="all")
        d.start()
        body = big_body(4, 8)
        message = b"Subject: lmtp evicted\r\n\r\n" + body
        evictor = threading.Thread(
            target=evict_queue_files, args=(d.spool, stop), daemon=True)
        evictor.start()
        with d.connect(timeout=scaled(60)) as c:
            c.ehlo()
            assert transaction(c, message=message).code == 250
        wait_for(lambda: server.delivered, 60, "the LMTP delivery")
        stop.set()
        address, data = server.delivered[0]
        assert address == "bob@example.org"
        assert data.endswith(b"\r\n\r\n" + body)
        d.wait_log(r"DATA waits for the disk", timeout=5)
    finally:
        stop.set()
        if evictor is not None:
            evictor.join(timeout=5)
        server.close()
