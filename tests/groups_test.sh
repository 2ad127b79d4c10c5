#!/usr/bin/env bash
# End-to-end tests of groups of runs (`compare --group`, `report --group`) on the real binary,
# on runs of the bundled models replayed here: the figures of a group equal the per-run
# `stats` figures and their mean; the difference between groups is the mean of the per-seed
# differences with the t interval on n - 1 df (checked with awk from the seed table); one
# seed says it has no between-seed interval and no p-value; the p-value of the t statistic and
# Holm's adjustment (checked with awk); every format; the checks that refuse groups
# (sizes, names, mixed k, a run twice, a missing run) with one line and the right status;
# the report's groups section per protocol with its figure and tables, its title's question,
# the answer table first and the per-run pairs in an appendix.
# The two-"seed" groups here pair k = 1 (seed unknown: "position 1") with k = 2 (training
# seed 0, from the config) under --force: the arithmetic is what is tested, not the science.
# usage: groups_test.sh ROUTERSCOPE MODELS_DIR
set -u
rs=$(realpath "$1") models=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init
has() { grep -q -- "$2" "$1"; }

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip groups tests: dataset-fashion-mnist is not installed"; echo "groups: 0 passed, 0 failed"; exit 0
fi
db=$tmp/g.db
for m in vmoe-k1 prc-k1 vmoe-k2 prc-k2; do # runs 1..4: pair
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 60 --db "$db" --threads 1 >/dev/null 2>&1
done
for m in vmoe-k2 prc-k2; do # runs 5, 6: noise
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 20 --protocol noise --db "$db" \
    --threads 1 >/dev/null 2>&1
done
expect "six runs replayed" [ "$(sqlite3 "$db" "SELECT count(*) FROM runs WHERE status='done'")" = 6 ]

# --- one seed per group ----------------------------------------------------------------------
"$rs" compare --db "$db" --group vmoe=3 --group prc=4 --resamples 100 >"$tmp/one" 2>"$tmp/err"
expect "one seed: exits 0" [ $? = 0 ]
expect "one seed: the three tables" sh -c "grep -q '### Groups: each headline figure' '$tmp/one' &&
  grep -q '### Differences between groups' '$tmp/one' && grep -q '### Per seed' '$tmp/one'"
expect "one seed: says there is no between-seed interval" has "$tmp/one" "no between-seed interval"
expect "one seed: groups named with method and k" sh -c "grep -q 'vmoe: V-MoE k=2' '$tmp/one' && grep -q 'prc: V-MoE+PRC k=2' '$tmp/one'"
expect "one seed: no p-value, '1 seed'" grep -Eq '^\| prc: V-MoE\+PRC k=2 \| vmoe: V-MoE k=2 \| Top-1 .*\| +1 seed \| +1 seed \|' "$tmp/one"
expect "one seed: no family, nothing marked" has "$tmp/one" "^No difference has a p-value (every method has one seed here)"
expect "one seed: the seed's image bootstrap interval" \
  grep -Eq '^\| prc: V-MoE\+PRC k=2 \| seed 0 \| 4 vs 3 +\| Top-1 .*\[[-+][0-9.]+, [-+][0-9.]+\] \|$' "$tmp/one"

# --- two "seeds" (k = 1 and k = 2, forced) -------------------------------------------------------
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2,4 --resamples 100 >"$tmp/out" 2>"$tmp/err"
expect "mixed k refused without --force (status 1, one line)" failed_with $? 1 "group vmoe mixes V-MoE k=1 (run 1) and V-MoE k=2 (run 3)"
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2,4 --resamples 100 --force --format csv >"$tmp/csv" 2>"$tmp/err"
expect "forced: exits 0" [ $? = 0 ]
expect "csv rows have 8 fields" [ "$(awk -F, 'NF != 8' "$tmp/csv" | wc -l)" = 0 ]
field() { awk -F, -v r="$2" -v v="$3" -v m="$4" '$1 == r && $2 == v && $4 == m { print $5 }' "$1"; }
stat_top1() { "$rs" stats --db "$db" --run "$1" --format csv --resamples 0 | awk -F, '$2 == "view 1" && $3 == "all" && $4 == "top1" { print $5 }'; }
t1=$(stat_top1 1) t3=$(stat_top1 3)
mean=$(field "$tmp/csv" vmoe "" top1_mean)
expect "group mean = mean of the runs' stats Top-1 ($t1, $t3 -> $mean)" \
  awk -v a="$t1" -v b="$t3" -v m="$mean" 'BEGIN { exit !(((a + b) / 2 - m) ^ 2 < 1e-18) }'
expect "group min and max are the runs' figures" awk -v a="$t1" -v b="$t3" -v lo="$(field "$tmp/csv" vmoe "" top1_min)" \
  -v hi="$(field "$tmp/csv" vmoe "" top1_max)" 'BEGIN { mn = a < b ? a : b; mx = a < b ? b : a; exit !((mn - lo) ^ 2 < 1e-18 && (mx - hi) ^ 2 < 1e-18) }'
# t interval over 2 seeds: mean of d1, d2 -+ t(0.975, 1) * sd / sqrt(2), t = 12.7062047
d1=$(field "$tmp/csv" prc "position 1" top1_diff) d2=$(field "$tmp/csv" prc "seed 0" top1_diff)
row=$(awk -F, '$1 == "prc" && $2 == "" && $4 == "top1_diff" { print $5, $6, $7 }' "$tmp/csv")
t_ok() {
  awk -v d1="$d1" -v d2="$d2" -v row="$row" 'BEGIN { split(row, x, " "); m = (d1 + d2) / 2;
    sd = sqrt(((d1 - m) ^ 2 + (d2 - m) ^ 2) / 1); h = 12.7062047 * sd / sqrt(2);
    exit !((x[1] - m) ^ 2 < 1e-18 && (x[2] - (m - h)) ^ 2 < 1e-12 && (x[3] - (m + h)) ^ 2 < 1e-12) }'
}
expect "difference = mean of per-seed differences with the t interval on 1 df" t_ok
# p from t on 1 df (Cauchy): 1 - (2/pi) atan(|t|), t = mean / (sd / sqrt(2)); Holm over the 5
# figures of the one other group: never below p, at most 5 p.
p=$(field "$tmp/csv" prc "" top1_p) ph=$(field "$tmp/csv" prc "" top1_p_holm)
p_ok() {
  awk -v d1="$d1" -v d2="$d2" -v p="$p" -v ph="$ph" 'BEGIN { m = (d1 + d2) / 2; sd = sqrt((d1 - m) ^ 2 + (d2 - m) ^ 2);
    t = m / (sd / sqrt(2)); t = t < 0 ? -t : t; want = 1 - 2 / (4 * atan2(1, 1)) * atan2(t, 1);
    exit !((p - want) ^ 2 < 1e-10 && ph >= p - 1e-12 && ph <= 5 * p + 1e-6 && ph <= 1) }'
}
expect "p-value of the t statistic on 1 df (p=$p), Holm p in [p, 5p] (Holm=$ph)" p_ok
holm_ok() { # Holm by hand over the five p-values of the csv
  awk -F, '$1 == "prc" && $2 == "" && $4 ~ /_p$/ { n++; k[n] = $4; p[n] = $5 }
    $1 == "prc" && $2 == "" && $4 ~ /_p_holm$/ { h[substr($4, 1, length($4) - 5)] = $5 }
    END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (p[j] < p[i]) { t = p[i]; p[i] = p[j]; p[j] = t; t = k[i]; k[i] = k[j]; k[j] = t }
      run = 0; for (i = 1; i <= n; i++) { a = (n - i + 1) * p[i]; run = a > run ? a : run; want = run < 1 ? run : 1;
        if ((h[k[i]] - want) ^ 2 > 1e-10) exit 1 } exit !(n == 5) }' "$1"
}
expect "Holm p = the step-down adjustment of the table's five p-values" holm_ok "$tmp/csv"
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2,4 --resamples 50 --force --format json >"$tmp/json" 2>"$tmp/err"
expect "json parses, three tables" python3 -c 'import json,sys; assert len(json.load(sys.stdin)["tables"]) == 3' <"$tmp/json"
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2,4 --resamples 50 --force --format md >"$tmp/md" 2>"$tmp/err"
expect "md notes the forced mismatch" has "$tmp/md" "^--force: the groups are not comparable"
expect "md: p and Holm p next to the interval" has "$tmp/md" "| Mean difference .*| p .*| Holm p .*| SD over seeds"
expect "md: the family under the table" has "$tmp/md" "^A \* marks a difference that holds after Holm: adjusted p < 0.05 over the family of the 5 differences with a p-value (1 method × 5 headline figures × 1 protocol"
expect "json: p and Holm p cells" python3 -c 'import json,sys; t = json.load(sys.stdin)["tables"][1]; assert t["columns"][5]["key"] == "p" and t["columns"][6]["key"] == "p_holm", t["columns"]' <"$tmp/json"
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2,4 --resamples 50 --force --format tex >"$tmp/tex" 2>"$tmp/err"
expect "tex: the family line is a comment" grep -q '^% A \* marks a difference that holds after Holm' "$tmp/tex"
expect "no NaN anywhere" sh -c "! grep -qi nan '$tmp/md' '$tmp/csv' '$tmp/json'"

# --- refusals ---------------------------------------------------------------------------------
"$rs" compare --db "$db" --group vmoe=1 --group prc=2,4 2>"$tmp/err" >/dev/null
expect "a group larger than the first: usage error" failed_with $? 2 "group prc has 2 runs, more than group vmoe's 1"
# A group with fewer seeds is compared on the seeds it has: its difference is position 1's.
"$rs" compare --db "$db" --group vmoe=1,3 --group prc=2 --resamples 50 --force --format csv >"$tmp/fewer" 2>"$tmp/err"
expect "fewer seeds: exits 0" [ $? = 0 ]
expect "fewer seeds: the first group keeps both seeds" [ "$(field "$tmp/fewer" vmoe "" top1_mean)" = "$mean" ]
expect "fewer seeds: the difference is the one seed's" [ "$(field "$tmp/fewer" prc "" top1_diff)" = "$(field "$tmp/fewer" prc "position 1" top1_diff)" ]
expect "fewer seeds: no seed 0 row for prc" [ -z "$(field "$tmp/fewer" prc "seed 0" top1_diff)" ]
"$rs" compare --db "$db" --group 'v m=1' --group prc=2 2>"$tmp/err" >/dev/null
expect "bad group name: usage error" failed_with $? 2 "--group wants NAME=ID"
"$rs" compare --db "$db" --group vmoe=1,x --group prc=2,4 2>"$tmp/err" >/dev/null
expect "bad run id: usage error" failed_with $? 2 "wants run ids separated by commas"
"$rs" compare --db "$db" --group 'vmoe=1, 3' --group prc=2,4 2>"$tmp/err" >/dev/null
expect "a blank in the run ids: usage error" failed_with $? 2 "--group vmoe wants run ids separated by commas, got '1, 3'"
"$rs" compare --db "$db" --group vmoe=1,3,1 --group prc=2,4 2>"$tmp/err" >/dev/null
expect "a run named twice in a group: usage error" failed_with $? 2 "--group vmoe names run 1 twice"
"$rs" compare --db "$db" --group vmoe=1 2>"$tmp/err" >/dev/null
expect "one group: compare wants two" failed_with $? 2 "at least 2 --group"
"$rs" compare --db "$db" --group vmoe=1 --group prc=2 3 4 2>"$tmp/err" >/dev/null
expect "groups and run ids: usage error" failed_with $? 2 "--group replaces RUN_A RUN_B"
"$rs" compare --db "$db" --group vmoe=1 --group prc=1 --force 2>"$tmp/err" >/dev/null
expect "a run in two groups" failed_with $? 1 "run 1 is in group vmoe and in group prc"
"$rs" compare --db "$db" --group vmoe=1 --group prc=99 2>"$tmp/err" >/dev/null
expect "a missing run lists the runs" failed_with $? 1 "no run 99 (runs here: 1, 2, 3, 4, 5, 6)"
"$rs" compare --db "$db" --group vmoe=3 --group prc=6 2>"$tmp/err" >/dev/null
expect "other images and views refused" failed_with $? 1 "not on the same images and views: images 0..59 vs 0..19"

# --- report -----------------------------------------------------------------------------------
"$rs" report --db "$db" --group vmoe=3,5 --group prc=4,6 --out "$tmp/rep" --images 0 --resamples 50 --detail >/dev/null 2>"$tmp/err"
expect "report --group exits 0" [ $? = 0 ]
expect "report: a groups section per protocol" sh -c "grep -q '^## Groups of seeds: pair protocol' '$tmp/rep/report.md' &&
  grep -q '^## Groups of seeds: noise protocol' '$tmp/rep/report.md'"
expect "report: groups figure and tables" sh -c "[ -s '$tmp/rep/figures/groups-pair.png' ] && [ -s '$tmp/rep/figures/groups-noise.png' ] &&
  [ -s '$tmp/rep/tables/groups-pair-differences.csv' ] && [ -s '$tmp/rep/tables/groups-noise-seeds.csv' ]"
expect "report: groups come after the contents, before the headline" awk '
  /^Contents:/ { c = NR } /^## Groups of seeds: pair/ { g = NR } /^## Headline/ { h = NR } END { exit !(c < g && g < h) }' "$tmp/rep/report.md"
expect "report: every group run is in the report" has "$tmp/rep/report.md" "Details of run 6"
md=$tmp/rep/report.md
expect "report: the title asks the question" grep -q '^# How does V-MoE+PRC k=2 change routing against V-MoE k=2? pair and noise protocols on fashion-mnist:test (60 and 20 images); training seeds: vmoe 1, prc 1$' "$md"
expect "report: the answer is the first section, before the contents" awk '
  /^## / && !first { first = $0 } /^Contents:/ { c = NR } /^## Answer over training seeds/ { a = NR }
  END { exit !(first == "## Answer over training seeds" && a < c) }' "$md"
expect "report: one answer row per method and protocol" [ "$(awk '/^### Answer:/ { on = 1 } on && /^\| prc:/ { n++ } /^Files: \[tables\/answer/ { on = 0 } END { print n }' "$md")" = 2 ]
expect "report: one seed per group: the answer says nothing is marked" has "$md" "^No difference has a p-value"
expect "report: at most five sentences after the answer table" awk '
  /^## Answer/ { on = 1 } /^Contents:/ { on = 0 } on && /^- / { n++ } END { exit !(n >= 1 && n <= 5) }' "$md"
expect "report: answer tables written" sh -c "[ -s '$tmp/rep/tables/answer.csv' ] && [ -s '$tmp/rep/tables/answer.tex' ]"
expect "report: per-run pairs in an appendix after the headline" awk '
  /^## Headline/ { h = NR } /^## Appendix: each run against its baseline/ { a = NR } /^## Summary/ { s = 1 }
  END { exit !(h && a > h && !s) }' "$md"
"$rs" report --db "$db" --group vmoe=3 --runs 3,4 --out "$tmp/rep2" 2>"$tmp/err" >/dev/null
expect "report: --group and --runs together refused" failed_with $? 2 "not both"
"$rs" report --db "$db" --group vmoe=3,5 --group prc=4 --out "$tmp/rep2" 2>"$tmp/err" >/dev/null
expect "report: a group without a protocol's runs refused" failed_with $? 1 "group prc holds 0 noise runs and group vmoe 1"
"$rs" report --db "$db" --group vmoe=3,5 --group prc=4,2 --out "$tmp/rep3" 2>"$tmp/err" >/dev/null
expect "report: a group with more runs of a protocol than the first refused" failed_with $? 1 "group prc holds 2 pair runs and group vmoe 1"

# --- the report reads each method's run against the V-MoE run of its own training seed --------
if [ -f "$models/fmnist-vmoe-k2-s1.safetensors" ] && [ -f "$models/fmnist-prc-k2-s1.safetensors" ]; then
  sdb=$tmp/seeds.db
  for m in vmoe-k2 vmoe-k2-s1 prc-k2 prc-k2-s1; do # runs 1..4
    "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 30 --db "$sdb" --threads 1 >/dev/null 2>&1
  done
  "$rs" report --db "$sdb" --group vmoe=1,2 --group prc=3,4 --out "$tmp/seeds" --images 0 --resamples 50 >/dev/null 2>"$tmp/err"
  expect "seeds report exits 0" [ $? = 0 ]
  expect "seed 1's PRC run is read against seed 1's V-MoE run" has "$tmp/seeds/report.md" "V-MoE+PRC k=2 (run 4) vs V-MoE k=2 (run 2)"
  expect "two seeds: the answer's family is its five cells" has "$tmp/seeds/report.md" \
    "over the family of the 5 differences with a p-value (1 method × 5 headline figures × 1 protocol,"
  expect "two seeds: the answer's Top-1 cell is the differences table's" sh -c "
    a=\$(awk -F, '\$1 == \"prc\" && \$4 == \"pair_top1\" { print \$5, \$6, \$7 }' '$tmp/seeds/tables/answer.csv')
    b=\$(awk -F, '\$1 == \"prc\" && \$2 == \"\" && \$4 == \"top1_diff\" { print \$5, \$6, \$7 }' '$tmp/seeds/tables/groups-pair-differences.csv')
    [ -n \"\$a\" ] && [ \"\$a\" = \"\$b\" ]"
  # the demo prints the report's answer section with its own function (scripts/demo.sh)
  eval "$(sed -n '/^answer() {/,/^}/p' "$(dirname "$0")/../scripts/demo.sh")"
  answer "$tmp/seeds/report.md" >"$tmp/demo-answer" 2>"$tmp/err"
  expect "demo: prints the answer table, its family and sentences, unescaped" sh -c "
    grep -q '^## Answer over training seeds' '$tmp/demo-answer' && grep -Eq '^\| prc: V-MoE\+PRC k=2 +\| vmoe: V-MoE k=2 \| pair' '$tmp/demo-answer' &&
    grep -q '^A \* marks a difference that holds after Holm' '$tmp/demo-answer' && grep -q '^- .*V-MoE+PRC k=2.* \[[-+]' '$tmp/demo-answer' &&
    ! grep -q 'Contents:\|Files:\|\\\\\[' '$tmp/demo-answer'"
  expect "demo: each sentence's words agree with the interval it quotes (excludes 0 or not)" awk '
    /^- / && match($0, /\[[-+][0-9.]+, [-+][0-9.]+\]/) {
      split(substr($0, RSTART + 1, RLENGTH - 2), b, ", "); excl = b[1] + 0 > 0 || b[2] + 0 < 0
      if (/is not bounded away from 0/ && excl) bad = 1
      if (/excludes 0 on its own/ && !excl) bad = 1
      n++ }
    END { exit bad || !n }' "$tmp/demo-answer"
  # two runs of two models: page 1 is the paired differences of the headline figures
  "$rs" report --db "$sdb" --runs 1,3 --out "$tmp/two" --images 0 --resamples 50 >/dev/null 2>"$tmp/err"
  if command -v pdftotext >/dev/null; then
    expect "two runs: page 1 answers with the paired differences and their intervals" sh -c "
      pdftotext -l 1 -layout '$tmp/two/report.pdf' - >'$tmp/p1'; grep -q 'Answer: each run against its baseline' '$tmp/p1' &&
      grep -q 'Top-1 Δ' '$tmp/p1' && grep -Eq 'run 3.*[-+][0-9.]+ \[[-+][0-9.]+, [-+][0-9.]+\]' '$tmp/p1'"
  fi
  # printable: a grouped report with examples stays short and light, one figure per image
  "$rs" report --db "$sdb" --group vmoe=1,2 --group prc=3,4 --out "$tmp/print" --images 2 --resamples 50 >/dev/null 2>"$tmp/err"
  expect "printable: the grouped report exits 0" [ $? = 0 ]
  expect "printable: one examples figure per image (every method side by side), no per-run grid, no part left" sh -c "
    [ \$(ls '$tmp/print/figures' | grep -c '^examples-image') = 2 ] && ! ls '$tmp/print/figures' | grep -q '^grid-run\|^part-'"
  if command -v pdfinfo >/dev/null; then
    pages=$(pdfinfo "$tmp/print/report.pdf" | awk '/^Pages:/ {print $2}')
    expect "printable: at most 14 PDF pages ($pages) and 3 MB" sh -c "[ '${pages:-99}' -le 14 ] && [ \$(stat -c %s '$tmp/print/report.pdf') -le 3000000 ]"
    expect "printable: --detail adds the per-run sections" sh -c "
      '$rs' report --db '$sdb' --group vmoe=1,2 --group prc=3,4 --out '$tmp/printd' --images 2 --resamples 50 --detail >/dev/null 2>&1 &&
      [ \$(pdfinfo '$tmp/printd/report.pdf' | awk '/^Pages:/ {print \$2}') -gt '$pages' ]"
  fi
  expect "printable: the per-seed table has a row per group and seed" \
    [ "$(awk '/^### Per seed/ { on = 1 } on && /^\| prc:/ { n++ } /^Files:/ { on = 0 } END { print n }' "$tmp/print/report.md")" = 2 ]
  expect "a V-MoE seed is not read against another V-MoE seed" sh -c "! grep -q 'V-MoE k=2 (run 2) vs V-MoE k=2 (run 1)' '$tmp/seeds/report.md'"
fi

testlib_done groups
