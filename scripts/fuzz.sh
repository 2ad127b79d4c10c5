#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET...] — build the libFuzzer targets of fuzz/ (one clang build,
# AddressSanitizer + UBSan, in build-fuzz) and run each for SECONDS (default 60), one after
# the other: model, convert, view, image, source, store, store_read, or the TARGETs named.
# Seeds come from fuzz/corpus/TARGET (never written to); what the fuzzer learns goes to
# build-fuzz/corpus/TARGET and crashes to build-fuzz/crashes/TARGET/. Prints one line per
# target, "fuzz TARGET: passed (N runs in S s)" or "fuzz TARGET: failed ...", and ends with
# "fuzz: N passed, M failed"; exits non-zero when a target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} = 0 ] && targets=(model convert view image source store store_read)
dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >"$dir.setup.log" 2>&1 \
    || { cat "$dir.setup.log" >&2; echo "fuzz: 0 passed, ${#targets[@]} failed"; exit 1; }
  rm -f "$dir.setup.log"
fi
ninja -C "$dir" $(printf 'fuzz/fuzz_%s ' "${targets[@]}") >/dev/null \
  || { echo "fuzz: build failed" >&2; echo "fuzz: 0 passed, ${#targets[@]} failed"; exit 1; }

passed=0 failed=0
for t in "${targets[@]}"; do
  mkdir -p "$dir/corpus/$t" "$dir/crashes/$t"
  log=$dir/fuzz-$t.log
  # A unit slower than 20 s or above 2 GB is a finding (decompression bombs), not patience.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/crashes/$t/" "$dir/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | awk '{print $2}' | tail -1)
  if [ $rc = 0 ]; then
    passed=$((passed + 1))
    echo "fuzz $t: passed (${runs:-?} runs in $seconds s)"
  else
    failed=$((failed + 1))
    echo "fuzz $t: failed (exit $rc after ${runs:-?} runs; log $log, inputs in $dir/crashes/$t/)"
    grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log" | sed 's/^/  /'
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed = 0 ]
