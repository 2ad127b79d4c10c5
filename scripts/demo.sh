#!/usr/bin/env bash
# demo.sh — the quick start's main job: install what is missing, build, then show the
# bundled model, classify the Fashion-MNIST test set with it, and record its routing
# under two augmented views of every test image (the PRC protocol) into out/demo.db,
# and print its routing-consistency table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh build
model=models/fmnist-tiny-vmoe-k2.safetensors
set -x
build/routerscope inspect "$model"
build/routerscope eval "$model" --data fashion-mnist:test
mkdir -p out
build/routerscope replay "$model" --data fashion-mnist:test --protocol pair --db out/demo.db
build/routerscope runs --db out/demo.db
build/routerscope stats --db out/demo.db
