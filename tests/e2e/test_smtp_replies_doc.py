"""Every SMTP reply the core and the relay plugin can send is listed in
their documentation (doc/smtp-replies.md, plugins/relay/README.md).

The replies are extracted from the C sources, not from a hand-kept list:
each call of a reply function (pst_session_reply, relay_refuse, ...) and
each static PstSmtpReply gives its code(s), enhanced code(s) (both sides
of a `?:` count) and the fixed start of its text (up to the first
conversion).  A pair "CODE X.Y.Z" and that text must appear in the doc.
No daemon needed; a new reply without a doc line fails here, naming the
file and line of the source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

AREAS = {
    # The server side only: core/deliver's texts are delivery diagnostics
    # (in logs and DSNs), not replies to SMTP clients.
    "core": (["core/session", "core/smtp", "core/hooks", "core/server"],
             "doc/smtp-replies.md"),
    "relay": (["plugins/relay"], "plugins/relay/README.md"),
    "milter": (["plugins/milter"], "plugins/milter/README.md"),
}

# Calls whose arguments are (…, code, enhanced, format, …), where code and
# enhanced may be `?:` choices, and every literal triple code, "enhanced",
# "text" (PstSmtpReply initializers, direct calls).
CALL = re.compile(r"\b(pst_session_reply|relay_refuse|session_append_reply|"
                  r"server_refuse|pst_call_set_reply)\s*\(")
TRIPLE = re.compile(r'(?<![\w.])([245]\d\d)\s*,\s*"([245]\.\d{1,3}\.\d{1,3})"'
                    r'\s*,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)')
CODE = re.compile(r"(?<![\w.])([245]\d\d)(?![\w.])")
ENHANCED = re.compile(r'"([245]\.\d{1,3}\.\d{1,3})"')
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text,
                  flags=re.S)


def arguments(src: str, start: int) -> str:
    """The text from `start` to the matching close of the call."""
    depth, i = 1, start
    while i < len(src) and depth:
        if src[i] in "({":
            depth += 1
        elif src[i] in ")}":
            depth -= 1
        elif src[i] == '"':
            i = STRING.match(src, i).end() - 1
        i += 1
    return src[start:i]


def fixed_text(text: str) -> str:
    """The text up to its first conversion, unescaped."""
    return text.split("%")[0].replace('\\"', '"').strip()


def replies(area: str):
    """(code, enhanced, fixed text, where) for each reply of `area`."""
    dirs, _ = AREAS[area]
    for directory in dirs:
        for path in sorted((ROOT / directory).glob("*.c")):
            if path.name.startswith(("test-", "fuzz-")):
                continue
            src = strip_comments(path.read_text())
            for triple in TRIPLE.finditer(src):
                text = "".join(STRING.findall(triple.group(3)))
                line = src.count("\n", 0, triple.start()) + 1
                yield (triple.group(1), triple.group(2),
                       fixed_text(text), f"{path.relative_to(ROOT)}:{line}")
            for call in CALL.finditer(src):
                args = arguments(src, call.end())
                enhanced = ENHANCED.findall(args)
                if not enhanced:
                    continue  # a wrapper's own definition, or no code
                # the format: the first string that is not an enhanced code
                texts = [s for s in STRING.findall(args)
                         if not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", s)]
                text = fixed_text(texts[0] if texts else "")
                head = args[:args.find('"')] if '"' in args else args
                codes = CODE.findall(head)
                line = src.count("\n", 0, call.start()) + 1
                where = f"{path.relative_to(ROOT)}:{line}"
                if len(codes) == len(enhanced):
                    # `a ? 556 : 550` with `a ? "5.1.10" : "5.7.27"`
                    pairs = zip(codes, enhanced)
                else:
                    pairs = [(c, e) for c in codes for e in enhanced]
                for code, enh in pairs:
                    if enh[0] == code[0]:
                        yield code, enh, text, where


def test_extractor_finds_the_known_replies():
    core = {(c, e) for c, e, _, _ in replies("core")}
    assert ("503", "5.5.1") in core and ("452", "4.5.3") in core
    relay = {(c, e) for c, e, _, _ in replies("relay")}
    assert ("556", "5.1.10") in relay and ("450", "4.1.2") in relay
    assert len(core) > 20 and len(relay) > 8


@pytest.mark.parametrize("area", sorted(AREAS))
def test_every_reply_is_documented(area):
    doc = (ROOT / AREAS[area][1]).read_text()
    flat = re.sub(r"\s+", " ", doc.replace("\\|", "|"))
    missing = []
    for code, enh, text, where in replies(area):
        if not re.search(rf"\b{code}[ -]{re.escape(enh)}\b", flat):
            missing.append(f"{where}: {code} {enh} {text!r}: code not listed")
        elif text and len(text) > 3 and text not in flat:
            missing.append(f"{where}: {code} {enh} {text!r}: text not listed")
    assert not missing, (f"replies missing from {AREAS[area][1]}:\n"
                         + "\n".join(missing))
