"""The client's name: a PTR lookup of its address, kept only when the
name's forward lookup gives the address back (FCrDNS, as Postfix does);
otherwise "unknown".  The name appears in the Received: header and the
log.  DNS comes from the loopback test server (tests/dns/loopback.zone:
127.0.0.1 is localhost, 127.0.0.2 points to a name without an address)."""

import re
import socket
import time

from harness import (CLIENT_NAME, REPO, TestDnsServer, free_port, queue_id,
                     scaled,
                     split_message)


def received_of(daemon, client) -> str:
    assert client.cmd(f"EHLO {CLIENT_NAME}").code == 250
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert client.cmd("RCPT TO:<bob@example.org>").code == 250
    assert client.cmd("DATA").code == 354
    client.send(b"Subject: name\r\n\r\nbody\r\n.\r\n")
    qid = queue_id(client.read_reply())
    (m,) = daemon.spool_messages(id=qid)
    name, value = split_message(m["content"])[0][0]
    assert name == "Received"
    return re.sub(r"\r\n[ \t]+", " ", value)


def test_verified_name_in_received_and_log(daemon, client):
    text = received_of(daemon, client)
    assert f"from {CLIENT_NAME} (localhost [127.0.0.1])" in text
    assert re.search(r"client \[127\.0\.0\.1\] is localhost", daemon.log_text())


def test_name_not_confirmed_forward_is_unknown(daemon):
    with daemon.connect(source="127.0.0.2") as c:
        text = received_of(daemon, c)
    assert "(unknown [127.0.0.2])" in text
    assert "forged" not in text


def test_no_ptr_is_unknown(daemon):
    with daemon.connect(source="127.0.0.3") as c:
        assert "(unknown [127.0.0.3])" in received_of(daemon, c)


def test_second_connection_named_from_the_answer_cache(daemon):
    # The second connection from each address finds every answer it needs
    # in the resolver's cache and is named at once, the same way: verified,
    # PTR without a confirming address, no PTR.
    for source, want in (("127.0.0.1", "(localhost [127.0.0.1])"),
                         ("127.0.0.2", "(unknown [127.0.0.2])"),
                         ("127.0.0.3", "(unknown [127.0.0.3])")):
        for _ in range(2):
            with daemon.connect(source=source) as c:
                assert want in received_of(daemon, c)
    names = re.findall(r"client \[127\.0\.0\.1\] is localhost",
                       daemon.log_text())
    assert len(names) == 2


IPV6_LOOPBACK_ZONE = """$TTL 300
$ORIGIN localhost.
@        IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 60
@        IN NS  localhost.
@        IN AAAA ::1
$ORIGIN """ + ".".join(["0"] * 31) + """.ip6.arpa.
@        IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 60
@        IN NS  localhost.
1        IN PTR localhost.
"""


def test_ipv6_client_named_twice(postiliond, tmp_path):
    # ::1 is localhost forward (AAAA) and backward (ip6.arpa): named by a
    # query, then from the answer cache.
    zone = tmp_path / "ipv6.zone"
    zone.write_text(IPV6_LOOPBACK_ZONE)
    dns = TestDnsServer([zone])
    try:
        port = free_port("::1")
        d = postiliond(config={
            "dns": {"nameservers": f"127.0.0.1@{dns.port}"},
            "listener:smtp": {"address": f"[::1]:{port}"}})
        for _ in range(2):
            with socket.create_connection(("::1", port),
                                          timeout=scaled(5)) as s:
                assert s.recv(512).startswith(b"220 ")
                s.sendall(b"QUIT\r\n")
                assert s.recv(512).startswith(b"221 ")
        deadline = time.monotonic() + scaled(5)
        while (d.log_text().count("disconnect from [::1]") < 2
               and time.monotonic() < deadline):
            time.sleep(0.05)
        names = re.findall(r"client \[::1\] is localhost", d.log_text())
        assert len(names) == 2
    finally:
        dns.stop()


def test_reverse_dns_off(postiliond):
    d = postiliond(config={"server": {"reverse_dns": "false"}})
    with d.connect() as c:
        assert "(unknown [127.0.0.1])" in received_of(d, c)


def test_dns_timeout_delays_but_never_refuses(postiliond, tmp_path):
    # A server that never answers for the reverse zone: the greeting comes
    # after [dns] timeout, and the client is served with an unknown name.
    dns = TestDnsServer([REPO / "tests" / "dns" / "loopback.zone"],
                        ["--drop", "in-addr.arpa"])
    try:
        d = postiliond(config={"dns": {"nameservers": f"127.0.0.1@{dns.port}",
                                       "timeout": "1s"}})
        started = time.monotonic()
        with d.connect(timeout=scaled(10)) as c:
            waited = time.monotonic() - started
            assert waited >= 0.9
            assert "(unknown [127.0.0.1])" in received_of(d, c)
    finally:
        dns.stop()


def test_client_leaving_during_lookup(postiliond):
    dns = TestDnsServer([REPO / "tests" / "dns" / "loopback.zone"],
                        ["--drop", "in-addr.arpa"])
    try:
        d = postiliond(config={"dns": {"nameservers": f"127.0.0.1@{dns.port}",
                                       "timeout": "2s"}})
        port = d.port
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.close()
        d.wait_log(r"disconnect from \[127\.0\.0\.1\]", timeout=5)
        # The daemon still serves, and the cancelled lookups left nothing.
        with d.connect(timeout=scaled(10)) as c:
            assert c.cmd("QUIT").code == 221
    finally:
        dns.stop()


def test_xclient_addr_without_name_is_unknown(postiliond):
    d = postiliond(config={"server": {"xclient_hosts": "127.0.0.0/8"}})
    with d.connect() as c:
        assert c.cmd("EHLO proxy.example").code == 250
        assert c.cmd("XCLIENT ADDR=192.0.2.7").code == 220
        assert "(unknown [192.0.2.7])" in received_of(d, c)
    with d.connect() as c:
        assert c.cmd("EHLO proxy.example").code == 250
        assert c.cmd("XCLIENT ADDR=192.0.2.8 NAME=mail.client.example").code == 220
        assert "(mail.client.example [192.0.2.8])" in received_of(d, c)
