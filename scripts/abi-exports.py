#!/usr/bin/python3
"""abi-exports.py - the plugin ABI is exactly what the SDK headers declare.

    scripts/abi-exports.py SDK_HEADERS_DIR BINARY...

For each BINARY (libpostilion.so.1, postiliond), compares the functions it
exports (defined dynamic code symbols, `nm -D --defined-only`) with the
functions the headers in SDK_HEADERS_DIR declare with PST_API.  An export
no header declares is an internal function leaking into the plugin ABI (a
plugin could bind to it, and the ABI baseline would have to keep it); a
declared function that is not exported breaks every plugin that calls it.
Exits 1 and names each difference.  Run by `meson test` (abi-exports).
"""

import re
import subprocess
import sys
from pathlib import Path

# "PST_API <type> pst_name(" with the type and name over several lines.
DECLARATION = re.compile(r"\bPST_API\b[^;{}()]*?\b(pst_[A-Za-z0-9_]+)\s*\(")


def declared(headers: Path) -> set[str]:
    names = set()
    for header in sorted(headers.glob("*.h")):
        text = re.sub(r"/\*.*?\*/", " ", header.read_text(), flags=re.S)
        names.update(DECLARATION.findall(text))
    return names


def exported(binary: str) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", binary],
                         check=True, capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        fields = line.split()
        # Code only: version nodes are "A"; an executable also defines
        # the data it copies from shared libraries (stdout: "B").
        if len(fields) < 3 or fields[1] not in ("T", "W", "i"):
            continue
        names.add(fields[2].split("@", 1)[0])
    return names


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    sdk = declared(Path(sys.argv[1]))
    if not sdk:
        print(f"abi-exports: no PST_API declaration in {sys.argv[1]}",
              file=sys.stderr)
        return 1
    status = 0
    for binary in sys.argv[2:]:
        names = exported(binary)
        for name in sorted(names - sdk):
            print(f"abi-exports: {binary} exports {name}, which no sdk/ "
                  "header declares: give it hidden visibility (no PST_API)")
            status = 1
        for name in sorted(sdk - names):
            print(f"abi-exports: {binary} does not export {name}, which "
                  "an sdk/ header declares (PST_API, sdk/libpostilion.map)")
            status = 1
        if status == 0:
            print(f"abi-exports: {binary}: {len(names)} functions, exactly "
                  "the SDK's")
    return status


if __name__ == "__main__":
    sys.exit(main())
