"""Outbound STARTTLS through the tls plugin's client side: opportunistic
(may), required (encrypt), verified (verify, also per destination), the
fallback to clear text when an opportunistic handshake fails, plaintext
sent after the 220 discarded, and the log lines.  The receiver is a
Python SMTP server (receivers.py) with Python's ssl module; certificates
come from a test CA (tlscerts.py)."""

import ssl

import pytest

from harness import BUILD
from test_outbound import dns, net, outbound, send  # noqa: F401 (fixtures)
from tlscerts import TestPKI

TLS_SO = BUILD / "plugins" / "tls" / "tls.so"
pytestmark = pytest.mark.skipif(not TLS_SO.exists(),
                                reason="the tls plugin is not built")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = TestPKI(tmp_path_factory.mktemp("pki"))
    pki.ours = pki.issue("mail.example.org")
    pki.good = pki.issue("implicit.test")
    pki.wrong = pki.issue("someone-else.test")
    return pki


def server_context(chain) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(chain[0]), str(chain[1]))
    return context


def tls_daemon(outbound, pki, **delivery):
    cert, key = pki.ours
    return outbound(plugins={"tls": {"certificate": str(cert),
                                     "private_key": str(key),
                                     "ca_file": str(pki.ca_cert)}},
                    **delivery)


def test_may_uses_starttls_when_offered(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    r.tls_context = server_context(pki.good)
    d = tls_daemon(outbound, pki)
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: Verified TLS connection established to implicit\.test"
               rf"\[127\.0\.0\.5\]:{net.port}: TLSv1\.3 with cipher \S+ "
               r"\(\d+ bits\)")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=TLSv1\.3, status=sent")
    assert r.tls_sessions == ["TLSv1.3"]
    assert len(r.messages) == 1


def test_may_without_starttls_goes_in_clear(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    d = tls_daemon(outbound, pki)
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=none, status=sent")


def test_may_falls_back_to_clear_when_the_handshake_fails(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    r.tls_context = server_context(pki.good)
    r.tls_broken = True
    d = tls_daemon(outbound, pki)
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: 454 4\.7\.5 implicit\.test\[127\.0\.0\.5\]:\d+: TLS "
               r"handshake failed: .*; trying again without STARTTLS")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=none, status=sent")
    assert r.connections == 2


def test_encrypt_refuses_a_server_without_starttls(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    d = tls_daemon(outbound, pki, tls="encrypt")
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=deferred \(454 "
               r"4\.7\.4 implicit\.test\[127\.0\.0\.5\]:\d+: TLS is required, "
               r"but was not offered by the host\)")
    assert not r.messages


def test_encrypt_accepts_any_certificate(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    r.tls_context = server_context(pki.wrong)
    d = tls_daemon(outbound, pki, tls="encrypt")
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: Untrusted TLS connection established")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=TLSv1\.3, status=sent")


def test_verify_per_destination_refuses_a_wrong_name(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    r.tls_context = server_context(pki.wrong)
    mx1 = net.receiver("127.0.0.2", "mx1")
    mx1.tls_context = server_context(pki.wrong)
    d = tls_daemon(outbound, pki, extra={
        "delivery:implicit.test": {"tls": "verify"}})
    qid = send(d, ["a@implicit.test", "b@other.test"])
    # other.test stays at the default (may): delivered despite the name.
    d.wait_log(rf"{qid}: to=<b@other\.test>, .*tls=TLSv1\.3, status=sent")
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*status=deferred \(454 "
               r"4\.7\.5 .*TLS handshake failed")
    # The reason says it once (the plugin's message already starts so).
    assert "TLS handshake failed: TLS handshake failed" not in d.log_text()
    assert not r.messages
    # With the right certificate the retry goes through, verified.
    r.tls_context = server_context(pki.good)
    d.wait_log(rf"{qid}: Verified TLS connection established to implicit",
               timeout=10)
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=TLSv1\.3, status=sent",
               timeout=10)


def test_plaintext_after_the_220_is_discarded(outbound, net, pki):
    r = net.receiver("127.0.0.5", "implicit")
    r.tls_context = server_context(pki.good)
    r.tls_inject = b"250-injected\r\n250 PIPELINING\r\n"
    d = tls_daemon(outbound, pki)
    qid = send(d, ["a@implicit.test"])
    d.wait_log(rf"{qid}: to=<a@implicit\.test>, .*tls=TLSv1\.3, status=sent")
    # The EHLO after the handshake got its own reply, not the injected one.
    assert [c for c in r.commands if c.startswith(b"EHLO")].__len__() == 2
    assert len(r.messages) == 1
