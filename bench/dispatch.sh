#!/usr/bin/env bash
# Cost of dispatch with expert capacity against the plain forward pass (docs/dispatch.md):
# bench_forward on the same model, batch and threads, plain and with a capacity factor,
# 5 alternating runs each; prints every rate and the ratio of the medians.
#   bench/dispatch.sh [BUILD] [SECONDS] [S32_BATCH]   (S/32 needs python3-torch: ensure-deps --python)
# Batch 256 for tiny; S32_BATCH (default 40, whole groups of 8 and of 20) for S/32.
# Configurations, per shape (tiny: the quick-start model; s32: V-MoE-S/32 "last 2", random):
#   same group  capacity factor 4.0 in groups of 20 images, the plain pass's own group size
#               (1024 tokens / 50): only the dispatch itself differs
#   vmoe eval   capacity factor 4.0, groups of 8 images (vmoe's S/32 evaluation settings)
#   drops       capacity factor 1.05, groups of 8, BPR (vmoe's training factor: tokens drop)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-3}
s32_batch=${3:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
models=(tiny models/fmnist-tiny-vmoe-k2.safetensors 256)
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 - "$tmp/s32.safetensors" <<'PY'
import sys
sys.path[:0] = ["bench", "pytorch"]
from bench import SHAPES
from export import export, make_model
export(make_model(SHAPES["s32"], seed=0), SHAPES["s32"], sys.argv[1])
PY
  models+=(s32 "$tmp/s32.safetensors" "$s32_batch")
fi
rate() { "$build/bench_forward" "$@" | awk '{print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for ((i = 0; i < ${#models[@]}; i += 3)); do
  name=${models[i]} model=${models[i + 1]} batch=${models[i + 2]}
  for config in "same group:4.0 20" "vmoe eval:4.0 8" "drops:1.05 8 bpr"; do
    label=${config%%:*} args=${config#*:}
    plain=() cap=()
    for run in 1 2 3 4 5; do
      plain+=("$(rate "$model" "$batch" 2 "$seconds")")
      # shellcheck disable=SC2086
      cap+=("$(rate "$model" "$batch" 2 "$seconds" $args)")
    done
    p=$(median "${plain[@]}") c=$(median "${cap[@]}")
    echo "$name, batch $batch, $label ($args): plain ${plain[*]} img/s; capacity ${cap[*]} img/s;" \
      "medians $p / $c: capacity path costs $(awk "BEGIN {printf \"%+.1f\", 100 * ($p / $c - 1)}") %"
  done
done
