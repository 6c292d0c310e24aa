"""postfix_peer.py - Debian's Postfix as a real peer of postiliond in the
interoperability tests, run privately on loopback.

It reuses the benchmark's private instance (bench/mta.py: `postfix -c DIR`
with its own config, queue and data directories in a directory of its
own under /tmp, smtpd on 127.0.0.1 only, no chroot, no pickup, the
system instance never touched) in two roles:

    upstream = PostfixPeer("relay", port, next_port=POSTILION_PORT)
        relays everything it receives to [127.0.0.1]:next_port (us);
    downstream = PostfixPeer("hold", port)
        receives mail for bench.test and holds it in its queue, where
        held() reads each message's envelope with postcat.

Postfix needs root (it changes to its mail_owner); the tests that use it
skip otherwise, and when Postfix is not installed.  Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import mta  # noqa: E402  (bench/mta.py)

DOMAIN = mta.BENCH_DOMAIN  # "bench.test": what the downstream receives

AVAILABLE = os.geteuid() == 0 and shutil.which("postfix") is not None
WHY_NOT = "needs root and Debian's postfix package (scripts/setup-debian.sh)"


class PostfixPeer:
    """A private Postfix on 127.0.0.1:port (see the module comment)."""

    def __init__(self, mode: str, port: int, next_port: int | None = None,
                 extra_main: str = ""):
        # Postfix's daemons run as user postfix: pytest's 0700 temporary
        # directories are closed to them, so the instance lives in its own
        # directory under /tmp, removed on exit.
        self.base = Path(tempfile.mkdtemp(prefix="pst-pf-", dir="/tmp"))
        self.base.chmod(0o755)
        # the log is under the test's temporary directory, not /var
        extra = (f"maillog_file_prefixes = {self.base}\n"
                 "smtputf8_enable = yes\n"
                 "smtpd_relay_restrictions = permit_mynetworks, reject\n"
                 "maximal_queue_lifetime = 1h\n" + extra_main)
        self.postfix = mta.Postfix(str(self.base), mode, port,
                                   sink_port=next_port, extra_main=extra)
        self.port = port

    def enable_tls(self, cert: Path, key: Path) -> None:
        """Offers STARTTLS with this certificate (before the start; the
        files must be readable by Postfix: put them under self.base)."""
        self.postfix.extra_main += (f"smtpd_tls_security_level = may\n"
                                    f"smtpd_tls_cert_file = {cert}\n"
                                    f"smtpd_tls_key_file = {key}\n"
                                    "smtpd_tls_loglevel = 1\n")
        self.postfix.extra_master += ("tlsmgr    unix  -       -       n"
                                      "       1000?   1       tlsmgr\n")

    def __enter__(self) -> "PostfixPeer":
        self.postfix.setup()
        self.postfix.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.postfix.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    @property
    def maillog(self) -> Path:
        return self.base / "maillog"

    def log_text(self) -> str:
        return self.maillog.read_text(errors="replace") \
            if self.maillog.exists() else ""

    def wait_log(self, regex: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        pattern = re.compile(regex, re.M)
        while time.monotonic() < deadline:
            found = pattern.search(self.log_text())
            if found:
                return found.group(0)
            time.sleep(0.05)
        raise AssertionError(f"Postfix did not log /{regex}/ within "
                             f"{timeout} s; its log:\n{self.log_text()}")

    def held(self, count: int = 1, timeout: float = 10.0) -> list[str]:
        """`postcat -e` of each message in the hold queue, once there are
        `count` of them."""
        hold = Path(self.postfix.queue) / "hold"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = [p for p in hold.rglob("*") if p.is_file()]
            if len(files) >= count:
                return [subprocess.run(
                    ["postcat", "-c", self.postfix.etc, "-e", str(p)],
                    capture_output=True, text=True, timeout=10,
                    check=True).stdout for p in sorted(files)]
            time.sleep(0.05)
        raise AssertionError(f"Postfix held fewer than {count} messages "
                             f"within {timeout} s; its log:\n"
                             f"{self.log_text()}")
