"""plugins/milter end to end against our own scriptable milter
(milter_peer.py): what the milter sees (commands, Postfix's macros), each
reply at each stage, every end-of-message edit, negotiation refusals,
timeouts at each stage, oversized frames, a milter that closes mid-body,
two milters in a row, and the per-listener chain.  Real milters (rspamd,
clamav-milter, OpenDKIM) are in test_milter_real.py.
"""

from __future__ import annotations

import subprocess
import threading

import pytest

import harness
from harness import BUILD, queue_id, transaction, simple_message
from milter_peer import NR_ALL, TestMilter, frame, strings

PLUGIN_PATH = [str(BUILD / "plugins" / "milter")]
POSTILION = BUILD / "tools" / "postilion"


@pytest.fixture
def milters():
    started: list[TestMilter] = []

    def make(script: dict | None = None) -> TestMilter:
        milter = TestMilter(script)
        started.append(milter)
        return milter

    yield make
    for milter in started:
        milter.stop()


def milter_config(*peers: TestMilter, **keys) -> dict:
    names = [f"m{i}" for i in range(len(peers))]
    config = {
        "plugins": {"path": PLUGIN_PATH, "load": ["milter"]},
        "plugin:milter": {"milters": names, "timeout": "20s"},
    }
    for name, peer in zip(names, peers):
        config[f"plugin:milter:{name}"] = {
            "socket": peer.socket_spec, "command_timeout": "1s",
            "eom_timeout": "1s", "connect_timeout": "1s", **keys}
    return config


def start(postiliond, *peers, **keys) -> harness.Daemon:
    return postiliond(config=milter_config(*peers, **keys))


def send(daemon, message=None, recipients=("bob@example.org",)):
    with daemon.connect() as client:
        client.ehlo()
        return transaction(client, recipients=recipients, message=message)


# --- What the milter sees ----------------------------------------------------


def test_clean_message_passes_with_postfix_macros(postiliond, milters):
    milter = milters()
    daemon = start(postiliond, milter)
    reply = send(daemon, simple_message(body="Hello milter."))
    qid = queue_id(reply)
    session = milter.last()
    assert session.closed.wait(5)
    assert session.letters() == "OCHMRTLLLLLNBEQ"
    connect = session.payloads("C")[0]
    # The client's verified name (the loopback zone says "localhost").
    assert connect == b"localhost\0" + b"4" + b"\0\0"[:0] + connect[11:13] + \
        b"127.0.0.1\0"
    assert session.payloads("M")[0] == b"<alice@client.test.example>\0"
    assert session.payloads("R")[0] == b"<bob@example.org>\0"
    names = [name for name, _ in session.headers()]
    assert names[0] == "Received" and "Subject" in names
    assert session.body() == b"Hello milter.\r\n"
    macros = session.macros
    assert macros["C"]["j"] == harness.HOSTNAME
    assert macros["C"]["{daemon_name}"] == harness.HOSTNAME
    assert macros["C"]["_"] == "localhost [127.0.0.1]"
    assert macros["C"]["{daemon_addr}"] == "127.0.0.1"
    assert macros["C"]["v"].startswith("Postilion")
    assert macros["M"]["{mail_addr}"] == "alice@client.test.example"
    assert "{auth_type}" not in macros["M"]  # no AUTH: not sent
    assert macros["R"]["{rcpt_addr}"] == "bob@example.org"
    assert macros["R"]["{rcpt_mailer}"] == "local"
    assert macros["E"]["i"] == qid
    assert macros["N"]["i"] == qid
    assert daemon.spool_messages(id=qid)


def test_sasl_macros_of_an_authenticated_session(postiliond, milters,
                                                 tmp_path):
    """{auth_authen} and {auth_type} (the mechanism) at MAIL, as Postfix
    sends them after a successful AUTH."""
    from test_auth import REALM, USERS, auth_plain, make_sasldb
    milter = milters()
    config = milter_config(milter)
    config["plugins"] = {"path": PLUGIN_PATH + [str(BUILD / "plugins" / "auth")],
                         "load": ["milter", "auth"]}
    config["plugin:auth"] = {"sasldb_path": str(make_sasldb(tmp_path)),
                             "realm": REALM}
    config["listener:smtp"] = {"allow_plaintext_auth": "true"}
    daemon = postiliond(config=config)
    with daemon.connect() as client:
        client.ehlo()
        assert auth_plain(client, "alice", USERS["alice"]).code == 235
        queue_id(transaction(client, recipients=("bob@example.org",)))
    macros = milter.last().macros
    assert macros["M"]["{auth_type}"] == "PLAIN"
    assert macros["M"]["{auth_authen}"].startswith("alice")


def test_milter_symlist_and_configured_macros(postiliond, milters):
    milter = milters({"symlist": {0: "{client_addr} {client_port}"}})
    config = milter_config(milter, macros="mail=i {mail_host}")
    daemon = postiliond(config=config)
    queue_id(send(daemon))
    macros = milter.last().macros
    assert set(macros["C"]) == {"{client_addr}", "{client_port}"}
    assert macros["M"] == {"{mail_host}": "client.test.example"}


def test_no_reply_and_skipped_steps(postiliond, milters):
    # Every no-reply step, and no HELO, no DATA, no EOH: the message still
    # passes, and the milter gets only what it asked for.
    milter = milters({"steps": NR_ALL | 0x2 | 0x200 | 0x40})
    daemon = start(postiliond, milter)
    queue_id(send(daemon))
    session = milter.last()
    assert "H" not in session.letters() and "T" not in session.letters()
    assert "N" not in session.letters() and "E" in session.letters()


# --- Replies at each stage ---------------------------------------------------


@pytest.mark.parametrize("stage,reply,expect", [
    ("M", "r", (550, "550 5.7.1 Command rejected")),
    ("M", "t", (451, "451 4.7.1 Service unavailable - try again later")),
    ("R", ("y", "550 5.1.1 No such user here"), (550, "550 5.1.1 No such user here")),
    ("T", ("y", "452 4.3.1 Not now"), (452, "452 4.3.1 Not now")),
])
def test_refusal_before_data(postiliond, milters, stage, reply, expect):
    milter = milters({"replies": {stage: reply}})
    daemon = start(postiliond, milter)
    with daemon.connect() as client:
        client.ehlo()
        commands = ["MAIL FROM:<alice@client.test.example>",
                    "RCPT TO:<bob@example.org>", "DATA"]
        for command in commands:
            answer = client.cmd(command)
            if command[0] == {"M": "M", "R": "R", "T": "D"}[stage]:
                break
        assert (answer.code, answer.last) == expect
    assert daemon.wait_log(r"reject: .* plugin=milter")


@pytest.mark.parametrize("stage", ["L", "N", "B", "E"])
def test_custom_reply_at_each_message_stage(postiliond, milters, stage):
    milter = milters({"replies": {stage: ("y", "554 5.7.0 Spam, go away")}})
    daemon = start(postiliond, milter)
    reply = send(daemon)
    assert (reply.code, reply.last) == (554, "554 5.7.0 Spam, go away")
    assert not daemon.spool_messages()


def test_multiline_reply_code(postiliond, milters):
    text = "550-5.7.1 first line\r\n550 5.7.1 second line"
    milter = milters({"replies": {"E": ("y", text)}})
    reply = send(start(postiliond, milter))
    assert (reply.code, reply.last) == (550, "550 5.7.1 first line second line")


def test_reply_code_of_wrong_class_is_garbage(postiliond, milters):
    milter = milters({"replies": {"M": ("y", "250 2.0.0 fine")}})
    daemon = start(postiliond, milter)
    with daemon.connect() as client:
        client.ehlo()
        answer = client.cmd("MAIL FROM:<alice@client.test.example>")
        assert answer.code == 451
    assert daemon.wait_log(r"milter m0 .*protocol error at mail|"
                           r"milter m0 .*no usable reply at mail")


def test_discard_at_rcpt_drops_the_message(postiliond, milters):
    milter = milters({"replies": {"R": "d"}})
    daemon = start(postiliond, milter)
    reply = send(daemon)
    assert reply.code == 250
    assert not daemon.spool_messages()
    assert "E" not in milter.last().letters()


def test_accept_ends_filtering_for_the_message(postiliond, milters):
    milter = milters({"replies": {"M": "a"}})
    daemon = start(postiliond, milter)
    queue_id(send(daemon))
    letters = milter.last().letters()
    assert "R" not in letters and "B" not in letters and "E" not in letters


def test_skip_in_body_goes_to_end_of_body(postiliond, milters):
    milter = milters({"replies": {"B": "s"}})
    daemon = start(postiliond, milter)
    body = ("x" * 70 + "\r\n") * 2000  # three 64 KiB pieces
    queue_id(send(daemon, simple_message(body=body)))
    session = milter.last()
    assert len(session.payloads("B")) == 1 and "E" in session.letters()


def rss_anon_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/PID/status")


@pytest.mark.parametrize("steps", [0, 0x80000], ids=["answers", "nr_body"])
def test_large_body_streams_to_a_slow_milter(postiliond, milters, steps):
    """An 8 MiB body goes to a milter that reads it slowly, answering each
    piece or not (SMFIP_NR_BODY): it arrives intact, in pieces of at most
    64 KiB, and the daemon holds one piece at a time (its anonymous memory
    does not grow by the body's size: the next piece is read only when the
    milter answered, or when the socket took the last one)."""
    milter = milters({"steps": steps, "body_read_delay": 0.005})
    daemon = start(postiliond, milter, command_timeout="10s",
                   eom_timeout="10s")
    line = b"y" * 78 + b"\r\n"
    body = line * (8 * 1024 * 1024 // len(line))
    message = simple_message(body="").rstrip(b"\r\n") + b"\r\n\r\n" + body
    queue_id(send(daemon))  # warm: connections, buffers, the thread pool
    baseline = rss_anon_kib(daemon.pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_anon_kib(daemon.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        queue_id(send(daemon, message))
    finally:
        done.set()
        sampler.join()
    pieces = milter.last().payloads("B")
    assert b"".join(pieces) == body
    assert max(len(piece) for piece in pieces) <= 65535
    if not harness.SANITIZED:  # ASan's quarantine keeps freed pieces
        assert peak[0] - baseline < 3 * 1024, (baseline, peak[0])


def test_reject_at_connect(postiliond, milters):
    milter = milters({"replies": {"C": ("y", "554 5.7.1 Go away")}})
    daemon = start(postiliond, milter)
    client = daemon.connect()
    assert (client.greeting.code, client.greeting.last) == (554, "554 5.7.1 Go away")
    client.close()


# --- Edits -------------------------------------------------------------------


def test_every_edit(postiliond, milters):
    index = (1).to_bytes(4, "big")
    edits = [
        ("h", strings("X-Spam-Flag", "YES")),
        ("i", (0).to_bytes(4, "big") + strings("X-Top", "first")),
        ("m", index + strings("Subject", "changed\n\tand folded")),
        ("m", index + strings("Message-ID", "")),
        ("e", strings("<new-sender@example.net>")),
        ("+", strings("<carol@example.org>")),
        ("-", strings("<bob@example.org>")),
        ("b", b"new body line 1\n"),
        ("b", b"new body line 2\r\n"),
    ]
    milter = milters({"edits": edits})
    daemon = start(postiliond, milter)
    qid = queue_id(send(daemon))
    message = daemon.spool_messages(id=qid)[0]
    fields, body = harness.split_message(message["content"])
    assert fields[0] == ("X-Top", "first")
    assert ("X-Spam-Flag", "YES") in fields
    assert ("Subject", "changed\r\n\tand folded") in fields
    assert "Message-ID" not in [name for name, _ in fields]
    assert body == b"new body line 1\r\nnew body line 2\r\n"
    assert message["sender"] == "new-sender@example.net"
    assert [r["address"] for r in message["recipients"]] == ["carol@example.org"]


def test_edit_without_negotiated_action_is_a_protocol_error(postiliond,
                                                            milters):
    milter = milters({"actions": 0x01,
                      "edits": [("b", b"sneaky\r\n")]})
    daemon = start(postiliond, milter)
    reply = send(daemon)
    assert reply.code == 451, (milter.port, milter.last().commands,
                               daemon.config)
    assert daemon.wait_log(r"milter m0 .*protocol error at eom.*"
                           r"default_action=tempfail")


def test_quarantine_goes_to_the_held_queue_with_its_reason(postiliond,
                                                            milters):
    milter = milters({"edits": [("q", strings("Eicar-Test-Signature"))]})
    daemon = start(postiliond, milter)
    qid = queue_id(send(daemon))
    assert daemon.spool_messages(queue="hold", id=qid)
    proc = subprocess.run([str(POSTILION), "-c", str(daemon.conf_path),
                           "queue", "show", qid], capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert "queue: hold" in proc.stdout
    assert "hold reason: Eicar-Test-Signature (milter m0)" in proc.stdout
    assert daemon.wait_log(r"hold: END-OF-MESSAGE .*plugin=milter "
                           r"reason=Eicar-Test-Signature")


def test_second_milter_sees_the_first_ones_edits(postiliond, milters):
    first = milters({"edits": [("h", strings("X-First", "1")),
                               ("b", b"replaced\r\n")]})
    second = milters()
    daemon = start(postiliond, first, second)
    queue_id(send(daemon))
    session = second.last()
    assert ("X-First", "1") in session.headers()
    assert session.body() == b"replaced\r\n"


# --- Failures: default_action ------------------------------------------------


@pytest.mark.parametrize("action,code", [("tempfail", 421), ("reject", 554),
                                         ("accept", 220)])
def test_milter_down_at_connect(postiliond, action, code):
    port = harness.free_port()
    config = milter_config(TestMilterStub(port), default_action=action)
    daemon = postiliond(config=config)
    client = daemon.connect()
    assert client.greeting.code == code
    client.close()
    assert daemon.wait_log(rf"milter m0 \(inet:127.0.0.1:{port}\): "
                           rf"unavailable at connect: .*default_action={action}")


class TestMilterStub:
    """A milter address nobody listens on."""
    __test__ = False

    def __init__(self, port: int):
        self.socket_spec = f"inet:127.0.0.1:{port}"


@pytest.mark.parametrize("script", [
    {"version": 7},
    {"actions": 0x400},
    {"steps": 0x800},
    {"negotiation": frame(b"O", b"\0\0")},
    {"negotiation": frame(b"c")},
])
def test_negotiation_refusals(postiliond, milters, script):
    milter = milters(script)
    daemon = start(postiliond, milter, default_action="accept")
    queue_id(send(daemon))
    assert daemon.wait_log(r"milter m0 .*unavailable at connect: .*"
                           r"default_action=accept")


@pytest.mark.parametrize("stage", ["C", "H", "M", "R", "T", "L", "N", "B",
                                   "E"])
def test_timeout_at_each_stage(postiliond, milters, stage):
    milter = milters({"replies": {stage: ("sleep", 3)}})
    daemon = start(postiliond, milter, command_timeout="300ms",
                   eom_timeout="300ms")
    client = daemon.connect()
    try:
        if stage == "C":
            assert client.greeting.code == 421
            return
        reply = client.ehlo()
        if stage == "H":
            assert reply.code == 451
            return
        reply = client.cmd("MAIL FROM:<alice@client.test.example>")
        if stage == "M":
            assert reply.code == 451
            return
        # A failed milter keeps its default_action for the session.
        reply = client.cmd("RCPT TO:<bob@example.org>")
        if stage == "R":
            assert reply.code == 451
            return
        reply = client.cmd("DATA")
        if stage == "T":
            assert reply.code == 451
            return
        client.send(harness.dot_stuff(simple_message()))
        assert client.read_reply().code == 451
    finally:
        client.close()
    assert daemon.wait_log(r"no usable reply at .*no answer within 300 ms; "
                           r"default_action=tempfail")
    assert len([line for line in daemon.log_lines()
                if "milter m0" in line and "no usable reply" in line]) == 1


def test_oversized_frame(postiliond, milters):
    milter = milters({"replies": {"E": "oversize"}})
    daemon = start(postiliond, milter, default_action="reject")
    reply = send(daemon)
    assert (reply.code, reply.last) == (550, "550 5.7.1 Command rejected")
    assert daemon.wait_log(r"milter m0 .*frame of 67108864 octets")


def test_milter_closing_mid_body(postiliond, milters):
    milter = milters({"replies": {"B": "close"}})
    daemon = start(postiliond, milter)
    reply = send(daemon)
    assert reply.code == 451
    assert daemon.wait_log(r"milter m0 .*closed the connection")
    # The next session connects afresh and passes.
    milter.script = {}
    queue_id(send(daemon))


def test_other_sessions_do_not_wait_for_a_slow_milter(postiliond, milters):
    milter = milters({"replies": {"E": ("sleep", 2)}})
    daemon = start(postiliond, milter, eom_timeout="5s")
    slow = daemon.connect()
    slow.ehlo()
    slow.cmd("MAIL FROM:<alice@client.test.example>")
    slow.cmd("RCPT TO:<bob@example.org>")
    slow.cmd("DATA")
    slow.send(harness.dot_stuff(simple_message()))
    fast = daemon.connect()  # the banner comes while the other one waits
    assert fast.ehlo().code == 250
    fast.close()
    assert slow.read_reply().code == 250
    slow.close()


def test_milter_only_on_its_listener(postiliond, milters):
    milter = milters({"replies": {"M": "r"}})
    config = milter_config(milter)
    config["listener:submission"] = {"address":
                                     f"127.0.0.1:{harness.free_port()}",
                                     "plugins": []}
    daemon = postiliond(config=config, listeners=("smtp",))
    with daemon.connect("submission") as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    with daemon.connect("smtp") as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 550


def test_bad_config_refuses_to_start(postiliond, tmp_path):
    config = {"plugins": {"path": PLUGIN_PATH, "load": ["milter"]},
              "plugin:milter": {"milters": ["rspamd"]},
              "plugin:milter:rspamd": {"socket": "tcp:127.0.0.1:11332"}}
    daemon = postiliond(config=config, start=False)
    daemon.write_config()
    rc, _, err = harness.run_cli(["--check", "-c", str(daemon.conf_path)])
    assert rc != 0
    assert "[plugin:milter:rspamd] socket = tcp:127.0.0.1:11332" in err
