"""Bad configuration is refused with one message that names the file, the
group and key (and the line), what was expected, and a non-zero exit; both
at start and with --check.  Also --version, --check on a good file, and
conf.d drop-ins."""

import re
import socket
import subprocess

import pytest

import harness
from harness import HOSTNAME, render_config, run_cli

MODES = {"start": ["-f", "-c"], "check": ["--check", "-c"]}


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of `text` containing `needle`."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the config")


def run(mode: str, path, timeout: float = 10.0):
    code, out, err = run_cli([*MODES[mode], str(path)], timeout=timeout)
    return code, out + err


def message_line(output: str, path) -> str:
    """The one line of output that names the config file."""
    lines = [l for l in output.splitlines() if str(path) in l]
    assert lines, f"no line names {path}:\n{output}"
    return lines[0]


@pytest.fixture
def conf(postiliond):
    """A not-started daemon whose config the test edits before running."""
    return postiliond(start=False)


def write(daemon, overrides=None, extra: str = "") -> str:
    daemon.config = harness.merge_config(daemon.config, overrides)
    text = render_config(daemon.config) + extra
    daemon.write_config(text)
    return text


# --- the good case --------------------------------------------------------


def test_version():
    code, out, err = run_cli(["--version"])
    assert code == 0
    assert re.search(r"postiliond\b.*\b0\.1\.0\b", out + err)


def test_check_good_config(conf):
    write(conf)
    code, output = run("check", conf.conf_path)
    assert code == 0, output
    # --check does not start a listener.
    assert conf.port not in harness.listening_ports()


def test_long_options(conf):
    write(conf)
    code, out, err = run_cli(["--check", "--config", str(conf.conf_path)])
    assert code == 0, out + err
    conf.start()
    with conf.connect() as c:
        assert c.greeting.code == 220


# --- bad files ------------------------------------------------------------

UNKNOWN = {
    # name: (overrides, extra text, words the message must hold, line needle)
    "group": (None, "[bogus]\nkey = 1\n", ["bogus"], "[bogus]"),
    "server-key": ({"server": {"colour": "blue"}}, "", ["server", "colour"], "colour"),
    "listener-key": ({"listener:smtp": {"colour": "blue"}}, "",
                     ["listener:smtp", "colour"], "colour"),
    "dns-key": ({"dns": {"colour": "blue"}}, "", ["dns", "colour"], "colour"),
    "plugins-key": ({"plugins": {"colour": "blue"}}, "", ["plugins", "colour"], "colour"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", UNKNOWN, ids=list(UNKNOWN))
def test_unknown_group_or_key(conf, case, mode):
    overrides, extra, words, needle = UNKNOWN[case]
    text = write(conf, overrides, extra)
    code, output = run(mode, conf.conf_path)
    assert code != 0
    line = message_line(output, conf.conf_path)
    assert f"{conf.conf_path}:{line_of(text, needle)}" in line, line
    for word in words:
        assert word in line, line
    assert conf.port not in harness.listening_ports()


WRONG = {
    # name: (group, key, value)
    "max_recipients": ("server", "max_recipients", "lots"),
    "negative": ("server", "max_errors", "-3"),
    "size": ("server", "max_message_size", "big"),
    "duration": ("server", "timeout_command", "soon"),
    "address-no-port": ("listener:smtp", "address", "127.0.0.1"),
    "address-bad-port": ("listener:smtp", "address", "127.0.0.1:99999"),
    "mode": ("listener:smtp", "mode", "fancy"),
    "boolean": ("listener:smtp", "require_tls", "maybe"),
    "dnssec": ("dns", "dnssec", "perhaps"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", WRONG, ids=list(WRONG))
def test_wrong_value(conf, case, mode):
    group, key, value = WRONG[case]
    text = write(conf, {group: {key: value}})
    code, output = run(mode, conf.conf_path)
    assert code != 0
    line = message_line(output, conf.conf_path)
    assert f"{conf.conf_path}:{line_of(text, key + ' =')}" in line, line
    assert group in line and key in line and value in line, line
    assert re.search(r"expect|must|should|valid", line, re.I), line


@pytest.mark.parametrize("mode", MODES)
def test_missing_file(tmp_path, mode):
    path = tmp_path / "nowhere.conf"
    code, output = run(mode, path)
    assert code != 0
    message_line(output, path)


@pytest.mark.parametrize("mode", MODES)
def test_directory_as_file(tmp_path, mode):
    code, output = run(mode, tmp_path)
    assert code != 0
    message_line(output, tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_not_a_keyfile(conf, mode):
    conf.write_config("[server]\nhostname = x\nthis line is not a key\n")
    code, output = run(mode, conf.conf_path)
    assert code != 0
    message_line(output, conf.conf_path)


@pytest.mark.parametrize("mode", MODES)
def test_plugin_not_found(conf, mode):
    text = write(conf, {"plugins": {"path": str(harness.PLUGIN_DIR),
                                    "load": ["nosuchplugin"]}})
    code, output = run(mode, conf.conf_path)
    assert code != 0
    line = message_line(output, conf.conf_path)
    assert "nosuchplugin" in line and "load" in line, line
    assert f"{conf.conf_path}:{line_of(text, 'load =')}" in line, line


def test_port_in_use(conf):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        text = write(conf, {"listener:smtp": {"address": f"127.0.0.1:{port}"}})
        code, output = run("start", conf.conf_path)
    assert code != 0
    line = message_line(output, conf.conf_path)
    assert "listener:smtp" in line and "address" in line, line
    assert re.search(r"in use", line, re.I), line
    assert f"{conf.conf_path}:{line_of(text, 'address =')}" in line, line


def test_bad_config_never_listens(conf):
    """The daemon exits before binding anything: a half-configured daemon
    never serves."""
    write(conf, {"server": {"max_recipients": "lots"}})
    conf.start(wait=False)
    assert conf.wait_exit(10) != 0
    assert conf.port not in harness.listening_ports()


# --- conf.d ---------------------------------------------------------------


def dropin(conf, name: str, text: str):
    directory = conf.conf_path.parent / "conf.d"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory / name


def test_dropin_overrides_main_file(conf):
    write(conf, {"server": {"banner": "from the main file"}})
    dropin(conf, "10-banner.conf", "[server]\nbanner = from 10\n")
    dropin(conf, "20-banner.conf", "[server]\nbanner = from 20\n")
    dropin(conf, "README", "not a config file\n")
    dropin(conf, "05-old.conf.dpkg-old", "[bogus]\n")
    conf.start()
    with conf.connect() as c:
        assert c.greeting.last == f"220 {HOSTNAME} from 20"


def test_dropin_adds_listener(conf):
    write(conf)
    port = harness.free_port()
    dropin(conf, "50-submission.conf",
           f"[listener:submission]\naddress = 127.0.0.1:{port}\n")
    conf.ports["submission"] = port
    conf.start()
    with conf.connect("submission") as c:
        assert c.greeting.code == 220
    conf.wait_log(r"connect from \[127\.0\.0\.1\]:\d+ to listener submission$")


@pytest.mark.parametrize("mode", MODES)
def test_dropin_error_names_the_dropin(conf, mode):
    write(conf)
    path = dropin(conf, "30-bad.conf", "[server]\n\nmax_recipients = lots\n")
    code, output = run(mode, conf.conf_path)
    assert code != 0
    line = message_line(output, path)
    assert f"{path}:3" in line and "max_recipients" in line, line


def test_check_reads_dropins(conf):
    write(conf)
    dropin(conf, "10-ok.conf", "[server]\nmax_recipients = 10\n")
    code, output = run("check", conf.conf_path)
    assert code == 0, output


# --- the shipped development configuration ---------------------------------


def test_dev_config_is_valid(tmp_path):
    """etc/postilion-dev.conf (rendered as scripts/dev-run.sh does, with the
    example plugin compiled, the throwaway certificate and SASL user made
    as it does, the first-party plugins from this build) passes --check."""
    root, build = tmp_path / "root", tmp_path / "build"
    plugin_dir = build / "sdk" / "examples" / "hello"
    plugin_dir.mkdir(parents=True)
    (build / "plugins").symlink_to(harness.BUILD / "plugins")
    var = root / "var"
    for sub in ("spool", "mail", "tls"):
        (var / sub).mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(var / "tls" / "key.pem"),
                    "-out", str(var / "tls" / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["saslpasswd2", "-p", "-c", "-f", str(var / "sasldb2"),
                    "-u", "example.org", "dev"], input=b"secret", check=True,
                   timeout=60)
    cflags = subprocess.run(["pkg-config", "--cflags", "glib-2.0", "gio-2.0"],
                            capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-std=gnu11", "-shared", "-fPIC", "-fvisibility=hidden",
                    "-I", str(harness.REPO / "sdk"), *cflags,
                    "-o", str(plugin_dir / "hello.so"),
                    str(harness.REPO / "sdk" / "examples" / "hello" / "hello.c"),
                    "-L", str(harness.BUILD), "-lpostilion"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    template = (harness.REPO / "etc" / "postilion-dev.conf").read_text()
    conf = root / "var" / "postilion-dev.conf"
    conf.write_text(template.replace("@ROOT@", str(root)).replace("@BUILD@", str(build)))
    code, output = run("check", conf)
    assert code == 0, output
