#!/usr/bin/env bash
# demo.sh [--full] — the quick start's main job. Installs what is missing, builds, then
# replays the bundled V-MoE and V-MoE+PRC checkpoints (k = 1 and k = 2) on the
# Fashion-MNIST test set: the pair protocol (two PRC-style augmented views per image) on
# all 10,000 images and the noise sweep (clean + ImageNet-C severities 1-5) on the first
# 2,000 (--full: all), and the adversarial protocol on the same images (the clean view and
# a 10-step L-inf PGD attack on the router at eps 1/255, 2/255, 4/255 and 8/255; see
# docs/attacks.md). Writes the comparison report to out/demo/report/ and prints its
# headline table and the routing-under-attack summary. Running it again reuses the finished runs in out/demo/routing.db.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh build
rs=build/routerscope
out=out/demo
noise_limit=2000
[ "${1:-}" = --full ] && noise_limit=10000
mkdir -p "$out"

# V-MoE before its PRC partner: the report reads each PRC run against the V-MoE run of its k
models=(models/fmnist-vmoe-k1.safetensors models/fmnist-prc-k1.safetensors
        models/fmnist-vmoe-k2.safetensors models/fmnist-prc-k2.safetensors)

run_id() { grep -oE '^run [0-9]+' | head -1 | cut -d' ' -f2; }
# replay ARGS: shows replay's lines on stderr and prints the run id. The lines go through
# our own stderr descriptor: `tee /dev/stderr` reopened the log file at offset 0 when
# stderr was redirected to one, leaving NUL bytes in it.
replay() { local out; out=$("$rs" replay "$@") || return 1; printf '%s\n' "$out" >&2; printf '%s\n' "$out" | run_id; }
pair_runs=() noise_runs=() adv_runs=()
for model in "${models[@]}"; do
  echo "== $(basename "$model" .safetensors)"
  "$rs" eval "$model" --data fashion-mnist:test | head -1
  id=$(replay "$model" --data fashion-mnist:test --protocol pair --db "$out/routing.db")
  pair_runs+=("$id")
  id=$(replay "$model" --data fashion-mnist:test --protocol noise --limit $noise_limit --db "$out/routing.db")
  noise_runs+=("$id")
  id=$(replay "$model" --data fashion-mnist:test --protocol adversarial --attack 'pgd:steps=10,loss=router' \
              --limit $noise_limit --db "$out/routing.db")
  adv_runs+=("$id")
done
runs=$(IFS=,; echo "${pair_runs[*]},${noise_runs[*]},${adv_runs[*]}")
"$rs" report --db "$out/routing.db" --runs "$runs" --out "$out/report" >/dev/null
echo
sed -n -e '/^## Summary/,/^Contents:/p' -e '/^## Headline/,/^## Accuracy/p' "$out/report/report.md" |
  grep -v -e '^Files:' -e '^## Accuracy' -e '^Contents:'
sed -n '/^### Routing under attack, run by run/,/^Files:/p' "$out/report/report.md" | grep -v '^Files:'
echo "Full report: $out/report/index.html (also report.md, report.pdf, tables/, figures/)"
