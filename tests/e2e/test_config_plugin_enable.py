"""conf.d snippets that enable a plugin ([plugin:NAME] enable = true), as
the Debian plugin packages install them: the plugin loads without being
in [plugins] load; a snippet whose plugin is not installed (a removed
package) is a warning, not an error; --check, `postilion check-config`
and `postilion plugins` say which file loaded what; and the daemon tells
a service manager (NOTIFY_SOCKET) when it is ready, reloading, stopping."""

import os
import shutil
import signal
import socket
import subprocess

import pytest

from harness import BUILD, run_cli, scaled

POSTILION = BUILD / "tools" / "postilion"
RELAY_SO = BUILD / "plugins" / "relay" / "relay.so"


def dropin(daemon, name: str, text: str):
    directory = daemon.conf_path.parent / "conf.d"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory / name


def tool(daemon, *args):
    proc = subprocess.run([str(POSTILION), "-c", str(daemon.conf_path), *args],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def packaged(postiliond, tmp_path):
    """A daemon whose plugin directory holds relay.so, with relay enabled
    by a snippet and a second snippet for a plugin that is not there."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(RELAY_SO, plugins / "relay.so")
    d = postiliond(config={"plugins": {"path": str(plugins)}}, start=False)
    relay = dropin(d, "30-relay.conf",
                   "# installed by postilion-plugin-relay\n[plugin:relay]\n"
                   "enable = true\n#internal_networks = 127.0.0.0/8\n")
    gone = dropin(d, "50-gone.conf", "[plugin:gone]\nenable = true\n"
                  "timeout = 5s\n")
    d.write_config()
    return d, plugins, relay, gone


def test_snippet_enables_and_check_names_the_file(packaged):
    d, plugins, relay, gone = packaged
    loaded = f"plugin relay: loaded by {relay}:3 [plugin:relay] enable"
    skipped = (f"{gone}:2 [plugin:gone] enable = true: plugin \"gone\" is "
               f"not installed")
    code, out, err = run_cli(["--check", "-c", str(d.conf_path)])
    assert code == 0, out + err
    assert f"postiliond: {loaded}" in out, out
    assert f"postiliond: {skipped}" in out, out
    code, out, err = tool(d, "check-config")
    assert code == 0, out + err
    assert f"postilion: {loaded}" in out and skipped in out, out

    d.start()
    d.wait_log(r'plugin "gone" is not installed')
    code, out, err = tool(d, "plugins")
    assert code == 0, out + err
    assert any(line.split()[:1] == ["relay"] for line in out.splitlines()), out


def test_removed_plugin_is_left_out_on_reload(packaged):
    d, plugins, relay, gone = packaged
    d.start()
    code, out, _ = tool(d, "plugins")
    assert "relay" in out
    # apt remove: the .so goes, the snippet (a conffile) stays.
    (plugins / "relay.so").unlink()
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload: new sessions use the configuration", since=mark)
    d.wait_log(r'plugin "relay" is not installed', since=mark)
    code, out, err = tool(d, "plugins")
    assert code == 0 and "relay" not in out, out + err
    # ... and a fresh start works too.
    assert d.stop() == 0
    d.start()
    with d.smtp() as smtp:
        assert smtp.noop()[0] == 250


def test_enable_false_in_a_later_file_wins(packaged):
    d, plugins, relay, gone = packaged
    dropin(d, "99-local.conf", "[plugin:relay]\nenable = false\n")
    code, out, err = run_cli(["--check", "-c", str(d.conf_path)])
    assert code == 0 and "plugin relay" not in out, out + err


def test_load_still_requires_the_plugin(packaged):
    d, plugins, relay, gone = packaged
    d.config["plugins"]["load"] = ["gone"]
    d.write_config()
    code, out, err = run_cli(["--check", "-c", str(d.conf_path)])
    assert code != 0
    assert '[plugins] load: plugin "gone" not found' in out + err


def test_service_manager_notifications(postiliond, tmp_path):
    """READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP,
    STOPPING=1 on SIGTERM, as sd_notify(3) sends them."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(scaled(10))
        env = dict(os.environ, NOTIFY_SOCKET=str(path))
        d = postiliond(start=False)
        d.env = env
        d.start()
        ready = sock.recv(4096).decode()
        assert ready.startswith("READY=1\n") and "STATUS=" in ready, ready
        assert f"MAINPID={d.pid}" in ready, ready
        d.signal(signal.SIGHUP)
        assert sock.recv(4096).decode().startswith("RELOADING=1")
        assert sock.recv(4096).decode().startswith("READY=1")
        d.signal(signal.SIGTERM)
        assert sock.recv(4096).decode().startswith("STOPPING=1")
        assert d.wait_exit() == 0
