#!/usr/bin/env bash
# End-to-end tests of the dissection over seeds (docs/dissection.md) on the real binary, on
# runs of the bundled k = 2 models replayed here: three V-MoE seeds and the adversarial model
# (one seed), each under a CE attack, AdvMoE's router attack and Gaussian noise with every
# perturbation forced to the clean routing (--protocol custom). Checked: `compare --group`
# prints the dissection; each seed's router-attributable share is `stats`' routing-
# attributable figure of that run (restored / changed, also counted here with SQL); a group's
# share is the mean over its seeds with the t interval on n - 1 df (awk), clipped to [0, 1];
# the one-seed group says "1 seed" and has no interval; `report --group` has the section and
# its tables; groups without forced views print no dissection; the intervene protocol takes
# an attack as its perturbation and its groups dissect it too.
# The attacks are short (3 steps) and the images few: the arithmetic is what is tested.
# usage: dissect_test.sh ROUTERSCOPE MODELS_DIR
set -u
rs=$(realpath "$1") models=$(realpath "$2")
. "$(dirname "$0")/testlib.sh"
testlib_init
has() { grep -q -- "$2" "$1"; }
q() { sqlite3 "$1" "$2"; }

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip dissect tests: dataset-fashion-mnist is not installed"; echo "dissect: 0 passed, 0 failed"; exit 0
fi
db=$tmp/d.db
views='clean;pgd:eps=8/255,steps=3,alpha=4/255,loss=ce;pgd:eps=8/255,steps=3,alpha=4/255,loss=router-ce,target=label;noise:severity=3;base:view=1+route:from=0;base:view=2+route:from=0;base:view=3+route:from=0'
for m in vmoe-k2 vmoe-k2-s1 vmoe-k2-s2 adv-k2; do # runs 1..4
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 40 --protocol custom \
    --views "$views" --db "$db" --threads 1 >/dev/null 2>"$tmp/err"
done
expect "four runs replayed" [ "$(q "$db" "SELECT count(*) FROM runs WHERE status='done'")" = 4 ]

"$rs" compare --db "$db" --group vmoe=1,2,3 --group adv=4 --resamples 50 >"$tmp/md" 2>"$tmp/err"
expect "compare --group: exits 0" [ $? = 0 ]
expect "compare --group: the dissection and its per-seed table" \
  sh -c "grep -q '^### Dissection over seeds' '$tmp/md' && grep -q '^### Dissection per seed' '$tmp/md'"
expect "compare --group: a row per group and perturbation (2 x 3)" \
  [ "$(sed -n '/^### Dissection over seeds/,/^### Dissection, differences/p' "$tmp/md" | grep -c '^| [a-z]*: V-MoE')" = 6 ]
expect "the one-seed group says '1 seed'" grep -Eq '^\| adv: V-MoE \(adv\.\) k=2 +\| view 3: noise:severity=3 +\| 1 seed' "$tmp/md"
"$rs" compare --db "$db" --group vmoe=1,2,3 --group adv=4 --resamples 50 --format csv >"$tmp/csv" 2>"$tmp/err"
expect "csv: exits 0, 8 fields a row" sh -c "[ \$? = 0 ] && [ \"\$(awk -F, 'NF != 8' '$tmp/csv' | wc -l)\" = 0 ]"
val() { awk -F, -v r="$1" -v v="$2" -v m="$3" -v c="${4:-5}" '$1 == r && $2 == v && $4 == m { print $c }' "$tmp/csv"; }
for run in 1 2 3; do
  "$rs" stats --db "$db" --run $run --format csv --resamples 0 >"$tmp/s$run.csv" 2>"$tmp/err"
done
stats_attr() { awk -F, -v v="$2" '$2 == v && $3 == "all" && $4 == "attributable" { print $5 }' "$tmp/s$1.csv"; }
changed() { q "$db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image)
  WHERE run_id = $1 AND a.view = 0 AND b.view = $2 AND a.predicted != b.predicted"; }
restored() { q "$db" "SELECT count(*) FROM predictions a JOIN predictions b USING (run_id, image) JOIN predictions f USING (run_id, image)
  WHERE run_id = $1 AND a.view = 0 AND b.view = $2 AND f.view = $3 AND a.predicted != b.predicted AND f.predicted = a.predicted"; }
same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && (a - b) ^ 2 < 1e-18) }'; }
for p in 1 2 3; do
  f=$((p + 3))
  for run in 1 2 3; do
    c=$(changed $run $p) r=$(restored $run $p $f) x=$(val $run "view $p" dissect_seed_router)
    expect "run $run view $p: flipped and restored images are the SQL counts ($c, $r)" \
      [ "$(val $run "view $p" dissect_seed_flipped_images),$(val $run "view $p" dissect_seed_restored_images)" = "$c,$r" ]
    if [ "$c" = 0 ]; then
      expect "run $run view $p: no flip, no share" [ -z "$x" ]
    else
      expect "run $run view $p: router share = restored / flipped = stats' routing-attributable (view $f)" \
        sh -c "awk -v x='$x' -v r=$r -v c=$c 'BEGIN { exit (x - r / c) ^ 2 > 1e-18 }' && [ '$(stats_attr $run "view $f")' = '$x' ]"
    fi
  done
  # the group's mean over the seeds that have a share, t interval on n - 1 df, clipped to [0, 1]
  shares=$(for run in 1 2 3; do val $run "view $p" dissect_seed_router; done | grep . | tr '\n' ' ')
  expect "view $p: group share = mean over seeds ($shares) with the t interval, clipped" \
    awk -v s="$shares" -v m="$(val vmoe "view $p" dissect_router)" -v lo="$(val vmoe "view $p" dissect_router 6)" \
      -v hi="$(val vmoe "view $p" dissect_router 7)" -v n="$(val vmoe "view $p" dissect_router 8)" 'BEGIN {
        k = split(s, x, " "); if (k != n) exit 1; if (k == 0) exit !(m == "");
        for (i = 1; i <= k; i++) sum += x[i]; mean = sum / k; if ((mean - m) ^ 2 > 1e-18) exit 1
        if (k == 1) exit !(lo == "" && hi == "")
        for (i = 1; i <= k; i++) ss += (x[i] - mean) ^ 2
        t = k == 2 ? 12.7062047 : 4.30265273; h = t * sqrt(ss / (k - 1)) / sqrt(k)
        l = mean - h < 0 ? 0 : mean - h; u = mean + h > 1 ? 1 : mean + h
        exit !((l - lo) ^ 2 < 1e-14 && (u - hi) ^ 2 < 1e-14) }'
  expect "view $p: expert-attributable = 1 - router-attributable" \
    awk -v r="$(val vmoe "view $p" dissect_router)" -v e="$(val vmoe "view $p" dissect_expert)" \
      'BEGIN { exit !(r == "" ? e == "" : (r + e - 1) ^ 2 < 1e-18) }'
  expect "view $p: group accuracy = mean of the runs' accuracy under the perturbation" \
    awk -v m="$(val vmoe "view $p" dissect_accuracy)" -v a="$(for run in 1 2 3; do val $run "view $p" dissect_seed_accuracy; done | tr '\n' ' ')" \
      'BEGIN { split(a, x, " "); exit !(((x[1] + x[2] + x[3]) / 3 - m) ^ 2 < 1e-18) }'
done
expect "the one-seed group's figures have no interval" \
  [ "$(val adv 'view 3' dissect_accuracy 6)$(val adv 'view 3' dissect_accuracy 7)" = "" ]
expect "the one-seed difference is adv's seed minus vmoe's first, with no interval" \
  awk -v d="$(val adv 'view 1' dissect_diff_accuracy)" -v a="$(val 4 'view 1' dissect_seed_accuracy)" \
    -v b="$(val 1 'view 1' dissect_seed_accuracy)" -v i="$(val adv 'view 1' dissect_diff_accuracy 6)" \
    'BEGIN { exit !(d != "" && (d - (a - b)) ^ 2 < 1e-18 && i == "") }'

# Differences between groups over two seed pairs (runs 3, 4 against 1, 2; --force: not the
# same method or training seeds): the mean of the paired differences, t on 1 df, clipped.
"$rs" compare --db "$db" --group x=1,2 --group y=3,4 --force --resamples 0 --format csv >"$tmp/pairs.csv" 2>"$tmp/err"
pv() { awk -F, -v r="$1" -v v="$2" -v m="$3" -v c="${4:-5}" '$1 == r && $2 == v && $4 == m { print $c }' "$tmp/pairs.csv"; }
for f in accuracy top1 flipped; do
  expect "two seed pairs, view 2 $f: mean paired difference [t interval, 1 df]" \
    awk -v a1="$(pv 1 'view 2' dissect_seed_$f)" -v a2="$(pv 2 'view 2' dissect_seed_$f)" \
        -v b1="$(pv 3 'view 2' dissect_seed_$f)" -v b2="$(pv 4 'view 2' dissect_seed_$f)" \
        -v m="$(pv y 'view 2' dissect_diff_$f)" -v lo="$(pv y 'view 2' dissect_diff_$f 6)" \
        -v hi="$(pv y 'view 2' dissect_diff_$f 7)" 'BEGIN {
      d1 = b1 - a1; d2 = b2 - a2; mean = (d1 + d2) / 2; h = 12.7062047 * sqrt((d1 - d2) ^ 2 / 2) / sqrt(2)
      l = mean - h < -1 ? -1 : mean - h; u = mean + h > 1 ? 1 : mean + h
      exit !(a1 != "" && m != "" && (mean - m) ^ 2 < 1e-18 && (l - lo) ^ 2 < 1e-14 && (u - hi) ^ 2 < 1e-14) }'
done
expect "the differences table in markdown, with Holm's family named" \
  sh -c "'$rs' compare --db '$db' --group x=1,2 --group y=3,4 --force --resamples 0 |
         grep -q 'family of the [0-9]* differences in this table'"

# --- the report -------------------------------------------------------------------------------------
"$rs" report --db "$db" --group vmoe=1,2,3 --group adv=4 --out "$tmp/rep" --resamples 50 >/dev/null 2>"$tmp/err"
expect "report --group: exits 0" [ $? = 0 ]
expect "report: the dissection section" has "$tmp/rep/report.md" "^## Dissection over seeds: custom protocol"
expect "report: its tables" sh -c "[ -s '$tmp/rep/tables/dissect-custom.csv' ] && [ -s '$tmp/rep/tables/dissect-custom-diff.csv' ] &&
  [ -s '$tmp/rep/tables/dissect-custom-seeds.csv' ]"
expect "report: the table's figures are compare's" \
  [ "$(grep ',dissect_router,' "$tmp/rep/tables/dissect-custom.csv" | cut -d, -f2-)" = "$(grep ',dissect_router,' "$tmp/csv" | cut -d, -f2-)" ]

# --- no forced views, and the intervene protocol -------------------------------------------------------
for m in vmoe-k2 vmoe-k2-s1; do # runs 5, 6: noise, no forced view; 7, 8: intervene with an attack
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 10 --protocol noise \
    --db "$db" --threads 1 >/dev/null 2>"$tmp/err"
done
"$rs" compare --db "$db" --group a=5 --group b=6 --resamples 0 --force >"$tmp/plain" 2>"$tmp/err"
expect "groups without forced views: no dissection" sh -c "[ \$? = 0 ] && ! grep -q Dissection '$tmp/plain'"
for m in vmoe-k2 adv-k2; do
  "$rs" replay "$models/fmnist-$m.safetensors" --data fashion-mnist:test --limit 20 --protocol intervene \
    --augment 'pgd:eps=8/255,steps=2,loss=router-ce,target=label' --db "$db" --threads 1 >/dev/null 2>"$tmp/err"
done
expect "intervene takes an attack as its perturbation" \
  [ "$(q "$db" "SELECT count(*) FROM runs WHERE protocol = 'intervene' AND status = 'done'")" = 2 ]
"$rs" compare --db "$db" --group vmoe=7 --group adv=8 --resamples 0 >"$tmp/iv" 2>"$tmp/err"
expect "intervene groups: one perturbation (the per-block forced views are not dissected)" \
  [ "$(sed -n '/^### Dissection over seeds/,/^### Dissection, differences/p' "$tmp/iv" | grep -c '^| [a-z]*: V-MoE')" = 2 ]

testlib_done dissect
