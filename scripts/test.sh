#!/usr/bin/env bash
# test.sh — the quick start's test command: install what is missing, then build and run
# the whole suite twice: a normal release build and an AddressSanitizer + UBSan build.
# Ends with one line "tests: N passed, M failed" counting individual test cases.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --tests || exit 1
passed=0 failed=0 status=0

run_suite() { # DIR [MESON OPTIONS...]
  local dir=$1 out p f
  echo "== $dir"
  scripts/build.sh "$@" || { failed=$((failed + 1)); status=1; return; }
  out=$(meson test -C "$dir" --print-errorlogs --num-processes 1 2>&1) || status=1
  echo "$out"
  # Count cases from the cmocka summaries and the shell suites, not just suites.
  local log=$dir/meson-logs/testlog.txt
  p=$(grep -hoE '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -hoE '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  # The shell suites (cli, replay) end with "NAME: N passed, M failed".
  p=$((p + $(grep -hoE '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')))
  f=$((f + $(grep -hoE '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$4} END {print s+0}')))
  # A suite that crashed or hung before printing its summary still counts as failed.
  local broken
  broken=$(echo "$out" | awk '/^(Fail|Timeout):/ {s+=$2} END {print s+0}')
  [ "$broken" -gt "$f" ] && f=$broken
  passed=$((passed + p)) failed=$((failed + f))
}

run_suite build
# Sanitizer build: leaks, out-of-bounds, undefined behaviour all fail the run.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

echo "tests: $passed passed, $failed failed"
[ $status = 0 ] && [ $failed = 0 ]
