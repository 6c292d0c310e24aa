"""The HAProxy PROXY protocol on listeners with proxy_protocol = true:
v1 and v2 headers (IPv4, IPv6, IPv4-mapped, LOCAL/UNKNOWN), the header
read before the banner and only its own octets consumed, the real
address in the logs, the Received: header and the plugins (the relay
plugin's internal_networks decide on it), malformed headers and the
timeout closing the connection, and a listener without proxy_protocol
treating a PROXY line as an unknown command.
"""

from __future__ import annotations

import socket
import struct

import pytest

import harness
from harness import BUILD, scaled

RELAY_PATH = [str(BUILD / "plugins" / "relay")]
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(source: str, sport: int, dest: str, dport: int,
       tlv: bytes = b"") -> bytes:
    if ":" in source or ":" in dest:
        family = 0x21
        body = (socket.inet_pton(socket.AF_INET6, source)
                + socket.inet_pton(socket.AF_INET6, dest))
    else:
        family = 0x11
        body = socket.inet_aton(source) + socket.inet_aton(dest)
    body += struct.pack("!HH", sport, dport) + tlv
    return SIG + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def v2_local() -> bytes:
    return SIG + bytes([0x20, 0x00]) + b"\x00\x00"


def v1(source: str, sport: int, dest: str, dport: int) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


def proxied(daemon, header: bytes, listener: str | None = None,
            greeting: bool = True) -> harness.SMTPRaw:
    client = daemon.connect(listener=listener, greeting=False)
    client.send(header)
    if greeting:
        client.greeting = client.read_reply()
    return client


@pytest.fixture
def proxy_daemon(postiliond):
    def make(relay: bool = False, **listener):
        config = {"listener:smtp": {"proxy_protocol": "true", **listener},
                  "listener:plain": {}}
        plugins = None
        if relay:
            config["plugins"] = {"path": RELAY_PATH}
            config["plugin:relay"] = {"internal_networks": "192.0.2.0/24",
                                      "reject_unknown_sender_domain": "no",
                                      "reject_unknown_recipient_domain": "no"}
            plugins = ["relay"]
        return postiliond(config=config, listeners=("smtp", "plain"),
                          plugins=plugins)
    return make


@pytest.mark.parametrize("header,address,port", [
    (v1("192.0.2.10", 4711, "198.51.100.1", 25), "192.0.2.10", 4711),
    (v1("2001:db8::10", 4712, "2001:db8::1", 25), "2001:db8::10", 4712),
    (v2("192.0.2.11", 4713, "198.51.100.1", 25), "192.0.2.11", 4713),
    (v2("2001:db8::11", 4714, "2001:db8::1", 25), "2001:db8::11", 4714),
    (v2("::ffff:192.0.2.12", 4715, "::ffff:198.51.100.1", 25), "192.0.2.12",
     4715),
    (v2("192.0.2.13", 4716, "198.51.100.1", 25, tlv=b"\x04\x00\x03abc"),
     "192.0.2.13", 4716),
])
def test_header_gives_real_client(proxy_daemon, header, address, port):
    daemon = proxy_daemon()
    with proxied(daemon, header) as client:
        assert client.greeting.code == 220
        client.ehlo()
        harness.queue_id(harness.transaction(client))
    log = daemon.log_text()
    assert f"connect from [{address}]:{port} to listener smtp" in log, log
    assert "(PROXY v" in log
    (message,) = daemon.spool_messages()
    received = message["content"]
    literal = f"IPv6:{address}" if ":" in address else address
    assert f"[{literal}]".encode() in received, received[:300]


@pytest.mark.parametrize("header", [v2_local(), b"PROXY UNKNOWN\r\n"])
def test_local_header_keeps_proxy_address(proxy_daemon, header):
    daemon = proxy_daemon()
    with proxied(daemon, header) as client:
        assert client.greeting.code == 220
        assert client.cmd("QUIT").code == 221
    assert "connect from [127.0.0.1]:" in daemon.log_text()


def test_header_and_smtp_in_one_segment(proxy_daemon):
    """Only the header is consumed: the EHLO sent with it is answered."""
    daemon = proxy_daemon()
    client = proxied(daemon, v1("192.0.2.20", 1000, "192.0.2.1", 25)
                     + b"EHLO client.test.example\r\n", greeting=False)
    assert client.read_reply().code == 220
    assert client.read_reply().code == 250
    client.close()


def test_header_in_pieces(proxy_daemon):
    daemon = proxy_daemon()
    header = v2("192.0.2.21", 1001, "192.0.2.1", 25)
    client = daemon.connect(greeting=False)
    for i in range(0, len(header), 5):
        client.send(header[i:i + 5])
        if i + 5 < len(header):
            client.expect_silence(0.05)
    assert client.read_reply().code == 220
    client.close()
    assert "connect from [192.0.2.21]:1001" in daemon.log_text()


@pytest.mark.parametrize("garbage", [
    b"EHLO client.test.example\r\n",
    b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
    b"PROXY TCP4 999.0.2.1 192.0.2.2 1 2\r\n",
    SIG + b"\x11\x11\x00\x00",
    b"GET / HTTP/1.0\r\n\r\n",
])
def test_bad_header_closes(proxy_daemon, garbage):
    daemon = proxy_daemon()
    client = daemon.connect(greeting=False)
    client.send(garbage)
    assert client.wait_closed() == b""
    daemon.wait_log(r"bad PROXY header from \[127\.0\.0\.1\]")
    # The connection count was given back: the daemon still serves.
    with daemon.connect(listener="plain") as other:
        assert other.greeting.code == 220


def test_header_timeout(proxy_daemon):
    daemon = proxy_daemon()
    client = daemon.connect(greeting=False)
    client.send(b"PROXY TCP4 ")
    assert client.wait_closed(timeout=15) == b""
    assert "no PROXY header from [127.0.0.1]" in daemon.log_text()


def test_no_banner_before_header(proxy_daemon):
    daemon = proxy_daemon()
    client = daemon.connect(greeting=False)
    client.expect_silence(0.3)
    client.close()


def test_listener_without_proxy_protocol(proxy_daemon):
    daemon = proxy_daemon()
    with daemon.connect(listener="plain") as client:
        reply = client.cmd("PROXY TCP4 192.0.2.1 192.0.2.2 1 2")
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), reply
        assert client.ehlo().code == 250


def test_relay_plugin_sees_real_address(proxy_daemon):
    daemon = proxy_daemon(relay=True)
    with proxied(daemon, v2("192.0.2.30", 1, "192.0.2.1", 25)) as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@good.example.com>").code == 250
        assert client.cmd("RCPT TO:<b@elsewhere.example.com>").code == 250
    with proxied(daemon, v2("198.51.100.30", 1, "192.0.2.1", 25)) as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<a@good.example.com>").code == 250
        reply = client.cmd("RCPT TO:<b@elsewhere.example.com>")
        assert (reply.code, reply.enhanced) == (554, "5.7.1"), reply


def test_shutdown_closes_waiting_connections(proxy_daemon):
    daemon = proxy_daemon()
    client = daemon.connect(greeting=False)
    client.send(b"PROXY ")
    daemon.stop()
    assert client.wait_closed() == b""


def test_config_key_is_boolean(postiliond):
    daemon = postiliond(config={"listener:smtp": {"proxy_protocol": "maybe"}},
                        start=False)
    daemon.write_config()
    code, out, err = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert code != 0
    assert "proxy_protocol" in out + err
