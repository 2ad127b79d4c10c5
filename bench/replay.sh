#!/usr/bin/env bash
# Replay benchmark (issue 3): the full Fashion-MNIST test set under the pair protocol on
# the quick-start model, then V-MoE-S/32-shaped replay of 224x224 PNGs against eval alone.
#   bench/replay.sh [BUILD]      (needs scripts/ensure-deps.sh --python for the S/32 model)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rs=$build/routerscope
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Fashion-MNIST test set, pair protocol, tiny quick-start model, 2 threads"
"$rs" replay models/fmnist-tiny-vmoe-k2.safetensors --data fashion-mnist:test --db "$tmp/tiny.db" --threads 2
bytes=$(stat -c %s "$tmp/tiny.db")
records=$(sqlite3 "$tmp/tiny.db" "SELECT count(*) * 50 FROM routing")
echo "database $bytes bytes after close, $records token records: $(awk "BEGIN {printf \"%.1f\", $bytes / $records}") bytes per record"
"$rs" eval models/fmnist-tiny-vmoe-k2.safetensors --data fashion-mnist:test --threads 2 | tail -1

echo "== S/32 shape (random weights), 512 PNGs of 224x224"
/usr/bin/python3 - "$tmp/s32.safetensors" <<'PY'
import sys
sys.path[:0] = ["bench", "pytorch"]
from bench import SHAPES
from export import export, make_model
export(make_model(SHAPES["s32"], seed=0), SHAPES["s32"], sys.argv[1])
PY
mkdir -p "$tmp/png"
"$build/make_pngs" fashion-mnist:test 512 224 "$tmp/png"
"$rs" eval "$tmp/s32.safetensors" --data "list:$tmp/png/list.txt" --threads 2 | tail -1
"$rs" replay "$tmp/s32.safetensors" --data "list:$tmp/png/list.txt" --db "$tmp/s32.db" --threads 2
