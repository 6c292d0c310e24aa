"""postilion.conf(5) lists every key of every shipped plugin (issue 17,
item 10).  The keys come from the plugins themselves: each built plugin
under BUILD/plugins is loaded by `postiliond --check` with an unknown key,
and its refusal names every key it accepts ("expected one of: ...").  Each
must be a `.B KEY` paragraph tag in the plugin's own `.SS "[plugin:NAME]"`
section of doc/postilion.conf.5 (a heading such as "[plugin:milter] and
[plugin:milter:NAME]" counts; the core's keys priority, timeout, on_timeout,
on_error and enable are in "[plugin:NAME]")."""

import re

import pytest

from harness import BUILD, REPO, free_port, run_cli

MANUAL = REPO / "doc" / "postilion.conf.5"
CORE_KEYS = {"priority", "timeout", "on_timeout", "on_error", "enable"}
PLUGINS = sorted(p.name for p in (BUILD / "plugins").iterdir()
                 if (p / f"{p.name}.so").exists())


def accepted_keys(tmp_path, name):
    conf = tmp_path / f"{name}.conf"
    conf.write_text(
        f"[server]\nhostname = mx.example.org\nspool = {tmp_path}/spool\n"
        f"[listener:smtp]\naddress = 127.0.0.1:{free_port()}\n"
        f"[plugins]\npath = {BUILD / 'plugins' / name}\nload = {name}\n"
        f"[plugin:{name}]\nno_such_key_here = 1\n")
    rc, out, err = run_cli(["--check", "-c", str(conf)])
    match = re.search(r"no_such_key_here: unknown key; expected one of: "
                      r"([a-z0-9_, ]+);", out + err)
    assert rc != 0 and match, f"{name}: {out}{err}"
    return set(match.group(1).split(", ")) - CORE_KEYS


def manual_section(name):
    text = MANUAL.read_text()
    heading = re.search(rf'^\.SS "\[plugin:{re.escape(name)}\]( and [^"\n]*)?"$',
                        text, re.M)
    assert heading, f'doc/postilion.conf.5 has no .SS "[plugin:{name}]"'
    start = heading.start()
    end = text.find("\n.SS ", start + 1)
    return text[start:end if end >= 0 else len(text)]


@pytest.mark.parametrize("name", PLUGINS)
def test_every_plugin_key_is_in_the_manual(tmp_path, name):
    section = manual_section(name)
    tagged = set(re.findall(r"^\.TP\n\.B (\S+)$", section, re.M))
    missing = accepted_keys(tmp_path, name) - tagged
    assert not missing, (f"[plugin:{name}] keys missing from "
                         f"doc/postilion.conf.5: {sorted(missing)}")


def test_the_core_plugin_keys_are_in_the_manual():
    section = manual_section("NAME")
    tagged = set(re.findall(r"^\.TP\n\.B (\S+)$", section, re.M))
    assert CORE_KEYS <= tagged
