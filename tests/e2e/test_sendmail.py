"""The sendmail entry point: `postilion sendmail` and a `sendmail` link,
as mailx, cron and scripts call it: recipients as arguments or -t, -f,
-F, -i, message on stdin, sendmail's exit codes."""

import os
import subprocess

from delivery import delivery_config, maildir_of, parse, wait_messages
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
