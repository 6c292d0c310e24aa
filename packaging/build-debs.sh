#!/usr/bin/env bash
# build-debs.sh OUTDIR - the Debian packages of this checkout, built in a
# private copy (so the checkout stays clean) with
# `dpkg-buildpackage -us -uc -b`, no network; the .deb files land in
# OUTDIR.  Used by tests/packaging/install-test.sh; needs the build
# dependencies of debian/control (scripts/setup-debian.sh installs them).
# JOBS sets the build's parallelism (default: nproc).
set -euo pipefail

out=$(realpath "${1:?usage: build-debs.sh OUTDIR}")
cd "$(dirname "$0")/.."
mkdir -p "$out"
work=$(mktemp -d /tmp/postilion-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The files git knows, committed or not, as a clean checkout would have.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
  | tar --null -T - -cf - | tar -xf - -C "$work/src"

(cd "$work/src" &&
  DEB_BUILD_OPTIONS="parallel=${JOBS:-$(nproc)} ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -us -uc -b)
mv "$work"/*.deb "$out"/
ls "$out"
