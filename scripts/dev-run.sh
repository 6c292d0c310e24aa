#!/usr/bin/env bash
# dev-run.sh - quick start: install the build dependencies, build, and run
# postiliond in the foreground on 127.0.0.1:2525 with etc/postilion-dev.conf
# (spool under var/, the example hello plugin loaded from the build).
# Logs go to the terminal; Ctrl-C (SIGINT) or SIGTERM stops it, SIGHUP
# re-reads var/postilion-dev.conf.
#
# Try it from another terminal:
#   swaks --server 127.0.0.1:2525 --to postmaster@example.org
#
# BUILD=dir picks the build directory (default: build).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}

bash scripts/setup-debian.sh
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD"
fi
ninja -C "$BUILD"

# The SDK's example plugin, compiled against this build's SDK header and
# libpostilion (sdk/examples/hello/README.md builds it against an installed
# SDK instead).
mkdir -p "$BUILD/sdk/examples/hello"
if [ ! "$BUILD/sdk/examples/hello/hello.so" -nt sdk/examples/hello/hello.c ]; then
  # shellcheck disable=SC2046
  cc -std=gnu11 -Wall -Wextra -Wno-unused-parameter -O2 -g -shared -fPIC \
    -fvisibility=hidden -I sdk $(pkg-config --cflags glib-2.0 gio-2.0) \
    -o "$BUILD/sdk/examples/hello/hello.so" sdk/examples/hello/hello.c \
    -L "$BUILD" -lpostilion -Wl,-rpath,"$ROOT/$BUILD"
fi

mkdir -p var/spool
sed -e "s|@ROOT@|$ROOT|g" -e "s|@BUILD@|$ROOT/$BUILD|g" \
  etc/postilion-dev.conf > var/postilion-dev.conf
echo "dev-run: postiliond on 127.0.0.1:2525, config var/postilion-dev.conf, spool var/spool"
exec "$BUILD/postiliond" -f -c var/postilion-dev.conf
