"""The plugin ABI against the real daemon, with the test plugins of
tests/plugins (their keys: tests/plugins/README.md).

Loading: a plugin built for another ABI, a shared object without the
descriptor, a plugin whose init fails: each is refused naming the file and
the reason, and the daemon does not start (neither does --check).
Dispatch: verdicts at every filter stage with the plugin's reply or the
standard one, disconnect, priorities (keyfile override, ties in load
order), per-listener chains, completion from a worker thread and from a
timer, timeout (on_timeout), a late and a second completion refused, an
invalid verdict (on_error), cancellation when the client leaves, events.
Results and edits: results written at every scope and read by another
plugin, the namespace rule, header and envelope edits visible to later
plugins and in the queue file.  Reload: SIGHUP tells the plugins, new
sessions use the new chains, a session in progress keeps its own.
"""

import re
import socket
import time

import pytest

import harness
from harness import (HOSTNAME, dot_stuff, queue_id, run_cli, scaled,
                     simple_message, split_message, transaction)

SENDER = "alice@client.test.example"
POLICY_UNAVAILABLE = "451 4.3.0 Error: policy check unavailable, try again later"


def policy(name="testpolicy", **keys) -> dict:
    """A [plugin:NAME] group for testpolicy from keyword arguments."""
    return {f"plugin:{name}": dict(keys)}


def merged(*groups) -> dict:
    out = {}
    for group in groups:
        for name, keys in group.items():
            out.setdefault(name, {}).update(keys)
    return out


def start(postiliond, plugins, *groups, **kwargs):
    return postiliond(plugins=plugins, config=merged(*groups), **kwargs)


def headers_of(message: dict) -> list[tuple[str, str]]:
    return split_message(message["content"])[0]


def header(message: dict, name: str) -> str | None:
    for field, value in headers_of(message):
        if field.lower() == name.lower():
            return value
    return None


def elapsed(function):
    began = time.monotonic()
    result = function()
    return result, time.monotonic() - began


# --- loading --------------------------------------------------------------

REFUSALS = {
    "badabi": r"badabi\.so: built for plugin ABI 99\.0, this postiliond "
              r"provides 1\.\d+: rebuild the plugin against this SDK",
    "badminor": r"badminor\.so: built for plugin ABI 1\.99, this postiliond "
                r"provides only 1\.\d+",
    "noentry": r"noentry\.so: not a Postilion plugin: it does not export the "
               r"symbol \"postilion_plugin\"",
    "failinit": r"failinit\.so: plugin \"failinit\" failed to start: "
                r"failinit: configured to fail",
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_plugin_stops_the_daemon(postiliond, name):
    daemon = postiliond(plugins=["testpolicy", name],
                        config=policy(mail="reject"), start=False)
    daemon.start(wait=False)
    assert daemon.wait_exit(10) != 0
    assert daemon.port not in harness.listening_ports()
    log = daemon.log_text()
    path = re.escape(str(harness.PLUGIN_DIR))
    assert re.search(path + "/" + REFUSALS[name], log), log
    assert "init ran" not in log
    # testpolicy, loaded before, was shut down again.
    assert "plugin testpolicy: stopped" in log, log


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refused_plugin_fails_check(postiliond, name):
    daemon = postiliond(plugins=[name], start=False)
    daemon.write_config()
    code, out, err = run_cli(["--check", "-c", str(daemon.conf_path)])
    assert code != 0
    assert re.search(re.escape(str(harness.PLUGIN_DIR)) + "/" + REFUSALS[name],
                     out + err), out + err


def test_failinit_message_comes_from_the_plugin(postiliond):
    daemon = postiliond(plugins=["failinit"],
                        config={"plugin:failinit": {"message": "no key file"}},
                        start=False)
    daemon.start(wait=False)
    assert daemon.wait_exit(10) != 0
    assert 'plugin "failinit" failed to start: failinit: no key file' \
        in daemon.log_text()


def test_plugin_rejects_unknown_key(postiliond):
    daemon = postiliond(plugins=["testpolicy"],
                        config=policy(no_such_key="1"), start=False)
    daemon.start(wait=False)
    assert daemon.wait_exit(10) != 0
    assert "no_such_key" in daemon.log_text()


def test_check_prints_the_chains(postiliond):
    daemon = postiliond(
        plugins=["testpolicy", "testpolicy2"], listeners=("smtp", "submission"),
        config=merged(policy(rcpt="accept", mail="continue"),
                      policy("testpolicy2", rcpt="reject", hook_priority=-5),
                      {"plugin:testpolicy": {"priority": 7},
                       "listener:submission": {"plugins": ["testpolicy2"]}}),
        start=False)
    daemon.write_config()
    code, out, err = run_cli(["--check", "-v", "-c", str(daemon.conf_path)])
    assert code == 0, out + err
    lines = [l for l in out.splitlines() if l.startswith(("smtp ", "submission "))]
    assert lines == [
        "smtp mail 7 testpolicy",
        "smtp rcpt -5 testpolicy2",
        "smtp rcpt 7 testpolicy",
        "submission rcpt -5 testpolicy2",
    ], out


# --- verdicts -------------------------------------------------------------


def session_to(client, stage: str):
    """Drives a session up to (not including) the command of `stage`."""
    order = ["helo", "mail", "rcpt", "data", "eom"]
    steps = {
        "helo": lambda: None,
        "mail": lambda: client.ehlo(),
        "rcpt": lambda: client.cmd(f"MAIL FROM:<{SENDER}>"),
        "data": lambda: client.cmd("RCPT TO:<bob@example.org>"),
        "eom": lambda: client.cmd("DATA"),
    }
    for step in order[:order.index(stage) + 1]:
        reply = steps[step]()
        if reply is not None:
            assert reply.code in (250, 354), reply.lines


def stage_command(client, stage: str):
    if stage == "helo":
        return client.cmd("EHLO client.test.example")
    if stage == "mail":
        return client.cmd(f"MAIL FROM:<{SENDER}>")
    if stage == "rcpt":
        return client.cmd("RCPT TO:<bob@example.org>")
    if stage == "data":
        return client.cmd("DATA")
    client.send(dot_stuff(simple_message()))
    return client.read_reply()


@pytest.mark.parametrize("stage", ["helo", "mail", "rcpt", "data", "eom"])
def test_reject_with_plugin_reply(postiliond, stage):
    daemon = start(postiliond, ["testpolicy"],
                   policy(**{stage: "reject",
                             f"{stage}_reply": "554 5.7.1 Test says no"}))
    with daemon.connect() as client:
        session_to(client, stage)
        assert stage_command(client, stage).last == "554 5.7.1 Test says no"
    assert daemon.spool_messages() == []


@pytest.mark.parametrize("stage,reply", [
    ("helo", "550 5.7.1 Error: HELO rejected by policy"),
    ("mail", "550 5.7.1 Error: sender rejected by policy"),
    ("rcpt", "550 5.7.1 Error: recipient rejected by policy"),
    ("data", "550 5.7.1 Error: message rejected by policy"),
    ("eom", "550 5.7.1 Error: message rejected by policy"),
])
def test_reject_standard_reply(postiliond, stage, reply):
    daemon = start(postiliond, ["testpolicy"], policy(**{stage: "reject"}))
    with daemon.connect() as client:
        session_to(client, stage)
        assert stage_command(client, stage).last == reply


def test_reject_at_connect(postiliond):
    daemon = start(postiliond, ["testpolicy"], policy(connect="reject"))
    with daemon.connect() as client:
        assert client.greeting.last == f"554 5.7.1 {HOSTNAME} Service unavailable"
        assert client.cmd("QUIT").code == 221


def test_tempfail_standard_and_disconnect(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(mail="tempfail", rcpt="tempfail",
                          rcpt_reply="421 4.7.0 Go away", rcpt_disconnect=True,
                          mail_match="*@tempfail.example"))
    with daemon.connect() as client:
        client.ehlo()
        assert client.cmd("MAIL FROM:<x@tempfail.example>").last == \
            "451 4.7.1 Error: temporarily rejected by policy, try again later"
        assert client.cmd(f"MAIL FROM:<{SENDER}>").code == 250
        assert client.cmd("RCPT TO:<bob@example.org>").last == "421 4.7.0 Go away"
        client.wait_closed()


def test_reply_of_the_wrong_class_is_replaced(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_reply="250 2.1.5 Looks fine"))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").last == \
            "550 5.7.1 Error: recipient rejected by policy"
    daemon.wait_log(r"plugin testpolicy: reply code 250 does not fit verdict "
                    r"reject at rcpt")


def test_reply_text_is_sanitized(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(mail="reject", mail_reply="550 5.7.1 a\\r\\nb"))
    with daemon.connect() as client:
        session_to(client, "mail")
        # The keyfile's \r\n become CR LF, which the core turns to spaces.
        assert stage_command(client, "mail").lines == ["550 5.7.1 a  b"]


def test_accept_skips_the_rest_of_the_stage(postiliond):
    daemon = start(postiliond, ["testpolicy", "testpolicy2"],
                   policy(rcpt="accept"), policy("testpolicy2", rcpt="reject"))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").last == "250 2.1.5 Ok"
    assert "testpolicy2: rcpt" not in daemon.log_text()


def test_accept_does_not_bypass_the_relay_rule(postiliond):
    daemon = start(postiliond, ["testpolicy"], policy(rcpt="accept"))
    with daemon.connect() as client:
        client.ehlo()
        client.cmd(f"MAIL FROM:<{SENDER}>")
        assert client.cmd("RCPT TO:<bob@elsewhere.example>").code == 554


@pytest.mark.parametrize("verdict,reply", [
    ("discard", None), ("quarantine", "hold"),
])
def test_discard_and_quarantine_at_eom(postiliond, verdict, reply):
    daemon = start(postiliond, ["testpolicy"], policy(eom=verdict))
    with daemon.connect() as client:
        client.ehlo()
        assert transaction(client).code == 250
    assert daemon.spool_messages("active") == []
    held = daemon.spool_messages("hold")
    assert len(held) == (1 if reply == "hold" else 0)


def test_discard_recipient_at_rcpt(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="discard", rcpt_match="drop@*"))
    with daemon.connect() as client:
        client.ehlo()
        qid = queue_id(transaction(
            client, recipients=["drop@example.org", "keep@example.org"]))
    [message] = daemon.spool_messages(id=qid)
    assert [r["address"] for r in message["recipients"]] == ["keep@example.org"]


# --- order ----------------------------------------------------------------


def chain_order(daemon, since: int) -> list[str]:
    return re.findall(r"plugin (testpolicy2?): rcpt <",
                      "\n".join(daemon.log_lines(since)))


def test_priority_lower_runs_first(postiliond):
    daemon = start(postiliond, ["testpolicy", "testpolicy2"],
                   policy(rcpt="reject", hook_priority=10),
                   policy("testpolicy2", rcpt="continue", hook_priority=-10))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").code == 550
    assert chain_order(daemon, 0) == ["testpolicy2", "testpolicy"]


@pytest.mark.parametrize("load", [["testpolicy", "testpolicy2"],
                                  ["testpolicy2", "testpolicy"]])
def test_ties_keep_load_order(postiliond, load):
    daemon = start(postiliond, load,
                   policy(rcpt="reject", rcpt_reply="550 5.7.1 first"),
                   policy("testpolicy2", rcpt="reject",
                          rcpt_reply="550 5.7.1 second"))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        reply = stage_command(client, "rcpt").last
    assert reply == ("550 5.7.1 first" if load[0] == "testpolicy"
                     else "550 5.7.1 second")


def test_keyfile_priority_overrides_the_plugin(postiliond):
    daemon = start(postiliond, ["testpolicy", "testpolicy2"],
                   policy(rcpt="accept", hook_priority=-100),
                   policy("testpolicy2", rcpt="reject"),
                   {"plugin:testpolicy": {"priority": 100}})
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").code == 550
    assert chain_order(daemon, 0) == ["testpolicy2"]


def test_listener_chain(postiliond):
    daemon = start(postiliond, ["testpolicy", "testpolicy2"],
                   policy(rcpt="reject"), policy("testpolicy2", rcpt="continue"),
                   {"listener:submission": {"plugins": ["testpolicy2"]}},
                   listeners=("smtp", "submission"))
    with daemon.connect("smtp") as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").code == 550
    with daemon.connect("submission") as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").code == 250


# --- asynchronous completion ---------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "timer"])
def test_pending_completes_later(postiliond, mode):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_mode=mode, rcpt_delay="300ms",
                          rcpt_reply="550 5.1.1 No such user"))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        reply, took = elapsed(lambda: stage_command(client, "rcpt"))
        assert reply.last == "550 5.1.1 No such user"
        assert took >= 0.3
        # The session goes on normally afterwards.
        assert client.cmd("RCPT TO:<carol@example.org>").code == 550
    daemon.wait_log(rf"plugin testpolicy: rcpt: {mode} completion taken")


def test_pending_pipelined_commands_wait(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(mail="continue", mail_mode="thread",
                          mail_delay="200ms"))
    with daemon.connect() as client:
        client.ehlo()
        client.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.org>\r\n"
                    f"DATA\r\n")
        replies = client.read_replies(3, timeout=scaled(5))
        assert [r.code for r in replies] == [250, 250, 354]
        client.send(dot_stuff(simple_message()))
        queue_id(client.read_reply())


@pytest.mark.parametrize("on_timeout,reply", [
    (None, POLICY_UNAVAILABLE),
    ("reject", "550 5.7.1 Error: recipient rejected by policy"),
    ("continue", "250 2.1.5 Ok"),
    ("accept", "250 2.1.5 Ok"),
])
def test_timeout_applies_on_timeout(postiliond, on_timeout, reply):
    keys = {"timeout": "300ms"}
    if on_timeout:
        keys["on_timeout"] = on_timeout
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_mode="never"),
                   {"plugin:testpolicy": keys})
    with daemon.connect() as client:
        session_to(client, "rcpt")
        answer, took = elapsed(lambda: stage_command(client, "rcpt"))
        assert answer.last == reply
        assert 0.25 <= took < scaled(5)
    daemon.wait_log(r"plugin testpolicy: no verdict at rcpt within 300 ms")
    # The call was cancelled; the plugin's completion then is refused.
    daemon.wait_log(r"plugin testpolicy: rcpt: cancelled, completion refused")


def test_late_completion_is_refused(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="accept", rcpt_mode="timer", rcpt_delay="600ms"),
                   {"plugin:testpolicy": {"timeout": "200ms"}})
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").last == POLICY_UNAVAILABLE
        daemon.wait_log(r"plugin testpolicy: rcpt: timer completion refused")
        daemon.wait_log(r"plugin testpolicy: completed a rcpt call after its "
                        r"deadline \(200 ms\): verdict accept ignored")
        # Nothing of the late verdict leaked into the session.
        assert client.cmd("RCPT TO:<carol@example.org>").last == POLICY_UNAVAILABLE


def test_second_completion_is_refused(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_mode="twice", rcpt_delay="50ms"))
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").code == 550
        assert client.cmd("NOOP").code == 250
    daemon.wait_log(r"plugin testpolicy: rcpt: second completion refused")
    daemon.wait_log(r"plugin testpolicy: completed a rcpt call twice")


@pytest.mark.parametrize("keys,reply", [
    ({"mail": "invalid"}, POLICY_UNAVAILABLE),
    ({"mail": "invalid", "mail_mode": "thread"}, POLICY_UNAVAILABLE),
    ({"mail": "discard"}, POLICY_UNAVAILABLE),
    ({"mail": "invalid", "on_error": "reject"},
     "550 5.7.1 Error: sender rejected by policy"),
    ({"mail": "quarantine", "on_error": "continue"}, "250 2.1.0 Ok"),
])
def test_invalid_verdict_applies_on_error(postiliond, keys, reply):
    daemon = start(postiliond, ["testpolicy"], {"plugin:testpolicy": keys})
    with daemon.connect() as client:
        session_to(client, "mail")
        assert stage_command(client, "mail").last == reply
    daemon.wait_log(r"plugin testpolicy: invalid verdict \d+ \(\w+\) at mail: "
                    r"on_error=\w+ applies")


def test_client_leaving_cancels_the_pending_call(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="accept", rcpt_mode="never"),
                   {"plugin:testpolicy": {"timeout": "30s"}})
    client = daemon.connect()
    session_to(client, "rcpt")
    mark = daemon.log_mark()
    client.send("RCPT TO:<bob@example.org>\r\n")
    daemon.wait_log(r"testpolicy: rcpt <bob@example.org> -> accept", since=mark)
    client.close()
    # Well before the 30 s deadline.
    daemon.wait_log(r"plugin testpolicy: rcpt: cancelled, completion refused",
                    since=mark, timeout=5)
    assert "no verdict at rcpt" not in daemon.log_text()
    with daemon.connect() as again:
        assert again.ehlo().code == 250


def test_shutdown_with_a_pending_call(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="accept", rcpt_mode="never"),
                   {"plugin:testpolicy": {"timeout": "30s"}})
    client = daemon.connect()
    session_to(client, "rcpt")
    client.send("RCPT TO:<bob@example.org>\r\n")
    daemon.wait_log(r"testpolicy: rcpt <bob@example.org> -> accept")
    assert daemon.stop() == 0
    assert "plugin testpolicy: stopped" in daemon.log_text()
    client.close()


def test_shutdown_waits_for_a_worker_holding_a_call(postiliond):
    """A worker thread still holds a MAIL call when the grace period ends
    (it completes about 1 s later, cancelled or not): the daemon waits for
    its completion and then runs the plugin's shutdown(), which joins the
    thread, before it exits.  It used to exit at once: the call's plugin
    reference kept the plugin loaded, so shutdown() never ran and the
    worker's own log line was lost (or not, as the threads raced exit()).

    Timeline, from the MAIL (SIGTERM follows within milliseconds): the
    grace period ends at 2 s, the worker completes at 3 s, the daemon waits
    for plugins until 4 s at most: a second of slack on each side for a
    loaded machine.  (With a 1 s grace and a 2 s delay the completion fell
    on the very end of the wait, and a late worker missed it.)"""
    daemon = start(postiliond, ["testpolicy"],
                   policy(mail="continue", mail_mode="thread",
                          mail_delay="3s"),
                   {"server": {"timeout_shutdown": "2s"},
                    "plugin:testpolicy": {"timeout": "30s"}})
    with daemon.connect() as client:
        client.ehlo()
        client.send(f"MAIL FROM:<{SENDER}>\r\n")
        daemon.wait_log(rf"testpolicy: mail <{SENDER}> -> continue")
        assert daemon.stop() == 0
    log = daemon.log_text()
    closing = log.find("shutdown: closing 1 sessions after the grace period")
    completion = log.find("plugin testpolicy: mail: thread completion refused")
    stopped = log.find("plugin testpolicy: stopped")
    assert 0 <= closing < completion < stopped, log


# --- events ---------------------------------------------------------------


def test_events_run_every_hook_and_decide_nothing(postiliond):
    daemon = start(postiliond, ["testpolicy", "testpolicy2"],
                   policy(queued="reject", disconnect="tempfail"),
                   policy("testpolicy2", queued="continue", queued_mode="thread",
                          disconnect="continue"))
    with daemon.connect() as client:
        client.ehlo()
        qid = queue_id(transaction(client))
        assert client.cmd("QUIT").code == 221
    assert [m["id"] for m in daemon.spool_messages()] == [qid]
    for pattern in (r"plugin testpolicy: queued <> -> reject",
                    r"plugin testpolicy2: queued <> -> continue \(thread\)",
                    r"plugin testpolicy2: queued: thread completion taken",
                    r"plugin testpolicy: disconnect <> -> tempfail",
                    r"plugin testpolicy2: disconnect <> -> continue"):
        daemon.wait_log(pattern)


# --- results --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "thread"])
def test_results_shared_between_plugins(postiliond, mode):
    daemon = start(postiliond, ["testresults", "testreader"],
                   {"plugin:testresults": {"mode": mode}})
    with daemon.connect() as client:
        client.ehlo()
        first = queue_id(transaction(client, recipients=["bob@example.org",
                                                         "carol@example.org"]))
    with daemon.connect() as client:
        client.ehlo()
        second = queue_id(transaction(client, sender="dave@client.test.example"))
    [one] = daemon.spool_messages(id=first)
    assert header(one, "X-Test-Results") == (
        "client=127.0.0.1; connections=1; sender=alice@client.test.example; "
        "rcpt0=bob@example.org; auth=pass; forgery_refused=true; seen=-")
    [two] = daemon.spool_messages(id=second)
    assert header(two, "X-Test-Results").startswith(
        "client=127.0.0.1; connections=2; sender=dave@client.test.example; "
        "rcpt0=bob@example.org;")
    # The transaction and recipient scopes are saved with the message.
    results = str(one["results"])
    assert "auth.testresults" in results and "testresults.sender" in results
    assert "testreader.forged" not in results
    rcpts = one["recipients"]
    assert "bob@example.org" in str(rcpts[0]["results"])
    assert "carol@example.org" in str(rcpts[1]["results"])
    daemon.wait_log(r"plugin testreader: rcpt sees "
                    r"testresults.rcpt=carol@example.org")
    daemon.wait_log(r'result "testreader.forged" not written')


# --- message edits --------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "thread"])
def test_message_edits(postiliond, mode):
    daemon = start(postiliond, ["testedit", "testreader"], {
        "plugin:testedit": {
            "mode": mode,
            "add_header": ["X-Added: one", "X-Folded: a\\r\\n\\tb"],
            "insert_header": ["0:X-Top: first"],
            "change_header": ["Subject: changed"],
            "delete_header": ["Message-ID"],
            "set_sender": "bounce@example.net",
            "add_recipient": ["carol@example.org"],
            "remove_recipient": ["bob@example.org"],
        },
        "plugin:testreader": {"watch_header": "X-Added"},
    })
    with daemon.connect() as client:
        client.ehlo()
        qid = queue_id(transaction(client, recipients=["bob@example.org",
                                                       "dave@example.org"]))
    [message] = daemon.spool_messages(id=qid)
    fields = headers_of(message)
    names = [name for name, _ in fields]
    assert names[0] == "X-Top"
    assert header(message, "Subject") == "changed"
    assert header(message, "Message-ID") is None
    assert header(message, "X-Added") == "one"
    assert header(message, "X-Folded") == "a\r\n\tb"
    # testreader ran after testedit and saw its edit.
    assert header(message, "X-Test-Results").endswith("seen=one")
    assert names.index("X-Folded") < names.index("X-Test-Results")
    assert message["sender"] == "bounce@example.net"
    assert sorted(r["address"] for r in message["recipients"]) == [
        "carol@example.org", "dave@example.org"]
    assert split_message(message["content"])[1] == b"Hello.\r\n"


def test_bad_edit_is_refused(postiliond):
    daemon = start(postiliond, ["testedit"], {
        "plugin:testedit": {"add_header": ["Bad Name: x", "X-Good: y"]}})
    with daemon.connect() as client:
        client.ehlo()
        qid = queue_id(transaction(client))
    [message] = daemon.spool_messages(id=qid)
    assert header(message, "X-Good") == "y"
    assert header(message, "Bad Name") is None
    daemon.wait_log(r"testedit: \w+: add Bad Name: x -> refused")


def test_removing_every_recipient_queues_nothing(postiliond):
    daemon = start(postiliond, ["testedit"], {
        "plugin:testedit": {"remove_recipient": ["bob@example.org"]}})
    with daemon.connect() as client:
        client.ehlo()
        assert transaction(client).code == 250
    assert daemon.spool_messages() == []


# --- reload ---------------------------------------------------------------


def test_reload_tells_plugins_and_changes_new_sessions(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_reply="550 5.7.1 old rule"))
    old = daemon.connect()
    session_to(old, "rcpt")
    assert stage_command(old, "rcpt").last == "550 5.7.1 old rule"
    mark = daemon.log_mark()
    daemon.reload(config=policy(rcpt_reply="550 5.7.1 new rule"))
    daemon.wait_log(r"plugin testpolicy: reloaded", since=mark)
    daemon.wait_log(r"reload: new sessions use", since=mark)
    with daemon.connect() as new:
        session_to(new, "rcpt")
        assert stage_command(new, "rcpt").last == "550 5.7.1 new rule"
    # The session that began before the SIGHUP keeps its chain.
    assert old.cmd("RCPT TO:<carol@example.org>").last == "550 5.7.1 old rule"
    old.close()


def test_reload_refused_by_a_plugin_keeps_the_old_chain(postiliond):
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="reject", rcpt_reply="550 5.7.1 old rule"))
    mark = daemon.log_mark()
    daemon.reload(config=policy(rcpt_mode="sometimes"))
    daemon.wait_log(r"reload refused.*testpolicy.*rcpt_mode", since=mark)
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").last == "550 5.7.1 old rule"
    assert daemon.running()


def test_reload_unloading_a_plugin_whose_timer_holds_its_last_call(postiliond):
    """The RCPT call times out (200 ms) while testpolicy's main-loop timer
    still holds it; the session ends and a SIGHUP drops testpolicy from
    the list, so that call is all that keeps it loaded.  When the timer
    fires, its pst_call_complete() drops the last reference: the plugin
    must be shut down and unloaded after the timer's callback returns,
    not inside it (the daemon crashed returning into the unloaded code)."""
    delay_ms = int(scaled(3) * 1000)
    daemon = start(postiliond, ["testpolicy"],
                   policy(rcpt="accept", rcpt_mode="timer",
                          rcpt_delay=f"{delay_ms}ms"),
                   {"plugin:testpolicy": {"timeout": "200ms"}})
    with daemon.connect() as client:
        session_to(client, "rcpt")
        assert stage_command(client, "rcpt").last == POLICY_UNAVAILABLE
        assert client.cmd("QUIT").code == 221
    daemon.wait_log(r"disconnect from")
    mark = daemon.log_mark()
    daemon.reload(config=merged({"plugins": {"load": ["testpolicy2"]}},
                                policy("testpolicy2", mail="continue")),
                  wait=0)
    daemon.wait_log(r"reload: new sessions use", since=mark)
    assert "plugin testpolicy: stopped" not in daemon.log_text()
    daemon.wait_log(r"plugin testpolicy: rcpt: timer completion refused",
                    since=mark, timeout=scaled(3) + 5)
    daemon.wait_log(r"plugin testpolicy: stopped", since=mark)
    with daemon.connect() as client:
        session_to(client, "mail")
        assert stage_command(client, "mail").code == 250
    assert daemon.running()


def test_reload_loading_a_new_plugin(postiliond):
    daemon = start(postiliond, ["testpolicy"], policy(mail="continue"))
    mark = daemon.log_mark()
    daemon.reload(config=merged(
        {"plugins": {"load": ["testpolicy", "testpolicy2"]}},
        policy("testpolicy2", mail="reject")))
    daemon.wait_log(r"reload: new sessions use", since=mark)
    with daemon.connect() as client:
        session_to(client, "mail")
        assert stage_command(client, "mail").code == 550
