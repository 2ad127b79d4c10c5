#!/usr/bin/env bash
# demo.sh [--full] — the quick start's main job. Installs what is missing, builds, then
# replays the bundled k = 2 checkpoints of every training method, with their training
# seeds grouped (models/README.md): V-MoE (seeds 0-2), V-MoE+PRC (0-2), the JSD
# consistency loss (0-2), adversarial training and AdvMoE's alternating adversarial
# training (each seed that models/ holds), on the Fashion-MNIST test set:
# the pair protocol (two PRC-style augmented views per image) on all 10,000 images, the
# noise sweep (clean + ImageNet-C severities 1-5) on the first 2,000 and the adversarial
# protocol (the clean view and a 10-step L-inf PGD attack on the router at eps 1/255,
# 2/255, 4/255 and 8/255; docs/attacks.md) on the first 1,000 and the corruptions protocol
# (clean + the implemented ImageNet-C corruptions at severities 1-5 with CIFAR-10-C's
# parameters; docs/corruptions.md) on the first 500 (--full: all of them).
# Writes the comparison report, each method against V-MoE over seeds (docs/groups.md),
# to out/demo/report/ (the corruptions protocol's to out/demo/report-corruptions/) and
# prints its answer table (the report's first page) and the per-family answer under
# corruptions, then replays light noise
# with the clean routing forced (the intervene protocol, docs/dispatch.md) on seed 0 of
# each method and prints how many changed predictions that restores, and finally the
# dissection over seeds (docs/dissection.md): V-MoE's, the adversarial and the AdvMoE
# models' accuracy, routing agreement and router- vs expert-attributable prediction flips
# under a CE attack, AdvMoE's router attack and noise, and AdvMoE against plain adversarial
# training seed by seed. Running it again reuses the finished
# runs in out/demo/routing.db.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh build
rs=build/routerscope
out=out/demo
noise_limit=2000 attack_limit=1000 corrupt_limit=500
[ "${1:-}" = --full ] && noise_limit=10000 attack_limit=10000 corrupt_limit=10000
mkdir -p "$out"

# Methods and their training seeds: 0, 1, 2 up to the first model file models/ lacks (the
# adversarial ones take an hour or more of training each). V-MoE first: it is the reference
# group, and it holds every seed; a method without a seed-0 model is left out.
model_file() { # METHOD SEED: seed 0 is the file without a suffix
  if [ "$2" = 0 ]; then echo "models/fmnist-$1-k2.safetensors"; else echo "models/fmnist-$1-k2-s$2.safetensors"; fi
}
methods=()
declare -A seeds=()
for method in vmoe prc jsd adv advmoe; do
  for seed in 0 1 2; do
    [ -r "$(model_file "$method" "$seed")" ] || break
    seeds[$method]="${seeds[$method]:-}${seeds[$method]:+ }$seed"
  done
  if [ -n "${seeds[$method]:-}" ]; then methods+=("$method"); fi
done
run_id() { grep -oE '^run [0-9]+' | head -1 | cut -d' ' -f2; }
# replay ARGS: shows replay's lines on stderr and prints the run id. The lines go through
# our own stderr descriptor: `tee /dev/stderr` reopened the log file at offset 0 when
# stderr was redirected to one, leaving NUL bytes in it.
replay() { local out; out=$("$rs" replay "$@") || return 1; printf '%s\n' "$out" >&2; printf '%s\n' "$out" | run_id; }
groups=() corrupt_groups=()
for method in "${methods[@]}"; do
  ids=() corrupt_ids=()
  for seed in ${seeds[$method]}; do
    model=$(model_file "$method" "$seed")
    echo "== $(basename "$model" .safetensors) ($method, training seed $seed)"
    "$rs" eval "$model" --data fashion-mnist:test | head -1
    ids+=("$(replay "$model" --data fashion-mnist:test --protocol pair --db "$out/routing.db")")
    ids+=("$(replay "$model" --data fashion-mnist:test --protocol noise --limit $noise_limit --db "$out/routing.db")")
    ids+=("$(replay "$model" --data fashion-mnist:test --protocol adversarial --attack 'pgd:steps=10,loss=router' \
                    --limit $attack_limit --db "$out/routing.db")")
    corrupt_ids+=("$(replay "$model" --data fashion-mnist:test --protocol corruptions --limit $corrupt_limit \
                            --db "$out/routing.db")")
  done
  groups+=(--group "$method=$(IFS=,; echo "${ids[*]}")")
  corrupt_groups+=(--group "$method=$(IFS=,; echo "${corrupt_ids[*]}")")
done
# Two reports, so that each prints in under 30 pages: the three protocols, and the
# corruptions (75 corrupted views per run) on their own; written side by side, one a core.
"$rs" report --db "$out/routing.db" "${groups[@]}" --out "$out/report" >/dev/null &
main_report=$!
"$rs" report --db "$out/routing.db" "${corrupt_groups[@]}" --out "$out/report-corruptions" >/dev/null
wait $main_report
echo
# The report's answer, as its first page shows it: each method against V-MoE per protocol
# and headline figure (mean difference over seeds, t interval, * = holds after Holm across
# the table), the family, and the sentences read off the table.
answer() { # REPORT_MD: the section "Answer over training seeds" up to the contents, unescaped
  awk '/^## Answer over training seeds/ { on = 1 } /^Contents:/ || (on && /^## / && !/^## Answer/) { on = 0 }
       on && !/^Files:/' "$1" | sed -E 's/\\([][\\`*_<>|#])/\1/g' | cat -s
}
answer "$out/report/report.md"
# Routing under common corruptions (docs/corruptions.md): the report's per-family answer,
# each method against V-MoE (mean difference over seeds with its t interval, and the
# relative form: the method's routing inconsistency over V-MoE's, as mCE is over AlexNet's).
echo
echo "## Routing under common corruptions, first $corrupt_limit test images"
awk '/^## Routing under common corruptions/ { on = 1; next } on && /^##/ && !/^### Corruptions: each method/ { on = 0 }
     on && (/^\|/ || /^### /)' "$out/report-corruptions/report.md" | sed -E 's/\\([][\\`*_<>|#])/\1/g'
# Routing interventions (docs/dispatch.md): under light noise, the share of changed
# predictions that forcing the clean routing restores, for seed 0 of every method.
echo
echo "## Routing interventions: light noise (severity 1), first $attack_limit test images, seed 0 of each method"
echo "(block 3 is the last block: forcing it alone cannot change a prediction, which the class token makes)"
for method in "${methods[@]}"; do
  model=$(model_file "$method" 0)
  id=$(replay "$model" --data fashion-mnist:test --protocol intervene --limit $attack_limit --db "$out/routing.db" 2>/dev/null)
  echo
  echo "$(basename "$model" .safetensors):"
  "$rs" stats --db "$out/routing.db" --run "$id" | awk '/^### / { on = /^### Routing interventions/ } on && /^\|/'
done
# The dissection (docs/dissection.md): is the router or the expert the weak point? Each
# method's seeds (AdvMoE's when models/ has them) under a CE attack and AdvMoE's router
# attack (PGD-10, eps 8/255, step 2/255, as AdvMoE evaluates) and light Gaussian noise, each
# replayed again with the clean routing forced.
# The adversarial models flip few predictions (5-15 %), so the shares need the attack's 1,000 images.
dissect_limit=$attack_limit
dissect_views='clean;pgd:eps=8/255,steps=10,alpha=2/255,loss=ce;pgd:eps=8/255,steps=10,alpha=2/255,loss=router-ce,target=label;noise:severity=1;base:view=1+route:from=0;base:view=2+route:from=0;base:view=3+route:from=0'
dissect_groups=()
declare -A dissect_group=()
for method in vmoe adv advmoe; do
  ids=()
  for seed in ${seeds[$method]:-}; do
    model=$(model_file "$method" "$seed")
    ids+=("$(replay "$model" --data fashion-mnist:test --protocol custom --views "$dissect_views" \
                    --limit $dissect_limit --db "$out/routing.db" 2>/dev/null)")
  done
  [ ${#ids[@]} = 0 ] && continue
  dissect_group[$method]="$method=$(IFS=,; echo "${ids[*]}")"
  dissect_groups+=(--group "${dissect_group[$method]}")
done
# TITLE: the table of `compare` (markdown) that starts with "### TITLE", up to the next one.
md_table() { awk -v t="### $1" 'index($0, t) == 1 { on = 1; print; next } /^### / { on = 0 } on' | cat -s; }
echo
echo "## Dissection: router- vs expert-attributable prediction flips, first $dissect_limit test images (docs/dissection.md)"
"$rs" compare --db "$out/routing.db" "${dissect_groups[@]}" --resamples 0 | md_table 'Dissection over seeds'
# AdvMoE's claim: alternating router/expert adversarial training makes a sparse model more
# robust than plain adversarial training. Seeds pair by position; * holds after Holm.
if [ -n "${dissect_group[adv]:-}" ] && [ -n "${dissect_group[advmoe]:-}" ]; then
  echo
  echo "## AdvMoE against plain adversarial training, seed by seed (difference AdvMoE - adversarial)"
  "$rs" compare --db "$out/routing.db" --group "${dissect_group[adv]}" --group "${dissect_group[advmoe]}" \
      --resamples 0 | md_table 'Dissection, differences between groups'
fi
echo "Full reports: $out/report/index.html and, for the corruptions, $out/report-corruptions/index.html"
echo "(each also report.md, report.pdf, tables/, figures/)"
