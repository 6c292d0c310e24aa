#!/usr/bin/env bash
# Compares the built libpostilion.so.1 with the recorded plugin ABI baseline
# (sdk/abi/libpostilion.abi), looking only at what the SDK headers declare.
#
#   scripts/abi-check.sh LIBRARY            check (a meson test runs this)
#   scripts/abi-check.sh --update LIBRARY   record LIBRARY as the new baseline
#
# Added functions are fine (they come with a new ABI minor and a new version
# node in sdk/libpostilion.map); a removed or changed function or type breaks
# every plugin built against the SDK, so the check fails and says what moved.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
baseline="$here/sdk/abi/libpostilion.abi"
headers="$here/sdk/postilion"

if [ "${1:-}" = "--update" ]; then
  abidw --headers-dir "$headers" --drop-private-types --no-corpus-path \
    --out-file "$baseline" "$2" && echo "abi-check: recorded $baseline"
  exit $?
fi
library=${1:?usage: abi-check.sh [--update] LIBRARY}
abidiff --headers-dir2 "$headers" "$baseline" "$library"
status=$?
# abidiff's status is a bit set: 1 error, 2 usage, 4 ABI change,
# 8 incompatible change.
if (( status & 3 )); then
  echo "abi-check: abidiff failed (status $status)" >&2
  exit 1
fi
if (( status & 8 )); then
  echo "abi-check: INCOMPATIBLE plugin ABI change (above). Either undo it, or" \
       "raise PST_ABI_MAJOR and the soname, then record a new baseline with" \
       "scripts/abi-check.sh --update $library" >&2
  exit 1
fi
if (( status & 4 )); then
  echo "abi-check: compatible additions; record them with" \
       "scripts/abi-check.sh --update $library when the ABI minor is raised"
fi
exit 0
