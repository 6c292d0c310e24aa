"""The SMTP dialog: greeting, EHLO, each command's replies and the order
rules, as doc/smtp-replies.md lists them (byte-exact, over raw sockets),
plus the same dialog through Python's smtplib."""

import re

import pytest

from harness import (CLIENT_NAME, HOSTNAME, dot_stuff, queue_id,
                     simple_message, transaction)

EHLO_KEYWORDS = ["PIPELINING", "SIZE 36700160", "8BITMIME", "SMTPUTF8",
                 "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"]


def test_greeting(client):
    assert client.greeting.lines == [f"220 {HOSTNAME} ESMTP Postilion"]


def test_greeting_banner_from_config(postiliond):
    d = postiliond(config={"server": {"banner": "ESMTP ready for tests"}})
    with d.connect() as c:
        assert c.greeting.last == f"220 {HOSTNAME} ESMTP ready for tests"


def test_ehlo_lists_extensions_in_order(client):
    reply = client.ehlo()
    assert reply.lines == [f"250-{HOSTNAME}"] + [
        f"250-{k}" for k in EHLO_KEYWORDS[:-1]] + [f"250 {EHLO_KEYWORDS[-1]}"]


def test_ehlo_size_follows_config(postiliond):
    d = postiliond(config={"server": {"max_message_size": "10k"}})
    with d.connect() as c:
        assert "250-SIZE 10240" in c.ehlo().lines


def test_helo(client):
    assert client.cmd("HELO client.test.example").lines == [f"250 {HOSTNAME}"]


@pytest.mark.parametrize("verb", ["HELO", "EHLO", "helo", "EHLO  "])
def test_helo_without_argument(client, verb):
    reply = client.cmd(verb)
    assert reply.last == f"501 5.5.4 Syntax: {verb.strip().upper()} hostname"


def test_verbs_are_case_insensitive(client):
    assert client.cmd("ehlo client.test.example").code == 250
    assert client.cmd("mail from:<alice@client.test.example>").last == "250 2.1.0 Ok"
    assert client.cmd("rcpt to:<bob@example.org>").last == "250 2.1.5 Ok"
    assert client.cmd("rset").last == "250 2.0.0 Ok"


def test_full_transaction_replies(client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@client.test.example>").last == "250 2.1.0 Ok"
    assert client.cmd("RCPT TO:<bob@example.org>").last == "250 2.1.5 Ok"
    assert client.cmd("DATA").last == "354 End data with <CR><LF>.<CR><LF>"
    client.send(dot_stuff(simple_message()))
    queue_id(client.read_reply())
    assert client.cmd("QUIT").last == "221 2.0.0 Bye"
    assert client.wait_closed() == b""


def test_several_transactions_in_one_session(daemon, client):
    client.ehlo()
    ids = [queue_id(transaction(client)) for _ in range(3)]
    assert len(set(ids)) == 3
    assert sorted(m["id"] for m in daemon.spool_messages()) == sorted(ids)


def test_null_sender_accepted(daemon, client):
    client.ehlo()
    qid = queue_id(transaction(client, sender=""))
    assert daemon.spool_messages(id=qid)[0]["sender"] == ""


def test_postmaster_without_domain_accepted(daemon, client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@client.test.example>").code == 250
    assert client.cmd("RCPT TO:<postmaster>").last == "250 2.1.5 Ok"


@pytest.mark.parametrize("command, reply", [
    ("RSET", "250 2.0.0 Ok"),
    ("NOOP", "250 2.0.0 Ok"),
    ("VRFY bob", "502 5.5.1 Error: command disabled"),
    ("EXPN staff", "502 5.5.1 Error: command disabled"),
    ("HELP", "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP"),
    ("FOO bar", "500 5.5.2 Error: command not recognized"),
    ("STARTTLS", "502 5.5.1 Error: command not implemented"),
    ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "502 5.5.1 Error: command not implemented"),
])
def test_simple_commands(client, command, reply):
    client.ehlo()
    assert client.cmd(command).last == reply


def test_quit_closes(client):
    assert client.cmd("QUIT").lines == ["221 2.0.0 Bye"]
    assert client.wait_closed() == b""


def test_bare_lf_does_not_end_a_command(client):
    """Only CRLF ends a line (RFC 5321 2.3.8): "NOOP<LF>RSET<CRLF>" is one
    line with a bare LF in it, refused as one command, never run as two."""
    client.ehlo()
    client.send(b"NOOP\nRSET\r\n")
    assert client.read_reply().last == "500 5.5.2 Error: bare CR or LF in command"
    client.expect_silence()
    assert client.cmd("NOOP").last == "250 2.0.0 Ok"


def test_bare_lf_terminated_transaction_is_not_accepted(daemon, client):
    """A client that ends its commands with LF alone gets one refusal per
    line, none of them is run, and nothing is queued."""
    client.send(b"EHLO client.example\nMAIL FROM:<a@client.example>\n"
                b"RCPT TO:<bob@example.org>\nDATA\n")
    for reply in client.read_replies(4):
        assert reply.last == "500 5.5.2 Error: bare CR or LF in command"
    assert client.cmd("DATA").last == "503 5.5.1 Error: need MAIL command"
    assert daemon.spool_messages() == []


def test_rset_ends_the_transaction(client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    client.cmd("RCPT TO:<bob@example.org>")
    assert client.cmd("RSET").last == "250 2.0.0 Ok"
    assert client.cmd("RCPT TO:<bob@example.org>").last == \
        "503 5.5.1 Error: need MAIL command"
    assert client.cmd("DATA").last == "503 5.5.1 Error: need MAIL command"


def test_ehlo_again_resets_the_transaction(client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@client.test.example>")
    assert client.ehlo().code == 250
    assert client.cmd("MAIL FROM:<alice@client.test.example>").last == "250 2.1.0 Ok"


# --- commands out of sequence --------------------------------------------

SEQUENCE_CASES = {
    # name: (commands before, command, exact reply)
    "mail-before-helo": ([], "MAIL FROM:<a@example.org>",
                         "503 5.5.1 Error: send HELO/EHLO first"),
    "nested-mail": (["EHLO c", "MAIL FROM:<a@example.org>"],
                    "MAIL FROM:<b@example.org>", "503 5.5.1 Error: nested MAIL command"),
    "rcpt-before-mail": (["EHLO c"], "RCPT TO:<bob@example.org>",
                         "503 5.5.1 Error: need MAIL command"),
    "rcpt-before-helo": ([], "RCPT TO:<bob@example.org>",
                         "503 5.5.1 Error: need MAIL command"),
    "data-before-mail": (["EHLO c"], "DATA", "503 5.5.1 Error: need MAIL command"),
    "data-without-rcpt": (["EHLO c", "MAIL FROM:<a@example.org>"], "DATA",
                          "503 5.5.1 Error: need RCPT command"),
    "data-after-refused-rcpt": (
        ["EHLO c", "MAIL FROM:<a@example.org>", "RCPT TO:<x@elsewhere.test>"],
        "DATA", "503 5.5.1 Error: need RCPT command"),
    "data-after-helo-only": (["HELO c"], "DATA", "503 5.5.1 Error: need MAIL command"),
}


@pytest.mark.parametrize("case", SEQUENCE_CASES, ids=list(SEQUENCE_CASES))
def test_out_of_sequence(client, case):
    before, command, reply = SEQUENCE_CASES[case]
    for line in before:
        client.cmd(line)
    assert client.cmd(command).last == reply
    # The session goes on.
    assert client.cmd("NOOP").last == "250 2.0.0 Ok"


# --- MAIL and RCPT arguments ----------------------------------------------

MAIL_SYNTAX = ["MAIL", "MAIL FROM", "MAIL FROM:", "MAIL FROM:alice@example.org",
               "MAIL TO:<alice@example.org>", "MAIL FROM:<alice@example.org> =x",
               "MAIL FROM <alice@example.org>"]
RCPT_SYNTAX = ["RCPT", "RCPT TO", "RCPT TO:", "RCPT TO:bob@example.org",
               "RCPT FROM:<bob@example.org>", "RCPT TO <bob@example.org>"]


@pytest.mark.parametrize("command", MAIL_SYNTAX)
def test_mail_syntax(client, command):
    client.ehlo()
    assert client.cmd(command).last == "501 5.5.4 Syntax: MAIL FROM:<address>"


@pytest.mark.parametrize("command", RCPT_SYNTAX)
def test_rcpt_syntax(client, command):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@example.org>")
    assert client.cmd(command).last == "501 5.5.4 Syntax: RCPT TO:<address>"


BAD_ADDRESSES = ["a@b@example.org", "@example.org", "alice@", "a b@example.org",
                 ".alice@example.org", "alice.@example.org", "al..ice@example.org",
                 "alice@example..org", "alice@-example.org", "alice@example.org-",
                 "alice@[300.1.1.1]", "alice@[IPv6:zz::1]", "al(ice@example.org",
                 "alice"]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_address_syntax_mail(client, address):
    client.ehlo()
    assert client.cmd(f"MAIL FROM:<{address}>").last == \
        "553 5.1.3 Error: bad address syntax"


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_address_syntax_rcpt(client, address):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@example.org>")
    assert client.cmd(f"RCPT TO:<{address}>").last == \
        "553 5.1.3 Error: bad address syntax"


GOOD_ADDRESSES = ["alice@example.org", "Alice.Smith+tag@EXAMPLE.ORG",
                  "\"alice smith\"@example.org", "a!#$%&'*+/=?^_`{|}~-@example.org",
                  "@relay.test:alice@example.org"]


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_good_addresses(client, address):
    client.ehlo()
    assert client.cmd(f"MAIL FROM:<{address}>").last == "250 2.1.0 Ok"
    assert client.cmd(f"RCPT TO:<{address}>").last == "250 2.1.5 Ok"


def test_address_too_long(client):
    client.ehlo()
    local = "a" * 65
    assert client.cmd(f"MAIL FROM:<{local}@example.org>").last == \
        "501 5.1.3 Error: address too long"
    domain = ".".join(["d" * 60] * 5) + ".org"  # 309 octets
    assert client.cmd(f"MAIL FROM:<a@{domain}>").last == \
        "501 5.1.3 Error: address too long"
    assert client.cmd(f"MAIL FROM:<{'a' * 64}@example.org>").last == "250 2.1.0 Ok"


def test_path_over_256_octets(client):
    """256 octets including the angle brackets is the limit."""
    client.ehlo()
    local = "a" * 64
    domain = "d" * 61 + "." + "d" * 61 + "." + "d" * 61 + ".org"  # 189
    assert len(f"<{local}@{domain}>") == 256
    assert client.cmd(f"MAIL FROM:<{local}@{domain}>").last == "250 2.1.0 Ok"
    client.cmd("RSET")
    domain = "e" + domain
    assert client.cmd(f"MAIL FROM:<{local}@{domain}>").last == \
        "501 5.1.3 Error: address too long"


def test_utf8_address_requires_smtputf8(client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<jörg@example.org>").last == \
        "553 5.6.7 Error: SMTPUTF8 is required for this address"
    assert client.cmd("MAIL FROM:<alice@example.org>").code == 250
    assert client.cmd("RCPT TO:<jörg@example.org>").last == \
        "553 5.6.7 Error: SMTPUTF8 is required for this address"


@pytest.mark.parametrize("param", ["FOO=bar", "XYZZY", "AUTH2=<>"])
def test_unknown_mail_parameter(client, param):
    client.ehlo()
    assert client.cmd(f"MAIL FROM:<alice@example.org> {param}").last == \
        "555 5.5.4 Error: unsupported parameter"


def test_unknown_rcpt_parameter(client):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@example.org>")
    assert client.cmd("RCPT TO:<bob@example.org> FOO=bar").last == \
        "555 5.5.4 Error: unsupported parameter"


@pytest.mark.parametrize("param", ["SIZE=abc", "SIZE=-1", "SIZE=1e6", "BODY=9BIT",
                                   "RET=NONE", "SMTPUTF8=yes", "ENVID=a+zz"])
def test_bad_mail_parameter_value(client, param):
    client.ehlo()
    assert client.cmd(f"MAIL FROM:<alice@example.org> {param}").last == \
        "501 5.5.4 Error: bad parameter value"


@pytest.mark.parametrize("param", ["NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES",
                                   "ORCPT=nonsense", "ORCPT=rfc822;a+zz"])
def test_bad_rcpt_parameter_value(client, param):
    client.ehlo()
    client.cmd("MAIL FROM:<alice@example.org>")
    assert client.cmd(f"RCPT TO:<bob@example.org> {param}").last == \
        "501 5.5.4 Error: bad parameter value"


def test_duplicate_parameter_refused(client):
    client.ehlo()
    reply = client.cmd("MAIL FROM:<alice@example.org> SIZE=10 SIZE=20")
    assert reply.code == 501 and reply.enhanced == "5.5.4"


def test_binarymime_not_offered(client):
    client.ehlo()
    assert client.cmd("MAIL FROM:<alice@example.org> BODY=BINARYMIME").last == \
        "555 5.5.4 Error: unsupported parameter"


# --- smtplib, as a real client library ------------------------------------


def test_smtplib_sendmail(daemon):
    with daemon.smtp() as s:
        code, _ = s.ehlo()
        assert code == 250
        assert s.has_extn("pipelining") and s.has_extn("chunking")
        assert s.has_extn("smtputf8") and s.has_extn("dsn")
        assert s.esmtp_features["size"] == "36700160"
        refused = s.sendmail("alice@client.test.example",
                             ["bob@example.org", "carol@example.net"],
                             simple_message("via smtplib"))
        assert refused == {}
    messages = daemon.spool_messages()
    assert len(messages) == 1
    assert [r["address"] for r in messages[0]["recipients"]] == \
        ["bob@example.org", "carol@example.net"]
    assert messages[0]["helo"] == CLIENT_NAME


def test_smtplib_partial_refusal(daemon):
    import smtplib

    with daemon.smtp() as s:
        refused = s.sendmail("alice@client.test.example",
                             ["bob@example.org", "mallory@elsewhere.test"],
                             simple_message())
        assert refused == {"mallory@elsewhere.test":
                           (554, b"5.7.1 <mallory@elsewhere.test>: Relay access denied")}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("alice@client.test.example", ["x@elsewhere.test"],
                       simple_message())
    messages = daemon.spool_messages()
    assert [[r["address"] for r in m["recipients"]] for m in messages] == \
        [["bob@example.org"]]


def test_smtplib_send_message_smtputf8(daemon):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "jörg@client.test.example"
    msg["To"] = "zoë@example.org"
    msg["Subject"] = "grüße"
    msg.set_content("Ünïcödé body\n")
    with daemon.smtp() as s:
        # smtplib adds SMTPUTF8 and BODY=8BITMIME for non-ASCII addresses.
        s.send_message(msg)
    (message,) = daemon.spool_messages()
    assert message["smtputf8"] is True
    assert message["sender"] == "jörg@client.test.example"
    assert message["recipients"][0]["address"] == "zoë@example.org"


def test_session_logs(daemon, client):
    """connect, queued, reject (core) and disconnect lines with counts."""
    client.ehlo()
    qid = queue_id(transaction(client, recipients=["bob@example.org",
                                                   "carol@example.net"]))
    client.cmd("MAIL FROM:<alice@client.test.example>")
    client.cmd("RCPT TO:<mallory@elsewhere.test>")
    client.cmd("QUIT")
    client.wait_closed()
    connect = daemon.wait_log(
        r"(?:^|\s)(\S+): connect from \[127\.0\.0\.1\]:(\d+) to listener smtp$")
    sid = connect.group(1)
    daemon.wait_log(
        rf"{qid}: queued from=<alice@client\.test\.example>, size=\d+, "
        rf"nrcpt=2, session={re.escape(sid)}, queue=active")
    daemon.wait_log(
        rf"{re.escape(sid)}: reject: RCPT from \[127\.0\.0\.1\]:\d+: 554 5\.7\.1 "
        r"<mallory@elsewhere\.test>: Relay access denied; "
        r"from=<alice@client\.test\.example> to=<mallory@elsewhere\.test> "
        rf"proto=ESMTP helo=<{re.escape(CLIENT_NAME)}> plugin=core")
    # Postfix writes "rcpt=2/3" when some failed; either form is fine.
    daemon.wait_log(
        rf"{re.escape(sid)}: disconnect from \[127\.0\.0\.1\]:\d+ ehlo=1 mail=2 "
        r"rcpt=(2/)?3 data=1 quit=1 commands=(7/)?8$")
