"""A corrupt queue at start-up: messages are queued while no delivery is
configured, the daemon stops, and the test damages the spool: a truncated
queue file, one with a bad trailer checksum, one with a bad content
checksum, one with an unknown record (its checksums made right again), and
a state journal naming a recipient its message does not have.  After a
restart with delivery on, each damaged message is in corrupt/ (the
mismatched journal beside its message), the log names each in exactly one
line, and every other message is delivered."""

import struct

from delivery import delivery_config, maildir_of, wait_for, wait_messages
from harness import queue_id, simple_message, transaction

FOOTER = 32


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def split(raw: bytes):
    """(content, trailer, footer) of a queue file (doc/queue-format.md);
    in version 2, zeros between trailer and footer belong to neither."""
    length, offset = struct.unpack_from("<IQ", raw, len(raw) - FOOTER + 12)
    return raw[:offset], raw[offset:offset + length], raw[-FOOTER:]


def with_trailer(content: bytes, trailer: bytes) -> bytes:
    footer = bytearray(FOOTER)
    footer[0:8] = b"\x89PSTQ\r\n\x1a"
    struct.pack_into("<IIQI", footer, 8, 1, len(trailer), len(content), 0)
    struct.pack_into("<I", footer, 28, crc32c(trailer + bytes(footer[:28])))
    return content + trailer + bytes(footer)


def journal_record(index: int, status: int = 2) -> bytes:
    """One state-journal record (core/queue/state-journal.c)."""
    def string(text: bytes) -> bytes:
        return struct.pack("<I", len(text)) + text
    payload = (bytes([1, status]) + struct.pack("<IqI", index, 0, 1)
               + string(b"451 4.0.0 test") + string(b"none") + string(b""))
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def test_corrupt_files_moved_and_the_rest_delivered(postiliond, tmp_path):
    d = postiliond()  # no [delivery]: everything stays queued
    ids = []
    with d.connect() as c:
        c.ehlo()
        for i in range(7):
            ids.append(queue_id(transaction(
                c, recipients=["bob@example.org"],
                message=simple_message(f"m{i}", f"body {i}"))))
    assert d.stop() == 0
    queue = d.spool / "queue"
    truncated, bad_trailer, bad_content, unknown, mismatched = ids[:5]
    good = ids[5:]

    raw = (queue / truncated).read_bytes()
    (queue / truncated).write_bytes(raw[:-7])
    raw = bytearray((queue / bad_trailer).read_bytes())
    content, trailer, _ = split(bytes(raw))
    # The trailer's last octets (zeros may follow it: format version 2).
    raw[len(content) + len(trailer) - 3] ^= 0x40
    (queue / bad_trailer).write_bytes(bytes(raw))
    raw = bytearray((queue / bad_content).read_bytes())
    raw[len(split(bytes(raw))[0]) - 4] ^= 0x01
    (queue / bad_content).write_bytes(bytes(raw))
    content, trailer, _ = split((queue / unknown).read_bytes())
    (queue / unknown).write_bytes(
        with_trailer(content, trailer + b"\x7e" + struct.pack("<I", 2) + b"zz"))
    (d.spool / "state").mkdir(exist_ok=True)
    (d.spool / "state" / mismatched).write_bytes(journal_record(4))

    mark = d.log_mark()
    d.config.update(delivery_config(tmp_path))
    d.write_config()
    d.start()
    bob = maildir_of(tmp_path, "bob@example.org")
    delivered = wait_messages(bob, len(good))
    corrupt = d.spool / "corrupt"
    damaged = ids[:5]
    wait_for(lambda: all((corrupt / i).exists() for i in damaged), 10,
             "the damaged files in corrupt/")
    wait_for(lambda: not list(queue.iterdir()), 10, "the queue to drain")
    assert (corrupt / f"{mismatched}.state").exists()
    assert not (d.spool / "state" / mismatched).exists()
    assert len(delivered) == len(good)
    bodies = b"".join(delivered)
    for i in range(5, 7):
        assert f"body {i}".encode() in bodies
    lines = d.log_lines(mark)
    for qid in damaged:
        naming = [line for line in lines if qid in line and "corrupt" in line]
        assert len(naming) == 1, (qid, naming)
    reasons = "\n".join(lines)
    assert "names recipient #5, the message has 1" in reasons
    assert "checksum" in reasons
