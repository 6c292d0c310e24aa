"""`postilion plugins`: the plugin chains of the running daemon, asked over
its control socket (so a SIGHUP's new priorities show at once), a clear
error when the daemon is not running, and `--config-only` for the
configuration file without a daemon (through `postiliond --check -v`)."""

import re
import subprocess

from harness import BUILD

POSTILION = BUILD / "tools" / "postilion"
RELAY_PATH = str(BUILD / "plugins" / "relay")


def plugins(daemon, *args):
    proc = subprocess.run([str(POSTILION), "-c", str(daemon.conf_path),
                           "plugins", *args], capture_output=True, text=True,
                          timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def rows(out):
    """The chain table's rows: (listener, stage, priority, plugin)."""
    found = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and re.fullmatch(r"-?\d+", fields[2]):
            found.append(tuple(fields[:4]))
    return found


def relay_config(priority=None):
    config = {"plugins": {"path": RELAY_PATH, "load": ["relay"]}}
    if priority is not None:
        config["plugin:relay"] = {"priority": priority}
    return config


def test_running_daemon_chain_and_plugin_summary(postiliond):
    d = postiliond(config=relay_config(), listeners=("smtp", "submission"))
    code, out, err = plugins(d)
    assert code == 0, out + err
    table = rows(out)
    for listener in ("smtp", "submission"):
        for stage in ("connect", "auth", "mail", "rcpt"):
            assert (listener, stage, "0", "relay") in table, out
    line = next(l for l in out.splitlines() if l.startswith("smtp ")
                and " mail " in l)
    # version and description from the plugin's descriptor
    assert re.search(r"relay\s+1\.0\s+No open relay", line), line
    assert re.search(r"^relay\s+\S+\s+connect,auth,mail,rcpt$", out,
                     re.M), out


def test_shows_the_daemons_chain_after_reload(postiliond):
    d = postiliond(config=relay_config())
    mark = d.log_mark()
    d.reload(config={"plugin:relay": {"priority": 5}}, wait=0)
    d.wait_log(r"reload: new sessions use the configuration", since=mark)
    code, out, err = plugins(d)
    assert code == 0, out + err
    assert ("smtp", "rcpt", "5", "relay") in rows(out), out
    # A refused reload: the daemon keeps priority 5, whatever the file says.
    mark = d.log_mark()
    d.reload(config={"plugin:relay": {"priority": 9,
                                      "reject_relay_trick": "typo"}}, wait=0)
    d.wait_log(r"reload refused", since=mark)
    code, out, err = plugins(d)
    assert ("smtp", "rcpt", "5", "relay") in rows(out), out
    code, out, err = plugins(d, "--config-only")
    assert code != 0 and "reject_relay_trick" in err, out + err


def test_daemon_not_running_and_config_only(postiliond):
    d = postiliond(config=relay_config(priority=-3), start=False)
    d.write_config()
    code, out, err = plugins(d)
    assert code == 69, out + err  # EX_UNAVAILABLE
    assert "postiliond is not running" in err
    assert "--config-only" in err
    code, out, err = plugins(d, "--config-only")
    assert code == 0, out + err
    assert ("smtp", "mail", "-3", "relay") in rows(out), out


def test_no_plugins(postiliond):
    d = postiliond()
    code, out, err = plugins(d)
    assert code == 0, out + err
    assert "no plugins loaded" in out


def test_bad_option(postiliond):
    d = postiliond(start=False)
    d.write_config()
    code, out, err = plugins(d, "--bogus")
    assert code == 64 and "usage" in err
