#!/usr/bin/env bash
# End-to-end tests of the routerscope binary: help, inspect, eval, and the usage and
# input errors (one line on stderr naming the problem, exit 2 for usage, 1 for bad input).
# usage: cli_test.sh ROUTERSCOPE GOLDEN_DIR [MODELS_DIR]
# RS_BUILD_KIND=sanitize (set by tests/meson.build) leaves out the whole-test-set checks.
set -u
rs=$1 golden=$2 models=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# check NAME EXPECTED_STATUS PATTERN_STDOUT PATTERN_STDERR -- CMD...
check() {
  local name=$1 want=$2 out_pat=$3 err_pat=$4
  shift 5
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$? ok=1
  [ "$got" = "$want" ] || ok=0
  [ -z "$out_pat" ] || grep -qE -- "$out_pat" "$tmp/out" || ok=0
  [ -z "$err_pat" ] || grep -qE -- "$err_pat" "$tmp/err" || ok=0
  # Failures say one line, never a crash or a stack of messages.
  if [ "$want" != 0 ] && [ "$(wc -l <"$tmp/err")" != 1 ]; then ok=0; fi
  if [ $ok = 1 ]; then
    pass=$((pass + 1)); echo "ok   $name"
  else
    fail=$((fail + 1)); echo "FAIL $name (exit $got, want $want)"; sed 's/^/     out: /' "$tmp/out" | head -5
    sed 's/^/     err: /' "$tmp/err" | head -5
  fi
}

m2=$golden/token_k2_e4.safetensors
fm=$golden/token_k1_e16_bias_fmnist.safetensors

check "help" 0 "inspect" "" -- "$rs" --help
check "version" 0 "^routerscope [0-9]" "" -- "$rs" --version
check "no command" 2 "" "no command given" -- "$rs"
check "unknown command" 2 "" "unknown command 'frobnicate'" -- "$rs" frobnicate
check "inspect help" 0 "usage: routerscope inspect" "" -- "$rs" inspect --help
check "eval help" 0 "--threads N" "" -- "$rs" eval --help
check "inspect table" 0 "4 experts, top-2 \\(records top-2\\)" "" -- "$rs" inspect "$m2"
check "inspect blocks" 0 "0:dense 1:MoE 2:MoE" "" -- "$rs" inspect "$m2"
check "inspect sha256 as sha256sum" 0 "^sha256 +$(sha256sum "$m2" | cut -d' ' -f1)\$" "" -- "$rs" inspect "$m2"
check "inspect json" 0 '"moe_layers": \[' "" -- "$rs" inspect --json "$fm"
check "inspect labels" 0 "Ankle boot" "" -- "$rs" inspect "$fm"
check "inspect unknown flag" 2 "" "unknown option '--colour'" -- "$rs" inspect --colour "$m2"
check "inspect two models" 2 "" "exactly one MODEL" -- "$rs" inspect "$m2" "$m2"
check "inspect missing file" 1 "" "nope.safetensors: cannot open: No such file" -- "$rs" inspect "$tmp/nope.safetensors"
head -c 100 "$m2" >"$tmp/cut.safetensors"
check "inspect truncated" 1 "" "cut.safetensors: header length .* exceeds the file" -- "$rs" inspect "$tmp/cut.safetensors"
printf 'not a model at all' >"$tmp/text.safetensors"
check "inspect not safetensors" 1 "" "text.safetensors: not a safetensors file \\(.*starts with" -- "$rs" inspect "$tmp/text.safetensors"
check "eval no data" 2 "" "--data is required" -- "$rs" eval "$m2"
check "eval bad threads" 2 "" "--threads wants an integer in \\[1, 256\\], got 'abc'" -- "$rs" eval "$m2" --data fashion-mnist:test --threads abc
check "eval bad batch" 2 "" "--batch wants an integer" -- "$rs" eval "$m2" --data fashion-mnist:test --batch 0
check "eval missing value" 2 "" "option '--data' needs a value" -- "$rs" eval "$m2" --data
check "eval unknown source" 1 "" "unknown source" -- "$rs" eval "$m2" --data mnist:test
check "eval missing idx" 1 "" "absent.gz: cannot open" -- "$rs" eval "$fm" --data "idx:$tmp/absent.gz"
# A NaN weight (the file's last float) once gave 10.67 % and exit 0.
cp "$m2" "$tmp/nan.safetensors"
printf '\000\000\300\177' | dd of="$tmp/nan.safetensors" bs=1 seek=$(($(stat -c %s "$m2") - 4)) conv=notrunc 2>/dev/null
check "eval non-finite weights" 1 "" "nan.safetensors: tensor [a-z0-9_.]+: element [0-9]+ is NaN" -- \
  "$rs" eval "$tmp/nan.safetensors" --data fashion-mnist:test --limit 10
mkdir -p "$tmp/adir" && echo "adir 1" >"$tmp/dir.list"
check "eval list naming a folder" 1 "" "dir.list:1: .*adir: is a directory, not an image file" -- \
  "$rs" eval "$fm" --data "list:$tmp/dir.list"

if [ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  check "eval fits 28x28 grey to a 16x16x3 model" 0 "100 images, accuracy" "" -- "$rs" eval "$m2" --data fashion-mnist:test --limit 100
  check "eval fmnist slice" 0 "200 images, accuracy [0-9.]+% \\([0-9]+/200\\)" "" -- \
    "$rs" eval "$fm" --data fashion-mnist:test --offset 100 --limit 200 --batch 64 --threads 2
  check "eval unwritable predictions" 1 "" "nowhere/p.txt: cannot write" -- \
    "$rs" eval "$fm" --data fashion-mnist:test --limit 3 --predictions "$tmp/nowhere/p.txt"
  check "eval offset too far" 1 "" "--offset 20000 but the data set has 10000" -- "$rs" eval "$fm" --data fashion-mnist:test --offset 20000
  for model in ${models:+"$models"/*.safetensors}; do
    [ -e "$model" ] || continue
    check "eval bundled $(basename "$model")" 0 "accuracy" "" -- "$rs" eval "$model" --data fashion-mnist:test --limit 500
  done
  # Bundled models against PyTorch's own test-set predictions (pytorch/agreement.py), to
  # the image: the model card's C and PyTorch accuracies are the same count by this test.
  # A BLAS with other kernels could move an image that sits on a near-tie; the check names
  # how many moved. Whole-test-set accuracy runs in the release build only: under the
  # sanitizers it costs minutes and checks nothing the 500-image evals above do not.
  [ "${RS_BUILD_KIND:-release}" = sanitize ] && echo "skip whole-test-set predictions: sanitizer build (release only)"
  for want in "$golden"/*.test-predictions.txt; do
    [ "${RS_BUILD_KIND:-release}" = sanitize ] && break
    [ -e "$want" ] || continue
    name=$(basename "$want" .test-predictions.txt)
    check "eval $name predictions" 0 "accuracy" "" -- \
      "$rs" eval "$models/$name.safetensors" --data fashion-mnist:test --predictions "$tmp/$name.pred"
    differ=$(paste -d' ' "$want" "$tmp/$name.pred" | awk '$1 != $2' | wc -l)
    lines=$(wc -l <"$tmp/$name.pred")
    check "$name: $differ of $lines predictions differ from PyTorch" 0 "" "" -- \
      test "$lines" = 10000 -a "$differ" = 0
  done
else
  echo "skip eval on Fashion-MNIST: dataset-fashion-mnist is not installed"
fi

# --- numbers are decimal, with no blanks around them --------------------------------------
check "eval hex capacity factor" 2 "" "--capacity-factor wants a number in \\(0, 1000\\], got '0x1'" -- \
  "$rs" eval "$m2" --data fashion-mnist:test --capacity-factor 0x1
check "eval blank before a number" 2 "" "--threads wants an integer in \\[1, 256\\], got ' 2'" -- \
  "$rs" eval "$m2" --data fashion-mnist:test --threads ' 2'
check "eval sign before a number" 2 "" "--limit wants an integer in \\[1, [0-9]+\\], got '\\+5'" -- \
  "$rs" eval "$m2" --data fashion-mnist:test --limit +5
check "eval blank after a seed" 2 "" "--group-seed wants an unsigned integer, got '3 '" -- \
  "$rs" eval "$m2" --data fashion-mnist:test --capacity-factor 1 --group-seed '3 '
check "replay blank in a shard" 2 "" "--shard wants I/N with 0 <= I < N, got '0/ 2'" -- \
  "$rs" replay "$m2" --data fashion-mnist:test --db "$tmp/never.db" --shard '0/ 2'
check "report blank in --runs" 2 "" "--runs wants run ids separated by commas, got '1, 2'" -- \
  "$rs" report --db "$tmp/never.db" --runs '1, 2' --out "$tmp/never"
check "render hex in --runs" 2 "" "--runs wants run ids separated by commas, got '0x1'" -- \
  "$rs" render attack-curves --db "$tmp/never.db" --runs 0x1 -o "$tmp/never.png"

# --- long messages keep their reason: the quoted path is what gets cut ---------------------
dir100=$(printf 'd%.0s' $(seq 100))
long=$tmp/$dir100/$dir100/$dir100/model.safetensors
check "a 300-byte path: the message ends with its reason" 1 "" "/model.safetensors: cannot open: No such file or directory\$" -- \
  "$rs" inspect "$long"

# --- a write error of the output is a failure: exit 1, one line ----------------------------
full() { # NAME CMD...
  local name=$1; shift
  "$@" >/dev/full 2>"$tmp/err"
  local got=$?
  if [ "$got" = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -qE "cannot write|write failed" "$tmp/err"; then
    pass=$((pass + 1)); echo "ok   $name > /dev/full: exit 1, one line"
  else
    fail=$((fail + 1)); echo "FAIL $name > /dev/full (exit $got, want 1 and one line)"; sed 's/^/     err: /' "$tmp/err" | head -5
  fi
}
full "--help" "$rs" --help
full "help" "$rs" help
full "--version" "$rs" --version
for c in inspect eval replay merge runs stats render compare report export convert; do
  full "$c --help" "$rs" $c --help
done
full "inspect" "$rs" inspect "$m2"
full "inspect --json" "$rs" inspect --json "$m2"
if [ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  d=$tmp/full.db
  full "eval" "$rs" eval "$m2" --data fashion-mnist:test --limit 4
  full "replay" "$rs" replay "$m2" --data fashion-mnist:test --limit 4 --db "$d" --threads 1
  "$rs" replay "$m2" --data fashion-mnist:test --limit 4 --db "$d" --threads 1 --seed 2 >/dev/null 2>&1
  full "replay of a finished job" "$rs" replay "$m2" --data fashion-mnist:test --limit 4 --db "$d" --threads 1 --seed 2
  full "runs" "$rs" runs --db "$d"
  full "stats" "$rs" stats --db "$d" --run 1 --resamples 10
  full "compare" "$rs" compare --db "$d" 1 2 --resamples 10 --force
  full "export" "$rs" export --db "$d" --run 1
  full "report" "$rs" report --db "$d" --runs 1 --resamples 10 --out "$tmp/full-report"
  for i in 0 1; do
    "$rs" replay "$m2" --data fashion-mnist:test --limit 120 --db "$tmp/sh.db.$i" --threads 1 --shard $i/2 >/dev/null 2>&1
  done
  full "merge" "$rs" merge --db "$tmp/merged.db" "$tmp/sh.db.0" "$tmp/sh.db.1"
  check "the runs behind those writes are whole" 0 "^2 +done" "" -- "$rs" runs --db "$d"
fi

echo "cli: $pass passed, $fail failed"
[ $fail = 0 ]
