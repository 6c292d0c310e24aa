"""The core's Authentication-Results field (RFC 8601): rendered from the
auth.* results plugins store, authserv-id = [server] hostname, on top of
the message; fields a client sent with our authserv-id are forgeries and
are removed, with or without plugins; other servers' fields stay."""

import re

from harness import HOSTNAME, queue_id, split_message, transaction

FORGED = (f"Authentication-Results: {HOSTNAME.upper()};\r\n"
          f"\tspf=pass smtp.mailfrom=paypal.example\r\n")
FORGED_COMMENTED = (f"Authentication-Results: (looks legit) \"{HOSTNAME}\" 1;"
                    f" dkim=pass header.d=bank.example\r\n")
FOREIGN = ("Authentication-Results: mx.upstream.example;\r\n"
           "\tdkim=pass header.d=upstream.example\r\n")
LOOKALIKE = (f"Authentication-Results: {HOSTNAME}.evil.example; none\r\n")


def message_with(*fields: str) -> bytes:
    return ("".join(fields) + "Subject: authres\r\n\r\nbody\r\n").encode()


def fields(daemon, qid) -> list[tuple[str, str]]:
    (m,) = daemon.spool_messages(id=qid)
    return split_message(m["content"])[0]


def authres_values(headers) -> list[str]:
    return [re.sub(r"\r\n\s+", " ", v) for n, v in headers
            if n.lower() == "authentication-results"]


def test_forged_fields_removed_without_plugins(daemon, client):
    client.ehlo()
    qid = queue_id(transaction(client, message=message_with(
        FORGED, FOREIGN, FORGED_COMMENTED, LOOKALIKE)))
    values = authres_values(fields(daemon, qid))
    assert values == [
        "mx.upstream.example; dkim=pass header.d=upstream.example",
        f"{HOSTNAME}.evil.example; none"]
    daemon.wait_log(rf"{qid}: removed a forged Authentication-Results")


def test_no_field_without_results(daemon, client):
    client.ehlo()
    qid = queue_id(transaction(client, message=message_with(FOREIGN)))
    headers = fields(daemon, qid)
    assert headers[0][0] == "Received"
    assert authres_values(headers) == [
        "mx.upstream.example; dkim=pass header.d=upstream.example"]


def test_results_rendered_and_forgery_removed(postiliond):
    d = postiliond(plugins=["testresults"])
    with d.connect() as c:
        c.ehlo()
        qid = queue_id(transaction(c, message=message_with(FORGED, FOREIGN)))
    headers = fields(d, qid)
    assert headers[0][0] == "Authentication-Results"
    assert authres_values(headers) == [
        f'{HOSTNAME}; testresults=pass reason="test plugin"',
        "mx.upstream.example; dkim=pass header.d=upstream.example"]
