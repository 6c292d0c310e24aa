#!/usr/bin/env bash
# test.sh - Postilion's full test suite, as CI runs it (.ci/run).
#
# 1. installs the build and test dependencies (scripts/setup-debian.sh);
# 2. builds `build` (normal) and `build-asan` (-Db_sanitize=address,undefined);
# 3. runs the meson tests (unit tests, fuzz corpus replays) and the pytest
#    end-to-end suite (tests/e2e) against both builds, with every sanitizer
#    report fatal.  The e2e tests run in parallel: E2E_JOBS pytest-xdist
#    workers (default 3 per core: a test mostly waits on the daemon, its
#    timers and peers), a test file per worker at a time (--dist loadfile:
#    a file's tests stay in order, in one process), then, alone, the tests
#    marked `serial` (they measure timing or memory; tests/e2e/conftest.py);
#    each pass writes its own JUnit XML.  Meanwhile the next build (after
#    the last: the Debian packages) compiles in the background at nice 10,
#    in the CPU the tests leave idle; it ends before the serial pass, and
#    its output follows the parallel pass's.  E2E_JOBS=1 runs every e2e
#    test in one serial pass and builds nothing in the background, as
#    before: use it when debugging a test;
# 4. then, as root only, the Debian packages' install test
#    (tests/packaging: build the .debs (or take those built in the
#    background), install, run, remove, purge);
# 5. counts the results from meson's testlog.json (each TAP subtest counts)
#    and pytest's JUnit XML, and prints as its last line
#        N passed, N failed[, N skipped]
#    exiting non-zero when anything failed (a build that fails counts as
#    one failure, and its tests do not run).
#
# Environment: BUILDS="build build-asan" picks the builds; PYTEST_ARGS adds
# pytest arguments (e.g. "-k smuggling -x"; not -m, which selects the
# passes); JOBS sets build and meson test parallelism; E2E_JOBS the e2e
# workers (1: serial); PACKAGE_TEST=0 skips the packages' install test.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILDS=${BUILDS:-"build build-asan"}
JOBS=${JOBS:-$(nproc)}
# e2e workers: the end-to-end tests mostly wait (on the daemon, timers,
# peers): one pytest keeps about a quarter of one core busy.
E2E_JOBS=${E2E_JOBS:-$((3 * $(nproc)))}
PYTHON=/usr/bin/python3   # Debian's python3, with python3-pytest & co.
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

# Sanitizers: any report is fatal; the e2e harness also fails a test whose
# daemon logged one.  G_SLICE/G_DEBUG make GLib's allocations visible to ASan.
# intercept_tls_get_addr=0: GCC 12's runtime guesses a dynamic TLS block's
# bounds from a glibc 2.19 header whenever the block's address is 16 past a
# page boundary; on glibc 2.36 that reads garbage, and LeakSanitizer's
# tracer dies on it at exit ("Tracer caught signal 11", 13 of 64 daemons in
# test_outbound_tls.py, depending only on where malloc put a plugin
# library's TLS).  Nothing is lost: on glibc 2.36 every other block was
# recorded with size 0, i.e. not scanned, anyway.
export ASAN_OPTIONS=${ASAN_OPTIONS:-"halt_on_error=1:abort_on_error=0:detect_leaks=1:print_summary=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:intercept_tls_get_addr=0"}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"halt_on_error=1:print_stacktrace=1:report_error_type=1"}
export LSAN_OPTIONS=${LSAN_OPTIONS:-"print_suppressions=0:suppressions=$ROOT/scripts/lsan.supp"}

build_failures=0
declare -a RESULT_FILES=()

step() { printf '\n==> %s\n' "$*"; }

e2e_pass() {  # e2e_pass BUILD JUNIT-NAME [pytest arguments...]
  local build=$1 junit="$1/meson-logs/$2" status started=$SECONDS
  shift 2
  rm -f "$junit"
  # shellcheck disable=SC2086
  POSTILION_BUILD="$ROOT/$build" "$PYTHON" -m pytest tests/e2e -q -p no:cacheprovider \
    -o junit_family=xunit2 --junitxml="$junit" "$@" ${PYTEST_ARGS:-}
  status=$?
  echo "e2e $build ($*): exit $status, $((SECONDS - started)) s"
  if [ ! -s "$junit" ]; then
    echo "test.sh: pytest wrote no results (exit $status)" >&2
    build_failures=$((build_failures + 1))
    return
  fi
  RESULT_FILES+=("junit:$junit")
  if [ "$status" -eq 5 ]; then
    e2e_empty=$((e2e_empty + 1))
  else
    e2e_ran=$((e2e_ran + 1))
  fi
}

if ! bash scripts/setup-debian.sh; then
  echo "test.sh: installing dependencies failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

configure() {  # configure BUILDDIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

build_one() {  # build_one BUILD: configures and builds it
  local options=()
  [ "$1" = build-asan ] && options=(-Db_sanitize=address,undefined)
  configure "$1" "${options[@]}" && ninja -C "$1" -j "$JOBS"
}

# With parallel e2e tests, the next build (and, after the last, the Debian
# packages) compiles in the background at nice 10 while this build's tests
# run: they leave part of the CPU idle.  It is waited for before the serial
# e2e pass, which has the machine to itself.
bg_what='' bg_pid='' bg_log='' bg_status=0
background() {  # background WHAT COMMAND...: runs it at nice 10, output kept
  bg_what=$1; shift
  bg_log=$(mktemp /tmp/postilion-test-bg.XXXXXX)
  set -m  # its own process group, so that an interrupted run ends it all
  ( renice -n 10 -p "$BASHPID" >/dev/null; "$@" ) >"$bg_log" 2>&1 &
  bg_pid=$!
  set +m
}
# shellcheck disable=SC2329  # run by the trap
background_stop() {
  if [ -n "$bg_pid" ]; then
    kill -TERM -- "-$bg_pid" 2>/dev/null
    rm -f "$bg_log"
  fi
}
trap background_stop EXIT
background_wait() {  # prints what ran in the background; sets bg_status
  [ -n "$bg_pid" ] || return 0
  wait "$bg_pid"
  bg_status=$?
  step "$bg_what (in the background, at nice 10): exit $bg_status"
  cat "$bg_log"
  rm -f "$bg_log"
  bg_pid=''
}

read -r -a builds <<<"$BUILDS"
debs=''
for i in "${!builds[@]}"; do
  build=${builds[$i]} next=${builds[$((i + 1))]:-}
  if [ "$bg_what" = "building $build" ]; then
    background_wait  # already done: it ended before the last serial pass
    bg_what=''
    if [ "$bg_status" -ne 0 ]; then
      echo "test.sh: building $build failed" >&2
      build_failures=$((build_failures + 1))
      continue
    fi
  else
    step "building $build"
    if ! build_one "$build"; then
      echo "test.sh: building $build failed" >&2
      build_failures=$((build_failures + 1))
      continue
    fi
  fi

  if [ "$E2E_JOBS" -gt 1 ]; then
    if [ -n "$next" ]; then
      background "building $next" build_one "$next"
    elif [ "${PACKAGE_TEST:-1}" != 0 ] && [ "$(id -u)" -eq 0 ]; then
      debs=$ROOT/var/debs
      rm -rf "$debs"
      mkdir -p "$debs"
      # as tests/packaging builds them (no -dbgsym packages, no tests)
      background "building the Debian packages" \
        env JOBS="$JOBS" DEB_BUILD_OPTIONS="noautodbgsym nocheck" \
        bash packaging/build-debs.sh "$debs"
    fi
  fi

  e2e_ran=0 e2e_empty=0
  step "meson tests in $build"
  multiplier=1
  [ "$build" = build-asan ] && multiplier=3
  meson test -C "$build" --print-errorlogs --timeout-multiplier "$multiplier" \
    --num-processes "$JOBS"
  RESULT_FILES+=("meson:$build/meson-logs/testlog.json")

  if [ "$E2E_JOBS" -gt 1 ]; then
    step "end-to-end tests against $build: $E2E_JOBS workers, then the serial ones"
    e2e_pass "$build" e2e-junit.xml -n "$E2E_JOBS" --dist loadfile -m "not serial"
    background_wait
    e2e_pass "$build" e2e-serial-junit.xml -m serial
  else
    step "end-to-end tests against $build"
    e2e_pass "$build" e2e-junit.xml
  fi
  # Exit 5 is "no tests collected": an empty suite is a failure here (one
  # pass of two may select nothing, e.g. with PYTEST_ARGS="-k smuggling").
  if [ "$e2e_ran" -eq 0 ] && [ "$e2e_empty" -gt 0 ]; then
    build_failures=$((build_failures + 1))
  fi
done
background_wait

# Last, so that it delays no build's tests.  The packages were built in the
# background during the last build's tests (when that went well; else the
# test builds them itself, and says why it fails).
if [ "${PACKAGE_TEST:-1}" != 0 ]; then
  step "Debian packages: build, install, run, remove, purge"
  mkdir -p var
  junit="var/packaging-junit.xml"
  rm -f "$junit"
  started=$SECONDS
  prebuilt=()
  if [ "$bg_what" = "building the Debian packages" ] && [ "$bg_status" -eq 0 ]; then
    prebuilt=(POSTILION_DEBS="$debs")
  fi
  env JOBS="$JOBS" "${prebuilt[@]}" "$PYTHON" -m pytest tests/packaging -q \
    -p no:cacheprovider -o junit_family=xunit2 --junitxml="$junit"
  echo "packages: $((SECONDS - started)) s"
  if [ -s "$junit" ]; then
    RESULT_FILES+=("junit:$junit")
  else
    echo "test.sh: the packages' test wrote no results" >&2
    build_failures=$((build_failures + 1))
  fi
fi

step "summary"
"$PYTHON" - "$build_failures" "${RESULT_FILES[@]}" <<'PY'
"""Counts test results: meson testlog.json (TAP subtests counted one by
one) and pytest JUnit XML (a test with a failure or error in any phase is
one failure).  Prints per-file lines, then the closing line."""
import json
import re
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
extra_failures = int(sys.argv[1])
TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count_meson(path):
    p = f = s = 0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return 0, 1, 0
    for line in lines:
        if not line.strip():
            continue
        test = json.loads(line)
        result = test.get("result", "")
        tap_ok = tap_fail = tap_skip = 0
        for out in (test.get("stdout") or "").splitlines():
            m = TAP.match(out.strip())
            if not m:
                continue
            directive = m.group(2)
            if re.search(r"#\s*SKIP", directive, re.I):
                tap_skip += 1
            elif m.group(1) == "ok" or re.search(r"#\s*TODO", directive, re.I):
                tap_ok += 1
            else:
                tap_fail += 1
        bad = result not in ("OK", "SKIP", "EXPECTEDFAIL")
        if tap_ok + tap_fail + tap_skip:
            p, f, s = p + tap_ok, f + tap_fail, s + tap_skip
            if bad and tap_fail == 0:
                f += 1  # crashed or timed out after its last subtest
                print(f"  {test.get('name')}: {result}")
        elif result == "SKIP":
            s += 1
        elif bad:
            f += 1
            print(f"  {test.get('name')}: {result}")
        else:
            p += 1
    return p, f, s


def count_junit(path):
    """One outcome per test id: failed beats skipped beats passed."""
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    outcome = {}
    failures = []
    for case in ET.parse(path).iter("testcase"):
        key = (case.get("classname"), case.get("name"))
        tags = {child.tag for child in case}
        state = ("failed" if tags & {"failure", "error"}
                 else "skipped" if "skipped" in tags else "passed")
        if key not in outcome or rank[state] > rank[outcome[key]]:
            outcome[key] = state
        if state == "failed":
            failures.append((key, case))
    for (classname, name), case in failures:
        # Named again here, beside the closing line, because a CI log
        # is often read from its tail only.
        cause = next(ch for ch in case if ch.tag in ("failure", "error"))
        message = " ".join((cause.get("message") or "").split())[:300]
        print(f"  FAILED {classname}::{name}: {message}")
    values = list(outcome.values())
    return values.count("passed"), values.count("failed"), values.count("skipped")


for spec in sys.argv[2:]:
    kind, path = spec.split(":", 1)
    p, f, s = count_meson(path) if kind == "meson" else count_junit(path)
    print(f"{path}: {p} passed, {f} failed, {s} skipped")
    passed, failed, skipped = passed + p, failed + f, skipped + s

if extra_failures:
    print(f"builds or runners that failed: {extra_failures}")
failed += extra_failures
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
PY
