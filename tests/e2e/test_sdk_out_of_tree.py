"""The SDK promise: a plugin builds out of tree with the installed SDK alone
(header, libpostilion.so, postilion-plugin.pc found by pkg-config) and
loads into the daemon.

The build under test is installed with `meson install --destdir` into a
staging directory; sdk/examples/hello is copied out of the repository and
built there, once with its own meson.build and once with a bare compiler
command line, both configured only through pkg-config pointed at the
staging directory (PKG_CONFIG_PATH, PKG_CONFIG_SYSROOT_DIR).  The plugin is
then loaded into postiliond and its hooks are seen working.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import harness
from harness import queue_id, scaled, split_message, transaction

EXAMPLE = harness.REPO / "sdk" / "examples" / "hello"


def run(args, env=None, cwd=None, timeout=120.0):
    proc = subprocess.run([str(a) for a in args], env=env, cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=scaled(timeout))
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
        f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def system_pc_dirs() -> list[str]:
    """pkg-config's default search path without /usr/local, so an SDK
    installed on this machine cannot stand in for the staged one."""
    out = run(["pkg-config", "--variable", "pc_path", "pkg-config"])
    return [d for d in out.strip().split(":")
            if d and not d.startswith("/usr/local")]


def mirror_host_paths(flags: str, sysroot: Path) -> None:
    """PKG_CONFIG_SYSROOT_DIR prefixes every -I/-L, GLib's too: make those
    the staging directory lacks point back at the host's."""
    for match in re.finditer(r"(?:^|\s)-[IL](\S+)", flags):
        staged = Path(match.group(1))
        if staged.exists() or not str(staged).startswith(str(sysroot)):
            continue
        host = Path("/") / staged.relative_to(sysroot)
        if host.is_dir():
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.symlink_to(host)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """The staged install and the pkg-config environment that finds it."""
    root = tmp_path_factory.mktemp("sdk")
    stage = root / "stage"
    run(["meson", "install", "-C", harness.BUILD, "--destdir", stage,
         "--no-rebuild", "--quiet"], timeout=300)
    pcs = list(stage.rglob("postilion-plugin.pc"))
    assert len(pcs) == 1, f"postilion-plugin.pc installed as {pcs}"
    headers = list(stage.rglob("postilion/plugin.h"))
    assert headers, "plugin.h not installed"
    env = dict(os.environ,
               PKG_CONFIG_PATH=str(pcs[0].parent),
               PKG_CONFIG_LIBDIR=":".join(system_pc_dirs()),
               PKG_CONFIG_SYSROOT_DIR=str(stage))
    flags = run(["pkg-config", "--cflags", "--libs", "postilion-plugin"], env=env)
    mirror_host_paths(flags, stage)
    return {"root": root, "stage": stage, "env": env, "pc": pcs[0],
            "header": headers[0]}


@pytest.fixture(scope="module")
def hello_meson(sdk):
    """hello.so built by the example's meson.build, out of the tree."""
    source = sdk["root"] / "hello-src"
    shutil.copytree(EXAMPLE, source)
    build = sdk["root"] / "hello-build"
    run(["meson", "setup", build, source], env=sdk["env"])
    run(["ninja", "-C", build], env=sdk["env"])
    return build


def test_pkg_config_points_at_the_staged_sdk(sdk):
    cflags = run(["pkg-config", "--cflags", "postilion-plugin"], env=sdk["env"])
    libs = run(["pkg-config", "--libs", "postilion-plugin"], env=sdk["env"])
    assert f"-I{sdk['header'].parent.parent}" in cflags.split()
    assert "-lpostilion" in libs.split()
    assert "glib-2.0" in cflags
    assert str(harness.REPO) not in cflags + libs


def test_example_builds_with_its_meson_build(sdk, hello_meson):
    module = hello_meson / "hello.so"
    assert module.is_file()
    # Compiled against the staged header, nothing from the source tree.
    commands = json.loads((hello_meson / "compile_commands.json").read_text())
    text = " ".join(c["command"] for c in commands)
    assert str(sdk["stage"]) in text
    assert str(harness.REPO) not in text
    # One exported symbol of ours: the descriptor.
    symbols = run(["nm", "-D", "--defined-only", module])
    exported = {line.split()[-1] for line in symbols.splitlines()
                if line.strip() and line.split()[-2] in "BDTRV"}
    assert "postilion_plugin" in exported
    assert not [s for s in exported if s.startswith("pst_")], exported
    assert not [s for s in exported if s.startswith("hello_")], exported


def test_example_builds_with_a_compiler_and_pkg_config(sdk):
    flags = run(["pkg-config", "--cflags", "--libs", "postilion-plugin"],
                env=sdk["env"]).split()
    out = sdk["root"] / "cc" / "hello.so"
    out.parent.mkdir()
    run(["cc", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror",
         "-o", out, EXAMPLE / "hello.c", *flags], env=sdk["env"])
    assert out.is_file()


def test_out_of_tree_plugin_loads_and_works(postiliond, hello_meson):
    daemon = postiliond(
        plugins=["hello"],
        config={"plugins": {"path": [str(hello_meson)]},
                "plugin:hello": {"greeting": "Hi from out of tree",
                                 "refuse_helo": ["spammer.example",
                                                 "*.invalid"]}})
    daemon.wait_log(r'plugin hello: ready: greeting "Hi from out of tree"')
    with daemon.connect() as client:
        assert client.cmd("EHLO spammer.example").last == \
            "550 5.7.1 Hello plugin says no"
        assert client.cmd("HELO host.invalid").code == 550
        assert client.ehlo().code == 250
        qid = queue_id(transaction(client))
    [message] = daemon.spool_messages(id=qid)
    headers = dict(split_message(message["content"])[0])
    assert headers["X-Hello"] == "Hi from out of tree"
    assert "hello.greeted" in str(message["results"])
    assert daemon.stop() == 0
    assert "plugin hello: bye" in daemon.log_text()
