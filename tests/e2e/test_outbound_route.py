"""The DELIVERY stage: a plugin (tests/plugins/testroute.c) chooses each
recipient's route: SMTP via a chosen host for a remote domain, SMTP to a
backend for one of our own domains, a refusal that bounces, a temporary
refusal that defers, and a route the core cannot use (deferred, never
bounced).  Other recipients keep the default routing."""

from delivery import maildir_of, wait_messages
from test_outbound import dns, net, outbound, send  # noqa: F401 (fixtures)


def routes(port):
    return {"routes": [f"other.test=smtp:[127.0.0.7]:{port}",
                       f"example.net=smtp:[127.0.0.5]:{port}",
                       "implicit.test=reject", "dual.test=tempfail",
                       "relay.test=carrier-pigeon"]}


def test_routes_chosen_by_a_plugin(outbound, net, tmp_path):
    chosen = net.receiver("127.0.0.7", "chosen")
    backend = net.receiver("127.0.0.5", "backend")
    mx1 = net.receiver("127.0.0.2", "mx1")
    d = outbound(plugins={"testroute": routes(net.port)},
                 mailboxes=("bob@example.org", "*@example.net"))
    qid = send(d, ["a@other.test", "b@example.net", "bob@example.org",
                   "c@implicit.test", "d@dual.test", "e@relay.test"])
    # other.test: SMTP via the chosen host, not its MX (mx1).
    d.wait_log(rf"{qid}: to=<a@other\.test>, relay=127\.0\.0\.7\[127\.0\.0\.7\]"
               r":\d+, .*status=sent")
    # example.net is ours: routed to a backend by SMTP instead of Maildir.
    d.wait_log(rf"{qid}: to=<b@example\.net>, relay=127\.0\.0\.5\[127\.0\.0\.5\]"
               r":\d+, .*status=sent")
    # bob@example.org: the default, local.
    d.wait_log(rf"{qid}: to=<bob@example\.org>, relay=maildir, .*status=sent")
    d.wait_log(rf"{qid}: to=<c@implicit\.test>, relay=none, .*status=bounced "
               r"\(550 5\.7\.1 no mail to implicit\.test\)")
    d.wait_log(rf"{qid}: to=<d@dual\.test>, relay=none, .*status=deferred "
               r"\(451 4\.3\.0 delivery deferred by policy\)")
    d.wait_log(rf"{qid}: to=<e@relay\.test>, relay=none, .*status=deferred "
               r"\(451 4\.3\.5 plugin testroute chose the route "
               r"\"carrier-pigeon\"")
    assert "testroute: a@other.test -> smtp:" in d.log_text()
    assert "(session: yes)" not in d.log_text()
    assert [m.recipients for m in chosen.messages] == [["a@other.test"]]
    assert [m.recipients for m in backend.messages] == [["b@example.net"]]
    assert not mx1.messages
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
