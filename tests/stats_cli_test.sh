#!/usr/bin/env bash
# End-to-end tests of `routerscope stats` and `compare` on the real binary, on runs replayed
# here: formats (md headers and an "all" row, csv rows for every metric, json that parses,
# tex booktabs), one row per severity for the noise protocol, refusal of incomparable runs
# and --force, a run compared with itself (differences 0, McNemar line), bad input.
# usage: stats_cli_test.sh ROUTERSCOPE MODEL
set -u
rs=$(realpath "$1") model=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init
has() { grep -q -- "$2" "$1"; }
json_ok() {
  if command -v python3 >/dev/null; then python3 -c 'import json,sys; json.load(sys.stdin)' <"$1"
  else grep -q '"tables"' "$1" && ! grep -qi 'nan' "$1"; fi
}

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip stats tests: dataset-fashion-mnist is not installed"; echo "stats_cli: 0 passed, 0 failed"; exit 0
fi
db=$tmp/s.db
"$rs" replay "$model" --data fashion-mnist:test --limit 200 --db "$db" --threads 1 >/dev/null 2>"$tmp/err"      # run 1
"$rs" replay "$model" --data fashion-mnist:test --limit 200 --db "$db" --threads 1 --seed 1 >/dev/null 2>&1     # run 2
"$rs" replay "$model" --data fashion-mnist:test --limit 100 --protocol noise --db "$db" --threads 1 >/dev/null 2>&1 # run 3
expect "three runs replayed" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE status='done'")" = 3 ]

# --- stats: md ---------------------------------------------------------------------------
"$rs" stats --db "$db" --run 1 --resamples 200 >"$tmp/md" 2>"$tmp/err"
expect "stats md exits 0" [ $? = 0 ]
expect "md has the paper's headers" sh -c "grep -q '| Top-1 ' '$tmp/md' && grep -q '| Top-2 ' '$tmp/md' && grep -q 'Top-2 (order-agnostic)' '$tmp/md'"
expect "md has an 'all' layer row with percentages and intervals" \
  grep -Eq '^\| view 1 +\| all +\| +[0-9]+\.[0-9]{2} \[[0-9.]+, [0-9.]+\]' "$tmp/md"
expect "md has accuracy, change and layer tables" sh -c "grep -q 'Accuracy per view' '$tmp/md' && grep -q 'Prediction change vs routing change' '$tmp/md' && grep -q 'JSD (bits)' '$tmp/md'"
expect "no NaN anywhere" sh -c "! grep -qi nan '$tmp/md'"
# The transition matrix's diagonal over its total is the layer's Top-1 agreement.
expect "md has the transition matrix" grep -q 'Top-1 transitions' "$tmp/md"
"$rs" stats --db "$db" --run 1 --format csv --resamples 0 >"$tmp/tr.csv"
layer=$(grep -E '^1,view 1,[0-9]+,top1,' "$tmp/tr.csv" | head -1 | cut -d, -f3)
top1=$(grep -E "^1,view 1,$layer,top1," "$tmp/tr.csv" | cut -d, -f5)
diag_ok() {
  awk -F, -v layer="$layer" -v want="$top1" '
    $2 == "" && $3 == layer && $4 ~ /^from_[0-9]+_to_[0-9]+$/ {
      split($4, p, "_"); if (p[2] == p[4]) d += $5; t += $5 }
    END { exit !(t > 0 && (d / t - want) ^ 2 < 1e-12) }' "$tmp/tr.csv"
}
expect "transition diagonal / total equals Top-1 (layer $layer)" diag_ok
# The default run is the last finished one (the noise run).
"$rs" stats --db "$db" --resamples 0 >"$tmp/def" 2>"$tmp/err"
expect "default run is the last finished one" has "$tmp/def" "^run 3:"

# --- stats: csv, json, tex -------------------------------------------------------------------
"$rs" stats --db "$db" --run 1 --format csv --resamples 100 >"$tmp/csv" 2>"$tmp/err"
expect "csv header row" [ "$(head -1 "$tmp/csv")" = "run,view,layer,metric,value,lo,hi,n" ]
for m in top1 top2 top2_unordered top2_overlap pairs unmatched accuracy rc_pc prc_norm jsd_bits entropy_bits load_cv; do
  expect "csv has rows for $m" grep -q "^1,[^,]*,[^,]*,$m," "$tmp/csv"
done
expect "csv rows have 8 fields" [ "$(awk -F, 'NF != 8' "$tmp/csv" | wc -l)" = 0 ]
expect "csv all-layer Top-1 has an interval" grep -Eq '^1,view 1,all,top1,0\.[0-9]+,0\.[0-9]+,0\.[0-9]+,[0-9]+$' "$tmp/csv"
"$rs" stats --db "$db" --run 1 --format json --resamples 100 >"$tmp/json" 2>"$tmp/err"
expect "json parses" json_ok "$tmp/json"
expect "json carries Wilson intervals" has "$tmp/json" '"wilson_lo"'
"$rs" stats --db "$db" --run 1 --format tex --resamples 100 >"$tmp/tex" 2>"$tmp/err"
expect "tex is booktabs" sh -c "grep -q '\\\\toprule' '$tmp/tex' && grep -q '\\\\midrule' '$tmp/tex' && grep -q '\\\\bottomrule' '$tmp/tex'"
"$rs" stats --db "$db" --run 1 --by class --resamples 0 >"$tmp/cls" 2>"$tmp/err"
expect "--by class has a row per class" [ "$(grep -c '| class ' "$tmp/cls")" = 10 ]
"$rs" stats --db "$db" --run 1 --by expert --resamples 0 >"$tmp/exp" 2>"$tmp/err"
expect "--by expert has rows per expert" grep -q '| expert 0 ' "$tmp/exp"

# --- noise protocol: a row per severity -------------------------------------------------------
"$rs" stats --db "$db" --run 3 --by view --resamples 100 >"$tmp/noise" 2>"$tmp/err"
expect "noise: 5 severity rows over all layers" \
  [ "$(grep -Ec '^\| noise:severity=[1-5] +\| all ' "$tmp/noise")" -ge 10 ]
for k in 1 2 3 4 5; do
  expect "noise: severity $k in the consistency table" grep -Eq "^\| noise:severity=$k +\| all +\| +[0-9]" "$tmp/noise"
done

# --- compare -----------------------------------------------------------------------------
"$rs" compare --db "$db" 1 2 >"$tmp/out" 2>"$tmp/err"
expect "different seeds are refused: exit 1, one line" failed_with $? 1 "not comparable: seed 0 vs 1"
"$rs" compare --db "$db" 1 2 --force --resamples 100 >"$tmp/out" 2>"$tmp/err"
expect "--force compares them and says so" sh -c "[ $? = 0 ] && grep -q 'not comparable (seed 0 vs 1)' '$tmp/out'"
"$rs" compare --db "$db" 1 1 --db-b "$db" --resamples 100 >"$tmp/self" 2>"$tmp/err"
expect "a run against itself: exit 0" [ $? = 0 ]
expect "a run against itself: every difference 0" \
  sh -c "[ \$(grep -Ec '\\| \\+0\\.00 \\[\\+0\\.00, \\+0\\.00\\] \\|\$' '$tmp/self') = 12 ]"
expect "McNemar line, and it says patches are treated as independent" \
  sh -c "grep -Eq '^\\| view 1 +\\| all +\\| +11[0-9]{3} +\\| +0 \\| +0 \\| +0\\.000 \\| +1 \\|' '$tmp/self' && grep -q 'treats matched patches as independent' '$tmp/self'"
"$rs" compare --db "$db" 1 1 --format json --resamples 50 >"$tmp/cj" 2>"$tmp/err"
expect "compare json parses" json_ok "$tmp/cj"
"$rs" compare --db "$db" 1 3 >"$tmp/out" 2>"$tmp/err"
expect "pair vs noise is refused" failed_with $? 1 "not comparable"

# --- bad input -----------------------------------------------------------------------------
"$rs" stats --db "$db" --frobnicate >/dev/null 2>"$tmp/err"
expect "unknown flag: exit 2, one line" failed_with $? 2 "unknown option '--frobnicate'"
"$rs" stats --db "$db" --format pdf >/dev/null 2>"$tmp/err"
expect "bad --format: exit 2" failed_with $? 2 "--format wants md, csv, tex or json"
"$rs" stats --db "$db" --by colour >/dev/null 2>"$tmp/err"
expect "bad --by: exit 2" failed_with $? 2 "--by wants"
"$rs" stats --db "$db" --resamples many >/dev/null 2>"$tmp/err"
expect "bad --resamples: exit 2" failed_with $? 2 "--resamples wants an integer"
"$rs" compare --db "$db" 1 >/dev/null 2>"$tmp/err"
expect "compare with one run: exit 2" failed_with $? 2 "wants two run ids"
# --seed takes any unsigned 64-bit integer, as in replay, and the bootstrap uses it
"$rs" stats --db "$db" --run 1 --resamples 20 --seed 18446744073709551615 >"$tmp/out" 2>"$tmp/err"
expect "stats --seed 2^64-1: accepted and shown" sh -c "[ $? = 0 ] && grep -q 'seed 18446744073709551615' '$tmp/out'"
"$rs" compare --db "$db" 1 2 --force --resamples 20 --seed 4294967296 >"$tmp/out" 2>"$tmp/err"
expect "compare --seed 2^32: accepted" [ $? = 0 ]
for bad in 18446744073709551616 -1 ' 7' 7x; do
  "$rs" stats --db "$db" --seed "$bad" >/dev/null 2>"$tmp/err"
  expect "stats --seed '$bad': exit 2" failed_with $? 2 "--seed wants an unsigned integer"
  "$rs" compare --db "$db" 1 2 --seed "$bad" >/dev/null 2>"$tmp/err"
  expect "compare --seed '$bad': exit 2" failed_with $? 2 "--seed wants an unsigned integer"
done
# plots: a sweep of a pair run is refused in one line; pair and noise never share a chart
"$rs" render sweep --db "$db" --run 1 --out "$tmp/s.png" >/dev/null 2>"$tmp/err"
expect "render sweep of a pair run: exit 1, one line" failed_with $? 1 "run 1 is a pair run"
"$rs" render sweep --db "$db" --run 3 --out "$tmp/s.png" >/dev/null 2>"$tmp/err"
expect "render sweep of a noise run draws it" sh -c "[ $? = 0 ] && [ -s '$tmp/s.png' ]"
# --layer names a block by its index, as figures label it (the model's MoE blocks are 1 and 3)
"$rs" render sweep --db "$db" --run 3 --layer 3 --out "$tmp/s3.png" >/dev/null 2>"$tmp/err"
expect "render --layer 3 (a MoE block) draws" sh -c "[ $? = 0 ] && [ -s '$tmp/s3.png' ]"
"$rs" render sweep --db "$db" --run 3 --layer 2 --out "$tmp/s2.png" >/dev/null 2>"$tmp/err"
expect "render --layer 2 (a dense block): exit 1 naming the MoE blocks" failed_with $? 1 "not a MoE block (MoE blocks: 1, 3)"
"$rs" stats --db "$tmp/missing.db" >/dev/null 2>"$tmp/err"
expect "missing database: exit 1, one line" failed_with $? 1 "missing.db"
expect "and creates none" [ ! -e "$tmp/missing.db" ]
"$rs" stats --db "$db" --run 99 >/dev/null 2>"$tmp/err"
expect "run that does not exist: exit 1" failed_with $? 1 "no run 99"
"$rs" compare --db "$db" 1 99 >/dev/null 2>"$tmp/err"
expect "compare with a missing run: exit 1" failed_with $? 1 "no run 99"

testlib_done stats_cli
