"""Outbound AUTH to a relayhost with [delivery] relayhost_credentials,
through the auth plugin's SASL client: the start-up checks, the refusal
to send a password in clear, and (with the tls plugin) the login over
STARTTLS with PLAIN or LOGIN, a wrong password as a temporary failure."""

import os
import ssl

import pytest

from harness import BUILD
from test_auth import REALM, make_sasldb
from test_outbound import dns, net, outbound, send  # noqa: F401 (fixtures)

AUTH_SO = BUILD / "plugins" / "auth" / "auth.so"
TLS_SO = BUILD / "plugins" / "tls" / "tls.so"
pytestmark = pytest.mark.skipif(not AUTH_SO.exists(),
                                reason="the auth plugin is not built")


def credentials(tmp_path, port, password="secret", mode=0o600):
    path = tmp_path / "relay-credentials"
    path.write_text(f"# relayhost logins\n[127.0.0.7]:{port} alice:{password}\n")
    os.chmod(path, mode)
    return path


def auth_plugins(tmp_path, with_tls=None):
    (tmp_path / "sasl").mkdir(exist_ok=True)
    sasldb = make_sasldb(tmp_path / "sasl", users={"nobody": "x"})
    plugins = {"auth": {"sasldb_path": str(sasldb), "realm": REALM}}
    if with_tls is not None:
        cert, key = with_tls
        plugins["tls"] = {"certificate": str(cert), "private_key": str(key)}
    return plugins


def test_credentials_without_a_sasl_client_refuse_to_start(outbound, net,
                                                           tmp_path):
    d = outbound(start=False, relayhost=f"[127.0.0.7]:{net.port}",
                 relayhost_credentials=str(credentials(tmp_path, net.port)))
    d.expect_exit = True
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "no plugin provides the SASL client" in d.log_text()


def test_credentials_readable_by_others_refuse_to_start(outbound, net,
                                                        tmp_path):
    path = credentials(tmp_path, net.port, mode=0o644)
    d = outbound(start=False, plugins=auth_plugins(tmp_path),
                 relayhost=f"[127.0.0.7]:{net.port}",
                 relayhost_credentials=str(path))
    d.expect_exit = True
    d.start(wait=False)
    assert d.wait_exit() == 1
    assert "relayhost_credentials" in d.log_text()
    assert "chmod 600" in d.log_text()


def test_no_password_in_clear(outbound, net, tmp_path):
    smarthost = net.receiver("127.0.0.7", "smarthost")
    smarthost.auth_users = {"alice": "secret"}
    smarthost.auth_in_clear = True
    d = outbound(plugins=auth_plugins(tmp_path),
                 relayhost=f"[127.0.0.7]:{net.port}",
                 relayhost_credentials=str(credentials(tmp_path, net.port)))
    qid = send(d, ["a@other.test"])
    d.wait_log(rf"{qid}: to=<a@other\.test>, .*status=deferred \(454 4\.7\.0 "
               r"127\.0\.0\.7\[127\.0\.0\.7\]:\d+: cannot log in as alice: ")
    assert not smarthost.logins and not smarthost.messages
    assert not [c for c in smarthost.commands if c.startswith(b"AUTH")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tlscerts import TestPKI
    pki = TestPKI(tmp_path_factory.mktemp("pki"))
    pki.ours = pki.issue("mail.example.org")
    pki.relay = pki.issue("smtp.relay.test")
    return pki


def tls_server(pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.relay[0]), str(pki.relay[1]))
    return context


@pytest.mark.skipif(not TLS_SO.exists(), reason="the tls plugin is not built")
@pytest.mark.parametrize("mechanisms", ["AUTH PLAIN LOGIN", "AUTH LOGIN"])
def test_relayhost_with_auth_over_starttls(outbound, net, tmp_path, pki,
                                           mechanisms):
    smarthost = net.receiver("127.0.0.7", "smarthost")
    smarthost.tls_context = tls_server(pki)
    smarthost.auth_users = {"alice": "secret"}
    if mechanisms == "AUTH LOGIN":
        smarthost.keywords.append("AUTH LOGIN")
        smarthost.auth_users = {"alice": "secret"}
    d = outbound(plugins=auth_plugins(tmp_path, with_tls=pki.ours),
                 relayhost=f"[127.0.0.7]:{net.port}", tls="encrypt",
                 relayhost_credentials=str(credentials(tmp_path, net.port)))
    qid = send(d, ["a@other.test", "b@implicit.test"])
    d.wait_log(rf"{qid}: authenticated to 127\.0\.0\.7\[127\.0\.0\.7\]:\d+ as "
               r"alice \((PLAIN|LOGIN)\)")
    d.wait_log(rf"{qid}: to=<b@implicit\.test>, .*tls=TLSv1\.3, status=sent")
    assert smarthost.logins and smarthost.logins[0][0] == "alice"
    assert smarthost.logins[0][2]
    assert smarthost.tls_sessions == ["TLSv1.3"]
    (m,) = smarthost.messages
    assert sorted(m.recipients) == ["a@other.test", "b@implicit.test"]
    assert "secret" not in d.log_text()


@pytest.mark.skipif(not TLS_SO.exists(), reason="the tls plugin is not built")
def test_wrong_password_is_temporary(outbound, net, tmp_path, pki):
    smarthost = net.receiver("127.0.0.7", "smarthost")
    smarthost.tls_context = tls_server(pki)
    smarthost.auth_users = {"alice": "other"}
    d = outbound(plugins=auth_plugins(tmp_path, with_tls=pki.ours),
                 relayhost=f"[127.0.0.7]:{net.port}",
                 relayhost_credentials=str(credentials(tmp_path, net.port)))
    qid = send(d, ["a@other.test"])
    d.wait_log(rf"{qid}: to=<a@other\.test>, .*status=deferred \(454 4\.7\.0 "
               r".*SASL login as alice failed: 535 5\.7\.8")
    assert not smarthost.messages
