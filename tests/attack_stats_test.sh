#!/usr/bin/env bash
# End-to-end tests of the attack figures on an adversarial-style store made here: two noise
# runs (V-MoE k=2 and PRC k=2 on the same 30 images) whose views 1..5 are relabelled as
# `base:view=0+pgd:eps=K/255,...` views with increasing K and given an `attacks` table
# (store schema 4's layout) with a known objective, so that the statistics, figures and the
# report section run on real routing before the pgd view operation exists. Checks:
# `stats` prints routing changes (md and json); every attack picture is drawn; bad layers,
# images and non-adversarial runs are one-line errors; the report has its "Routing under
# attack" section with curves, min-eps figures, the objective and grids.
# usage: attack_stats_test.sh ROUTERSCOPE MODELS_DIR
set -u
rs=$(realpath "$1") models=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip attack stats tests: dataset-fashion-mnist is not installed"; echo "attack_stats: 0 passed, 0 failed"; exit 0
fi
db=$tmp/a.db
for m in vmoe-k2 prc-k2; do # runs 1, 2
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 30 --protocol noise --db "$db" \
    --threads 1 >/dev/null 2>"$tmp/err" || bad "replay $m"
done
"$rs" replay "$models/fmnist-vmoe-k2.safetensors" --data fashion-mnist:test --limit 20 --protocol pair --db "$db" \
  --threads 1 >/dev/null 2>&1 # run 3: not adversarial
# Views 1..5 become attacked views with eps 1, 2, 4, 8, 16 /255; objective 1, 2, 3, 4 per
# step for every image of views 1..5 (float32 little-endian): its mean is 1, 2, 3, 4.
sqlite3 "$db" "UPDATE views SET spec = 'base:view=0+pgd:eps=' || (1 << (view - 1)) || '/255,steps=3,loss=router'
               WHERE run_id IN (1, 2) AND view > 0;
               UPDATE runs SET protocol = 'adversarial', checksum = NULL WHERE id IN (1, 2);
               CREATE TABLE IF NOT EXISTS attacks(run_id INTEGER, image INTEGER, view INTEGER, linf REAL, l2 REAL,
                 steps INTEGER, objective BLOB, PRIMARY KEY(run_id, image, view));
               INSERT INTO attacks SELECT run_id, image, view, 0, 0, 3, x'0000803f000000400000404000008040'
                 FROM predictions WHERE run_id IN (1, 2) AND view > 0;" 2>"$tmp/err" || bad "store relabelled"

"$rs" stats --db "$db" --run 1 --resamples 200 >"$tmp/stats.md" 2>"$tmp/err"
expect "stats prints routing changes" grep -q "Routing changes vs view 0" "$tmp/stats.md"
expect "attacked views are pixel-aligned (30 images each)" \
  grep -q -E "^\| view 1 +\| block 1 \|.*\| +30 \| +30 \|$" "$tmp/stats.md"
"$rs" stats --db "$db" --run 1 --resamples 0 --format json >"$tmp/stats.json" 2>"$tmp/err"
expect "json carries routing_changes" grep -q '"routing_changes"' "$tmp/stats.json"
# Routing changes grow with eps here (noise sigma 0.08 .. 0.38 under the labels): view 1's
# (1/255) pooled value is below view 5's (16/255). Long specs are labelled "view N".
rc_of() { awk -F'|' -v v="$1" '/^### / {t = /Routing changes/} t && $2 ~ v && $3 ~ /all/ {gsub(/ /, "", $4); split($4, a, "["); print a[1]}' "$tmp/stats.md"; }
expect "routing changes grow with eps" awk -v a="$(rc_of 'view 1')" -v b="$(rc_of 'view 5')" \
  'BEGIN {exit !(a + 0 > 0 && a + 0 < b + 0)}'

png() { [ -s "$1" ] && [ "$(head -c 4 "$1" | tail -c 3)" = PNG ]; }
for kind in attack-curves min-eps min-eps-hist attack-objective; do
  "$rs" render "$kind" --db "$db" --run 1 -o "$tmp/$kind.png" 2>"$tmp/err"
  expect "render $kind" png "$tmp/$kind.png"
done
"$rs" render attack-curves --db "$db" --runs 1,2 -o "$tmp/curves2.pdf" 2>"$tmp/err"
expect "attack curves of two runs (pdf)" [ -s "$tmp/curves2.pdf" ]
"$rs" render min-eps --db "$db" --run 2 --image 7 --layer 3 -o "$tmp/one.svg" 2>"$tmp/err"
expect "min-eps of one image and block" grep -q "<svg" "$tmp/one.svg"
# The grid titles an attacked view's column by its eps and says its thumbnail is the start
# pixels (the attack is not redrawn); a PDF grid keeps its text.
"$rs" render grid --db "$db" --run 1 --image 3 -o "$tmp/grid.pdf" 2>"$tmp/err"
if command -v pdftotext >/dev/null; then
  pdftotext "$tmp/grid.pdf" "$tmp/grid.txt"
  expect "grid columns say eps" grep -q "^ε = 16/255$" "$tmp/grid.txt"
  expect "attacked thumbnails say start pixels (5 of them)" \
    [ "$(grep -c '^start pixels; attack not redrawn$' "$tmp/grid.txt")" = 5 ]
fi
"$rs" render min-eps --db "$db" --run 1 --layer 2 -o "$tmp/x.png" 2>"$tmp/err"
expect "a block without MoE is one line" failed_with $? 1 "no MoE layer at block 2"
"$rs" render min-eps --db "$db" --run 1 --image 30 -o "$tmp/x.png" 2>"$tmp/err"
expect "an image outside the run is one line" failed_with $? 1 "image 30 is not in run 1"
"$rs" render min-eps-hist --db "$db" --run 3 -o "$tmp/x.png" 2>"$tmp/err"
expect "a pair run is not adversarial, one line" failed_with $? 1 "run 3 is not an adversarial run"

"$rs" report --db "$db" --runs 2,1 --out "$tmp/rep" --images 1 --resamples 50 >/dev/null 2>"$tmp/err"
expect "report written" [ -s "$tmp/rep/report.md" ]
expect "report has the attack section" grep -q "^## Routing under attack" "$tmp/rep/report.md"
# the headline names the runs' protocol (they are not pair runs), and so does the accuracy text
expect "headline names the adversarial runs" grep -q "overall row (all MoE layers), adversarial runs\." \
  "$tmp/rep/report.md"
lacks() { [ -s "$2" ] && ! grep -q "$1" "$2"; }
expect "no 'pair run' in an adversarial report" lacks "pair run" "$tmp/rep/report.md"
expect "accuracy pools all views" grep -q "^### Accuracy over all views" "$tmp/rep/report.md"
expect "one curves chart holds both runs" [ -s "$tmp/rep/figures/attack-curves-1.png" ] && \
  [ ! -e "$tmp/rep/figures/attack-curves-2.png" ]
for f in min-eps-hist-run1 min-eps-map-run2 objective-run1 objective-run2; do
  expect "report figure $f" png "$tmp/rep/figures/$f.png"
done
expect "V-MoE's table comes before PRC's" awk '/attack-run1/ {a = NR} /attack-run2/ && !b {b = NR} END {exit !(a && b && a < b)}' \
  "$tmp/rep/report.md"
expect "attack table csv" grep -q "min_eps_cdf" "$tmp/rep/tables/attack-run1.csv"
# the first row of the run-by-run table: run 1, V-MoE (given second, shown first)
first_row() { awk -F'|' '/run by run/ {t = 1} t && $2 ~ /^ *[0-9]+ *$/ {print $2 + 0, $3; exit}' "$tmp/rep/report.md"; }
expect "summary table: V-MoE row first" [ "$(first_row | tr -s ' ')" = "1 V-MoE " ]
expect "summary csv" grep -q "never_changed" "$tmp/rep/tables/attack-summary.csv"
"$rs" report --db "$db" --runs 3 --out "$tmp/rep3" --images 0 --resamples 0 >/dev/null 2>"$tmp/err"
no_section() { [ -s "$1" ] && ! grep -q "Routing under attack" "$1"; }
expect "no attack section without adversarial runs" no_section "$tmp/rep3/report.md"

testlib_done attack_stats
