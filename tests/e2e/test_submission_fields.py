"""Date: and Message-ID: for submitted mail (issue 17, item 6): a client
that may relay (here an internal network of the relay plugin; an
authenticated one is the same case in the core) gets the missing fields
added, as Postfix's cleanup does for local clients; fields it sent stay
as they are; mail from the outside is left untouched."""

import re

import pytest

from delivery import delivery_config, maildir_of, parse, wait_messages
from harness import BUILD, PLUGIN_DIR, transaction

RELAY_PATH = [str(BUILD / "plugins" / "relay"), str(PLUGIN_DIR)]


def daemon_with(postiliond, tmp_path, internal):
    config = delivery_config(tmp_path)
    config.update({
        "plugins": {"path": RELAY_PATH},
        "plugin:relay": {"internal_networks": internal,
                         "reject_unknown_sender_domain": "false"},
    })
    return postiliond(config=config, plugins=["relay"])


def send(d, message):
    with d.connect() as c:
        c.ehlo("client.example.org")
        assert transaction(c, sender="carol@elsewhere.example",
                           message=message).code == 250


@pytest.mark.parametrize("internal", [True, False])
def test_missing_date_and_message_id(postiliond, tmp_path, internal):
    d = daemon_with(postiliond, tmp_path,
                    "127.0.0.1/32" if internal else "192.0.2.0/24")
    send(d, b"From: <carol@elsewhere.example>\r\nSubject: bare\r\n\r\nhi\r\n")
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    message = parse(raw)
    if not internal:
        assert message["Date"] is None and message["Message-ID"] is None
        return
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"<\d{14}\.[0-9A-Z]+@mx\.test\.example>",
                        message["Message-ID"])
    # Added at the end of the header block, after the client's fields.
    head = raw.split(b"\n\n", 1)[0].decode()
    assert head.index("Subject:") < head.index("Date:") < \
        head.index("Message-ID:")


def test_fields_the_client_sent_are_kept(postiliond, tmp_path):
    d = daemon_with(postiliond, tmp_path, "127.0.0.1/32")
    send(d, b"Subject: dated\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Message-ID: <mine@client.example.org>\r\n\r\nhi\r\n")
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    message = parse(raw)
    assert message["Message-ID"] == "<mine@client.example.org>"
    assert raw.count(b"\nDate: ") == 1
    assert b"\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n" in raw
    assert raw.count(b"\nMessage-ID: ") == 1
