"""powercut.py - mounting powercutfs.py (the power-cut and failing-disk
FUSE file system) from a test: PowerCutFS(backing, mountpoint, snapshot)
mounts it, .cut() cuts the power, .faults(rules) injects EIO, .unmount().
fuse_usable() says whether this machine can run it (root, /dev/fuse,
python3-pyfuse3)."""

import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path

from delivery import wait_for
from harness import REPO

FS = REPO / "tests" / "e2e" / "powercutfs.py"


def fuse_usable() -> bool:
    if importlib.util.find_spec("pyfuse3") is None or \
            importlib.util.find_spec("trio") is None:
        return False
    return os.geteuid() == 0 and os.path.exists("/dev/fuse")


def mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path)
               for line in Path("/proc/mounts").read_text().splitlines())


class PowerCutFS:
    """One mount of powercutfs.py over `backing`; cut() writes the
    surviving disk to `snapshot`."""

    def __init__(self, backing: Path, mountpoint: Path, snapshot: Path):
        self.mountpoint = mountpoint
        self.snapshot = snapshot
        self.log = open(mountpoint.parent / "powercutfs.log", "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(FS), str(backing), str(mountpoint),
             str(snapshot)], stdout=self.log, stderr=self.log)
        wait_for(lambda: mounted(mountpoint) or self.proc.poll() is not None,
                 10, "the FUSE mount")
        assert self.proc.poll() is None, "powercutfs.py exited"

    def cut(self) -> dict:
        with open(self.mountpoint / ".powercut", "w") as f:
            f.write("now")
        return json.loads(Path(str(self.snapshot) + ".json").read_text())

    def faults(self, rules: str) -> None:
        """Replaces the fault rules (powercutfs.py: PowerCutFS.set_faults)."""
        with open(self.mountpoint / ".faults", "w") as f:
            f.write(rules)

    def unmount(self) -> None:
        for _ in range(100):
            if not mounted(self.mountpoint) or subprocess.run(
                    ["umount", str(self.mountpoint)],
                    capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            subprocess.run(["umount", "-l", str(self.mountpoint)])
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
