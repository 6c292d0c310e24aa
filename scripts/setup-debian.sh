#!/usr/bin/env bash
# setup-debian.sh - install everything Postilion needs to build and test on
# a fresh Debian 12 (bookworm).  Idempotent and non-interactive: when every
# package is already installed it changes nothing and touches no network.
# Run as root, or as a user who may sudo.
#
# The package list is PACKAGES below, in one place: add a component's needs
# there (with a comment saying who needs it).
set -euo pipefail

PACKAGES=(
  # build
  meson ninja-build pkg-config gcc clang
  libglib2.0-dev libunbound-dev libevent-dev
  # plugins/spf (libspf2), and pyspf to cross-check it in tests/e2e
  libspf2-dev python3-spf
  # plugins/spf: the evaluator's seccomp filter
  libseccomp-dev
  # plugins/dmarc: history in SQLite or PostgreSQL (libpq), gzip (zlib);
  # its tests: a private PostgreSQL instance, xmllint for the RFC 9990 XSD
  libsqlite3-dev libpq-dev zlib1g-dev postgresql libxml2-utils
  # plugins/dkim (OpenSSL; libopendkim only as the differential unit
  # tests' oracle), and dkimpy and OpenDKIM's tools to cross-check it in
  # tests/e2e and bench
  libopendkim-dev libssl-dev python3-dkim opendkim-tools opendkim
  # plugins/tls (GnuTLS >= 3.7.3)
  libgnutls28-dev
  # sanitizer runtime for clang builds (gcc's comes with gcc)
  libclang-rt-14-dev
  # hardening tests: the power-cut FUSE file system (tests/e2e/powercutfs.py)
  fuse3 python3-pyfuse3 python3-trio
  # tests: python3 with Debian's modules, SMTP client, TLS clients, DNS
  python3 python3-pytest python3-dnslib python3-dnspython python3-cryptography
  # scripts/test.sh: the end-to-end tests in parallel workers (pytest -n)
  python3-pytest-xdist
  swaks gnutls-bin openssl dns-root-data
  # tests/e2e/test_delivery_dovecot.py: a real LMTP server (Dovecot's lmtp)
  dovecot-lmtpd
  # plugins/auth: Cyrus SASL (PLAIN, LOGIN, CRAM-MD5, SCRAM, sasldb), and
  # saslpasswd2 / saslauthd for its tests
  libsasl2-dev libsasl2-modules libsasl2-modules-db sasl2-bin
  # swaks --tls / --tlsc in the AUTH-over-TLS tests
  libnet-ssleay-perl
  # tests/e2e/test_tls_hardening.py: a TLS scanner (renegotiation, LUCKY13)
  testssl.sh
  # tests/e2e/test_auth_dovecot.py: Dovecot's auth service (backend = dovecot;
  # dovecot-lmtpd pulls it in too, this says who needs it)
  dovecot-core
  # the plugin ABI check against sdk/abi/libpostilion.abi
  abigail-tools
  # tests/e2e/test_interop_*.py (issue 17): Postfix as a real upstream and
  # downstream peer (run privately with `postfix -c DIR`; the system
  # instance stays unconfigured, see below), and s-nail as mail(1)
  postfix s-nail
  # bench/run (bench/README.md "Preconditions"): its own DNS servers,
  # the loop-mounted queue filesystem, mount namespaces, the plot, and
  # perf for profiles; the plugins scenario's Postfix side: policyd-spf,
  # OpenDKIM (above), OpenDMARC with the public suffix list, dkimpy
  dnsmasq-base e2fsprogs mount util-linux gnuplot-nox linux-perf
  postfix-policyd-spf-python opendmarc publicsuffix
  # plugins/milter: real milters for tests/e2e/test_milter_real.py and
  # bench/ (rspamd, clamav-milter with clamd, OpenDKIM; dkimpy verifies)
  rspamd clamav-milter clamav-daemon opendkim opendkim-tools python3-dkim
  # debugging
  valgrind
  # the Debian packages (debian/) and their install test (tests/packaging):
  # dpkg-buildpackage, debhelper, lintian; ssl-cert for postilion-plugin-tls
  dpkg-dev debhelper lintian adduser ssl-cert
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null \
      | grep -q '^install ok installed$'; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-debian: all ${#PACKAGES[@]} packages installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup-debian: missing packages (${missing[*]}) and not root: run as root" >&2
  exit 1
fi

echo "setup-debian: installing ${missing[*]}"
# No package starts its service on install (Postfix, OpenDKIM, OpenDMARC,
# Dovecot, rspamd, clamd, PostgreSQL...): tests and bench/run start their
# own instances privately on loopback.  invoke-rc.d asks policy-rc.d; when
# the machine has none, one that refuses every action is in place for the
# install and removed afterwards (a machine's own policy is left alone).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# scripts/setup-debian.sh: no service starts during its install\nexit 101\n' \
    | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a test peer here: never configure the system instance.
echo "postfix postfix/main_mailer_type select No configuration" \
  | "${as_root[@]}" debconf-set-selections
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  --no-install-recommends "${missing[@]}"
