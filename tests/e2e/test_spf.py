"""plugins/spf end to end: every SPF result with its SMTP reply and its
Received-SPF header, each policy, both identities, the RFC 7208 lookup
limits, DNS failures and timeouts (tempfail, never reject) and the skip
rules, through one real daemon with relay.so and spf.so and the test DNS
server (tests/dns/testdns.py) serving tests/dns/spf-e2e.zone.

libspf2 passes every 127/8 client without looking at DNS, so the client
address comes from XCLIENT ADDR= (the daemon trusts 127.0.0.0/8 for
XCLIENT); XCLIENT HELO= sets the HELO identity.  The daemon is started
once for the module; a test that needs other [plugin:spf] settings
reloads it (SIGHUP) through `configure()`.
"""

from __future__ import annotations

import re

import pytest

import harness
from harness import BUILD, REPO

ZONE = REPO / "tests" / "dns" / "spf-e2e.zone"
PLUGIN_PATH = [str(BUILD / "plugins" / "relay"), str(BUILD / "plugins" / "spf")]

GOOD = "192.0.2.10"        # in every sender's record
STRANGER = "198.51.100.10"  # in none
INTERNAL = "10.1.2.3"       # relay's internal_networks
HELO = "client.spf.test"    # a HELO with no SPF record (nxdomain)

pytestmark = pytest.mark.skipif(
    not (BUILD / "plugins" / "spf" / "spf.so").exists(),
    reason="spf.so not built (libspf2-dev missing)")


def base_config(dns_port: int) -> dict:
    return {
        "server": {"xclient_hosts": "127.0.0.0/8"},
        "dns": {"nameservers": f"127.0.0.1@{dns_port}", "timeout": "1s",
                "dnssec": "no"},
        "plugins": {"path": PLUGIN_PATH, "load": ["relay", "spf"]},
        "plugin:relay": {"internal_networks": "127.0.0.1/32; 10.0.0.0/8",
                         "reject_unknown_sender_domain": "no",
                         "reject_unknown_recipient_domain": "no"},
        "plugin:spf": {},
    }


class SpfDaemon:
    """The module's daemon and its current [plugin:spf] keys."""

    def __init__(self, daemon: harness.Daemon):
        self.daemon = daemon
        self.keys: dict = {}

    def configure(self, **keys) -> harness.Daemon:
        """Reloads with exactly these [plugin:spf] keys (if they differ)."""
        if keys != self.keys:
            mark = self.daemon.log_mark()
            self.daemon.config["plugin:spf"] = dict(keys)
            self.daemon.reload(text=harness.render_config(self.daemon.config),
                               wait=0)
            self.daemon.wait_log(r"plugin spf: identities", since=mark)
            self.keys = dict(keys)
        return self.daemon


@pytest.fixture(scope="module")
def spf(tmp_path_factory):
    dns = harness.TestDnsServer([ZONE])
    directory = tmp_path_factory.mktemp("spf")
    daemon = harness.Daemon(directory / "postiliond",
                            config=base_config(dns.port))
    daemon.start()
    yield SpfDaemon(daemon)
    status = daemon.stop()
    dns.stop()
    report = daemon.sanitizer_report()
    assert report is None, report
    assert status == 0, daemon.log_text()


def xclient_addr(ip: str) -> str:
    return f"IPV6:{ip}" if ":" in ip else ip


def as_client(client, ip: str, helo: str = HELO, login: str | None = None):
    """Makes the session look like `ip` saying HELO `helo`."""
    extra = f" LOGIN={login}" if login else ""
    reply = client.cmd(f"XCLIENT ADDR={xclient_addr(ip)} HELO={helo}{extra}")
    assert reply.code == 220, reply


def mail(client, ip: str, sender: str, helo: str = HELO,
         login: str | None = None) -> harness.Reply:
    """The reply to MAIL FROM from `ip`; the transaction is reset."""
    as_client(client, ip, helo, login)
    reply = client.cmd(f"MAIL FROM:<{sender}>")
    if reply.code == 250:
        assert client.cmd("RSET").code == 250
    return reply


def deliver(daemon, ip: str, sender: str, helo: str = HELO) -> dict:
    """A whole transaction from `ip`; returns the queued message."""
    with daemon.connect() as client:
        client.ehlo()
        as_client(client, ip, helo)
        queue_id = harness.queue_id(harness.transaction(client, sender=sender))
    (message,) = daemon.spool_messages(id=queue_id)
    return message


def received_spf(message: dict) -> list[str]:
    headers, _ = harness.split_message(message["content"])
    return [re.sub(r"\r\n\s+", " ", value)
            for name, value in headers if name == "Received-SPF"]


# --------------------------------------------------------------------------
# Every result: the reply under the default policy (soft) and the header
# --------------------------------------------------------------------------

# (client, sender, MAIL reply code, enhanced, reply text, result)
RESULTS = [
    (GOOD, "a@pass.spf.test", 250, "2.1.0", None, "pass"),
    ("2001:db8:1::25", "a@pass.spf.test", 250, "2.1.0", None, "pass"),
    (f"::ffff:{GOOD}", "a@pass.spf.test", 250, "2.1.0", None, "pass"),
    (STRANGER, "a@pass.spf.test", 550, "5.7.23",
     f"SPF fail: pass.spf.test does not designate {STRANGER} as permitted "
     f"sender", "fail"),
    (STRANGER, "a@exp.spf.test", 550, "5.7.23",
     f"SPF fail: {STRANGER} may not send mail for exp.spf.test, see "
     f"https://exp.spf.test/", "fail"),
    (STRANGER, "a@soft.spf.test", 250, "2.1.0", None, "softfail"),
    (STRANGER, "a@neutral.spf.test", 250, "2.1.0", None, "neutral"),
    (STRANGER, "a@nospf.spf.test", 250, "2.1.0", None, "none"),
    (STRANGER, "a@nowhere.spf.test", 250, "2.1.0", None, "none"),
    (STRANGER, "a@perm.spf.test", 250, "2.1.0", None, "permerror"),
    (STRANGER, "a@double.spf.test", 250, "2.1.0", None, "permerror"),
    (STRANGER, "a@x.servfail.test", 451, "4.4.3",
     "SPF temperror for x.servfail.test: DNS lookup failure; try again later",
     "temperror"),
    (STRANGER, "a@atemp.spf.test", 451, "4.4.3",
     "SPF temperror for atemp.spf.test: DNS lookup failure; try again later",
     "temperror"),
]


def test_results_and_replies(spf):
    daemon = spf.configure()
    with daemon.connect() as client:
        client.ehlo()
        for ip, sender, code, enhanced, text, result in RESULTS:
            reply = mail(client, ip, sender)
            assert (reply.code, reply.enhanced) == (code, enhanced), \
                (ip, sender, reply)
            if text is not None:
                assert reply.text == f"{enhanced} {text}", (ip, sender, reply)
    log = daemon.log_text()
    for ip, sender, _, _, _, result in RESULTS:
        assert re.search(rf"mailfrom {re.escape(sender)}: {result} ", log), \
            (sender, result)


def test_decided_from_the_cache_the_same(spf):
    """A check the plugin decides within the MAIL hook (the domain's TXT
    answer in its cache, a record of ip4/ip6/all only, a HELO without a
    record) gives the same reply, results and header as the first one,
    which waited for DNS; so does a fail."""
    daemon = spf.configure()
    first, again = (deliver(daemon, GOOD, "a@soft.spf.test") for _ in range(2))
    assert received_spf(first) == received_spf(again)
    assert received_spf(first)[-1].startswith("pass "), received_spf(first)
    with daemon.connect() as client:
        client.ehlo()
        replies = [mail(client, STRANGER, "a@neutral.spf.test",
                        helo="helo-fail.spf.test") for _ in range(2)]
    assert replies[0].code == 550 and replies[0].text == replies[1].text, \
        replies


@pytest.mark.parametrize("ip,sender,result,comment", [
    (GOOD, "a@pass.spf.test", "pass",
     f"domain of a@pass.spf.test designates {GOOD} as permitted sender"),
    (STRANGER, "a@soft.spf.test", "softfail",
     f"domain of transitioning a@soft.spf.test does not designate "
     f"{STRANGER} as permitted sender"),
    (STRANGER, "a@neutral.spf.test", "neutral",
     f"{STRANGER} is neither permitted nor denied by domain of "
     f"a@neutral.spf.test"),
    (STRANGER, "a@nospf.spf.test", "none",
     "domain of a@nospf.spf.test does not designate permitted sender hosts"),
    (STRANGER, "a@perm.spf.test", "permerror",
     "permanent error in the SPF record of a@perm.spf.test: "),
    (STRANGER, "a@pass.spf.test", "fail",
     f"domain of a@pass.spf.test does not designate {STRANGER} as "
     f"permitted sender"),
    (STRANGER, "a@x.servfail.test", "temperror",
     "temporary error checking domain of a@x.servfail.test: DNS lookup "
     "failure"),
])
def test_received_spf_header(spf, ip, sender, result, comment):
    # policy none: fail and temperror are delivered too, with the header.
    daemon = spf.configure(identities="mail_from", policy="none")
    message = deliver(daemon, ip, sender)
    (header,) = received_spf(message)
    assert header.startswith(f"{result} ({harness.HOSTNAME}: {comment}"), \
        header
    assert (f"client-ip={ip}; envelope-from=\"{sender}\"; helo={HELO}; "
            f"receiver={harness.HOSTNAME}; identity=mailfrom;") in header, \
        header
    if result in ("permerror", "temperror"):
        assert "problem=" in header, header
    # Received-SPF goes on top, above the core's Received (RFC 7208 9.1);
    # the core's Authentication-Results (RFC 8601), written after EOM from
    # auth.spf, above both.
    headers, _ = harness.split_message(message["content"])
    assert [name for name, _ in headers[:3]] == [
        "Authentication-Results", "Received-SPF", "Received"]
    authres = re.sub(r"\r\n\s+", " ", headers[0][1])
    assert authres.startswith(f"{harness.HOSTNAME}; spf={result} "), authres
    assert f"smtp.mailfrom={sender}" in authres, authres
    stored = str(message["results"])
    assert f"'auth.spf': <{{'result': <'{result}'>" in stored, stored
    assert f"'smtp.mailfrom': <'{sender}'>" in stored, stored


# --------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------

POLICY_CASES = [
    # (policy, sender, expected MAIL code)
    ("soft", "a@pass.spf.test", 550),
    ("soft", "a@soft.spf.test", 250),
    ("strict", "a@pass.spf.test", 550),
    ("strict", "a@soft.spf.test", 550),
    ("strict", "a@neutral.spf.test", 250),
    ("none", "a@pass.spf.test", 250),
    ("none", "a@soft.spf.test", 250),
    ("none", "a@x.servfail.test", 250),
]


@pytest.mark.parametrize("policy", ["soft", "strict", "none"])
def test_policy(spf, policy):
    daemon = spf.configure(identities="mail_from", policy=policy)
    with daemon.connect() as client:
        client.ehlo()
        for case_policy, sender, code in POLICY_CASES:
            if case_policy == policy:
                reply = mail(client, STRANGER, sender)
                assert reply.code == code, (policy, sender, reply)
                if code == 550:
                    assert reply.enhanced == "5.7.23", reply


def test_policy_none_still_annotates(spf):
    daemon = spf.configure(policy="none")
    message = deliver(daemon, STRANGER, "a@pass.spf.test")
    assert [h.split(" ")[0] for h in received_spf(message)] == ["none", "fail"]


def test_actions_and_reject_text(spf):
    daemon = spf.configure(
        identities="mail_from",
        reject_text="Not from {ip} for {domain} ({result}): {explanation}",
        permerror_action="550 5.7.24 Broken SPF record at {domain}: {problem}",
        temperror_action="continue")
    with daemon.connect() as client:
        client.ehlo()
        reply = mail(client, STRANGER, "a@exp.spf.test")
        assert reply.lines == [
            f"550 5.7.23 Not from {STRANGER} for exp.spf.test (fail): "
            f"{STRANGER} may not send mail for exp.spf.test, see "
            f"https://exp.spf.test/"], reply
        reply = mail(client, STRANGER, "a@double.spf.test")
        assert (reply.code, reply.enhanced) == (550, "5.7.24"), reply
        assert "Broken SPF record at double.spf.test: " in reply.text
        assert mail(client, STRANGER, "a@x.servfail.test").code == 250


# --------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------


def test_identity_helo(spf):
    daemon = spf.configure(identities="helo")
    with daemon.connect() as client:
        client.ehlo()
        # Only the HELO name counts: a failing sender domain passes.
        assert mail(client, GOOD, "a@pass.spf.test",
                    helo="helo-pass.spf.test").code == 250
        assert mail(client, STRANGER, "a@pass.spf.test",
                    helo="helo-pass.spf.test").code == 550
        reply = mail(client, GOOD, "a@pass.spf.test",
                     helo="helo-fail.spf.test")
        assert (reply.code, reply.enhanced) == (550, "5.7.23"), reply
        assert "helo-fail.spf.test does not designate" in reply.text
        # With the HELO identity alone, its temperror is the answer.
        reply = mail(client, GOOD, "a@pass.spf.test", helo="h.servfail.test")
        assert (reply.code, reply.enhanced) == (451, "4.4.3"), reply
        # An address literal HELO is not checked (RFC 7208 2.3).
        assert mail(client, STRANGER, "a@pass.spf.test",
                    helo="[192.0.2.1]").code == 250
    message = deliver(daemon, GOOD, "", helo="helo-pass.spf.test")
    (header,) = received_spf(message)
    assert header.startswith("pass "), header
    assert "identity=helo;" in header
    assert "envelope-from=\"postmaster@helo-pass.spf.test\"" in header
    assert "smtp.helo" in str(message["results"])


def test_identity_both(spf):
    daemon = spf.configure(identities="both")
    with daemon.connect() as client:
        client.ehlo()
        # HELO fail decides (section 2.3); MAIL FROM is not evaluated.
        assert mail(client, GOOD, "a@pass.spf.test",
                    helo="helo-fail.spf.test").code == 550
        # HELO pass, MAIL FROM fail: rejected by MAIL FROM.
        reply = mail(client, GOOD, "a@soft.spf.test",
                     helo="helo-pass.spf.test")
        assert reply.code == 250
        assert mail(client, STRANGER, "a@pass.spf.test",
                    helo="helo-soft.spf.test").code == 550
        # A HELO domain whose DNS fails does not decide: MAIL FROM does.
        assert mail(client, GOOD, "a@pass.spf.test",
                    helo="h.servfail.test").code == 250
        assert mail(client, STRANGER, "a@pass.spf.test",
                    helo="h.servfail.test").code == 550
    message = deliver(daemon, GOOD, "a@pass.spf.test",
                      helo="helo-pass.spf.test")
    headers = received_spf(message)
    assert [h.split(" ")[0] for h in headers] == ["pass", "pass"], headers
    assert "identity=helo;" in headers[0] and \
        "identity=mailfrom;" in headers[1]
    # The null sender: the MAIL FROM identity is postmaster@HELO.
    message = deliver(daemon, GOOD, "", helo="helo-pass.spf.test")
    assert all("envelope-from=\"postmaster@helo-pass.spf.test\"" in h
               for h in received_spf(message))


# --------------------------------------------------------------------------
# Limits and DNS failures
# --------------------------------------------------------------------------


def test_lookup_limits(spf):
    daemon = spf.configure(identities="mail_from",
                           permerror_action="550 5.7.24")
    with daemon.connect() as client:
        client.ehlo()
        # 11 includes: permerror; 10: the record decides.
        reply = mail(client, GOOD, "a@l0.spf.test")
        assert (reply.code, reply.enhanced) == (550, "5.7.24"), reply
        assert "more than 10 DNS-querying terms" in reply.text, reply
        assert mail(client, GOOD, "a@ten.spf.test").code == 250
        assert mail(client, STRANGER, "a@ten.spf.test").code == 550
        # 5 includes of 5 "a" terms: libspf2 alone would say pass.
        reply = mail(client, GOOD, "a@wide.spf.test")
        assert "more than 10 DNS-querying terms" in reply.text, reply
        # Void lookups: two allowed, the third a permerror.
        assert mail(client, GOOD, "a@void2.spf.test").code == 250
        reply = mail(client, GOOD, "a@void3.spf.test")
        assert "more than 2 void DNS lookups" in reply.text, reply


def test_dns_timeout_is_tempfail(spf):
    daemon = spf.configure(identities="mail_from", policy="strict",
                           permerror_action="550 5.7.24")
    with daemon.connect() as client:
        client.ehlo()
        for sender in ("a@x.timeout.test", "a@aslow.spf.test"):
            reply = mail(client, STRANGER, sender)
            assert (reply.code, reply.enhanced) == (451, "4.4.3"), reply
            assert "temperror" in reply.text


@pytest.mark.parametrize("sender", ["a@x.timeout.test", "a@aslow.spf.test"])
def test_client_leaves_during_check(spf, sender):
    """A client that disconnects while its check waits for a DNS timeout
    (the domain's own record, looked up by the plugin; a name its record
    names, asked by the evaluator): the check is cancelled, its call
    completes after the session ended, the daemon goes on."""
    daemon = spf.configure(identities="mail_from")
    mark = daemon.log_mark()
    with daemon.connect() as client:
        client.ehlo()
        as_client(client, STRANGER)
        client.send(f"MAIL FROM:<{sender}>\r\n")
    with daemon.connect() as client:
        client.ehlo()
        assert mail(client, GOOD, "a@pass.spf.test").code == 250
    daemon.wait_log(r"mailfrom " + re.escape(sender)
                    + r": temperror \(check cancelled\)", since=mark,
                    timeout=10)


# --------------------------------------------------------------------------
# Skip rules
# --------------------------------------------------------------------------


def test_authenticated_and_internal_are_not_checked(spf):
    daemon = spf.configure()
    with daemon.connect() as client:
        client.ehlo()
        assert mail(client, STRANGER, "a@pass.spf.test",
                    login="alice").code == 250
        assert mail(client, INTERNAL, "a@pass.spf.test").code == 250
    message = deliver(daemon, INTERNAL, "a@pass.spf.test")
    assert received_spf(message) == []
    daemon = spf.configure(skip_authenticated="false", skip_internal="false")
    with daemon.connect() as client:
        client.ehlo()
        assert mail(client, STRANGER, "a@pass.spf.test",
                    login="alice").code == 550
        assert mail(client, INTERNAL, "a@pass.spf.test").code == 550


def test_bad_configuration_is_refused(tmp_path):
    for index, (keys, message) in enumerate([
        ({"identities": "all"}, "[plugin:spf] identities: \"all\""),
        ({"temperror_action": "550 5.7.1"}, "never a permanent refusal"),
        ({"policy": "hard"}, "[plugin:spf] policy"),
    ]):
        config = base_config(53)
        config["plugin:spf"] = keys
        daemon = harness.Daemon(tmp_path / f"bad{index}", config=config)
        daemon.write_config()
        code, _, err = harness.run_cli(["--check", "-c",
                                        str(daemon.conf_path)])
        assert code != 0 and message in err, err
