#!/usr/bin/env bash
# End-to-end tests of the corruption statistics (docs/corruptions.md, "Statistics") on the
# real binary, on tiny corruptions runs of four bundled k = 2 models (two seeds each of V-MoE
# and V-MoE+PRC; 4 corruptions x 2 severities, 20 images):
#   stats --by corruption / family   every format; a cell equals the stats table's pooled
#                 row of its view; a family and the overall mean are the means of the
#                 corruptions' means (checked with awk); the extra stays out of overall;
#                 a run of another protocol is refused with one line
#   compare --group   the per-family answer and the levels: a group's level is the mean of
#                 its runs' stats figures, the answer's difference the difference of levels,
#                 the reference's relative form 100 %
#   report --group    the section, its tables and its three figures
# usage: corrupt_stats_test.sh ROUTERSCOPE MODELS_DIR
set -u
rs=$(realpath "$1") models=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip corrupt_stats tests: dataset-fashion-mnist is not installed"; echo "corrupt_stats_cli: 0 passed, 0 failed"; exit 0
fi
db=$tmp/c.db
for m in vmoe-k2 vmoe-k2-s1 prc-k2 prc-k2-s1; do # runs 1..4
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 20 --protocol corruptions \
    --corruptions gaussian_noise,fog,contrast,speckle_noise --severities 1,3 --db "$db" --threads 1 >/dev/null 2>&1
done
"$rs" replay "$models/fmnist-vmoe-k2.safetensors" --data fashion-mnist:test --limit 5 --protocol noise --db "$db" \
  --threads 1 >/dev/null 2>&1 # run 5
expect "five runs replayed" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE status='done'")" = 5 ]

# --- stats --by corruption / family ----------------------------------------------------------
"$rs" stats --db "$db" --run 1 --by corruption --resamples 200 >"$tmp/md" 2>"$tmp/err"
expect "by corruption: exits 0" [ $? = 0 ]
expect "by corruption: the cells table, then the families, then the usual tables" sh -c "
  grep -n '^### ' '$tmp/md' | head -3 | tr '\n' ' ' | grep -q 'per corruption and severity.*per corruption family.*Routing consistency vs view 0'"
expect "by corruption: a row per cell and per corruption's mean" \
  [ "$(grep -cE '^\| (gaussian_noise|fog|contrast|speckle_noise) ' "$tmp/md")" = 12 ]
"$rs" stats --db "$db" --run 1 --by corruption --format csv --resamples 200 >"$tmp/csv"
val() { awk -F, -v v="$2" -v l="$3" -v m="$4" '$2 == v && $3 == l && $4 == m { print $5 }' "$1"; }
cell() { val "$tmp/csv" "$1" "" "$2"; }
gn1=$(cell 1 gaussian_noise_s1_top1) gn3=$(cell 2 gaussian_noise_s3_top1) fog1=$(cell 3 fog_s1_top1)
fog3=$(cell 4 fog_s3_top1) c1=$(cell 5 contrast_s1_top1) c3=$(cell 6 contrast_s3_top1)
sp1=$(cell 7 speckle_noise_s1_top1) sp3=$(cell 8 speckle_noise_s3_top1)
expect "a cell is the stats table's pooled row of its view ($gn1)" \
  [ "$gn1" = "$(val "$tmp/csv" "view 1" all top1)" -a -n "$gn1" ]
expect "fog at severity 3 is view 4's pooled Top-1" [ "$fog3" = "$(val "$tmp/csv" "view 4" all top1)" ]
near() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && (a - b) ^ 2 < 1e-18) }'; }
expect "a corruption's mean is the mean over its severities" near "$(val "$tmp/csv" "" "" fog_mean_top1)" \
  "$(awk -v a="$fog1" -v b="$fog3" 'BEGIN { printf "%.12g", (a + b) / 2 }')"
"$rs" stats --db "$db" --run 1 --by family --format csv --resamples 200 >"$tmp/fam"
fam() { val "$tmp/fam" "" "" "$1"; }
expect "noise family = gaussian_noise (speckle_noise is an extra)" near "$(fam noise_mean_top1)" \
  "$(awk -v a="$gn1" -v b="$gn3" 'BEGIN { printf "%.12g", (a + b) / 2 }')"
expect "extra = speckle_noise" near "$(fam extra_mean_top1)" "$(awk -v a="$sp1" -v b="$sp3" 'BEGIN { printf "%.12g", (a + b) / 2 }')"
overall=$(awk -v a="$gn1" -v b="$gn3" -v c="$fog1" -v d="$fog3" -v e="$c1" -v f="$c3" \
  'BEGIN { printf "%.12g", ((a + b) / 2 + (c + d) / 2 + (e + f) / 2) / 3 }')
expect "overall = the mean of the three benchmark corruptions' means ($overall)" near "$(fam overall_mean_top1)" "$overall"
expect "overall at severity 3 = mean of the three cells at 3" near "$(fam overall_s3_top1)" \
  "$(awk -v a="$gn3" -v b="$fog3" -v c="$c3" 'BEGIN { printf "%.12g", (a + b + c) / 3 }')"
expect "overall has a bootstrap interval" awk -F, '$4 == "overall_mean_top1" && $6 != "" && $6 <= $5 && $5 <= $7 { f = 1 } END { exit !f }' "$tmp/fam"
expect "by family: no cells table" sh -c "! grep -q 'gaussian_noise_s1' '$tmp/fam'"
"$rs" stats --db "$db" --run 1 --by family --format json --resamples 50 >"$tmp/json"
expect "json parses and holds the family table" python3 -c "
import json, sys
d = json.load(open('$tmp/json'))
t = [t for t in d['tables'] if 'family' in t['title']][0]
sys.exit(not any(r['metric'] == 'overall_mean' for r in t['rows']))"
"$rs" stats --db "$db" --run 1 --by family --format tex --resamples 50 >"$tmp/tex"
expect "tex: a booktabs table of the families" sh -c "grep -q 'toprule' '$tmp/tex' && grep -q 'overall' '$tmp/tex'"
"$rs" stats --db "$db" --run 5 --by corruption >/dev/null 2>"$tmp/err"
expect "another protocol: refused with one line" failed_with $? 1 "run 5 is not a corruption run: view 1 'noise:severity=1'"
"$rs" stats --db "$db" --run 1 --by severity >/dev/null 2>"$tmp/err"
expect "an unknown --by: usage error" failed_with $? 2 "corruption or family"

# --- compare --group ---------------------------------------------------------------------------
"$rs" compare --db "$db" --group vmoe=1,2 --group prc=3,4 --resamples 100 >"$tmp/g.md" 2>"$tmp/err"
expect "compare --group: exits 0" [ $? = 0 ]
expect "compare --group: the answer per family and the levels" sh -c "
  grep -q '^### Corruptions: each method against vmoe: V-MoE k=2 per family' '$tmp/g.md' &&
  grep -q '^### Corruptions: each family' '$tmp/g.md'"
"$rs" compare --db "$db" --group vmoe=1,2 --group prc=3,4 --resamples 100 --format csv >"$tmp/g.csv"
grp() { awk -F, -v r="$1" -v m="$2" '$1 == r && $4 == m { print $5 }' "$tmp/g.csv" | tail -1; }
run_overall() { "$rs" stats --db "$db" --run "$1" --by family --format csv --resamples 0 | awk -F, '$4 == "overall_mean_top1" { print $5 }'; }
o1=$(run_overall 1) o2=$(run_overall 2) o3=$(run_overall 3) o4=$(run_overall 4)
lv=$(grp vmoe overall_mean_top1) lp=$(grp prc overall_mean_top1)
expect "a group's level is the mean of its runs' overall ($o1, $o2 -> $lv)" near "$lv" \
  "$(awk -v a="$o1" -v b="$o2" 'BEGIN { printf "%.12g", (a + b) / 2 }')"
ans=$(awk -F, '$1 == "prc" && $4 == "top1_overall" { print $5 }' "$tmp/g.csv")
expect "answer: overall difference = prc level - vmoe level ($ans)" near "$ans" \
  "$(awk -v a="$o3" -v b="$o4" -v c="$o1" -v e="$o2" 'BEGIN { printf "%.12g", (a + b) / 2 - (c + e) / 2 }')"
expect "answer: the relative form with a t interval" \
  awk -F, '$1 == "prc" && $4 == "top1_relative" && $5 > 0 && $6 != "" && $6 <= $5 && $5 <= $7 { f = 1 } END { exit !f }' "$tmp/g.csv"

# --- report --group ------------------------------------------------------------------------------
"$rs" report --db "$db" --group vmoe=1,2 --group prc=3,4 --resamples 100 --images 1 --out "$tmp/rep" >/dev/null 2>"$tmp/err"
expect "report --group: exits 0" [ $? = 0 ]
expect "report: the corruptions section with its two tables" sh -c "
  grep -q '^## Routing under common corruptions' '$tmp/rep/report.md' &&
  [ -s '$tmp/rep/tables/corruptions-answer.csv' ] && [ -s '$tmp/rep/tables/corruptions-families.csv' ]"
expect "report: the heatmap and the curves" sh -c "
  [ -s '$tmp/rep/figures/corruptions-heatmap-top1.png' ] && [ -s '$tmp/rep/figures/corruptions-severity-top1.png' ] &&
  [ -s '$tmp/rep/figures/corruptions-severity-accuracy.png' ]"
"$rs" report --db "$db" --group vmoe=5 --resamples 50 --images 1 --out "$tmp/rep2" >/dev/null 2>"$tmp/err"
expect "report of another protocol: no corruptions section" sh -c "! grep -q 'common corruptions' '$tmp/rep2/report.md'"

# a grid of a run with more than 16 views shows view 0 and the views at severity 3
"$rs" replay "$models/fmnist-vmoe-k2.safetensors" --data fashion-mnist:test --limit 4 --protocol corruptions \
  --corruptions gaussian_noise,fog,contrast,speckle_noise --db "$db" --threads 1 >/dev/null 2>&1
"$rs" report --db "$db" --run 6 --resamples 50 --images 1 --out "$tmp/rep3" >/dev/null 2>"$tmp/err"
expect "report of 21 views: exits 0" [ $? = 0 ]
expect "report of 21 views: the grid's caption says which 5 it shows" \
  grep -q "Of the run's 21 views the grid shows 5: view 0 and every view at severity 3" "$tmp/rep3/report.md"

testlib_done corrupt_stats_cli
