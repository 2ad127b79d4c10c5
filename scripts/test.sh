#!/usr/bin/env bash
# test.sh — the quick start's test command: install what is missing, then build and run
# the whole suite twice: a normal release build and an AddressSanitizer + UBSan build, then
# a short smoke run of every fuzz target (scripts/fuzz.sh, 10 s each, one clang build).
# Prints each suite's time, so that slow growth shows, and ends with one line
# "tests: N passed, M failed" counting individual test cases (a fuzz target is one).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --tests || exit 1
passed=0 failed=0 status=0

run_suite() { # DIR [MESON OPTIONS...]
  local dir=$1 out p f
  echo "== $dir"
  scripts/build.sh "$@" || { failed=$((failed + 1)); status=1; return; }
  local start=$SECONDS
  out=$(meson test -C "$dir" --print-errorlogs --num-processes 1 2>&1) || status=1
  echo "$out"
  echo "== $dir: suite times ($((SECONDS - start)) s in all)"
  echo "$out" | awk '/^ *[0-9]+\/[0-9]+ / { t = ""; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) t = $i;
                                             printf "   %-10s %-8s %8s\n", $2, $3, t }'
  # Count cases from the cmocka summaries and the shell suites, not just suites.
  local log=$dir/meson-logs/testlog.txt
  p=$(grep -hoE '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -hoE '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
  # The shell suites (cli, replay) end with "NAME: N passed, M failed".
  p=$((p + $(grep -hoE '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')))
  f=$((f + $(grep -hoE '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$4} END {print s+0}')))
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

# Fuzz smoke: every parser keeps being fuzzed (ASan + UBSan); a crash fails the run.
echo "== build-fuzz (fuzz smoke, 10 s per target)"
if command -v clang >/dev/null; then
  fuzz_out=$(scripts/fuzz.sh 10 2>&1) || status=1
  echo "$fuzz_out"
  passed=$((passed + $(echo "$fuzz_out" | grep -c '^fuzz [a-z_]*: passed')))
  f=$(echo "$fuzz_out" | awk '/^fuzz: [0-9]+ passed, [0-9]+ failed/ {print $4}')
  failed=$((failed + ${f:-1}))
else
  echo "fuzz smoke: clang is missing (scripts/ensure-deps.sh --tests installs it)"; failed=$((failed + 1)); status=1
fi

echo "tests: $passed passed, $failed failed"
[ $status = 0 ] && [ $failed = 0 ]
