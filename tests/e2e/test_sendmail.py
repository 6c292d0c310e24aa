"""The sendmail entry point: `postilion sendmail` and a `sendmail` link,
as mailx, cron and scripts call it: recipients as arguments or -t, -f,
-F, -i, message on stdin, sendmail's exit codes."""

import os
import shutil
import subprocess

from delivery import (delivery_config, maildir_of, parse, wait_messages,
                      wait_queue_empty)
from harness import BUILD

POSTILION = BUILD / "tools" / "postilion"


def sendmail(daemon, args, stdin: bytes, program=None):
    argv = ([str(program)] if program else
            [str(POSTILION), "-c", str(daemon.conf_path), "sendmail"])
    env = dict(os.environ)
    proc = subprocess.run(argv + list(args), input=stdin,
                          capture_output=True, timeout=20, env=env)
    return proc.returncode, proc.stderr.decode()


def test_recipients_on_command_line(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    rc, err = sendmail(d, ["-f", "root@example.org", "-F", "Cron Daemon",
                           "bob@example.org"],
                       b"Subject: cron\n\nline\n.\nafter the dot\n")
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    msg = parse(raw)
    assert msg["Return-Path"] == "<root@example.org>"
    assert msg["Subject"] == "cron"
    (sender,) = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Cron Daemon",
                                                       "root@example.org")
    assert msg["Date"]
    assert raw.endswith(b"line\n")  # a lone dot ends input without -i


def test_dash_t_and_i(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    message = (b"From: me@example.org\nTo: Bob <bob@example.org>\n"
               b"Bcc: alice@example.org\nSubject: t\n\n.\nstill body\n")
    rc, err = sendmail(d, ["-t", "-oi"], message)
    assert rc == 0, err
    (bob,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    (alice,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    assert b"Bcc:" not in bob and b"Bcc:" not in alice
    assert bob.endswith(b".\nstill body\n")


def test_exit_codes_and_link(postiliond, tmp_path):
    d = postiliond(config=delivery_config(tmp_path))
    rc, err = sendmail(d, ["nobody@example.org"], b"Subject: x\n\nx\n")
    assert rc == 67 and "User unknown" in err
    # One unknown recipient among others: reported, and the others still
    # get the message (cron's MAILTO="root,typo").
    rc, err = sendmail(d, ["bob@example.org", "nobody@example.org",
                           "alice@example.org"], b"Subject: some\n\nx\n")
    assert rc == 67 and "<nobody@example.org>" in err and "User unknown" in err
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_messages(maildir_of(tmp_path, "alice@example.org"))
    rc, err = sendmail(d, [], b"Subject: x\n\nx\n")
    assert rc == 64
    rc, err = sendmail(d, ["-Q"], b"")
    assert rc == 64
    # The installed name: a link called sendmail reads the default config,
    # which does not exist here: a configuration error (78).
    link = tmp_path / "sendmail"
    link.symlink_to(POSTILION)
    rc, err = sendmail(d, ["bob@example.org"], b"x\n", program=link)
    assert rc == 78 and "/etc/postilion/postilion.conf" in err
    d.stop()
    rc, err = sendmail(d, ["bob@example.org"], b"Subject: x\n\nx\n")
    assert rc == 69 and "cannot reach postiliond" in err


def test_program_output_is_mended_not_refused(postiliond, tmp_path):
    """What cron mails is what a command printed: a progress bar's bare
    CRs, lines far over 998 octets, a NUL. SMTP refuses all three, and a
    refused cron mail is lost, so sendmail mends them (as Postfix takes
    such mail): a CR breaks the line, a long line is cut (before a blank,
    else with a space put in), a NUL goes; nothing else changes."""
    d = postiliond(config=delivery_config(tmp_path))
    words = b" ".join(b"word%04d" % i for i in range(400))  # 3,599 octets
    solid = b"z" * 2500
    dotted = b"." + b"d" * 997  # 998 octets: fits; the stuffed dot is free
    subject = b"Subject: " + b" ".join([b"s" * 50] * 30)  # 1,539 octets
    message = (subject + b"\n\n"
               b"  0%\r 50%\r100%\rdone\n" + words + b"\n" + solid + b"\n" +
               dotted + b"\n" + b"a\x00b\n" + b"last\r\r\n")
    rc, err = sendmail(d, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                           "bob@example.org"], message)
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert all(len(line) <= 998 for line in raw.split(b"\n"))
    assert b"\r" not in raw and b"\x00" not in raw
    msg = parse(raw)
    # The field is folded at blanks; unfolded, it is what was sent.
    assert msg["Subject"] == subject[len(b"Subject: "):].decode()
    body = raw.split(b"\n\n", 1)[1]
    assert body.startswith(b"  0%\n 50%\n100%\ndone\n")
    lines = body.split(b"\n")
    # The words: cut before a space, which starts the next line.
    word_lines = lines[4:8]
    assert b"".join(word_lines) == words
    assert all(line.startswith(b" ") for line in word_lines[1:])
    # One word of 2,500 octets: 998, then " " + 997, then " " + the rest.
    assert lines[8:11] == [solid[:998], b" " + solid[998:1995],
                           b" " + solid[1995:]]
    assert lines[11] == dotted
    assert lines[12:14] == [b"ab", b"last"]


def test_size_declared_so_too_big_is_refused_before_sending(postiliond,
                                                          tmp_path):
    config = delivery_config(tmp_path)
    config["server"] = {"max_message_size": "64K"}
    d = postiliond(config=config)
    rc, err = sendmail(d, ["bob@example.org"],
                       b"Subject: big\n\n" + (b"x" * 100 + b"\n") * 1000)
    assert rc == 65 and "message refused: 552 5.3.4" in err, err
    rc, err = sendmail(d, ["bob@example.org"],
                       b"Subject: small\n\n" + (b"x" * 100 + b"\n") * 100)
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert b"Subject: small" in raw


def test_dash_t_reads_addresses_not_display_names(postiliond, tmp_path):
    """PHP's mail() calls `sendmail -t -i`. The recipients are the fields'
    addresses: one that appears only in a display name or a comment gets
    nothing."""
    d = postiliond(config=delivery_config(
        tmp_path, mailboxes=("bob@example.org", "alice@example.org",
                             "carol@example.org")))
    message = (b"From: me@example.org\n"
               b"To: \"bob@example.org via list\" <alice@example.org>\n"
               b"Cc: carol@example.org (not bob@example.org),\n"
               b" friends: ;\n"
               b"Subject: t\n\nbody\n")
    rc, err = sendmail(d, ["-t", "-i"], message)
    assert rc == 0, err
    wait_messages(maildir_of(tmp_path, "alice@example.org"))
    wait_messages(maildir_of(tmp_path, "carol@example.org"))
    wait_queue_empty(d)
    assert not list((maildir_of(tmp_path, "bob@example.org") / "new").glob("*"))


def test_bs_speaks_smtp_on_stdin_and_stdout(postiliond, tmp_path):
    """`sendmail -bs -i` is how Symfony Mailer and Laravel submit: SMTP
    over the pipe. The daemon answers it, as any client on its listener."""
    d = postiliond(config=delivery_config(tmp_path))
    proc = subprocess.Popen(
        [str(POSTILION), "-c", str(d.conf_path), "sendmail", "-bs", "-i"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        def reply():
            lines = []
            while True:
                line = proc.stdout.readline()
                assert line, f"the pipe closed after {lines!r}"
                lines.append(line)
                if line[3:4] != b"-":
                    return b"".join(lines)

        def cmd(line: bytes) -> bytes:
            proc.stdin.write(line + b"\r\n")
            proc.stdin.flush()
            return reply()

        assert reply().startswith(b"220 ")
        assert b"250-PIPELINING" in cmd(b"EHLO app.example.org")
        assert cmd(b"MAIL FROM:<app@example.org>").startswith(b"250 ")
        assert cmd(b"RCPT TO:<bob@example.org>").startswith(b"250 ")
        assert cmd(b"RCPT TO:<nobody@example.org>").startswith(b"550 5.1.1")
        assert cmd(b"DATA").startswith(b"354 ")
        assert cmd(b"Subject: via -bs\r\n\r\n..dot\r\n.").startswith(b"250 ")
        assert cmd(b"QUIT").startswith(b"221 ")
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert parse(raw)["Subject"] == "via -bs"
    assert raw.endswith(b"\n.dot\n")


def test_other_modes_are_not_read_as_mail(postiliond, tmp_path):
    """-bp lists the queue (mailq), -q flushes it, -bi has nothing to
    build, and a mode we lack (-bd, -bv) is refused at once: none of them
    waits for a message on standard input."""
    d = postiliond(config=delivery_config(tmp_path))
    rc, err = sendmail(d, ["-bp"], b"")
    assert rc == 0, err
    rc, err = sendmail(d, ["-q"], b"")
    assert rc == 0, err
    rc, err = sendmail(d, ["-bi"], b"")
    assert rc == 0 and "reads" in err
    for mode in ("-bd", "-bv", "-bt"):
        rc, err = sendmail(d, [mode, "bob@example.org"], b"Subject: x\n\nx\n")
        assert rc == 64 and f"{mode} is not supported" in err
    assert not (maildir_of(tmp_path, "bob@example.org") / "new").exists()


def test_bs_with_swaks_pipe(postiliond, tmp_path):
    """The same through a real client: swaks --pipe starts the program
    and speaks SMTP to it, pipelining when offered."""
    if shutil.which("swaks") is None:
        raise RuntimeError("swaks is not installed: run scripts/setup-debian.sh")
    d = postiliond(config=delivery_config(tmp_path))
    pipe = f"{POSTILION} -c {d.conf_path} sendmail -bs"
    proc = subprocess.run(
        ["swaks", "--pipe", pipe, "--pipeline", "--helo", "app.example.org",
         "--from", "app@example.org", "--to", "bob@example.org,alice@example.org",
         "--timeout", "10"],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        env=dict(os.environ, HOME=str(tmp_path)))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
    assert "<-  250 2.0.0 Ok: queued as " in out
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_messages(maildir_of(tmp_path, "alice@example.org"))


def test_dsn_options(postiliond, tmp_path):
    """-N, -R and -V become NOTIFY, RET and ENVID (RFC 3461), as with
    Postfix's sendmail: here a success notice that names the envelope id
    and returns the header only."""
    d = postiliond(config=delivery_config(tmp_path))
    rc, err = sendmail(d, ["-f", "alice@example.org", "-N", "success,failure",
                           "-R", "hdrs", "-V", "job 42+x", "bob@example.org"],
                       b"Subject: dsn\n\nbody\n")
    assert rc == 0, err
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    (raw,) = wait_messages(maildir_of(tmp_path, "alice@example.org"))
    _, status, original = parse(raw).get_payload()
    per_message, per_rcpt = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "job 42+x"
    assert per_rcpt["Action"] == "delivered"
    assert original.get_content_type() == "text/rfc822-headers"
    for bad in (["-N", "never,success"], ["-N", "sometimes"],
                ["-R", "body"], ["-V", "x" * 101]):
        rc, err = sendmail(d, bad + ["bob@example.org"], b"Subject: x\n\nx\n")
        assert rc == 64 and "not a valid value" in err, (bad, err)


def test_line_breaks_never_reach_a_command(postiliond, tmp_path):
    """A header or argument that would put a line break into MAIL or RCPT
    (a second command smuggled behind the address) is refused by
    sendmail itself; a folded quoted local part is unfolded."""
    d = postiliond(config=delivery_config(tmp_path))
    rc, err = sendmail(d, ["-f", "a@example.org\r\nRCPT TO:<alice@example.org>",
                           "bob@example.org"], b"Subject: x\n\nx\n")
    assert rc == 65 and "line break" in err, err
    rc, err = sendmail(d, ["bob@example.org\nRCPT TO:<alice@example.org>"],
                       b"Subject: x\n\nx\n")
    assert rc == 67 and "line break" in err, err
    message = (b"To: \"x\n RCPT TO:<alice@example.org>\"@example.org,\n"
               b" bob@example.org\nSubject: t\n\nbody\n")
    rc, err = sendmail(d, ["-t"], message)
    assert rc == 67, err  # the odd local part is unknown; bob gets it
    wait_messages(maildir_of(tmp_path, "bob@example.org"))
    wait_queue_empty(d)
    assert not (maildir_of(tmp_path, "alice@example.org") / "new").exists()
