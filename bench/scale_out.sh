#!/usr/bin/env bash
# ImageNet-scale input and scale-out benchmark (issue 16):
#   bench/scale_out.sh [BUILD] [IMAGES]     (needs python3-numpy and routerscope built with MPI)
# 1. V-MoE-S/32 shape (random weights) replays a list: job of IMAGES (512)
#    JPEGs of 500x375 made from Fashion-MNIST (bench/make_jpegs.c) under the pair protocol:
#    1 rank x 2 threads, then mpirun 2 ranks x 1 thread; images/s and the shares of JPEG
#    decode + resize, forward and SQLite; both stores must give the same stats.
# 2. stats on a merged 50,000-image store of the S/32 store shape (7x7 patches + class token,
#    E 8, 2 MoE layers, 2 views: the tiny model's shape is the same per image), timed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
images=${2:-512}
rs=$PWD/$build/routerscope
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe --allow-run-as-root)

# Random V-MoE-S/32 "last 2" weights (numpy only: bench/write_s32.py).
/usr/bin/python3 bench/write_s32.py "$tmp/s32.safetensors"
mkdir -p "$tmp/jpg"
"$build/make_jpegs" fashion-mnist:test "$images" 500 375 "$tmp/jpg"
echo "== $images JPEGs of 500x375, $(du -sk "$tmp/jpg" | cut -f1) kB ($(( $(du -sk "$tmp/jpg" | cut -f1) / images )) kB each)"
job=(--data "list:$tmp/jpg/list.txt" --protocol pair)

echo "== S/32, pair, 1 rank x 2 threads"
"$rs" replay "$tmp/s32.safetensors" "${job[@]}" --db "$tmp/one.db" --threads 2
echo "== S/32, pair, 2 ranks x 1 thread (mpirun)"
"${mpi[@]}" -n 2 "$rs" replay "$tmp/s32.safetensors" "${job[@]}" --db "$tmp/two.db" --threads 1
"$rs" stats --db "$tmp/one.db" --format json >"$tmp/one.json"
"$rs" stats --db "$tmp/two.db" --format json >"$tmp/two.json"
cmp -s "$tmp/one.json" "$tmp/two.json" && echo "stats identical" || { echo "stats DIFFER"; exit 1; }

echo "== stats on a merged 50,000-image store (Fashion-MNIST train, 2 ranks, tiny model: S/32's store shape)"
"${mpi[@]}" -n 2 "$rs" replay models/fmnist-tiny-vmoe-k2.safetensors --data fashion-mnist:train --limit 50000 \
  --db "$tmp/big.db" --threads 1
ls -l "$tmp/big.db" | awk '{print "merged store", $5, "bytes"}'
/usr/bin/time -f "stats: %e s wall, %M kB max RSS" "$rs" stats --db "$tmp/big.db" >/dev/null
/usr/bin/time -f "merge again into a new store: %e s wall, %M kB max RSS" \
  "$rs" merge --db "$tmp/big2.db" "$tmp/big.db.shard-0-of-2" "$tmp/big.db.shard-1-of-2"
