#!/usr/bin/env bash
# demo.sh — the quick start's main job: install what is missing, build, then show the
# bundled model and classify the Fashion-MNIST test set with it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
scripts/build.sh build
model=models/fmnist-tiny-vmoe-k2.safetensors
set -x
build/routerscope inspect "$model"
build/routerscope eval "$model" --data fashion-mnist:test
