"""Our sendmail as cron and mail(1) call it (issue 17), against a daemon
with the relay plugin whose internal_networks do NOT include loopback:

- cron's exact call, `sendmail -FCronDaemon -i -B8BITMIME -oem alice`,
  through a `sendmail` link whose configuration comes from
  $POSTILION_CONFIG: the bare name is qualified with our first domain,
  then the aliases apply; the session says EHLO with our host name (the
  relay plugin's HELO checks pass) and ends with QUIT;
- `-C FILE` selects the configuration, with mail(1)'s usual flags;
- s-nail (mail(1)) with its own default arguments, `-S mta=` pointing
  at the link;
- the message gets Date: and Message-ID:.
"""

import os
import shutil
import subprocess

import pytest

from delivery import delivery_config, maildir_of, parse, wait_messages
from harness import BUILD, PLUGIN_DIR, TestDnsServer

POSTILION = BUILD / "tools" / "postilion"
RELAY_PATH = [str(BUILD / "plugins" / "relay"), str(PLUGIN_DIR)]
S_NAIL = shutil.which("s-nail")

ZONE = """\
$TTL 300
$ORIGIN test.example.
@        IN SOA ns.test.example. hostmaster.test.example. 1 3600 600 86400 60
@        IN NS  ns.test.example.
ns       IN A   127.0.0.1
mx       IN A   127.0.0.1
"""


@pytest.fixture
def local_daemon(postiliond, tmp_path):
    """Delivers example.org into Maildirs; "alice" and "root" are aliases
    of bob; loopback is not an internal network."""
    zone = tmp_path / "test.example.zone"
    zone.write_text(ZONE)
    dns = TestDnsServer([zone])
    config = delivery_config(tmp_path, mailboxes=("bob@example.org",),
                             aliases="alice: bob\nroot: bob\n")
    config.update({
        "dns": {"nameservers": f"127.0.0.1@{dns.port}", "dnssec": "no"},
        "plugins": {"path": RELAY_PATH},
        "plugin:relay": {"internal_networks": "192.0.2.0/24"},
    })
    try:
        yield postiliond(config=config, plugins=["relay"])
    finally:
        dns.stop()


def sendmail_link(tmp_path):
    link = tmp_path / "bin" / "sendmail"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(POSTILION)
    return link


def run(argv, stdin: bytes, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "POSTILION_CONFIG"}
    env.update(env_extra or {})
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=20,
                          env=env)
    return proc.returncode, proc.stderr.decode(errors="replace")


def test_cron_call_through_the_link_and_the_environment(local_daemon,
                                                        tmp_path):
    d = local_daemon
    link = sendmail_link(tmp_path)
    # What Debian's cron runs for MAILTO=alice (cron/do_command.c).
    rc, err = run([str(link), "-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                   "alice"],
                  "Subject: Cron <root@host> run-parts\n\nüber 9000\n"
                  ".\nstill the body\n".encode(),
                  {"POSTILION_CONFIG": str(d.conf_path)})
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    message = parse(raw)
    assert message["Delivered-To"] == "bob@example.org"
    assert message["Return-Path"].endswith("@mx.test.example>")
    assert message["From"].addresses[0].display_name == "CronDaemon"
    assert message["Date"] and message["Message-ID"]
    assert raw.endswith("über 9000\n.\nstill the body\n".encode())
    d.wait_log(r"to=<bob@example\.org>, orig_to=<alice@example\.org>, "
               r"relay=maildir, .*status=sent")
    d.wait_log(r"disconnect from \[127\.0\.0\.1\]:\d+ ehlo=1 mail=1 rcpt=1 "
               r"data=1 quit=1 commands=5$")
    assert "lost connection" not in d.log_text()


def test_dash_c_selects_the_configuration(local_daemon, tmp_path):
    d = local_daemon
    link = sendmail_link(tmp_path)
    rc, err = run([str(link), "-C", str(d.conf_path), "-oi", "-odi",
                   "-f", "cron", "root"],
                  b"Subject: via -C\n\nbody\n")
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert parse(raw)["Return-Path"] == "<cron@mx.test.example>"
    # -C wins over the environment, which wins over the default file.
    missing = tmp_path / "missing.conf"
    rc, err = run([str(link), "-C", str(d.conf_path), "root"],
                  b"Subject: -C wins\n\nbody\n",
                  {"POSTILION_CONFIG": str(missing)})
    assert rc == 0, err
    rc, err = run([str(link), "root"], b"x\n",
                  {"POSTILION_CONFIG": str(missing)})
    assert rc == 78 and str(missing) in err


@pytest.mark.skipif(S_NAIL is None, reason="s-nail is not installed")
def test_mail_root_with_s_nail(local_daemon, tmp_path):
    d = local_daemon
    link = sendmail_link(tmp_path)
    rc, err = run([S_NAIL, "-n", "-S", f"mta={link}", "-S", "sendwait",
                   "-s", "disk space", "root"],
                  b"the disk is 91% full\n",
                  {"POSTILION_CONFIG": str(d.conf_path),
                   "HOME": str(tmp_path), "MAILRC": "/dev/null"})
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    message = parse(raw)
    assert message["Subject"] == "disk space"
    assert message["To"] == "root"
    assert message["Date"] and message["Message-ID"]
    d.wait_log(r"to=<bob@example\.org>, orig_to=<root@example\.org>, "
               r"relay=maildir, .*status=sent")


def test_the_first_plain_listener_is_used(postiliond, tmp_path):
    """A first listener that a local program cannot use as it is (here one
    that expects a PROXY header) is passed over for a plain one."""
    config = delivery_config(tmp_path, mailboxes=("bob@example.org",))
    config["listener:proxied"] = {"proxy_protocol": "true"}
    d = postiliond(config=config, listeners=("proxied", "smtp"))
    rc, err = run([str(POSTILION), "-c", str(d.conf_path), "sendmail",
                   "bob@example.org"], b"Subject: plain\n\nbody\n")
    assert rc == 0, err
    (raw,) = wait_messages(maildir_of(tmp_path, "bob@example.org"))
    assert parse(raw)["Subject"] == "plain"
