#!/usr/bin/env bash
# dev-run.sh - quick start: install the build dependencies, build, and run
# postiliond in the foreground with etc/postilion-dev.conf: mail for
# example.org and localhost delivered to Maildirs under var/mail/, the
# relay, tls, auth and spf plugins loaded (dkim with a generated key and
# dmarc when they are built, and the SDK's hello example),
# SMTP on 127.0.0.1:2525 and submission (STARTTLS + AUTH) on
# 127.0.0.1:2587.  One command, no prompts.
#
# The first run makes, under var/, a self-signed certificate for localhost
# (var/tls/) and a SASL user dev@example.org with a random password (var/sasldb2,
# var/dev-password), and a DKIM key for example.org (var/dkim/); later runs
# reuse them.  It prints things to try, then
# the daemon's log.  Ctrl-C (SIGINT) or SIGTERM stops it, SIGHUP re-reads
# var/postilion-dev.conf.
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

mkdir -p var/spool var/mail var/tls
# A throwaway certificate for localhost (the tls plugin).
if [ ! -s var/tls/cert.pem ] || [ ! -s var/tls/key.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 365 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout var/tls/key.pem -out var/tls/cert.pem 2>/dev/null
  chmod 600 var/tls/key.pem
fi
# A throwaway SASL user dev@example.org (the auth plugin).
if [ ! -s var/sasldb2 ] || [ ! -s var/dev-password ]; then
  rm -f var/sasldb2
  head -c 12 /dev/urandom | base64 | tr -d '/+=' > var/dev-password
  chmod 600 var/dev-password
  tr -d '\n' < var/dev-password |
    saslpasswd2 -p -c -f var/sasldb2 -u example.org dev
fi
password=$(cat var/dev-password)

sed -e "s|@ROOT@|$ROOT|g" -e "s|@BUILD@|$ROOT/$BUILD|g" \
  etc/postilion-dev.conf > var/postilion-dev.conf
# Plugins built only when their libraries are installed join through their
# own group's "enable = true", as the packages' conf.d snippets do.
plugins="tls, auth, relay, spf"
if [ -f "$BUILD/plugins/dkim/dkim.so" ]; then
  cat >> var/postilion-dev.conf <<DKIM

[plugin:dkim]
enable = true
key_directory = $ROOT/var/dkim
# Mail of our own clients from example.org is signed with var/dkim/example.org/dev.key.
[plugin:dkim:example.org]
selectors = dev
DKIM
  if [ ! -s var/dkim/example.org/dev.key ]; then
    "$BUILD/tools/postilion" -c var/postilion-dev.conf dkim genkey example.org dev \
      >/dev/null
  fi
  plugins="$plugins, dkim"
fi
if [ -f "$BUILD/plugins/dmarc/dmarc.so" ]; then
  cat >> var/postilion-dev.conf <<DMARC

[plugin:dmarc]
enable = true
history = sqlite:$ROOT/var/dmarc.db
DMARC
  plugins="$plugins, dmarc"
fi

cat <<TRY
dev-run: postiliond with var/postilion-dev.conf; spool var/spool, Maildirs var/mail
  SMTP        127.0.0.1:2525  (STARTTLS offered)
  submission  127.0.0.1:2587  (STARTTLS, then AUTH required)
  SASL user   dev@example.org  password: $password
  plugins     $plugins, hello (the SDK's example)

Things to try, from a second terminal:
  # plain delivery: lands in var/mail/example.org/postmaster/new/
  swaks --server 127.0.0.1:2525 --from you@example.org --to postmaster@example.org
  # a refused relay: 554 5.7.1 Relay access denied (XCLIENT plays a
  # client from 192.0.2.1; 127.0.0.1 itself may relay)
  swaks --server 127.0.0.1:2525 --xclient-addr 192.0.2.1 \\
        --helo mx.elsewhere.example --from someone@elsewhere.example \\
        --to other@elsewhere.example
  # authenticated submission over STARTTLS
  swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user dev@example.org \\
        --auth-password '$password' --from dev@example.org --to postmaster@example.org
  # what was delivered (DKIM-signed: its client may relay)
  ls var/mail/example.org/postmaster/new/ && cat var/mail/example.org/postmaster/new/*
  # the plugins, their hooks and their order
  $BUILD/tools/postilion -c var/postilion-dev.conf plugins
  # the queue, and the configuration check (which file loaded each plugin)
  $BUILD/tools/postilion -c var/postilion-dev.conf queue list
  $BUILD/postiliond --check -c var/postilion-dev.conf

TRY
exec "$BUILD/postiliond" -f -c var/postilion-dev.conf
