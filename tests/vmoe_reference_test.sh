#!/usr/bin/env bash
# Numbers under vmoe's name are vmoe's (docs/attacks.md, "Reproducing vmoe's and AdvMoE's
# settings"): a mode=vmoe cross-entropy attack on the bundled tiny model with the attack
# study's dispatch (capacity factor 1.5, groups of 4 images, bfloat16 dispatch, the last
# group padded with zero images: 10 images) gives, per view, the accuracy and, per view and
# MoE block, the routing_changes that pytorch/vmoe_attack_golden.py computes independently
# from vmoe's code (tests/golden/vmoe-attack.txt), to the 10 digits stats prints.
# Likewise AdvMoE's router attack as routerscope adapts it (loss=router-ce,target=label, PGD
# of 10 steps of 2/255 within 8/255, from the clean image) against the same script's
# --advmoe reference (tests/golden/advmoe-attack.txt).
# Also: the same run without --pad-last-group differs (the last group's images see other
# capacity) and is a run of its own (the padding is part of the identity), and a finished
# run is reported, not recomputed.
# usage: vmoe_reference_test.sh ROUTERSCOPE MODEL GOLDEN_DIR
set -u
rs=$(realpath "$1") model=$(realpath "$2") golden=$(realpath "$3")
. "$(dirname "$0")/testlib.sh"
testlib_init

if [ ! -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "skip vmoe reference tests: dataset-fashion-mnist is not installed"
  echo "vmoe_reference: 0 passed, 0 failed"; exit 0
fi
args=(--data fashion-mnist:test --limit 10 --protocol adversarial --attack pgd:mode=vmoe --eps 2/255,8/255
      --capacity-factor 1.5 --group-images 4 --threads 2)

"$rs" replay "$model" "${args[@]}" --bf16-dispatch --pad-last-group --db "$tmp/v.db" >/dev/null 2>"$tmp/err"
expect "the attack study's settings run" [ $? = 0 ]
"$rs" stats --db "$tmp/v.db" --format csv --resamples 0 >"$tmp/stats.csv" 2>"$tmp/err"
expect "stats reads the run" [ $? = 0 ]
# Each golden line view,layer,metric,value against the stats row run,view,layer,metric,value,...
compare() { # STATS.csv [GOLDEN]
  awk -F, 'NR == FNR { if ($0 !~ /^#/) want[$1 "," $2 "," $3] = $4; next }
           { key = $2 "," $3 "," $4; if (key in want) { got[key] = $5 } }
           END { bad = 0
                 for (k in want) {
                   if (!(k in got)) { print "missing " k; bad = 1; continue }
                   d = got[k] - want[k]; if (d < 0) d = -d
                   if (d > 1e-9) { print k ": routerscope " got[k] ", reference " want[k]; bad = 1 } }
                 exit bad }' "${2:-$golden/vmoe-attack.txt}" "$1"
}
compare "$tmp/stats.csv" >"$tmp/diff.txt"
expect "accuracy and routing_changes equal the independent vmoe reference" [ $? = 0 ]
sed 's/^/     /' "$tmp/diff.txt"
grep -q '^1,view 2,1,routing_changes,' "$tmp/stats.csv"
expect "per-layer routing_changes are printed" [ $? = 0 ]

"$rs" replay "$model" "${args[@]}" --bf16-dispatch --db "$tmp/v.db" >"$tmp/out" 2>"$tmp/err"
expect "without padding it is another run (run 2)" grep -q '^run 2:' "$tmp/out"
"$rs" stats --db "$tmp/v.db" --run 2 --format csv --resamples 0 >"$tmp/plain.csv" 2>"$tmp/err"
compare "$tmp/plain.csv" >/dev/null
expect "and its figures differ: the last group's images meet other capacity" [ $? != 0 ]
"$rs" replay "$model" "${args[@]}" --bf16-dispatch --pad-last-group --db "$tmp/v.db" >"$tmp/out" 2>"$tmp/err"
expect "the bf16 padded run again: already done, not recomputed" grep -q 'run 1' "$tmp/out"
"$rs" runs --db "$tmp/v.db" >"$tmp/runs" 2>"$tmp/err"
expect "runs names bfloat16 dispatch and the padding" grep -q 'bfloat16 dispatch, last group padded' "$tmp/runs"

"$rs" eval "$model" --data fashion-mnist:test --limit 10 --bf16-dispatch >/dev/null 2>"$tmp/err"
expect "--bf16-dispatch without a capacity factor: exit 2, one line" failed_with $? 2 "belong to --capacity-factor"
"$rs" eval "$model" --data fashion-mnist:test --limit 10 --capacity-factor 1.5 --group-images 4 --bf16-dispatch \
  --pad-last-group >"$tmp/out" 2>"$tmp/err"
expect "eval takes both and says so" grep -q 'bfloat16 dispatch, last group padded' "$tmp/out"

# AdvMoE's router attack, per-token (docs/attacks.md), from the clean image
"$rs" replay "$model" --data fashion-mnist:test --limit 10 --protocol adversarial --threads 2 --eps 8/255 \
  --attack 'pgd:steps=10,alpha=2/255,loss=router-ce,target=label,start=zero' --db "$tmp/a.db" >/dev/null 2>"$tmp/err"
expect "AdvMoE's router attack runs" [ $? = 0 ]
"$rs" stats --db "$tmp/a.db" --format csv --resamples 0 >"$tmp/adv.csv" 2>"$tmp/err"
compare "$tmp/adv.csv" "$golden/advmoe-attack.txt" >"$tmp/diff.txt"
expect "its accuracy and routing_changes equal the independent AdvMoE-style reference" [ $? = 0 ]
sed 's/^/     /' "$tmp/diff.txt"

testlib_done vmoe_reference
