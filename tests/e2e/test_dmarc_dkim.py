"""DMARC end to end with the real spf and dkim plugins (RFC 9989 "Determine
Handling Policy"): relay, spf, dkim (verification only) and dmarc in one
daemon, the test DNS server serving tests/dns/dmarc-e2e.zone (with the
public key of tests/e2e/dmarc-dkim-test.key at sel._domainkey.reject.test),
and messages signed by an independent implementation (dkimpy).

- p=reject, SPF fails, no signature: refused with the configured reply;
- the same with an aligned signature that verifies: delivered, with
  dkim=pass and dmarc=pass in Authentication-Results;
- an aligned signature broken in transit: refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harness
from harness import BUILD, REPO
from test_dmarc import PLUGIN_PATH, base_config

dkim = pytest.importorskip("dkim")

ZONE = REPO / "tests" / "dns" / "dmarc-e2e.zone"
KEY = Path(__file__).resolve().parent / "dmarc-dkim-test.key"
STRANGER = "198.51.100.10"

pytestmark = pytest.mark.skipif(
    not (BUILD / "plugins" / "dkim" / "dkim.so").exists()
    or not (BUILD / "plugins" / "dmarc" / "dmarc.so").exists()
    or not (BUILD / "plugins" / "spf" / "spf.so").exists(),
    reason="dkim.so, dmarc.so or spf.so not built")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    dns = harness.TestDnsServer([ZONE])
    directory = tmp_path_factory.mktemp("dmarc-dkim")
    config = base_config(dns.port, "")
    # The real dkim plugin instead of the test one; it only verifies.
    config["plugins"]["path"] = [p for p in PLUGIN_PATH if "fakedkim" not in p]
    config["plugins"]["path"].append(str(BUILD / "plugins" / "dkim"))
    config["plugin:dkim"] = {"sign": "false", "verify": "true"}
    d = harness.Daemon(directory / "postiliond", config=config)
    d.start()
    yield d
    status = d.stop()
    dns.stop()
    assert d.sanitizer_report() is None, d.sanitizer_report()
    assert status == 0, d.log_text()


def message(signed: bool, tamper: bool = False) -> bytes:
    content = (b"From: Alice <a@reject.test>\r\nTo: bob@example.org\r\n"
               b"Subject: DMARC with a real signature\r\n"
               b"Date: Sun, 06 Dec 2026 07:00:00 +0000\r\n"
               b"Message-ID: <dmarc-dkim@reject.test>\r\n\r\n"
               b"Hello, signed world.\r\n")
    if signed:
        signature = dkim.sign(content, b"sel", b"reject.test",
                              KEY.read_bytes(),
                              include_headers=[b"from", b"to", b"subject",
                                               b"date", b"message-id"])
        content = signature + content
    if tamper:
        content = content.replace(b"Hello, signed", b"Hello, forged")
    return content


def send(d, content: bytes) -> harness.Reply:
    with d.connect() as client:
        client.ehlo()
        assert client.cmd(f"XCLIENT ADDR={STRANGER} HELO=client.test").code \
            == 220
        return harness.transaction(client, sender="a@reject.test",
                                   message=content)


def test_unsigned_failing_message_is_refused(daemon):
    reply = send(daemon, message(signed=False))
    assert reply.code == 550 and reply.enhanced == "5.7.1", reply
    assert "Email rejected per DMARC policy for reject.test" in reply.last


def test_aligned_signature_passes(daemon):
    reply = send(daemon, message(signed=True))
    assert reply.code == 250, reply
    (found,) = daemon.spool_messages(id=harness.queue_id(reply))
    headers, _ = harness.split_message(found["content"])
    (authres,) = [re.sub(r"\r\n\s+", " ", v) for n, v in headers
                  if n.lower() == "authentication-results"]
    assert re.search(r"dkim=pass [^;]*header\.d=reject\.test", authres), authres
    assert re.search(r"spf=fail", authres), authres
    assert re.search(r"dmarc=pass [^;]*header\.from=reject\.test", authres), \
        authres


def test_broken_signature_is_refused(daemon):
    reply = send(daemon, message(signed=True, tamper=True))
    assert reply.code == 550, reply
